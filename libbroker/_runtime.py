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
#: table address -> its name, and the extension modules that imported it (doctor's "tables").
table_names: dict[int, str] = {}
table_consumers: dict[int, list[str]] = {}


def import_table(
    name: str, spec_digest: str, spec_text: str, module: "str | None" = None
) -> object:
    """The capsule for the spec whose text is *spec_text* (digest *spec_digest*).

    *module*: the importing extension module's name; when None (the generated C
    headers), the module the import system is initialising, if any.
    """

    def build() -> object:
        from ._spec import Spec
        from ._tables import build_table

        return build_table(Spec.from_string(spec_text, path=f"<spec of table {name!r}>"))

    capsule = capsule_for(spec_digest, build)
    if module is None:
        module = _importing_module()
    if module is not None:
        _note_consumer(capsule, module)
    return capsule


def _importing_module() -> "str | None":
    """The extension module whose init function is running, read from the frames of
    importlib's ExtensionFileLoader (exec_module for multi-phase init, as Cython's
    modules use; create_module for single-phase C modules); None outside an import."""
    import sys

    try:
        frame = sys._getframe(2)  # import_table's caller is C: above it, importlib
    except ValueError:
        return None
    for _ in range(12):
        if frame is None:
            return None
        code = frame.f_code.co_name
        if code == "exec_module":
            name = getattr(frame.f_locals.get("module"), "__name__", None)
            return name if isinstance(name, str) else None
        if code == "create_module":
            name = getattr(frame.f_locals.get("spec"), "name", None)
            return name if isinstance(name, str) else None
        frame = frame.f_back
    return None


def _note_consumer(capsule: object, module: str) -> None:
    from . import _master

    address = _master.table_address(capsule)
    with lock:
        consumers = table_consumers.setdefault(address, [])
        if module not in consumers:
            consumers.append(module)


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
            table_names[_master.table_address(capsule)] = table
        return capsule
