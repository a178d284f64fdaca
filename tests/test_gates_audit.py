"""The age gates wired into the audit: the gates: section of fairness.yaml, rules on gate metrics (judged,
with the audit's exit codes), the typed summary round trip, the console lines and the report section."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report import SETTINGS, synthetic_predictions, synthetic_summary  # noqa: E402

from agefair.cli.audit_job import print_audit
from agefair.cli.console import gates_text
from agefair.core.config import CONFIG_DIR, FairnessConfig, ThresholdRule, load_fairness_config, validate
from agefair.core.errors import AgefairError
from agefair.fairness.auditing.thresholds import judge
from agefair.fairness.results.result import AuditSummary, parse
from agefair.fairness.stats.gates import DEFAULT_GATES, RangeGate, ThresholdGate, gate_summaries
from agefair.fairness.stats.metrics import GROUPINGS
from agefair.reporting.report import chart_ids, render_html


def test_gate_config_models_live_in_core_and_are_re_exported():
    from agefair.core import gate_config

    assert ThresholdGate is gate_config.ThresholdGate and RangeGate is gate_config.RangeGate


def test_shipped_gates_and_gate_rules():
    cfg = load_fairness_config(CONFIG_DIR / "fairness.yaml")
    assert [g.model_dump() for g in cfg.gates] == [g.model_dump() for g in DEFAULT_GATES]
    c25 = cfg.gates[0]
    assert (c25.name, c25.legal_age, c25.challenge_age, c25.band_lo, c25.targets) == ("challenge-25", 18, 25, 13,
                                                                                      (0.01, 0.05))
    gate_rules = [r for r in cfg.rules if r.gate]
    assert len(gate_rules) == 2 and all(r.judge == "ci_lower" for r in gate_rules)
    assert len(cfg.rules) == 13  # 9 accuracy rules + 2 gate rules + 2 interval-coverage rules
    assert [r.metric for r in cfg.rules if r.metric == "coverage"] == ["coverage", "coverage"]


@pytest.mark.parametrize("data, key", [
    ({"gates": [{"kind": "range", "name": "a", "first": 1, "last": 2}, {"kind": "range", "name": "a", "first": 3,
                                                                       "last": 4}]}, "gates"),
    ({"gates": [{"kind": "threshold", "name": "x", "legal_age": 18, "colour": 1}]}, "gates.0.threshold.colour"),
    ({"rules": [{"metric": "false_pass", "gate": "nope", "grouping": "gender", "statistic": "worst_group",
                 "max": 0.1}]}, "unknown gate 'nope'"),
    ({"rules": [{"metric": "false_pass", "grouping": "gender", "statistic": "worst_group", "max": 0.1}]},
     "name its gate"),
    ({"rules": [{"metric": "tpr", "gate": "challenge-25", "grouping": "gender", "statistic": "worst_group",
                 "max": 0.1}]}, "has no tpr"),
    ({"rules": [{"metric": "buffer_0.02", "gate": "challenge-25", "grouping": "gender", "statistic": "difference",
                 "max": 3}]}, "has no buffer_0.02"),
    ({"rules": [{"metric": "buffer_0.01", "gate": "challenge-25", "grouping": "gender", "statistic": "ratio",
                 "max": 3}]}, "no ratio"),
])
def test_bad_gates_and_gate_rules_are_one_line_errors(data, key):
    with pytest.raises(AgefairError) as exc:
        validate(FairnessConfig, data, "fairness.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("fairness.yaml: ") and key in msg, msg


def test_rule_dumps_without_a_gate_are_unchanged():
    assert "gate" not in ThresholdRule(metric="mae", max=1).model_dump()
    assert ThresholdRule(metric="tpr", gate="r", max=1, grouping="overall").model_dump()["gate"] == "r"


def _audits(variants: dict) -> dict:
    out = {}
    for v, (bias, sd) in variants.items():
        p = synthetic_predictions(v, bias, sd)
        out[v] = {"labels": "exact", "attributes": ["gender", "ethnicity"],
                  "gates": gate_summaries(p, groupings=GROUPINGS, settings=SETTINGS)}
    return out


RULE = dict(gate="challenge-25", grouping="gender", judge="ci_lower")


def test_gate_rules_are_judged_pass_and_fail():
    audits = _audits({"old": (12.0, 4.0), "fair": (0.0, 2.0)})
    rules = [ThresholdRule(metric="false_pass", statistic="worst_group", max=0.05, **RULE),
             ThresholdRule(metric="buffer_0.01", statistic="difference", max=100, **RULE),
             ThresholdRule(metric="false_challenge", gate="age-18", grouping="overall", max=0.5),
             ThresholdRule(metric="tpr", gate="range-13-16", grouping="overall", min=0.0)]
    rows = {(r["variant"], r["metric"]): r for r in judge(rules, audits)}
    assert rows["fair", "false_pass"]["passed"] and not rows["old", "false_pass"]["passed"]
    fp = rows["old", "false_pass"]
    assert fp["judged_value"] == fp["ci"][0] > 0.05 and fp["group"] in {"female", "male"}
    assert fp["rule"] == "challenge-25 false_pass worst_group by gender"
    assert all(rows[v, m]["passed"] for v in ("old", "fair") for m in ("buffer_0.01", "tpr"))
    assert rows["fair", "false_challenge"]["group"] == "all" and rows["fair", "false_challenge"]["passed"]
    # a gate the audit lacks, or a grouping without two groups of adequate size, cannot be checked: fails
    missing = judge([ThresholdRule(metric="false_pass", statistic="worst_group", max=1, gate="challenge-25",
                                   grouping="shot")], audits)
    assert all(math.isnan(r["value"]) and not r["passed"] for r in missing)


def _summary(rules) -> AuditSummary:
    s = synthetic_summary({"baseline": (0.0, 4.0), "older": (6.0, 4.0)}, rules=rules)
    s["dataset"] = {"name": "utk", "path": "data", "labels": "exact", "split": "test", "images_in_split": 480}
    s["seconds"] = 1.0
    return parse(AuditSummary, json.loads(json.dumps(AuditSummary.model_validate(s).to_json())), "summary")


@pytest.mark.parametrize("limit, code", [(1.0, 0), (0.01, 1)])
def test_gate_rules_set_the_exit_code(limit, code, tmp_path, capsys):
    rule = ThresholdRule(metric="false_pass", statistic="worst_group", max=limit, **RULE)
    summary = _summary([rule])
    assert print_audit(summary, tmp_path, None) == code
    out = capsys.readouterr().out
    assert "age gates" in out and "challenge-25" in out and "largest buffer gap" in out
    assert ("FAILED" in out) == (code == 1)


def test_typed_summary_round_trip_keeps_the_gates():
    summary = _summary([])
    data = summary.to_json()
    again = parse(AuditSummary, json.loads(json.dumps(data)), "summary")
    assert again.to_json() == data
    gates = again.audit("baseline").gates
    assert len(gates) == len(DEFAULT_GATES) * 4  # overall, gender, ethnicity, gender x ethnicity
    c25 = again.audit("baseline").gate_results("challenge-25")
    eth = next(r for r in c25 if r.grouping == "ethnicity")
    assert eth.curves.challenge_ages[0] == 18 and len(eth.curves.groups) == 5
    assert eth.groups[0].buffers[0].target == 0.01 and eth.disparities["buffer_0.01"].flagged_small_groups >= 1
    assert "challenge-25" in gates_text(again)


def test_report_section(tmp_path):
    summary = _summary([])
    page = render_html(summary)
    section = page[page.index('<section id="gates">'):page.index("</section>", page.index('<section id="gates">'))]
    assert '<a href="#gates"' in page and "<h2>Age gates</h2>" in section
    for needle in ("most often let through", "largest buffer gap, 1%", "largest buffer gap, 5%", "range-13-16",
                   "TPR", "by ethnicity: the models side by side", "n "):
        assert needle in section, needle
    ids = [i for i in chart_ids(page) if i.startswith("chart-gate-")]
    assert ids == [f"chart-gate-{g}-{i}" for g in ("challenge-25", "age-18", "age-13") for i in range(2)]
    assert "†" in section  # a small group (Others has < 30 minors) is flagged
    # curves are aggregated: the page grows by well under a megabyte with 6 gate charts
    assert len(section) < 1_500_000
