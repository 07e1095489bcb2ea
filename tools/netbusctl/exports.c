/* netbusctl export / unexport / list: the export registry in this host's
 * xenstore (/local/domain/SELF/netbus, schema in
 * backend/channel/PROTOCOL.md). netbusctl writes the request nodes and
 * waits for netbusd's answer in `state`. */
#include "netbusctl.h"

#include "backend/channel/frame.h"
#include "xenif.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT 10

struct ctx {
    struct xenif_xs *xs;
    char root[64];      /* /local/domain/SELF/netbus */
    char dir[256];      /* root/exports/NAME */
};

static int ctx_open(struct ctx *c, const char *cmd, const char *name)
{
    c->xs = netbusctl_xs_open(cmd);
    if (!c->xs)
        return -1;
    snprintf(c->root, sizeof(c->root), "/local/domain/%u/netbus",
             xenif_xs_own_domid(c->xs));
    if (name)
        snprintf(c->dir, sizeof(c->dir), "%s/exports/%s", c->root, name);
    return 0;
}

static char *get(struct ctx *c, const char *dir, const char *key)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_read(c->xs, 0, path, NULL);
}

static int put(struct ctx *c, xenif_txn t, const char *key, const char *v)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", c->dir, key);
    return xenif_xs_write(c->xs, t, path, v, strlen(v));
}

static bool name_ok(const char *cmd, const char *name)
{
    if (nb_name_ok(name, strlen(name)))
        return true;
    fprintf(stderr, "netbusctl %s: '%s' is not an export name (1-64 of "
            "A-Z a-z 0-9 . _ -, not starting with . or -)\n", cmd, name);
    return false;
}

/* Waits until state is one of want[] (or the directory is gone when
 * want_gone); returns the state (caller frees; "" if gone) or NULL on
 * timeout. */
static char *wait_state(struct ctx *c, const char *const *want, unsigned n,
                        bool want_gone, unsigned timeout)
{
    char spath[300];
    snprintf(spath, sizeof(spath), "%s/state", c->dir);
    bool watching = xenif_xs_watch(c->xs, spath, "netbusctl") == 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        char *st = xenif_xs_read(c->xs, 0, spath, NULL);
        if (!st && errno == ENOENT && want_gone) {
            char *d = xenif_xs_read(c->xs, 0, c->dir, NULL);
            if (!d && errno == ENOENT)
                return strdup("");
            free(d);
        }
        for (unsigned i = 0; st && i < n; i++)
            if (strcmp(st, want[i]) == 0)
                return st;
        free(st);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 +
                  (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= (long)timeout * 1000)
            return NULL;
        struct pollfd pfd = { .fd = watching ? xenif_xs_fd(c->xs) : -1,
                              .events = POLLIN };
        poll(&pfd, 1, 100);
        char *path, *token;
        while (watching && xenif_xs_next_event(c->xs, &path, &token) == 1)
            free(path);
    }
}

static int parse_timeout(const char *cmd, const char *v, unsigned *out)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || n == 0 || n > 3600) {
        fprintf(stderr, "netbusctl %s: --timeout %s: want 1..3600 seconds\n",
                cmd, v);
        return -1;
    }
    *out = (unsigned)n;
    return 0;
}

static void human(char *buf, size_t len, unsigned long long bytes)
{
    static const char units[] = "BKMGTP";
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f%c" : "%.0f%c", v, units[u]);
}

/* ---- export ---------------------------------------------------------------- */

static const char export_usage[] =
    "usage: netbusctl export NAME PATH [--allow PEER[,PEER...]] [--readonly]\n"
    "                        [--timeout SEC]\n"
    "       netbusctl export NAME usb:DEVICE [--allow PEER[,PEER...]]\n"
    "                        [--timeout SEC]\n"
    "  Publish the disk image or block device PATH under NAME: netbusd opens\n"
    "  it and keeps it open; guests anywhere use it as\n"
    "  netbus://THIS-HOST[:PORT]/NAME. With usb:DEVICE netbusd claims the USB\n"
    "  device (BUS-PORT[.PORT...] or VVVV:PPPP[:SERIAL], as lsusb shows it)\n"
    "  and holds it until unexport; a PV USB port (port/N) of a guest\n"
    "  anywhere uses it by the same URL. --allow limits it to the named peers\n"
    "  (their netbus names); by default every authenticated peer may use it.\n";

#define USB_PREFIX "usb:"

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        { "allow", required_argument, NULL, 'a' },
        { "readonly", no_argument, NULL, 'r' },
        { "timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *allow = "";
    bool ro = false;
    unsigned timeout = DEFAULT_TIMEOUT;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'a': allow = optarg; break;
        case 'r': ro = true; break;
        case 'T':
            if (parse_timeout("export", optarg, &timeout) < 0)
                return 2;
            break;
        case 'h': fputs(export_usage, stdout); return 0;
        default: fputs(export_usage, stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "netbusctl export: expected NAME PATH\n%s",
                export_usage);
        return 2;
    }
    const char *name = argv[optind], *path = argv[optind + 1];
    if (!name_ok("export", name))
        return 2;
    for (const char *p = allow; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!nb_name_ok(p, len)) {
            fprintf(stderr, "netbusctl export: --allow '%s': want peer names "
                    "separated by commas (1-64 of A-Z a-z 0-9 . _ -)\n",
                    allow);
            return 2;
        }
        p += len + (comma ? 1 : 0);
    }
    bool usb = strncmp(path, USB_PREFIX, strlen(USB_PREFIX)) == 0;
    char abs[PATH_MAX];
    if (usb) {
        const char *dev = path + strlen(USB_PREFIX);
        if (ro || !*dev || strlen(dev) >= sizeof(abs)) {
            fprintf(stderr, "netbusctl export: %s: %s\n", path, ro
                    ? "--readonly does not apply to a USB device"
                    : "want usb:BUS-PORT[.PORT...] or usb:VVVV:PPPP[:SERIAL]");
            return 2;
        }
        snprintf(abs, sizeof(abs), "%s", dev);
    } else if (!realpath(path, abs)) {
        fprintf(stderr, "netbusctl export: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct ctx c;
    if (ctx_open(&c, "export", name) < 0)
        return 1;
    int rc = 1;
    char *old = get(&c, c.dir, "state");
    if (old && strcmp(old, "error") != 0) {
        char *params = get(&c, c.dir, "params");
        fprintf(stderr, "netbusctl export: '%s' is exported already (%s, "
                "state %s); unexport it first\n", name,
                params ? params : "?", old);
        free(params);
        free(old);
        goto out;
    }
    free(old);
    for (int attempt = 0; attempt < 20; attempt++) {
        xenif_txn t = xenif_xs_transaction_start(c.xs);
        if (!t) {
            fprintf(stderr, "netbusctl export: xenstore transaction: %s\n",
                    strerror(errno));
            goto out;
        }
        char epath[300];
        snprintf(epath, sizeof(epath), "%s/error", c.dir);
        xenif_xs_rm(c.xs, t, epath);
        if (put(&c, t, "params", abs) < 0 ||
            put(&c, t, "kind", usb ? "usb" : "vbd") < 0 ||
            put(&c, t, "readonly", ro ? "1" : "0") < 0 ||
            put(&c, t, "allowed-peers", allow) < 0 ||
            put(&c, t, "state", "requested") < 0) {
            fprintf(stderr, "netbusctl export: writing %s: %s\n", c.dir,
                    strerror(errno));
            xenif_xs_transaction_end(c.xs, t, true);
            goto out;
        }
        if (xenif_xs_transaction_end(c.xs, t, false) == 0)
            break;
        if (errno != EAGAIN) {
            fprintf(stderr, "netbusctl export: committing: %s\n",
                    strerror(errno));
            goto out;
        }
    }
    static const char *const done[] = { "ready", "error" };
    char *st = wait_state(&c, done, 2, false, timeout);
    if (!st) {
        fprintf(stderr, "netbusctl export: netbusd did not answer within %u "
                "s: is it running on this host? The request stays in "
                "xenstore (%s) and netbusd takes it up when it starts.\n",
                timeout, c.dir);
        goto out;
    }
    if (strcmp(st, "error") == 0) {
        char *err = get(&c, c.dir, "error");
        fprintf(stderr, "netbusctl export: %s: %s\n", name,
                err ? err : "netbusd gave no reason");
        free(err);
        xenif_xs_rm(c.xs, 0, c.dir);
    } else if (usb) {
        char *speed = get(&c, c.dir, "speed"), *owner = get(&c, c.dir, "owner");
        char *vp = get(&c, c.dir, "vendor-product");
        printf("exported %s: USB device %s (%s%s%s speed) as netbus://%s/%s, "
               "for %s\n", name, abs, vp ? vp : "", vp ? ", " : "",
               speed ? speed : "?", owner ? owner : "?", name,
               allow[0] ? allow : "every authenticated peer");
        free(speed);
        free(owner);
        free(vp);
        rc = 0;
    } else {
        char *size = get(&c, c.dir, "size"), *owner = get(&c, c.dir, "owner");
        char hs[32];
        human(hs, sizeof(hs), size ? strtoull(size, NULL, 10) : 0);
        printf("exported %s: %s (%s, %s) as netbus://%s/%s, for %s\n", name,
               abs, hs, ro ? "read-only" : "read-write", owner ? owner : "?",
               name, allow[0] ? allow : "every authenticated peer");
        free(size);
        free(owner);
        rc = 0;
    }
    free(st);
out:
    xenif_xs_close(c.xs);
    return rc;
}

/* ---- unexport ---------------------------------------------------------------- */

static const char unexport_usage[] =
    "usage: netbusctl unexport NAME [--force] [--timeout SEC]\n"
    "  Stop publishing NAME and close the device (a USB device is released).\n"
    "  Refused while sessions (guests using it, here or elsewhere) exist,\n"
    "  unless --force, which ends them: their disks (or USB devices) fail\n"
    "  from then on.\n";

int cmd_unexport(int argc, char **argv)
{
    static const struct option opts[] = {
        { "force", no_argument, NULL, 'f' },
        { "timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool force = false;
    unsigned timeout = DEFAULT_TIMEOUT;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'f': force = true; break;
        case 'T':
            if (parse_timeout("unexport", optarg, &timeout) < 0)
                return 2;
            break;
        case 'h': fputs(unexport_usage, stdout); return 0;
        default: fputs(unexport_usage, stderr); return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "netbusctl unexport: expected NAME\n%s",
                unexport_usage);
        return 2;
    }
    const char *name = argv[optind];
    if (!name_ok("unexport", name))
        return 2;
    struct ctx c;
    if (ctx_open(&c, "unexport", name) < 0)
        return 1;
    int rc = 1;
    char *st = get(&c, c.dir, "state");
    if (!st) {
        fprintf(stderr, "netbusctl unexport: no export named '%s' (see "
                "`netbusctl list`)\n", name);
        goto out;
    }
    if (strcmp(st, "ready") != 0) {
        /* Never opened (error, or netbusd not running): just remove it. */
        xenif_xs_rm(c.xs, 0, c.dir);
        printf("removed %s (it was %s)\n", name, st);
        free(st);
        rc = 0;
        goto out;
    }
    free(st);
    char sdir[300];
    snprintf(sdir, sizeof(sdir), "%s/sessions", c.dir);
    unsigned n = 0;
    char **ids = xenif_xs_directory(c.xs, 0, sdir, &n);
    if (ids && n && !force) {
        fprintf(stderr, "netbusctl unexport: '%s' has %u session(s):\n",
                name, n);
        for (unsigned i = 0; i < n; i++) {
            char d[400];
            snprintf(d, sizeof(d), "%s/%s", sdir, ids[i]);
            char *peer = get(&c, d, "peer"), *owner = get(&c, d, "owner");
            fprintf(stderr, "  session %s: %s (%s)\n", ids[i],
                    peer ? peer : "?", owner ? owner : "?");
            free(peer);
            free(owner);
        }
        fprintf(stderr, "detach those disks (or USB devices) first, or "
                "--force to end the sessions (their devices fail)\n");
        free(ids);
        goto out;
    }
    free(ids);
    if (put(&c, 0, "state", force ? "remove-force" : "remove") < 0) {
        fprintf(stderr, "netbusctl unexport: writing %s/state: %s\n", c.dir,
                strerror(errno));
        goto out;
    }
    /* netbusd removes the directory, or refuses (state back to ready). */
    static const char *const back[] = { "ready" };
    char *res = wait_state(&c, back, 1, true, timeout);
    if (!res) {
        fprintf(stderr, "netbusctl unexport: netbusd did not answer within "
                "%u s: is it running on this host?\n", timeout);
    } else if (res[0]) {
        char *err = get(&c, c.dir, "error");
        fprintf(stderr, "netbusctl unexport: netbusd refused: %s\n",
                err ? err : "no reason given");
        free(err);
    } else {
        printf("unexported %s\n", name);
        rc = 0;
    }
    free(res);
out:
    xenif_xs_close(c.xs);
    return rc;
}

/* ---- list ---------------------------------------------------------------------- */

static const char list_usage[] =
    "usage: netbusctl list [--json]\n"
    "  The exports of this host: name, state, size, mode, allowed peers,\n"
    "  path, and each session (who uses it).\n";

int cmd_list(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(list_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "netbusctl list: unexpected '%s'\n%s", argv[i],
                    list_usage);
            return 2;
        }
    }
    struct ctx c;
    if (ctx_open(&c, "list", NULL) < 0)
        return 1;
    char *node = get(&c, c.root, "node"), *listen = get(&c, c.root, "listen");
    char edir[128];
    snprintf(edir, sizeof(edir), "%s/exports", c.root);
    unsigned n = 0;
    char **names = xenif_xs_directory(c.xs, 0, edir, &n);
    if (!names)
        n = 0;
    if (json) {
        printf("{");
        json_field("node", node, false);
        json_field("listen", listen, true);
        printf(", \"exports\": [");
    } else {
        printf("node %s, %s\n", node ? node : "(netbusd never ran here)",
               listen && listen[0] ? listen : "not listening");
        printf("%-16s %-9s %-4s %8s %-4s %-16s %s\n", "NAME", "STATE", "KIND",
               "SIZE", "MODE", "PEERS", "PATH");
    }
    for (unsigned i = 0; i < n; i++) {
        char d[300];
        snprintf(d, sizeof(d), "%s/%s", edir, names[i]);
        static const char *const keys[] = { "state", "kind", "size",
                                            "readonly", "allowed-peers",
                                            "params", "owner", "error",
                                            "sector-size", "speed",
                                            "vendor-product" };
        enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
        char *v[NKEYS];
        for (int k = 0; k < NKEYS; k++)
            v[k] = get(&c, d, keys[k]);
        bool usb = v[1] && strcmp(v[1], "usb") == 0;
        char sdir[400];
        snprintf(sdir, sizeof(sdir), "%s/sessions", d);
        unsigned ns = 0;
        char **ids = xenif_xs_directory(c.xs, 0, sdir, &ns);
        if (!ids)
            ns = 0;
        bool ro = v[3] && strcmp(v[3], "1") == 0;
        if (json) {
            printf("%s{", i ? ", " : "");
            json_field("name", names[i], false);
            json_field("state", v[0], true);
            json_field("kind", v[1], true);
            printf(", \"size\": %llu", v[2] ? strtoull(v[2], NULL, 10) : 0);
            printf(", \"sector_size\": %lu",
                   v[8] ? strtoul(v[8], NULL, 10) : 0);
            printf(", \"readonly\": %s", ro ? "true" : "false");
            json_field("allowed_peers", v[4], true);
            json_field("params", v[5], true);
            json_field("owner", v[6], true);
            json_field("error", v[7], true);
            if (usb) {
                json_field("speed", v[9], true);
                json_field("vendor_product", v[10], true);
            }
            printf(", \"sessions\": [");
        } else {
            char hs[32];
            if (usb) /* SIZE shows the device's speed */
                snprintf(hs, sizeof(hs), "%s", v[9] ? v[9] : "?");
            else
                human(hs, sizeof(hs), v[2] ? strtoull(v[2], NULL, 10) : 0);
            printf("%-16s %-9s %-4s %8s %-4s %-16s %s%s%s%s\n", names[i],
                   v[0] ? v[0] : "?", v[1] ? v[1] : "vbd", hs,
                   usb ? "-" : ro ? "r" : "w", v[4] && v[4][0] ? v[4] : "*",
                   usb ? USB_PREFIX : "", v[5] ? v[5] : "?",
                   usb && v[10] ? " " : "", usb && v[10] ? v[10] : "");
            if (v[7] && v[7][0])
                printf("  error: %s\n", v[7]);
        }
        for (unsigned j = 0; j < ns; j++) {
            char sd[500];
            snprintf(sd, sizeof(sd), "%s/%s", sdir, ids[j]);
            char *peer = get(&c, sd, "peer"), *owner = get(&c, sd, "owner"),
                 *opened = get(&c, sd, "opened");
            if (json) {
                printf("%s{\"id\": %lu", j ? ", " : "",
                       strtoul(ids[j], NULL, 10));
                json_field("peer", peer, true);
                json_field("owner", owner, true);
                printf(", \"opened\": %lld}",
                       opened ? strtoll(opened, NULL, 10) : 0);
            } else {
                printf("  session %s: peer %s, owner %s\n", ids[j],
                       peer ? peer : "?", owner ? owner : "?");
            }
            free(peer);
            free(owner);
            free(opened);
        }
        if (json)
            printf("]}");
        free(ids);
        for (int k = 0; k < NKEYS; k++)
            free(v[k]);
    }
    if (json)
        printf("]}\n");
    free(names);
    free(node);
    free(listen);
    xenif_xs_close(c.xs);
    return 0;
}
