"""Shared fixtures. Every test gets its own cache and config locations, so the
user's real ~/.cache/libbroker and ~/.config/libbroker are never read or written."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from _host import forget_answers

SYSLIB = f"/usr/lib/{getattr(sys.implementation, '_multiarch', 'x86_64-linux-gnu')}"


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path_factory.mktemp("lbhome")
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("LIBBROKER_CONFIG", str(home / "config.toml"))
    monkeypatch.delenv("LIBBROKER_PATH", raising=False)
    from libbroker import _api

    _api._memo.clear()
    forget_answers()
    yield
    _api._memo.clear()
    forget_answers()



def real_library(soname: str) -> str:
    """The absolute path of a real system library by soname, or skip."""
    for directory in (SYSLIB, "/lib64", "/usr/lib64", "/usr/lib"):
        path = os.path.join(directory, soname)
        if os.path.exists(path):
            return path
    pytest.skip(f"{soname} is not installed on this machine")


@pytest.fixture
def libz() -> str:
    return real_library("libz.so.1")


@pytest.fixture
def libdir_with(tmp_path):
    """Make a private directory holding a copy of a real library under a chosen name."""

    def make(soname: str, filename: str | None = None, subdir: str = "lib") -> str:
        directory = tmp_path / subdir
        directory.mkdir(exist_ok=True)
        os.chmod(directory, 0o755)
        target = directory / (filename or soname)
        shutil.copy2(os.path.realpath(real_library(soname)), target)
        return str(directory)

    return make
