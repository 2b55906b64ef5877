"""Fixtures of the scaling sweeps and the linked-consumer comparisons, built with gcc.

Consumers here are small C extension modules (one `.c` file each, compiled straight
with gcc: a Cython step would cost the same on both sides and take minutes for 200
modules). A brokered consumer includes the generated header and calls
`libbroker_import_NAME()` in its init function, as design.md 3.2 tells; its linked
twin declares the same functions `extern` and is linked `-lNAME` with an rpath.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from concurrent.futures import ThreadPoolExecutor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
PY_INCLUDE = sysconfig.get_paths()["include"]

_MODULE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
{includes}
{declarations}
static PyObject *call_all(PyObject *self, PyObject *unused) {{
    long acc = 0;
{calls}
    return PyLong_FromLong(acc);
}}
static PyMethodDef methods[] = {{{{"call_all", call_all, METH_NOARGS, NULL}}, {{NULL}}}};
static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "{name}", NULL, -1, methods}};
PyMODINIT_FUNC PyInit_{name}(void) {{
{init}
    return PyModule_Create(&module);
}}
"""


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def run(argv: Sequence[str], cwd: str, what: str) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed with exit code {proc.returncode}: {' '.join(argv)!r} in {cwd!r}\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )


def module_source(name: str, *, table: str | None, calls: Sequence[str],
                  declarations: str = "", includes: str = "") -> str:
    """C source of extension module *name*; `table`: the spec name it imports, or None
    for a linked consumer. *calls* are C expressions added to `acc`."""
    init = f"    if (libbroker_import_{table}() < 0) return NULL;" if table else ""
    if table:
        includes += f'#include "libbroker_{table}.h"\n'
    body = "".join(f"    acc += (long)({c});\n" for c in calls)
    return _MODULE.format(includes=includes, declarations=declarations, calls=body,
                          name=name, init=init)


def compile_module(src: str, out_dir: str, *, include: Sequence[str] = (),
                   libs: Sequence[str] = (), lib_dirs: Sequence[str] = (),
                   opt: str = "-O2") -> str:
    """gcc -shared one C file into `out_dir/NAME{EXT_SUFFIX}`; the path."""
    name = os.path.basename(src)[:-2]
    out = os.path.join(out_dir, name + EXT_SUFFIX)
    argv = ["gcc", opt, "-shared", "-fPIC", "-o", out, src, f"-I{PY_INCLUDE}"]
    argv += [f"-I{d}" for d in include]
    argv += [f"-L{d}" for d in lib_dirs] + [f"-Wl,-rpath,{d}" for d in lib_dirs]
    argv += [f"-l{lib}" for lib in libs]
    run(argv, out_dir, f"compiling {name}")
    return out


def compile_many(jobs: list[dict], workers: int = 2) -> list[str]:
    """compile_module over *jobs* (keyword dicts), two gcc at a time (2 cores)."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda job: compile_module(**job), jobs))


# -- N distinct libraries ------------------------------------------------------------

def distinct_libraries(root: str, count: int, include: str) -> dict[str, str]:
    """*count* libraries `libblK.so` (one function `int blK_add(int, int)`), their specs
    and headers, a brokered consumer `use_blK` and a linked one `lnk_blK` each.

    Returns the directories: `lib` (the libraries: on LIBBROKER_PATH), `ext` (modules).
    """
    import libbroker

    lib, gen, ext = (os.path.join(root, d) for d in ("lib", "gen", "ext"))
    for d in (lib, gen, ext):
        os.makedirs(d, exist_ok=True)
    jobs: list[dict] = []
    for k in range(count):
        name = f"bl{k}"
        c_file = os.path.join(gen, f"{name}.c")
        write(c_file, f"int {name}_add(int a, int b) {{ return a + b + {k}; }}\n")
        run(["gcc", "-O2", "-shared", "-fPIC", f"-Wl,-soname,lib{name}.so", "-o",
             os.path.join(lib, f"lib{name}.so"), c_file], gen, f"compiling lib{name}.so")
        spec = os.path.join(gen, f"{name}.toml")
        write(spec, f'[library]\nname = "{name}"\nnames = ["{name}"]\n\n'
                    f'[functions]\nrequired = ["int {name}_add(int a, int b)"]\n')
        libbroker.generate(libbroker.Spec.from_file(spec), gen)
        brokered = os.path.join(ext, f"use_{name}.c")
        write(brokered, module_source(f"use_{name}", table=name,
                                      calls=[f"(libbroker_{name}->{name}_add)(1, 2)"]))
        linked = os.path.join(ext, f"lnk_{name}.c")
        write(linked, module_source(f"lnk_{name}", table=None, calls=[f"{name}_add(1, 2)"],
                                    declarations=f"extern int {name}_add(int, int);\n"))
        jobs.append({"src": brokered, "out_dir": ext, "include": [gen, include]})
        jobs.append({"src": linked, "out_dir": ext, "libs": [name], "lib_dirs": [lib]})
    compile_many(jobs)
    return {"lib": lib, "ext": ext}


# -- N consumers of one table --------------------------------------------------------

def zlib_consumers(root: str, count: int, gen: str, include: str) -> str:
    """*count* brokered zlib consumers `zuseK` and linked twins `zlnkK` (-lz); the dir."""
    ext = os.path.join(root, "zext")
    os.makedirs(ext, exist_ok=True)
    jobs: list[dict] = []
    declarations = "extern unsigned long crc32(unsigned long, const unsigned char *, unsigned);\n"
    for k in range(count):
        brokered = os.path.join(ext, f"zuse{k}.c")
        write(brokered, module_source(f"zuse{k}", table="zlib",
                                      calls=['(libbroker_zlib->crc32)(0, (const void *)"a", 1)']))
        linked = os.path.join(ext, f"zlnk{k}.c")
        write(linked, module_source(f"zlnk{k}", table=None, declarations=declarations,
                                    calls=['crc32(0, (const unsigned char *)"a", 1)']))
        jobs.append({"src": brokered, "out_dir": ext, "include": [gen, include]})
        jobs.append({"src": linked, "out_dir": ext, "libs": ["z"]})
    compile_many(jobs)
    return ext


# -- spec sizes ----------------------------------------------------------------------

# Realistic shapes: pointers, const, several parameters; (prototype, parameter count).
SHAPES = (
    ("int {}(int n, const double *x, int incx, double *y, int incy)", 5),
    ("double {}(const double *a, size_t lda, double alpha)", 3),
    ("void {}(char uplo, int n, float *a, int lda, int *info)", 5),
    ("float {}(int n, const float *x, int incx)", 3),
    (("void {}(const char *trans, const int *m, const int *n, const double *alpha,"
      " const double *a, const int *lda, double *b, const int *ldb)"), 8),
    ("int64_t {}(void *handle, uint32_t flags, const char *name)", 3),
)


def spec_text(name: str, header: str, prototypes: Sequence[str]) -> str:
    body = "".join(f'  "{p}",\n' for p in prototypes)
    return f'[library]\nname = "{name}"\n{header}\n[functions]\nrequired = [\n{body}]\n'


def sized_spec(root: str, size: int) -> tuple[str, list[tuple[str, str, int]]]:
    """A spec of *size* functions `szN_fK`; its path and (name, prototype, arity) each."""
    name = f"sz{size}"
    functions = []
    for k in range(size):
        shape, arity = SHAPES[k % len(SHAPES)]
        fname = f"{name}_f{k}"
        functions.append((fname, shape.format(fname), arity))
    path = os.path.join(root, f"{name}.toml")
    write(path, spec_text(name, f'names = ["{name}"]\n', [p for _, p, _ in functions]))
    return path, functions


def sized_consumers(root: str, size: int, functions: list[tuple[str, str, int]],
                    gen: str) -> tuple[str, str]:
    """C sources calling every function once: through the table (`tabN.c`) and as
    plain externs (`extN.c`). The caller compiles and times them."""
    name = f"sz{size}"
    calls_table = [f"(libbroker_{name}->{f})({', '.join(['0'] * n)})" for f, _, n in functions]
    calls_extern = [f"{f}({', '.join(['0'] * n)})" for f, _, n in functions]
    # void functions cannot be added to acc: call them as a comma expression.
    calls_table = [c if not p.startswith("void") else f"({c}, 0)"
                   for c, (_, p, _) in zip(calls_table, functions)]
    calls_extern = [c if not p.startswith("void") else f"({c}, 0)"
                    for c, (_, p, _) in zip(calls_extern, functions)]
    declarations = "#include <stdint.h>\n#include <stddef.h>\n" + "".join(
        f"extern {p};\n" for _, p, _ in functions)
    tab = os.path.join(gen, f"tab{size}.c")
    ext = os.path.join(gen, f"ext{size}.c")
    write(tab, module_source(f"tab{size}", table=name, calls=calls_table))
    write(ext, module_source(f"ext{size}", table=None, calls=calls_extern,
                             declarations=declarations))
    return tab, ext


# -- search directories and installed distributions ----------------------------------

def search_dir(root: str, files: int, library: str) -> str:
    """A directory of *files* entries: *library* (as libbenchadd.so) and hard links to it
    under other library names (real ELF files a scan may look at)."""
    path = os.path.join(root, f"dir{files}")
    os.makedirs(path, exist_ok=True)
    shutil.copy(library, os.path.join(path, "libbenchadd.so"))
    for k in range(files - 1):
        os.link(os.path.join(path, "libbenchadd.so"),
                os.path.join(path, f"libdecoy{k}.so.{k % 3}"))
    return path


def distributions(root: str, count: int, site: str | None = None) -> str:
    """A sys.path directory of *count* installed distributions (`dist-info` with METADATA,
    RECORD, INSTALLER; every fifth with a console-scripts entry_points.txt), as pip
    leaves them, plus each one's package directory. *site*: the directory (default
    ROOT/siteCOUNT)."""
    site = site or os.path.join(root, f"site{count}")
    os.makedirs(site, exist_ok=True)
    for k in range(count):
        dist = f"benchdist{k}"
        info = os.path.join(site, f"{dist}-1.{k}.dist-info")
        pkg = os.path.join(site, dist)
        os.makedirs(info, exist_ok=True)
        os.makedirs(pkg, exist_ok=True)
        write(os.path.join(pkg, "__init__.py"), "")
        write(os.path.join(info, "METADATA"),
              f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.{k}\n")
        write(os.path.join(info, "INSTALLER"), "pip\n")
        write(os.path.join(info, "RECORD"),
              f"{dist}/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
              f"{dist}-1.{k}.dist-info/METADATA,,\n{dist}-1.{k}.dist-info/RECORD,,\n")
        if k % 5 == 0:
            write(os.path.join(info, "entry_points.txt"),
                  f"[console_scripts]\n{dist} = {dist}:main\n")
    return site
