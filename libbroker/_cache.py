"""The on-disk cache: small marshal files under the user cache directory.

marshal, not json or pickle: it is the fastest loader in the standard library
and imports nothing (json pulls `re`). A corrupt, foreign or unwritable cache is
ignored, never fatal: the cache only ever saves work.
"""

import _thread
import marshal
import os
import sys

_FORMAT = 1
_dir: str | None = None


def cache_dir() -> str:
    """`platformdirs.user_cache_dir("libbroker")`, or $LIBBROKER_CACHE_DIR.

    On Linux the XDG rule is applied here directly (the same rule platformdirs
    implements; tests/test_cache.py checks they agree) because importing
    platformdirs costs pathlib and `re` on the warm path.
    """
    global _dir
    override = os.environ.get("LIBBROKER_CACHE_DIR")
    if override:
        return override
    if _dir is None:
        if sys.platform.startswith("linux"):
            base = os.environ.get("XDG_CACHE_HOME", "").strip()
            if not base:
                base = os.path.expanduser("~/.cache")
            _dir = os.path.join(base, "libbroker")
        else:
            import platformdirs

            _dir = platformdirs.user_cache_dir("libbroker", appauthor=False)
    return _dir


def _file(kind: str) -> str:
    return os.path.join(cache_dir(), f"{kind}-v{_FORMAT}.marshal")


def load(kind: str) -> dict:
    """The cached dict stored under *kind*, or {} when absent or unreadable."""
    try:
        with open(_file(kind), "rb") as f:
            data = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def store(kind: str, data: dict) -> None:
    """Atomically replace the dict stored under *kind*; failures are ignored."""
    path = _file(kind)
    # pid and thread: two writers in one process must not share a temporary file.
    tmp = f"{path}.{os.getpid()}.{_thread.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(marshal.dumps(data))
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def update(kind: str, key: object, value: object, *, limit: int = 512) -> None:
    """Read-modify-write one entry (last writer wins; entries are independent)."""
    data = load(kind)
    if len(data) >= limit and key not in data:
        data.clear()  # bounded: a cache that grows forever is worse than a cold lookup
    data[key] = value
    store(kind, data)


def identity(path: str) -> tuple[int, int, int, int] | None:
    """(device, inode, size, mtime_ns) of the file behind *path*, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def env_key() -> tuple:
    """The environment variables a cached decision depends on."""
    env = os.environ
    return (
        env.get("LIBBROKER_PATH"),
        env.get("LD_LIBRARY_PATH"),
        env.get("CONDA_PREFIX"),
        env.get("LIBBROKER_CONFIG"),
    )


def decision_stamps(search_stamps: list, chosen_path: str) -> list:
    """What a decision depends on: the directories searched, the config file, the chosen file."""
    real = os.path.realpath(chosen_path)
    return [
        *search_stamps,
        ("@config", config_stamp()[1]),
        ("@file", (real, identity(real))),
    ]


def stamps_valid(stamps: list) -> bool:
    """True while every directory, the config file and the chosen file are as recorded."""
    for path, stamp in stamps:
        if path == "@config":
            if stamp != config_stamp()[1]:
                return False
        elif path == "@file":
            real, ident = stamp
            if identity(real) != ident:
                return False
        elif dir_stamp(path) != stamp:
            return False
    return True


def dir_stamp(path: str) -> int:
    """A directory's mtime in ns, or -1 when it does not exist (so creating it invalidates)."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


# The config file's location lives here, not in _config, so that validating a
# cached decision (which depends on the file's mtime) imports nothing more.
def config_path() -> str:
    override = os.environ.get("LIBBROKER_CONFIG")
    if override:
        return override
    if sys.platform.startswith("linux"):
        # Same XDG rule as platformdirs.user_config_dir (checked by the tests),
        # without importing it on the warm path.
        base = os.environ.get("XDG_CONFIG_HOME", "").strip() or os.path.expanduser("~/.config")
        return os.path.join(base, "libbroker", "config.toml")
    import platformdirs

    return os.path.join(platformdirs.user_config_dir("libbroker", appauthor=False), "config.toml")


def config_stamp() -> tuple[str, tuple[int, int] | None]:
    """What a cached decision depends on: the config file's path and (mtime, size)."""
    path = config_path()
    try:
        st = os.stat(path)
    except OSError:
        return (path, None)
    return (path, (st.st_mtime_ns, st.st_size))
