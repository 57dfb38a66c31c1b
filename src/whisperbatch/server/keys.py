"""Keys for `serve`, apart from the HTTP stack so `whisperbatch keys` starts without it.

A key is 32 random bytes, shown once when made and kept only as its SHA-256 (a slow password hash
guards guessable secrets; a random key has nothing to guess). Every live key's hash is compared with
`hmac.compare_digest`, all of them every time, so how long a check takes says nothing about any key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ..errors import ConfigError
from ..store import KeyRing

KEY_PREFIX = "wb_"
SHOWN_CHARS = 7  # "wb_" and four characters: enough to tell keys apart in a list, nothing to guess with


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(keys: KeyRing, name: str) -> str:
    """A new key named `name`, kept as its hash; the key itself is returned once, to be shown once."""
    name = name.strip()
    if not name:
        raise ConfigError("a key needs a name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    if not keys.add_key(name, key[:SHOWN_CHARS], digest(key)):
        raise ConfigError(f'a key named "{name}" exists already: choose another name')
    return key


def live(keys: KeyRing, sha256: str) -> bool:
    """Whether a live key has this hash (every live key compared, each in constant time)."""
    found = False
    for key in keys.api_keys():
        if key.revoked_at is None:
            found |= hmac.compare_digest(key.sha256, sha256)
    return found


def valid(keys: KeyRing, key: str) -> str | None:
    """The hash of `key` when it is a live key, else None."""
    presented = digest(key)
    return presented if live(keys, presented) else None
