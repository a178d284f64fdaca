"""Grad-CAM: heat maps, the age target, overlays, tiles and thumbnails, worst-error galleries, and the explain CLI.

Everything runs on CPU with a randomly initialised (seeded) resnet18 at 64 px: the last block is 2x2,
enough for maps that vary within an image. (At 32 px it is 1x1 and every map is flat.)
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import agefair.models.gradcam as gradcam
from agefair.core.config import ModelConfig, TrainConfig
from agefair.core.errors import run_cli
from agefair.explain import main as explain_main
from agefair.models.checkpoint import save_checkpoint
from agefair.models.gradcam import (
    AgeTarget,
    gallery,
    heatmaps,
    heatmaps_and_ages,
    jpeg_data_uri,
    label_text,
    overlay,
    png_data_uri,
    thumbnail,
    tile,
    worst_errors,
)
from agefair.models.network import AgeModel, create_model, to_input

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZE = 64


def make_model(head: str, size: int = SIZE, seed: int = 0) -> AgeModel:
    torch.manual_seed(seed)
    model = create_model(ModelConfig(backbone="resnet18", image_size=size, head=head))
    if head == "regression":  # the head starts at zero weights (constant 33): give it a slope to explain
        torch.nn.init.normal_(model.head.weight, std=0.05)
    return model.eval()


@pytest.fixture(scope="module")
def models() -> dict[str, AgeModel]:
    return {head: make_model(head) for head in ("expectation", "regression")}


def faces(n: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """``n`` distinct synthetic uint8 faces: a bright blob on a gradient plus noise, blob placed at random."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.2, 0.8, size=2) * size
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 8) ** 2))
        base = rng.uniform(40, 200, size=3) + (xx[..., None] * rng.uniform(-1, 1, size=3))
        arr = base + 120 * blob[..., None] + rng.normal(0, 10, size=(size, size, 3))
        out[i] = np.clip(arr, 0, 255).astype(np.uint8)
    return out


def nchw(images: np.ndarray) -> torch.Tensor:
    return to_input(torch.from_numpy(images).permute(0, 3, 1, 2))


MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff"}


def decode_uri(uri: str, kind: str = "png") -> Image.Image:
    prefix = f"data:image/{kind};base64,"
    assert uri.startswith(prefix)
    data = base64.b64decode(uri[len(prefix):], validate=True)
    assert data.startswith(MAGIC[kind])
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format == kind.upper()
    return img


def shows_face(t: Image.Image, img: np.ndarray, scale: int) -> bool:
    """Whether tile ``t``'s left picture is ``img`` enlarged ``scale`` times (up to resampling)."""
    h, w = img.shape[:2]
    x0 = (t.size[0] - (2 * w * scale + 4)) // 2
    face = t.crop((x0, 0, x0 + w * scale, h * scale)).resize((w, h), Image.BOX)
    return float(np.abs(np.asarray(face, dtype=float) - img).mean()) < 8


def thumb_shows_face(t: Image.Image, img: np.ndarray) -> bool:
    """Whether thumbnail ``t``'s left picture is ``img`` (up to JPEG loss: ~8 on these noisy faces, where
    another face is 35 or more)."""
    h, w = img.shape[:2]
    face = np.asarray(t.convert("RGB").crop((0, 0, w, h)), dtype=float)
    return float(np.abs(face - img).mean()) < 15


# --------------------------------------------------------------------------- heat maps and the target

@pytest.mark.parametrize("head", ["expectation", "regression"])
def test_heatmaps_shape_range_and_variation(models, head):
    images = faces(5)
    maps = heatmaps(models[head], images, batch_size=2)  # batches of 2, 2, 1
    assert maps.shape == (5, SIZE, SIZE)
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    for m in maps:
        assert m.max() > m.min(), "a map should not be flat"
    assert not np.allclose(maps[0], maps[1]), "different images should give different maps"
    # batching does not change the result
    one_by_one = np.concatenate([heatmaps(models[head], images[i:i + 1]) for i in range(2)])
    np.testing.assert_allclose(one_by_one, maps[:2], atol=1e-4)


@pytest.mark.parametrize("head", ["expectation", "regression"])
def test_age_target_is_the_predicted_age(models, head):
    model = models[head]
    x = nchw(faces(3, seed=1))
    with torch.no_grad():
        out = model(x)
        expected = model.predict(x)
    target = AgeTarget(model)
    got = torch.stack([target(o) for o in out])
    assert got.shape == (3,)
    torch.testing.assert_close(got, expected)
    assert target(out[0]).ndim == 0  # a scalar, as pytorch-grad-cam sums them into a loss
    if head == "expectation":
        torch.testing.assert_close(target(out[0]), torch.softmax(out[0], 0) @ torch.arange(117.0))
    else:
        torch.testing.assert_close(target(out[0]), out[0, 0])

    _, ages = heatmaps_and_ages(model, faces(3, seed=1))
    np.testing.assert_allclose(ages, expected.numpy(), rtol=1e-5, atol=1e-4)


def test_heatmaps_leave_the_model_as_they_found_it():
    model = make_model("expectation")
    model.train()
    model.head.weight.requires_grad_(False)  # one frozen parameter: its flag must survive
    hooks_before = (len(model.target_layer._forward_hooks), len(model.target_layer._backward_hooks))
    with torch.no_grad():  # Grad-CAM needs gradients: it must work inside a caller's no_grad too
        maps = heatmaps(model, faces(2))
    assert maps.shape == (2, SIZE, SIZE) and maps.max() > 0
    assert (len(model.target_layer._forward_hooks), len(model.target_layer._backward_hooks)) == hooks_before
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    assert model.training, "train/eval mode is restored"
    assert not model.head.weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "head.weight")
    assert all(p.grad is None for p in model.parameters()), "no weight gradients left behind"


def test_heatmaps_at_32px_are_flat_but_well_formed():
    model = make_model("expectation", size=32)
    maps = heatmaps(model, faces(2, size=32))
    assert maps.shape == (2, 32, 32)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_heatmaps_reject_bad_input(models):
    with pytest.raises(ValueError, match="uint8"):
        heatmaps(models["expectation"], faces(1).astype(np.float32))
    assert heatmaps(models["expectation"], np.zeros((0, SIZE, SIZE, 3), np.uint8)).shape == (0, SIZE, SIZE)


# --------------------------------------------------------------------------- overlay, tile, data URI

def test_overlay_is_rgb_uint8_of_the_image_size():
    img = faces(1)[0]
    heat = np.zeros((SIZE, SIZE), np.float32)
    heat[:16, :16] = 1.0
    out = overlay(img, heat)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)
    # a low-resolution map is resized to the image
    assert overlay(img, np.eye(4, dtype=np.float32)).shape == img.shape


def test_label_text():
    assert label_text(34, 51.23) == "true 34 · predicted 51.2 (+17.2)"
    assert label_text(40.0, 37.0) == "true 40 · predicted 37.0 (-3.0)"
    assert label_text(None, 41.26) == "predicted 41.3"


def test_tile_has_face_overlay_and_text_strip():
    img = faces(1)[0]
    heat = heatmaps(make_model("expectation"), img[None])[0]
    t = tile(img, heat, 34, 51.2, caption="x" * 300 + "\nWhite · female · 30-39", scale=2)
    assert isinstance(t, Image.Image) and t.mode == "RGB"
    w, h = t.size
    assert w >= 2 * SIZE * 2 and h > SIZE * 2 + 30  # two enlarged faces, then at least two lines of text
    arr = np.asarray(t)
    assert shows_face(t, img, scale=2)
    strip = arr[SIZE * 2:]
    assert (strip.min(axis=2) < 100).any(), "the strip holds dark text"
    assert (strip == 255).all(axis=2).mean() > 0.5, "on a white background"
    # a long caption is shortened, never widens the tile
    assert tile(img, heat, 34, 51.2, caption="y" * 20, scale=2).size[0] == w
    # without a true age
    assert tile(img, heat, None, 51.2).size[1] < h


def test_png_data_uri_round_trip():
    t = Image.new("RGB", (7, 5), (10, 20, 30))
    back = decode_uri(png_data_uri(t))
    assert back.size == (7, 5) and back.getpixel((3, 3)) == (10, 20, 30)


def test_jpeg_data_uri_round_trip_and_smaller_than_png():
    t = Image.new("RGB", (16, 8), (200, 120, 40))
    back = decode_uri(jpeg_data_uri(t), "jpeg")
    assert back.size == (16, 8) and back.mode == "RGB"
    assert np.abs(np.asarray(back, dtype=int) - (200, 120, 40)).max() <= 6
    assert decode_uri(jpeg_data_uri(t.convert("RGBA")), "jpeg").mode == "RGB"  # alpha dropped, no error
    img = faces(1)[0]
    heat = heatmaps(make_model("expectation"), img[None])[0]
    small = jpeg_data_uri(thumbnail(img, heat))
    assert len(small) < len(png_data_uri(thumbnail(img, heat))) / 2
    assert len(small) < len(png_data_uri(tile(img, heat, 34, 51.2, caption="x", scale=2))) / 5


def test_thumbnail_is_face_and_overlay_at_native_size():
    img = faces(1)[0]
    heat = np.zeros((SIZE, SIZE), np.float32)
    heat[:16, :16] = 1.0
    t = thumbnail(img, heat)
    assert t.mode == "RGB" and t.size == (2 * SIZE + gradcam.THUMB_GAP, SIZE)  # no text strip, not enlarged
    arr = np.asarray(t)
    np.testing.assert_array_equal(arr[:, :SIZE], img)
    np.testing.assert_array_equal(arr[:, SIZE + gradcam.THUMB_GAP:], overlay(img, heat))
    assert (arr[:, SIZE:SIZE + gradcam.THUMB_GAP] == 255).all()
    assert thumbnail(img, heat, scale=2).size == (2 * t.size[0], 2 * SIZE)


# --------------------------------------------------------------------------- worst errors and gallery

def predictions(n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 90, size=n)
    pred = age + rng.normal(0, 10, size=n).round(2)
    bins = np.array(["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"])
    return pd.DataFrame({
        "file": [f"{a}_{i % 2}_{i % 5}_2017{i:05d}.jpg.chip.jpg" for i, a in enumerate(age)],
        "age": age, "pred": pred,
        "gender": np.where(np.arange(n) % 2, "female", "male"),
        "ethnicity": np.array(["White", "Black", "Asian", "Indian", "Others"])[np.arange(n) % 5],
        "age_bin": bins[np.minimum(age // 10, 7)],
        "row": np.arange(n)[::-1],  # rows need not follow the frame's order
    })


def test_worst_errors_overall():
    pred = predictions()
    out = worst_errors(pred, 4, None)
    assert list(out) == ["overall"]
    top = out["overall"]
    err = (pred["pred"] - pred["age"]).abs()
    assert len(top) == 4
    np.testing.assert_allclose(top["abs_err"], np.sort(err.to_numpy())[::-1][:4])
    assert top["abs_err"].is_monotonic_decreasing
    # a given abs_err column is used as is
    assert worst_errors(pred.assign(abs_err=np.arange(12.0)), 2, None)["overall"]["abs_err"].tolist() == [11.0, 10.0]


def test_worst_errors_per_group():
    pred = predictions(20)
    pred.loc[pred.index[:3], "age_bin"] = ["5-9", "100+", "0-4"]
    out = worst_errors(pred, 2, "ethnicity")
    assert list(out) == sorted(pred["ethnicity"].unique())
    for group, frame in out.items():
        sub = pred[pred["ethnicity"] == group]
        expected = (sub["pred"] - sub["age"]).abs().sort_values(ascending=False).head(2)
        np.testing.assert_allclose(frame["abs_err"], expected)
        assert (frame["ethnicity"] == group).all()
    by_bin = worst_errors(pred, 50, "age_bin")
    keys = list(by_bin)
    assert keys == sorted(keys, key=lambda s: int(s.split("-")[0].rstrip("+")))  # 0-4, 5-9, 10-19 ... 100+
    assert sum(len(f) for f in by_bin.values()) == len(pred)  # k larger than a group: the whole group
    with pytest.raises(Exception, match="no column"):
        worst_errors(pred, 2, "nonexistent")


def test_gallery_tiles_and_one_grad_cam_per_image(models, monkeypatch):
    pred = predictions(12)
    images = faces(12)
    seen: list[int] = []
    real = gradcam.heatmaps

    def counting(model, imgs, batch_size=16):
        seen.append(len(imgs))
        return real(model, imgs, batch_size=batch_size)

    monkeypatch.setattr(gradcam, "heatmaps", counting)
    k = 2
    out = gallery(models["expectation"], images, pred, k)
    assert list(out) == ["overall", "ethnicity", "age_bin"]
    assert list(out["overall"]) == ["overall"]
    assert list(out["ethnicity"]) == sorted(pred["ethnicity"].unique())

    wanted = {int(r) for g in ("overall", "ethnicity", "age_bin")
              for f in worst_errors(pred, k, None if g == "overall" else g).values() for r in f["row"]}
    assert seen == [len(wanted)], "Grad-CAM runs once, on each distinct image"

    tiles = [t for groups in out.values() for ts in groups.values() for t in ts]
    assert len(out["overall"]["overall"]) == k
    for group, ts in out["ethnicity"].items():
        assert 1 <= len(ts) <= k
        errs = [abs(t["error"]) for t in ts]
        assert errs == sorted(errs, reverse=True)
        assert all(t["group"] == group for t in ts)
    for t in tiles:
        assert set(t) == {"file", "true", "pred", "error", "group", "img"}
        row = pred[pred["file"] == t["file"]].iloc[0]
        assert t["true"] == row["age"] and t["pred"] == pytest.approx(row["pred"])
        assert t["error"] == pytest.approx(row["pred"] - row["age"])
        assert decode_uri(t["img"], "jpeg").size == (2 * SIZE + gradcam.THUMB_GAP, SIZE)  # native size, no text
    # the worst overall tile shows the image of its own row
    worst = worst_errors(pred, 1, None)["overall"].iloc[0]
    shown = decode_uri(out["overall"]["overall"][0]["img"], "jpeg")
    assert thumb_shows_face(shown, images[int(worst["row"])])
    assert not thumb_shows_face(shown, images[(int(worst["row"]) + 1) % len(images)])


def test_gallery_encodes_each_image_once(models, monkeypatch):
    pred = predictions(12)
    encoded: list[str] = []
    real = gradcam.jpeg_data_uri

    def counting(picture, quality=gradcam.JPEG_QUALITY):
        encoded.append(real(picture, quality))
        return encoded[-1]

    monkeypatch.setattr(gradcam, "jpeg_data_uri", counting)
    out = gallery(models["expectation"], faces(12), pred, 2)
    tiles = [t for groups in out.values() for ts in groups.values() for t in ts]
    by_file: dict[str, set[int]] = {}
    for t in tiles:
        by_file.setdefault(t["file"], set()).add(id(t["img"]))
    assert len(tiles) > len(by_file), "some image is in more than one gallery"
    assert all(len(ids) == 1 for ids in by_file.values()), "a tile in several galleries holds one URI object"
    assert len(encoded) == len(by_file) == len(set(encoded))
    # the worst error overall is the worst of its ethnicity too: the same picture in both galleries
    worst = out["overall"]["overall"][0]
    row = pred[pred["file"] == worst["file"]].iloc[0]
    assert out["ethnicity"][row["ethnicity"]][0]["img"] is worst["img"]


def test_gallery_with_no_predictions(models):
    out = gallery(models["expectation"], faces(1), predictions(0), 3, groupings=("overall", "ethnicity"))
    assert out == {"overall": {"overall": []}, "ethnicity": {}}


# --------------------------------------------------------------------------- explain CLI

def run_explain(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    return subprocess.run([sys.executable, "-m", "agefair.explain", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A checkpoint written the way agefair.train writes model.pt (resnet18, 64 px, random weights)."""
    cfg = TrainConfig(model=ModelConfig(backbone="resnet18", image_size=SIZE, head="expectation"))
    model = make_model("expectation")
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint({"config": cfg.model_dump(mode="json"), "meta": {}, "epoch": 1, "best_mae": 9.0,
                     "model": model.state_dict(), "val_mae": 9.0}, path)
    return path


@pytest.fixture
def face_file(tmp_path) -> Path:
    """A 200x200 UTKFace-named JPEG (age 34): the CLI resizes it to the checkpoint's 64 px."""
    path = tmp_path / "34_1_2_20170109150557335.jpg.chip.jpg"
    big = np.asarray(Image.fromarray(faces(1)[0]).resize((200, 200), Image.BILINEAR))
    Image.fromarray(big).save(path, quality=90)
    return path


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("agefair: error: ")
    assert "Traceback" not in stderr
    return lines[0]


def test_explain_cli_writes_a_tile(checkpoint, face_file, tmp_path):
    out = tmp_path / "sub" / "overlay.png"
    r = run_explain([str(face_file), "--model", str(checkpoint), "--out", str(out)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{face_file}: predicted age ") and r.stdout.rstrip().endswith(f"-> {out}")
    img = Image.open(out)
    img.load()
    assert img.format == "PNG" and img.size[0] >= 4 * SIZE and img.size[1] > 2 * SIZE
    assert not list(out.parent.glob(".*.tmp")), "no temporary file left"


def test_explain_cli_corrupt_image(checkpoint, tmp_path):
    bad = tmp_path / "30_0_0_20170101000000000.jpg.chip.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 3)
    r = run_explain([str(bad), "--model", str(checkpoint), "--out", str(tmp_path / "o.png")], cwd=tmp_path)
    assert r.returncode == 2
    assert str(bad) in one_error_line(r.stderr)
    assert not (tmp_path / "o.png").exists()


def test_explain_cli_not_a_checkpoint(face_file, tmp_path):
    fake = tmp_path / "model.pt"
    fake.write_text("hello\n")  # torch's weights-only unpickler fails on this with a KeyError
    r = run_explain([str(face_file), "--model", str(fake), "--out", str(tmp_path / "o.png")], cwd=tmp_path)
    assert r.returncode == 2
    assert "model.pt" in one_error_line(r.stderr)


def run_in_process(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        run_cli(explain_main, argv)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_explain_true_age_from_name_or_flag(checkpoint, face_file, tmp_path, monkeypatch, capsys):
    made = []
    real_tile = gradcam.tile

    def spy(image, heat, true_age, pred_age, caption="", scale=2):
        made.append((true_age, pred_age, caption))
        return real_tile(image, heat, true_age, pred_age, caption, scale)

    monkeypatch.setattr("agefair.explain.tile", spy)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_in_process([str(face_file), "--model", str(checkpoint)], capsys)
    assert code == 0
    default = Path(face_file.stem + ".gradcam.png")
    assert (tmp_path / default).exists() and out.rstrip().endswith(f"-> {default}")
    assert made[-1][0] == 34.0

    code, _, _ = run_in_process([str(face_file), "--model", str(checkpoint), "--age", "50", "--out", "a.png"], capsys)
    assert code == 0 and made[-1][0] == 50.0

    other = tmp_path / "portrait.png"
    Image.fromarray(faces(1)[0]).save(other)
    code, _, _ = run_in_process([str(other), "--model", str(checkpoint), "--out", "b.png"], capsys)
    assert code == 0 and made[-1][0] is None


@pytest.mark.parametrize("case", ["missing_image", "missing_model", "bad_age", "weights_of_other_model",
                                  "text_file", "random_bytes", "empty_file", "truncated", "model_not_a_dict",
                                  "not_writable"])
def test_explain_errors_in_process(case, checkpoint, face_file, tmp_path, capsys):
    image, model, extra = str(face_file), str(checkpoint), []
    if case == "missing_image":
        image = str(tmp_path / "nope.jpg")
    elif case == "missing_model":
        model = str(tmp_path / "nope.pt")
    elif case == "bad_age":
        extra = ["--age", "-3"]
    elif case in ("weights_of_other_model", "model_not_a_dict"):
        head = "regression" if case == "weights_of_other_model" else "expectation"
        cfg = TrainConfig(model=ModelConfig(backbone="resnet18", image_size=SIZE, head=head))
        weights = torch.load(checkpoint, weights_only=True)["model"] if case == "weights_of_other_model" else 1
        model = str(tmp_path / "other.pt")
        save_checkpoint({"config": cfg.model_dump(mode="json"), "meta": {}, "model": weights}, Path(model))
    elif case == "not_writable":
        out_file = tmp_path / "file"
        out_file.write_text("")
        extra = ["--out", str(out_file / "o.png")]  # a "folder" that is a file
    else:
        model = str(tmp_path / "garbage.pt")
        data = {"text_file": b"hello\n", "random_bytes": np.random.default_rng(0).bytes(4096), "empty_file": b"",
                "truncated": checkpoint.read_bytes()[:100_000]}[case]
        Path(model).write_bytes(data)
    code, out, err = run_in_process([image, "--model", model, "--out", str(tmp_path / "o.png"), *extra], capsys)
    assert code == 2 and out == ""
    one_error_line(err)
    assert not (tmp_path / "o.png").exists()
