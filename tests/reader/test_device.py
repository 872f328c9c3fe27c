"""Device and precision choice: what auto picks, and one-line refusals of what this machine lacks."""

from __future__ import annotations

import pytest
import torch

from odqa.cli import main
from odqa.errors import InputError
from odqa.reader.config import PredictConfig, ReaderTrainConfig
from odqa.reader.device import Placement, resolve_device, resolve_precision


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as one without CUDA, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("odqa.reader.device._mps_available", lambda: False)


def test_auto_is_the_cpu_in_fp32_without_an_accelerator(no_cuda):
    placement = Placement.resolve("auto", "auto")
    assert placement.device == torch.device("cpu") and placement.precision == "fp32"
    assert placement.grad_scaler() is None and not placement.pin_memory


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun: each process its own GPU
    assert resolve_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(InputError, match="has 2 CUDA device"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("odqa.reader.device._mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "mps"])
def test_missing_device_is_one_line(no_cuda, name):
    with pytest.raises(InputError) as e:
        resolve_device(name)
    assert "\n" not in str(e.value) and name in str(e.value)


def test_precision_on_the_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"  # CPU bf16 autocast when asked explicitly
    with pytest.raises(InputError, match="fp16 needs a CUDA"):
        resolve_precision("fp16", cpu)


def test_bf16_autocast_runs_on_the_cpu():
    layer = torch.nn.Linear(4, 4)
    with Placement(torch.device("cpu"), "bf16").autocast():
        assert layer(torch.ones(2, 4)).dtype == torch.bfloat16
    with Placement(torch.device("cpu"), "fp32").autocast():
        assert layer(torch.ones(2, 4)).dtype == torch.float32


def test_device_values_are_checked_by_the_config():
    assert ReaderTrainConfig.from_dict({"device": "CUDA:1"}).device == "cuda:1"
    with pytest.raises(InputError, match="device"):
        ReaderTrainConfig.from_dict({"device": "gpu"}, source="--device")
    with pytest.raises(InputError, match="precision"):
        PredictConfig.from_dict({"precision": "int8"}, source="--precision")


def test_cli_device_cuda_without_cuda_exits_2_and_keeps_the_output(no_cuda, tiny_qa, tmp_path, capsys):
    out = tmp_path / "reader"
    out.mkdir()
    (out / ".odqa-output.json").write_text('{"kind": "reader"}\n')
    (out / "model.safetensors").write_bytes(b"previous")
    assert main(["train", "--train", str(tiny_qa), "--out", str(out), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]
    assert (out / "model.safetensors").read_bytes() == b"previous"
    assert sorted(p.name for p in out.iterdir()) == [".odqa-output.json", "model.safetensors"]
    rc = main(["predict", "--reader", str(out), "--data", str(tiny_qa), "--out", str(tmp_path / "p"), "--device", "cuda"])  # fmt: skip
    assert rc == 2 and "CUDA is not available" in capsys.readouterr().err
