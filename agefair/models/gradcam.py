"""Grad-CAM explanations of age predictions: heat maps, overlays, labelled tiles and worst-error galleries.

A gallery tile's picture is a small JPEG thumbnail (``thumbnail``: the face and its overlay side by
side at the image's own resolution, no text; the report shows the caption as HTML and enlarges the
picture on click). ``tile`` (enlarged, with a caption strip) is the ``python -m agefair.explain`` picture.

The Grad-CAM target is the predicted age itself (``AgeTarget``), so a map shows the regions of the
last convolutional block (``AgeModel.target_layer``) whose activation pushes the predicted age *up*.
Each map is scaled to [0, 1] on its own (the image's strongest region is 1), as pytorch-grad-cam does.

Note: the map has the target layer's resolution, upsampled to the image. A ResNet's last block is
1/32 of the input, so at 32 px it is a single cell and the map is flat (all zeros); 64 px gives 2x2,
128 px 4x4, 224 px 7x7.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image

from agefair.core.errors import AgefairError
from agefair.models.network import AgeModel, to_input

IMAGE_WEIGHT = 0.55  # share of the face in an overlay; the rest is the colour-mapped heat map
THUMB_GAP = 2  # white pixels between the face and its overlay in a gallery thumbnail
JPEG_QUALITY = 80  # of gallery thumbnails: about 1-3 kB for a 64 px face and its overlay


class AgeTarget:
    """pytorch-grad-cam target for an age regressor: one sample's raw output -> its predicted age (scalar)."""

    def __init__(self, model: AgeModel):
        self.model = model

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return self.model.expected_age(model_output.unsqueeze(0))[0]


def _as_batch(images_uint8: np.ndarray) -> np.ndarray:
    images = np.asarray(images_uint8)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    return images


def heatmaps_and_ages(model: AgeModel, images_uint8: np.ndarray,
                      batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps (N, H, W) float32 in [0, 1] and the predicted ages (N,) of uint8 (N, H, W, 3) images.

    Runs in eval mode and fp32 (autocast off) on the model's device (CPU for a model from
    ``model_from_checkpoint``).
    Only the input needs gradients: the weights' ``requires_grad`` is switched off for the duration,
    so no weight gradients are computed or left behind. The model's hooks are removed and its
    train/eval mode and ``requires_grad`` flags are restored on return, including after an error.
    """
    images = _as_batch(images_uint8)
    n, h, w, _ = images.shape
    maps = np.zeros((n, h, w), dtype=np.float32)
    ages = np.zeros(n, dtype=np.float32)
    if n == 0:
        return maps, ages
    device = next(model.parameters()).device
    was_training, flip_tta = model.training, model.flip_tta
    model.flip_tta = False  # one pass per image: the map explains the image itself, not its mirror
    flags = [(p, p.requires_grad) for p in model.parameters()]
    target = AgeTarget(model)
    cam = GradCAM(model=model, target_layers=[model.target_layer])  # registers hooks; sets eval mode
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.enable_grad(), torch.autocast(device_type=device.type, enabled=False):
            for start in range(0, n, max(1, batch_size)):
                chunk = images[start:start + batch_size]
                x = to_input(torch.from_numpy(np.array(chunk)).permute(0, 3, 1, 2)).to(device)
                x.requires_grad_(True)  # so the target layer's output has a gradient even with frozen weights
                out = cam(input_tensor=x, targets=[target] * len(chunk))
                maps[start:start + len(chunk)] = out
                ages[start:start + len(chunk)] = model.expected_age(cam.outputs.detach()).cpu().numpy()
                cam.outputs = None
    finally:
        # Not ``with GradCAM(...)``: its __exit__ swallows IndexError. release() removes the hooks.
        cam.activations_and_grads.release()
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
        model.flip_tta = flip_tta
    if flip_tta:  # the age every other command reports: the mirror image's averaged in
        ages = predicted_ages(model, images, device)
    np.nan_to_num(maps, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(maps, 0.0, 1.0, out=maps)
    return maps, ages


@torch.no_grad()
def predicted_ages(model: AgeModel, images: np.ndarray, device: torch.device) -> np.ndarray:
    """The model's ages of uint8 (N, H, W, 3) images in eval mode and fp32, with its test-time averaging."""
    was_training = model.training
    model.eval()
    try:
        x = to_input(torch.from_numpy(np.array(images)).permute(0, 3, 1, 2)).to(device)
        with torch.autocast(device_type=device.type, enabled=False):
            return model.predict(x).float().cpu().numpy()
    finally:
        model.train(was_training)


def heatmaps(model: AgeModel, images_uint8: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Grad-CAM maps of the predicted age: (N, H, W) float32 in [0, 1] for uint8 (N, H, W, 3) images."""
    return heatmaps_and_ages(model, images_uint8, batch_size)[0]


def overlay(image_uint8: np.ndarray, heatmap: np.ndarray, image_weight: float = IMAGE_WEIGHT) -> np.ndarray:
    """The face with the heat map (jet colour map) blended over it, (H, W, 3) uint8 RGB."""
    image = np.asarray(image_uint8)
    h, w = image.shape[:2]
    mask = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0)
    if mask.shape != (h, w):
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = np.clip(mask, 0.0, 1.0)
    return show_cam_on_image(image.astype(np.float32) / 255.0, mask, use_rgb=True, image_weight=image_weight)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _fmt_age(age: float) -> str:
    return f"{age:.0f}" if float(age).is_integer() else f"{age:.1f}"


def label_text(true_age: float | None, pred_age: float) -> str:
    """'true 34 · predicted 51.2 (+17.2)', or 'predicted 51.2' without a true age."""
    if true_age is None or (isinstance(true_age, float) and np.isnan(true_age)):
        return f"predicted {pred_age:.1f}"
    return f"true {_fmt_age(true_age)} · predicted {pred_age:.1f} ({pred_age - true_age:+.1f})"


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    """``text`` shortened in the middle with '…' until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 2:
        keep -= 1
        head = (keep + 1) // 2
        short = text[:head] + "…" + text[len(text) - (keep - head):]
        if draw.textlength(short, font=font) <= width:
            return short
    return "…"


def tile(image_uint8: np.ndarray, heatmap: np.ndarray, true_age: float | None, pred_age: float,
         caption: str = "", scale: int = 2) -> Image.Image:
    """Face and Grad-CAM overlay side by side, enlarged ``scale`` times, above a white text strip.

    The strip's first line is ``label_text(true_age, pred_age)``; each line of ``caption`` follows,
    shortened to the tile's width. The tile is widened if the first line would not fit.
    """
    image = np.asarray(image_uint8, dtype=np.uint8)
    h, w = image.shape[:2]
    scale = max(1, int(scale))
    resample = Image.NEAREST if scale >= 3 else Image.BILINEAR
    face = Image.fromarray(image, mode="RGB").resize((w * scale, h * scale), resample)
    over = Image.fromarray(overlay(image, heatmap), mode="RGB").resize((w * scale, h * scale), resample)

    font_size = 12 if w * scale < 200 else 14
    font = _font(font_size)
    pad, gap = 4, 4
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    first = label_text(true_age, pred_age)
    images_w = 2 * w * scale + gap
    width = max(images_w, int(np.ceil(probe.textlength(first, font=font))) + 2 * pad)
    lines = [first] + [_fit(probe, line, font, width - 2 * pad) for line in caption.splitlines() if line.strip()]
    line_h = font_size + 4
    strip_h = pad + line_h * len(lines) + pad

    canvas = Image.new("RGB", (width, h * scale + strip_h), "white")
    x0 = (width - images_w) // 2
    canvas.paste(face, (x0, 0))
    canvas.paste(over, (x0 + w * scale + gap, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((pad, h * scale + pad + i * line_h), line, fill=(0, 0, 0) if i == 0 else (70, 70, 70), font=font)
    return canvas


def thumbnail(image_uint8: np.ndarray, heatmap: np.ndarray, scale: int = 1) -> Image.Image:
    """A gallery tile's picture: the face and its Grad-CAM overlay side by side, ``THUMB_GAP`` white
    pixels apart, at the image's own resolution (``scale`` 1) and with no text: (2W + gap) x H."""
    image = np.asarray(image_uint8, dtype=np.uint8)
    h, w = image.shape[:2]
    canvas = Image.new("RGB", (2 * w + THUMB_GAP, h), "white")
    canvas.paste(Image.fromarray(image, mode="RGB"), (0, 0))
    canvas.paste(Image.fromarray(overlay(image, heatmap), mode="RGB"), (w + THUMB_GAP, 0))
    scale = max(1, int(scale))
    if scale > 1:
        canvas = canvas.resize((canvas.width * scale, h * scale), Image.NEAREST if scale >= 3 else Image.BILINEAR)
    return canvas


def png_data_uri(pil_image: Image.Image) -> str:
    """'data:image/png;base64,...' for an <img src=...> in a self-contained HTML report."""
    buf = io.BytesIO()
    pil_image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def jpeg_data_uri(pil_image: Image.Image, quality: int = JPEG_QUALITY) -> str:
    """'data:image/jpeg;base64,...' (baseline JPEG, optimised Huffman tables, no metadata): the
    report's gallery thumbnails, several times smaller than a PNG of a photo."""
    buf = io.BytesIO()
    pil_image.convert("RGB").save(buf, format="JPEG", quality=int(quality), optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- worst errors

def _group_key(value: object) -> tuple:
    """Sort key: numbers by value, labels by their leading number ('0-9' < '10-19' < '70+'), then by text."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return (0, float(value), "")
    m = re.match(r"\s*(\d+(?:\.\d+)?)", str(value))
    return (0, float(m.group(1)), str(value)) if m else (1, 0.0, str(value))


def _group_order(column: pd.Series) -> list:
    present = column.dropna().unique()
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [c for c in column.cat.categories if c in set(present)]
    return sorted(present, key=_group_key)


def _with_abs_err(pred: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("file", "age", "pred") if c not in pred.columns]
    if missing:
        raise AgefairError(f"predictions lack column(s) {', '.join(missing)}")
    if "abs_err" in pred.columns:
        return pred
    return pred.assign(abs_err=(pred["pred"].astype(float) - pred["age"].astype(float)).abs())


def _top_k(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    # stable sort, ties broken by file name so galleries are reproducible
    ordered = frame.sort_values(["abs_err", "file"], ascending=[False, True], kind="mergesort")
    return ordered.head(max(0, int(k)))


def worst_errors(pred: pd.DataFrame, k: int, by: str | None = None) -> dict[str, pd.DataFrame]:
    """The ``k`` predictions with the largest absolute error: {"overall": ...} when ``by`` is None,
    else {group: ...} for each value of column ``by`` (groups in sorted order; missing values skipped).

    ``pred`` needs columns file, age, pred; abs_err is computed when absent.
    """
    frame = _with_abs_err(pred)
    if by is None or by == "overall":
        return {"overall": _top_k(frame, k)}
    if by not in frame.columns:
        raise AgefairError(f"predictions have no column {by!r} to group worst errors by")
    return {str(g): _top_k(frame[frame[by] == g], k) for g in _group_order(frame[by])}


# --------------------------------------------------------------------------- gallery

def gallery(model: AgeModel, images: np.ndarray, pred: pd.DataFrame, k: int,
            groupings: Iterable[str] = ("overall", "ethnicity", "age_bin"), scale: int = 1,
            batch_size: int = 16) -> dict[str, dict[str, list[dict]]]:
    """{grouping: {group: [tile, ...]}} of the ``k`` worst errors per group, worst first.

    Each tile is {"file", "true", "pred", "error" (pred - true), "group", "img"}; "img" is the JPEG data
    URI of ``thumbnail`` (face and overlay at the image's resolution times ``scale``, no text: the report
    writes the caption). ``images[pred["row"]]`` is each prediction's image (uint8, (N, H, W, 3)).
    Grad-CAM runs once per distinct image, in batches, and each image is encoded once: a tile in several
    galleries holds the same URI string in each.
    """
    if "row" not in pred.columns:
        raise AgefairError("predictions lack the 'row' column that indexes the image array")
    groupings = list(groupings)
    selected = {g: worst_errors(pred, k, None if g == "overall" else g) for g in groupings}

    rows = sorted({int(r) for by_group in selected.values() for frame in by_group.values() for r in frame["row"]})
    if rows and (rows[0] < 0 or rows[-1] >= len(images)):
        raise AgefairError(f"prediction rows run to {rows[-1]} but there are {len(images)} images")
    maps = dict(zip(rows, heatmaps(model, np.asarray(images[rows]), batch_size=batch_size))) if rows else {}

    uris: dict[int, str] = {}  # the picture depends on the image only: encode it once
    out: dict[str, dict[str, list[dict]]] = {}
    for grouping, by_group in selected.items():
        out[grouping] = {}
        for group, frame in by_group.items():
            tiles = []
            for _, r in frame.iterrows():
                row, true, p = int(r["row"]), float(r["age"]), float(r["pred"])
                if row not in uris:
                    uris[row] = jpeg_data_uri(thumbnail(np.asarray(images[row]), maps[row], scale))
                tiles.append({"file": str(r["file"]), "true": true, "pred": p, "error": p - true,
                              "group": group, "img": uris[row]})
            out[grouping][group] = tiles
    return out


__all__: Sequence[str] = ("AgeTarget", "heatmaps", "heatmaps_and_ages", "overlay", "label_text", "tile",
                          "thumbnail", "png_data_uri", "jpeg_data_uri", "worst_errors", "gallery")
