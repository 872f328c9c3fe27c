"""`odqa pipeline run --local --runner docker`: every component in its image, as on a cluster. No Docker
engine runs on these machines, so what is checked here is the part that can be: the mounts kfp's
DockerRunner receives, and the one-line refusal (before any run folder exists) without an engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kfp import local

from odqa.errors import InputError
from odqa.pipeline.runner import LocalRunConfig, docker_run_args, run_local


def test_runs_folder_and_data_are_mounted_at_the_same_paths(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    args = docker_run_args(tmp_path / "runs", data)
    runner = local.DockerRunner(**args)  # kfp accepts them (it refuses `volumes`, for one)
    mounts = {m["Source"]: m for m in runner.container_run_args["mounts"]}
    assert mounts[str(tmp_path / "runs")]["Target"] == str(tmp_path / "runs")
    assert mounts[str(tmp_path / "runs")]["ReadOnly"] is False
    assert mounts[str(data)]["Target"] == str(data) and mounts[str(data)]["ReadOnly"] is True
    assert runner.container_run_args["environment"] == {"ODQA_DATA_DIR": str(data)}


def test_without_an_engine_it_fails_in_one_line_and_writes_nothing(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    runs = tmp_path / "runs"
    with pytest.raises(
        InputError, match=r"^--runner docker needs a running Docker engine .*--runner subprocess$"
    ):
        run_local(LocalRunConfig(runs_dir=str(runs), runner="docker"))
    assert not runs.exists()


def test_unknown_runner_is_refused(tmp_path: Path):
    with pytest.raises(InputError, match="--runner must be one of subprocess, docker"):
        run_local(LocalRunConfig(runs_dir=str(tmp_path / "runs"), runner="podman"))
    assert not (tmp_path / "runs").exists()


def test_cli_runner_docker_without_engine_is_one_line_exit_2(tmp_path: Path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    odqa = Path(sys.executable).with_name("odqa")
    proc = subprocess.run(
        [str(odqa), "pipeline", "run", "--local", "--runner", "docker", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--runner docker needs a running Docker engine" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()
