"""What the server answers for a request it cannot take: a status, a message naming the field at fault,
and for a full queue when to come back. One exception, rendered per protocol by the app (OpenAI's
error object on `/v1`, `{"detail", "field"}` elsewhere)."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.code = status, message, field, code
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        headers = {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return headers


def bad_field(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}", field=field, code="invalid_value")
