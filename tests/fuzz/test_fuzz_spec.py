"""Fuzz the spec parser with the project's real specs, mutated as text (tests/fuzz/_harness.py)."""

from __future__ import annotations

import glob
import os

from hypothesis import given
from hypothesis import strategies as st

from libbroker import BrokerError
from libbroker._spec import Spec

from ._harness import FUZZ, apply, bounded, mutations

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = sorted(glob.glob(os.path.join(HERE, "specs", "*.toml")) + glob.glob(os.path.join(HERE, "..", "examples", "**", "*.toml"), recursive=True))
_TEXTS = [open(p, "rb").read() for p in SEEDS] or [b'[library]\nname = "t"\n[functions]\nrequired = ["int f(void)"]\n']
_NASTY = ["[" * 800, "{a=" * 800, "*" * 3000, "\x00", "\ud800", '"""', "(" * 500, "int (*(*f)(void))(void)"]


@FUZZ
@given(index=st.integers(0, len(_TEXTS) - 1), data=st.data())
def test_spec_parser(index, data) -> None:
    raw = _TEXTS[index]
    mutated = apply(raw, data.draw(mutations(len(raw))))
    if data.draw(st.booleans()):
        pos = data.draw(st.integers(0, len(mutated)))
        mutated = mutated[:pos] + data.draw(st.sampled_from(_NASTY)).encode("utf-8", "surrogatepass") + mutated[pos:]
    text = mutated.decode("utf-8", "replace")
    try:
        bounded(lambda: Spec.from_string(text, path="<fuzz>"), "Spec.from_string")
    except BrokerError:
        pass
