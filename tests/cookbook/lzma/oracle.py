"""Oracle: Python's lzma module (CPython's own binding of liblzma)."""
import lzma


def check(cb, tmp_path):
    data = bytes(range(256)) * 300 + b"tail"
    assert lzma.decompress(cb.compress(data)) == data
    assert cb.decompress(lzma.compress(data, format=lzma.FORMAT_XZ), len(data)) == data
    assert lzma.decompress(cb.compress(b"")) == b""
