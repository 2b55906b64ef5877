"""Check the brokered zlib against Python's own zlib module and say who served it."""

import os
import sys
import zlib

import libbroker

import zlib_crc


def main() -> int:
    data = os.urandom(1 << 20)
    checks = {
        "crc32": zlib_crc.crc32(data) == zlib.crc32(data),
        "adler32": zlib_crc.adler32(data) == zlib.adler32(data),
        "round trip": zlib_crc.uncompress(zlib_crc.compress(data), len(data)) == data,
        "python can read it": zlib.decompress(zlib_crc.compress(data)) == data,
    }
    served = [lib for lib in libbroker.loaded() if lib.name in ("z", "zlib1", "zlib")]
    print(f"zlib {zlib_crc.version()} brokered from {served[0].path} ({served[0].origin})")
    for name, ok in checks.items():
        print(f"  {name:<20} {'ok' if ok else 'MISMATCH'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
