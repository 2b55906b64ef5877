"""Oracle: a PNG written here with Python's zlib and the PNG specification's chunk
layout; dpkg records the library's version."""
import struct
import zlib


def _png(width, height, rgba):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    rows = b"".join(b"\0" + rgba[y * width * 4:(y + 1) * width * 4] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def check(cb, tmp_path, library_version):
    width, height = 7, 5
    pixels = bytes((x * 31 + y * 7 + c * 50) % 256 for y in range(height) for x in range(width)
                   for c in range(4))
    data = _png(width, height, pixels)
    assert cb.is_png(data[:8]) and not cb.is_png(b"GIF89a..")
    assert cb.decode_rgba(data) == (width, height, pixels)
    text, number = cb.version()
    major, minor, release = (int(part) for part in text.split(".")[:3])
    assert number == major * 10000 + minor * 100 + release
    if library_version is not None:
        assert text == library_version
