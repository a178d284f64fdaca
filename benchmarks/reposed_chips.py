"""Faces in larger scenes: does aligning detected faces by their landmarks bring the age back to the chip's?

    python benchmarks/reposed_chips.py --model runs/baseline/model.pt [--data DIR] [--work DIR] [--n 400]

Takes ``--n`` chips of the test split (seeded), pastes each into a 480x480 scene: rotated by up to
±30 degrees, scaled 0.6-1.3x, shifted anywhere it fits, over a real background (another UTKFace chip,
enlarged 2.4x and blurred so that it holds no second detectable face). Then, as ``predict`` would, it
detects the faces (HOG, upsample 1), keeps the detection nearest the pasted face, and predicts its age
from the box crop (agefair.data.faces.utk_crop) and from the landmark-aligned crop
(agefair.data.align.aligned_crop). Prints, overall and per ethnicity: the share of faces found and the
mean |age(re-posed) - age(chip)| for each crop, the chip's own age being the model's age for the
original chip read whole; and the absolute error against the label of the chip and of the aligned crop
(a model that drifted little but erred much would show there).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from agefair.core.config import load_data_config
from agefair.data.align import aligned_crop
from agefair.data.faces import detect_faces, utk_crop
from agefair.data.images import open_rgb
from agefair.data.prepare import prepare
from agefair.inference.estimator import TorchEstimator
from agefair.inference.photos import whole_image

SCENE = 480


def scene(chip: Image.Image, background: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, tuple]:
    """The chip rotated, scaled and pasted over the background; and the pasted face's centre."""
    bg = background.resize((SCENE, SCENE), Image.BILINEAR).filter(ImageFilter.GaussianBlur(12))
    side = int(200 * rng.uniform(0.6, 1.3))
    face = chip.resize((side, side), Image.BILINEAR)
    angle = rng.uniform(-30, 30)
    mask = Image.new("L", face.size, 255).rotate(angle, expand=True)
    face = face.rotate(angle, expand=True, resample=Image.BILINEAR)
    x = int(rng.integers(0, SCENE - face.size[0] + 1))
    y = int(rng.integers(0, SCENE - face.size[1] + 1))
    bg.paste(face, (x, y), mask)
    return bg, (x + face.size[0] / 2, y + face.size[1] / 2)


def nearest(boxes, centre) -> tuple | None:
    if not boxes:
        return None
    d = [np.hypot((b[0] + b[2]) / 2 - centre[0], (b[1] + b[3]) / 2 - centre[1]) for b in boxes]
    best = int(np.argmin(d))
    side = boxes[best][2] - boxes[best][0]
    return boxes[best] if d[best] < side else None  # a detection elsewhere is not this face


# long: one pass over the sampled chips, then the table
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", default=os.environ.get("AGEFAIR_DATA", "../shared/datasets/utkface/images"))
    p.add_argument("--work", default=None)
    p.add_argument("--n", type=int, default=400)
    a = p.parse_args()
    prepared = prepare(Path(a.data), load_data_config(), work_root=a.work, progress=False)
    test = prepared.split("test")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(test), size=min(a.n, len(test)), replace=False)
    est = TorchEstimator(a.model)
    size = est.size
    rows = []
    for i in pick:
        r = test.iloc[i]
        chip, _ = open_rgb(prepared.data_dir / r["file"])
        other, _ = open_rgb(prepared.data_dir / test.iloc[int(rng.integers(len(test)))]["file"])
        img, centre = scene(chip, other, rng)
        rgb = np.asarray(img, dtype=np.uint8)
        box = nearest(detect_faces(rgb, upsample=1), centre)
        crops = [whole_image(chip, size)]
        aligned = False
        if box is not None:
            face, aligned = aligned_crop(rgb, box, size)
            crops += [utk_crop(rgb, box, size), face]
        ages = est.predict(np.stack(crops))
        rows.append({"ethnicity": r["ethnicity"], "found": box is not None, "landmarks": aligned,
                     "box_diff": abs(ages[1] - ages[0]) if box is not None else np.nan,
                     "aligned_diff": abs(ages[2] - ages[0]) if box is not None else np.nan,
                     "chip_err": abs(ages[0] - r["age"]) if box is not None else np.nan,
                     "aligned_err": abs(ages[2] - r["age"]) if box is not None else np.nan})
    df = pd.DataFrame(rows)
    table = df.groupby("ethnicity").agg(n=("found", "size"), found=("found", "mean"), landmarks=("landmarks", "mean"),
                                        box=("box_diff", "mean"), aligned=("aligned_diff", "mean"),
                                        chip_err=("chip_err", "mean"), aligned_err=("aligned_err", "mean"))
    table.loc["all"] = [len(df), df["found"].mean(), df["landmarks"].mean(), df["box_diff"].mean(),
                        df["aligned_diff"].mean(), df["chip_err"].mean(), df["aligned_err"].mean()]
    print(f"{len(df)} test chips re-posed (±30°, 0.6-1.3x, over blurred chips); model {a.model}")
    print("| ethnicity | n | faces found | with landmarks | mean |age - chip age|, box crop | aligned crop "
          "| MAE vs label, chip | aligned crop |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, t in table.iterrows():
        print(f"| {name} | {int(t['n'])} | {t['found']:.0%} | {t['landmarks']:.0%} | {t['box']:.2f} | {t['aligned']:.2f} "
              f"| {t['chip_err']:.2f} | {t['aligned_err']:.2f} |")


if __name__ == "__main__":
    main()
