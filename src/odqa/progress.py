"""Progress bars that keep logs short: on a terminal a bar redraws often, but in a log file (stderr
redirected, a KFP task, CI) every redraw is another line, so there it refreshes at most every few
seconds. Every odqa module makes its bars here."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

TERMINAL_INTERVAL_S = 0.1  # tqdm's own default
LOG_INTERVAL_S = 5.0  # stderr is not a terminal: one line per 5 s at most
INTERVAL_ENV = "ODQA_PROGRESS_INTERVAL"  # seconds between refreshes, overriding both


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def refresh_interval() -> float:
    """Seconds between redraws: ODQA_PROGRESS_INTERVAL if set, else by whether stderr is a terminal."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value >= 0 and value == value and value != float("inf"):
            return value
    return TERMINAL_INTERVAL_S if stderr_is_terminal() else LOG_INTERVAL_S


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """A tqdm bar with the refresh interval above (callers may still pass `mininterval`)."""
    from tqdm import tqdm

    interval = refresh_interval()
    kwargs.setdefault("mininterval", interval)
    if interval > TERMINAL_INTERVAL_S:
        kwargs.setdefault("maxinterval", max(interval, 10.0))
    return tqdm(iterable, **kwargs)
