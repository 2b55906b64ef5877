"""The Windows and macOS closures in `libbroker._closure.Closure`'s shape.

`_closure.resolve_closure` judges a file by its own machine and word size and
then by its dependencies; on Linux with ld.so's rules (`_closure`), here with
the platform loader's: `_windows.closure` (the safe DLL search of
``LoadLibraryExW``) over `_binary._pe.read`, and `_macos.resolve_dependency`
(dyld's ``DYLD_*``, ``@rpath``, ``@loader_path``, shared cache) over
`_binary._macho.read`.

What is listed in `Closure.dependencies` is what libbroker itself maps before
the library (bottom-up, by absolute path): files the search found next to the
library, in a provider, an application or ``os.add_dll_directory`` directory,
or (macOS) in a non-system place. The system's own files (API sets, KnownDLLs,
``System32``, modules already loaded, the dyld shared cache) are not, as the C
library is not on Linux; they are still in `Closure.paths` when they are files.
"""

from __future__ import annotations

import os
import sys

from .._types import Dependency

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .._binary import BinaryInfo
    from .._closure import Closure
    from ._windows import ImageFacts, SearchContext

_MAX_FILES = 1024  # bounds a crafted or cyclic macOS closure, as on Linux


def platform_closure(
    closure: Closure,
    info: BinaryInfo,
    platform: str,
    *,
    host: BinaryInfo | None = None,
    read: Callable[[str], ImageFacts] | None = None,
    context: SearchContext | None = None,
    env: Mapping[str, str] | None = None,
    use_providers: bool = True,
) -> None:
    """Fill *closure* (of the file whose facts are *info*) under *platform*'s loader rules.

    *platform*: "win32" or "darwin". *host*: the interpreter's own facts (default
    `_binary.host_binary()`): a file of another format, machine or word size is
    refused first, naming both. *read*, *context* (Windows) and *env* (macOS)
    default to the running process's (Windows: with the DLLs of installed provider
    wheels as the context's providers, when *use_providers*); tests pass fake trees. Never raises for a
    bad file: `closure.reason` and `closure.fix` say why.
    """
    from .._binary import check_compatible, host_binary
    from .._errors import BrokerError

    if host is None:
        try:
            host = host_binary()
        except BrokerError:
            host = None
    if host is not None:
        incompatible = check_compatible(info, host, glibc=None)
        if incompatible:
            closure.reason = incompatible
            closure.fix = "install a build of the library for this interpreter's machine and word size"
            return
    if platform == "win32":
        _windows_closure(closure, read, context, use_providers)
    else:
        _macos_closure(closure, info, env)
    if not closure.ok:
        closure.dependencies = []


def _split_fix(text: str) -> tuple[str, str | None]:
    """`_windows.missing_reason` ends with ". Fix: ..." or a PATH hint: (reason, fix)."""
    at = text.find(". Fix: ")
    if at >= 0:
        return text[:at], text[at + len(". Fix: "):]
    at = text.find(": put the DLL next to")
    if at >= 0:  # found only in PATH: the reason keeps where, the fix says what to do
        return text[:at], text[at + 2:]
    return text, None


def provider_dlls() -> dict[str, str]:
    """Lower-case DLL file name -> path, for every DLL an installed provider wheel offers.

    Reads the distributions (once per sys.path state, `_closure._provided_links`);
    the first provider of a name wins, as in discovery's order. A broken provider
    serves nothing here (find() reports it).
    """
    from .._closure import _provided_links
    from .._errors import BrokerError

    found: dict[str, str] = {}
    for link in sorted(_provided_links()):
        try:
            from .._providers import provider_files

            files, _ = provider_files(link)
        except (BrokerError, OSError, ValueError):
            continue
        for provided in files:
            if provided.path.lower().endswith(".dll"):
                found.setdefault(os.path.basename(provided.path).lower(), provided.path)
    return found


def _windows_closure(closure: Closure, read: Callable[[str], ImageFacts] | None,
                     context: SearchContext | None, use_providers: bool = True) -> None:
    from . import _windows

    if read is None:
        from .._binary import _pe

        def read(path: str) -> ImageFacts:
            # PEInfo's lists are mutable attributes; the Protocol's are Sequences.
            return _pe.read(path)  # type: ignore[return-value]
    if context is None:
        context = _windows.host_context(provider_dlls() if use_providers else None)
    result = _windows.closure(closure.path, read, context)
    closure.notes.extend(result.notes)
    if result.problems:
        reason, fix = _split_fix(result.problems[0])
        more = len(result.problems) - 1
        closure.reason = reason + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
        closure.fix = fix or "install the missing DLL next to the library"
        return
    mapped_by_us = {_windows.PROVIDER, _windows.LOAD_DIR, _windows.APPLICATION_DIR, _windows.USER_DIR}
    for res in result.order:
        if res.path is None or res.kind == "root":
            continue
        closure.paths.append(res.path)
        if res.kind in mapped_by_us:
            closure.dependencies.append(Dependency(res.needed, res.path, res.kind))


def _macos_closure(closure: Closure, info: BinaryInfo, env: Mapping[str, str] | None) -> None:
    try:
        from importlib import import_module

        macos = import_module("._macos", __package__)
    except ImportError:  # the dyld policy is not in this tree: the file's own checks only
        closure.notes.append("dependencies not resolved: libbroker._platforms._macos is missing")
        return
    from .._binary import read_binary
    from .._errors import BrokerError

    environ = os.environ if env is None else env
    executable = os.path.realpath(sys.executable)
    restricted = bool(macos.is_sip_protected(executable))
    weak = set(getattr(info, "weak_needed", ()))
    order: list[Dependency] = []
    done: set[str] = {closure.path}

    def visit(path: str, facts: BinaryInfo, chain: list[tuple[str, list[str]]], depth: int) -> bool:
        chain = [(path, list(facts.rpath)), *chain]
        optional = set(getattr(facts, "weak_needed", ())) | weak
        for needed in facts.needed:
            if len(done) >= _MAX_FILES or depth > 32:
                closure.reason = f"the dependency closure exceeds {_MAX_FILES} files or 32 levels"
                closure.fix = "use a library with a bounded dependency tree"
                return False
            res = macos.resolve_dependency(needed, chain=chain, executable=executable, env=environ,
                                           restricted=restricted, exists=os.path.isfile)
            if res.path is None:
                if needed in optional:
                    closure.notes.append(f"{os.path.basename(path)}: weak {needed} not found (dyld skips it)")
                    continue
                closure.reason = (f"{os.path.basename(path)} loads {needed}, which dyld would not find; "
                                  f"tried: {', '.join(res.tried) or 'nothing'}"
                                  + (f"; refused: {', '.join(res.refused)}" if res.refused else ""))
                closure.fix = ("install the dylib where the install name points, or give the library "
                               "an LC_RPATH that reaches it (install_name_tool -add_rpath)")
                return False
            if res.shared_cache or res.path in done:
                continue
            done.add(res.path)
            try:
                dep = read_binary(res.path)
            except (OSError, BrokerError) as exc:
                closure.reason = f"{os.path.basename(path)} loads {needed}, found at {res.path}, which cannot be read: {exc}"
                closure.fix = "reinstall the dependency"
                return False
            if not visit(res.path, dep, chain, depth + 1):
                return False
            closure.paths.append(res.path)
            if not macos.is_system_install_name(res.path):
                order.append(Dependency(needed, res.path, res.how))
        return True

    if visit(closure.path, info, [], 0):
        closure.dependencies = order


__all__ = ["platform_closure"]
