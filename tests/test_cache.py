"""The on-disk cache: platformdirs locations, invalidation, corruption, no write access."""

from __future__ import annotations

import os
import shutil
import sys

import platformdirs
import pytest

import libbroker
from libbroker import _api, _cache, _config


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG shortcut is Linux-only")
@pytest.mark.parametrize("xdg", [None, "", "/tmp/lb-xdg-test"])
def test_locations_match_platformdirs(monkeypatch, xdg) -> None:
    monkeypatch.delenv("LIBBROKER_CACHE_DIR", raising=False)
    monkeypatch.delenv("LIBBROKER_CONFIG", raising=False)
    for var in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        if xdg is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, xdg)
    monkeypatch.setattr(_cache, "_dir", None)
    assert _cache.cache_dir() == platformdirs.user_cache_dir("libbroker")
    assert _config.config_path() == os.path.join(platformdirs.user_config_dir("libbroker"), "config.toml")


def _fresh_process() -> None:
    """What a new interpreter has: no in-process memo, only the disk."""
    _api._memo.clear()


def test_directory_change_invalidates(tmp_path, monkeypatch, libz) -> None:
    directory = tmp_path / "libs"
    directory.mkdir()
    os.chmod(directory, 0o755)
    shutil.copy(os.path.realpath(libz), directory / "liblbinv.so.1.0")
    monkeypatch.setenv("LIBBROKER_PATH", str(directory))
    assert libbroker.find("lbinv").version_text == "1.0"
    _fresh_process()
    assert libbroker.find("lbinv").version_text == "1.0"  # from the disk index
    shutil.copy(os.path.realpath(libz), directory / "liblbinv.so.2.0")
    os.utime(directory, ns=(os.stat(directory).st_atime_ns, os.stat(directory).st_mtime_ns + 10**9))
    _fresh_process()
    assert libbroker.find("lbinv").version_text == "2.0"


def test_replaced_file_invalidates(tmp_path, monkeypatch, libz) -> None:
    directory = tmp_path / "libs"
    directory.mkdir()
    os.chmod(directory, 0o755)
    target = directory / "liblbrep.so.1"
    shutil.copy(os.path.realpath(libz), target)
    monkeypatch.setenv("LIBBROKER_PATH", str(directory))
    libbroker.find("lbrep")
    # Overwrite in place with a text file: the directory mtime stays, the identity changes.
    mtime = os.stat(directory).st_mtime_ns
    target.write_text("not a library any more\n")
    os.utime(directory, ns=(mtime, mtime))
    _fresh_process()
    with pytest.raises(libbroker.LibraryNotFoundError, match="text file"):
        libbroker.find("lbrep")


def test_corrupt_cache_is_ignored(monkeypatch) -> None:
    libbroker.find("z")
    for name in os.listdir(_cache.cache_dir()):
        with open(os.path.join(_cache.cache_dir(), name), "wb") as f:
            f.write(b"\x00garbage\xff" * 10)
    _fresh_process()
    assert libbroker.find("z").soname == "libz.so.1"


def test_unwritable_cache_is_ignored(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(blocker / "cache"))
    _fresh_process()
    assert libbroker.find("z").soname == "libz.so.1"
    _cache.store("find", {"k": 1})  # no exception
    assert _cache.load("find") == {}


def test_disk_index_serves_with_a_config_file(tmp_path, monkeypatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('search-paths = []\n')
    monkeypatch.setenv("LIBBROKER_CONFIG", str(config))
    first = libbroker.find("z")
    _fresh_process()

    def no_search(*args, **kwargs):
        raise AssertionError("searched again although the disk index was valid")

    from libbroker import _resolve

    monkeypatch.setattr(_resolve, "resolve", no_search)
    assert libbroker.find("z").path == first.path
    config.write_text('search-paths = ["/opt"]\n')  # a changed config invalidates
    os.utime(config, ns=(0, os.stat(config).st_mtime_ns + 10**9))
    _fresh_process()
    with pytest.raises(AssertionError, match="searched again"):
        libbroker.find("z")
