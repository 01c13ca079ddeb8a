"""``threaded_map``: the long, per-file data jobs (decode, cache, generate, export) with a progress bar.

Writing 60,000 PNGs or decoding them once for a cache takes minutes; on a terminal a tqdm bar
shows how far it got and how long is left, and elsewhere (logs, CI, a pipe) nothing is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["MIN_ITEMS", "threaded_map"]

T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS = 1000  # fewer items finish too fast for a bar to help


def threaded_map(
    fn: Callable[[T], R], items: Iterable[T], num_threads: int, desc: str, progress: bool | None = None
) -> list[R]:
    """``[fn(x) for x in items]`` computed on ``num_threads`` threads, in order.

    ``progress``: None shows a bar (labelled ``desc``) when stderr is a terminal and there are
    at least ``MIN_ITEMS`` items; True or False forces it on or off. The first exception an
    item raises is raised here.
    """
    items = list(items)
    show = (sys.stderr.isatty() and len(items) >= MIN_ITEMS) if progress is None else progress
    with ThreadPoolExecutor(max(1, num_threads)) as pool:
        results = pool.map(fn, items)
        if not show:
            return list(results)
        from tqdm.auto import tqdm

        with tqdm(results, total=len(items), desc=desc, unit="file", dynamic_ncols=True, leave=False) as bar:
            return list(bar)
