"""C prototype parsing and normalisation (libbroker._cdecl through Spec).

The oracle for normalised types is gcc with the system's own headers: a
pointer declared with the normalised type must accept the real function
without a diagnostic.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from libbroker._cdecl import Pointer, render, resolve
from libbroker._errors import SpecError
from libbroker._spec import Spec

SPECS = os.path.join(os.path.dirname(__file__), "specs")


def spec_of(prototypes: list[str], types: str = "") -> Spec:
    protos = ",\n".join(f"  '''{p}'''" for p in prototypes)
    return Spec.from_string(
        f'[library]\nname = "t"\n\n[types]\n{types}\n\n[functions]\nrequired = [\n{protos},\n]\n',
        path="t.toml",
    )


@pytest.mark.parametrize(
    ("prototype", "signature"),
    [
        ("unsigned f(unsigned x)", "f: unsigned int (unsigned int)"),
        ("long int f(long int x, short int y)", "f: long (long, short)"),
        ("signed char f(signed char c, char d, unsigned char e)",
         "f: signed char (signed char, char, unsigned char)"),
        ("long long unsigned int f(signed x, int signed y)", "f: unsigned long long (int, int)"),
        ("long double f(double x, float y)", "f: long double (double, float)"),
        ("_Bool f(bool b)", "f: bool (bool)"),
        ("void f(void)", "f: void (void)"),
        ("const char *f(void)", "f: const char *(void)"),
        ("int f(int a[], const char b[16], int c[][4])", "f: int (int *, const char *, int (*)[4])"),
        ("int f(const int x, char *const p, const char *restrict q)",
         "f: int (int, char *, const char *)"),
        ("int f(char **argv, const char *const *envp)", "f: int (char **, const char *const *)"),
        ("int f(int (*cb)(void *, int), void g(int))", "f: int (int (*)(void *, int), void (*)(int))"),
        ("void (*f(int sig, void (*h)(int)))(int)", "f: void (*(int, void (*)(int)))(int)"),
        ("extern size_t f(ssize_t n, int64_t a, uint8_t b, uintptr_t c, wchar_t d, FILE *fp)",
         "f: size_t (ssize_t, int64_t, uint8_t, uintptr_t, wchar_t, FILE *)"),
        ("int f(struct stat *st, union u *p, volatile int *v)",
         "f: int (struct stat *, union u *, volatile int *)"),
        ("int\n  f(\tint   x ,int*y )", "f: int (int, int *)"),
    ],
)
def test_normalised_signature(prototype: str, signature: str) -> None:
    assert spec_of([prototype]).signatures == [signature]


def test_typedefs_resolve_through_each_other() -> None:
    types = (
        'uLong = "unsigned long"\nul2 = "uLong"\ncul = "const ul2"\nptr = "cul *"\n'
        'cb = "ptr (*)(ptr, int[3])"\nh = "opaque"'
    )
    spec = spec_of(["cb f(cb c, const ptr p, h *handle)"], types)
    inner = "const unsigned long *(*)(const unsigned long *, int *)"
    # A function returning a function pointer: C's inside-out declarator syntax.
    assert spec.signatures == [
        "f: const unsigned long *(*(" + inner + ", const unsigned long *, struct h *))"
        "(const unsigned long *, int *)"
    ]
    fn = spec.functions[0]
    assert fn.return_type == inner
    assert fn.params == [("c", inner), ("p", "const unsigned long *"), ("handle", "struct h *")]


def test_as_written_rendering_keeps_names() -> None:
    spec = Spec.from_file(os.path.join(SPECS, "zlib.toml"))
    crc32 = spec.function("crc32")
    assert render(Pointer(crc32._type), "crc32") == (
        "uLong (*crc32)(uLong crc, const Bytef *buf, uInt len)")


def test_single_parse_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from libbroker import _cdecl

    parser = _cdecl._get_parser()
    calls = []
    original = parser.parse

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(parser, "parse", counting)
    spec_of([f"int f{i}(int x)" for i in range(50)], 'a = "int"\nb = "a *"')
    assert len(calls) == 1
    assert _cdecl._get_parser() is parser  # built once, reused


@pytest.mark.parametrize(
    ("prototype", "message"),
    [
        ("int f()", "write (void)"),
        ("int f(...)", "C23"),
        ("int f(a, b)", "without a type"),
        ("uLongf f(int x)", "unknown type 'uLongf'"),
        ("int f(const uLongf *x)", "unknown type 'uLongf'"),
        ("int f(int x) /* c */", "comment"),
        ("int f(int x); int g(int y)", "not a single C declaration"),
        ("int x", "not a function declaration"),
        ("static int f(int x)", "not a function declaration"),
        ("typedef int f(int x)", "not a single C declaration"),
        ("int f(int x) { return x; }", "not a single C declaration"),
        ("int f(enum color c)", "enum color"),
        ("int f(struct { int a; } s)", "inside a declaration"),
        ("int f(enum { A, B } e)", "enum's size"),
        ("int f(int x, int x)", "twice"),
        ("int f(void x)", "void"),
        ("int f(int x", "not a C declaration"),
        ("int f(int @x)", "not a C declaration"),
        ("int f(int libbroker_t)", "reserved"),
        ("", "empty"),
    ],
)
def test_bad_prototype(prototype: str, message: str) -> None:
    text = (
        '[library]\nname = "t"\n\n[functions]\nrequired = [\n  "int ok(void)",\n'
        f"  '{prototype}',\n  \"int ok2(void)\",\n]\n"
    )
    with pytest.raises(SpecError) as info:
        Spec.from_string(text, path="bad.toml")
    assert message in info.value.message
    assert info.value.path == "bad.toml"
    assert info.value.line == 7, str(info.value)
    assert str(info.value).startswith("bad.toml:7: ")


@pytest.mark.parametrize(
    ("type_text", "message"),
    [
        ("int x", "not a C type"),
        ("int, int", "not a C type"),
        ("", "empty"),
        ("unsigned potato", "not a C type"),
        ("struct s { int a; }", "with a tag"),
        ("struct { int a : 3; }", "bit-field"),
        ("struct { int a; int a; }", "twice"),
        ("struct { int a[]; }", "flexible array"),
        ("struct { struct { int b; } a; }", "inside a declaration"),
        ("int (*)(...)", "C23"),
    ],
)
def test_bad_type(type_text: str, message: str) -> None:
    text = (
        '[library]\nname = "t"\n\n[types]\nok = "int"\n'
        f"bad = '{type_text}'\n\n[functions]\nrequired = [\"int f(bad b)\"]\n"
    )
    with pytest.raises(SpecError) as info:
        Spec.from_string(text, path="bad.toml")
    assert message in info.value.message
    assert info.value.line == 6


def _compile_against(tmp_path, include: str, spec: Spec, skip: tuple[str, ...] = ()) -> None:
    gcc = shutil.which("gcc")
    if gcc is None or not os.path.exists(f"/usr/include/{include}"):
        pytest.skip(f"gcc or /usr/include/{include} missing")
    lines = [f"#include <{include}>"]
    for fn in spec.functions:
        if fn.name in skip:
            continue
        resolved = resolve(fn._type, spec._written_types)
        lines.append(f"{render(Pointer(resolved), 'p_' + fn.name, style='digest')} = {fn.name};")
        lines.append(f"void *use_{fn.name}(void) {{ return (void *)&p_{fn.name}; }}")
    source = tmp_path / "oracle.c"
    source.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [gcc, "-fsyntax-only", "-std=c11", "-Wall", "-Wextra",
         "-Werror=incompatible-pointer-types", "-Werror", str(source)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_normalised_types_match_zlib_h(tmp_path) -> None:
    spec = Spec.from_file(os.path.join(SPECS, "zlib.toml"))
    _compile_against(tmp_path, "zlib.h", spec, skip=("libbroker_absent_probe",))


def test_normalised_types_match_sqlite3_h(tmp_path) -> None:
    _compile_against(tmp_path, "sqlite3.h", Spec.from_file(os.path.join(SPECS, "sqlite3.toml")))


def test_normalised_types_match_math_h(tmp_path) -> None:
    _compile_against(tmp_path, "math.h", Spec.from_file(os.path.join(SPECS, "libm.toml")))


def test_oracle_catches_a_wrong_type(tmp_path) -> None:
    # The gcc oracle above must be able to fail: crc32 with an int first parameter.
    spec = spec_of(["unsigned long crc32(int crc, const unsigned char *buf, unsigned len)"])
    with pytest.raises(AssertionError):
        _compile_against(tmp_path, "zlib.h", spec)


def test_opaque_struct_tags() -> None:
    from libbroker._cdecl import opaque_tag

    assert opaque_tag("z_stream", "opaque") == "z_stream"
    assert opaque_tag("z_stream", " opaque: z_stream_s ") == "z_stream_s"
    assert opaque_tag("uLong", "unsigned long") is None
    spec = spec_of(["int f(z_stream *s, struct z_stream_s *t)"], 'z_stream = "opaque:z_stream_s"')
    # Layout digests spell an opaque type by its [types] name, whatever its tag.
    assert spec.signatures == ["f: int (struct z_stream *, struct z_stream_s *)"]
    # "struct z_stream" would be another C type than the typedef, and invalid C++.
    with pytest.raises(SpecError) as info:
        spec_of(["int f(struct z_stream *s)"], 'z_stream = "opaque:z_stream_s"')
    assert "'struct z_stream' but [types] makes 'z_stream' another type" in info.value.message
