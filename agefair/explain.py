"""``python -m agefair.explain IMAGE --model CKPT``: predict one face's age and show where the model looked.

Writes one PNG tile: the face as the model sees it (resized to the checkpoint's image size) beside
its Grad-CAM overlay, with the predicted age (and the true age, from --age or a UTKFace file name
``{age}_{gender}_{race}_{timestamp}.jpg.chip.jpg``) underneath.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from agefair.cli.args import ArgumentParser
from agefair.cli.outputs import check_output_file
from agefair.core.errors import AgefairError, run_cli
from agefair.core.io import atomic_path
from agefair.data.image_cache import load_face
from agefair.data.labels import parse_name
from agefair.models.checkpoint import model_from_checkpoint
from agefair.models.gradcam import heatmaps_and_ages, tile


def default_out(image: Path) -> Path:
    """``34_0_0_2017.jpg.chip.jpg`` -> ``34_0_0_2017.jpg.chip.gradcam.png`` in the current folder."""
    return Path(image.stem + ".gradcam.png")


def true_age_from(image: Path, given: float | None) -> float | None:
    if given is not None:
        return given
    parsed = parse_name(image.name)
    return float(parsed.age) if parsed else None


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m agefair.explain", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("image", metavar="IMAGE", help="a face image (any format Pillow reads)")
    p.add_argument("--model", required=True, metavar="CKPT", help="checkpoint written by agefair.train (model.pt)")
    p.add_argument("--out", metavar="PNG", help="output tile (default: <image name>.gradcam.png in the current folder)")
    p.add_argument("--age", type=float, metavar="YEARS",
                   help="true age for the caption (default: from a UTKFace file name, else none)")
    p.add_argument("--scale", type=int, default=2, metavar="N", help="enlargement of the face in the tile (default: 2)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    image = Path(args.image)
    if args.age is not None and not (math.isfinite(args.age) and 0 <= args.age <= 150):
        raise AgefairError(f"--age must be between 0 and 150, got {args.age:g}")
    if not 1 <= args.scale <= 16:
        raise AgefairError(f"--scale must be between 1 and 16, got {args.scale}")
    out = check_output_file(args.out if args.out else default_out(image))

    model, cfg, _ = model_from_checkpoint(args.model)
    face = load_face(image, cfg.model.image_size)  # ImageReadError (an AgefairError) for unusable files
    maps, ages = heatmaps_and_ages(model, face[None])
    pred = float(ages[0])
    true = true_age_from(image, args.age)

    picture = tile(face, maps[0], true, pred, caption=image.name, scale=args.scale)
    try:
        with atomic_path(out) as tmp:
            picture.save(tmp, format="PNG")
    except OSError as exc:
        raise AgefairError(f"{out}: cannot write: {exc.strerror or exc}") from None
    print(f"{image}: predicted age {pred:.1f} -> {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
