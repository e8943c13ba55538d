"""Shared fixtures: the packaged MiniLM embedder (loaded once), data locations, and a `cet` subprocess runner."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORE_EXERCISM = FIXTURES / "core" / "exercism"
REAL_EXERCISM = Path(__file__).resolve().parents[2] / "shared" / "data" / "exercism"
CET_BIN = Path(sys.executable).parent / "cet"


@pytest.fixture(scope="session")
def embedder():  # -> OnnxEmbedder
    """The packaged int8 ONNX all-MiniLM-L6-v2 (the fastest packaged embedder to load), shared by the session."""
    from cet.knowledge.embedding import OnnxEmbedder

    return OnnxEmbedder()


@pytest.fixture(scope="session")
def core_exercism() -> Path:
    """A small hand-written tree in the problem-specifications layout, with one malformed JSON and one bad TOML."""
    assert (CORE_EXERCISM / "exercises" / "lantern-relay" / "description.md").is_file()
    return CORE_EXERCISM


@pytest.fixture(scope="session")
def real_exercism() -> Path:
    """The real Exercism data (problem-specifications, the Python track, website-copy mentoring notes)."""
    if not (REAL_EXERCISM / "problem-specifications" / "exercises").is_dir():
        pytest.skip(f"real Exercism data not found at {REAL_EXERCISM} (fetch it into ../shared/data/exercism)")
    return REAL_EXERCISM


def _cet_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CET_") and k not in ("COLUMNS", "LINES")}
    env["CET_KB__EMBEDDING__BACKEND"] = "onnx"
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def cet_env() -> Callable[..., dict[str, str]]:
    """Build the environment for a `cet` subprocess: no inherited CET_* settings, the ONNX embedder, and no
    COLUMNS (so output is laid out as for a pipe); keyword arguments add variables."""
    return _cet_env


@pytest.fixture(scope="session")
def cet_bin() -> Path:
    """The installed `cet` executable of this virtual environment."""
    if not CET_BIN.is_file():
        pytest.skip(f"the cet executable is not installed next to {sys.executable}")
    return CET_BIN


@pytest.fixture(scope="session")
def run_cet(cet_bin: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `cet` executable; returns the completed process (text mode, output captured)."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(cet_bin), *args], capture_output=True, text=True, env=env or _cet_env(), cwd=cwd or REPO,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def smollm2_torch() -> Path:
    """SmolLM2-135M-Instruct as a torch checkpoint, converted once from its pulled GGUF (data/models/...-torch)."""
    from cet.config import CetConfig
    from cet.model.base import convert_gguf

    return convert_gguf("smollm2-135m-instruct", CetConfig())


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, smollm2_torch: Path) -> Path:
    """A tiny random Llama (2 layers, width 32) with SmolLM2's real tokenizer and chat template: a CET base for
    fast tests of training, checkpoints and generation."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    where = tmp_path_factory.mktemp("tiny-base")
    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_torch))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(where)
    tokenizer.save_pretrained(where)
    return where


ARTIFACTS: list[Path] = []  # files tests leave for a person to look at (listed at the end of the run)


@pytest.fixture
def artifact() -> Callable[[str], Path]:
    """A path under build/test-artifacts/ that is kept after the run and named in its summary."""

    def where(name: str) -> Path:
        path = Path(__file__).resolve().parent.parent / "build" / "test-artifacts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        ARTIFACTS.append(path)
        return path

    return where


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    kept = [p for p in ARTIFACTS if p.is_file()]
    if kept:
        terminalreporter.section("test artifacts")
        for path in kept:
            terminalreporter.write_line(f"{path} ({path.stat().st_size} bytes)")


# --- PostgreSQL (pgvector) through pgserver: one throwaway server per session, a fresh database per test ---------
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import psycopg

    from cet.knowledge.stores.postgres_local import start_local_postgres, stop_local_postgres

    data_dir = tmp_path_factory.mktemp("postgres") / "data"
    url = start_local_postgres(data_dir)
    with psycopg.connect(url, autocommit=True) as conn:  # a throwaway server: durability only slows it
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")
    yield data_dir
    stop_local_postgres(data_dir)


@pytest.fixture(scope="session")
def pg_url(pg_data_dir: Path) -> str:
    from cet.knowledge.stores.postgres_local import start_local_postgres

    return start_local_postgres(pg_data_dir)  # idempotent: reuses the running server


@pytest.fixture
def db_url(pg_url: str) -> str:
    """A fresh, empty database for each test."""
    import psycopg
    from tests.pg_helpers import with_database

    name = f"t_{next(_db_counter)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(pg_url, name)
