"""`libbroker list`: every library file visible to libbroker, grouped by origin.

Listing opens nothing but regular files (a FIFO or device named lib*.so in a
searched directory such as /tmp would block an open forever), never loads
anything, and applies the place rules of design.md 5.1 to every file: one that
`find` would refuse is listed with ``"refused"`` (the reason), not as usable.

File names, magic numbers and places are the running platform's, as in
`_discovery.search`: ELF ``lib<name>.so*`` on Linux; PE ``*.dll`` in the
Windows places (`_windows.host_search_places`); Mach-O ``lib<name>*.dylib`` in
dyld's places (`_macos.search_directories`) on macOS.
"""

from __future__ import annotations

import os
import stat

from ._discovery import (
    default_dirs,
    environment_dirs,
    ld_cache_entries,
    link_name_of,
    platform_of,
    platform_places,
    split_path_list,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# Magic numbers by platform: ELF, PE ("MZ"), Mach-O thin (both byte orders, 32/64) and fat.
_MAGICS = {
    "linux": (b"\x7fELF",),
    "win32": (b"MZ",),
    "darwin": (b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf",
               b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"),
}


def dll_link_name(filename: str) -> str | None:
    """The link name `_windows.matches_link_name` would match *filename* for, or None.

    ``zlib1.dll`` -> "zlib1", ``libbz2-1.dll`` -> "bz2", ``libcrypto-3-x64.dll`` -> "crypto".
    """
    lower = filename.lower()
    if not lower.endswith(".dll") or len(lower) == 4:
        return None
    stem = lower[:-4]
    if not stem.startswith("lib") or len(stem) == 3:
        return stem
    rest = stem[3:]
    for suffix in ("-x64", "-arm64"):
        if rest.endswith(suffix):
            rest = rest[: -len(suffix)]
            break
    head, dash, number = rest.rpartition("-")
    if dash and head and number.isdigit():
        return head
    return stem[3:]


def _namer(platform: str) -> Callable[[str], str | None]:
    if platform == "win32":
        return dll_link_name
    if platform == "darwin":
        from ._discovery import _macos_module

        macos = _macos_module()
        if macos is not None:
            namer: Callable[[str], str | None] = macos.link_name_of
            return namer
    return link_name_of


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _is_elf(path: str, magics: tuple[bytes, ...] = _MAGICS["linux"]) -> bool:
    """True when *path* is a regular file starting with one of *magics* (ELF's by default).

    stat first (never blocks) and skip anything but a regular file; then open
    O_NONBLOCK and check the open file again (it may have been swapped).
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        fd = os.open(path, _OPEN_FLAGS)
    except (OSError, ValueError):
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.read(fd, 4).startswith(magics)
    except OSError:
        return False
    finally:
        os.close(fd)


def _mark_refused(items: list[dict[str, str | None]]) -> list[dict[str, str | None]]:
    """Add "refused" (the place rule's reason) to each item `find` would refuse for its place."""
    if os.name == "nt":
        return items
    from ._places import unsafe_reason

    for item in items:
        reason = unsafe_reason(str(item["path"]))
        if reason:
            item["refused"] = f"unsafe place: {reason}"
    return items


def _scan(directory: str, seen: set[str], platform: str = "linux") -> list[dict[str, str | None]]:
    found: list[dict[str, str | None]] = []
    namer = _namer(platform)
    magics = _MAGICS[platform]
    real_dir = os.path.realpath(directory)
    if real_dir in seen:  # /lib -> /usr/lib on merged-/usr systems
        return found
    seen.add(real_dir)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return found
    for filename in names:
        name = namer(filename)
        path = os.path.join(directory, filename)
        if name is None or path in seen or not _is_elf(path, magics):  # linker scripts are not libraries
            continue
        real = os.path.realpath(path)
        if real in seen:  # libz.so and libz.so.1.2.13 behind libz.so.1: one library
            continue
        seen.update((path, real))
        found.append({"name": name, "path": path})
    return found


def visible_libraries(platform: str | None = None) -> dict[str, list[dict[str, str | None]]]:
    """Library files by origin group ("override", "provider:<dist>", "environment",
    "LD_LIBRARY_PATH", "system"), each ``{"name", "path"[, "version"][, "refused"]}``.

    *platform* ("linux", "win32", "darwin"; default the running one) chooses names,
    magic numbers and places (module docstring).
    """
    from ._config import load_config

    plat = platform_of(platform)
    config = load_config()
    seen: set[str] = set()
    groups: dict[str, list[dict[str, str | None]]] = {}
    overrides: list[dict[str, str | None]] = [{"name": n, "path": p} for n, p in sorted(config.pins.items())]
    for directory in split_path_list(os.environ.get("LIBBROKER_PATH")) + config.search_paths:
        if os.path.isabs(directory):
            overrides += _scan(directory, seen, plat)
    groups["override"] = overrides
    try:
        from ._providers import provider_files, provider_names

        for link in sorted(provider_names()):
            for provided in provider_files(link)[0]:
                groups.setdefault(provided.origin, []).append(
                    {"name": link, "path": provided.path, "version": provided.version})
    except ImportError:  # pragma: no cover
        pass
    if plat != "linux":
        try:
            cwd: str | None = os.path.realpath(os.getcwd())
        except OSError:
            cwd = None
        places = platform_places(plat, config, cwd)
        for origin in ("environment", "system"):
            groups[origin] = [item for d, o, _label, refusal in places
                              if o == origin and d and not refusal for item in _scan(d, seen, plat)]
        for items in groups.values():
            _mark_refused(items)
        return groups
    groups["environment"] = [item for d in environment_dirs() for item in _scan(d, seen)]
    # Its own group: LD_LIBRARY_PATH is whoever set it, not the system's libraries.
    ld_library_path: list[dict[str, str | None]] = []
    for directory in split_path_list(os.environ.get("LD_LIBRARY_PATH")):
        if os.path.isabs(directory):
            ld_library_path += _scan(directory, seen)
    if ld_library_path:
        groups["LD_LIBRARY_PATH"] = ld_library_path
    system: list[dict[str, str | None]] = []
    for soname, path in ld_cache_entries():
        name = link_name_of(soname)
        if name and path not in seen and os.path.realpath(path) not in seen:
            seen.update((path, os.path.realpath(path)))
            system.append({"name": name, "path": path})
    for directory in default_dirs():
        system += _scan(directory, seen)
    groups["system"] = system
    for items in groups.values():
        _mark_refused(items)
    return groups
