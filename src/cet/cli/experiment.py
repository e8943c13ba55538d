"""`cet experiment simulate`: the A/B statistics of Phase 4 under simulation (A/A false-positive rate under
continuous peeking, power on a given effect), written to a run directory."""

from __future__ import annotations

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, user_errors
from cet.errors import CetError

experiment_app = typer.Typer(help="A/B experiments between context strategies (Phase 4).", no_args_is_help=True)


@experiment_app.command("simulate")
@user_errors
def simulate_command(
    rate_a: float = typer.Option(0.35, "--rate-a", help="Arm A's true pass rate."),
    rate_b: float = typer.Option(None, "--rate-b", help="Arm B's true pass rate (default: A's, an A/A test)."),
    per_arm: int = typer.Option(4000, "--per-arm", help="Outcomes per arm in each experiment."),
    experiments: int = typer.Option(1000, "--experiments", help="How many experiments to simulate."),
    alpha: float = typer.Option(None, "--alpha", help="Level (default: 0.05)."),
    seed: int = typer.Option(None, "--seed", help="Random seed (default: config run.seed)."),
    json_out: bool = JsonOption,
) -> None:
    """Simulate experiments looked at after every outcome: how often the mSPRT decides (A/A: its false-positive
    rate; A/B: its power), against a z-test read after every outcome and read once."""
    from cet.runs import RunDir
    from cet.serving.sequential import ALPHA, simulate

    rate_b = rate_a if rate_b is None else rate_b
    if not (0 <= rate_a <= 1 and 0 <= rate_b <= 1):
        raise CetError("--rate-a and --rate-b are pass rates: between 0 and 1")
    if per_arm < 1 or experiments < 1:
        raise CetError("--per-arm and --experiments must be at least 1")
    if alpha is not None and not 0 < alpha < 1:
        raise CetError("--alpha must lie between 0 and 1")
    cfg = get_config()
    run = RunDir(cfg, "experiment-simulate")
    result = simulate(rate_a, rate_b, per_arm, experiments, cfg.run.seed if seed is None else seed,
                      alpha=alpha or ALPHA)
    run.write_json("summary.json", result)
    kind = "A/A: false-positive rate" if rate_a == rate_b else f"A/B ({rate_b - rate_a:+.3f}): power"
    report = run.write_report(
        f"# A/B statistics under simulation\n\n{experiments} experiments of {per_arm} outcomes an arm, rates "
        f"{rate_a} / {rate_b}, looked at after every pair of outcomes.\n\n"
        f"| test | decided ({kind}) |\n|---|---|\n| mSPRT (always valid) | {result['msprt_rejected']:.3f} |\n"
        f"| z-test read after every pair | {result['peeking_z_rejected']:.3f} |\n"
        f"| z-test read once at the end | {result['fixed_horizon_z_rejected']:.3f} |\n\n"
        f"mSPRT median stop: {result['median_stop_per_arm']} outcomes an arm; wrong sign: "
        f"{result['msprt_wrong_sign']:.3f}.\n")
    result["run_dir"], result["report"] = str(run.path), str(report)
    if json_out:
        emit_json(result)
        return
    console.print(f"{kind}: mSPRT {result['msprt_rejected']:.3f} (median stop {result['median_stop_per_arm']}); "
                  f"z-test peeking {result['peeking_z_rejected']:.3f}, once {result['fixed_horizon_z_rejected']:.3f}",
                  highlight=False)
    console.print(f"report: {report}", highlight=False)
