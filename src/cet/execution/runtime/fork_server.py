"""A warm test worker: pytest imported once, then one forked child per job. Runs INSIDE the sandbox.

Usage: python -I -S -B fork_server.py CONTROL_FD SITE_DIR...

The host sends jobs over the control socket (SOCK_SEQPACKET): a JSON request with descriptors attached
(stdout, stderr, result pipe, then one memfd per file). For each job the server writes the files into a
fresh directory, forks a child that sets the job's rlimits and runs pytest_runner.run_tests there, and
waits for it (a {"op": "kill"} message ends it early). Then it kills every other process left in the
sandbox's PID namespace, wipes the job directory and /tmp, and answers {"op": "done", ...} with the
child's exit status and resource use. The server is non-dumpable, so a job (same uid) cannot ptrace it
or read its memory; a job that kills the server only kills its own worker, which the host replaces.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PR_SET_DUMPABLE = 4
MAX_FDS = 200


def _set_limit(kind: int, value: int, hard_extra: int = 0) -> None:
    soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
        hard_value = min(value + hard_extra, hard)
    else:
        hard_value = value + hard_extra
    resource.setrlimit(kind, (value, hard_value))


def _read_fd(fd: int) -> bytes:
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while data := os.read(fd, 1 << 20):
        chunks.append(data)
    return b"".join(chunks)


def _kill_others() -> None:
    """SIGKILL every process in this PID namespace but init (1) and the server; wait until they are gone."""
    me = os.getpid()
    deadline = time.monotonic() + 5
    while True:
        others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
        others = [p for p in others if _state(p) not in ("Z", "X", None)]
        if not others or time.monotonic() > deadline:
            return
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.002)


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _wipe(path: str) -> None:
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            try:
                os.unlink(full)
            except OSError:
                pass


def run_job(sock: socket.socket, request: dict, fds: list[int], number: int) -> dict:
    import pytest_runner

    stdout_fd, stderr_fd, result_fd, *file_fds = fds
    job_dir = f"/work/job{number}"
    os.mkdir(job_dir)
    for name, fd in zip(request["files"], file_fds, strict=True):
        with open(os.path.join(job_dir, name), "wb") as f:
            f.write(_read_fd(fd))
        os.close(fd)
    limits = request["limits"]
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the job
        try:
            sock.close()
            os.dup2(stdout_fd, 1)
            os.dup2(stderr_fd, 2)
            os.dup2(result_fd, 3)
            for fd in (stdout_fd, stderr_fd, result_fd):
                if fd > 3:
                    os.close(fd)
            os.environ["CET_RESULT_FD"] = "3"
            os.setsid()
            _set_limit(resource.RLIMIT_AS, limits["memory_mb"] * 1024 * 1024)
            _set_limit(resource.RLIMIT_CPU, limits["cpu_time_s"], hard_extra=2)
            _set_limit(resource.RLIMIT_FSIZE, limits["file_size_mb"] * 1024 * 1024)
            results = pytest_runner.run_tests(job_dir, request["test_file"])
            if os.getpid() == results["pid"]:
                pytest_runner.report(results)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(0)
    for fd in (stdout_fd, stderr_fd, result_fd):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    killed = False
    while True:
        ready, _, _ = select.select([pidfd, sock], [], [])
        if pidfd in ready:
            break
        message = sock.recv(65536)
        if not message:  # the host went away: end the job and stop
            os.kill(pid, signal.SIGKILL)
            killed = True
            break
        if json.loads(message).get("op") == "kill":
            os.kill(pid, signal.SIGKILL)
            killed = True
    _, status, usage = os.wait4(pid, 0)
    os.close(pidfd)
    _kill_others()
    shutil.rmtree(job_dir, ignore_errors=True)
    _wipe("/tmp")
    return {"op": "done", "exit": os.waitstatus_to_exitcode(status), "killed": killed,
            "cpu_s": usage.ru_utime + usage.ru_stime, "peak_memory_mb": usage.ru_maxrss / 1024.0}


def warm_up() -> None:
    """Import pytest and run one trivial test in-process, so the modules every run needs are loaded."""
    import pytest_runner

    os.makedirs("/work/warmup", exist_ok=True)
    with open("/work/warmup/test_cet_warmup.py", "w") as f:
        f.write("def test_warm():\n    assert True\n")
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    os.dup2(devnull, 1)
    try:
        pytest_runner.run_tests("/work/warmup", "test_cet_warmup.py")
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    os.chdir("/work")
    shutil.rmtree("/work/warmup", ignore_errors=True)
    if "/work/warmup" in sys.path:
        sys.path.remove("/work/warmup")
    sys.modules.pop("test_cet_warmup", None)


def main(argv: list[str]) -> int:
    control_fd, *site_dirs = argv[1:]
    sys.path[:0] = [HERE, *site_dirs]
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    sock = socket.socket(fileno=int(control_fd))
    warm_up()
    sock.send(json.dumps({"op": "ready", "pid": os.getpid()}).encode())
    number = 0
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 65536, MAX_FDS)
        if not message:
            return 0
        request = json.loads(message)
        if request.get("op") != "run":
            for fd in fds:
                os.close(fd)
            continue
        number += 1
        sock.send(json.dumps(run_job(sock, request, fds, number)).encode())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
