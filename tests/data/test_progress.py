"""``threaded_map``: ordered results on threads, a bar only when asked or on a terminal with many items."""

from __future__ import annotations

import pytest

from labkit.data import progress
from labkit.data.progress import threaded_map


def test_results_keep_their_order_and_errors_surface() -> None:
    assert threaded_map(lambda x: x * x, range(50), num_threads=4, desc="squares", progress=False) == [
        x * x for x in range(50)
    ]

    def fail(x: int) -> int:
        if x == 7:
            raise ValueError("item 7 is broken")
        return x

    with pytest.raises(ValueError, match="item 7 is broken"):
        threaded_map(fail, range(20), num_threads=3, desc="failing", progress=False)


def test_bar_shown_when_forced_and_silent_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    assert threaded_map(str, range(30), num_threads=2, desc="writing shapes", progress=True) == [
        str(x) for x in range(30)
    ]
    assert "writing shapes" in capsys.readouterr().err
    threaded_map(str, range(30), num_threads=2, desc="quiet", progress=False)
    assert capsys.readouterr().err == ""


def test_default_needs_a_terminal_and_many_items(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    class Terminal:
        def __init__(self, stream) -> None:
            self.stream = stream

        def isatty(self) -> bool:
            return True

        def __getattr__(self, name: str):
            return getattr(self.stream, name)

    monkeypatch.setattr(progress.sys, "stderr", Terminal(progress.sys.stderr))
    monkeypatch.setattr(progress, "MIN_ITEMS", 10)
    threaded_map(str, range(9), num_threads=2, desc="few")  # under MIN_ITEMS: no bar
    threaded_map(str, range(10), num_threads=2, desc="many")
    err = capsys.readouterr().err
    assert "many" in err and "few" not in err
