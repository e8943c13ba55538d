"""Retraining from the service's feedback: served contexts and verdicts become a candidate CET (Phase 3's learner),
registered beside the champion; traffic that carries a held-out task is never trained on; the drift gate holds
training back until the traffic calls for it."""

from __future__ import annotations

import json
from pathlib import Path

from cet.config import load_config
from cet.execution.tasks import CodingTask, TaskMetadata
from cet.model.cet import MANIFEST, CETModel
from cet.runs import RunDir
from cet.serving.feedback import FeedbackStore
from cet.serving.registry import Registry
from cet.serving.retrain import RetrainOptions, retrain

HELD_OUT = ("Write `zorblax_fold(items)` that folds the zorblax ledger: every third glyph is inverted, runs of "
            "identical glyphs collapse to their count, and the sentinel glyph q ends the ledger early.")


def tasks_dir(where: Path) -> Path:
    held = CodingTask(id="exercism/zorblax-fold", language="python", entry_point="zorblax_fold",
                      signature="def zorblax_fold(items)", statement=HELD_OUT,
                      tests="from solution import zorblax_fold\n\n\ndef test_fold():\n    assert zorblax_fold('aaq') "
                            "== '2a'\n", test_names=["test_fold"], metadata=TaskMetadata(source="exercism",
                                                                                         split="test"))
    where.mkdir()
    (where / "exercism.jsonl").write_text(held.model_dump_json() + "\n")
    return where


def serve(store: FeedbackStore, task: str, arm: str, context: str, passed: bool, unit: str = "") -> None:
    request = store.record_request(arm=arm, model_version="x", task=task, context=context, sections=[],
                                   chunk_ids=[], unit=unit)
    store.record_feedback(request, passed, None, None)


def test_feedback_trains_a_registered_candidate_and_never_a_held_out_task(tiny_base: Path, tmp_path: Path) -> None:
    cfg = load_config(cet={"base_model": str(tiny_base), "device": "cpu", "checkpoints_dir": str(tmp_path / "cet"),
                           "train": {"batch_size": 2, "epochs": 1, "warmup_ratio": 0.0}},
                      serve={"registry_dir": str(tmp_path / "registry")},
                      exec={"tasks_dir": str(tasks_dir(tmp_path / "tasks"))}, run={"runs_dir": str(tmp_path / "runs")})
    start = CETModel.from_base(cfg).save(tmp_path / "start", "phase2", "v0")
    registry = Registry(cfg.serve.registry_dir)
    assert registry.register(start) == "v1"
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    add = "Write `add(a, b)` returning the sum.\n\ndef add(a, b)"
    serve(store, add, "v1", "## Goal\nReturn the sum of a and b.\n## Interface\n- def add(a, b)", True)
    serve(store, add, "v1", "## Goal\nReturn the sum of a and b.\n## Interface\n- def add(a, b)", False)
    serve(store, add, "template", "## Goal\nAdd.", False)
    flip = "Write `flip(s)` returning s reversed.\n\ndef flip(s)"
    serve(store, flip, "none", "", True)  # raw passed where the CET's context failed: "nothing to add" is learnt
    serve(store, flip, "v1", "## Goal\nReverse s.\n## Pitfalls\n- Mind the empty string.", False)
    serve(store, "Write `never(x)`.\n\ndef never(x)", "v1", "## Goal\nNever.", False)  # no pass: nothing to learn
    serve(store, f"{HELD_OUT}\n\ndef zorblax_fold(items)", "v1", "## Goal\nFold the ledger.", True)  # held out
    # a task a replay held out (listed beside its store), served under its id: dropped by id, whatever its text
    serve(store, "Write `triple(x)`.\n\ndef triple(x)", "v1", "## Goal\nTriple x.", True, unit="mine/triple")
    store.close()
    (tmp_path / "held_out_ids.json").write_text('["mine/triple"]')

    run = RunDir(cfg, "retrain")
    result = retrain(cfg, RetrainOptions(feedback_db=str(tmp_path / "feedback.sqlite"), learner="rest"), run, None)
    assert result["retrained"], result
    assert result["data"] == {"rows": 8, "held_out_dropped": 2, "tasks": 3, "tasks_with_a_pass": 2}
    assert result["training"]["examples"] == 2 and result["training"]["targets"] == {"v1": 1, "nothing to add": 1}
    trained = (run.path / "train" / "examples.jsonl").read_text()
    assert "zorblax" not in trained and "triple" not in trained and "Return the sum of a and b." in trained
    assert result["registered"] == "v2" and registry.read()["champion"] == "v1"  # a candidate, not a promotion
    manifest = json.loads((Path(result["checkpoint"]) / MANIFEST).read_text())
    assert manifest["phase"] == "phase4" and manifest["parent"] == "v1" and manifest["data_version"]

    gated = retrain(cfg, RetrainOptions(feedback_db=str(tmp_path / "feedback.sqlite"), if_drift=True, window=10),
                    RunDir(cfg, "retrain"), None)
    assert not gated["retrained"] and "not enough traffic" in gated["why"]
    assert len(registry.read()["versions"]) == 2


def test_retrain_without_a_store_is_one_clear_error(run_cet, cet_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    done = run_cet("retrain", "--feedback", str(tmp_path / "none.sqlite"), "--no-retrieval",
                   env=cet_env(CET_RUN__RUNS_DIR=str(tmp_path / "runs")))
    assert done.returncode != 0 and "no feedback store" in done.stderr and "Traceback" not in done.stderr


def test_watching_the_traffic_retrains_once_per_window_of_new_requests(tiny_base: Path, tmp_path: Path) -> None:
    from cet.serving.retrain import watch

    cfg = load_config(cet={"base_model": str(tiny_base), "device": "cpu", "checkpoints_dir": str(tmp_path / "cet"),
                           "train": {"batch_size": 4, "epochs": 1, "warmup_ratio": 0.0}},
                      serve={"registry_dir": str(tmp_path / "registry")},
                      exec={"tasks_dir": str(tasks_dir(tmp_path / "tasks"))}, run={"runs_dir": str(tmp_path / "runs")})
    Registry(cfg.serve.registry_dir).register(CETModel.from_base(cfg).save(tmp_path / "start", "phase2", "v0"))
    db = tmp_path / "feedback.sqlite"
    store = FeedbackStore(db)
    for n in range(20):  # short tasks that pass, then long ones that fail: drift and a drop
        serve(store, f"Write `f{n}(x)` returning x.\n\ndef f{n}(x)", "v1", "## Goal\nReturn x unchanged.", True)
    for n in range(20):
        serve(store, f"Write `g{n}(x)`." + " It must handle every edge case carefully." * 20, "v1", "## Goal\nG.",
              False)
    store.close()
    said: list[dict] = []
    trained = watch(cfg, RetrainOptions(feedback_db=str(db), window=10), None, lambda: RunDir(cfg, "retrain"), 0.0,
                    checks=3, on_result=said.append, sleep=lambda _: None)
    assert trained == 1 and len(said) == 1  # later checks see no new window of traffic: nothing more
    assert said[0]["registered"] == "v2" and "length" in said[0]["gate"]["shifted"]
