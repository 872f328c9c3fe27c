"""Screenshot the MLflow UI of a pipeline run, to check that it shows every stage run, metrics and plots.

Starts `mlflow ui` on the tracking store (127.0.0.1, a free port), opens the experiment page (or a run)
in headless Chromium (Debian package `chromium`) and writes a PNG.

Reproduce: .venv/bin/python bench/mlflow_ui_screenshot.py --tracking-uri sqlite:///runs/mlflow.db \
    --out runs/mlflow_ui.png [--run-id RUN_ID]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("mlflow ui exited early")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer")


def page_url(base: str, tracking_uri: str, run_id: str | None, experiment: str) -> str:
    from odqa import tracking

    c = tracking.client(tracking_uri)
    if run_id:
        run = c.get_run(run_id)
        return f"{base}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment {experiment!r} in {tracking_uri}")
    return f"{base}/#/experiments/{exp.experiment_id}/runs"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracking-uri", default="sqlite:///runs/mlflow.db")
    parser.add_argument("--experiment", default="odqa")
    parser.add_argument("--run-id", default=None, help="a run page instead of the experiment's run list")
    parser.add_argument("--out", default="runs/mlflow_ui.png")
    parser.add_argument("--window", default="1600,1000")
    parser.add_argument("--wait-ms", type=int, default=15000, help="virtual time for the page to render")
    args = parser.parse_args()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("headless Chromium not found: apt-get install chromium")
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    ui = subprocess.Popen(
        [mlflow_bin, "ui", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        + ["--backend-store-uri", args.tracking_uri],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{base}/health", ui)
        url = page_url(base, args.tracking_uri, args.run_id, args.experiment)
        out = Path(args.out).resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={args.window}"]
                + [f"--virtual-time-budget={args.wait_ms}", f"--screenshot={out}", url],
                check=True,
                timeout=180,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        print(f"{url}\n-> {out}")
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=30)


if __name__ == "__main__":
    main()
