"""The real `cet` executable: kb ingest / search / stats with --json, and user errors as one line, no traceback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cet.knowledge.chunking import chunk_document
from cet.knowledge.records import Document
from cet.knowledge.sources.exercism import read_exercism

Run = Callable[..., subprocess.CompletedProcess[str]]
HIT_KEYS = {"id", "source", "title", "path", "score", "text", "metadata"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, run_cet: Run, core_exercism: Path) -> tuple[Path, dict]:
    db = tmp_path_factory.mktemp("cli") / "kb.sqlite"
    result = run_cet("kb", "ingest", "--source", "exercism", str(core_exercism), "--db", str(db), "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return db, json.loads(result.stdout)


def assert_user_error(result: subprocess.CompletedProcess[str], contains: str, code: int | None = None) -> str:
    """A user error: non-zero exit, no traceback, nothing on stdout, one line on stderr that says what is wrong."""
    assert result.returncode != 0, result.stdout
    if code is not None:
        assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert result.stdout.strip() == ""
    message = " ".join(result.stderr.split())
    assert contains.lower() in message.lower(), result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    return message


# ------------------------------------------------------------------------------------------ happy paths


def test_ingest_json_reports_counts(built: tuple[Path, dict], core_exercism: Path) -> None:
    db, report = built
    docs = [r for r in read_exercism(core_exercism) if isinstance(r, Document)]
    assert report["source"] == "exercism"
    assert report["documents_read"] == report["documents_written"] == len(docs) == 10
    assert report["chunks_written"] == sum(len(chunk_document(d)) for d in docs)
    assert report["skipped"] == 2
    assert report["skipped_reasons"] == {"malformed JSON": 1, "malformed TOML": 1}
    assert report["error"] is None
    assert db.is_file()


def test_second_ingest_embeds_nothing(built: tuple[Path, dict], run_cet: Run, core_exercism: Path) -> None:
    db, _ = built
    result = run_cet("kb", "ingest", "--source", "exercism", str(core_exercism), "--db", str(db), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["texts_embedded"] == 0
    assert report["documents_unchanged"] == 10 and report["documents_written"] == 0


def test_search_json_returns_at_most_k_hits(built: tuple[Path, dict], run_cet: Run) -> None:
    db, _ = built
    result = run_cet("kb", "search", "hilltop lantern relay watchman", "--db", str(db), "--k", "3", "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert isinstance(hits, list) and 1 <= len(hits) <= 3
    for hit in hits:
        assert set(hit) >= HIT_KEYS
        assert hit["source"] == "exercism" and isinstance(hit["score"], float) and hit["text"]
        assert isinstance(hit["metadata"], dict)
    assert hits[0]["metadata"]["exercise"] == "lantern-relay"


def test_search_modes_and_filters(built: tuple[Path, dict], run_cet: Run) -> None:
    db, _ = built
    result = run_cet("kb", "search", "lantern delays", "--db", str(db), "--k", "5", "--mode", "bm25",
                     "--kind", "tests", "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert hits and all(h["kind"] == "tests" for h in hits)
    assert hits[0]["metadata"]["exercise"] == "lantern-relay"
    result = run_cet("kb", "search", "pebbles", "--db", str(db), "--source", "nowhere", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == []


def test_search_default_k_comes_from_config(built: tuple[Path, dict], run_cet: Run, cet_env) -> None:
    db, _ = built
    result = run_cet("kb", "search", "exercise", "--db", str(db), "--mode", "vector", "--json",
                     env=cet_env(CET_KB__TOP_K="2"))
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2


def test_human_search_output(built: tuple[Path, dict], run_cet: Run) -> None:
    db, _ = built
    result = run_cet("kb", "search", "tide tables harbour", "--db", str(db), "--k", "1")
    assert result.returncode == 0, result.stderr
    assert "Tidal Clock" in result.stdout + result.stderr


def test_stats_json(built: tuple[Path, dict], run_cet: Run) -> None:
    db, report = built
    result = run_cet("kb", "stats", "--db", str(db), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["chunks"] == report["chunks_written"]
    assert stats["by_source"] == {"exercism": report["chunks_written"]}
    assert stats["documents"] == 10
    assert stats["embedding_model"] == "onnx:all-MiniLM-L6-v2"


def test_help(run_cet: Run) -> None:
    top = run_cet("--help")
    assert top.returncode == 0, top.stderr
    assert "kb" in top.stdout and "run" in top.stdout
    kb = run_cet("kb", "--help")
    assert kb.returncode == 0, kb.stderr
    for command in ("ingest", "search", "stats"):
        assert command in kb.stdout


# ------------------------------------------------------------------------------------------ user errors


def test_ingest_missing_path(run_cet: Run, tmp_path: Path) -> None:
    db = tmp_path / "kb.sqlite"
    result = run_cet("kb", "ingest", "--source", "exercism", str(tmp_path / "no-such-dir"), "--db", str(db))
    assert_user_error(result, "not found", code=2)
    assert not db.exists(), "nothing is created for a bad path"


def test_ingest_of_a_file_that_is_no_posts_dump_fails_in_one_line(run_cet: Run, tmp_path: Path) -> None:
    import gzip

    db = tmp_path / "kb.sqlite"
    for name, data in (("empty.xml", b""), ("Posts.xml.gz", gzip.compress(b"<posts/>")), ("notes.txt", b"hi\n")):
        (tmp_path / name).write_bytes(data)
        result = run_cet("kb", "ingest", "--source", "stackexchange", str(tmp_path / name), "--db", str(db))
        assert_user_error(result, "not a Posts.xml")
    assert not db.exists(), "nothing is created for a file that is no dump"


def test_search_reads_a_store_without_writing_to_it(built: tuple[Path, dict], run_cet: Run,
                                                    tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(built[0], copy)
    before = (copy.read_bytes(), copy.stat().st_mtime_ns)
    result = run_cet("kb", "search", "lantern", "--db", str(copy), "--json")
    assert result.returncode == 0, result.stderr
    assert (copy.read_bytes(), copy.stat().st_mtime_ns) == before
    # nothing beside it but the -wal/-shm files any SQLite reader of a WAL database may create: no index, no copy
    assert {p.name for p in tmp_path.iterdir()} <= {"copy.sqlite", "copy.sqlite-wal", "copy.sqlite-shm"}


def test_ingest_unknown_source(run_cet: Run, tmp_path: Path, core_exercism: Path) -> None:
    result = run_cet("kb", "ingest", "--source", "nope", str(core_exercism), "--db", str(tmp_path / "kb.sqlite"))
    message = assert_user_error(result, "unknown source", code=2)
    assert "exercism" in message


def test_search_on_a_missing_db(run_cet: Run, tmp_path: Path) -> None:
    db = tmp_path / "missing.sqlite"
    assert_user_error(run_cet("kb", "search", "anything", "--db", str(db)), "not found", code=3)
    assert_user_error(run_cet("kb", "stats", "--db", str(db)), "not found", code=3)
    assert not db.exists(), "reading commands never create a store"


@pytest.mark.parametrize("query", ["", "   "])
def test_search_empty_query(built: tuple[Path, dict], run_cet: Run, query: str) -> None:
    assert_user_error(run_cet("kb", "search", query, "--db", str(built[0])), "empty")


def test_search_k_zero(built: tuple[Path, dict], run_cet: Run) -> None:
    assert_user_error(run_cet("kb", "search", "lantern", "--db", str(built[0]), "--k", "0"), "--k")


def test_search_bad_mode(built: tuple[Path, dict], run_cet: Run) -> None:
    assert_user_error(run_cet("kb", "search", "lantern", "--db", str(built[0]), "--mode", "fuzzy"), "--mode")


def test_config_file_that_is_not_yaml(built: tuple[Path, dict], run_cet: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kb: [1, 2\n  db: {\n", encoding="utf-8")
    assert_user_error(run_cet("--config", str(bad), "kb", "stats", "--db", str(built[0])), "not valid YAML")


def test_config_file_missing(built: tuple[Path, dict], run_cet: Run, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert_user_error(run_cet("--config", str(missing), "kb", "stats", "--db", str(built[0])), "not found")


def test_env_override_with_a_bad_value(built: tuple[Path, dict], run_cet: Run, cet_env) -> None:
    result = run_cet("kb", "stats", "--db", str(built[0]), env=cet_env(CET_KB__TOP_K="abc"))
    assert_user_error(result, "kb.top_k")


def test_unreachable_postgres_url_hides_the_password(run_cet: Run) -> None:
    result = run_cet("kb", "stats", "--db", "postgresql://u:pw@127.0.0.1:1/x", timeout=120)
    message = assert_user_error(result, "127.0.0.1", code=3)
    assert "pw" not in message and "pw" not in result.stderr
