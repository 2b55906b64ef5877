"""Fuzz the disk-cache loader: real cache files written by find()/table(), mutated.

Checksummed files must be rejected whole; valid files with wrong-typed entries
(mutated before checksumming) must be ignored by every reader, never raise.
"""

from __future__ import annotations

import marshal
import os

from hypothesis import given
from hypothesis import strategies as st

import libbroker
from libbroker import _api, _cache, _registry

from ._harness import FUZZ, apply, bounded, mutations

SPEC = ('[library]\nname = "zlib"\nnames = ["z"]\n[functions]\n'
        'required = ["unsigned long crc32(unsigned long, const unsigned char *, unsigned int)"]\n')


_SNAPSHOT: dict[str, dict[str, bytes]] = {}


def _real_cache_files() -> dict[str, bytes]:
    """The cache files of one real find/candidates/table run, taken once per cache directory
    and written back before every example (the same seeds each time: hypothesis needs that)."""
    root = _cache.cache_dir()
    if root in _SNAPSHOT:
        for name, raw in _SNAPSHOT[root].items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(raw)
        return _SNAPSHOT[root]
    libbroker.find("z")
    libbroker.candidates("z")
    libbroker.table(SPEC)
    root = _cache.cache_dir()
    files = {}
    for d, _, names in os.walk(root):
        for name in names:
            path = os.path.join(d, name)
            files[os.path.relpath(path, root)] = open(path, "rb").read()
    _SNAPSHOT[root] = files
    return files


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(data=st.data())
def test_cache_loader(data) -> None:
    files = _real_cache_files()
    name = data.draw(st.sampled_from(sorted(files)))
    raw = files[name]
    path = os.path.join(_cache.cache_dir(), name)
    if data.draw(st.booleans()):
        mutated = apply(raw, data.draw(mutations(len(raw), [(0, 16)])))
    else:  # well-formed file, entries of the wrong shape
        payload = marshal.loads(_cache._unwrap(raw))
        for key in list(payload)[:3]:
            payload[key] = data.draw(_values)
        mutated = _cache._wrap(marshal.dumps(payload))
    with open(path, "wb") as f:
        f.write(mutated)
    kind = name.rsplit("-v", 1)[0]
    bounded(lambda: _cache.load(kind), "cache load")
    _api._memo.clear()
    _registry.by_spec.clear()
    assert bounded(lambda: libbroker.find("z"), "find").soname == "libz.so.1"
    bounded(lambda: libbroker.table(SPEC), "table")
