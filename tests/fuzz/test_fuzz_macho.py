"""Fuzz the Mach-O reader: mutated real fixtures may only raise InvalidBinaryError.

Seeds are the committed fixtures (thin arm64/x86_64/i386, fat, bundle,
executable, object; made by tests/binary/make_macho_fixtures.sh). Mutations
overwrite bytes or whole 32-bit fields (mostly in the header and load
commands, where the reader's decisions are, with boundary values such as 0,
7, 0xFFFFFFFF and the file size) and cut the file short. Each read must end
quickly with a `MachOInfo` or `InvalidBinaryError`, nothing else.
Examples: ``LIBBROKER_FUZZ_EXAMPLES`` (default 200).
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libbroker._binary import InvalidBinaryError, _macho

FIXTURES = Path(__file__).parent.parent / "binary" / "fixtures" / "macho"
SEEDS = [p.read_bytes() for p in sorted(FIXTURES.iterdir()) if p.is_file()]
BOUNDARY = [0, 1, 7, 8, 0x18, 0x7F, 0x80, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]

mutation = st.one_of(
    # (kind, position, value); positions are folded into the seed's length later
    st.tuples(st.just("byte"), st.integers(0, 4095), st.integers(0, 255)),
    st.tuples(st.just("byte"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("u32"), st.integers(0, 1023), st.one_of(st.sampled_from(BOUNDARY), st.integers(0, 0xFFFFFFFF))),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20), st.just(0)),
)


def _mutate(seed: bytes, mutations: list[tuple[str, int, int]], size_hint: bool) -> bytes:
    data = bytearray(seed)
    for kind, pos, value in mutations:
        if not data:
            break
        if kind == "byte":
            data[pos % len(data)] = value
        elif kind == "u32" and len(data) >= 4:
            at = (pos * 4) % (len(data) - 3)
            if size_hint:
                value = len(data) - value % 64  # offsets/sizes just around the end of the file
            struct.pack_into(random_order(pos), data, at, value & 0xFFFFFFFF)
        elif kind == "cut":
            del data[pos % len(data) :]
    return bytes(data)


def random_order(pos: int) -> str:
    """Fat headers are big-endian, thin images usually little-endian: write both."""
    return ">I" if pos & 1 else "<I"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-macho") / "input.dylib"


@settings(
    max_examples=int(os.environ.get("LIBBROKER_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, len(SEEDS) - 1),
    mutations=st.lists(mutation, min_size=1, max_size=8),
    size_hint=st.booleans(),
)
def test_mutated_fixtures_raise_only_invalid_binary(
    scratch: Path, seed: int, mutations: list[tuple[str, int, int]], size_hint: bool
) -> None:
    scratch.write_bytes(_mutate(SEEDS[seed], mutations, size_hint))
    start = time.perf_counter()
    try:
        info = _macho.read(scratch)
    except InvalidBinaryError as exc:
        assert str(scratch) in str(exc)
    else:
        assert info.format == "Mach-O" and info.exports >= 0
        info.inspect_dict()
    assert time.perf_counter() - start < 5
