"""Mining the failed rollouts (seed 4.3): which failure patterns occur, under which task features, and what the
playbook items did when a context carried them. The result is a delta for `Playbook.apply` (data/playbook.py).

    pattern table   per failure pattern: its failed rollouts, their share of all failures, and per task feature the
                    pattern's rate on rollouts of tasks with the feature against those without (the lift)
    new items       a pattern with at least `min_failures` failed rollouts and a catalogue item gets that item,
                    triggered by the feature of the highest lift (support >= `min_failures`; "always" otherwise)
    evidence        existing items merge the new failure counts of their pattern under their trigger
    effects         a rollout whose context carried an item, against the raw rollout of the same task and generator:
                    tried, helped (passed where raw failed), hurt (failed where raw passed)
    retirement      an item tried at least `retire_after` times whose hurt exceeds its help by `retire_margin` or more
                    (at most half the active items in one update, the most harmful first; a lone item is kept)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from cet.data.playbook import CATALOGUE, FEATURES, MAX_SHRINK, Playbook, catalogue_item

NOT_FAILURES = frozenset({"passed", "no-code"})


def failures_of(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if not r["passed"] and r["pattern"] not in NOT_FAILURES]


def pattern_table(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per failure pattern, most frequent first: failures, share, and per feature the rate with / without
    it and the lift (rate with / rate over all rollouts)."""
    failed = failures_of(records)
    total = len(records)
    rows = []
    for pattern, n in Counter(r["pattern"] for r in failed).most_common():
        overall = n / total if total else 0.0
        by_feature = {}
        for feature in FEATURES:
            with_f = [r for r in records if feature in r["features"]]
            without = [r for r in records if feature not in r["features"]]
            hits_with = sum(1 for r in with_f if r["pattern"] == pattern and not r["passed"])
            hits_without = sum(1 for r in without if r["pattern"] == pattern and not r["passed"])
            rate_with = hits_with / len(with_f) if with_f else 0.0
            by_feature[feature] = {"failures": hits_with, "rollouts": len(with_f), "rate": round(rate_with, 3),
                                   "rate_without": round(hits_without / len(without), 3) if without else None,
                                   "lift": round(rate_with / overall, 2) if overall else None}
        rows.append({"pattern": pattern, "failures": n, "share": round(n / len(failed), 3),
                     "has_item": pattern in CATALOGUE, "features": by_feature})
    return rows


def choose_trigger(row: dict[str, Any], min_support: int) -> str:
    """The feature under which the pattern is most frequent (highest lift, then fewer rollouts: the more specific),
    among those with at least `min_support` of its failures; "always" when none lifts it."""
    best, key = "always", (1.0, 0)
    for feature, f in row["features"].items():
        if feature == "always" or f["failures"] < min_support or not f["lift"]:
            continue
        candidate = (f["lift"], -f["rollouts"])
        if candidate > key:
            best, key = feature, candidate
    return best


def item_effects(records: Sequence[dict[str, Any]], playbook: Playbook) -> dict[str, dict[str, int]]:
    """Per playbook item: the rollouts whose context carried it and had a raw rollout of the same task and
    generator to compare with (tried), and of those the ones that passed where raw failed (helped) or failed where
    raw passed (hurt)."""
    raw = {(r["task_id"], r["generator"]): r["passed"] for r in records if r["candidate"] == "raw"}
    effects: dict[str, dict[str, int]] = defaultdict(lambda: {"tried": 0, "helped": 0, "hurt": 0})
    for r in records:
        base = raw.get((r["task_id"], r["generator"]))
        if base is None or not r["items"]:
            continue
        for item_id in r["items"]:
            if item_id not in playbook.items:
                continue
            e = effects[item_id]
            e["tried"] += 1
            e["helped"] += int(r["passed"] and not base)
            e["hurt"] += int(base and not r["passed"])
    return dict(effects)


def failure_delta(records: Sequence[dict[str, Any]], playbook: Playbook, min_failures: int = 2) -> dict[str, Any]:
    """New items for frequent patterns, and the failure evidence of existing ones (from these records only)."""
    delta: dict[str, Any] = {"add": [], "evidence": {}}
    for row in pattern_table(records):
        pattern = row["pattern"]
        existing = next((i for i in playbook.items.values() if i.pattern == pattern), None)
        if existing is not None:
            n = row["features"].get(existing.trigger, {}).get("failures", 0)
            if n:
                delta["evidence"][existing.id] = {"failures": n}
            continue
        if row["failures"] < min_failures or not row["has_item"]:
            continue
        trigger = choose_trigger(row, min_failures)
        item = catalogue_item(pattern, trigger)
        if item is not None:
            item["evidence"]["failures"] = row["features"][trigger]["failures"]
            delta["add"].append(item)
    return delta


def effect_delta(records: Sequence[dict[str, Any]], playbook: Playbook, retire_after: int = 6,
                 retire_margin: int = 2) -> dict[str, Any]:
    """The effects of the items these records carried, merged; items whose cumulative harm outweighs their help by
    `retire_margin` after `retire_after` tries retired."""
    effects = item_effects(records, playbook)
    harmful = []
    for item_id, e in effects.items():
        item = playbook.items[item_id]
        tried = item.evidence.get("tried", 0) + e["tried"]
        net = item.net + e["helped"] - e["hurt"]
        if item.status == "active" and tried >= retire_after and -net >= retire_margin:
            harmful.append((net, item_id))
    # at most the share of the active items one update may retire (the playbook refuses more): the most harmful
    # first; the rest wait for the next update
    cap = int(MAX_SHRINK * len(playbook.active()))
    return {"evidence": effects, "retire": [item_id for _, item_id in sorted(harmful)[:cap]]}


def item_table(playbook: Playbook) -> list[dict[str, Any]]:
    """The playbook's items with their evidence and measured effect (net = helped - hurt over tried)."""
    rows = []
    for item in playbook.items.values():
        e = item.evidence
        tried = e.get("tried", 0)
        rows.append({"id": item.id, "pattern": item.pattern, "trigger": item.trigger, "status": item.status,
                     "failures": e.get("failures", 0), "tried": tried, "helped": e.get("helped", 0),
                     "hurt": e.get("hurt", 0),
                     "effect": round(item.net / tried, 3) if tried else None, "text": item.text})
    return sorted(rows, key=lambda r: (-r["failures"], r["id"]))
