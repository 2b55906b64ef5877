/*
 * _libbroker_warm: the process registry of tables, the table builder, and the
 * warm path of a consumer's import, in plain C.
 *
 * A generated header's libbroker_import_NAME() calls `import_table` here. When
 * the table index on disk holds a verdict whose every input is unchanged, this
 * replays it: one read of a small marshal file, one stat per recorded input, the
 * closure mapped by identity, one dlsym loop. No other libbroker module is
 * imported on that path, not even the package's __init__ (this module is
 * top-level for that reason): each Python module costs 0.1-0.3 ms to import and
 * a Cython module about as much again, against a linked consumer's whole import
 * of about 0.6 ms (docs/decisions.md "The warm path is plain C, top-level").
 *
 * It decides nothing. The verdict and the list of what it depends on (the
 * stamps) are written by Python (`_tables._remember`, `_cache.decision_stamps`);
 * this code checks the stamps with the meaning of `_cache.stamps_valid` and
 * accepts only a strict subset of what the Python rules accept: a cache
 * directory reached through a symlink, an owner trusted only through the config
 * file, a missing HOME, an entry of another shape, or any error answers "not
 * here" and `libbroker._runtime.import_table` runs the Python path with the full
 * rules. Linux only (mapping the open file needs /proc/self/fd); elsewhere the
 * registry and the builder work and the replay always defers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <marshal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libbroker.h"

#if defined(__linux__)
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>
#define LBW_SUPPORTED 1
#else
#define LBW_SUPPORTED 0
#endif

#define LBW_CACHE_FORMAT 2
#define LBW_CACHE_MAGIC "LBc\x02"
#define LBW_CACHE_MAX_BYTES (4 << 20)
#define LBW_ENTRY_FORMAT 5  /* 4: "needed"; 5: "request_crc" (the CRC-32 of the request text) */
#define LBW_CAPSULE_NAME_MAX 128
#define LBW_PROC_FD "/proc/self/fd/"

/* Owned references, made in the main interpreter's exec (subinterpreters are refused). */
static PyObject *by_spec, *by_layout, *table_names, *table_consumers, *warm_pending, *safe_dirs;
static unsigned long long fd_serial;

/* ---- CRC-32 (zlib's and binascii's polynomial): binascii's import is a dlopen ---- */


/* Slicing-by-8 (eight bytes per step through eight 256-entry tables): a warm replay checks
 * about 5 KB (the entry, the environment tag, the request), which the one-table loop took
 * 4-5 instructions a byte for. The tables are built on first use, not at import. */
static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void)
{
    uint32_t k, v, j;
    int b;
    /* CRC is linear: the entry of i ^ j is the XOR of theirs, so each power of two's entry
     * (one shift of the register) fills the rest in 255 XORs instead of 2,048 shifts. */
    crc_table[0][0] = 0;
    for (k = 128, v = 1; k; k >>= 1) {
        v = (v & 1) ? 0xEDB88320u ^ (v >> 1) : v >> 1;
        for (j = 0; j < 256; j += 2 * k) crc_table[0][k + j] = v ^ crc_table[0][j];
    }
    for (k = 0; k < 256; k++) {
        v = crc_table[0][k];
        for (b = 1; b < 8; b++) {
            v = crc_table[0][v & 0xFF] ^ (v >> 8);
            crc_table[b][k] = v;
        }
    }
    crc_ready = 1;
}

/* The running register *c* (start from 0xFFFFFFFF, finish with ^ 0xFFFFFFFF) after *n* more bytes. */
static uint32_t crc_update(uint32_t c, const unsigned char *p, size_t n)
{
    if (!crc_ready) crc_init();
    for (; n >= 8; n -= 8, p += 8) {  /* little-endian byte order, as the tables assume */
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF]
            ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF]
            ^ crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
    }
    for (; n; n--, p++) c = crc_table[0][(c ^ *p) & 0xFF] ^ (c >> 8);
    return c;
}

static uint32_t lbw_crc32(const unsigned char *p, size_t n)
{
    return crc_update(0xFFFFFFFFu, p, n) ^ 0xFFFFFFFFu;
}

static PyObject *py_crc32(PyObject *self, PyObject *data)
{
    (void)self;
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "crc32 takes bytes");
        return NULL;
    }
    return PyLong_FromUnsignedLong(lbw_crc32((const unsigned char *)PyBytes_AS_STRING(data),
                                             (size_t)PyBytes_GET_SIZE(data)));
}

/* ---- the table builder (the one implementation; _master.make_table validates, then calls it) ---- */

static char *lbw_strdup(const char *s, Py_ssize_t n)
{
    char *copy = (char *)malloc((size_t)n + 1);
    if (copy != NULL) {
        memcpy(copy, s, (size_t)n);
        copy[n] = 0;
    }
    return copy;
}

/* The text of one slot signature: bytes, or str as UTF-8 (CPython keeps a str's UTF-8 form, and
 * for ASCII it is the str's own storage: no copy, no new object). NULL with an error for any
 * other type or an embedded NUL (C would cut the signature there). */
static const char *lbw_sig_text(PyObject *sig, Py_ssize_t *len)
{
    const char *text;
    if (PyBytes_Check(sig)) {
        text = PyBytes_AS_STRING(sig);
        *len = PyBytes_GET_SIZE(sig);
    } else if (PyUnicode_Check(sig)) {
        text = PyUnicode_AsUTF8AndSize(sig, len);
        if (text == NULL) return NULL;
    } else {
        PyErr_Format(PyExc_TypeError, "slot signatures must be bytes or str, found %.100s",
                     Py_TYPE(sig)->tp_name);
        return NULL;
    }
    if ((Py_ssize_t)strlen(text) != *len) {
        PyErr_SetString(PyExc_ValueError, "a slot signature contains a NUL character");
        return NULL;
    }
    return text;
}

/* A table that lives as long as the process, in a capsule named LIBBROKER_CAPSULE_PREFIX + name.
 * sigs: list of bytes; addrs: list of int (pointer-sized). New reference, or NULL with an error. */
static PyObject *build(const char *name, uint64_t layout, const char *path, const char *version,
                       PyObject *sigs, PyObject *addrs)
{
    Py_ssize_t n = PyList_GET_SIZE(sigs), i;
    size_t total = 1;
    libbroker_table_header *header = NULL;
    const char **sig_array = NULL;
    char *block = NULL, *cursor, *cname = NULL, *cpath = NULL, *cversion = NULL, *ccapsule = NULL;
    uintptr_t *values = NULL;
    void **slots;
    char capsule_name[LBW_CAPSULE_NAME_MAX];
    PyObject *capsule = NULL;

    if (PyList_GET_SIZE(addrs) != n) {
        PyErr_Format(PyExc_ValueError, "table %s: %zd signatures but %zd addresses", name, n,
                     PyList_GET_SIZE(addrs));
        return NULL;
    }
    if (PyOS_snprintf(capsule_name, sizeof(capsule_name), "%s%s", LIBBROKER_CAPSULE_PREFIX, name)
        >= (int)sizeof(capsule_name)) {
        PyErr_Format(PyExc_ValueError, "table name %s is too long", name);
        return NULL;
    }
    values = (uintptr_t *)malloc((size_t)(n ? n : 1) * sizeof(uintptr_t));
    if (values == NULL) return PyErr_NoMemory();
    for (i = 0; i < n; i++) {
        Py_ssize_t len;
        if (lbw_sig_text(PyList_GET_ITEM(sigs, i), &len) == NULL) goto fail;
        total += (size_t)len + 1;
        values[i] = (uintptr_t)PyLong_AsVoidPtr(PyList_GET_ITEM(addrs, i));
        if (PyErr_Occurred()) goto fail;
    }
    header = (libbroker_table_header *)malloc(sizeof(*header) + (size_t)n * sizeof(void *));
    sig_array = (const char **)calloc((size_t)(n ? n : 1), sizeof(char *));
    block = (char *)malloc(total);
    cname = lbw_strdup(name, (Py_ssize_t)strlen(name));
    cpath = lbw_strdup(path, (Py_ssize_t)strlen(path));
    cversion = lbw_strdup(version, (Py_ssize_t)strlen(version));
    ccapsule = lbw_strdup(capsule_name, (Py_ssize_t)strlen(capsule_name));
    if (!header || !sig_array || !block || !cname || !cpath || !cversion || !ccapsule) {
        PyErr_NoMemory();
        goto fail;
    }
    cursor = block;  /* one block for every signature: one malloc, not thousands */
    for (i = 0; i < n; i++) {
        Py_ssize_t len;
        const char *text = lbw_sig_text(PyList_GET_ITEM(sigs, i), &len);  /* checked above */
        if (text == NULL) goto fail;
        memcpy(cursor, text, (size_t)len);
        cursor[len] = 0;
        sig_array[i] = cursor;
        cursor += len + 1;
    }
    capsule = PyCapsule_New(header, ccapsule, NULL);
    if (capsule == NULL) goto fail;
    header->magic = LIBBROKER_TABLE_MAGIC;
    header->abi_major = LIBBROKER_ABI_MAJOR;
    header->abi_minor = LIBBROKER_ABI_MINOR;
    header->header_size = (uint32_t)sizeof(*header);
    header->slot_count = (uint32_t)n;
    header->layout_digest = layout;
    header->name = cname;
    header->library_path = cpath;
    header->library_version = cversion;
    header->slot_signatures = sig_array;
    slots = (void **)((char *)header + sizeof(*header));
    for (i = 0; i < n; i++) slots[i] = (void *)values[i];
    free(values);
    return capsule;
fail:
    free(values);
    free(header);
    free((void *)sig_array);
    free(block);
    free(cname);
    free(cpath);
    free(cversion);
    free(ccapsule);
    return NULL;
}

static PyObject *py_build_table(PyObject *self, PyObject *args)
{
    const char *name, *path, *version;
    unsigned long long layout;
    PyObject *sigs, *addrs;
    (void)self;
    if (!PyArg_ParseTuple(args, "yKyyO!O!:build_table", &name, &layout, &path, &version,
                          &PyList_Type, &sigs, &PyList_Type, &addrs))
        return NULL;
    return build(name, (uint64_t)layout, path, version, sigs, addrs);
}

static libbroker_table_header *header_of(PyObject *capsule)
{
    const char *name;
    if (!PyCapsule_CheckExact(capsule)) {
        PyErr_Format(PyExc_TypeError, "expected a libbroker table capsule, found %.100s",
                     Py_TYPE(capsule)->tp_name);
        return NULL;
    }
    name = PyCapsule_GetName(capsule);
    if (name == NULL || strncmp(name, LIBBROKER_CAPSULE_PREFIX, strlen(LIBBROKER_CAPSULE_PREFIX)) != 0) {
        PyErr_Format(PyExc_TypeError, "capsule %R is not a libbroker table; expected a name starting "
                     "with '%s'", capsule, LIBBROKER_CAPSULE_PREFIX);
        return NULL;
    }
    return (libbroker_table_header *)PyCapsule_GetPointer(capsule, name);
}

static PyObject *py_table_address(PyObject *self, PyObject *capsule)
{
    libbroker_table_header *header = header_of(capsule);
    (void)self;
    return header == NULL ? NULL : PyLong_FromVoidPtr(header);
}

/* ---- /proc/self/fd names ---- */

/* /proc/self/fd/N spelled differently on every call ("./" and "/" steps encode a serial).
 * The loader matches a request by name first, against every name an object was ever
 * opened under: a second dlopen("/proc/self/fd/5") would get whatever was first opened
 * as fd 5. One serial per process, shared with the Python loader. */
static int unique_fd_name(int fd, char *out, size_t size)
{
    unsigned long long serial = ++fd_serial;
    size_t used = strlen(LBW_PROC_FD);
    if (size < used + 1) return -1;
    memcpy(out, LBW_PROC_FD, used);
    for (; serial; serial >>= 1) {
        const char *step = (serial & 1) ? "./" : "/";
        size_t len = strlen(step);
        if (used + len >= size) return -1;
        memcpy(out + used, step, len);
        used += len;
    }
    return PyOS_snprintf(out + used, size - used, "%d", fd) < (int)(size - used) ? 0 : -1;
}

static PyObject *py_unique_fd_path(PyObject *self, PyObject *arg)
{
    char name[256];
    long fd = PyLong_AsLong(arg);
    (void)self;
    if (fd == -1 && PyErr_Occurred()) return NULL;
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "descriptor %ld is not a file descriptor number", fd);
        return NULL;
    }
    if (unique_fd_name((int)fd, name, sizeof(name)) != 0) {
        PyErr_SetString(PyExc_OverflowError, "too many descriptors named in this process");
        return NULL;
    }
    return PyUnicode_DecodeFSDefault(name);
}

/* ---- what the Python side computes, computed here (tests/test_warm.py compares) ---- */

/* os.environ's own dict when it is a dict (bytes to bytes on POSIX), else NULL: looked up
 * once per call of env_key or cache_dir, not once per variable. New reference. */
static PyObject *environ_data(PyObject *env)
{
    PyObject *data = LBW_SUPPORTED ? PyObject_GetAttrString(env, "_data") : NULL;
    if (data != NULL && PyDict_CheckExact(data)) return data;
    Py_XDECREF(data);
    PyErr_Clear();
    return NULL;
}

/* os.environ.get(key), through *data* (environ_data's answer) when there is one. */
static PyObject *environ_get(PyObject *env, PyObject *data, const char *key)
{
    PyObject *value;
    if (data != NULL) {
        /* os.environ's own dict (bytes to bytes on POSIX): what os.environ.get decodes,
         * without its Python-level __getitem__ (as `_cache.env_key` reads it too). */
        PyObject *bkey = PyBytes_FromString(key), *raw, *result;
        raw = bkey == NULL ? NULL : PyDict_GetItemWithError(data, bkey);
        Py_XDECREF(bkey);
        Py_XINCREF(raw);
        if (raw == NULL) {
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_NONE;
        }
        if (!PyBytes_Check(raw)) {
            Py_DECREF(raw);
            PyErr_SetString(PyExc_TypeError, "os.environ holds a value that is not bytes");
            return NULL;
        }
        result = PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw));
        Py_DECREF(raw);
        return result;
    }
    value = PyMapping_GetItemString(env, key);
    if (value == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return value;
}

static PyObject *os_environ(void)
{
    /* sys.modules first: PyImport_ImportModule goes through builtins.__import__ each time. */
    static PyObject *name;
    PyObject *os, *env;
    if (name == NULL && (name = PyUnicode_InternFromString("os")) == NULL) return NULL;
    os = PyImport_GetModule(name);
    if (os == NULL) {
        if (PyErr_Occurred()) return NULL;
        os = PyImport_ImportModule("os");
    }
    if (os == NULL) return NULL;
    env = PyObject_GetAttrString(os, "environ");
    Py_DECREF(os);
    return env;
}

/* `_cache.env_key()`. */
static PyObject *py_env_key(PyObject *self, PyObject *unused)
{
    static const char *keys[] = {"LIBBROKER_PATH", "LD_LIBRARY_PATH", "CONDA_PREFIX", "LIBBROKER_CONFIG",
                                 "HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"};
    PyObject *env = os_environ(), *data, *key = NULL, *prefix, *path;
    int i;
    (void)self;
    (void)unused;
    if (env == NULL) return NULL;
    data = environ_data(env);
    key = PyTuple_New(9);
    if (key == NULL) goto fail;
    for (i = 0; i < 7; i++) {
        PyObject *value = environ_get(env, data, keys[i]);
        if (value == NULL) goto fail;
        PyTuple_SET_ITEM(key, i, value);
    }
    prefix = PySys_GetObject("prefix");
    path = PySys_GetObject("path");
    if (prefix == NULL || path == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sys.prefix or sys.path is missing");
        goto fail;
    }
    Py_INCREF(prefix);
    PyTuple_SET_ITEM(key, 7, prefix);
    path = PySequence_Tuple(path);
    if (path == NULL) goto fail;
    PyTuple_SET_ITEM(key, 8, path);
    Py_XDECREF(data);
    Py_DECREF(env);
    return key;
fail:
    Py_XDECREF(key);
    Py_XDECREF(data);
    Py_DECREF(env);
    return NULL;
}

static int absolute(PyObject *text)
{
    return PyUnicode_Check(text) && PyUnicode_GET_LENGTH(text) > 0 && PyUnicode_READ_CHAR(text, 0) == '/';
}

/* The CRC register after one field of an environment key and its NUL; -1 (as a 64-bit
 * value) with an error set. An ASCII str is read in place (its UTF-8 is its data). */
static int64_t tag_field(uint32_t crc, PyObject *item)
{
    PyObject *piece;
    if (item == Py_None) return crc_update(crc, (const unsigned char *)"\x01", 2);
    if (PyUnicode_Check(item) && PyUnicode_IS_ASCII(item))
        return crc_update(crc_update(crc, (const unsigned char *)PyUnicode_DATA(item),
                                     (size_t)PyUnicode_GET_LENGTH(item)),
                          (const unsigned char *)"", 1);
    if (PyUnicode_Check(item)) {
        piece = PyUnicode_AsEncodedString(item, "utf-8", "surrogatepass");
    } else {
        PyObject *text = PyObject_Str(item);
        piece = text == NULL ? NULL : PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
        Py_XDECREF(text);
    }
    if (piece == NULL) return -1;
    crc = crc_update(crc, (const unsigned char *)PyBytes_AS_STRING(piece), (size_t)PyBytes_GET_SIZE(piece));
    Py_DECREF(piece);
    return crc_update(crc, (const unsigned char *)"", 1);
}

/* The name part of a table entry for the environment *key* (an env_key tuple): the CRC-32
 * of its fields, each as UTF-8 ("\x01" for None) followed by a NUL, sys.path's entries
 * likewise. Two programs with different sys.path (each script's directory is its first
 * entry) keep one entry each instead of replacing each other's. One implementation,
 * called by the Python writer too; computed as it goes, without joining the bytes.
 * New reference: an 8-digit hex str. */
static PyObject *env_tag(PyObject *key)
{
    uint32_t crc = 0xFFFFFFFFu;
    int64_t next;
    Py_ssize_t k, n;
    if (!PyTuple_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "env_tag takes an env_key tuple");
        return NULL;
    }
    for (k = 0; k < PyTuple_GET_SIZE(key); k++) {
        PyObject *item = PyTuple_GET_ITEM(key, k);
        if (PyTuple_Check(item)) {  /* sys.path */
            for (n = 0; n < PyTuple_GET_SIZE(item); n++) {
                if ((next = tag_field(crc, PyTuple_GET_ITEM(item, n))) < 0) return NULL;
                crc = (uint32_t)next;
            }
        } else {
            if ((next = tag_field(crc, item)) < 0) return NULL;
            crc = (uint32_t)next;
        }
    }
    return PyUnicode_FromFormat("%08x", (unsigned int)(crc ^ 0xFFFFFFFFu));
}

static PyObject *py_env_tag(PyObject *self, PyObject *key)
{
    (void)self;
    return env_tag(key);
}

/* `_cache.cache_dir()`, or None where this path defers to Python (no HOME: Python asks
 * the password database; a relative override: Python warns). New reference. */
static PyObject *py_cache_dir(PyObject *self, PyObject *unused)
{
    PyObject *env = os_environ(), *data, *value, *base = NULL, *result = NULL;
    (void)self;
    (void)unused;
    if (env == NULL) return NULL;
    data = environ_data(env);
    value = environ_get(env, data, "LIBBROKER_CACHE_DIR");
    if (value == NULL) goto done;
    if (value != Py_None && PyObject_IsTrue(value)) {
        result = absolute(value) ? value : Py_NewRef(Py_None);
        if (result != value) Py_DECREF(value);
        goto done;
    }
    Py_DECREF(value);
    value = environ_get(env, data, "XDG_CACHE_HOME");
    if (value == NULL) goto done;
    if (value != Py_None) {
        base = PyObject_CallMethod(value, "strip", NULL);
        Py_DECREF(value);
        if (base == NULL) goto done;
        if (!absolute(base)) Py_CLEAR(base);
    } else {
        Py_DECREF(value);
    }
    if (base == NULL) {
        PyObject *home = environ_get(env, data, "HOME");
        if (home == NULL) goto done;
        if (home == Py_None || !absolute(home)) {
            Py_DECREF(home);
            result = Py_NewRef(Py_None);
            goto done;
        }
        base = PyUnicode_FromFormat("%U%s", home,
                                    PyUnicode_READ_CHAR(home, PyUnicode_GET_LENGTH(home) - 1) == '/'
                                        ? ".cache" : "/.cache");
        Py_DECREF(home);
        if (base == NULL) goto done;
    }
    result = PyUnicode_FromFormat("%U%s", base,
                                  PyUnicode_READ_CHAR(base, PyUnicode_GET_LENGTH(base) - 1) == '/'
                                      ? "libbroker" : "/libbroker");
    Py_DECREF(base);
done:
    Py_XDECREF(data);
    Py_DECREF(env);
    return result;
}

#if LBW_SUPPORTED
typedef struct { unsigned long long dev, ino; long long size, mtime, ctime; unsigned long long mode, uid; } ident_t;

static void fill(const struct stat *st, ident_t *out)
{
    out->dev = (unsigned long long)st->st_dev;
    out->ino = (unsigned long long)st->st_ino;
    out->size = (long long)st->st_size;
    out->mtime = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    out->ctime = (long long)st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec;
    out->mode = (unsigned long long)st->st_mode;
    out->uid = (unsigned long long)st->st_uid;
}

/* The file-system bytes of *path* in *out*: for an ASCII str its own UTF-8 buffer (what
 * os.fsencode gives, without a copy: a warm replay stats dozens of paths), else through
 * the file-system codec, the new bytes object left in *owner* (release it with
 * Py_XDECREF). 0, or -1 (no error set) when *path* cannot name a file (a NUL inside,
 * an unencodable str). */
static int fs_path(PyObject *path, const char **out, PyObject **owner)
{
    Py_ssize_t n;
    *owner = NULL;
    if (PyUnicode_IS_ASCII(path)) {
        *out = (const char *)PyUnicode_DATA(path);
        n = PyUnicode_GET_LENGTH(path);
    } else {
        *owner = PyUnicode_EncodeFSDefault(path);
        if (*owner == NULL) {
            PyErr_Clear();
            return -1;
        }
        *out = PyBytes_AS_STRING(*owner);
        n = PyBytes_GET_SIZE(*owner);
    }
    if ((Py_ssize_t)strlen(*out) != n) {
        Py_CLEAR(*owner);
        return -1;
    }
    return 0;
}

/* stat (symlinks followed) or lstat of *path* into *out*: 0, or -1 when absent or unreadable. */
static int stat_raw(PyObject *path, int follow, ident_t *out)
{
    PyObject *owner;
    const char *name;
    struct stat st;
    int rc;
    if (fs_path(path, &name, &owner) != 0) return -1;
    rc = follow ? stat(name, &st) : lstat(name, &st);
    Py_XDECREF(owner);
    if (rc != 0) return -1;
    fill(&st, out);
    return 0;
}

/* Within one check of a stamp list, the stat (symlinks followed) of each path is taken once:
 * the searched directories are stamped and also compared with the cwd. An lstat that finds
 * no symlink is also that path's stat: both resolve the same directories, and the last
 * component, not being a link, is the object either call describes (the library and its
 * directories are stamped both ways: @file/@dir and @place). A C array, not a dict of
 * bytes: a warm import checks about 30 paths, and each would cost two allocations. The
 * paths are held (a cwd path is a temporary str) and compared by their ASCII text; other
 * paths are not memoised (stat afresh: the same answer, one more syscall). */
#define LBW_MEMO_MAX 64
typedef struct { PyObject *path; int rc; ident_t ident; } memo_t;
static memo_t stat_memo[LBW_MEMO_MAX];
static int memo_count = -1;  /* -1 outside stamps_hold: no memo */

static memo_t *memo_find(PyObject *path)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(path);
    int k;
    for (k = 0; k < memo_count; k++) {
        PyObject *known = stat_memo[k].path;
        if (known == path || (PyUnicode_GET_LENGTH(known) == n
                              && memcmp(PyUnicode_DATA(known), PyUnicode_DATA(path), (size_t)n) == 0))
            return &stat_memo[k];
    }
    return NULL;
}

static void memo_add(PyObject *path, int rc, const ident_t *i)
{
    if (memo_count >= LBW_MEMO_MAX) return;
    stat_memo[memo_count].path = Py_NewRef(path);
    stat_memo[memo_count].rc = rc;
    if (rc == 0) stat_memo[memo_count].ident = *i;
    memo_count++;
}

static int stat_of(PyObject *path, int follow, ident_t *out)
{
    memo_t *known;
    int rc;
    if (!PyUnicode_Check(path)) return -1;
    if (memo_count < 0 || !PyUnicode_IS_ASCII(path)) return stat_raw(path, follow, out);
    if (!follow) {
        rc = stat_raw(path, 0, out);
        if (rc == 0 && !S_ISLNK((mode_t)out->mode) && memo_find(path) == NULL) memo_add(path, 0, out);
        return rc;
    }
    known = memo_find(path);
    if (known != NULL) {
        if (known->rc == 0) *out = known->ident;
        return known->rc;
    }
    rc = stat_raw(path, 1, out);
    memo_add(path, rc, out);
    return rc;
}

static PyObject *ident_tuple(const ident_t *i)
{
    return Py_BuildValue("(KKLLLKK)", i->dev, i->ino, i->size, i->mtime, i->ctime, i->mode, i->uid);
}

/* 1 equal, 0 not, -1 error: *stamp == the tuple a Python stat gave for the same fields. */
static int equals(PyObject *stamp, PyObject *made)
{
    int same;
    if (made == NULL) return -1;
    same = PyObject_RichCompareBool(stamp, made, Py_EQ);
    Py_DECREF(made);
    return same;
}

/* 1 when *stamp* is exactly the tuple of ints *values* (each as signed or unsigned 64-bit,
 * *is_signed* per field), 0 otherwise: the comparison Python makes of the same tuples,
 * without building one per stat (the stamps of a warm import are dozens). */
static int tuple_is(PyObject *stamp, const unsigned long long *values, const char *is_signed, Py_ssize_t n)
{
    Py_ssize_t k;
    if (!PyTuple_CheckExact(stamp) || PyTuple_GET_SIZE(stamp) != n) return 0;
    for (k = 0; k < n; k++) {
        PyObject *item = PyTuple_GET_ITEM(stamp, k);
        int overflow = 0;
        long long x;
        if (!PyLong_CheckExact(item)) return 0;
        x = PyLong_AsLongLongAndOverflow(item, &overflow);
        if (overflow == 0) {
            if (x == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            if (is_signed[k] ? x != (long long)values[k] : (x < 0 || (unsigned long long)x != values[k]))
                return 0;
        } else if (overflow > 0 && !is_signed[k]) {
            unsigned long long u = PyLong_AsUnsignedLongLong(item);
            if (PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            if (u != values[k]) return 0;
        } else {
            return 0;
        }
    }
    return 1;
}

/* `_cache.identity` (7-tuple, symlinks followed) compared with *stamp* (None: never). */
static int identity_is(PyObject *path, PyObject *stamp)
{
    ident_t i;
    unsigned long long v[7];
    if (stamp == Py_None || stat_of(path, 1, &i) != 0) return 0;
    v[0] = i.dev; v[1] = i.ino; v[2] = (unsigned long long)i.size; v[3] = (unsigned long long)i.mtime;
    v[4] = (unsigned long long)i.ctime; v[5] = i.mode; v[6] = i.uid;
    return tuple_is(stamp, v, "\0\0\1\1\1\0\0", 7);
}

/* `_cache._place_stamp` (lstat: dev, ino, mode, uid, or None) compared with *stamp*. */
static int place_is(PyObject *path, PyObject *stamp)
{
    ident_t i;
    unsigned long long v[4];
    if (stat_of(path, 0, &i) != 0) return stamp == Py_None;
    v[0] = i.dev; v[1] = i.ino; v[2] = i.mode; v[3] = i.uid;
    return tuple_is(stamp, v, "\0\0\0\0", 4);
}

/* `_cache.dir_stamp` ((ino, mtime, ctime, mode, uid), or -1 when absent) compared with *stamp*. */
static int dir_stamp_is(PyObject *path, PyObject *stamp)
{
    ident_t i;
    unsigned long long v[5];
    if (stat_of(path, 1, &i) != 0) return equals(stamp, PyLong_FromLong(-1));
    v[0] = i.ino; v[1] = (unsigned long long)i.mtime; v[2] = (unsigned long long)i.ctime; v[3] = i.mode;
    v[4] = i.uid;
    return tuple_is(stamp, v, "\0\1\1\0\0", 5);
}

static PyObject *os_path_realpath(PyObject *path)
{
    PyObject *posixpath = PyImport_ImportModule("posixpath"), *result;
    if (posixpath == NULL) return NULL;
    result = PyObject_CallMethod(posixpath, "realpath", "O", path);
    Py_DECREF(posixpath);
    return result;
}

static PyObject *c_realpath(PyObject *path)
{
    PyObject *bytes = PyUnicode_EncodeFSDefault(path), *result;
    char *real;
    if (bytes == NULL) return NULL;
    real = realpath(PyBytes_AS_STRING(bytes), NULL);
    Py_DECREF(bytes);
    if (real == NULL) return os_path_realpath(path);  /* Python's best-effort answer */
    result = PyUnicode_DecodeFSDefault(real);
    free(real);
    return result;
}

/* 1 when *path* has a ".." component, 0 when not, -1 on error. */
static int has_dotdot(PyObject *path)
{
    Py_ssize_t n, i, start = 0;
    const char *text = PyUnicode_AsUTF8AndSize(path, &n);
    if (text == NULL) return -1;
    for (i = 0; i <= n; i++) {
        if (i == n || text[i] == '/') {
            if (i - start == 2 && text[start] == '.' && text[start + 1] == '.') return 1;
            start = i + 1;
        }
    }
    return 0;
}

/* os.path.realpath(os.getcwd()): on Linux getcwd() returns the path the kernel keeps for
 * the directory (glibc refuses an unreachable one), already absolute, without symlinks,
 * "." or "..", so resolving it again would give the same text back (three readlink()
 * calls for a path of three components). Anything else is resolved. New reference. */
static PyObject *cwd_real(PyObject *raw)
{
#if defined(__linux__)
    if (absolute(raw)) return Py_NewRef(raw);
#endif
    return c_realpath(raw);
}

/* `_cache._cwd_among(dirs)`: the current directory's real path if one of *dirs* is it, else None.
 * Equal real paths name the same directory: a directory whose (device, inode) differs from
 * the cwd's cannot match, so one stat settles most; a missing one is compared by Python's
 * realpath only when ".." could make its best-effort answer the cwd. The cwd's real path is
 * computed only when some directory may match (as Python does), and a directory spelled
 * exactly as getcwd() spells the cwd has the same real path by construction. New reference. */
static PyObject *cwd_among(PyObject *dirs)
{
    char buffer[4096];
    PyObject *cwd = NULL, *raw;
    ident_t here, there;
    Py_ssize_t k;
    if (getcwd(buffer, sizeof(buffer)) == NULL || !PyTuple_Check(dirs)) Py_RETURN_NONE;
    raw = PyUnicode_DecodeFSDefault(buffer);
    if (raw == NULL) return NULL;
    if (stat_of(raw, 1, &here) != 0) {  /* cannot stat it: its real path, which defers the replay */
        cwd = cwd_real(raw);
        Py_DECREF(raw);
        return cwd;
    }
    for (k = 0; k < PyTuple_GET_SIZE(dirs); k++) {
        PyObject *d = PyTuple_GET_ITEM(dirs, k), *real;
        int same;
        if (!absolute(d)) continue;
        if (stat_of(d, 1, &there) != 0) {
            int has = has_dotdot(d);
            if (has < 0) goto fail;
            if (!has) continue;
            real = os_path_realpath(d);
        } else {
            if (there.dev != here.dev || there.ino != here.ino) continue;
            same = PyUnicode_Compare(d, raw) == 0;
            if (same) {  /* realpath(d) is realpath(getcwd()): the same call on the same text */
                if (cwd == NULL && (cwd = cwd_real(raw)) == NULL) goto fail;
                Py_DECREF(raw);
                return cwd;
            }
            real = c_realpath(d);
        }
        if (real == NULL) goto fail;
        if (cwd == NULL && (cwd = cwd_real(raw)) == NULL) {
            Py_DECREF(real);
            goto fail;
        }
        same = PyObject_RichCompareBool(real, cwd, Py_EQ);
        Py_DECREF(real);
        if (same < 0) goto fail;
        if (same) {
            Py_DECREF(raw);
            return cwd;
        }
    }
    Py_DECREF(raw);
    Py_XDECREF(cwd);
    Py_RETURN_NONE;
fail:
    Py_DECREF(raw);
    Py_XDECREF(cwd);
    return NULL;
}

/* `_cache.stamps_valid`, with the config file's path recorded by the writer (a function of
 * environment variables the entry's env key already pins). 1, 0, or -1 with an error. */
static int stamps_hold_once(PyObject *stamps, PyObject *config);

static int stamps_hold(PyObject *stamps, PyObject *config)
{
    int ok, k, count;
    if (memo_count >= 0) return stamps_hold_once(stamps, config);  /* nested: one memo */
    memo_count = 0;
    ok = stamps_hold_once(stamps, config);
    count = memo_count;
    memo_count = -1;
    for (k = 0; k < count; k++) Py_CLEAR(stat_memo[k].path);
    return ok;
}

/* *kind* (a str) is exactly the ASCII literal: the stamp kinds compared without decoding. */
static int kind_is(PyObject *kind, const char *text, Py_ssize_t n)
{
    return PyUnicode_IS_ASCII(kind) && PyUnicode_GET_LENGTH(kind) == n && memcmp(PyUnicode_DATA(kind), text, (size_t)n) == 0;
}
#define KIND(kind, literal) kind_is((kind), (literal), (Py_ssize_t)sizeof(literal) - 1)

/* Two passes, @place stamps first: their lstat results then answer the stat of the same
 * paths (see stat_memo). The answer is the conjunction of every stamp, so the order in
 * which they are checked does not change it (each check only reads the filesystem). */
static int stamps_hold_once(PyObject *stamps, PyObject *config)
{
    Py_ssize_t k;
    int pass;
    if (!PyList_Check(stamps)) return 0;
    for (pass = 0; pass < 2; pass++)
    for (k = 0; k < PyList_GET_SIZE(stamps); k++) {
        PyObject *item = PyList_GET_ITEM(stamps, k), *kind, *stamp;
        int ok;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) return 0;
        kind = PyTuple_GET_ITEM(item, 0);
        stamp = PyTuple_GET_ITEM(item, 1);
        if (!PyUnicode_Check(kind)) return 0;
        if (KIND(kind, "@place") != (pass == 0)) continue;
        if (KIND(kind, "@config")) {
            if (config == Py_None) {
                ok = stamp == Py_None;
            } else if (stamp == Py_None) {
                ident_t i;
                ok = stat_of(config, 1, &i) != 0;
            } else {
                ok = identity_is(config, stamp);
                if (ok == 1) {  /* a FIFO or device there is refused when read: never replay */
                    PyObject *mode = PyTuple_Check(stamp) && PyTuple_GET_SIZE(stamp) == 7
                                         ? PyTuple_GET_ITEM(stamp, 5) : NULL;
                    ok = mode != NULL && S_ISREG((mode_t)PyLong_AsUnsignedLongLong(mode));
                    if (PyErr_Occurred()) return -1;
                }
            }
        } else if (KIND(kind, "@file")
                   || KIND(kind, "@dir")
                   || KIND(kind, "@input")) {
            if (!PyTuple_Check(stamp) || PyTuple_GET_SIZE(stamp) != 2) return 0;
            ok = identity_is(PyTuple_GET_ITEM(stamp, 0), PyTuple_GET_ITEM(stamp, 1));
        } else if (KIND(kind, "@place")) {
            if (!PyTuple_Check(stamp) || PyTuple_GET_SIZE(stamp) != 2) return 0;
            ok = place_is(PyTuple_GET_ITEM(stamp, 0), PyTuple_GET_ITEM(stamp, 1));
        } else if (KIND(kind, "@cwd")) {
            PyObject *among;
            if (!PyTuple_Check(stamp) || PyTuple_GET_SIZE(stamp) != 2) return 0;
            among = cwd_among(PyTuple_GET_ITEM(stamp, 0));
            if (among == NULL) return -1;
            ok = PyObject_RichCompareBool(among, PyTuple_GET_ITEM(stamp, 1), Py_EQ);
            Py_DECREF(among);
        } else if (KIND(kind, "@site")) {
            /* A sys.path directory whose providers the verdict saw: a changed one defers, and
             * Python re-stamps it when the same providers are there (`_cache.refreshed`). */
            if (!PyTuple_Check(stamp) || PyTuple_GET_SIZE(stamp) != 2) return 0;
            ok = dir_stamp_is(PyTuple_GET_ITEM(stamp, 0), PyTuple_GET_ITEM(stamp, 1));
        } else if (KIND(kind, "@providers")) {
            ok = 1;  /* compared by `_cache.refreshed` only, as `stamps_valid` does */
        } else if (PyUnicode_READ_CHAR(kind, 0) == '@') {
            return 0;  /* a stamp this version does not know: not valid */
        } else {
            ok = dir_stamp_is(kind, stamp);
        }
        if (ok != 1) return ok;
    }
    return 1;
}
#endif /* LBW_SUPPORTED */

static PyObject *py_stamps_hold(PyObject *self, PyObject *args)
{
    PyObject *stamps, *config;
    (void)self;
    if (!PyArg_ParseTuple(args, "OO:stamps_hold", &stamps, &config)) return NULL;
#if LBW_SUPPORTED
    {
        int ok = stamps_hold(stamps, config);
        if (ok < 0) {
            PyErr_Clear();
            ok = 0;
        }
        return PyBool_FromLong(ok);
    }
#else
    Py_RETURN_FALSE;
#endif
}

/* ---- the cache directory and its files ---- */

#if LBW_SUPPORTED
/* The real and effective user ids, read once per public call (each is a system call, and
 * the ownership checks of one replay ask a dozen times). */
static uid_t lbw_uid, lbw_euid;

static void refresh_ids(void)
{
    lbw_uid = getuid();
    lbw_euid = geteuid();
}

/* One component of the cache directory's path: a real directory (not a symlink), owned by
 * root or us, not writable by others unless sticky on the way; the last one owned by root
 * or the real user. */
static int safe_step(const char *path, int last)
{
    struct stat st;
    uid_t uid = lbw_uid, euid = lbw_euid;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    if (st.st_uid != 0 && st.st_uid != uid && st.st_uid != euid) return 0;
    if ((st.st_mode & 022) && !((st.st_mode & S_ISVTX) && !last)) return 0;
    return !last || st.st_uid == 0 || st.st_uid == uid;
}
#endif

/* A strict subset of `_cache.usable_dir`'s rule: every component from "/" a real directory
 * (no symlink, no "." or ".."), owned by root or us, writable by no one else unless sticky
 * on the way; the directory itself owned by root or the real user. Memoised per process. */
static int safe_dir(PyObject *directory)
{
#if LBW_SUPPORTED
    PyObject *known = PyDict_GetItemWithError(safe_dirs, directory), *bytes;
    char *path;
    size_t n, i, start = 1;
    int ok;
    if (known != NULL) return known == Py_True;
    if (PyErr_Occurred() || !absolute(directory)) return 0;
    bytes = PyUnicode_EncodeFSDefault(directory);
    if (bytes == NULL) return -1;
    path = lbw_strdup(PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
    Py_DECREF(bytes);
    if (path == NULL) return -1;
    n = strlen(path);
    while (n > 1 && path[n - 1] == '/') path[--n] = 0;  /* trailing slashes name the same directory */
    ok = safe_step("/", n == 1);
    /* Then "/a", "/a/b", ...: the string cut at each slash in turn. */
    for (i = 1; ok && i <= n; i++) {
        if (i < n && path[i] != '/') continue;
        if (i == start || (i - start == 1 && path[start] == '.')
            || (i - start == 2 && path[start] == '.' && path[start + 1] == '.')) {
            ok = 0;  /* "//", "." or "..": left to the Python rules */
            break;
        }
        path[i] = 0;
        ok = safe_step(path, i == n);
        if (i < n) path[i] = '/';
        start = i + 1;
    }
    free(path);
    if (PyDict_SetItem(safe_dirs, directory, ok ? Py_True : Py_False) < 0) return -1;
    return ok;
#else
    (void)directory;
    return 0;
#endif
}

static PyObject *py_cache_dir_is_safe(PyObject *self, PyObject *directory)
{
    int ok;
    (void)self;
    if (!PyUnicode_Check(directory)) {
        PyErr_SetString(PyExc_TypeError, "directory must be a str");
        return NULL;
    }
#if LBW_SUPPORTED
    refresh_ids();
#endif
    ok = safe_dir(directory);
    return ok < 0 ? NULL : PyBool_FromLong(ok);
}

/* The object stored in the cache file *path* when it is ours (owner us or root, writable by
 * no one else), a regular file within the size bound and its checksum holds (`_cache.load`
 * and `_unwrap`); None otherwise. New reference, NULL only on MemoryError. */
static PyObject *read_entry(PyObject *path)
{
#if LBW_SUPPORTED
    PyObject *owner, *result = NULL;
    const char *name;
    struct stat st;
    unsigned char small[8192], *buffer = NULL;  /* a table entry is 2-4 KB: no malloc for it */
    size_t got = 0, size, want;
    uid_t uid = lbw_uid;
    int fd;
    if (fs_path(path, &name, &owner) != 0) Py_RETURN_NONE;
    /* O_NOFOLLOW: not a symlink swapped in; O_NONBLOCK: a FIFO planted there does not block. */
    fd = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    Py_XDECREF(owner);
    if (fd < 0) Py_RETURN_NONE;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > LBW_CACHE_MAX_BYTES
        || (st.st_uid != uid && st.st_uid != 0) || (st.st_mode & 022))
        goto none;
    want = (size_t)st.st_size + 1;  /* one byte more than fstat said: a file that grew is refused */
    buffer = want <= sizeof(small) ? small : (unsigned char *)malloc(want);
    if (buffer == NULL) {
        close(fd);
        return PyErr_NoMemory();
    }
    while (got < want) {
        ssize_t r = read(fd, buffer + got, want - got);
        if (r <= 0) break;
        got += (size_t)r;
        if (got == (size_t)st.st_size) break;  /* all fstat promised: no second read to see EOF */
    }
    if (got < 12 || got > LBW_CACHE_MAX_BYTES || memcmp(buffer, LBW_CACHE_MAGIC, 4) != 0) goto none;
    size = (size_t)buffer[4] | (size_t)buffer[5] << 8 | (size_t)buffer[6] << 16 | (size_t)buffer[7] << 24;
    if (size != got - 12) goto none;
    if (((uint32_t)buffer[8] | (uint32_t)buffer[9] << 8 | (uint32_t)buffer[10] << 16
         | (uint32_t)buffer[11] << 24) != lbw_crc32(buffer + 12, size))
        goto none;
    result = PyMarshal_ReadObjectFromString((const char *)buffer + 12, (Py_ssize_t)size);
    if (result == NULL) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) goto done;
        PyErr_Clear();
        goto none;
    }
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    if (buffer != small) free(buffer);
    close(fd);
    return result;
#else
    (void)path;
    Py_RETURN_NONE;
#endif
}

static PyObject *py_read_entry(PyObject *self, PyObject *path)
{
    (void)self;
    if (!PyUnicode_Check(path)) {
        PyErr_SetString(PyExc_TypeError, "path must be a str");
        return NULL;
    }
#if LBW_SUPPORTED
    refresh_ids();
#endif
    return read_entry(path);
}

/* ---- the replay ---- */

#if LBW_SUPPORTED
/* The fields of a table index entry, as interned str keys made once: a replay reads about
 * forty of them, and PyDict_GetItemString makes, hashes and frees a str each time. */
enum { F_FORMAT, F_CONFIG, F_ENV, F_STAMPS, F_PATH, F_LINK, F_ORIGIN, F_SYMBOLS, F_REQUIRED, F_SIGNATURES, F_LAYOUT, F_TABLE, F_NEEDED, F_SONAME, F_VERSION, F_VERSION_SOURCE, F_REQUEST_CRC, F_COUNT };
static const char *const field_names[F_COUNT] = {"format", "config", "env", "stamps", "path", "link", "origin", "symbols", "required", "signatures", "layout", "table", "needed", "soname", "version", "version_source", "request_crc"};
static PyObject *field_keys[F_COUNT];

static int fields_ready(void)
{
    int f;
    for (f = 0; f < F_COUNT; f++) {
        if (field_keys[f] == NULL && (field_keys[f] = PyUnicode_InternFromString(field_names[f])) == NULL)
            return -1;
    }
    return 0;
}

/* Borrowed, or NULL when absent (a str key raises nothing). */
#define FIELD(entry, f) PyDict_GetItemWithError((entry), field_keys[f])

/* Every field of a table index entry has the type `_tables._remember` writes (the checks of
 * `_registry._entry_shape_ok`, plus the format and the config path only this path reads). */
static int entry_ok(PyObject *entry)
{
    const struct { int key; PyTypeObject *type; } fields[] = {  /* not static: on Windows the types are imported */
        {F_ENV, &PyTuple_Type}, {F_STAMPS, &PyList_Type}, {F_PATH, &PyUnicode_Type},
        {F_LINK, &PyUnicode_Type}, {F_ORIGIN, &PyUnicode_Type}, {F_SYMBOLS, &PyList_Type},
        {F_REQUIRED, &PyList_Type}, {F_SIGNATURES, &PyList_Type}, {F_LAYOUT, &PyLong_Type},
        {F_TABLE, &PyUnicode_Type}, {F_NEEDED, &PyList_Type},
    };
    static const int optional_text[] = {F_SONAME, F_VERSION, F_VERSION_SOURCE, F_CONFIG};
    PyObject *crc;
    PyObject *value, *symbols, *required, *signatures;
    Py_ssize_t k, n;
    size_t f;
    if (!PyDict_CheckExact(entry)) return 0;
    value = FIELD(entry, F_FORMAT);
    if (value == NULL || !PyLong_CheckExact(value) || PyLong_AsLong(value) != LBW_ENTRY_FORMAT) {
        PyErr_Clear();
        return 0;
    }
    for (f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        value = FIELD(entry, fields[f].key);
        if (value == NULL || Py_TYPE(value) != fields[f].type) return 0;
    }
    for (f = 0; f < 4; f++) {
        value = FIELD(entry, optional_text[f]);
        if (value == NULL || (value != Py_None && !PyUnicode_CheckExact(value))) return 0;
    }
    crc = FIELD(entry, F_REQUEST_CRC);
    if (crc == NULL || (crc != Py_None && !PyLong_CheckExact(crc))) return 0;
    symbols = FIELD(entry, F_SYMBOLS);
    required = FIELD(entry, F_REQUIRED);
    signatures = FIELD(entry, F_SIGNATURES);
    n = PyList_GET_SIZE(symbols);
    if (PyList_GET_SIZE(required) != n || PyList_GET_SIZE(signatures) != n) return 0;
    for (k = 0; k < n; k++) {
        if (!PyBytes_CheckExact(PyList_GET_ITEM(symbols, k))
            || !PyBool_Check(PyList_GET_ITEM(required, k))
            || !PyUnicode_CheckExact(PyList_GET_ITEM(signatures, k)))
            return 0;
    }
    value = FIELD(entry, F_NEEDED);
    for (k = 0; k < PyList_GET_SIZE(value); k++) {
        PyObject *pair = PyList_GET_ITEM(value, k);
        if (!PyList_CheckExact(pair) || PyList_GET_SIZE(pair) != 2
            || !PyUnicode_CheckExact(PyList_GET_ITEM(pair, 0)) || !PyUnicode_CheckExact(PyList_GET_ITEM(pair, 1)))
            return 0;
    }
    return 1;
}

#endif
#if LBW_SUPPORTED
/* dlopen the file at *real* if it still has the judged identity *ident*: opened once
 * (O_NOFOLLOW), fstat-ed, owned by root or us and writable by no one else, then that open
 * file is mapped through /proc/self/fd/N and the link map renamed to *real* (so that
 * dl_iterate_phdr users see the file). The handle, or NULL: the Python loader decides. */
static void *map_judged(PyObject *real, PyObject *ident)
{
    PyObject *bytes = PyUnicode_EncodeFSDefault(real), *made;
    struct stat st;
    ident_t i;
    char name[256];
    void *handle = NULL;
    int fd, same;
    if (bytes == NULL) {
        PyErr_Clear();
        return NULL;
    }
    fd = open(PyBytes_AS_STRING(bytes), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) goto done;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 022)
        || (st.st_uid != 0 && st.st_uid != lbw_uid && st.st_uid != lbw_euid))
        goto done;
    fill(&st, &i);
    made = ident_tuple(&i);
    same = made == NULL ? -1 : PyObject_RichCompareBool(ident, made, Py_EQ);
    Py_XDECREF(made);
    if (same != 1 || unique_fd_name(fd, name, sizeof(name)) != 0) goto done;
    handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        (void)dlerror();  /* e.g. a $ORIGIN dependency: the Python loader retries by path */
    } else {
        struct link_map *map = NULL;
        if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != NULL && map->l_name != NULL
            && strncmp(map->l_name, LBW_PROC_FD, strlen(LBW_PROC_FD)) == 0) {
            char *copy = strdup(PyBytes_AS_STRING(bytes));
            if (copy != NULL) map->l_name = copy;  /* the old name stays: the loader may point at it */
        } else {
            (void)dlerror();
        }
    }
done:
    if (fd >= 0) close(fd);
    Py_DECREF(bytes);
    PyErr_Clear();
    return handle;
}

/* 1 when replaying here would bind other bytes than those judged (the rules of
 * `_registry._scope_conflict`): an object in the global symbol scope (LD_PRELOAD, an
 * RTLD_GLOBAL load) defines one of the table's symbols, or a dependency's DT_NEEDED name is
 * already answered by another file, to which the loader would bind. 0 otherwise. */
static int scope_conflict(PyObject *symbols, PyObject *needed)
{
    void *scope = dlopen(NULL, RTLD_NOW);
    Py_ssize_t k;
    if (scope == NULL) {
        (void)dlerror();
        return 1;
    }
    for (k = 0; k < PyList_GET_SIZE(symbols); k++) {
        if (dlsym(scope, PyBytes_AS_STRING(PyList_GET_ITEM(symbols, k))) != NULL) return 1;
        (void)dlerror();
    }
    for (k = 0; k < PyList_GET_SIZE(needed); k++) {
        PyObject *pair = PyList_GET_ITEM(needed, k), *name, *real;
        struct link_map *map = NULL;
        struct stat mapped, judged;
        void *handle;
        int differ;
        name = PyUnicode_EncodeFSDefault(PyList_GET_ITEM(pair, 0));
        real = PyUnicode_EncodeFSDefault(PyList_GET_ITEM(pair, 1));
        if (name == NULL || real == NULL) {
            Py_XDECREF(name);
            Py_XDECREF(real);
            PyErr_Clear();
            return 1;
        }
        handle = dlopen(PyBytes_AS_STRING(name), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (handle == NULL) {
            (void)dlerror();
            differ = 0;  /* nothing answers that name yet: our copy will */
        } else {
            differ = dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL || map->l_name == NULL
                     || stat(map->l_name, &mapped) != 0 || stat(PyBytes_AS_STRING(real), &judged) != 0
                     || mapped.st_dev != judged.st_dev || mapped.st_ino != judged.st_ino;
            dlclose(handle);  /* the probe's own reference */
        }
        Py_DECREF(name);
        Py_DECREF(real);
        if (differ) return 1;
    }
    return 0;
}

static int mapped_already(PyObject *real)
{
    PyObject *bytes = PyUnicode_EncodeFSDefault(real);
    void *handle;
    if (bytes == NULL) {
        PyErr_Clear();
        return 0;
    }
    handle = dlopen(PyBytes_AS_STRING(bytes), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (handle == NULL) (void)dlerror();
    Py_DECREF(bytes);
    return handle != NULL;
}
#endif

/* The capsule rebuilt from the table index entry of *digest*; None when this path defers;
 * NULL only with MemoryError set. */
/* 1 when *text* is a table request (`_request.render`: "libbroker-request 1", then one
 * TAB-separated field a line) whose "layout" line names another digest than *layout*;
 * 0 when they agree or *text* is not a request (older headers: the header checks the table's
 * digest itself). The table would be refused by the consumer's header anyway; an entry that
 * disagrees with the request is a cold cache, so the Python rules build the right table. */
/* 1 when *text* is a table request (`_request.is_request`), else 0 (never an error). */
static int is_request_text(PyObject *text)
{
    static const char magic[] = "libbroker-request 1\n";
    const char *utf8;
    if (!PyUnicode_Check(text)) return 0;
    utf8 = PyUnicode_AsUTF8(text);
    if (utf8 == NULL) {
        PyErr_Clear();
        return 0;
    }
    return strncmp(utf8, magic, sizeof(magic) - 1) == 0;
}

/* 1 when the entry's *symbols* (bytes) and *required* (bool) are this request's slots, in
 * order: the same count, each required flag the slot's "r"/"o", and each symbol the slot's
 * name with one prefix and one suffix shared by all (a spec's or a provider's affixes; the
 * split is taken from the first slot, trying each place its name occurs). 0 otherwise: the
 * replay then defers, so a damaged entry never puts another function in a slot. */
static int slots_match(PyObject *text, PyObject *symbols, PyObject *required)
{
    const char *utf8 = PyUnicode_AsUTF8(text), *line, *name0 = NULL;
    Py_ssize_t count = PyList_GET_SIZE(symbols), k = 0;
    size_t len0 = 0;
    const char *sym0;
    size_t symlen0, at;
    if (utf8 == NULL) {
        PyErr_Clear();
        return 0;
    }
    /* The flags and the count, and slot 0's name. */
    for (line = strstr(utf8, "\nslot\t"); line != NULL; line = strstr(line + 1, "\nslot\t")) {
        const char *flag = line + 6, *sig, *colon;
        if (k >= count || (flag[0] != 'r' && flag[0] != 'o') || flag[1] != '\t') return 0;
        if ((flag[0] == 'r') != (PyList_GET_ITEM(required, k) == Py_True)) return 0;
        sig = strchr(flag + 2, '\t');
        if (sig == NULL) return 0;
        colon = strstr(sig + 1, ": ");
        if (colon == NULL) return 0;
        if (k == 0) {
            name0 = sig + 1;
            len0 = (size_t)(colon - name0);
        }
        k++;
    }
    if (k != count) return 0;
    if (count == 0) return 1;
    sym0 = PyBytes_AS_STRING(PyList_GET_ITEM(symbols, 0));
    symlen0 = (size_t)PyBytes_GET_SIZE(PyList_GET_ITEM(symbols, 0));
    for (at = 0; len0 > 0 && at + len0 <= symlen0; at++) {
        size_t pre = at, post = symlen0 - at - len0;
        Py_ssize_t i = 0;
        int all = 1;
        if (memcmp(sym0 + at, name0, len0) != 0) continue;
        for (line = strstr(utf8, "\nslot\t"); line != NULL && all; line = strstr(line + 1, "\nslot\t"), i++) {
            const char *sig = strchr(line + 8, '\t') + 1, *colon = strstr(sig, ": ");
            size_t len = (size_t)(colon - sig);
            PyObject *sym = PyList_GET_ITEM(symbols, i);
            const char *bytes = PyBytes_AS_STRING(sym);
            size_t size = (size_t)PyBytes_GET_SIZE(sym);
            all = size == pre + len + post && memcmp(bytes, sym0, pre) == 0
                  && memcmp(bytes + pre, sig, len) == 0
                  && memcmp(bytes + pre + len, sym0 + symlen0 - post, post) == 0;
        }
        if (all) return 1;
    }
    return 0;
}

static int request_layout_differs(PyObject *text, PyObject *layout)
{
    static const char magic[] = "libbroker-request 1\n";
    const char *utf8, *at;
    char digits[24];
    size_t n = 0;
    PyObject *number;
    int same;
    if (!PyUnicode_Check(text)) return 0;
    utf8 = PyUnicode_AsUTF8(text);
    if (utf8 == NULL) {
        PyErr_Clear();
        return 1;
    }
    if (strncmp(utf8, magic, sizeof(magic) - 1) != 0) return 0;
    at = strstr(utf8, "\nlayout\t");
    if (at == NULL) return 1;
    for (at += 8; *at >= '0' && *at <= '9' && n < sizeof(digits) - 1; at++) digits[n++] = *at;
    digits[n] = 0;
    if (n == 0 || n > 20 || (*at != '\n' && *at != 0)) return 1;  /* a 64-bit digest: <= 20 digits */
    number = PyLong_FromString(digits, NULL, 10);
    if (number == NULL) {
        PyErr_Clear();
        return 1;
    }
    same = PyObject_RichCompareBool(number, layout, Py_EQ);
    Py_DECREF(number);
    if (same < 0) PyErr_Clear();
    return same != 1;
}

static PyObject *replay(PyObject *digest, PyObject *text)
{
#if LBW_SUPPORTED
    PyObject *directory = NULL, *path = NULL, *entry = NULL, *key = NULL, *stamps, *files = NULL;
    PyObject *addresses = NULL, *capsule = NULL, *layout_key = NULL, *record = NULL, *result = NULL;
    PyObject *real, *ident, *symbols, *required, *modules;
    void *handle;
    int request;
    Py_ssize_t k, n;
    int same;

    /* Once the Python loader runs it owns the libraries (a file it loaded must map to its
     * Library): replay through it instead. */
    modules = PyImport_GetModuleDict();
    if (PyDict_GetItemString(modules, "libbroker._loader") != NULL) Py_RETURN_NONE;
    refresh_ids();
    if (fields_ready() < 0) goto out;
    directory = py_cache_dir(NULL, NULL);
    if (directory == NULL || directory == Py_None) goto out;
    same = safe_dir(directory);
    if (same != 1) goto out;
    key = py_env_key(NULL, NULL);
    if (key == NULL) goto out;
    {
        PyObject *tag = env_tag(key);
        if (tag == NULL) goto out;
        path = PyUnicode_FromFormat("%U/tables/%U-%U-v%d.marshal", directory, digest, tag, LBW_CACHE_FORMAT);
        Py_DECREF(tag);
    }
    if (path == NULL) goto out;
    entry = read_entry(path);
    if (entry == NULL || entry_ok(entry) != 1) goto out;
    if (text != NULL && request_layout_differs(text, FIELD(entry, F_LAYOUT))) {
        goto out;  /* an entry for another layout (damaged, or foreign): judged afresh */
    }
    request = text != NULL && is_request_text(text);
    if (request && !slots_match(text, FIELD(entry, F_SYMBOLS), FIELD(entry, F_REQUIRED))) {
        goto out;  /* review4 R4-5: symbols or required flags that are not this request's slots */
    }
    if (request && FIELD(entry, F_REQUEST_CRC) == Py_None) {
        goto out;  /* review4 R4-5: written without a request (table(spec)): nothing ties its
                      symbols to this header's slots; the Python rules judge it (and rewrite it) */
    }
    if (text != NULL && FIELD(entry, F_REQUEST_CRC) != Py_None) {
        /* The request this header carries must be the one judged: a header edited by
         * hand (its digest kept) is judged afresh rather than served another's verdict. */
        PyObject *utf8 = PyUnicode_AsUTF8String(text), *made;
        int same;
        if (utf8 == NULL) goto out;
        made = PyLong_FromUnsignedLong(lbw_crc32((const unsigned char *)PyBytes_AS_STRING(utf8),
                                                 (size_t)PyBytes_GET_SIZE(utf8)));
        Py_DECREF(utf8);
        same = made == NULL ? -1 : PyObject_RichCompareBool(made, FIELD(entry, F_REQUEST_CRC), Py_EQ);
        Py_XDECREF(made);
        if (same != 1) goto out;
    }
    if (PyObject_RichCompareBool(FIELD(entry, F_ENV), key, Py_EQ) != 1) goto out;
    stamps = FIELD(entry, F_STAMPS);
    if (stamps_hold(stamps, FIELD(entry, F_CONFIG)) != 1) goto out;
    if (scope_conflict(FIELD(entry, F_SYMBOLS), FIELD(entry, F_NEEDED)))
        goto out;  /* the Python rules judge it afresh (and refuse, or reuse that copy) */
    files = PyList_New(0);
    if (files == NULL) goto out;
    for (k = 0; k < PyList_GET_SIZE(stamps); k++) {
        PyObject *item = PyList_GET_ITEM(stamps, k);
        if (PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) && KIND(PyTuple_GET_ITEM(item, 0), "@file")) {
            PyObject *stamp = PyTuple_GET_ITEM(item, 1);
            if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(stamp, 0)) || !PyTuple_CheckExact(PyTuple_GET_ITEM(stamp, 1))
                || PyTuple_GET_SIZE(PyTuple_GET_ITEM(stamp, 1)) != 7 || PyList_Append(files, stamp) < 0)
                goto out;
        }
    }
    n = PyList_GET_SIZE(files);
    if (n == 0) goto out;
    /* The closure, dependencies first, by absolute path and identity: the system loader then
     * binds each DT_NEEDED to the judged copy and never searches. */
    for (k = 1; k < n; k++) {
        PyObject *stamp = PyList_GET_ITEM(files, k);
        if (!mapped_already(PyTuple_GET_ITEM(stamp, 0))
            && map_judged(PyTuple_GET_ITEM(stamp, 0), PyTuple_GET_ITEM(stamp, 1)) == NULL)
            goto out;
    }
    real = PyTuple_GET_ITEM(PyList_GET_ITEM(files, 0), 0);
    ident = PyTuple_GET_ITEM(PyList_GET_ITEM(files, 0), 1);
    handle = map_judged(real, ident);
    if (handle == NULL) goto out;
    symbols = FIELD(entry, F_SYMBOLS);
    required = FIELD(entry, F_REQUIRED);
    addresses = PyList_New(PyList_GET_SIZE(symbols));
    if (addresses == NULL) goto out;
    for (k = 0; k < PyList_GET_SIZE(symbols); k++) {
        void *address = dlsym(handle, PyBytes_AS_STRING(PyList_GET_ITEM(symbols, k)));
        PyObject *value;
        if (address == NULL) {
            (void)dlerror();  /* absent is an answer */
            if (PyList_GET_ITEM(required, k) == Py_True) goto out;  /* the file changed under us */
        }
        value = PyLong_FromVoidPtr(address);
        if (value == NULL) goto out;
        PyList_SET_ITEM(addresses, k, value);
    }
    layout_key = Py_BuildValue("((OO)OO)", PyTuple_GET_ITEM(ident, 0), PyTuple_GET_ITEM(ident, 1),
                               FIELD(entry, F_LAYOUT), FIELD(entry, F_TABLE));
    if (layout_key == NULL) goto out;
    capsule = PyDict_GetItemWithError(by_layout, layout_key);
    if (capsule != NULL) {
        Py_INCREF(capsule);
    } else {
        PyObject *sigs, *name, *libpath, *version, *address;
        unsigned long long layout;
        if (PyErr_Occurred()) goto out;
        sigs = FIELD(entry, F_SIGNATURES);  /* str: `build` reads their UTF-8 in place */
        if (PyList_GET_SIZE(sigs) != PyList_GET_SIZE(symbols)) goto out;
        Py_INCREF(sigs);
        name = FIELD(entry, F_TABLE);
        libpath = FIELD(entry, F_PATH);
        version = FIELD(entry, F_VERSION);
        layout = PyLong_AsUnsignedLongLong(FIELD(entry, F_LAYOUT));
        if (PyErr_Occurred() || !PyUnicode_IS_ASCII(name)) {
            Py_DECREF(sigs);
            goto out;
        }
        {
            const char *cname = PyUnicode_AsUTF8(name), *cpath = PyUnicode_AsUTF8(libpath);
            const char *cversion = version == Py_None ? "" : PyUnicode_AsUTF8(version);
            capsule = cname && cpath && cversion
                          ? build(cname, (uint64_t)layout, cpath, cversion, sigs, addresses) : NULL;
        }
        Py_DECREF(sigs);
        if (capsule == NULL || PyDict_SetItem(by_layout, layout_key, capsule) < 0) goto out;
        address = PyLong_FromVoidPtr(PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule)));
        if (address == NULL || PyDict_SetItem(table_names, address, name) < 0) {
            Py_XDECREF(address);
            goto out;
        }
        Py_DECREF(address);
    }
    /* For `_loader` to adopt as a Library when it is first used (calls go down only). */
    record = Py_BuildValue(
        "{s:O,s:O,s:N,s:(OO),s:O,s:O,s:O,s:O,s:O,s:N,s:O}",
        "path", FIELD(entry, F_PATH), "real", real, "handle", PyLong_FromVoidPtr(handle),
        "identity", PyTuple_GET_ITEM(ident, 0), PyTuple_GET_ITEM(ident, 1),
        "name", FIELD(entry, F_LINK), "origin", FIELD(entry, F_ORIGIN),
        "soname", FIELD(entry, F_SONAME), "version", FIELD(entry, F_VERSION),
        "version_source", FIELD(entry, F_VERSION_SOURCE),
        "table", PyLong_FromVoidPtr(PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))),
        "layout_key", layout_key);
    if (record == NULL || PyList_Append(warm_pending, record) < 0) goto out;
    result = capsule;
    capsule = NULL;
out:
    Py_XDECREF(directory);
    Py_XDECREF(path);
    Py_XDECREF(entry);
    Py_XDECREF(key);
    Py_XDECREF(files);
    Py_XDECREF(addresses);
    Py_XDECREF(capsule);
    Py_XDECREF(layout_key);
    Py_XDECREF(record);
    if (result == NULL) {
        if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_MemoryError)) return NULL;
        PyErr_Clear();  /* a stale or foreign entry never breaks an import: the Python path runs */
        Py_RETURN_NONE;
    }
    return result;
#else
    (void)digest;
    (void)text;
    Py_RETURN_NONE;
#endif
}

static PyObject *py_replay(PyObject *self, PyObject *digest)
{
    (void)self;
    if (!PyUnicode_Check(digest)) {
        PyErr_SetString(PyExc_TypeError, "spec digest must be a str");
        return NULL;
    }
    return replay(digest, NULL);
}

/* ---- consumers ---- */

static int note(PyObject *capsule, PyObject *module)
{
    libbroker_table_header *header = header_of(capsule);
    PyObject *address, *list;
    int found;
    if (header == NULL) return -1;
    address = PyLong_FromVoidPtr(header);
    if (address == NULL) return -1;
    list = PyDict_GetItemWithError(table_consumers, address);
    if (list == NULL) {
        if (PyErr_Occurred() || (list = PyList_New(0)) == NULL
            || PyDict_SetItem(table_consumers, address, list) < 0) {
            Py_XDECREF(list);
            Py_DECREF(address);
            return -1;
        }
        Py_DECREF(list);  /* the dict holds it */
    }
    Py_DECREF(address);
    found = PySequence_Contains(list, module);
    if (found < 0) return -1;
    return found ? 0 : PyList_Append(list, module);
}

static PyObject *py_note_consumer(PyObject *self, PyObject *args)
{
    PyObject *capsule, *module;
    (void)self;
    if (!PyArg_ParseTuple(args, "OU:note_consumer", &capsule, &module)) return NULL;
    if (note(capsule, module) < 0) return NULL;
    Py_RETURN_NONE;
}

/* The extension module whose init function is running, from the frames of importlib's
 * ExtensionFileLoader (exec_module for multi-phase init, as Cython's modules use;
 * create_module for single-phase C modules); None outside an import. New reference. */
static PyObject *importing_module(void)
{
    PyFrameObject *frame = PyEval_GetFrame();
    int depth;
    Py_XINCREF(frame);
    for (depth = 0; frame != NULL && depth < 12; depth++) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        const char *wanted = NULL, *key = NULL;
        PyFrameObject *back;
        PyObject *co_name = PyObject_GetAttrString((PyObject *)code, "co_name");
        if (co_name == NULL) {
            Py_DECREF(code);
            break;
        }
        if (PyUnicode_CompareWithASCIIString(co_name, "exec_module") == 0) {
            wanted = "__name__";
            key = "module";
        } else if (PyUnicode_CompareWithASCIIString(co_name, "create_module") == 0) {
            wanted = "name";
            key = "spec";
        }
        Py_DECREF(co_name);
        Py_DECREF(code);
        if (key != NULL) {
            PyObject *locals = PyObject_GetAttrString((PyObject *)frame, "f_locals"), *holder, *name = NULL;
            Py_DECREF(frame);
            if (locals == NULL) break;
            holder = PyMapping_GetItemString(locals, key);
            Py_DECREF(locals);
            if (holder != NULL) {
                name = PyObject_GetAttrString(holder, wanted);
                Py_DECREF(holder);
            }
            if (name != NULL && PyUnicode_Check(name)) return name;
            Py_XDECREF(name);
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* import_table(name, spec_digest, spec_text, module=None): what libbroker_import_NAME() calls. */
static PyObject *py_import_table(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"name", "spec_digest", "spec_text", "module", NULL};
    PyObject *name, *digest, *text, *module = Py_None, *capsule;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "UUU|O:import_table", keywords, &name, &digest,
                                     &text, &module))
        return NULL;
    capsule = PyDict_GetItemWithError(by_spec, digest);
    if (capsule != NULL) {
        Py_INCREF(capsule);
    } else {
        PyObject *known;
        if (PyErr_Occurred()) return NULL;
        capsule = replay(digest, text);
        if (capsule == NULL) return NULL;
        if (capsule == Py_None) {
            /* The Python path: the Python replay, else search, judge, load, check, remember. */
            PyObject *runtime = PyImport_ImportModule("libbroker._runtime"), *result;
            Py_DECREF(capsule);
            if (runtime == NULL) return NULL;
            result = PyObject_CallMethod(runtime, "import_table", "OOOO", name, digest, text, module);
            Py_DECREF(runtime);
            return result;
        }
        known = PyDict_SetDefault(by_spec, digest, capsule);
        Py_XINCREF(known);
        Py_DECREF(capsule);
        capsule = known;
        if (capsule == NULL) return NULL;
    }
    if (module == Py_None) {
        module = importing_module();
    } else {
        Py_INCREF(module);
    }
    if (module != NULL && PyUnicode_Check(module) && note(capsule, module) < 0) {
        Py_DECREF(module);
        Py_DECREF(capsule);
        return NULL;
    }
    Py_XDECREF(module);
    return capsule;
}

/* ---- module ---- */

static PyMethodDef methods[] = {
    {"import_table", (PyCFunction)(void (*)(void))py_import_table, METH_VARARGS | METH_KEYWORDS,
     "import_table(name, spec_digest, spec_text, module=None) -> capsule\n\n"
     "The table a generated header asks for: in this process's registry, else replayed from "
     "the table index on disk, else built by `libbroker._runtime.import_table` (whose "
     "BrokerError propagates)."},
    {"replay", py_replay, METH_O,
     "replay(spec_digest) -> capsule | None: the warm path alone; None when it defers."},
    {"build_table", py_build_table, METH_VARARGS,
     "build_table(name: bytes, layout: int, path: bytes, version: bytes, signatures: list[bytes], "
     "addresses: list[int]) -> capsule\n\nAllocate and fill a process-lifetime table; no "
     "validation (`_master.make_table` validates and calls this)."},
    {"table_address", py_table_address, METH_O, "Address of the table inside a table capsule."},
    {"note_consumer", py_note_consumer, METH_VARARGS,
     "note_consumer(capsule, module): record that extension *module* imported the table."},
    {"unique_fd_path", py_unique_fd_path, METH_O,
     "unique_fd_path(fd) -> '/proc/self/fd/...N', a name the loader has never seen."},
    {"env_key", py_env_key, METH_NOARGS, "`_cache.env_key()`, computed here."},
    {"crc32", py_crc32, METH_O, "crc32(data: bytes) -> int: zlib's and binascii's CRC-32."},
    {"env_tag", py_env_tag, METH_O,
     "env_tag(env_key) -> str: the 8-hex-digit name part of a table entry for that environment."},
    {"cache_dir", py_cache_dir, METH_NOARGS,
     "`_cache.cache_dir()`, or None where the warm path defers to Python."},
    {"cache_dir_is_safe", py_cache_dir_is_safe, METH_O,
     "The warm path's strict rule for its cache directory (memoised per process)."},
    {"read_entry", py_read_entry, METH_O,
     "The object in a cache file when it is ours, bounded and intact, else None."},
    {"stamps_hold", py_stamps_hold, METH_VARARGS,
     "stamps_hold(stamps, config_path) -> bool: `_cache.stamps_valid` computed here."},
    {NULL, NULL, 0, NULL},
};

static int exec_module(PyObject *module)
{
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "libbroker serves the main interpreter only: it holds process-wide state "
                        "(the libraries it loaded and their function tables) that a subinterpreter "
                        "cannot share; import libbroker and the extensions that use it from the main "
                        "interpreter");
        return -1;
    }
    if (by_spec == NULL) {  /* once per process: the registry outlives a re-import */
        by_spec = PyDict_New();
        by_layout = PyDict_New();
        table_names = PyDict_New();
        table_consumers = PyDict_New();
        warm_pending = PyList_New(0);
        safe_dirs = PyDict_New();
        if (!by_spec || !by_layout || !table_names || !table_consumers || !warm_pending || !safe_dirs)
            return -1;
    }
    if (PyModule_AddObjectRef(module, "tables_by_spec", by_spec) < 0
        || PyModule_AddObjectRef(module, "tables_by_layout", by_layout) < 0
        || PyModule_AddObjectRef(module, "table_names", table_names) < 0
        || PyModule_AddObjectRef(module, "table_consumers", table_consumers) < 0
        || PyModule_AddObjectRef(module, "warm_pending", warm_pending) < 0
        || PyModule_AddIntConstant(module, "CACHE_FORMAT", LBW_CACHE_FORMAT) < 0
        || PyModule_AddIntConstant(module, "CACHE_MAX_BYTES", LBW_CACHE_MAX_BYTES) < 0
        || PyModule_AddIntConstant(module, "TABLE_ENTRY_FORMAT", LBW_ENTRY_FORMAT) < 0
        || PyModule_AddIntConstant(module, "SUPPORTED", LBW_SUPPORTED) < 0
        || PyModule_AddStringConstant(module, "TABLES_KIND", "tables") < 0)
        return -1;
    {
        PyObject *magic = PyBytes_FromStringAndSize(LBW_CACHE_MAGIC, 4);
        if (magic == NULL || PyModule_AddObject(module, "CACHE_MAGIC", magic) < 0) {
            Py_XDECREF(magic);
            return -1;
        }
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {{Py_mod_exec, (void *)exec_module}, {0, NULL}};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "_libbroker_warm",
    "The process registry of tables, the table builder, and a consumer's warm import "
    "(csrc/_warm.c).",
    0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__libbroker_warm(void)
{
    return PyModuleDef_Init(&definition);
}
