"""A consumer's warm import replayed by the master alone, and every case where it must not be.

The C consumer of test_c_consumer.py, a private copy of the system's libz on
LIBBROKER_PATH (so the tests can change what the verdict depends on), one cache
directory per test. Each step is a fresh interpreter; Python's zlib is the oracle.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from ._build import run_python
from .test_c_consumer import build_c

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF consumers")

PROBE = """
import json, sys
import c_consumer
import zlib  # after the consumer: the oracle must not decide which libz is mapped
import _libbroker_warm as m
out = {
    "ok": c_consumer.crc32(b"warm path") == zlib.crc32(b"warm path"),
    "replayed": len(m.warm_pending),
    "modules": sorted(k for k in sys.modules if k.startswith("libbroker") or k == "_libbroker_warm"),
}
EXTRA
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def consumer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c(tmp_path_factory.mktemp("warmconsumer")).parent


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    os.chmod(tmp_path, 0o755)
    lib = tmp_path / "lib"
    lib.mkdir(mode=0o755)
    system = Path(os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1"))
    if not system.exists():
        pytest.skip("no system libz.so.1")
    shutil.copy(system, lib / "libz.so.1")
    os.chmod(lib / "libz.so.1", 0o755)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    return {"LIBBROKER_PATH": str(lib), "LIBBROKER_CACHE_DIR": str(cache),
            "LIBBROKER_CONFIG": str(tmp_path / "no-config.toml")}


def probe(workdir: Path, env: dict[str, str], extra: str = "") -> dict:
    out = run_python(workdir, PROBE.replace("EXTRA", extra), env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    return result


def test_warm_import_loads_only_the_master(consumer_dir: Path, env: dict[str, str]) -> None:
    cold = probe(consumer_dir, env)
    assert cold["replayed"] == 0 and "libbroker._tables" in cold["modules"]
    warm = probe(consumer_dir, env)
    assert warm["replayed"] == 1
    assert warm["modules"] == ["_libbroker_warm"]  # not even the package: the replay is all C


def test_warm_tables_are_known_to_loaded_and_doctor(consumer_dir: Path, env: dict[str, str]) -> None:
    probe(consumer_dir, env)
    extra = """
import libbroker
from libbroker import _doctor
libs = [l for l in libbroker.loaded() if l.name == "z"]
out["loaded"] = [(l.path, l.version_text, l.version_source) for l in libs]
out["zlib_version"] = zlib.ZLIB_RUNTIME_VERSION
out["tables"] = _doctor.tables()
"""
    warm = probe(consumer_dir, env, extra)
    assert warm["replayed"] == 1
    private = os.path.join(env["LIBBROKER_PATH"], "libz.so.1")
    [(path, version, source)] = warm["loaded"]
    assert os.path.realpath(path) == os.path.realpath(private)
    assert version == warm["zlib_version"] and source
    [table] = [t for t in warm["tables"] if t["name"] == "zlib"]
    assert os.path.realpath(table["library"]) == os.path.realpath(private)
    assert table["consumers"] == ["c_consumer"]


def test_a_chmod_of_the_library_is_judged_afresh(consumer_dir: Path, env: dict[str, str]) -> None:
    probe(consumer_dir, env)
    os.chmod(os.path.join(env["LIBBROKER_PATH"], "libz.so.1"), 0o750)  # ctime and mode change
    again = probe(consumer_dir, env)
    assert again["replayed"] == 0 and "libbroker._tables" in again["modules"]
    assert probe(consumer_dir, env)["replayed"] == 1  # the new verdict is replayed next time


def test_an_unsafe_library_is_never_replayed(consumer_dir: Path, env: dict[str, str]) -> None:
    probe(consumer_dir, env)
    lib = os.path.join(env["LIBBROKER_PATH"], "libz.so.1")
    os.chmod(lib, 0o775)  # group-writable: the place rules refuse it, so the system libz serves
    extra = "out['path'] = __import__('libbroker').loaded()[0].path"
    again = probe(consumer_dir, env, extra)
    assert again["replayed"] == 0 and os.path.realpath(again["path"]) != os.path.realpath(lib)


def test_a_new_file_in_a_searched_directory_voids_the_replay(consumer_dir: Path, env: dict[str, str]) -> None:
    probe(consumer_dir, env)
    Path(env["LIBBROKER_PATH"], "README").write_text("a new entry")
    assert probe(consumer_dir, env)["replayed"] == 0


def test_symlinked_cache_dir_is_left_to_the_python_rules(
    consumer_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    os.symlink(env["LIBBROKER_CACHE_DIR"], tmp_path / "cache-link")
    env = {**env, "LIBBROKER_CACHE_DIR": str(tmp_path / "cache-link")}
    probe(consumer_dir, env)
    warm = probe(consumer_dir, env)
    # The compiled path does not follow symlinks to its cache; Python's rules accept this
    # one and replay the entry without a search.
    assert warm["replayed"] == 0
    assert "libbroker._registry" in warm["modules"] and "libbroker._tables" not in warm["modules"]


def test_unsafe_cache_dir_is_used_by_neither(consumer_dir: Path, env: dict[str, str]) -> None:
    probe(consumer_dir, env)
    os.chmod(env["LIBBROKER_CACHE_DIR"], 0o770)
    out = run_python(consumer_dir, PROBE.replace("EXTRA", ""), env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["replayed"] == 0 and "libbroker._tables" in result["modules"]
    assert "ignores its disk cache" in out.stderr


def test_corrupt_entry_is_rebuilt(consumer_dir: Path, env: dict[str, str]) -> None:
    probe(consumer_dir, env)
    [entry] = Path(env["LIBBROKER_CACHE_DIR"], "tables").iterdir()
    raw = bytearray(entry.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    entry.write_bytes(bytes(raw))
    assert probe(consumer_dir, env)["replayed"] == 0
    assert probe(consumer_dir, env)["replayed"] == 1


def test_python_loader_already_running_takes_over(consumer_dir: Path, env: dict[str, str]) -> None:
    probe(consumer_dir, env)
    code = PROBE.replace("import c_consumer\n", "import libbroker._loader\nimport c_consumer\n", 1)
    out = run_python(consumer_dir, code.replace("EXTRA", "out['n'] = len(__import__('libbroker').loaded())"), env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # One Library for the file, whichever path mapped it.
    assert result["ok"] and result["replayed"] == 0 and result["n"] == 1


def test_a_file_written_beside_the_consumer_keeps_the_verdict(consumer_dir: Path, env: dict[str, str]) -> None:
    # The consumer's directory is on sys.path: a new file there (a log, a pip install that
    # brings no provider) changes no provider, so the verdict is re-stamped, not re-judged.
    probe(consumer_dir, env)
    assert probe(consumer_dir, env)["replayed"] == 1
    (consumer_dir / "output.log").write_text("written by the application")
    try:
        again = probe(consumer_dir, env)
        assert again["replayed"] == 0 and "libbroker._tables" not in again["modules"]
        assert probe(consumer_dir, env)["replayed"] == 1  # re-stamped: the C replay again
    finally:
        (consumer_dir / "output.log").unlink()


def test_another_copy_already_mapped_is_counted(consumer_dir: Path, env: dict[str, str]) -> None:
    # One copy per process counts every copy (design.md 5.1): with the system's libz already
    # mapped, the private copy's verdict is not replayed blindly; the rules decide, as load()
    # does (reuse the mapped copy, or load the other with a DuplicateLibraryWarning).
    probe(consumer_dir, env)
    assert probe(consumer_dir, env)["replayed"] == 1
    code = PROBE.replace("import c_consumer\n", "import ctypes\nctypes.CDLL('libz.so.1')\nimport c_consumer\n", 1)
    out = run_python(consumer_dir, code.replace("EXTRA", "out['n'] = [l.path for l in __import__('libbroker').loaded()]"),
                     {**env, "PYTHONWARNINGS": "always"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["replayed"] == 0
    private = os.path.realpath(os.path.join(env["LIBBROKER_PATH"], "libz.so.1"))
    if any(os.path.realpath(p) == private for p in result["n"]):
        assert "DuplicateLibraryWarning" in out.stderr  # a second copy, said aloud


def test_two_programs_keep_their_own_verdicts(consumer_dir: Path, env: dict[str, str], tmp_path: Path) -> None:
    # sys.path differs per program (a script's own directory comes first): each keeps its
    # own table index entry, so alternating between them stays warm for both.
    other = {**env, "PYTHONPATH": f"{tmp_path}"}  # one more sys.path entry for the second program
    probe(consumer_dir, env)
    probe(consumer_dir, other)
    entries = list(Path(env["LIBBROKER_CACHE_DIR"], "tables").iterdir())
    assert len(entries) == 2, entries
    for _ in range(2):
        assert probe(consumer_dir, env)["replayed"] == 1
        assert probe(consumer_dir, other)["replayed"] == 1


@pytest.mark.parametrize("keep_crc", [True, False])
def test_an_entry_for_another_layout_is_judged_afresh(consumer_dir: Path, env: dict[str, str],
                                                      keep_crc: bool) -> None:
    """review3 F0: an entry whose layout differs from the request's (a damaged entry rewritten
    with a valid checksum, an entry of another build) is neither replayed in C nor in Python:
    the header would refuse the table (and once read a slot past the end doing so)."""
    import marshal

    from libbroker import _cache

    probe(consumer_dir, env)
    [entry] = Path(env["LIBBROKER_CACHE_DIR"], "tables").iterdir()
    data = marshal.loads(_cache._unwrap(entry.read_bytes()))
    data["layout"] = 0
    if not keep_crc:
        data["request_crc"] = None  # as `table(spec)` writes it: no request to compare
    entry.write_bytes(_cache._wrap(marshal.dumps(data)))
    result = probe(consumer_dir, env)  # ok: the table is the right one
    assert result["replayed"] == 0 and "libbroker._tables" in result["modules"]
    assert probe(consumer_dir, env)["replayed"] == 1  # rewritten with the right layout


def test_a_table_of_another_layout_with_the_same_slots_is_an_import_error(
        consumer_dir: Path, env: dict[str, str]) -> None:
    """review3 F0: the header's refusal of a table whose digest differs although every slot
    matches names both digests; it read one slot past the end before (SIGSEGV)."""
    probe(consumer_dir, env)
    [entry] = Path(env["LIBBROKER_CACHE_DIR"], "tables").iterdir()
    code = f"""
import marshal
import _libbroker_warm as m
from libbroker import _cache, _master
data = marshal.loads(_cache._unwrap(open({str(entry)!r}, "rb").read()))
digest = {entry.name.split("-")[0]!r}
m.tables_by_spec[digest] = _master.make_table(data["table"], data["layout"] ^ 1, data["path"], "",
                                              data["signatures"], [0] * len(data["signatures"]))
try:
    import c_consumer
except ImportError as exc:
    print("IMPORTERROR", exc)
"""
    out = run_python(consumer_dir, code, env)
    assert out.returncode == 0, out.stderr
    assert "IMPORTERROR" in out.stdout and "layout digest 0x" in out.stdout, out.stdout


def test_an_entry_written_without_a_request_is_judged_afresh(consumer_dir: Path, env: dict[str, str]) -> None:
    """review4 R4-5: an entry with no request CRC (as `table(spec)` writes it) cannot be tied
    to this header's slots, so a consumer carrying a request does not replay it (C or
    Python); the fresh judgement rewrites it with the CRC, and the next import replays."""
    import marshal

    from libbroker import _cache

    probe(consumer_dir, env)
    [entry] = Path(env["LIBBROKER_CACHE_DIR"], "tables").iterdir()
    data = marshal.loads(_cache._unwrap(entry.read_bytes()))
    assert isinstance(data["request_crc"], int)
    data["request_crc"] = None
    entry.write_bytes(_cache._wrap(marshal.dumps(data)))
    result = probe(consumer_dir, env)
    assert result["replayed"] == 0 and "libbroker._tables" in result["modules"]
    assert probe(consumer_dir, env)["replayed"] == 1


@pytest.mark.parametrize("damage", ["swap", "optional", "rename"])
def test_an_entry_whose_symbols_are_not_the_slots_is_judged_afresh(
        consumer_dir: Path, env: dict[str, str], damage: str) -> None:
    """review4 R4-5: an entry (checksum valid) whose symbols or required flags are not the
    request's slots is replayed neither in C nor in Python: another function in a slot, or
    NULL in a required one, would be called by the consumer. The oracle is Python's zlib."""
    import marshal

    from libbroker import _cache

    probe(consumer_dir, env)
    [entry] = Path(env["LIBBROKER_CACHE_DIR"], "tables").iterdir()
    data = marshal.loads(_cache._unwrap(entry.read_bytes()))
    symbols, required = data["symbols"], data["required"]
    if damage == "swap":
        symbols[0], symbols[1] = symbols[1], symbols[0]
    elif damage == "optional":
        required[0] = not required[0]
    else:  # another function of the library in slot 0
        symbols[0] = symbols[1]
    entry.write_bytes(_cache._wrap(marshal.dumps(data)))
    result = probe(consumer_dir, env)  # ok: crc32 is crc32
    assert result["replayed"] == 0 and "libbroker._tables" in result["modules"]
    assert probe(consumer_dir, env)["replayed"] == 1


def test_slots_match_affixes_and_flags() -> None:
    from libbroker._registry import slots_match

    slots = [("crc32", True), ("adler32", False)]
    assert slots_match([b"crc32", b"adler32"], [True, False], slots)
    assert slots_match([b"scipy_crc32_64", b"scipy_adler32_64"], [True, False], slots)
    assert not slots_match([b"adler32", b"crc32"], [True, False], slots)
    assert not slots_match([b"crc32", b"adler32"], [False, False], slots)
    assert not slots_match([b"p_crc32", b"q_adler32"], [True, False], slots)
    assert not slots_match([b"crc32"], [True], slots)
