"""Config resolution (defaults < YAML < environment < explicit overrides) and run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cet.config import CetConfig, dump_config, load_config
from cet.errors import CetError
from cet.runs import RunDir


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CET_* variable from the outside world leaks into these tests."""
    import os

    for key in list(os.environ):
        if key.startswith("CET_"):
            monkeypatch.delenv(key)


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_defaults() -> None:
    cfg = load_config()
    assert isinstance(cfg, CetConfig)
    assert cfg.kb.db == "data/kb.sqlite"
    assert cfg.kb.top_k == 5 and cfg.kb.candidates == 50 and cfg.kb.rrf_k == 60
    assert cfg.kb.chunk_max_chars == 1800 and cfg.kb.ann_threshold == 20000
    assert cfg.kb.embedding.backend == "onnx"
    assert cfg.kb.embedding.model == "all-MiniLM-L6-v2"
    assert cfg.run.seed == 0 and cfg.run.runs_dir == "runs"
    assert cfg.sources.exercism == "../shared/data/exercism"


def test_yaml_overrides_defaults(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "cet.yaml", {"kb": {"top_k": 9, "embedding": {"backend": "sentence-transformers"}},
                                               "run": {"seed": 7}})
    cfg = load_config(path)
    assert cfg.kb.top_k == 9
    assert cfg.kb.embedding.backend == "sentence-transformers"
    assert cfg.kb.embedding.model == "all-MiniLM-L6-v2", "keys the file does not name keep their defaults"
    assert cfg.kb.rrf_k == 60
    assert cfg.run.seed == 7


def test_cet_config_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_yaml(tmp_path / "cet.yaml", {"kb": {"candidates": 12}})
    monkeypatch.setenv("CET_CONFIG", str(path))
    assert load_config().kb.candidates == 12


def test_empty_yaml_file_means_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_config(empty).kb.top_k == 5


def test_env_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_yaml(tmp_path / "cet.yaml", {"kb": {"top_k": 9, "rrf_k": 11, "embedding": {"batch_size": 8}}})
    monkeypatch.setenv("CET_KB__TOP_K", "3")
    monkeypatch.setenv("CET_KB__EMBEDDING__BACKEND", "sentence-transformers")
    monkeypatch.setenv("CET_RUN__SEED", "42")
    cfg = load_config(path)
    assert cfg.kb.top_k == 3
    assert cfg.kb.rrf_k == 11, "the environment replaces only the keys it names"
    assert cfg.kb.embedding.backend == "sentence-transformers"
    assert cfg.kb.embedding.batch_size == 8, "a nested env key does not reset its YAML siblings"
    assert cfg.run.seed == 42


def test_explicit_overrides_beat_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_yaml(tmp_path / "cet.yaml", {"kb": {"top_k": 9, "db": "from-yaml.sqlite"}})
    monkeypatch.setenv("CET_KB__TOP_K", "3")
    monkeypatch.setenv("CET_KB__EMBEDDING__BACKEND", "openai")
    cfg = load_config(path, kb={"top_k": 1, "embedding": {"backend": "onnx"}})
    assert cfg.kb.top_k == 1
    assert cfg.kb.embedding.backend == "onnx"
    assert cfg.kb.db == "from-yaml.sqlite"
    # None means "flag not given": the lower layers stand
    cfg = load_config(path, kb={"db": None, "embedding": {"backend": None}})
    assert cfg.kb.db == "from-yaml.sqlite" and cfg.kb.top_k == 3 and cfg.kb.embedding.backend == "openai"


def test_overrides_are_validated() -> None:
    with pytest.raises(CetError, match="top_k"):
        load_config(None, kb={"top_k": 0})
    with pytest.raises(CetError, match="backend"):
        load_config(None, kb={"embedding": {"backend": "word2vec"}})


def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(CetError, match="bogus"):
        load_config(write_yaml(tmp_path / "cet.yaml", {"bogus": 1}))


@pytest.mark.parametrize("data", [{"kb": {"topk": 8}}, {"kb": {"embedding": {"backnd": "onnx"}}},
                                  {"run": {"sead": 3}}, {"sources": {"exercsm": "x"}}])
def test_unknown_nested_key_is_rejected(tmp_path: Path, data: dict) -> None:
    """A typo in a section (kb.topk for kb.top_k) must not be silently ignored."""
    with pytest.raises(CetError):
        load_config(write_yaml(tmp_path / "cet.yaml", data))


@pytest.mark.parametrize(
    ("text", "message"),
    [("kb: [1, 2\n", "not valid YAML"), ("- just\n- a list\n", "mapping"), ("kb:\n  top_k: many\n", "kb.top_k")],
)
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cet.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CetError, match=message):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(CetError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_bad_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CET_KB__TOP_K", "abc")
    with pytest.raises(CetError, match="kb.top_k"):
        load_config()


def test_dump_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(None, kb={"top_k": 4}, run={"seed": 5})
    again = load_config(write_yaml(tmp_path / "dumped.yaml", yaml.safe_load(dump_config(cfg))))
    assert again.model_dump() == cfg.model_dump()


def test_run_dir_writes_config_seed_and_metrics(tmp_path: Path) -> None:
    cfg = load_config(None, run={"seed": 13}, kb={"top_k": 4})
    run = RunDir(cfg, "unit", root=tmp_path)
    assert run.path.parent == tmp_path and run.path.name.endswith("-unit")
    assert run.plots.is_dir()
    assert yaml.safe_load((run.path / "config.yaml").read_text(encoding="utf-8")) == cfg.model_dump(mode="json")
    assert (run.path / "seed").read_text(encoding="utf-8") == "13\n"
    assert run.seed == 13
    first = np.random.random()
    np.random.seed(13)
    assert np.random.random() == first, "the global RNGs were seeded with the run's seed"

    run.log_metrics("ingest/x", {"chunks": 3})
    run.log_metrics("retrieval", {"mrr": 0.5, "path": Path("p")})
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in rows] == ["ingest/x", "retrieval"]
    assert rows[0]["chunks"] == 3 and rows[1]["mrr"] == 0.5 and rows[1]["path"] == "p"
    assert all(isinstance(r["time"], float) for r in rows)

    target = run.write_json("summary.json", {"a": [1, 2]})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": [1, 2]}
    assert run.write_report("# hi\n").read_text(encoding="utf-8") == "# hi\n"


def test_run_dirs_never_collide(tmp_path: Path) -> None:
    cfg = load_config()
    paths = {RunDir(cfg, "same", root=tmp_path).path for _ in range(3)}
    assert len(paths) == 3
    assert all(p.is_dir() for p in paths)


def test_run_dir_defaults_to_the_configured_runs_dir(tmp_path: Path) -> None:
    cfg = load_config(None, run={"runs_dir": str(tmp_path / "my-runs")})
    run = RunDir(cfg, "job")
    assert run.path.parent == tmp_path / "my-runs"
