"""The config file: where it is read from, when it is trusted, and what it may say."""

from __future__ import annotations

import os
import pwd
import subprocess

import pytest

import libbroker
from libbroker import _config

ROOT = os.geteuid() == 0


def _write(tmp_path, text: str, mode: int = 0o644) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


@pytest.fixture
def config_at(tmp_path, monkeypatch):
    def make(text: str, mode: int = 0o644) -> _config.Config:
        monkeypatch.setenv("LIBBROKER_CONFIG", _write(tmp_path, text, mode))
        _config._parsed.clear()
        return _config.load_config()

    return make


def test_valid_config(config_at, tmp_path) -> None:
    config = config_at(f'search-paths = ["{tmp_path}"]\n[libraries.z]\nprefer = "system"\n')
    assert config.exists and config.search_paths == [str(tmp_path)] and config.prefer == {"z": "system"}
    assert config.ignored is None


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o664])
def test_config_writable_by_others_is_ignored(config_at, mode) -> None:
    with pytest.warns(libbroker.BrokerWarning, match="ignores the config file.*writable"):
        config = config_at('search-paths = ["/opt/evil"]\n', mode)
    assert config.search_paths == [] and config.ignored and "chmod go-w" in config.ignored


def test_config_in_a_directory_others_can_write_is_ignored(tmp_path, monkeypatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("LIBBROKER_CONFIG", _write(shared, 'search-paths = ["/opt/evil"]\n'))
    _config._parsed.clear()
    with pytest.warns(libbroker.BrokerWarning, match="world-writable"):
        assert _config.load_config().search_paths == []


@pytest.mark.skipif(not ROOT, reason="chown needs root")
def test_config_owned_by_another_user_is_ignored(config_at, tmp_path) -> None:
    path = _write(tmp_path, 'search-paths = ["/opt/evil"]\n')
    os.chown(path, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.warns(libbroker.BrokerWarning, match="owned by another user"):
        config = config_at('search-paths = ["/opt/evil"]\n')
    assert config.search_paths == []


@pytest.mark.parametrize("text", [
    "search-paths = " + "[" * 600 + "]" * 600 + "\n",
    "x = " + "{a=" * 2000 + "1" + "}" * 2000 + "\n",
])
def test_deep_nesting_is_a_spec_error(config_at, text) -> None:
    with pytest.raises(libbroker.SpecError, match="nests arrays or tables too deeply") as info:
        config_at(text)
    assert "config.toml" in str(info.value)


def test_oversized_config_is_a_spec_error(config_at) -> None:
    with pytest.raises(libbroker.SpecError, match="larger than"):
        config_at("# " + "x" * (_config.MAX_TOML_BYTES + 10) + "\n")


def test_relative_search_path_is_refused(config_at) -> None:
    with pytest.raises(libbroker.SpecError, match="not absolute.*current directory"):
        config_at('search-paths = ["lib"]\n')


def test_trusted_owners_by_name_and_uid(config_at) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    config = config_at(f'trusted-owners = ["nobody", {os.getuid()}]\n')
    assert config.trusted_uids == frozenset({nobody, os.getuid()})
    from libbroker import _places

    assert nobody in _places.trusted_uids()


@pytest.mark.parametrize("value, match", [('["no-such-user-xyz"]', "not a user"), ('"root"', "list of user names")])
def test_trusted_owners_errors(config_at, value, match) -> None:
    with pytest.raises(libbroker.SpecError, match=match):
        config_at(f"trusted-owners = {value}\n")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "libbroker", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd="/", timeout=30)


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_config_that_is_not_a_regular_file_is_refused_never_read(tmp_path, kind) -> None:
    """review F2: a FIFO as the config file blocked `find` forever; /dev/zero was silently used."""
    if kind == "fifo":
        path = str(tmp_path / "fifo.toml")
        os.mkfifo(path)
        what = "FIFO"
    else:
        path, what = "/dev/zero", "character device"
    for _ in range(2):  # the second run must not replay a cached verdict past the refusal
        r = _cli({"LIBBROKER_CONFIG": path, "LIBBROKER_CACHE_DIR": str(tmp_path / "cache")}, "find", "z")
        assert r.returncode == 2, r.stdout + r.stderr
        assert what in r.stderr and path in r.stderr and "fix: " in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_config_of_another_user_gets_a_config_fix(tmp_path) -> None:
    """review F5: one fix clause, for a config file (never trusted-owners, never a library move),
    printed by the CLI as `libbroker: warning:` without a libbroker source line."""
    os.chmod(tmp_path, 0o755)
    mal = tmp_path / "mal"
    mal.mkdir()
    cfg = mal / "config.toml"
    cfg.write_text("")
    os.chown(mal, 65534, 65534)
    os.chown(cfg, 65534, 65534)
    r = _cli({"LIBBROKER_CONFIG": str(cfg), "LIBBROKER_CACHE_DIR": str(tmp_path / "cache")}, "find", "z")
    assert r.returncode == 0, r.stderr
    (line,) = [line for line in r.stderr.splitlines() if line]
    assert line.startswith("libbroker: warning: libbroker ignores the config file")
    assert line.lower().count("fix:") == 1 and "LIBBROKER_CONFIG" in line
    assert "trusted-owners" not in line and "move the library" not in line and ".py:" not in line


def test_parsed_config_is_not_reused_once_its_directory_is_unsafe(tmp_path, monkeypatch) -> None:
    # review F10: the same file (same identity) in a directory that became world-writable is
    # refused by a fresh read, so the memo of the earlier read must not answer.
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(cfg_dir, 0o755)
    monkeypatch.setenv("LIBBROKER_CONFIG", _write(cfg_dir, '[libraries.z]\npath = "/opt/z/libz.so.1"\n', 0o600))
    _config._parsed.clear()
    assert _config.load_config().pins == {"z": "/opt/z/libz.so.1"}
    os.chmod(cfg_dir, 0o777)
    with pytest.warns(libbroker.BrokerWarning, match="ignores the config file.*world-writable"):
        config = _config.load_config()
    assert config.pins == {} and config.ignored


def test_ignored_config_warning_names_the_callers_line(tmp_path, monkeypatch) -> None:
    # review F10 (message): the warning points at the user's call, not at a libbroker line.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(shared, 0o777)
    monkeypatch.setenv("LIBBROKER_CONFIG", _write(shared, 'search-paths = ["/opt/evil"]\n', 0o600))
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    _config._parsed.clear()
    _config._warned.clear()
    with pytest.warns(libbroker.BrokerWarning, match="ignores the config file") as record:
        libbroker.find("z")
    assert [w.filename for w in record if "config file" in str(w.message)] == [__file__]


def test_a_config_that_is_a_directory_gets_the_fix_for_where_it_was_found(tmp_path, monkeypatch) -> None:
    """review4 R4-3: found through XDG_CONFIG_HOME (LIBBROKER_CONFIG unset), the fix names the
    file to remove or replace, not a variable the user never set."""
    import libbroker
    from libbroker import SpecError

    config = tmp_path / "libbroker" / "config.toml"
    config.mkdir(parents=True)
    monkeypatch.delenv("LIBBROKER_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(SpecError) as caught:
        libbroker.find("z")
    assert f"remove {str(config)!r} or replace it with a regular TOML file" in str(caught.value)
    monkeypatch.setenv("LIBBROKER_CONFIG", str(config))
    with pytest.raises(SpecError) as caught:
        libbroker.find("z")
    assert "set LIBBROKER_CONFIG to a regular file, or unset it" in str(caught.value)


@pytest.mark.parametrize("text", [
    'search-paths = ["/opt/a\\u0000b"]\n',
    '[libraries.z]\npath = "/opt/z/libz.so.1\\u0000"\n',
    'trusted-owners = ["nobody\\u0000"]\n',
    '[libraries."z\\u0000"]\nprefer = "system"\n',
])
def test_a_nul_in_the_config_is_a_spec_error(config_at, text) -> None:
    # review5 F13: a NUL reached the OS as a bare ValueError (and broke consumer imports).
    with pytest.raises(libbroker.SpecError, match="NUL character") as caught:
        config_at(text)
    assert "config.toml" in str(caught.value) and "fix: remove it" in str(caught.value)
