"""The base of agefair's typed results (summary.json, robustness.json): ``Record``, the number types,
and reading a dict or a file as a model with a one-line ``AgefairError`` when it is malformed.

Plain pydantic: no torch, no numpy (the report imports it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from agefair.core.errors import AgefairError


def nan_to_none(obj):
    """``obj`` with every float NaN replaced by None (JSON has no NaN)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_to_none(v) for v in obj]
    return obj


def _nan_is_none(x: Any) -> Any:
    return None if isinstance(x, float) and math.isnan(x) else x


# ints stay ints; None: not computed (a NaN is read as None, and written as null)
Num = Annotated[int | float | None, BeforeValidator(_nan_is_none)]
CI = list[Num] | None  # [lower, upper]; None where there is no interval


def none_is_empty(x: Any, empty: Any) -> Any:
    """A null part of a file reads as an empty one (for before-validators of parts the report tolerates missing)."""
    return empty if x is None else x


class Record(BaseModel):
    """Base of every result model: unknown fields are kept, dumps hold only the fields that were set."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    def to_json(self) -> dict:
        """The JSON-ready dict (as written to disk): set fields only, NaN as null."""
        return nan_to_none(self.model_dump(mode="json", exclude_unset=True))


M = TypeVar("M", bound=Record)


def _one_line(exc: ValidationError) -> str:
    e = exc.errors()[0]
    where = ".".join(str(x) for x in e["loc"] if not str(x).startswith("function-")) or "top level"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {e['msg']}{more}"


def parse(model: type[M], data: Any, source: str) -> M:
    """``data`` as ``model``; an AgefairError naming ``source`` and the first bad field when it is not one."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise AgefairError(f"{source}: not a {model.__name__} (a JSON object expected, got {type(data).__name__})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AgefairError(f"{source}: not a valid {model.__name__}: {_one_line(exc)}") from None


def load(model: type[M], path: str | Path) -> M:
    """Read ``path`` (JSON) as ``model``: an AgefairError naming the file when it cannot be read or is malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AgefairError(f"{path}: cannot be read as JSON ({type(exc).__name__})") from None
    return parse(model, data, str(path))
