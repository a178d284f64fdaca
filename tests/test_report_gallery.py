"""The report's Grad-CAM galleries: every distinct picture is in the page once (a CSS rule per picture, tiles
refer to its class), only PNG/JPEG base64 data URIs reach the page's CSS, captions are escaped, and a click
enlarges a thumbnail (a small inline script; without it the thumbnails still show)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image
from test_report import fake_galleries, png_data_uri, synthetic_summary

from agefair.reporting.details import Galleries, gallery_sections
from agefair.reporting.page import TEMPLATE_DIR, build_context, stylesheet
from agefair.reporting.report import render_html

THUMB = re.compile(r'<span class="thumb (gc-[0-9a-f]{10})" role="img" aria-label="([^"]*)"></span>')


def gallery_part(page: str) -> str:
    """The gallery section (the report cards before it show some tiles again, by the same classes)."""
    return page[page.index('<section id="gallery">'):]
RULE = re.compile(r"\.(gc-[0-9a-f]{10}) \{ background-image: url\(([^)]*)\); aspect-ratio: (\d+) / (\d+);")


def jpeg_uri(seed: int, size: tuple[int, int] = (130, 64)) -> str:
    """A smooth synthetic face-and-overlay thumbnail as gradcam.gallery makes them (JPEG data URI)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    disc = ((xx - rng.uniform(20, 40)) ** 2 + (yy - h / 2) ** 2 < 18 ** 2)[..., None]
    arr = rng.uniform(40, 200, 3) + xx[..., None] * rng.uniform(-1, 1, 3) + 60 * disc
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def shared_galleries(n: int = 6) -> tuple[dict, list[str]]:
    """Two variants whose every tile is in the overall, an ethnicity and an age-bin gallery; 'b' reuses
    half of 'a's pictures. Returns (galleries, the distinct URIs)."""
    uris = [jpeg_uri(i) for i in range(n + n // 2)]

    def tile(i: int, group: str) -> dict:
        return {"file": f"{20 + i}_0_1_2017{i:04d}.jpg.chip.jpg", "true": 20.0 + i, "pred": 40.0 + i,
                "error": 20.0, "group": group, "img": uris[i]}

    def variant(rows: list[int]) -> dict:
        return {"overall": {"overall": [tile(i, "overall") for i in rows]},
                "ethnicity": {"White": [tile(i, "White") for i in rows[::2]],
                              "Black": [tile(i, "Black") for i in rows[1::2]]},
                "age_bin": {"20-29": [tile(i, "20-29") for i in rows]}}
    return {"a": variant(list(range(n))), "b": variant(list(range(n // 2, n + n // 2)))}, uris


@pytest.fixture(scope="module")
def summary() -> dict:
    return synthetic_summary({"a": (0.0, 4.0), "b": (1.0, 5.0)})


def test_each_picture_is_in_the_page_once(summary):
    galleries, uris = shared_galleries()
    page = render_html(summary, galleries)
    n_tiles = sum(len(ts) for g in galleries.values() for groups in g.values() for ts in groups.values())
    thumbs = THUMB.findall(gallery_part(page))
    assert len(thumbs) == n_tiles > len(uris)
    rules = {cls: (uri, int(w), int(h)) for cls, uri, w, h in RULE.findall(page)}
    assert len(rules) == len(uris) and {u for u, _, _ in rules.values()} == set(uris)
    assert {cls for cls, _ in thumbs} == set(rules)
    assert all((w, h) == (130, 64) for _, w, h in rules.values())  # the pictures' own sizes
    for uri in uris:
        assert page.count(uri.split(",", 1)[1]) == 1
    assert "<img" not in page
    assert page.count('id="gc-lightbox"') == 1 and page.count("function close()") == 1


def test_older_png_tiles_are_still_shown(summary):
    gal = fake_galleries(("a",), k=1)  # the PNG tiles of earlier summaries
    page = render_html(summary, gal)
    rules = RULE.findall(page)
    assert rules and all(uri.startswith("data:image/png;base64,") for _, uri, _, _ in rules)
    assert (png_data_uri((0, 90, 160)), "12", "14") in [r[1:] for r in rules]
    assert len(THUMB.findall(gallery_part(page))) == sum(len(ts) for groups in gal["a"].values() for ts in groups.values())


@pytest.mark.parametrize("bad", [
    "data:image/png;base64,AAA);}body{display:none",
    "data:image/png;base64,AAA) } body { display: none",
    "data:image/png;base64,AAAA\n}body{display:none}",
    "data:image/png;base64,AAAA",  # well-formed base64, not a picture
    "data:image/svg+xml;base64," + base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode(),
    "data:image/jpeg;base64," + base64.b64encode(b"GIF89a" + bytes(20)).decode(),  # not what it says it is
    "https://example.com/face.png",
    None,
])
def test_only_png_and_jpeg_data_uris_reach_the_css(summary, bad):
    galleries, uris = shared_galleries(2)
    galleries["a"]["overall"]["overall"][0]["img"] = bad
    page = render_html(summary, galleries)
    style = page[page.index('<section id="gallery">'):]
    style = style[:style.index("</style>")]
    assert "display" not in style and "image/svg" not in style and "example.com" not in page
    assert len(RULE.findall(page)) == len(uris)  # the same picture is still in the other galleries
    assert "no image" in page


def test_no_picture_at_all_is_still_a_gallery(summary):
    galleries, _ = shared_galleries(2)
    for g in galleries.values():
        for groups in g.values():
            for ts in groups.values():
                for t in ts:
                    t["img"] = "data:image/png;base64,AAA);}body{display:none"
    page = render_html(summary, galleries)
    section = page[page.index('<section id="gallery">'):]
    section = section[:section.index("</section>")]
    assert not RULE.findall(page) and "display:none" not in section and "url(" not in section
    assert "no image" in section and 'id="gc-lightbox"' in section


def test_file_names_are_escaped(summary):
    galleries, _ = shared_galleries(2)
    evil = '"><script>alert(1)</script><b>.jpg'
    for g in galleries["a"].values():
        for ts in g.values():
            for t in ts:
                t["file"] = evil
    page = render_html(summary, galleries)
    assert evil not in page and "<script>alert(1)" not in page
    escaped = "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;.jpg"
    assert f'aria-label="Grad-CAM of {escaped}"' in page
    n_a = sum(len(ts) for groups in galleries["a"].values() for ts in groups.values())
    assert [label for _, label in THUMB.findall(gallery_part(page))].count(f"Grad-CAM of {escaped}") == n_a


def test_gallery_context():
    galleries, uris = shared_galleries(2)
    out = gallery_sections(galleries, ["a", "b", "c"])
    assert isinstance(out, Galleries)
    assert [s["variant"] for s in out.sections] == ["a", "b", "c"] and out.sections[2]["missing"]
    assert [i.uri for i in out.images] == uris  # in order of first appearance, each once
    assert all(re.fullmatch(r"gc-[0-9a-f]{10}", i.cls) for i in out.images)
    assert len({i.cls for i in out.images}) == len(uris)
    assert gallery_sections(galleries, ["a"]).images[0].cls == out.images[0].cls  # the class is the URI's hash
    tile = out.sections[0]["overall"][0]
    assert tile["cls"] == out.images[0].cls and "src" not in tile


def test_page_context_keys(summary):
    galleries, uris = shared_galleries(2)
    ctx = build_context(summary, galleries)
    assert isinstance(ctx["galleries"], list) and [g["variant"] for g in ctx["galleries"]] == ["a", "b"]
    assert [i.uri for i in ctx["gallery_images"]] == uris
    empty = build_context(summary, {})
    assert empty["galleries"] == [] and empty["gallery_images"] == []


def test_stylesheet_inlines_every_css_file():
    css = str(stylesheet())
    style = (TEMPLATE_DIR / "style.css").read_text(encoding="utf-8")
    gallery = (TEMPLATE_DIR / "gallery.css").read_text(encoding="utf-8")
    assert css.startswith(style) and gallery in css
    assert ".gc-lightbox[hidden]" in css and ".thumb" in css
