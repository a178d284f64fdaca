"""``--compare-to OLD/summary.json``: the regression gate against a previous audit of the same data.

``load_previous`` reads OLD's summary.json (through symlinks: an audit publishes
``reports/summary.json -> .published/current/summary.json``, and the predictions.csv beside the
resolved file is the one of the same generation) and refuses, in one line, when the file or its
predictions.csv is missing or unreadable. ``check_same_data`` refuses when the data manifest hash,
the split or the kind of labels differ. ``compare_to`` then compares, for every model in both audits,
the new predictions with the old ones on the same rows (matched by file and model name): paired
differences new - old of the overall metric, each grouping's gap / worst group / age-bin spread and
each group's metric (agefair.fairness.stats.compare), each table Benjamini-Hochberg adjusted. Rules with
``statistic: change`` judge them (agefair.fairness.auditing.thresholds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from agefair.core.decision_config import ComparisonSettings
from agefair.core.errors import AgefairError
from agefair.fairness.auditing.decisions import SUBJECT, _grouping_arrays, _labels, _row
from agefair.fairness.results.result import AuditSummary, load_summary
from agefair.fairness.stats.compare import adjust_bh, compare_models
from agefair.fairness.stats.metrics import AuditSettings

PREVIOUS = " (previous)"


@dataclass(frozen=True)
class Previous:
    path: Path  # as given
    resolved: Path  # the summary.json it points to
    summary: AuditSummary
    predictions: pd.DataFrame  # file, variant, pred


def load_previous(path: str | Path) -> Previous:
    """OLD's summary and the predictions.csv beside it (AgefairError, one line, when either cannot be read)."""
    given = Path(path)
    target = given / "summary.json" if given.is_dir() else given
    resolved = target.resolve()
    if not resolved.is_file():
        raise AgefairError(f"--compare-to {given}: no summary.json there")
    summary = load_summary(resolved)
    csv = resolved.parent / "predictions.csv"
    try:
        preds = pd.read_csv(csv)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise AgefairError(f"--compare-to {given}: {csv} (the previous audit's predictions) is missing or unreadable "
                           f"({type(exc).__name__})") from None
    missing = {"file", "variant", "pred"} - set(preds.columns)
    if missing:
        raise AgefairError(f"--compare-to {given}: {csv} has no {', '.join(sorted(missing))} column")
    return Previous(given, resolved, summary, preds)


def check_same_data(previous: Previous, *, manifest_hash: str, labels: str, split: str | None = None) -> None:
    """AgefairError (one line) unless the previous audit audited the same data, split and kind of labels."""
    d = previous.summary.dataset
    old = {"data manifest hash": d.manifest_hash or previous.summary.provenance.manifest_hash,
           "kind of labels": d.labels, "split": d.split or previous.summary.split}
    new = {"data manifest hash": manifest_hash, "kind of labels": labels, "split": split}
    for what in old:
        if new[what] is not None and old[what] != new[what]:
            raise AgefairError(f"--compare-to {previous.path}: the previous audit's {what} ({old[what]}) differs from "
                               f"this audit's ({new[what]}); compare audits of the same data")


# long: matches each model's rows, one compare_models per model, then one BH family per table
def compare_to(previous: Previous, preds: Mapping[str, pd.DataFrame], *, groupings: Mapping[str, list[str]],
               settings: AuditSettings, config: ComparisonSettings) -> dict:
    """summary.compare_to: per model in both audits, new - old on the rows both predicted."""
    old = previous.predictions
    both = [m for m in preds if m in set(old["variant"].astype(str))]
    main, matched = [], {}
    for m in both:
        prev = old[old["variant"].astype(str) == m].drop_duplicates("file").set_index("file")["pred"]
        frame = preds[m][preds[m]["file"].isin(prev.index)].reset_index(drop=True)
        matched[m] = {"rows": int(len(frame)), "new_rows": int(len(preds[m])), "old_rows": int(len(prev))}
        if len(frame) == 0:
            continue
        labels = _labels(frame)
        cluster = frame[SUBJECT].to_numpy() if SUBJECT in frame.columns else None
        main += compare_models(pred_a=prev.reindex(frame["file"]).to_numpy(float),
                               pred_b=frame["pred"].to_numpy(float), groupings=_grouping_arrays(frame, groupings),
                               cluster=cluster, settings=settings, names=(m + PREVIOUS, m),
                               age_grouping="age_bin" if "age" in labels else None, n_perm=config.n_perm, **labels)
    tables = {}
    for table, pick in (("overall", lambda c: c.criterion != "group"), ("groups", lambda c: c.criterion == "group")):
        rows = [c for c in main if pick(c)]
        tables[table] = [_row(c, table, config) for c in (adjust_bh(rows) if config.n_perm else rows)]
    return {"path": str(previous.path), "resolved": str(previous.resolved), "generated": previous.summary.generated,
            "models": both, "only_new": [m for m in preds if m not in both],
            "only_previous": sorted(set(old["variant"].astype(str)) - set(preds)), "matched": matched,
            "level": settings.ci_level, "n_boot": settings.n_boot, "n_perm": config.n_perm, **tables}
