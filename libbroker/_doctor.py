"""`libbroker doctor` and `libbroker.report()`: what is mapped in this process.

Lists every shared object the dynamic loader has mapped, says where each came
from (libbroker, a Python extension, a wheel, the environment, the system) and
which installed distribution owns it, and groups copies of the same library.

Two copies are "the same library" when their sonames reduce to one stem
(``libz.so.1``, ``libz.so.1.2.13`` and auditwheel's ``libz-a1b2c3d4.so.1``) or
when they export one family's identifying symbol under any prefix or suffix,
the way threadpoolctl tells OpenBLAS builds apart from the rest: numpy's
``libscipy_openblas64_-*.so`` and scipy-openblas32's ``libscipy_openblas.so``
both export ``*openblas_get_config*`` and are one group.

Cold path: imports freely.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# Identifying symbols (matched as substrings, so prefixed/suffixed builds such
# as scipy_openblas_get_config64_ count) -> family name.
_SYMBOL_FAMILIES = (
    ("openblas_get_config", "openblas"),
    ("bli_info_get_version_str", "blis"),
    ("omp_get_max_threads", "openmp"),  # libgomp, libiomp5, libomp (LLVM)
)

_WHY = {
    "openblas": "several BLAS thread pools oversubscribe the CPU and ignore each other's settings",
    "openmp": "two OpenMP runtimes in one process can deadlock or crash (see threadpoolctl's "
    "notes on libgomp vs libiomp)",
    "blis": "several BLAS thread pools oversubscribe the CPU",
}


def _loaded_paths() -> list[str]:
    """Paths of the shared objects mapped in this process, in load order.

    The master module's dl_iterate_phdr is authoritative; /proc/self/maps is
    the fallback when the extension is not built, and it also lists non-ELF
    mappings (locale archive...), hence the magic check.
    """
    try:
        from ._master import loaded_objects
    except ImportError:
        pass
    else:
        return [p for p, _ in loaded_objects() if p and os.path.isabs(p)]
    paths: list[str] = []
    seen: set[str] = set()
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.readlines()
    except OSError:
        return []
    exe = os.path.realpath("/proc/self/exe")
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        path = fields[5].rstrip("\n")
        if path in seen or path == exe or path.endswith(" (deleted)"):
            continue
        seen.add(path)
        try:
            with open(path, "rb") as obj:
                if obj.read(4) != b"\x7fELF":
                    continue
        except OSError:
            continue
        paths.append(path)
    return paths


def _libbroker_loaded() -> set[str]:
    # Not imported: libbroker loaded nothing in this process (and importing it would cost).
    loader = sys.modules.get(f"{__package__}._loader")
    if loader is None:
        return set()
    try:
        return {os.path.realpath(lib.path) for lib in loader.loaded()}
    except Exception:  # noqa: BLE001 - a half-initialised loader must not break the report
        return set()


def _site_dirs() -> list[str]:
    import site

    dirs: list[str] = []
    candidates: list[str] = []
    try:
        candidates.extend(site.getsitepackages())
    except AttributeError:  # old virtualenv's site.py
        pass
    user = getattr(site, "getusersitepackages", None)
    if user is not None:
        candidates.append(user())
    candidates.extend(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    for d in candidates:
        real = os.path.realpath(d)
        if os.path.isdir(real) and real not in dirs:
            dirs.append(real)
    return dirs


def _under(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip(os.sep) + os.sep)


# Who owns which mapped file, cached per question: key (site dirs, wanted real paths) ->
# (stamps, owners). Reading every distribution's RECORD costs ~15 ms; the answer depends
# only on the site directories' entries (`_cache.dir_stamp`: an install or removal changes
# them), each RECORD read and each METADATA a name came from (stamped the same way).
_OWNERS_KIND = "doctor-owners"
_OWNERS_LIMIT = 32


def _record_owners(site_dirs: Iterable[str], wanted: set[str]) -> dict[str, str]:
    """Map each wanted real path to the distribution whose RECORD lists it (cached, see above)."""
    from . import _cache

    site_dirs = list(site_dirs)
    key = (tuple(site_dirs), tuple(sorted(wanted)))
    cached = _cache.load(_OWNERS_KIND)
    entry = cached.get(key)
    if (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in entry[1].items())
            and _cache.stamps_valid(entry[0])):
        return entry[1]
    import time

    recent = time.time_ns() - _RACY_NS
    inputs: list[str] = []
    owners = _read_record_owners(site_dirs, wanted, inputs)
    stamps = [(path, _cache.dir_stamp(path)) for path in inputs]
    # `dir_stamp`: (inode, mtime, ctime, mode, owner), or -1 for a missing file.
    if any(isinstance(s, tuple) and s[2] >= recent for _, s in stamps):
        return owners  # changed within a clock tick: a second change could go unseen
    if len(cached) >= _OWNERS_LIMIT:
        cached = {}
    cached[key] = (stamps, owners)
    _cache.store(_OWNERS_KIND, cached)
    return owners


def _read_record_owners(site_dirs: Iterable[str], wanted: set[str], inputs: list[str]) -> dict[str, str]:
    """`_record_owners` from the files; *inputs* receives every directory and file read."""
    import csv

    owners: dict[str, str] = {}
    for site_dir in site_dirs:
        # RECORD rows are paths relative to the site dir, '/'-separated.
        relative = {os.path.relpath(p, site_dir).replace(os.sep, "/"): p for p in wanted if _under(p, site_dir)}
        if not relative:
            continue
        inputs.append(site_dir)
        try:
            names = sorted(os.listdir(site_dir))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            info_dir = os.path.join(site_dir, name)
            record = os.path.join(info_dir, "RECORD")
            inputs.append(record)
            try:
                with open(record, newline="", encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError):
                continue
            # A substring test first: most RECORDs name none of the files,
            # and parsing every row of every RECORD costs ~100 ms.
            if not any(rel in text for rel in relative):
                continue
            try:
                rows = list(csv.reader(text.splitlines()))
            except csv.Error:
                continue
            hits = [relative[row[0]] for row in rows if row and row[0] in relative]
            if hits:
                inputs.append(os.path.join(info_dir, "METADATA"))
                dist = _dist_name(info_dir, name)
                for full in hits:
                    owners.setdefault(full, dist)
    return owners


def _dist_name(info_dir: str, dirname: str) -> str:
    # METADATA's Name keeps the project's spelling (scipy-openblas32), which the
    # directory name normalises away (scipy_openblas32-0.3...dist-info).
    try:
        with open(os.path.join(info_dir, "METADATA"), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Name:"):
                    return line[5:].strip()
                if not line.strip():
                    break
    except OSError:
        pass
    return dirname[: -len(".dist-info")].split("-")[0]


def _environment_dirs() -> list[str]:
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    for var in ("CONDA_PREFIX", "VIRTUAL_ENV"):
        if os.environ.get(var):
            prefixes.add(os.environ[var])
    # A system Python's prefix is /usr: everything would be "environment".
    return sorted({os.path.realpath(p) for p in prefixes} - {"/", "/usr", "/usr/local"})


# Source and byte-code files: run by the interpreter, never mapped by the dynamic loader.
_SOURCE_SUFFIXES = (".py", ".pyc", ".pyw", ".pyo")


def _module_files() -> set[str]:
    """Real paths of the imported modules' files that the dynamic loader can have mapped
    (extension modules): a source or byte-code file never is, and resolving the hundreds
    of them numpy imports was a third of the report's time."""
    files = set()
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if isinstance(f, str) and not f.endswith(_SOURCE_SUFFIXES):
            files.add(os.path.realpath(f))
    return files


def _exports_init(real: str, functions: frozenset[str]) -> bool:
    # EXTENSION_SUFFIXES contains a bare ".so", so the suffix alone would call
    # every vendored library an extension; the PyInit_<name> export decides
    # (or the file being an imported module's, `_module_files`).
    return "PyInit_" + os.path.basename(real).split(".")[0] in functions


# Per-file facts doctor needs from each mapped object, cached on disk by the file's identity
# (`_cache.identity`: device, inode, size, mtime, ctime, mode, owner): reading every export of
# numpy's 30 mapped objects was most of `doctor`'s time, and the facts change only with the file.
# Entry: real path -> (identity, soname, unreadable reason, family by identifying symbol,
# exports PyInit_<stem>).
_FACTS_KIND = "doctor-facts"
# A file changed twice within one tick of the kernel's coarse clock keeps its identity (the
# "racy git" problem): what was read from a file changed this recently is not cached.
_RACY_NS = 50_000_000
_FACTS_LIMIT = 4096  # entries; a larger file is started afresh (bounded, like every cache kind)
Facts = tuple["str | None", "str | None", "str | None", bool]


def _read_facts(real: str) -> Facts:
    """(soname, unreadable reason, family, exports PyInit_<stem>) read from the file itself."""
    from ._binary import InvalidBinaryError, read_binary

    try:
        info = read_binary(real)
    except InvalidBinaryError as exc:
        return (None, exc.reason, None, False)
    functions: frozenset[str] = info.functions
    return (info.soname, None, _family(functions), _exports_init(real, functions))


def _cached_facts(entry: object, ident: object) -> Facts | None:
    """The facts of a cache entry recorded for identity *ident*, or None: another identity,
    or a shape `object_facts` does not store (a corrupt or foreign file)."""
    if (ident is not None and isinstance(entry, tuple) and len(entry) == 5 and entry[0] == ident
            and all(v is None or isinstance(v, str) for v in entry[1:4])
            and isinstance(entry[4], bool)):
        return (entry[1], entry[2], entry[3], entry[4])
    return None


def object_facts(reals: Iterable[str]) -> dict[str, Facts]:
    """Real path -> (soname, unreadable reason or None, family by identifying symbol
    (`_SYMBOL_FAMILIES`) or None, whether it exports ``PyInit_<stem>``), for each file.

    Read with `_binary.read_binary` (never loading), or taken from the disk cache when the
    file's identity is the one recorded with the facts. A file whose identity changed while
    it was read is reported but not cached. Never raises for an unreadable file.
    """
    import time

    from . import _cache

    recent = time.time_ns() - _RACY_NS
    cached = _cache.load(_FACTS_KIND)
    result: dict[str, Facts] = {}
    fresh: dict[str, object] = {}
    for real in reals:
        ident = _cache.identity(real)
        known = _cached_facts(cached.get(real), ident)
        if known is not None:
            result[real] = known
            continue
        facts = result[real] = _read_facts(real)
        # Not kept when changed while read, or so recently (ctime) that a second change in
        # the same clock tick would leave the identity as it is.
        if ident is not None and _cache.identity(real) == ident and ident[4] < recent:
            fresh[real] = (ident, *facts)
    if fresh:
        if len(cached) + len(fresh) > _FACTS_LIMIT:
            cached = {}
        cached.update(fresh)
        _cache.store(_FACTS_KIND, cached)
    return result


def _origin(real: str, is_extension: bool, ours: set[str], site_dirs: list[str], env_dirs: list[str]) -> str:
    if real in ours:
        return "libbroker"
    if is_extension:
        return "python-extension"
    if any(_under(real, d) for d in site_dirs):
        return "package"
    if any(_under(real, d) for d in env_dirs):
        return "environment"
    return "system"


def soname_stem(name: str) -> str:
    """``libz.so.1.2.13`` / ``libz-a1b2c3d4.so.1`` -> ``libz``: the library's
    identity with version tails and auditwheel/delvewheel hash tags removed."""
    base = os.path.basename(name)
    cut = base.find(".so")
    if cut > 0 and (len(base) == cut + 3 or base[cut + 3] == "."):
        base = base[:cut]
    parts = base.split("-")
    while len(parts) > 1 and _is_hash(parts[-1]):
        parts.pop()
    return "-".join(parts)


def _is_hash(part: str) -> bool:
    return len(part) >= 8 and all(c in "0123456789abcdef" for c in part)


def _family(functions: frozenset[str]) -> str | None:
    for marker, family in _SYMBOL_FAMILIES:
        if marker in functions or any(marker in f for f in functions):
            return family
    return None


def _libbroker_closures() -> dict[str, list[dict[str, str]]]:
    """real path -> closure (load order) of each library libbroker loaded.

    The closure recorded when it was loaded, else resolved now (every
    dependency is then "mapped", which is what serves it).
    """
    loader = sys.modules.get(f"{__package__}._loader")
    if loader is None:
        return {}
    from ._closure import resolve_closure

    result: dict[str, list[dict[str, str]]] = {}
    for library in loader.loaded():
        real = os.path.realpath(library.path)
        deps = list(getattr(library, "dependencies", None) or resolve_closure(real).dependencies)
        result[real] = [d.as_dict() for d in deps]
    return result


def tables() -> list[dict[str, object]]:
    """Every table made in this process: ``{"name", "library" (path), "consumers"}``,
    consumers being the extension modules that imported it (recorded by
    ``_runtime.import_table`` into ``_registry``), in import order."""
    if "_libbroker_warm" not in sys.modules:
        return []  # no table can exist: every table is built by _libbroker_warm
    # The master's warm path makes tables without importing _registry; sync adopts them.
    from . import _registry as runtime

    runtime.sync()
    found: list[dict[str, object]] = []
    for address, library in list(runtime.table_library.items()):
        found.append({
            "name": runtime.table_names.get(address),
            "library": library.path,
            "consumers": list(runtime.table_consumers.get(address, [])),
        })
    return sorted(found, key=lambda t: (str(t["name"]), str(t["library"])))


def report(baseline: Iterable[str] | None = None) -> dict[str, object]:
    """Everything `libbroker doctor --json` prints, for this process.

    ``baseline``: when given, the paths mapped before doctor started its own work;
    what is mapped besides them (by doctor's own imports) is left out.
    """
    import libbroker

    from ._binary import host_binary, host_glibc

    host = host_binary()
    glibc = host_glibc()
    try:
        from ._config import config_summary
    except ImportError:
        config: dict[str, object] = {}
    else:
        try:
            config = config_summary()
        except Exception as exc:  # noqa: BLE001 - a broken config file must not hide the rest
            config = {"error": f"{type(exc).__name__}: {exc}"}

    ours = _libbroker_loaded()
    module_files = _module_files()
    site_dirs = _site_dirs()
    env_dirs = _environment_dirs()

    mapped: list[tuple[str, str]] = []  # (path as mapped, real path), first mapping of each file
    seen: set[str] = set()
    wanted = None if baseline is None else set(baseline)
    for path in _loaded_paths():
        if wanted is not None and path not in wanted:
            continue
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            mapped.append((path, real))
    facts = object_facts([real for _, real in mapped])

    objects: list[dict[str, object]] = []
    for path, real in mapped:
        soname, error, family, exports_init = facts[real]
        entry: dict[str, object] = {"path": real, "soname": soname, "family": None}
        if real != path:
            entry["loaded_as"] = path
        if error is not None:
            entry["error"] = error
        origin = _origin(real, exports_init or real in module_files, ours, site_dirs, env_dirs)
        if family is None and origin != "python-extension":
            # Extension modules share no soname namespace: two packages may
            # each have a `_utils` module without any conflict.
            family = soname_stem(str(entry["soname"] or real))
        entry["family"] = family
        entry["origin"] = origin
        entry["distribution"] = None
        objects.append(entry)

    closures = _libbroker_closures()
    for o in objects:
        if o["origin"] == "libbroker":
            o["dependencies"] = closures.get(str(o["path"]), [])

    owners = _record_owners(site_dirs, {str(o["path"]) for o in objects if o["origin"] != "system"})
    for o in objects:
        o["distribution"] = owners.get(str(o["path"]))

    groups: dict[str, list[dict[str, object]]] = {}
    for o in objects:
        if o["family"]:
            groups.setdefault(str(o["family"]), []).append(o)
    duplicates: list[list[str]] = []
    warnings: list[str] = []
    for family, members in groups.items():
        if len(members) < 2:
            continue
        duplicates.append([str(m["path"]) for m in members])
        where = "; ".join(
            f"{m['path']}" + (f" (from {m['distribution']})" if m["distribution"] else f" ({m['origin']})")
            for m in members
        )
        why = _WHY.get(family, "each copy keeps its own state and callers may bind to either")
        warnings.append(
            f"{len(members)} copies of {family} are loaded in this process: {where}; {why}; "
            "fix: have the packages share one copy (load it through libbroker, or install "
            "builds that use the same provider)"
        )

    return {
        "libbroker_version": libbroker.__version__,
        "python": {
            "version": sys.version.split()[0],
            "implementation": sys.implementation.name,
            "executable": sys.executable,
        },
        "platform": {
            "system": sys.platform,
            "machine": host.machine_name,
            "elf_class": host.elf_class,
            "byte_order": host.byte_order,
            "glibc": None if glibc is None else f"{glibc[0]}.{glibc[1]}",
        },
        "config": config,
        "loaded": objects,
        "duplicates": duplicates,
        "tables": tables(),
        "warnings": warnings,
    }


def format_report(report: dict[str, Any]) -> str:
    """The human text of `libbroker doctor`."""
    py = report.get("python", {})
    plat = report.get("platform", {})
    glibc = plat.get("glibc")
    lines = [
        (f"libbroker {report.get('libbroker_version')} on Python {py.get('version')} "
        f"({py.get('executable')})"),
        f"platform: {plat.get('system')} {plat.get('machine')} {plat.get('elf_class')}-bit, "
        + (f"glibc {glibc}" if glibc else "no glibc"),
        "configuration:",
    ]
    config = report.get("config") or {}
    if not config:
        lines.append("  (not available)")
    for key, value in config.items():
        if key == "config_exists":
            continue
        if key == "config_file":
            state = ("exists, ignored: see config_ignored" if config.get("config_ignored")
                     else "exists" if config.get("config_exists") else "does not exist")
            value = f"{value} ({state})"
        lines.append(f"  {key}: {value if value not in ('', None, [], {}) else '-'}")
    loaded = report.get("loaded", [])
    lines.append(f"shared objects mapped in this process ({len(loaded)}):")
    width = max((len(str(o.get("origin"))) for o in loaded), default=0)
    for o in loaded:
        extra = []
        if o.get("soname"):
            extra.append(f"soname {o['soname']}")
        if o.get("distribution"):
            extra.append(f"from {o['distribution']}")
        if o.get("error"):
            extra.append(f"unreadable: {o['error']}")
        tail = f"  [{', '.join(extra)}]" if extra else ""
        lines.append(f"  {o.get('origin')!s:<{width}}  {o.get('path')}{tail}")
        for dep in o.get("dependencies") or ():
            lines.append(f"  {'':<{width}}    needs {dep['needed']} => {dep['path']} ({dep['origin']})")
    table_list = report.get("tables", [])
    lines.append(f"tables ({len(table_list)}):")
    for table in table_list:
        consumers = ", ".join(table.get("consumers") or []) or "no extension module recorded"
        lines.append(f"  {table.get('name')}: {table.get('library')}  [imported by {consumers}]")
    duplicates = report.get("duplicates", [])
    if duplicates:
        lines.append(f"duplicates ({len(duplicates)} group(s)):")
        for warning in report.get("warnings", []):
            lines.append(f"  warning: {warning}")
    else:
        lines.append("duplicates: none")
    return "\n".join(lines) + "\n"


__all__ = ["format_report", "report", "soname_stem"]
