/* timeline: migration and hot-swap records in xenstore (see timeline.h). */
#include "timeline.h"

#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct timeline_op {
    unsigned long seq;
};

static struct {
    struct xenif_xs *xs;
    char base[96];
    unsigned long next;
} tl;

uint64_t timeline_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void put(unsigned long seq, const char *key, const char *value)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%lu/%s", tl.base, seq, key);
    if (xenif_xs_write(tl.xs, 0, path, value, strlen(value)) < 0)
        log_warn(path, "timeline: cannot write: %s", strerror(errno));
}

void timeline_start(struct xenif_xs *xs, const char *base)
{
    tl.xs = xs;
    snprintf(tl.base, sizeof(tl.base), "%s", base);
    tl.next = 1;
    unsigned n = 0;
    char **names = xenif_xs_directory(xs, 0, base, &n);
    for (unsigned i = 0; names && i < n; i++) {
        char *end;
        unsigned long v = strtoul(names[i], &end, 10);
        if (!*end && v >= tl.next)
            tl.next = v + 1;
    }
    free(names);
}

void timeline_stop(void)
{
    tl.xs = NULL;
}

struct timeline_op *timeline_begin(const char *kind, const char *device,
                                   const char *domain_uuid, unsigned domid,
                                   const char *detail)
{
    if (!tl.xs)
        return NULL;
    struct timeline_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->seq = tl.next++;
    char v[16];
    put(op->seq, "kind", kind);
    put(op->seq, "device", device);
    put(op->seq, "domain", domain_uuid ? domain_uuid : "");
    snprintf(v, sizeof(v), "%u", domid);
    put(op->seq, "domid", v);
    put(op->seq, "detail", detail ? detail : "");
    put(op->seq, "result", "");
    if (op->seq > TIMELINE_KEEP) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%lu", tl.base, op->seq - TIMELINE_KEEP);
        xenif_xs_rm(tl.xs, 0, path);
    }
    return op;
}

void timeline_mark_at(struct timeline_op *op, const char *event, uint64_t us)
{
    if (!op || !tl.xs)
        return;
    char key[64], v[24];
    snprintf(key, sizeof(key), "events/%s", event);
    snprintf(v, sizeof(v), "%" PRIu64, us);
    put(op->seq, key, v);
}

void timeline_mark(struct timeline_op *op, const char *event)
{
    timeline_mark_at(op, event, timeline_now_us());
}

void timeline_end(struct timeline_op *op, const char *result)
{
    if (!op)
        return;
    if (tl.xs)
        put(op->seq, "result", result);
    free(op);
}
