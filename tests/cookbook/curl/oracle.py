"""Oracle: the file's bytes as Python reads them, fetched through libcurl's
variadic curl_easy_setopt; the version dpkg records."""
import pytest


def check(cb, tmp_path, library_version):
    target = tmp_path / "payload.bin"
    target.write_bytes(bytes(range(256)) * 1000)
    assert cb.fetch(target.as_uri()) == target.read_bytes()
    with pytest.raises(OSError):
        cb.fetch((tmp_path / "absent").as_uri())
    if library_version is not None:
        assert cb.version().startswith(f"libcurl/{library_version}")
