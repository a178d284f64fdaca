"""Scan an image folder: one record per file with its labels, content hash, size and read errors.

Results are cached per (file name, byte size, modification time), so a second scan of an
unchanged folder reads no image.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from agefair.core.io import atomic_path, special_file_reason
from agefair.data.files import walk
from agefair.data.images import ImageReadError, open_rgb
from agefair.data.labels import parse_name
from agefair.data.quality import NOT_REGULAR


@dataclass
class FileRecord:
    file: str  # path relative to the data folder
    bytes: int
    mtime_ns: int
    sha256: str
    width: int
    height: int
    mode: str
    read_error: str  # "" when the image decoded fully
    name_status: str  # ok | irregular | malformed
    age: int
    gender: int
    race: int


COLUMNS = [f.name for f in fields(FileRecord)]


def list_files(data_dir: Path) -> list[str]:
    """Every entry below ``data_dir`` that is not a folder (hidden files skipped), relative, sorted: the
    regular files and what agefair.data.files.walk skipped (FIFOs, sockets, devices, broken or looping
    links), which ``scan_file`` records as not regular without opening them."""
    found = walk(data_dir)
    return sorted(found.files + [rel for rel, _ in found.skipped])


def scan_file(data_dir: Path, rel: str) -> FileRecord:
    path = data_dir / rel
    special = special_file_reason(path)
    if special is not None and special != "not found":  # a FIFO would block read_bytes forever: never opened
        size = mtime = width = height = 0
        digest = mode = ""
        error = NOT_REGULAR + special
    else:
        size, mtime, digest, width, height, mode, error = _read_image_file(path)
    parsed = parse_name(os.path.basename(rel))
    if parsed is None:
        status, age, gender, race = "malformed", -1, -1, -1
    else:
        status = "irregular" if parsed.irregular else "ok"
        age, gender, race = parsed.age, parsed.gender, parsed.race
    return FileRecord(rel, size, mtime, digest, width, height, mode, error, status, age, gender, race)


def _read_image_file(path: Path) -> tuple[int, int, str, int, int, str, str]:
    """(bytes, mtime_ns, sha256, width, height, mode, read error) of a regular file."""
    width = height = size = mtime = 0
    mode = digest = error = ""
    try:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime_ns
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        img, mode = open_rgb(path)
        width, height = img.size
    except ImageReadError as exc:
        error = str(exc).removeprefix(f"{path}: ")
    except OSError as exc:  # vanished, no permission
        error = f"cannot read: {exc.strerror or type(exc).__name__}"
    return size, mtime, digest, width, height, mode, error


def _scan_batch(args: tuple[str, list[str]]) -> list[FileRecord]:
    data_dir, names = args
    return [scan_file(Path(data_dir), n) for n in names]


def scan_folder(data_dir: Path, cache_file: Path | None = None, workers: int | None = None,
                progress: bool = True) -> pd.DataFrame:
    """One row per file in ``data_dir`` (see FileRecord), reusing ``cache_file`` where files are unchanged."""
    return scan_files(data_dir, list_files(data_dir), cache_file, workers, progress)


def scan_files(data_dir: Path, names: list[str], cache_file: Path | None = None, workers: int | None = None,
               progress: bool = True) -> pd.DataFrame:
    """One row per name (a path relative to ``data_dir``), in the given order; see ``scan_folder``."""
    cached: dict[str, FileRecord] = {}
    if cache_file is not None and cache_file.exists():
        try:
            old = pd.read_csv(cache_file, dtype={"read_error": str, "mode": str}, keep_default_na=False)
            if list(old.columns) == COLUMNS:
                cached = {r["file"]: FileRecord(**r) for r in old.to_dict("records")}
        except (pd.errors.ParserError, pd.errors.EmptyDataError, TypeError, ValueError):
            cached = {}

    records: dict[str, FileRecord] = {}
    todo = []
    for rel in names:
        try:
            st = (data_dir / rel).stat()
            if not stat.S_ISREG(st.st_mode):
                raise OSError("not a regular file")
        except OSError:
            todo.append(rel)  # scan_file records why it cannot be read
            continue
        rec = cached.get(rel)
        if rec is not None and rec.bytes == st.st_size and rec.mtime_ns == st.st_mtime_ns:
            records[rel] = rec
        else:
            todo.append(rel)

    if todo:
        workers = workers or min(4, os.cpu_count() or 1)
        chunks = [todo[i:i + 64] for i in range(0, len(todo), 64)]
        bar = tqdm(total=len(todo), desc="scanning images", unit="img", disable=not progress)
        if workers > 1 and len(todo) > 256:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for batch in pool.map(_scan_batch, [(str(data_dir), c) for c in chunks]):
                    records.update((r.file, r) for r in batch)
                    bar.update(len(batch))
        else:
            for chunk in chunks:
                for r in _scan_batch((str(data_dir), chunk)):
                    records[r.file] = r
                bar.update(len(chunk))
        bar.close()

    frame = pd.DataFrame([asdict(records[n]) for n in names], columns=COLUMNS)
    if cache_file is not None and todo:
        with atomic_path(cache_file) as tmp:
            frame.to_csv(tmp, index=False)
    return frame
