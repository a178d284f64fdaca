"""Age-gate audit: how an age estimator decides at a threshold, per group (NIST FATE Age
Estimation & Verification, NIST IR 8525).

A **threshold gate** (``ThresholdGate``) has a legal age L, a challenge age C >= L and a minors
band [band_lo, L). Whoever is estimated at or over C passes unchallenged (the ``>=`` convention: an
estimate of exactly C passes); everyone else is asked for ID. Challenge-25 is L=18, C=25; a plain
18+ check is C=L. A **range gate** (``RangeGate``) asks "is this person first..last years old?":
the whole years first to last, i.e. ages in [first, last + 1) as agefair reads age groups (16 years
and 11 months is 16). Rates per group, each with n (the size of its denominator), ``small`` (n <
min_group_size) and a percentile-bootstrap interval:

- ``false_pass``: share of minors (age < L) estimated >= C; ``false_pass_band``: the same for
  minors in the band; ``false_challenge``: share of adults (age >= L) estimated < C, and
  separately of adults aged >= C (``false_challenge_over``) and aged in [L, C)
  (``false_challenge_between``; empty, NaN with n=0, when C = L);
- ``tpr``: share of people in the range estimated in it; ``fpr``: share of people outside it
  estimated in it, also for those below (``fpr_below``) and above (``fpr_above``) it;
- ``buffer``, per target t (default 1% and 5%): the smallest challenge age C, a multiple of 0.1
  year and >= L, at which the group's false-pass rate of minors is <= t. With n minors, at most
  k = floor(t * n) of them may be estimated >= C, so buffer = max(L, the smallest multiple of 0.1
  strictly greater than q), q = the (k+1)-th largest minor's estimate = the (1 - t) quantile of
  minors' estimates by the inverted CDF (numpy ``method="inverted_cdf"``: the ceil(n (1 - t))-th
  smallest). Strictly greater because an estimate equal to C passes, so ties at q all pass at C = q.
  With fewer than 1 / t minors, k = 0 and the buffer is just above the largest estimate. Estimates
  over 200 years count as 200.

Disparities (worst group, best group, difference max - min, ratio min / max, with intervals from
the same resamples) are over the groups whose n for that number is at least min_group_size; error
rates and buffers are worse when higher, ``tpr`` when lower; buffers get no ratio (NaN: a ratio of
ages means nothing; their difference, in years, is the headline).

**Curves** (threshold gates): false pass (all minors, band) and false challenge (all adults) at each
challenge age of a grid, L to L + curve_span in steps of curve_step (default 18..38 by 0.5), with
interval bands from the same resamples; ``curve_frame`` gives them as a tidy frame, which is also the
DET-style trade-off (false challenge against false pass).

**Age-group labels** (``age_lo`` / ``age_hi``, hi exclusive as agefair.data.age_groups reads them:
'10-17' is [10, 18)): a row counts as a minor only when its group lies wholly under L (hi <= L), as an
adult only when wholly at or over L (lo >= L); a group straddling L ('10-19' at 18) is excluded,
never guessed, and counted per group (``n_excluded``; also rows with a missing estimate or age). The
band, the [L, C) / >= C split and a range's inside / below / above likewise take only rows wholly
inside each part (an adult straddling C counts for ``false_challenge`` but neither split).

The bootstrap resamples all rows with replacement, as agefair.fairness.stats.metrics does; it is drawn
through cell counts (agefair.fairness.stats.gate_bootstrap), so 1,000 resamples of 200,000 rows take a
second or so and no (n_boot, n) index matrix is built.

API: ``audit_gate`` (one gate, one grouping), ``audit_gates`` (every gate x grouping), ``curve_frame``,
``summarise`` (a result as summary.json holds it: ``GateSummary``, its curves compact).
The gate and result types live in agefair.fairness.stats.gate_types and are re-exported here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd

from agefair.core.errors import AgefairError
from agefair.fairness.stats import gate_bootstrap as gb
from agefair.fairness.stats.gate_types import (  # noqa: F401  (the types, re-exported: import them from here)
    DEFAULT_GATES,
    Buffer,
    CurvePoint,
    Curves,
    Disparity,
    Gate,
    GateResult,
    GateSummary,
    GroupCurve,
    RangeGate,
    RangeGateResult,
    RangeGroup,
    Rate,
    ThresholdGate,
    ThresholdGateResult,
    ThresholdGateSummary,
    ThresholdGroup,
)
from agefair.fairness.stats.metrics import AuditSettings, _quantiles, label_kind


def threshold_spec(gate: ThresholdGate) -> gb.ThresholdSpec:
    """The gate in tenths of a year, as agefair.fairness.stats.gate_bootstrap counts it."""
    legal10, challenge10, band_lo10, grid10 = gate.in_tenths()
    return gb.ThresholdSpec(legal10, challenge10, band_lo10, gate.targets, grid10)


def _group_codes(pred: pd.DataFrame, columns: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Group names (' / '-joined values, as agefair.fairness.stats.metrics names them; 'all' without columns)
    in sorted order, and each row's group code."""
    if not columns:
        return ["all"], np.zeros(len(pred), dtype=np.int64)
    keys = pred[columns[0]].astype(str)
    for c in columns[1:]:
        keys = keys + " / " + pred[c].astype(str)
    codes, names = pd.factorize(keys, sort=True)
    return [str(x) for x in names], codes.astype(np.int64)


def _cis(reps: np.ndarray | None, shape: tuple[int, ...], s: AuditSettings) -> np.ndarray:
    """(2, *shape) interval ends from replicates (resamples first); NaN without resamples.

    As agefair.fairness.stats.metrics._quantiles (nanquantile over axis 0), but columns without a NaN go through
    one vectorised np.quantile (the same numbers; nanquantile loops over columns once any holds a NaN)."""
    if reps is None:
        return np.full((2, *shape), np.nan)
    flat = reps.reshape(reps.shape[0], -1)
    nan = np.isnan(flat)
    out = np.full((len(s.quantiles), flat.shape[1]), np.nan)
    clean, some = ~nan.any(0), nan.any(0) & ~nan.all(0)
    if clean.any():
        out[:, clean] = np.quantile(flat[:, clean], s.quantiles, axis=0)
    if some.any():
        out[:, some] = _quantiles(flat[:, some], s.quantiles)
    return out.reshape(len(s.quantiles), *reps.shape[1:])


def _pair(ci: np.ndarray) -> tuple[float, float]:
    return float(ci[0]), float(ci[1])


def _disparity(values: np.ndarray, reps: np.ndarray | None, ci: np.ndarray, ns: np.ndarray, names: list[str],
               s: AuditSettings, *, higher_is_worse: bool, ratio: bool) -> Disparity:
    ok = [j for j in range(len(names)) if ns[j] >= s.min_group_size and not np.isnan(values[j])]
    base = {"eligible_groups": len(ok), "flagged_small_groups": len(names) - len(ok)}
    if len(ok) < 2:
        return Disparity(**base)
    v = values[ok]
    hi, lo = ok[int(np.argmax(v))], ok[int(np.argmin(v))]
    worst, best = (hi, lo) if higher_is_worse else (lo, hi)
    out = base | {"worst_group": names[worst], "worst": float(values[worst]), "worst_ci": _pair(ci[:, worst]),
                  "best_group": names[best], "best": float(values[best]),
                  "difference": float(v.max() - v.min())}
    if ratio and v.max() > 0:
        out["ratio"] = float(v.min() / v.max())
    if reps is not None:
        with np.errstate(all="ignore"), warnings.catch_warnings():  # an all-NaN resample warns, and is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            top, bottom = np.nanmax(reps[:, ok], axis=1), np.nanmin(reps[:, ok], axis=1)
            out["difference_ci"] = _pair(_quantiles(top - bottom, s.quantiles))
            if ratio:
                out["ratio_ci"] = _pair(_quantiles(bottom / top, s.quantiles))
    return Disparity(**out)


def _rates(values: np.ndarray, reps: np.ndarray | None, ns: np.ndarray, names: list[str], s: AuditSettings, *,
           higher_is_worse: bool = True, target: float | None = None) -> tuple[list[Rate], Disparity]:
    """Each group's rate (a ``Buffer`` when ``target`` is given) with its interval, and their disparity."""
    ci = _cis(reps, values.shape, s)
    kind, extra = (Rate, {}) if target is None else (Buffer, {"target": target})
    rates = [kind(value=float(values[j]), ci=_pair(ci[:, j]), n=int(ns[j]), small=bool(ns[j] < s.min_group_size),
                  **extra) for j in range(len(names))]
    return rates, _disparity(values, reps, ci, ns, names, s, higher_is_worse=higher_is_worse, ratio=target is None)


def _curve(spec: gb.ThresholdSpec, point: dict, reps: dict, ns: dict, names: list[str],
           s: AuditSettings) -> tuple[CurvePoint, ...]:
    keys = ("false_pass", "false_pass_band", "false_challenge")
    vals = {k: point[f"curve_{k}"] for k in keys}
    cis = {k: _cis(reps.get(f"curve_{k}"), vals[k].shape, s) for k in keys}
    return tuple(
        CurvePoint(group=name, challenge_age=c10 / 10, n_minors=int(ns["false_pass"][g]),
                   n_band=int(ns["false_pass_band"][g]), n_adults=int(ns["false_challenge"][g]),
                   **{k: float(vals[k][g, i]) for k in keys}, **{f"{k}_ci": _pair(cis[k][:, g, i]) for k in keys})
        for g, name in enumerate(names) for i, c10 in enumerate(spec.grid10))


def _cells(pred: pd.DataFrame, gate: ThresholdGate | RangeGate, kind: str, codes: np.ndarray, n_groups: int):
    """The gate's cell counts, the function of counts that gives its rates, the class of rows it cannot
    place, and each rate's denominator per group."""
    p = pred["pred"].to_numpy(float)
    truth = ({"age": pred["age"].to_numpy(float)} if kind == "exact"
             else {"lo": pred["age_lo"].to_numpy(float), "hi": pred["age_hi"].to_numpy(float)})
    if isinstance(gate, RangeGate):
        classes = np.where(np.isnan(p), gb.R_UNPLACED, gb.range_classes(gate.first, gate.last, **truth))
        cells = gb.range_cells(gate.first, gate.last, classes, p, codes, n_groups)
        n = cells.sum(-1)
        ns = {"tpr": n[:, gb.INSIDE], "fpr": n[:, gb.BELOW] + n[:, gb.ABOVE], "fpr_below": n[:, gb.BELOW],
              "fpr_above": n[:, gb.ABOVE]}
        return cells, gb.range_stats, gb.R_UNPLACED, ns
    spec = threshold_spec(gate)
    classes = np.where(np.isnan(p), gb.UNPLACED, gb.threshold_classes(spec, **truth))
    cells = gb.threshold_cells(spec, classes, p, codes, n_groups)
    ns = {"false_pass": cells[:, list(gb.MINORS)].sum((1, 2)), "false_pass_band": cells[:, gb.BAND].sum(-1),
          "false_challenge": cells[:, list(gb.ADULTS)].sum((1, 2)), "false_challenge_over": cells[:, gb.OVER].sum(-1),
          "false_challenge_between": cells[:, gb.BETWEEN].sum(-1)}
    return cells, partial(gb.threshold_stats, spec), gb.UNPLACED, ns


def audit_gate(pred: pd.DataFrame, *, gate: ThresholdGate | RangeGate, columns: Sequence[str] = (),
               grouping: str | None = None, settings: AuditSettings = AuditSettings(), curves: bool = True
               ) -> ThresholdGateResult | RangeGateResult:
    """One gate's rates per group of ``columns`` (none: one group 'all'), with intervals and disparities.

    ``pred``: a row per image with ``pred`` and ``age`` (exact) or ``age_lo`` / ``age_hi`` (age groups),
    and the group columns. ``grouping``: the name reported (default: the columns joined by ' x ', or
    'overall'). The resamples are drawn from ``settings.seed``: the same seed gives the same numbers.
    ``curves=False``: a threshold gate's ``curve`` is left empty (its intervals are most of the work)."""
    kind = label_kind(pred)
    need = ["pred", *columns, *(["age"] if kind == "exact" else ["age_lo", "age_hi"])]
    if missing := [c for c in need if c not in pred.columns]:
        raise AgefairError(f"gate {gate.name!r}: predictions lack column(s) {', '.join(missing)}")
    names, codes = _group_codes(pred, columns)
    cells, stats, unplaced, ns = _cells(pred, gate, kind, codes, len(names))
    point = {k: v[0] for k, v in stats(cells[None]).items()}
    reps = gb.bootstrap_cells(cells, stats, n_boot=settings.n_boot, seed=settings.seed)
    n_rows, n_out = cells.sum((1, 2)), cells[:, unplaced].sum(-1)
    rows = [{"group": g, "n_rows": int(n_rows[j]), "n_kept": int(n_rows[j] - n_out[j]), "n_excluded": int(n_out[j])}
            for j, g in enumerate(names)]
    disparities = {}
    for name, n in ns.items():
        rates, disparities[name] = _rates(point[name], reps.get(name), n, names, settings,
                                          higher_is_worse=name != "tpr")
        for row, rate in zip(rows, rates):
            row[name] = rate
    common = {"grouping": grouping or (" x ".join(columns) or "overall"), "columns": tuple(columns),
              "labels": kind, "n_boot": settings.n_boot, "ci_level": settings.ci_level,
              "min_group_size": settings.min_group_size, "gate": gate}
    if isinstance(gate, RangeGate):
        return RangeGateResult(**common, groups=tuple(RangeGroup(**r) for r in rows), disparities=disparities)
    buffers = []
    for i, t in enumerate(gate.targets):
        b_reps = reps["buffer"][:, :, i] if reps else None
        rates, disparities[f"buffer_{t:g}"] = _rates(point["buffer"][:, i], b_reps, ns["false_pass"], names,
                                                     settings, target=t)
        buffers.append(rates)
    groups = tuple(ThresholdGroup(**r, buffers=tuple(b[j] for b in buffers)) for j, r in enumerate(rows))
    return ThresholdGateResult(**common, groups=groups, disparities=disparities,
                               curve=_curve(threshold_spec(gate), point, reps, ns, names, settings) if curves else ())


def audit_gates(pred: pd.DataFrame, *, groupings: dict[str, Sequence[str]],
                gates: Sequence[ThresholdGate | RangeGate] = DEFAULT_GATES,
                settings: AuditSettings = AuditSettings(), curves_up_to: int | None = None
                ) -> list[ThresholdGateResult | RangeGateResult]:
    """``audit_gate`` for every gate and every grouping whose columns ``pred`` has ({} or a grouping
    with no columns: one group 'all'); curves only for groupings of at most ``curves_up_to`` columns
    (None: all)."""
    return [audit_gate(pred, gate=g, columns=cols, grouping=name, settings=settings,
                       curves=curves_up_to is None or len(cols) <= curves_up_to)
            for g in gates for name, cols in groupings.items() if all(c in pred.columns for c in cols)]


AGE_COLUMNS = ("age_bin", "age_group", "shot")  # groupings by age (or by how common an age is): not a gate's groups


def gate_summaries(pred: pd.DataFrame, *, groupings: dict[str, Sequence[str]],
                   gates: Sequence[ThresholdGate | RangeGate] = DEFAULT_GATES,
                   settings: AuditSettings = AuditSettings()) -> list[dict]:
    """The gates as an audit's ``gates`` holds them (summary.json, NaN left in): over the overall group and
    every grouping of sensitive attributes (never one by age: a gate's groups are people, its ages the
    question); curves for the overall group and one-attribute groupings only (summary.json stays small)."""
    chosen = {"overall": [], **{k: list(c) for k, c in groupings.items()
                                if k != "overall" and not set(c) & set(AGE_COLUMNS)}}
    return [summarise(r).model_dump(mode="json")
            for r in audit_gates(pred, groupings=chosen, gates=gates, settings=settings, curves_up_to=1)]


def curve_frame(result: ThresholdGateResult) -> pd.DataFrame:
    """The curves as a tidy frame: a row per (group, challenge_age) with false_pass, false_pass_band and
    false_challenge, each with _lo / _hi interval ends, and n_minors, n_band, n_adults. Plot false_challenge
    against false_pass for the DET-style trade-off."""
    rows = []
    for pt in result.curve:
        row = pt.model_dump()
        for k in ("false_pass", "false_pass_band", "false_challenge"):
            row[f"{k}_lo"], row[f"{k}_hi"] = row.pop(f"{k}_ci")
        rows.append(row)
    return pd.DataFrame(rows).assign(gate=result.gate.name, grouping=result.grouping)


CURVE_RATES = ("false_pass", "false_pass_band", "false_challenge")


def _rounded(values, digits: int) -> tuple[float, ...]:
    return tuple(float(round(v, digits)) if not np.isnan(v) else float("nan") for v in values)


def summarise(result: ThresholdGateResult | RangeGateResult, *, digits: int = 4
              ) -> ThresholdGateSummary | RangeGateResult:
    """``result`` as summary.json holds it: a threshold gate's curves compact (``Curves``: the grid once,
    a column per rate, rounded to ``digits``; None when the result has none)."""
    if isinstance(result, RangeGateResult):
        return result
    compact = None
    if result.curve:
        ages = tuple(dict.fromkeys(p.challenge_age for p in result.curve))
        by_group: dict[str, list[CurvePoint]] = {}
        for p in result.curve:
            by_group.setdefault(p.group, []).append(p)
        groups = []
        for g, pts in by_group.items():
            cols = {}
            for k in CURVE_RATES:
                cols[k] = _rounded([getattr(p, k) for p in pts], digits)
                cols[f"{k}_lo"] = _rounded([getattr(p, f"{k}_ci")[0] for p in pts], digits)
                cols[f"{k}_hi"] = _rounded([getattr(p, f"{k}_ci")[1] for p in pts], digits)
            groups.append(GroupCurve(group=g, n_minors=pts[0].n_minors, n_band=pts[0].n_band, n_adults=pts[0].n_adults,
                                     **cols))
        compact = Curves(challenge_ages=ages, groups=tuple(groups))
    fields = {k: getattr(result, k) for k in ThresholdGateSummary.model_fields if k not in ("curves",)}
    return ThresholdGateSummary(**fields, curves=compact)
