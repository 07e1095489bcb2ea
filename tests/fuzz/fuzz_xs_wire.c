/* libFuzzer: arbitrary bytes as one xs_wire connection's input to xsd.
 * The first byte picks the caller (dom0 or a guest) and how the rest is cut
 * into reads; replies go to a socketpair that is drained between reads. */
#include "xsd.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define GUEST 5

static void drain(int fd)
{
    char buf[65536];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char err[128];
    struct xsd *x = xsd_new(NULL, NULL, NULL, err, sizeof(err));
    if (!x)
        abort();
    if (xsd_domain_introduce(x, GUEST) < 0)
        abort();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        abort();
    struct xsd_conn *c = xsd_conn_adopt(x, sv[0], (data[0] & 1) ? GUEST : 0);
    if (!c)
        abort();
    size_t chunk = (size_t)(data[0] >> 1) + 1;
    data++;
    size--;
    while (size) {
        size_t n = size < chunk ? size : chunk;
        int rc = xsd_conn_input(c, data, n);
        drain(sv[1]);
        if (rc < 0)
            break; /* closed for bad input: the connection is gone */
        data += n;
        size -= n;
    }
    xsd_free(x);
    close(sv[1]);
    return 0;
}
