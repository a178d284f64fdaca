"""User-facing errors and the CLI wrapper that turns them into one line and an exit code."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Callable


class AgefairError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""

    exit_code = 2


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's ``main`` and exit; AgefairError and Ctrl-C become one line, never a traceback."""
    if (threading.current_thread() is threading.main_thread()
            and getattr(signal.getsignal(signal.SIGINT), "__name__", "") == "_interrupted_while_starting"):
        # Ctrl-C raises KeyboardInterrupt again (agefair/__init__.py exits at once while imports run)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main(argv)
    except AgefairError as exc:
        print(f"agefair: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("agefair: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code or 0)
