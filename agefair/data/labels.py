"""UTKFace's labels: file-name parsing, category names and age bins."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GENDERS = {0: "male", 1: "female"}
ETHNICITIES = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}

# {age}_{gender}_{race}_{timestamp}.jpg.chip.jpg
_STRICT = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)\.jpg\.chip\.jpg$")
# Names whose four fields are all there but the suffix is mangled (a stray space, a lost dot).
_LENIENT = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)\s*\.?jpg\.chip\.jpg$")


@dataclass(frozen=True)
class ParsedName:
    age: int
    gender: int
    race: int
    timestamp: str
    irregular: bool  # fields readable but the suffix is not the standard one


def parse_name(name: str) -> ParsedName | None:
    """Labels from a UTKFace file name, or None when a field is missing."""
    for pattern, irregular in ((_STRICT, False), (_LENIENT, True)):
        m = pattern.match(name)
        if m:
            age, gender, race, ts = m.groups()
            return ParsedName(int(age), int(gender), int(race), ts, irregular)
    return None


def age_bin_labels(edges: Sequence[int]) -> list[str]:
    """[0, 10, 70] -> ['0-9', '10-69', '70+']."""
    labels = [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])]
    return labels + [f"{edges[-1]}+"]


def age_bin_index(ages: np.ndarray | Sequence[float], edges: Sequence[int]) -> np.ndarray:
    """Index of each age's bin; ages are floored first, so 9.7 falls in 0-9."""
    floored = np.floor(np.asarray(ages, dtype=float))
    return np.clip(np.searchsorted(np.asarray(edges), floored, side="right") - 1, 0, len(edges) - 1)


def age_bin(ages: np.ndarray | Sequence[float], edges: Sequence[int]) -> np.ndarray:
    """Bin label of each age, as strings."""
    labels = np.array(age_bin_labels(edges), dtype=object)
    return labels[age_bin_index(ages, edges)]
