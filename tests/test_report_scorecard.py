"""The report a person decides from (issue 23): the scorecard first, practical significance, the pictures of the
differences, one report card per model that prints on its own page.

A table of four models is audited by the real command (``python -m agefair.audit --table``, small resamples):
``nudged`` is ``baseline`` moved 0.03 years (a detectable difference that does not matter), ``noisy`` is
``baseline`` with 3 more years of noise (worse by far more than the margin), ``older`` is 3 years too old on
Black faces. The scorecard and the verdict must say so, with the numbers summary.json holds; Chromium renders the
page (the first screen, the pictures, the print view of a card, no console message).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from agefair.core.config import CONFIG_DIR
from agefair.reporting.format import fmt, fmt_pct
from agefair.reporting.report import chart_ids

MODELS = ("baseline", "nudged", "noisy", "older")


def audit_table(root: Path, n: int = 1500, seed: int = 0) -> Path:
    """The table written and audited by the command; the output folder."""
    rng = np.random.default_rng(seed)
    age = np.clip(np.round(rng.gamma(2.0, 15.0, n)), 1, 100)
    eth = rng.choice(["White", "Black", "Asian", "Indian"], n, p=[0.4, 0.25, 0.2, 0.15])
    gender = rng.choice(["female", "male"], n)
    base = age + rng.normal(0, 5, n)
    frame = pd.DataFrame({"id": [f"face{i}" for i in range(n)], "age": age, "gender": gender, "ethnicity": eth,
                          "pred_baseline": base, "pred_nudged": base - 0.03 * np.sign(base - age),
                          "pred_noisy": base + rng.normal(0, 3, n), "pred_older": base + 3.0 * (eth == "Black")})
    table = root / "table.csv"
    frame.to_csv(table, index=False)
    cfg = yaml.safe_load((CONFIG_DIR / "fairness.yaml").read_text())
    cfg.update(n_boot=300, seed=0)
    cfg["comparisons"]["n_perm"] = 300
    (root / "fair.yaml").write_text(yaml.safe_dump(cfg))
    from agefair.audit import main

    code = main(["--table", str(table), "--out", str(root / "out"), "--thresholds", str(root / "fair.yaml"), "--quiet"])
    assert code in (0, 1)
    return root / "out"


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    out = audit_table(tmp_path_factory.mktemp("scorecard"))
    import json

    summary = json.loads((out / "summary.json").read_text())
    page = (out / "report.html").read_text(encoding="utf-8")
    return out, summary, page


class ScorecardCells(HTMLParser):
    """The scorecard table's body: model -> the text of each cell (in column order) and its mark class."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.inside = self.body = False
        self.rows: dict[str, list[tuple[str, str]]] = {}
        self.model = None
        self.cell: list[str] | None = None
        self.mark = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "scorecard-table":
            self.inside = True
        elif self.inside and tag == "tbody":
            self.body = True
        elif self.body and tag == "th":
            self.cell, self.model = [], None
        elif self.body and tag == "td":
            self.cell, self.mark = [], next((c for c in (a.get("class") or "").split() if c.startswith("mark-")), "")

    def handle_endtag(self, tag):
        if tag == "table" and self.inside:
            self.inside = self.body = False
        elif self.body and tag == "th" and self.cell is not None:
            self.model = "".join(self.cell).strip()
            self.rows[self.model] = []
            self.cell = None
        elif self.body and tag == "td" and self.cell is not None and self.model:
            self.rows[self.model].append((" ".join("".join(self.cell).split()), self.mark))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def scorecard_cells(page: str) -> dict[str, list[tuple[str, str]]]:
    p = ScorecardCells()
    p.feed(page)
    return p.rows


def test_the_scorecard_is_the_first_section_and_lists_every_model(audited):
    _, summary, page = audited
    first = re.search(r'<section id="([^"]+)"', page).group(1)
    assert first == "scorecard"
    assert page.index('id="scorecard-table"') < page.index('class="chart"')  # the decision before any chart
    cells = scorecard_cells(page)
    assert list(cells) == ["baseline", "nudged", "noisy", "older"]  # the reference first
    assert summary["scorecard"]["reference"] == "baseline"


def test_scorecard_numbers_are_summary_json_numbers(audited):
    _, summary, page = audited
    sc = summary["scorecard"]
    cells = scorecard_cells(page)
    for row in sc["rows"]:
        shown = cells[row["model"]]
        assert len(shown) == len(sc["columns"]) + 1  # + the rules cell
        audit = summary["variants"][row["model"]]["audit"]
        assert row["cells"]["overall"]["value"] == audit["overall"]["mae"]["value"]
        assert row["cells"]["gap:ethnicity"]["value"] == audit["groupings"]["ethnicity"]["disparity"]["mae"]["difference"]
        for col, (text, mark) in zip(sc["columns"], shown):
            cell = row["cells"].get(col["key"])
            if cell is None:
                continue
            value = fmt_pct(cell["value"]) if col["unit"] == "share" else fmt(cell["value"])
            assert value in text, (row["model"], col["key"], text)
            assert mark == f"mark-{cell['mark']}"
        rules = f"{row['rules_passed']}/{row['rules']}"
        assert shown[-1][0] == rules
    # a mark is the comparison's class: the same difference and interval as the comparisons table
    comp = {(r["model_b"], r["criterion"], r.get("grouping")): r for r in summary["comparisons"]["overall"]}
    for row in sc["rows"][1:]:
        c = comp[(row["model"], "overall", None)]
        cell = row["cells"]["overall"]
        assert (cell["difference"], cell["difference_ci"], cell["mark"]) == (c["difference"], c["ci"], c["practical"])


def test_a_difference_inside_the_margin_is_practically_equivalent_not_best(audited):
    _, summary, page = audited
    rows = {(r["model_b"], r["criterion"]): r for r in summary["comparisons"]["overall"]}
    nudged = rows[("nudged", "overall")]
    assert abs(nudged["difference"]) < 0.1 and nudged["margin"] == 0.25
    assert nudged["practical"] == "equivalent"
    assert "practically equivalent" in nudged["sentence"] and "±0.25 years" in nudged["sentence"]
    noisy = rows[("noisy", "overall")]
    assert noisy["practical"] == "worse" and noisy["ci"][0] > 0.25
    overall = next(b for b in summary["verdict"]["best"] if b["key"] == "overall")
    assert overall["best"] is None  # nudged leads by a difference that does not matter
    assert "not by more than the 0.25 margin" in overall["statement"]
    # the sentences list only differences that matter; the rest are counted
    said = summary["verdict"]["differences"]
    assert any("`noisy` raises overall MAE" in s and "more than the 0.25 years margin" in s for s in said)
    assert not any("`nudged`" in s and "overall MAE" in s for s in said)
    counts = summary["verdict"]["counts"]
    total = sum(len(summary["comparisons"][t]) for t in ("overall", "groups", "gates"))
    assert sum(counts.values()) == total and counts["equivalent"] > 0
    cells = scorecard_cells(page)
    assert cells["nudged"][0][1] == "mark-equivalent" and cells["noisy"][0][1] == "mark-worse"


def test_a_one_group_offset_shows_in_the_group_and_the_gate(audited):
    _, summary, _ = audited
    black = next(r for r in summary["comparisons"]["groups"] if r["model_b"] == "older"
                 and r["grouping"] == "ethnicity" and r["group"] == "Black")
    assert black["difference"] > 0.5 and black["practical"] in ("worse", "unclear")
    fc = next(r for r in summary["comparisons"]["gates"] if r["model_b"] == "older" and r["metric"] == "false_challenge"
              and r["criterion"] == "worst_any" and r["gate"] == "challenge-25")
    assert fc["grouping"] == "every attribute" and fc["margin"] == 0.01


def test_pictures_and_cards_are_in_the_page(audited):
    _, summary, page = audited
    ids = chart_ids(page)
    assert {"chart-forest", "chart-diff-heatmap", "chart-gates-challenge-25"} <= set(ids)
    assert ids.index("chart-forest") < ids.index("chart-group-ethnicity")  # pictures before the evidence
    for m in MODELS:
        assert f'<article class="card" id="card-{m}">' in page
        assert f'href="#card-{m}"' in page  # reachable from the scorecard
    # every evidence section is collapsed, none opens by itself
    assert page.count('<details class="evidence"') >= 12 and '<details class="evidence" open' not in page


def test_the_report_is_small(audited):
    out, _, page = audited
    size = (out / "report.html").stat().st_size
    from plotly.offline import get_plotlyjs

    from agefair.reporting.report import embedded_plotly, plotly_bundle

    assert page.count(plotly_bundle()) == 1 and embedded_plotly(page) == get_plotlyjs()  # plotly's bundle once
    assert size < 2_000_000 + len(plotly_bundle()), size  # a table audit of four models


# --------------------------------------------------------------------------- in a browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium/Chrome binary found")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0"]


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                         timeout=180, errors="replace")
    assert out.returncode == 0, out.stderr[-3000:]
    return out


PROBE = """<script>
window.addEventListener("load", function () {
  function box(el) { var r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
  setTimeout(function () {
    var rows = document.querySelectorAll("#scorecard-table tbody tr");
    var out = {rows: rows.length, table: box(document.getElementById("scorecard-table")),
               last: box(rows[rows.length - 1]), scrollY: window.scrollY,
               csv: document.querySelectorAll("button.csv").length,
               tables: document.querySelectorAll("details.evidence table[id], #scorecard-table").length,
               svgs: {}};
    ["chart-forest", "chart-diff-heatmap", "chart-gates-challenge-25"].forEach(function (id) {
      out.svgs[id] = document.querySelectorAll("#" + id + " svg.main-svg").length;
    });
    var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }, 3000);
});
</script>"""


@needs_browser
def test_first_screen_shows_the_scorecard_and_the_pictures_render(audited, tmp_path):
    import json

    out, _, page = audited
    probe = tmp_path / "report.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    shot = tmp_path / "first_screen.png"
    done = chromium(["--window-size=1400,900", "--virtual-time-budget=20000", f"--screenshot={shot}", "--dump-dom",
                     probe.as_uri()], tmp_path / "profile")
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    got = json.loads(found.group(1).replace("&quot;", '"'))
    assert got["rows"] == len(MODELS)
    assert got["last"][3] <= 900 and got["table"][2] <= 1400  # every model's row on the first screen, no scrolling
    assert all(n >= 1 for n in got["svgs"].values()), got["svgs"]
    assert got["csv"] == got["tables"] > 10  # a CSV button on every table of the evidence and the scorecard
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []
    target = __import__("os").environ.get("AGEFAIR_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(target) / "report_first_screen.png")


def pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", path.read_bytes()))


@needs_browser
def test_a_report_card_prints_on_one_page(audited, tmp_path):
    out, _, _ = audited
    page = (out / "report.html").resolve()
    card = tmp_path / "card.pdf"
    chromium(["--virtual-time-budget=15000", "--no-pdf-header-footer", f"--print-to-pdf={card}",
              page.as_uri() + "#print-card-noisy"], tmp_path / "p1")
    whole = tmp_path / "whole.pdf"
    chromium(["--virtual-time-budget=15000", "--no-pdf-header-footer", f"--print-to-pdf={whole}", page.as_uri()],
             tmp_path / "p2")
    assert pdf_pages(card) == 1, pdf_pages(card)
    assert pdf_pages(whole) > 1  # without the card's address the whole page prints (the cards one a page)
