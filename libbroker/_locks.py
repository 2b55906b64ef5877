"""Locks that are usable again in a child after fork() (design.md 5.1 "After fork()").

A thread that holds a libbroker lock when another thread forks does not exist
in the child, so the child would wait for it forever. Every lock libbroker
makes comes from here; `os.register_at_fork(after_in_child=...)` replaces each
with a fresh, unlocked one in the child. Holders keep a `LockBox` and take
`box.lock` at the moment of use, so replacing the box's lock is enough.

_thread, not threading: threading pulls functools and collections (about 2 ms
in a fresh process) onto a consumer's import path; the lock types are the same.
"""

import _thread
import os

_boxes: "list[LockBox]" = []


class LockBox:
    """Holds one lock (or RLock) that is re-created unlocked in a forked child."""

    __slots__ = ("_reentrant", "lock")

    def __init__(self, reentrant: bool) -> None:
        self._reentrant = reentrant
        self.lock = _thread.RLock() if reentrant else _thread.allocate_lock()

    def renew(self) -> None:
        self.lock = _thread.RLock() if self._reentrant else _thread.allocate_lock()

    def __enter__(self) -> bool:
        return self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def new_lock() -> LockBox:
    """A plain lock, used as `with box:`; re-created in a forked child."""
    box = LockBox(False)
    _boxes.append(box)
    return box


def new_rlock() -> LockBox:
    """A re-entrant lock, used as `with box:`; re-created in a forked child."""
    box = LockBox(True)
    _boxes.append(box)
    return box


def _after_fork_in_child() -> None:
    for box in _boxes:
        box.renew()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
