"""libbroker example: zlib through a brokered function table."""

from ._fast import adler32, compress, crc32, uncompress, version

__all__ = ["adler32", "compress", "crc32", "uncompress", "version"]
