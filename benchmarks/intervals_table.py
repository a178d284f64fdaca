"""Markdown tables of an audit's conformal intervals (docs/results.md, "Age intervals").

    python benchmarks/intervals_table.py reports/summary.json [--variant baseline] [--groupings ethnicity age_bin]

Prints, for every model with intervals, the overall coverage and width under each calibrator with
the ethnicity coverage gap and width ratio; then, for ``--variant``, coverage and mean width per group
of each of ``--groupings``, marginal against Mondrian. Numbers come from summary.json as written.
"""

from __future__ import annotations

import argparse

import numpy as np

from agefair.fairness.results.result import AuditSummary, load


def pct(stat) -> str:
    lo, hi = stat.ci
    return f"{100 * stat.value:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None else f"{100 * stat.value:.1f}%"


def overview(summary: AuditSummary, focus: str) -> list[str]:
    lines = ["| model | calibration | coverage | mean width (years) | coverage gap by " + focus + " | width ratio |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for v in summary.variants:
        iv = getattr(summary.audit(v), "intervals", None)
        for method, rep in (iv.methods.items() if iv else []):
            d = rep.definitions[0]
            disp = rep.groupings[focus].disparity if focus in rep.groupings else None
            gap = disp.coverage_gap.get(d) if disp else None
            ratio = disp.width_ratio if disp else None
            lines.append(f"| {v} | {method} | {pct(rep.overall.coverage[d])} | {rep.overall.mean_width.value:.1f} | "
                         + (f"{100 * gap.value:.1f} pts ({gap.high_group} − {gap.low_group}) "
                            f"[{100 * gap.ci[0]:.1f}, {100 * gap.ci[1]:.1f}]" if gap else "–") + " | "
                         + (f"{ratio.value:.2f} ({ratio.high_group} / {ratio.low_group})" if ratio else "–") + " |")
    return lines


def by_group(summary: AuditSummary, variant: str, grouping: str) -> list[str]:
    iv = summary.audit(variant).intervals
    methods = list(iv.methods)
    head = "| " + grouping + " | n | " + " | ".join(f"{m} coverage | {m} width" for m in methods) + " |"
    lines = [head, "| --- | ---: | " + " | ".join("---: | ---:" for _ in methods) + " |"]
    for g in iv.methods[methods[0]].groupings[grouping].groups:
        cells = []
        for m in methods:
            same = next(x for x in iv.methods[m].groupings[grouping].groups if x.group == g.group)
            d = iv.methods[m].definitions[0]
            cells.append(f"{pct(same.coverage[d])} | {same.mean_width.value:.1f}")
        lines.append(f"| {g.group}{' (small)' if g.small else ''} | {g.n} | " + " | ".join(cells) + " |")
    return lines


def null_gap(summary: AuditSummary, variant: str, grouping: str, draws: int = 20_000) -> str:
    """The max - min coverage gap expected by chance alone: every eligible group at exactly the target
    coverage, each group's test count drawn binomially (seeded)."""
    rep = summary.audit(variant).intervals.methods["marginal"]
    n = np.array([g.n for g in rep.groupings[grouping].groups if not g.small])
    cov = np.random.default_rng(0).binomial(n, rep.target, size=(draws, len(n))) / n
    gap = cov.max(axis=1) - cov.min(axis=1)
    lo, hi = np.quantile(gap, [0.025, 0.975])
    return (f"chance alone ({len(n)} {grouping} groups of n {', '.join(map(str, n))} at exactly {rep.target:.0%}): "
            f"max - min gap mean {100 * gap.mean():.1f} pts, 95% range [{100 * lo:.1f}, {100 * hi:.1f}]")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary")
    p.add_argument("--variant", default="baseline")
    p.add_argument("--groupings", nargs="+", default=["ethnicity", "age_bin"])
    p.add_argument("--focus", default="ethnicity", help="the grouping of the overview's gap and ratio")
    args = p.parse_args()
    summary = load(AuditSummary, args.summary)
    print("\n".join(overview(summary, args.focus)))
    print("\n" + null_gap(summary, args.variant, args.focus))
    for g in args.groupings:
        print(f"\n{args.variant}, by {g}:\n")
        print("\n".join(by_group(summary, args.variant, g)))


if __name__ == "__main__":
    main()
