"""Prototypes that differ only in their names parse once (the fast path of parsing).

pycparser 3 costs about 0.4 ms per prototype, so a 5,000-function spec would
spend seconds in the C parser although prototypes repeat a few shapes
(``int NAME(TYPE NAME, const double *NAME)``). Here every prototype's own
identifiers are renamed in order of first appearance: function and parameter
names to ``libbroker__n0``, ``libbroker__n1``..., type names ([types] and the
standard ones) to ``libbroker__t0``... (declared as typedefs, as the real ones
are); keywords, struct tags and names starting with '_' are kept. Each distinct
renamed text ("shape") is parsed once, in one translation unit, converted once,
and each prototype gets that model with its own names put back.

Why the result is the one parsing every prototype verbatim gives: the C lexer
and pycparser's parser treat two identifiers differently only when one is a
keyword or a typedef name in scope. Keywords are never renamed; a type name
becomes a typedef placeholder and any other name a placeholder that is a typedef
nowhere (an entry that declares a typedef fails conversion, which sends the spec
to the verbatim path, as does any entry whose text spells a typedef placeholder);
renaming is one-to-one per prototype, so repeated names stay repeated. A
prototype with any character outside ``[A-Za-z0-9_ *(),[].]`` keeps its text.

This path only ever answers for a spec that fully succeeds: on any parse or
conversion failure, or a parameter name refused once renamed back, it returns
None and `_cdecl.parse_entries` parses every entry verbatim, so each error
message and line number is exactly the verbatim one (errors are rare; their
diagnosis may take seconds at 5,000 prototypes).
"""

from __future__ import annotations

import re

from . import _cdecl
from ._cdecl import Array, Base, FuncType, Pointer
from ._errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ._cdecl import CType, Entry

#: Prefixes of the placeholders (names, type names); no [types] name starts with 'libbroker_'.
PLACEHOLDER = "libbroker__n"
TYPE_PLACEHOLDER = "libbroker__t"
# Tokens whose text matters to the renaming (split out, at odd indices): preprocessing
# numbers (kept whole, so that the 'x' of 0x10 is never taken for a name), a
# struct/union/enum tag (kept: it is checked against [types]) and identifiers.
_WORDS = re.compile(r"(\.?[0-9](?:[eEpP][+-]|[.\w])*|(?:struct|union|enum) +[A-Za-z_]\w*"
                    r"|[A-Za-z_]\w*)")
_NAMES = [f"{PLACEHOLDER}{i}" for i in range(32)]
_TYPES = [f"{TYPE_PLACEHOLDER}{i}" for i in range(32)]
# What a renamed prototype may contain (whitespace already collapsed to one space).
_PLAIN = re.compile(r"[A-Za-z0-9_ *(),\[\].]*")


def keywords() -> frozenset[str]:
    """Words no renaming may touch: C keywords, and every keyword pycparser's lexer
    knows (read from pycparser itself, which has e.g. 'offsetof', '__int128')."""
    words = set(_cdecl.C_KEYWORDS) | {"offsetof"}
    try:
        from pycparser import c_lexer  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - pycparser is a dependency
        return frozenset(words)
    for table in ("_keyword_map", "_c23_keywords"):  # pycparser >= 3
        words.update(getattr(c_lexer, table, {}))
    lexer = getattr(c_lexer, "CLexer", None)  # pycparser 2.x: class attributes
    words.update(getattr(lexer, "keyword_map", {}))
    return frozenset(words)


def shape_of(text: str, kept: frozenset[str] | set[str],
             typenames: frozenset[str] | set[str] = frozenset()) -> tuple[str, list[str], list[str]]:
    """The renamed line of prototype ``text``, its names and its type names in
    placeholder order.

    ``kept``: words never renamed (keywords); ``typenames``: renamed to typedef
    placeholders. Identifiers starting with '_' are kept (reserved for the
    implementation: _Bool, __attribute__...). A text with other characters than the
    plain ones is its own shape: ``(text, [], [])``.
    """
    line = " ".join(text.split())
    if not _PLAIN.fullmatch(line) or "[[" in line.replace(" ", ""):
        return line, [], []
    parts = _WORDS.split(line)
    names: dict[str, str] = {}
    types: dict[str, str] = {}
    for index in range(1, len(parts), 2):
        word = parts[index]
        # Kept: keywords, numbers (first character below 'A'), reserved names ('_'),
        # tags (with a space).
        if word in kept or word[0] < "A" or word[0] == "_" or " " in word:
            continue
        table, spelled, prefix = ((types, _TYPES, TYPE_PLACEHOLDER) if word in typenames
                                  else (names, _NAMES, PLACEHOLDER))
        placeholder = table.get(word)
        if placeholder is None:
            count = len(table)
            placeholder = table[word] = (spelled[count] if count < len(spelled)
                                         else f"{prefix}{count}")
        parts[index] = placeholder
    return "".join(parts), list(names), list(types)


def parse_by_shape(types: Mapping[str, str], entries: Sequence[Entry], *,
                   path: str | None) -> list[tuple[str | None, CType]] | None:
    """What `_cdecl.parse_entries` returns, parsing each shape once; None on any failure.

    [types] and [variables] entries are parsed verbatim (each its own shape); prototypes
    by shape. Same arguments as `_cdecl.parse_entries`; the entries are prechecked.
    """
    from pycparser import c_ast  # type: ignore[import-untyped,unused-ignore]

    kept = keywords()
    typenames = set(_cdecl.STANDARD_TYPES) | set(types)
    shapes: dict[tuple[str, str], int] = {}  # (kind, line) -> index of the shape
    firsts: list[Entry] = []  # one entry per shape, its text the shape's line
    of_entry: list[tuple[int, dict[str, str]]] = []  # shape, placeholder -> real name
    most_types = 0
    for entry in entries:
        if TYPE_PLACEHOLDER in entry.text:  # would read as a type here, not verbatim
            return None
        real: dict[str, str] = {}
        if entry.kind == "function":
            line, names, tnames = shape_of(entry.text, kept, typenames)
            key = ("function", line)
            if names or tnames:
                real = dict(zip(_NAMES, names)) if len(names) <= len(_NAMES) else {
                    f"{PLACEHOLDER}{i}": n for i, n in enumerate(names)}
                real.update(zip(_TYPES, tnames) if len(tnames) <= len(_TYPES) else (
                    (f"{TYPE_PLACEHOLDER}{i}", n) for i, n in enumerate(tnames)))
                most_types = max(most_types, len(tnames))
        else:
            line = entry.text
            key = (entry.kind, line + "\0" + entry.name)  # each [types] entry its own
        index = shapes.get(key)
        if index is None:
            index = shapes[key] = len(firsts)
            firsts.append(_cdecl.Entry(entry.kind, entry.name, line, entry.line))
        of_entry.append((index, real))
    placeholders = [f"{TYPE_PLACEHOLDER}{i}" for i in range(most_types)]
    header = _cdecl._placeholders(types) + [f"typedef int {t};" for t in placeholders]
    source = "\n".join(header + [_cdecl._line_for(first) for first in firsts]) + "\n"
    try:
        with _cdecl._parser_lock:
            ast = _cdecl._get_parser().parse(source, "<libbroker>")
    except Exception:  # noqa: BLE001 - any failure: the exact path diagnoses it
        return None
    by_line: dict[int, list[Any]] = {}
    for node in ast.ext:
        by_line.setdefault(node.coord.line if node.coord else 0, []).append(node)
    # A typedef placeholder converts as a [types] name; its kind is set once renamed.
    shaped_types = {**types, **{t: "int" for t in placeholders}}
    models: list[tuple[str | None, CType]] = []
    used: list[list[tuple[str, ...]]] = []  # per shape: placeholders in result, each param
    try:
        for offset, first in enumerate(firsts):
            nodes = by_line.get(len(header) + 1 + offset, [])
            name, model = _cdecl._convert_entry(
                first, nodes, shaped_types if first.kind == "function" else types, path, c_ast,
                check_names=False)
            models.append((name, model))
            used.append([_used(model.result, [])] + [_used(t, []) for _, t in model.params]
                        if isinstance(model, FuncType) else [])
        renamer = _Renamer(types)
        results: list[tuple[str | None, CType]] = []
        for entry, (index, real) in zip(entries, of_entry):
            name, model = models[index]
            if real:
                name = real.get(name, name) if name is not None else None
                if isinstance(model, FuncType):  # by part: the parts of a shape are shared
                    parts = used[index]
                    model = FuncType(
                        renamer.part(model.result, parts[0], real),
                        [(None if n is None else real.get(n, n), renamer.part(t, u, real))
                         for (n, t), u in zip(model.params, parts[1:])],
                        model.variadic)
                else:
                    model = renamer.renamed(model, real)
            if entry.kind == "function":
                assert isinstance(model, FuncType)
                _cdecl.check_param_names(model, types, SpecError)
            results.append((name, model))
    except SpecError:
        return None
    return results


def _used(ctype: CType, found: list[str]) -> tuple[str, ...]:
    """The placeholders in ``ctype`` (type names, parameter names inside), in order."""
    if isinstance(ctype, Base):
        if ctype.name.startswith(TYPE_PLACEHOLDER):
            found.append(ctype.name)
    elif isinstance(ctype, Pointer):
        _used(ctype.target, found)
    elif isinstance(ctype, Array):
        _used(ctype.element, found)
    elif isinstance(ctype, FuncType):
        _used(ctype.result, found)
        for name, ptype in ctype.params:
            if name is not None:
                found.append(name)
            _used(ptype, found)
    return tuple(found)


class _Renamer:
    """Shape parts with the real names put back; one object per distinct renaming of a
    part, so that prototypes of one shape and the same types share their types."""

    __slots__ = ("_done", "types")

    def __init__(self, types: Mapping[str, str]) -> None:
        self.types = types
        self._done: dict[tuple[int, tuple[str, ...]], CType] = {}

    def part(self, ctype: CType, used: tuple[str, ...], real: dict[str, str]) -> CType:
        if not used:
            return ctype
        # Keyed by the part's identity: the shape models live until the end of the parse.
        key = (id(ctype), tuple([real.get(p, p) for p in used]))
        done = self._done.get(key)
        if done is None:
            done = self._done[key] = self.renamed(ctype, real)
        return done

    def renamed(self, ctype: CType, real: dict[str, str]) -> CType:
        if isinstance(ctype, Base):
            name = real.get(ctype.name)
            if name is None:
                return ctype
            # What _cdecl's converter says of a type name written as it is.
            return Base(name, ctype.quals, "typedef" if name in self.types else "standard")
        if isinstance(ctype, Pointer):
            target = self.renamed(ctype.target, real)
            return ctype if target is ctype.target else Pointer(target, ctype.quals)
        if isinstance(ctype, Array):
            element = self.renamed(ctype.element, real)
            return ctype if element is ctype.element else Array(element, ctype.size)
        if isinstance(ctype, FuncType):
            return FuncType(self.renamed(ctype.result, real),
                            [(None if n is None else real.get(n, n), self.renamed(t, real))
                             for n, t in ctype.params], ctype.variadic)
        return ctype  # a Record is never part of a prototype


__all__ = ["PLACEHOLDER", "TYPE_PLACEHOLDER", "keywords", "parse_by_shape", "shape_of"]
