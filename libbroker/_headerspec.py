"""`libbroker spec`: a complete, minimal, deterministic spec from a library's real C headers.

The headers go through the system C preprocessor (``cpp``, else ``cc -E``) with the
GCC extensions pycparser cannot parse defined away, then through pycparser. The
selected functions (by name or glob; by default every function the library's own
headers declare) and every type they use are written as a spec:

- typedefs of scalars, pointers and function pointers as the header spells them,
  resolved down to C types for the platform's private typedefs (``__off_t``);
- enums as their underlying C type, with a comment naming the enum;
- structs and unions opaque (through pointers) unless a function takes or returns
  one by value, then complete (``"struct { int major; int minor; }"``);
- ``const`` kept; functions taking a ``va_list`` left out, with a comment (a
  ``va_list`` has no portable spelling in a spec); object-like macros that rename a
  function (GMP's ``mpz_add`` -> ``__gmpz_add``) followed to the exported name.

Not on the warm path: imports pycparser, fnmatch, subprocess.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import shutil
import subprocess
import tempfile

from ._cdecl import STANDARD_TYPES, is_c_identifier
from ._errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    Node = Any  # a pycparser AST node (pycparser ships no type information)

# Defined away before pycparser sees the text: GCC/MSVC extensions that carry no
# type information a spec needs. __GNUC__ undefined makes glibc's headers use plain C.
_CPP_FLAGS = (
    "-std=c11", "-U__GNUC__", "-D__attribute__(x)=", "-D__extension__=", "-D__asm__(x)=",
    "-D__asm(x)=", "-D__restrict=", "-D__inline=", "-D__inline__=", "-D__declspec(x)=",
    "-D__cdecl=", "-D__stdcall=", "-D_Noreturn=", "-D__forceinline=",
)
# <stdarg.h> typedefs va_list from a compiler builtin: a named opaque type lets the
# headers parse and marks the functions that take one.
_VA_LIST = "libbroker__va_list"
_PRELUDE = f"typedef struct {_VA_LIST} *__builtin_va_list;\n"
_INT_MAX = 2**31 - 1
_CPP_TIMEOUT = 120  # seconds: a preprocessor that runs longer is stuck, not busy


class HeaderSpec:
    """The result of `spec_from_headers`: the TOML ``text``, the ``functions`` it
    selected (exported names, in header order) and ``notes`` (what was left out, why)."""

    def __init__(self, text: str, functions: list[str], variables: list[str],
                 notes: list[str], renames: dict[str, str]) -> None:
        self.text = text
        self.functions = functions
        self.variables = variables
        self.notes = notes
        self.renames = renames  # macro name -> the function it names


def find_preprocessor() -> list[str] | None:
    """The command that preprocesses C: ``$CPP``, ``cpp``, else ``cc/gcc/clang -E``."""
    configured = os.environ.get("CPP", "").split()
    if configured and shutil.which(configured[0]):
        return configured
    if shutil.which("cpp"):
        return ["cpp"]
    for compiler in ("cc", "gcc", "clang"):
        if shutil.which(compiler):
            return [compiler, "-E"]
    return None


def _run_cpp(command: list[str], source: str, extra: Sequence[str]) -> str:
    with tempfile.TemporaryDirectory(prefix="libbroker-spec-") as tmp:
        path = os.path.join(tmp, "headers.c")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        try:
            done = subprocess.run([*command, *_CPP_FLAGS, *extra, path], capture_output=True,
                                  text=True, timeout=_CPP_TIMEOUT, errors="replace",
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SpecError(f"the C preprocessor {' '.join(command)!r} failed: {exc}") from exc
    if done.returncode != 0:
        errors = "\n".join(done.stderr.strip().splitlines()[:8])
        raise SpecError(f"the C preprocessor {' '.join(command)!r} failed (exit "
                        f"{done.returncode}):\n{errors}\nfix: pass the include directories "
                        "(-I) and macros (-D) the header needs")
    return done.stdout


def _system_dirs(command: list[str]) -> set[str]:
    """The preprocessor's own search directories (``cpp -v``): headers found there are
    the system's, not the library's, unless named on the command line."""
    try:
        done = subprocess.run([*command, "-v", os.devnull], capture_output=True, text=True,
                              timeout=_CPP_TIMEOUT, errors="replace", check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {"/usr/include", "/usr/local/include"}
    found: set[str] = set()
    inside = False
    for line in done.stderr.splitlines():
        if line.startswith("#include <...> search starts here"):
            inside = True
        elif line.startswith("End of search list"):
            inside = False
        elif inside and line.startswith(" "):
            found.add(os.path.realpath(line.strip()))
    return found or {"/usr/include", "/usr/local/include"}


def _macros(text: str) -> dict[str, str]:
    """Object-like macros whose body is one identifier (``#define mpz_add __gmpz_add``)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if (len(parts) == 3 and parts[0] == "#define" and "(" not in parts[1]
                and is_c_identifier(parts[1]) and is_c_identifier(parts[2])):
            found[parts[1]] = parts[2]
    return found


class _Evaluator:
    """Integer constant expressions of enum values and array sizes."""

    def __init__(self, c_ast: Any) -> None:
        self.c_ast = c_ast
        self.names: dict[str, int] = {}

    def value(self, node: Node) -> int:
        c_ast = self.c_ast
        if isinstance(node, c_ast.Constant):
            text = node.value
            if node.type == "char":
                body = text.strip("'")
                return ord(body[-1]) if not body.startswith("\\") else {
                    "\\n": 10, "\\t": 9, "\\0": 0, "\\\\": 92, "\\'": 39}.get(body, 0)
            digits = text.rstrip("uUlL")
            if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXbB":
                return int(digits, 8)
            return int(digits, 0)
        if isinstance(node, c_ast.ID) and node.name in self.names:
            return self.names[node.name]
        if isinstance(node, c_ast.Cast):
            return self.value(node.expr)
        if isinstance(node, c_ast.UnaryOp):
            operand = self.value(node.expr)
            operators = {"-": -operand, "+": operand, "~": ~operand, "!": int(not operand)}
            if node.op in operators:
                return operators[node.op]
        if isinstance(node, c_ast.TernaryOp):
            return self.value(node.iftrue if self.value(node.cond) else node.iffalse)
        if isinstance(node, c_ast.BinaryOp):
            a, b = self.value(node.left), self.value(node.right)
            binary = {
                "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                "/": lambda: int(a / b), "%": lambda: a % b, "<<": lambda: a << b,
                ">>": lambda: a >> b, "&": lambda: a & b, "|": lambda: a | b,
                "^": lambda: a ^ b, "==": lambda: int(a == b), "!=": lambda: int(a != b),
                "<": lambda: int(a < b), ">": lambda: int(a > b), "<=": lambda: int(a <= b),
                ">=": lambda: int(a >= b), "&&": lambda: int(a and b),
                "||": lambda: int(a or b),
            }
            if node.op in binary and not (node.op in "/%" and b == 0):
                return binary[node.op]()
        raise ValueError(f"not an integer constant ({type(node).__name__})")

    def enum_type(self, enum: Node) -> str:
        """The underlying C type GCC and Clang give ``enum`` (int unless values need more)."""
        values: list[int] = []
        current = -1
        for item in enum.values.enumerators if enum.values is not None else []:
            if item.value is not None:
                try:
                    current = self.value(item.value)
                except (ValueError, RecursionError):
                    current += 1  # unknowable here; its size is int in every ABI we target
            else:
                current += 1
            self.names[item.name] = current
            values.append(current)
        low, high = min(values, default=0), max(values, default=0)
        if low >= -_INT_MAX - 1 and high <= _INT_MAX:
            return "int" if low < 0 else "unsigned int" if high > _INT_MAX else "int"
        if low >= 0 and high <= 2**32 - 1:
            return "unsigned int"
        return "long long" if low < 0 else "unsigned long long"


class _Builder:
    """Walks the parsed headers and collects what the selected functions need."""

    def __init__(self, ast: Node, c_ast: Any) -> None:
        self.c_ast = c_ast
        self.eval = _Evaluator(c_ast)
        self.typedefs: dict[str, Node] = {}
        self.records: dict[str, Node] = {}  # "struct tag" -> node with fields
        self.enums: dict[str, str] = {}  # "enum tag" -> underlying type
        self.enum_of: dict[int, str] = {}  # id(Enum node with values) -> underlying type
        self.functions: dict[str, tuple[Node, str]] = {}
        self.objects: dict[str, tuple[Node, str]] = {}
        self.types: dict[str, str] = {}  # [types] name -> text, in first-use order
        self.comments: dict[str, str] = {}
        self.complete: tuple[str, ...] = ()
        self.untagged: dict[int, str] = {}  # id(untagged struct node) -> its typedef name
        for node in ast.ext:
            self._index(node)

    def _index(self, node: Node) -> None:
        c_ast = self.c_ast
        inner = getattr(node, "type", None)
        while isinstance(inner, (c_ast.TypeDecl, c_ast.PtrDecl, c_ast.ArrayDecl)):
            inner = inner.type
        if isinstance(inner, (c_ast.Struct, c_ast.Union)) and inner.name and inner.decls:
            keyword = "union" if isinstance(inner, c_ast.Union) else "struct"
            self.records[f"{keyword} {inner.name}"] = inner
        if isinstance(inner, c_ast.Enum) and inner.values is not None:
            underlying = self.eval.enum_type(inner)
            if inner.name:
                self.enums[f"enum {inner.name}"] = underlying
            self.enum_of[id(inner)] = underlying  # for a typedef of an anonymous enum
        if isinstance(node, c_ast.Typedef):
            self.typedefs[node.name] = node.type
            if isinstance(node.type, c_ast.TypeDecl) and isinstance(
                node.type.type, (c_ast.Struct, c_ast.Union)
            ) and node.type.type.name is None:
                # typedef struct {...} T, *PT: PT's struct is T
                self.untagged.setdefault(id(node.type.type), node.name)
        elif isinstance(node, c_ast.Decl) and node.name:
            file = node.coord.file if node.coord else ""
            if isinstance(node.type, c_ast.FuncDecl):
                if "static" not in node.storage and "inline" not in node.funcspec:
                    self.functions.setdefault(node.name, (node, file))
            elif "extern" in node.storage:
                self.objects.setdefault(node.name, (node, file))

    # -- types -------------------------------------------------------------------------
    def rewrite(self, node: Node, value: bool) -> Node:
        """A copy of type ``node`` as a spec spells it; ``value``: used by value here."""
        c_ast = self.c_ast
        if isinstance(node, c_ast.TypeDecl):
            new = copy.copy(node)
            new.declname = None
            new.quals = [q for q in node.quals if q in ("const", "volatile")]
            new.type = self.rewrite_base(node.type, value)
            return new
        if isinstance(node, c_ast.PtrDecl):
            new = copy.copy(node)
            new.quals = [q for q in node.quals if q in ("const", "volatile")]
            new.type = self.rewrite(node.type, False)
            return new
        if isinstance(node, c_ast.ArrayDecl):
            new = copy.copy(node)
            new.dim_quals = []
            if node.dim is not None:
                new.dim = c_ast.Constant("int", str(self.eval.value(node.dim)))
            new.type = self.rewrite(node.type, value)
            return new
        if isinstance(node, c_ast.FuncDecl):
            new = copy.copy(node)
            if node.args is None:
                raise ValueError("declared with '()' (unspecified parameters)")
            params = []
            for param in node.args.params:
                if isinstance(param, c_ast.EllipsisParam):
                    params.append(param)
                    continue
                p = copy.copy(param)
                if isinstance(p, c_ast.Decl):
                    p.storage = []
                p.quals = []
                p.type = self.rewrite(param.type, True)
                if getattr(param, "name", None):
                    _set_name(p.type, param.name, c_ast)
                params.append(p)
            new.args = c_ast.ParamList(params)
            new.type = self.rewrite(node.type, True)
            return new
        raise ValueError(f"uses an unsupported construct ({type(node).__name__})")

    def rewrite_base(self, node: Node, value: bool) -> Node:
        c_ast = self.c_ast
        if isinstance(node, c_ast.IdentifierType):
            if len(node.names) == 1 and node.names[0] in self.typedefs:
                self.need_typedef(node.names[0], value)
            return node
        if isinstance(node, c_ast.Enum):
            underlying = self.enum_of.get(id(node)) or self.enums.get(
                f"enum {node.name}", "int")
            alias = self.typedefs.get(node.name or "")
            if node.name and (alias is None or (
                isinstance(alias, c_ast.TypeDecl) and isinstance(alias.type, c_ast.Enum)
                and alias.type.name == node.name
            )):  # 'enum X' -> [types] X = "int"  # enum X (the header's typedef, if any)
                self.types.setdefault(node.name, underlying)
                self.comments[node.name] = f"enum {node.name}"
                return c_ast.IdentifierType([node.name])
            return c_ast.IdentifierType(underlying.split())
        if isinstance(node, (c_ast.Struct, c_ast.Union)):
            keyword = "union" if isinstance(node, c_ast.Union) else "struct"
            if node.name is None and id(node) in self.untagged:
                alias = self.untagged[id(node)]
                self.need_typedef(alias, value)
                return c_ast.IdentifierType([alias])
            if node.name is None:
                raise ValueError(f"uses an untagged {keyword} outside a typedef")
            if value:  # by value: a complete [types] entry named after the tag
                self.need_record_by_tag(keyword, node.name)
                return c_ast.IdentifierType([node.name])
            ref = type(node)(node.name, None)
            return ref
        raise ValueError(f"uses an unsupported construct ({type(node).__name__})")

    def need_record_by_tag(self, keyword: str, tag: str) -> None:
        if tag in self.types:
            return
        record = self.records.get(f"{keyword} {tag}")
        if record is None:
            raise ValueError(f"takes or returns '{keyword} {tag}' by value, but the headers "
                             "do not define its fields")
        self.types[tag] = ""  # reserve (and stop recursion through self-reference)
        self.types[tag] = self.record_text(keyword, record)

    def record_text(self, keyword: str, record: Node) -> str:
        from pycparser import c_generator  # type: ignore[import-untyped,unused-ignore]

        fields = []
        for decl in record.decls:
            if decl.bitsize is not None or decl.name is None:
                raise ValueError(f"is passed by value but its {keyword} has a bit-field or an "
                                 "unnamed member, whose layout a spec cannot state")
            field = copy.copy(decl)
            field.storage = []
            field.funcspec = []
            field.quals = []
            field.type = self.rewrite(decl.type, True)
            _set_name(field.type, decl.name, self.c_ast)
            fields.append(c_generator.CGenerator().visit(field) + ";")
        return f"{keyword} {{ {' '.join(fields)} }}"

    def need_typedef(self, name: str, value: bool) -> None:
        c_ast = self.c_ast
        if name in STANDARD_TYPES or name == "__builtin_va_list":
            if name == "__builtin_va_list":
                raise ValueError("takes a va_list, which a spec cannot spell portably")
            return
        target = self.typedefs[name]
        value = value or any(fnmatch.fnmatchcase(name, glob) for glob in self.complete)
        if name in self.types:
            if value and self.types[name].startswith("opaque"):
                del self.types[name]  # first seen through a pointer: now needed complete
            else:
                return
        inner = target.type if isinstance(target, c_ast.TypeDecl) else None
        if isinstance(inner, (c_ast.Struct, c_ast.Union)):
            keyword = "union" if isinstance(inner, c_ast.Union) else "struct"
            record = inner if inner.decls else self.records.get(f"{keyword} {inner.name}")
            if value and record is not None:
                self.types[name] = ""
                self.types[name] = self.record_text(keyword, record)
            elif value:
                raise ValueError(f"takes or returns {name} by value, but the headers do not "
                                 "define its fields")
            else:  # through pointers only: any incomplete struct has the same representation
                tag = inner.name or name
                self.types[name] = "opaque" if tag == name else f"opaque:{tag}"
            return
        if isinstance(inner, c_ast.Enum):
            underlying = self.enum_of.get(id(inner)) or self.enums.get(
                f"enum {inner.name}", "int")
            self.types[name] = underlying
            self.comments[name] = f"enum {inner.name or name}"
            return
        self.types[name] = ""
        self.types[name] = _type_text(self.rewrite(target, value), self.c_ast)


def _locate(header: str, system: set[str]) -> str:
    """``header`` as a path, else as ``#include <header>`` finds it (``curl/curl.h``)."""
    if os.path.isfile(header):
        return os.path.abspath(header)
    if not os.path.isabs(header):
        for directory in sorted(system):
            candidate = os.path.join(directory, header)
            if os.path.isfile(candidate):
                return candidate
    raise SpecError(f"header {header!r} is neither a file nor found in the preprocessor's "
                    f"include directories ({', '.join(sorted(system))}); fix: give its path, or "
                    "install the library's development package (Debian: lib<name>-dev)",
                    path=header)


def _set_name(node: Node, name: str, c_ast: Any) -> None:
    while not isinstance(node, c_ast.TypeDecl):
        node = node.type
    node.declname = name


def _type_text(node: Node, c_ast: Any) -> str:
    from pycparser import c_generator  # type: ignore[import-untyped,unused-ignore]

    return str(c_generator.CGenerator().visit(c_ast.Typename(None, [], None, node)))


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char < " " or char == "\x7f":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def spec_from_headers(
    headers: Sequence[str], *, name: str, link: Sequence[str] | str,
    functions: Sequence[str] = (), variables: Sequence[str] = (),
    include_dirs: Sequence[str] = (), defines: Sequence[str] = (),
    complete: Sequence[str] = (),
) -> HeaderSpec:
    """A spec for the functions of ``headers`` (C header paths) matching ``functions``
    (names or fnmatch globs; empty: every function the library's own headers declare)
    and the exported objects matching ``variables``. Struct typedefs matching
    ``complete`` (globs) are written with their fields even when only pointers to them
    are used (so that Cython code can allocate one, e.g. GMP's ``__mpz_struct``).

    ``link``: the link names (``"z"``). Raises SpecError when no preprocessor is
    installed, the preprocessor or pycparser fails (naming the file and line), a
    name selects nothing, or ``name`` is not a valid table name.
    """
    from pycparser import c_ast, c_generator, c_parser  # type: ignore[import-untyped,unused-ignore]

    links = [link] if isinstance(link, str) else list(link)
    if not is_c_identifier(name):
        raise SpecError(f"--name {name!r} is not a C identifier; expected e.g. \"zlib\"")
    if not headers:
        raise SpecError("no header given; expected e.g. `libbroker spec /usr/include/zlib.h`")
    command = find_preprocessor()
    if command is None:
        raise SpecError("no C preprocessor found (looked for $CPP, cpp, cc, gcc, clang on "
                        "PATH); real headers need one; fix: install one (Debian: apt install "
                        "cpp)")
    system = _system_dirs(command)
    paths = [_locate(header, system) for header in headers]
    source = _PRELUDE + "".join(f'#include "{p}"\n' for p in paths)
    extra = [f"-I{d}" for d in include_dirs] + [f"-D{d}" for d in defines]
    text = _run_cpp(command, source, extra)
    renames = _macros(_run_cpp(command, source, [*extra, "-dM"]))
    try:
        ast = c_parser.CParser().parse(text, "<headers>")
    except c_parser.ParseError as exc:
        raise SpecError(f"pycparser cannot parse the preprocessed headers: {exc}; fix: "
                        "define the compiler extension it stops at away with -D") from exc
    except RecursionError as exc:
        raise SpecError("the headers nest declarations too deeply to parse") from exc
    builder = _Builder(ast, c_ast)
    builder.complete = tuple(complete)

    own_dirs = {os.path.dirname(p) for p in paths if os.path.realpath(os.path.dirname(p))
                not in system}
    own_trees = {os.path.splitext(p)[0] + os.sep for p in paths}

    def own(file: str) -> bool:
        return (file in paths or os.path.dirname(file) in own_dirs
                or any(file.startswith(tree) for tree in own_trees))

    notes: list[str] = []
    used_renames: dict[str, str] = {}

    def select(patterns: Sequence[str], table: dict[str, tuple[Node, str]], what: str,
               default_all: bool) -> list[str]:
        if not patterns:
            return [n for n, (_, f) in table.items() if own(f)] if default_all else []
        chosen: list[str] = []
        for pattern in patterns:
            matched = [n for n in table if fnmatch.fnmatchcase(n, pattern)]
            for macro, target in sorted(renames.items()):
                if fnmatch.fnmatchcase(macro, pattern) and target in table and (
                    target not in matched
                ):
                    matched.append(target)
                    used_renames[macro] = target
            if not matched:
                raise SpecError(f"--{what} {pattern!r} matches no {what} the headers declare "
                                f"({len(table)} declared); fix: check the name, or add the "
                                "header that declares it")
            chosen += [n for n in table if n in matched and n not in chosen]
        return chosen

    selected = select(functions, builder.functions, "function", True)
    chosen_objects = select(variables, builder.objects, "variable", False)
    prototypes: list[str] = []
    kept: list[str] = []
    generator = c_generator.CGenerator()
    for fname in selected:
        node, _ = builder.functions[fname]
        saved = (dict(builder.types), dict(builder.comments))
        try:
            decl = copy.copy(node)
            decl.storage, decl.funcspec, decl.quals, decl.align = [], [], [], []
            decl.type = builder.rewrite(node.type, True)
            _set_name(decl.type, fname, c_ast)
            _drop_clashing_names(decl.type, builder.types, c_ast)
            prototypes.append(" ".join(generator.visit(decl).split()))
            kept.append(fname)
        except (ValueError, RecursionError, KeyError) as exc:
            builder.types, builder.comments = saved
            notes.append(f"{fname}: left out, it {exc}")
    declarations: list[str] = []
    for vname in chosen_objects:
        node, _ = builder.objects[vname]
        try:
            decl = copy.copy(node)
            decl.storage, decl.funcspec, decl.align = [], [], []
            decl.type = builder.rewrite(node.type, True)
            _set_name(decl.type, vname, c_ast)
            declarations.append(" ".join(generator.visit(decl).split()))
        except (ValueError, RecursionError, KeyError) as exc:
            notes.append(f"{vname}: left out, it {exc}")
    if not prototypes and not declarations:
        raise SpecError("no function of the headers could be written to a spec:\n  "
                        + "\n  ".join(notes[:20]))

    shown = ", ".join(os.path.basename(p) for p in paths)
    out = [f"# Written by `libbroker spec` from {shown}; the types are as the headers",
           "# declare them on the platform that ran it. Edit freely: e.g. move functions",
           "# the oldest supported library lacks to `optional`."]
    out += [f"# {macro} is a macro for {target}: the spec names the exported symbol"
            for macro, target in sorted(used_renames.items())]
    out += [f"# {note}" for note in notes]
    invented = [t for t in builder.types if t not in builder.typedefs]
    if invented:  # enum and struct tags the spec names; the header has no such typedef
        out += ["# [types] the header does not declare (keep them when it is included): "
                + ", ".join(invented),
                "# (with the real header, define LIBBROKER_EXTERNAL_<TYPE> for the others)"]
    out += ["", "[library]", f"name = {_toml_string(name)}",
            f"names = [{', '.join(_toml_string(n) for n in links)}]"]
    if builder.types:
        out += ["", "[types]"]
        for tname, ttext in builder.types.items():
            comment = f"  # {builder.comments[tname]}" if tname in builder.comments else ""
            out.append(f"{tname} = {_toml_string(' '.join(ttext.split()))}{comment}")
    if prototypes:
        out += ["", "[functions]", "required = ["]
        out += [f"  {_toml_string(p)}," for p in prototypes] + ["]"]
    if declarations:
        out += ["", "[variables]", "required = ["]
        out += [f"  {_toml_string(d)}," for d in declarations] + ["]"]
    result = "\n".join(out) + "\n"
    from ._spec import Spec

    Spec.from_string(result, path=f"<spec for {shown}>")  # what we write must be a valid spec
    return HeaderSpec(result, kept, chosen_objects, notes, used_renames)


def _drop_clashing_names(func: Node, types: dict[str, str], c_ast: Any) -> None:
    """Parameter names a spec refuses (a [types] name, a duplicate, 'libbroker_...'),
    dropped: they are documentation only."""
    seen: set[str] = set()
    for param in func.args.params if func.args else []:
        if isinstance(param, c_ast.EllipsisParam) or not param.name:
            continue
        if param.name in types or param.name in STANDARD_TYPES or param.name in seen or (
            param.name.startswith("libbroker_")
        ):
            param.name = None
            node = param.type
            while not isinstance(node, c_ast.TypeDecl):
                node = node.type
            node.declname = None
        else:
            seen.add(param.name)


def missing_exports(spec_text: str, link: Sequence[str] | str,
                    renames: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Resolve the library for ``spec_text`` and return (its path, one line per selected
    function or variable it does not export, with the likely reason)."""
    from ._api import find, load
    from ._spec import Spec

    spec = Spec.from_string(spec_text)
    links = [link] if isinstance(link, str) else list(link)
    info = find(links[0])
    library = load(info.path)
    back = {target: macro for macro, target in (renames or {}).items()}
    missing = []
    for slot in spec.functions:
        symbol = spec.symbol_for(slot)
        if symbol in library:
            continue
        why = "not exported (a newer header than the library, or a platform's function?)"
        if slot.name in back:
            why += f"; the header maps {back[slot.name]} to it"
        elif slot.name.startswith("_"):
            why += "; a name starting with '_' is often internal"
        missing.append(f"{slot.kind} {slot.name}: {why}; fix: remove it or make it optional")
    return info.path, missing


__all__ = ["HeaderSpec", "find_preprocessor", "missing_exports", "spec_from_headers"]
