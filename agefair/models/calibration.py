"""A run's conformal calibration, ``runs/<variant>/calibration.json`` (models.runs.CALIBRATION): the
marginal calibrator and one Mondrian calibrator per configured grouping (agefair.models.conformal),
fitted on the validation split's predictions of the run's best checkpoint, never on test rows.

``python -m agefair.train`` writes it when training ends; the audit writes it for runs trained
before it existed and refits it in memory when its settings differ from fairness.yaml's
``conformal:`` section. ``predict``, ``video`` and the ONNX export use the marginal calibrator:
a person's group is not known at prediction time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from agefair.core.conformal_config import ConformalSettings
from agefair.core.errors import AgefairError
from agefair.core.io import read_text, write_json_atomic
from agefair.models.conformal import Calibration, Intervals, calibrate, predict_intervals, validated

MARGINAL = "marginal"


def interval_head(head: str, loss: str) -> str:
    """The head a calibration treats the model as: ``expectation`` only when its softmax over ages was
    trained as a distribution (cross-entropy), so that its spread σ̂ means something; a model trained with
    the Balanced MSE loss on its expected age (train.loss: bmse) has a softmax whose spread is no
    uncertainty, and is calibrated like a regression head (abs score)."""
    return "expectation" if head == "expectation" and loss != "bmse" else "regression"


class RunCalibration(BaseModel):
    """Every calibrator of one checkpoint, with what it was fitted on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    checkpoint_sha256: str
    manifest_hash: str | None  # the data whose validation split calibrated it
    split: Literal["val"] = "val"
    head: Literal["expectation", "regression"]  # as interval_head() says: expectation = a trained distribution
    coverage: float
    created: str
    marginal: Calibration
    mondrian: dict[str, Calibration] = {}

    def matches(self, settings: ConformalSettings) -> bool:
        """Whether this calibration is what ``settings`` asks for (else the audit refits it)."""
        m = self.marginal
        return (abs(m.alpha - settings.alpha) < 1e-9 and m.score == settings.score_for(self.head)
                and m.min_calibration_size == settings.min_calibration_size
                and abs(m.sigma_floor - settings.sigma_floor) < 1e-9 and set(settings.mondrian) <= set(self.mondrian))

    @property
    def methods(self) -> list[str]:
        return [MARGINAL, *self.mondrian]

    def calibrator(self, method: str) -> Calibration:
        return self.marginal if method == MARGINAL else self.mondrian[method]

    def intervals(self, *, pred, sigma=None, method: str = MARGINAL, groups=None) -> Intervals:
        """Intervals for new rows (no labels): ``groups`` (each row's group of ``method``) for a Mondrian one."""
        cal = self.calibrator(method)
        return predict_intervals(cal, pred=pred, sigma=sigma if cal.score == "scaled" else None,
                                 groups=groups if method != MARGINAL else None)

    def to_json(self) -> dict:
        return self.model_dump(mode="json")


def fit_run_calibration(*, y, pred, sigma, groups: Mapping[str, object], settings: ConformalSettings, head: str,
                        max_age: int, checkpoint_sha256: str, manifest_hash: str | None) -> RunCalibration:
    """Calibrate on validation rows: true ages ``y``, predictions ``pred``, spreads ``sigma`` (the
    expectation head's; ignored for the abs score) and each Mondrian grouping's labels in ``groups``.
    A Mondrian grouping whose labels are not given, or whose rows lack a label, is left out."""
    score = settings.score_for(head)
    common = dict(y=y, pred=pred, score=score, sigma=sigma if score == "scaled" else None, alpha=settings.alpha,
                  min_calibration_size=settings.min_calibration_size, max_age=max_age,
                  sigma_floor=settings.sigma_floor)
    marginal = calibrate(**common)
    mondrian = {}
    for name in settings.mondrian:
        labels = groups.get(name)
        if labels is None or any(v is None or v != v for v in np.asarray(labels, dtype=object)):
            continue
        mondrian[name] = calibrate(**common, groups=labels, grouping=name)
    return RunCalibration(checkpoint_sha256=checkpoint_sha256, manifest_hash=manifest_hash, head=head,
                          coverage=settings.coverage, marginal=marginal, mondrian=mondrian,
                          created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))


def save_run_calibration(calibration: RunCalibration, path: str | Path) -> None:
    write_json_atomic(path, calibration.to_json())


def load_run_calibration(path: str | Path) -> RunCalibration:
    """A calibration.json; a one-line AgefairError naming the file when it is unreadable or malformed."""
    path = Path(path)
    try:
        data = json.loads(read_text(path, "calibration"))
    except ValueError as exc:
        raise AgefairError(f"{path}: not JSON ({str(exc).splitlines()[0][:120]})") from None
    return validated(RunCalibration, data, str(path))
