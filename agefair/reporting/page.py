"""The audit report page: one self-contained HTML file (opens offline) from ``run_audit``'s summary.

``render_report(summary, galleries, path, robustness)`` writes it. The reader sees the decision first: the
scorecard (agefair.reporting.scorecard), the pictures of the differences (agefair.reporting.pictures), the
findings and a report card per model (agefair.reporting.cards); every full table follows, collapsed, under
"Evidence". The stylesheets (templates/*.css) are inlined; plotly's JavaScript is embedded once, gzipped, at
the end of the page (``plotly_bundle``), and every chart is a ``<div class="chart" id=...>`` holding its figure
as JSON, drawn after the page has painted; images are data URIs, each picture once, so the page makes no
network request. Missing numbers (None or NaN) read as '–'. Unknown summary keys are ignored (listed, as raw
JSON, at the end of the provenance section).

templates/report.html is the page; it includes one template per section (section_*.html), which
import their shared macros from macros.html. No torch here: the report only reads the summary.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from agefair.core.io import write_text_atomic
from agefair.fairness.results.result import AuditSummary, ExactRow, RobustnessResult, parse
from agefair.reporting import robustness as robustness_report
from agefair.reporting.adjusted import age_accuracy_context, standardised_tables
from agefair.reporting.cards import cards_context
from agefair.reporting.charts import (
    PALETTE,
    PLOT_CONFIG,
    by_age_chart,
    grouped_bar_chart,
    heatmap_chart,
    training_chart,
)
from agefair.reporting.decisions import decisions_context
from agefair.reporting.details import Galleries, data_context, gallery_sections, provenance_context, training_rows
from agefair.reporting.format import (
    fmt,
    fmt_ci,
    fmt_int,
    fmt_pct,
    fmt_seconds,
    fmt_signed,
    fmt_text,
    grouping_title,
    num,
    slug,
)
from agefair.reporting.gates import gates_context
from agefair.reporting.intervals import intervals_context
from agefair.reporting.pictures import forest_chart, gate_multiples, heatmap_differences
from agefair.reporting.scorecard import scorecard_context
from agefair.reporting.sections import (
    dataset_context,
    disparity_tables,
    gap_key,
    leaderboard_rows,
    model_rows,
    shot_table,
    threshold_rows,
    verdict_parts,
)
from agefair.reporting.view import chart_groupings, ci_label, min_group_size, variant_names

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

# (anchor id, heading, navigation label): what a reader reads, in order ...
READING: list[tuple[str, str, str]] = [
    ("scorecard", "Scorecard", "Scorecard"),
    ("pictures", "Where the models differ", "Pictures"),
    ("findings", "Findings", "Findings"),
    ("cards", "Report cards", "Report cards"),
]
# ... and the evidence: the sections of full tables, collapsed (each is templates/section_<id>.html).
SECTIONS: list[tuple[str, str, str]] = [
    ("summary", "Leaderboard and where each number comes from", "Leaderboard"),
    ("comparisons", "Paired comparisons", "Comparisons"),
    ("thresholds", "Threshold checks", "Thresholds"),
    ("groups", "Error by group", "By group"),
    ("by-age", "Error by true age", "By age"),
    ("shot", "Many-, medium- and few-shot ages", "Shot"),
    ("disparity", "Disparities between groups", "Disparities"),
    ("age-accuracy", "Age accuracy and label noise", "AAR, noise"),
    ("gates", "Age gates", "Age gates"),
    ("intervals", "Age intervals (conformal)", "Intervals"),
    ("gallery", "Grad-CAM galleries of the worst errors", "Grad-CAM"),
    ("training", "Training", "Training"),
    ("data", "Data quality and split", "Data"),
    ("provenance", "Provenance", "Provenance"),
]


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=fmt, signed=fmt_signed, pct=fmt_pct, ci=fmt_ci, int=fmt_int)
    return env


def stylesheet() -> Markup:
    """templates/style.css, then every other templates/*.css in name order, inlined into the page's <style>
    (the report stays one file)."""
    others = sorted(p for p in TEMPLATE_DIR.glob("*.css") if p.name != "style.css")
    return Markup("\n".join(p.read_text(encoding="utf-8") for p in [TEMPLATE_DIR / "style.css", *others]))


def chart_context(summary: AuditSummary, variants: list[str]) -> dict:
    """The charts of the groups, by-age, shot and training sections."""
    group_charts = []
    for grouping, heat, half in chart_groupings(summary, variants):
        chart_id = f"chart-group-{slug(grouping)}"
        chart = (heatmap_chart(summary, variants, grouping, chart_id) if heat
                 else grouped_bar_chart(summary, variants, grouping, chart_id))
        if chart is not None:
            group_charts.append({"grouping": grouping, "title": grouping_title(grouping), "chart": chart, "half": half})
    return {
        "group_charts": group_charts,
        "any_underpowered": any(p.underpowered for p in summary.power),
        "age_charts": [c for c in (
            by_age_chart(summary, variants, "mae", "MAE", "chart-age-mae"),
            by_age_chart(summary, variants, "bias", "signed error", "chart-age-bias")) if c is not None],
        "shot_chart": grouped_bar_chart(summary, variants, "shot", "chart-group-shot", 300),
        "training_chart": training_chart(summary, variants, "chart-training"),
    }


def header_context(summary: AuditSummary, variants: list[str]) -> dict:
    """The page head's line: data, split, images, when and how long."""
    n_test = num(summary.audit(variants[0]).overall.metric("n").value) if variants else None
    provenance = summary.provenance
    return {
        "generated": fmt_text(summary.generated),
        "split": fmt_text(summary.split),
        "n_test": fmt_int(n_test) if n_test is not None else None,
        "data_dir": fmt_text(provenance.data_dir or summary.data.quality.get("data_dir")),
        "manifest_short": fmt_text(provenance.manifest_hash)[:12],
        "seconds": fmt_seconds(summary.seconds) if num(summary.seconds) is not None else None,
        "ci_label": ci_label(summary),
        "min_group_size": min_group_size(summary),
    }


def summary_context(summary: AuditSummary, variants: list[str]) -> dict:
    """The summary and threshold sections: verdict, leaderboard, models, checks."""
    n_failed = sum(not r.passed for r in summary.thresholds)
    exact_board = [r for r in summary.leaderboard if isinstance(r, ExactRow)]
    return {
        "verdict": verdict_parts(summary),
        "n_checks": len(summary.thresholds), "n_failed": n_failed,
        "passed": summary.passed is not False and n_failed == 0,
        "leaderboard": leaderboard_rows(summary),
        "labels": summary.labels,
        "gap_title": "ethnicity MAE gap" if gap_key(exact_board) == "ethnicity_gap" else "largest attribute MAE gap",
        "dataset": dataset_context(summary),
        "models": model_rows(summary, variants),
        "not_applicable": summary.thresholds_not_applicable,
        "gallery_note": fmt_text(summary.gallery_note) if summary.gallery_note else None,
        "thresholds": threshold_rows(summary),
    }


def build_context(summary: AuditSummary | dict, galleries: dict | None,
                  robustness: RobustnessResult | dict | None = None) -> dict:
    """Everything the templates show, from the summary (missing parts read as empty) and robustness.json's
    result; a dict (summary.json's content) is read as the typed result first (AgefairError: malformed)."""
    summary = parse(AuditSummary, summary, "summary")
    robustness = parse(RobustnessResult, robustness, "robustness result") if robustness is not None else None
    variants = variant_names(summary)
    gallery = gallery_sections(galleries, variants) if galleries else Galleries()
    sc = scorecard_context(summary)
    return {
        "reading": READING,
        "sections": robustness_report.with_section(SECTIONS, robustness),
        "sc": sc,
        "pictures": {"forest": forest_chart(summary), "heatmap": heatmap_differences(summary),
                     "gates": gate_multiples(summary, variants)},
        "cards": cards_context(summary, variants, gallery.sections, sc),
        "failed_checks": [r for r in threshold_rows(summary) if not r["passed"]],
        "plot_config": Markup(json.dumps(PLOT_CONFIG)),
        "robustness": robustness_report.context(robustness, summary),
        "plotly_gz": Markup(plotly_bundle()),
        "stylesheet": stylesheet(),
        "variants": variants,
        "colors": {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(variants)},
        **header_context(summary, variants),
        **summary_context(summary, variants),
        "decisions": decisions_context(summary),
        **chart_context(summary, variants),
        "shot": shot_table(summary, variants),
        "disparity": disparity_tables(summary, variants),
        "standardised": standardised_tables(summary, variants),
        "age_accuracy": age_accuracy_context(summary, variants),
        **gates_context(summary, variants),
        "iv": intervals_context(summary, variants),
        "galleries": gallery.sections,
        "gallery_images": gallery.images,
        "training": training_rows(summary, variants),
        "data": data_context(summary),
        "provenance": provenance_context(summary, variants),
    }


def render_html(summary: AuditSummary | dict, galleries: dict | None = None,
                robustness: RobustnessResult | dict | None = None) -> str:
    """The report page as a string."""
    return _environment().get_template("report.html").render(**build_context(summary, galleries or {}, robustness))


def render_report(summary: AuditSummary | dict, galleries: dict | None, path: str | Path,
                  robustness: RobustnessResult | dict | None = None) -> None:
    """Write the self-contained HTML report of ``summary`` (and Grad-CAM ``galleries``, may be {}; the
    robustness section when ``robustness``, robustness.json's result, is given) to ``path``."""
    write_text_atomic(Path(path), render_html(summary, galleries, robustness))


def chart_ids(page: str) -> list[str]:
    """The ids of the chart containers in a rendered page (for tests and checks)."""
    return re.findall(r'<div class="chart" id="([^"]+)"', page)


def chart_figures(page: str) -> dict[str, dict]:
    """Each chart's figure (plotly's JSON: data and layout) by chart id, as the page holds it (tests, checks)."""
    found = re.findall(r'<div class="chart" id="([^"]+)"><div class="plot" id="[^"]+"></div>'
                       r'<script type="application/json" class="chart-data" data-target="[^"]+">(.*?)</script>', page, re.S)
    return {cid: json.loads(data) for cid, data in found}


@functools.lru_cache(maxsize=1)
def plotly_bundle() -> str:
    """plotly's JavaScript, gzipped (mtime 0: the same bytes every time) and base64-encoded: 1.9 MB in the page
    instead of 4.8. The page inflates it with the browser's DecompressionStream and runs it once."""
    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 9, mtime=0)).decode("ascii")


def embedded_plotly(page: str) -> str | None:
    """The plotly JavaScript a page embeds (inflated), or None (for tests and checks)."""
    found = re.search(r'<script id="plotly-gz" type="application/octet-stream">([A-Za-z0-9+/=]+)</script>', page)
    return gzip.decompress(base64.b64decode(found.group(1))).decode("utf-8") if found else None


def without_plotly_js(page: str) -> str:
    """The page with plotly's embedded bundle cut out (to check the rest makes no network reference)."""
    return page.replace(plotly_bundle(), "")
