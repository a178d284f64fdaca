"""Where agefair looks for data and keeps its derived files."""

from __future__ import annotations

import os
from pathlib import Path

from agefair.core.errors import AgefairError

DATA_ENV = "AGEFAIR_DATA"
DEFAULT_DATA = Path("data/UTKFace")
WORK_ENV = "AGEFAIR_WORK"
DEFAULT_WORK = Path(".agefair")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

GET_UTKFACE = (
    "download UTKFace's 'Aligned & Cropped Faces' from https://susanqq.github.io/UTKFace/ "
    "(non-commercial research only) and pass its folder with --data or AGEFAIR_DATA"
)


def resolve_data_dir(arg: str | os.PathLike | None) -> Path:
    """--data, else $AGEFAIR_DATA, else data/UTKFace; checks the folder exists and has files (or is a .csv)."""
    if arg is not None:
        path, source = Path(arg), "--data"
    elif os.environ.get(DATA_ENV):
        path, source = Path(os.environ[DATA_ENV]), f"${DATA_ENV}"
    else:
        path, source = DEFAULT_DATA, "the default"
    if not path.exists():
        raise AgefairError(f"data folder {path} (from {source}) does not exist; {GET_UTKFACE}")
    if not path.is_dir() and path.suffix.lower() == ".csv":
        return path  # a labels CSV (agefair.data.csv_dataset; its reader checks what kind of file it is)
    if not path.is_dir():
        raise AgefairError(f"data path {path} (from {source}) is neither a folder nor a .csv labels file; {GET_UTKFACE}")
    try:
        has_any = any(True for _ in path.iterdir())
    except PermissionError:
        raise AgefairError(f"data folder {path} (from {source}) cannot be read: permission denied") from None
    if not has_any:
        raise AgefairError(f"data folder {path} (from {source}) is empty; {GET_UTKFACE}")
    return path


def resolve_work_dir(arg: str | os.PathLike | None = None) -> Path:
    """Folder for derived files (scan cache, split, image cache): --work, $AGEFAIR_WORK, .agefair/."""
    path = Path(arg) if arg is not None else Path(os.environ.get(WORK_ENV) or DEFAULT_WORK)
    path.mkdir(parents=True, exist_ok=True)
    return path
