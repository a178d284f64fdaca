import numpy as np
import pytest
from PIL import Image

from agefair.core.errors import AgefairError
from agefair.data.images import MAX_PIXELS, ImageReadError, open_rgb


def _check_rgb8(img):
    assert img.mode == "RGB"
    assert np.asarray(img).dtype == np.uint8


def test_rgb_jpeg(tmp_path):
    p = tmp_path / "a.jpg"
    Image.new("RGB", (20, 10), (200, 100, 50)).save(p)
    img, mode = open_rgb(p)
    _check_rgb8(img)
    assert mode == "RGB" and img.size == (20, 10)


def test_grayscale(tmp_path):
    p = tmp_path / "g.png"
    Image.new("L", (12, 8), 77).save(p)
    img, mode = open_rgb(p)
    _check_rgb8(img)
    assert mode == "L" and img.size == (12, 8)
    assert np.all(np.asarray(img) == 77)


def test_rgba_png_alpha_on_white(tmp_path):
    p = tmp_path / "a.png"
    im = Image.new("RGBA", (2, 1))
    im.putpixel((0, 0), (10, 20, 30, 0))  # fully transparent -> white
    im.putpixel((1, 0), (255, 0, 0, 255))  # opaque red stays red
    im.save(p)
    img, mode = open_rgb(p)
    _check_rgb8(img)
    assert mode == "RGBA"
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((1, 0)) == (255, 0, 0)


def test_palette_with_transparency(tmp_path):
    p = tmp_path / "p.png"
    im = Image.new("P", (2, 1))
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    im.putpixel((0, 0), 0)
    im.putpixel((1, 0), 1)
    im.info["transparency"] = 0
    im.save(p, transparency=0)
    img, mode = open_rgb(p)
    assert mode == "P"
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((1, 0)) == (0, 255, 0)


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "c.jpg"
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(p)  # no ink: white
    img, mode = open_rgb(p)
    _check_rgb8(img)
    assert mode == "CMYK" and img.size == (16, 16)
    assert np.asarray(img).min() > 240


def test_16bit_png_rescaled(tmp_path):
    p = tmp_path / "d.png"
    Image.fromarray(np.array([[0, 65535], [32768, 257]], dtype=np.uint16)).save(p)
    img, mode = open_rgb(p)
    _check_rgb8(img)
    assert mode.startswith("I")  # I;16 on current Pillow
    r = np.asarray(img)[..., 0]
    assert r[0, 0] == 0 and r[0, 1] == 255
    assert 126 <= r[1, 0] <= 128
    assert r[1, 1] == 1


def test_exif_orientation(tmp_path):
    p = tmp_path / "o.jpg"
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(p, exif=exif.tobytes())
    with Image.open(p) as raw:
        assert raw.size == (40, 20)
        assert raw.getexif().get(0x0112) == 6
    img, _ = open_rgb(p)
    assert img.size == (20, 40)


def _assert_error(path, exc_info, *words):
    msg = str(exc_info.value)
    assert str(path) in msg
    assert "\n" not in msg
    for w in words:
        assert w in msg
    assert isinstance(exc_info.value, AgefairError)


def test_zero_byte(tmp_path):
    p = tmp_path / "25_0_0_1.jpg.chip.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError) as ei:
        open_rgb(p)
    _assert_error(p, ei, "empty")


def test_missing_file(tmp_path):
    p = tmp_path / "nope.jpg"
    with pytest.raises(ImageReadError) as ei:
        open_rgb(p)
    _assert_error(p, ei)


def test_text_named_jpg(tmp_path):
    p = tmp_path / "25_0_0_1.jpg.chip.jpg"
    p.write_text("hello, not a jpeg\n")
    with pytest.raises(ImageReadError) as ei:
        open_rgb(p)
    _assert_error(p, ei, "not an image")


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    full = tmp_path / "full.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    p = tmp_path / "half.jpg"
    data = full.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    open_rgb(full)  # the original is fine
    with pytest.raises(ImageReadError) as ei:
        open_rgb(p)
    _assert_error(p, ei)


def test_pixel_limit_small(tmp_path):
    p = tmp_path / "n.png"
    Image.new("RGB", (100, 50)).save(p)
    open_rgb(p, max_pixels=5000)  # exactly at the limit is allowed
    with pytest.raises(ImageReadError) as ei:
        open_rgb(p, max_pixels=4999)
    _assert_error(p, ei, "refused", "100x50")


def test_pixel_limit_default_own_check(tmp_path):
    # 7000x7000 = 49 Mpx: above agefair's 40 Mpx limit but below PIL's bomb warning (~89 Mpx)
    p = tmp_path / "big.png"
    Image.new("1", (7000, 7000)).save(p)
    assert 7000 * 7000 > MAX_PIXELS
    with pytest.raises(ImageReadError) as ei:
        open_rgb(p)
    _assert_error(p, ei, "refused")


def test_decompression_bomb_default(tmp_path):
    # 10000x10000 = 100 Mpx: PIL's own DecompressionBombWarning fires in Image.open
    p = tmp_path / "bomb.png"
    Image.new("1", (10000, 10000)).save(p)
    with pytest.raises(ImageReadError) as ei:
        open_rgb(p)
    _assert_error(p, ei, "refused")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_corrupt_tiff_is_image_read_error(tmp_path):
    from conftest import corrupt_tiff_bytes

    p = tmp_path / "26_0_0_20170101000000002.jpg.chip.jpg"
    p.write_bytes(corrupt_tiff_bytes())
    with pytest.raises(ImageReadError) as ei:
        open_rgb(p)
    _assert_error(p, ei)
