"""Typed stubs of the compiled master module (cython/_master.pyx)."""


import os
from collections.abc import Sequence
from typing import TypedDict

from typing_extensions import CapsuleType

ABI_MAJOR: int
ABI_MINOR: int
TABLE_MAGIC: int

class TableInfo(TypedDict):
    magic: int
    abi_major: int
    abi_minor: int
    header_size: int
    slot_count: int
    layout_digest: int
    name: str
    library_path: str
    library_version: str
    signatures: list[str]
    slots: list[int]

def dlopen(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> int:
    """Load privately (RTLD_NOW | RTLD_LOCAL); OSError(0, dlerror text, path) on failure."""

def noload(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> int:
    """Handle of an already mapped file (RTLD_NOLOAD), 0 when not mapped."""

def dlsym(handle: int, symbol: str | bytes) -> int:
    """Address of a symbol, 0 when absent. ValueError for handle 0."""

def lookup_many(handle: int, symbols: Sequence[bytes | str]) -> list[int]:
    """Addresses of many symbols in one C loop, 0 for each absent one."""

def call_version_function(address: int) -> bytes | None:
    """Call ``const char *(*)(void)``; at most 4096 bytes of its text, None for NULL."""

def make_table(
    name: str,
    layout_digest: int,
    library_path: str,
    library_version: str,
    signatures: Sequence[str],
    addresses: Sequence[int],
) -> CapsuleType:
    """A process-lifetime table in a capsule named ``"libbroker.table.<name>"``."""

def table_address(capsule: CapsuleType) -> int: ...
def table_info(capsule: CapsuleType) -> TableInfo: ...
def loaded_objects_version() -> int: ...
def loaded_objects() -> list[tuple[str, int]]:
    """(path, base address) of every shared object mapped, main program and vdso excluded."""

# Version probes (libbroker/_versions.py); strings are bounded, NUL-terminated, printable,
# else ValueError.
def call_string_function_int(address: int, argument: int) -> bytes | None:
    """Call ``const char *(*)(int)`` with *argument*; its text, None for NULL."""

def call_string_function_null(address: int) -> bytes | None:
    """Call ``const char *(*)(const void *)`` with NULL; its text, None for NULL."""

def call_number_function(address: int, ctype: str) -> int:
    """Call ``unsigned int (*)(void)`` or ``unsigned long (*)(void)`` (*ctype*); the number."""

def read_string_pointer(address: int) -> bytes | None:
    """The text a ``const char *`` data symbol points to; None for NULL."""

def read_string_array(address: int) -> bytes:
    """The text of a ``char[]`` data symbol (at most 4096 bytes)."""

def symbol_in_object(handle: int, address: int) -> bool | None:
    """Whether *address* lies in the object of *handle*; None when no object holds it."""

def set_link_name(handle: int, path: str, only_if: str) -> int:
    """Rename the link map of *handle* to *path* if its name starts with *only_if*: 1, 0 or -1."""

def link_map(handle: int) -> tuple[int, int, str] | None:
    """(l_addr, l_ld, l_name) of the handle's link map (Linux), else None."""

def call_context_triple(
    init_address: int, version_address: int, done_address: int
) -> tuple[int, int, int]:
    """(major, minor, patch) via ``init(&ctx)``, ``version(ctx, &a, &b, &c)``, ``done(ctx)``."""


def in_shared_cache(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> bool | None:
    """macOS 11+: whether dyld's shared cache holds *path*; None elsewhere (no cache to ask)."""


def global_symbols(symbols: Sequence[str], limit: int) -> list[tuple[str, int]]:
    """(name, address) of the first *limit* symbols defined in the global scope; [] on Windows."""

def dlclose(handle: int) -> bool:
    """Drop one reference to a handle; True when the loader accepted it."""
