"""`libbroker wrap`: a provider wheel built from a library compiled here.

Oracles: hashlib/base64 for RECORD, readelf for the glibc versions the library
needs, configparser for entry_points.txt, tomllib for the manifest, packaging
for the file name and tags.
"""

from __future__ import annotations

import base64
import configparser
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
import tomllib
from _zig import build as zig_build
from _zig import needs_zig
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

from libbroker._errors import IncompatibleLibraryError, SpecError
from libbroker._wrap import wrap

LBT_C = r"""
#include <stdio.h>
#include <string.h>
int lbt_add(int a, int b) { return a + b; }
const char *lbt_version(void) { return "lbt 2.5.1"; }
/* libc calls, so the library needs versioned glibc symbols (the platform tag's source) */
int lbt_format(char *out, size_t n, int v) { return snprintf(out, n, "%d", v); }
size_t lbt_len(const char *s) { return strlen(s); }
"""

LBT_SPEC = """\
[library]
name = "lbt"
names = ["lbt"]
version = ">=2"
version-function = "lbt_version"
symbol-prefix = ""

[functions]
required = [
  "int lbt_add(int a, int b)",
  "const char *lbt_version(void)",
]
"""

# ELF fixtures: gcc with GNU ld (-soname) on Linux; macOS's gcc is clang with Apple's linker.
HAVE_GCC = shutil.which("gcc") is not None and sys.platform.startswith("linux")
needs_gcc = pytest.mark.skipif(not HAVE_GCC, reason="gcc and GNU ld on Linux are needed to build the test library")


def build_lbt(directory: str) -> str:
    """Compile liblbt.so.2.5.1 (soname liblbt.so.2) in *directory*."""
    src = os.path.join(directory, "lbt.c")
    with open(src, "w") as f:
        f.write(LBT_C)
    out = os.path.join(directory, "liblbt.so.2.5.1")
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-Wl,-soname,liblbt.so.2", "-o", out, src],
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def lbt(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not HAVE_GCC:
        pytest.skip("gcc and GNU ld on Linux are needed to build the test library")
    return build_lbt(str(tmp_path_factory.mktemp("lbt")))


def read_record(zf: zipfile.ZipFile) -> dict[str, tuple[str, str]]:
    [record] = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
    rows = csv.reader(io.StringIO(zf.read(record).decode()))
    return {path: (digest, size) for path, digest, size in rows}


def newest_glibc_readelf(path: str) -> tuple[int, int] | None:
    out = subprocess.run(["readelf", "-V", "--wide", path], capture_output=True, text=True, check=True).stdout
    versions = {tuple(int(x) for x in m.groups()) for m in re.finditer(r"GLIBC_(\d+)\.(\d+)", out)}
    return max(versions) if versions else None


@needs_gcc
def test_wheel_layout_record_and_metadata(lbt: str, tmp_path) -> None:
    wheel_path = wrap(lbt, name="lbt", version="2.5.1", out_dir=str(tmp_path / "dist"))
    assert os.path.dirname(wheel_path) == str(tmp_path / "dist")
    assert os.listdir(tmp_path / "dist") == [os.path.basename(wheel_path)]  # no temporary left over
    name, version, build, tags = parse_wheel_filename(os.path.basename(wheel_path))
    assert (name, str(version), build) == ("libbroker-provider-lbt", "2.5.1", ())

    with zipfile.ZipFile(wheel_path) as zf:
        names = set(zf.namelist())
        dist_info = "libbroker_provider_lbt-2.5.1.dist-info"
        assert names == {
            "libbroker_provider_lbt/__init__.py",
            "libbroker_provider_lbt/lib/liblbt.so.2",  # named by its soname, not the real file name
            "libbroker_provider_lbt/libbroker-provider.toml",
            f"{dist_info}/METADATA",
            f"{dist_info}/WHEEL",
            f"{dist_info}/entry_points.txt",
            f"{dist_info}/RECORD",
        }
        assert zf.read("libbroker_provider_lbt/__init__.py") == b""
        with open(lbt, "rb") as f:
            assert zf.read("libbroker_provider_lbt/lib/liblbt.so.2") == f.read()
        # the library stays executable once unpacked
        mode = zf.getinfo("libbroker_provider_lbt/lib/liblbt.so.2").external_attr >> 16
        assert mode & 0o111 == os.stat(lbt).st_mode & 0o111 != 0

        record = read_record(zf)
        assert set(record) == names
        assert record[f"{dist_info}/RECORD"] == ("", "")
        for path in names - {f"{dist_info}/RECORD"}:
            data = zf.read(path)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert record[path] == (f"sha256={digest}", str(len(data))), path

        entry_points = configparser.ConfigParser(delimiters=("=",))
        entry_points.optionxform = str  # type: ignore[assignment,method-assign]
        entry_points.read_string(zf.read(f"{dist_info}/entry_points.txt").decode())
        assert dict(entry_points["libbroker.providers"]) == {"lbt": "libbroker_provider_lbt"}

        metadata = zf.read(f"{dist_info}/METADATA").decode()
        assert "Metadata-Version: 2.1\n" in metadata
        assert "Name: libbroker-provider-lbt\n" in metadata
        assert "Version: 2.5.1\n" in metadata
        assert re.search(r"^Summary: .+$", metadata, re.MULTILINE)

        wheel_meta = zf.read(f"{dist_info}/WHEEL").decode()
        assert "Root-Is-Purelib: false\n" in wheel_meta
        [tag_line] = re.findall(r"^Tag: (.+)$", wheel_meta, re.MULTILINE)

        manifest = tomllib.loads(zf.read("libbroker_provider_lbt/libbroker-provider.toml").decode())

    assert manifest == {
        "library": [
            {"name": "lbt", "file": "lib/liblbt.so.2", "version": "2.5.1", "soname": "liblbt.so.2"}
        ]
    }
    glibc = newest_glibc_readelf(lbt)
    assert glibc is not None  # snprintf and strlen are versioned glibc symbols
    major, minor = max(glibc, (2, 17))
    machine = os.uname().machine
    assert tag_line == f"py3-none-manylinux_{major}_{minor}_{machine}"
    assert {str(t) for t in tags} == {tag_line}
    # installable on this host, as the venv test relies on
    assert any(t in set(sys_tags()) for t in tags)


@needs_gcc
def test_library_without_libc_gets_a_plain_linux_tag(tmp_path) -> None:
    src = tmp_path / "pure.c"
    src.write_text("int pure_one(void) { return 1; }\n")
    lib = tmp_path / "libpure.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-nostdlib", "-o", str(lib), str(src)], check=True)
    assert newest_glibc_readelf(str(lib)) is None
    wheel_path = wrap(str(lib), name="pure", version="1.0", out_dir=str(tmp_path))
    assert wheel_path.endswith(f"-1.0-py3-none-linux_{os.uname().machine}.whl")
    with zipfile.ZipFile(wheel_path) as zf:
        manifest = tomllib.loads(zf.read("libbroker_provider_pure/libbroker-provider.toml").decode())
    # no soname: the file keeps its own name and the manifest says nothing about a soname
    assert manifest["library"][0]["file"] == "lib/libpure.so"
    assert "soname" not in manifest["library"][0]


@needs_gcc
def test_spec_is_shipped_and_named_in_the_manifest(lbt: str, tmp_path) -> None:
    spec = tmp_path / "lbt.toml"
    spec.write_text(LBT_SPEC.replace('symbol-prefix = ""', 'symbol-prefix = "p_"'))
    wheel_path = wrap(
        lbt, name="lbt", version="2.5.1", out_dir=str(tmp_path), spec=str(spec), dist_name="My_LBT.Provider"
    )
    assert os.path.basename(wheel_path).startswith("my_lbt_provider-2.5.1-")
    with zipfile.ZipFile(wheel_path) as zf:
        assert zf.read("libbroker_provider_lbt/lbt.toml") == spec.read_bytes()
        manifest = tomllib.loads(zf.read("libbroker_provider_lbt/libbroker-provider.toml").decode())
        assert "Name: my-lbt-provider\n" in zf.read("my_lbt_provider-2.5.1.dist-info/METADATA").decode()
        assert "libbroker_provider_lbt/lbt.toml" in read_record(zf)
    assert manifest["library"][0]["specs"] == ["lbt.toml"]
    assert manifest["library"][0]["symbol-prefix"] == "p_"
    assert "symbol-suffix" not in manifest["library"][0]


@needs_gcc
def test_rewrapping_replaces_the_wheel(lbt: str, tmp_path) -> None:
    first = wrap(lbt, name="lbt", version="2.5.1", out_dir=str(tmp_path))
    second = wrap(lbt, name="lbt", version="2.5.1", out_dir=str(tmp_path))
    assert first == second
    assert os.listdir(tmp_path) == [os.path.basename(first)]
    with zipfile.ZipFile(second) as zf:
        assert zf.testzip() is None


def test_not_a_shared_library_is_refused(tmp_path) -> None:
    text = tmp_path / "libnot.so"
    text.write_text("hello\n")
    with pytest.raises(IncompatibleLibraryError) as err:
        wrap(str(text), name="not", version="1", out_dir=str(tmp_path / "out"))
    assert "ELF" in str(err.value) and str(text) in str(err.value)
    with pytest.raises(IncompatibleLibraryError, match="found nothing there"):
        wrap(str(tmp_path / "missing.so"), name="x", version="1", out_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_linker_script_is_refused(tmp_path) -> None:
    script = "/usr/lib/x86_64-linux-gnu/libm.so"
    if not os.path.isfile(script) or os.path.getsize(script) > 4096:
        pytest.skip("no GNU ld script libm.so on this system")
    with pytest.raises(IncompatibleLibraryError, match="(?i)linker script"):
        wrap(script, name="m", version="1", out_dir=str(tmp_path))


def test_executable_is_refused(tmp_path) -> None:
    with pytest.raises(IncompatibleLibraryError, match="expected a shared library"):
        wrap(sys.executable, name="py", version="1", out_dir=str(tmp_path))


@needs_gcc
def test_object_file_is_refused(tmp_path) -> None:
    src = tmp_path / "o.c"
    src.write_text("int o(void) { return 0; }\n")
    subprocess.run(["gcc", "-c", "-fPIC", "-o", str(tmp_path / "o.o"), str(src)], check=True)
    with pytest.raises(IncompatibleLibraryError, match="'relocatable'"):
        wrap(str(tmp_path / "o.o"), name="o", version="1", out_dir=str(tmp_path))


@needs_gcc
@pytest.mark.parametrize(
    ("soname", "problem"),
    [
        ("liblbt.so.2\nevil", "it holds the control or line-break character '\\n'"),
        ("liblbt.so.2\x1b[2J", "it holds the control or line-break character '\\x1b'"),
        ("lib/liblbt.so.2", "it holds the path separator '/'"),
        ("..", "not a file name"),
    ],
)
def test_soname_that_cannot_be_a_file_name_is_refused(soname: str, problem: str, tmp_path) -> None:
    # Review F8: the soname names the file inside the wheel; a line break made a wheel
    # whose RECORD importlib.metadata cannot read back, so the library was never usable.
    src = tmp_path / "w.c"
    src.write_text("int lbt_fn(void) { return 1; }\n")
    lib = tmp_path / "liblbt.so.2"
    subprocess.run(["gcc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(lib), str(src)], check=True)
    out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, check=True).stdout
    assert b"Library soname: [" + soname.encode() + b"]" in out  # the oracle: the soname as written
    with pytest.raises(IncompatibleLibraryError) as err:
        wrap(str(lib), name="lbt", version="1.0", out_dir=str(tmp_path / "out"))
    assert err.value.reason.startswith(f"its soname {soname!r} cannot be a file name ({problem})")
    assert "fix: relink the library with a plain soname" in str(err.value)
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("fmt", "name", "problem"),
    [
        ("PE", "zlib1.dll", None),
        ("PE", "dir\\zlib1.dll", "it holds the path separator '\\\\'"),
        ("PE", "zlib:1.dll", "it holds ':', which Windows forbids in file names"),
        ("PE", 'z"1.dll', "it holds '\"', which Windows forbids in file names"),
        ("Mach-O", "libz.1.dylib", None),
        ("Mach-O", "libz\u2028.dylib", "it holds the control or line-break character '\\u2028'"),
        ("ELF", "libz.so.1", None),
        ("ELF", "libz,x'y.so.1", None),  # csv quotes these in RECORD, and they read back
        ("ELF", "", "not a file name"),
        ("ELF", "libz.so.1\x00", "it holds the control or line-break character '\\x00'"),
    ],
)
def test_file_name_rules_per_format(fmt: str, name: str, problem: str | None) -> None:
    from libbroker._wrap import file_name_problem

    assert file_name_problem(fmt, name) == problem


@pytest.mark.parametrize(
    ("name", "version", "match"),
    [
        ("liblbt.so.2", "1.0", r"--name: expected the link name.*fix: use --name lbt"),
        ("lbt/x", "1.0", r"--name: expected a link name"),
        ("", "1.0", r"--name: expected a link name"),
        ("lbt", "2.x", r"--version: expected a PEP 440 version.*'2\.x'"),
    ],
)
def test_bad_arguments(name: str, version: str, match: str, tmp_path) -> None:
    with pytest.raises(SpecError, match=match):
        wrap("/usr/lib/x86_64-linux-gnu/libz.so.1", name=name, version=version, out_dir=str(tmp_path))


@needs_gcc
def test_bad_spec(lbt: str, tmp_path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[library]\nname = "lbt"\nnames = ["lbt",, ]\n')
    with pytest.raises(SpecError) as err:
        wrap(lbt, name="lbt", version="1", out_dir=str(tmp_path), spec=str(broken))
    assert (err.value.path, err.value.line) == (str(broken), 3)

    other = tmp_path / "other.toml"
    other.write_text(LBT_SPEC.replace('names = ["lbt"]', 'names = ["z"]'))
    with pytest.raises(SpecError, match=r"names \['z'\] do not include .* 'lbt'"):
        wrap(lbt, name="lbt", version="1", out_dir=str(tmp_path), spec=str(other))

    with pytest.raises(SpecError, match="cannot read the spec"):
        wrap(lbt, name="lbt", version="1", out_dir=str(tmp_path), spec=str(tmp_path / "absent.toml"))
    assert not any(p.endswith(".whl") for p in os.listdir(tmp_path))


# --- dependencies, --requires, --name and --version against the binary ----------------------

DEP_A_C = "int chain_a(int x) { return x * 3; }\n"
DEP_B_C = (
    "#include <stdio.h>\nint chain_a(int x);\nint chain_b(int x) { return chain_a(x) + 1; }\n"
    "int chain_b_text(char *out, size_t n, int x) { return snprintf(out, n, \"%d\", x); }\n"  # needs glibc
)


def build_chain(directory: str) -> tuple[str, str]:
    """liblbchaina.so.1 and liblbchainb.so.1, B's DT_NEEDED naming A (no RUNPATH)."""
    for name, src in (("a", DEP_A_C), ("b", DEP_B_C)):
        with open(os.path.join(directory, f"{name}.c"), "w") as f:
            f.write(src)
    lib_a = os.path.join(directory, "liblbchaina.so.1")
    lib_b = os.path.join(directory, "liblbchainb.so.1")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,liblbchaina.so.1", "-o", lib_a,
                    os.path.join(directory, "a.c")], check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,liblbchainb.so.1", "-o", lib_b,
                    os.path.join(directory, "b.c"), lib_a], check=True)
    return lib_a, lib_b


def readelf_needed(path: str) -> list[str]:
    out = subprocess.run(["readelf", "-d", "--wide", path], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if not HAVE_GCC:
        pytest.skip("gcc and GNU ld on Linux are needed to build the test libraries")
    return build_chain(str(tmp_path_factory.mktemp("chain")))


def test_undeclared_dependency_is_refused_by_name(chain: tuple[str, str], tmp_path) -> None:
    _, lib_b = chain
    assert "liblbchaina.so.1" in readelf_needed(lib_b)  # the oracle: what the linker wrote
    with pytest.raises(IncompatibleLibraryError) as err:
        wrap(lib_b, name="lbchainb", version="1.0", out_dir=str(tmp_path))
    message = str(err.value)
    assert "'liblbchaina.so.1'" in message and "manylinux_2_17" in message
    assert "--requires libbroker-provider-lbchaina" in message
    # a --requires for something else does not cover it
    with pytest.raises(IncompatibleLibraryError, match=r"liblbchaina\.so\.1.*given: numpy"):
        wrap(lib_b, name="lbchainb", version="1.0", out_dir=str(tmp_path), requires=["numpy"])
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".whl")]


def test_requires_records_the_dependency(chain: tuple[str, str], tmp_path) -> None:
    _, lib_b = chain
    wheel_path = wrap(
        lib_b, name="lbchainb", version="1.0", out_dir=str(tmp_path),
        requires=["libbroker-provider-lbchaina>=1.0", "cffi"],
    )
    with zipfile.ZipFile(wheel_path) as zf:
        metadata = zf.read("libbroker_provider_lbchainb-1.0.dist-info/METADATA").decode()
        manifest = tomllib.loads(zf.read("libbroker_provider_lbchainb/libbroker-provider.toml").decode())
    from email.parser import Parser

    requires = Parser().parsestr(metadata).get_all("Requires-Dist")
    assert requires == ["libbroker-provider-lbchaina>=1.0", "cffi"]
    assert manifest["library"][0]["dependencies"] == [
        {"needed": "liblbchaina.so.1", "provider": "libbroker-provider-lbchaina"}
    ]


def test_requires_matched_through_an_installed_providers_entry_point(
    chain: tuple[str, str], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --requires whose name says nothing still covers a dependency it provides, per its metadata."""
    _, lib_b = chain
    site = tmp_path / "site"
    info = site / "vendor_blob-3.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vendor-blob\nVersion: 3.0\n")
    (info / "entry_points.txt").write_text("[libbroker.providers]\nlbchaina = vendor_blob\n")
    monkeypatch.syspath_prepend(str(site))
    wheel_path = wrap(lib_b, name="lbchainb", version="1.0", out_dir=str(tmp_path / "dist"), requires=["vendor-blob"])
    with zipfile.ZipFile(wheel_path) as zf:
        manifest = tomllib.loads(zf.read("libbroker_provider_lbchainb/libbroker-provider.toml").decode())
    assert manifest["library"][0]["dependencies"] == [{"needed": "liblbchaina.so.1", "provider": "vendor-blob"}]
    # without that metadata the same name covers nothing
    monkeypatch.syspath_prepend(str(tmp_path / "empty"))
    (info / "entry_points.txt").write_text("[libbroker.providers]\nother = vendor_blob\n")
    with pytest.raises(IncompatibleLibraryError, match=r"liblbchaina\.so\.1.*given: vendor-blob"):
        wrap(lib_b, name="lbchainb", version="1.0", out_dir=str(tmp_path / "dist"), requires=["vendor-blob"])


@pytest.mark.parametrize(
    ("dist", "link", "covers"),
    [
        ("libbroker-provider-lbchaina", "lbchaina", True),
        ("LibBroker_Provider.LBChainA", "lbchaina", True),  # PEP 503 normalisation
        ("lbchaina", "lbchaina", True),
        ("lbchaina-bin", "lbchaina", True),
        ("scipy-openblas32", "scipy_openblas", True),
        ("a", "a", True),
        ("attrs", "a", False),  # merely starting with the link name is not enough
        ("numpy", "lbchaina", False),
    ],
)
def test_requires_named_after_the_dependency(dist: str, link: str, covers: bool) -> None:
    from packaging.requirements import Requirement

    from libbroker._wrap import _dist_provides

    assert _dist_provides(Requirement(dist), link, f"lib{link}.so.1") is covers


def test_a_system_only_library_needs_no_requires(libz: str, tmp_path) -> None:
    import zlib

    assert set(readelf_needed(libz)) <= {"libc.so.6"}
    wheel_path = wrap(libz, name="z", version=zlib.ZLIB_RUNTIME_VERSION, out_dir=str(tmp_path))
    with zipfile.ZipFile(wheel_path) as zf:
        manifest = tomllib.loads(zf.read("libbroker_provider_z/libbroker-provider.toml").decode())
    assert "dependencies" not in manifest["library"][0]


def test_version_is_checked_against_the_library(libz: str, tmp_path) -> None:
    import zlib

    real = zlib.ZLIB_RUNTIME_VERSION  # Python's zlib asked the same library (this process maps it)
    with pytest.raises(SpecError, match=rf"^--version: .* is version {re.escape(real)} \(source: .+\), not 0\.9; "
                                        rf"fix: --version {re.escape(real)}$"):
        wrap(libz, name="z", version="0.9", out_dir=str(tmp_path))
    # a packaging revision of the same release is fine
    assert wrap(libz, name="z", version=f"{real}.post1", out_dir=str(tmp_path)).endswith(".whl")


def test_version_from_a_product_numbered_file_name(libz: str, tmp_path) -> None:
    copy = tmp_path / "libz.so.1.2.99"  # not mapped, owned by no package: only its name tells
    shutil.copyfile(os.path.realpath(libz), copy)
    with pytest.raises(SpecError, match=r"is version 1\.2\.99 \(source: file-name\), not 1\.3"):
        wrap(str(copy), name="z", version="1.3", out_dir=str(tmp_path / "dist"))


@needs_gcc
def test_wrapping_never_runs_the_librarys_code(tmp_path) -> None:
    """No version source without loading: the check is skipped, and the constructor never runs."""
    marker = tmp_path / "ran"
    src = tmp_path / "ctor.c"
    src.write_text(
        "#include <stdio.h>\n"
        f"__attribute__((constructor)) static void boom(void) {{ FILE *f = fopen({str(marker)!r}, \"w\"); "
        "if (f) fclose(f); }\n"
        "const char *ctor_version(void) { return \"ctor 7.0\"; }\n".replace("'", '"')
    )
    lib = tmp_path / "libctor.so.7"
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libctor.so.7", "-o", str(lib), str(src)], check=True)
    spec = tmp_path / "ctor.toml"
    spec.write_text('[library]\nname = "ctor"\nnames = ["ctor"]\nversion-function = "ctor_version"\n'
                    '[functions]\nrequired = ["const char *ctor_version(void)"]\n')
    assert wrap(str(lib), name="ctor", version="1.0", out_dir=str(tmp_path / "dist"), spec=str(spec))
    assert not marker.exists()


def test_name_must_match_the_soname(libz: str, tmp_path) -> None:
    with pytest.raises(SpecError) as err:
        wrap(libz, name="foo_", version="1.0", out_dir=str(tmp_path))
    assert str(err.value).startswith("--name: ")
    assert "'libz.so.1'" in str(err.value) and "fix: use --name z" in str(err.value)
    assert "--dist-name" not in str(err.value)  # r18: never blame an option not given


@needs_gcc
def test_link_name_ending_in_underscore(tmp_path) -> None:
    """numpy's libscipy_openblas64_.so: a valid link name ending in '_' (repro r18)."""
    src = tmp_path / "u.c"
    src.write_text("int under_one(void) { return 1; }\n")
    lib = tmp_path / "libunder_.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libunder_.so", "-o", str(lib), str(src)], check=True)
    wheel_path = wrap(str(lib), name="under_", version="1.0", out_dir=str(tmp_path / "dist"))
    name, _, _, _ = parse_wheel_filename(os.path.basename(wheel_path))
    assert name == "libbroker-provider-under"
    with zipfile.ZipFile(wheel_path) as zf:
        assert "libbroker_provider_under_/lib/libunder_.so" in zf.namelist()
    with pytest.raises(SpecError, match=r"^--dist-name: .*'-bad-'"):
        wrap(str(lib), name="under_", version="1.0", out_dir=str(tmp_path), dist_name="-bad-")


def test_cli_requires_and_messages(chain: tuple[str, str], tmp_path) -> None:
    _, lib_b = chain
    cmd = [sys.executable, "-m", "libbroker", "wrap", lib_b, "--name", "lbchainb", "--version", "1.0",
           "-o", str(tmp_path)]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1 and "liblbchaina.so.1" in refused.stderr and refused.stdout == ""
    done = subprocess.run([*cmd, "--requires", "libbroker-provider-lbchaina", "--requires", "cffi"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"libbroker_provider_lbchainb-1.0-py3-none-manylinux_2_17_{os.uname().machine}.whl")
    bad = subprocess.run([*cmd, "--requires", "not a requirement!"], capture_output=True, text=True, timeout=120,
                         check=False)
    assert bad.returncode == 2 and "--requires" in bad.stderr and "not a requirement!" in bad.stderr


# --- a provider chain installed into a fresh venv ----------------------------------------


@pytest.fixture(scope="module")
def chain_venv(chain: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A new venv (libbroker on its path through a .pth file) with B installed from wheels only."""
    import sysconfig

    lib_a, lib_b = chain
    work = tmp_path_factory.mktemp("chainvenv")
    dist = str(work / "dist")
    wrap(lib_a, name="lbchaina", version="1.0", out_dir=dist)
    wrap(lib_b, name="lbchainb", version="2.0", out_dir=dist, requires=["libbroker-provider-lbchaina>=1.0"])
    venv = str(work / "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    python = os.path.join(venv, "bin", "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    deps = sysconfig.get_paths()["purelib"]  # packaging, platformdirs, pycparser of this venv
    with open(os.path.join(purelib, "libbroker-dev.pth"), "w") as f:
        f.write(f"{repo}\n{deps}\n")
    # Only B is asked for: pip must find A through B's Requires-Dist.
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", dist,
                    "libbroker-provider-lbchainb"], check=True, timeout=300, capture_output=True)
    return python


def test_fresh_venv_installs_the_chain_through_requires_dist(chain_venv: str) -> None:
    probe = (
        "import json, importlib.metadata as m, libbroker\n"
        "print(json.dumps({'a': m.version('libbroker-provider-lbchaina'),"
        " 'b_requires': m.requires('libbroker-provider-lbchainb'),"
        " 'origin_a': libbroker.find('lbchaina').origin,"
        " 'origin_b': libbroker.find('lbchainb').origin}))\n"
    )
    out = subprocess.run([chain_venv, "-c", probe], capture_output=True, text=True, check=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    import json

    facts = json.loads(out.stdout)
    assert facts == {"a": "1.0", "b_requires": ["libbroker-provider-lbchaina>=1.0"],
                     "origin_a": "provider:libbroker-provider-lbchaina",
                     "origin_b": "provider:libbroker-provider-lbchainb"}


def test_fresh_venv_loads_b_through_a(chain_venv: str) -> None:
    import importlib.util

    if importlib.util.find_spec("libbroker._closure") is None:
        pytest.skip("needs the closure resolver (libbroker._closure, on main) to load B's provider dependency")
    probe = (
        "import ctypes, libbroker\n"
        "lib = libbroker.load('lbchainb')\n"
        "f = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lib.address('chain_b'))\n"
        "print(f(5), lib.origin, [d.origin for d in lib.dependencies])\n"
    )
    out = subprocess.run([chain_venv, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "16"  # chain_a(5) * ... = 15, + 1
    assert "provider:libbroker-provider-lbchainb" in out.stdout
    assert "provider:libbroker-provider-lbchaina" in out.stdout


# --- DLLs and dylibs ---------------------------------------------------------------------------
# Facts as the PE and Mach-O readers report them (libbroker/_binary/__init__.py's attributes),
# through the same code wrap uses; then real binaries built by zig cc once the readers exist.

from types import SimpleNamespace

from libbroker._wrap import Facts, link_name_matches, platform_tag


def test_tags_from_reader_facts() -> None:
    dll = SimpleNamespace(format="PE", machine_name="x86_64", bits=64, kind="shared", soname="zlib1.dll",
                          needed=["KERNEL32.dll"], min_os=None, slices=[])
    assert platform_tag(Facts(dll)) == "win_amd64"
    thin = SimpleNamespace(format="Mach-O", machine_name="arm64", bits=64, kind="shared",
                           soname="@rpath/libz.1.dylib", needed=["/usr/lib/libSystem.B.dylib"], min_os="11.0", slices=[])
    assert platform_tag(Facts(thin)) == "macosx_11_0_arm64"
    x86 = SimpleNamespace(machine_name="x86_64", min_os="10.9", kind="shared", needed=["/usr/lib/libSystem.B.dylib"])
    arm = SimpleNamespace(machine_name="arm64", min_os="11.0", kind="shared", needed=["@rpath/libdep.1.dylib"])
    fat = SimpleNamespace(format="Mach-O", machine_name="x86_64", bits=64, kind="shared", soname="@rpath/libz.1.dylib",
                          needed=["/usr/lib/libSystem.B.dylib"], min_os="10.9", slices=[x86, arm])
    facts = Facts(fat)
    assert platform_tag(facts) == "macosx_10_9_universal2"
    assert facts.needed == ["/usr/lib/libSystem.B.dylib", "@rpath/libdep.1.dylib"]  # every slice's, once


@pytest.mark.parametrize(
    ("fmt", "filename", "name", "expected"),
    [
        ("PE", "zlib1.dll", "zlib1", True),
        ("PE", "libopenblas.dll", "openblas", True),
        ("PE", "libgfortran-5.dll", "gfortran", True),
        ("PE", "ZLIB1.DLL", "zlib1", True),
        ("PE", "zlib1.dll", "z", False),
        ("Mach-O", "@rpath/libz.1.dylib", "z", True),
        ("Mach-O", "/opt/homebrew/lib/libpython3.12.dylib", "python3.12", True),
        ("Mach-O", "@rpath/libz.1.dylib", "zstd", False),
        ("Mach-O", "@rpath/Foo.framework/Foo", "foo", None),
        ("ELF", "libz.so.1", "z", True),
        ("ELF", "libz.so.1", "zstd", False),
        ("ELF", "weird-name", "z", None),
    ],
)
def test_link_name_matches(fmt: str, filename: str, name: str, expected: bool | None) -> None:
    assert link_name_matches(fmt, filename, name) is expected


def _reader(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(f"libbroker._binary.{module}") is None:
        pytest.skip("needs the PE/Mach-O reader")


def fat_file(out: str, slices: list[tuple[int, int, str]]) -> str:
    """A universal file from thin ones: fat_header + fat_arch entries (big endian), 16 KiB aligned."""
    import struct

    align = 14
    header = struct.pack(">II", 0xCAFEBABE, len(slices))
    offset = 1 << align
    entries, blobs = b"", []
    for cputype, subtype, path in slices:
        with open(path, "rb") as f:
            data = f.read()
        entries += struct.pack(">iiIII", cputype, subtype, offset, len(data), align)
        blobs.append((offset, data))
        offset = (offset + len(data) + (1 << align) - 1) & ~((1 << align) - 1)
    with open(out, "wb") as f:
        f.write(header + entries)
        for where, data in blobs:
            f.seek(where)
            f.write(data)
    return out


@needs_zig
def test_wrap_dylibs(tmp_path) -> None:
    _reader("_macho")
    from macholib.MachO import MachO

    src = "int dz_one(void) { return 1; }\n"
    arm = zig_build(src, str(tmp_path / "arm/libdz.1.dylib"), "aarch64-macos.11.0",
                    "-Wl,-install_name,@rpath/libdz.1.dylib")
    x86 = zig_build(src, str(tmp_path / "x86/libdz.1.dylib"), "x86_64-macos.10.13",
                    "-Wl,-install_name,@rpath/libdz.1.dylib")
    out = str(tmp_path / "dist")
    assert wrap(arm, name="dz", version="1.0", out_dir=out).endswith("-py3-none-macosx_11_0_arm64.whl")
    assert wrap(x86, name="dz", version="1.0", out_dir=out).endswith("-py3-none-macosx_10_13_x86_64.whl")
    universal = fat_file(str(tmp_path / "libdz.1.dylib"), [(0x01000007, 3, x86), (0x0100000C, 0, arm)])
    assert len(MachO(universal).headers) == 2  # macholib reads it as a two-slice universal file
    wheel_path = wrap(universal, name="dz", version="1.0", out_dir=out)
    assert wheel_path.endswith("-py3-none-macosx_10_13_universal2.whl")
    with zipfile.ZipFile(wheel_path) as zf:
        manifest = tomllib.loads(zf.read("libbroker_provider_dz/libbroker-provider.toml").decode())
        packed = zf.read("libbroker_provider_dz/lib/libdz.1.dylib")
    with open(universal, "rb") as f:
        assert packed == f.read()
    assert manifest["library"][0]["soname"] == "@rpath/libdz.1.dylib"
    with pytest.raises(SpecError, match=r"install name is '@rpath/libdz\.1\.dylib'.*fix: use --name dz"):
        wrap(arm, name="other", version="1.0", out_dir=out)


@needs_zig
def test_wrap_dylib_dependencies(tmp_path) -> None:
    _reader("_macho")
    zig_build("int dd_one(void) { return 1; }\n", str(tmp_path / "dep/libdd.1.dylib"), "aarch64-macos.11.0",
                    "-Wl,-install_name,@rpath/libdd.1.dylib")
    user = zig_build("int dd_one(void);\nint du_two(void) { return dd_one() + 1; }\n",
                     str(tmp_path / "libdu.dylib"), "aarch64-macos.11.0", f"-L{tmp_path / 'dep'}", "-l:libdd.1.dylib",
                     "-Wl,-install_name,@rpath/libdu.dylib")
    with pytest.raises(IncompatibleLibraryError, match=r"'@rpath/libdd\.1\.dylib'.*macOS \(/usr/lib and /System\)"):
        wrap(user, name="du", version="1.0", out_dir=str(tmp_path / "dist"))
    wheel_path = wrap(user, name="du", version="1.0", out_dir=str(tmp_path / "dist"), requires=["libbroker-provider-dd"])
    with zipfile.ZipFile(wheel_path) as zf:
        manifest = tomllib.loads(zf.read("libbroker_provider_du/libbroker-provider.toml").decode())
    assert manifest["library"][0]["dependencies"] == [{"needed": "@rpath/libdd.1.dylib", "provider": "libbroker-provider-dd"}]


# DLLs without the C runtime: zig builds mingw-w64's CRT from source for each target the first
# time (minutes); an entry point of our own and kernel32 alone keep each build under a second.
DLL_MAIN = (
    "int __stdcall DllMainCRTStartup(void *h, unsigned long r, void *p) { (void)h; (void)r; (void)p; return 1; }\n"
    "__declspec(dllimport) unsigned long __stdcall GetCurrentProcessId(void);\n"
)
DLL_FLAGS = ("-nostdlib", "-Wl,--entry=DllMainCRTStartup")


@needs_zig
@pytest.mark.parametrize(("target", "tag"), [("x86_64-windows-gnu", "win_amd64"), ("x86-windows-gnu", "win32"),
                                              ("aarch64-windows-gnu", "win_arm64")])
def test_wrap_dlls(tmp_path, target: str, tag: str) -> None:
    _reader("_pe")
    import pefile

    src = DLL_MAIN + "__declspec(dllexport) int wz_pid(int v) { return v + (int)GetCurrentProcessId(); }\n"
    dll = zig_build(src, str(tmp_path / "wz.dll"), target, *DLL_FLAGS, "-lkernel32")
    imports = [e.dll.decode() for e in pefile.PE(dll).DIRECTORY_ENTRY_IMPORT]  # the oracle's view
    assert imports == ["KERNEL32.dll"]
    wheel_path = wrap(dll, name="wz", version="1.0", out_dir=str(tmp_path / "dist"))
    assert wheel_path.endswith(f"-py3-none-{tag}.whl")
    with zipfile.ZipFile(wheel_path) as zf:
        assert "libbroker_provider_wz/lib/wz.dll" in zf.namelist()
    with pytest.raises(SpecError, match=r"export name is 'wz\.dll'.*fix: use --name wz"):
        wrap(dll, name="other", version="1.0", out_dir=str(tmp_path / "dist"))


@needs_zig
def test_wrap_dll_with_undeclared_dependency(tmp_path) -> None:
    _reader("_pe")
    dep_dir = tmp_path / "dep"
    zig_build(DLL_MAIN + "__declspec(dllexport) int wd_one(void) { return 1; }\n", str(dep_dir / "wd.dll"),
              "x86_64-windows-gnu", *DLL_FLAGS, f"-Wl,--out-implib,{dep_dir / 'libwd.dll.a'}")
    user = zig_build(
        DLL_MAIN + "__declspec(dllimport) int wd_one(void);\n"
        "__declspec(dllexport) int wu_two(void) { return wd_one() + (int)GetCurrentProcessId(); }\n",
        str(tmp_path / "wu.dll"), "x86_64-windows-gnu", *DLL_FLAGS, f"-L{dep_dir}", "-lwd", "-lkernel32",
    )
    with pytest.raises(IncompatibleLibraryError, match=r"'wd\.dll'.*Windows \(system DLLs and API sets\)"):
        wrap(user, name="wu", version="1.0", out_dir=str(tmp_path / "dist"))
    wheel_path = wrap(user, name="wu", version="1.0", out_dir=str(tmp_path / "dist"), requires=["libbroker-provider-wd"])
    with zipfile.ZipFile(wheel_path) as zf:
        manifest = tomllib.loads(zf.read("libbroker_provider_wu/libbroker-provider.toml").decode())
    assert manifest["library"][0]["dependencies"] == [{"needed": "wd.dll", "provider": "libbroker-provider-wd"}]
