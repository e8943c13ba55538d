"""The adversarial suite: each hostile solution is contained, reported with the right exit reason, and
leaves the host as it was (no files written, nothing read, no connection made, no process left)."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.sandbox_helpers import bwrap_or_skip, exec_config, loopback_listener, make_task, sandbox_processes

from cet.execution.executor import Executor
from cet.execution.pool import WarmPool

CALL_IT = """
from solution import attack

def test_attack():
    attack()
"""


@pytest.fixture(scope="module", params=["one-shot", "warm-pool"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Every attack runs against both backends: a fresh sandbox per run, and the warm fork-server pool."""
    bwrap_or_skip()
    cfg = exec_config("bubblewrap")
    if request.param == "one-shot":
        yield Executor(cfg)
        return
    with WarmPool(cfg) as pool:
        yield Executor(cfg, backend=pool)


def run_attack(executor: Executor, body: str, tests: str = CALL_IT):
    result = executor.run(make_task(tests, ["test_attack"]), textwrap.dedent(body))
    assert sandbox_processes(executor) == [], "a sandboxed process outlived its run"
    assert result.isolation == "bubblewrap" and result.isolation_warning is None
    assert not result.passed
    return result


def test_a_correct_solution_passes(executor: Executor) -> None:
    task = make_task("from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n", ["test_add"])
    result = executor.run(task, "def add(a, b):\n    return a + b\n")
    assert result.passed and result.exit_reason == "ok"
    assert (result.tests.total, result.tests.passed, result.tests.failed) == (1, 1, 0)
    assert result.resources is not None and result.resources.peak_memory_mb > 0


def test_fork_bomb_is_held_at_the_process_limit(executor: Executor) -> None:
    result = run_attack(executor, """
        import os

        def attack():
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """)
    assert result.exit_reason == "timeout"
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


def test_memory_bomb_hits_the_address_space_limit(executor: Executor) -> None:
    result = run_attack(executor, """
        def attack():
            hoard = []
            while True:
                hoard.append(bytearray(16 * 1024 * 1024))
    """)
    assert result.exit_reason == "memory"
    assert result.tests.cases[0].error_type == "MemoryError"


def test_infinite_loop_times_out(executor: Executor) -> None:
    result = run_attack(executor, """
        def attack():
            while True:
                pass
    """)
    assert result.exit_reason == "timeout"
    assert result.resources.wall_s < 15


def test_ignoring_sigterm_does_not_help(executor: Executor) -> None:
    result = run_attack(executor, """
        import signal

        def attack():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            while True:
                pass
    """)
    assert result.exit_reason == "timeout"


def test_busy_child_left_behind_is_killed(executor: Executor) -> None:
    task = make_task("""
        from solution import spawn

        def test_spawn():
            assert spawn() > 0
    """, ["test_spawn"])
    result = executor.run(task, textwrap.dedent("""
        import os

        def spawn():
            pid = os.fork()
            if pid == 0:
                os.setsid()
                while True:
                    pass
            return pid
    """))
    assert result.passed and result.exit_reason == "ok"  # the tests passed; the orphan must still die
    assert sandbox_processes(executor) == []


def test_stdout_flood_hits_the_output_cap(executor: Executor) -> None:
    result = run_attack(executor, """
        import sys

        def attack():
            while True:
                sys.stdout.write("x" * 4096)
    """)
    assert result.exit_reason == "output-limit"
    assert result.output_truncated
    assert len(result.stdout_tail) <= 64 * 1024


def test_writes_outside_the_work_dir_do_not_reach_the_host(executor: Executor, tmp_path: Path) -> None:
    project_file = Path(__file__).resolve().parent.parent / "SANDBOX_WAS_HERE"
    targets = ["/usr/sandbox_was_here", "/etc/sandbox_was_here", str(project_file),
               str(tmp_path / "sandbox_was_here"), "/opt/cet/runtime/sandbox_was_here"]
    result = run_attack(executor, f"""
        def attack():
            written = []
            for path in {targets!r}:
                try:
                    with open(path, "w") as f:
                        f.write("pwned")
                    written.append(path)
                except OSError:
                    pass
            assert written, "nothing outside the work dir could be written"
    """)
    assert result.exit_reason == "failed"
    assert "nothing outside the work dir could be written" in (result.tests.cases[0].message or "")
    for target in targets:
        assert not Path(target).exists()


def test_files_outside_cannot_be_read(executor: Executor, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4711")
    project = Path(__file__).resolve().parent.parent
    paths = ["/etc/shadow", "/etc/passwd", str(secret), str(project / "README.md"),
             str(project / "src" / "cet" / "config.py"), "/root/.bash_history", "/home"]
    result = run_attack(executor, f"""
        import os

        def attack():
            seen = {{}}
            for path in {paths!r}:
                try:
                    seen[path] = os.listdir(path) if os.path.isdir(path) else open(path).read()[:200]
                except OSError:
                    pass
            print("READ:", seen)
            assert seen, "nothing outside could be read"
    """)
    assert result.exit_reason == "failed"
    assert "nothing outside could be read" in (result.tests.cases[0].message or "")
    everything = result.model_dump_json()
    assert "TOP-SECRET-4711" not in everything
    assert "root:" not in everything


def test_no_network_even_to_loopback(executor: Executor) -> None:
    with loopback_listener() as (port, listener):
        result = run_attack(executor, f"""
            import socket

            def attack():
                with socket.create_connection(("127.0.0.1", {port}), timeout=2) as s:
                    s.sendall(b"exfiltrated")
        """)
        assert result.exit_reason == "failed"
        assert result.tests.cases[0].error_type in {"ConnectionRefusedError", "OSError", "TimeoutError"}
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected


def test_exiting_the_interpreter_mid_run_is_a_crash(executor: Executor) -> None:
    result = run_attack(executor, """
        import os

        def attack():
            os._exit(0)
    """)
    assert result.exit_reason == "crash"
    assert result.tests.passed == 0


def test_runs_as_an_unprivileged_user_without_capabilities(executor: Executor) -> None:
    task = make_task("""
        import os
        from pathlib import Path

        def test_identity():
            assert os.getuid() != 0
            status = Path("/proc/self/status").read_text()
            cap_eff = next(line for line in status.splitlines() if line.startswith("CapEff:"))
            assert int(cap_eff.split()[1], 16) == 0
    """, ["test_identity"])
    result = executor.run(task, "")
    assert result.passed, result.tests.cases[0].message
    if os.getuid() == 0:
        assert sandbox_processes(executor) == []


def test_filling_a_file_hits_the_file_size_limit(executor: Executor) -> None:
    result = run_attack(executor, """
        def attack():
            with open("big.bin", "wb") as f:
                while True:
                    f.write(b"x" * (1 << 20))
    """)
    assert result.exit_reason == "output-limit"
