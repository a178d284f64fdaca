"""``StrictModel``: the base of every config section (agefair.core.config re-exports it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors; numbers written as ``1e-4`` are read as numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
