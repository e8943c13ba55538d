"""Run directories: every job writes its resolved config, seed, metrics (JSONL), artefacts and report."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from cet.config import CetConfig, dump_config


class RunDir:
    """``runs/<UTC time>-<name>/`` with config.yaml, seed, metrics.jsonl, report.md and plots/."""

    def __init__(self, cfg: CetConfig, name: str, root: str | Path | None = None) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        base = Path(root or cfg.run.runs_dir)
        path = base / f"{stamp}-{name}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = base / f"{stamp}-{name}-{suffix}"
        self.path = path
        self.plots = path / "plots"
        self.plots.mkdir(parents=True)
        self.seed = cfg.run.seed
        (path / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
        (path / "seed").write_text(f"{self.seed}\n", encoding="utf-8")
        seed_everything(self.seed)

    @classmethod
    def reopen(cls, path: str | Path, cfg: CetConfig) -> RunDir:
        """An existing run directory, to resume the job that wrote it (its config and seed are kept)."""
        from cet.errors import CetError

        path = Path(path)
        if not (path / "seed").is_file():
            raise CetError(f"{path} is not a run directory (no seed file) to resume")
        run = cls.__new__(cls)
        run.path, run.plots = path, path / "plots"
        run.plots.mkdir(exist_ok=True)
        run.seed = int((path / "seed").read_text(encoding="utf-8").strip())
        seed_everything(run.seed)
        return run

    def log_metrics(self, step: str, values: dict[str, Any]) -> None:
        with (self.path / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **values}, default=str) + "\n")

    def write_json(self, name: str, data: Any) -> Path:
        """Written whole or not at all (a temporary file renamed over it): a killed run never leaves half a file."""
        target = self.path / name
        scratch = target.with_name(target.name + ".tmp")
        scratch.write_text(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(scratch, target)
        return target

    def write_report(self, markdown: str) -> Path:
        target = self.path / "report.md"
        target.write_text(markdown, encoding="utf-8")
        return target


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
