"""libbroker._master's Windows branch under wine: LoadLibraryExW with the safe
flags, GetModuleHandleExW, EnumProcessModules, OSError with winerror, and the
version-function guard (VirtualQuery before every page read)."""

from __future__ import annotations

import ctypes
import os

import pytest

from libbroker import _master


def loaded_paths() -> dict[str, str]:
    return {os.path.basename(p).lower(): p for p, _ in _master.loaded_objects()}


def test_master_is_the_mingw_pyd() -> None:
    assert _master.__file__.endswith(".pyd")


def test_dependency_next_to_the_dll_is_found(fixtures: str) -> None:
    """lbdep.dll sits next to lbmain.dll, in a PATH directory (-1000) and in the
    current directory (-2000); the safe flags take the one next to the DLL."""
    lib = os.path.join(fixtures, "lib", "lbmain.dll")
    assert os.path.isfile(os.path.join(os.getcwd(), "lbdep.dll"))           # the cwd decoy
    assert any(os.path.isfile(os.path.join(d, "lbdep.dll"))
               for d in os.environ["PATH"].split(";") if d)                  # the PATH decoy
    handle = _master.dlopen(lib)
    assert handle
    answer = ctypes.CFUNCTYPE(ctypes.c_int)(_master.dlsym(handle, "lbmain_answer"))
    assert answer() == 43
    paths = loaded_paths()
    assert os.path.normcase(paths["lbdep.dll"]) == os.path.normcase(
        os.path.join(fixtures, "lib", "lbdep.dll"))
    # Same file again: the same module.
    assert _master.dlopen(lib) == handle
    assert _master.noload(lib) == handle


def test_missing_dependency_gives_winerror(fixtures: str) -> None:
    """lbmiss.dll imports lbdep2.dll, present only in PATH and in the cwd."""
    path = os.path.join(fixtures, "lonely", "lbmiss.dll")
    with pytest.raises(OSError) as info:
        _master.dlopen(path)
    err = info.value
    assert err.winerror == 126                     # ERROR_MOD_NOT_FOUND
    assert err.filename == path
    assert err.strerror and "the file exists: a DLL it imports" in err.strerror
    assert "lbdep2.dll" not in loaded_paths()


def test_absent_file_and_relative_path(fixtures: str) -> None:
    absent = os.path.join(fixtures, "lib", "no-such.dll")
    with pytest.raises(OSError) as info:
        _master.dlopen(absent)
    assert info.value.winerror == 126
    assert "the file exists" not in (info.value.strerror or "")
    with pytest.raises(OSError) as info:
        _master.dlopen("lbdep.dll")                # in the cwd: never searched for
    assert info.value.winerror == 87               # ERROR_INVALID_PARAMETER
    assert "absolute path" in (info.value.strerror or "")
    assert _master.noload(absent) == 0


def test_not_a_dll(fixtures: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = tmp_path / "text.dll"
    text.write_bytes(b"this is not a PE file\n" * 10)
    with pytest.raises(OSError) as info:
        _master.dlopen(str(text))
    assert info.value.winerror in (193, 11)        # ERROR_BAD_EXE_FORMAT (wine: 11)
    assert info.value.strerror


def test_enum_process_modules_lists_python_and_the_library(fixtures: str) -> None:
    _master.dlopen(os.path.join(fixtures, "lib", "lbmain.dll"))
    objects = _master.loaded_objects()
    names = {os.path.basename(p).lower() for p, _ in objects}
    assert {"python311.dll", "kernel32.dll", "lbmain.dll", "lbdep.dll"} <= names
    assert all(os.path.isabs(p) and base > 0 for p, base in objects)
    assert "python.exe" not in names               # the main program is left out


@pytest.fixture(scope="module")
def lbver(fixtures: str) -> int:
    return int(_master.dlopen(os.path.join(fixtures, "lib", "lbver.dll")))


def version_of(handle: int, name: str) -> bytes | None:
    address = _master.dlsym(handle, name)
    assert address, name
    return _master.call_version_function(address)  # type: ignore[no-any-return]


def test_version_function_good_and_null(lbver: int) -> None:
    assert version_of(lbver, "ver_ok") == b"lbver 1.2.3"
    assert version_of(lbver, "ver_null") is None


@pytest.mark.parametrize("name", ["ver_int", "ver_wild", "ver_noaccess", "ver_reserved", "ver_guard"])
def test_version_function_returning_no_string_is_refused(lbver: int, name: str) -> None:
    with pytest.raises(ValueError, match="not a readable C string"):
        version_of(lbver, name)


def test_version_text_stops_at_an_inaccessible_page(lbver: int) -> None:
    assert version_of(lbver, "ver_edge") == b"EEEEEEE"


def test_version_text_is_bounded(lbver: int) -> None:
    assert version_of(lbver, "ver_long") == b"L" * 4096
