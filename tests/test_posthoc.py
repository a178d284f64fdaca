"""The calibrated variant: post-hoc group calibration of a trained variant's ages (agefair.models.posthoc,
agefair.training.posthoc_run), fitted on the validation split only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from bad_input_helpers import cli, one_line_error
from train_helpers import train_env, train_settings  # noqa: F401

from agefair.core.config import load_data_config, load_train_config
from agefair.data.prepare import prepare
from agefair.models.checkpoint import load_checkpoint
from agefair.models.posthoc import correction_of, fit_group_correction
from agefair.train import main
from agefair.training.batches import TrainData, load_train_data
from agefair.training.posthoc_run import fit_calibrated


def synthetic(n: int, bias: dict[str, float], seed: int = 0):
    """A model's predictions and true ages: E[y | prediction, group] = prediction - bias[group]."""
    rng = np.random.default_rng(seed)
    group = rng.choice(list(bias), n)
    pred = rng.uniform(1, 90, n)
    y = pred - np.vectorize(bias.get)(group) + rng.normal(0, 4, n)
    return y, pred, {"ethnicity": group}


def test_the_correction_is_a_no_op_when_there_is_no_bias():
    y, pred, attrs = synthetic(6000, {"A": 0.0, "B": 0.0})
    c = fit_group_correction(y=y, pred=pred, attributes=attrs, names=["ethnicity"], base="baseline", max_age=116)
    for g in c.groups:
        assert abs(g.intercept) < 0.6 and abs(g.slope - 1) < 0.015, g
    new = c.apply(pred, attrs)
    assert np.abs(new - pred).mean() < 0.3  # versus an error of 4 years: the correction leaves the ages alone


def test_the_correction_removes_a_group_bias_and_lowers_the_error():
    y, pred, attrs = synthetic(8000, {"A": 0.0, "B": 5.0})
    c = fit_group_correction(y=y, pred=pred, attributes=attrs, names=["ethnicity"], base="baseline", max_age=116)
    fits = {g.group: g for g in c.groups}
    assert fits["B"].intercept - fits["A"].intercept == pytest.approx(-5.0, abs=0.6)
    test_y, test_pred, test_attrs = synthetic(8000, {"A": 0.0, "B": 5.0}, seed=1)
    new = c.apply(test_pred, test_attrs)
    b = test_attrs["ethnicity"] == "B"
    before, after = test_pred - test_y, new - test_y
    assert before[b].mean() == pytest.approx(5.0, abs=0.3)  # B over-estimated by 5 years
    assert abs(after[b].mean()) < 0.3 and abs(after[~b].mean()) < 0.3
    assert np.abs(after).mean() < np.abs(before).mean() - 0.5


def test_small_groups_use_the_pooled_fit_and_unseen_groups_too():
    y, pred, attrs = synthetic(600, {"A": 0.0, "B": 3.0})
    attrs["ethnicity"][:20] = "C"
    c = fit_group_correction(y=y, pred=pred, attributes=attrs, names=["ethnicity"], base="baseline", max_age=116,
                             min_group_size=50)
    small = next(g for g in c.groups if g.group == "C")
    assert small.pooled and (small.intercept, small.slope) == (c.pooled.intercept, c.pooled.slope)
    unseen = c.apply([40.0], {"ethnicity": np.array(["Z"])})
    assert unseen[0] == pytest.approx(c.pooled.intercept + c.pooled.slope * 40.0)


@pytest.fixture(scope="module")
def calibrated_run(train_env):
    """A one-epoch baseline, then the calibrated variant fitted on it."""
    assert main(train_env.args("baseline", 1)) == 0
    assert main(train_env.args("calibrated", 1)) == 0
    return train_env.root / "runs"


def test_the_calibrated_run_holds_the_base_weights_and_its_correction(calibrated_run):
    base, cal = (load_checkpoint(calibrated_run / v / "model.pt") for v in ("baseline", "calibrated"))
    assert all(torch.equal(base["model"][k], cal["model"][k]) for k in base["model"])
    correction = correction_of(cal)
    assert correction.attributes == ["ethnicity"] and correction.base == "baseline"
    assert cal["meta"]["uses_attributes"] == ["ethnicity"] and cal["meta"]["base"] == "baseline"
    summary = json.loads((calibrated_run / "calibrated" / "summary.json").read_text())
    assert summary["best_val_mae"] == pytest.approx(cal["val_mae"]) and summary["epochs_run"] == 0
    assert (calibrated_run / "calibrated" / "calibration.json").is_file()


def test_the_correction_never_reads_test_labels(calibrated_run, train_env):
    """Fitted again with every test (and training) label changed: the same correction."""
    cfg = load_train_config("cpu", train_env.config)
    data_cfg = load_data_config()
    prepared = prepare(train_env.data, data_cfg, work_root=train_env.root / "work", progress=False)
    data = load_train_data(prepared, data_cfg, cfg, None, False)
    manifest = data.manifest.copy()
    not_val = manifest["split"] != "val"
    manifest.loc[not_val, "age"] = 1.0
    manifest.loc[not_val, "ethnicity"] = manifest.loc[not_val, "ethnicity"].iloc[::-1].to_numpy()
    scrambled = TrainData(data.images, manifest, data.train_rows, data.val_rows)
    fit_calibrated(cfg=cfg, data_cfg=data_cfg, prepared=prepared, data=scrambled, out_root=train_env.root / "runs",
                   overwrite=True, progress=False)
    again = correction_of(load_checkpoint(calibrated_run / "calibrated" / "model.pt"))
    fit_calibrated(cfg=cfg, data_cfg=data_cfg, prepared=prepared, data=data, out_root=train_env.root / "runs",
                   overwrite=True, progress=False)
    assert correction_of(load_checkpoint(calibrated_run / "calibrated" / "model.pt")) == again


def test_predict_and_export_refuse_the_calibrated_model_and_name_the_base(calibrated_run, tmp_path, capsys):
    ckpt = calibrated_run / "calibrated" / "model.pt"
    (tmp_path / "a.jpg").write_bytes(b"")
    code, out, err = cli("predict", [str(tmp_path / "a.jpg"), "--model", str(ckpt)], capsys)
    one_line_error(code, err, "ethnicity", "baseline")
    code, out, err = cli("export", ["--model", str(ckpt), "--onnx", str(tmp_path / "m.onnx")], capsys)
    one_line_error(code, err, "ethnicity")


def test_calibrated_needs_its_base_run(train_env, tmp_path, capsys):
    code, out, err = cli("train", train_env.args("calibrated", 1, out=tmp_path / "empty"), capsys)
    one_line_error(code, err, "train it first", "baseline")


def test_the_audit_applies_the_correction_and_says_it_uses_the_attribute(calibrated_run, train_env, tmp_path, capsys):
    (tmp_path / "fair.yaml").write_text("n_boot: 50\nmin_group_size: 2\ngallery_k: 0\nrules: []\n")
    code, out, err = cli("audit", ["--runs", str(calibrated_run), "--variant", "baseline", "calibrated", "--data",
                                   str(train_env.data), "--work", str(train_env.root / "work"), "--out",
                                   str(tmp_path / "rep"), "--thresholds", str(tmp_path / "fair.yaml"), "--quiet"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["variants"]["calibrated"]["uses_attributes"] == ["ethnicity"]
    assert "ethnicity at prediction time (post-hoc correction)" in (tmp_path / "rep" / "report.html").read_text()
    preds = pd.read_csv(tmp_path / "rep" / "predictions.csv")
    base, cal = (preds[preds["variant"] == v].set_index("file") for v in ("baseline", "calibrated"))
    correction = correction_of(load_checkpoint(calibrated_run / "calibrated" / "model.pt"))
    expected = correction.apply(base["pred"].to_numpy(), {"ethnicity": base["ethnicity"].to_numpy()})
    assert np.allclose(cal.loc[base.index, "pred"].to_numpy(), expected, atol=1e-3)
