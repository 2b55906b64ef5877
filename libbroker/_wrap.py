"""``libbroker wrap``: turn a shared library into a provider wheel.

The wheel holds one package, ``libbroker_provider_<name>/``, with the library
under ``lib/`` (named by its soname, the name the dynamic linker and libbroker
expect), the ``libbroker-provider.toml`` manifest and optionally a spec; its
metadata declares the entry point ``[libbroker.providers] <name> = <package>``.
The archive and its RECORD are written by ``wheel.wheelfile.WheelFile`` and the
names are checked with ``packaging`` so the result is what pip expects.

Cold path.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from ._errors import BrokerError, IncompatibleLibraryError, SpecError
from ._providers import GROUP, MANIFEST

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._binary import BinaryInfo

__all__ = ["wrap"]

# ELF machine (as _binary names it) -> the architecture part of a wheel platform tag.
_WHEEL_ARCH = {
    "x86_64": "x86_64",
    "i386": "i686",
    "aarch64": "aarch64",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "arm": "armv7l",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}
# The oldest manylinux baseline still built for every architecture (manylinux2014).
_MANYLINUX_FLOOR = (2, 17)


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escaping is a subset TOML accepts."""
    import json

    return json.dumps(value, ensure_ascii=False)


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_+.\-]*", name or ""):
        raise SpecError(
            f"expected a link name such as 'z' or 'openblas' (letters, digits, '_', '+', '.', '-'), "
            f"found {name!r}",
            path="--name",
        )
    if name.startswith("lib") and re.search(r"\.(so|dylib|dll)\b", name):
        stem = re.sub(r"\.(so|dylib|dll).*$", "", name[3:])
        raise SpecError(
            f"expected the link name, not a file name: found {name!r}; fix: use --name {stem}",
            path="--name",
        )
    return name


def _check_version(version: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion as exc:
        raise SpecError(
            f"expected a PEP 440 version such as '1.3.1', found {version!r}", path="--version"
        ) from exc


def _read_library(lib_path: str) -> BinaryInfo:
    from ._binary import read_binary

    if not os.path.isfile(lib_path):
        raise IncompatibleLibraryError(
            lib_path, "expected a shared library file, found nothing there" if not os.path.exists(lib_path)
            else "expected a shared library file, found something else (a directory?)"
        )
    info = read_binary(lib_path)  # InvalidBinaryError (an IncompatibleLibraryError) for non-ELF
    if info.elf_type != "shared":
        raise IncompatibleLibraryError(
            lib_path,
            f"expected a shared library (ELF type 'shared'), found ELF type {info.elf_type!r}",
            fix="pass the .so file the linker builds with -shared",
        )
    return info


def _platform_tag(info: BinaryInfo, lib_path: str) -> str:
    from packaging.tags import parse_tag

    arch = _WHEEL_ARCH.get(info.machine_name)
    if arch is None:
        raise IncompatibleLibraryError(
            lib_path,
            f"no wheel platform tag is known for machine {info.machine_name!r} "
            f"(known: {', '.join(sorted(_WHEEL_ARCH))})",
        )
    if arch == "x86_64" and info.elf_class != 64:
        raise IncompatibleLibraryError(
            lib_path, "expected a 64-bit x86_64 library, found a 32-bit (x32) one"
        )
    glibc = info.glibc_required
    if glibc is None and "libc.so.6" in info.needed:
        glibc = _MANYLINUX_FLOOR  # links glibc but needs no versioned symbol: any glibc serves
    if glibc is None:
        # Not known to be a glibc library (musl, or no libc at all): claim no more than Linux.
        tag = f"linux_{arch}"
    else:
        major, minor = max(glibc, _MANYLINUX_FLOOR)
        tag = f"manylinux_{major}_{minor}_{arch}"
    parse_tag(f"py3-none-{tag}")  # raises on a malformed tag, never expected
    return tag


def _check_spec(spec: str, name: str) -> tuple[str, dict[str, str]]:
    """Validate the spec file; return its real path and the symbol affixes it sets."""
    from ._spec import Spec

    parsed = Spec.from_file(spec)  # SpecError with file and line for any defect
    if name not in parsed.names:
        raise SpecError(
            f"the spec's [library] names {parsed.names!r} do not include the wrapped library's "
            f"link name {name!r}; fix: add {name!r} to names, or pass the matching --name",
            path=spec,
        )
    # Only affixes the spec actually sets: an empty one is the default, not a claim
    # about the binary, and the manifest's silence leaves the decision to each spec.
    affixes = {"symbol-prefix": parsed.symbol_prefix, "symbol-suffix": parsed.symbol_suffix}
    return os.path.realpath(spec), {k: v for k, v in affixes.items() if v}


def _manifest(
    name: str, version: str, soname: str | None, file: str, affixes: dict[str, str], specs: list[str]
) -> str:
    lines = [
        "# Written by `libbroker wrap`; read by libbroker without importing this package.",
        "[[library]]",
        f"name = {_toml_string(name)}",
        f"file = {_toml_string(file)}",
        f"version = {_toml_string(version)}",
    ]
    if soname is not None:
        lines.append(f"soname = {_toml_string(soname)}")
    for key, value in affixes.items():
        lines.append(f"{key} = {_toml_string(value)}")
    if specs:
        lines.append("specs = [" + ", ".join(_toml_string(s) for s in specs) + "]")
    return "\n".join(lines) + "\n"


def wrap(
    lib_path: str,
    *,
    name: str,
    version: str,
    out_dir: str,
    spec: str | None = None,
    dist_name: str | None = None,
) -> str:
    """Build a provider wheel for the shared library *lib_path*; return the wheel's path."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    try:
        from wheel.wheelfile import WheelFile
    except ImportError as exc:
        raise BrokerError("libbroker wrap needs the 'wheel' package; fix: pip install wheel") from exc

    name = _check_name(name)
    wheel_version = _check_version(version)
    lib_real = os.path.realpath(os.path.abspath(lib_path))
    info = _read_library(lib_real)
    tag = _platform_tag(info, lib_path)
    spec_real, affixes = _check_spec(spec, name) if spec is not None else (None, {})

    dist = canonicalize_name(dist_name if dist_name is not None else f"libbroker-provider-{name}")
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", dist):
        raise SpecError(f"expected a distribution name, found {dist_name!r}", path="--dist-name")
    package = "libbroker_provider_" + re.sub(r"[^A-Za-z0-9]+", "_", name).lower()
    soname = info.soname if info.soname and "/" not in info.soname else None
    lib_file = f"lib/{soname or os.path.basename(lib_real)}"
    spec_files = [os.path.basename(spec_real)] if spec_real is not None else []
    if spec_files and spec_files[0] in ("__init__.py", MANIFEST):
        raise SpecError(f"a spec cannot be named {spec_files[0]!r} (it would clash)", path=spec)

    wheel_name = f"{dist.replace('-', '_')}-{wheel_version}-py3-none-{tag}.whl"
    parse_wheel_filename(wheel_name)  # raises InvalidWheelFilename for anything pip would refuse
    dist_info = f"{dist.replace('-', '_')}-{wheel_version}.dist-info"
    metadata = (
        "Metadata-Version: 2.1\n"
        f"Name: {dist}\n"
        f"Version: {wheel_version}\n"
        f"Summary: The {name!r} shared library ({soname or os.path.basename(lib_real)} {version}) "
        "as a libbroker provider\n"
    )
    wheel_meta = (
        "Wheel-Version: 1.0\n"
        "Generator: libbroker wrap\n"
        "Root-Is-Purelib: false\n"
        f"Tag: py3-none-{tag}\n"
    )
    entry_points = f"[{GROUP}]\n{name} = {package}\n"

    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(os.path.abspath(out_dir), wheel_name)
    # Build beside the target and rename: a half-written wheel never carries the real name.
    # (A temporary directory, not a temporary name: WheelFile derives the .dist-info
    # path from the file name.)
    tmp_dir = tempfile.mkdtemp(prefix=".libbroker-wrap-", dir=os.path.dirname(target))
    tmp_wheel = os.path.join(tmp_dir, wheel_name)
    try:
        with WheelFile(tmp_wheel, "w") as wf:
            wf.writestr(f"{package}/__init__.py", "")
            wf.write(lib_real, f"{package}/{lib_file}")
            wf.writestr(
                f"{package}/{MANIFEST}",
                _manifest(name, version, soname, lib_file, affixes, spec_files),
            )
            if spec_real is not None:
                wf.write(spec_real, f"{package}/{spec_files[0]}")
            wf.writestr(f"{dist_info}/METADATA", metadata)
            wf.writestr(f"{dist_info}/WHEEL", wheel_meta)
            wf.writestr(f"{dist_info}/entry_points.txt", entry_points)
        os.replace(tmp_wheel, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return target
