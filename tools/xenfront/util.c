/* xenfront: helpers with no device behind them, argument parsing and the
 * stop file (unit tested in tests/unit/test_xenfront.c). */
#include "xenfront.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int virtdisk_matches(const char *v, long *disk, long max_disk,
                            long *part, long max_part)
{
    if (strncmp(v, "xvd", 3) != 0)
        return 0;
    const char *p = v + 3;
    long d = -1;
    while (*p >= 'a' && *p <= 'z') {
        d = (d + 1) * 26 + (*p - 'a');
        if (d > max_disk)
            return 0;
        p++;
    }
    if (d < 0)
        return 0;
    long pn = 0;
    if (*p) {
        if (*p < '1' || *p > '9')
            return 0;
        char *end;
        errno = 0;
        pn = strtol(p, &end, 10);
        if (errno || *end || pn < 0 || pn > max_part)
            return 0;
    }
    *disk = d;
    *part = pn;
    return 1;
}

long xf_vdev_to_devid(const char *vdev)
{
    long disk, part;
    int used = -1;
    if (!vdev || !*vdev)
        return -1;
    if ((sscanf(vdev, "d%ldp%ld%n", &disk, &part, &used) >= 2 &&
         used == (int)strlen(vdev) && disk >= 0 && disk < (1 << 20) &&
         part >= 0 && part < 256) ||
        virtdisk_matches(vdev, &disk, (1 << 20) - 1, &part, 255)) {
        if (disk <= 15 && part <= 15)
            return (202 << 8) | (disk << 4) | part;
        return (1L << 28) | (disk << 8) | part;
    }
    uint64_t v;
    if (xf_parse_uint(vdev, 0x7fffffff, &v) == 0)
        return (long)v;
    return -1;
}

int xf_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

int xf_parse_size(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: return -1;
    }
    if (*end == 'i' && shift)
        end++;
    if ((*end == 'b' || *end == 'B') && shift)
        end++;
    if (*end || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

bool xf_stop_file_seen(struct xf_stop_file *s, uint64_t now_ns)
{
    if (!s->path || s->seen || (s->looked && now_ns - s->looked_ns < 100000000ull))
        return s->seen;
    s->looked = true;
    s->looked_ns = now_ns;
    s->seen = access(s->path, F_OK) == 0;
    return s->seen;
}
