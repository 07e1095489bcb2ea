/* vdev: Xen virtual disk names (see vdev.h). */
#include "vdev.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool xvd_matches(const char *v, long *disk, long *part)
{
    if (strncmp(v, "xvd", 3) != 0)
        return false;
    const char *p = v + 3;
    long d = -1;
    while (*p >= 'a' && *p <= 'z') {
        d = (d + 1) * 26 + (*p - 'a');
        if (d > (1 << 20) - 1)
            return false;
        p++;
    }
    if (d < 0)
        return false;
    long pn = 0;
    if (*p) {
        char *end;
        unsigned long u = strtoul(p, &end, 10);
        if (*p < '1' || *p > '9' || *end || u > 255)
            return false;
        pn = (long)u;
    }
    *disk = d;
    *part = pn;
    return true;
}

long vdev_to_devid(const char *vdev)
{
    long disk, part;
    int used = -1;
    if ((sscanf(vdev, "d%ldp%ld%n", &disk, &part, &used) >= 2 &&
         used == (int)strlen(vdev) && disk >= 0 && disk < (1 << 20) &&
         part >= 0 && part < 256) || xvd_matches(vdev, &disk, &part)) {
        if (disk <= 15 && part <= 15)
            return (202 << 8) | (disk << 4) | part;
        return (1L << 28) | (disk << 8) | part;
    }
    if (vdev[0] < '0' || vdev[0] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(vdev, &end, 10);
    return !errno && !*end && v <= INT_MAX ? (long)v : -1;
}

static char *encode_disk(char *p, unsigned n)
{
    if (n >= 26)
        p = encode_disk(p, n / 26 - 1);
    *p = (char)('a' + n % 26);
    return p + 1;
}

void devid_to_vdev(unsigned long devid, char *out, size_t len)
{
    unsigned minor, nr_parts;
    if (devid & (1ul << 28)) {
        minor = (unsigned)(devid & ~(1ul << 28));
        nr_parts = 256;
    } else if ((devid >> 8) == 202) {
        minor = devid & 0xff;
        nr_parts = 16;
    } else {
        snprintf(out, len, "%lu", devid);
        return;
    }
    char buf[40] = "xvd";
    char *p = encode_disk(buf + 3, minor / nr_parts);
    *p = 0;
    if (minor % nr_parts)
        snprintf(p, sizeof(buf) - (size_t)(p - buf), "%u", minor % nr_parts);
    snprintf(out, len, "%s", buf);
}
