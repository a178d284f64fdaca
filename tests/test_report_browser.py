"""The report in a real browser: headless Chromium renders every chart, logs nothing, and screenshots.

Chromium is driven from the command line only (no extra Python package): ``--dump-dom`` returns the
DOM after the page's scripts ran (plotly's rendered ``<svg class="main-svg">`` included),
``--screenshot`` writes a PNG, and ``--enable-logging=stderr`` prints every console message and
uncaught exception as a ``CONSOLE`` line (Chromium no longer prints the level there, so any console
output from the page counts as an error: the report logs nothing when it works). Network access is
cut off (``--host-resolver-rules``) and the dumped DOM is checked for external ``src``/``href``.

Skipped only when no Chromium/Chrome binary is installed. Set AGEFAIR_SCREENSHOT_DIR to keep the
screenshot (as report_screenshot.png in that folder).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from test_report import fake_galleries, synthetic_robustness, synthetic_summary

from agefair.reporting.report import chart_ids, render_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium/Chrome binary found")

WINDOW = (1400, 2000)
CONSOLE_LINE = re.compile(r':CONSOLE[:(]?\d*\)?\]\s*"(?P<msg>.*)", source: (?P<source>\S*)')


def run_chromium(page: Path, profile: Path, screenshot: Path | None = None,
                 budget_ms: int = 10_000) -> tuple[str, str]:
    """(dumped DOM, stderr) after loading ``page``; also a screenshot when asked."""
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars",
            "--mute-audio", "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}", "--enable-logging=stderr", "--v=0",
            f"--window-size={WINDOW[0]},{WINDOW[1]}"]
    if screenshot is not None:
        args.append(f"--screenshot={screenshot}")
    args += ["--dump-dom", page.resolve().as_uri()]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, errors="replace")
    assert out.returncode == 0, f"chromium exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out.stdout, out.stderr


def console_messages(stderr: str) -> list[str]:
    """Every console message and uncaught error the page produced (Chromium's stderr log)."""
    found = [f"{m['msg']} ({m['source']})" for m in CONSOLE_LINE.finditer(stderr)]
    found += [line for line in stderr.splitlines() if "Uncaught" in line and "CONSOLE" not in line]
    return found


class DomScan(HTMLParser):
    """Chart containers (``class="chart"``) with the plotly plots and SVGs inside each, and external links."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
            "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None]] = []
        self.charts: dict[str, dict[str, int]] = {}
        self.plots = 0  # every .js-plotly-plot element, inside a chart container or not
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        chart = next((c for _, c in reversed(self.stack) if c), None)
        own = None
        if tag == "div" and "chart" in classes:
            own = chart = a.get("id") or f"(no id {len(self.charts)})"
            self.charts[chart] = {"plots": 0, "svgs": 0}
        if "js-plotly-plot" in classes:
            self.plots += 1
            if chart:
                self.charts[chart]["plots"] += 1
        if tag == "svg" and "main-svg" in classes and chart:
            self.charts[chart]["svgs"] += 1
        for key in ("src", "href", "srcset", "poster", "data"):
            value = (a.get(key) or "").strip()
            if re.match(r"(?i)(https?:|//|ftp:|ws:)", value):
                self.external.append(f"<{tag} {key}={value}>")
        if tag not in self.VOID:
            self.stack.append((tag, own))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break


def scan(dom: str) -> DomScan:
    s = DomScan()
    s.feed(dom)
    s.close()
    return s


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The synthetic report, rendered, opened in Chromium: (html path, source, DOM, stderr, screenshot)."""
    root = tmp_path_factory.mktemp("browser")
    path = root / "report.html"
    summary = synthetic_summary()
    render_report(summary, fake_galleries(), path, synthetic_robustness(summary=summary))
    shot = root / "report.png"
    dom, stderr = run_chromium(path, root / "profile", screenshot=shot)
    return path, path.read_text(encoding="utf-8"), dom, stderr, shot


def test_every_chart_rendered(rendered):
    _, source, dom, _, _ = rendered
    ids = chart_ids(source)
    assert len(ids) >= 8
    s = scan(dom)
    assert list(s.charts) == ids  # the same containers, in order, after the scripts ran
    assert s.plots == len(ids), f"{s.plots} plotly plots for {len(ids)} chart containers"
    empty = [c for c, n in s.charts.items() if n["plots"] != 1 or n["svgs"] < 1]
    assert not empty, f"charts that did not render: {empty}"


def test_age_gate_charts_rendered(rendered):
    """The "Age gates" section's charts (one per model and threshold gate) render like every other chart."""
    _, source, dom, _, _ = rendered
    assert '<section id="gates">' in source and '<a href="#gates"' in source
    gates = [c for c in chart_ids(source) if c.startswith("chart-gate-")]
    assert len(gates) == 9  # 3 models x 3 threshold gates
    charts = scan(dom).charts
    assert all(charts[c]["plots"] == 1 and charts[c]["svgs"] >= 1 for c in gates)


def test_comparisons_section_in_the_page(rendered):
    """The "Paired comparisons" section (issue 14) is in the page and its table of contents."""
    _, source, _, _, _ = rendered
    assert '<section id="comparisons">' in source and '<a href="#comparisons"' in source


def test_no_console_errors_and_no_network(rendered):
    _, _, dom, stderr, _ = rendered
    assert console_messages(stderr) == []
    assert scan(dom).external == []


def test_screenshot(rendered):
    _, _, _, _, shot = rendered
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as im:
        assert im.size == WINDOW
        colours = im.convert("RGB").resize((350, 500)).getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50, "the screenshot looks blank"
    target = os.environ.get("AGEFAIR_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(target) / "report_screenshot.png")


def test_detectors_catch_errors(tmp_path):
    """The checks above would see a broken page: a thrown error, a console.error, a chart that never drew."""
    page = tmp_path / "boom.html"
    page.write_text(
        "<!doctype html><html><body>"
        '<div class="chart" id="chart-empty"><div class="plotly-graph-div"></div></div>'
        "<script>console.error('bad thing');</script>"
        "<script>throw new Error('boom');</script>"
        '<img src="https://example.invalid/x.png"></body></html>', encoding="utf-8")
    dom, stderr = run_chromium(page, tmp_path / "profile", budget_ms=2000)
    messages = " | ".join(console_messages(stderr))
    assert "boom" in messages and "Uncaught" in messages, stderr[-2000:]
    assert "bad thing" in messages
    s = scan(dom)
    assert s.charts == {"chart-empty": {"plots": 0, "svgs": 0}}
    assert s.external == ["<img src=https://example.invalid/x.png>"]
