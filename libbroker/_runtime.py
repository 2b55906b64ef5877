"""What a consumer's import runs: `import_table`, called by the generated headers.

Warm path: the in-process registry, then the on-disk table index (validated by
directory mtimes, the config file and the library file's identity), then a
`dlopen` + one C loop of `dlsym`. Only a miss falls back to `_tables.table`,
which parses the spec (tomllib, pycparser, packaging). Keep this module's
imports light.
"""

# _thread, not threading: threading pulls functools and collections (about 2 ms
# in a fresh process) onto a consumer's import path; the lock is the same C type.
import _thread

from . import _cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ._types import Library

TABLES_KIND = "tables"
lock = _thread.RLock()
by_spec: dict[str, object] = {}
by_layout: dict[tuple, object] = {}
table_library: "dict[int, Library]" = {}


def import_table(name: str, spec_digest: str, spec_text: str) -> object:
    """The capsule for the spec whose text is *spec_text* (digest *spec_digest*)."""

    def build() -> object:
        from ._spec import Spec
        from ._tables import build_table

        return build_table(Spec.from_string(spec_text, path=f"<spec of table {name!r}>"))

    return capsule_for(spec_digest, build)


def capsule_for(spec_digest: str, build: "Callable[[], object]") -> object:
    """The process's capsule for a spec: in memory, else from the disk index, else built."""
    capsule = by_spec.get(spec_digest)
    if capsule is not None:
        return capsule
    with lock:
        capsule = by_spec.get(spec_digest)
        if capsule is None:
            capsule = _from_disk(spec_digest)
        if capsule is None:
            capsule = build()
        by_spec[spec_digest] = capsule
        return capsule


def _from_disk(spec_digest: str) -> object | None:
    # One small file per spec: a consumer's import reads its own entry only.
    entry = _cache.load(f"{TABLES_KIND}/{spec_digest}")
    if not entry:
        return None
    try:
        if entry["env"] != _cache.env_key() or not _cache.stamps_valid(entry["stamps"]):
            return None
        from . import _loader, _master

        library = _loader.load_file(
            entry["path"],
            name=entry["link"],
            origin=entry["origin"],
            soname=entry["soname"],
            version_text=entry["version"],
            judged=True,  # this very file (same identity) was judged when the entry was written
        )
        if not len(entry["symbols"]) == len(entry["required"]) == len(entry["signatures"]):
            return None  # not an entry this version wrote
        addresses = _master.lookup_many(library.handle, entry["symbols"])
        for address, required in zip(addresses, entry["required"]):
            if required and not address:
                return None  # the file changed under us: resolve afresh
        return register(library, entry["table"], entry["layout"], entry["signatures"], addresses)
    except Exception:
        # A stale or foreign cache entry must never break an import: resolve afresh.
        return None


def register(
    library: "Library", table: str, layout: int, signatures: list[str], addresses: list[int]
) -> object:
    """One table per (library file, layout digest) per process."""
    key = (library.identity, layout, table)
    with lock:
        capsule = by_layout.get(key)
        if capsule is None:
            from . import _master

            capsule = _master.make_table(
                table, layout, library.path, library.version_text or "", signatures, addresses
            )
            by_layout[key] = capsule
            table_library[_master.table_address(capsule)] = library
        return capsule
