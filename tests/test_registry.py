"""The checkpoint registry: versions copied in, the champion swapped only with the evidence, rolled back with a
reason, the file replaced whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cet.errors import CetError
from cet.model.cet import MANIFEST
from cet.serving.registry import Registry


def checkpoint(where: Path, phase: str) -> Path:
    where.mkdir(parents=True)
    (where / MANIFEST).write_text(json.dumps({"phase": phase}))
    (where / "adapter_model.safetensors").write_bytes(b"weights")
    return where


def test_promotion_needs_a_decided_experiment_no_breach_and_no_offline_loss(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    first = registry.register(checkpoint(tmp_path / "p2", "phase2"), offline_pass_rate=0.347)
    second = registry.register(checkpoint(tmp_path / "p3", "phase3"), offline_pass_rate=0.360)
    assert (first, second) == ("v1", "v2") and registry.champion()["id"] == "v1"  # the first is the champion
    assert Path(registry.champion()["path"], "adapter_model.safetensors").read_bytes() == b"weights"  # a copy
    undecided = {"decided": False, "winner": None}
    won = {"decided": True, "winner": "v2", "control": "v1", "treatment": "v2", "p_value": 0.01,
           "clustered": {"ci": [0.01, 0.06]}}
    breach = {"compile_failure_rate": {"breached": True}, "p95_latency": {"breached": False}}
    served = {"limits": {}, "stopped": {}, "arms": {"cet": {"p95_latency_ms": {"breached": True}}}}  # the service's
    assert registry.promotion_blockers("v2", won, served) == ["guardrail(s) breached: p95_latency_ms"]
    assert registry.promotion_blockers("v2", won, {"x": "?"}) == ["guardrail evidence without a verdict: x"]
    assert registry.promotion_blockers("v2", {**won, "winner": "cet", "treatment": "cet"}, {}, arm="cet") == []
    assert registry.promotion_blockers("v2", {**won, "clustered": None}, {}) == [
        "the experiment has no per-user (clustered) interval"]
    assert "may rest on a few users" in registry.promotion_blockers(
        "v2", {**won, "clustered": {"ci": [-0.02, 0.08]}}, {})[0]
    assert registry.promotion_blockers("v2", {**won, "control": "template"}, {}) == [
        "the experiment's control was template, not the champion v1"]
    assert "has not decided" in registry.promotion_blockers("v2", undecided, {})[0]
    assert registry.promotion_blockers("v2", won, breach) == ["guardrail(s) breached: compile_failure_rate"]
    with pytest.raises(CetError, match="not promoted"):
        registry.promote("v2", {"decided": True, "winner": "v1"}, {})
    assert registry.read()["champion"] == "v1"  # refused: nothing changed
    registry.promote("v2", won, {"p95_latency": {"breached": False}})
    assert registry.champion()["id"] == "v2"
    worse = registry.register(checkpoint(tmp_path / "p3b", "phase3"), offline_pass_rate=0.30)
    assert registry.promotion_blockers(worse, {**won, "winner": worse, "control": "v2", "treatment": worse}, {}) == [
        "offline held-out pass rate 0.300 below the champion's 0.360"]
    registry.set_offline_pass_rate(worse, 0.37)
    assert registry.promotion_blockers(worse, {**won, "winner": worse, "control": "v2", "treatment": worse}, {}) == []
    assert registry.predecessor()["id"] == "v1"
    assert registry.rollback("someone else's breach", expected="v1")["champion"] == "v2"  # v1 is not in force
    data = registry.rollback("compile failures rose to 12%")
    assert data["champion"] == "v1" and data["history"][-1]["reason"] == "compile failures rose to 12%"
    with pytest.raises(CetError, match="nothing to roll back"):
        registry.rollback("again")
    assert not list((tmp_path / "registry").glob("*.tmp"))  # every write renamed into place


def test_bad_input_is_refused_with_one_clear_error(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    with pytest.raises(CetError, match="not a CET checkpoint"):
        registry.register(tmp_path)
    with pytest.raises(CetError, match="no version 'v9'"):
        registry.promotion_blockers("v9", None, None)
    (tmp_path / "registry").mkdir(exist_ok=True)
    (tmp_path / "registry" / "registry.json").write_text("{broken")
    with pytest.raises(CetError, match="cannot be read"):
        registry.read()


def test_the_registry_command(run_cet, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = str(tmp_path / "registry")
    one = run_cet("registry", "add", str(checkpoint(tmp_path / "a", "phase2")), "--root", root,
                  "--offline-pass-rate", "0.35", "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["champion"] == "v1"
    run_cet("registry", "add", str(checkpoint(tmp_path / "b", "phase3")), "--root", root, "--offline-pass-rate", "0.4")
    evidence = tmp_path / "evidence.json"
    evidence.write_text(json.dumps({"experiment": {"decided": False}, "guardrails": {}}))
    refused = run_cet("registry", "promote", "v2", "--evidence", str(evidence), "--root", root)
    assert refused.returncode != 0 and "has not decided" in refused.stderr and "Traceback" not in refused.stderr
    evidence.write_text(json.dumps({"experiment": {"decided": True, "winner": "v2", "control": "v1", "treatment": "v2",
                                                   "clustered": {"ci": [0.02, 0.09]}}, "guardrails": {}}))
    promoted = run_cet("registry", "promote", "v2", "--evidence", str(evidence), "--root", root, "--json")
    assert promoted.returncode == 0 and json.loads(promoted.stdout)["champion"] == "v2"
    back = run_cet("registry", "rollback", "--reason", "p95 latency", "--root", root, "--json")
    assert json.loads(back.stdout)["champion"] == "v1"
    rated = run_cet("registry", "offline", "v2", "0.41", "--root", root, "--json")
    assert [v["offline_pass_rate"] for v in json.loads(rated.stdout)["versions"]] == [0.35, 0.41]
    bad = run_cet("registry", "offline", "v9", "0.4", "--root", root)
    assert bad.returncode != 0 and "no version 'v9'" in bad.stderr and "Traceback" not in bad.stderr


def test_a_champion_that_breaches_a_guardrail_is_rolled_back_and_its_predecessor_served(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from cet.config import load_config
    from cet.serving.app import create_app
    from cet.serving.feedback import FeedbackStore
    from cet.serving.guardrails import Limits
    from cet.serving.registry import rollback_on_breach
    from cet.serving.strategies import NoContextStrategy, TemplateStrategy

    registry = Registry(tmp_path / "registry")
    registry.register(checkpoint(tmp_path / "p2", "phase2"))
    registry.register(checkpoint(tmp_path / "p3", "phase3"))
    registry.promote("v2", {"decided": True, "winner": "v2", "control": "v1", "treatment": "v2",
                            "clustered": {"ci": [0.01, 0.1]}}, {})
    loaded = []

    def load(version: dict) -> NoContextStrategy:
        loaded.append(version["id"])
        return NoContextStrategy()

    store = FeedbackStore(tmp_path / "feedback.sqlite")
    limits = Limits(compile_failure_rate=0.2, min_samples=5)
    app = create_app({"v2": TemplateStrategy(load_config(), None)}, store, limits=limits, registry=registry,
                     on_breach=rollback_on_breach(registry, load))
    try:
        with TestClient(app) as c:
            arms = []
            for _ in range(12):
                body = c.post("/v1/context", json={"task": "Write `f(x)` returning x."}).json()
                arms.append(body["arm"])
                c.post("/v1/feedback", json={"request_id": body["request_id"], "passed": False,
                                             "compiled": body["arm"] != "v2"})
            assert arms == ["v2"] * 5 + ["v1"] * 7  # the sixth request finds five failed compiles and rolls back
            assert loaded == ["v1"] and registry.champion()["id"] == "v1"
            assert "compile_failure_rate" in registry.read()["history"][-1]["reason"]
            guards = c.get("/v1/guardrails").json()
            assert guards["rollbacks"][0]["from"] == "v2" and guards["rollbacks"][0]["to"] == "v1"
            assert c.get("/health").json()["default_arm"] == "v1"
            page = c.get("/dashboard")
            assert page.status_code == 200 and "rollback" in page.text and "BREACHED" in page.text
    finally:
        store.close()


def test_rollback_on_breach_rolls_back_once_and_never_on_a_failed_load(tmp_path: Path) -> None:
    from cet.serving.registry import rollback_on_breach

    registry = Registry(tmp_path / "registry")
    for n in range(3):
        registry.register(checkpoint(tmp_path / f"c{n}", "phase3"))
    evidence = {"decided": True, "control": "v1", "treatment": "v2", "winner": "v2", "clustered": {"ci": [0.1, 0.2]}}
    registry.promote("v2", evidence, {})
    registry.promote("v3", {**evidence, "control": "v2", "treatment": "v3", "winner": "v3"}, {})

    def broken(version: dict) -> str:
        raise OSError("disk gone")

    assert rollback_on_breach(registry, broken)("v3", "breach") is None
    assert registry.champion()["id"] == "v3"  # the predecessor could not be loaded: no rollback
    one, two = rollback_on_breach(registry, lambda v: v["id"]), rollback_on_breach(registry, lambda v: v["id"])
    assert one("v3", "breach") == ("v2", "v2")  # the first service rolls back and serves v2
    assert two("v3", "breach") == ("v2", "v2")  # the second sees it done: serves v2, no second rollback
    assert registry.champion()["id"] == "v2"
    assert [h["action"] for h in registry.read()["history"]].count("rollback") == 1
    assert one("template", "breach") is None  # not a version


def test_an_offline_pass_rate_outside_0_1_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register(checkpoint(tmp_path / "c", "phase3"))
    with pytest.raises(CetError, match="between 0 and 1"):
        registry.set_offline_pass_rate("v1", 1.5)

