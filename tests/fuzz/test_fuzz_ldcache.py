"""Fuzz the ld.so.cache parser with the real /etc/ld.so.cache, mutated (tests/fuzz/_harness.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libbroker import _ldcache

from ._harness import FUZZ, apply, bounded, mutations

CACHE = "/etc/ld.so.cache"
pytestmark = pytest.mark.skipif(not os.path.exists(CACHE), reason="no ld.so.cache")
_RAW = open(CACHE, "rb").read() if os.path.exists(CACHE) else b""


@FUZZ
@given(data=st.data())
def test_ld_cache_parser(tmp_path_factory, data) -> None:
    edits = data.draw(mutations(len(_RAW), [(0, 64)]))
    path = tmp_path_factory.mktemp("ldc") / "ld.so.cache"
    path.write_bytes(apply(_RAW, edits))
    entries = bounded(lambda: _ldcache.read_ld_cache(str(path)), "read_ld_cache")
    assert isinstance(entries, list)
    for soname, target, flags in entries:
        assert isinstance(soname, str) and isinstance(target, str) and isinstance(flags, int)
    bounded(lambda: _ldcache.entries_for_host(str(path)), "entries_for_host")
