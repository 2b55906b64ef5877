"""Fuzz the ELF reader and the loader checks with mutated real libraries (tests/fuzz/_harness.py)."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libbroker import BrokerError
from libbroker._binary import read_binary
from libbroker._binary._elf import read_soname
from libbroker._binary._elfload import loader_refusal

from ._harness import FUZZ, apply, bounded, mutations

SEEDS = [p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libbz2.so.1.0",
                     "/lib/x86_64-linux-gnu/libffi.so.8") if os.path.exists(p)]
pytestmark = pytest.mark.skipif(not SEEDS, reason="no seed libraries")


def hot_ranges(data: bytes) -> list[tuple[int, int]]:
    """ELF header, program headers and the dynamic section: what the loader trusts most."""
    ranges = [(0, 64)]
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    ranges.append((phoff, phoff + 56 * phnum))
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + 56 * i)
        if p_type == 2:
            ranges.append((p_offset, p_offset + p_filesz))
    return ranges


_SEED_DATA = {p: open(os.path.realpath(p), "rb").read() for p in SEEDS}


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_elf_reader_and_loader_checks(tmp_path_factory, seed, data) -> None:
    raw = _SEED_DATA[seed]
    edits = data.draw(mutations(len(raw), hot_ranges(raw)))
    path = tmp_path_factory.mktemp("elf") / os.path.basename(seed)
    path.write_bytes(apply(raw, edits))
    try:
        bounded(lambda: read_binary(str(path)), "read_binary")
    except BrokerError:
        pass
    try:
        soname = bounded(lambda: read_soname(str(path)), "read_soname")
        assert soname is None or isinstance(soname, str)
    except BrokerError:
        pass
    reason = bounded(lambda: loader_refusal(str(path)), "loader_refusal")
    assert reason is None or isinstance(reason, str)
    os.unlink(path)
