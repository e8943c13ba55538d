"""Helpers shared by the execution tests: tasks built in place, limits tight enough to run fast."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cet.config import ExecConfig, SandboxLimits
from cet.execution.sandbox import UID_LOCK_DIR, bubblewrap_status, processes_of, uids_leased
from cet.execution.tasks import CodingTask, TaskMetadata

SANDBOX_UID = 60100
TIGHT = SandboxLimits(wall_timeout_s=4, cpu_time_s=4, memory_mb=512, output_limit_kb=64, max_processes=32)


def exec_config(isolation: str = "bubblewrap", workers: int = 1, **changes) -> ExecConfig:
    return ExecConfig(isolation=isolation, limits=TIGHT.model_copy(update=changes), workers=workers,
                      sandbox_uid=SANDBOX_UID, performance=False)


def make_task(tests: str, names: list[str], task_id: str = "t/1", module: str = "solution",
              reference: str | None = None, language: str = "python") -> CodingTask:
    return CodingTask(id=task_id, language=language, statement="test task", module=module,
                      tests=textwrap.dedent(tests), test_names=names, reference_solution=reference,
                      metadata=TaskMetadata(source="test", split="train"))


def sandbox_processes(executor=None) -> list[str]:  # noqa: ANN001
    """Live processes still running as a uid this test process leased (there must be none after a run).
    A warm pool's own uids are checked too, leaving out the workers' resident processes; uids another
    process holds right now (a concurrent test run) are not ours to judge."""
    backend = getattr(executor, "backend", None)
    resident = getattr(backend, "resident_pids", set)()
    pool_uids = {worker.uid for worker in getattr(backend, "workers", [])}
    found = []
    for uid in sorted(uids_leased):
        if uid not in pool_uids and not _uid_is_free(uid):
            continue
        for pid in processes_of(uid):
            if pid in resident:
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found.append(f"{pid} (uid {uid}) {cmdline[:120]}")
    return found


def _uid_is_free(uid: int) -> bool:
    with open(UID_LOCK_DIR / f"{uid}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def bwrap_or_skip() -> None:
    ok, why = bubblewrap_status(SANDBOX_UID if os.getuid() == 0 else None)
    if not ok:
        if os.environ.get("CET_TEST_REQUIRE_BWRAP"):
            pytest.fail(f"bubblewrap is required here (CET_TEST_REQUIRE_BWRAP) but cannot run: {why}")
        pytest.skip(f"bubblewrap cannot run here: {why}")


@contextlib.contextmanager
def loopback_listener() -> Iterator[tuple[int, socket.socket]]:
    """A TCP listener on the host's 127.0.0.1 (port, socket); `accept()` times out after 0.5 s."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    try:
        yield listener.getsockname()[1], listener
    finally:
        listener.close()
