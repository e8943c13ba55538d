"""The CET: a causal LM with LoRA adapters (peft); generation, and checkpoints that reload exactly.

A checkpoint directory holds the adapter (`adapter_config.json`, `adapter_model.safetensors`), the tokenizer
and `cet.json`: the base it adapts, the LoRA settings, the phase that wrote it, the version (sha256) of the
data it was trained on and the context schema version. `CETModel.load(dir)` rebuilds the same model.

Generation is greedy (deterministic for the same weights and input), on llama.cpp (the GGUF base with the
adapters exported as a GGUF adapter; `llm.n_parallel` slots, the conversations submitted at once so they decode
in one batch) or on transformers. `engineer` constrains the reply to the context grammar (`cet.constrained`;
`cet.model.constrained`) and returns one `EngineeredReply` per item: the parsed context, the raw reply, and the
error when generation failed (never an empty context in its place).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.llm.catalog import CATALOG
from cet.model.base import pick_device, resolve_base
from cet.model.constrained import ContextGrammar, GrammarLogitsProcessor, cut_to_lines
from cet.model.context import SCHEMA_VERSION, ParsedContext, parse_context
from cet.model.prompts import context_messages, input_messages

MANIFEST = "cet.json"
CONFIG_FILE = "config.yaml"  # the typed config the checkpoint was trained under (cet.config.dump_config)


@dataclass
class Generation:
    """One reply: its text (as generated, not stripped), the error when generation failed (the text is then
    empty), seconds (llama.cpp: this request's; transformers: its batch's), whether the token limit cut it."""

    text: str
    error: str | None = None
    seconds: float = 0.0
    truncated: bool = False


@dataclass
class EngineeredReply:
    """One engineered context: `parsed` (None exactly when `error` says why there is no context), the raw reply,
    seconds the generation took, and whether the token limit cut the reply (a constrained reply is then read up
    to its last complete line)."""

    parsed: ParsedContext | None
    raw: str
    error: str | None = None
    seconds: float = 0.0
    truncated: bool = False


class CETModel:
    def __init__(self, model: Any, tokenizer: Any, info: dict[str, Any], cfg: CetConfig,
                 checkpoint: Path | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info  # base, lora, phase, data_version, ...
        self.cfg = cfg
        self.checkpoint = checkpoint  # the directory it was loaded from (None: the untrained base)
        self._engine: Any = None  # llama.cpp with the adapters exported, while the weights are unchanged
        self._scratch: Any = None

    # ------------------------------------------------------------------------------------------- building
    @classmethod
    def from_base(cls, cfg: CetConfig, base: str | None = None) -> CETModel:
        """The untrained CET: the base model with fresh LoRA adapters (the adapters start as the identity)."""
        import torch
        from peft import LoraConfig, get_peft_model

        spec = base or cfg.cet.base_model
        model, tokenizer = _load_base(resolve_base(cfg, spec), pick_device(cfg.cet.device))
        torch.manual_seed(cfg.run.seed)
        lora = cfg.cet.lora
        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        targets = [m for m in lora.target_modules if m in present]
        if not targets:
            raise CetError(f"none of cet.lora.target_modules {lora.target_modules} exists in {spec}")
        peft_config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                                 task_type="CAUSAL_LM")
        info = {"base": spec, "lora": {**lora.model_dump(), "target_modules": targets}, "phase": "base",
                "data_version": None, "schema_version": SCHEMA_VERSION}
        return cls(get_peft_model(model, peft_config), tokenizer, info, cfg)

    @classmethod
    def load(cls, path: str | Path, cfg: CetConfig, trainable: bool = False) -> CETModel:
        """A saved CET, rebuilt on its base; `trainable` keeps the adapters trainable (to train further)."""
        from peft import PeftModel

        path = Path(path)
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise CetError(f"{path} is not a CET checkpoint (no {MANIFEST}); train one with `cet train phase1`")
        try:
            info = json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError as e:
            raise CetError(f"{manifest} is not valid JSON: {e}") from None
        model, _ = _load_base(resolve_base(cfg, info["base"]), pick_device(cfg.cet.device))
        tokenizer = _tokenizer(str(path))
        return cls(PeftModel.from_pretrained(model, str(path), is_trainable=trainable), tokenizer, info, cfg,
                   checkpoint=path)

    @classmethod
    def open(cls, cfg: CetConfig, checkpoint: str | Path | None = None, base: bool = False) -> CETModel:
        """The CET to use: `checkpoint`, else the latest phase saved under cet.checkpoints_dir; `base`: the
        untrained base model, asked for explicitly. Without a trained checkpoint and without `base`, a CetError:
        an untrained CET writes poor contexts, and nobody should get one without asking for it."""
        if base:
            if checkpoint:
                raise CetError("give a CET checkpoint or ask for the untrained base model, not both")
            return cls.from_base(cfg)
        if checkpoint:
            return cls.load(checkpoint, cfg)
        for phase in ("phase3", "phase2", "phase1"):
            candidate = Path(cfg.cet.checkpoints_dir) / phase
            if (candidate / MANIFEST).is_file():
                return cls.load(candidate, cfg)
        raise CetError(f"no trained CET checkpoint in {cfg.cet.checkpoints_dir} (phase2/ or phase1/): train one with "
                       "`cet train phase1`, give one with --checkpoint, or use the untrained base model with --base")

    def save(self, path: str | Path, phase: str, data_version: str | None, options: Any = None,
             **extra: Any) -> Path:
        """Adapters, tokenizer, manifest and the settings that made them, written beside and then renamed over `path`
        (never half-written): the whole typed config as config.yaml (database URLs without their passwords), and the
        phase's options (a dataclass) in the manifest, so a checkpoint says how it was trained without its run
        directory."""
        import shutil
        from dataclasses import asdict

        from cet.config import dump_config

        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        self.model.save_pretrained(str(partial))
        self.tokenizer.save_pretrained(str(partial))
        self.info = {**self.info, "phase": phase, "data_version": data_version, "saved": time.time(),
                     "options": asdict(options) if options is not None else None, **extra}
        (partial / MANIFEST).write_text(json.dumps(self.info, indent=2, default=str) + "\n", encoding="utf-8")
        (partial / CONFIG_FILE).write_text(dump_config(self.cfg, masked=True), encoding="utf-8")  # no DB password
        shutil.rmtree(path, ignore_errors=True)
        partial.rename(path)
        return path

    # ------------------------------------------------------------------------------------------- generation
    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def weights_changed(self) -> None:
        """Called after training: the next generation exports the adapters afresh."""
        self.close_engine()

    def inference_backend(self) -> str:
        """"llamacpp" when the base is a catalog GGUF llama.cpp can run with our adapters on the CPU, else
        "transformers" (a hub or local base, a GPU, or `cet.inference: transformers`)."""
        setting = self.cfg.cet.inference
        if setting != "auto":
            return setting
        if self.info["base"] in CATALOG and self.device.type == "cpu":
            return "llamacpp"
        return "transformers"

    def generate(self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int = 256,
                 max_input_tokens: int = 1536, batch_size: int = 4) -> list[str]:
        """Greedy replies to chat conversations (stripped); deterministic for the same weights. A failed generation
        is an empty string here: `generate_replies` says which failed and why."""
        return [g.text.strip() for g in self.generate_replies(conversations, max_new_tokens, max_input_tokens,
                                                                batch_size)]

    def generate_replies(self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int = 256,
                         max_input_tokens: int = 1536, batch_size: int = 4,
                         grammars: Sequence[ContextGrammar | None] | None = None,
                         temperature: float = 0.0, seed: int | None = None) -> list[Generation]:
        """Replies, one `Generation` each, in order: greedy, or sampled at `temperature` > 0 with `seed` (Phase 3's
        candidates; default run.seed); `grammars`: the context grammar each reply must follow (None: that one is
        free): GBNF on llama.cpp, llguidance's mask on transformers."""
        grammars = list(grammars) if grammars is not None else [None] * len(conversations)
        if len(grammars) != len(conversations):
            raise ValueError(f"{len(grammars)} grammars for {len(conversations)} conversations")
        if not conversations:
            return []
        seed = self.cfg.run.seed if seed is None else seed
        if self.inference_backend() == "llamacpp":
            return self._generate_llamacpp(conversations, max_new_tokens, grammars, temperature, seed)
        return self._generate_transformers(conversations, max_new_tokens, max_input_tokens, batch_size, grammars,
                                           temperature, seed)

    def _generate_llamacpp(self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int,
                           grammars: Sequence[ContextGrammar | None], temperature: float = 0.0,
                           seed: int = 0) -> list[Generation]:
        """All conversations submitted at once (a thread each, up to `llm.n_parallel`): llama.cpp decodes the
        requests in its slots together, one batch a step. Each request is processed whole (no prompt cache): a
        reply reused from a cached prefix differs from one computed afresh, so with one slot the same input always
        gives the same reply. With several slots, replies depend on what else shares the batch (llama.cpp's
        arithmetic is not batch-invariant): measured, 2-3 of 8 replies differed between identical runs."""
        from cet.llm.base import LLMError

        engine = self._llamacpp().engine

        def one(i: int) -> Generation:
            grammar = grammars[i]
            request: dict[str, Any] = {
                "messages": [{"role": m["role"], "content": m["content"]} for m in conversations[i]],
                "max_tokens": max_new_tokens, "temperature": temperature, "top_p": 1.0, "seed": seed,
                "cache_prompt": False}
            if grammar is not None:
                request["grammar"] = grammar.to_gbnf()
            started = time.perf_counter()
            try:
                reply = engine.run("chat", request, self.cfg.llm.timeout_s, "cet")
            except LLMError as e:
                return Generation("", str(e), time.perf_counter() - started)
            return Generation(reply["text"], None, time.perf_counter() - started, reply["finish_reason"] == "length")

        workers = min(self.cfg.llm.n_parallel, len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cet-generate") as pool:
            return list(pool.map(one, range(len(conversations))))

    def _llamacpp(self) -> Any:
        import tempfile

        from cet.llm.catalog import model_path
        from cet.llm.providers.llamacpp import LlamaCppLLM
        from cet.model.gguf_adapter import export_lora_gguf

        if self._engine is None:
            gguf = model_path(self.info["base"], self.cfg.llm)
            scratch = tempfile.TemporaryDirectory(prefix="cet-adapter-")
            try:
                adapter = export_lora_gguf(self.model, gguf, Path(scratch.name) / "adapter.gguf")
                slots = self.cfg.llm.n_parallel  # llama.cpp divides its context among the slots: n_ctx each
                engine = LlamaCppLLM(gguf, name="cet", n_threads=self.cfg.llm.n_threads,
                                     n_ctx=self.cfg.llm.n_ctx * slots, n_parallel=slots, lora=[(adapter, 1.0)])
            except BaseException:
                scratch.cleanup()
                raise
            self._engine, self._scratch = engine, scratch
        return self._engine

    def close_engine(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def _generate_transformers(self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int,
                               max_input_tokens: int, batch_size: int, grammars: Sequence[ContextGrammar | None],
                               temperature: float = 0.0, seed: int = 0) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList

        self.model.eval()
        replies: list[Generation] = []
        tok = self.tokenizer
        tok.padding_side = "left"
        tok.truncation_side = "left"  # an over-long prompt loses its beginning, never the assistant turn's start
        for start in range(0, len(conversations), batch_size):
            batch = conversations[start:start + batch_size]
            batch_grammars = grammars[start:start + batch_size]
            started = time.perf_counter()
            texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in batch]
            encoded = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_input_tokens,
                          add_special_tokens=False).to(self.device)
            constraint = GrammarLogitsProcessor(tok, batch_grammars) if any(batch_grammars) else None
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0} if temperature > 0 else \
                {"do_sample": False}
            if temperature > 0:
                torch.manual_seed(seed + start)
            with torch.no_grad():
                out = self.model.generate(**encoded, max_new_tokens=max_new_tokens, **sampling,
                                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                          logits_processor=LogitsProcessorList([constraint] if constraint else []))
            seconds = time.perf_counter() - started
            for j, row in enumerate(out[:, encoded["input_ids"].shape[1]:]):
                error = constraint.errors.get(j) if constraint else None
                if error:
                    replies.append(Generation("", f"constrained decoding failed: {error}", seconds))
                    continue
                replies.append(Generation(tok.decode(row, skip_special_tokens=True), None, seconds,
                                          truncated=tok.eos_token_id not in row.tolist()))
        return replies

    def engineer(self, items: Sequence[dict[str, Any]], temperature: float = 0.0,
                 seed: int | None = None) -> list[EngineeredReply]:
        """Engineered contexts, one `EngineeredReply` per item, in order. An item is {"input": CETInput} or
        {"task", "hits"?, "code"?, "error"?}, with optional "choices" ({section: [strings]}: every bullet of that
        section is then one of them). With `cet.constrained` the reply follows the context grammar: Knowledge
        cites only the item's retrieved chunk ids, and the bug-report sections are open only when code or an error
        report is given."""
        conversations: list[list[dict[str, str]]] = []
        known: list[list[str]] = []
        grammars: list[ContextGrammar | None] = []
        limit = self.cfg.cet.max_new_tokens
        # a line short enough that the first section (heading, one line) always fits the token limit: a cut reply
        # then still holds a whole section (a token writes at least one character of ASCII text)
        line_chars = min(ContextGrammar.max_line_chars, max(8, limit - 8))
        for item in items:
            inp = item.get("input")
            if inp is not None:
                hits, messages, bug = tuple(inp.hits), input_messages(inp), bool(inp.code or inp.error)
            else:
                hits, code, error = tuple(item.get("hits") or ()), item.get("code"), item.get("error")
                messages, bug = context_messages(item["task"], hits, code, error), bool(code or error)
            conversations.append(messages)
            known.append([h.id for h in hits])
            grammars.append(ContextGrammar.for_input(hits, bug_report=bug, choices=item.get("choices"),
                                                     max_line_chars=line_chars)
                            if self.cfg.cet.constrained else None)
        replies = self.generate_replies(conversations, limit, self.cfg.cet.max_input_tokens, grammars=grammars,
                                        temperature=temperature, seed=seed)
        return [self._engineered(reply, ids, grammar is not None, limit)
                for reply, ids, grammar in zip(replies, known, grammars, strict=True)]

    @staticmethod
    def _engineered(reply: Generation, known: list[str], constrained: bool, limit: int) -> EngineeredReply:
        raw = reply.text.strip()
        if reply.error is not None:
            return EngineeredReply(None, raw, reply.error, reply.seconds, reply.truncated)
        text = cut_to_lines(reply.text) if constrained and reply.truncated else reply.text
        parsed = parse_context(text, known)
        if constrained and not parsed.valid:  # the grammar admits only valid contexts: only a cut leaves none
            why = (f"the reply was cut at cet.max_new_tokens={limit} before a section was complete"
                   if reply.truncated else f"the constrained reply does not parse: {'; '.join(parsed.issues)}")
            return EngineeredReply(None, raw, why, reply.seconds, reply.truncated)
        return EngineeredReply(parsed, raw, None, reply.seconds, reply.truncated)


def _tokenizer(where: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(where)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise CetError(f"the tokenizer at {where} has no chat template: the CET needs an instruct (chat) base")
    return tokenizer


def _load_base(where: str, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32)
    except OSError as e:
        raise CetError(f"cannot load base model {where}: {str(e).splitlines()[0]}") from None
    return model.to(device), _tokenizer(where)
