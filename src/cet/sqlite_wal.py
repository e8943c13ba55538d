"""Open a SQLite file in WAL mode when other processes may be opening it at the same moment.

`PRAGMA journal_mode=WAL` on a file that another connection is creating or switching can answer
"database is locked" at once, without waiting for the busy timeout (SQLite does not call the busy handler
there). Several Ray workers opening one fresh LLM cache hit exactly that. `connect_wal` retries the switch
and the schema until `timeout` seconds have passed, then lets the last error through.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def connect_wal(path: str | Path, *, synchronous: str = "NORMAL", schema: str = "", timeout: float = 30.0,
                check_same_thread: bool = True, foreign_keys: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL journaling, `synchronous` set and `schema` (a script) run."""
    if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=check_same_thread)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            if foreign_keys:
                conn.execute("PRAGMA foreign_keys=ON")
            if schema:
                conn.executescript(schema)
            return conn
        except sqlite3.OperationalError as e:
            conn.close()
            busy = "locked" in str(e) or "busy" in str(e)
            if not busy or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except BaseException:
            conn.close()
            raise
