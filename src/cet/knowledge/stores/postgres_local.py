"""A private PostgreSQL server with pgvector, run from the ``pgserver`` wheel, for users and tests.

``start_local_postgres(dir)`` initialises a data directory on first use, starts the server as a
background process that outlives the Python process (pgserver's ``cleanup_mode=None``), creates
the ``vector`` extension and returns a ``postgresql://`` URL that PgVectorStore accepts. Calling it
again reuses the running server. The server listens on a unix socket only (no TCP port) and
trusts local connections; when run as root, pgserver runs it as a ``pgserver`` system user.
``stop_local_postgres(dir)`` stops it (a fast shutdown; the data stays).
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import subprocess
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import psycopg

from cet.errors import StoreUnavailable

_log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30


def _pgserver() -> ModuleType:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError as err:
            raise StoreUnavailable(f"a local PostgreSQL needs the pgserver package: {err}") from None
    return pgserver


def _resolve(data_dir: Path | str) -> Path:
    return Path(data_dir).expanduser().resolve()


def _system_user() -> str | None:
    """The user pgserver runs postgres as: itself, or 'pgserver' when started by root."""
    if platform.system() != "Windows" and os.geteuid() == 0:
        return "pgserver"
    return None


def _postmaster(data_dir: Path) -> dict[str, Any] | None:
    """The fields of ``postmaster.pid`` (pid, port, socket_dir, status), or None without one."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if not lines or not lines[0].strip().isdigit():
        return None

    def field(i: int) -> str:
        return lines[i].strip() if len(lines) > i else ""

    return {
        "pid": int(field(0)),
        "port": int(field(3)) if field(3).isdigit() else None,
        "socket_dir": field(4) or None,
        "host": field(5) or None,
        "status": field(7) or "starting",
    }


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _url(info: dict[str, Any], database: str = "postgres") -> str:
    if info["socket_dir"]:
        url = f"postgresql://postgres@/{database}?host={quote(info['socket_dir'], safe='/')}"
        return url + (f"&port={info['port']}" if info["port"] else "")
    return f"postgresql://postgres@{info['host'] or '127.0.0.1'}:{info['port']}/{database}"


def local_postgres_status(data_dir: Path | str) -> dict[str, Any]:
    """Whether a local server exists and runs on this data directory, and its URL when it does."""
    data_dir = _resolve(data_dir)
    info = _postmaster(data_dir)
    running = bool(info and _process_alive(info["pid"]))
    ready = running and info is not None and info["status"] == "ready"
    return {
        "data_dir": str(data_dir),
        "initialized": (data_dir / "PG_VERSION").exists(),
        "running": running,
        "ready": ready,
        "pid": info["pid"] if running and info else None,
        "url": _url(info) if ready and info else None,
        "log": str(data_dir / "log"),
    }


def _create_extension(url: str) -> None:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as err:
        raise StoreUnavailable(
            f"local PostgreSQL at {url} is not usable: {' '.join(str(err).split())}"
        ) from None


def start_local_postgres(data_dir: Path | str) -> str:
    """Start (or reuse) the local server on ``data_dir``; return its URL, with pgvector enabled."""
    data_dir = _resolve(data_dir)
    status = local_postgres_status(data_dir)
    if status["ready"]:
        url = str(status["url"])
    else:
        url = _start(data_dir)
    _create_extension(url)
    return url


def _start(data_dir: Path) -> str:
    pgserver = _pgserver()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(exist_ok=True)
    try:
        # the constructor (unlike get_server, which caches handles per process) re-checks the
        # data directory: it initialises it if needed and starts the server unless one runs
        pgserver.PostgresServer(data_dir, cleanup_mode=None)
    except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as err:
        raise StoreUnavailable(
            f"could not start PostgreSQL in {data_dir} ({type(err).__name__}: {' '.join(str(err).split())}); "
            f"see {data_dir / 'log'}"
        ) from None
    info = _postmaster(data_dir)
    if info is None or info["status"] != "ready":
        raise StoreUnavailable(f"PostgreSQL in {data_dir} did not become ready; see {data_dir / 'log'}")
    return _url(info)


def stop_local_postgres(data_dir: Path | str) -> bool:
    """Stop the local server on ``data_dir``. True if one was running (and is now stopped)."""
    data_dir = _resolve(data_dir)
    info = _postmaster(data_dir)
    if info is None or not _process_alive(info["pid"]):
        return False
    try:
        _pgserver().pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=data_dir, user=_system_user(), timeout=STOP_TIMEOUT_S
        )
    except (subprocess.SubprocessError, OSError) as err:
        _log.warning("pg_ctl stop failed (%s); signalling postgres %d directly", err, info["pid"])
        _signal_stop(info["pid"])
    return True


def _signal_stop(pid: int) -> None:
    """Fast shutdown by signal (SIGINT), then SIGKILL if it has not exited in time."""
    import psutil

    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGINT)
        process.wait(STOP_TIMEOUT_S)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        process.kill()
