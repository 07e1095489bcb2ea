/* Toolstack USB commands, as libxl 4.17 does them for PV USB
 * (tools/libs/light/libxl_usb.c, libxl_device.c):
 *
 *   usbctrl-attach: one transaction writes the backend directory
 *     /local/domain/BE/backend/KIND/DOMID/DEVID (KIND vusb for type pv,
 *     qusb for type qusb; frontend, frontend-id, online=1, state=1, type,
 *     usb-ver, num-ports, port = "" and port/1..N = ""), the frontend
 *     directory /local/domain/DOMID/device/vusb/DEVID (backend, backend-id,
 *     state=1; the frontend kind is vusb for both types) and libxl's copy
 *     /libxl/DOMID/device/vusb/DEVID (frontend, backend and the backend
 *     keys again), with libxl__device_generic_add's permissions; then
 *     waits for the backend's InitWait (libxl__wait_device_connection);
 *   usbdev-attach: writes the device's bus id into port/N of a free port
 *     (libxl__device_usbdev_add_xenstore); with no controller given it
 *     takes the first free port of the domain's controllers, or adds a
 *     controller with libxl's defaults when none is free
 *     (libxl__device_usbdev_setdefault). For netbus, a port may also hold a
 *     device URL netbus://HOST[:PORT]/EXPORT;
 *   usbdev-detach: port/N = "" (libxl__device_usbdev_remove_xenstore);
 *   usbctrl-detach: empties its ports, then online=0 and state=Closing,
 *     waits for Closed, removes the three directories;
 *   usb-list: the controllers and their ports.
 *
 * Unlike libxl (which refuses PV USB with a non-dom0 backend and then
 * writes the port under dom0's backend directory), the backend domain may
 * be any domain: ports are written where the controller's backend is. */
#include "usb.h"
#include "device.h"
#include "cli.h"
#include "xenif.h"
#include "xensim_client.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORTS 8    /* libxl__device_usbctrl_setdefault */
#define DEFAULT_VERSION 2

/* ---- paths and small xenstore helpers ------------------------------------ */

static void ctrl_paths(struct device_dirs *p, unsigned be, const char *kind,
                       unsigned domid, unsigned devid)
{
    snprintf(p->be, sizeof(p->be), "/local/domain/%u/backend/%s/%u/%u", be, kind,
             domid, devid);
    snprintf(p->fe, sizeof(p->fe), "/local/domain/%u/device/vusb/%u", domid, devid);
    snprintf(p->libxl, sizeof(p->libxl), "/libxl/%u/device/vusb/%u", domid, devid);
}

/* Controller c of domain domid: its directories and its name in messages. */
struct ctrl_where {
    struct device_dirs dirs;
    char what[40];
};

static void ctrl_where(struct ctrl_where *w, unsigned domid, const struct usb_ctrl *c)
{
    ctrl_paths(&w->dirs, c->be, c->type, domid, c->devid);
    snprintf(w->what, sizeof(w->what), "USB controller %u", c->devid);
}

static int put(struct xenif_xs *xs, xenif_txn t, const char *dir, const char *key,
               const char *val)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_write(xs, t, path, val, strlen(val));
}

static char *get(struct xenif_xs *xs, xenif_txn t, const char *dir, const char *key)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_read(xs, t, path, NULL);
}

static long get_num(struct xenif_xs *xs, const char *dir, const char *key)
{
    char path[300];
    unsigned long v;
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_read_uint(xs, 0, path, &v) == 0 && v <= LONG_MAX ? (long)v : -1;
}

/* Bus ids as Linux names USB devices in sysfs: BUS-PORT[.PORT...], each a
 * number. */
static bool bus_id_ok(const char *s)
{
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p++ != '-')
        return false;
    for (;;) {
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
        if (*p == 0)
            return p - s < 64;
        if (*p++ != '.')
            return false;
    }
}

/* VENDOR:PRODUCT[:SERIAL], four hex digits each, as netbusd claims a
 * device wherever it is plugged in. */
static bool vid_pid_ok(const char *s)
{
    for (int part = 0; part < 2; part++, s++) {
        for (int i = 0; i < 4; i++, s++)
            if (!isxdigit((unsigned char)*s))
                return false;
        if (part == 1 && *s == 0)
            return true;
        if (*s != ':')
            return false;
    }
    if (!*s || strlen(s) >= 128)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '/')
            return false;
    return true;
}

bool usb_device_name_ok(const char *s)
{
    if (strncmp(s, "netbus://", 9) != 0)
        return bus_id_ok(s) || vid_pid_ok(s);
    size_t n = strlen(s);
    const char *host = s + 9, *slash = strchr(host, '/');
    if (n >= USB_DEVICE_MAX || !slash || slash == host || !slash[1])
        return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return false;
    return true;
}

/* ---- write / read / remove a controller ---------------------------------- */

static const char *libxl_type(const char *kind)
{
    return strcmp(kind, "qusb") == 0 ? "qusb" : "pv";
}

int usb_ctrl_write(struct xenif_xs *xs, unsigned domid, const struct usb_ctrl *c,
                   char *err, size_t errlen)
{
    struct ctrl_where w;
    ctrl_where(&w, domid, c);
    char be_num[16], dom_num[16], ver[8], ports[8];
    snprintf(be_num, sizeof(be_num), "%u", c->be);
    snprintf(dom_num, sizeof(dom_num), "%u", domid);
    snprintf(ver, sizeof(ver), "%u", c->version);
    snprintf(ports, sizeof(ports), "%u", c->ports);
    /* The backend keys in libxl's order, the ports last. */
    char port_keys[USB_MAX_PORTS][16];
    const char *bents[7 + USB_MAX_PORTS][2] = {
        { "frontend-id", dom_num }, { "online", "1" }, { "state", "1" },
        { "type", libxl_type(c->type) }, { "usb-ver", ver }, { "num-ports", ports },
        { "port", "" },
    };
    size_t nbents = 7;
    for (unsigned i = 0; i < c->ports; i++, nbents++) {
        snprintf(port_keys[i], sizeof(port_keys[i]), "port/%u", i + 1);
        bents[nbents][0] = port_keys[i];
        bents[nbents][1] = c->port[i];
    }
    const char *fents[][2] = { { "backend", w.dirs.be }, { "backend-id", be_num },
                               { "state", "1" } };
    return device_generic_add(xs, c->be, domid, &w.dirs, w.what, fents,
                              sizeof(fents) / sizeof(fents[0]), bents, nbents, err,
                              errlen);
}

int usb_ctrl_read(struct xenif_xs *xs, unsigned domid, unsigned devid,
                  struct usb_ctrl *c)
{
    memset(c, 0, sizeof(*c));
    c->devid = devid;
    struct device_dirs p;
    ctrl_paths(&p, 0, "vusb", domid, devid);
    char *bp = get(xs, 0, p.libxl, "backend");
    if (!bp) {
        errno = ENOENT;
        return -1;
    }
    unsigned be, d, id;
    int n = -1;
    if (strlen(bp) >= sizeof(p.be) ||
        sscanf(bp, "/local/domain/%u/backend/%7[a-z]/%u/%u%n", &be, c->type, &d, &id,
               &n) != 4 || n != (int)strlen(bp) || d != domid || id != devid ||
        (strcmp(c->type, "vusb") != 0 && strcmp(c->type, "qusb") != 0)) {
        free(bp);
        errno = EINVAL;
        return -1;
    }
    free(bp);
    c->be = be;
    ctrl_paths(&p, be, c->type, domid, devid);
    long ver = get_num(xs, p.be, "usb-ver"), ports = get_num(xs, p.be, "num-ports");
    c->version = ver > 0 ? (unsigned)ver : 0;
    c->ports = ports > 0 && ports <= USB_MAX_PORTS ? (unsigned)ports : 0;
    for (unsigned i = 0; i < c->ports; i++) {
        char key[16];
        snprintf(key, sizeof(key), "port/%u", i + 1);
        char *v = get(xs, 0, p.be, key);
        snprintf(c->port[i], sizeof(c->port[i]), "%s", v ? v : "");
        free(v);
    }
    return 0;
}

/* The domain's controller devids, ascending (caller frees); -1 on error. */
static int ctrl_list(struct xenif_xs *xs, unsigned domid, unsigned **ids)
{
    char base[64];
    snprintf(base, sizeof(base), "/libxl/%u/device/vusb", domid);
    unsigned n = 0;
    char **names = xenif_xs_directory(xs, 0, base, &n);
    *ids = calloc(n + 1, sizeof(**ids));
    if (!*ids) {
        free(names);
        return -1;
    }
    unsigned k = 0;
    for (unsigned i = 0; names && i < n; i++) {
        unsigned long v;
        if (xensim_cli_number(names[i], UINT_MAX, &v) < 0)
            continue;
        unsigned j = k++;
        for (; j > 0 && (*ids)[j - 1] > v; j--)
            (*ids)[j] = (*ids)[j - 1];
        (*ids)[j] = (unsigned)v;
    }
    free(names);
    return (int)k;
}


int usb_ctrl_remove(struct xenif_xs *xs, unsigned domid, const struct usb_ctrl *c,
                    unsigned wait_s)
{
    struct ctrl_where w;
    ctrl_where(&w, domid, c);
    if (wait_s) {
        bool met;
        device_wait_state(xs, w.dirs.be, device_state_closed, wait_s, &met);
    }
    return device_remove_nodes(xs, c->be, domid, w.dirs.be, w.dirs.fe, w.dirs.libxl);
}

int usb_ctrl_wait_ready(struct xenif_xs *xs, unsigned domid,
                        const struct usb_ctrl *c, unsigned timeout_s, char *err,
                        size_t errlen)
{
    struct ctrl_where w;
    ctrl_where(&w, domid, c);
    return device_wait_ready(xs, c->be, w.dirs.be, w.what, c->type, timeout_s, err,
                             errlen);
}

/* Waits for a new controller's backend, removing it again if it fails. */
static int wait_ready(struct xensim_cli_ctx *x, unsigned domid, const struct usb_ctrl *c,
                      unsigned timeout)
{
    struct ctrl_where w;
    ctrl_where(&w, domid, c);
    return device_cli_wait_ready_or_remove(x->xs, x->cmd, c->be, domid, &w.dirs,
                                           w.what, c->type, timeout);
}

/* Opens the command's context and finds the domain dom names: its id, or
 * -1 after saying why, with the context closed again. */
static long open_for_domain(struct xensim_cli_ctx *x, const char *cmd, const char *dir,
                            const char *dom)
{
    if (xensim_cli_ctx_open(x, cmd, dir) < 0)
        return -1;
    long domid = xensim_cli_domain(cmd, x->sock, dom, true);
    if (domid < 0)
        xensim_cli_ctx_close(x);
    return domid;
}

/* The domain's controller devid, or -1 after saying it has none. */
static int read_ctrl(struct xensim_cli_ctx *x, long domid, unsigned long devid,
                     struct usb_ctrl *c)
{
    if (usb_ctrl_read(x->xs, (unsigned)domid, (unsigned)devid, c) == 0)
        return 0;
    fprintf(stderr, "xensim %s: domain %ld has no USB controller %lu (see "
            "`xensim usb-list %ld`)\n", x->cmd, domid, devid, domid);
    return -1;
}

/* Adds a controller with devid = the highest in use + 1 when devid < 0
 * (libxl__device_usbctrl_update_devid). Fills c. */
static int add_ctrl(struct xensim_cli_ctx *x, unsigned domid, long devid, struct usb_ctrl *c,
                    bool wait, unsigned timeout)
{
    if (devid < 0) {
        unsigned *ids;
        int n = ctrl_list(x->xs, domid, &ids);
        if (n < 0) {
            fprintf(stderr, "xensim %s: out of memory\n", x->cmd);
            return -1;
        }
        devid = n > 0 ? (long)ids[n - 1] + 1 : 0;
        free(ids);
    }
    c->devid = (unsigned)devid;
    char err[300];
    if (usb_ctrl_write(x->xs, domid, c, err, sizeof(err)) < 0) {
        fprintf(stderr, "xensim %s: %s%s\n", x->cmd, err,
                errno == EEXIST ? "; detach it first" : "");
        return -1;
    }
    return wait ? wait_ready(x, domid, c, timeout) : 0;
}

/* Where device is assigned already (any domain, any controller): 1 with
 * *dom, *ctrl, *port set, else 0. */
static int find_assigned(struct xenif_xs *xs, const char *device, unsigned *dom,
                         unsigned *ctrl, unsigned *port)
{
    unsigned n = 0;
    char **doms = xenif_xs_directory(xs, 0, "/libxl", &n);
    int found = 0;
    for (unsigned i = 0; doms && i < n && !found; i++) {
        unsigned long d;
        if (xensim_cli_number(doms[i], XENSIM_DOMID_MAX, &d) < 0)
            continue;
        unsigned *ids;
        int nc = ctrl_list(xs, (unsigned)d, &ids);
        for (int j = 0; j < nc && !found; j++) {
            struct usb_ctrl c;
            if (usb_ctrl_read(xs, (unsigned)d, ids[j], &c) < 0)
                continue;
            for (unsigned k = 0; k < c.ports; k++)
                if (strcmp(c.port[k], device) == 0) {
                    *dom = (unsigned)d;
                    *ctrl = ids[j];
                    *port = k + 1;
                    found = 1;
                    break;
                }
        }
        if (nc >= 0)
            free(ids);
    }
    free(doms);
    return found;
}

static int set_port(struct xenif_xs *xs, unsigned domid, const struct usb_ctrl *c,
                    unsigned port, const char *value)
{
    struct device_dirs p;
    ctrl_paths(&p, c->be, c->type, domid, c->devid);
    char key[16];
    snprintf(key, sizeof(key), "port/%u", port);
    return put(xs, 0, p.be, key, value);
}

/* ---- usbctrl-attach ------------------------------------------------------- */

static const char ctrl_attach_usage[] =
    "usage: xensim usbctrl-attach [--dir DIR] DOMAIN [--devid N] [--type pv|qusb]\n"
    "                             [--version 1|2] [--ports N] [--backend DOMAIN]\n"
    "                             [--no-wait] [--timeout SEC]\n"
    "  gives DOMAIN a PV USB controller as libxl does (type pv: backend vusb,\n"
    "  qusb: backend qusb; version 2 and 8 ports by default; devid: the next\n"
    "  free one), prints its devid and waits (default 10 s) for the backend\n"
    "  to reach InitWait unless --no-wait\n";

int xensim_cmd_usbctrl_attach(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "devid", required_argument, NULL, 'i' },
        { "type", required_argument, NULL, 't' },
        { "version", required_argument, NULL, 'V' },
        { "ports", required_argument, NULL, 'p' },
        { "backend", required_argument, NULL, 'b' },
        { "no-wait", no_argument, NULL, 'W' },
        { "timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmd = "usbctrl-attach", *dir = getenv("XENSIM_DIR"), *backend = "0";
    struct usb_ctrl c;
    memset(&c, 0, sizeof(c));
    strcpy(c.type, "vusb");
    c.version = DEFAULT_VERSION;
    c.ports = DEFAULT_PORTS;
    long devid = -1;
    bool wait = true;
    unsigned long timeout = 10, v;
    int o;
    while ((o = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'b': backend = optarg; break;
        case 'W': wait = false; break;
        case 'i':
            if (xensim_cli_number(optarg, INT_MAX, &v) < 0) {
                fprintf(stderr, "xensim %s: --devid %s: want a number\n", cmd, optarg);
                return 2;
            }
            devid = (long)v;
            break;
        case 't':
            if (strcmp(optarg, "pv") == 0 || strcmp(optarg, "vusb") == 0)
                strcpy(c.type, "vusb");
            else if (strcmp(optarg, "qusb") == 0)
                strcpy(c.type, "qusb");
            else {
                fprintf(stderr, "xensim %s: --type %s: expected pv or qusb\n", cmd,
                        optarg);
                return 2;
            }
            break;
        case 'V':
            if (xensim_cli_number(optarg, 2, &v) < 0 || v < 1) {
                fprintf(stderr, "xensim %s: --version %s: USB version for "
                        "paravirtualized devices must be 1 or 2\n", cmd, optarg);
                return 2;
            }
            c.version = (unsigned)v;
            break;
        case 'p':
            if (xensim_cli_number(optarg, USB_MAX_PORTS, &v) < 0 || v < 1) {
                fprintf(stderr, "xensim %s: --ports %s: want 1..%u\n", cmd, optarg,
                        USB_MAX_PORTS);
                return 2;
            }
            c.ports = (unsigned)v;
            break;
        case 'T':
            if (xensim_cli_timeout(cmd, optarg, &timeout) < 0)
                return 2;
            break;
        case 'h': fputs(ctrl_attach_usage, stdout); return 0;
        default: fputs(ctrl_attach_usage, stderr); return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "xensim %s: expected DOMAIN\n%s", cmd, ctrl_attach_usage);
        return 2;
    }
    struct xensim_cli_ctx x;
    long domid = open_for_domain(&x, cmd, dir, argv[optind]);
    if (domid < 0)
        return 1;
    int rc = 1;
    long be = xensim_cli_domain(cmd, x.sock, backend, true);
    if (be >= 0) {
        c.be = (unsigned)be;
        if (add_ctrl(&x, (unsigned)domid, devid, &c, wait, (unsigned)timeout) == 0) {
            printf("%u\n", c.devid);
            rc = 0;
        }
    }
    xensim_cli_ctx_close(&x);
    return rc;
}

/* ---- usbdev-attach -------------------------------------------------------- */

static const char dev_attach_usage[] =
    "usage: xensim usbdev-attach [--dir DIR] DOMAIN DEVICE [--controller N]\n"
    "                            [--port P] [--no-wait] [--timeout SEC]\n"
    "  puts DEVICE on a port of one of DOMAIN's USB controllers (the first\n"
    "  free port; a new controller with the defaults if none is free and no\n"
    "  controller was named) and prints CONTROLLER PORT. DEVICE: a host bus\n"
    "  id (1-2, 3-1.5) or VENDOR:PRODUCT[:SERIAL] (1209:4e42), which the\n"
    "  backend claims, or a device URL netbus://HOST[:PORT]/EXPORT\n";

int xensim_cmd_usbdev_attach(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "controller", required_argument, NULL, 'c' },
        { "port", required_argument, NULL, 'p' },
        { "no-wait", no_argument, NULL, 'W' },
        { "timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmd = "usbdev-attach", *dir = getenv("XENSIM_DIR");
    long ctrl = -1;
    unsigned port = 0;
    bool wait = true;
    unsigned long timeout = 10, v;
    int o;
    while ((o = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'W': wait = false; break;
        case 'c':
            if (xensim_cli_number(optarg, INT_MAX, &v) < 0) {
                fprintf(stderr, "xensim %s: --controller %s: want a devid\n", cmd,
                        optarg);
                return 2;
            }
            ctrl = (long)v;
            break;
        case 'p':
            if (xensim_cli_number(optarg, USB_MAX_PORTS, &v) < 0 || v < 1) {
                fprintf(stderr, "xensim %s: --port %s: want 1..%u\n", cmd, optarg,
                        USB_MAX_PORTS);
                return 2;
            }
            port = (unsigned)v;
            break;
        case 'T':
            if (xensim_cli_timeout(cmd, optarg, &timeout) < 0)
                return 2;
            break;
        case 'h': fputs(dev_attach_usage, stdout); return 0;
        default: fputs(dev_attach_usage, stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "xensim %s: expected DOMAIN DEVICE\n%s", cmd, dev_attach_usage);
        return 2;
    }
    const char *device = argv[optind + 1];
    if (!usb_device_name_ok(device)) {
        fprintf(stderr, "xensim %s: '%s' is not a bus id (1-2, 3-1.5), "
                "VENDOR:PRODUCT[:SERIAL] or a device URL netbus://HOST[:PORT]/EXPORT\n", cmd, device);
        return 2;
    }
    if (port && ctrl < 0) {
        fprintf(stderr, "xensim %s: USB controller must be specified if you "
                "specify port\n", cmd);
        return 2;
    }
    struct xensim_cli_ctx x;
    long domid = open_for_domain(&x, cmd, dir, argv[optind]);
    if (domid < 0)
        return 1;
    int rc = 1;
    struct usb_ctrl c;
    unsigned ad = 0, ac = 0, ap = 0;
    if (find_assigned(x.xs, device, &ad, &ac, &ap)) {
        fprintf(stderr, "xensim %s: %s is already attached to domain %u "
                "(controller %u, port %u)\n", cmd, device, ad, ac, ap);
        goto out;
    }
    if (ctrl >= 0) {
        if (read_ctrl(&x, domid, (unsigned long)ctrl, &c) < 0)
            goto out;
        if (port > c.ports) {
            fprintf(stderr, "xensim %s: controller %ld has %u port(s)\n", cmd, ctrl,
                    c.ports);
            goto out;
        }
        if (port && c.port[port - 1][0]) {
            fprintf(stderr, "xensim %s: port %u of controller %ld holds %s already\n",
                    cmd, port, ctrl, c.port[port - 1]);
            goto out;
        }
        for (unsigned i = 0; !port && i < c.ports; i++)
            if (!c.port[i][0])
                port = i + 1;
        if (!port) {
            fprintf(stderr, "xensim %s: no free port on controller %ld\n", cmd, ctrl);
            goto out;
        }
    } else {
        unsigned *ids;
        int n = ctrl_list(x.xs, (unsigned)domid, &ids);
        for (int i = 0; i < n && !port; i++) {
            if (usb_ctrl_read(x.xs, (unsigned)domid, ids[i], &c) < 0)
                continue;
            for (unsigned k = 0; k < c.ports && !port; k++)
                if (!c.port[k][0])
                    port = k + 1;
        }
        if (n >= 0)
            free(ids);
        if (!port) {
            memset(&c, 0, sizeof(c));
            strcpy(c.type, "vusb");
            c.version = DEFAULT_VERSION;
            c.ports = DEFAULT_PORTS;
            if (add_ctrl(&x, (unsigned)domid, -1, &c, wait, (unsigned)timeout) < 0)
                goto out;
            port = 1;
        }
    }
    if (set_port(x.xs, (unsigned)domid, &c, port, device) < 0) {
        fprintf(stderr, "xensim %s: writing port/%u: %s\n", cmd, port, strerror(errno));
        goto out;
    }
    printf("%u %u\n", c.devid, port);
    rc = 0;
out:
    xensim_cli_ctx_close(&x);
    return rc;
}

/* ---- usbdev-detach -------------------------------------------------------- */

int xensim_cmd_usbdev_detach(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmd = "usbdev-detach", *dir = getenv("XENSIM_DIR");
    const char *usage = "usage: xensim usbdev-detach [--dir DIR] DOMAIN CONTROLLER "
                        "PORT\n  empties the port (the backend lets the device go)\n";
    int o;
    while ((o = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
        if (o != 'd') {
            fputs(usage, stderr);
            return 2;
        }
        dir = optarg;
    }
    unsigned long ctrl, port;
    if (argc - optind != 3 || xensim_cli_number(argv[optind + 1], INT_MAX, &ctrl) < 0 ||
        xensim_cli_number(argv[optind + 2], USB_MAX_PORTS, &port) < 0 || port == 0) {
        fputs(usage, stderr);
        return 2;
    }
    struct xensim_cli_ctx x;
    long domid = open_for_domain(&x, cmd, dir, argv[optind]);
    if (domid < 0)
        return 1;
    int rc = 1;
    struct usb_ctrl c;
    if (read_ctrl(&x, domid, ctrl, &c) < 0)
        goto out;
    if (port > c.ports || !c.port[port - 1][0]) {
        fprintf(stderr, "xensim %s: no device on port %lu of controller %lu\n", cmd,
                port, ctrl);
        goto out;
    }
    if (set_port(x.xs, (unsigned)domid, &c, (unsigned)port, "") < 0) {
        fprintf(stderr, "xensim %s: writing port/%lu: %s\n", cmd, port, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    xensim_cli_ctx_close(&x);
    return rc;
}

/* ---- usbctrl-detach ------------------------------------------------------- */

int xensim_cmd_usbctrl_detach(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "timeout", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmd = "usbctrl-detach", *dir = getenv("XENSIM_DIR");
    const char *usage = "usage: xensim usbctrl-detach [--dir DIR] DOMAIN DEVID "
                        "[--timeout SEC]\n  empties its ports, asks the backend to "
                        "close, waits for Closed (default 10 s;\n  then removes "
                        "anyway, as libxl does), removes the nodes\n";
    unsigned long timeout = 10, devid;
    int o;
    while ((o = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
        if (o == 'd')
            dir = optarg;
        else if (o == 'T' && xensim_cli_timeout(cmd, optarg, &timeout) == 0)
            continue;
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (argc - optind != 2 || xensim_cli_number(argv[optind + 1], INT_MAX, &devid) < 0) {
        fputs(usage, stderr);
        return 2;
    }
    struct xensim_cli_ctx x;
    long domid = open_for_domain(&x, cmd, dir, argv[optind]);
    if (domid < 0)
        return 1;
    int rc = 1;
    struct usb_ctrl c;
    if (read_ctrl(&x, domid, devid, &c) < 0)
        goto out;
    /* Its devices first (libxl__initiate_device_usbctrl_remove). */
    for (unsigned i = 0; i < c.ports; i++)
        if (c.port[i][0] && set_port(x.xs, (unsigned)domid, &c, i + 1, "") < 0)
            fprintf(stderr, "xensim %s: emptying port %u: %s\n", cmd, i + 1,
                    strerror(errno));
    struct ctrl_where w;
    ctrl_where(&w, (unsigned)domid, &c);
    if (device_cli_detach(x.xs, cmd, c.be, (unsigned)domid, &w.dirs, w.what,
                          (unsigned)timeout) == 0)
        rc = 0;
out:
    xensim_cli_ctx_close(&x);
    return rc;
}

/* ---- usb-list ------------------------------------------------------------- */

int xensim_cmd_usb_list(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmd = "usb-list", *dir = getenv("XENSIM_DIR");
    int o;
    while ((o = getopt_long(argc, argv, "d:", opts, NULL)) != -1) {
        if (o != 'd') {
            fprintf(stderr, "usage: xensim usb-list [--dir DIR] DOMAIN\n");
            return 2;
        }
        dir = optarg;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "usage: xensim usb-list [--dir DIR] DOMAIN\n");
        return 2;
    }
    struct xensim_cli_ctx x;
    long domid = open_for_domain(&x, cmd, dir, argv[optind]);
    if (domid < 0)
        return 1;
    unsigned *ids;
    int n = ctrl_list(x.xs, (unsigned)domid, &ids);
    printf("%-6s %-5s %-3s %-12s %-12s %-7s %s\n", "Devid", "Type", "BE", "FE-state",
           "BE-state", "usb-ver", "ports");
    for (int i = 0; i < n; i++) {
        struct usb_ctrl c;
        if (usb_ctrl_read(x.xs, (unsigned)domid, ids[i], &c) < 0) {
            printf("%-6u (unreadable: %s)\n", ids[i], strerror(errno));
            continue;
        }
        struct device_dirs p;
        ctrl_paths(&p, c.be, c.type, (unsigned)domid, c.devid);
        printf("%-6u %-5s %-3u %-12s %-12s %-7u %u\n", c.devid, libxl_type(c.type),
               c.be, device_state_name(get_num(x.xs, p.fe, "state")),
               device_state_name(get_num(x.xs, p.be, "state")), c.version, c.ports);
        for (unsigned k = 0; k < c.ports; k++)
            printf("  Port %u: %s\n", k + 1, c.port[k]);
    }
    if (n >= 0)
        free(ids);
    xensim_cli_ctx_close(&x);
    return n < 0 ? 1 : 0;
}
