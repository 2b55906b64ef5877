"""A C consumer .pyd (mingw-w64, from a header `libbroker generate` wrote on the
host) calling lbmain.dll through a libbroker table, under wine."""

from __future__ import annotations

import importlib
import os
import sys

import pefile
import pytest

from libbroker import _master, _registry
from libbroker._spec import Spec


@pytest.fixture(scope="module")
def consumer_dir(fixtures: str) -> str:
    return os.path.join(fixtures, "consumer")


def test_consumer_has_no_import_of_the_library(consumer_dir: str) -> None:
    (pyd,) = [f for f in os.listdir(consumer_dir) if f.endswith(".pyd")]
    pe = pefile.PE(os.path.join(consumer_dir, pyd))
    imports = {e.dll.decode().lower() for e in getattr(pe, "DIRECTORY_ENTRY_IMPORT", [])}
    pe.close()
    assert "python311.dll" in imports
    assert not any(name.startswith(("lbmain", "lbdep")) for name in imports)


def test_consumer_calls_through_the_table(fixtures: str, consumer_dir: str) -> None:
    """The table is built by the master module from LoadLibraryExW + GetProcAddress
    and registered for the spec; the consumer's PyInit imports it through
    libbroker._runtime.import_table, as on every platform."""
    spec = Spec.from_file(os.path.join(fixtures, "lbmain.toml"))
    path = os.path.join(fixtures, "lib", "lbmain.dll")
    handle = _master.dlopen(path)
    symbols = [spec.symbol_for(fn).encode() for fn in spec.functions]
    addresses = _master.lookup_many(handle, symbols)
    version = _master.call_version_function(_master.dlsym(handle, "lbmain_version"))
    assert version is not None and version.startswith(b"lbmain 2.5.1")
    capsule = _master.make_table(spec.name, spec.layout_digest, path, "2.5.1",
                                 spec.signatures, addresses)
    info = _master.table_info(capsule)
    assert info["slot_count"] == len(spec.signatures) == 3
    assert info["slots"][2] == 0                   # the optional lbmain_absent: absent
    _registry.by_spec[spec.spec_digest] = capsule
    sys.path.insert(0, consumer_dir)
    try:
        mod = importlib.import_module("lbconsumer")
    finally:
        sys.path.remove(consumer_dir)
    assert mod.answer() == 43                      # lbdep.dll next to lbmain.dll: 42 + 1
    assert mod.version().startswith("lbmain 2.5.1")
    assert mod.has_absent() is False
