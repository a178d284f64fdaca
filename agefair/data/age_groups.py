"""Age-group labels read as intervals of years: '20-29', '70+', FairFace's '0-2' ... 'more than 70'.

A group of whole years ``A-B`` covers every age from A up to (not including) B + 1: someone of
29 years and 11 months is in '20-29', so a prediction of 29.7 is inside it and 30.2 is 0.2 years
outside it. An open group ``A+`` has no upper end.

Recognised spellings (case and spaces do not matter):

==========================  ======================  =====================================
label                       interval (years)        canonical label
==========================  ======================  =====================================
``20-29``, ``20–29``,       [20, 30)                ``20-29``
``20 to 29``
``70+``, ``70 and over``,   [70, ∞)                 ``70+``
``70 or older``, ``>=70``
``more than 70``,           [70, ∞)                 ``70+``
``over 70``
``under 3``, ``below 3``,   [0, 3)                  ``0-2``
``<3``
``25``                      [25, 26)                ``25-25``
==========================  ======================  =====================================

``more than N`` is read as *N and older*: FairFace's last group 'more than 70' follows its '60-69',
so it holds the 70-year-olds. Any other spelling can be mapped to one of these in the dataset
config (``age_group_labels: {senior: 65+}``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

MAX_AGE = 150


@dataclass(frozen=True)
class AgeGroup:
    lo: float  # first year in the group
    hi: float  # first year after it (math.inf for an open group)
    label: str  # canonical label: '20-29' or '70+'


_NUM = r"(\d{1,3})"
_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(rf"^{_NUM}\s*(?:-|–|—|to)\s*{_NUM}$"), "range"),
    (re.compile(rf"^{_NUM}\s*\+$"), "open"),
    (re.compile(rf"^{_NUM}\s+(?:and|or)\s+(?:over|older|above|up)$"), "open"),
    (re.compile(rf"^(?:>=|≥)\s*{_NUM}$"), "open"),
    (re.compile(rf"^(?:more than|over|older than)\s+{_NUM}$"), "open"),
    (re.compile(rf"^(?:under|below|younger than|less than)\s+{_NUM}$"), "under"),
    (re.compile(rf"^<\s*{_NUM}$"), "under"),
    (re.compile(rf"^{_NUM}$"), "single"),
]


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).strip().lower())


def parse_age_group(text: str, aliases: Mapping[str, str] | None = None) -> AgeGroup | None:
    """The interval of an age-group label, or None when the label is not understood.

    ``aliases`` maps other labels (matched without regard to case and spacing) to a recognised one.
    """
    key = _normalise(text)
    if aliases:
        lookup = {_normalise(k): v for k, v in aliases.items()}
        if key in lookup:
            key = _normalise(lookup[key])
    for pattern, kind in _PATTERNS:
        m = pattern.match(key)
        if not m:
            continue
        a = int(m.group(1))
        if kind == "range":
            b = int(m.group(2))
            if b < a or b > MAX_AGE:
                return None
            return AgeGroup(float(a), float(b + 1), f"{a}-{b}")
        if a > MAX_AGE:
            return None
        if kind == "open":
            return AgeGroup(float(a), math.inf, f"{a}+")
        if kind == "under":
            return AgeGroup(0.0, float(a), f"0-{a - 1}") if a >= 1 else None
        return AgeGroup(float(a), float(a + 1), f"{a}-{a}")
    return None


def interval_error(lo: np.ndarray, hi: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Signed distance in years from each prediction to its interval [lo, hi]: 0 inside, + above, - below."""
    lo, hi, pred = (np.asarray(x, dtype=float) for x in (lo, hi, pred))
    return np.where(pred < lo, pred - lo, np.where(pred > hi, pred - hi, 0.0))
