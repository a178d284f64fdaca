"""Training presets and --config overrides: validated at load, one-line errors naming the key."""

from __future__ import annotations

import socket

import pytest
from train_helpers import train_env, train_settings, write_override  # noqa: F401

from agefair.core.config import CONFIG_DIR, PRESETS, TrainConfig, load_train_config
from agefair.core.errors import AgefairError, run_cli
from agefair.train import main


def test_presets_exist_and_validate():
    assert set(PRESETS) == {"reference", "cpu"}
    for preset in PRESETS:
        assert (CONFIG_DIR / "presets" / f"{preset}.yaml").is_file()
        assert isinstance(load_train_config(preset), TrainConfig)


def test_reference_preset_is_the_reference_recipe():
    cfg = load_train_config("reference")
    assert cfg.model.backbone == "resnet50"
    assert cfg.model.image_size == 128
    assert cfg.model.pretrained == "none"
    assert cfg.optim.optimizer == "sgd"
    assert cfg.optim.lr == pytest.approx(0.003)
    assert cfg.optim.momentum == pytest.approx(0.9)
    assert cfg.optim.weight_decay == pytest.approx(1e-4)
    assert cfg.optim.schedule == "constant"
    assert cfg.train.epochs == 100
    assert cfg.train.patience == 5


def test_cpu_preset():
    cfg = load_train_config("cpu")
    assert cfg.model.backbone == "resnet18" and cfg.model.image_size == 64 and cfg.model.flip_tta
    assert cfg.optim.optimizer == "adamw" and cfg.optim.schedule == "onecycle"
    assert cfg.train.epochs == 6 and cfg.train.patience == 5
    assert cfg.train.ema_decay == 0 and cfg.train.label_sigma == 0 and cfg.augment.mixup == 0


def test_default_preset_is_reference():
    assert load_train_config() == load_train_config("reference")


def test_override_file_merges_key_by_key(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("optim:\n  lr: 0.01\ntrain:\n  epochs: 3\n")
    cfg = load_train_config("reference", path)
    assert cfg.optim.lr == pytest.approx(0.01) and cfg.train.epochs == 3
    ref = load_train_config("reference")
    assert cfg.optim.momentum == ref.optim.momentum and cfg.optim.optimizer == ref.optim.optimizer
    assert cfg.train.patience == ref.train.patience and cfg.model == ref.model


def test_command_line_overrides_win_over_the_file(tmp_path):
    path = write_override(tmp_path / "o.yaml", {"train": {"epochs": 3, "seed": 1}})
    cfg = load_train_config("cpu", path, {"train": {"epochs": 5}})
    assert cfg.train.epochs == 5 and cfg.train.seed == 1 and cfg.model.image_size == 32


def test_exponent_without_a_dot_is_a_number(tmp_path):
    # YAML 1.1 reads `1e-4` as a string; the config still takes it as the number 0.0001
    path = tmp_path / "o.yaml"
    path.write_text("optim:\n  weight_decay: 1e-4\n  lr: 3e-3\n")
    cfg = load_train_config("cpu", path)
    assert cfg.optim.weight_decay == pytest.approx(1e-4) and cfg.optim.lr == pytest.approx(3e-3)


@pytest.mark.parametrize("yaml_text, key, words", [
    ("optim:\n  lrr: 0.1\n", "optim.lrr", "unknown key"),
    ("optimizer:\n  lr: 0.1\n", "optimizer", "unknown key"),
    ("optim:\n  lr: fast\n", "optim.lr", "number"),
    ("optim:\n  lr: -0.1\n", "optim.lr", "greater than 0"),
    ("optim:\n  lr: 0\n", "optim.lr", "greater than 0"),
    ("model:\n  backbone: vgg16\n", "model.backbone", "resnet18"),
    ("model:\n  image_size: 8\n", "model.image_size", "32"),
    ("train:\n  epochs: 2.5\n", "train.epochs", "integer"),
    ("train:\n  patience: 0\n", "train.patience", "greater than or equal to 1"),
    ("imbalance:\n  weighting: cube\n", "imbalance.weighting", "inverse"),
])
def test_bad_override_names_the_file_and_key(tmp_path, yaml_text, key, words):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(AgefairError) as exc:
        load_train_config("cpu", path)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: "), message
    assert words in message


def test_several_problems_are_counted(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: -1\n  momentum: 2\ntrain:\n  epochs: 0\n")
    with pytest.raises(AgefairError, match=r"and 2 more problems"):
        load_train_config("cpu", path)


def test_unreadable_override_files(tmp_path):
    with pytest.raises(AgefairError, match="config file not found"):
        load_train_config("cpu", tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: [0.1\n")
    with pytest.raises(AgefairError, match=r"not valid YAML at line \d+"):
        load_train_config("cpu", bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- optim\n- lr\n")
    with pytest.raises(AgefairError, match="top level must be a mapping"):
        load_train_config("cpu", listing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert load_train_config("cpu", empty) == load_train_config("cpu")


def test_unknown_preset():
    with pytest.raises(AgefairError, match="unknown preset 'gpu'"):
        load_train_config("gpu")


def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: fast\n")
    with pytest.raises(SystemExit) as exc:
        run_cli(main, ["--variant", "baseline", "--preset", "cpu", "--config", str(path), "--data", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agefair: error: {path}: optim.lr: ") and err.count("\n") == 1


def _internet() -> bool:
    try:
        socket.getaddrinfo("download.pytorch.org", 443)
    except OSError:
        return False
    return True


def test_pretrained_imagenet_without_internet_is_one_line(train_env, tmp_path, monkeypatch, capsys):
    if _internet():
        pytest.skip("download.pytorch.org resolves: this test is about having no internet")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached weights
    out = tmp_path / "runs"
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5.0)  # never hang on a half-open network
    try:
        with pytest.raises(SystemExit) as exc:
            run_cli(main, train_env.args("baseline", 1, "--pretrained", "imagenet", out=out))
    finally:
        socket.setdefaulttimeout(old_timeout)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("agefair: error: cannot load ImageNet weights for resnet18")
    assert "ImageNet" in lines[0] and "--pretrained none" in lines[0]
    assert "Traceback" not in err
    assert not (out / "baseline" / "last.pt").exists()
