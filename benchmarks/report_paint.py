"""The report's size and how soon it paints: per report.html, its size and, in headless Chromium, the real
(wall-clock) times to first contentful paint, to the scorecard painted and to the load event; median of N runs.

    python benchmarks/report_paint.py reports/report.html [OTHER.html ...] [--runs 5] [--chromium PATH]

Method: the page is copied to a temporary folder with a small script injected at the top of <head> (it must run
before the parser reaches the scorecard): a MutationObserver notes when ``#scorecard`` (else the first
``<table>``) enters the DOM and, via requestAnimationFrame and a message posted after it, when the frame that
shows it has been drawn; a PerformanceObserver collects the 'paint' entries; after ``load`` it writes
everything as JSON into ``<pre id="paint-metrics">``. Each run starts a fresh Chromium (new profile, cold
caches) driven over the DevTools protocol on ``--remote-debugging-pipe`` (standard library only, no virtual
time), opens the page and reads that element. Times are ms from navigation start (``performance.now()``);
"in DOM" is when the observer heard of the element (the end of the parser's task that added it), "painted"
the frame after that, never earlier than the first contentful paint. The run's load on the machine skews
every number: the header prints the load average. Nothing leaves the machine (``--host-resolver-rules=MAP *
~NOTFOUND``, background networking off).

Prints the machine (cores, CPU model, load average), the date and the Chromium version, then one markdown
table row per page. ``measure(path, runs)`` returns the same numbers as a dict.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1400, 900)
TIMEOUT_S = 60.0

# Runs before anything else in the page; window.__paintMetrics, then <pre id="paint-metrics"> after load.
PROBE = """<script>(function(){
var m = window.__paintMetrics = {};
function drawn(key) {
  requestAnimationFrame(function () {
    m[key + "_frame"] = performance.now();
    var c = new MessageChannel();
    c.port1.onmessage = function () { m[key + "_painted"] = performance.now(); };
    c.port2.postMessage(0);
  });
}
function found(key, at) { if (m[key] == null) { m[key] = at; drawn(key); } }
function look(n, at) {
  if (n.nodeType !== 1) return;
  if (n.id === "scorecard") found("scorecard", at);
  if (n.tagName === "TABLE") found("table", at);
  if (n.firstElementChild) {  /* a subtree inserted at once (by a script, not the parser) */
    if (n.querySelector("#scorecard")) found("scorecard", at);
    if (n.querySelector("table")) found("table", at);
  }
}
var obs = new MutationObserver(function (records) {
  var at = performance.now();
  for (var i = 0; i < records.length; i++)
    for (var j = 0; j < records[i].addedNodes.length; j++) look(records[i].addedNodes[j], at);
  if (m.scorecard != null) obs.disconnect();
});
obs.observe(document, {childList: true, subtree: true});
new PerformanceObserver(function (list) {
  list.getEntries().forEach(function (e) { m[e.name] = e.startTime; });
}).observe({type: "paint", buffered: true});
addEventListener("load", function () {
  setTimeout(function () {
    var nav = performance.getEntriesByType("navigation")[0] || {};
    m.dom_content_loaded = nav.domContentLoadedEventEnd;
    m.load = nav.loadEventStart;
    var since = performance.now();
    (function report() {  /* paint entries arrive when the frame is presented: wait for them (5 s at most) */
      var want = ["first-contentful-paint", "scorecard_painted", "table_painted"];
      var waiting = want.some(function (k) { return m[k] == null && (k === "first-contentful-paint" || m[k.split("_")[0]] != null); });
      if (waiting && performance.now() - since < 5000) { setTimeout(report, 20); return; }
      var pre = document.createElement("pre");
      pre.id = "paint-metrics"; pre.hidden = true; pre.textContent = JSON.stringify(m);
      document.body.appendChild(pre);
    })();
  }, 0);
});
})();</script>"""

READ_METRICS = "(function(){var e=document.getElementById('paint-metrics');return e?e.textContent:null;})()"


def instrumented(html: str) -> str:
    """``html`` with PROBE as early as it can go: after the charset <meta> (kept in the first 1,024 bytes),
    else after <head>, else first."""
    for pattern in (r"<meta[^>]*charset[^>]*>", r"<head[^>]*>"):
        if (m := re.search(pattern, html[:4096], re.IGNORECASE)) is not None:
            return html[:m.end()] + PROBE + html[m.end():]
    return PROBE + html


class DevTools:
    """A Chromium driven over --remote-debugging-pipe: JSON messages ending in NUL, fd 3 in, fd 4 out."""

    def __init__(self, chromium: str, profile: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Copies above fd 9 (close-on-exec, like every fd Python opens) that the child moves to 3 and 4 just before
        # exec: no clash with whatever 3 and 4 are in the child. Two pipes made, 3 and 4 are in use here, so
        # subprocess's own error pipe is never either of them.
        child_ends = (to_chrome_r, from_chrome_w)
        src = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in child_ends]

        def fds() -> None:  # in the child: the pipe ends as fds 3 and 4, inheritable
            os.dup2(src[0], 3)
            os.dup2(src[1], 4)

        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--remote-debugging-pipe", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking", "--disable-quic",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--no-first-run",
                "--no-default-browser-check", "--mute-audio", "--hide-scrollbars", "about:blank"]
        try:
            self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            for fd in (*src, *child_ends):
                os.close(fd)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe (exit {self.proc.poll()})")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = TIMEOUT_S) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)


def one_run(page: Path, chromium: str, work: Path) -> dict:
    """One cold load of ``page`` (already instrumented) in a fresh Chromium: the probe's numbers (ms)."""
    profile = Path(tempfile.mkdtemp(prefix="profile-", dir=work))
    browser = DevTools(chromium, profile)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.call("Page.enable", session=session)
        browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            got = browser.call("Runtime.evaluate", {"expression": READ_METRICS, "returnByValue": True},
                               session=session)
            if (text := got.get("result", {}).get("value")) is not None:
                return json.loads(text)
            time.sleep(0.05)
        raise TimeoutError(f"{page}: no paint metrics {TIMEOUT_S:.0f} s after navigating")
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


def _painted(run: dict, target: str) -> float | None:
    """When ``target`` was first shown: the frame after it entered the DOM, but never before the first
    contentful paint (that frame's presentation time, which the probe's estimate can precede by a few ms)."""
    at = [run.get(f"{target}_painted"), run.get("first-contentful-paint")]
    return None if at[0] is None else max(x for x in at if x is not None)


def _median(rows: list[dict], key: str) -> float | None:
    xs = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return statistics.median(xs) if xs else None


def measure(path: Path, runs: int = 5, chromium: str = CHROMIUM) -> dict:
    """``path``'s size and the median over ``runs`` cold loads of: first paint, first contentful paint, the
    scorecard (else first table) in the DOM and painted, DOMContentLoaded and load (ms from navigation start)."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="report-paint-") as tmp:
        work = Path(tmp)
        page = work / path.name
        page.write_text(instrumented(path.read_text(encoding="utf-8", errors="replace")), encoding="utf-8")
        rows = [one_run(page, chromium, work) for _ in range(runs)]
    target = "scorecard" if any(r.get("scorecard") is not None for r in rows) else "table"
    for r in rows:
        r["target_painted"] = _painted(r, target)
    found = any(r.get(target) is not None for r in rows)
    return {
        "path": str(path), "size_mb": path.stat().st_size / 1e6, "runs": runs,
        "target": ("#scorecard" if target == "scorecard" else "first <table>") if found else None,
        "first_paint_ms": _median(rows, "first-paint"),
        "fcp_ms": _median(rows, "first-contentful-paint"),
        "target_in_dom_ms": _median(rows, target),
        "target_painted_ms": _median(rows, "target_painted"),
        "dom_content_loaded_ms": _median(rows, "dom_content_loaded"),
        "load_ms": _median(rows, "load"),
        "all_runs": rows,
    }


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {model}, load average {load}"


def chromium_version(chromium: str) -> str:
    out = subprocess.run([chromium, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or "unknown"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("pages", nargs="+", type=Path, metavar="REPORT.html")
    p.add_argument("--runs", type=lambda x: max(1, int(x)), default=5,
                   help="cold loads per page; the median is shown (default 5)")
    p.add_argument("--chromium", default=CHROMIUM, help=f"the browser binary (default {CHROMIUM})")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every run's numbers here")
    args = p.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"browser: {chromium_version(args.chromium)}, headless, window {WINDOW[0]}x{WINDOW[1]}, "
          f"median of {args.runs} cold loads, ms from navigation start\n")
    print("| page | size (MB) | first contentful paint | element | element in DOM | element painted "
          "| DOMContentLoaded | load |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    results = []
    for path in args.pages:
        r = measure(path, args.runs, args.chromium)
        results.append(r)
        print(f"| {path} | {r['size_mb']:.2f} | {_ms(r['fcp_ms'])} | {r['target'] or 'no #scorecard or table'} "
              f"| {_ms(r['target_in_dom_ms'])} | {_ms(r['target_painted_ms'])} | {_ms(r['dom_content_loaded_ms'])} "
              f"| {_ms(r['load_ms'])} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
