/*
 * libbroker.h: the table ABI shared by the libbroker master module and every
 * generated libbroker_<name>.h header. See docs/table-abi.md.
 *
 * A table is one block of memory owned by the master module and never freed:
 *
 *     libbroker_table_header header;   fixed part, described below
 *     void (*slot[slot_count])(void);  one function pointer per spec function,
 *                                      in spec order, NULL for an absent optional
 *
 * Evolution rules: fields are only ever appended to the header (bumping
 * LIBBROKER_ABI_MINOR; consumers read header_size before touching a newer
 * field). Changing or removing a field, or the slot representation, bumps
 * LIBBROKER_ABI_MAJOR, and consumers refuse a table of another major.
 */
#ifndef LIBBROKER_H
#define LIBBROKER_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LIBBROKER_TABLE_MAGIC 0x4B52424Cu /* "LBRK" little-endian */
#define LIBBROKER_ABI_MAJOR 1
#define LIBBROKER_ABI_MINOR 0
#define LIBBROKER_CAPSULE_PREFIX "libbroker.table."

#if defined(__GNUC__) || defined(__clang__)
#define LIBBROKER_UNUSED __attribute__((unused))
#define LIBBROKER_NORETURN __attribute__((noreturn))
#elif defined(_MSC_VER)
#define LIBBROKER_UNUSED
#define LIBBROKER_NORETURN __declspec(noreturn)
#else
#define LIBBROKER_UNUSED
#define LIBBROKER_NORETURN
#endif

typedef struct libbroker_table_header {
    uint32_t magic;          /* LIBBROKER_TABLE_MAGIC */
    uint16_t abi_major;      /* LIBBROKER_ABI_MAJOR of the master that built it */
    uint16_t abi_minor;      /* LIBBROKER_ABI_MINOR of the master that built it */
    uint32_t header_size;    /* sizeof(libbroker_table_header) in that master */
    uint32_t slot_count;     /* number of function pointers after the header */
    uint64_t layout_digest;  /* digest of the slot names and normalised types */
    const char *name;            /* table name, a C identifier */
    const char *library_path;    /* absolute path of the loaded file */
    const char *library_version; /* "" when unknown */
    const char *const *slot_signatures; /* slot_count "name: normalised type" */
} libbroker_table_header;

/*
 * Fetch the table for one spec from the master module and check that its
 * layout is exactly the one this consumer was compiled against. Returns 0 and
 * stores the table in *table_out, or returns -1 with ImportError set (the
 * broker's error as __cause__). Needs the GIL. Idempotent: the master hands
 * every consumer of the same layout the same table.
 */
static LIBBROKER_UNUSED int
libbroker_import_table(const char *name, const char *spec_digest, const char *spec_text,
                       uint64_t layout_digest, uint32_t slot_count,
                       const char *const *slot_signatures, void **table_out)
{
    PyObject *module, *capsule, *cause;
    libbroker_table_header *header;
    char capsule_name[128];
    uint32_t i, common;

    module = PyImport_ImportModule("libbroker._master");
    if (module == NULL) {
        goto wrap_error;
    }
    capsule = PyObject_CallMethod(module, "import_table", "sss", name, spec_digest, spec_text);
    Py_DECREF(module);
    if (capsule == NULL) {
        goto wrap_error;
    }
    PyOS_snprintf(capsule_name, sizeof(capsule_name), "%s%s", LIBBROKER_CAPSULE_PREFIX, name);
    header = (libbroker_table_header *)PyCapsule_GetPointer(capsule, capsule_name);
    Py_DECREF(capsule);  /* the table itself is immortal */
    if (header == NULL) {
        goto wrap_error;
    }
    if (header->magic != LIBBROKER_TABLE_MAGIC) {
        PyErr_Format(PyExc_ImportError,
                     "libbroker table %s: bad magic 0x%08x (expected 0x%08x); "
                     "the capsule was not made by libbroker",
                     name, (unsigned int)header->magic, (unsigned int)LIBBROKER_TABLE_MAGIC);
        return -1;
    }
    if (header->abi_major != LIBBROKER_ABI_MAJOR || header->header_size < sizeof(*header)) {
        PyErr_Format(PyExc_ImportError,
                     "libbroker table %s: table ABI %u.%u (header %u bytes) but this extension "
                     "was compiled for ABI %d.%d (header %u bytes); fix: rebuild the extension "
                     "against the installed libbroker",
                     name, (unsigned int)header->abi_major, (unsigned int)header->abi_minor,
                     (unsigned int)header->header_size, LIBBROKER_ABI_MAJOR, LIBBROKER_ABI_MINOR,
                     (unsigned int)sizeof(*header));
        return -1;
    }
    if (header->layout_digest != layout_digest || header->slot_count != slot_count) {
        common = header->slot_count < slot_count ? header->slot_count : slot_count;
        for (i = 0; i < common; i++) {
            if (strcmp(header->slot_signatures[i], slot_signatures[i]) != 0) {
                PyErr_Format(PyExc_ImportError,
                             "libbroker table %s (%s): slot %u differs: this extension was "
                             "compiled for '%s' but the table has '%s'; fix: regenerate the "
                             "header and rebuild the extension",
                             name, header->library_path, (unsigned int)i, slot_signatures[i],
                             header->slot_signatures[i]);
                return -1;
            }
        }
        PyErr_Format(PyExc_ImportError,
                     "libbroker table %s (%s): %u slots but this extension was compiled for %u "
                     "(first differing function: '%s'); fix: regenerate the header and rebuild "
                     "the extension",
                     name, header->library_path, (unsigned int)header->slot_count,
                     (unsigned int)slot_count,
                     common < slot_count ? slot_signatures[common]
                                         : header->slot_signatures[common]);
        return -1;
    }
    *table_out = header;
    return 0;

wrap_error:
    /* Re-raise as ImportError, keeping the broker's error as the cause. */
#if PY_VERSION_HEX >= 0x030C0000
    cause = PyErr_GetRaisedException();
#else
    {
        PyObject *cause_type, *cause_tb;
        PyErr_Fetch(&cause_type, &cause, &cause_tb);
        PyErr_NormalizeException(&cause_type, &cause, &cause_tb);
        if (cause_tb != NULL && cause != NULL) {
            PyException_SetTraceback(cause, cause_tb);
        }
        Py_XDECREF(cause_type);
        Py_XDECREF(cause_tb);
    }
#endif
    if (cause != NULL && PyErr_GivenExceptionMatches(cause, PyExc_ImportError)) {
        PyErr_SetObject((PyObject *)Py_TYPE(cause), cause);
        Py_DECREF(cause);
        return -1;
    }
    {
        PyObject *text = cause != NULL ? PyObject_Str(cause) : NULL;
        PyObject *err;
        if (text == NULL) {
            PyErr_Clear();
            err = PyObject_CallFunction(PyExc_ImportError, "s", "libbroker: unknown error");
        } else {
            err = PyObject_CallFunction(PyExc_ImportError, "O", text);
            Py_DECREF(text);
        }
        if (err != NULL && cause != NULL) {
            PyException_SetCause(err, cause); /* steals cause */
            cause = NULL;
        }
        if (err != NULL) {
            PyErr_SetObject(PyExc_ImportError, err);
            Py_DECREF(err);
        }
    }
    Py_XDECREF(cause);
    return -1;
}

/*
 * Called by a generated stub when a function is used before its table was
 * imported in this translation unit: imports it now, or stops the process
 * with a message naming the function and the import call (never a jump
 * through a NULL pointer).
 */
static LIBBROKER_UNUSED void
libbroker_lazy_import(int (*import_fn)(void), const char *table, const char *function)
{
    PyGILState_STATE state = PyGILState_Ensure();
    if (import_fn() < 0) {
        char message[512];
        PyErr_Print();
        PyOS_snprintf(message, sizeof(message),
                      "libbroker: %s.%s was called before libbroker_import_%s() (import_%s() in "
                      "Cython) succeeded, and importing it on first use failed (see above); "
                      "call the import in the module's init function",
                      table, function, table, table);
        Py_FatalError(message);
    }
    PyGILState_Release(state);
}

static LIBBROKER_UNUSED void
libbroker_absent_optional(const char *table, const char *function)
{
    char message[512];
    PyOS_snprintf(message, sizeof(message),
                  "libbroker: optional function %s.%s is absent from the loaded library and was "
                  "called anyway; test libbroker_%s->%s != NULL after the import",
                  table, function, table, function);
    Py_FatalError(message);
}

/*
 * Called by the stub of a variadic function used before the import: the stub
 * has imported the table, but C cannot forward '...' arguments to the real
 * function, so this first call stops the process with a message saying so.
 */
static LIBBROKER_UNUSED LIBBROKER_NORETURN void
libbroker_variadic_early(const char *table, const char *function)
{
    char message[512];
    PyOS_snprintf(message, sizeof(message),
                  "libbroker: variadic function %s.%s was called before libbroker_import_%s() "
                  "(import_%s() in Cython); C cannot forward its '...' arguments from the "
                  "stub; call the import in the module's init function",
                  table, function, table, table);
    Py_FatalError(message);
}

#endif /* LIBBROKER_H */
