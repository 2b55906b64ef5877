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

from ._binary import InvalidBinaryError, host_binary, host_glibc, read_binary

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
    try:
        from ._loader import loaded
    except ImportError:
        return set()
    try:
        return {os.path.realpath(lib.path) for lib in loaded()}
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


def _record_owners(site_dirs: Iterable[str], wanted: set[str]) -> dict[str, str]:
    """Map each wanted real path to the distribution whose RECORD lists it."""
    import csv

    owners: dict[str, str] = {}
    for site_dir in site_dirs:
        # RECORD rows are paths relative to the site dir, '/'-separated.
        relative = {os.path.relpath(p, site_dir).replace(os.sep, "/"): p for p in wanted if _under(p, site_dir)}
        if not relative:
            continue
        try:
            names = sorted(os.listdir(site_dir))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            info_dir = os.path.join(site_dir, name)
            try:
                with open(os.path.join(info_dir, "RECORD"), newline="", encoding="utf-8") as f:
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


def _module_files() -> set[str]:
    files = set()
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if isinstance(f, str):
            files.add(os.path.realpath(f))
    return files


def _is_extension(real: str, functions: frozenset[str], module_files: set[str]) -> bool:
    # EXTENSION_SUFFIXES contains a bare ".so", so the suffix alone would call
    # every vendored library an extension; the PyInit_<name> export decides.
    if real in module_files:
        return True
    return "PyInit_" + os.path.basename(real).split(".")[0] in functions


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
    if f"{__package__}._warm" not in sys.modules:
        return []  # no table can exist: every table is built by _warm
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

    objects: list[dict[str, object]] = []
    seen: set[str] = set()
    wanted = None if baseline is None else set(baseline)
    for path in _loaded_paths():
        if wanted is not None and path not in wanted:
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        entry: dict[str, object] = {"path": real, "soname": None, "family": None}
        if real != path:
            entry["loaded_as"] = path
        try:
            info = read_binary(real)
        except InvalidBinaryError as exc:
            entry["error"] = exc.reason
            functions: frozenset[str] = frozenset()
        else:
            entry["soname"] = info.soname
            functions = info.functions
        origin = _origin(real, _is_extension(real, functions, module_files), ours, site_dirs, env_dirs)
        family = _family(functions)
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
            state = "exists" if config.get("config_exists") else "does not exist"
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
