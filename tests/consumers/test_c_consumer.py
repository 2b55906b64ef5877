"""A plain C extension (two translation units) against libbroker_zlib.h."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from _concurrency import run_at_once

import libbroker

from ._build import HERE, SPECS, needed_entries, run_python

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF consumers")

C_SETUP = """
from setuptools import Extension, setup
setup(name="c_consumer", ext_modules=[Extension("c_consumer",
      ["c_consumer.c", "c_consumer_more.c"], include_dirs={includes!r},
      define_macros={macros!r})])
"""


def build_c(workdir: Path, spec: Path = SPECS / "zlib.toml", macros: list | None = None) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    gen = workdir / "gen"
    libbroker.generate(libbroker.Spec.from_file(spec), str(gen))
    for name in ("c_consumer.c", "c_consumer_more.c"):
        shutil.copy(HERE / name, workdir / name)
    (workdir / "setup.py").write_text(
        C_SETUP.format(includes=[libbroker.get_include(), str(gen)], macros=macros or [])
    )
    subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
        cwd=workdir, check=True, capture_output=True, timeout=600,
    )
    return next(p for p in workdir.iterdir() if p.name.startswith("c_consumer.") and p.suffix == ".so")


@pytest.fixture(scope="module")
def c_consumer(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("cconsumer")
    ext = build_c(workdir)
    sys.path.insert(0, str(workdir))
    try:
        import c_consumer

        yield c_consumer, ext
    finally:
        sys.path.remove(str(workdir))


def test_no_needed_entry(c_consumer) -> None:
    _, ext = c_consumer
    assert not any(n.startswith("libz") for n in needed_entries(ext))


def test_calls_match_python_zlib(c_consumer) -> None:
    mod, _ = c_consumer
    for size in (0, 1, 4096, 1 << 20):
        data = random.Random(size).randbytes(size)
        assert mod.crc32(data) == zlib.crc32(data)
        assert mod.adler32_other_file(data) == zlib.adler32(data)


def test_second_file_shares_the_table(c_consumer) -> None:
    mod, _ = c_consumer
    mod.adler32_other_file(b"x")  # first call in that file imports lazily
    here, other = mod.tables()
    assert here == other != 0


def test_optional_slots(c_consumer) -> None:
    mod, _ = c_consumer
    assert mod.optional_slots() == (True, False)


def test_32_threads_importing_get_one_table(c_consumer) -> None:
    mod, _ = c_consumer
    results = run_at_once(mod.reimport)
    assert len(results) == 32 and len(set(results)) == 1


def test_call_before_import_imports_on_first_use(tmp_path: Path) -> None:
    workdir = tmp_path / "noimport"
    build_c(workdir, macros=[("C_CONSUMER_NO_IMPORT", "1")])
    out = run_python(workdir, "import c_consumer, zlib; print(c_consumer.crc32(b'abc') == zlib.crc32(b'abc'))")
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr


def test_call_before_failed_import_stops_with_message(tmp_path: Path) -> None:
    spec = tmp_path / "zlib.toml"
    text = (SPECS / "zlib.toml").read_text().replace('names = ["z", "zlib1", "zlib"]', 'names = ["lb_no_such_zlib"]')
    spec.write_text(text)
    workdir = tmp_path / "noimport_missing"
    build_c(workdir, spec=spec, macros=[("C_CONSUMER_NO_IMPORT", "1")])
    out = run_python(workdir, "import c_consumer; c_consumer.crc32(b'abc')")
    assert out.returncode != 0
    assert "zlib.crc32" in out.stderr and "libbroker_import_zlib()" in out.stderr
    assert "lb_no_such_zlib" in out.stderr  # the broker's reason is printed first


def test_import_failure_is_import_error_with_cause(tmp_path: Path) -> None:
    spec = tmp_path / "zlib.toml"
    spec.write_text((SPECS / "zlib.toml").read_text().replace('version = ">=1.2.11"', 'version = ">=99"'))
    workdir = tmp_path / "badversion"
    build_c(workdir, spec=spec)
    out = run_python(
        workdir,
        """
        import libbroker
        try:
            import c_consumer
        except ImportError as exc:
            print(type(exc.__cause__).__name__, isinstance(exc.__cause__, libbroker.BrokerError))
            print(exc)
        """,
    )
    assert out.returncode == 0, out.stderr
    first, message = out.stdout.split("\n", 1)
    assert first == "IncompatibleLibraryError True"
    assert ">=99" in message


def test_layout_mismatch_refused_without_crash(tmp_path: Path) -> None:
    workdir = tmp_path / "mismatch"
    build_c(workdir)
    spec = libbroker.Spec.from_file(SPECS / "zlib.toml")
    other = (SPECS / "zlib.toml").read_text().replace(
        '"uLong adler32(uLong adler, const Bytef *buf, uInt len)"',
        '"uLong adler32(uLong adler, const Bytef *buf, z_size_t len)"',
    )
    # A table of another layout under this spec's digest (as a differing provider
    # table would be): the consumer must refuse it, naming the first difference.
    out = run_python(
        workdir,
        f"""
        import libbroker
        from libbroker import _registry
        _registry.by_spec[{spec.spec_digest!r}] = libbroker.table({other!r})
        try:
            import c_consumer
        except ImportError as exc:
            print("refused:", exc)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused:") and "adler32" in out.stdout, out.stdout
