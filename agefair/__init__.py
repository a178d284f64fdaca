"""agefair: a fairness audit suite for facial age estimation."""

__version__ = "0.1.0"
