"""``python -m agefair.robustness`` and the report's robustness section, on a tiny synthetic run.

The model is a resnet18 at 32 px trained one epoch on 96 synthetic faces; its numbers mean nothing,
but every number the command writes is checked against a recomputation from its own cached
predictions, and the rules, the cache and the report section are exercised end to end.
"""

from __future__ import annotations

import copy
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from train_helpers import make_train_folder, train_settings, write_override  # noqa: F401 (autouse: 1 thread, no PNG)

from agefair.core.config import FairnessConfig, RobustnessRule, validate
from agefair.core.errors import AgefairError, run_cli
from agefair.fairness.auditing.robustness import judge_rules, worst_gaps
from agefair.fairness.results.result import RobustnessResult
from agefair.reporting.report import SECTIONS, chart_ids, render_html
from agefair.reporting.robustness import with_section

CORRUPTIONS = ["darker", "gaussian_blur", "occlude_eyes"]
SEVERITIES = [1, 5]


def cli(module: str, argv: list[str], capsys) -> tuple[int, str, str]:
    import importlib

    with pytest.raises(SystemExit) as exc:
        run_cli(importlib.import_module(f"agefair.{module}").main, argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def fairness_file(path, rules=(), n_boot=50):
    path.write_text(yaml.safe_dump({
        "n_boot": 20, "min_group_size": 2, "gallery_k": 1, "rules": [{"metric": "mae", "max": 1000}],
        "robustness": {"n_boot": n_boot, "severities": SEVERITIES, "corruptions": CORRUPTIONS, "rules": list(rules)},
    }))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    make_train_folder(root / "data")
    cfg = write_override(root / "small.yaml")
    with pytest.MonkeyPatch.context():
        with pytest.raises(SystemExit) as exc:
            from agefair.train import main as train_main

            run_cli(train_main, ["--variant", "baseline", "--preset", "cpu", "--config", str(cfg), "--data",
                                 str(root / "data"), "--work", str(root / "work"), "--out", str(root / "runs"),
                                 "--epochs", "1", "--quiet"])
    assert exc.value.code == 0
    shutil.copytree(root / "runs" / "baseline", root / "runs" / "weighted")  # a second variant (same weights)
    fairness_file(root / "fairness.yaml")
    return root


def args(env, out="out", *extra):
    return ["--runs", str(env / "runs"), "--data", str(env / "data"), "--work", str(env / "work"), "--out",
            str(env / out), "--thresholds", str(env / "fairness.yaml"), "--quiet", *extra]


@pytest.fixture(scope="module")
def first(env):
    from agefair.robustness import main

    with pytest.raises(SystemExit) as exc:
        run_cli(main, args(env))
    assert exc.value.code == 0
    return json.loads((env / "out" / "robustness.json").read_text())


def cached(env, variant_result: dict, corruption: str, severity: int) -> np.ndarray:
    digest = variant_result["checkpoint_sha256"][:16]
    files = list((env / "work").rglob(f"robustness/{digest}-*-{corruption}-v*-{severity}.npy"))
    assert len(files) == 1, files
    return np.load(files[0])


def test_json_structure_and_numbers_match_the_cached_predictions(env, first):
    assert set(first["variants"]) == {"baseline", "weighted"}
    assert first["severities"] == SEVERITIES and list(first["corruptions"]) == CORRUPTIONS
    test = pd.read_csv(next((env / "work").rglob("split-seed0.csv")))
    n_test = int((test["split"] == "test").sum())
    assert first["n_images"] == n_test and first["limit"] is None
    from agefair.core.config import load_data_config
    from agefair.data.labels import age_bin
    from agefair.data.prepare import prepare

    prepared = prepare(env / "data", load_data_config(), work_root=env / "work", progress=False)
    rows = np.flatnonzero(prepared.manifest["split"].to_numpy() == "test")
    m = prepared.manifest.iloc[rows]
    ages = m["age"].to_numpy(float)
    for res in first["variants"].values():
        assert len(res["conditions"]) == len(CORRUPTIONS) * len(SEVERITIES)
        clean = cached(env, res, "clean", 0)
        assert res["clean"]["mae"] == pytest.approx(np.abs(clean - ages).mean(), abs=1e-6)
        for c in res["conditions"]:
            pred = cached(env, res, c["corruption"], c["severity"])
            assert c["mae"] == pytest.approx(np.abs(pred - ages).mean(), abs=1e-6)
            assert c["bias"] == pytest.approx((pred - ages).mean(), abs=1e-6) and c["pred_sd"] == pytest.approx(pred.std())
            for grouping, labels in [("ethnicity", m["ethnicity"].to_numpy()), ("gender", m["gender"].to_numpy()),
                                     ("age_bin", age_bin(ages, load_data_config().age_bins))]:
                gs = c["groupings"][grouping]
                maes = {g: np.abs(pred - ages)[labels == g].mean() for g in np.unique(labels)}
                assert {g: x["mae"] for g, x in gs["groups"].items()} == pytest.approx(maes, abs=1e-6)
                bias = {g: (pred - ages)[labels == g].mean() for g in np.unique(labels)}
                assert {g: x["bias"] for g, x in gs["groups"].items()} == pytest.approx(bias, abs=1e-6)
                big = {g: x for g, x in maes.items() if (labels == g).sum() >= 2}  # min_group_size 2
                assert gs["gap"] == pytest.approx(max(big.values()) - min(big.values()), abs=1e-6)
                assert gs["worst_group"] == max(big, key=big.get) and gs["best_group"] == min(big, key=big.get)
                lo, hi = gs["gap_ci"]
                assert lo <= hi
    # the clean condition is exactly what the audit predicts
    from agefair.fairness.auditing.model_predictions import predict_variant
    from agefair.models.runtime import make_runtime

    pred, _ = predict_variant("baseline", env / "runs" / "baseline" / "model.pt", prepared, load_data_config(), "test",
                              make_runtime("cpu"), progress=False)
    assert first["variants"]["baseline"]["clean"]["mae"] == pytest.approx((pred["pred"] - pred["age"]).abs().mean(),
                                                                            abs=1e-3)
    assert first["provenance"]["corruption_seed"] == 0 and first["provenance"]["manifest_hash"] == prepared.data_hash


def test_csv_is_one_row_per_variant_condition_and_group(env, first):
    df = pd.read_csv(env / "out" / "robustness.csv")
    assert list(df.columns[:9]) == ["variant", "corruption", "severity", "param", "grouping", "group", "n", "mae", "bias"]
    per_condition = 1 + sum(len(g["groups"]) for g in first["variants"]["baseline"]["clean"]["groupings"].values())
    assert len(df) == 2 * (1 + len(CORRUPTIONS) * len(SEVERITIES)) * per_condition
    overall = df[(df.grouping == "overall") & (df.variant == "baseline")].set_index(["corruption", "severity"])["mae"]
    for c in first["variants"]["baseline"]["conditions"]:
        assert overall[(c["corruption"], c["severity"])] == pytest.approx(c["mae"], abs=1e-4)
    assert (df["mae_increase"] - (df["mae"] - df["clean_mae"])).abs().max() < 1e-3


def test_second_run_reads_the_cache_and_gives_the_same_numbers(env, first, capsys):
    code, out, err = cli("robustness", args(env, "out2"), capsys)
    assert code == 0, err
    second = json.loads((env / "out2" / "robustness.json").read_text())
    assert second["timings"]["images_predicted"] == 0
    assert second["timings"]["cached_conditions"] == 2 * (1 + len(CORRUPTIONS) * len(SEVERITIES))
    assert "0 predictions" in out
    for key in ("variants", "largest_gaps", "thresholds", "corruptions", "severities"):
        assert second[key] == first[key], key


def test_a_fresh_work_folder_recomputes_the_same_numbers(env, first, capsys):
    """Same seeds, no cache: the corruptions (noise and streak directions included) and the numbers repeat."""
    runs = []
    for k in (1, 2):
        argv = args(env, f"fresh{k}", "--corruption", "motion_blur", "gaussian_noise", "--severities", "3")
        argv[argv.index("--work") + 1] = str(env / f"work-fresh{k}")
        code, _, err = cli("robustness", argv, capsys)
        assert code == 0, err
        runs.append(json.loads((env / f"fresh{k}" / "robustness.json").read_text()))
    assert runs[0]["timings"]["images_predicted"] == runs[1]["timings"]["images_predicted"] > 0
    assert runs[0]["variants"] == runs[1]["variants"]
    for v in first["variants"]:
        assert runs[0]["variants"][v]["clean"] == first["variants"][v]["clean"]


def test_limit_is_a_seeded_stratified_subset(env, capsys):
    sub = args(env, "lim", "--limit", "12", "--corruption", "jpeg", "--severities", "3")
    code, _, err = cli("robustness", sub, capsys)
    assert code == 0, err
    a = json.loads((env / "lim" / "robustness.json").read_text())
    assert a["n_images"] == 12 and a["limit"] == 12 and list(a["corruptions"]) == ["jpeg"] and a["severities"] == [3]
    code, _, _ = cli("robustness", sub, capsys)
    b = json.loads((env / "lim" / "robustness.json").read_text())
    assert b["provenance"]["rows_sha1"] == a["provenance"]["rows_sha1"]
    code, _, err = cli("robustness", args(env, "lim", "--limit", "0"), capsys)
    assert code == 2 and "argument --limit: must be at least 1, got 0" in err


def test_failing_rule_exits_1_and_names_the_condition(env, capsys):
    strict = fairness_file(env / "strict.yaml", rules=[
        {"metric": "mae_increase", "max": -1000},
        {"metric": "group_gap", "grouping": "gender", "max": 1e9},
        {"name": "eyes only", "metric": "mae", "max": -1, "corruptions": ["occlude_eyes"], "max_severity": 1}])
    argv = args(env, "strict")
    argv[argv.index("--thresholds") + 1] = str(strict)
    code, out, err = cli("robustness", argv, capsys)
    assert code == 1, err
    assert "robustness thresholds FAILED" in out and "eyes only" in out and "occlude_eyes 1" in out
    res = json.loads((env / "strict" / "robustness.json").read_text())
    assert [r["passed"] for r in res["thresholds"]] == [False, True, False] * 2
    eyes = [r for r in res["thresholds"] if r["rule"] == "eyes only"]
    assert all(r["corruption"] == "occlude_eyes" and r["severity"] == 1 for r in eyes)


def test_audit_with_robustness_puts_the_section_in_the_report(env, capsys):
    code, out, err = cli("audit", args(env, "audit", "--robustness", "--no-gallery"), capsys)
    assert code == 0, err
    page = (env / "audit" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Robustness under image corruptions</h2>" in page and 'href="#robustness"' in page
    assert "chart-robustness" in chart_ids(page)
    assert 'id="robustness-gap-table"' in page and "Gaussian blur" in page
    summary = json.loads((env / "audit" / "summary.json").read_text())
    rob = json.loads((env / "audit" / "robustness.json").read_text())
    for v in ("baseline", "weighted"):
        assert rob["variants"][v]["checkpoint_sha256"] == summary["variants"][v]["training"]["checkpoint_sha256"]
        assert rob["variants"][v]["clean"]["mae"] == pytest.approx(
            summary["variants"][v]["audit"]["overall"]["mae"]["value"], abs=1e-3)
    # a later plain audit keeps the section (it reads robustness.json); a broken file is named and left out
    code, _, err = cli("audit", args(env, "audit", "--no-gallery"), capsys)
    assert code == 0 and "Robustness under image corruptions" in (env / "audit" / "report.html").read_text()
    (env / "audit" / "robustness.json").write_text("{ not json")
    code, _, err = cli("audit", args(env, "audit", "--no-gallery"), capsys)
    assert code == 0 and "robustness.json left out of the report" in err
    assert "Robustness under image corruptions" not in (env / "audit" / "report.html").read_text()


def test_report_section_only_with_a_result_and_flags_stale_checkpoints(first):
    assert with_section(SECTIONS, None) == SECTIONS
    assert [s[0] for s in with_section(SECTIONS, RobustnessResult.model_validate(first))].index("robustness") == \
        [s[0] for s in SECTIONS].index("disparity") + 1
    summary = {"variants": {v: {"training": {"checkpoint_sha256": r["checkpoint_sha256"]}}
                            for v, r in first["variants"].items()}}
    page = render_html(summary, {}, first)
    assert "changed since the robustness run" not in page
    summary["variants"]["weighted"]["training"]["checkpoint_sha256"] = "0" * 64
    page = render_html(summary, {}, first)
    assert "The checkpoints of weighted changed" in page
    broken = copy.deepcopy(first)
    broken["variants"]["baseline"]["conditions"][0]["groupings"] = None
    broken["variants"]["baseline"]["clean"] = None
    assert "Robustness under image corruptions" in render_html({}, {}, broken)  # tolerated, shown as '–'


# --------------------------------------------------------------------------- rules, unit level

def result(clean_mae=5.0, clean_gap=2.0, conds=(("jpeg", 1, 6.0, 2.5), ("jpeg", 5, 9.0, 4.0),
                                               ("darker", 3, 7.0, math.nan))) -> dict:
    def gs(gap):
        return {"ethnicity": {"gap": gap, "gap_ci": [gap - 1, gap + 1], "worst_group": "A", "best_group": "B",
                              "worst": 9.0, "best": 9.0 - gap, "groups": {}}}
    return {"v": {"clean": {"mae": clean_mae, "groupings": gs(clean_gap)},
                  "conditions": [{"corruption": c, "severity": s, "mae": m, "groupings": gs(g)} for c, s, m, g in conds]}}


def rule(**kw) -> RobustnessRule:
    return RobustnessRule.model_validate(kw)


def test_rules_judge_the_worst_covered_condition():
    res = result()
    r = judge_rules([rule(metric="mae", max=8.5)], res)[0]
    assert (r["corruption"], r["severity"], r["value"], r["passed"]) == ("jpeg", 5, 9.0, False)
    r = judge_rules([rule(metric="mae_increase", max=2.5, max_severity=3)], res)[0]
    assert (r["corruption"], r["value"], r["passed"]) == ("darker", 2.0, True)
    r = judge_rules([rule(metric="group_gap", grouping="ethnicity", max=3.5, corruptions=["jpeg"])], res)[0]
    assert (r["severity"], r["value"], r["passed"]) == (5, 4.0, False)
    r = judge_rules([rule(metric="group_gap", grouping="ethnicity", max=3.5, corruptions=["jpeg"], judge="ci_lower")],
                    res)[0]
    assert (r["judged_value"], r["passed"]) == (3.0, True)
    r = judge_rules([rule(metric="group_gap_increase", grouping="ethnicity", max=1.9, corruptions=["jpeg"])], res)[0]
    assert r["value"] == pytest.approx(2.0) and not r["passed"] and math.isnan(r["ci"][0])
    # a gap that cannot be computed fails; so does a rule that covers no condition
    r = judge_rules([rule(metric="group_gap", grouping="ethnicity", max=100)], res)[0]
    assert r["corruption"] == "darker" and not r["passed"]
    r = judge_rules([rule(metric="mae", max=100, corruptions=["gamma"])], res)[0]
    assert r["group"] == "(no condition covered)" and not r["passed"]


def test_worst_gaps_rank_by_increase_over_the_clean_gap():
    res = result()
    res["v"]["conditions"][2]["groupings"]["ethnicity"]["gap"] = 1.0
    ranked = worst_gaps(res, k=2)
    assert [(r["corruption"], r["severity"]) for r in ranked] == [("jpeg", 5), ("jpeg", 1)]
    assert ranked[0]["gap_increase"] == pytest.approx(2.0) and ranked[0]["clean_gap"] == 2.0


@pytest.mark.parametrize("section, key", [
    ({"rules": [{"metric": "group_gap", "max": 1}]}, "robustness.rules.0"),
    ({"rules": [{"metric": "mae", "grouping": "gender", "max": 1}]}, "robustness.rules.0"),
    ({"rules": [{"metric": "mae_increase", "max": 1, "judge": "ci_lower"}]}, "robustness.rules.0"),
    ({"rules": [{"metric": "mae", "max": 1, "corruptions": ["fog"]}]}, "robustness.rules.0.corruptions.0"),
    ({"rules": [{"metric": "mae"}]}, "robustness.rules.0.max"),
    ({"rules": [{"metric": "mae", "max": 1, "max_severity": 6}]}, "robustness.rules.0.max_severity"),
    ({"severities": [0, 3]}, "robustness.severities.0"),
    ({"severities": []}, "robustness.severities"),
    ({"corruptions": ["jpeg", "snow"]}, "robustness.corruptions.1"),
    ({"n_boot": -1}, "robustness.n_boot"),
    ({"seeds": 3}, "robustness.seeds"),
])
def test_invalid_robustness_settings_are_one_line_errors(section, key):
    with pytest.raises(AgefairError) as exc:
        validate(FairnessConfig, {"robustness": section}, "fairness.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"fairness.yaml: {key}: "), msg


def test_shipped_robustness_settings_are_valid():
    from agefair.core.config import load_fairness_config

    rc = load_fairness_config().robustness
    assert rc.severities == [1, 2, 3, 4, 5] and len(rc.corruptions) == 12
