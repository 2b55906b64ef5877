"""What a generated header hands the runtime: a spec already parsed, as plain lines.

A consumer's cold import must not parse C declarations (pycparser) or TOML
(tomllib): the generator did both when it wrote the header. `render` writes
what building a table needs (the library section, every slot's name, kind,
required flag and normalised signature, the layout digest) one field per line;
`parse` reads it back into a `Request`, which `_tables.build_table` uses like
a `Spec`. Hand-written, not json (json imports `re`): docs/decisions.md.

Format (UTF-8, fields separated by TAB, no field contains TAB or newline)::

    libbroker-request 1
    name        zlib
    digest      <spec digest>
    layout      <layout digest, decimal>
    names       z   zlib1   zlib
    version     >=1.2.11                (empty: any version)
    version-function  zlibVersion       (empty: none)
    packages    ...                     (zero or more)
    symbol-prefix / symbol-suffix
    slot        r|o  function|variable  <name>: <normalised type>
"""

from __future__ import annotations

from ._errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._spec import Spec

MAGIC = "libbroker-request 1"
_MAX_SLOTS = 1 << 16  # a header is compiled C; anything bigger is not one of ours
_SINGLE = ("name", "digest", "layout", "version", "version-function", "symbol-prefix", "symbol-suffix")


class Slot:
    """One slot of a request: what `_tables` reads of a spec's `Function`."""

    __slots__ = ("kind", "name", "required", "signature")

    def __init__(self, name: str, required: bool, kind: str, signature: str) -> None:
        self.name = name
        self.required = required
        self.kind = kind
        self.signature = signature


class Request:
    """A spec as a generated header carries it: the attributes `_tables.build_table` and
    `resolve_spec` read (`name`, `names`, `version`, `version_function`, `packages`,
    `symbol_prefix`, `symbol_suffix`, `functions`, `signatures`, `layout_digest`,
    `spec_digest`, `path`)."""

    def __init__(self, fields: dict[str, list[str]], slots: list[Slot], where: str) -> None:
        self.path = where
        #: CRC-32 of the text as the header carries it, set by `_runtime` (which computed it
        #: to look the entry up): the table index entry records it, so a header edited by
        #: hand is judged afresh, never served another's verdict.
        self.text_crc: int | None = None
        self.name = fields["name"][0]
        self.spec_digest = fields["digest"][0]
        self.layout_digest = int(fields["layout"][0])
        self.names = fields["names"]
        self.version = fields["version"][0] or None
        self.version_function = fields["version-function"][0] or None
        self.packages = fields.get("packages", [])
        self.symbol_prefix = fields["symbol-prefix"][0]
        self.symbol_suffix = fields["symbol-suffix"][0]
        self.functions = slots
        self.signatures = [slot.signature for slot in slots]

    def __repr__(self) -> str:
        return f"<Request {self.name!r}: {len(self.functions)} slots>"


def render(spec: Spec) -> str:
    """The request text for *spec* (deterministic; ends with a newline)."""
    lines = [
        MAGIC,
        _line("name", spec.name),
        _line("digest", spec.spec_digest),
        _line("layout", str(spec.layout_digest)),
        _line("names", *spec.names),
        _line("version", spec.version or ""),
        _line("version-function", spec.version_function or ""),
        _line("packages", *spec.packages),
        _line("symbol-prefix", spec.symbol_prefix),
        _line("symbol-suffix", spec.symbol_suffix),
    ]
    for fn in spec.functions:
        lines.append(_line("slot", "r" if fn.required else "o", fn.kind, fn.signature))
    return "\n".join(lines) + "\n"


def _line(key: str, *values: str) -> str:
    for value in values:
        if "\t" in value or "\n" in value or "\r" in value:
            raise SpecError(f"{key} {value!r} contains a tab or a line break; a generated header "
                            "cannot carry it")
    return "\t".join((key, *values))


def is_request(text: str) -> bool:
    return text.startswith(MAGIC + "\n")


def slots_of(text: str) -> list[tuple[str, bool]]:
    """(name, required) of each slot line of a request, in order, read without parsing the
    rest (the registry compares them with a cached entry's symbols and flags)."""
    found = []
    for line in text.split("\n"):
        if line.startswith("slot\t"):
            _, flag, _, signature = (line.split("\t") + ["", "", ""])[:4]
            found.append((signature.partition(": ")[0], flag == "r"))
    return found


def layout_of(text: str) -> int | None:
    """The layout digest a request names (its "layout" line), None when it names none:
    read without parsing the request (the registry compares it with a cached entry's)."""
    at = text.find("\nlayout\t")
    if at < 0:
        return None
    value = text[at + 8:text.find("\n", at + 8) if "\n" in text[at + 8:] else len(text)]
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 20 else None


def parse(text: str, where: str) -> Request:
    """The Request in *text* (from `render`); SpecError naming *where* and the line otherwise."""

    def bad(number: int, why: str) -> SpecError:
        return SpecError(f"the table request embedded in a generated header is damaged: {why}; "
                         "fix: regenerate the header with `libbroker generate` and rebuild the "
                         "extension", path=where, line=number)

    lines = text.split("\n")
    if lines[0] != MAGIC:
        raise bad(1, f"expected {MAGIC!r} on the first line, found {lines[0][:40]!r}")
    if lines[-1] != "":
        raise bad(len(lines), "it does not end with a newline (cut short?)")
    fields: dict[str, list[str]] = {}
    slots: list[Slot] = []
    for number, line in enumerate(lines[1:-1], start=2):
        key, *values = line.split("\t")
        if key == "slot":
            if len(values) != 3 or values[0] not in ("r", "o") or values[1] not in ("function", "variable"):
                raise bad(number, f"expected 'slot<TAB>r|o<TAB>function|variable<TAB>NAME: TYPE', "
                                  f"found {line[:80]!r}")
            name, sep, _ = values[2].partition(": ")
            if not sep or not name.isidentifier():
                raise bad(number, f"expected a signature 'NAME: TYPE', found {values[2][:80]!r}")
            if len(slots) >= _MAX_SLOTS:
                raise bad(number, f"more than {_MAX_SLOTS} slots")
            slots.append(Slot(name, values[0] == "r", values[1], values[2]))
        elif key in fields:
            raise bad(number, f"{key!r} appears twice")
        elif key in _SINGLE:
            if len(values) != 1:
                raise bad(number, f"expected one value for {key!r}, found {len(values)}")
            fields[key] = values
        elif key in ("names", "packages"):
            fields[key] = values
        else:
            raise bad(number, f"unknown field {key!r}")
    missing = [k for k in (*_SINGLE, "names") if k not in fields]
    if missing:
        raise bad(len(lines), f"missing {', '.join(missing)}")
    layout = fields["layout"][0]
    if not fields["names"] or not (layout.isascii() and layout.isdigit() and len(layout) <= 20
                                   and int(layout) < 1 << 64):
        raise bad(len(lines), f"no link names, or a layout digest that is not a 64-bit number "
                              f"in ASCII digits (found {layout[:40]!r})")
    return Request(fields, slots, where)
