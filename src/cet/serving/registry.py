"""A versioned registry of CET checkpoints with a champion pointer (Phase 4): what `cet serve` serves when no
checkpoint is named, what may replace it, and the history of every swap.

    <root>/registry.json   versions (id, source path, phase, when, offline evaluation), the champion, the history
    <root>/versions/<id>/  a copy of each registered checkpoint (so a later training run cannot change it)

Every write goes to a temporary file renamed over registry.json (atomic on POSIX: a reader sees the old or the new
registry, never half of one). `promote` swaps the champion only with the evidence a serious rollout needs: the
experiment decided for the candidate (and its per-user, clustered interval agrees), no guardrail breached, and its
offline held-out pass rate not below the champion's; otherwise it refuses and says why. `rollback` returns to
the previous champion, with the reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cet.errors import CetError
from cet.model.cet import MANIFEST


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.file = self.root / "registry.json"

    def read(self) -> dict[str, Any]:
        if not self.file.is_file():
            return {"versions": [], "champion": None, "history": []}
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CetError(f"the registry {self.file} cannot be read: {e}") from None
        return data

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across threads and processes (read, change, write happen under it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.file.with_name(f"registry.{os.getpid()}.{time.monotonic_ns()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.file)
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)

    def register(self, checkpoint: str | Path, offline_pass_rate: float | None = None) -> str:
        """Copy a CET checkpoint in as the next version (v1, v2, ...); the first one becomes the champion."""
        source = Path(checkpoint)
        if not (source / MANIFEST).is_file():
            raise CetError(f"not a CET checkpoint (no {MANIFEST}): {source}")
        with self._locked():
            data = self.read()
            version = f"v{len(data['versions']) + 1}"
            target = self.root / "versions" / version
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
            phase = json.loads((source / MANIFEST).read_text(encoding="utf-8")).get("phase")
            data["versions"].append({"id": version, "source": str(source), "path": str(target), "phase": phase,
                                     "registered_at": time.time(), "offline_pass_rate": offline_pass_rate})
            if data["champion"] is None:
                data["champion"] = version
                data["history"].append({"at": time.time(), "from": None, "to": version, "action": "first version"})
            self._write(data)
        return version

    def champion(self) -> dict[str, Any] | None:
        data = self.read()
        return next((v for v in data["versions"] if v["id"] == data["champion"]), None)

    def _version(self, data: dict[str, Any], version: str) -> dict[str, Any]:
        found = next((v for v in data["versions"] if v["id"] == version), None)
        if found is None:
            raise CetError(f"no version {version!r} in the registry (known: "
                           f"{', '.join(v['id'] for v in data['versions']) or 'none'})")
        return found

    def promotion_blockers(self, candidate: str, experiment: dict[str, Any] | None,
                           guardrails: dict[str, Any] | None, arm: str | None = None) -> list[str]:
        """Why `candidate` may not replace the champion yet ([] when it may). `experiment` is the service's
        standing (GET /v1/experiment), in which the candidate served as `arm` (default: its version id);
        `guardrails` is GET /v1/guardrails (every arm's) or one arm's table. Evidence it cannot read blocks."""
        data = self.read()
        new, old = self._version(data, candidate), self.champion()
        arm = arm or candidate
        reasons = []
        if old is not None and old["id"] == candidate:
            reasons.append(f"{candidate} is already the champion")
        if not isinstance(experiment, dict) or not experiment.get("decided"):
            reasons.append("the experiment has not decided (its always-valid p-value is above alpha)")
        elif experiment.get("winner") != arm:
            reasons.append(f"the experiment decided for {experiment.get('winner')}, not {arm}")
        elif experiment.get("stopped"):
            reasons.append(f"the experiment was stopped: {experiment['stopped']}")
        elif old is not None and experiment.get("control") != old["id"]:
            reasons.append(f"the experiment's control was {experiment.get('control')}, not the champion {old['id']}")
        else:
            clustered = experiment.get("clustered")
            ci = clustered.get("ci") if isinstance(clustered, dict) else None
            treatment_won = experiment.get("treatment") == arm
            if not (isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, int | float) for v in ci)):
                reasons.append("the experiment has no per-user (clustered) interval")
            elif (ci[0] <= 0) if treatment_won else (ci[1] >= 0):
                reasons.append(f"the per-user (clustered) interval [{ci[0]:+.3f}, {ci[1]:+.3f}] still holds no "
                               "difference: the win may rest on a few users")
        tables = (guardrails or {}).get("arms", {"": guardrails or {}}) if isinstance(guardrails, dict) else None
        if tables is None or not all(isinstance(t, dict) for t in tables.values()):
            reasons.append("the guardrail evidence cannot be read")
        else:
            unreadable = [name for t in tables.values() for name, g in t.items()
                          if not isinstance(g, dict) or not isinstance(g.get("breached"), bool)]
            breached = sorted({name for t in tables.values() for name, g in t.items()
                               if isinstance(g, dict) and g.get("breached") is True})
            if unreadable:
                reasons.append(f"guardrail evidence without a verdict: {', '.join(sorted(set(unreadable)))}")
            if breached:
                reasons.append(f"guardrail(s) breached: {', '.join(breached)}")
        if old is not None and old.get("offline_pass_rate") is not None:
            if new.get("offline_pass_rate") is None:
                reasons.append("no offline held-out pass rate for the candidate")
            elif new["offline_pass_rate"] < old["offline_pass_rate"]:
                reasons.append(f"offline held-out pass rate {new['offline_pass_rate']:.3f} below the champion's "
                               f"{old['offline_pass_rate']:.3f}")
        return reasons

    def promote(self, candidate: str, experiment: dict[str, Any] | None, guardrails: dict[str, Any] | None,
                arm: str | None = None) -> dict[str, Any]:
        """Make `candidate` the champion when nothing blocks it; raises CetError listing what does."""
        with self._locked():
            blockers = self.promotion_blockers(candidate, experiment, guardrails, arm)
            if blockers:
                raise CetError(f"{candidate} not promoted: " + "; ".join(blockers))
            data = self.read()
            data["history"].append({"at": time.time(), "from": data["champion"], "to": candidate,
                                    "action": "promote", "p_value": (experiment or {}).get("p_value")})
            data["champion"] = candidate
            self._write(data)
        return data

    @staticmethod
    def _chain(data: dict[str, Any]) -> list[str]:
        """The champions in force, oldest first: a promotion pushes, a rollback pops."""
        chain: list[str] = []
        for h in data["history"]:
            if h["action"] == "rollback":
                chain.pop()
            else:
                chain.append(h["to"])
        return chain

    def predecessor(self) -> dict[str, Any] | None:
        """The version a rollback would return to (None: the champion has no predecessor)."""
        data = self.read()
        chain = self._chain(data)
        return self._version(data, chain[-2]) if len(chain) >= 2 else None

    def set_offline_pass_rate(self, version: str, rate: float) -> dict[str, Any]:
        """Record a version's offline held-out pass rate (from `cet eval context` on its checkpoint), which
        promotion compares with the champion's."""
        if not 0.0 <= rate <= 1.0:
            raise CetError(f"an offline pass rate lies between 0 and 1, not {rate}")
        with self._locked():
            data = self.read()
            self._version(data, version)["offline_pass_rate"] = rate
            self._write(data)
        return data

    def rollback(self, reason: str, expected: str | None = None) -> dict[str, Any]:
        """Return to the previous champion (a guardrail's breach, a drop), along the promotion chain. With
        `expected`, only if that version is still the champion (several services seeing one breach roll back
        once); otherwise nothing changes."""
        with self._locked():
            data = self.read()
            if expected is not None and data["champion"] != expected:
                return data
            chain = self._chain(data)
            if len(chain) < 2:
                raise CetError("nothing to roll back to: the champion has no predecessor")
            previous = chain[-2]
            data["history"].append({"at": time.time(), "from": data["champion"], "to": previous,
                                    "action": "rollback", "reason": reason})
            data["champion"] = previous
            self._write(data)
        return data


def rollback_on_breach(registry: Registry, load: Callable[[dict[str, Any]], Any]
                       ) -> Callable[[str, str], tuple[str, Any] | None]:
    """The service's `on_breach` for an arm that is a registry version (named by its id): when it is the champion,
    load its predecessor first, then roll the registry back (only if the arm is still the champion: services
    sharing the registry roll back once) and serve the predecessor; when another service already rolled it back,
    serve the champion now in force. A champion with no predecessor, an arm that is no version, or a load that
    fails is not rolled back (None: the service keeps the arm, stopped)."""

    def on_breach(arm: str, reason: str) -> tuple[str, Any] | None:
        champion = registry.champion()
        if champion is None:
            return None
        if champion["id"] != arm:  # rolled back elsewhere already, or never the champion
            if arm not in {v["id"] for v in registry.read()["versions"]}:
                return None
            target = champion
        else:
            target = registry.predecessor()
            if target is None:
                return None
        try:
            strategy = load(target)
        except (CetError, OSError, RuntimeError, ValueError):
            return None
        if target is not champion:
            registry.rollback(f"{arm}: {reason}", expected=arm)
        return target["id"], strategy

    return on_breach
