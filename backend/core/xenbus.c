/* xenbus: the backend half of the xenbus handshake for every device class
 * (see xenbus.h for the state machine). One xenstore connection carries the
 * watches: one per class on /local/domain/SELF/backend/TYPE, one per device on
 * its frontend's `state`, and @releaseDomain. Every watch event re-reads what
 * it covers and acts only on differences, so duplicate or coalesced events
 * are harmless. Everything read from xenstore is checked before use: the
 * toolstack's keys and the guest's state node may hold anything. */
#include "xenbus.h"

#include "evloop.h"
#include "log.h"
#include "timer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum xb_state {
    XB_UNKNOWN = 0, XB_INITIALISING = 1, XB_INITWAIT = 2, XB_INITIALISED = 3,
    XB_CONNECTED = 4, XB_CLOSING = 5, XB_CLOSED = 6, XB_RECONFIGURING = 7,
    XB_RECONFIGURED = 8,
};

#define TOKEN_CLASS   "netbus-class-"
#define TOKEN_DEVICE  "netbus-fe-"
#define TOKEN_RELEASE "netbus-release"
#define MAX_FRONTEND_PATH 256
#define MAX_ERROR_TEXT 512
#define EVENTS_PER_WAKEUP 256 /* other fds get their turn in between */

struct bus_class {
    const struct xenbus_class *cls;
    char *root; /* /local/domain/SELF/backend/TYPE */
    unsigned idx;
    char token[48];
    /* True during the scan at registration only: a Closed device found
     * then was left by an earlier netbusd and is adopted; one found Closed
     * later is one we closed and let go. */
    bool adopting;
    struct bus_class *next;
};

struct xenbus_device {
    struct xenbus *bus;
    struct bus_class *bc;
    char *be_path;        /* /local/domain/SELF/backend/TYPE/FE/DEVID */
    char *fe_path;        /* validated /local/domain/FE/device/... */
    char *fe_state_path;
    char *error_path;     /* /local/domain/SELF/error/backend/.../error */
    xenif_domid fe_id;
    unsigned devid;
    unsigned long serial;
    char token[48];
    int be_state;         /* last state we wrote */
    int fe_state;         /* last frontend state seen, -1 before the first */
    bool online;
    bool watching;        /* frontend state watch set */
    bool init_called;     /* class init ran: disconnect/free are owed */
    bool init_ok;         /* class init succeeded (device can connect) */
    bool init_pending;    /* class init returned XENBUS_INIT_PENDING */
    bool failed;          /* closed after an error until the frontend restarts */
    bool error_pending;   /* on the deferred-close list */
    bool dying;           /* in device_destroy: errors are only recorded */
    bool script;          /* the toolstack runs a hotplug script for it */
    bool suspended;       /* class suspend() called, resume() owed */
    char errmsg[MAX_ERROR_TEXT];
    void *priv;
    struct xenbus_device *next;
    struct xenbus_device *next_pending;
};

struct xenbus {
    struct evloop *loop;
    struct xenif_xs *xs;
    struct xenif_config cfg;
    xenif_domid self;
    char self_path[48];   /* /local/domain/SELF */
    char own_path[56];    /* /local/domain/SELF/netbus */
    struct bus_class *classes;
    unsigned nclasses;
    struct xenbus_device *devices;
    unsigned ndevices;
    struct xenbus_device *pending;
    int efd;
    unsigned long next_serial;
    bool release_watch;
    bool lost;
    /* Frontend domains' run state, to quiesce devices at a suspend; NULL
     * where this domain may not ask (a driver domain). */
    struct xenif_dom *dom;
    struct timer *suspend_poll;
};

/* While a device is quiesced for a suspended guest, how often the guest's
 * domain is looked at again: a cancelled suspend (failed migration,
 * checkpoint) resumes the domain without any xenstore event. */
#define SUSPEND_POLL_MS 20

static const char *const state_names[] = {
    "Unknown", "Initialising", "InitWait", "Initialised", "Connected",
    "Closing", "Closed", "Reconfiguring", "Reconfigured",
};

static const char *state_name(int s)
{
    return s >= 0 && s <= XB_RECONFIGURED ? state_names[s] : "none yet";
}

static void device_destroy(struct xenbus_device *dev);
static void frontend_changed(struct xenbus_device *dev);

/* ---- parsing ------------------------------------------------------------ */

/* Strict decimal: digits only, no sign, no leading zeros (but "0"), at most
 * max. Anything else a toolstack or guest wrote is rejected. */
static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (!s || !*s || strlen(s) > 10)
        return false;
    if (s[0] == '0' && s[1])
        return false;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* Same, tolerating a trailing newline some tools write ("4\n"). */
static bool parse_value(const char *s, unsigned long max, unsigned long *out)
{
    if (!s)
        return false;
    char buf[16];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n + 1);
    if (buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    return parse_uint(buf, max, out);
}

/* "/local/domain/FE/device/TYPE/DEVID...": the only place a frontend may
 * live. A toolstack or guest pointing "frontend" anywhere else would make us
 * watch and read nodes that are not the frontend's. */
static bool frontend_path_ok(const char *p, unsigned fe)
{
    char prefix[48];
    int n = snprintf(prefix, sizeof(prefix), "/local/domain/%u/device/", fe);
    if (strncmp(p, prefix, (size_t)n) != 0)
        return false;
    const char *rest = p + n;
    size_t len = strlen(rest);
    if (len == 0 || strlen(p) > MAX_FRONTEND_PATH || rest[len - 1] == '/')
        return false;
    const char *comp = rest;
    for (const char *q = rest;; q++) {
        if (*q == '/' || *q == '\0') {
            size_t clen = (size_t)(q - comp);
            if (clen == 0 || (clen == 1 && comp[0] == '.') ||
                (clen == 2 && comp[0] == '.' && comp[1] == '.'))
                return false;
            if (*q == '\0')
                break;
            comp = q + 1;
            continue;
        }
        char c = *q;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Printable copy of an untrusted value for a log line or error node. */
static void sanitize(char *out, size_t outlen, const char *in)
{
    size_t o = 0;
    for (size_t i = 0; in && in[i] && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)in[i];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        if (i >= 40 && o + 4 < outlen) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
    }
    out[o] = '\0';
}

/* ---- xenstore helpers --------------------------------------------------- */

static char *path_join(const char *dir, const char *key)
{
    char *p;
    if (asprintf(&p, "%s/%s", dir, key) < 0)
        return NULL;
    return p;
}

/* Writes BACKEND/key only while the backend directory exists, in one
 * transaction, as Linux's xenbus_switch_state does: a write after the
 * toolstack removed the directory would bring it back. */
static int be_write(struct xenbus_device *dev, const char *key,
                    const char *value)
{
    struct xenbus *bus = dev->bus;
    char *path = path_join(dev->be_path, key);
    if (!path)
        return -1;
    int rc = -1, err = EIO;
    for (int attempt = 0; attempt < 16; attempt++) {
        xenif_txn t = xenif_xs_transaction_start(bus->xs);
        if (!t) {
            err = errno;
            break;
        }
        char *dir = xenif_xs_read(bus->xs, t, dev->be_path, NULL);
        if (!dir) {
            err = errno;
            xenif_xs_transaction_end(bus->xs, t, true);
            break;
        }
        free(dir);
        if (xenif_xs_write(bus->xs, t, path, value, strlen(value)) < 0) {
            err = errno;
            xenif_xs_transaction_end(bus->xs, t, true);
            break;
        }
        if (xenif_xs_transaction_end(bus->xs, t, false) == 0) {
            rc = 0;
            break;
        }
        err = errno;
        if (err != EAGAIN)
            break;
    }
    free(path);
    if (rc < 0)
        errno = err;
    return rc;
}

static void write_state(struct xenbus_device *dev, int state)
{
    log_info(dev->be_path, "backend %s -> %s (frontend %s)",
             state_name(dev->be_state), state_name(state),
             state_name(dev->fe_state));
    dev->be_state = state;
    char v[4];
    snprintf(v, sizeof(v), "%d", state);
    if (be_write(dev, "state", v) < 0 && errno != ENOENT)
        log_warn(dev->be_path, "cannot write state %s: %s", state_name(state),
                 strerror(errno));
}

static void switch_state(struct xenbus_device *dev, int state)
{
    if (dev->be_state != state)
        write_state(dev, state);
}

/* ---- devices: class callbacks ------------------------------------------- */

static void class_disconnect(struct xenbus_device *dev)
{
    dev->suspended = false;
    if (dev->init_called && dev->bc->cls->disconnect)
        dev->bc->cls->disconnect(dev);
}

static void pending_remove(struct xenbus_device *dev)
{
    if (!dev->error_pending)
        return;
    for (struct xenbus_device **pp = &dev->bus->pending; *pp;
         pp = &(*pp)->next_pending)
        if (*pp == dev) {
            *pp = dev->next_pending;
            break;
        }
    dev->error_pending = false;
    dev->next_pending = NULL;
}

static bool frontend_gone_or_closed(const struct xenbus_device *dev)
{
    return dev->fe_state == XB_CLOSED || dev->fe_state == XB_UNKNOWN;
}

/* The device failed (class error, bad frontend value): stop it and close
 * it towards the frontend. It stays until the frontend closes and, while
 * online, may start over when the frontend does. */
static void close_failed(struct xenbus_device *dev)
{
    dev->failed = true;
    class_disconnect(dev);
    if (frontend_gone_or_closed(dev)) {
        switch_state(dev, XB_CLOSED);
        if (!dev->online)
            device_destroy(dev);
    } else {
        switch_state(dev, XB_CLOSING);
    }
}

/* libxl waits for exactly InitWait before it runs the hotplug script, and
 * fails the attach if it sees another state: with a script, connect only
 * after the script reported (Linux's blkback waits likewise, for the
 * block script's physical-device). */
static bool hotplug_done(struct xenbus_device *dev)
{
    if (!dev->script)
        return true;
    char *v = xenbus_read(dev, "hotplug-status");
    bool done = v && strcmp(v, "connected") == 0;
    free(v);
    return done;
}

static void connect_device(struct xenbus_device *dev)
{
    int rc = dev->bc->cls->connect ? dev->bc->cls->connect(dev) : 0;
    if (rc < 0 || dev->error_pending) {
        if (!dev->error_pending)
            xenbus_device_error(dev, "connecting to the frontend failed");
        pending_remove(dev);
        close_failed(dev);
        return;
    }
    switch_state(dev, XB_CONNECTED);
}

/* ---- devices: life ------------------------------------------------------ */

static struct xenbus_device *device_find(struct xenbus *bus,
                                         struct bus_class *bc, unsigned fe,
                                         unsigned devid)
{
    for (struct xenbus_device *d = bus->devices; d; d = d->next)
        if (d->bc == bc && d->fe_id == fe && d->devid == devid)
            return d;
    return NULL;
}

static void device_destroy(struct xenbus_device *dev)
{
    struct xenbus *bus = dev->bus;
    for (struct xenbus_device **pp = &bus->devices; *pp; pp = &(*pp)->next)
        if (*pp == dev) {
            *pp = dev->next;
            bus->ndevices--;
            break;
        }
    dev->dying = true;
    if (dev->watching &&
        xenif_xs_unwatch(bus->xs, dev->fe_state_path, dev->token) < 0)
        log_debug(dev->be_path, "unwatch %s: %s", dev->fe_state_path,
                  strerror(errno));
    if (dev->init_called) {
        class_disconnect(dev);
        if (dev->bc->cls->free)
            dev->bc->cls->free(dev);
    }
    pending_remove(dev);
    log_info(dev->be_path, "device removed");
    free(dev->be_path);
    free(dev->fe_path);
    free(dev->fe_state_path);
    free(dev->error_path);
    free(dev);
}

/* Disconnect, tell the toolstack we are Closed, forget the device. */
static void device_close_and_destroy(struct xenbus_device *dev)
{
    class_disconnect(dev);
    /* Always written: the toolstack may have put Closing over our Closed
     * (libxl's detach writes online=0 and state=5) and waits for Closed,
     * as Linux's xenbus_dev_remove writes it. */
    write_state(dev, XB_CLOSED);
    device_destroy(dev);
}

/* A device whose toolstack-written keys are unusable, or whose init failed:
 * record why where the toolstack looks (hotplug-status/hotplug-error, as the
 * hotplug scripts do, and the error node). */
static void hotplug_failed(struct xenbus_device *dev)
{
    if (be_write(dev, "hotplug-error", dev->errmsg) < 0 ||
        be_write(dev, "hotplug-status", "error") < 0)
        log_warn(dev->be_path, "cannot write hotplug-status: %s",
                 strerror(errno));
}

static struct xenbus_device *device_alloc(struct xenbus *bus,
                                          struct bus_class *bc, unsigned fe,
                                          unsigned devid, int be_state)
{
    struct xenbus_device *dev = calloc(1, sizeof(*dev));
    if (!dev)
        return NULL;
    dev->bus = bus;
    dev->bc = bc;
    dev->fe_id = (xenif_domid)fe;
    dev->devid = devid;
    dev->serial = ++bus->next_serial;
    dev->be_state = be_state;
    dev->fe_state = -1;
    dev->online = true;
    snprintf(dev->token, sizeof(dev->token), TOKEN_DEVICE "%lu", dev->serial);
    if (asprintf(&dev->be_path, "%s/%u/%u", bc->root, fe, devid) < 0) {
        dev->be_path = NULL;
        free(dev);
        return NULL;
    }
    /* Linux: error/<nodename>/error, nodename relative to the domain. */
    const char *rel = dev->be_path + strlen(bus->self_path) + 1;
    if (asprintf(&dev->error_path, "%s/error/%s/error", bus->self_path,
                 rel) < 0) {
        free(dev->be_path);
        free(dev);
        return NULL;
    }
    dev->next = bus->devices;
    bus->devices = dev;
    bus->ndevices++;
    return dev;
}

/* Reads and checks frontend-id and frontend. 0 or -1 with dev->errmsg. */
static int read_frontend_details(struct xenbus_device *dev)
{
    struct xenbus *bus = dev->bus;
    char *v = xenbus_read(dev, "frontend-id");
    unsigned long id;
    char shown[64];
    if (!v) {
        snprintf(dev->errmsg, sizeof(dev->errmsg),
                 "reading frontend-id: %s", strerror(errno));
        return -1;
    }
    bool ok = parse_value(v, 0x7fef, &id);
    sanitize(shown, sizeof(shown), v);
    free(v);
    if (!ok || id != dev->fe_id) {
        snprintf(dev->errmsg, sizeof(dev->errmsg),
                 "frontend-id '%s' does not match domain %u of the backend "
                 "path", shown, dev->fe_id);
        return -1;
    }
    v = xenbus_read(dev, "frontend");
    if (!v) {
        snprintf(dev->errmsg, sizeof(dev->errmsg), "reading frontend: %s",
                 strerror(errno));
        return -1;
    }
    if (!frontend_path_ok(v, dev->fe_id)) {
        sanitize(shown, sizeof(shown), v);
        free(v);
        snprintf(dev->errmsg, sizeof(dev->errmsg),
                 "frontend '%s' is not a device of domain %u", shown,
                 dev->fe_id);
        return -1;
    }
    dev->fe_path = v;
    dev->fe_state_path = path_join(v, "state");
    if (!dev->fe_state_path) {
        snprintf(dev->errmsg, sizeof(dev->errmsg), "out of memory");
        return -1;
    }
    char *fe = xenif_xs_read(bus->xs, 0, dev->fe_path, NULL);
    if (!fe) {
        snprintf(dev->errmsg, sizeof(dev->errmsg), "frontend %s: %s",
                 dev->fe_path, strerror(errno));
        return -1;
    }
    free(fe);
    return 0;
}

/* A device the toolstack set up wrongly: never given to the class. It is
 * kept (Closed) so that it is reported once, until the toolstack removes it
 * or sets online=0. */
static void device_reject(struct xenbus_device *dev)
{
    log_error(dev->be_path, "%s", dev->errmsg);
    if (xenif_xs_write(dev->bus->xs, 0, dev->error_path, dev->errmsg,
                       strlen(dev->errmsg)) < 0)
        log_warn(dev->be_path, "cannot write %s: %s", dev->error_path,
                 strerror(errno));
    hotplug_failed(dev);
    dev->failed = true;
    switch_state(dev, XB_CLOSED);
}

/* The class init succeeded (at once or later): go InitWait, or adopt. */
static void init_done(struct xenbus_device *dev)
{
    dev->init_ok = true;
    /* With script= set (xl), the toolstack runs the hotplug script once it
     * sees InitWait, and the script reports hotplug-status; without one
     * (xensim's block-attach, automation) we report it as the script would. */
    char *script = xenbus_read(dev, "script");
    dev->script = script != NULL;
    free(script);
    if (!dev->script && be_write(dev, "hotplug-status", "connected") < 0)
        log_warn(dev->be_path, "cannot write hotplug-status: %s",
                 strerror(errno));
    if (dev->be_state == XB_CONNECTED) {
        /* Adopted from an earlier netbusd while the frontend uses it: take
         * its rings back without a state change the guest would see (a
         * Connected frontend that sees InitWait may treat it as a failure).
         * InitWait here is only our bookkeeping; connecting writes
         * Connected again. */
        log_info(dev->be_path, "adopting a connected device");
        dev->be_state = XB_INITWAIT;
    } else if (dev->be_state == XB_CLOSING || dev->be_state == XB_CLOSED) {
        /* Adopted after the frontend closed it: it stays closed until the
         * frontend starts over, as under the netbusd that closed it. */
        log_info(dev->be_path, "adopting a closed device");
        switch_state(dev, XB_CLOSED);
    } else {
        dev->be_state = XB_INITIALISING;
        switch_state(dev, XB_INITWAIT);
    }
    dev->fe_state = -1; /* seen while init was pending: look again */
    frontend_changed(dev);
}

static void device_create(struct xenbus *bus, struct bus_class *bc,
                          unsigned fe, unsigned devid, int be_state,
                          const char *bad_state)
{
    struct xenbus_device *dev = device_alloc(bus, bc, fe, devid, be_state);
    if (!dev) {
        log_error(bc->root, "device %u/%u: out of memory", fe, devid);
        return;
    }
    /* An error left by an earlier device at this path is not ours. */
    if (xenif_xs_rm(bus->xs, 0, dev->error_path) < 0 && errno != ENOENT)
        log_debug(dev->be_path, "rm %s: %s", dev->error_path, strerror(errno));
    if (bad_state) {
        snprintf(dev->errmsg, sizeof(dev->errmsg),
                 "backend state '%s' is not a xenbus state", bad_state);
        device_reject(dev);
        return;
    }
    if (read_frontend_details(dev) < 0) {
        device_reject(dev);
        return;
    }
    if (xenif_xs_watch(bus->xs, dev->fe_state_path, dev->token) < 0) {
        snprintf(dev->errmsg, sizeof(dev->errmsg), "watching %s: %s",
                 dev->fe_state_path, strerror(errno));
        device_reject(dev);
        return;
    }
    dev->watching = true;
    log_info(dev->be_path, "new %s device, frontend %s", bc->cls->type,
             dev->fe_path);

    dev->init_called = true;
    int rc = bc->cls->init ? bc->cls->init(dev) : 0;
    if (rc < 0 || dev->error_pending) {
        if (!dev->error_pending)
            xenbus_device_error(dev, "initialising the device failed");
        pending_remove(dev);
        hotplug_failed(dev);
        /* Only a new device from the toolstack gets another init. */
        close_failed(dev);
        return;
    }
    if (rc == XENBUS_INIT_PENDING) {
        /* The class finishes later: xenbus_device_ready or an error. */
        log_info(dev->be_path, "waiting for the device to be opened");
        dev->init_pending = true;
        return;
    }
    init_done(dev);
}

/* The toolstack set online=0: close towards a frontend that is using the
 * device and wait for it, else go Closed and forget the device at once. */
static void device_offline(struct xenbus_device *dev)
{
    log_info(dev->be_path, "toolstack set online=0");
    bool active = dev->init_ok && !dev->failed &&
                  (dev->be_state == XB_CONNECTED ||
                   dev->fe_state == XB_INITIALISED ||
                   dev->fe_state == XB_CONNECTED ||
                   dev->fe_state == XB_CLOSING);
    if (!active) {
        device_close_and_destroy(dev);
        return;
    }
    if (dev->fe_state == XB_CLOSING)
        class_disconnect(dev);
    switch_state(dev, XB_CLOSING);
}

/* The backend directory changed (any key below it). */
static void backend_changed(struct xenbus_device *dev)
{
    struct xenbus *bus = dev->bus;
    char *dir = xenif_xs_read(bus->xs, 0, dev->be_path, NULL);
    if (!dir) {
        if (errno == ENOENT) {
            log_info(dev->be_path, "backend directory removed");
            class_disconnect(dev);
            device_destroy(dev);
        } else {
            log_warn(dev->be_path, "reading backend directory: %s",
                     strerror(errno));
        }
        return;
    }
    free(dir);
    /* Missing or unreadable online counts as 0, as in QEMU. */
    unsigned long online = 0;
    char *v = xenbus_read(dev, "online");
    bool on = v && parse_value(v, 1, &online) && online == 1;
    free(v);
    if (on) {
        dev->online = true;
        /* The hotplug script may just have reported: connect a frontend
         * that was waiting for it. */
        if (dev->script && dev->init_ok && !dev->failed &&
            dev->be_state == XB_INITWAIT &&
            (dev->fe_state == XB_INITIALISED || dev->fe_state == XB_CONNECTED) &&
            hotplug_done(dev))
            connect_device(dev);
        return;
    }
    if (!dev->online)
        return;
    dev->online = false;
    device_offline(dev);
}

/* The frontend's state node changed. */
static void frontend_changed(struct xenbus_device *dev)
{
    char *v = xenif_xs_read(dev->bus->xs, 0, dev->fe_state_path, NULL);
    int st;
    if (!v) {
        if (errno != ENOENT) {
            xenbus_device_error(dev, "reading %s: %s", dev->fe_state_path,
                                strerror(errno));
            return;
        }
        st = XB_UNKNOWN;
    } else {
        unsigned long s;
        if (!parse_value(v, XB_RECONFIGURED, &s)) {
            char shown[64];
            sanitize(shown, sizeof(shown), v);
            free(v);
            if (!dev->failed)
                xenbus_device_error(dev, "frontend state '%s' is not a "
                                    "xenbus state", shown);
            return;
        }
        free(v);
        st = (int)s;
    }
    if (st == dev->fe_state && st != XB_UNKNOWN)
        return;
    log_debug(dev->be_path, "frontend %s -> %s", state_name(dev->fe_state),
              state_name(st));
    dev->fe_state = st;

    if (st == XB_UNKNOWN) {
        log_info(dev->be_path, "frontend %s is gone", dev->fe_path);
        device_close_and_destroy(dev);
        return;
    }
    if (!dev->init_ok) {
        /* Failed init: only follow the frontend down. */
        if (st == XB_CLOSED) {
            switch_state(dev, XB_CLOSED);
            if (!dev->online)
                device_destroy(dev);
        }
        return;
    }
    switch (st) {
    case XB_INITIALISING:
        if (dev->be_state == XB_CLOSED && dev->online) {
            log_info(dev->be_path, "frontend starts over: reconnecting");
            dev->failed = false;
            switch_state(dev, XB_INITWAIT);
        }
        break;
    case XB_INITIALISED:
    case XB_CONNECTED:
        if (dev->be_state == XB_CONNECTED)
            break;
        if (dev->be_state == XB_CLOSED && dev->online) {
            /* Frontend skipped Initialising on its way back. */
            dev->failed = false;
            switch_state(dev, XB_INITWAIT);
        }
        if (dev->be_state == XB_INITWAIT && !dev->failed) {
            if (hotplug_done(dev))
                connect_device(dev);
            else
                log_debug(dev->be_path, "waiting for the hotplug script");
        }
        break;
    case XB_CLOSING:
        class_disconnect(dev);
        if (dev->be_state != XB_CLOSED)
            switch_state(dev, XB_CLOSING);
        break;
    case XB_CLOSED:
        class_disconnect(dev);
        switch_state(dev, XB_CLOSED);
        if (!dev->online) {
            device_destroy(dev);
            return;
        }
        break;
    default: /* InitWait, Reconfiguring, Reconfigured: nothing to do */
        break;
    }
}

/* ---- class directories -------------------------------------------------- */

/* A backend directory we do not know yet: a new device if online=1 and the
 * state is Initialising (or, adopted from an earlier netbusd, InitWait to
 * Connected, and at registration Closing or Closed too). */
static void maybe_create(struct xenbus *bus, struct bus_class *bc,
                         unsigned fe, unsigned devid)
{
    char *be;
    if (asprintf(&be, "%s/%u/%u", bc->root, fe, devid) < 0)
        return;
    char *online_path = path_join(be, "online");
    char *state_path = path_join(be, "state");
    char *online = online_path ? xenif_xs_read(bus->xs, 0, online_path, NULL)
                               : NULL;
    char *state = state_path ? xenif_xs_read(bus->xs, 0, state_path, NULL)
                             : NULL;
    unsigned long on = 0, st = 0;
    if (online && parse_value(online, 1, &on) && on == 1 && state) {
        if (!parse_value(state, XB_RECONFIGURED, &st)) {
            char shown[64];
            sanitize(shown, sizeof(shown), state);
            device_create(bus, bc, fe, devid, XB_UNKNOWN, shown);
        } else if ((st >= XB_INITIALISING && st <= XB_CONNECTED) ||
                   (bc->adopting && (st == XB_CLOSING || st == XB_CLOSED))) {
            device_create(bus, bc, fe, devid, (int)st, NULL);
        }
    }
    free(online);
    free(state);
    free(online_path);
    free(state_path);
    free(be);
}

static void device_check(struct xenbus *bus, struct bus_class *bc,
                         unsigned fe, unsigned devid)
{
    struct xenbus_device *dev = device_find(bus, bc, fe, devid);
    if (dev)
        backend_changed(dev);
    else
        maybe_create(bus, bc, fe, devid);
}

static void scan_class(struct xenbus *bus, struct bus_class *bc)
{
    /* Known devices first: catches directories that went away. */
    for (struct xenbus_device *d = bus->devices, *next; d; d = next) {
        next = d->next; /* backend_changed frees at most d */
        if (d->bc == bc)
            backend_changed(d);
    }
    unsigned nfe = 0;
    char **fes = xenif_xs_directory(bus->xs, 0, bc->root, &nfe);
    if (!fes)
        return;
    for (unsigned i = 0; i < nfe; i++) {
        unsigned long fe;
        if (!parse_uint(fes[i], 0x7fef, &fe)) {
            log_debug(bc->root, "ignoring entry '%.40s'", fes[i]);
            continue;
        }
        char *sub = path_join(bc->root, fes[i]);
        unsigned ndev = 0;
        char **devs = sub ? xenif_xs_directory(bus->xs, 0, sub, &ndev) : NULL;
        for (unsigned j = 0; devs && j < ndev; j++) {
            unsigned long devid;
            if (!parse_uint(devs[j], UINT32_MAX, &devid)) {
                log_debug(sub, "ignoring entry '%.40s'", devs[j]);
                continue;
            }
            device_check(bus, bc, (unsigned)fe, (unsigned)devid);
        }
        free(devs);
        free(sub);
    }
    free(fes);
}

/* A watch event below backend/TYPE. */
static void class_event(struct xenbus *bus, struct bus_class *bc,
                        const char *path)
{
    size_t rlen = strlen(bc->root);
    if (strncmp(path, bc->root, rlen) != 0 ||
        (path[rlen] != '\0' && path[rlen] != '/'))
        return;
    const char *rel = path + rlen;
    if (*rel == '\0') {
        scan_class(bus, bc);
        return;
    }
    rel++;
    char fe_s[16], dev_s[16];
    const char *slash = strchr(rel, '/');
    if (!slash) {
        scan_class(bus, bc); /* a frontend domain's directory */
        return;
    }
    size_t n = (size_t)(slash - rel);
    const char *dv = slash + 1;
    const char *end = strchr(dv, '/');
    size_t m = end ? (size_t)(end - dv) : strlen(dv);
    if (n == 0 || n >= sizeof(fe_s) || m == 0 || m >= sizeof(dev_s))
        return;
    memcpy(fe_s, rel, n);
    fe_s[n] = '\0';
    memcpy(dev_s, dv, m);
    dev_s[m] = '\0';
    unsigned long fe, devid;
    if (!parse_uint(fe_s, 0x7fef, &fe) || !parse_uint(dev_s, UINT32_MAX, &devid))
        return;
    device_check(bus, bc, (unsigned)fe, (unsigned)devid);
    if (!end || (!bc->cls->swap && !bc->cls->backend_changed))
        return;
    struct xenbus_device *dev = device_find(bus, bc, (unsigned)fe,
                                            (unsigned)devid);
    if (!dev || !dev->init_ok || dev->failed)
        return;
    /* netbusctl asked for a hot-swap of this device. */
    if (strcmp(end + 1, XENBUS_SWAP_KEY) == 0 && bc->cls->swap)
        bc->cls->swap(dev);
    else if (bc->cls->backend_changed)
        bc->cls->backend_changed(dev, end + 1);
}

/* Quiesces the connected devices of suspended domains and resumes those
 * whose domain runs again; polls while any device is suspended. */
static void check_suspends(struct xenbus *bus)
{
    if (!bus->dom)
        return;
    bool polling = false;
    for (struct xenbus_device *d = bus->devices; d; d = d->next) {
        const struct xenbus_class *cls = d->bc->cls;
        if (!cls->suspend || d->be_state != XB_CONNECTED || d->failed)
            continue;
        enum xenif_dom_run st = xenif_dom_run_state(bus->dom, d->fe_id);
        if (st == XENIF_DOM_SUSPENDED && !d->suspended) {
            log_info(d->be_path, "frontend domain %u suspended: quiescing",
                     d->fe_id);
            d->suspended = true;
            cls->suspend(d);
        } else if (st == XENIF_DOM_RUNNING && d->suspended) {
            log_info(d->be_path, "frontend domain %u runs again: resuming",
                     d->fe_id);
            d->suspended = false;
            if (cls->resume)
                cls->resume(d);
        }
        polling |= d->suspended;
    }
    if (polling && bus->suspend_poll)
        timer_at(bus->suspend_poll, mono_ms() + SUSPEND_POLL_MS);
}

static void on_suspend_poll(void *opaque)
{
    check_suspends(opaque);
}

/* @releaseDomain: some domain died (or was suspended). Devices whose
 * frontend domain no longer exists go away. */
static void release_event(struct xenbus *bus)
{
    for (struct xenbus_device *d = bus->devices, *next; d; d = next) {
        next = d->next;
        char path[48];
        snprintf(path, sizeof(path), "/local/domain/%u", d->fe_id);
        char *v = xenif_xs_read(bus->xs, 0, path, NULL);
        if (v) {
            free(v);
            continue;
        }
        if (errno != ENOENT)
            continue;
        log_info(d->be_path, "frontend domain %u is gone", d->fe_id);
        device_close_and_destroy(d);
    }
    check_suspends(bus);
}

/* ---- loop callbacks ----------------------------------------------------- */

static void dispatch(struct xenbus *bus, const char *path, const char *token)
{
    if (strcmp(token, TOKEN_RELEASE) == 0) {
        release_event(bus);
        return;
    }
    unsigned long n;
    if (strncmp(token, TOKEN_CLASS, strlen(TOKEN_CLASS)) == 0 &&
        parse_uint(token + strlen(TOKEN_CLASS), UINT32_MAX, &n)) {
        for (struct bus_class *bc = bus->classes; bc; bc = bc->next)
            if (bc->idx == n) {
                class_event(bus, bc, path);
                return;
            }
        return;
    }
    if (strncmp(token, TOKEN_DEVICE, strlen(TOKEN_DEVICE)) == 0 &&
        parse_uint(token + strlen(TOKEN_DEVICE), UINT32_MAX, &n)) {
        for (struct xenbus_device *d = bus->devices; d; d = d->next)
            if (d->serial == n) {
                frontend_changed(d);
                return;
            }
        return; /* a late event for a device already gone */
    }
    log_debug(NULL, "xenbus: unexpected watch %s (token %s)", path, token);
}

static void on_xs(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    struct xenbus *bus = opaque;
    (void)events;
    for (int i = 0; i < EVENTS_PER_WAKEUP; i++) {
        char *path, *token;
        int r = xenif_xs_next_event(bus->xs, &path, &token);
        if (r == 0)
            return;
        if (r < 0) {
            log_error(NULL, "xenbus: lost the xenstore connection: %s",
                      strerror(errno));
            bus->lost = true;
            evloop_del(loop, fd);
            evloop_stop(loop);
            return;
        }
        dispatch(bus, path, token);
        free(path);
    }
}

static void on_deferred(struct evloop *loop, int fd, uint32_t events,
                        void *opaque)
{
    struct xenbus *bus = opaque;
    (void)loop;
    (void)events;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn(NULL, "xenbus: eventfd: %s", strerror(errno));
    while (bus->pending) {
        struct xenbus_device *dev = bus->pending;
        bus->pending = dev->next_pending;
        dev->next_pending = NULL;
        dev->error_pending = false;
        if (dev->init_pending) {
            dev->init_pending = false;
            hotplug_failed(dev);
        }
        close_failed(dev);
    }
}

/* ---- public ------------------------------------------------------------- */

struct xenbus *xenbus_new(struct evloop *loop, struct xenif_xs *xs,
                          const struct xenif_config *cfg)
{
    struct xenbus *bus = calloc(1, sizeof(*bus));
    if (!bus)
        return NULL;
    bus->loop = loop;
    bus->xs = xs;
    if (cfg)
        bus->cfg = *cfg;
    bus->self = xenif_xs_own_domid(xs);
    snprintf(bus->self_path, sizeof(bus->self_path), "/local/domain/%u",
             bus->self);
    snprintf(bus->own_path, sizeof(bus->own_path), "%s/netbus", bus->self_path);
    bus->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (bus->efd < 0)
        goto fail;
    if (evloop_add(loop, bus->efd, EPOLLIN, on_deferred, bus) < 0)
        goto fail_efd;
    if (evloop_add(loop, xenif_xs_fd(xs), EPOLLIN, on_xs, bus) < 0)
        goto fail_loop;
    if (xenif_xs_watch(xs, "@releaseDomain", TOKEN_RELEASE) < 0) {
        log_error(NULL, "xenbus: watching @releaseDomain: %s",
                  strerror(errno));
        evloop_del(loop, xenif_xs_fd(xs));
        goto fail_loop;
    }
    bus->release_watch = true;
    char err[256];
    bus->dom = xenif_dom_open(&bus->cfg, err, sizeof(err));
    if (!bus->dom)
        log_info(NULL, "xenbus: devices will not quiesce when their guest "
                 "suspends: %s", err);
    bus->suspend_poll = timer_new(loop, on_suspend_poll, bus);
    if (!bus->suspend_poll)
        log_error(NULL, "xenbus: no timer for suspend polling: %s",
                  strerror(errno));
    return bus;
fail_loop:
    evloop_del(loop, bus->efd);
fail_efd:
    close(bus->efd);
fail:
    free(bus);
    return NULL;
}

void xenbus_free(struct xenbus *bus)
{
    if (!bus)
        return;
    /* No state writes: a netbusd that stops (to be upgraded, restarted)
     * must not make the guests tear their devices down. In-flight requests
     * are finished and answered by disconnect(); the rest stay on the rings
     * for the next netbusd, which adopts the devices at xenbus_register. */
    while (bus->devices) {
        struct xenbus_device *dev = bus->devices;
        class_disconnect(dev);
        device_destroy(dev);
    }
    while (bus->classes) {
        struct bus_class *bc = bus->classes;
        bus->classes = bc->next;
        if (!bus->lost)
            xenif_xs_unwatch(bus->xs, bc->root, bc->token);
        free(bc->root);
        free(bc);
    }
    if (bus->release_watch && !bus->lost)
        xenif_xs_unwatch(bus->xs, "@releaseDomain", TOKEN_RELEASE);
    if (!bus->lost)
        evloop_del(bus->loop, xenif_xs_fd(bus->xs));
    timer_free(bus->suspend_poll);
    xenif_dom_close(bus->dom);
    evloop_del(bus->loop, bus->efd);
    close(bus->efd);
    free(bus);
}

static bool type_ok(const char *t)
{
    if (!t || !*t || strlen(t) > 32)
        return false;
    for (; *t; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') ||
              *t == '-' || *t == '_'))
            return false;
    return true;
}

int xenbus_register(struct xenbus *bus, const struct xenbus_class *cls)
{
    if (!cls || !type_ok(cls->type) || !cls->init) {
        errno = EINVAL;
        return -1;
    }
    for (struct bus_class *bc = bus->classes; bc; bc = bc->next)
        if (strcmp(bc->cls->type, cls->type) == 0) {
            errno = EEXIST;
            return -1;
        }
    struct bus_class *bc = calloc(1, sizeof(*bc));
    if (!bc)
        return -1;
    bc->cls = cls;
    bc->idx = bus->nclasses++;
    snprintf(bc->token, sizeof(bc->token), TOKEN_CLASS "%u", bc->idx);
    if (asprintf(&bc->root, "%s/backend/%s", bus->self_path, cls->type) < 0) {
        free(bc);
        return -1;
    }
    if (xenif_xs_watch(bus->xs, bc->root, bc->token) < 0) {
        int saved = errno;
        log_error(bc->root, "cannot watch: %s", strerror(saved));
        free(bc->root);
        free(bc);
        errno = saved;
        return -1;
    }
    /* Append: devices of earlier classes keep their order in logs. */
    struct bus_class **pp = &bus->classes;
    while (*pp)
        pp = &(*pp)->next;
    *pp = bc;
    log_info(bc->root, "serving %s devices", cls->type);
    bc->adopting = true;
    scan_class(bus, bc);
    bc->adopting = false;
    return 0;
}

void xenbus_device_ready(struct xenbus_device *dev)
{
    if (!dev->init_pending || dev->error_pending)
        return;
    dev->init_pending = false;
    init_done(dev);
}

unsigned xenbus_device_count(const struct xenbus *bus)
{
    return bus->ndevices;
}

bool xenbus_lost(const struct xenbus *bus)
{
    return bus->lost;
}

const char *xenbus_backend_path(const struct xenbus_device *dev)
{
    return dev->be_path;
}

const char *xenbus_frontend_path(const struct xenbus_device *dev)
{
    return dev->fe_path;
}

xenif_domid xenbus_frontend_id(const struct xenbus_device *dev)
{
    return dev->fe_id;
}

unsigned xenbus_devid(const struct xenbus_device *dev)
{
    return dev->devid;
}

const char *xenbus_type(const struct xenbus_device *dev)
{
    return dev->bc->cls->type;
}

struct evloop *xenbus_loop(const struct xenbus_device *dev)
{
    return dev->bus->loop;
}

const struct xenif_config *xenbus_xenif_config(const struct xenbus_device *dev)
{
    return &dev->bus->cfg;
}

void *xenbus_priv(const struct xenbus_device *dev)
{
    return dev->priv;
}

void xenbus_set_priv(struct xenbus_device *dev, void *priv)
{
    dev->priv = priv;
}

static char *read_at(struct xenbus_device *dev, const char *dir,
                     const char *key)
{
    char *path = path_join(dir, key);
    if (!path)
        return NULL;
    char *v = xenif_xs_read(dev->bus->xs, 0, path, NULL);
    int saved = errno;
    free(path);
    errno = saved;
    return v;
}

char *xenbus_read(struct xenbus_device *dev, const char *key)
{
    return read_at(dev, dev->be_path, key);
}

static int read_uint_at(struct xenbus_device *dev, const char *dir,
                        const char *key, unsigned long *out)
{
    if (!dir) {
        errno = ENOENT;
        return -1;
    }
    char *path = path_join(dir, key);
    if (!path)
        return -1;
    int rc = xenif_xs_read_uint(dev->bus->xs, 0, path, out);
    int saved = errno;
    free(path);
    errno = saved;
    return rc;
}

int xenbus_read_uint(struct xenbus_device *dev, const char *key,
                     unsigned long *out)
{
    return read_uint_at(dev, dev->be_path, key, out);
}

int xenbus_printf(struct xenbus_device *dev, const char *key, const char *fmt,
                  ...)
{
    char *value;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&value, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    int rc = be_write(dev, key, value);
    int saved = errno;
    free(value);
    errno = saved;
    return rc;
}

char *xenbus_read_frontend(struct xenbus_device *dev, const char *key)
{
    if (!dev->fe_path) {
        errno = ENOENT;
        return NULL;
    }
    char *path = path_join(dev->fe_path, key);
    if (!path)
        return NULL;
    char *v = xenif_xs_read(dev->bus->xs, 0, path, NULL);
    int saved = errno;
    free(path);
    errno = saved;
    return v;
}

int xenbus_read_frontend_uint(struct xenbus_device *dev, const char *key,
                              unsigned long *out)
{
    return read_uint_at(dev, dev->fe_path, key, out);
}

void xenbus_device_error(struct xenbus_device *dev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dev->errmsg, sizeof(dev->errmsg), fmt, ap);
    va_end(ap);
    log_error(dev->be_path, "%s", dev->errmsg);
    if (xenif_xs_write(dev->bus->xs, 0, dev->error_path, dev->errmsg,
                       strlen(dev->errmsg)) < 0)
        log_warn(dev->be_path, "cannot write %s: %s", dev->error_path,
                 strerror(errno));
    if (dev->error_pending || dev->dying)
        return;
    dev->error_pending = true;
    dev->next_pending = dev->bus->pending;
    dev->bus->pending = dev;
    uint64_t one = 1;
    if (write(dev->bus->efd, &one, sizeof(one)) < 0)
        log_warn(dev->be_path, "xenbus: eventfd: %s", strerror(errno));
}

bool xenbus_sees_suspend(const struct xenbus_device *dev)
{
    return dev->bus->dom != NULL;
}

char *xenbus_read_own(struct xenbus_device *dev, const char *key)
{
    return read_at(dev, dev->bus->own_path, key);
}

int xenbus_write_own(struct xenbus_device *dev, const char *key,
                     const char *value)
{
    char *path = path_join(dev->bus->own_path, key);
    int rc = path ? xenif_xs_write(dev->bus->xs, 0, path, value, strlen(value))
                  : -1;
    free(path);
    return rc;
}

int xenbus_rm_own(struct xenbus_device *dev, const char *key)
{
    char *path = path_join(dev->bus->own_path, key);
    int rc = path ? xenif_xs_rm(dev->bus->xs, 0, path) : -1;
    if (rc < 0 && errno == ENOENT)
        rc = 0;
    free(path);
    return rc;
}

void xenbus_frontend_uuid(struct xenbus_device *dev, char *buf, size_t len)
{
    char path[48];
    snprintf(path, sizeof(path), "/local/domain/%u/vm", dev->fe_id);
    char *vm = xenif_xs_read(dev->bus->xs, 0, path, NULL);
    const char *u = vm ? strrchr(vm, '/') : NULL;
    buf[0] = '\0';
    /* "/vm/UUID": 36 characters of hex digits and dashes. */
    if (u && strlen(u + 1) == 36 && strspn(u + 1, "0123456789abcdefABCDEF-") == 36)
        snprintf(buf, len, "%s", u + 1);
    free(vm);
}
