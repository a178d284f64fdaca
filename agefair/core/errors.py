"""User-facing errors and the CLI wrapper that turns them into one line and an exit code."""

from __future__ import annotations

import sys
from typing import Callable


class AgefairError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""

    exit_code = 2


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's ``main`` and exit; AgefairError and Ctrl-C become one line, never a traceback."""
    try:
        code = main(argv)
    except AgefairError as exc:
        print(f"agefair: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("agefair: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code or 0)
