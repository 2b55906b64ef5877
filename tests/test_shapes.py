"""Prototypes parsed by shape (libbroker._shapes) against each parsed as written.

The reference is `_cdecl.parse_verbatim`: every entry its own line of one pycparser
translation unit, as before shapes existed. The shape path must give the same model
(names, qualifiers, kinds, sizes) whenever it answers, and must not answer (None)
whenever the verbatim parse fails, so that every error is the verbatim one.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libbroker import _cdecl, _shapes
from libbroker._cdecl import Array, Base, Entry, FuncType, Pointer, Record
from libbroker._errors import SpecError
from libbroker._spec import Spec, _load_toml

SPECS = os.path.join(os.path.dirname(__file__), "specs")
TYPES = {"uLong": "unsigned long", "handle": "opaque", "cbt": "int (*)(int a, void *b)",
         "pair": "struct { int a; double b; }", "s": "opaque:tag_s"}


def dump(ctype: object) -> object:
    """Every field of a model, recursively (the classes define no equality)."""
    if isinstance(ctype, Base):
        return ("Base", ctype.name, ctype.quals, ctype.kind)
    if isinstance(ctype, Pointer):
        return ("Pointer", dump(ctype.target), ctype.quals)
    if isinstance(ctype, Array):
        return ("Array", dump(ctype.element), ctype.size)
    if isinstance(ctype, FuncType):
        return ("FuncType", dump(ctype.result), [(n, dump(t)) for n, t in ctype.params],
                ctype.variadic)
    assert isinstance(ctype, Record)
    return ("Record", ctype.keyword, [(n, dump(t)) for n, t in ctype.fields], ctype.quals)


def entries_of(prototypes: list[str], types: dict[str, str] = TYPES) -> list[Entry]:
    entries = [Entry("type", n, t, i) for i, (n, t) in enumerate(types.items())
               if _cdecl.opaque_tag(n, t) is None]
    entries += [Entry("function", "required", p, 100 + i) for i, p in enumerate(prototypes)]
    return entries


def compare(prototypes: list[str], types: dict[str, str] = TYPES) -> bool:
    """Assert the shape path agrees with the verbatim one; True when it answered."""
    entries = entries_of(prototypes, types)
    try:
        for entry in entries:
            _cdecl._precheck(entry, None)
    except SpecError:
        return False  # refused before any parse, on both paths
    shaped = _shapes.parse_by_shape(types, entries, path=None)
    try:
        verbatim = _cdecl.parse_verbatim(types, entries, path=None)
    except SpecError:
        assert shaped is None, prototypes
        return False
    if shaped is not None:
        assert [(n, dump(m)) for n, m in shaped] == [(n, dump(m)) for n, m in verbatim]
    return shaped is not None


# Each is valid, or fails in the parser or the conversion in a way that names matter to.
CORPUS = [
    "int f(int x)",
    "int g(int y)",  # the shape of the first
    "unsigned long crc(unsigned long crc, const unsigned char *buf, unsigned int len)",
    "uLong z(uLong uLong2, handle *h, struct tag_s *t, s *p)",
    "int cb(int (*fn)(void *ctx, int n), void *ctx)",
    "int cb2(int (*fn)(void *ctx2, int n2), void *ctx)",
    "void (*signal2(int sig, void (*h)(int)))(int)",
    "int arr(char b[0x10], int m[][4], double d[010])",
    "int v(const char *fmt, ...)",
    "int k(cbt c, pair p)",
    "_Bool b(_Bool x)",
    "long double ld(long double x)",
    "extern int e(int x)",
    "const char *const *pp(char *const *argv)",
    "int twice(int a, int a)",  # duplicate parameter: refused
    "int tname(int uLong)",  # a parameter named like a type: refused
    "int resv(int libbroker_x)",  # reserved parameter name: refused
    "int ph(int libbroker__n0, int libbroker__n1)",  # placeholder names, reserved
    "int libbroker__n1(int libbroker__n0)",
    "int kw(int restrict)",  # a keyword as a name: parse error
    "int off(int offsetof)",
    "int i128(__int128 x)",
    "int f(a, b)",  # K&R
    "int f()",
    "int size_t(void)",  # a function named like a type
    "int st(struct uLong *p)",  # tag named like a [types] name
    "int typedef_(int x); typedef int q",
    "typedef int t2",
    "int a, b(void)",
    "int f(int x), g(int y)",
    "int u(unknown_t x)",
    "int at([[deprecated]] int x)",
    "int w(int x) __attribute__((noreturn))",
    "int q$(int x)",
    "int en(enum e x)",
    "int un(union u *x, struct { int a; } y)",
    "int L(int u8, int L2)",
    "int dots(int x, ... )",
    "int big(char x[1e3])",
    "int neg(char x[-1])",
    "static int stat(int x)",
    "int vv(void v)",
    "int vo(void, int)",
]


@pytest.mark.parametrize("prototype", CORPUS)
def test_each_prototype_alone(prototype: str) -> None:
    compare([prototype])


def test_the_corpus_in_one_spec_and_in_pairs() -> None:
    valid = [p for p in CORPUS if compare([p])]
    assert len(valid) >= 15  # the path answers for the ordinary prototypes
    assert compare(valid)
    for index, first in enumerate(CORPUS):  # context: one entry before another
        compare([first, CORPUS[(index * 7 + 3) % len(CORPUS)]])


def test_repeated_shapes_parse_once_with_their_own_names() -> None:
    prototypes = [f"int fn{i}(const double *x{i}, int (*cb)(void *c{i}), size_t n)"
                  for i in range(200)]
    assert compare(prototypes)
    kept = _shapes.keywords()
    assert len({_shapes.shape_of(p, kept, set(_cdecl.STANDARD_TYPES))[0]
                for p in prototypes}) == 1
    shaped = _shapes.parse_by_shape({}, entries_of(prototypes, {}), path=None)
    assert shaped is not None
    name, model = shaped[7]
    assert name == "fn7" and isinstance(model, FuncType)
    assert [n for n, _ in model.params] == ["x7", "cb", "n"]
    inner = model.params[1][1]
    assert isinstance(inner, Pointer) and isinstance(inner.target, FuncType)
    assert inner.target.params[0][0] == "c7"


def test_shape_of_renames_only_identifiers() -> None:
    kept = _shapes.keywords()
    typenames = set(_cdecl.STANDARD_TYPES) | {"uLong"}
    line, names, types = _shapes.shape_of(
        "uLong  f(struct st *a,\n char b[0x1f], _Bool c, int a, size_t n, uLong u)", kept,
        typenames)
    assert line == ("libbroker__t0 libbroker__n0(struct st *libbroker__n1, char "
                    "libbroker__n2[0x1f], _Bool libbroker__n3, int libbroker__n1, libbroker__t1 "
                    "libbroker__n4, libbroker__t0 libbroker__n5)")
    assert names == ["f", "a", "b", "c", "n", "u"] and types == ["uLong", "size_t"]
    # Anything outside the plain characters is its own shape, unrenamed.
    assert _shapes.shape_of("int f(int x) __attribute__((a(\"s\")))", kept, typenames)[1:] == (
        [], [])
    assert _shapes.shape_of("int f([[nodiscard]] int x)", kept, typenames)[1:] == ([], [])


def test_a_spelled_type_placeholder_goes_verbatim() -> None:
    # Declared as a typedef in the shape translation unit, it would parse there only.
    entries = entries_of(["int f(libbroker__t0 x)"])
    assert _shapes.parse_by_shape(TYPES, entries, path=None) is None
    with pytest.raises(SpecError, match="unknown type 'libbroker__t0'"):
        _cdecl.parse_entries(TYPES, entries, path=None)


def test_type_names_share_a_shape_and_keep_their_kind() -> None:
    prototypes = ["uLong f(size_t n, const uLong *p)", "size_t g(uLong n, const size_t *p)"]
    assert compare(prototypes)
    kept = _shapes.keywords()
    typenames = set(_cdecl.STANDARD_TYPES) | set(TYPES)
    assert len({_shapes.shape_of(p, kept, typenames)[0] for p in prototypes}) == 1
    shaped = _shapes.parse_by_shape(TYPES, entries_of(prototypes), path=None)
    assert shaped is not None
    model = shaped[-1][1]
    assert isinstance(model, FuncType)
    assert dump(model.result) == ("Base", "size_t", (), "standard")
    assert dump(model.params[0][1]) == ("Base", "uLong", (), "typedef")


def test_every_pycparser_keyword_is_kept() -> None:
    from pycparser import c_lexer

    known = set(getattr(c_lexer, "_keyword_map", {})) | set(
        getattr(getattr(c_lexer, "CLexer", None), "keyword_map", {}))
    assert known, "pycparser's keyword table moved: update _shapes.keywords()"
    assert known <= _shapes.keywords()


def test_real_specs_agree() -> None:
    for name in sorted(os.listdir(SPECS)):
        with open(os.path.join(SPECS, name), encoding="utf-8") as f:
            data = _load_toml(f.read(), name)
        types = data.get("types", {})
        prototypes = [p for key in ("required", "optional")
                      for p in data["functions"].get(key, [])]
        assert compare(prototypes, types), name


def test_an_error_deep_in_a_large_spec_is_the_verbatim_one() -> None:
    body = [f'  "int f{i}(int n, const double *x, size_t len)",' for i in range(400)]
    body[300] = '  "int f300(int n, const doubel *x, size_t len)",'
    text = ('[library]\nname = "big"\n[functions]\nrequired = [\n' + "\n".join(body)
            + "\n]\n")
    with pytest.raises(SpecError) as info:
        Spec.from_string(text, path="big.toml")
    assert info.value.line == 305
    assert "unknown type 'doubel'" in str(info.value)


NAMES = ["x", "n", "cb", "a1", "uLong", "size_t", "handle", "libbroker__n0", "libbroker__n2",
         "libbroker_y", "_x", "offsetof", "restrict", "int", "class", "L", "tag_s", "s",
         "libbroker__t1", "int64_t", "bool"]
PARAM_TYPES = ["int", "unsigned long", "const char *", "double *", "size_t", "uLong",
               "struct tag_s *", "handle *", "void *", "cbt", "pair", "_Bool", "char {}[0x10]",
               "int (*{})(int {}, void *)", "const int *const", "long double", "s *",
               "int64_t", "const uint8_t *", "FILE *", "bool", "uLong (*{})(size_t {}, uLong)",
               "handle *const *"]


@st.composite
def prototypes(draw: st.DrawFn) -> str:
    def name() -> str:
        return draw(st.sampled_from(NAMES))

    params = []
    for _ in range(draw(st.integers(0, 4))):
        ptype = draw(st.sampled_from(PARAM_TYPES))
        if "{}" in ptype:
            params.append(ptype.format(*(name() for _ in range(ptype.count("{}")))))
        else:
            params.append(f"{ptype} {name()}" if draw(st.booleans()) else ptype)
    if params and draw(st.booleans()):
        params.append("...")
    result = draw(st.sampled_from(["int", "void", "const char *", "uLong", "handle *",
                                   "size_t", "const int64_t *"]))
    space = draw(st.sampled_from([" ", "\n  ", "\t"]))
    return f"{result}{space}{name()}({', '.join(params) or 'void'})"


@settings(max_examples=300, deadline=None)
@given(st.lists(prototypes(), min_size=1, max_size=5))
def test_random_prototypes_agree(protos: list[str]) -> None:
    compare(protos)
