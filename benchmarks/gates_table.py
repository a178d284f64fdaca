"""Markdown tables of one model's age gate, overall and per group, and of every model's false pass per group
(docs/results.md, "Age gates").

    python benchmarks/gates_table.py reports/summary.json [--model baseline] [--gate challenge-25] [--grouping ethnicity]

Every number is read from summary.json as the audit wrote it: false pass (share of minors estimated at the
challenge age or over), the share of 13-17-year-olds let through, false challenge (adults estimated under
the challenge age) and the buffers (the challenge age a group would need for a false pass of at most 1% /
5%), each with its 95% bootstrap interval and n; "(small)" marks a group under the audit's minimum size.
"""

from __future__ import annotations

import argparse
import json


def rate(x: dict) -> str:
    if x is None or x.get("value") is None:
        return "n/a"
    ci = x.get("ci") or [None, None]
    text = f"{100 * x['value']:.1f}%"
    if x.get("small"):
        return f"{text} n {x['n']:,} (small)"
    if ci[0] is not None:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return f"{text} n {x['n']:,}"


def years(x: dict) -> str:
    if x is None or x.get("value") is None:
        return "n/a"
    ci = x.get("ci") or [None, None]
    return f"{x['value']:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci[0] is not None else "")


def gate_rows(summary: dict, model: str, gate: str, grouping: str) -> list[dict]:
    gates = summary["variants"][model]["audit"]["gates"] or []
    rows = []
    for g in gates:
        if g["gate"]["name"] == gate and g["grouping"] in ("overall", grouping):
            rows += g["groups"]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary")
    p.add_argument("--model", default="baseline")
    p.add_argument("--gate", default="challenge-25")
    p.add_argument("--grouping", default="ethnicity")
    a = p.parse_args()
    s = json.load(open(a.summary))
    print(f"{a.gate}, {a.model}, by {a.grouping}:\n")
    print("| group | false pass | minors 13-17 passed | false challenge (adults) | buffer 1% | buffer 5% |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in gate_rows(s, a.model, a.gate, a.grouping):
        b = {x["target"]: x for x in r.get("buffers") or []}
        print(f"| {r['group']} | {rate(r['false_pass'])} | {rate(r.get('false_pass_band'))} | "
              f"{rate(r['false_challenge'])} | {years(b.get(0.01))} | {years(b.get(0.05))} |")
    models = list(s["variants"])
    groups = [r["group"] for r in gate_rows(s, models[0], a.gate, a.grouping)]
    print(f"\n{a.gate}, false pass by {a.grouping}, every model:\n")
    print("| model | " + " | ".join(groups) + " |")
    print("| --- |" + " ---: |" * len(groups))
    for m in models:
        by_group = {r["group"]: r for r in gate_rows(s, m, a.gate, a.grouping)}
        cells = [f"{100 * by_group[g]['false_pass']['value']:.1f}%" if g in by_group
                 and by_group[g]["false_pass"]["value"] is not None else "n/a" for g in groups]
        print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
