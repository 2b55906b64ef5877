"""A Cython extension compiled against generated .pxd files calls zlib, sqlite3
and libm with no link flags, checked against Python's own zlib, sqlite3, math."""

from __future__ import annotations

import math
import os
import random
import sqlite3
import sys
import zlib
from pathlib import Path

import pytest

from ._build import SPECS, build, needed_entries

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF consumers")


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("cyconsumer")
    ext = build(
        workdir,
        "cy_consumer",
        ["cy_consumer.pyx"],
        [SPECS / "zlib.toml", SPECS / "sqlite3.toml", SPECS / "libm.toml"],
    )
    sys.path.insert(0, str(workdir))
    try:
        import cy_consumer

        yield cy_consumer, ext
    finally:
        sys.path.remove(str(workdir))


def test_no_needed_entry_for_brokered_libraries(consumer) -> None:
    _, ext = consumer
    needed = needed_entries(ext)
    for lib in ("libz", "libsqlite3", "libm."):
        assert not any(n.startswith(lib) for n in needed), needed


@pytest.mark.parametrize("size", [1, 1000, 65536, 1 << 20])
def test_zlib_checksums_and_round_trip(consumer, size: int) -> None:
    mod, _ = consumer
    data = random.Random(size).randbytes(size)
    assert mod.crc32(data) == zlib.crc32(data)
    assert mod.adler32(data) == zlib.adler32(data)
    packed = mod.compress(data)
    assert zlib.decompress(packed) == data
    assert mod.uncompress(zlib.compress(data), size) == data
    assert mod.uncompress(packed, size) == data


def test_zlib_version_and_optional_slots(consumer) -> None:
    mod, _ = consumer
    assert mod.zlib_version() == zlib.ZLIB_RUNTIME_VERSION
    assert mod.optional_slots() == (True, False)


def test_sqlite(consumer) -> None:
    mod, _ = consumer
    assert mod.sqlite_version() == sqlite3.sqlite_version
    rows = 101
    expected = sqlite3.connect(":memory:")
    expected.execute("CREATE TABLE t(x INTEGER)")
    expected.executemany("INSERT INTO t VALUES(?)", [(i,) for i in range(rows)])
    changed = expected.execute("UPDATE t SET x = x + 1 WHERE x % 2 = 0").rowcount
    assert mod.sqlite_roundtrip(rows) == changed


def test_libm(consumer) -> None:
    mod, _ = consumer
    rng = random.Random(7)
    for _ in range(1000):
        x, y = rng.uniform(-1e6, 1e6), rng.uniform(-1e6, 1e6)
        assert mod.cos(x) == math.cos(x)
        assert mod.sqrt(abs(x)) == math.sqrt(abs(x))
        # CPython's math.hypot is its own algorithm, not libm's: within one ulp.
        assert abs(mod.hypot(x, y) - math.hypot(x, y)) <= math.ulp(math.hypot(x, y))


def test_loaded_privately_by_libbroker(consumer) -> None:
    import libbroker

    names = {os.path.basename(lib.path) for lib in libbroker.loaded()}
    assert "libz.so.1" in names and any(n.startswith("libsqlite3") for n in names)


HEAVY = ("packaging", "re", "typing", "tomllib", "importlib.metadata", "pycparser")


def test_warm_import_stays_light(consumer, tmp_path: Path) -> None:
    """Once the disk cache is warm, a consumer's import in a fresh process parses
    no TOML or C and imports none of the heavy modules."""
    from ._build import run_python

    _, ext = consumer
    env = {"LIBBROKER_CACHE_DIR": str(tmp_path / "cache")}
    code = """
        import sys
        before = set(sys.modules)
        import cy_consumer
        new = set(sys.modules) - before
        print(sorted(m for m in new if m in {heavy!r} or m.split('.')[0] in {heavy!r}))
    """.replace("{heavy!r}", repr(HEAVY))
    cold = run_python(ext.parent, code, env)
    assert cold.returncode == 0, cold.stderr
    # The first import searched, judged and loaded without parsing TOML or C (the header
    # carries the spec parsed: _request) and without packaging or importlib.metadata.
    assert cold.stdout.strip() == "[]", cold.stdout
    warm = run_python(ext.parent, code, env)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip() == "[]", warm.stdout
