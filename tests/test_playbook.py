"""The failure playbook: task features, versioned deltas (add / merge / retire, a sharp shrink refused), mining the
pattern table and the items' effects from rollout records, and the rollouts' robust reward and selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cet.data.playbook import CATALOGUE, Playbook, catalogue_item, task_features
from cet.errors import CetError
from cet.model.context import EngineeredContext
from cet.phases.phase3 import best_and_worst
from cet.phases.playbook_mining import (
    choose_trigger,
    effect_delta,
    failure_delta,
    item_effects,
    item_table,
    pattern_table,
)
from cet.phases.rollouts import Candidate, by_candidate, distinct, robust_reward

LEETCODE_INTERFACE = "class Solution:\n    def two_sum(self, nums: list[int], target: int) -> list[int]:"
LEETCODE_TESTS = "nums, target, expected = ([2, 7], 9, [0, 1]); result = run_two_sum(Solution, nums, target)"
HUMANEVAL = "def add(a: int, b: int) -> int:\n    \"\"\"Add.\n    >>> add(1, 2)\n    3\n    \"\"\""


def test_features_read_what_the_cet_reads() -> None:
    leetcode = task_features("# Two Sum\n\n## Constraints\n\n- `2 <= nums.length <= 10^4`", LEETCODE_INTERFACE,
                             LEETCODE_TESTS)
    assert leetcode == {"always", "helper-tests", "class-interface", "snake-case-names", "typed-interface",
                        "constraints"}
    plain = task_features(HUMANEVAL, "", "assert add(1, 2) == 3")
    assert plain == {"always", "examples"}  # a snake_case function outside a class is not a renaming risk


def playbook_with(*patterns: tuple[str, str]) -> Playbook:
    return Playbook().apply({"add": [catalogue_item(p, t) for p, t in patterns]})


def test_versions_add_merge_retire_and_refuse_a_sharp_shrink(tmp_path: Path) -> None:
    pb = playbook_with(("renamed", "snake-case-names"), ("truncated", "always"), ("printed", "always"))
    assert pb.version == 1 and len(pb.active()) == 3
    pb2 = pb.apply({"evidence": {"P-renamed": {"failures": 3, "tried": 2, "helped": 2}}, "retire": ["P-printed"]})
    assert pb2.version == 2 and pb2.items["P-renamed"].evidence == {"failures": 3, "tried": 2, "helped": 2,
                                                                    "hurt": 0}
    assert pb.items["P-renamed"].evidence["failures"] == 0  # the old version is untouched
    assert pb2.items["P-printed"].status == "retired" and pb2.items["P-printed"].updated == 2
    assert [h["retired"] for h in pb2.history] == [[], ["P-printed"]]
    with pytest.raises(CetError, match="refused"):  # two of two active items at once
        pb2.apply({"retire": ["P-renamed", "P-truncated"]})
    with pytest.raises(CetError, match="exists"):
        pb2.apply({"add": [catalogue_item("renamed", "always")]})
    with pytest.raises(CetError, match="no playbook item"):
        pb2.apply({"evidence": {"P-nothing": {"failures": 1}}})
    with pytest.raises(CetError, match="unknown playbook trigger"):
        catalogue_item("renamed", "tuesdays")
    assert catalogue_item("passed", "always") is None
    pb.save(tmp_path)
    pb2.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"playbook-v1.json", "playbook-v2.json", "playbook.json"}
    loaded = Playbook.load(tmp_path)
    assert loaded.to_dict() == pb2.to_dict()
    assert json.loads((tmp_path / "playbook-v1.json").read_text())["version"] == 1
    assert Playbook.load(tmp_path / "absent").version == 0
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(CetError, match="not a playbook"):
        Playbook.load(tmp_path / "bad.json")


def test_matching_items_follow_the_trigger_and_the_evidence() -> None:
    pb = playbook_with(("renamed", "snake-case-names"), ("truncated", "always"))
    pb = pb.apply({"evidence": {"P-truncated": {"tried": 4, "helped": 3}}})
    texts = pb.texts_for("# Two Sum", LEETCODE_INTERFACE, LEETCODE_TESTS)
    assert texts == (CATALOGUE["truncated"], CATALOGUE["renamed"])  # the better-evidenced first
    assert pb.texts_for(HUMANEVAL) == (CATALOGUE["truncated"],)


def record(task: str, candidate: str, passed: bool, pattern: str, features: set[str], generator: str = "g1",
           items: tuple[str, ...] = (), reward: float | None = None, key: str | None = None,
           context: str = "") -> dict:
    return {"task_id": task, "candidate": candidate, "key": key or candidate, "generator": generator,
            "passed": passed, "pattern": "passed" if passed else pattern, "features": sorted(features | {"always"}),
            "items": list(items), "round": 1, "context": context, "context_tokens": len(context.split()),
            "reward": reward if reward is not None else float(passed)}


LEET = {"helper-tests", "class-interface", "snake-case-names"}
PLAIN = {"examples"}


def test_the_pattern_table_relates_patterns_to_features() -> None:
    records = [record(f"l{i}", "raw", False, "renamed", LEET) for i in range(3)] + \
        [record(f"p{i}", "raw", i == 0, "edge-value", PLAIN) for i in range(3)]
    table = {row["pattern"]: row for row in pattern_table(records)}
    renamed = table["renamed"]
    assert renamed["failures"] == 3 and renamed["share"] == 0.6 and renamed["has_item"]
    assert renamed["features"]["helper-tests"] == {"failures": 3, "rollouts": 3, "rate": 1.0, "rate_without": 0.0,
                                                   "lift": 2.0}
    assert choose_trigger(renamed, min_support=2) in LEET  # lifted by the LeetCode features, not "always"
    assert choose_trigger(table["edge-value"], min_support=2) == "examples"
    assert choose_trigger(table["edge-value"], min_support=5) == "always"  # too little support to specialise


def test_failures_add_items_once_and_then_merge_evidence() -> None:
    records = [record(f"l{i}", "raw", False, "renamed", LEET) for i in range(3)] + \
        [record("p0", "raw", False, "wrong-logic", PLAIN)]
    delta = failure_delta(records, Playbook())
    assert [a["id"] for a in delta["add"]] == ["P-renamed"]  # wrong-logic: one failure, and no catalogue item
    pb = Playbook().apply(delta)
    assert pb.items["P-renamed"].evidence["failures"] == 3 and pb.items["P-renamed"].trigger in LEET
    again = failure_delta(records[:2], pb)
    assert again == {"add": [], "evidence": {"P-renamed": {"failures": 2}}}


def test_item_effects_against_raw_and_retirement() -> None:
    pb = playbook_with(("renamed", "snake-case-names"), ("truncated", "always"), ("printed", "always"))
    records = []
    for i in range(4):  # renamed helps on two tasks and hurts on none; printed hurts on three
        records += [record(f"t{i}", "raw", i >= 2, "renamed", LEET),
                    record(f"t{i}", "playbook", True, "", LEET, items=("P-renamed",)),
                    record(f"t{i}", "printed", i == 3, "edge-value", LEET, items=("P-printed",))]
    effects = item_effects(records, pb)
    assert effects["P-renamed"] == {"tried": 4, "helped": 2, "hurt": 0}
    assert effects["P-printed"] == {"tried": 4, "helped": 0, "hurt": 1}
    delta = effect_delta(records, pb, retire_after=4, retire_margin=1)
    assert delta["retire"] == ["P-printed"]
    pb2 = pb.apply(delta)
    rows = {r["id"]: r for r in item_table(pb2)}
    assert rows["P-renamed"]["effect"] == 0.5 and rows["P-printed"]["status"] == "retired"
    assert rows["P-truncated"]["tried"] == 0 and rows["P-truncated"]["effect"] is None


def test_robust_reward_and_candidates() -> None:
    assert robust_reward([1.0, 0.0], lam=0.5) == {"mean": 0.5, "variance": 0.25, "robust": 0.375, "min": 0.0}
    assert robust_reward([0.6], lam=0.5)["robust"] == 0.6
    same = EngineeredContext(pitfalls=["x"])
    found = distinct([Candidate("raw"), Candidate("cet", EngineeredContext()), Candidate("a", same),
                      Candidate("b", same)])
    assert [c.name for c in found] == ["raw", "a"]  # an empty CET context is raw's prompt: rolled out once


def test_by_candidate_needs_every_generator_and_ranks_robustly() -> None:
    records = [record("t", "raw", True, "", PLAIN, "g1"), record("t", "raw", False, "wrong-logic", PLAIN, "g2"),
               record("t", "ctx", True, "", PLAIN, "g1", key="k", context="## Pitfalls\n- a b"),
               record("t", "ctx", True, "", PLAIN, "g2", key="k", context="## Pitfalls\n- a b"),
               record("t", "half", True, "", PLAIN, "g1", key="h", context="x")]  # g2 never ran it
    groups = by_candidate(records, ["g1", "g2"], lam=0.5)["t"]
    assert {e["candidate"] for e in groups} == {"raw", "ctx"}
    best, worst = best_and_worst(groups, min_gain=0.0)
    assert best["candidate"] == "ctx" and best["robust"] == 1.0 and worst["candidate"] == "raw"
    assert worst["robust"] == 0.375 and worst["min"] == 0.0
    best, _ = best_and_worst(groups, min_gain=0.7)  # a gain of 0.625 is not enough: raw (nothing to add) stays
    assert best["candidate"] == "raw"
    tie = [dict(groups[0], robust=1.0, context_tokens=9), dict(groups[1], robust=1.0, context_tokens=0, context="")]
    assert best_and_worst(tie, 0.0)[0]["context"] == ""  # a tie goes to the shorter context


def test_an_empty_update_keeps_the_version_and_a_lone_harmful_item_waits() -> None:
    pb = playbook_with(("printed", "always"))
    assert pb.apply({"add": [], "evidence": {"P-printed": {"failures": 0}}, "retire": []}) is pb
    records = []
    for i in range(6):
        records += [record(f"t{i}", "raw", True, "", LEET),
                    record(f"t{i}", "playbook", False, "printed", LEET, items=("P-printed",))]
    delta = effect_delta(records, pb, retire_after=4, retire_margin=1)
    assert delta["retire"] == [] and delta["evidence"]["P-printed"]["hurt"] == 6  # one of one: never all at once
    assert pb.apply(delta).items["P-printed"].status == "active"
