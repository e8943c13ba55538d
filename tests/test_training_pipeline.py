"""Phase 1 → Phase 2 → context evaluation through the real `cet` commands: a tiny CET (real tokenizer), the
real SmolLM2 as the whole team, a real SQLite knowledge base, the real sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cet.execution.tasks import CodingTask, TaskMetadata, write_tasks
from cet.model.context import NOTHING_TO_ADD

ADD_TESTS = '''from solution import add


def test_small():
    assert add(1, 2) == 3


def test_negative():
    assert add(-1, -4) == -5
'''
REVERSE_TESTS = '''from solution import reverse


def test_word():
    assert reverse("robot") == "tobor"


def test_empty():
    assert reverse("") == ""
'''
ADD_SOLUTION = "def add(a, b):\n    total = a + b\n    return total\n"


def task(task_id: str, statement: str, entry: str, tests: str, names: list[str], split: str, source: str,
         evaluation_only: bool = False) -> CodingTask:
    return CodingTask(id=task_id, language="python", statement=statement, entry_point=entry,
                      signature=f"def {entry}(a, b)" if entry == "add" else f"def {entry}(text)", tests=tests,
                      test_names=names, metadata=TaskMetadata(source=source, split=split,
                                                              evaluation_only=evaluation_only))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, core_exercism: Path, run_cet, cet_env, tiny_base: Path):
    root = tmp_path_factory.mktemp("pipeline")
    tasks_dir = root / "tasks"
    add = "# Add\n\nWrite a function `add(a, b)` that returns the sum of two integers.\n\n`add(1, 2) == 3`"
    rev = "# Reverse\n\nWrite `reverse(text)` returning the string reversed. An empty string stays empty."
    write_tasks([task("exercism/add", add, "add", ADD_TESTS, ["test_small", "test_negative"], "train", "exercism"),
                 task("exercism/reverse", rev, "reverse", REVERSE_TESTS, ["test_word", "test_empty"], "train",
                      "exercism"),
                 task("exercism/add-held-out", add, "add", ADD_TESTS, ["test_small", "test_negative"], "test",
                      "exercism")], tasks_dir / "exercism.jsonl")
    write_tasks([task("humaneval/reverse", rev, "reverse", REVERSE_TESTS, ["test_word", "test_empty"], "eval",
                      "humaneval", evaluation_only=True)], tasks_dir / "humaneval.jsonl")
    env = cet_env(
        CET_KB__DB=str(root / "kb.sqlite"), CET_EXEC__TASKS_DIR=str(tasks_dir), CET_RUN__RUNS_DIR=str(root / "runs"),
        CET_CET__BASE_MODEL=str(tiny_base), CET_CET__CHECKPOINTS_DIR=str(root / "cet"),
        CET_CET__MAX_NEW_TOKENS="24", CET_CET__TRAIN__EPOCHS="1", CET_LLM__CACHE_PATH=str(root / "cache.sqlite"),
        CET_LLM__MAX_TOKENS="96", CET_LLM__N_THREADS="1",
        CET_LLM__ROLES__GENERATOR='["smollm2-135m-instruct"]', CET_LLM__ROLES__JUDGE='["smollm2-135m-instruct"]',
        CET_LLM__ROLES__QUESTION_WRITER='["smollm2-135m-instruct"]',
        CET_CET__PHASE3__GENERATORS='["smollm2-135m-instruct"]',
    )
    ingest = run_cet("kb", "ingest", "--source", "exercism", str(core_exercism), "--json", env=env)
    assert ingest.returncode == 0, ingest.stderr
    return root, env


def test_phase1_phase2_and_the_context_evaluation(workspace, run_cet):
    root, env = workspace
    p1 = run_cet("train", "phase1", "--rounds", "1", "--questions", "2", "--synthetic", "0.5", "--json", env=env)
    assert p1.returncode == 0, p1.stderr[-2000:]
    out1 = json.loads(p1.stdout)
    assert out1["questions"] == 2 and Path(out1["checkpoint"], "cet.json").is_file()
    records = [json.loads(line) for line in Path(out1["conversations"]).read_text().splitlines()]
    assert {r["task_id"] for r in records} == {"exercism/add", "exercism/reverse"}  # training tasks only
    assert {r["origin"] for r in records} == {"dataset", "synthetic"}
    failed = 0
    for r in records:
        assert len(r["retrieved"]) == 5 and set(r["answers"]) == {"cet", "team"}
        assert "generation_error" in r["answers"]["cet"]  # a failed CET generation is kept, never silent
        failed += bool(r["answers"]["cet"]["generation_error"])
        assert not r["answers"]["cet"]["generation_error"] or not r["answers"]["cet"]["text"]
        verifier = [v for v in r["answers"]["team"].get("votes", []) if v["kind"] == "verifier"]
        assert r["answers"]["team"]["verdict"] is None or verifier  # tests exist: the sandbox sat on the jury
    assert sum(r["cet_generation_failures"] for r in out1["rounds"]) == failed

    # synthetic conversations on the training tasks: chat JSON Lines that `datasets` loads, every claim run
    conv = run_cet("data", "conversations", "--tasks", "2", "--json", env=env)
    assert conv.returncode == 0, conv.stderr[-2000:]
    made = json.loads(conv.stdout)
    assert made["conversations"] + made["near_duplicates_removed"] == 2 and made["tasks_drawn"] == 2
    from datasets import load_dataset

    rows = load_dataset("json", data_files=made["file"], split="train")
    assert set(rows["task_id"]) <= {"exercism/add", "exercism/reverse"}  # training tasks only
    for row in rows:
        assert row["messages"][0]["role"] == "user" and row["shape"][:3] == ["vague-ask", "clarifying-question",
                                                                                  "clarification"]
        assert not row["claims_working_code"] or row["verified"] is not None  # a claim is always run
        assert (row["solution"] is not None) == bool(row["verified"] and row["verified"]["passed"])
    assert made["claims_working_code"] == sum(rows["claims_working_code"])

    # Phase 2 from a conversations file holding one verified solution (as Phase 1 writes them)
    conversations = root / "conversations.jsonl"
    conversations.write_text(json.dumps({"question_id": "exercism/add#dataset", "task_id": "exercism/add",
                                         "solution": ADD_SOLUTION, "trained_on": "team"}) + "\n")
    p2 = run_cet("train", "phase2", "--conversations", str(conversations), "--tasks", "2", "--json", env=env)
    assert p2.returncode == 0, p2.stderr[-2000:]
    out2 = json.loads(p2.stdout)
    kinds = out2["by_kind"]
    assert kinds["requirement"] == 2 and kinds["degraded"] == 2 and kinds.get("partial", 0) >= 1
    assert kinds.get("bug", 0) >= 1
    pairs = [json.loads(line) for line in Path(out2["pairs_file"]).read_text().splitlines()]
    requirements = [p for p in pairs if p["kind"] in ("requirement", "degraded")]
    for p in requirements:  # selective targets: what the task as given does not show, never a restated goal
        assert p["nothing_to_add"] == (p["target"] == NOTHING_TO_ADD) and "## Goal" not in p["target"]
    assert out2["nothing_to_add"] == sum(p["nothing_to_add"] for p in requirements)
    bug = next(p for p in pairs if p["kind"] == "bug")
    assert "tests fail" in bug["error"] and "## Suspects" in bug["target"] and bug["code"] != ADD_SOLUTION
    assert out2["training"]["steps"] >= 1 and out2["throughput"]["ratio"] > 0
    assert json.loads(Path(out2["checkpoint"], "cet.json").read_text())["phase"] == "phase2"

    # Phase 3: one rollout task, one dev task (the two training tasks), the tiny team of one generator
    p3 = run_cet("train", "phase3", "--tasks", "1", "--dev-tasks", "1", "--samples", "1", "--json", env=env)
    assert p3.returncode == 0, p3.stderr[-2000:]
    out3 = json.loads(p3.stdout)
    assert out3["train_tasks"] and out3["dev_tasks"] and not set(out3["train_tasks"]) & set(out3["dev_tasks"])
    assert set(out3["train_tasks"] + out3["dev_tasks"]) <= {"exercism/add", "exercism/reverse"}  # training only
    rollouts = [json.loads(line) for line in Path(out3["rollouts_file"]).read_text().splitlines()]
    assert {r["candidate"] for r in rollouts} >= {"raw", "template"} and len(rollouts) == out3["rollouts"] - sum(
        1 for _ in Path(out3["rollouts_file"]).with_name("dev-rollouts.jsonl").read_text().splitlines())
    for r in rollouts:  # each rollout: the context, its features, the generator's code, verdict and reward parts
        assert r["generator"] == "smollm2-135m-instruct" and r["task_id"] in out3["train_tasks"]
        assert {"context", "features", "code", "passed", "reward", "terms", "failure_class", "pattern"} <= set(r)
    assert out3["rounds"][0]["training"]["examples"] >= 1 and out3["best_round"] in (0, 1)
    assert out3["dev_best"]["tasks"] == 1 and out3["playbook_latest"]["version"] >= out3["playbook"]["version"]
    saved = json.loads(Path(out3["checkpoint"], "playbook.json").read_text())
    assert saved["version"] == out3["playbook"]["version"]  # the playbook the saved CET was scored with
    assert out3["repairs"]["attempts"] == sum(1 for r in rollouts if r["candidate"] == "raw" and not r["passed"]
                                              and r["code"])  # every failed raw attempt went to repair
    assert json.loads(Path(out3["checkpoint"], "cet.json").read_text())["phase"] == "phase3"
    # every phase's CET says how it was trained without its run directory: its options and the whole config
    for out, phase, option in ((out1, "phase1", ("questions", 2)), (out2, "phase2", ("requirement_tasks", 2)),
                               (out3, "phase3", ("dev_tasks", 1))):
        manifest = json.loads(Path(out["checkpoint"], "cet.json").read_text())
        assert manifest["phase"] == phase and manifest["options"][option[0]] == option[1]
        assert yaml.safe_load(Path(out["checkpoint"], "config.yaml").read_text())["cet"]["checkpoints_dir"] == \
            str(root / "cet")
    again = run_cet("train", "phase3", "--resume", out3["run_dir"], "--json", env=env)  # a finished run: no new work
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["rollouts"] == out3["rollouts"]

    ctx = run_cet("context", "Write a function that adds two numbers", "--json", env=env)
    assert ctx.returncode == 0, ctx.stderr[-2000:]
    engineered = json.loads(ctx.stdout)
    assert engineered["checkpoint"] == "phase3" and "Task:\nWrite a function" in engineered["prompt"]
    assert isinstance(engineered["issues"], list)  # a tiny model's reply parses gracefully, problems listed

    ev = run_cet("eval", "context", "--tasks", "2", "--json", env=env)
    assert ev.returncode == 0, ev.stderr[-2000:]
    result = json.loads(ev.stdout)
    assert set(result["tasks"]) == {"exercism/add-held-out", "humaneval/reverse"}  # held out only
    assert list(result["pass_rates"]) == ["raw", "full_input", "naive_rag", "rule_based", "playbook", "cet_phase1",
                                          "cet_phase2", "cet_phase3"]
    assert result["target"] == "cet_phase3"  # the latest CET is the one under test
    assert set(result["comparisons"]) == {"raw", "full_input", "naive_rag", "rule_based", "playbook", "cet_phase1",
                                          "cet_phase2"}
    assert all("p_holm" in c and "mdd" in c for c in result["comparisons"].values())
    assert result["intrinsic"]["rule_based"]["structure_valid"]["mean"] == 1.0
    assert result["leak_checks"] == 2 * 8  # every prompt of every condition checked
    assert set(result["goal"]["parts"]) == {"raw + 0.10", "naive_rag + 0.15", "rule_based + 0.03",
                                            "cet_phase2 + 0.05", "harm vs raw <= 0.05"}
    # a constrained CET context is valid, or it is counted as the CET's failure (never a tie with raw)
    for condition in ("cet_phase1", "cet_phase2", "cet_phase3"):
        failed = {f["task_id"] for f in result["cet_failures"][condition]}
        assert result["failure_classes"][condition].get("context-failed", 0) == len(failed)
    report = Path(result["report"]).read_text()
    assert "McNemar" in report and "Holm" in report and "Goal" in report
    # two tasks cannot show the goal: never "met" on point estimates alone
    assert result["goal"]["status"] in ("not shown", "not met") and f"**Goal {result['goal']['status']}:**" in report
    recall_row = next(line for line in report.splitlines() if line.startswith("| recall of the hidden tests' facts"))
    assert recall_row.split("|")[2].strip() != "–"  # the hidden-fact recall of raw is a number
    assert Path(result["run_dir"], "plots", "pass_rate.png").is_file()
    quiet = run_cet("eval", "context", "--tasks", "2", "--conditions", "raw,rule_based,cet_phase3", "--no-noise",
                    "--json", env=env)  # without the noisy copies (no noise-reduction metric)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "noise_reduction" not in json.loads(quiet.stdout)["intrinsic"]["cet_phase3"]

    # the ablation study: the same held-out tasks and generator for every arm; Phase 3 from Phase 1 trained here
    arms = "raw,phase1,phase1-2,phase1-3,all,skip_phase2,naive_rag,template,no_retrieval,sections"
    abl = run_cet("eval", "ablation", "--tasks", "2", "--arms", arms, "--phase3-tasks", "1", "--phase3-dev-tasks",
                  "1", "--phase3-samples", "1", "--json", env=env)
    assert abl.returncode == 0, abl.stderr[-2000:]
    ablation = json.loads(abl.stdout)
    assert set(ablation["tasks"]) == {"exercism/add-held-out", "humaneval/reverse"}  # held out only
    assert ablation["target"] == "phase1-3" and "all" in ablation["skipped_arms"]  # no Phase 4 CET was given
    assert {"raw", "phase1", "phase1-2", "phase1-3", "skip_phase2", "naive_rag", "template",
            "no_retrieval"} <= set(ablation["arms"])
    assert ablation["checkpoints"].keys().isdisjoint({"raw", "naive_rag", "template"})  # the baselines: no CET
    assert set(ablation["comparisons"]) == set(ablation["arms"]) - {"phase1-3"}
    assert all(c["family_size"] == len(ablation["comparisons"]) for c in ablation["comparisons"].values())
    trained = Path(ablation["checkpoints"]["skip_phase2"])
    assert json.loads((trained / "cet.json").read_text())["phase"] == "phase3" and trained != root / "cet" / "phase3"
    metrics = ablation["phase_metrics"]
    assert set(metrics["phase3_pass_at_1_and_reward"]) == set(ablation["arms"])
    assert metrics["phase1_grounded_answer_accuracy"]["questions"] == 2
    assert Path(ablation["run_dir"], "plots", "ablation_difference.png").is_file()
    assert "| phase1-3 |" in Path(ablation["report"]).read_text()
    saved = {p.name: p.stat().st_mtime_ns for p in Path(ablation["run_dir"], "arms").iterdir()}
    assert {f"{a}.json" for a in ablation["arms"]} <= set(saved)
    # a resume carries on with the options the run started with (here --tasks 1 and no Phase 3 options are ignored)
    again = run_cet("eval", "ablation", "--resume", ablation["run_dir"], "--tasks", "1", "--json", env=env)
    assert again.returncode == 0, again.stderr[-2000:]  # finished arms, their contexts and the trained arm reused
    assert json.loads(again.stdout)["tasks"] == ablation["tasks"]
    assert json.loads(again.stdout)["pass_rates"] == ablation["pass_rates"]
    assert {p.name: p.stat().st_mtime_ns for p in Path(ablation["run_dir"], "arms").iterdir()} == saved
    # an arm stopped while its CET engineered: the contexts kept so far are reused, the rest engineered as before
    arms_dir = Path(ablation["run_dir"], "arms")
    whole = json.loads((arms_dir / "phase1.contexts.json").read_text())
    kept = {**whole["contexts"][0], "raw": "kept from before the stop"}  # a mark: reused, not engineered again
    (arms_dir / "phase1.contexts.partial.json").write_text(json.dumps({"key": whole["key"], "contexts": [kept]}))
    (arms_dir / "phase1.contexts.json").unlink()
    (arms_dir / "phase1.json").unlink()
    resumed = run_cet("eval", "ablation", "--resume", ablation["run_dir"], "--tasks", "2", "--arms", arms,
                      "--phase3-tasks", "1", "--phase3-dev-tasks", "1", "--phase3-samples", "1", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    def untimed(contexts: list[dict]) -> list[dict]:  # the time an engineering took is not the context
        return [{k: v for k, v in c.items() if k != "seconds"} for c in contexts]

    again_made = json.loads((arms_dir / "phase1.contexts.json").read_text())
    assert again_made["contexts"][0] == kept  # reused as it was kept
    assert untimed(again_made["contexts"]) == untimed([kept, *whole["contexts"][1:]])  # the rest engineered again
    assert {k: v for k, v in again_made.items() if k != "contexts"} == {k: v for k, v in whole.items()
                                                                           if k != "contexts"}
    assert not list(arms_dir.glob("*.partial.json")) and not list(arms_dir.glob("*.tmp"))
    assert json.loads(resumed.stdout)["pass_rates"] == ablation["pass_rates"]
    for bad, why in ((["--arms", "phase9"], "unknown arm"), (["--resume", result["run_dir"]], "not an ablation run"),
                     (["--phase2", str(root)], "not a CET checkpoint"),
                     (["--arms", "all"], "no arm can run")):
        refused = run_cet("eval", "ablation", "--tasks", "2", *bad, env=env)
        assert refused.returncode != 0 and why in refused.stderr and "Traceback" not in refused.stderr


def test_bad_input_is_one_clear_error(workspace, run_cet, tmp_path: Path):
    _, env = workspace
    missing = run_cet("context", "x", "--code", str(tmp_path / "nope.py"), env=env)
    assert missing.returncode != 0 and "cannot read the code file" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = run_cet("train", "phase1", "--resume", str(tmp_path), env=env)
    assert bad.returncode != 0 and "not a run directory" in bad.stderr and "Traceback" not in bad.stderr
    before = set(Path(env["CET_RUN__RUNS_DIR"]).glob("*eval-context"))
    unknown = run_cet("eval", "context", "--conditions", "raw,cet_phase9", env=env)
    assert unknown.returncode != 0 and "unknown condition(s) cet_phase9" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert set(Path(env["CET_RUN__RUNS_DIR"]).glob("*eval-context")) == before  # refused: no run directory left
    conversations = run_cet("train", "phase3", "--conversations", str(tmp_path / "none.jsonl"), env=env)
    assert conversations.returncode != 0 and "--conversations" in conversations.stderr
    assert "Traceback" not in conversations.stderr
