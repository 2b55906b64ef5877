"""Spec files: parsing, attributes, digests, and every malformed case."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from libbroker._codegen import embedded_text
from libbroker._errors import SpecError
from libbroker._spec import LIBBROKER_ABI_MAJOR, Spec

SPECS = os.path.join(os.path.dirname(__file__), "specs")
ZLIB = os.path.join(SPECS, "zlib.toml")


def test_zlib_spec_attributes() -> None:
    spec = Spec.from_file(ZLIB)
    assert spec.name == "zlib"
    assert spec.names == ["z", "zlib1", "zlib"]
    assert spec.version == ">=1.2.11"
    assert str(spec.specifier) == ">=1.2.11"
    assert spec.version_function == "zlibVersion"
    assert spec.symbol_prefix == "" and spec.symbol_suffix == ""
    assert spec.packages == []
    assert spec.types["z_stream"] == "opaque"
    assert spec.path == ZLIB
    with open(ZLIB, encoding="utf-8") as f:
        assert spec.text == f.read()
    assert spec.c_name == "libbroker_zlib"
    names = [fn.name for fn in spec.functions]
    assert names[:6] == ["zlibVersion", "crc32", "adler32", "compress2", "uncompress",
                         "compressBound"]
    assert names[6:] == ["crc32_z", "libbroker_absent_probe"]
    assert [fn.required for fn in spec.functions] == [True] * 6 + [False] * 2
    assert spec.required_functions == spec.functions[:6]
    assert spec.optional_functions == spec.functions[6:]


def test_contract_signature_and_digests() -> None:
    spec = Spec.from_file(ZLIB)
    crc32 = spec.function("crc32")
    assert crc32.signature == (
        "crc32: unsigned long (unsigned long, const unsigned char *, unsigned int)")
    assert crc32.return_type == "unsigned long"
    assert crc32.params == [("crc", "unsigned long"), ("buf", "const unsigned char *"),
                            ("len", "unsigned int")]
    assert crc32.prototype == "uLong crc32(uLong crc, const Bytef *buf, uInt len)"
    assert spec.signatures == [fn.signature for fn in spec.functions]
    blob = f"{LIBBROKER_ABI_MAJOR}\n" + "\n".join(spec.signatures)
    expected = int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "little")
    assert spec.layout_digest == expected
    with open(ZLIB, "rb") as f:
        assert spec.spec_digest == hashlib.sha256(f.read()).hexdigest()


def test_function_lines_point_at_the_prototypes() -> None:
    for name in ("zlib", "sqlite3", "libm"):
        path = os.path.join(SPECS, f"{name}.toml")
        spec = Spec.from_file(path)
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for fn in spec.functions:
            assert fn.line is not None
            assert fn.prototype in lines[fn.line - 1], (fn, lines[fn.line - 1])


def test_symbols_and_defaults() -> None:
    spec = Spec.from_string(
        '[library]\nname = "blas"\nsymbol-prefix = "scipy_"\nsymbol-suffix = "64_"\n'
        '[functions]\nrequired = ["double ddot(int n, const double *x, int incx, '
        'const double *y, int incy)"]\n'
    )
    fn = spec.functions[0]
    assert fn.symbol(spec) == "scipy_ddot64_" == spec.symbol_for(fn) == spec.symbol_for("ddot")
    assert spec.names == ["blas"]  # defaults to [name]
    assert spec.version is None and spec.specifier is None and spec.path is None
    assert spec.types == {} and spec.packages == []


def test_sqlite3_and_libm_specs() -> None:
    sqlite = Spec.from_file(os.path.join(SPECS, "sqlite3.toml"))
    assert sqlite.function("sqlite3_exec").signature == (
        "sqlite3_exec: int (struct sqlite3 *, const char *, "
        "int (*)(void *, int, char **, char **), void *, char **)")
    libm = Spec.from_file(os.path.join(SPECS, "libm.toml"))
    assert libm.names == ["m"]
    assert libm.signatures == ["cos: double (double)", "sqrt: double (double)",
                               "hypot: double (double, double)"]


def _spec(types: str, proto: str) -> Spec:
    return Spec.from_string(f'[library]\nname = "z"\n[types]\n{types}\n'
                            f'[functions]\nrequired = ["{proto}"]\n')


def test_typedef_resolution_and_layout_digest() -> None:
    direct = _spec("", "unsigned long crc32(unsigned long crc)")
    via_typedef = _spec('uLong = "unsigned long"', "uLong crc32(uLong crc)")
    renamed = _spec('uLong = "unsigned long"', "uLong crc32(uLong value)")
    spelled = _spec('uLong = "long unsigned int"', "uLong crc32(const uLong crc)")
    assert direct.layout_digest == via_typedef.layout_digest == renamed.layout_digest
    assert direct.layout_digest == spelled.layout_digest
    assert direct.spec_digest != via_typedef.spec_digest
    changed = _spec('uLong = "unsigned int"', "uLong crc32(uLong crc)")
    assert changed.layout_digest != direct.layout_digest
    reordered = Spec.from_string('[library]\nname = "z"\n[functions]\nrequired = '
                                 '["int b(void)", "int a(void)"]\n')
    ordered = Spec.from_string('[library]\nname = "z"\n[functions]\nrequired = '
                               '["int a(void)", "int b(void)"]\n')
    assert reordered.layout_digest != ordered.layout_digest


def test_line_endings_do_not_change_the_digest(tmp_path) -> None:
    with open(ZLIB, encoding="utf-8") as f:
        text = f.read()
    crlf = tmp_path / "zlib.toml"
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    assert Spec.from_file(crlf).spec_digest == Spec.from_file(ZLIB).spec_digest


HEAD = '[library]\nname = "t"\n'  # lines 1-2
FUNCS = '[functions]\nrequired = ["int f(void)"]\n'


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ('[library]\nname = "t\n', "invalid TOML", 2),
        ("[library]\nnames = ['t']\n" + FUNCS, "has no name", 1),
        ("[types]\n" + FUNCS, "no [library] table", None),
        ('[library]\nname = "z-lib"\n' + FUNCS, "not a C identifier", 2),
        ('[library]\nname = "int"\n' + FUNCS, "not a C identifier", 2),
        ('[library]\nname = "zl\u00efb"\n' + FUNCS, "not a C identifier", 2),
        ('[library]\nname = "libbroker_t"\n' + FUNCS, "reserved", 2),
        (HEAD + 'versoin = ">=1"\n' + FUNCS, "'versoin'", 3),
        (HEAD + 'names = "t"\n' + FUNCS, "must be a list", 3),
        (HEAD + "version = 1\n" + FUNCS, "must be a str", 3),
        (HEAD + "packages = [1]\n" + FUNCS, "list of strings", 3),
        # Review F6: packages are distribution names, never paths or requirements.
        (HEAD + 'packages = ["/tmp/att"]\n' + FUNCS, "'/tmp/att': a path, not a distribution name", 3),
        (HEAD + 'packages = ["../../../tmp/att"]\n' + FUNCS, "a path, not a distribution name", 3),
        (HEAD + 'packages = ["scipy-openblas32>=0.3"]\n' + FUNCS,
         "fix: write only the name 'scipy-openblas32'", 3),
        (HEAD + 'packages = ["scipy openblas"]\n' + FUNCS, "not a distribution name", 3),
        (HEAD + 'packages = ["-x"]\n' + FUNCS, "PEP 508", 3),
        (HEAD + 'packages = ["Scipy_OpenBLAS32", "a.b-c"]\n' + FUNCS, None, None),
        (HEAD + 'names = ["lib/t"]\n' + FUNCS, "not a path", 3),
        (HEAD + 'version = ">=1.2.x"\n' + FUNCS, "PEP 440", 3),
        (HEAD + 'version-function = "get version"\n' + FUNCS, "not a C identifier", 3),
        (HEAD + 'symbol-suffix = "-64"\n' + FUNCS, "symbol-suffix", 3),
        (HEAD + 'version-function = "v"\n[functions]\nrequired = ["int v(void)"]\n',
         "version-function must return const char * and take no arguments", 5),
        (HEAD + 'version-function = "v"\n[functions]\nrequired = ["const char *v(int)"]\n',
         "'v' (line 3) is declared at line 5", 5),
        (HEAD + "[types]\nS = 'opaque'\n[functions]\nrequired = ['S f(void)']\n",
         "'f' ('S f(void)') returns by value the opaque type 'S'", 6),
        (HEAD + "[types]\nS = 'opaque:s_tag'\nT = 'S'\n[functions]\nrequired = [\n"
         "  'int g(S *ok)',\n  'int f(int a, T s)',\n]\n",
         "'f' ('int f(int a, T s)') takes as parameter 2 by value the opaque type 'S'", 9),
        (HEAD + "[types]\nclass = 'int'\n" + FUNCS, "C++ keyword", 4),
        (HEAD + "[types]\ntemplate = 'opaque'\n" + FUNCS, "C++ keyword", 4),
        (HEAD + "[types]\ncdef = 'int'\n" + FUNCS, "Cython keyword", 4),
        (HEAD + "[types]\nctypedef = 'int'\n" + FUNCS, "Cython keyword", 4),
        (HEAD + "[types]\nlambda = 'int'\n" + FUNCS, "Python or Cython keyword", 4),
        (HEAD + "[types]\ntable = 'int'\n" + FUNCS, "the generated .pxd defines", 4),
        (HEAD + "[types]\nimport_t = 'int'\n" + FUNCS, "the generated .pxd defines", 4),
        (HEAD + "[types]\nS = 'opaque:2x'\n" + FUNCS, "struct tag '2x' is not a C identifier", 4),
        (HEAD + "[types]\nS = 'opaque:new'\n" + FUNCS, "C++ keyword", 4),
        (HEAD + "[types]\nS = 'opaque:T'\nT = 'int'\n" + FUNCS, "also a [types] name", 4),
        (HEAD + "[functions]\nrequired = ['int class(int)']\n", "C++ keyword", 4),
        (HEAD + "[functions]\nrequired = ['int table(int)', 'int table_(int)']\n",
         "would both be 'table_' in the .pxd", 4),
        (HEAD + "[functions]\nrequired = [\n  'int cdef_(int)',\n  'int cdef(int)',\n]\n",
         "(line 5) would both be 'cdef_'", 6),
        (HEAD + "[types]\nabc_ = 'int'\n[functions]\nrequired = ['int abc(abc_ x)']\n"
         "optional = ['int print(int)']\n", None, None),
        ('[library]\nname = "' + "t" * 101 + '"\n' + FUNCS, "at most 100", 2),
        (HEAD + "[functions]\nrequired = [\n  'int f(int a)',\n  'int f(int b)',\n]\n",
         "declared twice", 6),
        (HEAD + "[functions]\nrequired = ['int f(int a)']\noptional = [\n  'int f(int a)',\n]\n",
         "both required", 6),
        (HEAD + "[functions]\nrequired = ['uLongf f(int a)']\n", "unknown type 'uLongf'", 4),
        (HEAD + "[functions]\nrequired = ['int f(int a b)']\n", "not a C declaration", 4),
        (HEAD + "[functions]\nrequired = ['int header(void)']\n", "reserved", 4),
        (HEAD + "[functions]\nrequired = []\n", "no functions", 3),
        (HEAD, "no functions", None),
        (HEAD + "[functions]\nrequired = 'int f(void)'\n", "list of strings", 4),
        (HEAD + "[functions]\nrequierd = ['int f(void)']\n", "'requierd'", 4),
        (HEAD + "[types]\nx = 'int y'\n" + FUNCS, "not a C type", 4),
        (HEAD + "[types]\nx = 3\n" + FUNCS, "must be a string", 4),
        (HEAD + "[types]\nsize_t = 'unsigned long'\n" + FUNCS, "standard type", 4),
        (HEAD + "[types]\nlibbroker_x = 'int'\n" + FUNCS, "reserved", 4),
        (HEAD + "[types]\nint = 'long'\n" + FUNCS, "not a C identifier", 4),
        (HEAD + "[types]\na = 'b *'\nb = 'a *'\n" + FUNCS, "cycle", 4),
        (HEAD + "[extra]\nx = 1\n" + FUNCS, "'extra'", 3),
    ],
)
def test_malformed_spec(
    text: str, message: str | None, line: int | None, tmp_path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    if message is None:  # a control case: a near miss that is valid
        Spec.from_file(path)
        return
    with pytest.raises(SpecError) as info:
        Spec.from_file(path)
    err = info.value
    assert message in err.message, str(err)
    assert err.path == str(path)
    assert err.line == line, str(err)
    assert str(err).startswith(f"{path}:{line}: " if line else f"{path}: ")
    # The same text without a file names no path but keeps the line.
    with pytest.raises(SpecError) as again:
        Spec.from_string(text)
    assert again.value.line == line and again.value.path is None


def test_unreadable_and_non_utf8_files(tmp_path) -> None:
    with pytest.raises(SpecError) as info:
        Spec.from_file(tmp_path / "missing.toml")
    assert "cannot read" in str(info.value) and info.value.line is None
    latin = tmp_path / "latin.toml"
    latin.write_bytes(HEAD.encode() + b"# caf\xe9\n" + FUNCS.encode())
    with pytest.raises(SpecError) as info:
        Spec.from_file(latin)
    assert "UTF-8" in str(info.value) and info.value.line == 3
    with pytest.raises(SpecError):
        Spec.from_string(b"[library]")  # type: ignore[arg-type]


def test_spec_error_is_chained_from_the_parser_error() -> None:
    with pytest.raises(SpecError) as info:
        Spec.from_string('[library]\nname = "t\n')
    assert info.value.__cause__ is not None


def test_renamed_cython_names_and_limits() -> None:
    spec = Spec.from_string(HEAD + "[functions]\nrequired = ['int table(int)', 'int cdef(int)', "
                            "'int import_t(void)', 'int SLOT_COUNT(void)', 'int f(int)']\n")
    assert spec.cython_names == {"table": "table_", "cdef": "cdef_", "import_t": "import_t_",
                                 "SLOT_COUNT": "SLOT_COUNT_", "f": "f"}
    assert Spec.from_string('[library]\nname = "' + "t" * 100 + '"\n' + FUNCS).name == "t" * 100


def test_version_function_may_be_undeclared() -> None:
    spec = Spec.from_string(HEAD + 'version-function = "zlibVersion"\n'
                            "[functions]\nrequired = ['unsigned long crc32(unsigned long)']\n")
    assert spec.version_function == "zlibVersion" and [f.name for f in spec.functions] == ["crc32"]
    alias = Spec.from_string(HEAD + 'version-function = "v"\n[types]\ncstr = "const char *"\n'
                             "[functions]\nrequired = ['cstr v(void)', 'int w(char *)']\n")
    assert alias.function("v").return_type == "const char *"


def test_embedded_text_is_compact_and_keeps_the_digest() -> None:
    spec = Spec.from_file(ZLIB)
    embedded = embedded_text(spec)
    assert embedded.startswith(f"# libbroker spec-digest {spec.spec_digest}\n")
    body = embedded.split("\n", 1)[1]
    assert "#" not in body and "\n\n" not in body and "\n " not in body
    assert len(embedded) < len(spec.text) + 10
    again = Spec.from_string(embedded)
    assert (again.spec_digest, again.layout_digest) == (spec.spec_digest, spec.layout_digest)
    assert again.signatures == spec.signatures and again.types == spec.types
    assert embedded_text(again) == embedded  # stable when regenerated from it
    # Only the marker's exact form is trusted; anything else is hashed as usual.
    forged = "# libbroker spec-digest xyz\n" + body
    assert Spec.from_string(forged).spec_digest == hashlib.sha256(forged.encode()).hexdigest()


def test_embedded_text_keeps_multiline_strings() -> None:
    # Indentation and '#' inside a multi-line string are data: compacting them would
    # change the spec, so the text is embedded as written.
    # (A package name can no longer hold a newline, review F6: a [types] text can.)
    text = (HEAD + '[types]\nT = """unsigned\n  long"""\n[functions]\n'
            "required = ['T f(void)']  # a comment\n")
    spec = Spec.from_string(text)
    assert spec.types == {"T": "unsigned\n  long"}
    embedded = embedded_text(spec)
    assert embedded.split("\n", 1)[1] == text
    assert Spec.from_string(embedded).types == spec.types
    inline = Spec.from_string(HEAD + 'names = ["a#b", \'c#d\']  # link names\n' + FUNCS)
    assert 'names = ["a#b", \'c#d\']\n' in embedded_text(inline)


# -- [variables], shapes and the messages of issue 12 --------------------------------------

LIB = '[library]\nname = "t"\nnames = ["t"]\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[variables]\nrequired = ['int f(void)']", "not an object declaration"),
        ("[variables]\nrequired = ['void v']", "type void"),
        ("[variables]\nrequired = ['int v = 3']", "initializer"),
        ("[variables]\nrequired = ['static int v']", "not an object declaration"),
        ("[functions]\nrequired = ['int v(void)']\n[variables]\nrequired = ['int v']",
         "declared twice"),
        ("[variables]\nrequired = ['int v']\noptional = ['long v']", "both required"),
        ("[variables]\nextra = ['int v']", "unknown key 'extra' in [variables]"),
        ("[types]\nE = 'enum'\n[functions]\nrequired = ['E f(void)']",
         'its underlying integer type, e.g. E = "int"'),
        ("[types]\nS = 'struct'\n[functions]\nrequired = ['S *f(void)']", '"opaque"'),
        ("[functions]\nrequired = ['uLong crc32(uLong crc, const Bytef *buf, uInt len)']",
         "unknown types 'uLong', 'Bytef', 'uInt'"),
        ("[library]\nversion-function = 'v'\n[variables]\nrequired = ['const char *v']",
         "version-function"),
    ],
)
def test_shape_errors(body: str, message: str) -> None:
    text = LIB + body + "\n"
    if body.startswith("[library]"):
        text = '[library]\nname = "t"\nnames = ["t"]\nversion-function = "v"\n' + body.split(
            "\n", 2)[2] + "\n"
    with pytest.raises(SpecError) as info:
        Spec.from_string(text, path="t.toml")
    assert message in info.value.message, info.value.message
    assert info.value.line is not None


def test_variables_only_spec_and_slot_order() -> None:
    spec = Spec.from_string(LIB + "[variables]\nrequired = ['extern const char *const v']\n"
                            "[functions]\noptional = ['int f(int x, ...)']\n")
    assert [(s.name, s.kind, s.required, s.variadic) for s in spec.functions] == [
        ("f", "function", False, True), ("v", "variable", True, False)]
    assert spec.signatures == ["f: int (int, ...)", "v: const char *const *"]
    assert [v.name for v in spec.variables] == ["v"] and spec.slots == spec.functions


@pytest.mark.parametrize("name", [" z", "z ", "z\n", "libz.so", "libz.so.1", "z.dll", "a/b",
                                  "..", "z\x00"])
def test_link_names_that_match_no_file(name: str) -> None:
    text = '[library]\nname = "t"\nnames = [' + json.dumps(name) + ']\n' + FUNCS
    with pytest.raises(SpecError) as info:
        Spec.from_string(text)
    assert "link name" in info.value.message and info.value.line == 3


@pytest.mark.parametrize(
    "text",
    [
        LIB + "[types]\nA = " + "[" * 600 + "]" * 600 + "\n" + FUNCS,
        LIB + "x = " + "{a=" * 2000 + "1" + "}" * 2000 + "\n" + FUNCS,
        LIB + "[functions]\nrequired = ['int " + "*" * 2000 + "f(void)']\n",
        LIB + "[functions]\nrequired = ['int f(" + "(" * 500 + "int" + ")" * 500 + ")']\n",
        LIB + "[types]\n" + "".join(f"T{i} = 'T{i + 1} *'\n" for i in range(3000))
        + "T3000 = 'int'\n[functions]\nrequired = ['T0 f(void)']\n",
    ],
    ids=["deep-toml-array", "deep-inline-table", "2000-stars", "deep-parens", "typedef-chain"],
)
def test_deep_nesting_is_a_spec_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(SpecError):
        Spec.from_string(text)


def _scanned_key_line(text: str, section: str, key: str) -> int | None:
    """The line of ``key`` in ``section`` by scanning every line for it: the per-question
    scan the one-pass index replaced (quadratic at 5,000 functions), kept as the reference."""
    current = ""
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            header = stripped[1:].split("]", 1)[0].strip().strip('"')
            if section == "" and header == key:
                return number
            current = header
            continue
        if current != section:
            continue
        stripped = line.lstrip()
        for spelling in (key, f'"{key}"', f"'{key}'"):
            if stripped.startswith(spelling) and stripped[len(spelling):].lstrip().startswith("="):
                return number
    return None


def _keys(data: dict, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for key, value in data.items():
        found.append((prefix, key))
        if isinstance(value, dict) and not prefix:
            found.extend(_keys(value, key))
    return found


@pytest.mark.parametrize("name", ["zlib", "sqlite3", "libm", "openblas", "odd"])
def test_key_lines_match_a_scan_of_every_line(name: str) -> None:
    from libbroker._spec import _Lines, _load_toml

    if name == "odd":  # quoted keys, '=' inside them, dotted keys, keys like sections
        text = ('top = "x"\n[library]\nname = "t"\n"names" = ["t"]\n'
                "'version' = \">=1\"\n[types]\n\"a=b\" = 'int'\nc.d = 'int'\n  e   =  'int'\n"
                "[functions]\nrequired=['int f(void)']\n[\"variables\"]\noptional = []\n")
    else:
        with open(os.path.join(SPECS, f"{name}.toml"), encoding="utf-8") as f:
            text = f.read()
    lines = _Lines(text)
    asked = _keys(_load_toml(text, name)) + [("types", "absent"), ("", "absent"),
                                             ("library", "e"), ("types", "c")]
    for section, key in asked:
        assert lines.key(section, key) == _scanned_key_line(text, section, key), (section, key)


def _large_spec_text(count: int) -> str:
    shapes = ["int {}(int n, const double *x, int incx)",
              "void {}(void (*cb)(void *ctx, int code), void *ctx)",
              "const char *{}(handle *h, size_t len, ...)"]
    protos = "".join(f'  "{shapes[i % 3].format(f"f{i}")}",  # {i}\n' for i in range(count))
    return ('# large\n[library]\nname = "large"\n[types]\nhandle = "opaque"\n\n'
            f"[functions]\nrequired = [\n{protos}]\noptional = ['int late(int late_n)']\n")


@pytest.mark.parametrize("name", ["zlib", "sqlite3", "libm", "openblas", "large"])
def test_the_compacted_text_parses_to_the_same_slots(name: str) -> None:
    if name == "large":
        spec = Spec.from_string(_large_spec_text(1500), path="large.toml")
    else:
        spec = Spec.from_file(os.path.join(SPECS, f"{name}.toml"))
    embedded = embedded_text(spec)
    again = Spec.from_string(embedded)
    assert (again.spec_digest, again.layout_digest) == (spec.spec_digest, spec.layout_digest)
    slots = [(fn.name, fn.kind, fn.required, fn.prototype, fn.signature, fn.return_type,
              fn.params, fn.variadic) for fn in spec.functions]
    assert [(fn.name, fn.kind, fn.required, fn.prototype, fn.signature, fn.return_type,
             fn.params, fn.variadic) for fn in again.functions] == slots
    for source in (spec, again):  # each text's own lines
        lines = source.text.split("\n")
        for fn in source.functions:
            assert fn.line is not None and fn.prototype in lines[fn.line - 1], fn


@pytest.mark.parametrize(
    ("prototypes", "culprit"),
    [
        # The first prototype with the refused types is named, not a later one with the
        # same types (texts and checks are shared between prototypes of the same types).
        (["int f(int x)", "op h(int z)", "op k(int y)"], "h"),
        (["op *f(op *x)", "int g(int y)", "op k(int z)", "op m(int z)"], "k"),
        (["int f(int x)", "int g(pair p)", "pair q(op o)", "pair r(op o)"], "q"),
    ],
)
def test_a_refused_type_names_its_first_prototype(prototypes: list[str], culprit: str) -> None:
    listed = "".join(f"  '{p}',\n" for p in prototypes)
    text = ('[library]\nname = "t"\n[types]\nop = "opaque"\npair = "struct { int a; }"\n'
            f"[functions]\nrequired = [\n{listed}]\n")
    with pytest.raises(SpecError) as info:
        Spec.from_string(text, path="t.toml")
    assert f"function {culprit!r}" in info.value.message and "by value" in info.value.message
    assert info.value.line == 8 + [p.split("(")[0].split()[-1].lstrip("*")
                                   for p in prototypes].index(culprit)


def test_prototypes_of_the_same_types_keep_their_own_names() -> None:
    spec = Spec.from_string(LIB + "[variables]\nrequired = ['int v']\n[functions]\n"
                            "required = ['int f(int x, ...)', 'int g(int y, ...)', "
                            "'int h(int y)', 'int k(int)']\n")
    assert [(fn.name, fn.params, fn.variadic, fn.signature) for fn in spec.functions] == [
        ("f", [("x", "int")], True, "f: int (int, ...)"),
        ("g", [("y", "int")], True, "g: int (int, ...)"),
        ("h", [("y", "int")], False, "h: int (int)"),
        ("k", [(None, "int")], False, "k: int (int)"),
        ("v", [], False, "v: int *"),
    ]


# --- spec files that are not regular files (review 2) --------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_fifo_spec_is_refused_without_blocking(tmp_path) -> None:
    import subprocess
    import sys

    path = tmp_path / "spec.toml"
    os.mkfifo(path)
    code = f"""
from libbroker._errors import SpecError
from libbroker._spec import Spec
try:
    Spec.from_file({str(path)!r})
except SpecError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path}: expected a spec file (TOML text) but found a directory, FIFO")


def test_directory_and_oversized_spec_are_refused(tmp_path) -> None:
    with pytest.raises(SpecError, match="expected a spec file"):
        Spec.from_file(tmp_path)
    big = tmp_path / "big.toml"
    with open(big, "wb") as f:
        f.truncate((16 << 20) + 1)  # sparse
    with pytest.raises(SpecError, match="over 16777216 bytes"):
        Spec.from_file(big)
