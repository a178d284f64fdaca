"""From a data folder to a clean, split manifest: scan -> quality policy -> split.

Every command that needs the data (eda, train, audit) starts here, so they all see the same files,
the same labels and the same split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from agefair.config import DataConfig
from agefair.data.quality import QualityResult, assess, report_dict
from agefair.data.scan import scan_folder
from agefair.data.split import load_or_make_split
from agefair.errors import AgefairError
from agefair.paths import GET_UTKFACE, resolve_work_dir


@dataclass
class PreparedData:
    data_dir: Path
    work_dir: Path  # derived files for this data folder (scan cache, split, image caches)
    manifest: pd.DataFrame  # kept files with labels and a `split` column
    quality: QualityResult
    quality_report: dict
    split_meta: dict

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


def prepare(data_dir: Path, cfg: DataConfig, seed: int | None = None, resplit: bool = False,
            work_root: str | Path | None = None, progress: bool = True) -> PreparedData:
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
