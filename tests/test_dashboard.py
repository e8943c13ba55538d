"""The dashboard in a real browser: `cet serve`'s app under uvicorn, traffic in an experiment, the page rendered by
headless Chromium (Debian's `chromium`), its DOM read back and a screenshot kept (named in the run's summary)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from cet.config import load_config
from cet.serving.app import create_app
from cet.serving.experiment import Experiment
from cet.serving.feedback import FeedbackStore
from cet.serving.load import free_port, wait_until_up
from cet.serving.strategies import NoContextStrategy, TemplateStrategy


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Debian's chromium is not installed (scripts/install-system.sh installs it)")
    return found


def test_the_dashboard_renders_in_headless_chromium(tmp_path: Path, artifact: Callable[[str], Path]) -> None:
    import uvicorn

    browser = chromium()
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    app = create_app({"template": TemplateStrategy(load_config(), None), "none": NoContextStrategy()}, store,
                     experiment=Experiment("dash", control="none", treatment="template", min_per_arm=5))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, 10)
        for n in range(40):
            body = httpx.post(f"{base}/v1/context", json={"task": f"Write f{n}(x).", "user": f"u{n}"}).json()
            httpx.post(f"{base}/v1/feedback", json={"request_id": body["request_id"], "compiled": True,
                                                     "passed": body["arm"] == "template" or n % 3 == 0})
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400"]
        dom = subprocess.run([browser, *flags, "--dump-dom", f"{base}/dashboard"], capture_output=True, text=True,
                             timeout=120).stdout
        shot = artifact("dashboard.png")
        subprocess.run([browser, *flags, f"--screenshot={shot}", f"{base}/dashboard"], capture_output=True,
                       timeout=120)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
    assert "Experiment dash" in dom and "always-valid p-value" in dom and "<polyline" in dom
    assert "template" in dom and "Guardrails" in dom and "drift needs at least" in dom
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape[0] >= 1000 and pixels.std() > 10  # a drawn page, not a blank one
