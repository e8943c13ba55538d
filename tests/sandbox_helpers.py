"""Helpers shared by the execution tests: tasks built in place, limits tight enough to run fast."""

from __future__ import annotations

import contextlib
import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cet.config import ExecConfig, SandboxLimits
from cet.execution.sandbox import UID_RANGE, bubblewrap_status
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
    """Processes on the host still running as a sandbox uid (there must be none after a run), leaving out
    the resident processes of a warm pool's workers when `executor` uses one."""
    resident = getattr(getattr(executor, "backend", None), "resident_pids", set)()
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        uid_line = next((line for line in text.splitlines() if line.startswith("Uid:")), "")
        uids = [int(u) for u in uid_line.split()[1:]]
        if any(SANDBOX_UID <= u < SANDBOX_UID + UID_RANGE for u in uids) and int(status.parent.name) not in resident:
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line.split()[1] for line in text.splitlines() if line.startswith("State:")), "?")
            if state in ("Z", "X"):
                continue  # a zombie runs nothing; the host's init reaps it
            found.append(f"{status.parent.name} [{state}] {cmdline[:120]}")
    return found


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
