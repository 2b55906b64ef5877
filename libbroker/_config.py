"""The user configuration file: overrides for distributors and users.

Location: ``platformdirs.user_config_dir("libbroker")/config.toml``, or the file
named by $LIBBROKER_CONFIG. Format (docs/configuration.md)::

    search-paths = ["/opt/mylibs/lib"]   # searched right after LIBBROKER_PATH

    [libraries.z]                        # keyed by link name
    path = "/opt/zlib/lib/libz.so.1"     # pin: this file, nothing else
    prefer = "system"                    # or "environment", "provider", "package"
"""

from __future__ import annotations

import os
import sys

from ._cache import config_path, config_stamp  # noqa: F401  (re-exported)
from ._errors import SpecError

PREFER_CHOICES = ("provider", "package", "environment", "system")
_parsed: dict[tuple[str, object], Config] = {}


class Config:
    __slots__ = ("path", "exists", "search_paths", "pins", "prefer")

    def __init__(self, path: str) -> None:
        self.path = path
        self.exists = False
        self.search_paths: list[str] = []
        self.pins: dict[str, str] = {}
        self.prefer: dict[str, str] = {}


def load_config() -> Config:
    stamp = config_stamp()
    cached = _parsed.get(stamp)
    if cached is not None:
        return cached
    config = _parse(stamp[0]) if stamp[1] is not None else Config(stamp[0])
    _parsed.clear()
    _parsed[stamp] = config
    return config


def _parse(path: str) -> Config:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    config = Config(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise SpecError(f"cannot read the libbroker config file: {exc}", path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"invalid TOML in the libbroker config file: {exc}", path=path) from exc
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"the libbroker config file is not UTF-8 text (TOML requires UTF-8): {exc}", path=path
        ) from exc
    config.exists = True
    known = {"search-paths", "libraries"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(
            f"unknown key(s) {unknown!r} in the libbroker config file; expected only "
            f"{sorted(known)!r}",
            path=path,
        )
    paths = data.get("search-paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise SpecError(
            f"'search-paths' must be a list of directory strings, found {paths!r}", path=path
        )
    config.search_paths = [os.path.expanduser(p) for p in paths]
    libraries = data.get("libraries", {})
    if not isinstance(libraries, dict):
        raise SpecError(f"[libraries] must be a table, found {libraries!r}", path=path)
    for name, entry in libraries.items():
        if not isinstance(entry, dict):
            raise SpecError(f"[libraries.{name}] must be a table, found {entry!r}", path=path)
        extra = sorted(set(entry) - {"path", "prefer"})
        if extra:
            raise SpecError(
                f"unknown key(s) {extra!r} in [libraries.{name}]; expected 'path' or 'prefer'",
                path=path,
            )
        if "path" in entry:
            pin = entry["path"]
            if not isinstance(pin, str) or not os.path.isabs(os.path.expanduser(pin)):
                raise SpecError(
                    f"[libraries.{name}] path must be an absolute file path, found {pin!r}",
                    path=path,
                )
            config.pins[name] = os.path.expanduser(pin)
        if "prefer" in entry:
            prefer = entry["prefer"]
            if prefer not in PREFER_CHOICES:
                raise SpecError(
                    f"[libraries.{name}] prefer must be one of {list(PREFER_CHOICES)!r}, "
                    f"found {prefer!r}",
                    path=path,
                )
            config.prefer[name] = prefer
    return config


def config_summary() -> dict[str, object]:
    """The configuration in force, for `doctor` and `report()`."""
    summary: dict[str, object] = {
        "LIBBROKER_PATH": os.environ.get("LIBBROKER_PATH", ""),
        "config_file": config_path(),
    }
    try:
        config = load_config()
    except SpecError as exc:
        summary.update(config_exists=True, config_error=str(exc))
        return summary
    summary.update(
        config_exists=config.exists,
        search_paths=list(config.search_paths),
        pins=dict(config.pins),
        prefer=dict(config.prefer),
    )
    from ._cache import cache_dir

    summary["cache_dir"] = cache_dir()
    return summary
