"""The command line: exit codes 0/1/2, --json on stdout, diagnostics on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

SPECS = Path(__file__).parent / "specs"


def run(*args: str, env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "libbroker", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def test_find_json() -> None:
    out = run("find", "z", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["version"] == zlib.ZLIB_RUNTIME_VERSION
    assert os.path.isabs(data["path"]) and data["origin"] in ("system", "environment")


def test_find_text_and_all() -> None:
    out = run("find", "z")
    assert out.returncode == 0 and out.stdout.splitlines()[0].endswith("libz.so.1")
    out = run("find", "m", "--all", "--json")
    assert out.returncode == 0
    cands = json.loads(out.stdout)
    assert any(c["accepted"] for c in cands)
    assert all(c["reason"] for c in cands if not c["accepted"])


def test_find_not_found_exit_1() -> None:
    out = run("find", "lb_surely_absent_library")
    assert out.returncode == 1
    assert out.stdout == "" and "lb_surely_absent_library" in out.stderr
    assert "searched" in out.stderr
    out = run("find", "lb_surely_absent_library", "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["error"] == "LibraryNotFoundError"


def test_find_bad_version_exit_1_and_bad_specifier_exit_2() -> None:
    assert run("find", "z", "--version", ">=99").returncode == 1
    out = run("find", "z", "--version", "not a specifier")
    assert out.returncode == 2 and "not a specifier" in out.stderr


def test_usage_errors_exit_2() -> None:
    assert run().returncode == 2
    assert run("frobnicate").returncode == 2
    assert run("find").returncode == 2


def test_inspect_json_against_readelf() -> None:
    path = os.path.realpath("/usr/lib/x86_64-linux-gnu/libz.so.1")
    if not os.path.exists(path):
        pytest.skip("no libz at the Debian path")
    out = run("inspect", path, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    readelf = subprocess.run(["readelf", "-dW", path], capture_output=True, text=True).stdout
    assert f"[{data['soname']}]" in readelf
    for needed in data["needed"]:
        assert f"[{needed}]" in readelf
    assert data["machine"] == "x86_64" and data["bits"] == 64 and data["functions"] > 50
    assert data["glibc"].startswith("GLIBC_2.")


def test_inspect_text_file_exit_1(tmp_path) -> None:
    bogus = tmp_path / "libbogus.so"
    bogus.write_text("not a library")
    out = run("inspect", str(bogus))
    assert out.returncode == 1 and str(bogus) in out.stderr


def test_check_lists_optional(tmp_path) -> None:
    out = run("check", str(SPECS / "zlib.toml"), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["version"] == zlib.ZLIB_RUNTIME_VERSION
    assert data["required"]["missing"] == []
    assert "crc32_z" in data["optional"]["present"]
    assert "libbroker_absent_probe" in data["optional"]["missing"]


def test_check_says_why_the_spec_packages_did_not_serve(tmp_path) -> None:
    # Review F6: a spec's `packages` that gave nothing (a typo'd or absent distribution)
    # is said, not passed over; a path there is a spec error (exit 2) naming the line.
    spec = tmp_path / "pk.toml"
    body = ('[functions]\nrequired = ["unsigned long crc32(unsigned long c, '
            'const unsigned char *b, unsigned int n)"]\n')
    spec.write_text('[library]\nname = "zz"\nnames = ["z"]\npackages = ["no-such-dist-xyz"]\n' + body)
    out = run("check", str(spec), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["packages_searched"] == [
        "package 'no-such-dist-xyz': not installed (fix: pip install no-such-dist-xyz)"]
    assert (f"libbroker check: note: package 'no-such-dist-xyz': not installed (fix: pip install "
            f"no-such-dist-xyz); 'zz' came from {data['origin']}") in out.stderr
    spec.write_text('[library]\nname = "zz"\nnames = ["z"]\npackages = ["/tmp/att"]\n' + body)
    out = run("check", str(spec))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"libbroker check: {spec}:4: [library] packages has an invalid "
                                 "entry '/tmp/att': a path, not a distribution name")


def test_generate_and_spec_error(tmp_path) -> None:
    out = run("generate", str(SPECS / "zlib.toml"), "-o", str(tmp_path / "gen"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "gen" / "libbroker_zlib.h").exists()
    assert (tmp_path / "gen" / "libbroker_zlib.pxd").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("[library]\nname = 'not valid'\n[functions]\nrequired = ['int f(void)']\n")
    out = run("generate", str(bad), "-o", str(tmp_path / "gen2"))
    assert out.returncode == 2 and str(bad) in out.stderr
    assert not (tmp_path / "gen2").exists() or not os.listdir(tmp_path / "gen2")


def test_list_json() -> None:
    out = run("list", "--json")
    assert out.returncode == 0
    groups = json.loads(out.stdout)
    assert any(item["name"] == "z" for item in groups["system"])


def test_doctor_json_import(tmp_path) -> None:
    out = run("doctor", "--import", "zlib", "--import", "sqlite3", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert isinstance(data["loaded"], list) and all("path" in item for item in data["loaded"])
    assert isinstance(data["duplicates"], list)
    paths = [item["path"] for item in data["loaded"]]
    assert any("_sqlite3" in p for p in paths)


def test_doctor_failed_import_exit_1() -> None:
    out = run("doctor", "--import", "lb_no_such_module")
    assert out.returncode == 1 and "lb_no_such_module" in out.stderr


MALFORMED = {
    "syntax": "[library\nname = 'x'\n",
    "no name": "[library]\nnames = ['z']\n[functions]\nrequired = ['int f(void)']\n",
    "bad identifier": "[library]\nname = '9lives'\n[functions]\nrequired = ['int f(void)']\n",
    "duplicate": "[library]\nname = 'x'\n[functions]\nrequired = ['int f(void)', 'int f(void)']\n",
    "unknown type": "[library]\nname = 'x'\n[functions]\nrequired = ['mystery_t f(void)']\n",
    "not C": "[library]\nname = 'x'\n[functions]\nrequired = ['this is not C']\n",
    # Variadic prototypes are accepted since issue 12; '...' alone is still not C before C23.
    "variadic without a fixed parameter": "[library]\nname = 'x'\n[functions]\nrequired = ['int f(...)']\n",
    "bad version": "[library]\nname = 'x'\nversion = '>>1'\n[functions]\nrequired = ['int f(void)']\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_generate_malformed_spec_exit_2(case: str, tmp_path, capsys) -> None:
    from libbroker._cli import main

    spec = tmp_path / f"{case.replace(' ', '_')}.toml"
    spec.write_text(MALFORMED[case])
    assert main(["generate", str(spec), "-o", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and str(spec) in captured.err
    assert main(["check", str(spec)]) == 2


def test_doctor_import_several_modules_after_one_flag() -> None:
    out = run("doctor", "--import", "zlib", "sqlite3", "--json")
    assert out.returncode == 0, out.stderr
    paths = [item["path"] for item in json.loads(out.stdout)["loaded"]]
    assert any("_sqlite3" in p for p in paths)


def test_check_reports_missing_required(tmp_path) -> None:
    spec = tmp_path / "miss.toml"
    spec.write_text(
        "[library]\nname = 'zmiss'\nnames = ['z']\n[functions]\n"
        "required = ['unsigned long crc32(unsigned long, const unsigned char *, unsigned int)', "
        "'int lb_not_in_zlib(void)']\n"
    )
    out = run("check", str(spec), "--json")
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert data["missing_required"] == ["lb_not_in_zlib"] and data["ok"] is False
    assert "lb_not_in_zlib" in out.stderr


def _gcc(out: Path, source: str, *args: str) -> Path:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src), f"-Wl,-soname,{out.name}", *args], check=True)
    return out


def test_inspect_real_verdict_with_closure(tmp_path: Path) -> None:
    # r14: a dependency that cannot be found makes the file not loadable, and says which.
    (tmp_path / "a").mkdir()
    _gcc(tmp_path / "a" / "libdep.so.1", "int dep_f(void){return 7;}\n")
    lib = _gcc(tmp_path / "a" / "libfoo.so.2", "int dep_f(void); int foo_g(void){return dep_f();}\n",
               f"-L{tmp_path / 'a'}", "-l:libdep.so.1")
    data = json.loads(run("inspect", str(lib), "--json").stdout)
    for key in ("format", "machine", "bits", "soname", "needed", "exports", "rpath", "runpath",
                "min_os", "slices", "loadable", "reason"):
        assert key in data
    assert data["format"] == "ELF" and data["bits"] == 64 and data["needed"][0] == "libdep.so.1"
    assert data["loadable"] is False and "libdep.so.1" in data["reason"]
    text = run("inspect", str(lib)).stdout
    assert "loadable here: no" in text and "libdep.so.1" in text
    fixed = _gcc(tmp_path / "a" / "libfoo3.so.3", "int dep_f(void); int foo_g(void){return dep_f();}\n",
                 f"-L{tmp_path / 'a'}", "-l:libdep.so.1", "-Wl,-rpath,$ORIGIN")
    data = json.loads(run("inspect", str(fixed), "--json").stdout)
    assert data["loadable"] is True and data["reason"] is None
    assert data["runpath"] + data["rpath"] == ["$ORIGIN"]
    assert [d["path"] for d in data["dependencies"]] == [str(tmp_path / "a" / "libdep.so.1")]


def test_inspect_executable_never_loadable() -> None:
    data = json.loads(run("inspect", os.path.realpath(sys.executable), "--json").stdout)
    assert data["loadable"] is False and "executable" in data["reason"]


def test_find_all_says_what_load_does(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _gcc(tmp_path / "a" / "libdep.so.1", "int dep_f(void){return 7;}\n")
    _gcc(tmp_path / "a" / "liblbfa.so.2", "int dep_f(void); int g(void){return dep_f();}\n",
         f"-L{tmp_path / 'a'}", "-l:libdep.so.1")
    _gcc(tmp_path / "b" / "liblbfa.so.1", "int g(void){return 1;}\n")
    env = dict(os.environ, LIBBROKER_PATH=f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    rows = json.loads(run("find", "lbfa", "--all", "--json", env=env).stdout)
    accepted = [r["path"] for r in rows if r["accepted"]]
    assert accepted == [str(tmp_path / "b" / "liblbfa.so.1")]
    loaded = subprocess.run(
        [sys.executable, "-c", "import libbroker; print(libbroker.load('lbfa').path)"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()
    assert loaded == accepted[0]


def test_check_with_a_real_version_string(tmp_path: Path) -> None:
    # r11: curl_version() says "libcurl/7.88.1 OpenSSL/3.0.19 ...": its first dotted number counts.
    spec = tmp_path / "c.toml"
    spec.write_text(
        '[library]\nname = "curl"\nnames = ["curl"]\nversion = ">=7.0"\nversion-function = "curl_version"\n'
        '[functions]\nrequired = ["int curl_global_init(long flags)"]\n'
    )
    out = run("check", str(spec), "--json")
    if "no acceptable library" in out.stderr or "not found" in out.stderr:
        pytest.skip("libcurl is not installed")
    data = json.loads(out.stdout)
    assert data["ok"] and data["version"].count(".") >= 2 and not data["version"].startswith("4.")
    dpkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libcurl4"], capture_output=True, text=True,
                          check=False).stdout
    if dpkg:
        assert dpkg.startswith(data["version"])


def test_every_command_takes_json() -> None:
    # Review F7: README says every command takes --json (design 3.4: "--json on every
    # reporting command"); spec and config did not.
    from libbroker import _cli

    parser = _cli.build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    lacking = [name for name, p in sub.choices.items()
               if not any("--json" in a.option_strings for a in p._actions)]
    assert lacking == []


def test_paths_with_control_characters_stay_on_one_line(tmp_path) -> None:
    # Review F8: find --all and list print tab-separated lines; a file whose path holds a
    # line break (a directory named so) is shown quoted, one file per line.
    import shutil

    odd = tmp_path / "a\nb\tc"
    odd.mkdir()
    shutil.copy(os.path.realpath(f"/usr/lib/{sys.implementation._multiarch}/libz.so.1"),
                odd / "libzq.so.1")
    out = run("find", "zq", "--all", env={"LIBBROKER_PATH": str(odd)})
    assert out.returncode == 0, out.stderr
    [line] = out.stdout.splitlines()
    assert line.split("\t")[0] == repr(str(odd / "libzq.so.1"))
    assert line.endswith("\taccepted")
    out = run("list", env={"LIBBROKER_PATH": str(odd)})
    assert out.returncode == 0, out.stderr
    assert any(repr(str(odd / "libzq.so.1")) in row for row in out.stdout.splitlines())
    assert "\nb\tc" not in out.stdout


def test_list_package_that_is_a_path_is_refused_with_its_reason() -> None:
    out = run("list", "--package", "/tmp/att")
    assert out.returncode == 0
    assert ("libbroker list: --package '/tmp/att' ignored: a path, not a distribution name"
            in out.stderr)
    assert "pip install /tmp/att" not in out.stderr


# The plainest `list` and `doctor` lines skip argparse (`_plain_args`); argparse is the
# oracle: the same namespace for every form taken, and every other form left to it.
PLAIN = [["list"], ["list", "--json"], ["list", "--json", "--json"], ["doctor"],
         ["doctor", "--json"], ["doctor", "--import", "numpy"],
         ["doctor", "--import", "a", "b.c", "--json"], ["doctor", "--import", "a", "--import", "b"],
         ["doctor", "--json", "--import", "a", "b"]]
NOT_PLAIN = [[], ["list", "--package", "x"], ["list", "--js"], ["list", "-h"], ["list", "extra"],
             ["doctor", "--import"], ["doctor", "--import", "-"], ["doctor", "--import=numpy"],
             ["doctor", "--imp", "x"], ["doctor", "--import", "a", "--"], ["find", "z"],
             ["--version"], ["list", "--import", "x"]]


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_plain_command_lines_parse_as_argparse_does(argv: list[str]) -> None:
    from libbroker import _cli

    plain = _cli._plain_args(argv)
    assert plain is not None
    assert vars(plain) == vars(_cli.build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", NOT_PLAIN, ids=lambda a: " ".join(a) or "(none)")
def test_other_command_lines_are_left_to_argparse(argv: list[str]) -> None:
    from libbroker import _cli

    assert _cli._plain_args(argv) is None


@pytest.mark.parametrize("columns", ["40", "100", None])
def test_help_is_wrapped_as_argparse_wraps_it(monkeypatch, columns: str | None) -> None:
    """The formatter that spares importing shutil wraps exactly as argparse's own does
    (shutil.get_terminal_size: $COLUMNS, else the terminal, else 80)."""
    import argparse

    from libbroker import _cli

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    parser = _cli.build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    for p in [parser, *sub.choices.values()]:  # type: ignore[union-attr]
        ours = p.format_help()
        p.formatter_class = argparse.HelpFormatter
        assert ours == p.format_help()


def test_list_and_doctor_do_not_import_argparse_or_json() -> None:
    code = ("import contextlib, io, sys\nfrom libbroker._cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['list']); main(['doctor'])\n"
            "print(sorted(m for m in ('argparse', 'json') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "[]"


# --- inputs that are not regular files (review 2) ----------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize("command", [["check"], ["generate", "-o", "OUT"]])
def test_check_and_generate_refuse_a_fifo_spec(tmp_path, command: list[str]) -> None:
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    out = run(args[0], str(fifo), *args[1:])  # run() times out after 120 s: a hang fails
    assert out.returncode == 2, out.stderr
    assert "expected a spec file (TOML text) but found a directory, FIFO" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="Linux /proc")
def test_inspect_proc_self_mem_is_a_clear_error() -> None:
    out = run("inspect", "/proc/self/mem")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "'/proc/self/mem': the file cannot be examined: Input/output error" in out.stderr


def test_list_package_with_a_record_that_is_not_utf8(tmp_path) -> None:
    site = tmp_path / "site"
    info = site / "badrec-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badrec\nVersion: 1.0\n\n")
    (info / "RECORD").write_bytes(b"badrec/libbad.so.1,,\n\xff\n")
    out = run("list", "--package", "badrec",
              env={"PYTHONPATH": str(site), "LIBBROKER_CACHE_DIR": str(tmp_path / "c")})
    assert "Traceback" not in out.stderr and out.returncode == 0, out.stderr
    assert "package 'badrec' ignored:" in out.stderr
    assert "RECORD' is not UTF-8: byte 0xff at offset 21" in out.stderr
