"""The warm pool: jobs of one worker cannot see or touch each other, a job that kills its worker is a
crash and the worker is replaced, and verdicts match the one-shot sandbox's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.sandbox_helpers import bwrap_or_skip, exec_config, make_task, sandbox_processes

from cet.execution.executor import Executor
from cet.execution.pool import WarmPool

CHECK = """
from solution import check

def test_check():
    assert check()
"""


@pytest.fixture(scope="module")
def pooled() -> Iterator[Executor]:
    bwrap_or_skip()
    cfg = exec_config("bubblewrap", workers=1)
    with WarmPool(cfg) as pool:
        yield Executor(cfg, backend=pool)
    assert sandbox_processes(pooled) == []


def test_files_left_by_one_job_are_gone_for_the_next(pooled: Executor) -> None:
    leave = "import os\n\ndef check():\n    open('/tmp/left.txt', 'w').write('x')\n" \
            "    open(os.path.join(os.getcwd(), 'left.txt'), 'w').write('x')\n    return True\n"
    assert pooled.run(make_task(CHECK, ["test_check"]), leave).passed
    look = "import glob\nimport os\n\ndef check():\n    return not os.path.exists('/tmp/left.txt') " \
           "and not glob.glob('/work/*/left.txt')\n"
    assert pooled.run(make_task(CHECK, ["test_check"]), look).passed


def test_processes_left_by_one_job_are_gone_for_the_next(pooled: Executor) -> None:
    spawn = "import os\nimport time\n\ndef check():\n    if os.fork() == 0:\n        os.setsid()\n" \
            "        time.sleep(600)\n    return True\n"
    assert pooled.run(make_task(CHECK, ["test_check"]), spawn).passed
    count = "import os\n\ndef check():\n    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n" \
            "    return len(pids) == 3, pids\n"  # init, the server, this job
    result = pooled.run(make_task(CHECK.replace("assert check()", "ok, pids = check()\n    assert ok, pids"),
                                  ["test_check"]), count)
    assert result.passed, result.tests.cases[0].message


def test_a_job_that_kills_its_worker_is_a_crash_and_the_worker_comes_back(pooled: Executor) -> None:
    regicide = "import os\nimport signal\n\ndef check():\n    os.kill(os.getppid(), signal.SIGKILL)\n" \
               "    return True\n"
    result = pooled.run(make_task(CHECK, ["test_check"]), regicide)
    assert not result.passed
    assert result.exit_reason in {"crash", "killed"}
    assert pooled.run(make_task(CHECK, ["test_check"]), "def check():\n    return True\n").passed


def test_the_server_cannot_be_traced_or_read_by_a_job(pooled: Executor) -> None:
    peek = "import os\n\ndef check():\n    try:\n        open(f'/proc/{os.getppid()}/mem', 'rb').read(1)\n" \
           "    except OSError:\n        return True\n    return False\n"
    assert pooled.run(make_task(CHECK, ["test_check"]), peek).passed


def test_same_verdicts_as_one_shot(pooled: Executor) -> None:
    one_shot = Executor(exec_config("bubblewrap", workers=1))
    tests = "from solution import f\n\ndef test_a():\n    assert f(1) == 2\n\ndef test_b():\n    assert f(2) == 4\n"
    task = make_task(tests, ["test_a", "test_b"])
    for solution in ("def f(x):\n    return 2 * x\n", "def f(x):\n    return x + 1\n", "def f(x)\n",
                     "raise ImportError('no')\n", "def f(x):\n    while True:\n        pass\n"):
        a, b = pooled.run(task, solution), one_shot.run(task, solution)
        assert (a.passed, a.exit_reason, a.tests.passed, a.tests.failed) == \
               (b.passed, b.exit_reason, b.tests.passed, b.tests.failed), solution
