"""A bad output path is one line and exit 2, before any work, for every command that writes.

Each command is called with its output flag pointing at (a) an existing regular file where a folder
is expected (or a folder where a file is expected), (b) a path under a regular file and (c) a
folder without write permission (in a child process that obeys permissions, as root too). The
other arguments name things that do not exist: had the command read them first, the error would
name them instead, so the test also shows that the output is checked first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_bad_inputs import _drop_read_override, cli, one_line_error
from train_helpers import REPO_ROOT, subprocess_env

from agefair.cli.outputs import check_output_dir, check_output_file
from agefair.core.errors import AgefairError

# command -> (arguments before the output path, the output flag, whether it names a folder)
COMMANDS = {
    "train": (["--variant", "baseline", "--data", "/nonexistent/data"], "--out", True),
    "audit": (["--runs", "/nonexistent/runs"], "--out", True),
    "eda": (["--data", "/nonexistent/data"], "--out", True),
    "robustness": (["--runs", "/nonexistent/runs"], "--out", True),
    "tune": (["--data", "/nonexistent/data"], "--out", True),
    "run": (["--data", "/nonexistent/data", "--out", "/nonexistent-parent-is-fine/reports"], "--runs", True),
    "run-out": (["--data", "/nonexistent/data", "--runs", "/nonexistent-parent-is-fine/runs"], "--out", True),
    "predict": (["/nonexistent/face.jpg", "--model", "/nonexistent/model.pt"], "--out", False),
    "export": (["--model", "/nonexistent/model.pt"], "--onnx", False),
    "explain": (["/nonexistent/face.jpg", "--model", "/nonexistent/model.pt"], "--out", False),
    "video": (["/nonexistent/clip.mp4", "--model", "/nonexistent/model.pt"], "--out", False),
}
FILE_NAMES = {"export": "model.onnx", "video": "clip.mp4", "explain": "tile.png", "predict": "ages.csv"}


def argv_for(command: str, out: Path) -> tuple[str, list[str]]:
    before, flag, _ = COMMANDS[command]
    return command.removesuffix("-out"), [*before, flag, str(out)]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_existing_file_of_the_wrong_kind(command, tmp_path, capsys):
    _, flag, is_dir = COMMANDS[command]
    if is_dir:
        out = tmp_path / "taken.txt"
        out.write_text("not a folder\n")
        problem = "is a file, not a folder"
    else:
        out = tmp_path / FILE_NAMES[command]
        out.mkdir()
        problem = "is a folder, not a file"
    module, argv = argv_for(command, out)
    code, _, err = cli(module, argv, capsys)
    one_line_error(code, err, f"{flag} {out}: {problem}")
    assert code == 2 and "nonexistent" not in err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_path_under_a_file(command, tmp_path, capsys):
    _, flag, is_dir = COMMANDS[command]
    blocker = tmp_path / "plain.txt"
    blocker.write_text("x\n")
    out = blocker / "deeper" / ("reports" if is_dir else FILE_NAMES[command])
    module, argv = argv_for(command, out)
    code, _, err = cli(module, argv, capsys)
    one_line_error(code, err, f"{flag} {out}: {blocker} is a file, not a folder")
    assert code == 2 and blocker.read_text() == "x\n"


def _write_permission_respecting(locked: Path) -> dict:
    """subprocess.run arguments under which ``locked`` (mode 555) cannot be written: none for a normal
    user; for root a child without the capabilities that bypass permissions. Skips where neither works."""
    import os

    kwargs = {"preexec_fn": _drop_read_override} if os.geteuid() == 0 else {}
    try:
        probe = subprocess.run([sys.executable, "-c", f"import os; os.mkdir({str(locked / 'probe')!r})"],
                               capture_output=True, text=True, timeout=60, **kwargs)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot start a process that obeys file permissions here: {exc}")
    if probe.returncode == 0:
        (locked / "probe").rmdir()
        pytest.skip("this process writes into read-only folders (privileged): nothing to test")
    return kwargs


def test_folder_without_write_permission(tmp_path):
    """Every command, in one child process that obeys file permissions (as root: without the
    capabilities that bypass them): an output in a read-only folder is refused before any work,
    and nothing is created there."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        kwargs = _write_permission_respecting(locked)
        cases = {c: argv_for(c, locked / ("out" if COMMANDS[c][2] else FILE_NAMES[c])) for c in COMMANDS}
        script = (
            "import importlib, io, json, sys, contextlib\n"
            "from agefair.core.errors import run_cli\n"
            "results = {}\n"
            f"for name, (module, argv) in json.loads({json.dumps(json.dumps(cases))}).items():\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        try:\n"
            "            run_cli(importlib.import_module('agefair.' + module).main, argv)\n"
            "        except SystemExit as exc:\n"
            "            code = exc.code\n"
            "    results[name] = [code, err.getvalue()]\n"
            "print(json.dumps(results))\n")
        proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=subprocess_env(),
                              capture_output=True, text=True, timeout=180, **kwargs)
        assert proc.returncode == 0, proc.stderr
        results = json.loads(proc.stdout.splitlines()[-1])
        for name, (code, err) in results.items():
            flag = COMMANDS[name][1]
            one_line_error(code, err, f"{flag} {locked}", "cannot write", "permission denied")
            assert code == 2, name
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_checks_create_nothing(tmp_path):
    """A missing folder is fine (made when the first file is written) and is not created by the check."""
    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert check_output_file(tmp_path / "c" / "d.csv", "--out") == tmp_path / "c" / "d.csv"
    assert sorted(tmp_path.iterdir()) == []
    with pytest.raises(AgefairError, match="names a folder"):
        check_output_file(str(tmp_path / "e") + "/")
