"""Supervised fine-tuning of the CET's adapters with TRL's SFTTrainer, resumable, with its throughput measured.

Examples are prompt-completion pairs in chat form (`{"prompt": [messages], "completion": [assistant message]}`),
so the loss falls on the completion only. Checkpoints go to `<out>/trainer/checkpoint-N` every
`save_steps`; a second call with the same data resumes from the last one. `plain_step_throughput` measures a
plain transformers training step (forward, backward, AdamW) on the same batches, on a copy of the model, so
the report can say what the trainer costs over the bare loop.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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


def _sft_config(settings: TrainSettings, out: Path, seed: int, device: str, quiet: bool) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(out), num_train_epochs=settings.epochs, per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum, learning_rate=settings.learning_rate,
        max_length=settings.max_length, warmup_steps=settings.warmup_ratio, save_strategy="steps",
        save_steps=settings.save_steps, save_total_limit=2, logging_steps=1, report_to="none", seed=seed,
        data_seed=seed, use_cpu=device == "cpu", bf16=False, fp16=False, dataloader_num_workers=0,
        disable_tqdm=quiet, packing=False, completion_only_loss=True, dataset_num_proc=None,
        gradient_checkpointing=False,  # explicit: a 135M model on the CPU has the memory, and the plain-step
        # baseline then measures the same computation
    )


def build_trainer(cet: CETModel, examples: Sequence[dict[str, Any]], settings: TrainSettings, out: Path,
                  seed: int = 0, quiet: bool = False) -> Any:
    from datasets import Dataset
    from trl import SFTTrainer

    if not examples:
        raise CetError("no training examples: nothing to train on")
    cet.tokenizer.padding_side = "right"
    if quiet:
        import datasets

        datasets.disable_progress_bars()
    config = _sft_config(settings, out, seed, cet.device.type, quiet)
    trainer = SFTTrainer(model=cet.model, args=config, train_dataset=Dataset.from_list(list(examples)),
                         processing_class=cet.tokenizer)
    if quiet:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # --json: nothing but the JSON on stdout
    return trainer


def train_sft(cet: CETModel, examples: Sequence[dict[str, Any]], settings: TrainSettings, out: str | Path,
              seed: int = 0, quiet: bool = False, callbacks: Sequence[Any] = ()) -> SFTReport:
    """Train the adapters on `examples`; resume from the last checkpoint under `out/trainer` if there is one.
    `callbacks`: extra transformers TrainerCallbacks."""
    from transformers.trainer_utils import get_last_checkpoint

    trainer_dir = Path(out) / "trainer"
    trainer_dir.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(cet, examples, settings, trainer_dir, seed, quiet)
    for callback in callbacks:
        trainer.add_callback(callback)
    last = get_last_checkpoint(str(trainer_dir))
    started_step = _step_of(last)
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    dropped = len(examples) - len(lengths)
    if not lengths:
        return SFTReport(examples=len(examples), steps=0, total_steps=0, seconds=0.0, tokens=0, tokens_per_s=0.0,
                         loss_first=None, loss_last=None, resumed_from=None, dropped=dropped)
    began = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - began
    total_steps = int(trainer.state.max_steps)
    steps = int(result.global_step) - started_step
    epochs_done = steps / max(total_steps, 1) * settings.epochs
    tokens = int(sum(lengths) * epochs_done)
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    cet.model = trainer.model
    cet.weights_changed()
    return SFTReport(examples=len(examples), steps=steps, total_steps=total_steps, seconds=round(seconds, 2),
                     tokens=tokens, tokens_per_s=round(tokens / seconds, 1) if seconds > 0 else 0.0,
                     loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None,
                     resumed_from=last, losses=losses, dropped=dropped)


def _step_of(checkpoint: str | None) -> int:
    return int(checkpoint.rsplit("-", 1)[-1]) if checkpoint else 0


def plain_step_throughput(cet: CETModel, examples: Sequence[dict[str, Any]], settings: TrainSettings,
                          steps: int = 2, seed: int = 0) -> dict[str, Any]:
    """Tokens/s of a bare transformers training step (forward, backward, AdamW) on a copy of the CET, on the
    first batches the trainer's own collator builds from the same examples: the baseline for the trainer."""
    import tempfile

    import torch

    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(cet, examples[: settings.batch_size * steps], settings, Path(scratch), seed, True)
        loader = trainer.get_train_dataloader()
        model = copy.deepcopy(cet.model)
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate)
        tokens, seconds, done = 0, 0.0, 0
        for batch in loader:
            if done >= steps:
                break
            batch = {k: v.to(cet.device) for k, v in batch.items() if torch.is_tensor(v)}
            began = time.perf_counter()
            loss = model(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            seconds += time.perf_counter() - began
            mask = batch.get("attention_mask")
            tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
            done += 1
        del model, optimizer
    return {"steps": done, "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else 0.0}
