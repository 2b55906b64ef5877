"""libbroker: a runtime shared-library registry.

Finds ABI-compatible shared libraries, loads them privately and publishes their
functions to C and Cython extensions as tables of function pointers in
PyCapsules. This module stays light: importing it must not pull `packaging`,
`re`, `typing`, `tomllib` or `importlib.metadata` (the heavy parts load lazily).
"""

__version__ = "0.1.0"


# A subinterpreter is refused by the compiled master when it is first touched
# (cython/_master.pyx): probing here would import _xxsubinterpreters (0.6 ms) in
# every process, on the warm path of every consumer.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._api import candidates, find, get_include, load, loaded
    from ._codegen import generate
    from ._doctor import report
    from ._errors import (
        BrokerError,
        BrokerWarning,
        DuplicateLibraryWarning,
        IncompatibleLibraryError,
        LibraryNotFoundError,
        MissingSymbolError,
        NoAcceptableLibraryError,
        SpecError,
    )
    from ._spec import Spec
    from ._tables import table
    from ._types import Candidate, Dependency, Library, LibraryInfo

# PEP 562: every public name is imported on first use, so `import libbroker` (and a
# consumer's `import libbroker._runtime`) runs no submodule: a warm consumer import
# reaches dlopen without `_api`, and Spec/table/report (tomllib, pycparser, packaging)
# load only when asked for.
_LAZY = {
    "candidates": "._api", "find": "._api", "get_include": "._api", "load": "._api", "loaded": "._api",
    "BrokerError": "._errors", "BrokerWarning": "._errors", "DuplicateLibraryWarning": "._errors",
    "IncompatibleLibraryError": "._errors", "LibraryNotFoundError": "._errors",
    "MissingSymbolError": "._errors", "NoAcceptableLibraryError": "._errors", "SpecError": "._errors",
    "Candidate": "._types", "Dependency": "._types", "Library": "._types", "LibraryInfo": "._types",
    "Spec": "._spec", "table": "._tables", "report": "._doctor", "generate": "._codegen",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    from importlib import import_module

    if module is None:
        # `libbroker._api` and friends, as an eager __init__ made them available: the
        # submodule is imported on first use (importing it sets the attribute).
        if name.startswith("_") and not name.startswith("__"):
            try:
                return import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
        raise AttributeError(f"module 'libbroker' has no attribute {name!r}")

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BrokerError",
    "BrokerWarning",
    "Candidate",
    "Dependency",
    "DuplicateLibraryWarning",
    "IncompatibleLibraryError",
    "Library",
    "LibraryInfo",
    "LibraryNotFoundError",
    "MissingSymbolError",
    "NoAcceptableLibraryError",
    "Spec",
    "SpecError",
    "__version__",
    "candidates",
    "find",
    "generate",
    "get_include",
    "load",
    "loaded",
    "report",
    "table",
]
