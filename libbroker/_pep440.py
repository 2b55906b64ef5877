"""PEP 440 specifier checks for the common case, without importing packaging.

A find or load with a version (``find("z", ">=1.2.11")``) checks a library's version
text against the specifier. packaging costs 5-10 ms to import; the common case is a
few clauses of ``==``, ``!=``, ``<=``, ``>=``, ``<``, ``>``, ``~=`` (``==``/``!=`` with a
trailing ``.*``) over plain release numbers, checked against a plain release number
("1.2.13"). That case is decided here, exactly as packaging decides it (zero padding,
prefix matching, ``~=``); anything else (pre-, post-, dev-releases, epochs, local
versions, ``===``, a version text that is not a plain number) goes to
``packaging.specifiers.SpecifierSet``. tests/test_pep440.py checks both against
packaging on generated cases.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

_OPERATORS = ("~=", "==", "!=", "<=", ">=", "<", ">")  # two-character ones first


def release(text: object) -> tuple[int, ...] | None:
    """The numbers of a plain release ("1.2.13", surrounding blanks allowed), else None."""
    if not isinstance(text, str):
        text = str(text) if text is not None else ""
    parts = text.strip().split(".")
    if not all(p and p.isascii() and p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = max(len(a), len(b))
    return a + (0,) * (n - len(a)), b + (0,) * (n - len(b))


def _clause(text: str) -> tuple[str, tuple[int, ...], bool, str] | None:
    """(operator, release, wildcard, normalized text) of one plain clause, else None."""
    for op in _OPERATORS:
        if text.startswith(op):
            rest = text[len(op):].strip()
            break
    else:
        return None
    shown = op + rest  # as packaging prints a clause: the version as written
    wildcard = rest.endswith(".*")
    if wildcard:
        if op not in ("==", "!="):
            return None
        rest = rest[:-2]
    if rest != rest.strip():
        return None  # "== 1.2 .*": packaging's own grammar decides
    numbers = release(rest)
    if numbers is None or (op == "~=" and len(numbers) < 2):
        return None
    return op, numbers, wildcard, shown


def _holds(op: str, spec: tuple[int, ...], wildcard: bool, version: tuple[int, ...]) -> bool:
    if wildcard:  # prefix match of the padded version (packaging's _compare_equal with .*)
        head = (version + (0,) * len(spec))[: len(spec)]
        return (head == spec) == (op == "==")
    v, s = _padded(version, spec)
    if op == "==":
        return v == s
    if op == "!=":
        return v != s
    if op == "<=":
        return v <= s
    if op == ">=":
        return v >= s
    if op == "<":
        return v < s
    if op == ">":
        return v > s
    # ~=: at least the version, and the same release but for its last number.
    return v >= s and _holds("==", spec[:-1], True, version)


class Specifier:
    """A specifier set of plain clauses; `contains` and `str` as packaging's SpecifierSet."""

    __slots__ = ("_clauses", "_text")

    def __init__(self, text: str, clauses: list[tuple[str, tuple[int, ...], bool, str]]) -> None:
        self._text = text
        self._clauses = clauses

    def __str__(self) -> str:
        return ",".join(sorted(c[3] for c in self._clauses))

    def __repr__(self) -> str:
        return f"<Specifier({str(self)!r})>"

    def contains(self, version: object, prereleases: bool | None = None) -> bool:
        """True when *version* (text, or a packaging Version) satisfies every clause."""
        numbers = release(version)
        if numbers is None:  # not a plain release: packaging's rules
            return _packaging_set(self._text).contains(version, prereleases=prereleases)  # type: ignore[arg-type]
        return all(_holds(op, spec, wild, numbers) for op, spec, wild, _ in self._clauses)


def _packaging_set(text: str) -> SpecifierSet:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(text)


def parse(text: str) -> Specifier | None:
    """The plain specifier set *text*, or None when packaging must parse it."""
    clauses = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        clause = _clause(part)
        if clause is None:
            return None
        clauses.append(clause)
    if not clauses:
        return None
    return Specifier(text, clauses)


__all__ = ["Specifier", "parse", "release"]
