"""`cet retrain`: a candidate CET from the service's feedback (Phase 4's loop back to Phase 3's learner), registered
next to the champion for an experiment to judge."""

from __future__ import annotations

from pathlib import Path

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, spinner, user_errors


@user_errors
def retrain_command(
    feedback: str = typer.Option(None, "--feedback", help="The feedback store: a SQLite file or a postgresql:// "
                                                          "URL (default: config serve.feedback_db; a "
                                                          "simulation's is in its run directory)."),
    if_drift: bool = typer.Option(False, "--if-drift", help="Only when the traffic shows input drift or a drop "
                                                             "of the pass rate (as GET /v1/drift)."),
    window: int = typer.Option(200, "--window", min=10, help="Requests per drift window."),
    start_from: Path = typer.Option(None, "--start-from", help="The checkpoint to train from (default: the "
                                                               "registry's champion, else the latest phase)."),
    learner: str = typer.Option(None, "--learner", help="rest (ReST-EM: SFT on the best context) or dpo "
                                                         "(default: cet.phase3.learner)."),
    epochs: float = typer.Option(None, "--epochs", min=0.1, help="Training epochs (default: cet.train.epochs)."),
    min_tasks: int = typer.Option(2, "--min-tasks", min=1, help="Tasks with a passing context needed to train."),
    no_register: bool = typer.Option(False, "--no-register", help="Train and save, but do not register."),
    no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Build the inputs without the knowledge base."),
    watch: float = typer.Option(0, "--watch", min=0, help="Keep watching: every this many seconds, once a window "
                                                          "of new requests has come, read the drift gate and "
                                                          "retrain when it calls for it (Ctrl-C stops)."),
    json_out: bool = JsonOption,
) -> None:
    """Learn from served contexts and their outcomes (held-out tasks never trained on), save the candidate in a run
    directory and register it; the champion is untouched until an experiment and `cet registry promote` say so."""
    from cet.runs import RunDir
    from cet.serving.retrain import RetrainOptions, retrain

    cfg = get_config()
    opts = RetrainOptions(feedback_db=feedback or cfg.serve.feedback_db,
                          start_from=str(start_from) if start_from else None, learner=learner, epochs=epochs,
                          if_drift=if_drift, window=window, min_tasks=min_tasks, register=not no_register)
    retriever = None
    if not no_retrieval:
        from cet.knowledge.pipeline import open_retriever

        retriever = open_retriever(cfg)
    if watch:
        import json

        from cet.serving.retrain import watch as watch_traffic

        def said(result: dict) -> None:
            if json_out:
                print(json.dumps(result, default=str), flush=True)
            else:
                console.print(f"retrained: {result.get('retrained')} ({result.get('why')})"
                              + (f"; registered {result['registered']}" if result.get("registered") else ""),
                              highlight=False)

        console.print(f"watching {opts.feedback_db if '://' not in opts.feedback_db else 'the feedback store'} "
                      f"every {watch:g} s (windows of {window} requests)", highlight=False)
        try:
            watch_traffic(cfg, opts, retriever, lambda: RunDir(cfg, "retrain"), watch, on_result=said)
        except KeyboardInterrupt:
            console.print("stopped", highlight=False)
        return
    run = RunDir(cfg, "retrain")
    with spinner(json_out) as progress:
        bar = progress.add_task("retrain", total=None)
        result = retrain(cfg, opts, run, retriever, on_step=lambda s: progress.update(bar, description=s),
                         quiet=json_out)
    run.write_json("summary.json", result)
    run.log_metrics("retrain", {k: result.get(k) for k in ("retrained", "why", "registered")})
    lines = [f"# cet retrain\n\nFeedback: `{result['feedback_db']}`. Gate: {result['gate'].get('why')}.",
             f"Data: {result.get('data')}.", f"Retrained: {result['retrained']} ({result.get('why')})."]
    if result.get("training"):
        training = result["training"]
        lines.append(f"Learner {result['learner']}: {training.get('examples')} examples, {training.get('pairs')} "
                     f"pairs, {training.get('dropped_untraceable')} untraceable targets dropped, targets "
                     f"{training.get('targets')}.")
    if result.get("registered"):
        lines.append(f"Registered as **{result['registered']}** (champion {result['champion']}). Next: "
                     f"`{result['next']}`.")
    report = run.write_report("\n\n".join(lines) + "\n")
    result["run_dir"], result["report"] = str(run.path), str(report)
    if json_out:
        emit_json(result)
        return
    console.print(f"retrained: {result['retrained']} ({result.get('why')})", highlight=False)
    if result.get("registered"):
        console.print(f"registered {result['registered']}; next: {result['next']}", highlight=False)
    console.print(f"report: {report}", highlight=False)
