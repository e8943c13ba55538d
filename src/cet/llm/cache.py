"""A persistent response cache: the same request to the same model with the same parameters is answered once.

`ResponseCache(path)` is one SQLite file in WAL mode; every insert is its own committed transaction, so a
crash or Ctrl-C loses at most the reply being written, never one already cached. The key is the sha256 of
the model's catalog name, its provider, `GenerationParams.cache_key_part()` (everything of the parameters
that changes the reply: not the timeout) and the messages (or the prompt), as canonical JSON. A hit returns
the stored `Completion` with `cached=True`. A row that cannot be read back (hand-edited, truncated, written
by an incompatible version) counts as a miss, is counted in `stats()["corrupt"]`, and is overwritten by the
next reply for that key. `ResponseCache(None)` is a disabled cache: every `get` misses, `put` does nothing.

One connection is shared by all threads of a process behind a lock; several processes may share the file
(SQLite's own locking, with a busy timeout).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from cet.llm.base import Completion, GenerationParams, LLMError, Message
from cet.sqlite_wal import connect_wal

SCHEMA_VERSION = 1
_FIELDS = {f.name for f in dataclasses.fields(Completion)}
_REQUIRED = {"text", "model", "provider", "prompt_tokens", "completion_tokens", "latency_s"}


def request_key(model: str, provider: str, params: GenerationParams, request: list[Message] | str) -> str:
    """The cache key of one request: sha256 over canonical JSON of model, provider, parameters and input."""
    if isinstance(request, str):
        body: dict[str, Any] = {"prompt": request}
    else:
        body = {"messages": [[m.role, m.content] for m in request]}
    payload = {"v": SCHEMA_VERSION, "model": model, "provider": provider, "params": params.cache_key_part(), **body}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._stats = {"hits": 0, "misses": 0, "writes": 0, "corrupt": 0, "read_errors": 0,
                       "write_errors": 0}
        self._conn: sqlite3.Connection | None = None
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_wal(self.path, check_same_thread=False, schema=(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, provider TEXT "
                "NOT NULL, created REAL NOT NULL, completion TEXT NOT NULL)"))
        except (sqlite3.DatabaseError, OSError) as e:
            raise LLMError(
                f"cannot open the LLM response cache {self.path}: {e} (delete the file, or set llm.cache_path "
                "to another file or to null)"
            ) from None
        self._conn = conn

    @property
    def enabled(self) -> bool:
        return self._conn is not None

    key = staticmethod(request_key)

    def get(self, key: str) -> Completion | None:
        """The stored reply for `key` (with `cached=True`), or None: a miss, a disabled cache or a bad row."""
        if self._conn is None:
            return None
        with self._lock:
            try:
                row = self._conn.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
            except sqlite3.DatabaseError:  # locked past the busy timeout, or a damaged page: a miss
                self._stats["misses"] += 1
                self._stats["read_errors"] += 1
                return None
            completion = _decode(row[0]) if row is not None else None
            if completion is None:
                self._stats["misses"] += 1
                self._stats["corrupt"] += int(row is not None)
                return None
            self._stats["hits"] += 1
            return completion

    def put(self, key: str, completion: Completion) -> bool:
        """Store a reply (committed at once). False when the cache is disabled or the write failed: a cache
        that cannot write does not stop the run, it only stops saving."""
        if self._conn is None:
            return False
        data = {k: v for k, v in dataclasses.asdict(completion).items() if k != "cached"}
        text = json.dumps(data, ensure_ascii=False, default=str)
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO responses (key, model, provider, created, completion) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, completion.model, completion.provider, time.time(), text),
                )
            except sqlite3.DatabaseError:
                self._stats["write_errors"] += 1
                return False
            self._stats["writes"] += 1
            return True

    def lookup(self, model: str, provider: str, params: GenerationParams,
               request: list[Message] | str) -> tuple[str, Completion | None]:
        key = request_key(model, provider, params, request)
        return key, self.get(key)

    def __len__(self) -> int:
        if self._conn is None:
            return 0
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"enabled": self.enabled, "path": str(self.path) if self.path else None, **self._stats}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode(text: Any) -> Completion | None:
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not _REQUIRED <= data.keys():
            return None
        completion = Completion(**{k: v for k, v in data.items() if k in _FIELDS and k != "cached"}, cached=True)
        if not isinstance(completion.text, str) or not isinstance(completion.extra, dict):
            return None
        completion.prompt_tokens = int(completion.prompt_tokens)
        completion.completion_tokens = int(completion.completion_tokens)
        completion.latency_s = float(completion.latency_s)
        completion.cost_usd = float(completion.cost_usd or 0.0)
        return completion
    except (TypeError, ValueError):
        return None
