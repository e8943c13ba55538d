"""WarmPool: warm fork-server workers (pytest imported once), one bubblewrap sandbox per worker slot.

A job costs a fork and a pytest session instead of a sandbox start, an interpreter start and the
pytest import. Each worker runs as its slot's own unprivileged uid in its own namespaces; between jobs
the server kills everything else in its PID namespace and wipes the work directory and /tmp (see
runtime/fork_server.py). Jobs of one worker therefore share a sandbox one after another: slightly
weaker separation than one-shot runs (a job can kill its worker, which is then replaced and the job
reported as a crash). Tasks of other languages than Python go to the one-shot backend.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time

from cet.config import ExecConfig
from cet.errors import CetError
from cet.execution.executor import OneShotBackend
from cet.execution.languages import runner_for
from cet.execution.sandbox import (
    RUNTIME_DIR,
    OutputCollector,
    Sandbox,
    SandboxRun,
    kill_uid_processes,
    lease_uid,
    memfd,
    processes_of,
    read_all,
)
from cet.execution.tasks import CodingTask

START_TIMEOUT_S = 30.0
KILL_GRACE_S = 2.0


class _Worker:
    """One fork server in its sandbox, with its control socket."""

    def __init__(self, sandbox: Sandbox, slot: int) -> None:
        self.sandbox, self.slot = sandbox, slot
        self.lock = threading.Lock()
        self._lease = lease_uid(sandbox.uid)
        self.uid = self._lease.__enter__()  # held for the worker's life, released by close()
        self._start()

    def _start(self) -> None:
        host, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        paths = self.sandbox.paths()
        argv = [paths.python, "-I", "-S", "-B", f"{paths.runtime}/fork_server.py", str(server.fileno()),
                *paths.site.split(":")]
        self.log = tempfile.TemporaryFile()
        self.proc = self.sandbox.spawn(argv, (server.fileno(),), stderr=self.log, uid=self.uid)
        server.close()
        self.sock = host
        self.sock.settimeout(START_TIMEOUT_S)
        try:
            ready = json.loads(self.sock.recv(65536) or b"{}")
        except (TimeoutError, ValueError):
            ready = {}
        if ready.get("op") != "ready":
            self.stop()
            self.log.seek(0)
            why = self.log.read()[-2000:].decode(errors="replace").strip() or "no output"
            raise CetError(f"warm worker {self.slot} did not start: {why}")
        self.sock.settimeout(None)
        self.resident = set(processes_of(self.uid)) if self.uid is not None else set()

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.sock.close()
        kill_uid_processes(self.uid)

    def close(self) -> None:
        self.stop()
        self._lease.__exit__(None, None, None)

    def restart(self) -> None:
        self.stop()
        self._start()

    def _send(self, message: dict, fds: list[int] | None = None) -> None:
        data = json.dumps(message).encode()
        with self.lock:
            socket.send_fds(self.sock, [data], fds or [])

    def run(self, files: dict[str, bytes | str], test_file: str, memory_mb: int) -> SandboxRun:
        limits = self.sandbox.limits
        pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, result
        file_fds = [memfd(name, data.encode("utf-8") if isinstance(data, str) else data)
                    for name, data in files.items()]
        started = time.perf_counter()
        request = {"op": "run", "files": list(files), "test_file": test_file,
                   "limits": {"memory_mb": memory_mb, "cpu_time_s": limits.cpu_time_s,
                              "file_size_mb": limits.file_size_mb}}
        kill_reason: list[str] = []

        def kill(reason: str) -> None:
            if not kill_reason:
                kill_reason.append(reason)
                try:
                    self._send({"op": "kill"})
                except OSError:
                    pass

        try:
            try:
                self._send(request, [pipes[0][1], pipes[1][1], pipes[2][1], *file_fds])
            except OSError:  # the worker died since its last job: replace it and send again
                self.restart()
                self._send(request, [pipes[0][1], pipes[1][1], pipes[2][1], *file_fds])
        finally:
            for fd in (pipes[0][1], pipes[1][1], pipes[2][1], *file_fds):
                os.close(fd)
        budget = [limits.output_limit_kb * 1024]
        out = OutputCollector(os.fdopen(pipes[0][0], "rb"), budget, lambda: kill("output-limit"))
        err = OutputCollector(os.fdopen(pipes[1][0], "rb"), budget, lambda: kill("output-limit"))
        result_chunks: list[bytes] = []
        reader = threading.Thread(target=read_all, args=(pipes[2][0], result_chunks, 8 * 1024 * 1024), daemon=True)
        reader.start()
        timer = threading.Timer(limits.wall_timeout_s, lambda: kill("timeout"))
        timer.start()
        done = self._wait_done(limits.wall_timeout_s + KILL_GRACE_S, kill_reason)
        timer.cancel()
        wall = time.perf_counter() - started
        if done is None:  # the server died or hung: replace the worker (its sandbox dies with it)
            self.restart()
            done = {"exit": -9, "cpu_s": None, "peak_memory_mb": None}
        for collector in (out, err):
            collector.thread.join(timeout=2)
        reader.join(timeout=2)
        self._settle()
        code = done["exit"]
        return SandboxRun(
            returncode=code if code >= 0 else None, signal=-code if code < 0 else None,
            stdout=out.text(), stderr=err.text(), output_truncated=out.overflowed or err.overflowed,
            timed_out=bool(kill_reason) and kill_reason[0] == "timeout", wall_s=wall, cpu_s=done.get("cpu_s"),
            peak_memory_mb=done.get("peak_memory_mb"), result=b"".join(result_chunks),
            isolation=self.sandbox.isolation, warning=self.sandbox.warning)

    def _settle(self, wait_s: float = 2.0) -> None:
        """Wait until only the worker's own processes remain under its uid (the server killed the rest;
        their parent, the namespace's init, reaps them a moment later)."""
        if self.uid is None:
            return
        deadline = time.monotonic() + wait_s
        while set(processes_of(self.uid)) - self.resident and time.monotonic() < deadline:
            time.sleep(0.002)

    def _wait_done(self, timeout_s: float, kill_reason: list[str]) -> dict | None:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if kill_reason:
                    return None
                kill_reason.append("timeout")
                self._send({"op": "kill"})
                deadline = time.monotonic() + KILL_GRACE_S
                continue
            self.sock.settimeout(remaining)
            try:
                message = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return None
            finally:
                self.sock.settimeout(None)
            if not message:
                return None
            reply = json.loads(message)
            if reply.get("op") == "done":
                return reply


class WarmPool:
    """A TestBackend with `exec.workers` warm workers; the Executor's slot number picks the worker."""

    def __init__(self, cfg: ExecConfig, sandbox: Sandbox | None = None) -> None:
        self.cfg = cfg
        self.sandbox = sandbox or Sandbox(cfg.limits, cfg.isolation, cfg.sandbox_uid)
        self.isolation, self.warning = self.sandbox.isolation, self.sandbox.warning
        self.one_shot = OneShotBackend(cfg, self.sandbox)
        self.workers = [_Worker(self.sandbox, slot) for slot in range(cfg.workers)]

    def run_tests(self, task: CodingTask, solution: str, slot: int = 0) -> SandboxRun:
        if task.language != "python":
            return self.one_shot.run_tests(task, solution, slot)
        runner = runner_for(task.language)
        return self.workers[slot].run(runner.files(task, solution, self.cfg), task.test_filename,
                                      runner.memory_mb(self.cfg))

    def resident_pids(self) -> set[int]:
        """Host PIDs of the workers themselves (bwrap, the namespace's init, the server)."""
        return set().union(*(worker.resident for worker in self.workers))

    def close(self) -> None:
        for worker in self.workers:
            worker.close()

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["WarmPool", "RUNTIME_DIR"]
