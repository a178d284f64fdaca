"""Publishing several files, or a whole folder, so that a reader never sees a mix of two versions.

agefair.core.io writes ONE file atomically. Two things need more:

- **A folder swapped in** (``train --overwrite``): the new run is written in a staging folder beside
  the old one (``runs/.<variant>.new``) and replaces it with ``swap_in``: the old folder is renamed
  ``.<variant>.old``, the staging folder renamed into place, the old one removed. On Linux the two
  folders are exchanged in one atomic step (renameat2); elsewhere each step is one rename and
  ``recover_swap`` (called before the folder is used again) finishes a swap a kill cut short, so
  the folder always holds one run, the old or the new.
- **A set of files published together** (the audit's report.html, summary.json, predictions.csv,
  robustness files): ``publishing(out)`` yields a new generation folder ``out/.published/gen-*``;
  the files are written there, and on success one atomic rename points ``out/.published/current``
  (a symbolic link) at it. The documented names ``out/report.html`` etc. are relative symbolic links
  ``.published/current/<name>``, so every name always resolves in the same generation: the new set
  appears all at once, and a kill at any point leaves the previous set whole. Files of the folder
  that belong to the set but are not rewritten (``keep``: the robustness files of a plain audit) are
  carried into the new generation (hard links). A folder of the older layout (regular files) is
  first turned into a generation of its own, so the change of layout shows no mix either.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

PUBLISHED = ".published"
CURRENT = "current"


# --------------------------------------------------------------------------- a folder swapped in

def staging_path(final: Path) -> Path:
    """Where the replacement of ``final`` is written: ``<parent>/.<name>.new``."""
    return final.parent / f".{final.name}.new"


def retired_path(final: Path) -> Path:
    """Where ``final`` is moved while its replacement is renamed into place: ``<parent>/.<name>.old``."""
    return final.parent / f".{final.name}.old"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False  # ENOSYS, EINVAL (a file system without it): the two-rename way


def swap_in(staged: Path, final: Path) -> None:
    """Replace the folder ``final`` (if any) by ``staged``, then remove the old one.

    On Linux one atomic exchange (``final`` is never missing; the old folder is then under the staging
    name, which the next use removes anyway); elsewhere two renames that ``recover_swap`` completes."""
    old = retired_path(final)
    if old.exists():
        shutil.rmtree(old)
    if final.exists() and _exchange(staged, final):
        shutil.rmtree(staged, ignore_errors=True)
        return
    if final.exists():
        os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)


def recover_swap(final: Path) -> str | None:
    """Finish a ``swap_in`` that was cut short; what was done (None: nothing to do).

    ``.old`` exists only between the two renames and the removal: with ``final`` in place the swap
    was complete (the old folder is removed); without it the staged folder is renamed in (it is only
    swapped in once complete), or, with no staged folder either, the old one goes back."""
    old, staged = retired_path(final), staging_path(final)
    if not old.exists():
        return None
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        return "removed the replaced run left by an interrupted swap"
    if staged.exists():
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
        return "finished an interrupted swap: the new run is in place"
    os.replace(old, final)
    return "restored the previous run"


# --------------------------------------------------------------------------- files published together

def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _symlink_atomic(target: str, link: Path) -> None:
    """``link`` -> ``target``, replacing whatever ``link`` was in one rename."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
    if os.path.lexists(tmp):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _managed(out: Path, name: str) -> bool:
    """Whether ``out/name`` is already a link into the published generation."""
    path = out / name
    return path.is_symlink() and os.readlink(path) == f"{PUBLISHED}/{CURRENT}/{name}"


def _new_generation(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    gen = root / f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    gen.mkdir()
    return gen


def _point_current(root: Path, gen: Path) -> None:
    _symlink_atomic(gen.name, root / CURRENT)


def _adopt_old_layout(out: Path, names: Iterable[str]) -> None:
    """Regular files among ``names`` (the layout before generations) become a generation of their own,
    and then links into it, one by one: each link shows the same content as the file it replaces."""
    plain = [n for n in names if (out / n).is_file() and not (out / n).is_symlink()]
    if not plain:
        return
    root = out / PUBLISHED
    gen = _new_generation(root)
    current = root / CURRENT
    if current.is_dir():  # files already published: carry them along
        for item in current.iterdir():
            _link_or_copy(item, gen / item.name)
    for n in plain:
        _link_or_copy(out / n, gen / n)
    _point_current(root, gen)
    for n in plain:
        _symlink_atomic(f"{PUBLISHED}/{CURRENT}/{n}", out / n)


def _clean(root: Path, keep: str) -> None:
    """Remove every generation but ``keep`` (older ones, and any left half-written by a kill)."""
    for item in root.iterdir():
        if item.name.startswith("gen-") and item.name != keep and item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        elif item.name.startswith(".") and item.name.endswith(".link"):
            item.unlink(missing_ok=True)


def published_files(out: Path) -> dict[str, Path]:
    """The files of the current generation of ``out`` (empty when nothing was published there)."""
    current = Path(out) / PUBLISHED / CURRENT
    return {p.name: p for p in sorted(current.iterdir())} if current.is_dir() else {}


@contextmanager
def publishing(out: str | os.PathLike, keep: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a new, empty generation folder; on success publish every file written there, together.

    ``keep``: names in ``out`` that belong to the same set but are not rewritten this time; their
    current version (published, or a regular file of the older layout) joins the new generation.
    On an exception (Ctrl-C included) the generation is removed and ``out`` is left as it was."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keep = list(keep)
    root = out / PUBLISHED
    gen = _new_generation(root)
    try:
        yield gen
        written = sorted(p.name for p in gen.iterdir())
        _adopt_old_layout(out, [*written, *keep])
        current = root / CURRENT
        for n in keep:
            if n not in written and (current / n).is_file():
                _link_or_copy(current / n, gen / n)
        for n in written:  # links of new names dangle until the pointer moves: the set appears at once
            if not _managed(out, n):
                _symlink_atomic(f"{PUBLISHED}/{CURRENT}/{n}", out / n)
        _point_current(root, gen)  # the moment the new set becomes visible
    except BaseException:
        shutil.rmtree(gen, ignore_errors=True)
        raise
    _clean(root, keep=gen.name)
