"""C prototypes of a spec, parsed with pycparser into a small type model.

All prototypes and [types] entries of a spec are parsed in ONE translation
unit (one pycparser call), each on its own line, so that a 1,500-function
spec costs one parse; the line of a pycparser error says which entry failed.
Names only have to lex as type names for pycparser, so every type name is
declared as a placeholder ``typedef int NAME;``: what a [types] name stands
for is resolved here, in the model, not by the C parser.

Three renderings of one model (see ``render``): the C text as written (type
names kept, used by the generated .h), the digest text (typedefs resolved,
top-level parameter qualifiers dropped: what the layout digest hashes), and
Cython text (``noexcept nogil`` function types, ``bint`` for bool).
"""

from __future__ import annotations

from ._errors import SpecError
from ._locks import new_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Union

    CType = Union["Base", "Pointer", "Array", "FuncType"]

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex "
    "_Generic _Imaginary _Noreturn _Static_assert _Thread_local alignas alignof bool "
    "constexpr false nullptr static_assert thread_local true typeof typeof_unqual _BitInt "
    "_Decimal32 _Decimal64 _Decimal128".split()
)

# The generated header must also compile as C++: these cannot name a [types]
# entry, an opaque struct tag or a slot.
CXX_KEYWORDS = frozenset(
    "alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t "
    "char16_t char32_t class compl concept const consteval constexpr constinit const_cast "
    "continue co_await co_return co_yield decltype default delete do double dynamic_cast else "
    "enum explicit export extern false float for friend goto if inline int long mutable "
    "namespace new noexcept not not_eq nullptr operator or or_eq private protected public "
    "register reinterpret_cast requires return short signed sizeof static static_assert "
    "static_cast struct switch template this thread_local throw true try typedef typeid "
    "typename union unsigned using virtual void volatile wchar_t while xor xor_eq".split()
)

# Kept by name in every rendering (their size is the platform's business, and
# Cython/C both know them); each maps to the Cython module that declares it.
STANDARD_TYPES: dict[str, str | None] = {
    "bool": None,  # <stdbool.h>; _Bool is normalised to it
    "size_t": None,
    "ssize_t": None,
    "ptrdiff_t": "libc.stddef",
    "wchar_t": "libc.stddef",
    "FILE": "libc.stdio",
    "intptr_t": "libc.stdint",
    "uintptr_t": "libc.stdint",
    "intmax_t": "libc.stdint",
    "uintmax_t": "libc.stdint",
}
for _bits in ("8", "16", "32", "64"):
    for _kind in ("int", "int_least", "int_fast"):
        STANDARD_TYPES[f"{_kind}{_bits}_t"] = "libc.stdint"
        STANDARD_TYPES[f"u{_kind}{_bits}_t"] = "libc.stdint"
del _bits, _kind

_QUAL_ORDER = ("const", "volatile")
_PROBE = "libbroker__type_probe__"


class Base:
    """A named type: a C builtin ("unsigned long"), a standard typedef
    ("size_t"), a [types] name ("uLong", kind "typedef") or a tag ("struct x")."""

    __slots__ = ("name", "quals", "kind")

    def __init__(self, name: str, quals: tuple[str, ...] = (), kind: str = "builtin") -> None:
        self.name = name
        self.quals = quals
        self.kind = kind


class Pointer:
    __slots__ = ("target", "quals")

    def __init__(self, target: CType, quals: tuple[str, ...] = ()) -> None:
        self.target = target
        self.quals = quals


class Array:
    __slots__ = ("element", "size")

    def __init__(self, element: CType, size: int | None) -> None:
        self.element = element
        self.size = size


class FuncType:
    __slots__ = ("result", "params")

    def __init__(self, result: CType, params: list[tuple[str | None, CType]]) -> None:
        self.result = result
        self.params = params


def is_c_identifier(name: object) -> bool:
    return (
        isinstance(name, str)
        and name.isascii()
        and name.isidentifier()
        and name not in C_KEYWORDS
    )


def opaque_tag(name: str, text: str) -> str | None:
    """The struct tag of an opaque [types] entry ("opaque" or "opaque:TAG"), else None."""
    stripped = text.strip()
    if stripped == "opaque":
        return name
    if stripped.startswith("opaque:"):
        return stripped[len("opaque:"):].strip()
    return None


# -- parsing -------------------------------------------------------------------------------

_parser = None
# One pycparser parser is reused (building it costs tens of ms) but it keeps
# parse state on itself: two threads parsing at once corrupt each other.
_parser_lock = new_lock()  # re-created in a forked child (_locks)


def _get_parser():  # noqa: ANN202 - pycparser has no stable public type for it
    # Building a pycparser 2.x parser (PLY tables) costs ~100 ms: build once.
    global _parser
    if _parser is None:
        from pycparser import c_parser

        _parser = c_parser.CParser()
    return _parser


class Entry:
    """One thing to parse: a prototype or a [types] entry, and where it came from."""

    __slots__ = ("kind", "name", "text", "line")

    def __init__(self, kind: str, name: str, text: str, line: int | None) -> None:
        self.kind = kind  # "function" or "type"
        self.name = name  # the type's name; for a function, a label for messages
        self.text = text
        self.line = line


def parse_entries(
    types: Mapping[str, str], entries: Sequence[Entry], *, path: str | None
) -> list[tuple[str | None, CType]]:
    """Parse [types] entries (not "opaque") and prototypes in one pycparser call.

    ``types`` holds every [types] name (so that they lex as type names).
    Returns one ``(name, model)`` per entry: the declared name and FuncType
    for a prototype, ``(None, type)`` for a [types] entry.
    """
    from pycparser import c_ast, c_parser

    for entry in entries:
        _precheck(entry, path)
    header = _placeholders(types)
    lines = list(header)
    first = len(lines) + 1
    for entry in entries:
        text = " ".join(entry.text.split())
        lines.append(f"void {_PROBE}({text});" if entry.kind == "type" else f"{text};")
    try:
        with _parser_lock:
            ast = _get_parser().parse("\n".join(lines) + "\n", "<libbroker>")
    except Exception as exc:  # pycparser raises ParseError, rarely anything else
        index = _error_line(str(exc)) if isinstance(exc, c_parser.ParseError) else None
        if index is not None and first <= index < first + len(entries):
            culprit = entries[index - first]
        else:
            culprit = _find_culprit(header, entries) or entries[-1]
        raise _diagnose(header, culprit, exc, path) from exc
    by_line: dict[int, list] = {}
    for node in ast.ext:
        by_line.setdefault(node.coord.line if node.coord else 0, []).append(node)
    results: list[tuple[str | None, CType]] = []
    for offset, entry in enumerate(entries):
        nodes = by_line.get(first + offset, [])
        results.append(_convert_entry(entry, nodes, types, path, c_ast))
    return results


def _placeholders(types: Mapping[str, str]) -> list[str]:
    names = list(STANDARD_TYPES) + [n for n in types if n not in STANDARD_TYPES]
    return [f"typedef int {name};" for name in names]


def _precheck(entry: Entry, path: str | None) -> None:
    what = _what(entry)
    if "#" in entry.text or "/*" in entry.text or "//" in entry.text:
        raise SpecError(
            f"{what} {entry.text!r} contains a comment or a preprocessor directive; "
            "expected a plain C declaration; fix: remove it",
            path=path,
            line=entry.line,
        )
    if not entry.text.strip():
        raise SpecError(f"{what} is empty; expected a C declaration", path=path, line=entry.line)


def _what(entry: Entry) -> str:
    return "prototype" if entry.kind == "function" else f"[types] entry {entry.name!r} ="


def _error_line(message: str) -> int | None:
    # pycparser formats errors as "<file>:<line>[:<column>]: <message>".
    parts = message.split(":", 3)
    if len(parts) >= 3 and parts[1].strip().isdigit():
        return int(parts[1])
    return None


def _error_text(message: str) -> str:
    parts = message.split(":", 3)
    if len(parts) == 4 and parts[1].strip().isdigit() and parts[2].strip().isdigit():
        return parts[3].strip()
    if len(parts) >= 3 and parts[1].strip().isdigit():
        return ":".join(parts[2:]).strip()
    return message.split(":", 1)[-1].strip() if message.startswith("<libbroker>") else message


def _parses(header: list[str], extra: list[str], entry: Entry) -> bool:
    text = " ".join(entry.text.split())
    line = f"void {_PROBE}({text});" if entry.kind == "type" else f"{text};"
    try:
        with _parser_lock:
            _get_parser().parse("\n".join(header + extra + [line]) + "\n", "<libbroker>")
    except Exception:
        return False
    return True


def _find_culprit(header: list[str], entries: Sequence[Entry]) -> Entry | None:
    # Error path only: the failing line could not be mapped to an entry.
    for entry in entries:
        if not _parses(header, [], entry):
            return entry
    return None


def _identifiers(text: str) -> list[str]:
    found: list[str] = []
    word = ""
    for char in text + " ":
        if char.isascii() and (char.isalnum() or char == "_"):
            word += char
            continue
        if word and not word[0].isdigit() and word not in found:
            found.append(word)
        word = ""
    return found


def _diagnose(header: list[str], entry: Entry, exc: Exception, path: str | None) -> SpecError:
    what = _what(entry)
    known = set(STANDARD_TYPES) | C_KEYWORDS | {h.split()[2].rstrip(";") for h in header}
    for word in _identifiers(entry.text):
        if word not in known and _parses(header, [f"typedef int {word};"], entry):
            return _unknown_type(word, entry, path)
    if entry.kind == "type":
        kind, example = "a C type", "'unsigned long', 'int (*)(void *, int)' or 'opaque'"
    else:
        kind, example = "a C declaration", "'unsigned long crc32(unsigned long crc, const char *s)'"
    return SpecError(
        f"{what} {entry.text!r} is not {kind} ({_error_text(str(exc))}); "
        f"expected e.g. {example}",
        path=path,
        line=entry.line,
    )


def _unknown_type(word: str, entry: Entry, path: str | None) -> SpecError:
    return SpecError(
        f"{_what(entry)} {entry.text!r} uses the unknown type {word!r}; fix: declare it in "
        f'[types], e.g. {word} = "opaque" (a struct used through pointers) or '
        f'{word} = "unsigned long"',
        path=path,
        line=entry.line,
    )


def _convert_entry(
    entry: Entry, nodes: list, types: Mapping[str, str], path: str | None, c_ast
) -> tuple[str | None, CType]:
    what = _what(entry)

    def fail(reason: str) -> SpecError:
        return SpecError(f"{what} {entry.text!r} {reason}", path=path, line=entry.line)

    if len(nodes) != 1 or not isinstance(nodes[0], c_ast.Decl):
        raise fail("is not a single C declaration")
    node = nodes[0]
    conv = _Converter(fail, types, c_ast)
    if entry.kind == "type":
        func = node.type
        params = func.args.params if isinstance(func, c_ast.FuncDecl) and func.args else []
        if len(params) != 1 or not isinstance(params[0], c_ast.Typename):
            raise fail(
                "is not a C type; expected a type without a name, e.g. 'unsigned long', "
                "'int (*)(void *, int)', or 'opaque' for a struct used through pointers"
            )
        if _is_void(params[0].type, c_ast) and not params[0].type.quals:
            return None, Base("void")
        return None, conv.convert(params[0].type)
    if node.storage not in ([], ["extern"]) or not isinstance(node.type, c_ast.FuncDecl):
        raise fail(
            "is not a function declaration; expected 'RETURN NAME(PARAMETERS)', "
            "with no storage class other than extern"
        )
    result = conv.convert(node.type)
    assert isinstance(result, FuncType)
    names = [name for name, _ in result.params if name is not None]
    for name in names:
        if names.count(name) > 1:
            raise fail(f"declares the parameter {name!r} twice; fix: rename one")
        if name in types or name in STANDARD_TYPES:
            raise fail(f"names a parameter {name!r} like a type; fix: rename the parameter")
        if name.startswith("libbroker_"):
            raise fail(
                f"names a parameter {name!r}, but names starting with 'libbroker_' are "
                "reserved for generated code; fix: rename the parameter"
            )
    return node.name, result


def _is_void(node, c_ast) -> bool:
    return (
        isinstance(node, c_ast.TypeDecl)
        and isinstance(node.type, c_ast.IdentifierType)
        and node.type.names == ["void"]
    )


class _Converter:
    def __init__(self, fail, types: Mapping[str, str], c_ast) -> None:
        self.fail = fail
        self.types = types
        self.c_ast = c_ast

    def convert(self, node) -> CType:
        c_ast = self.c_ast
        if isinstance(node, c_ast.TypeDecl):
            return self.base(node.type, self.quals(node.quals))
        if isinstance(node, c_ast.PtrDecl):
            return Pointer(self.convert(node.type), self.quals(node.quals))
        if isinstance(node, c_ast.ArrayDecl):
            return Array(self.convert(node.type), self.dimension(node.dim))
        if isinstance(node, c_ast.FuncDecl):
            return self.function(node)
        raise self.fail(f"uses an unsupported construct ({type(node).__name__})")

    def quals(self, quals: list[str]) -> tuple[str, ...]:
        for qual in quals:
            if qual not in ("const", "volatile", "restrict"):
                raise self.fail(f"uses the qualifier {qual!r}, which libbroker does not support")
        # restrict is a promise to the optimiser, not part of the ABI: dropped.
        return tuple(q for q in _QUAL_ORDER if q in quals)

    def dimension(self, dim) -> int | None:
        if dim is None:
            return None
        if isinstance(dim, self.c_ast.Constant) and dim.type == "int":
            digits = dim.value.rstrip("uUlL")
            try:
                base = 8 if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX" else 0
                return int(digits, base)
            except ValueError:
                pass
        raise self.fail("has an array size that is not an integer literal")

    def base(self, node, quals: tuple[str, ...]) -> Base:
        c_ast = self.c_ast
        if isinstance(node, (c_ast.Struct, c_ast.Union, c_ast.Enum)):
            keyword = {c_ast.Struct: "struct", c_ast.Union: "union", c_ast.Enum: "enum"}[type(node)]
            if node.name is None or getattr(node, "decls", None) is not None or getattr(
                node, "values", None
            ) is not None:
                raise self.fail(
                    f"defines a {keyword} inline; fix: name it in [types] (NAME = \"opaque\") "
                    "and use it through pointers"
                )
            if keyword == "enum":
                raise self.fail(
                    f"uses 'enum {node.name}', whose size C leaves to the compiler and which "
                    f"C cannot declare without its values; fix: declare it in [types] as its "
                    f'integer type, e.g. {node.name} = "int"'
                )
            tag = opaque_tag(node.name, self.types[node.name]) if node.name in self.types else None
            if node.name in self.types and tag != node.name:
                raise self.fail(
                    f"uses '{keyword} {node.name}' but [types] makes {node.name!r} another "
                    "type (C++ rejects that); fix: rename one of them"
                )
            return Base(f"{keyword} {node.name}", quals, "tag")
        if not isinstance(node, c_ast.IdentifierType):
            raise self.fail(f"uses an unsupported construct ({type(node).__name__})")
        names = list(node.names)
        if len(names) == 1 and (names[0] in self.types or names[0] in STANDARD_TYPES):
            kind = "typedef" if names[0] in self.types else "standard"
            return Base(names[0], quals, kind)
        return Base(_builtin_name(names, self.fail), quals, "builtin")

    def function(self, node) -> FuncType:
        c_ast = self.c_ast
        if node.args is None:
            raise self.fail(
                "has an empty parameter list, which C reads as 'unspecified parameters'; "
                "fix: write (void) for a function without parameters"
            )
        params: list[tuple[str | None, CType]] = []
        items = node.args.params
        for index, param in enumerate(items):
            if isinstance(param, c_ast.EllipsisParam):
                raise self.fail(
                    "is variadic ('...'); a table slot cannot forward variadic calls portably; "
                    "fix: declare the fixed-argument variant (e.g. the v* function taking a "
                    "va_list) or a wrapper with fixed parameters"
                )
            if isinstance(param, c_ast.ID):
                raise self.fail(
                    f"has a parameter {param.name!r} without a type; if {param.name!r} is a "
                    f'type name, declare it in [types] (e.g. {param.name} = "opaque")'
                )
            if _is_void(param.type, c_ast):
                if len(items) == 1 and param.name is None and not param.type.quals:
                    break
                raise self.fail("has a parameter of type void; fix: write (void) alone")
            params.append((param.name, adjust_param(self.convert(param.type))))
        result = self.convert(node.type)
        if isinstance(result, (Array, FuncType)):
            raise self.fail("returns an array or a function, which C does not allow")
        return FuncType(result, params)


def _builtin_name(names: list[str], fail) -> str:
    counts = {word: names.count(word) for word in names}
    sign = ""
    if "unsigned" in counts:
        sign = "unsigned "
    if counts.get("signed", 0) + counts.get("unsigned", 0) > 1:
        raise fail(f"combines {' '.join(names)!r}, which is not a C type")
    rest = sorted(w for w in names if w not in ("signed", "unsigned", "int"))
    ints = counts.get("int", 0)
    if ints > 1:
        raise fail(f"combines {' '.join(names)!r}, which is not a C type")
    if rest == ["char"] and not ints:
        return ("signed " if "signed" in counts else sign) + "char"
    if not rest:
        return sign + "int"
    if rest in (["short"], ["long"], ["long", "long"]):
        return sign + " ".join(rest)
    if not sign and "signed" not in counts and not ints:
        simple = {("void",): "void", ("_Bool",): "bool", ("float",): "float",
                  ("double",): "double", ("double", "long"): "long double"}
        if tuple(rest) in simple:
            return simple[tuple(rest)]
    if len(names) == 1:
        raise fail(f"uses the unknown type {names[0]!r}; fix: declare it in [types]")
    raise fail(f"combines {' '.join(names)!r}, which is not a C type")


# -- rendering -----------------------------------------------------------------------------

_CYTHON_RESERVED = frozenset(
    "cdef cpdef ctypedef cimport include nogil gil noexcept extern inline public api readonly "
    "sizeof NULL struct union enum const volatile signed unsigned long short int char float "
    "double void bint object print exec by new fused typeof address cppclass namespace "
    "operator except DEF IF ELIF ELSE".split()
)


def cython_safe(name: str) -> bool:
    import keyword

    return not keyword.iskeyword(name) and name not in _CYTHON_RESERVED


def resolve(ctype: CType, types: Mapping[str, CType | None]) -> CType:
    """Replace [types] names by what they stand for (None: opaque struct)."""
    if isinstance(ctype, Base):
        if ctype.kind != "typedef":
            return ctype
        target = types[ctype.name]
        if target is None:
            return Base(f"struct {ctype.name}", ctype.quals, "tag")
        return _add_quals(resolve(target, types), ctype.quals)
    if isinstance(ctype, Pointer):
        return Pointer(resolve(ctype.target, types), ctype.quals)
    if isinstance(ctype, Array):
        return Array(resolve(ctype.element, types), ctype.size)
    return FuncType(
        resolve(ctype.result, types), [(n, adjust_param(resolve(t, types))) for n, t in ctype.params]
    )


def adjust_param(ctype: CType) -> CType:
    # C adjusts array and function parameters to pointers, also through a typedef.
    if isinstance(ctype, Array):
        return Pointer(ctype.element)
    if isinstance(ctype, FuncType):
        return Pointer(ctype)
    return ctype


def _merge(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(q for q in _QUAL_ORDER if q in a or q in b)


def _add_quals(ctype: CType, quals: tuple[str, ...]) -> CType:
    if not quals:
        return ctype
    if isinstance(ctype, Base):
        return Base(ctype.name, _merge(ctype.quals, quals), ctype.kind)
    if isinstance(ctype, Pointer):
        return Pointer(ctype.target, _merge(ctype.quals, quals))
    if isinstance(ctype, Array):  # qualifiers of an array type belong to its elements
        return Array(_add_quals(ctype.element, quals), ctype.size)
    return ctype


def strip_top_quals(ctype: CType) -> CType:
    # Top-level qualifiers of parameters are not part of a C function type.
    if isinstance(ctype, Base):
        return Base(ctype.name, (), ctype.kind)
    if isinstance(ctype, Pointer):
        return Pointer(ctype.target, ())
    return ctype


def render(
    ctype: CType, declarator: str = "", *, style: str = "c", names: Mapping[str, str] | None = None
) -> str:
    """C (or Cython) text declaring ``declarator`` with type ``ctype``.

    style "c": as written, parameter names kept; "digest": parameter names and
    top-level parameter qualifiers dropped (resolve typedefs first);
    "pxd": Cython syntax (``noexcept nogil`` on function types; ``names`` maps
    C names such as "struct foo" or "bool" to their Cython names).
    """
    while True:
        if isinstance(ctype, Base):
            quals = ctype.quals
            name = ctype.name
            if style == "pxd":
                quals = tuple(q for q in quals if q == "const")
                name = (names or {}).get(name, name)
            text = " ".join(quals + (name,))
            return f"{text} {declarator}" if declarator else text
        if isinstance(ctype, Pointer):
            quals = ctype.quals if style != "pxd" else tuple(q for q in ctype.quals if q == "const")
            qual_text = " ".join(quals)
            if qual_text and declarator:
                qual_text += " "
            declarator = f"*{qual_text}{declarator}"
            ctype = ctype.target
            continue
        if declarator.startswith("*"):
            declarator = f"({declarator})"
        if isinstance(ctype, Array):
            declarator += f"[{ctype.size}]" if ctype.size is not None else "[]"
            ctype = ctype.element
            continue
        declarator += f"({render_params(ctype.params, style=style, names=names)})"
        if style == "pxd":
            declarator += " noexcept nogil"
        ctype = ctype.result


def render_params(
    params: Sequence[tuple[str | None, CType]],
    *,
    style: str = "c",
    names: Mapping[str, str] | None = None,
) -> str:
    if not params:
        return "" if style == "pxd" else "void"
    parts = []
    for name, ctype in params:
        if style == "digest":
            parts.append(render(strip_top_quals(ctype), style=style))
        elif style == "pxd":
            declarator = name if name and cython_safe(name) else ""
            parts.append(render(ctype, declarator, style=style, names=names))
        else:
            parts.append(render(ctype, name or "", style=style))
    return ", ".join(parts)


def uses(ctype: CType, found: set[str]) -> set[str]:
    """Add the names of the Base types ``ctype`` mentions to ``found``."""
    if isinstance(ctype, Base):
        found.add(ctype.name)
    elif isinstance(ctype, Pointer):
        uses(ctype.target, found)
    elif isinstance(ctype, Array):
        uses(ctype.element, found)
    else:
        uses(ctype.result, found)
        for _, param in ctype.params:
            uses(param, found)
    return found
