# cython: language_level=3
# libpng's simplified API: png_image is a complete struct (`libbroker spec
# --complete png_image`), allocated here and filled by the library.
from libc.string cimport memset
cimport libbroker_png as png

png.import_png()

PNG_IMAGE_VERSION = 1   # <png.h>
PNG_FORMAT_RGBA = 3     # PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA


def version():
    return png.png_get_libpng_ver(NULL).decode(), png.png_access_version_number()


def is_png(bytes head not None):
    return len(head) >= 8 and png.png_sig_cmp(head, 0, 8) == 0


def decode_rgba(bytes data not None):
    """(width, height, RGBA bytes) of a PNG file's content."""
    cdef png.png_image image
    memset(&image, 0, sizeof(image))
    image.version = PNG_IMAGE_VERSION
    if not png.png_image_begin_read_from_memory(&image, <const char *>data, len(data)):
        raise ValueError(image.message.decode(errors="replace"))
    image.format = PNG_FORMAT_RGBA
    out = bytearray(image.width * image.height * 4)
    cdef char *buffer = out
    if not png.png_image_finish_read(&image, NULL, buffer, 0, NULL):
        message = image.message.decode(errors="replace")
        png.png_image_free(&image)
        raise ValueError(message)
    return image.width, image.height, bytes(out)
