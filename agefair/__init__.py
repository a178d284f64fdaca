"""agefair: a fairness audit suite for facial age estimation."""

import signal as _signal
import sys as _sys

__version__ = "0.1.0"


def _interrupted_while_starting(signum, frame):  # pragma: no cover - exercised by tests/test_interrupt.py
    # Nothing has been written yet (run_cli restores Python's handler before the command runs).
    _sys.stderr.write("agefair: interrupted\n")
    _sys.stderr.flush()
    import os

    os._exit(130)


# ``python -m agefair.<command>`` (argv[0] is "-m" while the package is imported): Ctrl-C during the
# seconds of imports is the same one line and exit code 130 as later, not a KeyboardInterrupt traceback.
# Importing agefair as a library changes nothing.
if _sys.argv[:1] == ["-m"] and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)
