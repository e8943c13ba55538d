"""JavaScript through the real sandbox: `node --test` with runtime/node_reporter.mjs, verdicts like Python's."""

from __future__ import annotations

import shutil
import textwrap

import pytest
from tests.sandbox_helpers import bwrap_or_skip, exec_config, loopback_listener, make_task, sandbox_processes

from cet.execution.executor import Executor
from cet.execution.languages import JavaScriptRunner, runner_for
from cet.execution.result import ExecutionResult
from cet.execution.sandbox import SandboxPaths
from cet.execution.tasks import CodingTask

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

ADD_TESTS = """
const test = require('node:test');
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { add } = require('./solution.js');

test('small', () => {
  assert.equal(add(1, 2), 3);
});

test('negative', () => {
  assert.equal(add(-1, -2), -3);
});

describe('edge cases', () => {
  it('zero', () => {
    assert.equal(add(0, 0), 0);
  });
});
"""
ADD_NAMES = ["small", "negative", "edge cases > zero"]
GOOD = "function add(a, b) {\n  return a + b;\n}\n\nmodule.exports = { add };\n"

CALL_ATTACK = """
const test = require('node:test');
const { attack } = require('./solution.js');

test('attack', async () => {
  await attack();
});
"""


def js_task(tests: str = ADD_TESTS, names: list[str] | None = None) -> CodingTask:
    return make_task(tests, ADD_NAMES if names is None else names, language="javascript")


def attack(executor: Executor, solution: str) -> ExecutionResult:
    return executor.run(js_task(CALL_ATTACK, ["attack"]), textwrap.dedent(solution))


@pytest.fixture(scope="module")
def executor() -> Executor:
    bwrap_or_skip()
    return Executor(exec_config("bubblewrap"))


def test_runner_is_registered_with_node_and_a_heap_cap() -> None:
    cfg = exec_config("bubblewrap")
    runner = runner_for("javascript")
    assert isinstance(runner, JavaScriptRunner)
    assert runner.memory_mb(cfg) == cfg.limits.js_memory_mb
    task = js_task()
    assert runner.files(task, GOOD, cfg) == {"solution.js": GOOD, "solution.test.js": task.tests}
    paths = SandboxPaths(work="/work", runtime="/rt", site="", python="python3")
    argv = runner.command(task, paths, cfg)
    assert argv[0] == shutil.which("node") and argv[-1] == "solution.test.js"
    assert "--test" in argv and "/rt/node_reporter.mjs" in argv
    assert f"--max-old-space-size={cfg.limits.memory_mb}" in argv  # 512 MB: well inside 8192 MB of address space
    small = exec_config("bubblewrap", js_memory_mb=1280)
    assert f"--max-old-space-size={1280 - 1024}" in runner.command(task, paths, small)


def test_correct_solution_passes_with_every_test_counted(executor: Executor) -> None:
    result = executor.run(js_task(), GOOD)
    assert result.passed and result.exit_reason == "ok", result.detail
    assert result.language == "javascript" and result.compile.ok
    assert (result.tests.total, result.tests.passed, result.tests.failed) == (3, 3, 0)
    assert [c.name for c in result.tests.cases] == ADD_NAMES  # the nested test is "suite > test"
    assert all(c.outcome == "passed" and c.duration_s is not None for c in result.tests.cases)
    assert result.resources.cpu_s > 0 and result.resources.peak_memory_mb > 20  # the test process, not bwrap
    assert result.reward_terms["tests"] == 1


def test_partly_wrong_solution_counts_each_test(executor: Executor) -> None:
    result = executor.run(js_task(), "function add(a, b) {\n  return Math.abs(a + b);\n}\nmodule.exports = { add };\n")
    assert not result.passed and result.exit_reason == "failed"
    assert (result.tests.total, result.tests.passed, result.tests.failed) == (3, 2, 1)
    failed = next(c for c in result.tests.cases if c.outcome != "passed")
    assert failed.name == "negative" and failed.outcome == "failed" and failed.error_type == "AssertionError"
    assert "3 !== -3" in failed.message
    assert "solution.test.js:12" in failed.traceback_tail and "node:internal" not in failed.traceback_tail
    assert result.detail == "1 of 3 tests failed"
    assert 0 < result.reward < 1 and result.reward_terms["tests"] == pytest.approx(2 / 3)


def test_syntax_error_is_a_compile_error(executor: Executor) -> None:
    result = executor.run(js_task(), "function add(a, b) {\n  return a + b;\n}\nmodule.exports = { add ;\n")
    assert result.exit_reason == "compile-error" and not result.passed
    assert not result.compile.ok and result.compile.error.startswith("SyntaxError: Unexpected token")
    assert result.tests.passed == 0 and result.reward == 0


def test_syntax_error_raised_at_run_time_is_not_a_compile_error(executor: Executor) -> None:
    result = executor.run(js_task(), "const config = JSON.parse('nope');\nmodule.exports = { add: (a, b) => a + b };\n")
    assert result.compile.ok and result.exit_reason == "failed"
    assert "not valid JSON" in result.detail


def test_exception_at_require_fails_every_test_with_the_reason(executor: Executor) -> None:
    result = executor.run(js_task(), "throw new RangeError('broken module');\n")
    assert result.exit_reason == "failed" and result.compile.ok
    assert result.tests.total == 3 and result.tests.passed == 0
    assert all(c.outcome == "error" and "broken module" in c.message for c in result.tests.cases)
    assert "RangeError: broken module" in result.detail


def test_thrown_errors_keep_their_type(executor: Executor) -> None:
    result = executor.run(js_task(), "function add(a, b) {\n  return a.b.c;\n}\nmodule.exports = { add };\n")
    assert result.tests.passed == 0
    assert {c.error_type for c in result.tests.cases} == {"TypeError"}
    assert all("Cannot read properties" in c.message for c in result.tests.cases)


def test_infinite_loop_is_a_timeout(executor: Executor) -> None:
    result = attack(executor, "async function attack() {\n  while (true) {}\n}\nmodule.exports = { attack };\n")
    assert result.exit_reason == "timeout" and not result.passed, result.detail
    assert sandbox_processes() == []


@pytest.mark.parametrize(("hoard", "stopped_by"), [
    ("new Array(100000).fill(7)", "heap limit"),  # V8's old-space cap (--max-old-space-size), not a random crash
    ("Buffer.alloc(16 * 1024 * 1024, 1)", "MemoryError"),  # off the heap: the RangeError RLIMIT_AS causes
], ids=["v8-heap", "array-buffers"])
def test_memory_bomb_is_a_memory_verdict(hoard: str, stopped_by: str) -> None:
    bwrap_or_skip()
    # 1536 MB of address space: the heap capped at 512 MB, array buffers (off the heap) stopped by the rlimit
    executor = Executor(exec_config("bubblewrap", js_memory_mb=1536))
    result = attack(executor, f"""
        async function attack() {{
          const hoard = [];
          while (true) hoard.push({hoard});
        }}
        module.exports = {{ attack }};
    """)
    assert result.exit_reason == "memory", (result.detail, result.stderr_tail[-500:])
    case = result.tests.cases[0]
    assert not result.passed and stopped_by in f"{case.error_type} {case.message}"
    assert 100 < result.resources.peak_memory_mb < 1536  # the test process's peak, sampled by the reporter


def test_stdout_flood_is_an_output_limit(executor: Executor) -> None:
    result = attack(executor, """
        async function attack() {
          while (true) process.stdout.write('x'.repeat(4096));
        }
        module.exports = { attack };
    """)
    assert result.exit_reason == "output-limit" and result.output_truncated, result.detail


def test_timers_left_running_do_not_hang_the_run(executor: Executor) -> None:
    result = executor.run(js_task(), "setInterval(() => {}, 1000);\n" + GOOD)
    assert result.passed, result.detail


def test_no_network_even_to_loopback(executor: Executor) -> None:
    with loopback_listener() as (port, listener):
        result = attack(executor, f"""
            const net = require('node:net');

            function attack() {{
              return new Promise((resolve, reject) => {{
                const socket = net.connect({port}, '127.0.0.1', () => {{
                  socket.end('exfiltrated');
                  resolve();
                }});
                socket.on('error', reject);
              }});
            }}
            module.exports = {{ attack }};
        """)
        assert result.exit_reason == "failed"
        case = result.tests.cases[0]
        assert case.error_type == "ECONNREFUSED" and "ECONNREFUSED" in case.message
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected


def test_task_defining_a_test_that_does_not_exist_cannot_pass(executor: Executor) -> None:
    result = executor.run(js_task(names=[*ADD_NAMES, "never written"]), GOOD)
    assert not result.passed and result.tests.total == 4 and result.tests.passed == 3
    assert next(c for c in result.tests.cases if c.name == "never written").error_type == "NotRun"


def test_exiting_before_the_tests_report_cannot_pass(executor: Executor) -> None:
    result = executor.run(js_task(), "process.exit(0);\n" + GOOD)
    assert not result.passed and result.tests.passed == 0
    assert "without reporting any test" in result.detail


def test_runs_within_a_small_process_limit() -> None:
    bwrap_or_skip()
    # node --test is two node processes (runner and test file), each a handful of threads; every thread counts
    # against RLIMIT_NPROC, so V8's thread pool is kept small
    result = Executor(exec_config("bubblewrap", max_processes=20)).run(js_task(), GOOD)
    assert result.passed, result.detail


def test_weak_mode_runs_but_says_it_is_not_isolated() -> None:
    weak = Executor(exec_config("weak"))
    result = weak.run(js_task(), GOOD)
    assert result.isolation == "weak" and "NOT ISOLATED" in result.isolation_warning
    assert result.passed, result.detail
    wrong = weak.run(js_task(), "function add() {\n  return 0;\n}\nmodule.exports = { add };\n")
    assert wrong.exit_reason == "failed" and "NOT ISOLATED" in wrong.isolation_warning
