"""Label-noise suspects and the with/without sensitivity table (agefair.fairness.stats.label_noise)."""

from __future__ import annotations

import json

import numpy as np

from agefair.fairness.stats.label_noise import flag_suspects, label_noise_suspects


def _planted(n: int = 1200, seed: int = 0):
    rng = np.random.default_rng(seed)
    true_age = rng.uniform(5, 80, n)
    grp = rng.choice(["x", "y", "z"], n)
    common = rng.normal(0, 3, n)  # the models share part of their error
    preds = {m: true_age + common + rng.normal(0, 1.0, n) for m in ("a", "b", "c")}
    label = true_age.copy()
    bad = rng.choice(np.flatnonzero((grp == "x") & (true_age < 40)), 30, replace=False)
    label[bad] += 35  # wrong labels: 35 years too old
    return label, preds, grp, bad


def test_planted_wrong_labels_are_flagged():
    label, preds, grp, bad = _planted()
    flagged = flag_suspects(preds=preds, age=label)
    assert set(bad) <= set(np.flatnonzero(flagged))
    assert flagged.sum() <= len(bad) + 3
    # one model far off on its own (no agreement) is not a suspect
    lone = dict(preds, c=preds["c"] + 40)
    assert not flag_suspects(preds=lone, age=label)[bad].any()


def test_sensitivity_table_moves_the_right_way():
    label, preds, grp, bad = _planted()
    res = label_noise_suspects(preds=preds, age=label, groupings={"grp": grp})
    assert set(bad) <= set(res.rows.tolist()) and res.rule["n_flagged"] == len(res.suspects)
    df = res.frame()
    for m in preds:
        rows = df[(df["model"] == m) & (df["grouping"] == "grp")]
        x = rows[rows["group"] == "x"].iloc[0]
        assert x["n_flagged"] >= 30 and x["without_flagged"] < x["with_flagged"] - 0.5
        for other in ("y", "z"):
            o = rows[rows["group"] == other].iloc[0]
            assert abs(o["change"]) < 0.2
        gap = rows[rows["statistic"] == "gap"].iloc[0]
        assert gap["without_flagged"] < gap["with_flagged"]
        overall = df[(df["model"] == m) & df["grouping"].isna()].iloc[0]
        assert overall["n"] == len(label) and overall["without_flagged"] < overall["with_flagged"]
    json.dumps(res.to_json())


def test_the_relative_threshold_spares_old_ages():
    age = np.array([10.0, 80.0])
    preds = {"a": age + 18, "b": age + 18.5}
    assert flag_suspects(preds=preds, age=age).tolist() == [True, False]  # 18 < 0.3 * 80
    assert flag_suspects(preds=preds, age=age, k_rel=0).tolist() == [True, True]
