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

/* Attributes, each behind a macro: MSVC rejects __attribute__. LIBBROKER_COLD marks
 * the code that only runs before the import (moved out of the hot text, never inlined
 * into a caller). */
#if defined(__GNUC__) || defined(__clang__)
#define LIBBROKER_UNUSED __attribute__((unused))
#define LIBBROKER_NORETURN __attribute__((noreturn))
#define LIBBROKER_COLD __attribute__((cold, noinline))
#elif defined(_MSC_VER)
#define LIBBROKER_UNUSED
#define LIBBROKER_NORETURN __declspec(noreturn)
#define LIBBROKER_COLD __declspec(noinline)
#else
#define LIBBROKER_UNUSED
#define LIBBROKER_NORETURN
#define LIBBROKER_COLD
#endif

/*
 * How a generated header makes a call before the import safe (docs/table-abi.md):
 *
 * LIBBROKER_ASM_STUBS 1 (x86-64 ELF with GCC or Clang): one assembler block per table
 * holds the stub table and one 2-instruction thunk per slot (slot number in r11, jump to
 * a common resolver that saves the argument registers, calls the table's C resolver and
 * jumps to the real function). It costs the compiler nothing per slot, where a C function
 * per slot costs about 1 ms of gcc -O2 each. The table pointer, the stubs and the
 * resolver are weak hidden symbols named after the spec digest: one per extension module
 * (whatever the number of C files, and however LTO merges them), never shared between two
 * modules or two specs.
 *
 * LIBBROKER_ASM_STUBS 0 (every other target, or -DLIBBROKER_C_STUBS): one small cold C
 * stub per slot and a static table pointer per C file.
 */
#if !defined(LIBBROKER_C_STUBS) && defined(__x86_64__) && !defined(__ILP32__) && \
    defined(__ELF__) && (defined(__GNUC__) || defined(__clang__))
#define LIBBROKER_ASM_STUBS 1
#define LIBBROKER_HIDDEN __attribute__((visibility("hidden")))
#define LIBBROKER_SHARED __attribute__((weak, visibility("hidden")))
#define LIBBROKER_RESOLVER __attribute__((weak, visibility("hidden"), used, cold, noinline))
#if defined(__CET__) && (__CET__ & 1)
#define LIBBROKER_X86_64_ENDBR "endbr64\n\t" /* a thunk is an indirect-call target */
#else
#define LIBBROKER_X86_64_ENDBR ""
#endif
/* The common resolver: r11 holds the slot. Saves what may carry arguments (six integer
 * registers, al for a variadic call, eight vector registers), asks RESOLVER (a C
 * function: slot -> function) and jumps there with the registers and stack the caller
 * set up. The CFI lets a debugger walk through it. */
#define LIBBROKER_X86_64_RESOLVE(RESOLVER)                                                 \
    ".cfi_startproc\n\t"                                                                   \
    "pushq %rbp\n\t.cfi_def_cfa_offset 16\n\t.cfi_offset %rbp, -16\n\t"                     \
    "movq %rsp, %rbp\n\t.cfi_def_cfa_register %rbp\n\t"                                    \
    "subq $192, %rsp\n\t"                                                                  \
    "movq %rdi, 0(%rsp)\n\tmovq %rsi, 8(%rsp)\n\tmovq %rdx, 16(%rsp)\n\t"                  \
    "movq %rcx, 24(%rsp)\n\tmovq %r8, 32(%rsp)\n\tmovq %r9, 40(%rsp)\n\t"                  \
    "movq %rax, 48(%rsp)\n\t"                                                              \
    "movaps %xmm0, 64(%rsp)\n\tmovaps %xmm1, 80(%rsp)\n\tmovaps %xmm2, 96(%rsp)\n\t"       \
    "movaps %xmm3, 112(%rsp)\n\tmovaps %xmm4, 128(%rsp)\n\tmovaps %xmm5, 144(%rsp)\n\t"    \
    "movaps %xmm6, 160(%rsp)\n\tmovaps %xmm7, 176(%rsp)\n\t"                               \
    "movl %r11d, %edi\n\t"                                                                 \
    "call " RESOLVER "\n\t"                                                                \
    "movq %rax, %r11\n\t"                                                                  \
    "movq 0(%rsp), %rdi\n\tmovq 8(%rsp), %rsi\n\tmovq 16(%rsp), %rdx\n\t"                  \
    "movq 24(%rsp), %rcx\n\tmovq 32(%rsp), %r8\n\tmovq 40(%rsp), %r9\n\t"                  \
    "movq 48(%rsp), %rax\n\t"                                                              \
    "movaps 64(%rsp), %xmm0\n\tmovaps 80(%rsp), %xmm1\n\tmovaps 96(%rsp), %xmm2\n\t"       \
    "movaps 112(%rsp), %xmm3\n\tmovaps 128(%rsp), %xmm4\n\tmovaps 144(%rsp), %xmm5\n\t"    \
    "movaps 160(%rsp), %xmm6\n\tmovaps 176(%rsp), %xmm7\n\t"                               \
    "leave\n\t.cfi_def_cfa %rsp, 8\n\t"                                                    \
    "jmp *%r11\n\t"                                                                        \
    ".cfi_endproc\n"
/* The stub table's header, zero until the import: its size in the assembler block. */
#define LIBBROKER_X86_64_HEADER_BYTES "56"
#else
#define LIBBROKER_ASM_STUBS 0
#endif

/* A slot's code pointer, whatever its type (C allows converting between them). */
typedef void (*libbroker_fn)(void);

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

#if LIBBROKER_ASM_STUBS
/* The assembler blocks write the header as LIBBROKER_X86_64_HEADER_BYTES zero bytes. */
typedef char libbroker_header_is_56_bytes[sizeof(libbroker_table_header) == 56 ? 1 : -1];
#endif

/*
 * Packed slot signatures, as generated headers carry them: chunks of NUL-terminated
 * "name: type" strings in slot order, each chunk ended by an empty string (so each
 * literal stays under C99's 4,095 bytes), the chunk list ended by NULL. One pointer per
 * chunk instead of one per slot: no relocation per slot in the consumer.
 */
typedef struct libbroker_signature_cursor {
    const char *const *chunk;
    const char *at;
} libbroker_signature_cursor;

/* The next signature, or "?" past the end. */
static LIBBROKER_UNUSED const char *
libbroker_next_signature(libbroker_signature_cursor *cursor)
{
    const char *found;
    while (cursor->at != NULL && *cursor->at == '\0') {
        cursor->chunk++;
        cursor->at = *cursor->chunk;
    }
    if (cursor->at == NULL) {
        return "?";
    }
    found = cursor->at;
    cursor->at += strlen(found) + 1;
    return found;
}

/* Slot `slot`'s signature in packed signatures (a walk: for messages only). */
static LIBBROKER_UNUSED const char *
libbroker_packed_signature(const char *const *chunks, uint32_t slot)
{
    libbroker_signature_cursor cursor;
    const char *found;
    cursor.chunk = chunks;
    cursor.at = *chunks;
    do {
        found = libbroker_next_signature(&cursor);
    } while (slot-- > 0);
    return found;
}

/*
 * Fetch the table for one spec from the master module and check that its
 * layout is exactly the one this consumer was compiled against. Returns 0 and
 * stores the table in *table_out, or returns -1 with ImportError set (the
 * broker's error as __cause__). Needs the GIL. Idempotent: the master hands
 * every consumer of the same layout the same table. What generated headers pass:
 * `spec_text` as chunks of string literals, NULL last (joined here: one literal per
 * chunk keeps each under C99's limit); `slot_signatures` packed (see above).
 */
static LIBBROKER_UNUSED int
libbroker_import_packed(const char *name, const char *spec_digest,
                        const char *const *spec_text, uint64_t layout_digest,
                        uint32_t slot_count, const char *const *slot_signatures,
                        void **table_out)
{
    PyObject *module, *capsule, *cause;
    libbroker_table_header *header;
    libbroker_signature_cursor mine;
    const char *expected;
    const char *const *chunk;
    char capsule_name[128];
    char *text;
    size_t length = 1;
    uint32_t i, common;

    for (chunk = spec_text; *chunk != NULL; chunk++) {
        length += strlen(*chunk);
    }
    text = (char *)PyMem_Malloc(length);
    if (text == NULL) {
        PyErr_NoMemory();
        goto wrap_error;
    }
    for (length = 0, chunk = spec_text; *chunk != NULL; chunk++) {
        size_t size = strlen(*chunk);
        memcpy(text + length, *chunk, size);
        length += size;
    }
    text[length] = '\0';
    /* sys.modules first: after the first consumer, the registry is there, and
       PyImport_ImportModule would go through builtins.__import__ to find it. */
    {
        PyObject *module_name = PyUnicode_FromString("_libbroker_warm");
        module = module_name == NULL ? NULL : PyImport_GetModule(module_name);
        Py_XDECREF(module_name);
        if (module == Py_None) {  /* import blocked: PyImport_ImportModule says so */
            Py_CLEAR(module);
        }
    }
    if (module == NULL && !PyErr_Occurred()) {
        module = PyImport_ImportModule("_libbroker_warm");
    }
    if (module == NULL) {
        PyMem_Free(text);
        goto wrap_error;
    }
    capsule = PyObject_CallMethod(module, "import_table", "sss", name, spec_digest, text);
    PyMem_Free(text);
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
        mine.chunk = slot_signatures;
        mine.at = *slot_signatures;
        for (i = 0; i < common; i++) {
            expected = libbroker_next_signature(&mine);
            if (strcmp(header->slot_signatures[i], expected) != 0) {
                PyErr_Format(PyExc_ImportError,
                             "libbroker table %s (%s): slot %u differs: this extension was "
                             "compiled for '%s' but the table has '%s'; fix: regenerate the "
                             "header and rebuild the extension",
                             name, header->library_path, (unsigned int)i, expected,
                             header->slot_signatures[i]);
                return -1;
            }
        }
        if (header->slot_count == slot_count) {
            /* Every slot matches, only the digest differs: not this extension's build, but a
               table built from a damaged or foreign table-index entry. (No slot to name:
               slot_signatures[slot_count] is past the end.) */
            char theirs[24], ours[24];
            snprintf(theirs, sizeof(theirs), "%016llx", (unsigned long long)header->layout_digest);
            snprintf(ours, sizeof(ours), "%016llx", (unsigned long long)layout_digest);
            PyErr_Format(PyExc_ImportError,
                         "libbroker table %s (%s): layout digest 0x%s but this extension was "
                         "compiled for 0x%s, with the same %u slots: the table came from a "
                         "damaged or foreign table-index entry, or this extension's generated "
                         "header was edited; fix: remove libbroker's cache directory (`libbroker "
                         "doctor` names it) and import again, and if it persists regenerate the "
                         "header and rebuild the extension",
                         name, header->library_path, theirs, ours, (unsigned int)slot_count);
            return -1;
        }
        PyErr_Format(PyExc_ImportError,
                     "libbroker table %s (%s): %u slots but this extension was compiled for %u "
                     "(first differing function: '%s'); fix: regenerate the header and rebuild "
                     "the extension",
                     name, header->library_path, (unsigned int)header->slot_count,
                     (unsigned int)slot_count,
                     common < slot_count ? libbroker_next_signature(&mine)
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
 * The same check with one signature string per slot, as headers generated by libbroker
 * before packed signatures pass them (kept so such headers still compile).
 */
static LIBBROKER_UNUSED int
libbroker_import_table(const char *name, const char *spec_digest, const char *spec_text,
                       uint64_t layout_digest, uint32_t slot_count,
                       const char *const *slot_signatures, void **table_out)
{
    /* The same list packed: one chunk holding every string, built on the heap. */
    const char **chunks;
    char *blob;
    size_t total = 0, at = 0;
    uint32_t i;
    int result;
    for (i = 0; i < slot_count; i++) {
        total += strlen(slot_signatures[i]) + 1;
    }
    blob = (char *)PyMem_Malloc(total + 1);
    chunks = (const char **)PyMem_Malloc(2 * sizeof(*chunks));
    if (blob == NULL || chunks == NULL) {
        PyMem_Free(blob);
        PyMem_Free((void *)chunks);
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < slot_count; i++) {
        size_t length = strlen(slot_signatures[i]) + 1;
        memcpy(blob + at, slot_signatures[i], length);
        at += length;
    }
    blob[at] = '\0';
    chunks[0] = blob;
    chunks[1] = NULL;
    {
        const char *text_chunks[2];
        text_chunks[0] = spec_text;
        text_chunks[1] = NULL;
        result = libbroker_import_packed(name, spec_digest, text_chunks, layout_digest,
                                         slot_count, chunks, table_out);
    }
    PyMem_Free(blob);
    PyMem_Free((void *)chunks);
    return result;
}

/* The function name of a signature ("crc32: ..." -> "crc32"), into out. */
static LIBBROKER_UNUSED void
libbroker_function_name(const char *signature, char *out, size_t size)
{
    size_t n = 0;
    while (signature[n] != '\0' && signature[n] != ':' && n + 1 < size) {
        out[n] = signature[n];
        n++;
    }
    out[n] = '\0';
}

/*
 * A call made through the stubs before this table pointer was imported: import now
 * (under the GIL, which the caller may not hold), or stop the process with a message
 * naming the function and the import call: never a jump through a NULL pointer.
 */
static void libbroker_lazy_import(int (*import_fn)(void), const char *table, const char *function);

static LIBBROKER_UNUSED LIBBROKER_COLD void
libbroker_stub_import(int (*import_fn)(void), const char *table,
                      const char *const *slot_signatures, uint32_t slot)
{
    char function[128];
    libbroker_function_name(libbroker_packed_signature(slot_signatures, slot), function,
                            sizeof(function));
    libbroker_lazy_import(import_fn, table, function);  /* the C stubs' path, named from the slot */
}

/* The imported table's slot `slot`; stops the process when that optional function is
 * absent from the loaded library (the caller did not test it against NULL). */
static LIBBROKER_UNUSED LIBBROKER_COLD libbroker_fn
libbroker_stub_slot(const libbroker_table_header *header, const char *table,
                    const char *const *slot_signatures, uint32_t slot)
{
    libbroker_fn found = ((const libbroker_fn *)(const void *)(header + 1))[slot];
    if (found == NULL) {
        char message[512], function[128];
        libbroker_function_name(libbroker_packed_signature(slot_signatures, slot), function,
                                sizeof(function));
        PyOS_snprintf(message, sizeof(message),
                      "libbroker: optional function %s.%s is absent from the loaded library and "
                      "was called anyway; test libbroker_%s->%s != NULL after the import",
                      table, function, table, function);
        Py_FatalError(message);
    }
    return found;
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
