# cython: language_level=3
# libexpat: a struct returned by value (XML_ExpatVersionInfo) and C callbacks.
cimport libbroker_expat as expat

expat.import_expat()


def version_info():
    cdef expat.XML_Expat_Version v = expat.XML_ExpatVersionInfo()
    return (v.major, v.minor, v.micro)


cdef void on_start(void *counts, const char *name, const char **atts) noexcept nogil:
    (<long *>counts)[0] += 1


cdef void on_end(void *counts, const char *name) noexcept nogil:
    (<long *>counts)[1] += 1


def count_elements(bytes document not None):
    """(start tags, end tags) of ``document``; ValueError if it is not well-formed."""
    cdef long counts[2]
    counts[0] = counts[1] = 0
    parser = expat.XML_ParserCreate(NULL)
    if parser == NULL:
        raise MemoryError()
    try:
        expat.XML_SetUserData(parser, counts)
        expat.XML_SetElementHandler(parser, on_start, on_end)
        if expat.XML_Parse(parser, document, len(document), 1) == 0:
            raise ValueError("not well-formed XML")
    finally:
        expat.XML_ParserFree(parser)
    return counts[0], counts[1]
