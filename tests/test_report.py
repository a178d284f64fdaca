"""The HTML audit report: built from a synthetic summary made by the real audit code (no torch models).

``synthetic_summary`` runs agefair.fairness.stats.metrics.audit_variant, agefair.fairness.auditing.thresholds.judge and
agefair.fairness.auditing.leaderboard.leaderboard / verdict on made-up predictions, so the report is tested against the
structure ``run_audit`` really produces. tests/test_report_browser.py reuses these helpers.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from plotly.offline import get_plotlyjs

from agefair.core.config import ThresholdRule
from agefair.fairness.auditing.leaderboard import by_age, leaderboard, nan_to_none, verdict
from agefair.fairness.auditing.thresholds import judge
from agefair.fairness.stats.gates import gate_summaries
from agefair.fairness.stats.metrics import GROUPINGS, AuditSettings, audit_variant, shot_labels
from agefair.reporting.report import (
    SECTIONS,
    chart_figures,
    chart_ids,
    embedded_plotly,
    plotly_bundle,
    render_html,
    render_report,
    without_plotly_js,
)

AGE_BINS = [0, 10, 20, 30, 40, 50, 60, 70, 200]
AGE_LABELS = ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]
EVIL = "<b>x</b>"  # a variant name that must come out escaped
VARIANTS = {"baseline": (0.0, 4.0), "weighted": (1.5, 5.0), EVIL: (-2.0, 7.0)}  # name: (bias, noise sd)
SETTINGS = AuditSettings(n_boot=100, seed=0, min_group_size=30)
RULES = [
    ThresholdRule(metric="mae", grouping="overall", statistic="value", max=100.0),  # passes
    ThresholdRule(metric="mae", grouping="ethnicity", statistic="worst_group", max=1.0),  # fails
    ThresholdRule(metric="mae", grouping="gender", statistic="difference", max=1.5, judge="ci_lower"),
    ThresholdRule(metric="cs5", grouping="overall", statistic="value", min=0.2),
    ThresholdRule(metric="age_bin_spread", max=6.0),  # interval is NaN: shows as '–'
    ThresholdRule(metric="false_pass", gate="challenge-25", grouping="ethnicity", statistic="worst_group", max=0.5),
]


def synthetic_predictions(variant: str, bias: float, sd: float, n: int = 480, seed: int = 0) -> pd.DataFrame:
    """Predictions like agefair.fairness.auditing.model_predictions' (age, pred, gender, ethnicity, age_bin, shot, file)."""
    rng = np.random.default_rng(seed)  # the same test images for every variant
    age = rng.integers(1, 90, size=n)
    ethnicity = rng.choice(["White", "Black", "Asian", "Indian", "Others"], p=[0.4, 0.2, 0.17, 0.17, 0.06], size=n)
    gender = rng.choice(["female", "male"], size=n)
    noise = np.random.default_rng(zlib.crc32(variant.encode())).normal(bias, sd, size=n)
    pred = np.clip(age + noise + 0.05 * (age - 40), 0, 116)
    train_ages = rng.integers(1, 90, size=4000)
    return pd.DataFrame({
        "file": [f"{a}_{g == 'male':d}_{i % 5}_2017{i:08d}.jpg.chip.jpg" for i, (a, g) in enumerate(zip(age, gender))],
        "age": age.astype(float), "pred": pred, "gender": gender, "ethnicity": ethnicity,
        "age_bin": pd.cut(age, AGE_BINS, right=False, labels=AGE_LABELS).astype(str),
        "shot": shot_labels(age, train_ages, many=50, few=40),
    })


def synthetic_summary(variants: dict[str, tuple[float, float]] = VARIANTS, rules=RULES) -> dict:
    """A summary with run_audit's structure (before its NaN → None step: NaNs are left in)."""
    audits, preds = {}, {}
    for v, (bias, sd) in variants.items():
        preds[v] = synthetic_predictions(v, bias, sd)
        audits[v] = audit_variant(preds[v], SETTINGS)
        audits[v]["by_age"] = by_age(preds[v])
        audits[v]["gates"] = gate_summaries(preds[v], groupings=GROUPINGS, settings=SETTINGS)
    checks = judge(rules, audits)
    board = leaderboard(audits, checks)  # typed rows (their NaNs read as None)

    def history(k):
        return [{"epoch": e, "train_loss": 9.0 / e, "train_mae": 12.0 / e + k, "val_loss": 8.0 / e,
                 "val_mae": 10.0 / e + k, "lr": 1e-3, "seconds": 3.5, "train_img_per_s": 120.0} for e in range(1, 4)]

    return {
        "generated": "2026-01-02T03:04:05+00:00", "split": "test", "passed": all(r["passed"] for r in checks),
        "verdict": verdict(board), "leaderboard": [r.to_json() for r in board], "thresholds": checks,
        "variants": {v: {"training": {"checkpoint": f"runs/{v}/model.pt", "checkpoint_sha256": "ab" * 32, "epoch": 3,
                                      "val_mae": 10.0 / 3 + k, "config": {"model": {"backbone": "resnet18"},
                                                                            "train": {"epochs": 3}},
                                      "meta": {"variant": v, "seed": 0}, "history": history(k)},
                         "audit": audits[v], "timings": {"predict_s": 1.5, "metrics_s": 0.2}}
                     for k, v in enumerate(variants)},
        "data": {"quality": {"data_dir": "data/utkface", "files_scanned": 500, "files_kept": 480, "files_dropped": 20,
                             "manifest_hash": "f" * 64, "counts": {"malformed_name": 3, "zero_byte": 0},
                             "actions": {"malformed_name": "dropped: labels cannot be read from the name",
                                         "zero_byte": "dropped: empty file"},
                             "duplicate_groups": {"total": 4, "labels_agree": 3, "labels_conflict": 1}},
                 "split": {"seed": 0, "fractions": {"train": 0.7, "val": 0.15, "test": 0.15},
                           "counts": {"total": {"train": 3000, "val": 640, "test": 480}}},
                 "split_text": "Split (seed 0): train 3000, val 640, test 480\n  gender  train val test"},
        "provenance": {"data_dir": "data/utkface", "manifest_hash": "f" * 64, "split_seed": 0, "split": "test",
                       "thresholds_file": "configs/fairness.yaml",
                       "audit_settings": {"n_boot": SETTINGS.n_boot, "ci_level": 0.95, "seed": 0,
                                          "min_group_size": SETTINGS.min_group_size, "bootstrap": "vectorized",
                                          "rules": [r.model_dump(mode="json") for r in rules]},
                       "git_commit": "0123456789abcdef", "versions": {"python": "3.11", "plotly": "7"},
                       "command": "audit.py --split test"},
    }


def synthetic_robustness(variants: dict[str, tuple[float, float]] = VARIANTS, summary: dict | None = None) -> dict:
    """robustness.json's structure from agefair.robustness.evaluate / judge_rules / worst_gaps on made-up
    predictions: each corruption adds error that grows with severity, more for one ethnicity."""
    from agefair.core.config import RobustnessRule
    from agefair.fairness.auditing.robustness import CLEAN, conditions, evaluate, judge_rules, worst_gaps

    conds = conditions(["darker", "gaussian_blur", "occlude_eyes"], [1, 3, 5])
    preds, base = {}, None
    for v, (bias, sd) in variants.items():
        p = synthetic_predictions(v, bias, sd)
        base = p[["age", "ethnicity", "gender", "age_bin"]]
        rng = np.random.default_rng(zlib.crc32(v.encode()) + 1)
        extra = np.where(p["ethnicity"] == "Black", 2.0, 1.0)
        preds[v] = {CLEAN: p["pred"].to_numpy()} | {
            (c, s): p["pred"].to_numpy() + s * extra * np.abs(rng.normal(0, 1 + k, len(p)))
            for k, (c, s) in enumerate(conds[1:])}
    results = evaluate(base, preds, conds, SETTINGS, ["ethnicity", "gender", "age_bin"])
    sha = {v: _d(_d(_d(summary).get("variants")).get(v)).get("training", {}).get("checkpoint_sha256", "ab" * 32)
           for v in variants} if summary else dict.fromkeys(variants, "ab" * 32)
    for v in results:
        results[v] = {"checkpoint": f"runs/{v}/model.pt", "checkpoint_sha256": sha[v], "image_size": 48} | results[v]
    rules = [RobustnessRule(metric="mae_increase", max=3.0, max_severity=3),
             RobustnessRule(metric="group_gap", grouping="ethnicity", max=100.0, judge="ci_lower")]
    checks = judge_rules(rules, results)
    return nan_to_none({
        "generated": "2026-01-02T03:04:05+00:00", "split": "test", "n_images": len(base), "limit": None,
        "severities": [1, 3, 5], "groupings": ["ethnicity", "gender", "age_bin"],
        "corruptions": {c: {"title": c.replace("_", " "), "unit": "u", "params": [1, 2, 3, 4, 5]}
                        for c in ("darker", "gaussian_blur", "occlude_eyes")},
        "variants": results, "largest_gaps": worst_gaps(results, k=10), "thresholds": checks,
        "passed": all(r["passed"] for r in checks), "timings": {"seconds": 12.5},
        "provenance": {"corruption_seed": 0, "settings": {"min_group_size": SETTINGS.min_group_size},
                       "command": "robustness --severities 1 3 5"},
    })


def _d(x):
    return x if isinstance(x, dict) else {}


def png_data_uri(color=(200, 80, 40), size=(12, 14)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fake_galleries(variants=("baseline", EVIL), k: int = 2) -> dict:
    """gradcam.gallery's shape: {variant: {grouping: {group: [tile, ...]}}} with tiny PNG tiles."""
    def tiles(group, n):
        return [{"file": f"{30 + i}_0_1_2017{i:04d}.jpg.chip.jpg", "true": 30.0 + i, "pred": 51.5 + i,
                 "error": 21.5, "group": group, "img": png_data_uri((40 * i % 255, 90, 160))} for i in range(n)]
    return {v: {"overall": {"overall": tiles("overall", k + 1)},
                "ethnicity": {e: tiles(e, k) for e in ("Asian", "White")},
                "age_bin": {b: tiles(b, k) for b in ("0-9", "70+")}} for v in variants}


def n_tiles(galleries: dict) -> int:
    return sum(len(ts) for by_grouping in galleries.values() for groups in by_grouping.values()
               for ts in groups.values())


@pytest.fixture(scope="module")
def summary() -> dict:
    return synthetic_summary()


@pytest.fixture(scope="module")
def page(summary, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("report") / "report.html"
    render_report(copy.deepcopy(summary), fake_galleries(), path)
    return path.read_text(encoding="utf-8")


def test_report_is_written_atomically(summary, tmp_path):
    out = tmp_path / "sub" / "report.html"
    render_report(summary, {}, out)
    assert out.is_file() and out.stat().st_size > 100_000
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temporary file left behind
    assert out.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html>")


def test_render_does_not_modify_its_input(summary):
    before = json.dumps(summary, sort_keys=True, default=str)
    render_html(summary, fake_galleries())
    assert json.dumps(summary, sort_keys=True, default=str) == before


def test_every_variant_and_section_in_order(page):
    for v in ("baseline", "weighted"):
        assert v in page
    positions = [page.find(f"<h2>{title}</h2>") for _, title, _ in SECTIONS]
    assert all(p >= 0 for p in positions), [t for (_, t, _), p in zip(SECTIONS, positions) if p < 0]
    assert positions == sorted(positions), "sections out of order"


def test_verdict_sentence(summary, page):
    text = re.sub(r"<[^>]+>", "", page)
    best = summary["verdict"]["most_accurate"]
    row = next(r for r in summary["leaderboard"] if r["variant"] == best)
    assert f"Most accurate: {best} (MAE {row['mae']:.2f} [{row['mae_ci'][0]:.2f}, {row['mae_ci'][1]:.2f}])" in text
    assert f"Smallest ethnicity gap: {summary['verdict']['smallest_ethnicity_gap']}" in text.replace(
        "&lt;b&gt;x&lt;/b&gt;", EVIL)
    failed = sum(not r["passed"] for r in summary["thresholds"])
    assert 0 < failed < len(summary["thresholds"])  # the synthetic rules give both outcomes
    assert f"{failed} of {len(summary['thresholds'])} threshold checks failed." in text


def test_all_passed_sentence(tmp_path):
    s = synthetic_summary({"baseline": (0.0, 4.0)}, rules=RULES[:1])
    page = render_html(s, {})
    assert "All 1 threshold checks passed." in page
    assert "threshold checks failed" not in page


def test_thresholds_table_lists_failures_first(summary, page):
    table = page[page.index('id="threshold-table"'):]
    table = table[:table.index("</table>")]
    results = re.findall(r">(pass|FAIL)</td>", table)
    assert len(results) == len(summary["thresholds"])
    assert results == sorted(results, key=lambda r: r == "pass")  # every FAIL before every pass
    assert table.count('<tr class="fail">') == results.count("FAIL")


def test_plotly_embedded_exactly_once_and_no_network(page):
    js = get_plotlyjs()
    assert embedded_plotly(page) == js  # gzipped and base64-encoded in the page, inflated by the browser
    assert page.count(plotly_bundle()) == 1 and js[:60] not in page
    assert not re.search(r"<script[^>]*\ssrc=", page, re.I)
    assert not re.search(r"<link[^>]*https?:", page, re.I)
    rest = without_plotly_js(page)
    assert len(rest) < len(page) - len(plotly_bundle()) + 10
    assert "http://" not in rest and "https://" not in rest
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?!data:|#)[a-z]+:""", rest, re.I)
    assert "@import" not in rest
    # the only url(...) are the gallery pictures' data URIs (one CSS rule each)
    assert "url(" not in re.sub(r"url\(data:image/(?:png|jpeg);base64,[A-Za-z0-9+/=]+\)", "", rest)


def test_charts_have_stable_ids(page):
    ids = chart_ids(page)
    assert len(ids) >= 8  # 4 grouped bars, heat map, shot bars, 2 by-age lines, training curve
    assert len(set(ids)) == len(ids)
    assert page.count('class="chart"') == len(ids)
    assert page.count('class="chart-data"') == len(ids)  # each figure's JSON, drawn once the page has painted
    figures = chart_figures(page)
    assert list(figures) == ids and all(f["data"] and "layout" in f for f in figures.values())
    assert page.count("Plotly.newPlot(") == 1  # the one loader
    for expected in ("chart-group-age-bin", "chart-group-gender", "chart-group-ethnicity",
                     "chart-group-gender-x-ethnicity", "chart-group-age-bin-x-ethnicity", "chart-age-mae",
                     "chart-age-bias", "chart-training", "chart-group-shot"):
        assert expected in ids


def test_small_groups_are_marked(summary, page):
    small = [g["group"] for g in summary["variants"]["baseline"]["audit"]["groupings"]["gender x ethnicity"]["groups"]
             if g["small"]]
    assert small, "the synthetic data should have a small gender x ethnicity group"
    plotly_label = small[0].replace("/", "\\u002f") + " \\u2020"  # plotly's JSON escapes '/' and '†'
    assert plotly_label in page
    assert "fewer than 30 test images" in page


def test_galleries_embedded(page):
    gal = fake_galleries()
    assert "<img" not in page  # tiles refer to their picture's CSS class: each picture is in the page once
    gallery = page[page.index('<section id="gallery">'):]  # the report cards show some of the tiles again
    classes = re.findall(r'<span class="thumb (gc-[0-9a-f]{10})" role="img"', gallery)
    assert len(classes) == n_tiles(gal)
    rules = dict(re.findall(r"\.(gc-[0-9a-f]{10}) \{ background-image: url\((data:image/png;base64,[A-Za-z0-9+/=]+)\)",
                            page))
    assert set(rules) == set(classes)
    assert png_data_uri((0, 90, 160)) in rules.values()
    assert len(rules) == len({t["img"] for by_grouping in gal.values() for groups in by_grouping.values()
                              for ts in groups.values() for t in ts})
    assert "Worst errors by ethnicity" in page and "Worst errors by age bin" in page
    assert "No gallery for this variant." in page  # 'weighted' has none
    assert "+21.5" in page  # the signed error in the caption


def test_galleries_skipped(summary):
    page = render_html(summary, {})
    assert "Grad-CAM galleries were skipped" in page
    assert "<img" not in page and 'class="thumb' not in page and 'id="gc-lightbox"' not in page


def test_gallery_never_links_an_external_image(summary):
    gal = fake_galleries(("baseline",), k=1)
    gal["baseline"]["overall"]["overall"][0]["img"] = "https://example.com/face.png"
    page = render_html(summary, gal)
    assert "example.com" not in page
    assert "no image" in page


def test_variant_names_are_escaped(page):
    assert EVIL not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_missing_numbers_render_as_dash(summary):
    s = copy.deepcopy(summary)
    v = s["leaderboard"][0]["variant"]
    s["leaderboard"][0].update(mae_ci=[math.nan, math.nan], worst_group=None, worst_group_mae=math.nan,
                               ethnicity_gap=None, ethnicity_gap_ci=[None, None], age_bin_spread=math.nan)
    s["thresholds"][0].update(value=math.nan, ci=[math.nan, math.nan], judged_value=math.nan)
    s["verdict"]["smallest_age_bin_spread"] = None
    s["variants"][v]["audit"]["groupings"]["ethnicity"]["groups"][0]["mae"] = {"value": math.nan, "ci": [None, None]}
    s["variants"][v]["audit"]["by_age"][0]["mae"] = math.nan
    s["variants"][v]["training"]["history"][0]["val_mae"] = None
    for variant_summary in (s, json.loads(json.dumps(nan_to_none(s)))):  # raw NaNs and the summary.json form
        page = render_html(variant_summary, {})
        text = re.sub(r"<script.*?</script>|<style.*?</style>", "", page, flags=re.S)
        text = re.sub(r"<[^>]+>", "", text)
        assert not re.search(r"\bnan\b", text, re.I)
        assert not re.search(r"\bNone\b", text)
        assert "–" in text
        assert "Smallest age-bin spread: n/a" in text
        board = page[page.index('id="variant-table"'):]
        first_row = board[board.index("<tbody>"):board.index("</tr>", board.index("<tbody>"))]
        assert first_row.count("–") >= 5


def test_unknown_and_missing_keys(summary):
    s = copy.deepcopy(summary)
    s["seconds"] = 125.0
    s["robustness"] = {"blur": {"baseline": {"mae": 9.9}}}
    s["variants"]["baseline"]["audit"]["groupings"]["new grouping"] = {"columns": ["x"], "groups": [],
                                                                       "disparity": {"eligible_groups": 0}}
    page = render_html(s, {})
    assert "in 2.1 min" in page
    assert "Other summary fields (robustness)" in page

    empty = render_html({}, {})
    for _, title, _ in SECTIONS:
        assert f"<h2>{title}</h2>" in empty
    assert "No variant in the summary." in empty
    assert chart_ids(empty) == []


def test_robustness_section(summary):
    rob = synthetic_robustness(summary=summary)
    page = render_html(summary, fake_galleries(), rob)
    assert page.find("<h2>Disparities between groups</h2>") < page.find("<h2>Robustness under image corruptions</h2>") \
        < page.find("<h2>Grad-CAM galleries of the worst errors</h2>")
    assert 'href="#robustness"' in page and "chart-robustness" in chart_ids(page)
    assert "Largest group gap under corruption" in page and "occlude eyes, severity 5" in page
    failed = sum(not r["passed"] for r in rob["thresholds"])
    assert 0 < failed < len(rob["thresholds"])
    assert f"{failed} of {len(rob['thresholds'])} robustness checks failed" in page
    assert EVIL not in page  # variant names escaped here too
    assert "changed since the robustness run" not in page
    without = render_html(summary, fake_galleries())
    assert "Robustness under image corruptions" not in without and 'href="#robustness"' not in without


def test_template_is_packaged():
    import agefair.reporting.report as report

    assert (report.TEMPLATE_DIR / "report.html").is_file()
    assert Path(report.__file__).parent / "templates" == report.TEMPLATE_DIR


# --------------------------------------------------------------------------- the typed result

def test_typed_summary_round_trip(summary):
    """summary.json as AuditSummary and back: exactly the same JSON (keys, order, values, ints kept)."""
    from agefair.fairness.results.result import AuditSummary, ExactAudit, ExactRow

    written = json.loads(json.dumps(nan_to_none(summary)))
    typed = AuditSummary.model_validate(written)
    assert json.dumps(typed.to_json()) == json.dumps(written)
    assert all(isinstance(e.audit, ExactAudit) for e in typed.variants.values())
    assert all(isinstance(r, ExactRow) for r in typed.leaderboard) and typed.labels == "exact"
    assert typed.variants["baseline"].audit.grouping("ethnicity").disparity.stat("mae").worst_group
    assert render_html(typed, {}) == render_html(written, {})


def test_typed_interval_audit_round_trip():
    from agefair.fairness.results.result import AuditSummary, IntervalAudit, IntervalRow

    p = synthetic_predictions("baseline", 0.0, 4.0)
    lo = (p["age"] // 10) * 10
    p = p.drop(columns=["age", "shot"]).assign(age_lo=lo, age_hi=lo + 9)
    audits = {"m": audit_variant(p, SETTINGS, {"gender": ["gender"], "ethnicity": ["ethnicity"]})}
    board = leaderboard(audits, [])
    written = json.loads(json.dumps(nan_to_none({"leaderboard": [r.to_json() for r in board], "verdict": verdict(board),
                                                 "variants": {"m": {"audit": audits["m"]}}})))
    typed = AuditSummary.model_validate(written)
    assert typed.to_json() == written
    assert isinstance(typed.variants["m"].audit, IntervalAudit) and isinstance(typed.leaderboard[0], IntervalRow)
    assert typed.labels == "interval"


def test_malformed_summary_is_a_one_line_error(tmp_path):
    from agefair.core.errors import AgefairError
    from agefair.fairness.results.result import load_robustness, load_summary

    bad = tmp_path / "summary.json"
    bad.write_text(json.dumps({"leaderboard": [{"variant": "x", "mae": "not a number"}]}))
    with pytest.raises(AgefairError) as e:
        load_summary(bad)
    assert str(bad) in str(e.value) and "leaderboard" in str(e.value) and "\n" not in str(e.value)
    bad.write_text("{ not json")
    with pytest.raises(AgefairError, match="cannot be read as JSON"):
        load_summary(bad)
    rob = tmp_path / "robustness.json"
    rob.write_text(json.dumps({"variants": {"m": {"conditions": "none"}}}))
    with pytest.raises(AgefairError) as e:
        load_robustness(rob)
    assert str(rob) in str(e.value) and "\n" not in str(e.value)


def test_report_leaves_out_a_malformed_robustness_json(tmp_path, capsys):
    from agefair.fairness.auditing.robustness import load_result

    rob = tmp_path / "robustness.json"
    rob.write_text(json.dumps({"variants": {"m": {"clean": {"mae": "x"}}}}))
    assert load_result(rob) is None
    err = capsys.readouterr().err
    assert "robustness.json left out of the report" in err and err.count("\n") == 1


def test_a_dict_and_the_typed_summary_render_the_same_page(summary):
    """The report reads the typed result; a dict (summary.json, robustness.json) is parsed once at the entry."""
    from agefair.fairness.results.result import AuditSummary, RobustnessResult

    written = json.loads(json.dumps(nan_to_none(summary)))
    rob = synthetic_robustness(summary=summary)
    typed = AuditSummary.model_validate(written)
    assert render_html(typed, fake_galleries(), RobustnessResult.model_validate(rob)) == \
        render_html(written, fake_galleries(), rob)


def test_a_malformed_summary_dict_is_a_one_line_error(summary):
    from agefair.core.errors import AgefairError

    bad = copy.deepcopy(summary)
    bad["variants"]["baseline"]["audit"]["groupings"] = "none"
    with pytest.raises(AgefairError) as e:
        render_html(bad, {})
    assert str(e.value).startswith("summary: not a valid AuditSummary: variants.baseline")
    assert "\n" not in str(e.value)
    with pytest.raises(AgefairError, match="a JSON object expected"):
        render_html([], {})
    with pytest.raises(AgefairError, match="robustness result"):
        render_html(summary, {}, {"variants": {"m": {"conditions": "none"}}})
