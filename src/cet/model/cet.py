"""The CET: a causal LM with LoRA adapters (peft); generation, and checkpoints that reload exactly.

A checkpoint directory holds the adapter (`adapter_config.json`, `adapter_model.safetensors`), the tokenizer
and `cet.json`: the base it adapts, the LoRA settings, the phase that wrote it, the version (sha256) of the
data it was trained on and the context schema version. `CETModel.load(dir)` rebuilds the same model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.llm.catalog import CATALOG
from cet.model.base import pick_device, resolve_base
from cet.model.context import SCHEMA_VERSION, ParsedContext, parse_context
from cet.model.prompts import context_messages

MANIFEST = "cet.json"


class CETModel:
    def __init__(self, model: Any, tokenizer: Any, info: dict[str, Any], cfg: CetConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info  # base, lora, phase, data_version, ...
        self.cfg = cfg
        self._engine: Any = None  # llama.cpp with the adapters exported, while the weights are unchanged
        self._scratch: Any = None
        self.failures: list[str] = []  # generations that failed (their replies are empty)

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
        return cls(PeftModel.from_pretrained(model, str(path), is_trainable=trainable), tokenizer, info, cfg)

    @classmethod
    def open(cls, cfg: CetConfig, checkpoint: str | Path | None = None) -> CETModel:
        """The CET to use: `checkpoint`, else the latest phase saved under cet.checkpoints_dir, else the base."""
        if checkpoint:
            return cls.load(checkpoint, cfg)
        for phase in ("phase2", "phase1"):
            candidate = Path(cfg.cet.checkpoints_dir) / phase
            if (candidate / MANIFEST).is_file():
                return cls.load(candidate, cfg)
        return cls.from_base(cfg)

    def save(self, path: str | Path, phase: str, data_version: str | None, **extra: Any) -> Path:
        """Adapters, tokenizer and manifest, written beside and then renamed over `path` (never half-written)."""
        import shutil

        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        self.model.save_pretrained(str(partial))
        self.tokenizer.save_pretrained(str(partial))
        self.info = {**self.info, "phase": phase, "data_version": data_version, "saved": time.time(), **extra}
        (partial / MANIFEST).write_text(json.dumps(self.info, indent=2, default=str) + "\n", encoding="utf-8")
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
        """Greedy replies to chat conversations; deterministic for the same weights."""
        if self.inference_backend() == "llamacpp":
            return self._generate_llamacpp(conversations, max_new_tokens)
        return self._generate_transformers(conversations, max_new_tokens, max_input_tokens, batch_size)

    def _generate_llamacpp(self, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int) -> list[str]:
        from cet.llm.base import GenerationParams, LLMError, Message

        engine = self._llamacpp()
        params = GenerationParams(max_tokens=max_new_tokens, temperature=0.0, timeout_s=self.cfg.llm.timeout_s)
        replies = []
        for conversation in conversations:
            try:
                completion = engine.chat([Message(m["role"], m["content"]) for m in conversation], params)  # type: ignore[arg-type]
            except LLMError as e:  # an empty reply: the context is then empty and the prompt the raw task
                self.failures.append(str(e))
                replies.append("")
                continue
            replies.append(completion.text.strip())
        return replies

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
                engine = LlamaCppLLM(gguf, name="cet", n_threads=self.cfg.llm.n_threads, n_ctx=self.cfg.llm.n_ctx,
                                     lora=[(adapter, 1.0)])
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
                               max_input_tokens: int, batch_size: int) -> list[str]:
        import torch

        self.model.eval()
        replies: list[str] = []
        tok = self.tokenizer
        tok.padding_side = "left"
        tok.truncation_side = "left"  # an over-long prompt loses its beginning, never the assistant turn's start
        for start in range(0, len(conversations), batch_size):
            batch = conversations[start:start + batch_size]
            texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in batch]
            encoded = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_input_tokens,
                          add_special_tokens=False).to(self.device)
            with torch.no_grad():
                out = self.model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            for row in out[:, encoded["input_ids"].shape[1]:]:
                replies.append(tok.decode(row, skip_special_tokens=True).strip())
        return replies

    def engineer(self, items: Sequence[dict[str, Any]]) -> list[tuple[ParsedContext, str]]:
        """Engineered contexts for items {task, hits, code?, error?}: (parsed context, raw reply) each."""
        conversations = [context_messages(i["task"], i.get("hits", ()), i.get("code"), i.get("error"))
                         for i in items]
        replies = self.generate(conversations, self.cfg.cet.max_new_tokens, self.cfg.cet.max_input_tokens)
        return [(parse_context(reply, [h.id for h in item.get("hits", ())]), reply)
                for item, reply in zip(items, replies, strict=True)]


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
