"""The real `cet serve` under concurrent clients, killed with SIGKILL mid-load and started again on the same
store: every outcome the service acknowledged is stored with its verdict, and nothing is stored that no client
was told of."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from cet.serving.load import check_store, free_port, run_load, start_server


def start(cet_bin: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    return start_server([str(cet_bin), "serve", "--strategy", "template", "--no-retrieval", "--port", str(port)],
                        port, env, log, seconds=30)


def test_kill_9_mid_load_loses_nothing_and_invents_nothing(tmp_path: Path, cet_bin: Path,
                                                   cet_env: Callable[..., dict[str, str]]) -> None:
    db = tmp_path / "feedback.sqlite"
    env = cet_env(CET_SERVE__FEEDBACK_DB=str(db), CET_SERVE__REGISTRY_DIR=str(tmp_path / "registry"))
    port, log = free_port(), tmp_path / "serve.log"
    servers = [start(cet_bin, port, env, log)]
    killed = []

    def kill_and_restart(done: int) -> None:
        if done == 10 and not killed:  # the first client's tenth round: the others are mid-flight
            os.kill(servers[-1].pid, signal.SIGKILL)
            servers[-1].wait(timeout=10)
            killed.append(time.time())
            servers.append(start(cet_bin, port, env, log))

    try:
        result = run_load(f"http://127.0.0.1:{port}", clients=4, rounds=25, during=kill_and_restart)
    finally:
        for server in servers:
            server.kill()
            server.wait(timeout=10)
    assert killed and servers[0].returncode == -signal.SIGKILL
    assert not result.errors, result.errors[:3]
    assert result.retries > 0  # the kill was felt: calls failed and were made again
    stored = check_store(str(db), result.acknowledged)
    assert stored["acknowledged"] == 100 and stored["stored"] == 100
    assert stored["lost"] == stored["changed"] == stored["unacknowledged"] == 0, stored
