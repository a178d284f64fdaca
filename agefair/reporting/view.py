"""Read-only views of a typed summary for the report: variants, groups, chart groupings, settings.

A partial summary reads as empty where it has no data (the models' defaults).
"""

from __future__ import annotations

from agefair.fairness.results.result import AuditSummary, GroupBase, Metric
from agefair.fairness.stats.specs import AGE_GROUPINGS
from agefair.reporting.format import ci_pair, natural_key, num


def variant_names(summary: AuditSummary) -> list[str]:
    names = list(summary.variants)
    for row in summary.leaderboard:
        if row.variant is not None and str(row.variant) not in names:
            names.append(str(row.variant))
    return names


def groups_by_name(summary: AuditSummary, variant: str, grouping: str) -> dict[str, GroupBase]:
    g = summary.audit(variant).grouping(grouping)
    return {str(x.group): x for x in g.groups} if g else {}


def ordered_groups(summary: AuditSummary, variants: list[str], grouping: str) -> tuple[list[str], set[str]]:
    """Every group of ``grouping`` over the variants (natural order) and the set flagged small."""
    names: list[str] = []
    small: set[str] = set()
    for v in variants:
        for name, g in groups_by_name(summary, v, grouping).items():
            if name not in names:
                names.append(name)
            if g.small:
                small.add(name)
    return sorted(names, key=natural_key), small


def underpowered_groups(summary: AuditSummary, grouping: str) -> set[str]:
    """The groups of ``grouping`` that cannot detect the gap its rule forbids, for some model (summary.power)."""
    return {str(p.group) for p in summary.power if p.grouping == grouping and p.underpowered}


def chart_groupings(summary: AuditSummary, variants: list[str]) -> list[tuple[str, bool, bool]]:
    """(grouping, heat map?, half width?) for each grouping of the audits but shot, in the audits' order:
    age, the attributes, then intersections (an age x attribute intersection as a heat map)."""
    out: list[tuple[str, bool, bool]] = []
    for v in variants:
        for name, g in summary.audit(v).groupings.items():
            if name == "shot" or name in [o[0] for o in out]:
                continue
            cols = [str(c) for c in g.columns] or str(name).split(" x ")
            heat = len(cols) == 2 and cols[0] in AGE_GROUPINGS
            half = len(cols) == 1 and cols[0] not in AGE_GROUPINGS
            out.append((str(name), heat, half))
    return out


def min_group_size(summary: AuditSummary) -> int | None:
    v = num(summary.provenance.audit_settings.get("min_group_size"))
    return int(v) if v is not None else None


def ci_label(summary: AuditSummary) -> str:
    level = num(summary.provenance.audit_settings.get("ci_level"))
    return f"{100 * (level if level is not None else 0.95):g}%"


def metric_of(g: GroupBase | None, metric: str) -> tuple[float | None, float | None, float | None]:
    """(value, lower, upper) of ``metric`` in group ``g`` (all None: no such group or metric)."""
    m = g.metric(metric) if g is not None else Metric()
    lo, hi = ci_pair(m.ci)
    return num(m.value), lo, hi
