# cython: language_level=3
# libcurl: a variadic function (curl_easy_setopt) called through the table, with
# the option constants from the real <curl/curl.h>, whose types replace the
# generated ones (LIBBROKER_CURL_EXTERNAL_TYPES: it declares all of them).
cdef extern from *:
    """
    #include <curl/curl.h>
    #define LIBBROKER_CURL_EXTERNAL_TYPES
    """
    enum: CURLOPT_URL, CURLOPT_WRITEFUNCTION, CURLOPT_WRITEDATA, CURLE_OK

cimport libbroker_curl as curl

curl.import_curl()


def version():
    return curl.curl_version().decode()


cdef size_t on_data(char *data, size_t size, size_t count, void *chunks) noexcept with gil:
    (<list>chunks).append(data[:size * count])
    return size * count


def fetch(str url not None):
    """The body at ``url`` (any scheme libcurl supports, file:// included)."""
    chunks = []
    encoded = url.encode()
    handle = curl.curl_easy_init()
    if handle == NULL:
        raise MemoryError()
    try:
        curl.curl_easy_setopt(handle, CURLOPT_URL, <const char *>encoded)
        curl.curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_data)
        curl.curl_easy_setopt(handle, CURLOPT_WRITEDATA, <void *>chunks)
        code = curl.curl_easy_perform(handle)
        if code != CURLE_OK:
            raise OSError(curl.curl_easy_strerror(code).decode())
    finally:
        curl.curl_easy_cleanup(handle)
    return b"".join(chunks)
