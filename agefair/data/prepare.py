"""From a data folder to a clean, split manifest: scan -> quality policy -> split.

Every command that needs the data (eda, train, audit) starts here, so they all see the same files,
the same labels and the same split. The data is a UTKFace folder (labels in the file names) or a
labels CSV (agefair.data.csv_dataset: the CSV itself, or a folder holding labels.csv).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agefair.core.config import DataConfig, DatasetConfig
from agefair.core.errors import AgefairError
from agefair.core.paths import GET_UTKFACE, resolve_work_dir
from agefair.data.csv_dataset import (
    assess_csv,
    dataset_groupings,
    labels_csv,
    read_labels,
)
from agefair.data.quality import QualityResult, assess, report_dict
from agefair.data.scan import scan_folder
from agefair.data.split import load_or_make_split
from agefair.data.table import TableData


@dataclass
class PreparedData:
    data_dir: Path
    work_dir: Path  # derived files for this data folder (scan cache, split, image caches)
    manifest: pd.DataFrame  # kept files with labels and a `split` column
    quality: QualityResult
    quality_report: dict
    split_meta: dict
    kind: str = "utkface"  # or "csv", or "table" (labels and predictions, no images: agefair.data.table)
    source: Path | None = None  # the labels CSV of a CSV dataset
    name: str = "UTKFace"
    labels: str = "exact"  # exact ages, or "interval": age groups (age_group, age_lo, age_hi)
    attributes: list[str] = field(default_factory=lambda: ["gender", "ethnicity"])
    groupings: dict[str, list[str]] | None = None  # None: UTKFace's (agefair.fairness.stats.metrics.GROUPINGS)
    aligned: str = "yes"  # whether images are aligned face crops: yes | no | auto (per image)
    detector: str = "hog"

    @property
    def age_key(self) -> str:
        """The age grouping column: age_bin (exact ages) or age_group (age-group labels)."""
        return "age_group" if self.labels == "interval" else "age_bin"

    @property
    def data_hash(self) -> str:
        return self.quality.data_hash

    def split(self, name: str) -> pd.DataFrame:
        return self.manifest[self.manifest["split"] == name].reset_index(drop=True)


def dataset_work_dir(data_dir: Path, work_root: str | Path | None = None) -> Path:
    """``.agefair/<folder name>-<hash of its absolute path>/``: one place per data folder."""
    key = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:8]
    path = resolve_work_dir(work_root) / f"{data_dir.resolve().name}-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class DataRequest:
    """What to prepare: the data folder (or labels CSV), its configs, the split and where derived files go.

    Commands build one from their arguments (agefair.cli.args.data_request_from_args); library code that
    prepares the data itself (agefair.training.trainer.train_all) takes one."""

    data_dir: Path
    data_cfg: DataConfig
    split_seed: int | None = None  # None: the data config's
    resplit: bool = False
    work_root: str | Path | None = None  # None: $AGEFAIR_WORK, else .agefair
    progress: bool = True
    dataset_cfg: DatasetConfig | None = None  # how a labels CSV's columns are read
    dataset_cfg_source: str | None = None

    def prepare(self) -> PreparedData:
        return prepare(self.data_dir, self.data_cfg, seed=self.split_seed, resplit=self.resplit,
                       work_root=self.work_root, progress=self.progress, dataset_cfg=self.dataset_cfg,
                       dataset_cfg_source=self.dataset_cfg_source)


def prepare(data_dir: Path, cfg: DataConfig, seed: int | None = None, resplit: bool = False,
            work_root: str | Path | None = None, progress: bool = True,
            dataset_cfg: DatasetConfig | None = None, dataset_cfg_source: str | None = None) -> PreparedData:
    csv_path = labels_csv(data_dir)
    if csv_path is not None:
        return prepare_csv(csv_path, cfg, dataset_cfg or DatasetConfig(), seed, resplit, work_root, progress,
                           dataset_cfg_source or "dataset config")
    work_dir = dataset_work_dir(data_dir, work_root)
    scan = scan_folder(data_dir, cache_file=work_dir / "scan.csv", progress=progress)
    if scan.empty:
        raise AgefairError(f"data folder {data_dir} has no files; {GET_UTKFACE}")
    quality = assess(scan, cfg)
    if quality.manifest.empty:
        raise AgefairError(f"data folder {data_dir}: none of its {len(scan)} files is a usable "
                           f"UTKFace image ({{age}}_{{gender}}_{{race}}_{{timestamp}}.jpg.chip.jpg); {GET_UTKFACE}")
    manifest, split_meta = load_or_make_split(quality.manifest, quality.data_hash, cfg, work_dir,
                                              seed=seed, resplit=resplit)
    return PreparedData(data_dir, work_dir, manifest, quality, report_dict(quality, str(data_dir)), split_meta)


def prepare_csv(csv_path: Path, cfg: DataConfig, ds: DatasetConfig, seed: int | None = None, resplit: bool = False,
                work_root: str | Path | None = None, progress: bool = True,
                ds_source: str = "dataset config") -> PreparedData:
    """A labels CSV: rows read and checked, images scanned, duplicates resolved, then the same seeded split."""
    work_dir = dataset_work_dir(csv_path, work_root)
    labels = read_labels(csv_path, ds, cfg.max_age)
    if labels.n_rows == 0:
        raise AgefairError(f"{csv_path}: no rows under the header")
    quality = assess_csv(csv_path, labels, cfg, work_dir / "scan.csv", progress)
    if quality.manifest.empty:
        first = quality.problems.iloc[0] if len(quality.problems) else None
        why = f" (first problem: {first['file']}: {first['detail']})" if first is not None else ""
        raise AgefairError(f"{csv_path}: none of its {labels.n_rows} rows is usable{why}")
    manifest, split_meta = load_or_make_split(quality.manifest, quality.data_hash, cfg, work_dir, seed=seed,
                                              resplit=resplit, attributes=labels.attributes)
    age_key = "age_group" if labels.labels == "interval" else "age_bin"
    groupings = dataset_groupings(age_key, labels.attributes, ds.intersections, ds_source)
    return PreparedData(csv_path.parent, work_dir, manifest, quality, report_dict(quality, str(csv_path)), split_meta,
                        kind="csv", source=csv_path, name=ds.name or csv_path.name, labels=labels.labels,
                        attributes=labels.attributes, groupings=groupings, aligned=ds.aligned, detector=ds.detector)


def prepare_table(table: TableData, cfg: DataConfig, work_root: str | Path | None = None) -> PreparedData:
    """A checked table (agefair.data.table) as audited data: no images, one split ``all``; its quality report
    shaped like a labels CSV's (rows read, kept, dropped by reason), its hash over the labels it keeps."""
    manifest = table.manifest.assign(sha256="")  # no file contents: the hash covers ids and labels
    labels = ["age_group", "age_lo", "age_hi"] if table.labels == "interval" else ["age"]
    quality = QualityResult(manifest, pd.DataFrame(columns=["file", "problem", "action", "detail"]), pd.DataFrame(),
                            n_files=table.quality["rows"], actions=dict(table.quality["actions"]),
                            hash_columns=[*labels, *table.attributes])
    q = table.quality
    report = {"data_dir": str(table.path), "files_scanned": q["rows"], "files_kept": q["kept"],
              "files_dropped": q["rows"] - q["kept"], "manifest_hash": quality.data_hash, "counts": q["dropped"],
              "actions": q["actions"], "examples": q["examples"], "predictions": q["predictions"], "format": q["format"],
              "source": q["source"], "file_sha256": table.data_hash}
    split_meta = {"seed": None, "fractions": {"all": 1.0}, "counts": {"total": {"all": len(manifest)}},
                  "manifest_hash": quality.data_hash}
    place = table.path.parent / re.sub(r"[*?\[\]]", "_", table.path.name)  # a glob's wildcards out of the folder name
    return PreparedData(table.path.parent, dataset_work_dir(place, work_root), manifest, quality, report, split_meta,
                        kind="table", source=table.path, name=table.path.name, labels=table.labels,
                        attributes=table.attributes, groupings=table.groupings, aligned="no images")
