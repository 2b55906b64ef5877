"""Wheel platform tags and system-library allow-lists for `libbroker wrap`, as pure functions.

Inputs are plain facts read from a binary (format, machine, word size, glibc
version needed, Mach-O minimum OS per slice); nothing here opens a file.

- Linux: ``manylinux_<glibc major>_<minor>_<arch>`` from the newest ``GLIBC_x.y``
  symbol version needed (at least 2.17, manylinux2014's baseline), ``linux_<arch>``
  when the library is not known to use glibc. Allowed system libraries:
  manylinux's policy (`MANYLINUX_ALLOWED`, vendored from auditwheel, see below) plus
  glibc's dynamic loaders; musllinux's for a library not linked against glibc.
- Windows: ``win_amd64``, ``win32``, ``win_arm64`` from the PE machine. Allowed: the
  API sets (``api-ms-*``, ``ext-ms-*``), the Universal CRT, the VC runtime that
  CPython itself ships (``vcruntime140.dll``, ``vcruntime140_1.dll``), and
  `WINDOWS_SYSTEM_DLLS`.
- macOS: ``macosx_<major>_<minor>_<arch>`` from the minimum OS version
  (``LC_BUILD_VERSION``/``LC_VERSION_MIN_MACOSX``), ``universal2`` for a fat file
  with x86_64 and arm64 slices. Allowed: install names under ``/usr/lib/`` and
  ``/System/`` (delocate's rule; they live in the dyld shared cache).

The manylinux allow-list is a vendored copy of ``lib_whitelist`` in
``auditwheel/policy/manylinux-policy.json`` of auditwheel 6.8.2 (MIT licence),
written as the common list plus the two additions by glibc version; the test
suite compares it with the installed auditwheel's JSON for every policy.
"""

from __future__ import annotations

__all__ = [
    "MANYLINUX_ALLOWED",
    "MUSLLINUX_ALLOWED",
    "WINDOWS_SYSTEM_DLLS",
    "TagError",
    "is_allowed_system_library",
    "linux_tag",
    "macos_tag",
    "manylinux_allowed",
    "windows_tag",
]

# --- Linux ---------------------------------------------------------------------------

# auditwheel 6.8.2, manylinux-policy.json "lib_whitelist": the same in every policy but
# for libexpat.so.1 (from manylinux_2_12) and libmvec.so.1 (from manylinux_2_24).
MANYLINUX_ALLOWED = frozenset({
    "libGL.so.1", "libICE.so.6", "libSM.so.6", "libX11.so.6", "libXext.so.6", "libXrender.so.1",
    "libanl.so.1", "libatomic.so.1", "libc.so.6", "libdl.so.2", "libgcc_s.so.1",
    "libglib-2.0.so.0", "libgobject-2.0.so.0", "libgthread-2.0.so.0", "libm.so.6", "libnsl.so.1",
    "libpthread.so.0", "libresolv.so.2", "librt.so.1", "libstdc++.so.6", "libutil.so.1", "libz.so.1",
})  # fmt: skip
_MANYLINUX_ADDED = (((2, 12), "libexpat.so.1"), ((2, 24), "libmvec.so.1"))
# auditwheel 6.8.2, musllinux-policy.json (musllinux_1_1 and _1_2).
MUSLLINUX_ALLOWED = frozenset({"libc.so", "libz.so.1"})
# glibc's and musl's dynamic loaders: part of the C library, never bundled (some
# libraries name them for __tls_get_addr); auditwheel treats them as the interpreter.
_LINUX_LOADERS = ("ld-linux", "ld64.so.", "ld.so.", "ld-musl-")

# ELF machine (as libbroker._binary names it) -> the architecture of a wheel tag.
_LINUX_ARCH = {
    "x86_64": "x86_64", "i386": "i686", "aarch64": "aarch64", "ppc64le": "ppc64le", "ppc64": "ppc64",
    "s390x": "s390x", "arm": "armv7l", "riscv64": "riscv64", "loongarch64": "loongarch64",
}  # fmt: skip
MANYLINUX_FLOOR = (2, 17)  # manylinux2014: the oldest baseline still built for every architecture


class TagError(ValueError):
    """The facts admit no wheel tag; the message says which fact and what was expected."""


def manylinux_allowed(glibc: tuple[int, int]) -> frozenset[str]:
    """The system libraries policy ``manylinux_<glibc>`` lets a wheel use without bundling."""
    extra = {lib for since, lib in _MANYLINUX_ADDED if glibc >= since}
    return MANYLINUX_ALLOWED | extra


def linux_tag(machine: str, bits: int, glibc: tuple[int, int] | None, links_glibc: bool) -> str:
    """``manylinux_2_X_<arch>`` or ``linux_<arch>``.

    *glibc*: the newest ``GLIBC_x.y`` the library needs (None: none versioned);
    *links_glibc*: ``libc.so.6`` is among its ``DT_NEEDED``. Raises `TagError` for an
    unknown machine or an x32 library.
    """
    arch = _LINUX_ARCH.get(machine)
    if arch is None:
        raise TagError(f"no wheel platform tag is known for machine {machine!r} (known: {', '.join(sorted(_LINUX_ARCH))})")
    if arch == "x86_64" and bits != 64:
        raise TagError("expected a 64-bit x86_64 library, found a 32-bit (x32) one")
    if glibc is None and links_glibc:
        glibc = MANYLINUX_FLOOR  # links glibc but needs no versioned symbol: any glibc serves
    if glibc is None:
        return f"linux_{arch}"  # not known to be a glibc library: claim no more than Linux
    major, minor = max(glibc, MANYLINUX_FLOOR)
    return f"manylinux_{major}_{minor}_{arch}"


# --- Windows ----------------------------------------------------------------------------

_WINDOWS_TAG = {"x86_64": "win_amd64", "amd64": "win_amd64", "i386": "win32", "arm64": "win_arm64", "aarch64": "win_arm64"}

# DLLs in System32 on every Windows that CPython 3.10+ supports (Windows 8.1/10/11), which
# no wheel bundles: the Win32 API, the CRT that is part of Windows, and the runtime that
# python.org's CPython installs beside python.exe. msvcp140.dll and friends are not here:
# the Visual C++ redistributable is not guaranteed, so a library needing them must say
# where they come from (--requires).
WINDOWS_SYSTEM_DLLS = frozenset({
    "advapi32.dll", "bcrypt.dll", "cfgmgr32.dll", "comctl32.dll", "comdlg32.dll", "crypt32.dll",
    "d2d1.dll", "d3d11.dll", "d3d12.dll", "d3d9.dll", "dbghelp.dll", "dnsapi.dll", "dwmapi.dll",
    "dwrite.dll", "dxgi.dll", "gdi32.dll", "gdiplus.dll", "glu32.dll", "imm32.dll", "iphlpapi.dll",
    "kernel32.dll", "kernelbase.dll", "mpr.dll", "msimg32.dll", "msvcrt.dll", "mswsock.dll",
    "ncrypt.dll", "netapi32.dll", "normaliz.dll", "ntdll.dll", "ole32.dll", "oleacc.dll",
    "oleaut32.dll", "opengl32.dll", "powrprof.dll", "psapi.dll", "rpcrt4.dll", "secur32.dll",
    "setupapi.dll", "shell32.dll", "shlwapi.dll", "ucrtbase.dll", "user32.dll", "userenv.dll",
    "uxtheme.dll", "vcruntime140.dll", "vcruntime140_1.dll", "version.dll", "winhttp.dll",
    "wininet.dll", "winmm.dll", "winspool.drv", "wintrust.dll", "wldap32.dll", "ws2_32.dll",
    "wsock32.dll", "wtsapi32.dll",
})  # fmt: skip
_API_SET_PREFIXES = ("api-ms-", "ext-ms-")  # api-ms-win-*, api-ms-onecoreuap-*, ext-ms-*


def windows_tag(machine: str) -> str:
    """``win_amd64``, ``win32`` or ``win_arm64`` for a PE machine; `TagError` otherwise."""
    tag = _WINDOWS_TAG.get(machine)
    if tag is None:
        raise TagError(f"no Windows wheel tag is known for PE machine {machine!r} (known: x86_64, i386, arm64)")
    return tag


# --- macOS ------------------------------------------------------------------------------

_MAC_ARCH = {"x86_64": "x86_64", "arm64": "arm64", "aarch64": "arm64", "i386": "i386"}


def _mac_version(text: str | None, arch: str) -> tuple[int, int]:
    """The (major, minor) a wheel tag can say for a slice needing macOS *text* on *arch*.

    From macOS 11 on, pip accepts only ``<major>_0`` tags (packaging.tags.mac_platforms):
    a library needing 11.3 cannot be tagged 11_3 (no installer would take it), and
    11_0 would promise it loads on 11.0: it is tagged 12_0. Apple silicon starts at 11.0.
    """
    if not text:
        raise TagError(f"the {arch} slice states no minimum macOS version (LC_BUILD_VERSION or LC_VERSION_MIN_MACOSX)")
    try:
        parts = [int(p) for p in text.split(".")[:2]]
    except ValueError:
        raise TagError(f"expected a minimum macOS version such as '11.0', found {text!r}") from None
    major, minor = (parts + [0])[:2]
    if arch == "arm64" and (major, minor) < (11, 0):
        major, minor = 11, 0
    if major >= 11 and minor > 0:
        major, minor = major + 1, 0
    return major, minor


def macos_tag(slices: list[tuple[str, str | None]]) -> str:
    """``macosx_<major>_<minor>_<arch>`` or ``..._universal2`` from ``[(arch, min_os), ...]``.

    One slice per architecture of the file (a thin file: one). x86_64 + arm64 is
    ``universal2``, tagged with the x86_64 slice's version unless the arm64 slice
    needs more than 11.0 (every arm64 Mac runs 11.0 or later). Raises `TagError`
    for other architecture mixes and unknown architectures.
    """
    archs: dict[str, str | None] = {}
    for machine, min_os in slices:
        arch = _MAC_ARCH.get(machine)
        if arch is None:
            raise TagError(f"no macOS wheel tag is known for architecture {machine!r} (known: x86_64, arm64)")
        archs[arch] = min_os
    if set(archs) == {"x86_64", "arm64"}:
        x86 = _mac_version(archs["x86_64"], "x86_64")
        arm = _mac_version(archs["arm64"], "arm64")
        major, minor = x86 if arm <= (11, 0) else max(x86, arm)
        return f"macosx_{major}_{minor}_universal2"
    if len(archs) != 1:
        raise TagError(f"expected a thin file or an x86_64+arm64 universal2 file, found slices {sorted(archs)}")
    [(arch, min_os)] = archs.items()
    major, minor = _mac_version(min_os, arch)
    return f"macosx_{major}_{minor}_{arch}"


# --- dependencies --------------------------------------------------------------------------


def is_allowed_system_library(fmt: str, needed: str, tag: str) -> bool:
    """True when the wheel policy of *tag* lets a library depend on *needed* without bundling it.

    *fmt*: "ELF", "PE" or "Mach-O"; *needed*: the name as written in the binary
    (``DT_NEEDED``, a PE import, an ``LC_LOAD_DYLIB`` install name).
    """
    if fmt == "PE":
        lower = needed.lower()
        return lower.startswith(_API_SET_PREFIXES) or lower in WINDOWS_SYSTEM_DLLS
    if fmt == "Mach-O":
        return needed.startswith(("/usr/lib/", "/System/"))
    if needed.startswith(_LINUX_LOADERS):
        return True
    if tag.startswith("manylinux_"):
        major, minor = (int(p) for p in tag.split("_")[1:3])
        return needed in manylinux_allowed((major, minor))
    return needed in MUSLLINUX_ALLOWED or needed in MANYLINUX_ALLOWED
