"""`libbroker spec` (libbroker._headerspec): specs written from real C headers.

Real headers (Debian -dev packages, .ci/apt-packages.txt) through the system
preprocessor; the written specs are compiled into a consumer checked against
Python's zlib and sqlite3 and numpy; the headers' own facts (enums, structs,
macros) checked with gcc. bzip2, expat, liblzma, libpng and libcurl specs are
built and checked by tests/test_cookbook.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import libbroker
from libbroker import _cli
from libbroker._errors import SpecError
from libbroker._headerspec import find_preprocessor, spec_from_headers
from libbroker._spec import Spec

HERE = Path(__file__).parent
needs_cpp = pytest.mark.skipif(find_preprocessor() is None, reason="no C preprocessor")
pytestmark = needs_cpp


def _header(name: str) -> str:
    for directory in ("/usr/include", "/usr/include/x86_64-linux-gnu",
                      "/usr/include/aarch64-linux-gnu"):
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    pytest.skip(f"{name} is not installed (see .ci/apt-packages.txt)")


# -- real headers: written specs build a consumer that matches oracles ---------------------

@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding the built consumer ``hs_consumer``.

    It is imported only in child processes: what earlier tests mapped in this one
    (`import scipy_openblas32` puts its OpenBLAS in the global scope) must not decide
    whether these tests pass; the contract for that case has its own test below."""
    workdir = tmp_path_factory.mktemp("headerspec")
    specs = {
        "zlib": ([_header("zlib.h")], "z", ["crc32", "zlibVersion"]),
        "sqlite3": ([_header("sqlite3.h")], "sqlite3",
                    ["sqlite3_open", "sqlite3_exec", "sqlite3_close", "sqlite3_free",
                     "sqlite3_libversion"]),
        "cblas": ([_header("cblas.h")], "openblas", ["cblas_ddot", "cblas_dgemm"]),
    }
    for name, (headers, link, functions) in specs.items():
        text = spec_from_headers(headers, name=name, link=link, functions=functions).text
        (workdir / f"{name}.toml").write_text(text)
    shutil.copy(HERE / "headerspec" / "hs_consumer.pyx", workdir)
    (workdir / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "from libbroker.build import build_ext\n"
        "setup(name='hs', ext_modules=[Extension('hs_consumer', ['hs_consumer.pyx'])],\n"
        "      cmdclass={'build_ext': build_ext.with_specs('zlib.toml', 'sqlite3.toml', "
        "'cblas.toml')})\n")
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                          cwd=workdir, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return workdir


def run_consumer(workdir: Path, body: str, *, before: str = "",
                 env: dict[str, str] | None = None) -> object:
    """Run *body* (which sets ``out``) in a fresh interpreter after ``import hs_consumer``
    (and after *before*); return ``out`` decoded from JSON, or the import's ImportError
    as {"ImportError": message, "cause": type name of its cause}."""
    code = (
        "import json, sys\n" + before + "\n"
        "try:\n"
        "    import hs_consumer\n"
        "except ImportError as exc:\n"
        "    print(json.dumps({'ImportError': str(exc), 'cause': type(exc.__cause__).__name__}))\n"
        "    sys.exit(0)\n" + body + "\nprint(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {}), "PYTHONPATH": str(workdir)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_zlib_spec_consumer_matches_python_zlib(consumer: Path) -> None:
    data = os.urandom(4096)
    out = run_consumer(consumer, f"out = [hs_consumer.crc32({data!r}), hs_consumer.zlib_version()]")
    assert isinstance(out, list)
    assert out[0] == zlib.crc32(data)
    assert out[1] == zlib.ZLIB_RUNTIME_VERSION  # the system zlib CPython's zlib module uses


def test_sqlite3_spec_consumer_matches_python_sqlite3(consumer: Path) -> None:
    sql = "select 6*7, upper('abc'), null union all select 1, 'x', 2.5"
    expected = [[None if v is None else str(v) for v in row]
                for row in sqlite3.connect(":memory:").execute(sql)]
    out = run_consumer(consumer, f"""
try:
    hs_consumer.query("selec 1")
    error = None
except ValueError as exc:
    error = str(exc)
out = [hs_consumer.query({sql!r}), error]
""")
    assert out == [expected, 'near "selec": syntax error']


CBLAS = """
import numpy as np
rng = np.random.default_rng(12)
x, y = rng.standard_normal(1000), rng.standard_normal(1000)
a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
c = np.zeros((4, 5))
hs_consumer.dgemm(a, b, c)
out = [hs_consumer.ddot(x, y), c.tolist()]
"""


def _numpy_cblas() -> tuple[float, object]:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal(1000), rng.standard_normal(1000)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    return float(np.dot(x, y)), a @ b


def test_cblas_spec_consumer_matches_numpy(consumer: Path) -> None:
    np = pytest.importorskip("numpy")
    dot, product = _numpy_cblas()
    out = run_consumer(consumer, CBLAS)
    assert isinstance(out, list), out
    assert out[0] == pytest.approx(dot, rel=1e-12)
    assert np.allclose(np.array(out[1]), product)


def test_cblas_beside_an_openblas_in_the_global_scope(consumer: Path, tmp_path: Path) -> None:
    """design.md 5.1: scipy-openblas32's __init__ maps its OpenBLAS RTLD_GLOBAL; that copy
    does not satisfy the spec (its symbols carry scipy_), and it defines symbols (LAPACK's
    caxpyc_ ...) the system OpenBLAS exports, so a private copy's internal calls would bind
    to it: refused, naming both files, unless the config file says isolation = "deepbind"."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("scipy_openblas32")
    before = "import scipy_openblas32"
    out = run_consumer(consumer, CBLAS, before=before)
    assert isinstance(out, dict) and "ImportError" in out, out
    message = out["ImportError"]
    assert "libscipy_openblas.so' in the global symbol scope" in message
    assert "openblas" in message.split("global symbol scope", 1)[1]  # the refused system copy
    assert 'fix: set isolation = "deepbind" in the config file' in message.splitlines()[-1]
    config = tmp_path / "config.toml"
    config.write_text('isolation = "deepbind"\n')
    out = run_consumer(consumer, CBLAS, before=before, env={"LIBBROKER_CONFIG": str(config)})
    assert isinstance(out, list), out
    dot, product = _numpy_cblas()
    assert out[0] == pytest.approx(dot, rel=1e-12)
    assert np.allclose(np.array(out[1]), product)


# -- what the written spec says ------------------------------------------------------------

@pytest.mark.parametrize(
    ("header", "link", "count"),
    [("zlib.h", "z", 60), ("bzlib.h", "bz2", 20), ("expat.h", "expat", 60),
     ("lzma.h", "lzma", 80), ("sqlite3.h", "sqlite3", 200)],
)
def test_default_selects_the_library_functions_only(header: str, link: str, count: int) -> None:
    result = spec_from_headers([_header(header)], name="t", link=link)
    assert len(result.functions) >= count
    assert "printf" not in result.functions and "malloc" not in result.functions
    spec = Spec.from_string(result.text)  # valid, and exported by the real library
    assert [fn.name for fn in spec.functions] == result.functions


def test_every_default_function_of_real_headers_is_exported() -> None:
    # readelf (not our reader) lists what the library exports.
    result = spec_from_headers([_header("zlib.h")], name="zlib", link="z")
    path = libbroker.find("z").path
    out = subprocess.run(["readelf", "--dyn-syms", "-W", path], capture_output=True, text=True,
                         check=True).stdout
    exported = {line.split()[7].split("@")[0] for line in out.splitlines()
                if len(line.split()) >= 8 and line.split()[6] != "UND"}
    missing = [f for f in result.functions if f not in exported]
    assert len(missing) <= 2, missing  # zlib.h declares a few functions only some builds have


def test_enum_struct_and_typedef_shapes(tmp_path: Path) -> None:
    header = tmp_path / "shapes.h"
    header.write_text("""
        #include <stddef.h>
        typedef enum { RED, GREEN = 5, BLUE } color;
        enum big { SMALL = 1, HUGE = 0x80000000u };
        enum neg { MINUS = -1 };
        typedef struct point { double x, y; char name[2 * 8]; } point;
        typedef struct hidden hidden;
        typedef int (*callback)(const void *data, size_t size);
        typedef union { int i; float f; } number;
        color paint(point p, const hidden *h, enum big b, enum neg n);
        point *move(point *p, callback cb);
        number as_number(int i);
        static inline int helper(void) { return 0; }
    """)
    text = spec_from_headers([str(header)], name="shapes", link="shapes").text
    assert 'color = "int"  # enum color' in text
    assert 'big = "unsigned int"  # enum big' in text
    assert 'neg = "int"  # enum neg' in text
    assert 'point = "struct { double x; double y; char name[16]; }"' in text
    assert 'hidden = "opaque"' in text
    assert 'callback = "int (*)(const void *data, size_t size)"' in text
    assert 'number = "union { int i; float f; }"' in text
    assert "helper" not in text  # static inline: not exported
    spec = Spec.from_string(text)
    assert spec.function("paint").signature == (
        "paint: int (struct { double x; double y; char name[16]; }, const struct hidden *, "
        "unsigned int, int)")
    # The written spec's header compiles, with and without the real header first.
    gen = tmp_path / "gen"
    libbroker.generate(spec, gen)
    use = tmp_path / "use.c"
    # The real header declares these types; 'big' and 'neg' (enum tags) it does not,
    # so the generated header keeps its own: per-type coexistence.
    external = "".join(f"#define LIBBROKER_EXTERNAL_{t}\n"
                       for t in ("color", "point", "hidden", "callback", "number"))
    assert "# [types] the header does not declare (keep them when it is included): big, neg" in text
    use.write_text('#include "shapes.h"\n' + external +
                   '#include "libbroker_shapes.h"\n'
                   "int probe(void) { point p = {1, 2, \"a\"}; return (int)sizeof(p) + "
                   "(libbroker_shapes->paint != 0); }\n")
    alone = tmp_path / "alone.c"
    alone.write_text('#include "libbroker_shapes.h"\nint probe(void) { point p = {1, 2, "a"};'
                     " return (int)sizeof(p); }\n")
    import sysconfig

    for source in (use, alone):
        subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-fsyntax-only",
                        f"-I{tmp_path}", f"-I{gen}", f"-I{libbroker.get_include()}",
                        f"-I{sysconfig.get_paths()['include']}", str(source)], check=True)


def test_macro_renamed_functions_and_variables() -> None:
    result = spec_from_headers([_header("gmp.h")], name="gmp", link="gmp",
                               functions=["mpz_add"], variables=["gmp_version"])
    assert result.renames == {"gmp_version": "__gmp_version", "mpz_add": "__gmpz_add"}
    assert "# mpz_add is a macro for __gmpz_add" in result.text
    spec = Spec.from_string(result.text)
    assert [(s.name, s.kind) for s in spec.functions] == [
        ("__gmpz_add", "function"), ("__gmp_version", "variable")]


def test_va_list_functions_are_left_out_with_a_note() -> None:
    result = spec_from_headers([_header("sqlite3.h")], name="sq", link="sqlite3",
                               functions=["sqlite3_*printf"])
    assert "sqlite3_mprintf" in result.functions  # variadic: kept
    assert "sqlite3_vmprintf" not in result.functions  # va_list: left out, said why
    assert any(n.startswith("sqlite3_vmprintf: left out, it takes a va_list") for n in result.notes)
    assert "int, ...)" in result.text or "...)" in result.text


def test_deterministic() -> None:
    args = ([_header("lzma.h")],)
    assert spec_from_headers(*args, name="l", link="lzma").text == spec_from_headers(
        *args, name="l", link="lzma").text


# -- errors --------------------------------------------------------------------------------

def test_glob_matching_nothing_is_an_error() -> None:
    with pytest.raises(SpecError, match=r"--function 'nope_\*' matches no function"):
        spec_from_headers([_header("zlib.h")], name="z", link="z", functions=["nope_*"])


def test_missing_header_says_how_to_get_it() -> None:
    with pytest.raises(SpecError, match="development package"):
        spec_from_headers(["no/such_header.h"], name="z", link="z")


def test_no_preprocessor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CPP", raising=False)
    with pytest.raises(SpecError, match="no C preprocessor found"):
        spec_from_headers([_header("zlib.h")], name="z", link="z")


def test_preprocessor_error_is_reported(tmp_path: Path) -> None:
    header = tmp_path / "broken.h"
    header.write_text('#include "does_not_exist.h"\n')
    with pytest.raises(SpecError, match="does_not_exist.h"):
        spec_from_headers([str(header)], name="b", link="b")


def test_cli_check_lists_what_the_library_does_not_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = tmp_path / "more.h"
    header.write_text(f'#include "{_header("zlib.h")}"\nint not_in_zlib(int x);\n')
    out = tmp_path / "z.toml"
    code = _cli.main(["spec", str(header), "--name", "z", "--link", "z", "--function", "crc32",
                      "--function", "not_in_zlib", "-o", str(out), "--check"])
    err = capsys.readouterr().err
    assert code == 1
    assert "function not_in_zlib: not exported" in err and "crc32" not in err.split("\n", 1)[1]
    assert Spec.from_file(out).function("crc32")


def test_cli_spec_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Review F7: README and design 3.4 promise --json on every reporting command.
    header = tmp_path / "more.h"
    header.write_text(f'#include "{_header("zlib.h")}"\nint not_in_zlib(int x);\n')
    base = ["spec", str(header), "--name", "z", "--link", "z", "--function", "crc32",
            "--function", "not_in_zlib"]
    assert _cli.main(base) == 0
    text = capsys.readouterr().out
    assert _cli.main([*base, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # stdout is the JSON only
    assert data["text"] == text and data["output"] is None and "check" not in data
    assert (data["name"], data["links"], data["functions"]) == ("z", ["z"], ["crc32", "not_in_zlib"])
    out = tmp_path / "z.toml"
    assert _cli.main([*base, "-o", str(out), "--check", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert out.read_text() == text and data["output"] == str(out)
    assert data["check"]["library"] == libbroker.find("z").path
    [missing] = data["check"]["missing"]
    assert missing.startswith("function not_in_zlib: not exported")


def test_cli_help_on_every_argument_of_every_subcommand() -> None:
    parser = _cli.build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    for name, subparser in sub.choices.items():  # type: ignore[union-attr]
        for action in subparser._actions:
            assert action.help, f"libbroker {name}: {action.option_strings or action.dest}"
