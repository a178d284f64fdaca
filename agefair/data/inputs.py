"""Model inputs for a dataset's images: whole aligned crops, or the UTKFace-style crop of the detected face.

The age models only saw UTKFace's aligned chips. A labels-CSV dataset says in its config whether its
images are such crops (``aligned: yes``: used whole, resized as in training), are photos (``no``:
the face is detected and cropped with UTKFace's measured framing, agefair.data.faces), or may be either
(``auto``: decided per image with the rule of ``python -m agefair.predict --detect auto``). Where a
photo holds several faces the largest is taken (the label is about one person); where none is found
the image gets no prediction and is counted. Where each face was found is cached per data, mode and
detector (``<work>/faces-<hash>-<mode>-<detector>.csv``), so the detector runs once per image.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from agefair.core.io import atomic_path
from agefair.data.image_cache import build_image_cache, load_face
from agefair.data.images import ImageReadError, open_rgb
from agefair.data.prepare import PreparedData

FACE_COLUMNS = ["file", "how", "box", "faces", "reason"]  # how: whole | face | none | unreadable


def _locate_one(root: str, file: str, mode: str, detector: str) -> dict:
    from agefair.data.faces import crop_verdict, detect_faces

    try:
        img, _ = open_rgb(Path(root) / file)
    except ImageReadError as exc:
        return {"file": file, "how": "unreadable", "box": "", "faces": 0, "reason": str(exc)}
    rgb = np.asarray(img, dtype=np.uint8)
    boxes = detect_faces(rgb, model=detector, upsample=1 if detector == "hog" else 0)
    if mode == "auto":
        is_crop, why = crop_verdict(rgb, detector, boxes=boxes)
        if is_crop:
            return {"file": file, "how": "whole", "box": "", "faces": len(boxes), "reason": why}
    if not boxes:
        return {"file": file, "how": "none", "box": "", "faces": 0, "reason": "no face found"}
    box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    why = "one face" if len(boxes) == 1 else f"largest of {len(boxes)} faces"
    return {"file": file, "how": "face", "box": ",".join(map(str, box)), "faces": len(boxes), "reason": why}


def _locate_batch(args: tuple[str, list[str], str, str]) -> list[dict]:
    root, files, mode, detector = args
    return [_locate_one(root, f, mode, detector) for f in files]


def locate_faces(prepared: PreparedData, rows: np.ndarray, progress: bool = True,
                 workers: int | None = None) -> pd.DataFrame:
    """FACE_COLUMNS for manifest ``rows`` (index: the rows), detecting only where the cache has no answer."""
    manifest = prepared.manifest
    files = list(manifest["file"].to_numpy()[rows])
    if prepared.aligned == "yes":
        return pd.DataFrame({"file": files, "how": "whole", "box": "", "faces": 0, "reason": "aligned: yes"},
                            index=rows, columns=FACE_COLUMNS)
    cache = prepared.work_dir / f"faces-{prepared.data_hash[:16]}-{prepared.aligned}-{prepared.detector}.csv"
    known: dict[str, dict] = {}
    if cache.exists():
        old = pd.read_csv(cache, dtype={"box": str, "reason": str}, keep_default_na=False)
        if list(old.columns) == FACE_COLUMNS:
            known = {r["file"]: r for r in old.to_dict("records")}
    todo = [f for f in dict.fromkeys(files) if f not in known]
    if todo:
        workers = workers or min(4, os.cpu_count() or 1)
        chunks = [todo[i:i + 32] for i in range(0, len(todo), 32)]
        jobs = [(str(prepared.data_dir), c, prepared.aligned, prepared.detector) for c in chunks]
        bar = tqdm(total=len(todo), desc=f"finding faces ({prepared.detector})", unit="img", disable=not progress)
        if workers > 1 and len(todo) > 64:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for batch in pool.map(_locate_batch, jobs):
                    known.update((r["file"], r) for r in batch)
                    bar.update(len(batch))
        else:
            for job in jobs:
                for r in _locate_batch(job):
                    known[r["file"]] = r
                bar.update(len(job[1]))
        bar.close()
        with atomic_path(cache) as tmp:
            pd.DataFrame(list(known.values()), columns=FACE_COLUMNS).sort_values("file").to_csv(tmp, index=False)
    return pd.DataFrame([known[f] for f in files], index=rows, columns=FACE_COLUMNS)


def face_counts(located: pd.DataFrame) -> dict[str, int]:
    """How the located images will be read: whole, face crop (several faces: the largest), none, unreadable."""
    how = located["how"]
    return {"images": int(len(located)), "whole": int((how == "whole").sum()), "face_crop": int((how == "face").sum()),
            "several_faces": int(((how == "face") & (located["faces"] > 1)).sum()),
            "no_face": int((how == "none").sum()), "unreadable": int((how == "unreadable").sum())}


def model_inputs(prepared: PreparedData, rows: np.ndarray, size: int,
                 progress: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """(images, located): (len(manifest), size, size, 3) uint8 with manifest ``rows`` filled where a face
    (or a whole crop) was found, and ``locate_faces``' answer for ``rows``. UTKFace folders and
    ``aligned: yes`` datasets use the on-disk image cache."""
    rows = np.asarray(rows, dtype=np.int64)
    if prepared.kind != "csv" or prepared.aligned == "yes":
        images = build_image_cache(prepared.data_dir, prepared.manifest, prepared.data_hash, size,
                                   prepared.work_dir, progress=progress)
        return images, locate_faces(prepared, rows, progress) if prepared.kind == "csv" else pd.DataFrame(
            {"file": prepared.manifest["file"].to_numpy()[rows], "how": "whole", "box": "", "faces": 0, "reason": ""},
            index=rows, columns=FACE_COLUMNS)
    from agefair.data.align import aligned_crop

    located = locate_faces(prepared, rows, progress)
    images = np.zeros((len(prepared.manifest), size, size, 3), dtype=np.uint8)
    todo = located[located["how"].isin(["whole", "face"])]
    for row, r in tqdm(todo.iterrows(), total=len(todo), desc=f"cropping faces at {size}px", unit="img",
                       disable=not progress, leave=False):
        path = prepared.data_dir / r["file"]
        if r["how"] == "whole":
            images[row] = load_face(path, size)
        else:
            img, _ = open_rgb(path)
            box = tuple(int(v) for v in str(r["box"]).split(","))
            # aligned by its landmarks like the chips (the box crop where none are found): agefair.data.align
            images[row] = aligned_crop(np.asarray(img, dtype=np.uint8), box, size, detector=prepared.detector)[0]
    return images, located
