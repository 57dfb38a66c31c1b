"""The tests' throwaway PostgreSQL server starts, serves a per-test database, and delivers NOTIFY."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg

from whisperbatch.testing.pgserver import create_database, running_server


def test_server_database_select_and_listen_notify(tmp_path: Path) -> None:
    with running_server(tmp_path) as url:
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        db_url = create_database(url, "smoke")
        assert db_url.endswith("/smoke")
        with (
            psycopg.connect(db_url, autocommit=True) as listener,
            psycopg.connect(db_url, autocommit=True) as sender,
        ):
            assert listener.execute("SELECT 1").fetchone() == (1,)
            assert listener.execute("SELECT current_database()").fetchone() == ("smoke",)
            listener.execute("LISTEN jobs")
            sender.execute("SELECT pg_notify('jobs', 'hello')")
            got = [(n.channel, n.payload) for n in listener.notifies(timeout=10, stop_after=1)]
            assert got == [("jobs", "hello")]


def test_two_servers_at_once(tmp_path: Path) -> None:
    """Two servers side by side (as two tests in parallel would have): own port, own folder, own data."""
    urls: list[str] = []
    errors: list[BaseException] = []
    release = threading.Event()

    def serve(name: str) -> None:
        try:
            with running_server(tmp_path / name) as url:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"CREATE TABLE only_{name} (x int)")
                urls.append(url)
                release.wait(60)
        except BaseException as exc:
            errors.append(exc)
            release.set()

    threads = [threading.Thread(target=serve, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    try:
        for _ in range(600):
            if len(urls) == 2 or errors:
                break
            threading.Event().wait(0.1)
        assert not errors, errors
        assert len(urls) == 2 and urls[0] != urls[1]
        for url in urls:
            with psycopg.connect(url) as conn:
                rows = conn.execute("SELECT 1 FROM pg_tables WHERE tablename LIKE 'only_%'").fetchall()
                assert len(rows) == 1
    finally:
        release.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
