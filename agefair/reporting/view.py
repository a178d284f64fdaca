"""Read-only views of a summary for the report: variants, audits, groups, label kind.

Every look-up tolerates a partial summary (missing keys read as empty).
"""

from __future__ import annotations

from agefair.fairness.specs import AGE_GROUPINGS, LABEL_KINDS
from agefair.reporting.format import as_dict, as_list, ci_pair, natural_key, num


def variant_names(summary: dict) -> list[str]:
    names = list(as_dict(summary.get("variants")))
    for row in as_list(summary.get("leaderboard")):
        if isinstance(row, dict) and row.get("variant") is not None and str(row["variant"]) not in names:
            names.append(str(row["variant"]))
    return names


def audit_of(summary: dict, variant: str) -> dict:
    return as_dict(as_dict(as_dict(summary.get("variants")).get(variant)).get("audit"))


def grouping_of(summary: dict, variant: str, grouping: str) -> dict:
    return as_dict(as_dict(audit_of(summary, variant).get("groupings")).get(grouping))


def groups_by_name(summary: dict, variant: str, grouping: str) -> dict[str, dict]:
    return {str(g.get("group")): g for g in as_list(grouping_of(summary, variant, grouping).get("groups"))
            if isinstance(g, dict)}


def ordered_groups(summary: dict, variants: list[str], grouping: str) -> tuple[list[str], set[str]]:
    """Every group of ``grouping`` over the variants (natural order) and the set flagged small."""
    names: list[str] = []
    small: set[str] = set()
    for v in variants:
        for name, g in groups_by_name(summary, v, grouping).items():
            if name not in names:
                names.append(name)
            if g.get("small"):
                small.add(name)
    return sorted(names, key=natural_key), small


def label_kind(summary: dict) -> str:
    """'interval' when the audited data has age-group labels (summary's dataset, else the audits), else 'exact'."""
    kind = as_dict(summary.get("dataset")).get("labels")
    if kind in LABEL_KINDS:
        return kind
    audits = [audit_of(summary, v) for v in variant_names(summary)]
    return "interval" if audits and all(a.get("labels") == "interval" for a in audits) else "exact"


def chart_groupings(summary: dict, variants: list[str]) -> list[tuple[str, bool, bool]]:
    """(grouping, heat map?, half width?) for each grouping of the audits but shot, in the audits' order:
    age, the attributes, then intersections (an age x attribute intersection as a heat map)."""
    out: list[tuple[str, bool, bool]] = []
    for v in variants:
        for name, g in as_dict(audit_of(summary, v).get("groupings")).items():
            if name == "shot" or name in [o[0] for o in out]:
                continue
            cols = [str(c) for c in as_list(as_dict(g).get("columns"))] or str(name).split(" x ")
            heat = len(cols) == 2 and cols[0] in AGE_GROUPINGS
            half = len(cols) == 1 and cols[0] not in AGE_GROUPINGS
            out.append((str(name), heat, half))
    return out


def min_group_size(summary: dict) -> int | None:
    v = num(as_dict(as_dict(summary.get("provenance")).get("audit_settings")).get("min_group_size"))
    return int(v) if v is not None else None


def ci_label(summary: dict) -> str:
    level = num(as_dict(as_dict(summary.get("provenance")).get("audit_settings")).get("ci_level"))
    return f"{100 * (level if level is not None else 0.95):g}%"


def metric_of(g: dict, metric: str) -> tuple[float | None, float | None, float | None]:
    m = as_dict(g.get(metric))
    lo, hi = ci_pair(m.get("ci"))
    return num(m.get("value")), lo, hi

