"""The sandbox: runs an untrusted command under bubblewrap with every namespace unshared, or (where
bubblewrap cannot run) under rlimits only, saying so loudly in every result.

Inside bubblewrap: no network (own network namespace), own PID/IPC/UTS/user/cgroup namespaces, a
read-only view of the system directories the interpreters need (nothing of /home, /root, /work or
/etc but the loader cache), a private size-capped tmpfs at /work (the work dir) and /tmp, an
unprivileged uid, rlimits (address space, CPU time, file size, processes, open files, no core
dumps), a wall-clock timeout that kills the whole process tree (the PID namespace dies with its
init), and capped stdout/stderr. Input files enter through memfd descriptors (`bwrap --file`); the
runner's results leave through one inherited pipe.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cet.config import SandboxLimits
from cet.errors import CetError

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
WEAK_WARNING = ("NOT ISOLATED: bubblewrap is unavailable ({why}); the code ran as a plain process under rlimits "
                "only, with the host's network and files reachable. Do not run untrusted code this way.")
# the whole environment of a sandboxed process (bubblewrap starts from --clearenv)
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
# packages the in-sandbox test runner needs, besides the standard library
RUNNER_PACKAGES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py")


@dataclass
class SandboxPaths:
    """Where things are as the sandboxed process sees them."""

    work: str
    runtime: str
    site: str
    python: str


@dataclass
class SandboxRun:
    """What one sandboxed command did."""

    returncode: int | None  # exit status, or None when ended by a signal
    signal: int | None
    stdout: str
    stderr: str
    output_truncated: bool
    timed_out: bool
    wall_s: float
    cpu_s: float | None
    peak_memory_mb: float | None
    result: bytes  # what the runner wrote to the result descriptor
    isolation: str
    warning: str | None = None
    files_left: list[str] = field(default_factory=list)


def _runner_site_sources() -> dict[str, str]:
    """name -> host path of each package the runner needs (pytest and its dependencies)."""
    import importlib.util

    found: dict[str, str] = {}
    for name in RUNNER_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        found[name if origin.name != "__init__.py" else name] = str(origin.parent if origin.name == "__init__.py"
                                                                   else origin)
    return found


def _python_binary() -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = Path(sys.base_prefix).resolve() / "bin" / version
    return str(candidate if candidate.exists() else Path(sys.executable).resolve())


def _reachable_site(sources: dict[str, str], copy: bool) -> dict[str, str]:
    """The runner's packages at paths the sandbox uid can read: copied once into a world-readable cache
    directory when `copy` or their own location is not (e.g. a virtual environment under a private home).
    The copy also holds nothing else, so pytest finds no plugins of the host's environment."""
    if not copy and all(_world_reachable(Path(p)) for p in sources.values()):
        return sources
    from importlib.metadata import version

    key = f"{os.getuid()}-py{sys.version_info.major}{sys.version_info.minor}-pytest{version('pytest')}"
    cache = Path(tempfile.gettempdir()) / f"cet-sandbox-site-{key}"
    copied: dict[str, str] = {}
    for name, source in sources.items():
        target = cache / Path(source).name
        if not target.exists():
            cache.mkdir(mode=0o755, parents=True, exist_ok=True)
            (shutil.copytree if Path(source).is_dir() else shutil.copy2)(source, target)
        copied[name] = str(target)
    for path in [cache, *cache.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return copied


def _world_reachable(path: Path) -> bool:
    """Whether any user may traverse to (and execute) `path`: every parent directory has o+x."""
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def _drop_privileges(uid: int | None) -> None:
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


def _limit(kind: int, value: int, hard_extra: int = 0) -> None:
    try:
        resource.setrlimit(kind, (value, value + hard_extra))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(kind, (min(value, hard), hard))


def apply_limits(limits: SandboxLimits, memory_mb: int, uid: int | None, cpu: bool = True) -> None:
    """rlimits for the sandboxed process tree, then the unprivileged uid (runs in the child before exec).
    `cpu=False` for a long-lived warm worker, whose jobs set their own CPU limit."""
    _limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    if cpu:
        _limit(resource.RLIMIT_CPU, limits.cpu_time_s, hard_extra=2)  # SIGXCPU at the soft limit, SIGKILL 2 s later
    _limit(resource.RLIMIT_FSIZE, limits.file_size_mb * 1024 * 1024)
    _limit(resource.RLIMIT_NPROC, limits.max_processes)
    _limit(resource.RLIMIT_NOFILE, 256)
    _limit(resource.RLIMIT_CORE, 0)
    _drop_privileges(uid)


PROBES = 3


@functools.lru_cache(maxsize=8)
def bubblewrap_status(uid: int | None) -> tuple[bool, str]:
    """Whether bubblewrap can start a fully unshared sandbox here, as this uid; and why not."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bwrap not found (Debian package bubblewrap)"
    why = ""
    for attempt in range(PROBES):  # a busy machine can fail one probe silently (seen in Ray workers): try again
        try:
            done = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
                                  capture_output=True, text=True, timeout=20,
                                  preexec_fn=lambda: _drop_privileges(uid))  # noqa: PLW1509
        except (OSError, subprocess.SubprocessError) as e:
            why = f"bwrap failed to start: {e}"
        else:
            if done.returncode == 0:
                return True, ""
            first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}, nothing on stderr"])[0]
            why = f"bwrap cannot create namespaces here: {first}"
        time.sleep(0.2 * (attempt + 1))
    return False, why


def memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class OutputCollector:
    """Reads a pipe into a bounded buffer; past the shared cap, it records the overflow and stops keeping."""

    def __init__(self, pipe, budget: list[int], on_overflow) -> None:  # noqa: ANN001
        self.chunks: list[bytes] = []
        self.overflowed = False
        self._pipe, self._budget, self._on_overflow = pipe, budget, on_overflow
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            data = self._pipe.read1(65536) if hasattr(self._pipe, "read1") else self._pipe.read(65536)
            if not data:
                break
            keep = min(len(data), max(self._budget[0], 0))
            if keep:
                self.chunks.append(data[:keep])
                self._budget[0] -= keep
            if keep < len(data) and not self.overflowed:
                self.overflowed = True
                self._on_overflow()
        self._pipe.close()

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


class Sandbox:
    """Runs commands in isolation. `isolation`: "auto" (bubblewrap when it runs, else weak), "bubblewrap"
    (refuse to run without it) or "weak" (rlimits only, flagged in every result)."""

    def __init__(self, limits: SandboxLimits, isolation: str = "auto", uid: int | None = 60100) -> None:
        self.limits = limits
        self.uid = uid if os.getuid() == 0 else None  # only root can switch to the unprivileged uid
        ok, why = (False, "weak isolation requested") if isolation == "weak" else bubblewrap_status(self.uid)
        if isolation == "bubblewrap" and not ok:
            raise CetError(f"bubblewrap isolation required but unavailable: {why}")
        self.isolation = "bubblewrap" if ok else "weak"
        self.python = _python_binary()
        if self.uid is not None and not _world_reachable(Path(self.python)):
            system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
            if ok and system.exists():
                self.python = str(system)  # same minor version, reachable by the sandbox uid
            elif not ok:
                self.uid = None  # weak mode: the unprivileged uid could not even start this interpreter
            else:
                raise CetError(f"the sandbox uid cannot reach {self.python} and there is no {system}")
        self.warning = None if ok else WEAK_WARNING.format(why=why)
        self._site_sources = _reachable_site(_runner_site_sources(), copy=self.isolation == "weak")

    # -- paths as the sandboxed process sees them
    def paths(self, work_dir: str | None = None) -> SandboxPaths:
        if self.isolation == "bubblewrap":
            return SandboxPaths(work="/work", runtime="/opt/cet/runtime", site="/opt/cet/site", python=self.python)
        return SandboxPaths(work=work_dir or "{work}", runtime=str(RUNTIME_DIR), site=self._weak_site(),
                            python=self.python)

    def _weak_site(self) -> str:
        parents = {str(Path(p).parent) for p in self._site_sources.values()}
        return os.pathsep.join(sorted(parents))

    def _bwrap_argv(self, files: dict[str, int]) -> list[str]:
        """The bwrap command line (bind sources must be reachable by the sandbox uid: see `_reachable_site`)."""
        argv = ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--disable-userns",
                "--hostname", "sandbox", "--clearenv"]

        def bind(source: str, dest: str) -> None:
            argv.extend(["--ro-bind", source, dest])

        bind("/usr", "/usr")
        for top in ("/bin", "/lib", "/lib32", "/lib64", "/sbin"):
            if os.path.islink(top):
                argv.extend(["--symlink", os.readlink(top), top])
            elif os.path.isdir(top):
                bind(top, top)
        for etc in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
            if os.path.exists(etc):
                bind(etc, etc)
        prefix = Path(self.python).parent.parent
        if not str(prefix).startswith("/usr"):
            bind(str(prefix), str(prefix))
        argv += ["--proc", "/proc", "--dev", "/dev"]
        work_bytes = str(self.limits.work_dir_mb * 1024 * 1024)
        argv += ["--size", work_bytes, "--tmpfs", "/tmp", "--size", work_bytes, "--tmpfs", "/work"]
        bind(str(RUNTIME_DIR), "/opt/cet/runtime")
        for source in self._site_sources.values():
            bind(source, f"/opt/cet/site/{Path(source).name}")
        for name, fd in files.items():
            argv += ["--perms", "0644", "--file", str(fd), f"/work/{name}"]
        argv += ["--remount-ro", "/", "--chdir", "/work"]  # only /work and /tmp stay writable
        return argv

    def run(self, argv: list[str], files: dict[str, bytes | str], env: dict[str, str] | None = None,
            memory_mb: int | None = None, timeout_s: float | None = None) -> SandboxRun:
        """Run `argv` (paths as given by `paths()`) with `files` in the work dir; collect what it did.
        Each run has a uid of its own for its duration (`lease_uid`)."""
        with lease_uid(self.uid) as uid:
            return self._run(argv, files, env, memory_mb, timeout_s, uid)

    def _run(self, argv: list[str], files: dict[str, bytes | str], env: dict[str, str] | None,
             memory_mb: int | None, timeout_s: float | None, uid: int | None) -> SandboxRun:
        memory_mb = memory_mb or self.limits.memory_mb
        timeout_s = timeout_s or self.limits.wall_timeout_s
        env = {**BASE_ENV, **(env or {})}
        result_r, result_w = os.pipe()
        memfds: dict[str, int] = {}
        host_work: str | None = None
        try:
            if self.isolation == "bubblewrap":
                for name, data in files.items():
                    memfds[name] = memfd(name, data.encode("utf-8") if isinstance(data, str) else data)
                env["CET_RESULT_FD"] = str(result_w)
                command = self._bwrap_argv(memfds)
                for key, value in env.items():
                    command += ["--setenv", key, value]
                command += ["--", *argv]
                pass_fds = (result_w, *memfds.values())
                cwd = None
            else:
                host_work = tempfile.mkdtemp(prefix="cet-sandbox-")
                self._fill_weak_work(host_work, files, uid)
                env["CET_RESULT_FD"] = str(result_w)
                env["HOME"] = host_work
                command = [a.replace("{work}", host_work) for a in argv]
                pass_fds, cwd = (result_w,), host_work
            return self._execute(command, env if self.isolation == "weak" else {}, pass_fds, cwd, result_r,
                                 result_w, memory_mb, timeout_s, uid)
        finally:
            for fd in memfds.values():
                os.close(fd)
            kill_uid_processes(uid)
            if host_work:
                shutil.rmtree(host_work, ignore_errors=True)

    def spawn(self, argv: list[str], pass_fds: tuple[int, ...], stderr, uid: int | None) -> subprocess.Popen:  # noqa: ANN001
        """Start a long-lived sandboxed process (a warm worker) as `uid` (leased by the caller), bubblewrap
        only: no files, the process limit and address-space cap of a run, no CPU limit of its own."""
        if self.isolation != "bubblewrap":
            raise CetError("the warm worker pool needs bubblewrap; without it, runs are one-shot (weak mode)")
        command = self._bwrap_argv({})
        for key, value in BASE_ENV.items():
            command += ["--setenv", key, value]
        limits, memory_mb = self.limits, self.limits.memory_mb
        return subprocess.Popen([*command, "--", *argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr, pass_fds=pass_fds, start_new_session=True,
                                preexec_fn=lambda: apply_limits(limits, memory_mb, uid, cpu=False))  # noqa: PLW1509

    def _fill_weak_work(self, work: str, files: dict[str, bytes | str], uid: int | None) -> None:
        for name, data in files.items():
            Path(work, name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        if uid is not None:
            for path in [work, *(str(Path(work, n)) for n in files)]:
                os.chown(path, uid, uid)

    def _execute(self, command: list[str], env: dict[str, str], pass_fds: tuple[int, ...], cwd: str | None,
                 result_r: int, result_w: int, memory_mb: int, timeout_s: float, uid: int | None) -> SandboxRun:
        limits = self.limits
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env or None, cwd=cwd, pass_fds=pass_fds, start_new_session=True,
                                preexec_fn=lambda: apply_limits(limits, memory_mb, uid))  # noqa: PLW1509
        os.close(result_w)
        kill_reason: list[str] = []

        def kill(reason: str) -> None:
            if not kill_reason:
                kill_reason.append(reason)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        budget = [limits.output_limit_kb * 1024]
        out = OutputCollector(proc.stdout, budget, lambda: kill("output-limit"))
        err = OutputCollector(proc.stderr, budget, lambda: kill("output-limit"))
        result_chunks: list[bytes] = []
        reader = threading.Thread(target=read_all, args=(result_r, result_chunks, 8 * 1024 * 1024), daemon=True)
        reader.start()
        timer = threading.Timer(timeout_s, lambda: kill("timeout"))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if self.isolation == "weak":
            kill("after-exit")  # the process group may hold children left behind
        for collector in (out, err):
            collector.thread.join(timeout=2)
        reader.join(timeout=2)
        code = proc.returncode
        bubblewrapped = self.isolation == "bubblewrap"
        return SandboxRun(
            returncode=code if code >= 0 else None, signal=-code if code < 0 else None,
            stdout=out.text(), stderr=err.text(), output_truncated=out.overflowed or err.overflowed,
            timed_out=bool(kill_reason) and kill_reason[0] == "timeout", wall_s=wall,
            # bwrap's own rusage does not cover the processes in its namespaces: there the runner reports them
            cpu_s=None if bubblewrapped else usage.ru_utime + usage.ru_stime,
            peak_memory_mb=None if bubblewrapped else usage.ru_maxrss / 1024.0,
            result=b"".join(result_chunks), isolation=self.isolation, warning=self.warning)

UID_RANGE = 64  # uids leased from exec.sandbox_uid upwards
UID_LOCK_DIR = Path(tempfile.gettempdir()) / "cet-sandbox-uids"
uids_leased: set[int] = set()  # every uid this process has leased (for checks that nothing outlived a run)


@contextlib.contextmanager
def lease_uid(base: int | None) -> Iterator[int | None]:
    """An unprivileged uid no other run (in this or any other process) is using, held for the block.
    Each run having its own uid keeps one run's processes out of another's RLIMIT_NPROC count and out of
    reach of the kill that ends another run. The lease is an flock on a file per uid."""
    if base is None:
        yield None
        return
    lock_dir = UID_LOCK_DIR
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    while True:
        for uid in range(base, base + UID_RANGE):
            handle = open(lock_dir / f"{uid}.lock", "a")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                uids_leased.add(uid)
                kill_uid_processes(uid)  # nothing of an earlier, crashed holder survives
                yield uid
            finally:
                handle.close()
            return
        time.sleep(0.05)


def kill_uid_processes(uid: int | None, wait_s: float = 5.0) -> None:
    """Kill whatever still runs as the run's uid and wait until it is gone: in weak mode children that
    left the process group; under bubblewrap the PID namespace dies with its init, but asynchronously."""
    if uid is None:
        return
    deadline = time.monotonic() + wait_s
    while processes_of(uid):
        pid = os.fork()
        if pid == 0:
            try:
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)


def processes_of(uid: int) -> list[int]:
    """PIDs on the host whose real uid is `uid`, zombies left out: they run nothing, and the host's init
    reaps them (bwrap's intermediate process is reparented there; some inits reap only every second)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(entry.path).st_uid != uid:
                    continue
                with open(f"{entry.path}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                pids.append(int(entry.name))
    return pids


def read_all(fd: int, chunks: list[bytes], cap: int) -> None:
    total = 0
    with os.fdopen(fd, "rb") as f:
        while data := f.read(65536):
            if total < cap:
                chunks.append(data[: cap - total])
            total += len(data)
