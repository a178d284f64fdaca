"""Parts of summary.json that describe where the numbers come from (agefair.fairness.results.summary re-exports
them): the audited dataset, a variant's training record and image coverage, the data-quality and split
summary, provenance. Plain pydantic: no torch, no numpy."""

from __future__ import annotations

from typing import Any, Literal

from agefair.fairness.results.record import Num, Record


class Dataset(Record):
    name: str | None = None
    kind: str | None = None
    path: str | None = None
    labels: Literal["exact", "interval"] | None = None
    attributes: list[str] = []
    groupings: list[str] = []
    manifest_hash: str | None = None
    split: str | None = None
    images_in_split: int | None = None
    aligned: str | None = None
    detector: str | None = None
    skipped: list[str] = []  # parts of the audit this data cannot have, each with why (a table: no images)


class Training(Record):
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    epoch: int | None = None
    val_mae: Num = None
    config: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    history: list[dict[str, Any]] = []


class Coverage(Record):
    images_in_split: int | None = None
    predicted: int | None = None
    faces: dict[str, int] = {}


class DataInfo(Record):
    quality: dict[str, Any] = {}
    split: dict[str, Any] = {}
    split_text: str = ""


class Provenance(Record):
    data_dir: str | None = None
    manifest_hash: str | None = None
    split_seed: int | None = None
    split: str | None = None
    thresholds_file: str | None = None
    audit_settings: dict[str, Any] = {}
    git_commit: str | None = None
    git_dirty: bool | None = None
    versions: dict[str, Any] = {}
    command: str | None = None
    reproduce: str | None = None
    device: str | None = None
    precision: str | None = None
    torch_threads: int | None = None
    platform: str | None = None
    data_config: dict[str, Any] = {}
    engine: str | None = None  # where the keyed bootstrap ran: in-process, or dask (its cluster and workers)
