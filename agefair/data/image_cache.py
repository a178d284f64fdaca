"""Decode every image once into a memory-mapped uint8 array, so epochs never re-decode JPEGs.

The cache is one file ``images-<manifest hash>-<size>.u8`` of shape (N, size, size, 3) in the
manifest's file order, plus a JSON sidecar with that order. It is keyed by the manifest hash and
the size: new data or a new size makes a new cache; an existing one is reused as is.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from agefair.core.io import atomic_path, write_json_atomic
from agefair.data.images import open_rgb


def load_face(path: str | Path, size: int) -> np.ndarray:
    """One image as (size, size, 3) uint8, resized with antialiasing."""
    img, _ = open_rgb(path)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR, reducing_gap=None)
    return np.asarray(img, dtype=np.uint8)


def _fill(args: tuple[str, str, int, int, int, list[str]]) -> int:
    cache_path, data_dir, n, size, start, files = args
    arr = np.memmap(cache_path, dtype=np.uint8, mode="r+", shape=(n, size, size, 3))
    for i, f in enumerate(files):
        arr[start + i] = load_face(Path(data_dir) / f, size)
    arr.flush()
    return len(files)


def cache_path(work_dir: Path, data_hash: str, size: int) -> Path:
    return work_dir / f"images-{data_hash[:16]}-{size}.u8"


def build_image_cache(data_dir: Path, manifest: pd.DataFrame, data_hash: str, size: int, work_dir: Path,
                      workers: int | None = None, progress: bool = True) -> np.ndarray:
    """(N, size, size, 3) uint8 array of every manifest image, row i = manifest.iloc[i] (sorted by file)."""
    files = list(manifest["file"])
    if files != sorted(files):
        raise ValueError("manifest must be sorted by file")
    path = cache_path(work_dir, data_hash, size)
    meta_path = path.with_suffix(".json")
    n = len(files)
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("files") == files and meta.get("size") == size:
            return np.memmap(path, dtype=np.uint8, mode="r", shape=(n, size, size, 3))

    workers = workers or min(4, os.cpu_count() or 1)
    with atomic_path(path) as tmp:
        np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(n, size, size, 3)).flush()
        chunk = 256
        jobs = [(str(tmp), str(data_dir), n, size, s, files[s:s + chunk]) for s in range(0, n, chunk)]
        bar = tqdm(total=n, desc=f"caching images at {size}px", unit="img", disable=not progress)
        if workers > 1 and n > chunk:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for done in pool.map(_fill, jobs):
                    bar.update(done)
        else:
            for job in jobs:
                bar.update(_fill(job))
        bar.close()
    write_json_atomic(meta_path, {"size": size, "manifest_hash": data_hash, "files": files})
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(n, size, size, 3))
