"""The CET's LoRA adapters as a llama.cpp GGUF adapter, so the trained CET runs on its quantized GGUF base.

Generation with transformers on 2 CPU cores runs the 135M base at ~8 tokens/s (batch 1); llama.cpp runs the
same model from its 4-bit GGUF at ~60. The adapters are small (r x width per projection), so they are written
as an adapter GGUF (`general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`) with, per adapted
weight `blk.N.attn_q.weight`, the tensors `...weight.lora_a` (torch A, [r, in]) and `...weight.lora_b`
(torch B, [out, r]); llama.cpp applies `scale * alpha / r * B A`. The names come from gguf-py's tensor map.
llama.cpp stores the Llama query/key projections with their rows permuted for its rotary layout (the
transformers GGUF loader undoes that on load), so B of q_proj and k_proj gets the same permutation here.
Only base models whose GGUF architecture is "llama" are exported (SmolLM2 is one); others generate with
transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cet.errors import CetError

SUPPORTED_ARCHITECTURES = ("llama",)


def gguf_architecture(gguf_path: str | Path) -> dict[str, Any]:
    """general.architecture, head counts and block count of a GGUF file."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return None
        value = f.parts[f.data[0]]
        return bytes(value).decode() if key == "general.architecture" else int(value[0])

    arch = field("general.architecture")
    return {"architecture": arch, "heads": field(f"{arch}.attention.head_count"),
            "kv_heads": field(f"{arch}.attention.head_count_kv"), "blocks": field(f"{arch}.block_count")}


def permute_rows(weight: Any, n_head: int) -> Any:
    """The row order llama.cpp keeps Llama's q/k projections in (as its converter writes them)."""
    out = weight.shape[0]
    return weight.reshape(n_head, 2, out // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def export_lora_gguf(peft_model: Any, base_gguf: str | Path, out_path: str | Path) -> Path:
    """Write the adapters of `peft_model` (a peft LoRA model on the de-quantized `base_gguf`) as a GGUF adapter."""
    import gguf
    import torch

    info = gguf_architecture(base_gguf)
    if info["architecture"] not in SUPPORTED_ARCHITECTURES:
        raise CetError(f"cannot export adapters for GGUF architecture {info['architecture']!r}")
    peft_config = peft_model.peft_config["default"]
    alpha = float(peft_config.lora_alpha)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, info["blocks"])
    state = {k: v.detach().to(torch.float32).cpu() for k, v in peft_model.state_dict().items() if "lora_" in k}
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    written = 0
    for key in sorted(state):
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")  # model.layers.0.self_attn.q_proj
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise CetError(f"no GGUF tensor name for {module}")
        lora_a = state[key]
        lora_b = state[key.replace(".lora_A.", ".lora_B.")]
        if module.endswith("q_proj"):
            lora_b = permute_rows(lora_b, info["heads"])
        elif module.endswith("k_proj"):
            lora_b = permute_rows(lora_b, info["kv_heads"])
        writer.add_tensor(f"{target}.lora_a", lora_a.contiguous().numpy())
        writer.add_tensor(f"{target}.lora_b", lora_b.contiguous().numpy())
        written += 1
    if not written:
        raise CetError("the model has no LoRA adapters to export")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out_path)
    return out_path
