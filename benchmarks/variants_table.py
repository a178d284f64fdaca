"""Markdown tables of every audited model against the reference (docs/results.md, "Variants that target the gaps").

    python benchmarks/variants_table.py reports/summary.json

Per model: best validation MAE, test MAE, worst ethnicity's MAE, the ethnicity gap (raw and
age-standardised) and the age-bin spread, each with its 95% interval; then the paired differences
against the reference (overall MAE, ethnicity gap, worst ethnicity, age-bin spread) with BH-adjusted
p-values. Every number is read from summary.json as the audit wrote it.
"""

from __future__ import annotations

import argparse
import json


def ci(x) -> str:
    return f"[{x[0]:.2f}, {x[1]:.2f}]" if x and x[0] is not None else ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary")
    p.add_argument("--grouping", default="ethnicity")
    a = p.parse_args()
    s = json.load(open(a.summary))
    g = a.grouping
    print(f"| model | val MAE | test MAE | worst {g} (MAE) | {g} gap | age-standardised gap | age-bin spread |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, e in s["variants"].items():
        audit = e["audit"]
        m = audit["overall"]["mae"]
        d = audit["groupings"][g]["disparity"]["mae"]
        st = (audit.get("standardised") or {}).get(g) or {}
        val = (e.get("training") or {}).get("val_mae")
        print(f"| {name} | {val:.2f} | {m['value']:.2f} {ci(m['ci'])} | {d['worst_group']} {d['worst']:.2f} "
              f"{ci(d['worst_ci'])} | {d['difference']:.2f} {ci(d['difference_ci'])} | "
              f"{st.get('gap', float('nan')):.2f} {ci(st.get('gap_ci'))} | {audit.get('age_bin_spread', float('nan')):.2f} |")
    comps = s.get("comparisons") or {}
    rows = [r for r in comps.get("overall", []) if r["criterion"] == "overall"
            or (r.get("grouping") in (g, "age_bin") and r["criterion"] in ("gap", "worst", "spread"))]
    print(f"\nPaired against `{comps.get('reference')}` (B - A; + means B is higher; {comps.get('n_boot')} paired "
          f"resamples, {comps.get('n_perm')} permutations, BH-adjusted p):\n")
    print("| model B | criterion | A | B | B - A [95% CI] | p (BH) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        what = r["criterion"] if r["criterion"] == "overall" else f"{r['criterion']} by {r['grouping']}"
        print(f"| {r['model_b']} | {what} | {r['value_a']:.2f} | {r['value_b']:.2f} | {r['difference']:+.2f} "
              f"{ci(r['ci'])} | {r['p_adjusted']:.3f}{' *' if r['significant'] else ''} |")


if __name__ == "__main__":
    main()
