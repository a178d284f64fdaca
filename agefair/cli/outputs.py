"""Checking where a command will write, right after parsing and before any work.

Every command that writes calls ``check_output_dir`` (an output folder: --out of train, audit, eda,
robustness, tune; run's --runs and --out) or ``check_output_file`` (one output file: predict --out,
export --onnx, explain --out, video --out). A path that cannot be written is ONE line
``agefair: error: --out PATH: problem`` (exit 2) before anything is read, trained or computed:

- an existing regular file where a folder is expected (or a folder where a file is expected);
- a path under a regular file (``report.txt/out``);
- a folder that cannot be written (no write permission, a read-only file system).

Nothing is created: a missing folder is made when the first file is written, so bad input later on
(a missing data folder, a bad config) leaves no empty output folder behind. The check is a real
write: a probe folder is made and removed in the nearest existing folder, so it is right for root
without the capabilities that bypass permissions, for read-only mounts and for ACLs alike.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from agefair.core.errors import AgefairError
from agefair.core.publish import publishing
from agefair.fairness.auditing import robustness


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (lexically, so ``a/../b`` is not resolved away)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _probe_writable(folder: Path, flag: str, shown: Path) -> None:
    """Make and remove a probe folder in ``folder``; a one-line error when that is refused."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".agefair-probe-", dir=folder))
    except OSError as exc:
        where = "" if folder == shown else f" in {folder}"
        raise AgefairError(f"{flag} {shown}: cannot write{where}: "
                           f"{(exc.strerror or str(exc)).lower()}") from None


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a Path, once it is known to be (or to be creatable as) a writable folder."""
    path = Path(path)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        if existing == path:
            raise AgefairError(f"{flag} {path}: is a file, not a folder")
        raise AgefairError(f"{flag} {path}: {existing} is a file, not a folder")
    _probe_writable(existing, flag, path)
    return path


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a Path, once it is known that a file can be written (atomically, beside it) there."""
    text, path = os.fspath(path), Path(path)
    if path.is_dir():
        raise AgefairError(f"{flag} {path}: is a folder, not a file")
    if text.endswith(os.sep) or path.name in ("", ".", ".."):
        raise AgefairError(f"{flag} {path}: names a folder, not a file")
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise AgefairError(f"{flag} {path}: {existing} is a file, not a folder")
    _probe_writable(existing, flag, path)
    return path


# The files of REPORT_DIR that make one published set (agefair.core.publish): the audit's three and
# the robustness audit's two. Each command rewrites its own and carries the others along unchanged.
AUDIT_FILES = ("summary.json", "predictions.csv", "report.html")
ROBUSTNESS_FILES = (robustness.JSON_NAME, robustness.CSV_NAME)
STATE_AUDIT = "state_audit.json"  # audit --state: the grouped metrics of saved states


def publishing_audit(out: Path):
    """``with publishing_audit(out) as gen:`` write the audit's files (and robustness files when it ran
    them) in ``gen``; they appear in ``out`` together at the end, robustness files not rewritten kept."""
    return publishing(out, keep=(*ROBUSTNESS_FILES, STATE_AUDIT))


def publishing_robustness(out: Path):
    """``with publishing_robustness(out) as gen:`` write robustness.json and .csv in ``gen``; the audit's
    files already published in ``out`` stay part of the set."""
    return publishing(out, keep=(*AUDIT_FILES, STATE_AUDIT))


def publishing_state_audit(out: Path):
    """``with publishing_state_audit(out) as gen:`` write state_audit.json in ``gen``; the audit's and the
    robustness files already published in ``out`` stay part of the set."""
    return publishing(out, keep=(*AUDIT_FILES, *ROBUSTNESS_FILES))
