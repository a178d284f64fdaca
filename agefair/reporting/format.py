"""Number and text formatting for the report: missing numbers (None, NaN, infinities) read as '–'.

Plain functions of plain values (no plotly, no jinja2), shared by the report's charts, sections and
robustness section, and registered as the template's filters.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

MISSING = "–"
SHOT_ORDER = ["many", "medium", "few"]
GROUPING_TITLES = {
    "overall": "overall", "age_bin": "age bin", "gender": "gender", "ethnicity": "ethnicity",
    "gender x ethnicity": "gender × ethnicity", "age_bin x ethnicity": "age bin × ethnicity",
    "shot": "many/medium/few-shot",
}
JUDGE_TITLES = {"point": "estimate", "ci_lower": "lower bound", "ci_upper": "upper bound"}


def num(x: Any) -> float | None:
    """``x`` as a finite float, or None for None, NaN, infinities and anything non-numeric."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(x: Any, digits: int = 2) -> str:
    v = num(x)
    return MISSING if v is None else f"{v:.{digits}f}"


def fmt_signed(x: Any, digits: int = 2) -> str:
    v = num(x)
    return MISSING if v is None else f"{v:+.{digits}f}"


def fmt_pct(x: Any, digits: int = 1) -> str:
    v = num(x)
    return MISSING if v is None else f"{100 * v:.{digits}f}%"


def ci_pair(ci: Any) -> tuple[float | None, float | None]:
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return num(ci[0]), num(ci[1])
    return None, None


def fmt_ci(ci: Any, digits: int = 2, pct: bool = False) -> str:
    lo, hi = ci_pair(ci)
    if lo is None or hi is None:
        return MISSING
    if pct:
        return f"[{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]%"
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def fmt_int(x: Any) -> str:
    v = num(x)
    return MISSING if v is None else f"{int(round(v)):,}"


def fmt_seconds(x: Any) -> str:
    v = num(x)
    if v is None:
        return MISSING
    return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"


def fmt_text(x: Any) -> str:
    return MISSING if x is None or (isinstance(x, float) and math.isnan(x)) or x == "" else str(x)


def as_yaml(obj: Any) -> str:
    """Readable YAML for configs and settings (JSON if PyYAML is missing or refuses the object)."""
    try:
        import yaml

        return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
    except Exception:  # noqa: BLE001 - any object PyYAML cannot represent falls back to JSON
        return json.dumps(obj, indent=2, default=str)


def plot_text(text: Any) -> str:
    """Text for plotly labels: plotly reads a small HTML subset, so escape it (entities display as-is)."""
    return html.escape(str(text), quote=False)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def natural_key(label: str) -> tuple:
    """Order groups naturally: numeric prefixes as numbers ('5-9' before '10-19'), shot labels many→few."""
    key = []
    for part in str(label).split(" / "):
        if part in SHOT_ORDER:
            key.append((0, SHOT_ORDER.index(part), ""))
            continue
        m = re.match(r"\s*(\d+(?:\.\d+)?)", part)
        key.append((1, float(m.group(1)), part) if m else (2, 0.0, part))
    return tuple(key)


def grouping_title(grouping: str) -> str:
    return GROUPING_TITLES.get(grouping, str(grouping).replace(" x ", " × ").replace("_", " "))
