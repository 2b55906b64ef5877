"""libbroker: a runtime shared-library registry.

Finds ABI-compatible shared libraries, loads them privately and publishes their
functions to C and Cython extensions as tables of function pointers in
PyCapsules. This module stays light: importing it must not pull `packaging`,
`re`, `typing`, `tomllib` or `importlib.metadata` (the heavy parts load lazily).
"""

__version__ = "0.1.0"

from ._api import candidates, find, get_include, load, loaded
from ._errors import (
    BrokerError,
    IncompatibleLibraryError,
    LibraryNotFoundError,
    MissingSymbolError,
    NoAcceptableLibraryError,
    SpecError,
)
from ._types import Candidate, Library, LibraryInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._codegen import generate
    from ._doctor import report
    from ._spec import Spec
    from ._tables import table

_LAZY = {"Spec": "._spec", "table": "._tables", "report": "._doctor", "generate": "._codegen"}


def __getattr__(name: str) -> object:
    # PEP 562: Spec/table/report need tomllib, pycparser and packaging, which a
    # consumer's warm import never touches.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'libbroker' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BrokerError",
    "Candidate",
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
