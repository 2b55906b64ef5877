"""The spec file (TOML): which library, which functions, with which C types.

A spec is parsed and fully validated at once: every problem is a SpecError
naming the file and the line. Not on the warm path (imports tomllib,
packaging and pycparser).
"""

from __future__ import annotations

import hashlib
import os

from . import _cdecl
from ._cdecl import (
    CXX_KEYWORDS,
    Array,
    Base,
    Entry,
    FuncType,
    Pointer,
    Record,
    adjust_param,
    cython_safe,
    is_c_identifier,
    opaque_tag,
    render,
    resolve,
    strip_top_quals,
)
from ._errors import SpecError

_MAX_SPEC_BYTES = 16 << 20  # a spec over 16 MiB is not a spec: refused, never read whole

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from packaging.specifiers import SpecifierSet

    ErrorFn = Callable[..., SpecError]  # (message, line=None) -> SpecError

    from ._cdecl import CType

#: Hashed into every layout digest; equals LIBBROKER_ABI_MAJOR of include/libbroker.h.
LIBBROKER_ABI_MAJOR = 1

_TOP_KEYS = ("library", "types", "functions", "variables")
_LIBRARY_KEYS = (
    "name",
    "names",
    "version",
    "version-function",
    "symbol-prefix",
    "symbol-suffix",
    "packages",
)
_FUNCTION_KEYS = ("required", "optional")
#: Longest chain of [types] names defined through each other.
MAX_TYPE_DEPTH = 64
# Members of the generated table struct besides the slots.
_RESERVED_SLOTS = ("header",)
# The master module refuses capsule names over 111 bytes ("libbroker.<name>" plus
# room), and file names such as libbroker_<name>.cpython-311-....so must stay short.
MAX_NAME_LENGTH = 100
# First line of the text a generated header embeds (a TOML comment): the digest of
# the spec as written, so a compacted copy keys the same caches as the original.
DIGEST_MARK = "# libbroker spec-digest "


class Function:
    """One slot of a spec's table: a function, or (``kind == "variable"``) the address of
    an exported object from [variables]. Its slot name, declaration and normalised type.

    ``Spec.functions`` lists every slot in table order (functions, then variables), so
    symbol lookup, required checks and signatures treat both alike.
    """

    __slots__ = (
        "_type",
        "kind",
        "line",
        "name",
        "params",
        "prototype",
        "required",
        "return_type",
        "signature",
        "variadic",
    )

    def __init__(self, name: str, required: bool, prototype: str, ctype: CType,
                 resolved: CType, line: int | None, kind: str = "function", *,
                 memo: _Memo | None = None) -> None:
        self.name = name
        self.required = required
        self.prototype = prototype
        self.line = line
        self.kind = kind
        self._type = ctype  # as written: the generated headers use the spec's type names
        if isinstance(resolved, FuncType):
            digest = _digest if memo is None else memo.digest
            result = strip_top_quals(resolved.result)
            self.return_type = digest(resolved.result)
            self.params: list[tuple[str | None, str]] = [
                (pname, digest(ptype)) for pname, ptype in resolved.params
            ]
            self.variadic = resolved.variadic
            # What render(FuncType(result, params), style="digest") writes, from the
            # parameters' texts already made.
            listed = ", ".join(text for _, text in self.params) or "void"
            if self.variadic:
                listed += ", ..."
            self.signature = f"{name}: {render(result, f'({listed})', style='digest')}"
        else:  # the slot holds the object's address: its type is a pointer to it
            self.return_type = render(resolved, style="digest")
            self.params = []
            self.variadic = False
            self.signature = f"{name}: {render(Pointer(resolved), style='digest')}"

    @classmethod
    def _like(cls, name: str, required: bool, prototype: str, ctype: FuncType,
              line: int | None, texts: tuple[str, list[str], str]) -> Function:
        """A function whose written types are those of one made before (``texts``: its
        return type, parameter and signature texts after the name): nothing to resolve."""
        fn = cls.__new__(cls)
        fn.name = name
        fn.required = required
        fn.prototype = prototype
        fn.line = line
        fn.kind = "function"
        fn._type = ctype
        fn.return_type, digests, tail = texts
        fn.params = [(pname, text) for (pname, _), text in zip(ctype.params, digests)]
        fn.variadic = ctype.variadic
        fn.signature = f"{name}: {tail}"
        return fn

    def symbol(self, spec: Spec) -> str:
        """The symbol looked up in the library: prefix + name + suffix."""
        return f"{spec.symbol_prefix}{self.name}{spec.symbol_suffix}"

    def __repr__(self) -> str:
        kind = "required" if self.required else "optional"
        return f"<Function {self.signature!r} ({kind})>"


def _digest(ctype: CType) -> str:
    """The digest text of a resolved parameter or result type (top qualifiers dropped)."""
    return render(strip_top_quals(ctype), style="digest")


class _Memo:
    """``resolve`` and digest texts of one spec's types, each done once per type object.

    Prototypes of one shape share their parameter type objects (`_shapes`), so a
    5,000-function spec resolves and renders a few dozen types, not 25,000. Keys are
    the objects themselves (identity: the type classes define no ``__eq__``).
    """

    __slots__ = ("_digests", "_params", "_resolved", "_texts", "types")

    def __init__(self, types: dict[str, CType | None]) -> None:
        self.types = types
        self._resolved: dict[CType, CType] = {}
        self._params: dict[CType, CType] = {}
        self._digests: dict[CType, str] = {}
        self._texts: dict[tuple[object, ...], tuple[str, list[str], str]] = {}

    def known(self, name: str, required: bool, prototype: str, ftype: FuncType,
              line: int | None) -> Function | None:
        """The `Function` of a prototype whose written types (the same objects) an
        earlier one had, without resolving or checking again; None for new types."""
        texts = self._texts.get(self._key(ftype))
        if texts is None:
            return None
        return Function._like(name, required, prototype, ftype, line, texts)

    def remember(self, ftype: FuncType, fn: Function) -> None:
        """Keep the texts of ``fn``, made (and checked) from ``ftype``."""
        self._texts[self._key(ftype)] = (fn.return_type, [text for _, text in fn.params],
                                         fn.signature[len(fn.name) + 2:])

    @staticmethod
    def _key(ftype: FuncType) -> tuple[object, ...]:
        return (ftype.variadic, ftype.result, *[ptype for _, ptype in ftype.params])

    def resolve(self, ctype: CType) -> CType:
        """``_cdecl.resolve(ctype, types)``."""
        if isinstance(ctype, FuncType):  # not shared: its parameter names are its own
            return FuncType(self.resolve(ctype.result),
                            [(n, self.param(t)) for n, t in ctype.params], ctype.variadic)
        hit = self._resolved.get(ctype)
        if hit is None:
            hit = self._resolved[ctype] = resolve(ctype, self.types)
        return hit

    def param(self, ctype: CType) -> CType:
        hit = self._params.get(ctype)
        if hit is None:
            hit = self._params[ctype] = adjust_param(self.resolve(ctype))
        return hit

    def digest(self, ctype: CType) -> str:
        """``_digest(ctype)``."""
        hit = self._digests.get(ctype)
        if hit is None:
            hit = self._digests[ctype] = _digest(ctype)
        return hit


class Spec:
    """A parsed and validated spec. Build with ``from_file`` or ``from_string``."""

    def __init__(self, text: str, path: str | None = None) -> None:
        self.text = text
        self.path = path
        data = _load_toml(text, path)
        lines = _Lines(text)

        def error(message: str, line: int | None = None) -> SpecError:
            return SpecError(message, path=path, line=line)

        def check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str, section: str) -> None:
            for key in table:
                if key not in allowed:
                    raise error(
                        f"unknown key {key!r} in {where}; allowed keys: "
                        + ", ".join(repr(k) for k in allowed),
                        lines.key(section, key),
                    )

        check_keys(data, _TOP_KEYS, "the spec (top level)", "")
        library = _table(data, "library", error, lines, required=True)
        check_keys(library, _LIBRARY_KEYS, "[library]", "library")

        def get(key: str, kind: type, default: object = None) -> Any:
            value = library.get(key, default)
            if value is not None and not isinstance(value, kind):
                raise error(
                    f"[library] {key} must be a {kind.__name__}, found {value!r}",
                    lines.key("library", key),
                )
            return value

        name = get("name", str)
        if name is None:
            raise error('[library] has no name; fix: add name = "<table name>", a C identifier',
                        lines.section("library"))
        _check_c_name(name, "[library] name", error, lines.key("library", "name"))
        if len(name) > MAX_NAME_LENGTH:
            raise error(f"[library] name is {len(name)} characters long; expected at most "
                        f"{MAX_NAME_LENGTH} (capsule and file names derive from it); fix: "
                        "shorten it", lines.key("library", "name"))
        self.name: str = name
        self.names: list[str] = _string_list(get("names", list, [name]), "names", error,
                                             lines.key("library", "names"), link_name=True)
        if not self.names:
            raise error("[library] names is empty; fix: list the link names, e.g. [\"z\"]",
                        lines.key("library", "names"))
        self.version: str | None = get("version", str) or None
        if self.version is not None:
            self._specifier_set(error, lines.key("library", "version"))
        self.version_function: str | None = get("version-function", str)
        if self.version_function is not None:
            _check_c_name(self.version_function, "[library] version-function", error,
                          lines.key("library", "version-function"))
        self.symbol_prefix: str = get("symbol-prefix", str, "")
        self.symbol_suffix: str = get("symbol-suffix", str, "")
        for key, affix in (("symbol-prefix", self.symbol_prefix),
                           ("symbol-suffix", self.symbol_suffix)):
            if not (affix.isascii() and f"a{affix}a".isidentifier()):
                raise error(f"[library] {key} {affix!r} cannot be part of a C symbol name; "
                            "expected letters, digits and '_'", lines.key("library", key))
        self.packages: list[str] = _string_list(get("packages", list, []), "packages", error,
                                                lines.key("library", "packages"))
        if self.packages:
            from ._providers import distribution_name_problem

            for package in self.packages:
                problem = distribution_name_problem(package)
                if problem is not None:
                    raise error(f"[library] packages has an invalid entry {package!r}: {problem}",
                                lines.key("library", "packages"))

        types = _table(data, "types", error, lines)
        self.types: dict[str, str] = {}
        #: [types] name -> struct tag, for the opaque entries.
        self.opaque_tags: dict[str, str] = {}
        pxd_names = pxd_reserved_names(name)
        for tname, ttext in types.items():
            where = lines.key("types", tname)
            _check_c_name(tname, "[types] name", error, where)
            if tname in _cdecl.STANDARD_TYPES:
                raise error(f"[types] redefines the standard type {tname!r}; fix: remove it, "
                            "libbroker knows it", where)
            _check_foreign_name(tname, "[types] name", error, where)
            if tname in pxd_names:
                raise error(f"[types] name {tname!r} is a name the generated .pxd defines "
                            "itself; fix: rename the type", where)
            if not isinstance(ttext, str):
                raise error(f"[types] {tname} must be a string of C type text or \"opaque\", "
                            f"found {ttext!r}", where)
            if ttext.strip() in ("enum", "struct", "union"):
                keyword = ttext.strip()
                fix = (f'its underlying integer type, e.g. {tname} = "int"  # enum {tname} '
                       "(C compilers give an enum the size of int unless its values need "
                       "more; `libbroker spec` reads it from the header)" if keyword == "enum"
                       else f'"opaque" (used through pointers) or its fields, e.g. {tname} = '
                       f'"{keyword} {{ int major; int minor; }}" (used by value)')
                raise error(f"[types] {tname} = {ttext!r} names no type; expected {fix}", where)
            tag = opaque_tag(tname, ttext)
            if tag is not None:
                _check_c_name(tag, f"[types] {tname} struct tag", error, where)
                _check_foreign_name(tag, f"[types] {tname} struct tag", error, where)
                self.opaque_tags[tname] = tag
            self.types[tname] = ttext
        for tname, tag in self.opaque_tags.items():
            if tag != tname and tag in self.types:
                raise error(f"[types] {tname} = {self.types[tname]!r} names the struct tag "
                            f"{tag!r}, which is also a [types] name (C++ rejects a tag and a "
                            "typedef of different types sharing a name); fix: rename one",
                            lines.key("types", tname))

        functions = _table(data, "functions", error, lines)
        check_keys(functions, _FUNCTION_KEYS, "[functions]", "functions")
        entries = [Entry("type", n, t, lines.key("types", n))
                   for n, t in self.types.items() if n not in self.opaque_tags]
        n_types = len(entries)
        kinds: list[bool] = []
        for key in _FUNCTION_KEYS:
            protos = _string_list(functions.get(key, []), key, error,
                                  lines.key("functions", key), section="functions")
            found = _proto_lines(lines, key, protos)
            entries.extend(Entry("function", key, p, line) for p, line in zip(protos, found))
            kinds.extend([key == "required"] * len(protos))
        n_functions = len(entries)
        variables = _table(data, "variables", error, lines)
        check_keys(variables, _FUNCTION_KEYS, "[variables]", "variables")
        for key in _FUNCTION_KEYS:
            decls = _string_list(variables.get(key, []), key, error,
                                 lines.key("variables", key), section="variables")
            found = _proto_lines(lines, key, decls, "variables")
            entries.extend(Entry("variable", key, d, line) for d, line in zip(decls, found))
            kinds.extend([key == "required"] * len(decls))
        if len(entries) == n_types:
            raise error("the spec declares no functions; fix: add [functions] required = "
                        "[\"<C prototype>\", ...]", lines.section("functions"))

        parsed = _cdecl.parse_entries(self.types, entries, path=path)
        written: dict[str, CType | None] = {n: None for n in self.opaque_tags}
        for entry, (_, ctype) in zip(entries[:n_types], parsed[:n_types]):
            written[entry.name] = ctype
        self._written_types = {n: written[n] for n in self.types}
        self._type_order = _type_order(self._written_types, self.types, error, lines)
        for tname in self._type_order:  # dependencies first: each check sees complete types
            record = self._written_types[tname]
            if isinstance(record, Record):
                _check_fields(tname, record, self._written_types, self.opaque_tags, error,
                              lines.key("types", tname))
        del n_functions

        self.functions: list[Function] = []
        seen: dict[str, Function] = {}
        memo = _Memo(self._written_types)
        for entry, required, (fname, ftype) in zip(entries[n_types:], kinds, parsed[n_types:]):
            assert fname is not None
            assert isinstance(ftype, FuncType) == (entry.kind == "function")
            # Slots are struct members: only the header member and the names the .pxd
            # declares beside the functions can collide.
            if fname in _RESERVED_SLOTS or fname in (
                "libbroker_table_header", f"libbroker_{name}_table"
            ):
                raise error(f"{entry.kind} name {fname!r} is reserved for generated code (the "
                            "table struct and its header); it cannot be a slot", entry.line)
            if fname in CXX_KEYWORDS:
                raise error(f"{entry.kind} name {fname!r} is a C++ keyword, so the generated "
                            "header's table struct could not compile as C++; fix: wrap the "
                            "function under another name", entry.line)
            if fname in seen:
                other = seen[fname]
                if other.required != required:
                    raise error(f"{entry.kind} {fname!r} is declared both required (line "
                                f"{other.line}) and optional; fix: keep one", entry.line)
                raise error(f"{entry.kind} {fname!r} is declared twice (also at line "
                            f"{other.line}, as a {other.kind}); fix: remove one", entry.line)
            # A prototype with the types of an earlier one has its texts, and passed
            # its checks (the same type objects: prototypes of one shape share them).
            known = memo.known(fname, required, entry.text, ftype, entry.line) if isinstance(
                ftype, FuncType) else None
            if known is not None:
                fn = known
            else:
                resolved = memo.resolve(ftype)
                if entry.kind == "function":
                    assert isinstance(resolved, FuncType)
                    _check_by_value(fname, entry.text, resolved, self.opaque_tags, error,
                                    entry.line)
                fn = Function(fname, required, entry.text, ftype, resolved, entry.line,
                              entry.kind, memo=memo)
                if isinstance(ftype, FuncType):
                    memo.remember(ftype, fn)
            seen[fname] = fn
            self.functions.append(fn)
        if self.version_function in seen:
            fn = seen[self.version_function]
            if fn.kind != "function" or fn.params or fn.variadic or fn.return_type not in ("const char *", "char *"):
                vline = lines.key("library", "version-function")
                raise error(f"[library] version-function {fn.name!r} (line {vline}) is declared "
                            f"at line {fn.line} as {fn.prototype!r}; version-function must "
                            "return const char * and take no arguments; fix: name another "
                            "function, or declare it as 'const char *NAME(void)'", fn.line)
        #: function name -> its name in the .pxd (see pxd_names).
        self.cython_names: dict[str, str] = _cython_names(self, pxd_names, error)

        self.signatures: list[str] = [fn.signature for fn in self.functions]
        blob = f"{LIBBROKER_ABI_MAJOR}\n" + "\n".join(self.signatures)
        self.layout_digest: int = int.from_bytes(
            hashlib.sha256(blob.encode()).digest()[:8], "little")
        self.spec_digest: str = marked_digest(text) or hashlib.sha256(text.encode()).hexdigest()

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def from_string(cls, text: str, path: str | os.PathLike[str] | None = None) -> Spec:
        if not isinstance(text, str):
            raise SpecError(f"spec text must be a str, found {type(text).__name__}",
                            path=None if path is None else os.fspath(path))
        # Same digest and header bytes whatever line endings a checkout has.
        return cls(text.replace("\r\n", "\n"), None if path is None else os.fspath(path))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Spec:
        path = os.fspath(path)
        import stat

        # Non-blocking open, regular file only (fstat after the open), bounded read: a
        # FIFO, terminal or device given as the spec must not hang or fill memory.
        flags = os.O_RDONLY
        for name in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"):
            flags |= getattr(os, name, 0)
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise SpecError("expected a spec file (TOML text) but found a directory, FIFO, "
                                "device or socket", path=path)
            fd = os.open(path, flags)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise SpecError("expected a spec file (TOML text) but found a directory, "
                                    "FIFO, device or socket", path=path)
                data = b""
                while len(data) <= _MAX_SPEC_BYTES:
                    more = os.read(fd, _MAX_SPEC_BYTES + 1 - len(data))
                    if not more:
                        break
                    data += more
            finally:
                os.close(fd)
        except OSError as exc:
            raise SpecError(f"cannot read the spec file: {exc.strerror or exc}",
                            path=path) from exc
        if len(data) > _MAX_SPEC_BYTES:
            raise SpecError(f"the spec file is over {_MAX_SPEC_BYTES} bytes; a spec is a short "
                            "TOML text (fix: give the spec file, not another file)", path=path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise SpecError("the spec is not UTF-8 text (TOML requires UTF-8)",
                            path=path, line=line) from exc
        return cls.from_string(text, path)

    # -- derived -------------------------------------------------------------------------
    @property
    def c_name(self) -> str:
        """The C name of the table pointer in generated code: ``libbroker_<name>``."""
        return f"libbroker_{self.name}"

    @property
    def specifier(self) -> SpecifierSet | None:
        return None if self.version is None else self._specifier_set()

    @property
    def slots(self) -> list[Function]:
        """Every slot of the table in order: the functions, then the [variables]."""
        return list(self.functions)

    @property
    def variables(self) -> list[Function]:
        """The [variables] slots (``kind == "variable"``): exported objects' addresses."""
        return [slot for slot in self.functions if slot.kind == "variable"]

    @property
    def required_functions(self) -> list[Function]:
        return [fn for fn in self.functions if fn.required]

    @property
    def optional_functions(self) -> list[Function]:
        return [fn for fn in self.functions if not fn.required]

    def symbol_for(self, fn: Function | str) -> str:
        name = fn if isinstance(fn, str) else fn.name
        return f"{self.symbol_prefix}{name}{self.symbol_suffix}"

    def function(self, name: str) -> Function:
        for fn in self.functions:
            if fn.name == name:
                return fn
        raise KeyError(name)

    def __repr__(self) -> str:
        source = self.path or "<string>"
        return f"<Spec {self.name!r} from {source!r}: {len(self.functions)} functions>"

    def _specifier_set(self, error: ErrorFn | None = None,
                       line: int | None = None) -> SpecifierSet:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            return SpecifierSet(self.version or "")
        except InvalidSpecifier as exc:
            if error is None:
                raise
            raise error(f"[library] version {self.version!r} is not a PEP 440 version "
                        "specifier; expected e.g. \">=1.2.11\" or \">=3.30,<4\"", line) from exc


# -- helpers -------------------------------------------------------------------------------

def _load_toml(text: str, path: str | None) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
    try:
        return tomllib.loads(text)
    except RecursionError as exc:  # tomllib recurses once per nested array or table
        raise SpecError("the TOML nests arrays or tables too deeply for Python's parser; "
                        "a spec needs at most 2 levels; fix: flatten it", path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        marker = "(at line "
        if marker in message:
            digits = message.split(marker, 1)[1].split(",", 1)[0]
            line = int(digits) if digits.isdigit() else None
            message = message.split(marker, 1)[0].strip()
        elif "(at end of document)" in message:
            line = text.count("\n") + 1
            message = message.split("(at end", 1)[0].strip()
        raise SpecError(f"invalid TOML: {message}", path=path, line=line) from exc


def _table(data: dict[str, Any], key: str, error: ErrorFn, lines: _Lines,
           required: bool = False) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise error(f"the spec has no [{key}] table; fix: add one with at least "
                        f"name = \"<table name>\"", None)
        return {}
    if not isinstance(value, dict):
        raise error(f"{key} must be a table ([{key}]), found {value!r}",
                    lines.key("", key))
    return value


def _string_list(value: object, key: str, error: ErrorFn, line: int | None, *,
                 link_name: bool = False, section: str = "library") -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error(f"[{section}] {key} must be a list of strings, found {value!r}", line)
    if section in ("functions", "variables"):  # each is checked later, with its own line
        return list(value)
    for item in value:
        if not item.strip() or (link_name and _link_name_problem(item)):
            hint = f"; {_link_name_problem(item)}" if link_name and item.strip() else ""
            raise error(f"[{section}] {key} has an invalid entry {item!r}{hint}", line)
    return list(value)


def _link_name_problem(name: str) -> str | None:
    """Why ``name`` can never match a library file (libNAME.so.N, NAME.dll, ...), or None."""
    expected = ("expected a link name such as \"z\" (libz.so.1, libz.dylib, zlib1.dll: "
                "no 'lib', no suffix, no path)")
    if any(c in name for c in "/\\\0") or name in (".", ".."):
        return f"not a path: {expected}"
    if name != name.strip() or not name.isprintable():
        return f"it has spaces at an end or control characters, which no file name matches; {expected}"
    for suffix in (".so", ".dll", ".dylib", ".a", ".lib"):
        if name.lower().endswith(suffix) or f"{suffix}." in name.lower():
            return f"a file name suffix ({suffix}) is not part of a link name; {expected}"
    return None


def pxd_reserved_names(table: str) -> frozenset[str]:
    """Names the generated .pxd of table ``table`` defines besides the functions."""
    return frozenset((
        "table", f"import_{table}", "SPEC_DIGEST", "LAYOUT_DIGEST", "SLOT_COUNT", "c_bool",
        "libbroker_table_header", f"libbroker_{table}_table",
    ))


def _cython_names(spec: Spec, reserved: frozenset[str], error: ErrorFn) -> dict[str, str]:
    # A C name Cython cannot use, or that the .pxd already defines, gets a '_'
    # (the cname string keeps the C name); a clash after that is an error rather
    # than a silent second declaration.
    names: dict[str, str] = {}
    owner: dict[str, Function] = {}
    for fn in spec.functions:
        pyname = fn.name
        if not cython_safe(pyname) or pyname in reserved or pyname in spec.types:
            pyname += "_"
        other = owner.get(pyname)
        if other is None and (pyname in reserved or pyname in spec.types):
            raise error(f"function {fn.name!r} would be {pyname!r} in the .pxd, a name the "
                        ".pxd already defines; fix: rename the [types] entry", fn.line)
        if other is not None:
            raise error(f"function {fn.name!r} and function {other.name!r} (line {other.line}) "
                        f"would both be {pyname!r} in the .pxd (a C name Cython cannot use "
                        "gets a '_'); fix: drop one of them", fn.line)
        owner[pyname] = fn
        names[fn.name] = pyname
    return names


def _incomplete(ctype: CType, opaque: dict[str, str]) -> str | None:
    """Why a value of the resolved ``ctype`` has no size C knows, or None."""
    if isinstance(ctype, Base) and ctype.kind == "tag":
        keyword, tag = ctype.name.split(" ", 1)
        if keyword == "struct" and tag in opaque:
            return (f"the opaque type {tag!r}, an incomplete struct usable only through "
                    f"pointers; fix: use '{tag} *', or write its fields in [types] "
                    f'({tag} = "struct {{ int a; double b; }}") to use it by value')
        return (f"'{ctype.name}', which the spec leaves incomplete (usable only through "
                f"pointers); fix: use '{ctype.name} *', or name it in [types] with its fields "
                f'(NAME = "{keyword} {{ int a; double b; }}") and use NAME by value')
    if isinstance(ctype, Base) and ctype.name == "void":
        return "void; fix: write (void) alone for no parameters, or use 'void *'"
    return None


def _check_by_value(
    fname: str, proto: str, ftype: FuncType, opaque: dict[str, str], error: ErrorFn,
    line: int | None,
) -> None:
    """Refuse what the C compiler would: values of incomplete types, void parameters,
    arrays and functions returned (through [types] names, which the parser cannot see)."""
    result = ftype.result
    if isinstance(result, (Array, FuncType)):
        kind = "an array" if isinstance(result, Array) else "a function"
        raise error(f"function {fname!r} ({proto!r}) returns {kind} through a [types] name, "
                    "which C does not allow; fix: return a pointer to it", line)
    if not (isinstance(result, Base) and result.name == "void"):
        reason = _incomplete(result, opaque)
        if reason is not None:
            raise error(f"function {fname!r} ({proto!r}) returns by value {reason}", line)
    for index, (_, ptype) in enumerate(ftype.params, 1):
        reason = _incomplete(ptype, opaque)
        if reason is not None:
            raise error(f"function {fname!r} ({proto!r}) takes as parameter {index} by value "
                        f"{reason}", line)


def _check_fields(tname: str, record: Record, types: dict[str, CType | None],
                  opaque: dict[str, str], error: ErrorFn, line: int | None) -> None:
    for fname, ftype in record.fields:
        resolved = resolve(ftype, types)
        while isinstance(resolved, Array):
            resolved = resolved.element
        if isinstance(resolved, FuncType):
            raise error(f"[types] {tname}: field {fname!r} has a function type; fix: make it "
                        "a function pointer", line)
        reason = _incomplete(resolved, opaque)
        if reason is not None:
            raise error(f"[types] {tname}: field {fname!r} holds by value {reason}", line)


def marked_digest(text: str) -> str | None:
    """The digest a text embedded by a generated header carries on its first line."""
    if not text.startswith(DIGEST_MARK):
        return None
    digest = text[len(DIGEST_MARK):].split("\n", 1)[0]
    if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
        return digest
    return None


def _check_foreign_name(name: str, what: str, error: ErrorFn, line: int | None) -> None:
    # The .h is also compiled as C++, the .pxd by Cython: a name either reserves
    # would make the generated code fail to compile, far from the spec.
    if name in CXX_KEYWORDS:
        raise error(f"{what} {name!r} is a C++ keyword, so the generated header could not "
                    "compile as C++; fix: rename it", line)
    if not cython_safe(name):
        raise error(f"{what} {name!r} is a Python or Cython keyword, so the generated .pxd "
                    "could not compile; fix: rename it", line)


def _check_c_name(name: str, what: str, error: ErrorFn, line: int | None) -> None:
    if not is_c_identifier(name):
        raise error(f"{what} {name!r} is not a C identifier (ASCII letters, digits and '_', "
                    "not starting with a digit, not a C keyword)", line)
    if name.startswith("libbroker_") or name == "libbroker":
        raise error(f"{what} {name!r} starts with 'libbroker_', which is reserved for "
                    "generated code; fix: rename it", line)


def _type_order(model: dict[str, CType | None], texts: dict[str, str], error: ErrorFn,
                lines: _Lines) -> list[str]:
    """[types] names so that each comes after those it uses (C needs that order)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join(chain[chain.index(name):] + [name])
            raise error(f"[types] entries refer to each other in a cycle ({cycle}); fix: make "
                        "one of them \"opaque\"", lines.key("types", name))
        if len(chain) > MAX_TYPE_DEPTH:
            raise error(f"[types] {name!r} is defined through a chain of more than "
                        f"{MAX_TYPE_DEPTH} other [types] names; fix: define it directly",
                        lines.key("types", name))
        state[name] = 1
        ctype = model[name]
        if ctype is not None:
            # Through a pointer to a struct C needs no definition, but a [types] name
            # must still be declared first.
            for used in sorted(_cdecl.uses(ctype, set())):
                if used in model:
                    visit(used, chain + [name])
        state[name] = 2
        order.append(name)

    for name in texts:
        visit(name, [])
    return order


def _section_of(line: str) -> str | None:
    stripped = line.strip()
    if stripped.startswith("[") and not stripped.startswith("[["):
        return stripped[1:].split("]", 1)[0].strip().strip('"')
    return None


class _Lines:
    """Where each section and key of a spec text is, found in one pass over its lines.

    Messages name lines; a spec of 5,000 functions asks thousands of times, so the
    lines are indexed once instead of scanned per question. Only for text tomllib
    accepted: a key is what precedes the first '=' of a line, or a quoted key.
    """

    __slots__ = ("_keys", "_sections", "starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts: list[int] = []  # offset of each line's first character
        self._sections: dict[str, int] = {}
        self._keys: dict[tuple[str, str], int] = {}
        current = ""
        offset = 0
        for number, line in enumerate(text.split("\n"), 1):
            self.starts.append(offset)
            offset += len(line) + 1
            header = _section_of(line)
            if header is not None:
                self._sections.setdefault(header, number)
                self._keys.setdefault(("", header), number)  # the table [key] itself
                current = header
                continue
            if "=" not in line:
                continue
            stripped = line.lstrip()
            spellings = [stripped.split("=", 1)[0].rstrip()]
            quote = stripped[:1]
            if quote in ("'", '"'):  # a quoted key may contain '='
                close = stripped.find(quote, 1)
                if close > 0 and stripped[close + 1:].lstrip().startswith("="):
                    spellings.append(stripped[:close + 1])
            for spelling in spellings:
                self._keys.setdefault((current, spelling), number)
                if len(spelling) >= 2 and spelling[0] in "'\"" and spelling[-1] == spelling[0]:
                    self._keys.setdefault((current, spelling[1:-1]), number)

    def key(self, section: str, key: str) -> int | None:
        """Line of ``key = ...`` in ``[section]`` ("" for the top level), or None."""
        return self._keys.get((section, key))

    def section(self, section: str) -> int | None:
        """Line of the first ``[section]`` header, or None."""
        return self._sections.get(section)


def _proto_lines(lines: _Lines, key: str, protos: list[str],
                 section: str = "functions") -> list[int | None]:
    """The line of each string of the array ``key`` in ``[section]``: each is looked
    for after the previous one, and lines are counted from there (linear)."""
    start_line = lines.key(section, key)
    if start_line is None:
        return [None] * len(protos)
    text = lines.text
    pos = counted = lines.starts[start_line - 1]
    number = start_line
    found: list[int | None] = []
    for proto in protos:
        at = text.find(proto, pos) if proto else max(text.find('""', pos), text.find("''", pos))
        if at < 0:  # escapes or line continuations in the TOML string
            found.append(start_line)
            continue
        number += text.count("\n", counted, at)
        counted = at
        found.append(number)
        pos = at + len(proto)
    return found


__all__ = ["LIBBROKER_ABI_MAJOR", "MAX_NAME_LENGTH", "Function", "Spec", "marked_digest",
           "pxd_reserved_names"]
