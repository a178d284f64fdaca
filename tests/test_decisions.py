"""The audit's decisions (issue 14): paired comparisons against the reference in the summary, the verdict
in words, the console and the report's parts, and the reference's validation."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from agefair.core.config import FairnessConfig
from agefair.core.errors import AgefairError
from agefair.data.labels import age_bin
from agefair.fairness.auditing.decisions import comparisons, pick_reference, verdict
from agefair.fairness.results.result import AuditSummary
from agefair.fairness.stats.metrics import GROUPINGS, AuditSettings

SETTINGS = AuditSettings(n_boot=300, ci_level=0.95, seed=0, min_group_size=30)
UTK = {k: v for k, v in GROUPINGS.items() if k != "shot"}


def frames(shifts: dict[str, float | dict], n: int = 2400, seed: int = 0, subjects: bool = False) -> dict:
    """Prediction frames of models that share one noise draw: ``shifts`` name -> a shift in years for
    everyone, or {ethnicity: shift} for one group."""
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 90, n)
    base = pd.DataFrame({"file": [f"{i}.jpg" for i in range(n)], "age": age,
                         "gender": rng.choice(["male", "female"], n),
                         "ethnicity": rng.choice(["White", "Black", "Asian", "Indian"], n),
                         "age_bin": age_bin(age, [0, 10, 20, 30, 40, 50, 60, 70]), "row": np.arange(n)})
    if subjects:
        base["subject"] = np.arange(n) // 3
    noise = rng.normal(0, 4, n)
    out = {}
    for name, shift in shifts.items():
        d = (np.where(base["ethnicity"] == next(iter(shift)), next(iter(shift.values())), 0.0)
             if isinstance(shift, dict) else shift)
        out[name] = base.assign(variant=name, pred=age + noise + d + (age < 50) * 0.0)
    return out


def run(preds, reference="baseline", fair=None):
    fair = fair or FairnessConfig(n_boot=SETTINGS.n_boot)
    comps, frame = comparisons(preds, groupings=UTK, settings=SETTINGS, config=fair.comparisons,
                               reference=reference, gates=fair.gates)
    return comps, verdict(frame, list(preds), comps, groupings=UTK, settings=SETTINGS, config=fair.comparisons)


def test_a_model_worse_by_a_year_in_one_group_is_found_with_the_right_sign():
    # 'shifted' is 3 years too old on Black faces only (noise sd 4: MAE there rises by about 1.5 years); a
    # small overall margin, so that its overall loss (~0.4 years) is one that matters
    fair = FairnessConfig(n_boot=SETTINGS.n_boot, comparisons={"margins": {"mae": 0.05}})
    comps, said = run(frames({"baseline": 0.0, "shifted": {"Black": 3.0}}), fair=fair)
    row = next(r for r in comps.groups if r.grouping == "ethnicity" and r.group == "Black")
    assert row.model_a == "baseline" and row.model_b == "shifted"
    assert row.difference > 0.5 and row.ci[0] > 0 and row.significant and row.p_adjusted < 0.05
    assert row.p_adjusted >= row.p_value and row.mde > 0
    white = next(r for r in comps.groups if r.grouping == "ethnicity" and r.group == "White")
    assert white.difference == 0 and not white.significant
    gap = next(r for r in comps.overall if r.criterion == "gap" and r.grouping == "ethnicity")
    assert gap.difference > 0 and gap.significant
    assert any("`shifted` raises Black MAE by" in s for s in said.differences)
    assert said.best[0].key == "overall" and said.best[0].best == "baseline"


def test_identical_models_give_no_credibly_best_model():
    comps, said = run(frames({"baseline": 0.0, "copy": 0.0, "copy2": 0.0}))
    assert all(r.p_value == 1 and not r.significant for t in comps.tables.values() for r in t)
    assert said.best and all(b.best is None for b in said.best)
    assert all(b.statement.startswith("no model is credibly best on ") for b in said.best)
    assert said.differences == []


def test_gate_false_pass_rows_and_bh_families():
    comps, _ = run(frames({"baseline": 0.0, "older": 4.0}))
    gates = [r for r in comps.gates if r.gate == "challenge-25"]
    assert {r.criterion for r in gates} == {"overall", "group", "worst_any"}
    assert {r.metric for r in gates} == {"false_pass", "false_challenge"}
    over = next(r for r in gates if r.criterion == "overall" and r.metric == "false_pass")
    assert over.difference > 0 and over.significant  # 4 years older: more minors pass a challenge at 25
    assert {r.table for r in comps.overall} == {"overall"} and {r.table for r in comps.groups} == {"groups"}


def test_subjects_are_resampled_when_the_frames_have_a_subject_column():
    comps, _ = run(frames({"baseline": 0.0, "b": 0.5}, subjects=True))
    assert comps.subject == "subject" and all(r.clustered for r in comps.overall)


def test_reference_choice_and_unknown_names():
    assert pick_reference(["a", "baseline"], None) == "baseline"
    assert pick_reference(["a", "b"], None) == "a"
    assert pick_reference(["a", "b"], "b") == "b"
    with pytest.raises(AgefairError) as err:
        pick_reference(["a", "b"], "nosuch", flag="--reference")
    assert str(err.value) == "--reference nosuch: no audited model has that name (models: a, b)"


def test_unknown_reference_on_the_command_line_is_one_line(tmp_path, capsys):
    from agefair.audit import main
    from agefair.core.errors import run_cli

    with pytest.raises(SystemExit) as done:
        run_cli(main, ["--predictions", str(tmp_path / "a.csv"), "--reference", "nosuch",
                              "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and "\n" not in err
    assert "--reference nosuch: no audited model has that name (models: a)" in err


def test_config_section_and_reference_key():
    fair = FairnessConfig.model_validate({"reference": "lds", "comparisons": {"n_perm": 500, "power": 0.9}})
    assert fair.reference == "lds" and fair.comparisons.n_perm == 500
    with pytest.raises(ValueError):
        FairnessConfig.model_validate({"comparisons": {"nperm": 5}})


def test_typed_round_trip_console_and_report(tmp_path):
    from agefair.cli.console import verdict_text
    from agefair.reporting.page import render_html

    comps, said = run(frames({"baseline": 0.0, "shifted": {"Black": 3.0}}))
    s = AuditSummary.model_validate({"split": "test", "verdict": said.to_json(), "comparisons": comps.to_json()})
    written = json.loads(json.dumps(s.to_json()))
    assert AuditSummary.model_validate(written).to_json() == written
    assert written["comparisons"]["reference"] == "baseline" and written["verdict"]["best"]
    text = verdict_text(s)
    assert "verdict (paired comparisons against baseline):" in text and "differences beyond the margin" in text
    assert "practically equivalent" in text  # the rows that do not matter, counted
    page = render_html(s, {})
    assert '<section id="comparisons">' in page and 'id="comparisons-groups"' in page
    plain = re.sub(r"<[^>]+>", "", page)
    assert "baseline is credibly best on overall MAE" in plain or "credibly best on overall MAE" in plain
    assert "raises Black MAE by" in plain


def test_an_older_summary_verdict_still_reads_and_prints():
    from agefair.cli.console import verdict_text

    s = AuditSummary.model_validate({"verdict": {"most_accurate": "lds", "smallest_ethnicity_gap": None}})
    assert s.verdict.legacy["most_accurate"] == "lds"
    assert s.to_json()["verdict"] == {"most_accurate": "lds", "smallest_ethnicity_gap": None}
    assert verdict_text(s) == "most accurate: lds; smallest ethnicity gap: None"


def test_a_dataset_subject_column_is_read_and_not_an_attribute(tmp_path):
    from agefair.core.config import DatasetConfig
    from agefair.data.csv_dataset import read_labels

    csv = tmp_path / "labels.csv"
    csv.write_text("file,age,gender,person\na.jpg,20,f,p1\nb.jpg,21,f,p1\nc.jpg,40,m,\n")
    labels = read_labels(csv, DatasetConfig.model_validate({"columns": {"subject": "person"}}), 116)
    assert labels.attributes == ["gender"]
    assert list(labels.rows["subject"]) == ["p1", "p1", "(line 4)"]
    with pytest.raises(AgefairError, match="no subject column 'who'"):
        read_labels(csv, DatasetConfig.model_validate({"columns": {"subject": "who"}}), 116)


def _audits(n_small: int):
    from agefair.fairness.stats.metrics import audit_variant

    pred = frames({"m": 0.0}, n=1200)["m"]
    pred.loc[pred.index[:n_small], "ethnicity"] = "Tiny"
    return {"m": audit_variant(pred, SETTINGS, UTK)}


@pytest.mark.parametrize("min_power", [False, True])
def test_min_power_fails_a_rule_over_an_underpowered_grouping(min_power):
    from agefair.core.config import ThresholdRule
    from agefair.fairness.auditing.thresholds import judge
    from agefair.fairness.stats.power import group_power

    rule = ThresholdRule(metric="mae", grouping="ethnicity", statistic="difference", max=100.0, min_power=min_power)
    tight = ThresholdRule(metric="mae", grouping="gender", statistic="difference", max=0.3, min_power=min_power)
    audits = _audits(35)  # 'Tiny': 35 rows, eligible (>= 30) but its MAE is known to about +-1 year
    power = group_power(audits, [rule, tight], level=0.95, power=0.8, min_group_size=30)
    tiny = next(p for p in power if p["group"] == "Tiny")
    assert tiny["eligible"] and tiny["mde"] > 1 and tiny["underpowered"] is False  # limit 100: detectable
    rows = {r["grouping"]: r for r in judge([rule, tight], audits, power)}
    assert rows["ethnicity"]["passed"]
    gender = rows["gender"]
    assert gender["value"] < 0.3 or not min_power  # the point gap passes; only power decides
    if min_power:
        assert not gender["passed"] and "underpowered: " in gender["group"] and "MDE" in gender["group"]
        assert set(gender["underpowered"]) == {"male", "female"}
    else:
        assert "underpowered" not in gender


def test_min_power_needs_a_gap_rule():
    from agefair.core.config import ThresholdRule

    with pytest.raises(ValueError, match="min_power applies to gap rules"):
        ThresholdRule(metric="mae", grouping="ethnicity", statistic="worst_group", max=9, min_power=True)


def test_power_table_in_the_report():
    from agefair.core.config import ThresholdRule
    from agefair.fairness.stats.power import group_power
    from agefair.reporting.page import render_html

    rule = ThresholdRule(metric="mae", grouping="gender", statistic="difference", max=0.3)
    power = group_power(_audits(35), [rule], level=0.95, power=0.8, min_group_size=30)
    page = render_html(AuditSummary.model_validate({"power": power}), {})
    assert 'id="power-table"' in page and "underpowered</span>" in page


def test_underpowered_groups_are_marked_in_the_error_by_group_charts():
    from agefair.core.config import ThresholdRule
    from agefair.fairness.stats.power import group_power
    from agefair.reporting.page import render_html

    audits = _audits(35)
    rule = ThresholdRule(metric="mae", grouping="gender", statistic="difference", max=0.3)
    power = group_power(audits, [rule], level=0.95, power=0.8, min_group_size=30)
    s = AuditSummary.model_validate({"power": power, "variants": {"m": {"audit": audits["m"]}}})
    page = render_html(s, {})
    groups = page.split('<section id="groups">')[1].split("</section>")[0].replace("\\u2021", "‡")
    assert "female ‡" in groups and "male ‡" in groups and "(underpowered)" in groups
    assert "Groups marked ‡ are" in groups
    assert "White ‡" not in groups  # ethnicity has no gap rule here


def test_practical_classes_against_the_margin():
    """Inside the margin: equivalent; straddling it: can't tell; beyond it: better or worse."""
    from agefair.fairness.stats.decide import practical

    assert practical(0.03, (-0.01, 0.06), 0.25) == "equivalent"
    assert practical(-0.03, (-0.06, -0.001), 0.25) == "equivalent"  # detectable, but smaller than what matters
    assert practical(0.2, (0.1, 0.3), 0.25) == "unclear"  # straddles +margin
    assert practical(0.0, (-0.3, 0.3), 0.25) == "unclear"  # wider than the margin on both sides
    assert practical(2.0, (1.8, 2.3), 0.25) == "worse"
    assert practical(-0.5, (-0.7, -0.3), 0.25) == "better"
    assert practical(0.3, (0.26, 0.4), 0.25) == "worse" and practical(0.3, (0.25, 0.4), 0.25) == "unclear"
    assert practical(0.1, (None, 0.2), 0.25) == "unclear"  # no interval: can't tell
    assert practical(0.1, (0.05, 0.2), None) == "worse"  # no margin: any credible difference


def test_a_tiny_overall_lead_is_practically_equivalent_not_credibly_best():
    # 'nudged' is 0.1 years closer for everyone on top of shared noise: a detectable lead far inside 0.25 years
    preds = frames({"baseline": 0.0, "nudged": -0.1}, n=4000)
    for name in preds:
        preds[name]["pred"] = preds[name]["age"] + 6.0 + (-0.1 if name == "nudged" else 0.0) + \
            np.random.default_rng(1).normal(0, 0.5, len(preds[name]))
    comps, said = run(preds)
    row = next(r for r in comps.overall if r.criterion == "overall")
    assert row.ci[1] < 0 and row.margin == 0.25 and row.practical == "equivalent"
    assert "practically equivalent" in row.sentence and "±0.25 years" in row.sentence
    overall = next(b for b in said.best if b.key == "overall")
    assert overall.leader == "nudged" and overall.best is None and overall.margin == 0.25
    assert "not by more than the 0.25 margin" in overall.statement and "practically equivalent" in overall.statement
    assert not any("overall MAE" in s for s in said.differences)  # a difference that does not matter is counted
    assert said.counts["equivalent"] >= 1 and sum(said.counts.values()) == sum(len(t) for t in comps.tables.values())


def test_false_challenge_and_worst_group_gate_rows():
    comps, _ = run(frames({"baseline": 0.0, "older": 4.0}))
    kinds = {(r.metric, r.criterion) for r in comps.gates}
    assert {("false_pass", "worst_any"), ("false_challenge", "overall"), ("false_challenge", "group"),
            ("false_challenge", "worst_any")} <= kinds
    fc = next(r for r in comps.gates if r.metric == "false_challenge" and r.criterion == "overall"
              and r.gate == "challenge-25")
    assert fc.difference < 0  # 4 years older: fewer adults challenged
    worst = next(r for r in comps.gates if r.metric == "false_pass" and r.criterion == "worst_any"
                 and r.gate == "challenge-25")
    assert worst.grouping == "every attribute" and worst.value_b >= worst.value_a
    assert worst.margin == 0.01


@pytest.mark.parametrize("margins, message", [
    ({"mea": 0.25}, "unknown metric 'mea'"),
    ({"mae": 0}, "a margin must be a number > 0"),
    ({"false_pass": 5}, "a rate's margin is a share"),
])
def test_bad_margins_are_one_line_errors(tmp_path, margins, message):
    import yaml

    from agefair.core.config import load_fairness_config

    path = tmp_path / "fair.yaml"
    path.write_text(yaml.safe_dump({"comparisons": {"margins": margins}}))
    with pytest.raises(AgefairError) as err:
        load_fairness_config(path)
    text = str(err.value)
    assert "\n" not in text and message in text and "fair.yaml" in text


def test_a_margin_left_out_keeps_its_default(tmp_path):
    import yaml

    from agefair.core.config import load_fairness_config

    path = tmp_path / "fair.yaml"
    path.write_text(yaml.safe_dump({"comparisons": {"margins": {"mae": 0.5}}}))
    m = load_fairness_config(path).comparisons.margins
    assert m["mae"] == 0.5 and m["false_pass"] == 0.01 and m["coverage"] == 0.02
