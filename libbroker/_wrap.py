"""``libbroker wrap``: turn a shared library (ELF, PE DLL or Mach-O dylib) into a provider wheel.

The wheel holds one package, ``libbroker_provider_<name>/``, with the library
under ``lib/`` (named by its soname / install name / DLL name: the name the
loader and libbroker expect), the ``libbroker-provider.toml`` manifest and
optionally a spec; its metadata declares the entry point
``[libbroker.providers] <name> = <package>`` and a ``Requires-Dist`` for each
``--requires``. The archive and its RECORD are written by
``wheel.wheelfile.WheelFile``; names are checked with ``packaging``.

Checks, each refusing with the fact found and the fix (design.md 5.3, issue 9):
the file is a shared library; ``--name`` matches its soname/install name;
every dependency is a system library the platform's wheel policy allows
(`libbroker._wheeltags`) or is provided by a ``--requires`` distribution;
``--version`` agrees with the version the library states, where that is known
without loading it (`libbroker._versions.best_version`: an already-mapped copy,
the package database, a product-numbered file name): wrap never runs the code
it packs.

Cold path.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from ._errors import BrokerError, IncompatibleLibraryError, SpecError
from ._providers import GROUP, MANIFEST
from ._wheeltags import (
    TagError,
    is_allowed_system_library,
    linux_tag,
    macos_tag,
    windows_tag,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from packaging.requirements import Requirement

__all__ = ["Facts", "link_name_matches", "wrap"]

_FORMATS = {"elf": "ELF", "pe": "PE", "mach-o": "Mach-O", "macho": "Mach-O"}
_SHARED_KINDS = ("shared", "dylib", "dll")
_EXPECTED_FILE = {
    "ELF": "an ELF .so built with -shared",
    "PE": "a DLL",
    "Mach-O": "a Mach-O dylib (MH_DYLIB, built with -dynamiclib)",
}


class Facts:
    """What wrap needs from a binary, read through `libbroker._binary.read_binary`.

    ``format`` ("ELF"/"PE"/"Mach-O"), ``machine``, ``bits``, ``kind``, ``soname``,
    ``needed`` (every slice's, in order, once), ``glibc`` ((major, minor) or None),
    ``slices`` ([(machine, min_os)]; one entry for a thin Mach-O file).
    """

    __slots__ = ("bits", "format", "glibc", "kind", "machine", "needed", "slices", "soname")

    def __init__(self, info: object) -> None:
        fmt = str(getattr(info, "format", "elf"))
        self.format = _FORMATS.get(fmt.lower(), fmt)
        self.machine = str(getattr(info, "machine_name", ""))
        self.bits = int(getattr(info, "bits", None) or getattr(info, "elf_class", 0) or 0)
        self.kind = str(getattr(info, "kind", None) or getattr(info, "elf_type", "none"))
        soname = getattr(info, "soname", None)
        self.soname = str(soname) if soname else None
        slices = list(getattr(info, "slices", None) or [])
        self.needed: list[str] = []
        for part in [info, *slices]:
            for name in getattr(part, "needed", None) or []:
                if name not in self.needed:
                    self.needed.append(str(name))
        glibc = getattr(info, "glibc_required", None)
        self.glibc: tuple[int, int] | None = (int(glibc[0]), int(glibc[1])) if glibc else None
        if slices:
            self.slices = [(str(s.machine_name), getattr(s, "min_os", None)) for s in slices]
            self.kind = str(getattr(slices[0], "kind", self.kind))
        else:
            self.slices = [(self.machine, getattr(info, "min_os", None))]


def platform_tag(facts: Facts) -> str:
    """The wheel platform tag for *facts* (`TagError` when none fits)."""
    if facts.format == "PE":
        return windows_tag(facts.machine)
    if facts.format == "Mach-O":
        return macos_tag(facts.slices)
    return linux_tag(facts.machine, facts.bits, facts.glibc, "libc.so.6" in facts.needed)


def link_name_matches(fmt: str, filename: str, name: str) -> bool | None:
    """Does *filename* (soname, install name, DLL name) belong to link name *name*?

    None when the file name follows no naming rule of its platform, so it tells
    nothing. Rules (design.md 5.3): ``lib<name>.so[.N...]``;
    ``lib<name>[.N...].dylib``; ``<name>.dll``, ``lib<name>.dll``, ``lib<name>-<N>.dll``.
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if fmt == "PE":
        lower, wanted = base.lower(), name.lower()
        if not lower.endswith(".dll"):
            return None
        return lower in (f"{wanted}.dll", f"lib{wanted}.dll") or bool(
            re.fullmatch(rf"lib{re.escape(wanted)}-\d+\.dll", lower)
        )
    if fmt == "Mach-O":
        from ._platforms._macos import link_name_of, matches_link_name

        return matches_link_name(base, name) if link_name_of(base) is not None else None
    from ._discovery import link_name_of as elf_link_name
    from ._discovery import matches_link_name as elf_matches

    return elf_matches(base, name) if elf_link_name(base) is not None else None


def _link_name_guess(fmt: str, filename: str) -> str | None:
    """The link name a file name suggests, for the fix of a mismatch."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if fmt == "PE":
        m = re.fullmatch(r"(?:lib)?(.+?)(?:-\d+)?\.dll", base, re.IGNORECASE)
        return m.group(1) if m else None
    if fmt == "Mach-O":
        from ._platforms._macos import link_name_of

        return link_name_of(base)
    from ._discovery import link_name_of as elf_link_name

    return elf_link_name(base)


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
    if (name.startswith("lib") and re.search(r"\.(so|dylib|dll)\b", name)) or name.lower().endswith(".dll"):
        stem = re.sub(r"(?i)\.(so|dylib|dll).*$", "", name)
        stem = stem.removeprefix("lib")
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


def _parse_requires(requires: Sequence[str]) -> list[Requirement]:
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for text in requires:
        try:
            out.append(Requirement(text))
        except InvalidRequirement as exc:
            raise SpecError(
                f"expected a distribution such as 'libbroker-provider-z' or 'libbroker-provider-z>=1.3', "
                f"found {text!r} ({exc})",
                path="--requires",
            ) from exc
    return out


def _read_library(lib_path: str) -> Facts:
    from ._binary import read_binary

    if not os.path.isfile(lib_path):
        raise IncompatibleLibraryError(
            lib_path, "expected a shared library file, found nothing there" if not os.path.exists(lib_path)
            else "expected a shared library file, found something else (a directory?)"
        )
    # InvalidBinaryError (an IncompatibleLibraryError) for text, linker scripts, truncated files.
    facts = Facts(read_binary(lib_path))
    if facts.kind not in _SHARED_KINDS:
        raise IncompatibleLibraryError(
            lib_path,
            f"expected a shared library ({_EXPECTED_FILE.get(facts.format, 'a .so, .dylib or .dll')}), "
            f"found {facts.format} type {facts.kind!r}",
            fix="pass the shared library the linker builds (-shared / -dynamiclib / a .dll)",
        )
    return facts


# Characters Windows forbids in a file name (besides the separators and controls).
_WINDOWS_FORBIDDEN = '<>:"|?*'


def file_name_problem(fmt: str, name: str) -> str | None:
    """Why *name* (a soname, DLL export name or install-name component) cannot be the
    file name of the library inside a wheel, or None.

    The loader finds the library by that name, and pip's RECORD must list it:
    importlib.metadata reads RECORD with ``str.splitlines`` before ``csv``, so a line
    break (``\\n``, ``\\r``, U+2028 ...) splits the entry and nothing vouches for the file.
    """
    if name in ("", ".", ".."):
        return "not a file name"
    separators = "/" if fmt == "Mach-O" else "/\\"  # an install name's directories are cut off
    for char in name:
        if char in separators:
            return f"it holds the path separator {char!r}"
        if not char.isprintable():
            return f"it holds the control or line-break character {char!r}"
        if fmt == "PE" and char in _WINDOWS_FORBIDDEN:
            return f"it holds {char!r}, which Windows forbids in file names"
    return None


def _wheel_file_name(facts: Facts, lib_real: str) -> str:
    """The name the library gets under ``lib/``: its soname / install name's last
    component / DLL export name, else its own file name; refused when not a plain name."""
    what = {"Mach-O": "install name", "PE": "export name"}.get(facts.format, "soname")
    subject = facts.soname
    if not subject:
        what, subject = "file name", os.path.basename(lib_real)
    candidate = subject.rsplit("/", 1)[-1] if facts.format == "Mach-O" else subject
    problem = file_name_problem(facts.format, candidate)
    if problem is not None:
        fix = {
            "soname": "relink the library with a plain soname (gcc -Wl,-soname,libNAME.so.N)",
            "install name": "give the library a plain install name "
                            "(install_name_tool -id @rpath/libNAME.N.dylib)",
            "export name": "relink the DLL under a plain name (NAME.dll)",
            "file name": "rename the file to a plain name (libNAME.so.N)",
        }[what]
        raise IncompatibleLibraryError(
            lib_real,
            f"its {what} {subject!r} cannot be a file name ({problem}); the library is installed "
            "and found under that name",
            fix=fix,
        )
    return candidate


def _check_link_name(facts: Facts, name: str, lib_path: str) -> None:
    """--name must be the link name of the soname (else of the file name)."""
    subject, what = (facts.soname, "soname") if facts.soname else (os.path.basename(lib_path), "file name")
    if facts.format == "Mach-O" and facts.soname:
        what = "install name"
    elif facts.format == "PE" and facts.soname:
        what = "export name"
    if link_name_matches(facts.format, subject, name) is False:
        guess = _link_name_guess(facts.format, subject)
        fix = f"use --name {guess}" if guess else "pass the library whose link name this is"
        raise SpecError(
            f"the library's {what} is {subject!r}, whose link name is {guess!r}, not {name!r}; fix: {fix}",
            path="--name",
        )


def _dist_provides(req: Requirement, link: str | None, needed: str) -> bool:
    """Does the distribution *req* names provide the dependency *needed* (link name *link*)?

    Yes when it is installed and declares a `libbroker.providers` entry point
    for that link name, or when it is named after the library (wrap's default
    ``libbroker-provider-<link>``, or ``<link>``, ``<link>-...``, ``<link><digits>``,
    ``...-<link>``; separators and case as PEP 503 normalises them).
    """
    from importlib import metadata

    from packaging.utils import canonicalize_name

    if link is None:
        return False
    try:
        dist = metadata.distribution(req.name)
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None and any(ep.group == GROUP and ep.name == link for ep in dist.entry_points):
        return True
    wanted = canonicalize_name(link.replace("_", "-")).strip("-")
    have = canonicalize_name(req.name)
    if not wanted:
        return False
    rest = have[len(wanted) :] if have.startswith(wanted) else None
    # "<link>", "<link>-anything", "<link><digits>" (scipy-openblas32), "anything-<link>"
    return rest is not None and (rest == "" or rest.startswith("-") or rest.isdigit()) or have.endswith("-" + wanted)


def _dependencies(
    facts: Facts, tag: str, requires: list[Requirement], lib_path: str
) -> list[tuple[str, str]]:
    """[(needed, distribution)] for each non-system dependency; refuses undeclared ones."""
    declared: list[tuple[str, str]] = []
    undeclared: list[str] = []
    for needed in facts.needed:
        if is_allowed_system_library(facts.format, needed, tag):
            continue
        link = _link_name_guess(facts.format, needed)
        dist = next((r.name for r in requires if _dist_provides(r, link, needed)), None)
        if dist is None:
            undeclared.append(needed)
        else:
            declared.append((needed, dist))
    if undeclared:
        policy = {"PE": "Windows (system DLLs and API sets)", "Mach-O": "macOS (/usr/lib and /System)"}.get(
            facts.format, "_".join(tag.split("_")[:3]) if tag.startswith("manylinux") else "Linux (manylinux and musllinux lists)"
        )
        given = ", ".join(r.name for r in requires) or "none"
        first = undeclared[0]
        link = _link_name_guess(facts.format, first) or "NAME"
        raise IncompatibleLibraryError(
            lib_path,
            f"depends on {', '.join(repr(u) for u in undeclared)}, which "
            f"{'is' if len(undeclared) == 1 else 'are'} neither a system library allowed by the {policy} "
            f"wheel policy nor provided by a distribution given with --requires (given: {given})",
            fix=f"wrap {first!r} as its own provider and pass --requires libbroker-provider-"
            f"{link.replace('_', '-').lower()} (an installed provider of link name {link!r} also counts)",
        )
    return declared


def _reported_version(lib_real: str, facts: Facts, name: str, spec: object | None) -> tuple[str, str] | None:
    """(version, source) the library states without being loaded here, or None (design.md 5.2).

    `libbroker._versions.best_version` without a handle: the library itself only
    when this process already maps it (an RTLD_NOLOAD probe), the package
    database that owns the file, or the file name of a library whose names carry
    the product version (zlib). Nothing is loaded: wrapping a file never runs its code.
    """
    try:
        from ._versions import best_version
    except ImportError:  # an older tree without the version sources
        return None
    prefix = str(getattr(spec, "symbol_prefix", "") or "")
    suffix = str(getattr(spec, "symbol_suffix", "") or "")
    function = getattr(spec, "version_function", None)
    return best_version(lib_real, name, facts.soname, None, function, prefix, suffix)


def _check_reported_version(given: str, reported: tuple[str, str] | None, lib_path: str) -> None:
    from packaging.version import Version

    if reported is None:
        return
    text, source = reported
    have, want = Version(text).release, Version(given).release  # text: parse_version_text output
    if want[: len(have)] != have:  # 1.3.1 and 1.3.1.post1/1.3.1.2 agree; 1.3 or 1.2.13 do not
        raise SpecError(
            f"the library {lib_path!r} is version {text} (source: {source}), not {given}; fix: --version {text}",
            path="--version",
        )


def _check_spec(spec: str, name: str) -> tuple[str, dict[str, str], object]:
    """Validate the spec file; return its real path, the symbol affixes it sets, the Spec."""
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
    return os.path.realpath(spec), {k: v for k, v in affixes.items() if v}, parsed


def _manifest(
    name: str, version: str, soname: str | None, file: str, affixes: dict[str, str], specs: list[str],
    dependencies: list[tuple[str, str]],
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
    for needed, dist in dependencies:
        # One table per dependency, attached to this [[library]]: the name as the
        # binary writes it, and the distribution (a Requires-Dist) that provides it.
        lines += ["", "[[library.dependencies]]", f"needed = {_toml_string(needed)}", f"provider = {_toml_string(dist)}"]
    return "\n".join(lines) + "\n"


def _default_dist(name: str) -> str:
    # "foo_" -> "libbroker-provider-foo": separators collapse, none at either end (PEP 508).
    return "libbroker-provider-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def wrap(
    lib_path: str,
    *,
    name: str,
    version: str,
    out_dir: str,
    spec: str | None = None,
    dist_name: str | None = None,
    requires: Sequence[str] = (),
) -> str:
    """Build a provider wheel for the shared library *lib_path*; return the wheel's path.

    *requires*: PEP 508 requirements (``libbroker-provider-a``, ``x>=1``), one per
    provider the library depends on. Raises `SpecError` for a bad ``--name``,
    ``--version``, ``--requires``, ``--dist-name`` or spec, and
    `IncompatibleLibraryError` for a file that is not a shared library, has no
    wheel tag, or depends on an undeclared non-system library.
    """
    from packaging.utils import canonicalize_name, parse_wheel_filename

    try:
        from wheel.wheelfile import WheelFile  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise BrokerError("libbroker wrap needs the 'wheel' package; fix: pip install wheel") from exc

    name = _check_name(name)
    wheel_version = _check_version(version)
    reqs = _parse_requires(requires)
    dist: str
    if dist_name is not None:
        dist = canonicalize_name(dist_name)
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", dist):
            raise SpecError(
                f"expected a distribution name (letters, digits, '-', '_', '.'; a letter or digit at "
                f"each end), found {dist_name!r}",
                path="--dist-name",
            )
    else:
        dist = _default_dist(name)
    lib_real = os.path.realpath(os.path.abspath(lib_path))
    facts = _read_library(lib_real)
    try:
        tag = platform_tag(facts)
    except TagError as exc:
        raise IncompatibleLibraryError(lib_path, str(exc)) from None
    file_name = _wheel_file_name(facts, lib_real)  # before anything else reads the name
    _check_link_name(facts, name, lib_path)
    spec_real, affixes, parsed = _check_spec(spec, name) if spec is not None else (None, {}, None)
    dependencies = _dependencies(facts, tag, reqs, lib_path)
    _check_reported_version(version, _reported_version(lib_real, facts, name, parsed), lib_path)

    package = "libbroker_provider_" + re.sub(r"[^A-Za-z0-9]+", "_", name).lower()
    soname = facts.soname
    lib_file = f"lib/{file_name}"
    spec_files = [os.path.basename(spec_real)] if spec_real is not None else []
    if spec_files and spec_files[0] in ("__init__.py", MANIFEST, file_name):
        raise SpecError(f"a spec cannot be named {spec_files[0]!r} (it would clash)", path=spec)

    wheel_name = f"{dist.replace('-', '_')}-{wheel_version}-py3-none-{tag}.whl"
    parse_wheel_filename(wheel_name)  # raises InvalidWheelFilename for anything pip would refuse
    dist_info = f"{dist.replace('-', '_')}-{wheel_version}.dist-info"
    metadata = (
        "Metadata-Version: 2.1\n"
        f"Name: {dist}\n"
        f"Version: {wheel_version}\n"
        f"Summary: The {name!r} shared library ({file_name} {version}) as a libbroker provider\n"
    ) + "".join(f"Requires-Dist: {r}\n" for r in reqs)
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
                _manifest(name, version, soname, lib_file, affixes, spec_files, dependencies),
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
