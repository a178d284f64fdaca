"""Measurements do not depend on the CPU: training may autocast to bf16 where the CPU is fast at it
(AVX-512/AMX), but every prediction and evaluation runs in fp32 unless asked otherwise. The bf16-capable
path is forced on and off here, so these tests mean the same on an AVX2 and an AVX-512 machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import agefair.models.runtime as runtime
from agefair.core.config import ModelConfig, TrainConfig
from agefair.data.dataset import FaceDataset
from agefair.inference.estimator import TorchEstimator
from agefair.models.checkpoint import save_checkpoint
from agefair.models.network import create_model


@pytest.fixture(params=[True, False], ids=["bf16-capable CPU", "fp32-only CPU"])
def cpu_bf16(request, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: request.param)
    return request.param


def _model(head: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(ModelConfig(backbone="resnet18", head=head, image_size=32))
    return model.eval()


def _loader(n: int = 24) -> DataLoader:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return DataLoader(FaceDataset(images, np.arange(n), rng.uniform(1, 90, n)), batch_size=8)


def test_training_precision_follows_the_cpu_but_measurement_is_fp32(cpu_bf16):
    rt = runtime.make_runtime("cpu")
    assert rt.precision_name == ("bf16" if cpu_bf16 else "fp32")
    assert rt.measure_precision_name == "fp32"
    assert runtime.make_runtime("cpu", "bf16", measure_precision="bf16").measure_precision_name == "bf16"


@pytest.mark.parametrize("head", ["expectation", "regression"])
def test_predicted_ages_are_the_same_whatever_the_cpu(head, monkeypatch):
    model, loader = _model(head), _loader()
    ages = {}
    for capable in (True, False):
        monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda capable=capable: capable)
        rt = runtime.make_runtime("cpu")
        ages[capable] = runtime.predict_loader(model, loader, rt, progress=False)["pred"]
    fp32 = runtime.predict_loader(model, loader, runtime.make_runtime("cpu", "fp32"), progress=False)["pred"]
    np.testing.assert_array_equal(ages[True], ages[False])
    np.testing.assert_array_equal(ages[True], fp32)
    # bf16 measurement is a real opt-in: it changes the ages (quantised logits), by little
    bf16 = runtime.predict_loader(model, loader, runtime.make_runtime("cpu", "bf16", measure_precision="bf16"),
                           progress=False)["pred"]
    assert np.abs(bf16 - fp32).max() < 2.0
    if head == "expectation":  # (an untrained regression head answers its bias: the same in both)
        assert not np.array_equal(bf16, fp32)


def test_estimator_ages_are_the_same_whatever_the_cpu(tmp_path, monkeypatch):
    cfg = TrainConfig(model=ModelConfig(backbone="resnet18", head="expectation", image_size=32))
    model = _model("expectation")
    ckpt = tmp_path / "model.pt"
    save_checkpoint({"config": cfg.model_dump(mode="json"), "model": model.state_dict(), "meta": {},
                     "epoch": 1, "val_mae": 10.0, "history": []}, ckpt)
    faces = np.random.default_rng(1).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    ages = {}
    for capable in (True, False):
        monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda capable=capable: capable)
        est = TorchEstimator(ckpt)
        assert "fp32" in est.description
        ages[capable] = est.predict(faces)
    np.testing.assert_array_equal(ages[True], ages[False])
