# The warm path of a consumer's import, and the process registry of tables.
#
# Included by _master.pyx. A generated header's libbroker_import_NAME() calls
# `import_table` here first. When the table index on disk holds a verdict whose
# every input is unchanged, this replays it: one read of a small marshal file,
# one stat per recorded input, the closure mapped by identity, one dlsym loop.
# No libbroker Python module is imported on that path (each costs more than
# the whole replay; docs/decisions.md "The warm path lives in the master").
#
# It decides nothing. The verdict, and the list of what it depends on (the
# stamps), were written by Python (`_tables._remember`, `_cache.decision_stamps`);
# this code checks the stamps with the same meaning as `_cache.stamps_valid`
# and accepts only a strict subset of what the Python rules accept: a
# symlinked or missing cache directory, an owner trusted only through the
# config file, an entry of an older shape, or any error, answers None, and the
# caller then runs the Python path (`_runtime.import_table`), which applies
# the full rules. Linux only (the map-the-open-file step needs /proc/self/fd);
# elsewhere the Python path runs.

import sys

cdef extern from "marshal.h":
    object PyMarshal_ReadObjectFromString(const char *data, Py_ssize_t size)

cdef extern from *:
    """
    #if defined(__linux__)
    #include <sys/stat.h>
    #include <fcntl.h>
    #include <unistd.h>
    #include <limits.h>
    #define LBW_SUPPORTED 1
    /* The _cache.identity tuple: dev, ino, size, mtime_ns, ctime_ns, mode, uid. */
    typedef struct { unsigned long long dev, ino; long long size, mtime, ctime;
                     unsigned long long mode, uid; } lbw_ident;
    static void lbw_fill(const struct stat *st, lbw_ident *out) {
        out->dev = (unsigned long long)st->st_dev;
        out->ino = (unsigned long long)st->st_ino;
        out->size = (long long)st->st_size;
        out->mtime = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
        out->ctime = (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
        out->mode = (unsigned long long)st->st_mode;
        out->uid = (unsigned long long)st->st_uid;
    }
    static int lbw_stat(const char *path, int follow, lbw_ident *out) {
        struct stat st;
        if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) return -1;
        lbw_fill(&st, out);
        return 0;
    }
    static int lbw_fstat(int fd, lbw_ident *out) {
        struct stat st;
        if (fstat(fd, &st) != 0) return -1;
        lbw_fill(&st, out);
        return 0;
    }
    static int lbw_open(const char *path) {
        /* O_NOFOLLOW: the final component must not be a symlink swapped in after the
         * path was resolved; O_NONBLOCK: a FIFO planted there must not block us. */
        return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    }
    static int lbw_is_dir(unsigned long long mode) { return S_ISDIR((mode_t)mode); }
    static int lbw_is_reg(unsigned long long mode) { return S_ISREG((mode_t)mode); }
    static int lbw_is_lnk(unsigned long long mode) { return S_ISLNK((mode_t)mode); }
    static unsigned long long lbw_uid(void) { return (unsigned long long)getuid(); }
    static unsigned long long lbw_euid(void) { return (unsigned long long)geteuid(); }
    #else
    #define LBW_SUPPORTED 0
    typedef struct { unsigned long long dev, ino; long long size, mtime, ctime;
                     unsigned long long mode, uid; } lbw_ident;
    static int lbw_stat(const char *p, int f, lbw_ident *o) { (void)p; (void)f; (void)o; return -1; }
    static int lbw_fstat(int fd, lbw_ident *o) { (void)fd; (void)o; return -1; }
    static int lbw_open(const char *p) { (void)p; return -1; }
    static int lbw_is_dir(unsigned long long m) { (void)m; return 0; }
    static int lbw_is_reg(unsigned long long m) { (void)m; return 0; }
    static int lbw_is_lnk(unsigned long long m) { (void)m; return 0; }
    static unsigned long long lbw_uid(void) { return 0; }
    static unsigned long long lbw_euid(void) { return 0; }
    #endif

    /* CRC-32 (the polynomial of zlib and binascii.crc32), table-driven: the cache
     * writer checksums with binascii, whose import is a dlopen the warm path avoids. */
    static uint32_t lbw_crc_table[256];
    static int lbw_crc_ready = 0;
    static uint32_t lbw_crc32(const unsigned char *p, size_t n) {
        uint32_t c;
        size_t i;
        if (!lbw_crc_ready) {
            uint32_t k, v;
            int b;
            for (k = 0; k < 256; k++) {
                v = k;
                for (b = 0; b < 8; b++) v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
                lbw_crc_table[k] = v;
            }
            lbw_crc_ready = 1;
        }
        c = 0xFFFFFFFFu;
        for (i = 0; i < n; i++) c = lbw_crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
    """
    ctypedef struct lbw_ident:
        unsigned long long dev, ino
        long long size, mtime, ctime
        unsigned long long mode, uid
    int LBW_SUPPORTED
    int lbw_stat(const char *path, int follow, lbw_ident *out) nogil
    int lbw_fstat(int fd, lbw_ident *out) nogil
    int lbw_open(const char *path) nogil
    int lbw_is_dir(unsigned long long mode) nogil
    int lbw_is_reg(unsigned long long mode) nogil
    int lbw_is_lnk(unsigned long long mode) nogil
    unsigned long long lbw_uid() nogil
    unsigned long long lbw_euid() nogil
    uint32_t lbw_crc32(const unsigned char *p, size_t n) nogil

cdef extern from "<unistd.h>":
    ssize_t read(int fd, void *buf, size_t count) nogil
    int close(int fd) nogil

cdef extern from "<stdlib.h>":
    char *realpath(const char *path, char *resolved) nogil

# Shared with the Python side (`_cache`): tests/test_master.py checks they agree.
CACHE_FORMAT = 2
CACHE_MAGIC = b"LBc\x02"
CACHE_MAX_BYTES = 4 << 20
TABLES_KIND = "tables"
TABLE_ENTRY_FORMAT = 3
_PROC_FD = "/proc/self/fd/"
_S_IWGO = 0o022
_S_ISVTX = 0o1000

# The process registry of tables (the bottom of the table layer; `_registry`
# names these very objects). spec digest -> capsule; (file identity, layout
# digest, table name) -> capsule; table address -> name / importing modules.
tables_by_spec = {}
tables_by_layout = {}
table_names = {}
table_consumers = {}
# Libraries mapped by the warm path, for `_loader` to adopt as Library objects
# the first time it is used (it is not imported on this path; calls go down only).
warm_pending = []

cdef dict _safe_dirs = {}
cdef list _serial = [0]


def unique_fd_path(int fd):
    """/proc/self/fd/N spelled differently on every call ("./" and "/" steps encode a serial).

    The loader matches a new request by name first, against every name an object
    was ever opened under: a second dlopen("/proc/self/fd/5") would get the
    library first opened as fd 5, whatever fd 5 is now. A name never used
    before goes on to the loader's (device, inode) match, which is what we want.
    One serial per process, shared by the Python loader and the warm path.
    """
    _serial[0] += 1
    cdef object serial = _serial[0]
    steps = "".join(["./" if serial >> bit & 1 else "/" for bit in range(serial.bit_length())])
    return f"{_PROC_FD}{steps}{fd}"


cdef tuple _ident_tuple(lbw_ident *i):
    return (i.dev, i.ino, i.size, i.mtime, i.ctime, i.mode, i.uid)


cdef object _identity(object path):
    """`_cache.identity`: the 7-tuple of the file behind *path* (symlinks followed), or None."""
    cdef lbw_ident i
    cdef bytes b = os.fsencode(path)
    if b"\0" in b or lbw_stat(b, 1, &i) != 0:
        return None
    return _ident_tuple(&i)


cdef object _place(object path):
    """`_cache._place_stamp`: (dev, ino, mode, uid) of the entry itself, or None."""
    cdef lbw_ident i
    cdef bytes b = os.fsencode(path)
    if b"\0" in b or lbw_stat(b, 0, &i) != 0:
        return None
    return (i.dev, i.ino, i.mode, i.uid)


cdef object _dir_stamp(object path):
    """`_cache.dir_stamp`: (ino, mtime_ns, ctime_ns, mode, uid), or -1 when absent."""
    cdef lbw_ident i
    cdef bytes b = os.fsencode(path)
    if b"\0" in b or lbw_stat(b, 1, &i) != 0:
        return -1
    return (i.ino, i.mtime, i.ctime, i.mode, i.uid)


cdef object _realpath(object path):
    """realpath(3), or os.path.realpath where the C call fails (a missing component:
    Python's answer is then a best-effort string, and the stamps recorded Python's)."""
    cdef bytes b = os.fsencode(path)
    cdef char *r
    if b"\0" in b:
        return None
    r = realpath(b, NULL)
    if r == NULL:
        return os.path.realpath(path)
    try:
        return os.fsdecode(<bytes>r)
    finally:
        free(r)


cdef object _cwd_among(object dirs):
    """`_cache._cwd_among`: the current directory if it is one of *dirs*, else None.

    Equal real paths name the same directory, so a directory whose (device, inode)
    differs from the cwd's cannot match, and one stat settles it instead of a
    realpath (a syscall per component). A missing directory is compared by
    Python's realpath only when ".." could make its best-effort answer the cwd.
    """
    cdef lbw_ident here, there
    try:
        cwd = _realpath(os.getcwd())
    except OSError:
        return None
    if cwd is None or type(dirs) is not tuple:
        return None
    if lbw_stat(os.fsencode(cwd), 1, &here) != 0:
        return None if not [d for d in dirs if type(d) is str and d.startswith("/")
                            and os.path.realpath(d) == cwd] else cwd
    for d in dirs:
        if type(d) is not str or not d.startswith("/") or "\0" in d:
            continue
        if lbw_stat(os.fsencode(d), 1, &there) != 0:
            if ".." in d.split("/") and os.path.realpath(d) == cwd:
                return cwd
            continue
        if there.dev == here.dev and there.ino == here.ino and _realpath(d) == cwd:
            return cwd
    return None


def env_key():
    """`_cache.env_key()` computed here (tests check the two agree in many environments)."""
    env = os.environ
    return (
        env.get("LIBBROKER_PATH"),
        env.get("LD_LIBRARY_PATH"),
        env.get("CONDA_PREFIX"),
        env.get("LIBBROKER_CONFIG"),
        env.get("HOME"),
        env.get("XDG_CONFIG_HOME"),
        env.get("XDG_CACHE_HOME"),
        sys.prefix,
        tuple(sys.path),
    )


cdef object _cache_dir():
    """`_cache.cache_dir()` on Linux, or None where this path defers to Python
    (no HOME: Python asks the password database; a relative override: Python warns)."""
    env = os.environ
    override = env.get("LIBBROKER_CACHE_DIR")
    if override:
        return override if override.startswith("/") else None
    base = env.get("XDG_CACHE_HOME", "").strip()
    if not (base and base.startswith("/")):
        home = env.get("HOME")
        if not home or not home.startswith("/"):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "libbroker")


cdef bint _safe_cache_dir(str directory):
    """A strict subset of `_cache.usable_dir`'s rule: every component from "/" a real
    directory (no symlink, no "." or ".."), owned by root or us, not writable by others
    unless sticky on the way; the directory itself owned by root or the real user."""
    cached = _safe_dirs.get(directory)
    if cached is not None:
        return cached
    cdef lbw_ident i
    cdef unsigned long long uid = lbw_uid(), euid = lbw_euid()
    cdef bint ok = directory.startswith("/")
    parts = [p for p in directory.split("/") if p] if ok else []
    if ok and ("." in parts or ".." in parts):
        ok = False
    steps = ["/"] + ["/" + "/".join(parts[:k + 1]) for k in range(len(parts))] if ok else []
    cdef Py_ssize_t n = len(steps), k
    for k in range(n):
        if lbw_stat(os.fsencode(steps[k]), 0, &i) != 0 or not lbw_is_dir(i.mode):
            ok = False
            break
        if i.uid != 0 and i.uid != uid and i.uid != euid:
            ok = False
            break
        if i.mode & _S_IWGO and not (i.mode & _S_ISVTX and k < n - 1):
            ok = False
            break
        if k == n - 1 and i.uid != 0 and i.uid != uid:
            ok = False
    _safe_dirs[directory] = ok
    return ok


cdef object _read_cache_file(str path):
    """The payload of a cache file when it is ours, bounded and its checksum holds, else None
    (`_cache.load` + `_cache._unwrap`)."""
    cdef bytes b = os.fsencode(path)
    cdef int fd = lbw_open(b)
    cdef lbw_ident i
    cdef bytearray buf
    cdef Py_ssize_t got = 0
    cdef ssize_t r
    cdef unsigned long long uid = lbw_uid()
    if fd < 0:
        return None
    try:
        if lbw_fstat(fd, &i) != 0 or not lbw_is_reg(i.mode) or i.size > CACHE_MAX_BYTES:
            return None
        if (i.uid != uid and i.uid != 0) or i.mode & _S_IWGO:
            return None
        buf = bytearray(i.size + 1)
        while got < len(buf):
            r = read(fd, <char *>buf + got, len(buf) - got)
            if r <= 0:
                break
            got += r
        if got < 12 or got > CACHE_MAX_BYTES or bytes(buf[:4]) != CACHE_MAGIC:
            return None
        size = int.from_bytes(buf[4:8], "little")
        if size != got - 12:
            return None
        if int.from_bytes(buf[8:12], "little") != lbw_crc32(<unsigned char *><char *>buf + 12, size):
            return None
        return PyMarshal_ReadObjectFromString(<char *>buf + 12, size)
    finally:
        close(fd)


_ENTRY_TYPES = (
    ("env", tuple), ("stamps", list), ("path", str), ("link", str), ("origin", str),
    ("symbols", list), ("required", list), ("signatures", list), ("layout", int), ("table", str),
)


cdef bint _entry_ok(object entry):
    """`_registry._entry_shape_ok`, plus the fields only this path reads."""
    if type(entry) is not dict or entry.get("format") != TABLE_ENTRY_FORMAT:
        return False
    for field, kind in _ENTRY_TYPES:
        if not isinstance(entry.get(field), kind):
            return False
    for field in ("soname", "version", "version_source", "config"):
        if field not in entry or not isinstance(entry[field], (str, type(None))):
            return False
    symbols, required, signatures = entry["symbols"], entry["required"], entry["signatures"]
    return (
        len(symbols) == len(required) == len(signatures)
        and all([type(s) is bytes for s in symbols])
        and all([type(r) is bool for r in required])
        and all([type(s) is str for s in signatures])
    )


cdef bint _stamps_hold(list stamps, object config):
    """`_cache.stamps_valid`, with the config file's path recorded by the writer (it is a
    function of the environment variables the entry's env key already pins)."""
    for item in stamps:
        kind, stamp = item
        if kind == "@config":
            if stamp != (_identity(config) if config is not None else None):
                return False
            if stamp is not None and not lbw_is_reg(stamp[5]):
                return False
        elif kind == "@file" or kind == "@dir" or kind == "@input":
            real, ident = stamp
            if ident is None or _identity(real) != ident:
                return False
        elif kind == "@place":
            where, ident = stamp
            if _place(where) != ident:
                return False
        elif kind == "@cwd":
            dirs, among = stamp
            if _cwd_among(dirs) != among:
                return False
        elif type(kind) is not str or _dir_stamp(kind) != stamp:
            return False
    return True


cdef object _map_judged(str real, tuple ident):
    """dlopen the file at *real* if it still has the judged identity: opened once
    (O_NOFOLLOW), fstat-ed, owned by root or us and writable by no one else, then that
    open file is mapped (/proc/self/fd/N) and the link map renamed to *real*.
    The handle, or None (the Python loader then decides, with its full rules)."""
    cdef lbw_ident i
    cdef int fd = lbw_open(os.fsencode(real))
    cdef unsigned long long uid = lbw_uid(), euid = lbw_euid()
    if fd < 0:
        return None
    try:
        if lbw_fstat(fd, &i) != 0 or _ident_tuple(&i) != ident or not lbw_is_reg(i.mode):
            return None
        if (i.uid != 0 and i.uid != uid and i.uid != euid) or i.mode & _S_IWGO:
            return None
        try:
            handle = dlopen(unique_fd_path(fd))
        except OSError:
            return None  # e.g. a $ORIGIN dependency: the Python loader retries by path
        set_link_name(handle, real, _PROC_FD)
        return handle
    finally:
        close(fd)


cdef object _replay(str spec_digest):
    """The capsule rebuilt from the table index on disk, or None (the Python path runs)."""
    if not LBW_SUPPORTED or "libbroker._loader" in sys.modules:
        # Once the Python loader runs it owns the registry of libraries (a file it
        # loaded must map to its Library): replay through it instead.
        return None
    directory = _cache_dir()
    if directory is None or not _safe_cache_dir(directory):
        return None
    entry = _read_cache_file(os.path.join(directory, f"{TABLES_KIND}/{spec_digest}-v{CACHE_FORMAT}.marshal"))
    if not _entry_ok(entry) or entry["env"] != env_key():
        return None
    stamps = entry["stamps"]
    if not _stamps_hold(stamps, entry["config"]):
        return None
    files = [stamp for kind, stamp in stamps if kind == "@file"]
    if not files:
        return None
    for real, ident in files[1:]:
        # The closure, dependencies first, by absolute path and identity: the system
        # loader then binds each DT_NEEDED to the judged copy and never searches.
        if type(real) is not str or type(ident) is not tuple:
            return None
        if not noload(real) and _map_judged(real, ident) is None:
            return None
    real, ident = files[0]
    if type(real) is not str or type(ident) is not tuple:
        return None
    handle = _map_judged(real, ident)
    if handle is None:
        return None
    addresses = lookup_many(handle, entry["symbols"])
    for address, required in zip(addresses, entry["required"]):
        if required and not address:
            return None
    key = ((ident[0], ident[1]), entry["layout"], entry["table"])
    capsule = tables_by_layout.get(key)
    if capsule is None:
        capsule = make_table(entry["table"], entry["layout"], entry["path"],
                             entry["version"] or "", entry["signatures"], addresses)
        capsule = tables_by_layout.setdefault(key, capsule)
        table_names[table_address(capsule)] = entry["table"]
    warm_pending.append({
        "path": entry["path"], "real": real, "handle": handle, "identity": (ident[0], ident[1]),
        "name": entry["link"], "origin": entry["origin"], "soname": entry["soname"],
        "version": entry["version"], "version_source": entry["version_source"],
        "table": table_address(capsule), "layout_key": key,
    })
    return capsule


def replay(spec_digest):
    """The warm path alone (for tests and benchmarks): the capsule or None; never raises."""
    try:
        return _replay(spec_digest)
    except Exception:
        return None


def note_consumer(capsule, module):
    """Record that extension *module* imported the table in *capsule* (doctor's "tables")."""
    consumers = table_consumers.setdefault(table_address(capsule), [])
    if module not in consumers:
        consumers.append(module)


cdef object _importing_module():
    """The extension module whose init function is running, read from the frames of
    importlib's ExtensionFileLoader (exec_module for multi-phase init, as Cython's
    modules use; create_module for single-phase C modules); None outside an import."""
    try:
        frame = sys._getframe(0)  # the caller is C: the nearest Python frame is importlib's
    except ValueError:
        return None
    for _ in range(12):
        if frame is None:
            return None
        code = frame.f_code.co_name
        if code == "exec_module":
            name = getattr(frame.f_locals.get("module"), "__name__", None)
            return name if type(name) is str else None
        if code == "create_module":
            name = getattr(frame.f_locals.get("spec"), "name", None)
            return name if type(name) is str else None
        frame = frame.f_back
    return None


def import_table(name, spec_digest, spec_text, module=None):
    """The capsule for a generated header's table: what `libbroker_import_NAME()` calls.

    In this process's registry, else replayed from the table index on disk, else
    built by the Python layer (`libbroker._runtime.import_table`: search, judge,
    load, check, remember). *module*: the importing extension module's name;
    None means the module the import system is initialising, if any.
    Raises what the Python layer raises (BrokerError subclasses) on a miss.
    """
    capsule = tables_by_spec.get(spec_digest)
    if capsule is None:
        try:
            capsule = _replay(spec_digest)
        except Exception:
            capsule = None  # a stale or foreign entry never breaks an import
        if capsule is None:
            from libbroker import _runtime

            return _runtime.import_table(name, spec_digest, spec_text, module)
        capsule = tables_by_spec.setdefault(spec_digest, capsule)
    if module is None:
        module = _importing_module()
    if module is not None:
        note_consumer(capsule, module)
    return capsule


# For tests (tests/test_warm.py): the pieces above, each compared with the Python rule
# it must agree with or be stricter than.
def cache_dir():
    """`_cache.cache_dir()` as this path computes it, or None where it defers to Python."""
    return _cache_dir()


def cache_dir_is_safe(directory):
    """True when this path trusts *directory* as the cache directory (memoised per process)."""
    return _safe_cache_dir(directory)


def read_entry(path):
    """The object stored in the cache file *path*, or None when it is not ours, bounded
    and intact (the checks of `_cache.load`)."""
    return _read_cache_file(path)


def stamps_hold(stamps, config):
    """`_cache.stamps_valid(stamps)` as this path computes it (*config*: the config path)."""
    try:
        return _stamps_hold(stamps, config)
    except Exception:
        return False
