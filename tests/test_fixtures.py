"""The fixtures themselves: deterministic synthetic folders, and utkface_dir failing (not skipping) in CI."""

from pathlib import Path

from conftest import build_bad_folder, make_utk_folder

from agefair.data.labels import parse_name


def test_make_utk_folder_deterministic(tmp_path):
    a = make_utk_folder(tmp_path / "a", n=12, seed=4)
    b = make_utk_folder(tmp_path / "b", n=12, seed=4)
    c = make_utk_folder(tmp_path / "c", n=12, seed=5)
    assert a == b
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in a)
    assert {(tmp_path / "a" / n).read_bytes() for n in a}.isdisjoint((tmp_path / "c" / n).read_bytes() for n in c)


def test_make_utk_folder_labels(tmp_path):
    names = make_utk_folder(tmp_path, n=40, seed=0)
    parsed = [parse_name(n) for n in names]
    assert all(p is not None and not p.irregular for p in parsed)
    assert {p.gender for p in parsed} == {0, 1}
    assert {p.race for p in parsed} == {0, 1, 2, 3, 4}
    assert min(p.age for p in parsed) >= 1 and max(p.age for p in parsed) <= 90
    assert len({(tmp_path / n).read_bytes() for n in names}) == 40  # no accidental duplicates


def test_bad_folder_layout(tmp_path):
    bf = build_bad_folder(tmp_path / "bad")
    assert len(bf.good) == 40
    assert (bf.path / bf.files["zero_byte"]).stat().st_size == 0
    assert (bf.path / bf.files["agree_a"]).read_bytes() == (bf.path / bf.files["agree_b"]).read_bytes()
    assert (bf.path / bf.files["conflict_a"]).read_bytes() == (bf.path / bf.files["conflict_b"]).read_bytes()


UTK_TEST = """
def test_uses_data(utkface_dir):
    assert utkface_dir.is_dir()
"""


def _run_with_missing_data(pytester, monkeypatch, ci):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_utk=UTK_TEST)
    monkeypatch.setenv("AGEFAIR_DATA", str(pytester.path / "no-such-folder"))
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")


def test_utkface_dir_fails_in_ci(pytester, monkeypatch):
    result = _run_with_missing_data(pytester, monkeypatch, ci=True)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no-such-folder is missing*AGEFAIR_DATA*"])


def test_utkface_dir_skips_outside_ci(pytester, monkeypatch):
    result = _run_with_missing_data(pytester, monkeypatch, ci=False)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no-such-folder is missing*"])
