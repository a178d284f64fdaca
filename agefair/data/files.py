"""The one walker over the files of a data folder: regular files only, everything else named and skipped.

A FIFO would block whoever opens it forever, a socket or device is no image, a broken symbolic link
has nothing behind it and a link loop makes ``Path.resolve`` raise: ``walk`` lists such entries as
skipped, with the reason (agefair.core.io.special_file_reason), and never opens them. Its users: the
UTKFace scan (agefair.data.scan, where the data-quality report names them as ``not_regular_file``),
the labels-CSV image check (agefair.data.csv_dataset, the same problem) and the files of
``predict``/``video`` (agefair.inference.photos.collect_files, a note line on stderr).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from agefair.core.io import special_file_reason


@dataclass
class Walk:
    files: list[str] = field(default_factory=list)  # regular files (or links to one), relative, sorted
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why), sorted


def walk(root: Path, hidden: bool = False) -> Walk:
    """Every entry below ``root`` that is not a folder: regular files in ``files``, the rest in ``skipped``.

    Hidden names (a leading dot) are left out unless ``hidden``. Symbolic links to folders are not
    followed (no loops, no walking out of the data folder); a link to a regular file counts as one."""
    out = Walk()
    for base, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if hidden or not d.startswith("."))
        for d in list(dirs):  # os.walk lists links to folders (and looping links) as folders: not followed
            full = os.path.join(base, d)
            if os.path.islink(full):
                why = special_file_reason(full)
                if why is not None and why != "a folder":
                    out.skipped.append((os.path.relpath(full, root), why))
        for name in names:
            if not hidden and name.startswith("."):
                continue
            full = os.path.join(base, name)
            rel = os.path.relpath(full, root)
            why = special_file_reason(full)
            if why is None:
                out.files.append(rel)
            elif why != "a folder":
                out.skipped.append((rel, why))
    out.files.sort()
    out.skipped.sort()
    return out
