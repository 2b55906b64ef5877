"""Shared fuzzing harness: hypothesis over real files, mutated the way damage and attackers do.

Budget: `LIBBROKER_FUZZ_EXAMPLES` examples per target (default 40, so the normal
run stays fast); a long run is documented in docs/security.md:

    LIBBROKER_FUZZ_EXAMPLES=20000 python -m pytest tests/fuzz -q

Seeds are real files (system libraries, the real ld.so.cache, real specs,
real cache files); each example applies a few mutations: bit flips, byte
writes, 32/64-bit field overwrites with boundary values, and truncation.
Targets may raise only libbroker's typed errors, within a bounded time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("LIBBROKER_FUZZ_EXAMPLES", "40"))
SECONDS_PER_EXAMPLE = 5.0  # far above any real input; a hang or blow-up shows as a failure

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # timed by `bounded` instead: the loaded CI machine makes deadlines flaky
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("LIBBROKER_FUZZ_RANDOM") is None,
    database=None,
)

_BOUNDARY = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 31, (1 << 63) - 1, (1 << 64) - 1]


@st.composite
def mutations(draw: st.DrawFn, size: int, hot: list[tuple[int, int]] | None = None) -> list[tuple[str, int, int]]:
    """A short list of (kind, position, value); *hot* (start, end) ranges get most of them."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        if hot and draw(st.booleans()):
            start, end = draw(st.sampled_from(hot))
            pos = draw(st.integers(start, max(start, min(end, size) - 1)))
        else:
            pos = draw(st.integers(0, max(0, size - 1)))
        kind = draw(st.sampled_from(["flip", "byte", "u32", "u64", "truncate"]))
        if kind == "flip":
            value = draw(st.integers(0, 7))
        elif kind == "byte":
            value = draw(st.integers(0, 255))
        elif kind in ("u32", "u64"):
            value = draw(st.sampled_from(_BOUNDARY) | st.integers(0, (1 << 64) - 1))
        else:
            value = 0
        out.append((kind, pos, value))
    return out


def apply(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in edits:
        if pos >= len(buf):
            continue
        if kind == "flip":
            buf[pos] ^= 1 << value
        elif kind == "byte":
            buf[pos] = value
        elif kind == "u32":
            buf[pos : pos + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")[: len(buf) - pos]
        elif kind == "u64":
            buf[pos : pos + 8] = value.to_bytes(8, "little")[: len(buf) - pos]
        else:
            del buf[pos:]
    return bytes(buf)


def bounded(fn: Callable[[], object], what: str) -> object:
    """Run *fn*; fail when it takes longer than SECONDS_PER_EXAMPLE."""
    start = time.monotonic()
    result = fn()
    elapsed = time.monotonic() - start
    assert elapsed < SECONDS_PER_EXAMPLE, f"{what} took {elapsed:.1f} s"
    return result
