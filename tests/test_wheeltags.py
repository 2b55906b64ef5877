"""Wheel tags and allow-lists for `libbroker wrap` (libbroker/_wheeltags.py), as pure functions.

Oracles: auditwheel's own policy JSON (the vendored manylinux list must equal it for every
policy), packaging.tags (a tag is right when the installers' own list of compatible tags for
a host takes it on every host that can load the library, and on none that cannot).
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.tags import mac_platforms, parse_tag

from libbroker._wheeltags import (
    MUSLLINUX_ALLOWED,
    TagError,
    is_allowed_system_library,
    linux_tag,
    macos_tag,
    manylinux_allowed,
    windows_tag,
)


def auditwheel_policies(kind: str) -> list[dict[str, object]]:
    auditwheel = pytest.importorskip("auditwheel")
    path = os.path.join(os.path.dirname(auditwheel.__file__), "policy", f"{kind}-policy.json")
    with open(path) as f:
        return [p for p in json.load(f) if p["name"] != "linux"]


def test_manylinux_allow_list_is_auditwheels() -> None:
    policies = auditwheel_policies("manylinux")
    assert len(policies) > 10
    for policy in policies:
        name = str(policy["name"])
        major, minor = (int(p) for p in name.split("_")[1:3])
        assert manylinux_allowed((major, minor)) == set(policy["lib_whitelist"]), name  # type: ignore[arg-type]


def test_musllinux_allow_list_is_auditwheels() -> None:
    for policy in auditwheel_policies("musllinux"):
        assert set(policy["lib_whitelist"]) == MUSLLINUX_ALLOWED  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("machine", "bits", "glibc", "links", "tag"),
    [
        ("x86_64", 64, (2, 14), True, "manylinux_2_17_x86_64"),
        ("x86_64", 64, (2, 34), True, "manylinux_2_34_x86_64"),
        ("aarch64", 64, None, True, "manylinux_2_17_aarch64"),
        ("i386", 32, (2, 3), True, "manylinux_2_17_i686"),
        ("x86_64", 64, None, False, "linux_x86_64"),
    ],
)
def test_linux_tag(machine: str, bits: int, glibc: tuple[int, int] | None, links: bool, tag: str) -> None:
    assert linux_tag(machine, bits, glibc, links) == tag
    parse_tag(f"py3-none-{tag}")


def test_linux_tag_refusals() -> None:
    with pytest.raises(TagError, match="x32"):
        linux_tag("x86_64", 32, (2, 17), True)
    with pytest.raises(TagError, match="'sparc'.*known:"):
        linux_tag("sparc", 32, None, False)


@pytest.mark.parametrize(
    ("machine", "tag"),
    [("x86_64", "win_amd64"), ("i386", "win32"), ("arm64", "win_arm64"), ("aarch64", "win_arm64")],
)
def test_windows_tag(machine: str, tag: str) -> None:
    assert windows_tag(machine) == tag
    parse_tag(f"py3-none-{tag}")


def test_windows_tag_refuses_unknown_machines() -> None:
    with pytest.raises(TagError, match="'ia64'"):
        windows_tag("ia64")


# --- macOS: the tag is judged by packaging.tags.mac_platforms, the list pip uses ----------

HOSTS = [(10, minor) for minor in range(9, 16)] + [(major, 0) for major in range(11, 16)]


def installable_on(tag: str, host: tuple[int, int], arch: str) -> bool:
    return tag in set(mac_platforms(host, arch))


@pytest.mark.parametrize(
    ("slices", "tag"),
    [
        ([("x86_64", "10.9")], "macosx_10_9_x86_64"),
        ([("x86_64", "10.13")], "macosx_10_13_x86_64"),
        ([("arm64", "11.0")], "macosx_11_0_arm64"),
        ([("arm64", "10.15")], "macosx_11_0_arm64"),  # every Apple silicon Mac runs 11.0+
        ([("arm64", "11.3")], "macosx_12_0_arm64"),  # pip takes only <major>_0 from 11 on
        ([("x86_64", "10.9"), ("arm64", "11.0")], "macosx_10_9_universal2"),
        ([("arm64", "11.0"), ("x86_64", "10.13")], "macosx_10_13_universal2"),
        ([("x86_64", "10.9"), ("arm64", "13.0")], "macosx_13_0_universal2"),
    ],
)
def test_macos_tag(slices: list[tuple[str, str]], tag: str) -> None:
    assert macos_tag(slices) == tag  # type: ignore[arg-type]
    parse_tag(f"py3-none-{tag}")


@given(
    arch=st.sampled_from(["x86_64", "arm64", "universal2"]),
    needs=st.sampled_from(HOSTS + [(11, 3), (12, 6), (10, 4)]),
)
def test_macos_tag_installs_exactly_where_the_library_loads(arch: str, needs: tuple[int, int]) -> None:
    """On every host version >= the minimum OS, pip takes the wheel; below it, never."""
    text = f"{needs[0]}.{needs[1]}"
    slices = [("x86_64", text), ("arm64", text)] if arch == "universal2" else [(arch, text)]
    tag = macos_tag(slices)  # type: ignore[arg-type]
    for host_arch in (["x86_64", "arm64"] if arch == "universal2" else [arch]):
        for host in HOSTS:
            if host_arch == "arm64" and host < (11, 0):
                continue  # no such Mac
            loads = host >= needs
            installs = installable_on(tag, host, host_arch)
            assert not (installs and not loads), (tag, host, host_arch)  # never promised too early
            # and never refused on a host of the tag's own version or later
            tag_version = tuple(int(p) for p in tag.split("_")[1:3])
            if host >= tag_version:
                assert installs, (tag, host, host_arch)


def test_macos_tag_refusals() -> None:
    with pytest.raises(TagError, match="universal2"):
        macos_tag([("i386", "10.5"), ("x86_64", "10.5")])
    with pytest.raises(TagError, match="'ppc'"):
        macos_tag([("ppc", "10.4")])
    with pytest.raises(TagError, match="no minimum macOS version"):
        macos_tag([("arm64", None)])
    with pytest.raises(TagError, match="'eleven'"):
        macos_tag([("arm64", "eleven")])


@pytest.mark.parametrize(
    ("fmt", "needed", "tag", "allowed"),
    [
        ("ELF", "libc.so.6", "manylinux_2_17_x86_64", True),
        ("ELF", "libstdc++.so.6", "manylinux_2_17_x86_64", True),
        ("ELF", "ld-linux-x86-64.so.2", "manylinux_2_17_x86_64", True),
        ("ELF", "libmvec.so.1", "manylinux_2_17_x86_64", False),  # only from manylinux_2_24
        ("ELF", "libmvec.so.1", "manylinux_2_28_x86_64", True),
        ("ELF", "libssl.so.3", "manylinux_2_28_x86_64", False),
        ("ELF", "libc.so", "linux_x86_64", True),
        ("PE", "KERNEL32.dll", "win_amd64", True),
        ("PE", "api-ms-win-crt-runtime-l1-1-0.dll", "win_amd64", True),
        ("PE", "api-ms-onecoreuap-print-render-l1-1-0.dll", "win_amd64", True),
        ("PE", "ext-ms-win-gdi-draw-l1-1-0.dll", "win_amd64", True),
        ("PE", "VCRUNTIME140.dll", "win_amd64", True),
        ("PE", "MSVCP140.dll", "win_amd64", False),
        ("PE", "zlib1.dll", "win_amd64", False),
        ("Mach-O", "/usr/lib/libSystem.B.dylib", "macosx_11_0_arm64", True),
        ("Mach-O", "/System/Library/Frameworks/Accelerate.framework/Versions/A/Accelerate", "macosx_11_0_arm64", True),
        ("Mach-O", "/usr/local/lib/libz.1.dylib", "macosx_11_0_arm64", False),
        ("Mach-O", "@rpath/libgfortran.5.dylib", "macosx_11_0_arm64", False),
    ],
)
def test_allowed_system_libraries(fmt: str, needed: str, tag: str, allowed: bool) -> None:
    assert is_allowed_system_library(fmt, needed, tag) is allowed
