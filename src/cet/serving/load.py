"""A load test of a running context service: concurrent clients that each ask for a context and report its
outcome, round after round, with the latency of every /v1/context call. A client whose call fails (the server
was killed, the connection refused) retries the same call until the service answers again: a context is asked
for again (its request was never acknowledged), feedback is sent again for the same request id (the service
records it once). What the clients were told is kept, so the store can be checked afterwards: every acknowledged
outcome there, with its verdict, and nothing stored that no client was told of (`check_store`).
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)  # of every /v1/context call that was answered
    acknowledged: dict[str, bool] = field(default_factory=dict)  # request id -> the outcome the service took
    retries: int = 0  # calls made again after a failure
    duplicates_reported: int = 0  # feedback the service said it already had (a retry after a lost answer)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # calls that never succeeded

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        return {"contexts": len(self.latencies_ms), "feedback_acknowledged": len(self.acknowledged),
                "p50_ms": float(np.nanpercentile(lat, 50)), "p95_ms": float(np.nanpercentile(lat, 95)),
                "throughput_per_s": len(self.latencies_ms) / self.seconds if self.seconds else 0.0,
                "retries": self.retries, "duplicates_reported": self.duplicates_reported,
                "errors": len(self.errors), "seconds": round(self.seconds, 2)}


def run_load(base_url: str, clients: int, rounds: int, *, token: str | None = None, deadline_s: float = 120.0,
             during: Callable[[int], None] | None = None, task: str = "Write `f{n}(x)` returning x plus {n}."
             ) -> LoadResult:
    """`clients` threads, each `rounds` of (POST /v1/context, POST /v1/feedback). `during(done)` is called by the
    first client after each of its rounds (to kill and restart the server mid-load). A call is retried until it
    succeeds or `deadline_s` has passed since the load began (then it is counted in `errors`)."""
    import httpx

    result, lock = LoadResult(), threading.Lock()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    started = time.perf_counter()

    def call(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        first, error = True, f"{path}: deadline"
        while time.perf_counter() - started < deadline_s:
            try:
                began = time.perf_counter()
                answer = client.post(f"{base_url}{path}", json=body, headers=headers, timeout=30.0)
                if answer.status_code == 200:
                    if path == "/v1/context":
                        with lock:
                            result.latencies_ms.append((time.perf_counter() - began) * 1000)
                    return answer.json()
                error = f"{path}: {answer.status_code} {answer.text[:200]}"
                if answer.status_code < 500:
                    break  # the service refused it: retrying the same call cannot help
            except httpx.HTTPError as e:
                error = f"{path}: {type(e).__name__}"
            if not first:
                time.sleep(0.05)
            first = False
            with lock:
                result.retries += 1
        with lock:
            result.errors.append(error)
        return None

    def client_loop(index: int) -> None:
        with httpx.Client() as client:
            for n in range(rounds):
                served = call(client, "/v1/context", {"task": task.format(n=n), "user": f"client{index}"})
                if served is None:
                    continue
                passed = (index + n) % 3 == 0
                recorded = call(client, "/v1/feedback", {"request_id": served["request_id"], "passed": passed,
                                                         "compiled": True})
                if recorded is not None:
                    with lock:
                        result.acknowledged[served["request_id"]] = passed
                        result.duplicates_reported += int(bool(recorded.get("duplicate")))
                if index == 0 and during is not None:
                    during(n + 1)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - started
    return result


def check_store(db_path: str, acknowledged: dict[str, bool]) -> dict[str, Any]:
    """The store against what the clients were told (read-only): acknowledged outcomes missing (`lost`) or stored
    with another verdict (`changed`), outcomes stored that no client was told of (`unacknowledged`), and contexts
    stored with no outcome (`contexts_without_outcome`: served while the server died, asked for again). An outcome
    cannot be stored twice: the request id is the feedback table's primary key; a retried report is answered
    `duplicate` (counted by the load)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = dict(conn.execute("SELECT request_id, passed FROM feedback").fetchall())
        requests = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    finally:
        conn.close()
    lost = [r for r in acknowledged if r not in rows]
    changed = [r for r, p in acknowledged.items() if r in rows and rows[r] != int(p)]
    return {"acknowledged": len(acknowledged), "stored": len(rows), "requests_stored": requests, "lost": len(lost),
            "changed": len(changed), "unacknowledged": len(rows.keys() - acknowledged.keys()),
            "contexts_without_outcome": requests - len(rows)}


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(base_url: str, seconds: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll `base_url`/health until it answers 200 (True), `alive()` turns false or `seconds` pass (False)."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False


def start_server(command: list[str], port: int, env: dict[str, str], log: Path, seconds: float
                 ) -> subprocess.Popen:
    """`command` (a `cet serve ... --port PORT`) started with its output appended to `log`, once its /health
    answers; a CetError with the log's end when it exits or does not answer within `seconds`."""
    from cet.errors import CetError

    server = subprocess.Popen(command, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT)
    if wait_until_up(f"http://127.0.0.1:{port}", seconds, alive=lambda: server.poll() is None):
        return server
    server.kill()
    server.wait()
    raise CetError(f"cet serve did not come up:\n{log.read_text()[-2000:]}")

