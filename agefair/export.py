"""``python -m agefair.export --model CKPT --onnx model.onnx``: export an age model to ONNX.

The exported graph is the whole predictor, normalisation and head included:

- input ``image``: float32, shape [batch, 3, S, S] (NCHW, RGB), values in [0, 1] (uint8 / 255,
  what agefair.models.network.to_input gives); S is the checkpoint's image size; the batch axis is dynamic.
  Faces should be cropped like UTKFace's chips (agefair.data.faces.utk_crop) and resized to S x S.
- output ``age``: float32, shape [batch]: the predicted age in years (the expectation head's
  softmax expected value, or the regression head's output).
- output ``spread`` (expectation head only): float32, shape [batch]: the standard deviation in years
  of the predicted age distribution, which the scaled conformal intervals multiply.

The run's conformal calibration (``calibration.json`` beside the checkpoint) is copied beside the
ONNX file as ``<name>.calibration.json``; predict and video find it there and give intervals:
[age - q·max(spread, floor), age + q·max(spread, floor)] clipped to [0, max_age] for the scaled score,
age ± q for abs (q and floor in that file's ``marginal``).

The model is exported with torch's ``torch.export``-based exporter (it needs onnxscript), written
atomically as one file, checked with onnxruntime against torch on a random batch (the export is
refused when they differ by more than 0.05 years) and tagged with metadata (backbone, head, image
size, the checkpoint's SHA-256). ``python -m agefair.predict --model model.onnx`` and
``python -m agefair.video --model model.onnx`` run it with onnxruntime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agefair.cli.args import ArgumentParser
from agefair.cli.outputs import check_output_file
from agefair.core.errors import AgefairError, run_cli
from agefair.inference.estimator import refuse_posthoc
from agefair.inference.onnx import INPUT_NAME, OUTPUT_NAME, PARITY_BATCH, SPREAD_NAME, copy_calibration, export_checked
from agefair.models.checkpoint import model_from_checkpoint
from agefair.models.runs import model_or_best_run


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m agefair.export",
                                description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--model", metavar="CKPT", help="checkpoint (default: the run in --runs with the lowest validation MAE)")
    p.add_argument("--runs", default="runs", metavar="DIR", help="where to look for runs/*/model.pt (default: runs)")
    p.add_argument("--onnx", required=True, metavar="OUT", help="the ONNX file to write (e.g. model.onnx)")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset version (default: the exporter's)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.onnx.lower().endswith(".onnx"):
        raise AgefairError(f"--onnx {args.onnx}: the file name must end in .onnx (predict and video choose "
                           f"onnxruntime by that suffix)")
    check_output_file(args.onnx, "--onnx")
    checkpoint, why = model_or_best_run(args.model, args.runs)
    model, cfg, ckpt = model_from_checkpoint(checkpoint)
    refuse_posthoc(ckpt, checkpoint)
    size = cfg.model.image_size
    print(f"agefair: exporting {checkpoint} ({why}): {cfg.model.backbone}@{size}, {cfg.model.head} head")
    out = Path(args.onnx)
    diff = export_checked(model, cfg, checkpoint, out, args.opset)
    print(copy_calibration(checkpoint, out), file=sys.stderr)
    print(f"agefair: wrote {out} ({out.stat().st_size / 1e6:.1f} MB); input '{INPUT_NAME}' float32 "
          f"[batch, 3, {size}, {size}] in [0, 1], output '{OUTPUT_NAME}' [batch] years"
          f"{f' and {SPREAD_NAME!r} [batch] years' if cfg.model.head == 'expectation' else ''}; onnxruntime matches "
          f"torch within {diff:.1e} years on a random batch of {PARITY_BATCH}")
    return 0


if __name__ == "__main__":
    run_cli(main)
