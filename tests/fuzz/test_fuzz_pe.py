"""Fuzz the PE reader: mutated real DLLs and fixtures must read or raise InvalidBinaryError, fast.

Seeds are the committed fixtures (tests/binary/fixtures/pe) plus the small
real DLLs/.pyd already in the wheel cache of tests/binary/_wheels.py (none is
downloaded here). Mutations aim where parsers break: the headers, the data
directories, the export directory and its arrays, the import descriptors
(their file offsets found by pefile on the unmutated seed), then anywhere.
``LIBBROKER_FUZZ_EXAMPLES`` sets the number of examples (200 by default).
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libbroker._binary import InvalidBinaryError, _pe

pefile = pytest.importorskip("pefile")

FIXTURES = Path(__file__).parent.parent / "binary" / "fixtures" / "pe"
WHEEL_CACHE = Path(
    os.environ.get(
        "LIBBROKER_TEST_WHEELS", Path.home() / ".cache" / "libbroker-test-wheels"
    )
)
EXAMPLES = int(os.environ.get("LIBBROKER_FUZZ_EXAMPLES", "200"))
TIME_BOUND = 2.0  # CPU seconds per read (a loaded machine stalls wall time); real DLLs take < 0.1 s

# Values that make counts, offsets and RVAs lie.
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               0xFFFF0000, 0x1000, 0x200, 0x400, 0x2000]  # fmt: skip


def _targets(data: bytes) -> list[int]:
    """File offsets of the structures the reader walks, found by pefile."""
    pe = pefile.PE(data=data, fast_load=True)
    pe.parse_data_directories(directories=[0, 1, 13])
    spots = list(range(0, min(len(data), pe.OPTIONAL_HEADER.SizeOfHeaders), 2))
    # Weighted again: the section table's sizes and addresses, the data directories.
    for section in pe.sections:
        at = section.get_file_offset()
        spots += [at + 8, at + 12, at + 16, at + 20] * 4
    for entry in pe.OPTIONAL_HEADER.DATA_DIRECTORY:
        spots += [entry.get_file_offset(), entry.get_file_offset() + 4] * 2
    exp = getattr(pe, "DIRECTORY_ENTRY_EXPORT", None)
    if exp is not None:
        at = exp.struct.get_file_offset()
        spots += list(range(at, at + 40, 4))
        for field in ("AddressOfFunctions", "AddressOfNames", "AddressOfNameOrdinals"):
            try:
                spots.append(pe.get_offset_from_rva(getattr(exp.struct, field)))
            except pefile.PEFormatError:
                pass
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []) + getattr(
        pe, "DIRECTORY_ENTRY_DELAY_IMPORT", []
    ):
        at = entry.struct.get_file_offset()
        spots += list(range(at, at + entry.struct.sizeof(), 4))
    pe.close()
    return [s for s in spots if s < len(data)]


def _seeds() -> list[tuple[str, bytes, list[int]]]:
    files = sorted(FIXTURES.glob("*.dll")) + sorted(FIXTURES.glob("*.exe"))
    if WHEEL_CACHE.is_dir():
        real = [
            p
            for p in WHEEL_CACHE.rglob("*")
            if p.suffix.lower() in (".dll", ".pyd") and p.is_file()
        ]
        files += sorted(p for p in real if p.stat().st_size < 2_000_000)[:6]
    seeds = []
    for path in files:
        data = path.read_bytes()
        seeds.append((path.name, data, _targets(data)))
    return seeds


SEEDS = _seeds()

mutation = st.tuples(
    st.sampled_from(["byte", "dword", "interesting", "truncate"]),
    st.floats(min_value=0, max_value=1, allow_nan=False),
    st.booleans(),  # aim at a parsed structure (True) or anywhere (False)
    st.integers(min_value=0, max_value=0xFFFFFFFF),
)


def _mutate(
    data: bytes, targets: list[int], mutations: list[tuple[str, float, bool, int]]
) -> bytes:
    out = bytearray(data)
    for kind, where, aimed, value in mutations:
        if not out:
            break
        pos = (
            targets[int(where * (len(targets) - 1))]
            if aimed and targets
            else int(where * (len(out) - 1))
        )
        pos = min(pos, len(out) - 1)
        if kind == "byte":
            out[pos] = value & 0xFF
        elif kind == "truncate":
            del out[pos:]
        else:
            word = (
                INTERESTING[value % len(INTERESTING)]
                if kind == "interesting"
                else value
            )
            chunk = struct.pack("<I", word)[: len(out) - pos]
            out[pos : pos + len(chunk)] = chunk
    return bytes(out)


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # timed per read in CPU seconds instead: the shared machine stalls wall time
    # As tests/fuzz/_harness.py: reproducible in CI, random with LIBBROKER_FUZZ_RANDOM=1.
    derandomize=os.environ.get("LIBBROKER_FUZZ_RANDOM") is None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(min_value=0, max_value=len(SEEDS) - 1),
    mutations=st.lists(mutation, min_size=1, max_size=8),
)
def test_mutated_pe_reads_or_raises_invalid_binary(
    seed: int, mutations: list[tuple[str, float, bool, int]]
) -> None:
    name, data, targets = SEEDS[seed]
    mutated = _mutate(data, targets, mutations)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(mutated)
        start = time.process_time()
        try:
            info = _pe.read(path)
        except InvalidBinaryError as exc:
            assert path in str(exc)
        else:
            # A file that reads is self-consistent.
            assert info.exports >= len(info.export_names)
            assert set(info.api_sets) <= set(info.needed + info.delay_needed)
            info.inspect_dict()
        elapsed = time.process_time() - start
        assert elapsed < TIME_BOUND, f"{name} with {mutations}: {elapsed:.2f}s"


def test_seeds_read_cleanly() -> None:
    """The unmutated seeds are valid: a failure above is the mutation's doing."""
    assert len(SEEDS) >= 5
    with tempfile.TemporaryDirectory() as tmp:
        for name, data, targets in SEEDS:
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(data)
            _pe.read(path)
            assert targets
