"""True product versions of shared libraries (design.md 5.2).

A library's version comes from a source that states the *product* version:

- ``library_version``: the loaded library's own answer, through the spec's
  ``version-function`` or a built-in probe (`PROBES`) for a well-known library;
- ``package_version``: the package that owns the file, read from the package
  manager's database without running it (libbroker/_pkgdb.py: conda, Homebrew,
  dpkg, pacman, apk), with the index cached per process and on disk;
- ``file_name_version``: only for the few libraries whose file names carry the
  product version (`PRODUCT_NUMBERED`), never libtool interface numbers;
- ``best_version``: all three in that order, with the source to report.

Every text goes through ``parse_version_text``: the first token that starts a
dotted number. No `re`, `json` or `packaging` at import: `_types.parse_version`
imports this module lazily and sits on the warm path.
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# ---------------------------------------------------------------------------
# Version text

_SCAN_LIMIT = 4096  # a version is near the start; never scan an unbounded string
_MAX_PARTS = 8  # "1.2.3.4.5.6.7.8.9" is not a product version (an address? a date?)
_MAX_DIGITS = 9
_PRE_RELEASES = (("alpha", "a"), ("beta", "b"), ("rc", "rc"), ("a", "a"), ("b", "b"))


def _is_digit(c: str) -> bool:
    # ASCII only: str.isdigit() accepts "²" and Devanagari digits, which int() and PEP 440 refuse.
    return "0" <= c <= "9"


def parse_version_text(text: str | None) -> str | None:
    """The first dotted number of *text* (design.md 5.2), as a PEP 440 version string.

    ``"expat_2.5.0"`` -> ``"2.5.0"``, ``"libcurl/7.88.1 OpenSSL/3.0.19"`` -> ``"7.88.1"``,
    ``"1.3.1.zlib-ng"`` -> ``"1.3.1"``, ``"1.0.8, 13-Jul-2019"`` -> ``"1.0.8"``,
    ``"OpenSSL 3.0.19 27 Jan 2026"`` -> ``"3.0.19"``, ``"2.0.0rc1"`` -> ``"2.0.0rc1"``.
    A number starts a token when the character before it is not a digit or a dot
    (``"libpng16 1.6.39"`` skips ``16``, which has no dot). At most the first
    4096 characters are read; a number with more than 8 parts or a part longer
    than 9 digits is skipped. None when *text* is None, not a str, or has no
    dotted number. Pure; never raises.
    """
    if not isinstance(text, str) or not text:
        return None
    s = text[:_SCAN_LIMIT]
    n = len(s)
    i = 0
    while i < n:
        if not _is_digit(s[i]) or (i and (_is_digit(s[i - 1]) or s[i - 1] == ".")):
            i += 1
            continue
        parts: list[str] = []
        j = i
        while True:
            k = j
            while k < n and _is_digit(s[k]):
                k += 1
            parts.append(s[j:k])
            if k + 1 < n and s[k] == "." and _is_digit(s[k + 1]):
                j = k + 1
                continue
            break
        if 2 <= len(parts) <= _MAX_PARTS and all(len(p) <= _MAX_DIGITS for p in parts):
            return ".".join(parts) + _pre_release(s, k)
        i = k
    return None


def _pre_release(s: str, at: int) -> str:
    """A pre-release tag right after the number (``rc1``, ``-beta2``, ``.a1``), PEP 440 spelled."""
    rest = s[at:at + 16].lower()
    if rest[:1] in ("-", ".", "_"):
        rest = rest[1:]
    for word, tag in _PRE_RELEASES:
        if rest.startswith(word):
            digits = ""
            for c in rest[len(word):]:
                if not _is_digit(c):
                    if c.isalnum():
                        return ""  # "1.2.3alphabet": not a tag
                    break
                digits += c
            if digits:
                return tag + str(int(digits[:_MAX_DIGITS]))
            return ""
    return ""


# ---------------------------------------------------------------------------
# File names

# Libraries whose build names the file after the product version (CMake's
# VERSION, libxml2's and libxslt's libtool arithmetic, ncurses's REL_VERSION,
# readline's SHLIB_MAJOR.MINOR, ...). Every one present on Debian 12 is checked
# against dpkg by tests/test_versions.py: libz.so.1.2.13 is zlib 1.2.13,
# libzstd.so.1.5.4 zstd 1.5.4, libicuuc.so.72.1 ICU 72.1, libncursesw.so.6.4
# ncurses 6.4, libboost_*.so.1.74.0 Boost 1.74.0. Every other library is
# presumed to carry libtool interface numbers (libbz2.so.1.0.4 is bzip2 1.0.8,
# libcurl.so.4.8.0 curl 7.88.1, libsqlite3.so.0.8.6 SQLite 3.40.1, libX11.so.6.4.0
# libX11 1.8.4), or numbers that match only by chance: unknown beats wrong.
PRODUCT_NUMBERED = frozenset({
    "z", "zstd", "lzma", "xml2", "xslt", "xmlsec1", "lz4", "xxhash",
    "icuuc", "icui18n", "icudata", "icuio", "icutu", "icutest",
    "brotlicommon", "brotlidec", "brotlienc",
    "ncurses", "ncursesw", "tinfo", "tinfow", "tic", "ticw",
    "form", "formw", "menu", "menuw", "panel", "panelw",
    "readline", "history", "perl", "jsoncpp", "cap", "psx", "pcap", "seccomp", "slang",
})
PRODUCT_NUMBERED_PREFIXES = ("boost_", "xmlsec1-")


def _stem_and_numbers(filename: str) -> tuple[str, str] | None:
    """("z", "1.2.13") for libz.so.1.2.13 or libz.1.2.13.dylib, else None."""
    if not filename.startswith("lib"):
        return None
    base = filename[3:]
    if ".so." in base:
        stem, _, numbers = base.partition(".so.")
    elif base.endswith(".dylib"):
        stem, _, numbers = base[: -len(".dylib")].partition(".")
    else:
        return None
    return (stem, numbers) if stem and numbers else None


def file_name_version(real_path: str, link_name: str) -> str | None:
    """The product version in the file name, only for `PRODUCT_NUMBERED` libraries.

    Decided by the stem of the real file's name (``libz.so.1.2.13`` -> ``z``),
    whatever *link_name* the caller searched for. At least two numbers are
    needed (``libz.so.1`` says only the major). None otherwise; never raises.
    """
    found = _stem_and_numbers(os.path.basename(real_path))
    if found is None:
        return None
    stem, numbers = found
    if stem not in PRODUCT_NUMBERED and not stem.startswith(PRODUCT_NUMBERED_PREFIXES):
        return None
    parts: list[str] = []
    for part in numbers.split("."):
        if not part.isdigit() or not part.isascii():
            break
        parts.append(part)
    if len(parts) < 2:
        return None
    return parse_version_text(".".join(parts))


# ---------------------------------------------------------------------------
# Package databases: libbroker/_pkgdb.py (imported when first asked)


def package_version(real_path: str) -> tuple[str, str] | None:
    """(upstream version, "package:<manager>:<package>") of the package owning *real_path*.

    See `libbroker._pkgdb.package_version` (conda, Homebrew, dpkg, pacman, apk).
    """
    from ._pkgdb import package_version as lookup

    return lookup(real_path)


# ---------------------------------------------------------------------------
# Built-in probes: asking the loaded library


def _decimal(n: int, *weights: int) -> str:
    """n split by decimal weights: _decimal(10639, 10000, 100, 1) -> "1.6.39"."""
    parts = []
    for i, w in enumerate(weights):
        parts.append(str(n // w if i == 0 else n // w % (weights[i - 1] // w)))
    return ".".join(parts)


def _openssl_number(n: int) -> str:
    # 3.x: MNN00PP0 (major, minor, patch << 4); 1.x: MNNFFPPS (major, minor, fix, patch letter).
    major = n >> 28
    if major >= 3:
        return f"{major}.{(n >> 20) & 0xFF}.{(n >> 4) & 0xFF}"
    return f"{major}.{(n >> 20) & 0xFF}.{(n >> 12) & 0xFF}"


DECODERS: "dict[str, Callable[[int], str]]" = {
    # MAJOR*10000 + MINOR*100 + PATCH: zstd.h, png.h (PNG_LIBPNG_VER), lz4.h, libxml2 (LIBXML_VERSION)
    "10000": lambda n: _decimal(n, 10000, 100, 1),
    # SQLITE_VERSION_NUMBER: X*1000000 + Y*1000 + Z
    "sqlite": lambda n: _decimal(n, 1000000, 1000, 1),
    # LZMA_VERSION: MAJOR*10000000 + MINOR*10000 + PATCH*10 + STABILITY
    "lzma": lambda n: _decimal(n // 10, 1000000, 1000, 1),
    "openssl": _openssl_number,
    # WebPGet*Version: (major << 16) | (minor << 8) | revision
    "webp": lambda n: f"{n >> 16}.{(n >> 8) & 0xFF}.{n & 0xFF}",
}


class Step:
    """One way to ask a library: *symbol* of a given *shape*.

    Shapes: ``"str"`` const char *f(void); ``"str_int"`` const char *f(int) called
    with *argument*; ``"str_null"`` const char *f(const void *) called with NULL;
    ``"uint"``/``"ulong"`` unsigned int/long f(void); ``"data_ptr"`` a
    ``const char *`` data symbol; ``"data_array"`` a ``char[]`` data symbol;
    ``"context_triple"`` FreeType's ``version(ctx, &major, &minor, &patch)`` with
    the context made and freed by the *context* pair of symbols (init, done).
    *decode* names a `DECODERS` entry turning a number (or a numeric string,
    libxml2's "20914") into a dotted version. *anywhere*: the symbol may come
    from a dependency (libssl asks its own libcrypto).
    """

    __slots__ = ("anywhere", "argument", "context", "decode", "shape", "symbol")

    def __init__(self, symbol: str, shape: str = "str", *, argument: int = 0,
                 decode: str | None = None, anywhere: bool = False,
                 context: tuple[str, str] | None = None) -> None:
        self.context = context
        self.symbol = symbol
        self.shape = shape
        self.argument = argument
        self.decode = decode
        self.anywhere = anywhere

    def __repr__(self) -> str:
        return f"<Step {self.symbol} {self.shape}>"


class Probe:
    """A well-known library's ways to report its version, tried in order."""

    __slots__ = ("product", "steps")

    def __init__(self, product: str, *steps: Step) -> None:
        self.product = product
        self.steps = steps

    def __repr__(self) -> str:
        return f"<Probe {self.product} {list(self.steps)}>"


_OPENSSL = (
    Step("OpenSSL_version", "str_int", argument=0),  # OPENSSL_VERSION == 0 (1.1, 3.x)
    Step("SSLeay_version", "str_int", argument=0),  # 1.0.x
    Step("OpenSSL_version_num", "ulong", decode="openssl"),
)
# Each symbol and shape checked with nm -D against Debian 12's library (marked *)
# or taken from the upstream header named.
PROBES: dict[str, Probe] = {
    "z": Probe("zlib", Step("zlibVersion")),  # *
    "sqlite3": Probe("SQLite", Step("sqlite3_libversion"), Step("sqlite3_version", "data_array"),
                     Step("sqlite3_libversion_number", "uint", decode="sqlite")),  # *
    "openblas": Probe("OpenBLAS", Step("openblas_get_config")),  # "OpenBLAS 0.3.21 ..."
    "scipy_openblas": Probe("OpenBLAS", Step("scipy_openblas_get_config"),  # * (wheel)
                            Step("scipy_openblas_get_config64_")),
    "crypto": Probe("OpenSSL", *_OPENSSL),  # *
    "ssl": Probe("OpenSSL", *(Step(s.symbol, s.shape, argument=s.argument, decode=s.decode,
                                   anywhere=True) for s in _OPENSSL)),  # * (from libcrypto)
    "curl": Probe("curl", Step("curl_version")),  # * "libcurl/7.88.1 OpenSSL/3.0.19 ..."
    "expat": Probe("expat", Step("XML_ExpatVersion")),  # * "expat_2.5.0"
    "png": Probe("libpng", Step("png_get_libpng_ver", "str_null"),  # *
                 Step("png_access_version_number", "uint", decode="10000")),
    "bz2": Probe("bzip2", Step("BZ2_bzlibVersion")),  # * "1.0.8, 13-Jul-2019"
    "lzma": Probe("xz", Step("lzma_version_string"),  # *
                  Step("lzma_version_number", "uint", decode="lzma")),
    "zstd": Probe("zstd", Step("ZSTD_versionString"),  # *
                  Step("ZSTD_versionNumber", "uint", decode="10000")),
    # libffi >= 3.4.5 (ffi.h); 3.4.4 exports no version: the package database answers.
    "ffi": Probe("libffi", Step("ffi_get_version"),
                 Step("ffi_get_version_number", "ulong", decode="10000")),
    "tiff": Probe("libtiff", Step("TIFFGetVersion")),  # * "LIBTIFF, Version 4.5.0\n..."
    "gmp": Probe("GMP", Step("__gmp_version", "data_ptr")),  # * const char *const
    "xml2": Probe("libxml2", Step("xmlParserVersion", "data_ptr", decode="10000")),  # * "20914"
    "mpfr": Probe("MPFR", Step("mpfr_get_version")),  # *
    "gnutls": Probe("GnuTLS", Step("gnutls_check_version", "str_null")),  # *
    "idn2": Probe("libidn2", Step("idn2_check_version", "str_null")),  # *
    "ssh2": Probe("libssh2", Step("libssh2_version", "str_int", argument=0)),  # *
    "yaml": Probe("libyaml", Step("yaml_get_version_string")),  # *
    "lz4": Probe("lz4", Step("LZ4_versionString"), Step("LZ4_versionNumber", "uint",
                                                         decode="10000")),  # *
    "archive": Probe("libarchive", Step("archive_version_string")),  # * "libarchive 3.6.2"
    "sodium": Probe("libsodium", Step("sodium_version_string")),  # *
    "cairo": Probe("cairo", Step("cairo_version_string")),  # *
    "pixman": Probe("pixman", Step("pixman_version_string")),  # *
    "harfbuzz": Probe("HarfBuzz", Step("hb_version_string")),  # *
    "webp": Probe("libwebp", Step("WebPGetDecoderVersion", "uint", decode="webp")),  # *
    "freetype": Probe("FreeType", Step("FT_Library_Version", "context_triple",  # *
                                       context=("FT_Init_FreeType", "FT_Done_FreeType"))),
}
# Other spellings of the same libraries (sonames and Windows DLL names).
_ALIASES = {
    "zlib": "z", "zlib1": "z", "zlibwapi": "z", "png16": "png", "png12": "png", "png15": "png",
    "bzip2": "bz2", "xz": "lzma", "tiff6": "tiff", "tiff5": "tiff", "libtiff": "tiff",
    "pixman-1": "pixman", "yaml-0": "yaml", "ssh": "ssh2", "freetype6": "freetype",
}


def _product_key(name: str | None) -> str | None:
    """The `PROBES` key for a link name or soname: libpng16.so.16 -> png, libcrypto-3-x64.dll -> crypto."""
    if not name:
        return None
    base = os.path.basename(name).lower()
    for ext in (".so", ".dylib", ".dll"):
        at = base.find(ext)
        if at > 0:
            base = base[:at]
            break
    if base.startswith("lib") and len(base) > 3:
        base = base[3:]
    # Windows and some macOS builds add -<major>[-<arch>] or .<major>: drop them.
    for sep in ("-", "."):
        head, _, tail = base.partition(sep)
        if head and tail and (tail[0].isdigit() or tail in ("x64", "arm64")):
            base = head
    if base in PROBES:
        return base
    if base in _ALIASES:
        return _ALIASES[base]
    if base.startswith("scipy_openblas"):
        return "scipy_openblas"
    if base.startswith("openblas"):  # openblas64_, openblasp-r0.3.21, openblas_pthreads
        return "openblas"
    return None


def probe_for(link_name: str, soname: str | None) -> Probe | None:
    """The built-in probe of a well-known library, by its SONAME first, else its link name."""
    key = _product_key(soname) or _product_key(link_name)
    return PROBES[key] if key else None


def _run_step(handle: int, step: Step, prefix: str, suffix: str,
              problems: list[str] | None) -> str | None:
    from . import _master

    address = 0
    for symbol in (f"{prefix}{step.symbol}{suffix}", step.symbol):
        address = _master.dlsym(handle, symbol)
        if address:
            break
    if not address:
        return None
    if not step.anywhere and _master.symbol_in_object(handle, address) is False:
        return None  # a dependency's symbol would report the dependency's version
    shape = step.shape
    raw: bytes | int | None
    try:
        if shape == "str":
            raw = _master.call_version_function(address)
        elif shape == "str_int":
            raw = _master.call_string_function_int(address, step.argument)
        elif shape == "str_null":
            raw = _master.call_string_function_null(address)
        elif shape in ("uint", "ulong"):
            raw = _master.call_number_function(
                address, "unsigned int" if shape == "uint" else "unsigned long")
        elif shape == "data_ptr":
            raw = _master.read_string_pointer(address)
        elif shape == "data_array":
            raw = _master.read_string_array(address)
        elif shape == "context_triple" and step.context:
            init, done = (_master.dlsym(handle, f"{prefix}{name}{suffix}")
                          or _master.dlsym(handle, name) for name in step.context)
            if not init or not done:
                return None
            raw = ".".join(map(str, _master.call_context_triple(init, address, done))).encode()
        else:
            raise ValueError(f"unknown probe shape {shape!r}")
    except ValueError as exc:
        if problems is not None:
            problems.append(f"{step.symbol}: {exc}")
        return None
    if raw is None:
        return None
    if isinstance(raw, bytes):
        # call_version_function (the "str" shape) does not check the text: binary data that
        # happens to hold "1.2" must not become a version.
        if not all(32 <= b < 127 or b in (9, 10, 13) for b in raw):
            if problems is not None:
                problems.append(f"{step.symbol} returned bytes that are not printable text "
                                f"({raw[:32]!r})")
            return None
        text = raw.decode("ascii")
        if step.decode:
            text = text.strip()
            if not (text.isdigit() and text.isascii() and len(text) <= _MAX_DIGITS):
                return None
            raw = int(text)
        else:
            version = parse_version_text(text)
            if version is None and problems is not None:
                problems.append(f"{step.symbol} returned {text[:80]!r}, which has no dotted "
                                "version number")
            return version
    if step.decode is None or raw == 0:
        return None
    return parse_version_text(DECODERS[step.decode](raw))


def library_version(handle: int, link_name: str, soname: str | None,
                    version_function: str | None = None, prefix: str = "", suffix: str = "",
                    problems: list[str] | None = None) -> str | None:
    """The version the loaded library reports (``.version_source == "library"``), or None.

    *version_function* (the spec's ``version-function``, a ``const char *f(void)``)
    is asked first; else the built-in `probe_for` steps in order. A provider's
    symbol *prefix*/*suffix* are tried first, then the plain name. A symbol that
    resolves only in a dependency of *handle* is not asked (libssl's OpenSSL
    probe excepted). The answer goes through `parse_version_text`. Why a step
    gave nothing (a non-string pointer, text with no version) is appended to
    *problems* when given. Never raises for a misbehaving library.
    """
    if not handle:
        return None
    if version_function:
        return _run_step(handle, Step(version_function), prefix, suffix, problems)
    probe = probe_for(link_name, soname)
    if probe is None:
        return None
    for step in probe.steps:
        version = _run_step(handle, step, prefix, suffix, problems)
        if version is not None:
            return version
    return None


def version_if_mapped(real_path: str, link_name: str, soname: str | None,
                      version_function: str | None = None, prefix: str = "",
                      suffix: str = "") -> str | None:
    """The library's own answer when the process already maps *real_path*, without loading it.

    RTLD_NOLOAD (GetModuleHandleEx on Windows) gives the existing handle or
    nothing; nothing is mapped and no constructor runs. None when the file is
    not mapped or does not answer.
    """
    from . import _master

    try:
        handle = _master.noload(real_path)
    except (OSError, ValueError):
        return None
    if not handle:
        return None
    return library_version(handle, link_name, soname, version_function, prefix, suffix)



def best_version(real_path: str, link_name: str, soname: str | None, handle: int | None = None,
                 version_function: str | None = None, prefix: str = "",
                 suffix: str = "") -> tuple[str, str] | None:
    """(version, `.version_source`) from the first source that knows, or None (design.md 5.2).

    The library itself ("library": *handle* when loaded, else a NOLOAD probe),
    then the package database ("package:<manager>:<package>"), then the file
    name for `PRODUCT_NUMBERED` libraries ("file-name"). The provider manifest
    is the caller's to ask first: only it knows the distribution. *real_path*
    must be resolved. Never raises for a misbehaving library or database.
    """
    if handle:
        own = library_version(handle, link_name, soname, version_function, prefix, suffix)
    else:
        own = version_if_mapped(real_path, link_name, soname, version_function, prefix, suffix)
    if own:
        return own, "library"
    found = package_version(real_path)
    if found:
        return found
    by_name = file_name_version(real_path, link_name)
    return (by_name, "file-name") if by_name else None
