"""What the service served and what came back: every context request and its outcome, durably, idempotent on the
request id. SQLite in WAL mode by default (one file, safe for several threads and processes); PostgreSQL when
`serve.feedback_db` is a postgresql:// URL (`open_feedback_store`), for several service processes on several
machines.

    requests   request_id (primary key), when, the arm and model version that served it, the task, the context,
               its sections and cited chunk ids, the user or session it was served to (when given), the
               upstream's reply (proxy requests), the time to serve the context, the experiment that assigned it
    feedback   request_id (primary key, one outcome per request), when, passed, the tests' counts, accepted

Recording the same feedback twice is a no-op that says so (`duplicate`); different feedback for a request that
already has some is refused (`FeedbackConflict`), never overwritten; feedback for an unknown request is refused
(`UnknownRequest`). These records are what Phase 4's experiments and retraining read.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from cet.errors import CetError
from cet.sqlite_wal import connect_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY, at REAL NOT NULL, arm TEXT NOT NULL, model_version TEXT NOT NULL,
    task TEXT NOT NULL, context TEXT NOT NULL, sections TEXT NOT NULL, chunk_ids TEXT NOT NULL,
    unit TEXT NOT NULL DEFAULT '', reply TEXT, latency_ms REAL, experiment TEXT);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT PRIMARY KEY REFERENCES requests(request_id), at REAL NOT NULL, passed INTEGER,
    tests TEXT NOT NULL, accepted INTEGER, compiled INTEGER, security_findings INTEGER);
"""
# PostgreSQL: the same columns; `seq` keeps the order of arrival (SQLite's rowid does that there)
PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq BIGSERIAL UNIQUE, request_id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, arm TEXT NOT NULL,
    model_version TEXT NOT NULL, task TEXT NOT NULL, context TEXT NOT NULL, sections TEXT NOT NULL,
    chunk_ids TEXT NOT NULL, unit TEXT NOT NULL DEFAULT '', reply TEXT, latency_ms DOUBLE PRECISION,
    experiment TEXT);
CREATE TABLE IF NOT EXISTS feedback (
    seq BIGSERIAL UNIQUE, request_id TEXT PRIMARY KEY REFERENCES requests(request_id),
    at DOUBLE PRECISION NOT NULL, passed INTEGER, tests TEXT NOT NULL, accepted INTEGER, compiled INTEGER,
    security_findings INTEGER);
"""
COLUMNS = "(request_id, at, arm, model_version, task, context, sections, chunk_ids, unit, reply, latency_ms, " \
          "experiment)"
FEEDBACK_COLUMNS = "(request_id, at, passed, tests, accepted, compiled, security_findings)"


def is_postgres(where: str | Path) -> bool:
    return str(where).startswith(("postgresql://", "postgres://"))


def store_exists(where: str | Path) -> bool:
    """Whether there is a store to read at `where` (a PostgreSQL URL is taken as one; its server says otherwise)."""
    return is_postgres(where) or Path(where).is_file()


def open_feedback_store(where: str | Path) -> FeedbackStore:
    """The store at `where`: a PostgreSQL URL, else a SQLite file (created with its folder)."""
    return PostgresFeedbackStore(str(where)) if is_postgres(where) else FeedbackStore(where)


class UnknownRequest(LookupError):
    """Feedback, or a lookup, for a request id the store never served."""


class FeedbackConflict(ValueError):
    """Feedback for a request that already has different feedback."""


class FeedbackStore:
    """The SQLite store (the default); every query goes through `_rows`/`_run`, written with `?` placeholders and
    `{seq}` for the order of arrival, so the PostgreSQL store below shares them."""

    seq = "rowid"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)  # for messages and reports
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # synchronous FULL: an acknowledged outcome survives a power cut
            self._conn: Any = connect_wal(self.path, synchronous="FULL", foreign_keys=True, schema=SCHEMA,
                                          check_same_thread=False)
        except (sqlite3.Error, OSError) as e:
            raise CetError(f"cannot open the feedback store {self.path}: {e}") from None
        self._lock = threading.Lock()

    def _sql(self, sql: str) -> str:
        return sql.replace("{seq}", self.seq)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of a query (the caller holds the lock)."""
        return list(self._conn.execute(self._sql(sql), params).fetchall())

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """A write, committed; the rows it changed (the caller holds the lock)."""
        return int(self._conn.execute(self._sql(sql), params).rowcount)

    def close(self) -> None:
        self._conn.close()

    def record_request(self, *, arm: str, model_version: str, task: str, context: str, sections: list[str],
                       chunk_ids: list[str], unit: str = "", request_id: str | None = None,
                       reply: str | None = None, latency_ms: float | None = None,
                       experiment: str | None = None) -> str:
        """Store a served context (and, through the proxy, the upstream's reply); returns its request id (a new one
        unless given)."""
        request_id = request_id or uuid.uuid4().hex
        with self._lock:
            self._run(f"INSERT INTO requests {COLUMNS} VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                      (request_id, time.time(), arm, model_version, task, context, json.dumps(sections),
                       json.dumps(chunk_ids), unit, reply, latency_ms, experiment))
        return request_id

    def set_reply(self, request_id: str, reply: str) -> None:
        """The upstream's reply for a request recorded before it came (the proxy records first, then streams)."""
        with self._lock:
            self._run("UPDATE requests SET reply=? WHERE request_id=?", (reply, request_id))

    def outcomes(self, experiment: str | None) -> list[tuple[str, bool, str]]:
        """(arm, passed, unit) of every outcome with a verdict for a request the experiment assigned (None: every
        request), in the order they were recorded (traffic outside the experiment, MCP calls included, is not part
        of it). The unit is the user or session id, or the request's own id when none was given."""
        where, params = ("AND r.experiment=?", (experiment,)) if experiment is not None else ("", ())
        with self._lock:
            rows = self._rows("SELECT r.arm, f.passed, CASE WHEN r.unit='' THEN r.request_id ELSE r.unit END "
                              "FROM feedback f JOIN requests r USING (request_id) "
                              f"WHERE f.passed IS NOT NULL {where} ORDER BY f.{{seq}}", params)
        return [(arm, bool(passed), unit) for arm, passed, unit in rows]

    def served_outcomes(self) -> list[dict[str, Any]]:
        """Every served context with a verdict, oldest first: request id, arm, model version, task, context, the
        user or session, and whether the code passed (what retraining learns from)."""
        with self._lock:
            rows = self._rows("SELECT r.request_id, r.arm, r.model_version, r.task, r.context, r.unit, f.passed "
                              "FROM requests r JOIN feedback f USING (request_id) WHERE f.passed IS NOT NULL "
                              "ORDER BY r.{seq}")
        keys = ("request_id", "arm", "model_version", "task", "context", "unit", "passed")
        return [{**dict(zip(keys, row, strict=True)), "passed": bool(row[6])} for row in rows]

    def requests_by_arm(self) -> dict[str, int]:
        with self._lock:
            return {arm: int(n) for arm, n in self._rows("SELECT arm, COUNT(*) FROM requests GROUP BY arm")}

    def record_feedback(self, request_id: str, passed: bool | None, tests: dict[str, Any] | None,
                        accepted: bool | None, compiled: bool | None = None,
                        security_findings: int | None = None) -> dict[str, Any]:
        """Store a request's outcome once; returns it with `duplicate` (True when it was already there, alike)."""
        row = (None if passed is None else int(passed), json.dumps(tests or {}, sort_keys=True),
               None if accepted is None else int(accepted), None if compiled is None else int(compiled),
               security_findings)
        with self._lock:
            if not self._rows("SELECT 1 FROM requests WHERE request_id=?", (request_id,)):
                raise UnknownRequest(f"no request {request_id!r} was served")
            inserted = self._run(f"INSERT INTO feedback {FEEDBACK_COLUMNS} VALUES (?,?,?,?,?,?,?) "
                                 "ON CONFLICT (request_id) DO NOTHING", (request_id, time.time(), *row))
            stored = self._rows("SELECT passed, tests, accepted, compiled, security_findings FROM feedback "
                                "WHERE request_id=?", (request_id,))[0]
        if not inserted and tuple(stored) != row:
            raise FeedbackConflict(f"request {request_id!r} already has different feedback")
        return {**self.feedback(request_id), "duplicate": not inserted}

    def feedback(self, request_id: str) -> dict[str, Any]:
        """What was recorded for a request: the request and its feedback (None when none came yet)."""
        with self._lock:
            request = next(iter(self._rows("SELECT request_id, at, arm, model_version, sections, chunk_ids "
                                           "FROM requests WHERE request_id=?", (request_id,))), None)
            outcome = next(iter(self._rows("SELECT at, passed, tests, accepted, compiled, security_findings "
                                           "FROM feedback WHERE request_id=?", (request_id,))), None)
        if request is None:
            raise UnknownRequest(f"no request {request_id!r} was served")
        return {"request_id": request[0], "served_at": request[1], "arm": request[2], "model_version": request[3],
                "sections": json.loads(request[4]), "chunk_ids": json.loads(request[5]),
                "feedback": None if outcome is None else {
                    "at": outcome[0], "passed": None if outcome[1] is None else bool(outcome[1]),
                    "tests": json.loads(outcome[2]), "accepted": None if outcome[3] is None else bool(outcome[3]),
                    "compiled": None if outcome[4] is None else bool(outcome[4]), "security_findings": outcome[5]}}

    def arm_signals(self, arm: str, last: int) -> dict[str, list[Any]]:
        """The guardrails' inputs for an arm's `last` requests: latencies, and of their outcomes whether the code
        compiled and how many security findings it had (None where not reported)."""
        with self._lock:
            rows = self._rows(
                "SELECT r.latency_ms, f.compiled, f.security_findings FROM requests r LEFT JOIN feedback f "
                "USING (request_id) WHERE r.arm=? ORDER BY r.{seq} DESC LIMIT ?", (arm, last))
        return {"latency_ms": [r[0] for r in rows if r[0] is not None],
                "compiled": [bool(r[1]) for r in rows if r[1] is not None],
                "security_findings": [int(r[2]) for r in rows if r[2] is not None]}

    def window(self, n: int, newest: bool) -> list[tuple[str, bool | None]]:
        """(task, passed) of the first or the last `n` requests served, oldest first (passed: None with no
        verdict)."""
        order = "DESC" if newest else "ASC"
        with self._lock:
            rows = self._rows(f"SELECT r.task, f.passed FROM requests r LEFT JOIN feedback f USING "
                              f"(request_id) ORDER BY r.{{seq}} {order} LIMIT ?", (n,))
        rows = rows[::-1] if newest else rows
        return [(task, None if passed is None else bool(passed)) for task, passed in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            requests = self._rows("SELECT COUNT(*) FROM requests")[0][0]
            feedback = self._rows("SELECT COUNT(*) FROM feedback")[0][0]
        return {"requests": int(requests), "feedback": int(feedback)}


class PostgresFeedbackStore(FeedbackStore):
    """The same store in PostgreSQL (psycopg, autocommit: every write committed before it is acknowledged)."""

    seq = "seq"

    def __init__(self, url: str) -> None:  # noqa: D107 - no SQLite file: the parent's set-up is not called
        from cet.config import mask_url

        self._url = url
        self.where = mask_url(url)  # for messages and reports: never the password
        self.path = Path(self.where)
        self._lock = threading.Lock()
        self._conn = self._connect()

    def _connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(self._url, autocommit=True)
            conn.execute(PG_SCHEMA)
        except psycopg.Error as e:
            raise CetError(f"cannot open the feedback store at {self.where}: {' '.join(str(e).split())[:300]}") \
                from None
        return conn

    def _sql(self, sql: str) -> str:
        return super()._sql(sql).replace("?", "%s")

    def _cursor_do(self, sql: str, params: tuple[Any, ...], read: bool) -> Any:
        """One statement; a connection lost (a database restart, a dropped network) is opened again once."""
        import psycopg

        for attempt in (0, 1):
            try:
                with self._conn.cursor() as cursor:
                    cursor.execute(self._sql(sql), params)
                    return list(cursor.fetchall()) if read else int(cursor.rowcount)
            except psycopg.OperationalError:
                if attempt or not self._conn.closed and not self._conn.broken:
                    raise
                self._conn = self._connect()
        raise AssertionError("unreachable")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._cursor_do(sql, params, read=True)  # type: ignore[no-any-return]

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return self._cursor_do(sql, params, read=False)  # type: ignore[no-any-return]
