"""Start N threads at one barrier, so they really call at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_at_once(fn: Callable[[], T], n: int = 32) -> list[T]:
    """Call *fn* from *n* threads released together; every result, or the first error."""
    results: list[T] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(fn())
        except BaseException as exc:  # surfaced in the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
