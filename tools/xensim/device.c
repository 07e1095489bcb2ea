/* Toolstack disk commands, as libxl does them (tools/libs/light/
 * libxl_device.c, libxl_disk.c):
 *
 *   block-attach: one xenstore transaction writes the backend directory
 *     /local/domain/BE/backend/TYPE/DOMID/DEVID (owner BE, the guest may
 *     read), the frontend directory /local/domain/DOMID/device/vbd/DEVID
 *     (owner the guest, the backend may read) and libxl's trusted copy
 *     /libxl/DOMID/device/vbd/DEVID; then waits for the backend to reach
 *     InitWait (libxl__wait_device_connection), removing the device again if
 *     it does not;
 *   block-detach: online=0 and state=Closing on the backend in one
 *     transaction (libxl__initiate_device_generic_remove), waits for Closed,
 *     then removes the three directories (libxl__device_destroy); after the
 *     timeout it removes them anyway, as libxl's forced remove does;
 *   block-list: one line per disk of a domain.
 *
 * The CLI is a dom0 process: it talks to the host's xenstored through xenif. */
#include "cli.h"
#include "device.h"
#include "vdev.h"
#include "host.h"
#include "xenif.h"
#include "xensim_client.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ST_INITIALISING 1
#define ST_INITWAIT 2
#define ST_CONNECTED 4
#define ST_CLOSING 5
#define ST_CLOSED 6

/* A running domain by id or name; -1 after printing. */
static long find_domain(struct xensim_cli_ctx *c, const char *arg, const char *role)
{
    unsigned long id;
    struct xensim_dom_info info;
    if (xensim_cli_number(arg, XENSIM_DOMID_MAX, &id) == 0) {
        if (xensim_domain_info(c->sock, (unsigned)id, &info) == 0 && info.domid == id)
            return (long)id;
    } else {
        for (unsigned next = 0; xensim_domain_info(c->sock, next, &info) == 0;
             next = info.domid + 1)
            if (strcmp(info.name, arg) == 0)
                return info.domid;
    }
    fprintf(stderr, "xensim %s: no %s domain with id or name '%s' (see `xensim "
            "list`)\n", c->cmd, role, arg);
    return -1;
}

/* ---- xenstore helpers ---------------------------------------------------- */

static int xs_put(struct xenif_xs *xs, xenif_txn t, const char *dir,
                  const char *key, const char *val)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_write(xs, t, path, val, strlen(val));
}

static long read_state(struct xenif_xs *xs, const char *dir)
{
    char path[512];
    unsigned long v;
    snprintf(path, sizeof(path), "%s/state", dir);
    return xenif_xs_read_uint(xs, 0, path, &v) == 0 ? (long)v : -1;
}

static bool exists(struct xenif_xs *xs, xenif_txn t, const char *path)
{
    char *v = xenif_xs_read(xs, t, path, NULL);
    free(v);
    return v != NULL;
}

/* Removes dir's parent, then grandparent, while they are empty and longer
 * than stop (libxl__xs_path_cleanup, bounded). */
static void rm_empty_parents(struct xenif_xs *xs, xenif_txn t, const char *dir,
                             size_t stop)
{
    char p[512];
    snprintf(p, sizeof(p), "%s", dir);
    for (;;) {
        char *slash = strrchr(p, '/');
        if (!slash || (size_t)(slash - p) <= stop)
            return;
        *slash = 0;
        unsigned n = 1;
        char **kids = xenif_xs_directory(xs, t, p, &n);
        free(kids);
        if (!kids || n != 0)
            return;
        xenif_xs_rm(xs, t, p);
    }
}

long device_wait_state(struct xenif_xs *xs, const char *dir, bool (*ok)(long),
                       unsigned timeout_s, bool *met)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/state", dir);
    xenif_xs_watch(xs, path, "st");
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long s;
    *met = false;
    for (;;) {
        char *p, *tok;
        while (xenif_xs_next_event(xs, &p, &tok) == 1)
            free(p);
        s = read_state(xs, dir);
        if (ok(s)) {
            *met = true;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
        if (el >= timeout_s)
            break;
        struct pollfd pf = { .fd = xenif_xs_fd(xs), .events = POLLIN };
        poll(&pf, 1, 100);
    }
    xenif_xs_unwatch(xs, path, "st");
    return s;
}

bool device_state_ready(long s) { return s >= ST_INITWAIT && s <= ST_CONNECTED; }
bool device_state_ready_or_failed(long s)
{
    return device_state_ready(s) || s >= ST_CLOSING || s < 0;
}
bool device_state_closed(long s) { return s == ST_CLOSED || s < 0; }

const char *device_state_name(long s)
{
    static const char *names[] = { "Unknown", "Initialising", "InitWait",
                                   "Initialised", "Connected", "Closing",
                                   "Closed", "Reconfiguring", "Reconfigured" };
    return s < 0 ? "gone" : s < 9 ? names[s] : "invalid";
}

/* The backend's error node, as Linux's xenbus_dev_fatal and netbusd write
 * it: /local/domain/BE/error/BACKEND-PATH/error. Caller frees. */
static char *backend_error(struct xenif_xs *xs, unsigned be, const char *be_dir)
{
    char path[700];
    snprintf(path, sizeof(path), "/local/domain/%u/error%s/error", be, be_dir);
    return xenif_xs_read(xs, 0, path, NULL);
}

int device_wait_ready(struct xenif_xs *xs, unsigned be, const char *be_dir,
                      const char *what, const char *type, unsigned timeout_s,
                      char *err, size_t errlen)
{
    bool met;
    long s = device_wait_state(xs, be_dir, device_state_ready_or_failed, timeout_s,
                               &met);
    if (met && device_state_ready(s))
        return 0;
    char *why = backend_error(xs, be, be_dir);
    if (met)
        snprintf(err, errlen, "the backend refused %s: %s (state %s)", what,
                 why ? why : "no reason given", device_state_name(s));
    else
        snprintf(err, errlen, "no backend took %s within %us (backend state %s; "
                 "is netbusd running for domain %u and serving %s?)", what,
                 timeout_s, device_state_name(s), be, type);
    free(why);
    errno = ETIMEDOUT;
    return -1;
}

void device_ask_close(struct xenif_xs *xs, const char *be_dir)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        xenif_txn t = xenif_xs_transaction_start(xs);
        if (!t)
            return;
        char path[600];
        snprintf(path, sizeof(path), "%s/state", be_dir);
        if (exists(xs, t, path)) {
            xs_put(xs, t, be_dir, "online", "0");
            xs_put(xs, t, be_dir, "state", "5");
        }
        if (xenif_xs_transaction_end(xs, t, false) == 0 || errno != EAGAIN)
            return;
    }
}

int device_remove_nodes(struct xenif_xs *xs, unsigned be, unsigned domid,
                        const char *be_dir, const char *fe_dir, const char *libxl_dir)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        xenif_txn t = xenif_xs_transaction_start(xs);
        if (!t)
            return -1;
        xenif_xs_rm(xs, t, fe_dir);
        xenif_xs_rm(xs, t, be_dir);
        xenif_xs_rm(xs, t, libxl_dir);
        char stop[128];
        rm_empty_parents(xs, t, be_dir,
                         (size_t)snprintf(stop, sizeof(stop), "/local/domain/%u/backend", be));
        rm_empty_parents(xs, t, fe_dir,
                         (size_t)snprintf(stop, sizeof(stop), "/local/domain/%u/device", domid));
        rm_empty_parents(xs, t, libxl_dir, strlen("/libxl"));
        if (xenif_xs_transaction_end(xs, t, false) == 0)
            return 0;
        if (errno != EAGAIN)
            return -1;
    }
    errno = EAGAIN;
    return -1;
}

static void device_paths(struct device_dirs *p, unsigned be, const char *type,
                         unsigned domid, unsigned long devid)
{
    snprintf(p->be, sizeof(p->be), "/local/domain/%u/backend/%s/%u/%lu", be, type,
             domid, devid);
    snprintf(p->fe, sizeof(p->fe), "/local/domain/%u/device/vbd/%lu", domid, devid);
    snprintf(p->libxl, sizeof(p->libxl), "/libxl/%u/device/vbd/%lu", domid, devid);
}

int device_generic_add(struct xenif_xs *xs, unsigned be, unsigned domid,
                       const struct device_dirs *d, const char *what,
                       const char *(*fents)[2], size_t nfents,
                       const char *(*bents)[2], size_t nbents,
                       char *err, size_t errlen)
{
    struct xenif_xs_perm fe_perms[2] = { { (xenif_domid)domid, XENIF_XS_PERM_NONE },
                                         { (xenif_domid)be, XENIF_XS_PERM_READ } };
    struct xenif_xs_perm be_perms[2] = { { (xenif_domid)be, XENIF_XS_PERM_NONE },
                                         { (xenif_domid)domid, XENIF_XS_PERM_READ } };
    for (int attempt = 0; attempt < 50; attempt++) {
        xenif_txn t = xenif_xs_transaction_start(xs);
        if (!t) {
            snprintf(err, errlen, "xenstore transaction: %s", strerror(errno));
            return -1;
        }
        char path[600];
        snprintf(path, sizeof(path), "%s/backend", d->fe);
        if (exists(xs, t, path) || exists(xs, t, d->libxl)) {
            xenif_xs_transaction_end(xs, t, true);
            snprintf(err, errlen, "domain %u already has %s", domid, what);
            errno = EEXIST;
            return -1;
        }
        int e = 0;
        e |= xs_put(xs, t, d->libxl, "frontend", d->fe) < 0;
        e |= xs_put(xs, t, d->libxl, "backend", d->be) < 0;
        /* frontend directory: each node gets the guest's permissions too */
        xenif_xs_rm(xs, t, d->fe);
        e |= xenif_xs_mkdir(xs, t, d->fe) < 0;
        e |= xenif_xs_set_perms(xs, t, d->fe, fe_perms, 2) < 0;
        for (size_t i = 0; i < nfents; i++) {
            snprintf(path, sizeof(path), "%s/%s", d->fe, fents[i][0]);
            e |= xenif_xs_write(xs, t, path, fents[i][1], strlen(fents[i][1])) < 0;
            e |= xenif_xs_set_perms(xs, t, path, fe_perms, 2) < 0;
        }
        /* backend directory */
        xenif_xs_rm(xs, t, d->be);
        e |= xenif_xs_mkdir(xs, t, d->be) < 0;
        e |= xenif_xs_set_perms(xs, t, d->be, be_perms, 2) < 0;
        e |= xs_put(xs, t, d->be, "frontend", d->fe) < 0;
        for (size_t i = 0; i < nbents; i++) {
            e |= xs_put(xs, t, d->be, bents[i][0], bents[i][1]) < 0;
            e |= xs_put(xs, t, d->libxl, bents[i][0], bents[i][1]) < 0;
        }
        if (e) {
            int saved = errno;
            xenif_xs_transaction_end(xs, t, true);
            snprintf(err, errlen, "writing the device nodes: %s", strerror(saved));
            errno = saved;
            return -1;
        }
        if (xenif_xs_transaction_end(xs, t, false) == 0)
            return 0;
        if (errno != EAGAIN) {
            snprintf(err, errlen, "committing: %s", strerror(errno));
            return -1;
        }
    }
    snprintf(err, errlen, "the transaction kept conflicting");
    errno = EAGAIN;
    return -1;
}

/* The frontend keys libxl writes for a vbd besides the backend keys. */
int device_vbd_write(struct xenif_xs *xs, unsigned be, const char *type,
                     unsigned domid, unsigned long devid,
                     const char *(*bents)[2], size_t nbents,
                     char *err, size_t errlen)
{
    struct device_dirs p;
    device_paths(&p, be, type, domid, devid);
    char be_num[24], devid_s[24], what[32];
    snprintf(be_num, sizeof(be_num), "%u", be);
    snprintf(devid_s, sizeof(devid_s), "%lu", devid);
    snprintf(what, sizeof(what), "vbd %lu", devid);
    const char *devtype = "disk";
    for (size_t i = 0; i < nbents; i++)
        if (strcmp(bents[i][0], "device-type") == 0)
            devtype = bents[i][1];
    const char *fents[][2] = {
        { "backend", p.be }, { "backend-id", be_num }, { "state", "1" },
        { "virtual-device", devid_s }, { "device-type", devtype },
    };
    return device_generic_add(xs, be, domid, &p, what, fents,
                              sizeof(fents) / sizeof(fents[0]), bents, nbents, err,
                              errlen);
}

int device_vbd_wait_ready(struct xenif_xs *xs, unsigned be, const char *type,
                          unsigned domid, unsigned long devid, unsigned timeout_s,
                          char *err, size_t errlen)
{
    struct device_dirs p;
    device_paths(&p, be, type, domid, devid);
    char what[32];
    snprintf(what, sizeof(what), "vbd %lu", devid);
    return device_wait_ready(xs, be, p.be, what, type, timeout_s, err, errlen);
}

int device_vbd_remove(struct xenif_xs *xs, unsigned be, const char *type,
                      unsigned domid, unsigned long devid, unsigned timeout_s,
                      bool ask)
{
    struct device_dirs p;
    device_paths(&p, be, type, domid, devid);
    if (timeout_s) {
        if (ask)
            device_ask_close(xs, p.be);
        bool met;
        device_wait_state(xs, p.be, device_state_closed, timeout_s, &met);
    }
    return device_remove_nodes(xs, be, domid, p.be, p.fe, p.libxl);
}

int device_cli_wait_ready_or_remove(struct xenif_xs *xs, const char *cmd,
                                    unsigned be, unsigned domid,
                                    const struct device_dirs *d, const char *what,
                                    const char *type, unsigned timeout_s)
{
    char why[700];
    if (device_wait_ready(xs, be, d->be, what, type, timeout_s, why, sizeof(why)) == 0)
        return 0;
    fprintf(stderr, "xensim %s: %s\n", cmd, why);
    if (device_remove_nodes(xs, be, domid, d->be, d->fe, d->libxl) < 0)
        fprintf(stderr, "xensim %s: removing the device again: %s\n", cmd,
                strerror(errno));
    return -1;
}

int device_cli_detach(struct xenif_xs *xs, const char *cmd, unsigned be,
                      unsigned domid, const struct device_dirs *d,
                      const char *what, unsigned timeout_s)
{
    device_ask_close(xs, d->be);
    bool met;
    long s = device_wait_state(xs, d->be, device_state_closed, timeout_s, &met);
    if (!met)
        fprintf(stderr, "xensim %s: the backend of %s did not close within %us "
                "(state %s, frontend %s); removing it anyway\n", cmd, what,
                timeout_s, device_state_name(s),
                device_state_name(read_state(xs, d->fe)));
    if (device_remove_nodes(xs, be, domid, d->be, d->fe, d->libxl) < 0) {
        fprintf(stderr, "xensim %s: removing the nodes: %s\n", cmd, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- block-attach ------------------------------------------------------- */

static const char attach_usage[] =
    "usage: xensim block-attach [--dir DIR] DOMAIN TARGET VDEV [--mode r|w]\n"
    "                           [--type vbd|qdisk] [--backend DOMAIN]\n"
    "                           [--no-wait] [--timeout SEC]\n"
    "  TARGET: the disk image or device (made absolute), or a device URL\n"
    "  netbus://HOST[:PORT]/EXPORT given to the backend as it is; VDEV: xvda,\n"
    "  xvdb, ...,\n"
    "  dDpP or a device number (xvda = 51712). Waits (default 10 s) for the\n"
    "  backend to reach InitWait unless --no-wait.\n";

int xensim_cmd_block_attach(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "mode", required_argument, NULL, 'm' },
        { "type", required_argument, NULL, 't' },
        { "backend", required_argument, NULL, 'b' },
        { "no-wait", no_argument, NULL, 'W' },
        { "timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *dir = getenv("XENSIM_DIR"), *mode = "w", *type = "vbd";
    const char *backend = "0";
    bool wait = true;
    unsigned long timeout = 10;
    int o;
    while ((o = getopt_long(argc, argv, "d:m:t:b:", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'm': mode = optarg; break;
        case 't': type = optarg; break;
        case 'b': backend = optarg; break;
        case 'W': wait = false; break;
        case 'T':
            if (xensim_cli_timeout("block-attach", optarg, &timeout) < 0)
                return 2;
            break;
        case 'h': fputs(attach_usage, stdout); return 0;
        default: fputs(attach_usage, stderr); return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, "xensim block-attach: expected DOMAIN TARGET VDEV\n%s",
                attach_usage);
        return 2;
    }
    const char *dom_arg = argv[optind], *target = argv[optind + 1],
               *vdev = argv[optind + 2];
    bool writable;
    if (strcmp(mode, "w") == 0 || strcmp(mode, "rw") == 0)
        writable = true;
    else if (strcmp(mode, "r") == 0 || strcmp(mode, "ro") == 0)
        writable = false;
    else {
        fprintf(stderr, "xensim block-attach: --mode %s: expected r or w\n", mode);
        return 2;
    }
    if (strcmp(type, "vbd") != 0 && strcmp(type, "qdisk") != 0) {
        fprintf(stderr, "xensim block-attach: --type %s: expected vbd or qdisk\n", type);
        return 2;
    }
    long devid = vdev_to_devid(vdev);
    if (devid < 0) {
        fprintf(stderr, "xensim block-attach: '%s' is not a virtual device name "
                "(xvda, xvdb, ..., dDpP or a number such as 51712)\n", vdev);
        return 2;
    }
    char abs_target[PATH_MAX];
    bool url = strncmp(target, "netbus://", 9) == 0;
    if (url && strlen(target) < sizeof(abs_target)) {
        /* A device URL goes to the backend as it is. */
        snprintf(abs_target, sizeof(abs_target), "%s", target);
    } else if (!realpath(target, abs_target)) {
        fprintf(stderr, "xensim block-attach: %s: %s\n", target, strerror(errno));
        return 1;
    }
    for (const char *ch = abs_target; *ch; ch++)
        if ((unsigned char)*ch < 0x20 || *ch == 0x7f) {
            fprintf(stderr, "xensim block-attach: the target path has control "
                    "characters\n");
            return 2;
        }

    struct xensim_cli_ctx c;
    if (xensim_cli_ctx_open(&c, "block-attach", dir) < 0)
        return 1;
    int rc = 1;
    long domid = find_domain(&c, dom_arg, "guest");
    long be = domid < 0 ? -1 : find_domain(&c, backend, "backend");
    if (domid < 0 || be < 0)
        goto out;
    struct device_dirs p;
    device_paths(&p, (unsigned)be, type, (unsigned)domid, (unsigned long)devid);

    char params[PATH_MAX + 8], num[32];
    /* libxl: phy gets the path, qdisk FORMAT:PATH ("aio" for raw). */
    snprintf(params, sizeof(params), "%s%s",
             strcmp(type, "qdisk") == 0 && !url ? "aio:" : "", abs_target);
    const char *bents[][2] = {
        { "frontend-id", NULL }, { "online", "1" }, { "removable", "0" },
        { "bootable", "1" }, { "state", "1" }, { "dev", vdev },
        { "type", strcmp(type, "qdisk") == 0 ? "qdisk" : "phy" },
        { "mode", writable ? "w" : "r" }, { "device-type", "disk" },
        { "discard-enable", "1" }, { "params", params },
    };
    snprintf(num, sizeof(num), "%ld", domid);
    bents[0][1] = num;
    char err[300];
    int w = device_vbd_write(c.xs, (unsigned)be, type, (unsigned)domid,
                             (unsigned long)devid, bents,
                             sizeof(bents) / sizeof(bents[0]), err, sizeof(err));
    if (w < 0) {
        if (errno == EEXIST)
            fprintf(stderr, "xensim block-attach: domain %ld already has vbd %s "
                    "(%ld); detach it first\n", domid, vdev, devid);
        else
            fprintf(stderr, "xensim block-attach: %s\n", err);
        goto out;
    }
    if (!wait) {
        rc = 0;
        goto out;
    }
    if (device_cli_wait_ready_or_remove(c.xs, c.cmd, (unsigned)be, (unsigned)domid, &p,
                                        vdev, type, (unsigned)timeout) == 0)
        rc = 0;
out:
    xensim_cli_ctx_close(&c);
    return rc;
}

/* ---- block-detach ------------------------------------------------------- */

static const char detach_usage[] =
    "usage: xensim block-detach [--dir DIR] DOMAIN VDEV [--timeout SEC]\n"
    "  asks the backend to close (online=0, state=Closing), waits for Closed\n"
    "  (default 10 s; then removes anyway, as libxl does), removes the nodes\n";

/* Where the device's backend is: libxl's trusted copy, else the frontend's
 * backend node. Fills p and *be, *type. */
static int locate_device(struct xensim_cli_ctx *c, unsigned domid, unsigned long devid,
                         struct device_dirs *p, unsigned *be)
{
    device_paths(p, 0, "vbd", domid, devid);
    char path[600];
    snprintf(path, sizeof(path), "%s/backend", p->libxl);
    char *bp = xenif_xs_read(c->xs, 0, path, NULL);
    if (!bp) {
        snprintf(path, sizeof(path), "%s/backend", p->fe);
        bp = xenif_xs_read(c->xs, 0, path, NULL);
    }
    if (!bp)
        return -1;
    unsigned b, d;
    unsigned long id;
    char type[32];
    int n = -1;
    if (strlen(bp) >= sizeof(p->be) ||
        sscanf(bp, "/local/domain/%u/backend/%31[^/]/%u/%lu%n", &b, type, &d, &id,
               &n) != 4 || n != (int)strlen(bp) || d != domid || id != devid) {
        fprintf(stderr, "xensim %s: the device's backend path '%s' is not "
                "/local/domain/BE/backend/TYPE/%u/%lu; using it anyway\n", c->cmd,
                bp, domid, devid);
        b = 0;
    }
    snprintf(p->be, sizeof(p->be), "%s", bp);
    free(bp);
    *be = b;
    return 0;
}

int xensim_cmd_block_detach(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *dir = getenv("XENSIM_DIR");
    unsigned long timeout = 10;
    int o;
    while ((o = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'T':
            if (xensim_cli_timeout("block-detach", optarg, &timeout) < 0)
                return 2;
            break;
        case 'h': fputs(detach_usage, stdout); return 0;
        default: fputs(detach_usage, stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "xensim block-detach: expected DOMAIN VDEV\n%s", detach_usage);
        return 2;
    }
    const char *vdev = argv[optind + 1];
    long devid = vdev_to_devid(vdev);
    if (devid < 0) {
        fprintf(stderr, "xensim block-detach: '%s' is not a virtual device name\n",
                vdev);
        return 2;
    }
    struct xensim_cli_ctx c;
    if (xensim_cli_ctx_open(&c, "block-detach", dir) < 0)
        return 1;
    int rc = 1;
    long domid = find_domain(&c, argv[optind], "guest");
    if (domid < 0)
        goto out;
    struct device_dirs p;
    unsigned be;
    if (locate_device(&c, (unsigned)domid, (unsigned long)devid, &p, &be) < 0) {
        fprintf(stderr, "xensim block-detach: domain %ld has no vbd %s (see "
                "`xensim block-list %ld`)\n", domid, vdev, domid);
        goto out;
    }
    if (device_cli_detach(c.xs, c.cmd, be, (unsigned)domid, &p, vdev,
                          (unsigned)timeout) == 0)
        rc = 0;
out:
    xensim_cli_ctx_close(&c);
    return rc;
}

/* ---- block-list --------------------------------------------------------- */

int xensim_cmd_block_list(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    const char *dir = getenv("XENSIM_DIR");
    int o;
    while ((o = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
        if (o != 'd') {
            fprintf(stderr, "usage: xensim block-list [--dir DIR] DOMAIN\n");
            return 2;
        }
        dir = optarg;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "usage: xensim block-list [--dir DIR] DOMAIN\n");
        return 2;
    }
    struct xensim_cli_ctx c;
    if (xensim_cli_ctx_open(&c, "block-list", dir) < 0)
        return 1;
    long domid = find_domain(&c, argv[optind], "guest");
    if (domid < 0) {
        xensim_cli_ctx_close(&c);
        return 1;
    }
    char base[128];
    snprintf(base, sizeof(base), "/local/domain/%ld/device/vbd", domid);
    unsigned n = 0;
    char **ids = xenif_xs_directory(c.xs, 0, base, &n);
    printf("%-6s %-8s %-3s %-6s %-12s %-12s %-4s %s\n", "VDEV", "DEVID", "BE",
           "TYPE", "FE-STATE", "BE-STATE", "MODE", "TARGET");
    for (unsigned i = 0; ids && i < n; i++) {
        unsigned long devid;
        if (xensim_cli_number(ids[i], ULONG_MAX, &devid) < 0)
            continue;
        struct device_dirs p;
        unsigned be;
        char vname[40];
        devid_to_vdev(devid, vname, sizeof(vname));
        if (locate_device(&c, (unsigned)domid, devid, &p, &be) < 0) {
            printf("%-6s %-8lu %-3s %-6s %-12s %-12s %-4s %s\n", vname, devid, "-",
                   "-", device_state_name(read_state(c.xs, p.fe)), "-", "-", "-");
            continue;
        }
        char path[600];
        snprintf(path, sizeof(path), "%s/mode", p.be);
        char *mode = xenif_xs_read(c.xs, 0, path, NULL);
        snprintf(path, sizeof(path), "%s/params", p.be);
        char *params = xenif_xs_read(c.xs, 0, path, NULL);
        char type[32] = "?";
        sscanf(p.be, "/local/domain/%*u/backend/%31[^/]", type);
        printf("%-6s %-8lu %-3u %-6s %-12s %-12s %-4s %s\n", vname, devid, be, type,
               device_state_name(read_state(c.xs, p.fe)), device_state_name(read_state(c.xs, p.be)),
               mode ? mode : "-", params ? params : "-");
        free(mode);
        free(params);
    }
    free(ids);
    xensim_cli_ctx_close(&c);
    return 0;
}
