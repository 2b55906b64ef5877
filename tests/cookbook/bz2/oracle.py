"""Oracle: Python's bz2 module."""
import bz2


def check(cb, tmp_path):
    data = b"".join(str(i).encode() for i in range(20000))
    assert bz2.decompress(cb.compress(data)) == data
    assert cb.decompress(bz2.compress(data), len(data)) == data
    assert cb.version().startswith("1.0.")
