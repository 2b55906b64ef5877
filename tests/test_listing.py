"""libbroker._listing (`libbroker list`): opens only regular files, applies the place rules of
design.md 5.1 as `find` does, labels LD_LIBRARY_PATH entries, and shows product versions with
their source (checked against dpkg-query, not against libbroker)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from _host import SYSLIB, dpkg, host

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX places, ELF files")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "libbroker", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd="/", timeout=timeout)


def test_list_never_opens_a_fifo_or_device(tmp_path) -> None:
    """review F2: a FIFO named like a library in a searched directory must not block `list`."""
    os.chmod(tmp_path, 0o755)
    os.mkfifo(tmp_path / "libqq.so")
    os.symlink("/dev/zero", tmp_path / "libzz.so.1")
    shutil.copy2(os.path.realpath(os.path.join(SYSLIB, "libz.so.1")), tmp_path / "libfoo.so.1")
    r = run("list", "--json", env={"LD_LIBRARY_PATH": str(tmp_path)}, timeout=30)
    assert r.returncode == 0, r.stderr
    listed = {item["path"] for items in json.loads(r.stdout).values() for item in items}
    assert str(tmp_path / "libfoo.so.1") in listed
    assert str(tmp_path / "libqq.so") not in listed and str(tmp_path / "libzz.so.1") not in listed


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_list_marks_what_find_refuses_and_labels_ld_library_path(tmp_path) -> None:
    """review F3: a library in a directory owned by another user is listed as refused, under
    LD_LIBRARY_PATH, with the reason `find --all` gives."""
    os.chmod(tmp_path, 0o755)
    mal = tmp_path / "mal"
    mal.mkdir()
    shutil.copy2(os.path.realpath(os.path.join(SYSLIB, "libz.so.1")), mal / "libfoo.so.1")
    os.chown(mal, 65534, 65534)
    os.chown(mal / "libfoo.so.1", 65534, 65534)
    env = {"LD_LIBRARY_PATH": str(mal)}
    groups = json.loads(run("list", "--json", env=env).stdout)
    assert not any(item["path"].startswith(str(mal)) for item in groups["system"])
    (item,) = [i for i in groups["LD_LIBRARY_PATH"] if i["name"] == "foo"]
    assert item["refused"].startswith("unsafe place:") and str(mal) in item["refused"]
    text = run("list", env=env).stdout
    line = next(line for line in text.splitlines() if str(mal / "libfoo.so.1") in line)
    assert "REFUSED: unsafe place" in line
    found = run("find", "foo", "--all", "--json", env=env)
    cands = json.loads(found.stdout)
    cands = cands if isinstance(cands, list) else cands.get("candidates", [])
    mine = [c for c in cands if c["path"] == str(mal / "libfoo.so.1")]
    assert mine and not mine[0]["accepted"] and "unsafe place" in mine[0]["reason"]


def test_list_versions_come_with_their_source() -> None:
    """review F3: the version column is the product version with its source, never the file
    name's interface numbers (libbz2.so.1.0.4 is bzip2 1.0.8)."""
    if dpkg("-S", "libbz2.so.1.0") is None:
        pytest.skip("no dpkg-owned libbz2")
    real, arch_package, expected = host("libbz2.so.1.0", "libbz2-1.0")
    text = run("list").stdout
    rows = [line.split("\t") for line in text.splitlines() if line.startswith("  bz2\t")]
    row = next(r for r in rows if os.path.realpath(r[2]) == real)
    # Asked the mapped copy itself (the CLI's interpreter may map it) or read from dpkg.
    assert row[1] in (f"{expected} (package:dpkg:{arch_package})", f"{expected} (library)"), row
