"""User-facing errors and the CLI wrapper that turns them into one line and an exit code."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable


class AgefairError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""

    exit_code = 2


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a command's ``main`` and exit; AgefairError and Ctrl-C become one line, never a traceback."""
    # python -m agefair.<command> (agefair/__init__.py's handler, which exits at once while imports run):
    # Ctrl-C raises KeyboardInterrupt again while the command runs
    as_command = (threading.current_thread() is threading.main_thread()
                  and getattr(signal.getsignal(signal.SIGINT), "__name__", "") == "_interrupted_while_starting")
    if as_command:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main(argv)
    except AgefairError as exc:
        print(f"agefair: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("agefair: interrupted", file=sys.stderr)
        code = 130
    if as_command:  # the outcome is printed: a Ctrl-C while the interpreter shuts down changes nothing
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code or 0)
