"""The process registry of tables: the bottom of the table layer.

One capsule per spec digest and one table per (library file, layout digest) per
process, the table index on disk (what a consumer's warm import reads), and which
extension modules imported each table (doctor's "tables"). The dictionaries
themselves live in the plain-C, top-level module `_libbroker_warm`
(`tables_by_spec`, ...), whose `import_table` is what generated headers call: a
warm import replays an entry of the index there without importing any of
libbroker's Python modules (csrc/_libbroker_warm.c). This module names the same objects for the Python side,
replays entries where the compiled path defers (`_from_disk`), and adopts
the tables the compiled path made (`sync`). `_runtime` (the Python entry point
on a miss) and `_tables` (the builder) both call down into this module and
never into each other.
"""

import _libbroker_warm as _warm

from . import _cache, _master
from ._locks import new_rlock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ._types import Library

TABLES_KIND = _warm.TABLES_KIND
#: The shape of a table index entry (`_tables._remember` writes it; _libbroker_warm reads it).
ENTRY_FORMAT = _warm.TABLE_ENTRY_FORMAT
lock = new_rlock()  # re-created in a forked child (_locks)
by_spec: "dict[str, object]" = _warm.tables_by_spec
by_layout: "dict[tuple[Any, ...], object]" = _warm.tables_by_layout
table_library: "dict[int, Library]" = {}
#: table address -> its name, and the extension modules that imported it (doctor's "tables").
table_names: "dict[int, str]" = _warm.table_names
table_consumers: "dict[int, list[str]]" = _warm.table_consumers
_adopted = [0]  # how many of _warm.warm_pending this module has taken in


def entry_kind(spec_digest: str) -> str:
    """The table index entry for *spec_digest* in this environment: one per (spec,
    environment), so programs whose sys.path differ (each script's own directory comes
    first) do not replace each other's verdicts. The name is computed by the same C
    function the warm replay uses (`_libbroker_warm.env_tag`)."""
    return f"{TABLES_KIND}/{spec_digest}-{_warm.env_tag(_cache.env_key())}"


def sync() -> None:
    """Take in the tables the compiled warm path made since the last call: each one's
    Library (adopted by `_loader`) becomes known to `table_library`."""
    pending = _warm.warm_pending
    if _adopted[0] >= len(pending):
        return
    from . import _loader

    with lock:
        for record in pending[_adopted[0]:]:
            library = _loader.adopted(record["identity"])
            if library is not None:
                table_library[record["table"]] = library
        _adopted[0] = len(pending)


def note_consumer(capsule: "Any", module: str) -> None:
    _warm.note_consumer(capsule, module)


def capsule_for(spec_digest: str, build: "Callable[[], object]", request_crc: "int | None" = None,
                layout: "int | None" = None, slots: "list[tuple[str, bool]] | None" = None) -> object:
    """The process's capsule for a spec: in memory, else from the disk index, else built.

    *request_crc*: the CRC-32 of the request a header carries; an entry judged for
    another request text (a header edited by hand) is not replayed. *layout*: the layout
    digest that request names; an entry for another layout (damaged, or written by another
    build) is not replayed either: the header would refuse its table. *slots*: the request's
    (name, required) slots; an entry whose symbols or flags are not those is not replayed
    (another function in a slot, review4 R4-5)."""
    capsule = by_spec.get(spec_digest)
    if capsule is not None:
        return capsule
    with lock:
        sync()
        capsule = by_spec.get(spec_digest)
        if capsule is None:
            capsule = _from_disk(spec_digest, request_crc, layout, slots)
        if capsule is None:
            capsule = build()
        by_spec[spec_digest] = capsule
        return capsule


def slots_match(symbols: "list[bytes]", required: "list[bool]", slots: "list[tuple[str, bool]]") -> bool:
    """True when *symbols* are the *slots*' names with one prefix and one suffix shared by
    all (a spec's or a provider's affixes) and *required* their flags, in order."""
    if len(symbols) != len(slots) or [r for _, r in slots] != list(required):
        return False
    if not slots:
        return True
    first, name = symbols[0].decode("utf-8", "surrogateescape"), slots[0][0]
    at = first.find(name)
    while name and at >= 0:
        pre, post = first[:at], first[at + len(name):]
        if all(s.decode("utf-8", "surrogateescape") == f"{pre}{n}{post}" for s, (n, _) in zip(symbols, slots)):
            return True
        at = first.find(name, at + 1)
    return False


def _from_disk(spec_digest: str, request_crc: "int | None" = None,
               layout: "int | None" = None, slots: "list[tuple[str, bool]] | None" = None) -> object | None:
    # One small file per spec: a consumer's import reads its own entry only.
    entry = _cache.load(entry_kind(spec_digest))
    if entry.get("format") != ENTRY_FORMAT:
        return None  # absent, or written by another version: resolve afresh (and rewrite)
    if not entry or not _entry_shape_ok(entry):
        return None  # absent, or not an entry this version wrote: resolve afresh (and rewrite)
    if request_crc is not None and entry["request_crc"] != request_crc:
        # Judged for another request text, or written without one (`table(spec)`): nothing
        # ties its symbols to this header's slots (review4 R4-5), so it is judged afresh.
        return None
    if layout is not None and entry["layout"] != layout:
        return None  # a table the consumer would refuse: judged afresh (and rewritten)
    if slots is not None and not slots_match(entry["symbols"], entry["required"], slots):
        return None  # another function in a slot: judged afresh (and rewritten)
    try:
        if entry["env"] != _cache.env_key():
            return None
        if not _cache.stamps_valid(entry["stamps"]):
            # Only a sys.path directory changed (a pip install, a file written beside a
            # script) and the same providers are there: the verdict stands, re-stamped, and
            # the next process replays it in C again.
            from ._distinfo import provider_snapshot

            fresh = _cache.refreshed(entry["stamps"], provider_snapshot)
            if fresh is None:
                return None
            entry["stamps"] = fresh
            _cache.store(entry_kind(spec_digest), entry)
        from . import _loader

        if _scope_conflict(entry):
            return None  # the Python rules judge it afresh (and refuse, or reuse the copy)
        files = _judged_files(entry["stamps"])
        for real, ident in files[1:]:
            # The closure, dependencies first, by absolute path and identity: the
            # system loader then binds each DT_NEEDED to the judged copy and never
            # searches (an empty LD_LIBRARY_PATH entry would mean the cwd).
            if not _master.noload(real):
                _loader.dlopen_checked(real, identity=ident)
        library = _loader.load_file(
            entry["path"],
            name=entry["link"],
            origin=entry["origin"],
            soname=entry["soname"],
            version_text=entry["version"],
            judged=True,  # this very file (same identity) was judged when the entry was written
            identity=_judged_identity(entry["stamps"], entry["path"]),
        )
        if library.version_source is None and library.version_text == entry["version"]:
            library.version_source = entry["version_source"] if library.version_text else None
        addresses = _master.lookup_many(library.handle, entry["symbols"])
        for address, required in zip(addresses, entry["required"]):
            if required and not address:
                return None  # the file changed under us: resolve afresh
        return register(library, entry["table"], entry["layout"], entry["signatures"], addresses)
    except Exception:  # noqa: BLE001
        # A stale or foreign cache entry must never break an import: resolve afresh.
        return None


def _scope_conflict(entry: "dict[Any, Any]") -> bool:
    """True when replaying *entry* here would bind other bytes than those judged: an object
    in the global symbol scope defines one of the table's symbols (LD_PRELOAD, an
    RTLD_GLOBAL load since the verdict), or a dependency's DT_NEEDED name is already
    answered by another file (the loader binds by that name, not by our path)."""
    symbols = [s.decode("utf-8", "surrogateescape") for s in entry["symbols"]]
    if _master.global_symbols(symbols, 1):
        return True
    for needed, real in entry["needed"]:
        handle = _master.noload(needed)
        if not handle:
            continue
        info = _master.link_map(handle)
        _master.dlclose(handle)  # the probe's own reference
        if info is None or not info[2]:
            return True  # no file to compare with: let the rules decide
        mapped, judged = _cache.identity(info[2]), _cache.identity(real)
        if mapped is None or judged is None or mapped[:2] != judged[:2]:
            return True
    return False


_ENTRY_TYPES: "dict[str, Any]" = {
    "env": tuple,
    "stamps": list,
    "path": str,
    "link": str,
    "origin": str,
    "symbols": list,
    "required": list,
    "signatures": list,
    "layout": int,
    "table": str,
    "needed": list,
    "request_crc": (int, type(None)),
}


def _entry_shape_ok(entry: "dict[Any, Any]") -> bool:
    """Every field of a table entry has the type `_tables` writes (a corrupt or foreign
    entry of the right outer type must be ignored, not raise TypeError later)."""
    for field, kind in _ENTRY_TYPES.items():
        if not isinstance(entry.get(field), kind):
            return False
    if "version_source" not in entry:
        return False  # written before versions carried their source (design.md 5.2)
    for field in ("soname", "version", "version_source"):
        if not isinstance(entry.get(field), (str, type(None))):
            return False
    symbols, required, signatures = entry["symbols"], entry["required"], entry["signatures"]
    return (
        len(symbols) == len(required) == len(signatures)
        and all(isinstance(s, bytes) for s in symbols)
        and all(isinstance(r, bool) for r in required)
        and all(isinstance(s, str) for s in signatures)
        and all(isinstance(n, list) and len(n) == 2 and all(isinstance(x, str) for x in n)
                for n in entry["needed"])
    )


def _judged_files(stamps: "list[Any]") -> "list[tuple[str, tuple[Any, ...]]]":
    """(real path, identity) of every "@file" stamp: the chosen file, then its closure in load order."""
    files = []
    for kind, stamp in stamps:
        if kind == "@file":
            real, ident = stamp
            if not isinstance(real, str) or not isinstance(ident, tuple):
                raise ValueError("not an entry this version wrote")
            files.append((real, ident))
    return files


def _judged_identity(stamps: "list[Any]", path: str) -> "tuple[Any, ...] | None":
    """The identity recorded for the chosen file in *stamps* (the first "@file" stamp)."""
    for kind, stamp in stamps:
        if kind == "@file":
            return tuple(stamp[1]) if stamp[1] is not None else None
    return None


def register(
    library: "Library", table: str, layout: int, signatures: list[str], addresses: list[int]
) -> object:
    """One table per (library file, layout digest) per process."""
    key = (library.identity, layout, table)
    with lock:
        sync()
        capsule = by_layout.get(key)
        if capsule is None:
            capsule = _master.make_table(
                table, layout, library.path, library.version_text or "", signatures, addresses
            )
            by_layout[key] = capsule
            table_library[_master.table_address(capsule)] = library
            table_names[_master.table_address(capsule)] = table
        return capsule


sync()
