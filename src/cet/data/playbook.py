"""The failure playbook (ACE-style): itemised pitfalls that Phase 3 mined from the failed rollouts of training
tasks, each with the failure pattern it answers, the task feature under which it applies, its evidence counts and
its measured effect. The CET reads the active items that match a task (`CETInput.playbook`) and may carry them into
its context's Pitfalls; the generator never sees an item the CET did not write.

    item      id, pattern (execution/failures.py), trigger (a task feature), text, evidence, status, versions
    version   every update is a delta (add / merge evidence / retire / reactivate) applied to the last version and
              saved as playbook-v{N}.json beside playbook.json (the latest): items are never rewritten wholesale,
              and an update that would retire more than `MAX_SHRINK` of the active items at once is refused

The reflector is rule-based: a failure pattern maps to one catalogue item (`CATALOGUE`). Which items are active,
where they apply and whether they stay is decided by the training rollouts' evidence alone (phases/playbook_mining).
Features read the task as the CET reads it (statement, interface, visible tests), never the hidden tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cet.data.task_input import TaskView
from cet.errors import CetError

MAX_SHRINK = 0.5  # at most this share of the active items may be retired by one update
MAX_ITEMS_PER_TASK = 3

# pattern -> item text: advice any reader of the task can follow, with no task's facts in it. Where an item applies
# (its trigger feature) is chosen by the miner from the rollouts: the feature under which the pattern is most frequent
CATALOGUE: dict[str, str] = {
    "helpers-instead": "The tests already define the run_ and assert_ helpers they call: write only the class or "
                       "function of the interface, not those helpers.",
    "renamed": "Keep every name exactly as the interface writes it (snake_case), even where the usual name of the "
               "method is camelCase.",
    "missing-import": "Start the code with the imports it uses (from typing import List, from collections import "
                      "Counter, deque, import heapq).",
    "truncated": "Keep the code short: no comments, no explanation and no example usage after it.",
    "printed": "Return the result; do not print it.",
    "wrong-type": "Return exactly the type the interface and the examples show (a list, not a tuple; a string, not "
                  "a number).",
    "edge-value": "Check the smallest and edge inputs the constraints allow (one element, equal values, zero, the "
                  "largest size) before returning.",
    "timeout": "Stay within the constraints' limits: no brute force over every combination.",
    "exception": "Guard every index and lookup: check bounds and empty inputs before indexing.",
}
FEATURES = ("always", "helper-tests", "class-interface", "snake-case-names", "typed-interface", "examples",
            "constraints")

_HELPER_CALL = re.compile(r"\b(?:run|assert)_\w+\s*\(")
_CLASS = re.compile(r"^\s*class\s+\w+", re.MULTILINE)
_DEF = re.compile(r"def\s+([A-Za-z_]\w*)\s*\(")
_TYPED = re.compile(r"\b(?:List|Dict|Set|Tuple|Optional|list|dict|set|tuple)\[")
_EXAMPLES = re.compile(r"^\s{0,3}#{1,6}\s*examples?\b|^\s*(?:Example|Input)\s*\d*\s*:|>>>",
                       re.IGNORECASE | re.MULTILINE)
_CONSTRAINTS = re.compile(r"^\s{0,3}#{1,6}\s*constraints?\b|<=", re.IGNORECASE | re.MULTILINE)


def task_features(statement: str, interface: str = "", visible_tests: str = "") -> frozenset[str]:
    """The features a playbook item may be triggered by, read from what the CET reads."""
    code = f"{interface}\n{statement}"
    names = [n for n in _DEF.findall(code) if not n.startswith("__")]
    found = {"always"}
    if _HELPER_CALL.search(visible_tests):
        found.add("helper-tests")
    if _CLASS.search(code):
        found.add("class-interface")
    if "class-interface" in found and any("_" in n.strip("_") for n in names):
        found.add("snake-case-names")  # methods of a class named in snake_case (LeetCode's are camelCase)
    if _TYPED.search(code):
        found.add("typed-interface")
    if _EXAMPLES.search(statement):
        found.add("examples")
    if _CONSTRAINTS.search(statement):
        found.add("constraints")
    return frozenset(found)


def view_features(view: TaskView) -> frozenset[str]:
    """`task_features` of a task view: its statement, its interface (else the task's signature), its visible tests."""
    return task_features(view.statement, view.interface or view.task.signature or "", view.visible_tests)


@dataclass
class PlaybookItem:
    id: str
    pattern: str
    trigger: str
    text: str
    # failures: failed rollouts of this pattern on tasks with the trigger; tried: rollouts whose context held the
    # item, with a raw rollout of the same task and generator; helped / hurt: of those, passed where raw failed /
    # failed where raw passed
    evidence: dict[str, int] = field(default_factory=lambda: {"failures": 0, "tried": 0, "helped": 0, "hurt": 0})
    status: str = "active"  # active | retired
    added: int = 1
    updated: int = 1

    @property
    def net(self) -> int:
        return self.evidence.get("helped", 0) - self.evidence.get("hurt", 0)


@dataclass
class Playbook:
    version: int = 0
    items: dict[str, PlaybookItem] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per version: what the delta did

    def active(self) -> list[PlaybookItem]:
        return [item for item in self.items.values() if item.status == "active"]

    def matching(self, features: Iterable[str], limit: int = MAX_ITEMS_PER_TASK) -> list[PlaybookItem]:
        """The active items whose trigger the task has, the best-evidenced first (net effect, then failures)."""
        have = set(features)
        found = [item for item in self.active() if item.trigger in have]
        found.sort(key=lambda i: (-i.net, -i.evidence.get("failures", 0), i.id))
        return found[:limit]

    def texts_for(self, statement: str, interface: str = "", visible_tests: str = "") -> tuple[str, ...]:
        return tuple(item.text for item in self.matching(task_features(statement, interface, visible_tests)))

    def texts_for_view(self, view: TaskView) -> tuple[str, ...]:
        """The matching items' texts for a task as every condition sees it (what the CET reads with them)."""
        return tuple(item.text for item in self.matching(view_features(view)))

    def apply(self, delta: Mapping[str, Any]) -> Playbook:
        """A new version: `delta` = {"add": [PlaybookItem-as-dict], "evidence": {id: {count: +n}},
        "retire": [id], "reactivate": [id]}. Refused (CetError) when it would retire more than MAX_SHRINK of the
        active items, or names an unknown item."""
        if not delta.get("add") and not delta.get("retire") and not delta.get("reactivate") and not any(
                n for counts in (delta.get("evidence") or {}).values() for n in counts.values()):
            return self  # nothing changed: no new version
        version = self.version + 1
        items = {k: PlaybookItem(**{**asdict(v), "evidence": dict(v.evidence)}) for k, v in self.items.items()}
        for raw in delta.get("add", ()):
            item = PlaybookItem(**{**raw, "added": version, "updated": version})
            if item.id in items:
                raise CetError(f"playbook item {item.id} exists: merge its evidence instead of adding it again")
            items[item.id] = item
        for item_id, counts in (delta.get("evidence") or {}).items():
            item = _known(items, item_id)
            for key, n in counts.items():
                item.evidence[key] = item.evidence.get(key, 0) + int(n)
            item.updated = version
        active_before = sum(1 for i in self.items.values() if i.status == "active")
        retire = list(delta.get("retire", ()))
        if active_before and len(retire) > MAX_SHRINK * active_before:
            raise CetError(f"refused: the update retires {len(retire)} of {active_before} active playbook items "
                           f"(more than {MAX_SHRINK:.0%} at once)")
        for item_id in retire:
            item = _known(items, item_id)
            item.status, item.updated = "retired", version
        for item_id in delta.get("reactivate", ()):
            item = _known(items, item_id)
            item.status, item.updated = "active", version
        summary = {"version": version, "added": [r["id"] for r in delta.get("add", ())],
                   "merged": sorted((delta.get("evidence") or {}).keys()), "retired": retire,
                   "reactivated": list(delta.get("reactivate", ()))}
        return Playbook(version, items, [*self.history, summary])

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "items": [asdict(i) for i in self.items.values()], "history": self.history}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Playbook:
        items = {raw["id"]: PlaybookItem(**raw) for raw in data.get("items", ())}
        return cls(int(data.get("version", 0)), items, list(data.get("history", ())))

    def save(self, directory: str | Path) -> Path:
        """playbook-v{N}.json (kept) and playbook.json (the latest) in `directory`."""
        where = Path(directory)
        where.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1)
        (where / f"playbook-v{self.version}.json").write_text(text, encoding="utf-8")
        latest = where / "playbook.json"
        tmp = latest.with_suffix(".json.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(latest)
        return latest

    @classmethod
    def load(cls, path: str | Path) -> Playbook:
        """The playbook at `path` (a playbook.json, or a directory holding one); an empty one when there is none."""
        p = Path(path)
        p = p / "playbook.json" if p.is_dir() or not p.suffix else p
        if not p.is_file():
            return cls()
        try:
            return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CetError(f"{p} is not a playbook: {e}") from None


def catalogue_item(pattern: str, trigger: str) -> dict[str, Any] | None:
    """The catalogue's item for a failure pattern, applying under `trigger`, as an `add` entry (None: the pattern
    has no item)."""
    if pattern not in CATALOGUE:
        return None
    if trigger not in FEATURES:
        raise CetError(f"unknown playbook trigger {trigger!r}; choose from {', '.join(FEATURES)}")
    return {"id": f"P-{pattern}", "pattern": pattern, "trigger": trigger, "text": CATALOGUE[pattern],
            "evidence": {"failures": 0, "tried": 0, "helped": 0, "hurt": 0}}


def _known(items: dict[str, PlaybookItem], item_id: str) -> PlaybookItem:
    if item_id not in items:
        raise CetError(f"no playbook item {item_id}")
    return items[item_id]
