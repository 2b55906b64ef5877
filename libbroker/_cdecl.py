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
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, Union

    Node = Any  # a pycparser AST node (pycparser ships no type information)
    Fail = Callable[[str], SpecError]

    CType = Union["Base", "Pointer", "Array", "FuncType", "Record"]  # noqa: UP007 (forward refs)

C_KEYWORDS = frozenset(
    ["auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic", "_Bool", "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert", "_Thread_local", "alignas", "alignof", "bool", "constexpr", "false", "nullptr", "static_assert", "thread_local", "true", "typeof", "typeof_unqual", "_BitInt", "_Decimal32", "_Decimal64", "_Decimal128"]
)

# The generated header must also compile as C++: these cannot name a [types]
# entry, an opaque struct tag or a slot.
CXX_KEYWORDS = frozenset(
    ["alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch", "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept", "const", "consteval", "constexpr", "constinit", "const_cast", "continue", "co_await", "co_return", "co_yield", "decltype", "default", "delete", "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float", "for", "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq", "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register", "reinterpret_cast", "requires", "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast", "struct", "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq"]
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
#: Deepest nesting of (), [], {} or '*' one declaration may have (C requires 12).
MAX_NESTING = 64
MAX_ENTRY_CHARS = 20_000
_PROBE = "libbroker__type_probe__"


class Base:
    """A named type: a C builtin ("unsigned long"), a standard typedef
    ("size_t"), a [types] name ("uLong", kind "typedef") or a tag ("struct x")."""

    __slots__ = ("kind", "name", "quals")

    def __init__(self, name: str, quals: tuple[str, ...] = (), kind: str = "builtin") -> None:
        self.name = name
        self.quals = quals
        self.kind = kind


class Pointer:
    __slots__ = ("quals", "target")

    def __init__(self, target: CType, quals: tuple[str, ...] = ()) -> None:
        self.target = target
        self.quals = quals


class Array:
    __slots__ = ("element", "size")

    def __init__(self, element: CType, size: int | None) -> None:
        self.element = element
        self.size = size


class FuncType:
    """A function type; ``variadic`` when the parameter list ends with ``...``."""

    __slots__ = ("params", "result", "variadic")

    def __init__(self, result: CType, params: list[tuple[str | None, CType]],
                 variadic: bool = False) -> None:
        self.result = result
        self.params = params
        self.variadic = variadic


class Record:
    """A complete struct or union written in [types] (``"struct { int major; }"``):
    the only way a spec passes a struct by value. ``fields`` keep their order."""

    __slots__ = ("fields", "keyword", "quals")

    def __init__(self, keyword: str, fields: list[tuple[str, CType]],
                 quals: tuple[str, ...] = ()) -> None:
        self.keyword = keyword  # "struct" or "union"
        self.fields = fields
        self.quals = quals


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


def _get_parser() -> Any:
    # Building a pycparser 2.x parser (PLY tables) costs ~100 ms: build once.
    global _parser
    if _parser is None:
        from pycparser import c_parser  # type: ignore[import-untyped,unused-ignore]

        _parser = c_parser.CParser()
    return _parser


class Entry:
    """One thing to parse: a prototype or a [types] entry, and where it came from."""

    __slots__ = ("kind", "line", "name", "text")

    def __init__(self, kind: str, name: str, text: str, line: int | None) -> None:
        self.kind = kind  # "function" or "type"
        self.name = name  # the type's name; for a function, a label for messages
        self.text = text
        self.line = line


def parse_entries(
    types: Mapping[str, str], entries: Sequence[Entry], *, path: str | None
) -> list[tuple[str | None, CType]]:
    """Parse [types] entries (not "opaque") and prototypes in one pycparser call.

    Prototypes that differ only in their names are parsed once (`_shapes`); when
    anything fails, every entry is parsed as written and the first failure raised.

    ``types`` holds every [types] name (so that they lex as type names).
    Returns one ``(name, model)`` per entry: the declared name and FuncType
    for a prototype, ``(None, type)`` for a [types] entry.
    """
    for entry in entries:
        _precheck(entry, path)
    from ._shapes import parse_by_shape  # imports _cdecl: imported here, not at the top

    shaped = parse_by_shape(types, entries, path=path)
    if shaped is not None:
        return shaped
    # Something fails: parse every entry as written, so that the error names the
    # first failing entry, its text and its line exactly.
    return parse_verbatim(types, entries, path=path)


def parse_verbatim(
    types: Mapping[str, str], entries: Sequence[Entry], *, path: str | None
) -> list[tuple[str | None, CType]]:
    """`parse_entries` with every entry parsed as written (one line each): the
    reference the shape path must equal, and the diagnosis of every failure."""
    from pycparser import c_ast, c_parser  # type: ignore[import-untyped,unused-ignore]

    header = _placeholders(types)
    lines = list(header)
    first = len(lines) + 1
    lines.extend(_line_for(entry) for entry in entries)
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
    by_line: dict[int, list[Node]] = {}
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
    text = entry.text
    if "#" not in text and "/" not in text and text.strip() and len(text) <= MAX_ENTRY_CHARS \
            and text.count("(") + text.count("[") + text.count("{") <= MAX_NESTING \
            and text.count("*") <= MAX_NESTING:
        return  # nothing below can fail: no nesting deeper than the brackets opened
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
    # pycparser and the renderers recurse once per declarator level: bound the
    # nesting here so that no spec can reach a RecursionError.
    depth = deepest = 0
    for char in entry.text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    stars = entry.text.count("*")
    if deepest > MAX_NESTING or stars > MAX_NESTING or len(entry.text) > MAX_ENTRY_CHARS:
        raise SpecError(
            f"{what} {entry.text[:60]!r}... nests {max(deepest, stars)} levels of parentheses, "
            f"brackets or pointers in {len(entry.text)} characters; libbroker accepts at most "
            f"{MAX_NESTING} levels and {MAX_ENTRY_CHARS} characters per declaration; fix: name "
            "the inner types in [types]",
            path=path,
            line=entry.line,
        )


def _what(entry: Entry) -> str:
    if entry.kind == "function":
        return "prototype"
    if entry.kind == "variable":
        return "variable declaration"
    return f"[types] entry {entry.name!r} ="


def _line_for(entry: Entry) -> str:
    text = " ".join(entry.text.split())
    if entry.kind == "type":
        return f"void {_PROBE}({text});"
    if entry.kind == "variable":
        return f"extern {text.removeprefix('extern ')};"
    return f"{text};"


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


def _parse_error(header: list[str], extra: list[str], entry: Entry) -> tuple[int, int] | None:
    """Where parsing ``entry`` fails (line, column) with ``extra`` declared; None: it parses."""
    try:
        with _parser_lock:
            _get_parser().parse("\n".join(header + extra + [_line_for(entry)]) + "\n",
                                "<libbroker>")
    except Exception as exc:  # noqa: BLE001 - any failure is "does not parse" (error path)
        parts = str(exc).split(":", 3)
        numbers = [int(p) for p in parts[1:3] if p.strip().isdigit()]
        if not numbers:  # no position: pycparser got to the end of the declaration
            return 1 << 30, 0
        numbers += [0]
        # Lines counted without ``extra``, so that two attempts compare.
        return numbers[0] - len(extra), numbers[1]
    return None


def _parses(header: list[str], extra: list[str], entry: Entry) -> bool:
    return _parse_error(header, extra, entry) is None


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
    # A word is an unknown type name when declaring it moves the parse error further
    # along (or removes it): that finds every unknown type, not only a lone one.
    unknown: list[str] = []
    failure = _parse_error(header, [], entry)
    for word in _identifiers(entry.text)[:50]:
        if word in known or failure is None:
            continue
        attempt = _parse_error(header, [f"typedef int {w};" for w in unknown + [word]], entry)
        if attempt is None or attempt > failure:
            unknown.append(word)
            failure = attempt
    if unknown and failure is None:
        return _unknown_type(unknown, entry, path)
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


def _unknown_type(words: list[str], entry: Entry, path: str | None) -> SpecError:
    word = words[0]
    if len(words) == 1:
        used = f"the unknown type {word!r}; fix: declare it in [types]"
    else:
        used = (f"the unknown types {', '.join(repr(w) for w in words)}; fix: declare each "
                "in [types]")
    return SpecError(
        f"{_what(entry)} {entry.text!r} uses {used}, e.g. {word} = \"opaque\" (a struct used "
        f'through pointers) or {word} = "unsigned long" (`libbroker spec HEADER` writes '
        "[types] from the library's real header)",
        path=path,
        line=entry.line,
    )


def _convert_entry(
    entry: Entry, nodes: list[Node], types: Mapping[str, str], path: str | None, c_ast: Any,
    *, check_names: bool = True,
) -> tuple[str | None, CType]:
    """The declared name and model of ``entry`` from its pycparser ``nodes``.

    ``check_names``: False for a shape (`_shapes`), whose parameter names are
    placeholders; its caller checks each prototype's real names.
    """
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
                "'int (*)(void *, int)', 'struct { int major; int minor; }' (a struct used "
                "by value), or 'opaque' for a struct used through pointers"
            )
        if _is_void(params[0].type, c_ast) and not params[0].type.quals:
            return None, Base("void")
        conv.record_allowed = True
        return None, conv.convert(params[0].type)
    if entry.kind == "variable":
        if node.storage not in ([], ["extern"]) or isinstance(node.type, c_ast.FuncDecl):
            raise fail(
                "is not an object declaration; expected 'TYPE NAME' such as "
                "'ffi_type ffi_type_double' (functions belong in [functions])"
            )
        if node.init is not None:
            raise fail("has an initializer; expected 'TYPE NAME' alone")
        vtype = conv.convert(node.type)
        if isinstance(vtype, Base) and vtype.name == "void":
            raise fail("declares an object of type void; fix: give its real type, or "
                       "'unsigned char NAME' to get its address")
        return node.name, vtype
    if node.storage not in ([], ["extern"]) or not isinstance(node.type, c_ast.FuncDecl):
        raise fail(
            "is not a function declaration; expected 'RETURN NAME(PARAMETERS)', "
            "with no storage class other than extern (objects belong in [variables])"
        )
    result = conv.convert(node.type)
    assert isinstance(result, FuncType)
    if check_names:
        check_param_names(result, types, fail)
    return node.name, result


def check_param_names(ftype: FuncType, types: Mapping[str, str], fail: Fail) -> None:
    """Refuse a prototype's parameter names that repeat, read as types or are reserved."""
    names = [name for name, _ in ftype.params if name is not None]
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


def _is_void(node: Node, c_ast: Any) -> bool:
    return (
        isinstance(node, c_ast.TypeDecl)
        and isinstance(node.type, c_ast.IdentifierType)
        and node.type.names == ["void"]
    )


class _Converter:
    def __init__(self, fail: Fail, types: Mapping[str, str], c_ast: Any) -> None:
        self.fail = fail
        self.types = types
        self.c_ast = c_ast
        # A struct written out in full is allowed once, as a whole [types] entry.
        self.record_allowed = False

    def convert(self, node: Node) -> CType:
        c_ast = self.c_ast
        allowed, self.record_allowed = self.record_allowed, False
        if isinstance(node, c_ast.TypeDecl):
            if allowed and isinstance(node.type, (c_ast.Struct, c_ast.Union)) and (
                node.type.decls is not None
            ):
                return self.record(node.type, self.quals(node.quals))
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

    def dimension(self, dim: Node) -> int | None:
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

    def record(self, node: Node, quals: tuple[str, ...]) -> Record:
        keyword = "union" if isinstance(node, self.c_ast.Union) else "struct"
        if node.name is not None:
            raise self.fail(
                f"defines '{keyword} {node.name} {{...}}' with a tag; expected an untagged "
                f"'{keyword} {{ FIELDS }}' (the [types] name is its name)"
            )
        fields: list[tuple[str, CType]] = []
        for decl in node.decls:
            if decl.bitsize is not None:
                raise self.fail(
                    f"has the bit-field {decl.name!r}, whose layout C leaves to the compiler; "
                    "fix: declare the struct \"opaque\" and use it through pointers"
                )
            if decl.name is None:
                raise self.fail("has a field without a name; expected 'TYPE NAME;' per field")
            if any(decl.name == name for name, _ in fields):
                raise self.fail(f"declares the field {decl.name!r} twice; fix: rename one")
            ftype = self.convert(decl.type)
            if isinstance(ftype, FuncType) or (isinstance(ftype, Base) and ftype.name == "void"):
                raise self.fail(f"has the field {decl.name!r} of a function or void type; "
                                "expected an object type (a function pointer is '(*NAME)(...)')")
            if isinstance(ftype, Array) and ftype.size is None:
                raise self.fail(f"has the flexible array field {decl.name!r}; such a struct "
                                "cannot be passed by value; fix: declare it \"opaque\"")
            fields.append((decl.name, ftype))
        if not fields:
            raise self.fail(f"defines a {keyword} without fields, which C does not allow")
        return Record(keyword, fields, quals)

    def base(self, node: Node, quals: tuple[str, ...]) -> Base:
        c_ast = self.c_ast
        if isinstance(node, (c_ast.Struct, c_ast.Union, c_ast.Enum)):
            keyword = {c_ast.Struct: "struct", c_ast.Union: "union", c_ast.Enum: "enum"}[type(node)]
            if keyword == "enum" and node.values is not None:
                raise self.fail(
                    "defines an enum inline; an enum's size is the compiler's choice, so a "
                    "spec gives its underlying integer type instead; fix: declare it in "
                    '[types] as that type, e.g. NAME = "int"  # enum NAME'
                )
            if node.name is None or getattr(node, "decls", None) is not None:
                raise self.fail(
                    f"defines a {keyword} inside a declaration; fix: give it a [types] name, "
                    f'either complete (NAME = "{keyword} {{ int a; double b; }}", usable by '
                    'value) or opaque (NAME = "opaque", usable through pointers)'
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

    def function(self, node: Node) -> FuncType:
        c_ast = self.c_ast
        if node.args is None:
            raise self.fail(
                "has an empty parameter list, which C reads as 'unspecified parameters'; "
                "fix: write (void) for a function without parameters"
            )
        params: list[tuple[str | None, CType]] = []
        items = node.args.params
        variadic = False
        for index, param in enumerate(items):
            if isinstance(param, c_ast.EllipsisParam):
                if not params:
                    raise self.fail("has '...' without a parameter before it, which C before "
                                    "C23 does not allow; fix: declare the first parameter")
                variadic = True
                continue
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
        return FuncType(result, params, variadic)


def _builtin_name(names: list[str], fail: Fail) -> str:
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
    ["cdef", "cpdef", "ctypedef", "cimport", "include", "nogil", "gil", "noexcept", "extern", "inline", "public", "api", "readonly", "sizeof", "NULL", "struct", "union", "enum", "const", "volatile", "signed", "unsigned", "long", "short", "int", "char", "float", "double", "void", "bint", "object", "print", "exec", "by", "new", "fused", "typeof", "address", "cppclass", "namespace", "operator", "except", "DEF", "IF", "ELIF", "ELSE"]
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
    if isinstance(ctype, Record):
        return Record(ctype.keyword, [(n, resolve(t, types)) for n, t in ctype.fields],
                      ctype.quals)
    return FuncType(
        resolve(ctype.result, types),
        [(n, adjust_param(resolve(t, types))) for n, t in ctype.params],
        ctype.variadic,
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
    if isinstance(ctype, Record):
        return Record(ctype.keyword, ctype.fields, _merge(ctype.quals, quals))
    return ctype


def strip_top_quals(ctype: CType) -> CType:
    # Top-level qualifiers of parameters are not part of a C function type.
    if isinstance(ctype, Base):
        return Base(ctype.name, (), ctype.kind)
    if isinstance(ctype, Pointer):
        return Pointer(ctype.target, ())
    if isinstance(ctype, Record):
        return Record(ctype.keyword, ctype.fields, ())
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
        if isinstance(ctype, Base):  # most calls end here at once: kept short
            quals = ctype.quals
            name = ctype.name
            if style == "pxd":  # Cython knows const only
                if names:
                    name = names.get(name, name)
                text = f"const {name}" if "const" in quals else name
            else:
                text = f"{' '.join(quals)} {name}" if quals else name
            return f"{text} {declarator}" if declarator else text
        if isinstance(ctype, Record):  # C only: the .pxd declares records as blocks
            body = " ".join(render(ftype, fname, style=style, names=names) + ";"
                            for fname, ftype in ctype.fields)
            text = " ".join(ctype.quals + (f"{ctype.keyword} {{ {body} }}",))
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
        params = render_params(ctype.params, style=style, names=names)
        if ctype.variadic:
            params += ", ..."
        declarator += f"({params})"
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
        if style == "digest":  # a named type's top qualifiers dropped without a copy
            parts.append(ctype.name if isinstance(ctype, Base)
                         else render(strip_top_quals(ctype), style=style))
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
    elif isinstance(ctype, Record):
        for _, field in ctype.fields:
            uses(field, found)
    else:
        uses(ctype.result, found)
        for _, param in ctype.params:
            uses(param, found)
    return found
