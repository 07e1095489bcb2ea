/* netbusctl usb-plug / usb-unplug: a USB device on a port of a guest's PV
 * USB controller served by this host's netbusd. xl creates controllers
 * (usbctrl=, xl usbctrl-attach) but plugs devices only through Linux's
 * usbback driver, which netbusd replaces; these commands write the port/N
 * node the toolstack would (and libxl's copy of it when it keeps one),
 * then wait for netbusd's answer in netbus-port-error/N: "" claimed, else
 * why not. A device that is not there yet or held by another backend stays
 * on the port (netbusd claims it when it can); any other refusal empties
 * the port again. */
#include "netbusctl.h"

#include "xenif.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT 10
#define MAX_PORTS 31

struct usb_port {
    struct xenif_xs *xs;
    long domid;
    unsigned ctrl, port;
    char be[160], libxl[160];
};

static const char plug_usage[] =
    "usage: netbusctl usb-plug DOMAIN CONTROLLER PORT DEVICE [--timeout S]\n"
    "  DEVICE: a bus id of this host (3-1.5, as lsusb -t shows it),\n"
    "  VENDOR:PRODUCT[:SERIAL] in hex, or netbus://HOST[:PORT]/EXPORT (a USB\n"
    "  export). The controller must exist (xl usbctrl-attach DOMAIN\n"
    "  type=pv, or usbctrl= in the guest's config) and be served here.\n";
static const char unplug_usage[] =
    "usage: netbusctl usb-unplug DOMAIN CONTROLLER PORT\n";

static int parse_num(const char *s, unsigned long max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static char *read_at(struct xenif_xs *xs, const char *dir, const char *key)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_read(xs, 0, path, NULL);
}

/* Finds the controller's backend directory on this host. 0, or -1 after a
 * message. */
static int find_port(struct usb_port *p, char **args, const char *cmd)
{
    p->domid = netbusctl_find_domid(p->xs, args[0], cmd);
    if (p->domid < 0)
        return -1;
    if (parse_num(args[1], UINT32_MAX, &p->ctrl) < 0 ||
        parse_num(args[2], MAX_PORTS, &p->port) < 0 || p->port == 0) {
        fprintf(stderr, "netbusctl %s: CONTROLLER is a number and PORT 1 to %d\n",
                cmd, MAX_PORTS);
        return -1;
    }
    unsigned self = xenif_xs_own_domid(p->xs);
    static const char *const types[] = { "vusb", "qusb" };
    for (unsigned i = 0; i < 2; i++) {
        snprintf(p->be, sizeof(p->be), "/local/domain/%u/backend/%s/%ld/%u", self,
                 types[i], p->domid, p->ctrl);
        char *ports = read_at(p->xs, p->be, "num-ports");
        if (!ports)
            continue;
        unsigned long n = strtoul(ports, NULL, 10);
        free(ports);
        if (p->port > n) {
            fprintf(stderr, "netbusctl %s: controller %u of domain %ld has %lu "
                    "port(s)\n", cmd, p->ctrl, p->domid, n);
            return -1;
        }
        snprintf(p->libxl, sizeof(p->libxl), "/libxl/%ld/device/vusb/%u", p->domid,
                 p->ctrl);
        return 0;
    }
    fprintf(stderr, "netbusctl %s: domain %ld has no USB controller %u served by "
            "this host (create it with `xl usbctrl-attach %s type=pv`; run "
            "netbusctl where netbusd serves it)\n", cmd, p->domid, p->ctrl, args[0]);
    return -1;
}

/* Writes port/N (and libxl's copy when it has one) in one transaction;
 * the error node goes first so that netbusd's answer is a fresh one. */
static int write_port(struct usb_port *p, const char *device)
{
    char port[300], err[300], copy[300];
    snprintf(port, sizeof(port), "%s/port/%u", p->be, p->port);
    snprintf(err, sizeof(err), "%s/netbus-port-error/%u", p->be, p->port);
    snprintf(copy, sizeof(copy), "%s/port/%u", p->libxl, p->port);
    for (int attempt = 0; attempt < 50; attempt++) {
        xenif_txn t = xenif_xs_transaction_start(p->xs);
        if (!t)
            return -1;
        xenif_xs_rm(p->xs, t, err);
        xenif_xs_write(p->xs, t, port, device, strlen(device));
        char *old = xenif_xs_read(p->xs, t, copy, NULL);
        if (old)
            xenif_xs_write(p->xs, t, copy, device, strlen(device));
        free(old);
        if (xenif_xs_transaction_end(p->xs, t, false) == 0)
            return 0;
        if (errno != EAGAIN)
            return -1;
    }
    return -1;
}

/* netbusd's answer (caller frees), NULL when none came in time. */
static char *wait_answer(struct usb_port *p, unsigned timeout_s)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/netbus-port-error/%u", p->be, p->port);
    xenif_xs_watch(p->xs, path, "netbusctl-usb");
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *v = NULL;
    for (;;) {
        char *ev, *tok;
        while (xenif_xs_next_event(p->xs, &ev, &tok) == 1)
            free(ev);
        v = xenif_xs_read(p->xs, 0, path, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (v || now.tv_sec - t0.tv_sec >= (time_t)timeout_s)
            break;
        struct pollfd pf = { .fd = xenif_xs_fd(p->xs), .events = POLLIN };
        poll(&pf, 1, 100);
    }
    xenif_xs_unwatch(p->xs, path, "netbusctl-usb");
    return v;
}

int cmd_usb_plug(int argc, char **argv)
{
    unsigned timeout = DEFAULT_TIMEOUT;
    char *args[4];
    int nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], 3600, &timeout) < 0 || timeout == 0) {
                fprintf(stderr, "netbusctl usb-plug: bad --timeout '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(plug_usage, stdout);
            return 0;
        } else if (nargs < 4 && argv[i][0] != '-') {
            args[nargs++] = argv[i];
        } else {
            fputs(plug_usage, stderr);
            return 2;
        }
    }
    if (nargs != 4 || !args[3][0] || strpbrk(args[3], " \t\n")) {
        fputs(plug_usage, stderr);
        return 2;
    }
    struct usb_port p = { .xs = netbusctl_xs_open("usb-plug") };
    if (!p.xs)
        return 1;
    int rc = 1;
    if (find_port(&p, args, "usb-plug") < 0)
        goto out;
    char key[16];
    snprintf(key, sizeof(key), "port/%u", p.port);
    char *old = read_at(p.xs, p.be, key);
    if (old && *old) {
        fprintf(stderr, "netbusctl usb-plug: port %u holds %s; usb-unplug it "
                "first\n", p.port, old);
        free(old);
        goto out;
    }
    free(old);
    if (write_port(&p, args[3]) < 0) {
        fprintf(stderr, "netbusctl usb-plug: writing %s/%s: %s\n", p.be, key,
                strerror(errno));
        goto out;
    }
    char *answer = wait_answer(&p, timeout);
    if (!answer)
        fprintf(stderr, "netbusctl usb-plug: netbusd did not answer within %u s "
                "(is it running and serving this controller?)\n", timeout);
    else if (!*answer) {
        printf("port %u: %s\n", p.port, args[3]);
        rc = 0;
    } else if (strstr(answer, "trying again")) {
        fprintf(stderr, "netbusctl usb-plug: port %u: not claimed yet: %s (the "
                "device is plugged when it can be; usb-unplug gives up)\n",
                p.port, answer);
        rc = 0;
    } else {
        fprintf(stderr, "netbusctl usb-plug: port %u: %s; the port is left "
                "empty\n", p.port, answer);
        write_port(&p, "");
    }
    free(answer);
out:
    xenif_xs_close(p.xs);
    return rc;
}

int cmd_usb_unplug(int argc, char **argv)
{
    if (argc != 4) {
        fputs(unplug_usage, argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout
                                                                         : stderr);
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    struct usb_port p = { .xs = netbusctl_xs_open("usb-unplug") };
    if (!p.xs)
        return 1;
    int rc = 1;
    if (find_port(&p, argv + 1, "usb-unplug") < 0)
        goto out;
    if (write_port(&p, "") < 0) {
        fprintf(stderr, "netbusctl usb-unplug: %s: %s\n", p.be, strerror(errno));
        goto out;
    }
    printf("port %u: empty\n", p.port);
    rc = 0;
out:
    xenif_xs_close(p.xs);
    return rc;
}
