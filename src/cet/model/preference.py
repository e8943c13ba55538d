"""Preference training of the CET's adapters with TRL's DPOTrainer: for the same input, a context that worked
better (chosen) against one that worked worse (rejected).

Pairs are conversational (`{"prompt": [messages], "chosen": [assistant], "rejected": [assistant]}`); TRL applies the
chat template itself. The CET is already a peft model with a trained adapter: TRL copies that adapter, frozen, as
the reference ("ref"), so the KL anchor is the CET before this step (not the base model); the copy is deleted again
afterwards, so the checkpoint holds the CET's adapter alone. On the CPU bf16 is off (TRL's default turns it on).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cet.config import TrainSettings
from cet.errors import CetError
from cet.model.cet import CETModel
from cet.model.training import SFTReport, micro_batching, release_memory

REFERENCE_ADAPTER = "ref"


def preference_pair(prompt: list[dict[str, str]], chosen: str, rejected: str) -> dict[str, Any]:
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def train_dpo(cet: CETModel, pairs: Sequence[dict[str, Any]], settings: TrainSettings, out: str | Path,
              seed: int = 0, quiet: bool = False, beta: float = 0.1) -> SFTReport:
    """DPO on `pairs` (see `preference_pair`) for `settings.epochs`; the report counts tokens of prompt + both
    replies. The trainer is released before this returns."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    if not pairs:
        raise CetError("no preference pairs: nothing to train on")
    release_memory()
    if quiet:
        import datasets

        datasets.disable_progress_bars()
    per_pass, accumulate = micro_batching(settings)
    config = DPOConfig(
        output_dir=str(Path(out) / "dpo"), num_train_epochs=settings.epochs, per_device_train_batch_size=per_pass,
        gradient_accumulation_steps=accumulate, learning_rate=settings.learning_rate, beta=beta,
        max_length=settings.max_length, logging_steps=1, report_to="none", save_strategy="no", seed=seed,
        data_seed=seed, use_cpu=cet.device.type == "cpu", bf16=False, fp16=False, dataloader_num_workers=0,
        disable_tqdm=quiet, dataset_num_proc=None, gradient_checkpointing=settings.checkpoint_every > 0)
    cet.tokenizer.padding_side = "right"
    if REFERENCE_ADAPTER in getattr(cet.model, "peft_config", {}):
        cet.model.delete_adapter(REFERENCE_ADAPTER)
    trainer = DPOTrainer(model=cet.model, ref_model=None, args=config, train_dataset=Dataset.from_list(list(pairs)),
                         processing_class=cet.tokenizer)
    try:
        if quiet:
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        kept = len(trainer.train_dataset)
        data = trainer.train_dataset
        # each pair is two sequences: the prompt with the chosen reply, the prompt with the rejected one
        lengths = [2 * len(p) + len(c) + len(r) for p, c, r in zip(data["prompt_ids"], data["chosen_ids"],
                                                                    data["rejected_ids"], strict=True)]
        began = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - began
        losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
        steps = int(result.global_step)
        tokens = int(sum(lengths) * settings.epochs)
    finally:
        if REFERENCE_ADAPTER in getattr(cet.model, "peft_config", {}):
            cet.model.delete_adapter(REFERENCE_ADAPTER)
        cet.model.set_adapter("default")
        del trainer
        release_memory()
    cet.weights_changed()
    return SFTReport(examples=len(pairs), steps=steps, total_steps=steps, seconds=round(seconds, 2), tokens=tokens,
                     tokens_per_s=round(tokens / seconds, 1) if seconds > 0 else 0.0,
                     loss_first=losses[0] if losses else None, loss_last=losses[-1] if losses else None,
                     resumed_from=None, losses=losses, dropped=len(pairs) - kept)
