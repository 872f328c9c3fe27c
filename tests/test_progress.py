"""Progress bars redraw at most every few seconds in logs, so a KFP task log is not one line per step."""

from __future__ import annotations

import io

import pytest

from odqa import progress


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "expected"), [(True, progress.TERMINAL_INTERVAL_S), (False, progress.LOG_INTERVAL_S)]
)
def test_interval_follows_whether_stderr_is_a_terminal(monkeypatch, tty, expected):
    monkeypatch.delenv(progress.INTERVAL_ENV, raising=False)
    monkeypatch.setattr("sys.stderr", _Stream(tty))
    assert progress.refresh_interval() == expected
    bar = progress.progress_bar(range(3), file=io.StringIO())
    assert bar.mininterval == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("30", 30.0), ("0", 0.0), ("nan", 5.0), ("x", 5.0), ("-1", 5.0)]
)
def test_environment_overrides_with_sane_values_only(monkeypatch, raw, expected):
    monkeypatch.setenv(progress.INTERVAL_ENV, raw)
    monkeypatch.setattr("sys.stderr", _Stream(False))
    assert progress.refresh_interval() == expected


def test_a_log_gets_few_lines(monkeypatch):
    """100 quick updates into a non-terminal stream: the bar writes its start and end, not 100 lines."""
    monkeypatch.delenv(progress.INTERVAL_ENV, raising=False)
    stream = _Stream(False)
    monkeypatch.setattr("sys.stderr", stream)
    for _ in progress.progress_bar(range(100), file=stream):
        pass
    assert stream.getvalue().count("\r") <= 3
