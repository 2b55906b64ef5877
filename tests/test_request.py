"""The request a generated header carries: every spec round-trips, damage is a SpecError,
and a table built from it is the table built from the spec."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import libbroker
from libbroker import _master, _request
from libbroker._errors import SpecError

HERE = Path(__file__).parent
SPEC_FILES = sorted([*(HERE / "specs").glob("*.toml"), *(HERE / "cookbook").glob("*/*.toml")])


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_spec_round_trips(path: Path) -> None:
    spec = libbroker.Spec.from_file(path)
    text = _request.render(spec)
    assert _request.render(spec) == text  # deterministic
    req = _request.parse(text, "<test>")
    assert (req.name, req.names, req.version, req.version_function, req.packages) == (
        spec.name, spec.names, spec.version, spec.version_function, spec.packages)
    assert (req.symbol_prefix, req.symbol_suffix) == (spec.symbol_prefix, spec.symbol_suffix)
    assert (req.spec_digest, req.layout_digest, req.signatures) == (
        spec.spec_digest, spec.layout_digest, spec.signatures)
    assert [(s.name, s.required, s.kind) for s in req.functions] == [
        (f.name, f.required, f.kind) for f in spec.functions]


def _with_layout(text: str, value: str) -> str:
    return "\n".join(f"layout\t{value}" if x.startswith("layout\t") else x for x in text.split("\n"))


def _zlib_request() -> str:
    return _request.render(libbroker.Spec.from_file(HERE / "specs" / "zlib.toml"))


@pytest.mark.parametrize(
    "damage, words, line",
    [
        (lambda t: t.replace("libbroker-request 1", "libbroker-request 9"), "first line", 1),
        (lambda t: t[:-1], "does not end with a newline", None),
        (lambda t: t.replace("\tr\tfunction\t", "\tx\tfunction\t", 1), "slot<TAB>r|o", None),
        (lambda t: t.replace("\tfunction\tcrc32: ", "\tfunction\tcrc32 ", 1), "NAME: TYPE", None),
        (lambda t: t.replace("names\t", "name\tzlib\nnames\t", 1), "'name' appears twice", None),
        (lambda t: t.replace("layout\t", "colour\t", 1), "unknown field 'colour'", None),
        (lambda t: "\n".join(x for x in t.split("\n") if not x.startswith("digest")), "missing digest", None),
        # review4 R4-1: only a 64-bit number in ASCII digits is a layout digest.
        (lambda t: _with_layout(t, "9" * 5000), "64-bit number in ASCII digits", None),
        (lambda t: _with_layout(t, "9" * 20), "64-bit number in ASCII digits", None),
        (lambda t: _with_layout(t, "\u00b2"), "64-bit number in ASCII digits", None),
        (lambda t: _with_layout(t, "\u0663"), "64-bit number in ASCII digits", None),
    ],
)
def test_damage_is_a_spec_error_with_the_fix(damage, words: str, line: int | None) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError) as info:
        _request.parse(damage(_zlib_request()), "<header of c_consumer>")
    message = str(info.value)
    assert words in message and "regenerate the header" in message and "<header of c_consumer>" in message
    if line is not None:
        assert info.value.line == line


def test_a_value_a_line_cannot_carry_is_refused_at_render() -> None:
    spec = libbroker.Spec.from_file(HERE / "specs" / "zlib.toml")
    spec.names = ["z\tq"]
    with pytest.raises(SpecError, match="tab or a line break"):
        _request.render(spec)


def test_table_from_request_equals_table_from_spec() -> None:
    from libbroker._tables import build_table

    spec = libbroker.Spec.from_file(HERE / "specs" / "zlib.toml")
    from_spec = _master.table_info(libbroker.table(spec))
    from_request = _master.table_info(build_table(_request.parse(_request.render(spec), "<test>")))
    assert from_request == from_spec


def test_cold_build_from_request_parses_no_c_and_no_toml(tmp_path: Path) -> None:
    text = _zlib_request()
    code = textwrap.dedent(f"""
        import sys, zlib
        from libbroker import _runtime, _master
        capsule = _runtime.import_table("zlib", "lb-test-digest", {text!r}, None)
        info = _master.table_info(capsule)
        assert info["library_version"] == zlib.ZLIB_RUNTIME_VERSION, info
        print(",".join(m for m in ("pycparser", "tomllib", "libbroker._spec", "libbroker._cdecl") if m in sys.modules))
    """)
    env = {"LIBBROKER_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
