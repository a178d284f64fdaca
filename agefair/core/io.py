"""Files in and out: atomic writes (a file is either the old version or the complete new one, never half),
the one reader of the text files users give, and the CSV writer that neutralises formula cells."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agefair.core.errors import AgefairError

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    ``suffix`` ends the temporary name: writers that choose a format by extension (OpenCV's
    VideoWriter, the ONNX saver) need e.g. ``".tmp.mp4"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


# --- reading: every text file agefair takes (configs, labels CSVs, predictions CSVs) -----------------

def special_file_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a regular file that can be opened safely, or None when it is one.

    Follows a symlink to its target; never opens anything (a FIFO would block the reader forever).
    Reasons: ``not found``, ``broken symbolic link``, ``symbolic link loop``, ``a folder``, ``a FIFO (named pipe)``,
    ``a socket``, ``a device``, ``not a regular file``."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if exc.errno == errno.ENOENT:
            return "broken symbolic link" if os.path.islink(path) else "not found"
        return f"cannot read: {exc.strerror or type(exc).__name__}"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """The text of a file the user gave (``what`` names it in messages: "config", "labels CSV"...).

    One set of checks for every text input, each a one-line AgefairError naming the file: not found,
    a folder or a FIFO/socket/device (never opened), unreadable, empty, binary (a NUL byte), not UTF-8
    (the first bad byte and its offset). A UTF-8 byte-order mark is dropped."""
    path = Path(path)
    why = special_file_reason(path)
    if why == "not found":
        raise AgefairError(f"{path}: {what} not found")
    if why == "a folder":
        raise AgefairError(f"{path}: a folder, not a {what}")
    if why is not None:
        raise AgefairError(f"{path}: {why}, not a {what}" if not why.startswith("cannot") else f"{path}: {why}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AgefairError(f"{path}: cannot read: {exc.strerror or type(exc).__name__}") from None
    if not data.strip():
        raise AgefairError(f"{path}: empty {what}" + (" (0 bytes)" if not data else " (only white space)"))
    nul = data.find(b"\x00")
    if nul >= 0:
        raise AgefairError(f"{path}: binary file, not a text {what} (NUL byte at offset {nul})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AgefairError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def read_csv_text(path: str | os.PathLike, what: str = "CSV") -> pd.DataFrame:
    """A user's CSV (labels, predictions) as text cells, read with ``read_text``'s checks; the header is
    stripped and must name each column once (a repeated name is an error naming it, never ``name.1``)."""
    import pandas as pd

    path = Path(path)
    text = read_text(path, what)
    try:
        header = next(csv.reader(io.StringIO(text), skipinitialspace=True), [])
    except csv.Error as exc:
        raise AgefairError(f"{path}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    names = [h.strip() for h in header]
    if not any(names):
        raise AgefairError(f"{path}: empty {what} (no header row)")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise AgefairError(f"{path}: column {name!r} appears more than once in the header")
        seen.add(name)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise AgefairError(f"{path}: empty {what} (no header row)") from None
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise AgefairError(f"{path}: not a readable CSV: {first}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


# --- writing CSVs: cells a spreadsheet would run as a formula are neutralised ---------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """A text cell starting with = + - @ tab or CR gets a leading ``'`` so that a spreadsheet shows it as
    text instead of running it (CSV injection: ``=HYPERLINK(...)`` in a file name); a text cell that is a
    plain number (``-3.5``) and every non-text value are left as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def write_csv_atomic(path: str | os.PathLike, frame: pd.DataFrame, **to_csv: Any) -> None:
    """Write ``frame`` (without its index) atomically, each text cell passed through ``neutralise_cell``;
    numeric columns are written untouched. ``to_csv``: more pandas options (``float_format``...)."""
    import pandas as pd

    out = frame.copy()
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    carriage_return = False
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        col = col.astype(object).map(neutralise_cell)
        carriage_return |= bool(col.map(lambda v: isinstance(v, str) and "\r" in v).any())
        out.isetitem(i, col)
    if carriage_return:  # the csv module leaves a lone CR unquoted with a "\n" line end: quote the text cells
        to_csv.setdefault("quoting", csv.QUOTE_NONNUMERIC)
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, **to_csv)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
