/* netbusctl status: the migration and hot-swap timeline netbusd keeps in
 * this host's xenstore (schema in backend/core/timeline.h). */
#include "netbusctl.h"

#include "xenif.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Events in the order they happen. */
static const char *const events[] = {
    "quiesce-start", "drained", "detached", "attached", "first-request",
};
#define NEVENTS (sizeof(events) / sizeof(events[0]))

struct record {
    unsigned long seq;
    char *kind, *device, *domain, *domid, *detail, *result;
    uint64_t at[NEVENTS]; /* 0: not recorded */
};

static char *rd(struct xenif_xs *xs, const char *base, unsigned long seq,
                const char *key)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%lu/%s", base, seq, key);
    char *v = xenif_xs_read(xs, 0, path, NULL);
    return v ? v : strdup("");
}

static void record_read(struct xenif_xs *xs, const char *base,
                        unsigned long seq, struct record *r)
{
    memset(r, 0, sizeof(*r));
    r->seq = seq;
    r->kind = rd(xs, base, seq, "kind");
    r->device = rd(xs, base, seq, "device");
    r->domain = rd(xs, base, seq, "domain");
    r->domid = rd(xs, base, seq, "domid");
    r->detail = rd(xs, base, seq, "detail");
    r->result = rd(xs, base, seq, "result");
    for (unsigned i = 0; i < NEVENTS; i++) {
        char key[64];
        snprintf(key, sizeof(key), "events/%s", events[i]);
        char *v = rd(xs, base, seq, key);
        r->at[i] = strtoull(v, NULL, 10);
        free(v);
    }
}

static void record_free(struct record *r)
{
    free(r->kind);
    free(r->device);
    free(r->domain);
    free(r->domid);
    free(r->detail);
    free(r->result);
}

static int cmp_ulong(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

/* The record numbers under base, ascending; NULL (n = 0) when none. */
static unsigned long *record_list(struct xenif_xs *xs, const char *base,
                                  unsigned *n)
{
    unsigned count = 0;
    char **names = xenif_xs_directory(xs, 0, base, &count);
    unsigned long *seqs = count ? calloc(count, sizeof(*seqs)) : NULL;
    *n = 0;
    for (unsigned i = 0; seqs && i < count; i++) {
        char *end;
        unsigned long v = strtoul(names[i], &end, 10);
        if (!*end && v)
            seqs[(*n)++] = v;
    }
    free(names);
    if (seqs)
        qsort(seqs, *n, sizeof(*seqs), cmp_ulong);
    return seqs;
}

/* The device's pause: from quiesce-start (or attached) to first-request,
 * in ms; -1 when the record has not got that far. */
static double pause_ms(const struct record *r)
{
    uint64_t from = r->at[0] ? r->at[0] : r->at[3];
    if (!from || !r->at[4] || r->at[4] < from)
        return -1;
    return (double)(r->at[4] - from) / 1000.0;
}

static void print_text(const struct record *r)
{
    printf("#%lu %s %s (domain %s%s%s)%s%s: %s\n", r->seq, r->kind, r->device,
           r->domid, r->domain[0] ? ", " : "", r->domain,
           r->detail[0] ? " " : "", r->detail,
           r->result[0] ? r->result : "in progress");
    uint64_t t0 = 0;
    for (unsigned i = 0; i < NEVENTS; i++) {
        if (!r->at[i])
            continue;
        if (!t0)
            t0 = r->at[i];
        printf("    %-14s +%9.3f ms\n", events[i],
               (double)(r->at[i] - t0) / 1000.0);
    }
    double p = pause_ms(r);
    if (p >= 0 && r->at[0])
        printf("    device paused %.3f ms (quiesce-start to first-request)\n", p);
    else if (p >= 0)
        printf("    first request served %.3f ms after attached\n", p);
}

static void print_json(const struct record *r, bool comma)
{
    char seq[24];
    snprintf(seq, sizeof(seq), "%lu", r->seq);
    printf("%s\n  {\"seq\": %s", comma ? "," : "", seq);
    json_field("kind", r->kind, true);
    json_field("device", r->device, true);
    json_field("domain", r->domain, true);
    printf(", \"domid\": %s", r->domid[0] ? r->domid : "null");
    json_field("detail", r->detail, true);
    json_field("result", r->result, true);
    printf(", \"events\": {");
    bool first = true;
    for (unsigned i = 0; i < NEVENTS; i++)
        if (r->at[i]) {
            printf("%s\"%s\": %" PRIu64, first ? "" : ", ", events[i], r->at[i]);
            first = false;
        }
    printf("}");
    double p = pause_ms(r);
    if (p >= 0)
        printf(", \"pause_ms\": %.3f", p);
    printf("}");
}

static void base_of(struct xenif_xs *xs, char *base, size_t len)
{
    snprintf(base, len, "/local/domain/%u/netbus/timeline",
             xenif_xs_own_domid(xs));
}

double status_last_pause_ms(struct xenif_xs *xs, const char *device,
                            const char *kind, double *switch_ms)
{
    *switch_ms = -1;
    char base[64];
    base_of(xs, base, sizeof(base));
    unsigned n;
    unsigned long *seqs = record_list(xs, base, &n);
    double p = -1;
    for (unsigned i = n; i-- > 0;) {
        struct record r;
        record_read(xs, base, seqs[i], &r);
        bool match = strcmp(r.device, device) == 0 && strcmp(r.kind, kind) == 0;
        if (match) {
            p = pause_ms(&r);
            if (r.at[0] && r.at[3] >= r.at[0])
                *switch_ms = (double)(r.at[3] - r.at[0]) / 1000.0;
        }
        record_free(&r);
        if (match)
            break;
    }
    free(seqs);
    return p;
}

static const char usage[] =
    "usage: netbusctl status [--json] [--last N]\n"
    "  the migration and hot-swap timeline of this host's netbusd: one\n"
    "  record per guest suspend, device connect and swap, with the time of\n"
    "  each step (quiesce-start, drained, detached, attached, first-request)\n";

int cmd_status(int argc, char **argv)
{
    bool json = false;
    unsigned long last = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--last") == 0 && i + 1 < argc &&
                   (last = strtoul(argv[i + 1], &end, 10)) > 0 && !*end) {
            i++;
        } else {
            fprintf(stderr, "netbusctl status: unexpected '%s'\n%s", argv[i],
                    usage);
            return 2;
        }
    }
    struct xenif_xs *xs = netbusctl_xs_open("status");
    if (!xs)
        return 1;
    char base[64];
    base_of(xs, base, sizeof(base));
    unsigned n;
    unsigned long *seqs = record_list(xs, base, &n);
    unsigned from = last && last < n ? n - (unsigned)last : 0;
    if (json)
        printf("{\"timeline\": [");
    else if (n == 0)
        printf("no timeline records (netbusd writes one per suspend, "
               "connect and swap)\n");
    for (unsigned i = from; i < n; i++) {
        struct record r;
        record_read(xs, base, seqs[i], &r);
        if (json)
            print_json(&r, i > from);
        else
            print_text(&r);
        record_free(&r);
    }
    if (json)
        printf("\n]}\n");
    free(seqs);
    xenif_xs_close(xs);
    return 0;
}
