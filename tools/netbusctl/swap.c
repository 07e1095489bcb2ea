/* netbusctl swap DOMAIN DEVICE TARGET: hot-swap the target of a guest's
 * disk served by this host's netbusd (remote <-> local). netbusctl writes
 * the backend's netbus-swap node and waits for netbusd's answer in
 * netbus-swap-state (done | error, with netbus-swap-error); netbusd opens
 * the new target, checks it matches (size, sector size, writable),
 * quiesces the disk, switches and resumes. */
#include "netbusctl.h"

#include "vdev.h"
#include "xenif.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT 30

static const char usage[] =
    "usage: netbusctl swap DOMAIN DEVICE TARGET [--timeout S]\n"
    "  DOMAIN: domain id or name; DEVICE: xvda, ... or a device number;\n"
    "  TARGET: a file or block device path, or netbus://HOST[:PORT]/EXPORT.\n"
    "  The new target must have the disk's size and sector size. The guest\n"
    "  sees a pause while requests in flight finish on the old target.\n";

static char *rd(struct xenif_xs *xs, const char *dir, const char *key)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_read(xs, 0, path, NULL);
}

static int wr(struct xenif_xs *xs, const char *dir, const char *key,
              const char *v)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_write(xs, 0, path, v, strlen(v));
}

/* netbusd's answer: "done" or "error" (caller frees), NULL on timeout. */
static char *wait_answer(struct xenif_xs *xs, const char *be, unsigned timeout)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/netbus-swap-state", be);
    bool watching = xenif_xs_watch(xs, path, "netbusctl-swap") == 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        char *st = xenif_xs_read(xs, 0, path, NULL);
        if (st && (strcmp(st, "done") == 0 || strcmp(st, "error") == 0))
            return st;
        free(st);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000 +
            (now.tv_nsec - t0.tv_nsec) / 1000000 >= (long)timeout * 1000)
            return NULL;
        struct pollfd pfd = { .fd = watching ? xenif_xs_fd(xs) : -1,
                              .events = POLLIN };
        poll(&pfd, 1, 50);
        char *p, *token;
        while (watching && xenif_xs_next_event(xs, &p, &token) == 1)
            free(p);
    }
}

int cmd_swap(int argc, char **argv)
{
    const char *args[3];
    unsigned nargs = 0, timeout = DEFAULT_TIMEOUT;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            unsigned long t = strtoul(argv[++i], &end, 10);
            if (*end || t == 0 || t > 3600) {
                fprintf(stderr, "netbusctl swap: --timeout %s: want 1..3600 "
                        "seconds\n", argv[i]);
                return 2;
            }
            timeout = (unsigned)t;
        } else if (nargs < 3 && argv[i][0] != '-') {
            args[nargs++] = argv[i];
        } else {
            fprintf(stderr, "netbusctl swap: unexpected '%s'\n%s", argv[i],
                    usage);
            return 2;
        }
    }
    if (nargs != 3) {
        fprintf(stderr, "netbusctl swap: want DOMAIN DEVICE TARGET\n%s", usage);
        return 2;
    }
    long devid = vdev_to_devid(args[1]);
    if (devid < 0) {
        fprintf(stderr, "netbusctl swap: '%s' is not a disk name (xvda, "
                "xvdb, ..., dDpP) or device number\n", args[1]);
        return 2;
    }
    struct xenif_xs *xs = netbusctl_xs_open("swap");
    if (!xs)
        return 1;
    int rc = 1;
    long domid = netbusctl_find_domid(xs, args[0], "swap");
    if (domid < 0)
        goto out;
    char be[160] = "";
    static const char *const types[] = { "vbd", "qdisk" };
    for (unsigned i = 0; i < 2; i++) {
        char path[160];
        snprintf(path, sizeof(path), "/local/domain/%u/backend/%s/%ld/%ld",
                 xenif_xs_own_domid(xs), types[i], domid, devid);
        char *st = rd(xs, path, "state");
        if (st)
            snprintf(be, sizeof(be), "%s", path);
        free(st);
        if (be[0])
            break;
    }
    if (!be[0]) {
        fprintf(stderr, "netbusctl swap: domain %ld has no disk %s served by "
                "this domain (no backend/vbd/%ld/%ld here)\n", domid, args[1],
                domid, devid);
        goto out;
    }
    char *old = rd(xs, be, "params");
    if (wr(xs, be, "netbus-swap-state", "requested") < 0 ||
        wr(xs, be, "netbus-swap", args[2]) < 0) {
        fprintf(stderr, "netbusctl swap: writing %s/netbus-swap: %s\n", be,
                strerror(errno));
        free(old);
        goto out;
    }
    char *st = wait_answer(xs, be, timeout);
    if (!st) {
        fprintf(stderr, "netbusctl swap: no answer from netbusd in %u s (is "
                "it running and serving %s?)\n", timeout, be);
    } else if (strcmp(st, "error") == 0) {
        char *why = rd(xs, be, "netbus-swap-error");
        fprintf(stderr, "netbusctl swap: %s\n", why ? why : "failed");
        free(why);
    } else {
        printf("swapped %s %s: %s -> %s\n", args[0], args[1],
               old ? old : "?", args[2]);
        /* The toolstack's copy of the disk (xensim's /libxl, as libxl
         * keeps it) is what a migration recreates the disk from. */
        char lx[160];
        snprintf(lx, sizeof(lx), "/libxl/%ld/device/vbd/%ld", domid, devid);
        char *lp = rd(xs, lx, "params");
        if (lp && wr(xs, lx, "params", args[2]) < 0)
            fprintf(stderr, "netbusctl swap: note: %s/params still names the "
                    "old target: %s\n", lx, strerror(errno));
        free(lp);
        double sw_ms, pause;
        struct timespec ts = { 0, 20 * 1000000 };
        for (int i = 0; i < 50; i++) { /* the next request, up to 1 s */
            pause = status_last_pause_ms(xs, be, "swap", &sw_ms);
            if (pause >= 0)
                break;
            nanosleep(&ts, NULL);
        }
        if (pause >= 0)
            printf("device paused %.3f ms (quiesce-start to first-request)\n",
                   pause);
        else if (sw_ms >= 0)
            printf("switched in %.3f ms (quiesce-start to attached); no "
                   "request since\n", sw_ms);
        rc = 0;
    }
    free(st);
    free(old);
out:
    xenif_xs_close(xs);
    return rc;
}
