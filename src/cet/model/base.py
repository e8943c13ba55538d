"""The CET's base model as a torch checkpoint: a catalog GGUF converted once, a local directory, or a hub id.

The packaged SmolLM2-135M-Instruct is a 4-bit GGUF. transformers (with `gguf`) de-quantizes it into a torch
model, but then refuses to save it (it still carries a quantization config); what works is to drop that config,
build a fresh model from it, load the de-quantized weights and save that (see ../shared/OFFLINE.md). The result
lands in `<llm.models_dir>/<name>-torch/` with a stamp naming the GGUF's sha256, so it is converted once.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.llm.catalog import CATALOG, get_entry, model_path

STAMP = "cet-converted.json"


def torch_dir(name: str, cfg: CetConfig) -> Path:
    return Path(cfg.llm.models_dir) / f"{name}-torch"


def resolve_base(cfg: CetConfig, spec: str | None = None) -> str:
    """Where `from_pretrained` finds the base: a converted catalog model (converting it first), a local
    checkpoint directory, or a Hugging Face id (used as is; that path needs the network or the hub cache)."""
    spec = spec or cfg.cet.base_model
    if spec in CATALOG:
        return str(convert_gguf(spec, cfg))
    path = Path(spec)
    if path.exists():
        if not (path / "config.json").is_file():
            raise CetError(f"base model {spec}: the directory has no config.json (not a transformers checkpoint)")
        return str(path)
    if spec.startswith((".", "/")) or spec.count("/") != 1:
        raise CetError(f"base model {spec!r} is neither a catalog model ({', '.join(CATALOG)}), an existing "
                       "checkpoint directory, nor a Hugging Face id like 'Qwen/Qwen2.5-Coder-0.5B-Instruct'")
    return spec


def convert_gguf(name: str, cfg: CetConfig, force: bool = False) -> Path:
    """The torch checkpoint of catalog model `name`, converted from its verified GGUF if not done yet."""
    entry = get_entry(name)
    target = torch_dir(name, cfg)
    stamp = target / STAMP
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text(encoding="utf-8")).get("gguf_sha256") == entry.sha256:
                return target
        except (OSError, ValueError):
            pass
    gguf = model_path(entry, cfg.llm)  # ModelUnavailable (one line) when it is not pulled
    started = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing = model.load_state_dict(quantized.state_dict(), strict=False)
    if missing.missing_keys and not _only_tied(missing.missing_keys, config):
        raise CetError(f"converting {name}: weights missing after de-quantization: {missing.missing_keys[:5]}")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    info: dict[str, Any] = {"catalog_name": name, "gguf": gguf.name, "gguf_sha256": entry.sha256,
                            "seconds": round(time.perf_counter() - started, 1), "dtype": "float32"}
    (partial / STAMP).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def _only_tied(keys: list[str], config: Any) -> bool:
    return bool(getattr(config, "tie_word_embeddings", False)) and all(k == "lm_head.weight" for k in keys)


def pick_device(setting: str) -> str:
    import torch

    if setting == "cuda" and not torch.cuda.is_available():
        raise CetError("cet.device is 'cuda' but no CUDA device is available")
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting
