/* The second translation unit: it includes the header and calls, never imports.
 * Its own static table pointer starts at the stubs; the first call imports
 * (a cheap dict hit in the broker, since c_consumer.c already imported). */
#include <stdint.h>

#include "libbroker_zlib.h"

unsigned long
c_consumer_more_adler32(const unsigned char *buf, unsigned int len)
{
    return libbroker_zlib->adler32(1, buf, len);
}

uintptr_t
c_consumer_more_table(void)
{
    return (uintptr_t)libbroker_zlib;
}
