"""Prototypes that differ only in their names parse once (the fast path of parsing).

pycparser 3 costs about 0.4 ms per prototype, so a 5,000-function spec would
spend seconds in the C parser although most prototypes repeat a few shapes
(``int NAME(int NAME, const double *NAME)``). Here every prototype's own
identifiers (function and parameter names: not keywords, not type names, not
struct tags) are renamed ``libbroker__n0``, ``libbroker__n1``... in order of
first appearance; each distinct renamed text ("shape") is parsed once, in one
translation unit, converted once, and each prototype gets that model with its
own names put back.

Why the result is the one parsing every prototype verbatim gives: the C lexer
and pycparser's parser treat two identifiers differently only when one is a
keyword or a typedef name in scope. Keywords and type names are never renamed;
a renamed name is a typedef nowhere (the translation unit declares typedefs only
for the type names, and an entry that declares one fails conversion, which
sends the spec to the exact path); renaming is one-to-one per prototype, so
repeated names (a parameter declared twice) stay repeated. A prototype with
any character outside ``[A-Za-z0-9_ *(),[].]`` keeps its text (its own shape).

This path only ever answers for a spec that fully succeeds: on any parse or
conversion failure it returns None and `_cdecl.parse_entries` parses every
entry verbatim, so each error message and line number is exactly the one the
exact path reports (errors are rare; their diagnosis may take seconds at 5,000).
"""

from __future__ import annotations

import re

from . import _cdecl
from ._cdecl import Array, FuncType, Pointer
from ._errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ._cdecl import CType, Entry

#: Prefix of the placeholder names; a [types] name cannot start with 'libbroker_'.
PLACEHOLDER = "libbroker__n"
# Tokens whose text matters to the renaming (split out, at odd indices): preprocessing
# numbers (kept whole, so that the 'x' of 0x10 is never taken for a name), a
# struct/union/enum tag (kept: it is checked against [types]) and identifiers.
_WORDS = re.compile(r"(\.?[0-9](?:[eEpP][+-]|[.\w])*|(?:struct|union|enum) +[A-Za-z_]\w*"
                    r"|[A-Za-z_]\w*)")
_NAMES = [f"{PLACEHOLDER}{i}" for i in range(32)]
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


def shape_of(text: str, kept: frozenset[str] | set[str]) -> tuple[str, list[str]]:
    """The renamed line of prototype ``text`` and its names in placeholder order.

    ``kept``: words never renamed (keywords, type names). Identifiers starting with
    '_' are kept too (reserved for the implementation: _Bool, __attribute__...).
    A text with other characters than the plain ones is its own shape: ``(text, [])``.
    """
    line = " ".join(text.split())
    if not _PLAIN.fullmatch(line) or "[[" in line.replace(" ", ""):
        return line, []
    parts = _WORDS.split(line)
    names: dict[str, str] = {}
    for index in range(1, len(parts), 2):
        word = parts[index]
        # Kept: keywords, type names, numbers (first character below 'A'), reserved
        # names ('_'), tags (with a space).
        if word in kept or word[0] < "A" or word[0] == "_" or " " in word:
            continue
        placeholder = names.get(word)
        if placeholder is None:
            count = len(names)
            placeholder = names[word] = (_NAMES[count] if count < len(_NAMES)
                                         else f"{PLACEHOLDER}{count}")
        parts[index] = placeholder
    return "".join(parts), list(names)


def parse_by_shape(types: Mapping[str, str], entries: Sequence[Entry], *,
                   path: str | None) -> list[tuple[str | None, CType]] | None:
    """What `_cdecl.parse_entries` returns, parsing each shape once; None on any failure.

    [types] and [variables] entries are parsed verbatim (each its own shape); prototypes
    by shape. Same arguments as `_cdecl.parse_entries`; the entries are prechecked.
    """
    from pycparser import c_ast  # type: ignore[import-untyped,unused-ignore]

    kept = keywords() | set(_cdecl.STANDARD_TYPES) | set(types)
    shapes: dict[tuple[str, str], int] = {}  # (kind, line) -> index of the shape
    firsts: list[Entry] = []  # one entry per shape, its text the shape's line
    of_entry: list[tuple[int, list[str]]] = []
    for entry in entries:
        if entry.kind == "function":
            line, names = shape_of(entry.text, kept)
            key = ("function", line)
        else:
            line, names = entry.text, []
            key = (entry.kind, line + "\0" + entry.name)  # each [types] entry its own
        index = shapes.get(key)
        if index is None:
            index = shapes[key] = len(firsts)
            firsts.append(_cdecl.Entry(entry.kind, entry.name, line, entry.line))
        of_entry.append((index, names))
    header = _cdecl._placeholders(types)
    source = "\n".join(header + [_cdecl._line_for(first) for first in firsts]) + "\n"
    try:
        with _cdecl._parser_lock:
            ast = _cdecl._get_parser().parse(source, "<libbroker>")
    except Exception:  # noqa: BLE001 - any failure: the exact path diagnoses it
        return None
    by_line: dict[int, list[Any]] = {}
    for node in ast.ext:
        by_line.setdefault(node.coord.line if node.coord else 0, []).append(node)
    models: list[tuple[str | None, CType]] = []
    named: list[list[bool]] = []  # per shape: which parameters have names inside
    try:
        for offset, first in enumerate(firsts):
            nodes = by_line.get(len(header) + 1 + offset, [])
            name, model = _cdecl._convert_entry(first, nodes, types, path, c_ast,
                                                check_names=False)
            models.append((name, model))
            named.append([_has_names(t) for _, t in model.params]
                         if isinstance(model, FuncType) else [])
        results: list[tuple[str | None, CType]] = []
        for entry, (index, names) in zip(entries, of_entry):
            name, model = models[index]
            if names:
                real = dict(zip(_NAMES, names)) if len(names) <= len(_NAMES) else {
                    f"{PLACEHOLDER}{i}": n for i, n in enumerate(names)}
                name = real.get(name, name) if name is not None else None
                if isinstance(model, FuncType):  # the top level by hand: the common case
                    result = model.result
                    model = FuncType(
                        _renamed(result, real) if _has_names(result) else result,
                        [(None if n is None else real.get(n, n), _renamed(t, real) if deep else t)
                         for (n, t), deep in zip(model.params, named[index])],
                        model.variadic)
                else:
                    model = _renamed(model, real)
            if entry.kind == "function":
                assert isinstance(model, FuncType)
                _cdecl.check_param_names(model, types, SpecError)
            results.append((name, model))
    except SpecError:
        return None
    return results


def _has_names(ctype: CType) -> bool:
    """Whether a function type inside ``ctype`` names a parameter."""
    while isinstance(ctype, (Pointer, Array)):
        ctype = ctype.target if isinstance(ctype, Pointer) else ctype.element
    if not isinstance(ctype, FuncType):
        return False
    return _has_names(ctype.result) or any(
        n is not None or _has_names(t) for n, t in ctype.params)


def _renamed(ctype: CType, real: dict[str, str]) -> CType:
    """``ctype`` with the placeholder parameter names replaced (shared where unnamed)."""
    if isinstance(ctype, FuncType):
        result = _renamed(ctype.result, real)
        params = [(None if n is None else real.get(n, n), _renamed(t, real))
                  for n, t in ctype.params]
        if result is ctype.result and all(
            new[0] == old[0] and new[1] is old[1] for new, old in zip(params, ctype.params)
        ):
            return ctype  # nothing named inside (e.g. a callback type without names)
        return FuncType(result, params, ctype.variadic)
    if isinstance(ctype, Pointer):
        target = _renamed(ctype.target, real)
        return ctype if target is ctype.target else Pointer(target, ctype.quals)
    if isinstance(ctype, Array):
        element = _renamed(ctype.element, real)
        return ctype if element is ctype.element else Array(element, ctype.size)
    return ctype  # Base; a Record is never part of a prototype


__all__ = ["PLACEHOLDER", "keywords", "parse_by_shape", "shape_of"]
