"""What keeps CET training small: micro-batches with gradient accumulation, activation checkpointing, a loss that
computes the completion's logits only, the trainer released after training; and the main job's stage records."""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cet.config import TrainSettings, load_config
from cet.main_job import render_stages, stage
from cet.model.cet import CETModel
from cet.model.training import (
    build_trainer,
    completion_loss,
    heap_ceiling,
    micro_batching,
    release_memory,
    resident_mb,
    sft_example,
    train_sft,
)

REPO = Path(__file__).resolve().parents[1]


def tiny_cfg(base: Path, tmp_path: Path, **train):
    return load_config(cet={"base_model": str(base), "device": "cpu", "checkpoints_dir": str(tmp_path / "cet"),
                            "train": {"epochs": 1, "save_steps": 100, "warmup_ratio": 0.0, **train}},
                       run={"runs_dir": str(tmp_path / "runs")})


def examples(n: int = 4) -> list[dict]:
    return [sft_example([{"role": "user", "content": f"Task {i}: add numbers " + "and more " * i}],
                        f"## Goal\nAdd the numbers of task {i}.\n## Interface\n- def add(a, b)") for i in range(n)]


def test_micro_batching_keeps_the_batch_per_optimizer_step():
    assert micro_batching(TrainSettings()) == (1, 4)  # the default: 4 sequences a step, one at a time
    assert micro_batching(TrainSettings(batch_size=4, grad_accum=2, micro_batch=2)) == (2, 4)
    assert micro_batching(TrainSettings(batch_size=3, micro_batch=2)) == (2, 2)  # rounded up
    assert micro_batching(TrainSettings(batch_size=2, micro_batch=8)) == (2, 1)


def test_completion_loss_is_the_models_own_loss(tiny_base: Path, tmp_path: Path):
    cet = CETModel.from_base(tiny_cfg(tiny_base, tmp_path))
    trainer = build_trainer(cet, examples(), cet.cfg.cet.train, tmp_path / "t", quiet=True)
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()  # the prompt is masked
    cet.model.eval()
    with torch.no_grad():
        reference = cet.model(**batch).loss  # transformers' loss over the full logits
        ours = completion_loss(cet.model, batch)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_trainer_takes_one_sequence_a_pass_with_checkpointing(tiny_base: Path, tmp_path: Path):
    cfg = tiny_cfg(tiny_base, tmp_path)
    cet = CETModel.from_base(cfg)
    trainer = build_trainer(cet, examples(), cfg.cet.train, tmp_path / "t", quiet=True)
    assert trainer.args.per_device_train_batch_size == 1 and trainer.args.gradient_accumulation_steps == 4
    assert cet.model.get_base_model().is_activation_checkpointing
    off = cfg.cet.train.model_copy(update={"checkpoint_every": 0})
    build_trainer(cet, examples(), off, tmp_path / "u", quiet=True)
    assert not cet.model.get_base_model().is_activation_checkpointing


def test_training_releases_its_trainer(tiny_base: Path, tmp_path: Path):
    cfg = tiny_cfg(tiny_base, tmp_path)
    cet = CETModel.from_base(cfg)
    report = train_sft(cet, examples(), cfg.cet.train, tmp_path / "run", quiet=True)
    assert report.steps == 1 and report.total_steps == 1 and report.tokens > 0
    gc.collect()
    from trl import SFTTrainer

    assert not [o for o in gc.get_objects() if isinstance(o, SFTTrainer)]
    assert all(p.grad is None for p in cet.model.parameters())


def test_heap_ceiling_trims_once_the_process_grows_and_leaves_no_hooks(tiny_base: Path, tmp_path: Path):
    cet = CETModel.from_base(tiny_cfg(tiny_base, tmp_path))
    model = cet.model
    ids = torch.randint(0, 1000, (1, 64))
    hooked = [m for m in model.modules() if m._forward_hooks]
    with heap_ceiling(model, 0) as off:
        model(input_ids=ids)
    with heap_ceiling(model, 1) as on:
        grown = [bytearray(8 << 20) for _ in range(4)]  # the process grows past the 1 MB headroom
        for block in grown:
            block[::4096] = b"x" * len(block[::4096])  # touched: resident
        model(input_ids=ids)
    del grown
    assert off["trims"] == 0 and on["trims"] >= 1
    assert [m for m in model.modules() if m._forward_hooks] == hooked  # the hooks are gone
    if sys.platform.startswith("linux"):
        assert resident_mb() is not None and resident_mb() > 0


def test_stages_are_timed_with_their_peak_memory():
    stages: list[dict] = []
    with stage(stages, "ingest"):
        release_memory()
    with pytest.raises(RuntimeError), stage(stages, "phase 1"):
        raise RuntimeError("a failed stage is still recorded")
    assert [s["stage"] for s in stages] == ["ingest", "phase 1"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert all(s["seconds"] >= 0 and 0 < s["peak_rss_mb"] <= peak + 1 for s in stages)
    lines = render_stages(stages)
    assert "## Stages" in lines and any(line.startswith("| phase 1 |") for line in lines)
    assert render_stages([]) == []


PEAK_SCRIPT = """
import json, resource, tempfile
from cet.config import load_config
from cet.model.cet import CETModel
from cet.model.training import sft_example, train_sft

cfg = load_config(cet={"train": {"epochs": 1.0, "batch_size": 2, "save_steps": 1000}})
cet = CETModel.from_base(cfg)
# ~1,020 tokens each with the chat template: 690 prompt words and a 300-word completion, one token a word
data = [sft_example([{"role": "user", "content": " ".join(["alpha"] * 690)}], " ".join(["beta"] * 300))
        for _ in range(2)]
with tempfile.TemporaryDirectory() as out:
    report = train_sft(cet, data, cfg.cet.train, out, quiet=True)
print(json.dumps({"steps": report.steps, "tokens": report.tokens,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@pytest.mark.slow
def test_real_cet_training_at_1024_tokens_peaks_under_2_5_gb(smollm2_torch: Path):
    """SmolLM2-135M, LoRA, two ~1,024-token sequences: batch 4 at once peaked above 16 GB before."""
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, cwd=REPO,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == 1 and result["tokens"] > 1500
    assert result["peak_mb"] < 2500, result
