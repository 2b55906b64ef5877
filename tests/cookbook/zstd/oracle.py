"""Oracle: the zstd command-line tool (Python 3.11 has no zstd module)."""
import shutil
import subprocess

import pytest


def check(cb, tmp_path, library_version):
    data = b"".join(b"line %d of the cookbook\n" % i for i in range(5000))
    if library_version is not None:
        assert cb.version() == library_version
    if shutil.which("zstd") is None:
        pytest.skip("the zstd command (Debian package zstd) is not installed")
    ours = cb.compress(data)
    assert subprocess.run(["zstd", "-d", "-c"], input=ours, capture_output=True,
                          check=True).stdout == data
    source = tmp_path / "data.txt"  # from a file, the frame records the content size
    source.write_bytes(data)
    theirs = subprocess.run(["zstd", "-c", "-19", str(source)], capture_output=True,
                            check=True).stdout
    assert cb.decompress(theirs) == data
