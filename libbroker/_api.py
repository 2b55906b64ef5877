"""The Python API: find, candidates, load, loaded, get_include.

`find` answers from three layers: an in-process dict (microseconds), the
on-disk index (validated by directory mtimes and file identities, no ELF
parsing), and a full search. Only the last imports packaging or tomllib.
"""

import os
import sys
import time

from . import _cache
from ._errors import LibraryNotFoundError
from ._types import KNOWN_VERSION_FUNCTIONS, LIBTOOL_NUMBERED, Candidate, Library, LibraryInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_FIND_KIND = "find"
_RECHECK_SECONDS = 1.0
_memo: dict[tuple, tuple[float, LibraryInfo, list]] = {}


def get_include() -> str:
    """The directory holding libbroker.h (add it to a consumer's include path)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


def _loader_in_use():  # type: ignore[no-untyped-def]
    """libbroker._loader if anything was loaded yet (else no copy can exist)."""
    return sys.modules.get(f"{__package__}._loader")


def _loaded_copy(name: str, version: str | None) -> Library | None:
    loader = _loader_in_use()
    copies = loader.loaded_named(name) if loader is not None else []
    if not copies:
        return None
    if version is None:
        return copies[0]
    from ._resolve import parse_specifier

    specifier = parse_specifier(version)
    for library in copies:
        if library.version is not None and specifier is not None:
            if specifier.contains(library.version, prereleases=True):
                return library
    return None


def find(name: str, version: str | None = None, *, packages: "Sequence[str]" = ()) -> LibraryInfo:
    """Locate library *name* (a link name such as "z"), never loading it.

    Order (design.md 3.5): overrides, then a copy libbroker already loaded that
    satisfies *version* (one copy per process), then providers, packages, the
    environment and the system.
    """
    if not isinstance(name, str) or not name or os.sep in name or name != name.strip():
        _check_name(name, "find")  # raises; the test above keeps the warm path to one check
    try:
        info = _find(name, version, packages)
    except LibraryNotFoundError:
        # A copy found through a spec's `packages` is not on the default search
        # path, but once loaded it is the process's copy.
        copy = _loaded_copy(name, version)
        if copy is None:
            raise
        return copy
    loader = _loader_in_use()
    if loader is not None and loader._by_name and info.origin != "override":
        copy = _loaded_copy(name, version)
        if copy is not None:
            return copy
    if info.version_text is None and name in LIBTOOL_NUMBERED:
        # Its version is knowable without loading once something mapped it.
        from ._resolve import _version_if_mapped

        text = _version_if_mapped(os.path.realpath(info.path), name)
        if text:
            info = LibraryInfo(name, info.path, soname=info.soname, origin=info.origin, version_text=text)
    return info


def _find(name: str, version: str | None, packages: "Sequence[str]") -> LibraryInfo:
    key = (name, version, tuple(packages), _cache.env_key())
    now = time.monotonic()
    hit = _memo.get(key)
    if hit is not None:
        checked, info, stamps = hit
        if now - checked < _RECHECK_SECONDS or _cache.stamps_valid(stamps):
            if now - checked >= _RECHECK_SECONDS:
                _memo[key] = (now, info, stamps)
            return info
    disk = _cache.load(_FIND_KIND).get(key)
    if disk is not None:
        try:
            stamps, fields = disk
            if _cache.stamps_valid(stamps):
                info = LibraryInfo(**fields)
                _memo[key] = (now, info, stamps)
                return info
        except (TypeError, ValueError, AttributeError, KeyError):
            pass  # an entry of another shape (corrupt or foreign cache): resolve afresh
    from ._resolve import resolve

    resolution = resolve(name, version, packages=packages)
    chosen = resolution.chosen
    if chosen is None:
        raise resolution.error(version)
    info = LibraryInfo(
        name,
        os.path.abspath(chosen.path),
        soname=chosen.soname,
        origin=chosen.origin,
        version_text=chosen.version_text,
    )
    stamps = _cache.decision_stamps(resolution.search.stamps, chosen.path)
    _memo[key] = (now, info, stamps)
    fields = {
        "name": info.name,
        "path": info.path,
        "soname": info.soname,
        "origin": info.origin,
        "version_text": info.version_text,
    }
    _cache.update(_FIND_KIND, key, (stamps, fields))
    return info


def candidates(
    name: str, version: str | None = None, *, packages: "Sequence[str]" = ()
) -> list[Candidate]:
    """Every file seen for *name*, in rank order, each `.accepted` or with its `.reason`."""
    from ._resolve import resolve

    _check_name(name, "candidates")
    return resolve(name, version, packages=packages, stop_at_first=False).candidates


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name or name != name.strip() or "\0" in name or (
        what != "load" and os.sep in name
    ):
        from ._errors import SpecError

        raise SpecError(
            f"expected a library link name such as 'z' (for libz.so.1), found {name!r}",
            path=f"{what}() argument",
        )
    return name


def load(name_or_path: str | os.PathLike[str] | bytes, version: str | None = None) -> Library:
    """Load a library privately (RTLD_LOCAL) by link name or absolute path.

    Loads once per file: the same object comes back for the same file.
    """
    from . import _loader

    if isinstance(name_or_path, (bytes, os.PathLike)):
        name_or_path = os.fsdecode(name_or_path)
    name_or_path = _check_name(name_or_path, "load")
    if os.sep in name_or_path or (os.altsep and os.altsep in name_or_path):
        library = _loader.load_file(name_or_path)
        _refine_version(library)
        if version is not None:
            _check_loaded_version(library, version)
        return library
    # A libtool-numbered library's version is known only once it is loaded.
    info = find(name_or_path, None if name_or_path in LIBTOOL_NUMBERED else version)
    if isinstance(info, Library):
        if version is not None:
            _check_loaded_version(info, version)
        return info
    library = _loader.load_file(
        info.path,
        name=info.name,
        origin=info.origin,
        soname=info.soname,
        version_text=info.version_text,
        judged=True,
    )
    _refine_version(library)
    if version is not None:
        _check_loaded_version(library, version)
    return library


def _refine_version(library: Library) -> None:
    function = KNOWN_VERSION_FUNCTIONS.get(library.name)
    if function is None or library.origin not in ("system", "environment", "override", "path"):
        return
    from . import _master

    address = _master.dlsym(library.handle, function)
    if not address:
        return
    text = _master.call_version_function(address)
    if text:
        library._set_version_text(text.decode("utf-8", "replace"))


def _check_loaded_version(library: Library, version: str) -> None:
    from ._errors import IncompatibleLibraryError
    from ._resolve import parse_specifier

    specifier = parse_specifier(version)
    if specifier is None:
        return
    if library.version is None or not specifier.contains(library.version, prereleases=True):
        raise IncompatibleLibraryError(
            library.path,
            f"version {library.version_text!r} is outside the specifier {version!r}",
        )


def loaded() -> list[Library]:
    """What libbroker loaded in this process."""
    from . import _loader

    return _loader.loaded()

