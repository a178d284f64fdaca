"""Where a table's rows come from: one file, a folder (a Parquet dataset, hive-partitioned or not, or a
folder of CSV files), or a glob of files (``logs/2026-*/*.csv``, ``checks/**/*.parquet``).

``table_partitions(spec)`` lists the partitions (files) in a fixed order (sorted by path); ``read_partitions``
reads them one after another (Parquet in row batches of ``BATCH_ROWS`` through pyarrow, a CSV file whole, as
every text input: agefair.core.io.read_csv_text), checks each against the first partition's columns and
returns the rows with a count of what was read (``SourceCounts``). Hive folder names (``month=2026-11``)
become text columns of the rows under them.

Every problem is one AgefairError line naming the file: a file that is not a readable Parquet file or CSV,
a partition whose columns differ from the first one's, a folder or glob with no table file, a mix of CSV and
Parquet. An empty partition (a header or schema, no row) is read and counted, never an error. Nothing is
skipped silently: the counts say how many files and rows were read.

Files and folders whose names start with ``.`` or ``_`` are not partitions (``_SUCCESS``, ``_metadata``,
``.part-0.parquet.crc``): the convention of Spark, Hive and pyarrow.dataset.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pandas as pd

from agefair.core.errors import AgefairError
from agefair.core.io import file_sha256, read_csv_text, special_file_reason

PARQUET = (".parquet", ".pq")
CSV = (".csv",)
BATCH_ROWS = 65_536  # rows per Parquet read (the rows are then held together: see read_partitions)
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class SourceCounts:
    """What was read: the files (partitions), the empty ones, the rows, the Parquet row batches."""

    kind: str  # "file", "folder" or "glob"
    format: str  # "csv" or "parquet"
    partitions: int
    empty: int
    rows: int
    batches: int
    hive_columns: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"kind": self.kind, "format": self.format, "partitions": self.partitions, "empty": self.empty,
                "rows": self.rows, "batches": self.batches, "hive_columns": list(self.hive_columns)}


def _hidden(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def _table_files(root: Path, candidates: list[Path]) -> list[Path]:
    """The candidates named as tables, sorted; a folder so named (Spark's ``table.parquet/``) is descended,
    anything else so named (a FIFO, a broken link) is kept, to be refused by name when it is read."""
    return sorted(p for p in candidates if p.suffix.lower() in PARQUET + CSV and not p.is_dir()
                  and not _hidden(p.relative_to(root)))


def table_partitions(spec: str | Path) -> tuple[str, Path, list[Path]]:
    """(kind, root, files) of ``--table SPEC``: a file, a folder's table files (recursively), or a glob's."""
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        files = _table_files(path, list(path.rglob("*")))
        if not files:
            raise AgefairError(f"{path}: no .parquet, .pq or .csv file in the folder")
        return "folder", path, _one_format(path, files)
    if not path.exists() and GLOB_CHARS & set(text):
        root = _glob_root(text)
        files = _table_files(root, [Path(m) for m in glob.glob(text, recursive=True)])
        if not files:
            raise AgefairError(f"{text}: no .parquet, .pq or .csv file matches the pattern")
        return "glob", root, _one_format(Path(text), files)
    _refuse_special(path)
    return "file", path.parent, [path]


def _refuse_special(path: Path) -> None:
    """One line when ``path`` is not a regular file (missing, a folder, a FIFO, a broken link ...)."""
    why = special_file_reason(path)
    if why is not None:
        raise AgefairError(f"{path}: {'table not found' if why == 'not found' else why + ', not a table'}")


def _glob_root(text: str) -> Path:
    """The folder above a pattern's first wildcard (where hive folder names start)."""
    parts = Path(text).parts
    fixed = []
    for part in parts:
        if GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _one_format(spec: Path, files: list[Path]) -> list[Path]:
    kinds = {f.suffix.lower() in PARQUET for f in files}
    if len(kinds) > 1:
        first_csv = next(f for f in files if f.suffix.lower() in CSV)
        first_pq = next(f for f in files if f.suffix.lower() in PARQUET)
        raise AgefairError(f"{spec}: mixes CSV and Parquet partitions ({first_csv.name}, {first_pq.name}); "
                           f"audit one format at a time")
    return files


def hive_values(root: Path, file: Path) -> dict[str, str]:
    """The ``key=value`` folder names between ``root`` and ``file`` (values URL-decoded, as pyarrow writes them)."""
    try:
        rel = file.relative_to(root)
    except ValueError:
        return {}
    out = {}
    for part in rel.parent.parts:
        key, eq, value = part.partition("=")
        if eq and key:
            out[unquote(key)] = unquote(value)
    return out


def _read_parquet(path: Path) -> tuple[pd.DataFrame, int]:
    """A Parquet file's rows, read batch by batch (one-line errors naming the file), and its batch count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _refuse_special(path)
    try:
        reader = pq.ParquetFile(path)
        batches = list(reader.iter_batches(batch_size=BATCH_ROWS))
        table = pa.Table.from_batches(batches, schema=reader.schema_arrow)
        frame = table.to_pandas()
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem, said in one line
        raise _unreadable(path, exc) from None
    return _named(path, frame), len(batches)


def _unreadable(path: Path, exc: Exception) -> AgefairError:
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return AgefairError(f"{path}: not a readable Parquet file: {first}")


def _named(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its column names stripped; a name that appears twice is one line naming ``path``."""
    names = [str(c).strip() for c in frame.columns]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise AgefairError(f"{path}: column {dup!r} appears more than once")
    frame.columns = names
    return frame


def read_partition(path: Path) -> tuple[pd.DataFrame, int]:
    """One partition's rows (Parquet as stored, CSV as text) and its Parquet batch count (0 for a CSV)."""
    if path.suffix.lower() in PARQUET:
        return _read_parquet(path)
    return read_csv_text(path, "table"), 0


def _check_columns(first: Path, columns: list[str], path: Path, got: list[str]) -> None:
    if set(got) == set(columns):
        return
    missing, extra = [c for c in columns if c not in got], [c for c in got if c not in columns]
    said = "; ".join(x for x in (f"missing {', '.join(map(repr, missing))}" if missing else "",
                                 f"extra {', '.join(map(repr, extra))}" if extra else "") if x)
    raise AgefairError(f"{path}: its columns differ from the first partition's ({first.name}): {said}")


def _same_keys(path: Path, hive: dict[str, str], keys: list[str] | None) -> list[str]:
    """The hive keys of the first partition; another partition's must be the same."""
    if keys is not None and list(hive) != keys:
        raise AgefairError(f"{path}: its folder names give the columns {list(hive)}, the first partition's "
                           f"{keys} (a hive dataset has the same keys at every level)")
    return list(hive) if keys is None else keys


def _with_hive(first: Path, path: Path, frame: pd.DataFrame, hive: dict[str, str], columns: list[str] | None
               ) -> list[str]:
    """Adds the folder names' columns to ``frame`` (in place); the first frame's columns, which every
    frame must have."""
    for key, value in hive.items():
        if key in frame.columns:
            raise AgefairError(f"{path}: column {key!r} is both in the file and in its folder name")
        frame[key] = value
    columns = list(frame.columns) if columns is None else columns
    _check_columns(first, columns, path, list(frame.columns))
    return columns


def read_partitions(spec: str | Path) -> tuple[pd.DataFrame, SourceCounts, list[Path], Path]:
    """Every partition's rows in one frame (index 0..n-1), what was read, the files and their root."""
    kind, root, files = table_partitions(spec)
    frames, columns, empty, batches, hive_keys = [], None, 0, 0, None
    for path in files:
        frame, n_batches = read_partition(path)
        hive = hive_values(root, path) if kind != "file" else {}
        hive_keys = _same_keys(path, hive, hive_keys)
        columns = _with_hive(files[0], path, frame, hive, columns)
        empty += len(frame) == 0
        batches += n_batches
        frames.append(frame[columns])
    rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    counts = SourceCounts(kind=kind, format="parquet" if files[0].suffix.lower() in PARQUET else "csv",
                          partitions=len(files), empty=empty, rows=len(rows), batches=batches,
                          hive_columns=tuple(hive_keys or ()))
    return rows, counts, files, root


def source_sha256(files: list[Path], root: Path) -> str:
    """The SHA-256 of one file, or of the list of (path under root, file SHA-256) of several partitions."""
    if len(files) == 1:
        return file_sha256(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(root).as_posix()}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def iter_batches(spec: str | Path, counts: dict) -> Iterator[pd.DataFrame]:
    """Every partition's rows, a Parquet row batch (``BATCH_ROWS``) or a CSV file at a time, checked as
    ``read_partitions`` checks them (the same columns, hive keys); ``counts`` fills in as they are read
    (``SourceCounts`` fields, and ``files`` and ``root`` for ``source_sha256``). Memory holds one batch."""
    import pyarrow.parquet as pq

    kind, root, files = table_partitions(spec)
    counts.update(kind=kind, format="parquet" if files[0].suffix.lower() in PARQUET else "csv", partitions=len(files),
                  empty=0, rows=0, batches=0, files=files, root=root)
    columns, hive_keys = None, None
    for path in files:
        hive = hive_values(root, path) if kind != "file" else {}
        hive_keys = _same_keys(path, hive, hive_keys)
        counts["hive_columns"] = tuple(hive_keys)
        n_file = 0
        for frame in _file_batches(path, pq):
            columns = _with_hive(files[0], path, frame, hive, columns)
            n_file += len(frame)
            counts["rows"] += len(frame)
            counts["batches"] += int(counts["format"] == "parquet" and len(frame) > 0)
            yield frame[columns]
        counts["empty"] += n_file == 0


def _file_batches(path: Path, pq) -> Iterator[pd.DataFrame]:
    """A file's rows in batches: a Parquet file's row batches, a CSV file whole; one-line errors naming it."""
    if path.suffix.lower() not in PARQUET:
        yield read_csv_text(path, "table")
        return
    _refuse_special(path)
    try:
        reader = pq.ParquetFile(path)
        if reader.metadata.num_rows == 0:
            yield _named(path, reader.schema_arrow.empty_table().to_pandas())
            return
        for batch in reader.iter_batches(batch_size=BATCH_ROWS):
            yield _named(path, batch.to_pandas())
    except AgefairError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem, said in one line
        raise _unreadable(path, exc) from None
