/* A plain C consumer of zlib through libbroker_zlib.h, built from two files:
 * this one imports the table in PyInit; c_consumer_more.c only calls. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "libbroker_zlib.h"

/* Defined in c_consumer_more.c: a second translation unit, no import of its own. */
unsigned long c_consumer_more_adler32(const unsigned char *buf, unsigned int len);
uintptr_t c_consumer_more_table(void);

static PyObject *
crc32(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long value;
    if (!PyArg_ParseTuple(args, "y*", &view)) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    value = libbroker_zlib->crc32(0, (const Bytef *)view.buf, (uInt)view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(value);
}

static PyObject *
adler32_other_file(PyObject *self, PyObject *args)
{
    Py_buffer view;
    unsigned long value;
    if (!PyArg_ParseTuple(args, "y*", &view)) {
        return NULL;
    }
    value = c_consumer_more_adler32((const unsigned char *)view.buf, (unsigned int)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(value);
}

static PyObject *
tables(PyObject *self, PyObject *unused)
{
    /* The table this file uses and the one the other file resolved lazily. */
    return Py_BuildValue("(KK)", (unsigned long long)(uintptr_t)libbroker_zlib,
                         (unsigned long long)c_consumer_more_table());
}

static PyObject *
optional_slots(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("(OO)", libbroker_zlib->crc32_z != NULL ? Py_True : Py_False,
                         libbroker_zlib->libbroker_absent_probe != NULL ? Py_True : Py_False);
}

static PyObject *
reimport(PyObject *self, PyObject *unused)
{
    /* Forget the table and import again: the broker must hand back the same one. */
    libbroker_zlib = &libbroker__zlib_stubs;
    if (libbroker_import_zlib() < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)libbroker_zlib);
}

static PyMethodDef methods[] = {
    {"crc32", crc32, METH_VARARGS, NULL},
    {"adler32_other_file", adler32_other_file, METH_VARARGS, NULL},
    {"tables", tables, METH_NOARGS, NULL},
    {"optional_slots", optional_slots, METH_NOARGS, NULL},
    {"reimport", reimport, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "c_consumer", NULL, -1, methods};

PyMODINIT_FUNC
PyInit_c_consumer(void)
{
#ifndef C_CONSUMER_NO_IMPORT
    if (libbroker_import_zlib() < 0) {
        return NULL;
    }
#endif
    return PyModule_Create(&moduledef);
}
