"""Typed stubs of the compiled master module (cython/_master.pyx)."""

from __future__ import annotations

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
def loaded_objects() -> list[tuple[str, int]]:
    """(path, base address) of every shared object mapped, main program and vdso excluded."""

def in_shared_cache(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> bool | None:
    """macOS 11+: whether dyld's shared cache holds *path*; None elsewhere (no cache to ask)."""
