"""agefair.core.publish: files published together, folders swapped in, and what a kill leaves."""

from __future__ import annotations

import os

import pytest

from agefair.core.publish import (
    PUBLISHED,
    publishing,
    recover_swap,
    retired_path,
    staging_path,
    swap_in,
)

SET = ("summary.json", "report.html", "predictions.csv")


def publish(out, tag: str, names=SET, keep=()):
    with publishing(out, keep=keep) as gen:
        for n in names:
            (gen / n).write_text(tag)


def contents(out, names=SET) -> set[str]:
    return {(out / n).read_text() for n in names}


def test_a_set_appears_together_and_replaces_the_last(tmp_path):
    out = tmp_path / "reports"
    publish(out, "one")
    assert contents(out) == {"one"}
    publish(out, "two")
    assert contents(out) == {"two"}
    assert all((out / n).is_symlink() for n in SET)
    assert [p.name for p in (out / PUBLISHED).iterdir() if p.name.startswith("gen-")] == \
        [os.readlink(out / PUBLISHED / "current")]  # older generations removed


def test_an_interrupted_publication_leaves_the_previous_set(tmp_path):
    out = tmp_path / "reports"
    publish(out, "one")
    with pytest.raises(KeyboardInterrupt):
        with publishing(out) as gen:
            (gen / "summary.json").write_text("two")
            raise KeyboardInterrupt
    assert contents(out) == {"one"}
    # a generation left half-written by a kill is never pointed at, and the next publication removes it
    (out / PUBLISHED / "gen-killed").mkdir()
    (out / PUBLISHED / "gen-killed" / "summary.json").write_text("killed")
    assert contents(out) == {"one"}
    publish(out, "three")
    assert contents(out) == {"three"} and not (out / PUBLISHED / "gen-killed").exists()


def test_kept_files_join_the_new_set(tmp_path):
    out = tmp_path / "reports"
    publish(out, "rob", names=("robustness.json",), keep=SET)
    publish(out, "audit", keep=("robustness.json",))
    assert contents(out) == {"audit"} and (out / "robustness.json").read_text() == "rob"
    publish(out, "rob2", names=("robustness.json",), keep=SET)
    assert contents(out) == {"audit"} and (out / "robustness.json").read_text() == "rob2"


def test_the_older_layout_of_regular_files_is_adopted(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    for n in (*SET, "robustness.json"):
        (out / n).write_text("old")
    (out / "eda.html").write_text("eda")  # not part of the set: untouched
    publish(out, "new", keep=("robustness.json",))
    assert contents(out) == {"new"} and (out / "robustness.json").read_text() == "old"
    assert (out / "eda.html").read_text() == "eda" and not (out / "eda.html").is_symlink()


def test_swap_in_and_every_state_a_kill_can_leave(tmp_path):
    final = tmp_path / "baseline"
    final.mkdir()
    (final / "id").write_text("old")
    staged = staging_path(final)
    staged.mkdir()
    (staged / "id").write_text("new")
    swap_in(staged, final)
    assert (final / "id").read_text() == "new" and not staged.exists() and not retired_path(final).exists()
    assert recover_swap(final) is None

    # killed after the first rename: the old run moved aside, the new one not yet in place
    staged.mkdir()
    (staged / "id").write_text("newer")
    os.replace(final, retired_path(final))
    assert "finished" in recover_swap(final)
    assert (final / "id").read_text() == "newer" and not retired_path(final).exists()

    # killed after both renames, before the old folder was removed
    retired_path(final).mkdir()
    assert "removed" in recover_swap(final) and (final / "id").read_text() == "newer"

    # only the moved-aside folder (the staged one was never made): it goes back
    os.replace(final, retired_path(final))
    assert "restored" in recover_swap(final) and (final / "id").read_text() == "newer"
