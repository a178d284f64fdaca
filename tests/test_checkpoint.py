"""Checkpoints: refused or unreadable files are one-line AgefairErrors (no code runs), atomic saves."""

from __future__ import annotations

import errno
import os
import pickle

import pytest
import torch
import train_helpers  # noqa: F401  (one torch thread)

from agefair.core.config import ModelConfig, TrainConfig
from agefair.core.errors import AgefairError
from agefair.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from agefair.models.network import create_model

SMALL = TrainConfig.model_validate({"model": {"backbone": "resnet18", "image_size": 32, "head": "regression"}})


def small_checkpoint(cfg: TrainConfig = SMALL, model=None) -> dict:
    model = model or create_model(cfg.model)
    return {"config": cfg.model_dump(mode="json"), "model": model.state_dict(), "epoch": 1, "val_mae": 9.5,
            "history": [{"epoch": 1, "val_mae": 9.5}]}


class RunsCode:
    """Unpickling this runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def assert_one_line_error(exc: pytest.ExceptionInfo, path) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_round_trip(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(small_checkpoint(), path)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 1 and loaded["config"]["model"]["backbone"] == "resnet18"
    model, cfg, ckpt = model_from_checkpoint(path)
    assert cfg == SMALL
    assert not model.training
    with torch.no_grad():
        pred = model.predict(torch.rand(2, 3, 32, 32))
    assert torch.isfinite(pred).all()


def test_missing_file(tmp_path):
    with pytest.raises(AgefairError, match="not found") as exc:
        load_checkpoint(tmp_path / "nope.pt")
    assert_one_line_error(exc, tmp_path / "nope.pt")


@pytest.mark.parametrize("content", [
    pytest.param(b"not a checkpoint", id="text"),
    pytest.param(b"\x00\x01 binary garbage", id="binary"),
    pytest.param(b"\xff\xd8\xff\xe0 a jpeg?", id="jpeg"),
    pytest.param(b"", id="empty"),
    pytest.param(b"PK\x03\x04 not really a zip", id="bad-zip"),
    # these bytes make torch's weights-only unpickler raise IndexError / KeyError, not UnpicklingError
    pytest.param(b"this is not a checkpoint\n", id="text-IndexError"),
    pytest.param(b"epoch,train_loss\n1,2.5\n", id="csv-IndexError"),
    pytest.param(b"hello world\n", id="text-KeyError"),
])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(AgefairError) as exc:
        load_checkpoint(path)
    assert_one_line_error(exc, path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(small_checkpoint(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AgefairError, match="not a readable checkpoint") as exc:
        load_checkpoint(path)
    assert_one_line_error(exc, path)
    with pytest.raises(AgefairError):
        model_from_checkpoint(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_in_a_checkpoint_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"config": SMALL.model_dump(mode="json"), "model": RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(AgefairError) as exc:
        load_checkpoint(path)
    message = assert_one_line_error(exc, path)
    assert "refused" in message
    with pytest.raises(AgefairError):
        model_from_checkpoint(path)
    assert not marker.exists(), "loading the checkpoint ran code"


def test_a_tensor_is_not_an_agefair_checkpoint(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(AgefairError, match="not an agefair checkpoint") as exc:
        load_checkpoint(path)
    assert_one_line_error(exc, path)


def test_weights_of_another_backbone(tmp_path):
    path = tmp_path / "model.pt"
    resnet34 = create_model(SMALL.model.model_copy(update={"backbone": "resnet34"}))
    save_checkpoint(small_checkpoint(SMALL, resnet34), path)  # config says resnet18
    with pytest.raises(AgefairError, match="another model") as exc:
        model_from_checkpoint(path)
    message = assert_one_line_error(exc, path)
    assert "resnet18" in message


def test_weights_of_another_head(tmp_path):
    path = tmp_path / "model.pt"
    expectation = create_model(ModelConfig(backbone="resnet18", image_size=32, head="expectation"))
    save_checkpoint(small_checkpoint(SMALL, expectation), path)  # config says regression
    with pytest.raises(AgefairError, match="another model") as exc:
        model_from_checkpoint(path)
    assert_one_line_error(exc, path)


def test_invalid_stored_config(tmp_path):
    path = tmp_path / "model.pt"
    ckpt = small_checkpoint()
    ckpt["config"]["model"]["backbone"] = "vgg11"
    save_checkpoint(ckpt, path)
    with pytest.raises(AgefairError, match="model.backbone") as exc:
        model_from_checkpoint(path)
    assert_one_line_error(exc, path)


def test_save_is_atomic_when_the_disk_fills(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(small_checkpoint(), path)
    before = path.read_bytes()

    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as fh:  # leave half a file behind, as a full disk would
            fh.truncate(os.path.getsize(f) // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", disk_full)
    newer = small_checkpoint()
    newer["epoch"] = 2
    with pytest.raises(AgefairError) as exc:
        save_checkpoint(newer, path)
    message = assert_one_line_error(exc, path)
    assert os.strerror(errno.ENOSPC) in message and "previous last.pt is unchanged" in message
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"], "temporary files left behind"


def test_save_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(small_checkpoint(), path)
    ckpt = small_checkpoint()
    ckpt["epoch"] = 7
    save_checkpoint(ckpt, path)
    assert load_checkpoint(path)["epoch"] == 7
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
