# cython: language_level=3
# libuuid: an array typedef (uuid_t is unsigned char[16]) as a parameter.
cimport libbroker_uuid as uuid

uuid.import_uuid()


def parse(str text not None):
    """The 16 bytes of a UUID string; ValueError if it is not one."""
    cdef uuid.uuid_t out
    if uuid.uuid_parse(text.encode("ascii"), out) != 0:
        raise ValueError(f"not a UUID: {text!r}")
    return bytes(out[:16])


def unparse(bytes raw not None):
    cdef char text[37]
    if len(raw) != 16:
        raise ValueError("a UUID is 16 bytes")
    uuid.uuid_unparse_lower(<const unsigned char *>raw, text)
    return text[:36].decode("ascii")


def random_uuid():
    cdef uuid.uuid_t out
    uuid.uuid_generate_random(out)
    return bytes(out[:16]), bool(uuid.uuid_is_null(out))
