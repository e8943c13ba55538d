"""One typed config: embedded defaults, overridden by a YAML file, overridden by CET_* environment variables.

Environment overrides use ``__`` for nesting, e.g. ``CET_KB__TOP_K=8`` or ``CET_RUN__SEED=3``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cet.errors import CetError


class EmbeddingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # onnx by default: the same all-MiniLM-L6-v2 as int8 ONNX (cosine 0.9996 to the torch vectors), without
    # torch's import time and with ~20x lower single-query latency on this CPU (docs/benchmarks.md)
    backend: Literal["sentence-transformers", "onnx", "openai"] = "onnx"
    model: str = "all-MiniLM-L6-v2"  # a packaged name, a local path, or the endpoint's model name
    batch_size: int = Field(16, ge=1)  # 1.24x the chunks/s of 64, same vectors (bench/embedding_throughput.py)
    # all-MiniLM-L6-v2 was trained on 128 word pieces; the text beyond that is still keyword-indexed
    max_tokens: int = Field(128, ge=8)
    threads: int | None = Field(None, ge=1)  # onnxruntime intra-op threads (None: the CPUs, at most 4)
    base_url: str | None = None  # OpenAI-compatible endpoint, for backend=openai
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never stored


class KnowledgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    db: str = "data/kb.sqlite"  # a SQLite path or a postgresql:// URL
    top_k: int = Field(5, ge=1)
    candidates: int = Field(50, ge=1)  # per retriever, before rank fusion
    fusion: Literal["convex", "rrf"] = "convex"  # how hybrid search merges BM25 and vector rankings
    fusion_alpha: float = Field(0.6, ge=0.0, le=1.0)  # BM25's weight in the convex fusion
    rrf_k: int = Field(60, ge=1)
    # SQLite BM25: words in more than this fraction of chunks do not select candidates (0, the default: all
    # words do). 0.05 makes BM25 ~5x faster and costs ~0.09 nDCG@10 on the labelled set (docs/benchmarks.md)
    bm25_common_fraction: float = Field(0.0, ge=0.0, le=1.0)
    chunk_max_chars: int = Field(1800, ge=200)
    ann_threshold: int = Field(20000, ge=0)  # at or above this many vectors, use the HNSW index
    keyword_index_threshold: int = Field(20000, ge=0)  # at or above this many chunks, keyword search by Tantivy
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_search: int = Field(96, ge=8)
    hnsw_ef_construction: int = Field(80, ge=8)
    embedding: EmbeddingConfig = EmbeddingConfig()


class SourcesConfig(BaseModel):
    """Where the main job finds each default source ("packaged": located inside an installed package)."""

    model_config = ConfigDict(extra="forbid")

    exercism: str | None = "../shared/data/exercism"
    docs: str | None = "/usr/share/doc/python3.11/html/_sources"
    # the parts of Python's docs a coding assistant needs (not the C API, changelogs or packaging history)
    docs_include: list[str] = ["library", "tutorial", "reference", "howto", "faq", "glossary.rst.txt"]
    leetcode: str | None = "packaged"
    # no git repository by default: this project's own tests quote evaluation tasks (HumanEval examples), so
    # ingesting "." would leak held-out tests into retrieval; point it at a repository to ingest one
    git: str | None = None
    freecodecamp: str | None = None
    stackexchange: str | None = None
    stackexchange_min_score: int = 0
    stackexchange_tags: list[str] = []


class SandboxLimits(BaseModel):
    """Limits on one run of untrusted code (see docs/execution.md)."""

    model_config = ConfigDict(extra="forbid")

    wall_timeout_s: float = Field(10.0, gt=0)  # whole process tree killed at this wall-clock time
    cpu_time_s: int = Field(10, ge=1)  # RLIMIT_CPU per process
    memory_mb: int = Field(1024, ge=64)  # RLIMIT_AS per process (JavaScript gets js_memory_mb)
    js_memory_mb: int = Field(2048, ge=1024)  # node reserves ~750 MB of address space before the heap
    file_size_mb: int = Field(16, ge=1)  # RLIMIT_FSIZE: the largest file a run may write
    work_dir_mb: int = Field(64, ge=1)  # size of the private tmpfs work directory
    max_processes: int = Field(64, ge=4)  # RLIMIT_NPROC for the sandbox's unprivileged uid
    output_limit_kb: int = Field(256, ge=1)  # stdout + stderr kept; more ends the run as output-limit


class RewardWeights(BaseModel):
    """Weights of the reward's terms (the paper's compile / test / performance / security / quality)."""

    model_config = ConfigDict(extra="forbid")

    compile: float = Field(0.1, ge=0)
    tests: float = Field(0.6, ge=0)
    performance: float = Field(0.1, ge=0)
    security: float = Field(0.1, ge=0)
    quality: float = Field(0.1, ge=0)


class ExecConfig(BaseModel):
    """The execution sandbox: isolation, limits, which signals to collect, the reward, the worker pool."""

    model_config = ConfigDict(extra="forbid")

    isolation: Literal["auto", "bubblewrap", "weak"] = "auto"  # auto: bubblewrap when it runs, else weak, loudly
    limits: SandboxLimits = SandboxLimits()
    lint: bool = True
    security: bool = True
    performance: bool = True  # time the reference solution too, when the task has one
    reward: RewardWeights = RewardWeights()
    workers: int = Field(2, ge=1)
    # the visible part of every task's tests: the first cases a learner is shown (every condition and the CET see
    # them); the rest are hidden and decide the verdict (execution/test_split.py)
    visible_tests: int = Field(3, ge=0)
    tasks_dir: str = "data/tasks"  # where the main job writes the imported tasks files
    repos_dir: str = "data/repos"  # unpacked source distributions that repository tasks run in
    package_index: str = "https://pypi.org/simple"  # where `cet tasks repo NAME==VERSION` fetches from (PEP 503)
    sandbox_uid: int = Field(60100, ge=1000)  # first unprivileged uid; worker i runs as sandbox_uid + i
    node: str = "node"


class TeamRoles(BaseModel):
    """Per-role model lists; a role with several models rotates through them (see llm/team.py)."""

    model_config = ConfigDict(extra="forbid")

    generator: list[str] = ["qwen2.5-coder-0.5b-instruct"]
    judge: list[str] = ["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"]
    question_writer: list[str] = ["qwen2.5-coder-0.5b-instruct"]


class LLMConfig(BaseModel):
    """The LLM team: where models live, how local ones run, and the team's limits."""

    model_config = ConfigDict(extra="forbid")

    models_dir: str = "data/models"  # pulled and verified model files (git-ignored)
    n_threads: int = Field(2, ge=1)  # llama.cpp threads per model
    n_ctx: int = Field(4096, ge=256)  # llama.cpp context window
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    seed: int = 0
    timeout_s: float = Field(120.0, gt=0)
    retries: int = Field(3, ge=0)  # on rate limits, timeouts and unreachable endpoints, with backoff
    backoff_s: float = Field(1.0, ge=0)
    concurrency: int = Field(2, ge=1)  # remote requests in flight across the team (local ones: n_parallel)
    # ... of which on in-process local models (llama.cpp, transformers): two models on the same two cores run
    # far slower side by side than one after the other (measured: 0.9 vs 36 tokens/s at 2 threads each)
    local_concurrency: int = Field(1, ge=1)
    # llama.cpp slots per local model: requests to the same model decode together in one batch (continuous
    # batching). 1 by default: on 2 CPU cores 4 slots gave only 1.0-1.5x the generations per hour
    # (bench/generation_batching.py) and batched greedy replies differ from one-at-a-time ones (1-2 of 8), which
    # would make contexts and verdicts depend on timing; raise it on a GPU or a many-core machine
    n_parallel: int = Field(1, ge=1)
    cache_path: str | None = "data/llm-cache.sqlite"  # persistent response cache; None turns it off
    budget_usd: float | None = None  # stop the run cleanly once this much has been spent
    budget_tokens: int | None = None  # ... or this many tokens (prompt + completion)
    openai_base_url: str | None = None  # an OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, Together)
    openai_api_key_env: str = "OPENAI_API_KEY"
    anthropic_api_key_env: str = "ANTHROPIC_API_KEY"
    gemini_api_key_env: str = "GEMINI_API_KEY"
    roles: TeamRoles = TeamRoles()


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainSettings(BaseModel):
    """One SFT stage (TRL's SFTTrainer): what every phase's training step uses unless it overrides it."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(2.0, gt=0)
    # sequences per optimizer step (times grad_accum). They go through the model `micro_batch` at a time, the
    # gradients accumulated: one 1,024-token sequence's activations in memory instead of four (batch 4 at once peaked
    # above 16 GB resident; model/training.py says what was measured), the same update
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    micro_batch: int = Field(1, ge=1)  # sequences per forward pass (a batch_size it does not divide is rounded up)
    # activation checkpointing: keep only every decoder layer's input and recompute the rest in the backward pass.
    # 1 checkpoints every layer, n every n-th, 0 none. Measured on SmolLM2-135M, ~1,000-token sequences one a pass,
    # 2 cores: every layer 2.1 GB peak at 112 tokens/s, none 3.9 GB at 141 tokens/s
    checkpoint_every: int = Field(1, ge=0)
    # glibc keeps the memory torch frees (its aligned blocks rarely fit the holes they leave): during training, when
    # the process has grown this much since the last time, freed heap pages go back to the OS (checked after each
    # decoder layer). Measured: ~2.0 GB peak instead of 3.0, ~2.5% more CPU; 0 never
    heap_headroom_mb: int = Field(512, ge=0)
    learning_rate: float = Field(2e-4, gt=0)
    # tokens of prompt + completion; longer examples are truncated, and TRL drops those whose completion starts past
    # it. The CET's input (cet.input_tokens, estimated at 4 characters a token) is 750-1,160 SmolLM2 tokens and a
    # target up to ~400: at 1,024, 14 of the default run's 21 Phase 2 pairs were dropped (measured)
    max_length: int = Field(1536, ge=32)
    save_steps: int = Field(10, ge=1)  # a checkpoint every this many optimizer steps (resume point)
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)


class Phase3Settings(BaseModel):
    """Phase 3: rollouts of candidate contexts through a team of generators, the reward, the learning step."""

    model_config = ConfigDict(extra="forbid")

    # the team a context must work for (the robust reward is read across them): the evaluation's generator first
    generators: list[str] = ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]
    robustness_lambda: float = Field(0.5, ge=0)  # reward = mean - lambda * variance across the generators
    samples: int = Field(2, ge=0)  # sampled CET contexts per task, besides its greedy one and the anchors
    temperature: float = Field(0.8, gt=0)
    learner: Literal["rest", "dpo"] = "rest"  # ReST-EM (best context per task, SFT) or DPO on best vs worst
    dpo_beta: float = Field(0.1, gt=0)
    # a context replaces "nothing to add" as a task's target only when its robust reward beats raw's by this much
    min_gain: float = Field(0.0, ge=0)
    repair_rounds: int = Field(2, ge=0)  # failed attempt -> bug report -> the CET's debugging context -> retry
    max_tokens: int = Field(320, ge=16)  # the generators' (as the evaluation's)
    # rollouts on a Ray cluster: its address ("ray://host:10001", "auto"), or "local" for one started in-process;
    # None: in this process. Each Ray task rolls out one batch with its own team and sandbox
    ray_address: str | None = None
    ray_cpus_per_task: float = Field(2.0, gt=0)  # a generator's llama.cpp threads (llm.n_threads)


class CETSettings(BaseModel):
    """The CET: its base model, LoRA adapters, training and generation."""

    model_config = ConfigDict(extra="forbid")

    # a catalog GGUF (converted once into a torch checkpoint under llm.models_dir), a Hugging Face model id, or a
    # local directory holding a transformers checkpoint
    base_model: str = "smollm2-135m-instruct"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: llama.cpp (the GGUF base + the adapters exported as a GGUF adapter, ~7x faster on CPU) when the base
    # is a catalog model and the device the CPU; else transformers
    inference: Literal["auto", "llamacpp", "transformers"] = "auto"
    lora: LoraSettings = LoraSettings()
    train: TrainSettings = TrainSettings()
    max_new_tokens: int = Field(256, ge=8)
    # decoding constrained to the section grammar (llama.cpp GBNF; a logits processor on transformers): the
    # reply is always a well-formed context; off only to measure what the grammar buys
    constrained: bool = True
    # transformers generation cuts a longer prompt from its start (the prompts are bounded in characters already)
    max_input_tokens: int = Field(1536, ge=64)
    # what the CET reads (task, interface, visible tests, code, error, chunks) is cut to this many tokens, the parts
    # that matter kept first (model/prompts.py); the template and the "full input" condition read the same cut
    input_tokens: int = Field(768, ge=64)
    top_k: int = Field(5, ge=1)  # chunks retrieved per task
    # Phase 2's requirement targets: "selective" = only the input facts the task as given does not already put in
    # front of the generator and the hidden tests use (else "## Nothing to add": the raw task stays as it is);
    # "full" = the whole restated specification (goal, interface, examples, constraints, knowledge, pitfalls)
    requirement_targets: Literal["selective", "full"] = "selective"
    phase3: Phase3Settings = Phase3Settings()
    checkpoints_dir: str = "data/cet"  # the current CET after each phase: data/cet/phase1, phase2, phase3


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs_dir: str = "runs"
    seed: int = 0


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"  # loopback by default; any other address needs a bearer token
    port: int = Field(8080, ge=1, le=65535)
    token_env: str = "CET_SERVE_TOKEN"  # the bearer token is read from this variable, never stored
    max_body_bytes: int = Field(1_000_000, ge=1024)  # a request body over this is refused (413)
    feedback_db: str = "data/serve/feedback.sqlite"  # served contexts and their outcomes (SQLite, WAL)
    registry_dir: str = "data/registry"  # versioned CET checkpoints; `cet serve` serves the champion by default


class CetConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CET_", env_nested_delimiter="__", extra="forbid")

    kb: KnowledgeConfig = KnowledgeConfig()
    sources: SourcesConfig = SourcesConfig()
    exec: ExecConfig = ExecConfig()
    llm: LLMConfig = LLMConfig()
    cet: CETSettings = CETSettings()
    serve: ServeConfig = ServeConfig()
    run: RunConfig = RunConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment beats the YAML file (passed as init values), which beats the defaults
        return (env_settings, init_settings)


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> CetConfig:
    """Resolve the config: defaults < YAML file (``path`` or $CET_CONFIG) < environment < ``overrides``."""
    path = path or os.environ.get("CET_CONFIG")
    values: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise CetError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise CetError(f"config file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise CetError(f"config file {p} must hold a mapping at the top level")
        values = loaded
    try:
        cfg = CetConfig(**values)
        if overrides:
            # explicit overrides (command-line flags) beat everything; sections are re-validated one by one
            # so the environment is not applied a second time over them
            sections = {}
            for name in CetConfig.model_fields:
                section = getattr(cfg, name)
                extra = overrides.get(name) or {}
                try:
                    sections[name] = type(section).model_validate(_deep_merge(section.model_dump(), extra))
                except ValidationError as e:
                    raise _config_error(e, prefix=name) from None
            cfg = CetConfig.model_construct(**sections)
    except ValidationError as e:
        raise _config_error(e) from None
    return cfg


def _config_error(error: ValidationError, prefix: str | None = None) -> CetError:
    first = error.errors()[0]
    where = ".".join(str(x) for x in ([prefix] if prefix else []) + list(first["loc"]))
    return CetError(f"invalid config value for {where}: {first['msg']}")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif value is not None:
            out[key] = value
    return out


def dump_config(cfg: CetConfig, masked: bool = False) -> str:
    """The config as YAML; `masked`: every URL in it (databases, endpoints) without its password, for what travels
    (a checkpoint)."""
    data = cfg.model_dump(mode="json")
    return yaml.safe_dump(_masked(data) if masked else data, sort_keys=False)


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return mask_url(value) if isinstance(value, str) and "://" in value else value


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print or log)."""
    masked = re.sub(r"(password\s*=\s*)('[^']*'|[^&\s]*)", r"\1***", url)
    scheme, sep, rest = masked.partition("://")
    if not sep or "@" not in rest:
        return masked
    userinfo, _, hostpart = rest.rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}://{userinfo}@{hostpart}"
