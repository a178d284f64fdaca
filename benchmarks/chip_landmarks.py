"""Where the eyes and the nose sit in UTKFace's chips: the measurement behind agefair.data.align.CHIP_LANDMARKS.

    python benchmarks/chip_landmarks.py [--data DIR] [--n 1000]

Reads ``--n`` chips (a seeded sample of the folder), detects the one face in each with face_recognition's
HOG detector, takes its 5-point landmarks and prints the mean eye centres and nose base as fractions of the
chip side, with their spread.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from agefair.data.align import landmarks5
from agefair.data.faces import detect_faces
from agefair.data.images import open_rgb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("AGEFAIR_DATA", "../shared/datasets/utkface/images"))
    p.add_argument("--n", type=int, default=1000)
    a = p.parse_args()
    files = sorted(Path(a.data).glob("*.jpg"))
    pick = np.random.default_rng(0).choice(len(files), size=min(a.n, len(files)), replace=False)
    points = []
    for i in pick:
        rgb = np.asarray(open_rgb(files[i])[0], dtype=np.uint8)
        boxes = detect_faces(rgb, upsample=1)
        q = landmarks5(rgb, boxes[0]) if len(boxes) == 1 else None
        if q is not None:
            points.append(q / np.array([rgb.shape[1], rgb.shape[0]]))
    pts = np.array(points)
    print(f"{len(pts)} of {len(pick)} chips with one face and its landmarks")
    for name, m, s in zip(("left eye", "right eye", "nose base"), pts.mean(axis=0), pts.std(axis=0)):
        print(f"  {name}: x {m[0]:.3f} (sd {s[0]:.3f}), y {m[1]:.3f} (sd {s[1]:.3f})")
    print("CHIP_LANDMARKS = np.array([" + ", ".join(f"[{m[0]:.3f}, {m[1]:.3f}]" for m in pts.mean(axis=0)) + "])")


if __name__ == "__main__":
    main()
