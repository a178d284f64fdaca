"""The shape rules of docs/development.md, checked on every module of the package: a top-level module
of agefair/ is a command (it defines ``main``); no module is over MAX_MODULE_LINES lines; no function is
over MAX_FUNCTION_LINES lines unless a ``# long: <reason>`` comment on the line above its ``def`` says why.
(Import direction and cycles are import-linter's contracts in pyproject.toml, run by make lint.)"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "agefair"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "templates" not in p.parts)


def test_top_level_modules_are_commands():
    for path in PACKAGE.glob("*.py"):
        if path.name == "__init__.py":
            continue
        names = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert "main" in names, f"{path.name}: a top-level module of agefair/ is a command with main()"


def test_modules_are_short():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_functions_are_short_or_say_why():
    long = []
    for path in _modules():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                size = node.end_lineno - first + 1
                reason = lines[first - 2].strip() if first >= 2 else ""
                if size > MAX_FUNCTION_LINES and not reason.startswith("# long:"):
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({size} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines without a '# long:' reason: {long}"
