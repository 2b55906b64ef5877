# cython: language_level=3, boundscheck=False, wraparound=False, binding=False
# cython: subinterpreters_compatible=shared_gil
"""libbroker._master: raw handles, symbol addresses and table capsules.

The only compiled module of libbroker (docs/architecture.md, layer 2). Every
decision (which file, which symbols, which version) is made in Python above;
this module only turns them into pointers. Handles and tables are never freed:
consumers keep raw pointers into them for the life of the process.

Thread safety: no module-level mutable C state. Loader calls run without the
GIL (dlopen runs constructors; dlsym waits on the loader lock while another
thread's dlopen runs them), and each loader call reads its own error text in
the same C function, on the same thread, before returning, because dlerror()
state is per thread and is overwritten by the next loader call.
"""

cdef extern from "Python.h":
    ctypedef struct PyInterpreterState
    PyInterpreterState *PyInterpreterState_Get()
    PyInterpreterState *PyInterpreterState_Main()

# libbroker's loaded libraries and tables are process-wide state that a subinterpreter
# cannot share (design.md 5.1). Cython creates this module once per interpreter (module
# state, subinterpreters_compatible), so the refusal is here, on every import of it,
# and the main interpreter keeps working whichever imported first. It costs nothing
# on the warm path (importing _xxsubinterpreters to ask costs 0.6 ms).
if PyInterpreterState_Get() != PyInterpreterState_Main():
    raise ImportError(
        "libbroker serves the main interpreter only: it holds process-wide state (the "
        "libraries it loaded and their function tables) that a subinterpreter cannot share; "
        "import libbroker and the extensions that use it from the main interpreter"
    )

import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.pycapsule cimport (
    PyCapsule_CheckExact,
    PyCapsule_GetName,
    PyCapsule_GetPointer,
    PyCapsule_New,
)
from libc.stdint cimport uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, strlen

cdef extern from "<string.h>":
    size_t strnlen(const char *s, size_t maxlen) nogil

cdef extern from "libbroker.h":
    """
    #define LB_CAPSULE_NAME_MAX 128
    """
    ctypedef struct libbroker_table_header:
        uint32_t magic
        uint16_t abi_major
        uint16_t abi_minor
        uint32_t header_size
        uint32_t slot_count
        uint64_t layout_digest
        const char *name
        const char *library_path
        const char *library_version
        const char *const *slot_signatures
    unsigned int LIBBROKER_TABLE_MAGIC
    int LIBBROKER_ABI_MAJOR
    int LIBBROKER_ABI_MINOR
    const char *LIBBROKER_CAPSULE_PREFIX
    int LB_CAPSULE_NAME_MAX


cdef extern from *:
    """
    /* Uniform loader API over the platform's: lb_open, lb_sym, lb_objects. */
    #include <stdlib.h>
    #include <string.h>
    #include <stdio.h>
    #include <stdint.h>

    typedef struct { char *name; uintptr_t addr; } lb_object;

    #ifdef _WIN32
    #ifndef PSAPI_VERSION
    #define PSAPI_VERSION 2   /* K32EnumProcessModules from kernel32, no psapi.lib */
    #endif
    #include <windows.h>
    #include <psapi.h>

    static void lb_win_error(DWORD code, char *err, size_t errlen) {
        wchar_t wmsg[1024];
        DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                                 NULL, code, 0, wmsg, 1024, NULL);
        while (n > 0 && (wmsg[n - 1] == L'\\r' || wmsg[n - 1] == L'\\n' || wmsg[n - 1] == L' ')) {
            wmsg[--n] = 0;
        }
        if (n == 0 || WideCharToMultiByte(CP_UTF8, 0, wmsg, -1, err, (int)errlen, NULL, NULL) == 0) {
            snprintf(err, errlen, "Windows error %lu", (unsigned long)code);
        }
    }

    static wchar_t *lb_widen(const char *utf8) {
        int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, NULL, 0);
        wchar_t *w;
        if (n <= 0) return NULL;
        w = (wchar_t *)malloc((size_t)n * sizeof(wchar_t));
        if (w != NULL && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, w, n) <= 0) {
            free(w);
            w = NULL;
        }
        return w;
    }

    /* GetLastError() of this thread's last failed lb_open, kept in our own
     * thread-local slot: between the loader call and the Python code that builds
     * the OSError, re-taking the GIL may call Windows functions that reset it. */
    #if defined(_MSC_VER)
    static __declspec(thread) DWORD lb_win_last_code;
    #else
    static __thread DWORD lb_win_last_code;
    #endif

    static int lb_win_absolute(const wchar_t *p) {
        /* C:\\... or C:/..., or \\\\server\\share and \\\\?\\ forms. LoadLibraryExW with
         * LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR needs a fully qualified path. */
        if (((p[0] >= L'A' && p[0] <= L'Z') || (p[0] >= L'a' && p[0] <= L'z')) && p[1] == L':'
            && (p[2] == L'\\\\' || p[2] == L'/')) return 1;
        return (p[0] == L'\\\\' || p[0] == L'/') && (p[1] == L'\\\\' || p[1] == L'/');
    }

    static void *lb_open(const char *path, int noload, char *err, size_t errlen) {
        HMODULE h = NULL;
        DWORD code = 0, old_mode = 0;
        wchar_t *wpath = lb_widen(path);
        lb_win_last_code = 0;
        if (wpath == NULL) {
            snprintf(err, errlen, "path is not valid UTF-8 or out of memory");
            return NULL;
        }
        if (!lb_win_absolute(wpath)) {
            /* A relative name would be searched for (cwd, PATH): refuse it here too. */
            lb_win_last_code = ERROR_INVALID_PARAMETER;
            snprintf(err, errlen, "expected an absolute path (C:\\\\... or \\\\\\\\server\\\\...); a "
                     "relative path would make Windows search for the file");
            free(wpath);
            return NULL;
        }
        if (noload) {
            if (!GetModuleHandleExW(0, wpath, &h)) h = NULL;  /* adds a reference: never freed */
        } else {
            /* No "cannot find / bad image" message box may wait for a click in a
             * headless process: fail the call instead. */
            SetThreadErrorMode(SEM_FAILCRITICALERRORS | SEM_NOOPENFILEERRORBOX, &old_mode);
            h = LoadLibraryExW(wpath, NULL,
                               LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_DEFAULT_DIRS);
            if (h == NULL) code = GetLastError();
            SetThreadErrorMode(old_mode, NULL);
            if (h == NULL) {
                size_t n;
                lb_win_last_code = code;
                lb_win_error(code, err, errlen);
                n = strlen(err);
                if (code == ERROR_MOD_NOT_FOUND && GetFileAttributesW(wpath) != INVALID_FILE_ATTRIBUTES
                    && n < errlen) {
                    /* The file is there: what is missing is a DLL it imports. */
                    snprintf(err + n, errlen - n, " (the file exists: a DLL it imports is not in "
                             "the library's directory, the application directory, an "
                             "os.add_dll_directory directory or System32)");
                }
            }
        }
        free(wpath);
        return (void *)h;
    }

    static void *lb_sym(void *handle, const char *name) {
        return (void *)GetProcAddress((HMODULE)handle, name);
    }

    static int lb_objects(lb_object **out, size_t *count) {
        HANDLE proc = GetCurrentProcess();
        HMODULE main_module = GetModuleHandleW(NULL);
        HMODULE *mods = NULL;
        DWORD needed = 0, size = 0, i;
        lb_object *objs;
        size_t n = 0;
        *out = NULL;
        *count = 0;
        for (;;) {
            if (!K32EnumProcessModules(proc, mods, size, &needed)) { free(mods); return -1; }
            if (needed <= size) break;
            free(mods);
            size = needed + 16 * sizeof(HMODULE);
            mods = (HMODULE *)malloc(size);
            if (mods == NULL) return -1;
        }
        objs = (lb_object *)calloc(needed / sizeof(HMODULE) + 1, sizeof(lb_object));
        if (objs == NULL) { free(mods); return -1; }
        for (i = 0; i < needed / sizeof(HMODULE); i++) {
            wchar_t *buf = (wchar_t *)malloc(32768 * sizeof(wchar_t));
            DWORD len;
            int blen;
            if (mods[i] == main_module || buf == NULL) { free(buf); continue; }
            len = GetModuleFileNameW(mods[i], buf, 32768);
            if (len == 0 || len >= 32768) { free(buf); continue; }
            blen = WideCharToMultiByte(CP_UTF8, 0, buf, -1, NULL, 0, NULL, NULL);
            if (blen > 0 && (objs[n].name = (char *)malloc((size_t)blen)) != NULL) {
                WideCharToMultiByte(CP_UTF8, 0, buf, -1, objs[n].name, blen, NULL, NULL);
                objs[n].addr = (uintptr_t)mods[i];
                n++;
            }
            free(buf);
        }
        free(mods);
        *out = objs;
        *count = n;
        return 0;
    }

    #else  /* POSIX */
    #include <dlfcn.h>

    static void *lb_open(const char *path, int noload, char *err, size_t errlen) {
        void *h;
        const char *msg;
        (void)dlerror();  /* drop a stale message of this thread */
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL | (noload ? RTLD_NOLOAD : 0));
        if (h == NULL) {
            msg = dlerror();  /* read (and so cleared) even for a probe */
            if (!noload) {
                snprintf(err, errlen, "%s", msg != NULL ? msg : "dlopen failed without a message");
            }
        }
        return h;
    }

    static void *lb_sym(void *handle, const char *name) {
        void *p = dlsym(handle, name);
        if (p == NULL) (void)dlerror();  /* absent is an answer, not an error to keep */
        return p;
    }

    typedef struct { lb_object *items; size_t count, cap; int failed; } lb_object_list;

    static int lb_push(lb_object_list *list, const char *name, uintptr_t addr) {
        if (list->count == list->cap) {
            size_t cap = list->cap ? list->cap * 2 : 64;
            lb_object *items = (lb_object *)realloc(list->items, cap * sizeof(lb_object));
            if (items == NULL) return -1;
            list->items = items;
            list->cap = cap;
        }
        list->items[list->count].name = strdup(name);
        if (list->items[list->count].name == NULL) return -1;
        list->items[list->count].addr = addr;
        list->count++;
        return 0;
    }

    #if defined(__APPLE__)
    #include <mach-o/dyld.h>

    static int lb_objects(lb_object **out, size_t *count) {
        lb_object_list list = {NULL, 0, 0, 0};
        uint32_t i, n = _dyld_image_count();
        /* Image 0 is the main program; an image unloaded meanwhile gives NULL. */
        for (i = 1; i < n; i++) {
            const char *name = _dyld_get_image_name(i);
            const void *header = (const void *)_dyld_get_image_header(i);
            if (name == NULL || name[0] != '/' || header == NULL) continue;
            if (lb_push(&list, name, (uintptr_t)header) < 0) { list.failed = 1; break; }
        }
        *out = list.items;
        *count = list.count;
        return list.failed ? -1 : 0;
    }

    #else  /* Linux, the BSDs */
    #include <link.h>

    static int lb_collect(struct dl_phdr_info *info, size_t size, void *data) {
        lb_object_list *list = (lb_object_list *)data;
        (void)size;
        /* The main program has an empty name; the vdso has a bare soname. */
        if (info->dlpi_name == NULL || strchr(info->dlpi_name, '/') == NULL) return 0;
        if (lb_push(list, info->dlpi_name, (uintptr_t)info->dlpi_addr) < 0) {
            list->failed = 1;
            return 1;
        }
        return 0;
    }

    static int lb_objects(lb_object **out, size_t *count) {
        lb_object_list list = {NULL, 0, 0, 0};
        dl_iterate_phdr(lb_collect, &list);
        *out = list.items;
        *count = list.count;
        return list.failed ? -1 : 0;
    }

    #include <stddef.h>
    /* dlpi_adds + dlpi_subs (glibc >= 2.4, musl): they change whenever an object is
       mapped or unmapped, so an unchanged sum means an unchanged list of objects. */
    static int lb_generation_of(struct dl_phdr_info *info, size_t size, void *data) {
        if (size < offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) return 2;
        *(unsigned long long *)data = (unsigned long long)info->dlpi_adds
                                      + ((unsigned long long)info->dlpi_subs << 32);
        return 1;
    }
    #define LB_HAVE_GENERATION 1
    static int lb_generation(unsigned long long *gen) {
        return dl_iterate_phdr(lb_generation_of, gen) == 1 ? 0 : -1;
    }
    #endif
    #endif  /* _WIN32 */
    #ifndef LB_HAVE_GENERATION
    static int lb_generation(unsigned long long *gen) { (void)gen; return -1; }
    #endif

    /* Copy at most cap-1 bytes of the C string at p into out, without ever
     * faulting: a "version function" that is not really const char *(void)
     * returns garbage, and reading it must give an error, not SIGSEGV. Each page
     * is first pushed through a pipe, which fails with EFAULT where a load would
     * crash. Returns the length copied, or -1 when p is not readable. */
    #ifdef _WIN32
    /* Windows: no pipe trick and, with mingw, no __try/__except. Each page is
     * checked with VirtualQuery before it is read: committed, a readable
     * protection, not a guard page (touching one would raise, and grow a stack).
     * At most cap-1 bytes are read. What remains unguarded: another thread
     * unmapping the page between the query and the read. */
    static int lb_win_readable(const MEMORY_BASIC_INFORMATION *m) {
        DWORD readable = PAGE_READONLY | PAGE_READWRITE | PAGE_WRITECOPY | PAGE_EXECUTE_READ
                         | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY;
        return m->State == MEM_COMMIT && (m->Protect & (PAGE_GUARD | PAGE_NOACCESS)) == 0
               && (m->Protect & readable) != 0;
    }

    static long lb_safe_strcpy(const char *p, char *out, size_t cap) {
        SYSTEM_INFO si;
        size_t done = 0, page;
        GetSystemInfo(&si);
        page = si.dwPageSize ? (size_t)si.dwPageSize : 4096;
        if ((uintptr_t)p < 65536) return -1;   /* small integers, not pointers */
        while (done < cap - 1) {
            MEMORY_BASIC_INFORMATION m;
            const char *at = p + done;
            size_t to_page_end = page - (((uintptr_t)at) % page), chunk, i;
            if (VirtualQuery(at, &m, sizeof m) != sizeof m || !lb_win_readable(&m)) break;
            chunk = to_page_end < cap - 1 - done ? to_page_end : cap - 1 - done;
            for (i = 0; i < chunk; i++) {
                out[done] = at[i];
                if (at[i] == 0) return (long)done;
                done++;
            }
        }
        if (done == 0) return -1;
        out[done] = 0;
        return (long)done;
    }
    #else
    #include <unistd.h>
    #include <errno.h>
    static long lb_safe_strcpy(const char *p, char *out, size_t cap) {
        int fds[2];
        size_t done = 0, page = (size_t)sysconf(_SC_PAGESIZE);
        if ((uintptr_t)p < 65536) return -1;   /* small integers, not pointers */
        if (pipe(fds) != 0) return -1;
        while (done < cap - 1) {
            size_t to_page_end = page - (((uintptr_t)(p + done)) % page);
            size_t chunk = to_page_end < cap - 1 - done ? to_page_end : cap - 1 - done;
            ssize_t w = write(fds[1], p + done, chunk);
            if (w <= 0) break;
            if (read(fds[0], out + done, (size_t)w) != w) break;
            {
                void *nul = memchr(out + done, 0, (size_t)w);
                if (nul != NULL) { done = (size_t)((char *)nul - out); close(fds[0]); close(fds[1]); return (long)done; }
            }
            done += (size_t)w;
        }
        close(fds[0]); close(fds[1]);
        if (done == 0) return -1;
        out[done] = 0;
        return (long)done;
    }
    #endif

    static void lb_free_objects(lb_object *objs, size_t count) {
        size_t i;
        for (i = 0; i < count; i++) free(objs[i].name);
        free(objs);
    }
    """
    ctypedef struct lb_object:
        char *name
        uintptr_t addr
    void *lb_open(const char *path, int noload, char *err, size_t errlen) nogil
    void *lb_sym(void *handle, const char *name) nogil
    int lb_objects(lb_object **out, size_t *count) nogil
    int lb_generation(unsigned long long *gen) nogil
    void lb_free_objects(lb_object *objs, size_t count) nogil
    long lb_safe_strcpy(const char *p, char *out, size_t cap) nogil

cdef extern from *:
    """
    /* The Windows error code of this thread's last failed lb_open; 0 on POSIX. */
    #ifdef _WIN32
    static unsigned long lb_open_error_code(void) { return (unsigned long)lb_win_last_code; }
    #else
    static unsigned long lb_open_error_code(void) { return 0; }
    #endif
    """
    unsigned long lb_open_error_code() nogil


cdef object _open_error(const char *err, object path):
    """OSError for a failed load. On Windows it carries ``winerror`` (GetLastError())
    and FormatMessageW's text, as OSError(errno, strerror, filename, winerror) does."""
    cdef unsigned long code = lb_open_error_code()
    message = err.decode("utf-8", "replace")
    if code:
        return OSError(0, message, os.fspath(path), code)
    return OSError(0, message, os.fspath(path))


ctypedef const char *(*version_function)() noexcept nogil


ABI_MAJOR = LIBBROKER_ABI_MAJOR
ABI_MINOR = LIBBROKER_ABI_MINOR
TABLE_MAGIC = LIBBROKER_TABLE_MAGIC

cdef size_t _ERR_MAX = 2048
cdef size_t _VERSION_MAX = 4096
cdef bytes _PREFIX = LIBBROKER_CAPSULE_PREFIX


cdef bytes _c_string(object value, str what):
    """UTF-8 bytes of *value* for C, refusing embedded NULs (C would cut there)."""
    cdef bytes data
    if isinstance(value, str):
        data = (<str>value).encode("utf-8", "surrogateescape")
    elif isinstance(value, bytes):
        data = <bytes>value
    else:
        raise TypeError(f"{what} must be str or bytes, found {type(value).__name__} {value!r}")
    if <size_t>strlen(PyBytes_AS_STRING(data)) != <size_t>PyBytes_GET_SIZE(data):
        raise ValueError(f"{what} {value!r} contains a NUL character; C strings end there")
    return data


cdef bytes _path_bytes(object path):
    cdef bytes data = os.fsencode(path)
    if not data:
        # dlopen("") would hand back the main program and its global scope.
        raise ValueError("library path is empty; expected the path of a shared library file")
    return _c_string(data, "library path")


cdef void *_handle(object handle) except? NULL:
    cdef uintptr_t value = handle
    if value == 0:
        # On glibc a NULL handle is RTLD_DEFAULT: a global lookup we never want.
        raise ValueError("library handle is 0; expected a handle returned by dlopen()")
    return <void *>value


def dlopen(path):
    """Load *path* privately (RTLD_NOW | RTLD_LOCAL) and return its handle."""
    cdef bytes bpath = _path_bytes(path)
    cdef const char *cpath = bpath
    cdef char err[2048]
    cdef void *h
    err[0] = 0
    with nogil:
        h = lb_open(cpath, 0, err, _ERR_MAX)
    if h == NULL:
        raise _open_error(err, path)
    return <uintptr_t>h


def noload(path):
    """Handle of *path* if it is already mapped in the process, else 0."""
    cdef bytes bpath = _path_bytes(path)
    cdef const char *cpath = bpath
    cdef char err[2048]
    cdef void *h
    err[0] = 0
    with nogil:
        h = lb_open(cpath, 1, err, _ERR_MAX)
    return <uintptr_t>h


def dlsym(handle, symbol):
    """Address of *symbol* in the library *handle*, 0 when absent."""
    cdef void *h = _handle(handle)
    cdef bytes name = _c_string(symbol, "symbol name")
    cdef const char *cname = name
    cdef void *p
    with nogil:
        p = lb_sym(h, cname)
    return <uintptr_t>p


def lookup_many(handle, symbols):
    """Addresses of every name of *symbols* (bytes), 0 for each absent one."""
    cdef void *h = _handle(handle)
    # A tuple keeps every name alive while the GIL is released, whatever
    # another thread does to the caller's list meanwhile.
    cdef tuple names = tuple(symbols)
    cdef Py_ssize_t n = len(names), i
    cdef const char **cnames
    cdef void **found
    cdef object item
    cdef list result
    if n == 0:
        return []
    for i in range(n):
        item = names[i]
        if type(item) is not bytes:
            names = tuple([_c_string(x, "symbol name") for x in names])
            break
        if <size_t>strlen(PyBytes_AS_STRING(item)) != <size_t>PyBytes_GET_SIZE(item):
            _c_string(item, "symbol name")
    cnames = <const char **>malloc(n * sizeof(char *))
    found = <void **>malloc(n * sizeof(void *))
    if cnames == NULL or found == NULL:
        free(cnames)
        free(found)
        raise MemoryError()
    try:
        for i in range(n):
            cnames[i] = PyBytes_AS_STRING(names[i])
        with nogil:
            for i in range(n):
                found[i] = lb_sym(h, cnames[i])
        result = [None] * n
        for i in range(n):
            result[i] = <uintptr_t>found[i]
        return result
    finally:
        free(cnames)
        free(found)


def call_version_function(address):
    """Call ``const char *(*)(void)`` at *address*; its text, or None for NULL."""
    cdef uintptr_t value = address
    cdef version_function fn
    cdef const char *text
    if value == 0:
        raise ValueError("version function address is 0; expected the address of a function")
    fn = <version_function><void *>value
    with nogil:
        text = fn()
    if text == NULL:
        return None
    cdef char buffer[4097]
    cdef long length
    with nogil:
        length = lb_safe_strcpy(text, buffer, sizeof(buffer))
    if length < 0:
        raise ValueError(
            f"the version function at 0x{value:x} returned 0x{<uintptr_t>text:x}, which is not a "
            "readable C string; expected a function of type const char *(void)")
    return buffer[:length]


def make_table(str name, layout_digest, library_path, library_version, signatures, addresses):
    """Build a table that lives as long as the process; return it in a capsule.

    Validates every argument (ValueError/TypeError naming the table and the slot),
    then allocates through `_libbroker_warm.build_table`.
    """
    cdef list sigs = list(signatures)
    cdef list addrs = list(addresses)
    cdef Py_ssize_t n = len(sigs), i
    cdef uint64_t digest
    cdef bytes capsule_name
    cdef uintptr_t value
    if not (name.isascii() and name.isidentifier()):
        raise ValueError(f"table name {name!r} is not an ASCII C identifier; "
                         "expected e.g. 'zlib' (letters, digits, underscores)")
    capsule_name = _PREFIX + name.encode("ascii")
    if len(capsule_name) >= LB_CAPSULE_NAME_MAX:
        raise ValueError(f"table name {name!r} is {len(name)} characters long; consumers "
                         f"accept at most {LB_CAPSULE_NAME_MAX - 1 - len(_PREFIX)}")
    if len(addrs) != n:
        raise ValueError(f"table {name!r}: {n} signatures but {len(addrs)} addresses; "
                         "expected one address (0 for an absent optional) per signature")
    if n > 0xFFFFFFFF:
        raise ValueError(f"table {name!r}: {n} slots do not fit the 32-bit slot_count")
    if not (0 <= layout_digest <= 0xFFFFFFFFFFFFFFFF):
        raise ValueError(f"table {name!r}: layout digest {layout_digest!r} is not a 64-bit "
                         "unsigned integer")
    digest = layout_digest
    cdef Py_ssize_t size
    cdef const char *text
    for i in range(n):
        # Checked here, passed as they are: `build_table` reads a str's UTF-8 form in place
        # (the 1,500 signatures of a big table are not copied into bytes first).
        item = sigs[i]
        if isinstance(item, str):
            text = PyUnicode_AsUTF8AndSize(item, &size)
        elif isinstance(item, bytes):
            text = PyBytes_AS_STRING(item)
            size = PyBytes_GET_SIZE(item)
        else:
            raise TypeError(f"table {name!r} signature of slot {i} must be str or bytes, found "
                            f"{type(item).__name__} {item!r}")
        if <size_t>strlen(text) != <size_t>size:
            raise ValueError(f"table {name!r} signature of slot {i} {item!r} contains a NUL "
                             "character; C strings end there")
    path_bytes = _c_string(library_path, f"table {name!r} library path")
    version_bytes = _c_string(library_version, f"table {name!r} library version")
    cdef bint exact = True
    for i in range(n):
        # Converting before any table allocation: a bad address leaks nothing.
        item = addrs[i]
        try:
            value = item
        except (OverflowError, TypeError) as exc:
            raise ValueError(f"table {name!r}: address {item!r} of slot {i} "
                             f"({sigs[i]!r}) is not a pointer-sized unsigned "
                             "integer") from exc
        if type(item) is not int:
            exact = False
    # The allocation lives in one place, the plain-C module the warm path also builds
    # tables with (csrc/_libbroker_warm.c): the same layout whichever path made a table.
    import _libbroker_warm as _warm

    # `lookup_many`'s list is already exact ints: passed as it is (1,500 slots, 40 us).
    return _warm.build_table(name.encode("ascii"), digest, path_bytes, version_bytes, sigs,
                             addrs if exact else [int(a) for a in addrs])


cdef libbroker_table_header *_table(object capsule) except NULL:
    cdef const char *cname
    if not PyCapsule_CheckExact(capsule):
        raise TypeError(f"expected a libbroker table capsule, found {type(capsule).__name__} "
                        f"{capsule!r}")
    cname = PyCapsule_GetName(capsule)
    if cname == NULL or not (<bytes>cname).startswith(_PREFIX):
        raise TypeError(f"capsule {capsule!r} is not a libbroker table; expected a name "
                        f"starting with {_PREFIX.decode()!r}")
    return <libbroker_table_header *>PyCapsule_GetPointer(capsule, cname)


def table_address(capsule):
    """Address of the table inside a capsule made by make_table()."""
    return <uintptr_t>_table(capsule)


def table_info(capsule):
    """The table's header and slots decoded back to Python, for tests and diagnostics."""
    cdef libbroker_table_header *header = _table(capsule)
    cdef void **slots = <void **>(<char *>header + header.header_size)
    cdef uint32_t i
    if header.magic != LIBBROKER_TABLE_MAGIC:
        raise ValueError(f"table at 0x{<uintptr_t>header:x} has magic 0x{header.magic:08x}, "
                         f"expected 0x{LIBBROKER_TABLE_MAGIC:08x}")
    return {
        "magic": header.magic,
        "abi_major": header.abi_major,
        "abi_minor": header.abi_minor,
        "header_size": header.header_size,
        "slot_count": header.slot_count,
        "layout_digest": header.layout_digest,
        "name": (<bytes>header.name).decode("utf-8", "surrogateescape"),
        "library_path": (<bytes>header.library_path).decode("utf-8", "surrogateescape"),
        "library_version": (<bytes>header.library_version).decode("utf-8", "surrogateescape"),
        "signatures": [(<bytes>header.slot_signatures[i]).decode("utf-8", "surrogateescape")
                       for i in range(header.slot_count)],
        "slots": [<uintptr_t>slots[i] for i in range(header.slot_count)],
    }


# The last list of `loaded_objects` and the loader's generation it was read at: a search
# asks several times per library, and fifty tables would rebuild it 150 times. Dropped when
# `set_link_name` renames an object (the generation does not change then).
cdef object _objects_memo = None
cdef unsigned long long _objects_generation = 0
cdef unsigned long long _objects_reads = 0


def loaded_objects_version():
    """A number that changes whenever `loaded_objects` would answer differently: an index
    built over its answer stays valid while the number is the same. It reads the list
    again when that is needed to tell."""
    loaded_objects()
    return _objects_reads


def loaded_objects():
    """(path, base address) of every shared object mapped in the process, a new list.

    Read again whenever the loader's generation (the dlpi_adds and dlpi_subs counters
    of Linux's program-header walk) changed since the last call, and always where there
    is none (Windows, macOS).
    """
    global _objects_memo, _objects_generation, _objects_reads
    cdef lb_object *objs = NULL
    cdef size_t count = 0, i
    cdef int rc, have
    cdef unsigned long long generation = 0
    # Collected in C without the GIL: the callback runs under the loader's lock,
    # where calling into Python could deadlock with a thread inside dlopen. The generation
    # is read first: an object mapped meanwhile makes the next call read the list again.
    with nogil:
        have = lb_generation(&generation)
    if have == 0 and _objects_memo is not None and generation == _objects_generation:
        return list(<tuple>_objects_memo)
    with nogil:
        rc = lb_objects(&objs, &count)
    try:
        if rc != 0:
            raise MemoryError("could not list the objects mapped in the process")
        found = [(os.fsdecode(<bytes>objs[i].name), objs[i].addr) for i in range(count)]
    finally:
        lb_free_objects(objs, count)
    _objects_reads += 1
    if have == 0:
        _objects_memo = tuple(found)
        _objects_generation = generation
    return found


# ---------------------------------------------------------------------------
# The link map of a handle (Linux, glibc and musl's public <link.h> struct).
# libbroker maps the very file it checked by dlopen("/proc/self/fd/N") (the
# bytes checked are the bytes mapped, docs/security.md); the loader then names
# the object "/proc/self/fd/N", which means nothing once N is closed. The
# public `l_name` member is pointed at the checked absolute path so that
# dl_iterate_phdr users (threadpoolctl, `libbroker doctor`) see the real file.

cdef extern from *:
    """
    #if defined(__linux__)
    #ifndef _GNU_SOURCE
    #define _GNU_SOURCE 1
    #endif
    #include <dlfcn.h>
    #include <link.h>
    /* 1 renamed, 0 left alone (the name does not start with `only_if`), -1 no link map. */
    static int lbt_set_name(void *handle, const char *name, const char *only_if) {
        struct link_map *map = NULL;
        char *copy;
        if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL) { (void)dlerror(); return -1; }
        if (map->l_name == NULL || strncmp(map->l_name, only_if, strlen(only_if)) != 0) return 0;
        copy = strdup(name);
        if (copy == NULL) return -1;
        map->l_name = copy;  /* the old name is left alone: the loader may still point at it */
        return 1;
    }
    static int lbt_link_map(void *handle, uintptr_t *addr, uintptr_t *ld, const char **name) {
        struct link_map *map = NULL;
        if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL) { (void)dlerror(); return -1; }
        *addr = (uintptr_t)map->l_addr; *ld = (uintptr_t)map->l_ld; *name = map->l_name;
        return 0;
    }
    #else
    static int lbt_set_name(void *handle, const char *name, const char *only_if) {
        (void)handle; (void)name; (void)only_if; return -1;
    }
    static int lbt_link_map(void *handle, uintptr_t *addr, uintptr_t *ld, const char **name) {
        (void)handle; (void)addr; (void)ld; (void)name; return -1;
    }
    #endif
    """
    int lbt_set_name(void *handle, const char *name, const char *only_if) nogil
    int lbt_link_map(void *handle, uintptr_t *addr, uintptr_t *ld, const char **name) nogil


def set_link_name(handle, path, only_if):
    """Rename the loader's record of *handle* to *path* when its name starts with *only_if*.

    Returns 1 renamed, 0 left alone, -1 no link map (not Linux, or dlinfo failed).
    """
    global _objects_memo
    cdef void *h = _handle(handle)
    cdef bytes name = _path_bytes(path)
    cdef bytes prefix = _path_bytes(only_if)
    _objects_memo = None  # a renamed object: `loaded_objects` reads the names again
    return lbt_set_name(h, name, prefix)


def link_map(handle):
    """(l_addr, l_ld, l_name) of *handle*'s link map, or None where there is none."""
    cdef void *h = _handle(handle)
    cdef uintptr_t addr = 0, ld = 0
    cdef const char *name = NULL
    if lbt_link_map(h, &addr, &ld, &name) != 0:
        return None
    return (addr, ld, os.fsdecode(<bytes>name) if name != NULL else "")


# ---------------------------------------------------------------------------
# Version probes (libbroker/_versions.py decides which one a library gets).
# Each shape a well-known library really has: const char *f(int) with a fixed
# argument (OpenSSL_version(0)), const char *f(const void *) called with NULL
# (png_get_libpng_ver), a number returned as unsigned int or unsigned long
# (ZSTD_versionNumber, OpenSSL_version_num), a `const char *` data symbol
# (__gmp_version) and a `char[]` data symbol (sqlite3_version). Every string is
# copied with lb_safe_strcpy (bounded, never faulting) and must be printable.

cdef extern from *:
    """
    /* Copy n bytes at p into out without faulting (a data symbol's pointer
     * value): the same pipe guard as lb_safe_strcpy. 0 on success, -1 when p
     * is not readable. */
    #ifdef _WIN32
    static int lbv_safe_read(const void *p, void *out, size_t n) {
        SIZE_T got = 0;
        if ((uintptr_t)p < 65536) return -1;
        /* ReadProcessMemory on ourselves fails where a load would fault. */
        if (!ReadProcessMemory(GetCurrentProcess(), p, out, n, &got) || got != n) return -1;
        return 0;
    }
    /* 1 when address lies inside the module of handle, 0 when in another one,
     * -1 when no module holds it. */
    static int lbv_symbol_in(void *handle, const void *address) {
        HMODULE owner = NULL;
        if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                                GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                                (LPCWSTR)address, &owner)) return -1;
        return (void *)owner == handle;
    }
    #else
    static int lbv_safe_read(const void *p, void *out, size_t n) {
        int fds[2];
        ssize_t w;
        if ((uintptr_t)p < 65536) return -1;
        if (pipe(fds) != 0) return -1;
        w = write(fds[1], p, n);
        if (w != (ssize_t)n || read(fds[0], out, n) != (ssize_t)n) w = -1;
        close(fds[0]); close(fds[1]);
        return w < 0 ? -1 : 0;
    }
    static int lbv_symbol_in(void *handle, const void *address) {
        Dl_info info;
        void *owner;
        int same;
        if (dladdr(address, &info) == 0 || info.dli_fname == NULL) return -1;
        /* The owner's handle: glibc and dyld give one handle per mapped object,
         * whatever name it is opened by. NOLOAD maps nothing; the reference it
         * adds is dropped at once. */
        owner = dlopen(info.dli_fname, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
        if (owner == NULL) { (void)dlerror(); return -1; }
        same = owner == handle;
        dlclose(owner);
        return same;
    }
    #endif
    """
    int lbv_safe_read(const void *p, void *out, size_t n) nogil
    int lbv_symbol_in(void *handle, const void *address) nogil

ctypedef const char *(*string_int_function)(int) noexcept nogil
ctypedef const char *(*string_pointer_function)(const void *) noexcept nogil
ctypedef unsigned int (*uint_function)() noexcept nogil
ctypedef unsigned long (*ulong_function)() noexcept nogil


cdef uintptr_t _address(object address, str what) except 0:
    cdef uintptr_t value = address
    if value == 0:
        raise ValueError(f"{what} address is 0; expected the address of an exported symbol")
    return value


cdef bytes _printable(const char *text, uintptr_t where, str what):
    """At most 4096 bytes of the C string at *text*; ValueError unless readable and printable."""
    cdef char buffer[4097]
    cdef long length
    cdef bytes data
    with nogil:
        length = lb_safe_strcpy(text, buffer, sizeof(buffer))
    if length < 0:
        raise ValueError(
            f"the {what} at 0x{where:x} gave 0x{<uintptr_t>text:x}, which is not a readable C "
            "string; the symbol does not have the shape of a version probe")
    data = buffer[:length]
    for byte in data:
        # Printable ASCII and ordinary whitespace: a version text, not binary data
        # that happened to be readable.
        if not (32 <= byte < 127 or byte in (9, 10, 13)):
            raise ValueError(
                f"the {what} at 0x{where:x} gave bytes that are not printable text "
                f"({data[:32]!r}); the symbol does not have the shape of a version probe")
    return data


def call_string_function_int(address, int argument):
    """Call ``const char *(*)(int)`` at *address* with *argument*; its text, None for NULL."""
    cdef uintptr_t value = _address(address, "version function")
    cdef string_int_function fn = <string_int_function><void *>value
    cdef const char *text
    with nogil:
        text = fn(argument)
    if text == NULL:
        return None
    return _printable(text, value, "version function")


def call_string_function_null(address):
    """Call ``const char *(*)(const void *)`` at *address* with NULL; its text, None for NULL."""
    cdef uintptr_t value = _address(address, "version function")
    cdef string_pointer_function fn = <string_pointer_function><void *>value
    cdef const char *text
    with nogil:
        text = fn(NULL)
    if text == NULL:
        return None
    return _printable(text, value, "version function")


def call_number_function(address, str ctype):
    """Call ``unsigned int (*)(void)`` or ``unsigned long (*)(void)``; the number returned.

    *ctype* is the C return type, "unsigned int" or "unsigned long" (32 bits on
    Windows, 64 on LP64 Unix): a narrower return register's upper half is garbage.
    """
    cdef uintptr_t value = _address(address, "version function")
    cdef unsigned long number
    if ctype == "unsigned int":
        with nogil:
            number = (<uint_function><void *>value)()
    elif ctype == "unsigned long":
        with nogil:
            number = (<ulong_function><void *>value)()
    else:
        raise ValueError(f"return type {ctype!r} is not supported; expected 'unsigned int' or "
                         "'unsigned long'")
    return number


def read_string_pointer(address):
    """The text a ``const char *`` data symbol at *address* points to; None for NULL."""
    cdef uintptr_t value = _address(address, "version data symbol")
    cdef const char *text = NULL
    cdef int rc
    with nogil:
        rc = lbv_safe_read(<const void *>value, &text, sizeof(text))
    if rc != 0:
        raise ValueError(f"the version data symbol at 0x{value:x} is not readable memory")
    if text == NULL:
        return None
    return _printable(text, value, "version data symbol")


def read_string_array(address):
    """The text of a ``char[]`` data symbol at *address* (at most 4096 bytes)."""
    cdef uintptr_t value = _address(address, "version data symbol")
    return _printable(<const char *>value, value, "version data symbol")


def symbol_in_object(handle, address):
    """True when *address* lies in the object of *handle*, False when in another, None unknown.

    dlsym on a handle also searches the object's dependencies; a probe must ask
    the library itself, not a dependency that happens to export the symbol.
    """
    cdef void *h = _handle(handle)
    cdef uintptr_t value = _address(address, "symbol")
    cdef int rc
    with nogil:
        rc = lbv_symbol_in(h, <const void *>value)
    return None if rc < 0 else bool(rc)


cdef extern from *:
    """
    /* FreeType's shape: FT_Error init(FT_Library *); void version(FT_Library,
     * FT_Int *, FT_Int *, FT_Int *); FT_Error done(FT_Library). The context is
     * made and freed here, so nothing outlives the call. */
    typedef int (*lbv_init_fn)(void **);
    typedef void (*lbv_triple_fn)(void *, int *, int *, int *);
    typedef int (*lbv_done_fn)(void *);
    static int lbv_context_triple(void *init, void *version, void *done, int *out) {
        void *context = NULL;
        out[0] = out[1] = out[2] = -1;
        if (((lbv_init_fn)init)(&context) != 0 || context == NULL) return -1;
        ((lbv_triple_fn)version)(context, &out[0], &out[1], &out[2]);
        ((lbv_done_fn)done)(context);
        return 0;
    }
    """
    int lbv_context_triple(void *init, void *version, void *done, int *out) nogil


def call_context_triple(init_address, version_address, done_address):
    """(major, minor, patch) from FreeType's shape: ``init(&ctx)``, ``version(ctx, &a, &b, &c)``,
    ``done(ctx)``. ValueError when init fails or a number is left unset."""
    cdef uintptr_t init = _address(init_address, "init function")
    cdef uintptr_t version = _address(version_address, "version function")
    cdef uintptr_t done = _address(done_address, "done function")
    cdef int out[3]
    cdef int rc
    with nogil:
        rc = lbv_context_triple(<void *>init, <void *>version, <void *>done, out)
    if rc != 0:
        raise ValueError(f"the init function at 0x{init:x} failed; no context to ask for a version")
    if out[0] < 0 or out[1] < 0 or out[2] < 0:
        raise ValueError(f"the version function at 0x{version:x} left a number unset "
                         f"({out[0]}, {out[1]}, {out[2]})")
    return (out[0], out[1], out[2])


# --- macOS: the dyld shared cache --------------------------------------------------------
# Since macOS 11 the system's libraries (/usr/lib/libz.1.dylib, frameworks under /System)
# have no file on disk: dyld serves them from its shared cache. Asking the cache is
# cheaper than a dlopen that would run initialisers, and needs no file to exist.
cdef extern from *:
    """
    #if defined(__APPLE__)
    #include <mach-o/dyld.h>
    static int lb_in_shared_cache(const char *path) {
        /* Weakly linked: a module built for macOS 10.9 still loads on 10.15, where
           the call is absent and the answer is "unknown". */
        if (__builtin_available(macOS 11.0, *)) {
            return _dyld_shared_cache_contains_path(path) ? 1 : 0;
        }
        return -1;
    }
    #else
    static int lb_in_shared_cache(const char *path) { (void)path; return -1; }
    #endif
    """
    int lb_in_shared_cache(const char *path) nogil


def in_shared_cache(path):
    """True/False: macOS's dyld shared cache holds *path*; None where no cache can be asked.

    None on Linux and Windows, and on macOS before 11 (where system libraries
    are still files on disk).
    """
    cdef bytes bpath = _path_bytes(path)
    cdef const char *cpath = bpath
    cdef int answer
    with nogil:
        answer = lb_in_shared_cache(cpath)
    return None if answer < 0 else bool(answer)



cdef extern from *:
    """
    #if defined(_WIN32)
    static void *lb_global_scope(void) { return NULL; }
    static void *lb_global_sym(void *scope, const char *name) { (void)scope; (void)name; return NULL; }
    #else
    #include <dlfcn.h>
    /* dlopen(NULL): the executable and every RTLD_GLOBAL object, the scope that
       the loader binds a private copy's own calls to first (design.md 5.1). */
    static void *lb_global_scope(void) {
        void *h = dlopen(NULL, RTLD_NOW);
        if (h == NULL) (void)dlerror();
        return h;
    }
    static void *lb_global_sym(void *scope, const char *name) {
        void *p = dlsym(scope, name);
        if (p == NULL) (void)dlerror();
        return p;
    }
    #endif
    """
    void *lb_global_scope() nogil
    void *lb_global_sym(void *scope, const char *name) nogil


def global_symbols(symbols, int limit):
    """(name, address) of the first *limit* of *symbols* (str) defined in the global scope
    (the executable and RTLD_GLOBAL objects), in order; [] on Windows.

    What `_api._interposition` asks; ctypes answered before, at the cost of importing
    _ctypes and libffi on every cold find.
    """
    cdef void *scope
    cdef void *address
    cdef bytes name
    cdef list hits = []
    with nogil:
        scope = lb_global_scope()
    if scope == NULL:
        return hits
    for symbol in symbols:
        try:
            name = _c_string(symbol, "symbol name")
        except (TypeError, ValueError):
            continue  # a name no real symbol has (NUL, not text)
        address = lb_global_sym(scope, name)
        if address != NULL:
            hits.append((symbol, <uintptr_t>address))
            if len(hits) >= limit:
                break
    return hits


cdef extern from *:
    """
    #if defined(_WIN32)
    static int lb_close(void *h) { return FreeLibrary((HMODULE)h) ? 0 : -1; }
    #else
    static int lb_close(void *h) { int rc = dlclose(h); if (rc != 0) (void)dlerror(); return rc; }
    #endif
    """
    int lb_close(void *h) nogil


def dlclose(handle):
    """Drop one reference to *handle* (a probe's; never a table's library). True when the
    loader accepted it. ctypes did this before, at the cost of importing _ctypes."""
    cdef void *h = _handle(handle)
    cdef int rc
    with nogil:
        rc = lb_close(h)
    return rc == 0
