"""Supervised fine-tuning of the CET's adapters with TRL's SFTTrainer, resumable, with its throughput measured.

Examples are prompt-completion pairs in chat form (`{"prompt": [messages], "completion": [assistant message]}`),
so the loss falls on the completion only. Checkpoints go to `<out>/trainer/checkpoint-N` every
`save_steps`; a second call with the same data resumes from the last one. `plain_step_throughput` measures a
plain training step (forward, the same loss, backward, AdamW, no Trainer) on the same batches, so the report can
say what the trainer costs over the bare loop.

Memory (SmolLM2-135M, fp32, LoRA r16 on 7 projections, ~1,000-token sequences, 2 cores; peak resident memory
from `/usr/bin/time -v`): four sequences a pass peaked above 16 GB; the trainer and a plain step after it now
peak at 2.1 GB, at ~110 tokens/s on 2 idle cores. Each part, measured:

- one sequence per forward pass (`cet.train.micro_batch`), the batch (`batch_size` x `grad_accum` sequences per
  optimizer step) kept by gradient accumulation: one sequence's saved activations are ~2.2 GB at 1,024 tokens
  (5.2 GB peak with this alone);
- activation checkpointing (`cet.train.checkpoint_every`, transformers' `every_n_layers`): each decoder layer
  keeps its input only: 3.9 -> 2.1 GB peak, 141 -> 112 tokens/s on 2 idle cores;
- the loss over the completion's positions only (`completion_loss`: `logits_to_keep`, then cross-entropy), never
  the full `[tokens, 49,152]` logits. TRL's own fused LM head (chunked log-probs) scores every position on the CPU
  (its compact path is for Triton devices), recomputes the projection in the backward pass, and its CPU fallback
  makes several copies of each 134 MB vocabulary tile: a step took 13.6 CPU-s with it against 9.8 with this loss,
  and ~0.5 GB more;
- glibc 2.36 keeps what torch frees: its 64-byte-aligned blocks (posix_memalign) rarely fit the holes freed
  tensors leave, so the heap grows into fresh pages and the holes stay resident (3.0 GB peak for ~1.5 GB live).
  Giving every block of 1 MiB and more its own mapping (`M_MMAP_THRESHOLD`) held the peak at 1.5 GB but cost ~35%
  more CPU in page faults. What is used instead, `heap_ceiling`: after each decoder layer (forward and recompute),
  once the process has grown `cet.train.heap_headroom_mb` since the last time, the free heap pages go back to the
  OS (`malloc_trim`): ~2.0 GB peak, ~2.5% more CPU. `release_memory()` (gc + `malloc_trim`) runs before and after.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cet.config import TrainSettings
from cet.errors import CetError
from cet.model.cet import CETModel


@dataclass
class SFTReport:
    examples: int
    steps: int  # optimizer steps taken in this call
    total_steps: int  # of the whole training (a resumed call takes fewer)
    seconds: float
    tokens: int  # non-padding tokens trained on in this call
    tokens_per_s: float
    loss_first: float | None
    loss_last: float | None
    resumed_from: str | None
    losses: list[float] = field(default_factory=list)
    dropped: int = 0  # examples whose completion fell entirely past max_length (TRL drops them)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def data_version(examples: Sequence[dict[str, Any]]) -> str:
    """sha256 of the examples as canonical JSON: the version a checkpoint records of the data it learned."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(example, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def sft_example(prompt: list[dict[str, str]], completion: str) -> dict[str, Any]:
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": completion}]}


# ------------------------------------------------------------------------------------------------ memory
@cache
def _libc() -> Any:
    """glibc, where there is one (Linux); None elsewhere (macOS, musl): the memory calls are then no-ops."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 (glibc only)
        return libc
    except (OSError, AttributeError):
        return None


def release_memory() -> None:
    """Collect garbage (a Trainer holds its model through reference cycles) and hand freed heap pages back to the OS
    (`malloc_trim`)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def resident_mb() -> float | None:
    """The process's resident memory now, in MB (Linux; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize() / (1 << 20)


@contextmanager
def heap_ceiling(model: Any, headroom_mb: int) -> Iterator[dict[str, int]]:
    """While inside: after each decoder layer runs (forward, and its recompute under activation checkpointing), if
    the process's resident memory has grown more than `headroom_mb` since entry or since the last trim, hand the
    heap's free pages back to the OS (`malloc_trim`). Yields a counter of the trims. A no-op without glibc, /proc or
    decoder layers, or with `headroom_mb` 0."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    state = {"trims": 0}
    libc, floor = _libc(), resident_mb()
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not headroom_mb or libc is None or floor is None or not layers:
        yield state
        return

    def check(*_: Any) -> None:
        nonlocal floor
        now = resident_mb()
        if now is not None and now > floor + headroom_mb:
            libc.malloc_trim(0)
            state["trims"] += 1
            floor = resident_mb() or now

    handles = [layer.register_forward_hook(check) for layer in layers]
    try:
        yield state
    finally:
        for handle in handles:
            handle.remove()


# ------------------------------------------------------------------------------------------------ the loss
def completion_loss(model: Any, batch: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """Mean cross-entropy of the next-token predictions whose label is not -100 (the completion), computing logits
    at those positions only. Divided by `num_items_in_batch` when given (the labelled tokens of every micro-batch of
    the optimizer step, as TRL's loss does under gradient accumulation), else by this batch's count."""
    import torch
    import torch.nn.functional as F

    labels = batch["labels"]
    targets = labels[:, 1:]
    scored = targets != -100
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = scored  # position t predicts token t + 1
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "completion_mask", "assistant_masks")}
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits  # [scored tokens, vocab]
    nll = F.cross_entropy(logits.float(), targets[scored], reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else scored.sum()
    return nll / torch.as_tensor(count, device=nll.device).clamp(min=1)


@cache
def _trainer_class() -> type:
    from trl import SFTTrainer

    class CETSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer (data preparation, completion masks, the loop, checkpoints, resume) with the loss of
        `completion_loss`: logits at the completion's positions only, never the whole sequence's."""

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            loss = completion_loss(model, inputs, num_items_in_batch)
            return (loss, None) if return_outputs else loss

    return CETSFTTrainer


# ------------------------------------------------------------------------------------------------ training
def micro_batching(settings: TrainSettings) -> tuple[int, int]:
    """(sequences per forward pass, forward passes per optimizer step) for `batch_size` x `grad_accum` sequences
    per step, `micro_batch` at a time (a batch_size that micro_batch does not divide is rounded up)."""
    per_pass = min(settings.micro_batch, settings.batch_size)
    return per_pass, settings.grad_accum * -(-settings.batch_size // per_pass)


def _sft_config(settings: TrainSettings, out: Path, seed: int, device: str, quiet: bool) -> Any:
    from trl import SFTConfig

    per_pass, accumulate = micro_batching(settings)
    checkpointing = settings.checkpoint_every > 0
    return SFTConfig(
        output_dir=str(out), num_train_epochs=settings.epochs, per_device_train_batch_size=per_pass,
        gradient_accumulation_steps=accumulate, learning_rate=settings.learning_rate,
        max_length=settings.max_length, warmup_steps=settings.warmup_ratio, save_strategy="steps",
        save_steps=settings.save_steps, save_total_limit=2, logging_steps=1, report_to="none", seed=seed,
        data_seed=seed, use_cpu=device == "cpu", bf16=False, fp16=False, dataloader_num_workers=0,
        disable_tqdm=quiet, packing=False, completion_only_loss=True, dataset_num_proc=None,
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False, "every_n_layers": settings.checkpoint_every}
        if checkpointing else None,
    )


def build_trainer(cet: CETModel, examples: Sequence[dict[str, Any]], settings: TrainSettings, out: Path,
                  seed: int = 0, quiet: bool = False) -> Any:
    from datasets import Dataset

    if not examples:
        raise CetError("no training examples: nothing to train on")
    cet.tokenizer.padding_side = "right"
    if quiet:
        import datasets

        datasets.disable_progress_bars()
    _set_checkpointing(cet.model, settings.checkpoint_every)
    config = _sft_config(settings, out, seed, cet.device.type, quiet)
    trainer = _trainer_class()(model=cet.model, args=config, train_dataset=Dataset.from_list(list(examples)),
                               processing_class=cet.tokenizer)
    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # --json: nothing but the JSON on stdout
    return trainer


def _set_checkpointing(model: Any, every: int) -> None:
    """Activation checkpointing on every `every`-th decoder layer (0: off), set now: the trainer would set it only
    when training starts, and the plain-step baseline must run the model the way the trainer does."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if every:
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False},
                                             every_n_layers=every)
    elif base.is_activation_checkpointing:
        base.activation_checkpointing_disable()  # an earlier training turned it on


def train_sft(cet: CETModel, examples: Sequence[dict[str, Any]], settings: TrainSettings, out: str | Path,
              seed: int = 0, quiet: bool = False, callbacks: Sequence[Any] = ()) -> SFTReport:
    """Train the adapters on `examples`; resume from the last checkpoint under `out/trainer` if there is one.
    `callbacks`: extra transformers TrainerCallbacks. The trainer is released (and its memory handed back) before
    this returns."""
    from transformers.trainer_utils import get_last_checkpoint

    release_memory()  # what the caller left: the ceiling counts from here
    trainer_dir = Path(out) / "trainer"
    trainer_dir.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(cet, examples, settings, trainer_dir, seed, quiet)
    try:
        for callback in callbacks:
            trainer.add_callback(callback)
        last = get_last_checkpoint(str(trainer_dir))
        started_step = _step_of(last)
        lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
        dropped = len(examples) - len(lengths)
        if not lengths:
            return SFTReport(examples=len(examples), steps=0, total_steps=0, seconds=0.0, tokens=0,
                             tokens_per_s=0.0, loss_first=None, loss_last=None, resumed_from=None, dropped=dropped)
        began = time.perf_counter()
        with heap_ceiling(cet.model, settings.heap_headroom_mb):
            result = trainer.train(resume_from_checkpoint=last)
        seconds = time.perf_counter() - began
        total_steps = int(trainer.state.max_steps)
        steps = int(result.global_step) - started_step
        epochs_done = steps / max(total_steps, 1) * settings.epochs
        tokens = int(sum(lengths) * epochs_done)
        losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
        cet.model = trainer.model
        cet.weights_changed()
    finally:
        trainer.model.zero_grad(set_to_none=True)
        del trainer
        release_memory()
    return SFTReport(examples=len(examples), steps=steps, total_steps=total_steps, seconds=round(seconds, 2),
                     tokens=tokens, tokens_per_s=round(tokens / seconds, 1) if seconds > 0 else 0.0,
                     loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None,
                     resumed_from=last, losses=losses, dropped=dropped)


def _step_of(checkpoint: str | None) -> int:
    return int(checkpoint.rsplit("-", 1)[-1]) if checkpoint else 0


def plain_step_throughput(cet: CETModel, examples: Sequence[dict[str, Any]], settings: TrainSettings,
                          steps: int = 2, seed: int = 0) -> dict[str, Any]:
    """Tokens/s of a bare training step (forward and backward passes with `completion_loss` over the micro-batches
    the trainer's own collator builds from the same examples, gradients accumulated, then AdamW), the model set up as
    the trainer sets it (activation checkpointing, the heap ceiling): the baseline for the trainer. Runs on the CET
    itself and puts its adapter weights back afterwards (a copy of the model would cost its memory again)."""
    import tempfile

    import torch

    release_memory()
    per_pass, accumulate = micro_batching(settings)
    per_step = per_pass * accumulate
    model = cet.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in trainable]
    was_training = model.training
    tokens, seconds, done = 0, 0.0, 0
    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(cet, examples[: per_step * steps], settings, Path(scratch), seed, True)
        loader = trainer.get_train_dataloader()
        del trainer
        model.train()
        optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate)
        try:
            with heap_ceiling(model, settings.heap_headroom_mb):
                batches = iter(loader)
                for _ in range(steps):
                    micro = [b for b in (next(batches, None) for _ in range(accumulate)) if b is not None]
                    if not micro:
                        break
                    micro = [{k: v.to(cet.device) for k, v in b.items() if torch.is_tensor(v)} for b in micro]
                    count = sum(int((b["labels"][:, 1:] != -100).sum()) for b in micro)
                    began = time.perf_counter()
                    for batch in micro:
                        completion_loss(model, batch, count).backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    seconds += time.perf_counter() - began
                    for batch in micro:
                        mask = batch.get("attention_mask")
                        tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
                    done += 1
        finally:
            with torch.no_grad():
                for p, value in zip(trainable, saved, strict=True):
                    p.copy_(value)
            model.zero_grad(set_to_none=True)
            model.train(was_training)
            del optimizer, saved
            release_memory()
    return {"steps": done, "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else 0.0}
