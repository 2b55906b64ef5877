"""`libbroker list`: every library file visible to libbroker, grouped by origin."""

from __future__ import annotations

import os

from ._discovery import (
    default_dirs,
    environment_dirs,
    ld_cache_entries,
    link_name_of,
    split_path_list,
)


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _scan(directory: str, seen: set[str]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    real_dir = os.path.realpath(directory)
    if real_dir in seen:  # /lib -> /usr/lib on merged-/usr systems
        return found
    seen.add(real_dir)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return found
    for filename in names:
        name = link_name_of(filename)
        path = os.path.join(directory, filename)
        if name is None or path in seen or not _is_elf(path):  # linker scripts are not libraries
            continue
        real = os.path.realpath(path)
        if real in seen:  # libz.so and libz.so.1.2.13 behind libz.so.1: one library
            continue
        seen.update((path, real))
        found.append({"name": name, "path": path})
    return found


def visible_libraries() -> dict[str, list[dict[str, str]]]:
    from ._config import load_config

    config = load_config()
    seen: set[str] = set()
    groups: dict[str, list[dict[str, str]]] = {}
    overrides = [{"name": n, "path": p} for n, p in sorted(config.pins.items())]
    for directory in split_path_list(os.environ.get("LIBBROKER_PATH")) + config.search_paths:
        if os.path.isabs(directory):
            overrides += _scan(directory, seen)
    groups["override"] = overrides
    try:
        from ._providers import provider_files, provider_names

        for link in sorted(provider_names()):
            for provided in provider_files(link)[0]:
                groups.setdefault(provided.origin, []).append({"name": link, "path": provided.path})
    except ImportError:  # pragma: no cover
        pass
    groups["environment"] = [item for d in environment_dirs() for item in _scan(d, seen)]
    system = []
    for directory in split_path_list(os.environ.get("LD_LIBRARY_PATH")):
        if os.path.isabs(directory):
            system += _scan(directory, seen)
    for soname, path in ld_cache_entries():
        name = link_name_of(soname)
        if name and path not in seen and os.path.realpath(path) not in seen:
            seen.update((path, os.path.realpath(path)))
            system.append({"name": name, "path": path})
    for directory in default_dirs():
        system += _scan(directory, seen)
    groups["system"] = system
    return groups
