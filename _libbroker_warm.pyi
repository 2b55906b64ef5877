"""Typed stubs of the plain-C, top-level warm-path module (csrc/_libbroker_warm.c)."""

from typing import Any

from typing_extensions import CapsuleType

CACHE_FORMAT: int
CACHE_MAGIC: bytes
CACHE_MAX_BYTES: int
TABLES_KIND: str
TABLE_ENTRY_FORMAT: int
SUPPORTED: int
tables_by_spec: dict[str, object]
tables_by_layout: dict[tuple[Any, ...], object]
table_names: dict[int, str]
table_consumers: dict[int, list[str]]
warm_pending: list[dict[str, Any]]

def import_table(
    name: str, spec_digest: str, spec_text: str, module: str | None = None
) -> CapsuleType:
    """A generated header's table: registry, else the warm replay, else the Python layer."""

def replay(spec_digest: str) -> CapsuleType | None:
    """The table rebuilt from the on-disk index, or None (the Python path then runs)."""

def build_table(
    name: bytes, layout: int, path: bytes, version: bytes, signatures: list[bytes], addresses: list[int]
) -> CapsuleType:
    """Allocate and fill a process-lifetime table (no validation: `_master.make_table` validates)."""

def table_address(capsule: CapsuleType) -> int:
    """Address of the table inside a table capsule."""

def note_consumer(capsule: CapsuleType, module: str) -> None:
    """Record that extension *module* imported the table in *capsule*."""

def unique_fd_path(fd: int) -> str:
    """/proc/self/fd/N under a name never used before in this process."""

def env_key() -> tuple[object, ...]:
    """The environment a cached verdict depends on (equal to `_cache.env_key()`)."""

def cache_dir() -> str | None:
    """The cache directory as the warm path computes it; None where it defers to Python."""

def cache_dir_is_safe(directory: str) -> bool:
    """The warm path's strict rule for its cache directory (memoised per process)."""

def read_entry(path: str) -> object:
    """A cache file's object when it is ours, bounded and intact, else None."""

def stamps_hold(stamps: object, config: str | None) -> bool:
    """`_cache.stamps_valid` as the warm path computes it."""

def crc32(data: bytes) -> int:
    """zlib's and binascii's CRC-32 of *data*."""

def env_tag(key: tuple[object, ...]) -> str:
    """The 8-hex-digit name part of a table entry for the environment *key*."""
