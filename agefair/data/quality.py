"""Data-quality policy: which scanned files are kept, which are dropped, and why.

Each problem has a fixed action:

=====================  ==============================================  =========
problem                what it is                                      action
=====================  ==============================================  =========
malformed_name         a label field is missing from the file name     dropped
irregular_name         all fields present, suffix mangled              kept
not_regular_file       a FIFO, socket, device, broken or looping link  dropped, never opened
zero_byte              empty file                                      dropped
unreadable             not an image, truncated or corrupt              dropped
age_out_of_range       age outside 0..max_age                          dropped
unknown_gender         gender code not 0/1                             dropped
unknown_race           race code not 0-4                               dropped
non_rgb                grayscale, CMYK, palette, alpha, 16-bit         kept, converted to RGB at load
unexpected_size        not the expected size (200x200)                 kept, resized at load
duplicate_agreeing     byte-identical files with the same labels       one kept (first by name), the rest dropped
duplicate_conflicting  byte-identical files whose labels disagree      whole group dropped
=====================  ==============================================  =========

(``configs/data.yaml: duplicates`` can switch the duplicate policy to ``drop_all`` or ``keep_first``.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from agefair.core.config import DataConfig
from agefair.data.labels import ETHNICITIES, GENDERS

ACTIONS = {
    "malformed_name": "dropped: labels cannot be read from the name",
    "irregular_name": "kept: labels read from a name with a mangled suffix",
    "not_regular_file": "dropped: not a regular file (FIFO, socket, device, broken or looping link); never opened",
    "zero_byte": "dropped: empty file",
    "unreadable": "dropped: not a decodable image",
    "age_out_of_range": "dropped: invalid age label",
    "unknown_gender": "dropped: invalid gender code",
    "unknown_race": "dropped: invalid race code",
    "non_rgb": "kept: converted to RGB at load",
    "unexpected_size": "kept: resized at load",
    "duplicate_agreeing": "one file kept, the other copies dropped",
    "duplicate_conflicting": "whole group dropped: labels disagree",
}

NOT_REGULAR = "not a regular file: "  # how agefair.data.scan records a file it did not open
MANIFEST_COLUMNS = ["file", "age", "gender", "ethnicity", "sha256", "width", "height"]


@dataclass
class QualityResult:
    manifest: pd.DataFrame  # kept files, MANIFEST_COLUMNS
    problems: pd.DataFrame  # one row per (file, problem): file, problem, action, detail
    duplicate_groups: pd.DataFrame  # one row per duplicate group: sha256, files, labels, policy outcome
    n_files: int
    actions: dict[str, str] = field(default_factory=lambda: dict(ACTIONS))  # problem -> action, in report order
    hash_columns: list[str] | None = None  # label columns of the manifest hash (None: UTKFace's)

    @property
    def counts(self) -> dict[str, int]:
        return {p: int((self.problems["problem"] == p).sum()) for p in self.actions}

    @cached_property
    def data_hash(self) -> str:
        """manifest_hash of the kept rows, computed once (a million-row manifest takes seconds)."""
        return manifest_hash(self.manifest, self.hash_columns)


def manifest_hash(manifest: pd.DataFrame, label_columns: list[str] | None = None) -> str:
    """Hash of the kept files' names, contents and labels: it changes whenever the data does."""
    cols = ["file", "sha256", *(label_columns if label_columns is not None else ["age", "gender", "ethnicity"])]
    h = hashlib.sha256()
    for row in manifest.sort_values("file")[cols].itertuples(index=False):
        h.update(("|".join(map(str, row)) + "\n").encode())
    return h.hexdigest()


def resolve_duplicates(valid: pd.DataFrame, label_columns: list[str], policy: str,
                       describe: Callable[[pd.Series], str]) -> tuple[set, list[dict], list[tuple[list, str, list]]]:
    """The duplicate policy over rows of identical content (same sha256) in ``valid`` (columns file, sha256
    and ``label_columns``): (index labels to drop, one dict per duplicate group, flags as (files, problem,
    details)). Within a group rows are taken in file order; ``describe(row)`` names one row's labels."""
    dropped: set = set()
    groups_out: list[dict] = []
    flags: list[tuple[list, str, list]] = []
    dup = valid[valid.duplicated("sha256", keep=False)].sort_values(["sha256", "file"], kind="mergesort")
    for digest, g in dup.groupby("sha256", sort=True):
        agree = len(g[label_columns].drop_duplicates()) == 1
        files = list(g["file"])
        if policy == "drop_all" or (policy == "keep_agreeing" and not agree):
            kept, gone = [], list(g.index)
        else:
            kept, gone = files[:1], list(g.index[1:])
        dropped.update(gone)
        problem = "duplicate_agreeing" if agree else "duplicate_conflicting"
        label_text = "; ".join(describe(r) for _, r in g.iterrows())
        action = f"kept {kept[0]}" if kept else "all dropped"
        flags.append((files, problem, [f"group {digest[:12]} ({len(files)} files, {action})"] * len(files)))
        groups_out.append({"sha256": digest, "n_files": len(files), "labels_agree": agree,
                           "kept": kept[0] if kept else "", "files": label_text})
    return dropped, groups_out, flags


def assess(scan: pd.DataFrame, cfg: DataConfig) -> QualityResult:
    """Apply the policy in the module docstring to a scan (agefair.data.scan.scan_folder)."""
    problems: list[dict] = []

    def flag(files, problem, details):
        for f, d in zip(files, details):
            problems.append({"file": f, "problem": problem, "action": ACTIONS[problem], "detail": d})

    dropped = _file_and_label_checks(scan, cfg, flag)
    # Duplicates among the files that survived the checks above.
    valid = scan[~dropped].copy()
    drop_dup, groups_out, dup_flags = resolve_duplicates(
        valid, ["age", "gender", "race"], cfg.duplicates,
        lambda r: f"{r['file']}: age {r['age']}, gender {r['gender']}, race {r['race']}")
    for args in dup_flags:
        flag(*args)
    problem_frame = pd.DataFrame(problems, columns=["file", "problem", "action", "detail"])
    groups = pd.DataFrame(groups_out, columns=["sha256", "n_files", "labels_agree", "kept", "files"])
    return QualityResult(_manifest(valid.drop(index=list(drop_dup))), problem_frame, groups, n_files=len(scan))


def _file_and_label_checks(s: pd.DataFrame, cfg: DataConfig, flag) -> pd.Series:
    """Flag every file-level and label-level problem; the rows that are dropped for one."""
    dropped = pd.Series(False, index=s.index)
    m = s["name_status"] == "malformed"
    flag(s.file[m], "malformed_name", ["expected {age}_{gender}_{race}_{timestamp}.jpg.chip.jpg"] * m.sum())
    dropped |= m
    m = s["name_status"] == "irregular"
    flag(s.file[m], "irregular_name", [f"read as age {a}, gender {g}, race {r}" for a, g, r in
                                       zip(s.age[m], s.gender[m], s.race[m])])
    special = s["read_error"].str.startswith(NOT_REGULAR)
    flag(s.file[special], "not_regular_file", s.read_error[special].str.removeprefix(NOT_REGULAR))
    dropped |= special
    empty = s["read_error"].str.startswith("empty file")
    flag(s.file[empty], "zero_byte", ["0 bytes"] * empty.sum())
    dropped |= empty
    m = (s["read_error"] != "") & ~empty & ~special
    flag(s.file[m], "unreadable", s.read_error[m])
    dropped |= m

    labelled = s["name_status"] != "malformed"
    m = labelled & ((s["age"] < 0) | (s["age"] > cfg.max_age))
    flag(s.file[m], "age_out_of_range", [f"age {a} not in 0..{cfg.max_age}" for a in s.age[m]])
    dropped |= m
    m = labelled & ~s["gender"].isin(list(GENDERS))
    flag(s.file[m], "unknown_gender", [f"gender code {g}" for g in s.gender[m]])
    dropped |= m
    m = labelled & ~s["race"].isin(list(ETHNICITIES))
    flag(s.file[m], "unknown_race", [f"race code {r}" for r in s.race[m]])
    dropped |= m

    readable = s["read_error"] == ""
    m = readable & (s["mode"] != "RGB")
    flag(s.file[m], "non_rgb", [f"mode {x}" for x in s["mode"][m]])
    exp_w, exp_h = cfg.expected_size
    m = readable & ((s["width"] != exp_w) | (s["height"] != exp_h))
    flag(s.file[m], "unexpected_size", [f"{w}x{h}" for w, h in zip(s.width[m], s.height[m])])
    return dropped


def _manifest(keep: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "file": keep["file"].values,
        "age": keep["age"].astype(int).values,
        "gender": keep["gender"].map(GENDERS).values,
        "ethnicity": keep["race"].map(ETHNICITIES).values,
        "sha256": keep["sha256"].values,
        "width": keep["width"].astype(int).values,
        "height": keep["height"].astype(int).values,
    }).sort_values("file").reset_index(drop=True)


def report_dict(result: QualityResult, data_dir: str) -> dict:
    """The data-quality report as plain data (written as data_quality.json)."""
    g = result.duplicate_groups
    return {
        "data_dir": str(data_dir),
        "files_scanned": result.n_files,
        "files_kept": len(result.manifest),
        "files_dropped": result.n_files - len(result.manifest),
        "manifest_hash": result.data_hash,
        "counts": result.counts,
        "actions": result.actions,
        "duplicate_groups": {
            "total": len(g),
            "labels_agree": int(g["labels_agree"].sum()) if len(g) else 0,
            "labels_conflict": int((~g["labels_agree"]).sum()) if len(g) else 0,
            "files_in_groups": int(g["n_files"].sum()) if len(g) else 0,
        },
        "problems": result.problems.to_dict("records"),
    }


def summary_text(report: dict, max_files: int = 10) -> str:
    """Readable summary: a line per problem with its count and action, then up to ``max_files`` names."""
    lines = [
        f"Data quality: {report['data_dir']}",
        f"  files scanned {report['files_scanned']}, kept {report['files_kept']}, "
        f"dropped {report['files_dropped']}",
        f"  duplicate groups {report['duplicate_groups']['total']} "
        f"({report['duplicate_groups']['labels_agree']} with agreeing labels, "
        f"{report['duplicate_groups']['labels_conflict']} conflicting; "
        f"{report['duplicate_groups']['files_in_groups']} files)",
        "",
        f"  {'problem':<22} {'count':>6}  action",
    ]
    by_problem: dict[str, list[dict]] = {}
    for p in report["problems"]:
        by_problem.setdefault(p["problem"], []).append(p)
    for problem, count in report["counts"].items():
        lines.append(f"  {problem:<22} {count:>6}  {report['actions'][problem]}")
        rows = by_problem.get(problem, [])
        for p in rows[:max_files]:
            lines.append(f"      {p['file']}: {p['detail']}")
        if len(rows) > max_files:
            lines.append(f"      ... and {len(rows) - max_files} more (see data_quality.json)")
    return "\n".join(lines)
