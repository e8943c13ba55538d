"""`cet train sft` under torchrun with two CPU processes (gloo, data-parallel through TRL / accelerate): every
process takes a shard of each batch, so the same examples take half the optimizer steps, and only the first
process saves the checkpoint."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cet.model.cet import MANIFEST


def examples_file(where: Path, n: int = 8) -> Path:
    path = where / "examples.jsonl"
    rows = [{"prompt": [{"role": "user", "content": f"Task {i}: add two numbers"}],
             "completion": [{"role": "assistant", "content": "## Nothing to add"}]} for i in range(n)]
    bad = {"prompt": "not a conversation", "completion": [{"role": "assistant", "content": "x"}]}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n" + json.dumps(bad) + "\n")
    return path


def test_two_processes_share_the_batches(tiny_base: Path, tmp_path: Path, cet_bin: Path, cet_env, run_cet):
    env = cet_env(CET_CET__BASE_MODEL=str(tiny_base), CET_CET__DEVICE="cpu", CET_CET__TRAIN__BATCH_SIZE="2",
                  CET_RUN__RUNS_DIR=str(tmp_path / "runs"), OMP_NUM_THREADS="1")
    data = examples_file(tmp_path)
    single = run_cet("train", "sft", str(data), "--out", str(tmp_path / "one"), "--epochs", "1", "--json", env=env)
    assert single.returncode == 0, single.stderr[-2000:]
    one = json.loads(single.stdout)
    assert one["examples"] == 8 and one["skipped_lines"] == 1 and one["malformed"] == 1 and one["processes"] == 1
    torchrun = cet_bin.with_name("torchrun")
    two = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--no-python", str(cet_bin), "train", "sft",
                          str(data), "--out", str(tmp_path / "two"), "--epochs", "1", "--json"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    out = json.loads(two.stdout)  # only the first process prints, and saves
    assert out["processes"] == 2 and out["rank"] == 0
    assert out["training"]["steps"] * 2 == one["training"]["steps"] == 4
    assert (Path(out["checkpoint"]) / MANIFEST).is_file()
    assert json.loads((Path(out["checkpoint"]) / MANIFEST).read_text())["processes"] == 2
    missing = run_cet("train", "sft", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "x"), env=env)
    assert missing.returncode != 0 and "examples file not found" in missing.stderr and "Traceback" not in \
        missing.stderr
