"""Versions from package databases, read without running the package manager (design.md 5.2).

`package_version(realpath)` gives ``(upstream version, "package:<manager>:<package>")`` for
the package that installed a library file:

- conda: the nearest ``conda-meta/`` above the file (``*.json``: ``name``, ``version``, ``files``);
- Homebrew: ``.../Cellar/<formula>/<version>/...`` with its ``INSTALL_RECEIPT.json``;
- dpkg: ``/var/lib/dpkg/status`` (installed packages' ``Version``) and ``info/<pkg>.list``;
- pacman: ``/var/lib/pacman/local/<pkg>-<ver>-<rel>/desc`` and ``files``;
- apk: ``/lib/apk/db/installed`` (``P:``, ``V:``, ``F:``/``R:`` records).

Only library file names are indexed (``*.so*``, ``*.dylib``, ``*.dll``, ``*.pyd``), at most
80 000 per database. Each index is built once per process and cached on disk
(libbroker._cache), keyed by the database's mtime/size: a package installed or removed
rebuilds it. Unreadable, oversized or corrupt records are skipped, never fatal.
"""

import os

from ._versions import _MAX_DIGITS, _pre_release, parse_version_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

DPKG_ADMIN_DIR = "/var/lib/dpkg"
PACMAN_LOCAL_DIR = "/var/lib/pacman/local"
APK_INSTALLED = "/lib/apk/db/installed"
# The kind names the entry shape: (stamp, {directory: {file name: package}}, {package:
# version}). A shape change takes a new name, so a file an older libbroker wrote is never
# read as the new shape (review F1); `_index_shape_ok` checks each entry field by field too.
_CACHE_KIND_DPKG = "versions-dpkg-bydir"
_CACHE_KIND_CONDA = "versions-conda-bydir"
_CACHE_KIND_PACMAN = "versions-pacman-bydir"
_CACHE_KIND_APK = "versions-apk-bydir"
# Library paths kept per database: bounds memory and the cache file (about 40 bytes a path
# once grouped by directory; libbroker._cache refuses files over 4 MiB).
_MAX_INDEX_FILES = 80_000
_MAX_LIST_BYTES = 64 << 20  # one dpkg .list, conda-meta JSON, pacman files; larger: skipped
_MAX_STATUS_BYTES = 256 << 20  # dpkg status, apk installed
_MAX_CONDA_PREFIXES = 16
_CONDA_DEPTH = 6  # <prefix>/lib/x.so ... <prefix>/lib/python3.X/site-packages/pkg/x.so
_REPACK_SUFFIXES = (".dfsg", ".ds", ".repack", ".orig")

# Where a distribution's package manager never installs a file: /tmp and /var/tmp (FHS
# 3.18 and 5.15; lintian's dir-or-file-in-tmp), /usr/local (Debian Policy 9.1.2, FHS 4.9),
# /home, /root, /srv, /mnt, /media (lintian's dir-or-file-in-home/-srv/-mnt, FHS), /run and
# /dev (not on disk). A library there belongs to no dpkg, pacman or apk package, and proving
# it by reading the database (thousands of dpkg lists) is what a first lookup would pay.
UNMANAGED_PREFIXES: tuple[str, ...] = (
    "/tmp/", "/var/tmp/", "/usr/local/", "/home/", "/root/", "/srv/", "/mnt/", "/media/",
    "/run/", "/dev/",
)


def system_managed(real_path: str) -> bool:
    """False when *real_path* (resolved) lies where no distribution package installs files
    (`UNMANAGED_PREFIXES`) or inside this interpreter's virtual environment (created by
    `venv`/virtualenv, never by a package manager); True otherwise."""
    if real_path.startswith(UNMANAGED_PREFIXES):
        return False
    import sys

    prefix = sys.prefix
    return not (prefix != sys.base_prefix and real_path.startswith(prefix.rstrip("/") + "/"))


# (stamp, directory -> file name -> package, package -> version): grouped by directory, the
# few directories and the package names are stored once.
_Index = tuple[object, dict[str, dict[str, str]], dict[str, str]]
_memo: dict[str, _Index] = {}


def _is_library_name(name: str) -> bool:
    return ".so" in name or name.endswith((".dylib", ".dll", ".pyd"))


def upstream_version(version: str) -> str | None:
    """The upstream part of a package version, as a PEP 440 string, or None.

    Debian ``[epoch:]upstream[-revision]``: the epoch and revision go, then any
    repack suffix (``+dfsg1``, ``.dfsg``, ``~git2023``); ``A+reallyB`` is B and
    ``~rc1`` a pre-release: ``"1:1.2.13.dfsg-1"`` -> ``"1.2.13"``,
    ``"2:6.2.1+dfsg1-1.1"`` -> ``"6.2.1"``, ``"3.0.19-1~deb12u2"`` -> ``"3.0.19"``,
    ``"3.0.0~rc1-1"`` -> ``"3.0.0rc1"``. A bare number (``"20230311"``) is kept.
    """
    v = version.strip()
    if ":" in v:
        v = v.split(":", 1)[1]
    if "-" in v:
        v = v.rpartition("-")[0]
    if "+really" in v:  # "2.0+really1.9": a downgrade packaged as an upgrade; 1.9 is inside
        v = v.split("+really", 1)[1]
    v = v.split("+", 1)[0]
    # "~" sorts before: "3.0.0~rc1" is a pre-release of 3.0.0, "1.2~git2023" a snapshot.
    v, tilde, tail = v.partition("~")
    pre = _pre_release("-" + tail, 0) if tilde else ""
    lower = v.lower()
    for suffix in _REPACK_SUFFIXES:
        at = lower.find(suffix)
        if at > 0:
            v, lower = v[:at], lower[:at]
    if v.isdigit() and v.isascii() and len(v) <= _MAX_DIGITS:
        return v
    found = parse_version_text(v)
    if found and pre and found.replace(".", "").isdigit():
        return found + pre
    return found


def _canonical(path: str, dirs: dict[str, str]) -> str:
    # The directory resolved (usrmerge: /lib -> /usr/lib), the name kept: the
    # real file is listed under its own name next to its symlinks.
    head, _, name = path.rpartition("/")
    real = dirs.get(head)
    if real is None:
        real = dirs[head] = os.path.realpath(head or "/")
    return f"{real}/{name}" if real != "/" else f"/{name}"


def _read_bytes(path: str, limit: int) -> bytes | None:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return None
    return data if len(data) <= limit else None


def _read_text(path: str, limit: int) -> str | None:
    data = _read_bytes(path, limit)
    return None if data is None else data.decode("utf-8", "surrogateescape")


_LIBRARY_MARKS = (b".so", b".dll", b".dylib", b".pyd")


def _library_lines(data: bytes | None) -> list[str]:
    """The lines of a file list that may name a library; the rest is never decoded.

    Found from each occurrence of a mark in the bytes (an ASCII mark never occurs
    inside a multi-byte UTF-8 sequence, so this is the decoded text's test), in file order.
    """
    if not data or (b".so" not in data and b".dll" not in data and b".dylib" not in data):
        return []  # most packages ship no library
    spans: set[tuple[int, int]] = set()
    for mark in _LIBRARY_MARKS:
        at = data.find(mark)
        while at >= 0:
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            if end < 0:
                end = len(data)
            spans.add((start, end))
            at = data.find(mark, end)
    return [data[a:b].decode("utf-8", "surrogateescape") for a, b in sorted(spans)]


def _dpkg_stamp(admin: str) -> object:
    try:
        status = os.stat(os.path.join(admin, "status"))
        info = os.stat(os.path.join(admin, "info"))
    except OSError:
        return None
    return (admin, status.st_mtime_ns, status.st_size, info.st_mtime_ns, info.st_ino)


def _field(paragraph: str, name: str) -> str | None:
    """A single-line field of a deb822 paragraph (``Version: 1.2``), or None."""
    if paragraph.startswith(f"{name}:"):
        at = len(name) + 1
    else:
        at = paragraph.find(f"\n{name}:")
        if at < 0:
            return None
        at += len(name) + 2
    end = paragraph.find("\n", at)
    return paragraph[at:end if end >= 0 else len(paragraph)].strip()


def _dpkg_versions(status_text: str) -> dict[str, str]:
    """Installed package -> upstream version, under ``pkg`` and ``pkg:arch`` (multiarch list names)."""
    versions: dict[str, str] = {}
    # Four finds a paragraph, not a pass over every line: Description and Conffiles are long.
    for paragraph in status_text.split("\n\n"):
        name, version = _field(paragraph, "Package"), _field(paragraph, "Version")
        if not name or not version or not (_field(paragraph, "Status") or "").endswith(" installed"):
            continue
        upstream = upstream_version(version)
        if upstream is None:
            continue
        versions[name] = upstream
        arch = _field(paragraph, "Architecture")
        if arch:
            versions[f"{name}:{arch}"] = upstream
    return versions


def _build_dpkg(admin: str) -> tuple[dict[str, str], dict[str, str]]:
    status = _read_text(os.path.join(admin, "status"), _MAX_STATUS_BYTES) or ""
    versions = _dpkg_versions(status)
    files: dict[str, str] = {}
    dirs: dict[str, str] = {}
    info = os.path.join(admin, "info")
    try:
        names = sorted(os.listdir(info))
    except OSError:
        names = []
    for entry in names:
        if not entry.endswith(".list"):
            continue
        package = entry[: -len(".list")]
        if package not in versions:
            continue
        for line in _library_lines(_read_bytes(os.path.join(info, entry), _MAX_LIST_BYTES)):
            if line.startswith("/") and _is_library_name(line.rpartition("/")[2]):
                if len(files) >= _MAX_INDEX_FILES:
                    break
                files.setdefault(_canonical(line, dirs), package)
    return files, versions


def _grouped(files: dict[str, str]) -> dict[str, dict[str, str]]:
    grouped: dict[str, dict[str, str]] = {}
    for path, package in files.items():
        head, _, name = path.rpartition(os.sep)
        grouped.setdefault(head, {})[name] = package
    return grouped


def _owner(index: _Index, real_path: str) -> tuple[str, str] | None:
    """(version, package) of the package listing *real_path* in *index*, or None."""
    head, _, name = real_path.rpartition(os.sep)
    names = index[1].get(head)
    package = names.get(name) if isinstance(names, dict) else None
    version = index[2].get(package) if isinstance(package, str) else None
    return (version, package) if isinstance(version, str) and package else None


def _index_shape_ok(entry: "tuple[object, object, object]") -> bool:
    """True when *entry* has the shape `_index` writes, field by field: {directory:
    {name: package}} and {package: version}, all str. An entry of an older shape (flat
    {path: package}) or a corrupt one is rebuilt, never read as "no package owns it"."""
    files, versions = entry[1], entry[2]
    if not isinstance(files, dict) or not isinstance(versions, dict):
        return False
    for head, names in files.items():
        if not isinstance(head, str) or not isinstance(names, dict):
            return False
        for name, package in names.items():
            if not isinstance(name, str) or not isinstance(package, str):
                return False
    return all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items())


def _index(key: str, stamp: object, build: "Callable[[], tuple[dict[str, str], dict[str, str]]]",
           kind: str) -> _Index:
    """The (stamp, files, versions) index for *key*: memo, then disk cache, then *build*."""
    memo = _memo.get(key)
    if memo is not None and memo[0] == stamp:
        return memo
    from . import _cache

    cached = _cache.load(kind)
    entry = cached.get(key)
    if isinstance(entry, tuple) and len(entry) == 3 and entry[0] == stamp and _index_shape_ok(entry):
        index: _Index = (stamp, entry[1], entry[2])
    else:
        files, versions = build()
        index = (stamp, _grouped(files), versions)
        if len(cached) >= _MAX_CONDA_PREFIXES and key not in cached:
            cached.clear()  # bounded: a handful of databases per user
        cached[key] = index
        _cache.store(kind, cached)
    _memo[key] = index
    return index


_dpkg_scans: dict[str, tuple[object, int]] = {}  # admin dir -> (stamp, lookups answered by scanning)
_SCANS_BEFORE_INDEX = 1  # a process asking again builds (and stores) the whole index


def _dpkg_version(real_path: str) -> tuple[str, str] | None:
    admin = DPKG_ADMIN_DIR
    stamp = _dpkg_stamp(admin)
    if stamp is None:
        return None
    found: tuple[str, str] | None
    if not _index_ready(admin, stamp, _CACHE_KIND_DPKG) and _take_scan(admin, stamp):
        found = _dpkg_scan(admin, real_path)
    else:
        found = _owner(_index(admin, stamp, lambda: _build_dpkg(admin), _CACHE_KIND_DPKG), real_path)
    return (found[0], f"package:dpkg:{found[1]}") if found else None


def _index_ready(key: str, stamp: object, kind: str) -> bool:
    """True when the index is in memory or on disk for *stamp* (then it is the cheap answer)."""
    memo = _memo.get(key)
    if memo is not None and memo[0] == stamp:
        return True
    from . import _cache

    entry = _cache.load(kind).get(key)
    return isinstance(entry, tuple) and len(entry) == 3 and entry[0] == stamp


def _take_scan(admin: str, stamp: object) -> bool:
    """Whether this lookup scans the lists for one path (the first few of a process)."""
    done = _dpkg_scans.get(admin)
    count = done[1] if done is not None and done[0] == stamp else 0
    if count >= _SCANS_BEFORE_INDEX:
        return False
    _dpkg_scans[admin] = (stamp, count + 1)
    return True


def _dpkg_scan(admin: str, real_path: str) -> tuple[str, str] | None:
    """`_owner` of the whole index for one path, without building it: every list is searched
    for a line ending in "/<file name>" (bytes, no decoding), and only such lines are
    judged as `_build_dpkg` judges them (a library line of an installed package whose
    directory resolves to *real_path*'s). The first list in name order wins, as there.
    """
    name = real_path.rpartition("/")[2]
    if not _is_library_name(name):
        return None
    needle = ("/" + name).encode("utf-8", "surrogateescape")
    info = os.path.join(admin, "info")
    try:
        names = sorted(os.listdir(info))
    except OSError:
        return None
    dirs: dict[str, str] = {}
    lists = [entry for entry in names if entry.endswith(".list")]
    # A regular file is listed by one package at most (dpkg refuses to overwrite another's
    # file unless it Replaces it, and then drops it from that list), so the first list that
    # names the path is its owner. The lists a library's own package is likely to have
    # ("libz" -> zlib1g, "libsqlite3" -> libsqlite3-0) are read first: a system library's
    # owner is found after a few reads instead of all of them; a file no package owns
    # still costs every list.
    stem = name[3:].split(".so", 1)[0].split(".", 1)[0].lower() if name.startswith("lib") else ""
    if stem:
        likely = [e for e in lists if e.startswith((f"lib{stem}", f"{stem}lib", f"{stem}1", f"{stem}-"))]
        lists = likely + [e for e in lists if e not in set(likely)]
    for entry in lists:
        data = _read_bytes(os.path.join(info, entry), _MAX_LIST_BYTES)
        if not data or needle not in data:
            continue
        if b".so" not in data and b".dll" not in data and b".dylib" not in data:
            continue  # `_library_lines` skips such a list whole
        at = data.find(needle)
        while at >= 0:
            end = at + len(needle)
            if end == len(data) or data[end:end + 1] == b"\n":
                start = data.rfind(b"\n", 0, at) + 1
                line = data[start:end].decode("utf-8", "surrogateescape")
                if line.startswith("/") and _canonical(line, dirs) == real_path:
                    package = entry[: -len(".list")]
                    version = _installed_version(admin, package)
                    if version is not None:
                        return version, package
                    break
            at = data.find(needle, at + 1)
    return None


def _installed_version(admin: str, package: str) -> str | None:
    """`_dpkg_versions(status)[package]` from the paragraphs of *package* alone: a search for
    its "Package:" line instead of splitting the whole status file (megabytes)."""
    status = _read_text(os.path.join(admin, "status"), _MAX_STATUS_BYTES) or ""
    bare = package.split(":", 1)[0]
    at = 0
    while True:
        at = status.find(f"Package: {bare}\n", at)
        if at < 0:
            return None
        if at == 0 or status[at - 1] == "\n":
            end = status.find("\n\n", at)
            found = _dpkg_versions(status[at:end if end >= 0 else len(status)]).get(package)
            if found is not None:
                return found
        at += 1


def _conda_prefix(real_path: str) -> str | None:
    head = os.path.dirname(real_path)
    for _ in range(_CONDA_DEPTH):
        if os.path.isdir(os.path.join(head, "conda-meta")):
            return head
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    return None


def _records_crc(meta: str) -> int:
    """A CRC-32 of every ``*.json`` record's name and identity (inode, size, mtime, ctime,
    mode, owner) in *meta*: one lstat each, so an index is read again after any change."""
    import _libbroker_warm

    parts = []
    try:
        names = sorted(n for n in os.listdir(meta) if n.endswith(".json"))
    except OSError:
        names = []
    for name in names:
        try:
            st = os.lstat(os.path.join(meta, name))
        except OSError:
            continue
        parts.append(f"{name}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
                     f"\0{st.st_mode}\0{st.st_uid}")
    return int(_libbroker_warm.crc32("\n".join(parts).encode("utf-8", "surrogateescape")))


def _trusted_owners() -> frozenset[int] | None:
    if os.name == "nt":
        return None
    from ._places import trusted_uids

    return trusted_uids()


def _trusted_record(path: str, trusted: frozenset[int]) -> bool:
    """A regular file (not a symlink) owned by a trusted uid, writable by no one else."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (st.st_mode & 0o170000) == 0o100000 and st.st_uid in trusted and not st.st_mode & 0o022


def _build_conda(prefix: str) -> tuple[dict[str, str], dict[str, str]]:
    import json

    meta = os.path.join(prefix, "conda-meta")
    files: dict[str, str] = {}
    versions: dict[str, str] = {}
    dirs: dict[str, str] = {}
    try:
        names = sorted(os.listdir(meta))
    except OSError:
        names = []
    trusted = _trusted_owners()
    for entry in names:
        if not entry.endswith(".json"):
            continue
        if trusted is not None and not _trusted_record(os.path.join(meta, entry), trusted):
            continue  # a record someone else wrote or could rewrite says nothing
        text = _read_text(os.path.join(meta, entry), _MAX_LIST_BYTES)
        try:
            record = json.loads(text) if text else None
        except (ValueError, RecursionError):
            continue  # a corrupt record says nothing; the others still do
        if not isinstance(record, dict):
            continue
        name, version, listed = record.get("name"), record.get("version"), record.get("files")
        if not isinstance(name, str) or not isinstance(version, str) or not isinstance(listed, list):
            continue
        upstream = parse_version_text(version) or (version if version.isdigit() else None)
        if upstream is None:
            continue
        versions[name] = upstream
        for rel in listed:
            if not isinstance(rel, str) or not _is_library_name(rel.rpartition("/")[2]):
                continue
            if len(files) >= _MAX_INDEX_FILES:
                break
            path = os.path.join(prefix, rel.replace("\\", "/").lstrip("/"))
            if os.sep != "/":
                path = path.replace("/", os.sep)
            files.setdefault(_canonical(path, dirs) if os.sep == "/" else os.path.realpath(path), name)
    return files, versions


def _conda_version(real_path: str) -> tuple[str, str] | None:
    prefix = _conda_prefix(real_path)
    if prefix is None:
        return None
    prefix = os.path.realpath(prefix)
    meta = os.path.join(prefix, "conda-meta")
    if os.name != "nt":
        from ._places import unsafe_dir_reason

        # review3 F0b: a conda-meta anyone else could have written (another user's, in /tmp,
        # above your own directory) states nothing about your files: the same place rules as
        # a library directory, and each record owned by a trusted owner (`_build_conda`).
        if unsafe_dir_reason(meta) is not None:
            return None
    try:
        st = os.stat(meta)
    except OSError:
        return None
    # The owners trusted when the records were read are part of the stamp (a change of
    # `trusted-owners` reads them again), and so is every record's own identity: an edit in
    # place, a chmod or a chown of a record changes no directory (review4 R4-4).
    trusted = _trusted_owners()
    stamp = (prefix, st.st_mtime_ns, st.st_ino, tuple(sorted(trusted)) if trusted is not None else (),
             _records_crc(meta))
    found = _owner(_index(prefix, stamp, lambda: _build_conda(prefix), _CACHE_KIND_CONDA), real_path)
    return (found[0], f"package:conda:{found[1]}") if found else None


# ---------------------------------------------------------------------------
# Homebrew: the version is a directory of the path, confirmed by the receipt


def _brew_version(real_path: str) -> tuple[str, str] | None:
    parts = real_path.split("/")
    try:
        at = len(parts) - 1 - parts[::-1].index("Cellar")
    except ValueError:
        return None
    if at + 3 >= len(parts):
        return None
    formula, version = parts[at + 1], parts[at + 2]
    keg = "/".join(parts[: at + 3])
    if not formula or not os.path.isfile(os.path.join(keg, "INSTALL_RECEIPT.json")):
        return None
    # "1.5.5_1": the formula's revision, not the product's.
    upstream = parse_version_text(version.rpartition("_")[0] if "_" in version else version)
    return (upstream, f"package:brew:{formula}") if upstream else None


# ---------------------------------------------------------------------------
# pacman (Arch, MSYS2)


def _pacman_field(desc: str, field: str) -> str | None:
    lines = desc.split("\n")
    try:
        at = lines.index(f"%{field}%")
    except ValueError:
        return None
    return lines[at + 1].strip() if at + 1 < len(lines) else None


def _build_pacman(local: str) -> tuple[dict[str, str], dict[str, str]]:
    files: dict[str, str] = {}
    versions: dict[str, str] = {}
    dirs: dict[str, str] = {}
    try:
        entries = sorted(os.listdir(local))
    except OSError:
        entries = []
    for entry in entries:
        desc = _read_text(os.path.join(local, entry, "desc"), _MAX_LIST_BYTES)
        name = _pacman_field(desc or "", "NAME")
        version = _pacman_field(desc or "", "VERSION")
        upstream = upstream_version(version) if version else None
        if not name or not upstream:
            continue
        versions[name] = upstream
        listed = _read_text(os.path.join(local, entry, "files"), _MAX_LIST_BYTES) or ""
        for line in listed.split("\n"):
            if line and not line.startswith("%") and _is_library_name(line.rpartition("/")[2]):
                if len(files) >= _MAX_INDEX_FILES:
                    break
                files.setdefault(_canonical("/" + line.lstrip("/"), dirs), name)
    return files, versions


def _pacman_version(real_path: str) -> tuple[str, str] | None:
    local = PACMAN_LOCAL_DIR
    try:
        st = os.stat(local)
    except OSError:
        return None
    stamp = (local, st.st_mtime_ns, st.st_ino)
    found = _owner(_index(local, stamp, lambda: _build_pacman(local), _CACHE_KIND_PACMAN), real_path)
    return (found[0], f"package:pacman:{found[1]}") if found else None


# ---------------------------------------------------------------------------
# apk (Alpine)


def _build_apk(installed: str) -> tuple[dict[str, str], dict[str, str]]:
    files: dict[str, str] = {}
    versions: dict[str, str] = {}
    dirs: dict[str, str] = {}
    text = _read_text(installed, _MAX_STATUS_BYTES) or ""
    name = directory = ""
    for line in text.split("\n"):
        key, _, value = line.partition(":")
        if not line:
            name = directory = ""  # records are separated by blank lines
        elif key == "P":
            name = value
        elif key == "V" and name:
            upstream = upstream_version(value)
            if upstream:
                versions[name] = upstream
        elif key == "F":
            directory = value
        elif key == "R" and name and _is_library_name(value) and len(files) < _MAX_INDEX_FILES:
            files.setdefault(_canonical(f"/{directory}/{value}".replace("//", "/"), dirs), name)
    return files, versions


def _apk_version(real_path: str) -> tuple[str, str] | None:
    installed = APK_INSTALLED
    try:
        st = os.stat(installed)
    except OSError:
        return None
    stamp = (installed, st.st_mtime_ns, st.st_size)
    found = _owner(_index(installed, stamp, lambda: _build_apk(installed), _CACHE_KIND_APK), real_path)
    return (found[0], f"package:apk:{found[1]}") if found else None


def package_version(real_path: str) -> tuple[str, str] | None:
    """(upstream version, source) of the package owning *real_path*, or None.

    *real_path* must be fully resolved (os.path.realpath). Sources, first that
    knows: ``"package:conda:<name>"``, ``"package:brew:<formula>"``,
    ``"package:dpkg:<package>"`` (``<package>`` as dpkg names its list,
    ``zlib1g:amd64`` for multiarch; versions cleaned by `upstream_version`),
    ``"package:pacman:<name>"``, ``"package:apk:<name>"``. dpkg diversions are
    not followed. dpkg, pacman and apk are not asked about files where no distribution
    package installs (`system_managed`). Never raises: an unreadable database gives None.
    """
    try:
        if os.name == "nt":
            # Only conda keeps a database on Windows; "/var/lib/dpkg" would name a directory
            # on the current drive (under wine, the Linux host's own dpkg database: slow and wrong).
            return _conda_version(real_path)
        found = _conda_version(real_path) or _brew_version(real_path)
        if found or not system_managed(real_path):
            return found
        return _dpkg_version(real_path) or _pacman_version(real_path) or _apk_version(real_path)
    except (OSError, ValueError, MemoryError, RecursionError):
        return None
