"""Oracles on this host's real libraries for tests/test_versions.py and tests/test_pkgdb.py:
dpkg-query (dpkg's own reading of its database) and Debian policy's version syntax,
implemented here independently of libbroker._pkgdb."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

SYSLIB = f"/usr/lib/{getattr(sys.implementation, '_multiarch', 'x86_64-linux-gnu')}"


def dpkg(*args: str) -> str | None:
    """dpkg-query's output, or None without dpkg or on failure."""
    if not shutil.which("dpkg-query"):
        return None
    out = subprocess.run(["dpkg-query", *args], capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def debian_upstream(version: str) -> str:
    """Debian policy 5.6.12: [epoch:]upstream_version[-debian_revision]; minus repack marks."""
    m = re.fullmatch(r"(?:\d+:)?(.+?)(?:-[^-]+)?", version)
    assert m, version
    return re.split(r"[+~]|\.dfsg|\.ds\b|\.repack", m.group(1))[0]


def host(soname: str, package: str) -> tuple[str, str, str]:
    """(real path, dpkg's ``pkg:arch`` name, upstream version) of a Debian library, or skip."""
    path = os.path.join(SYSLIB, soname)
    arch_package = dpkg("-W", "-f=${binary:Package}", package)
    version = dpkg("-W", "-f=${Version}", package)
    if not os.path.exists(path) or not arch_package or not version:
        pytest.skip(f"{soname} ({package}) is not installed from a Debian package here")
    return os.path.realpath(path), arch_package, debian_upstream(version)


def zlib_version() -> str:
    """Python's zlib module's answer (zlibVersion() of the zlib it uses)."""
    import zlib

    return zlib.ZLIB_RUNTIME_VERSION


def forget_answers() -> None:
    """Drop the answers a process gives again for a second (as `_api` gives verdicts
    again): what a fresh interpreter has, for tests that change a directory and search
    again at once."""
    from libbroker import _discovery

    _discovery.forget_places()
