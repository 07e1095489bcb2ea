/* vusb: the usbif device class on the xenbus state machine (see vusb.h). */
#include "vusb.h"

#include "backend/channel/channel.h"
#include "hc.h"
#include "evloop.h"
#include "log.h"
#include "port_record.h"
#include "target.h"
#include "timeline.h"
#include "timer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/usbif.h>

/* A device that is not there yet or held by another backend (the one a
 * migrating guest leaves lets go only once the guest runs here) is tried
 * again this often. */
#define CLAIM_RETRY_MS 200
/* For the first attempts, the guest's URBs for such a port wait on the
 * ring (a migrated guest sends them as soon as it runs here); after that
 * they fail with NODEV. */
#define AWAIT_ATTEMPTS 25

struct vusb_port {
    struct vusb_dev *v;
    unsigned num;
    char *name;                  /* what port/N names, "" for none */
    struct vusb_target *target;
    struct timer *retry;
    unsigned retries;
};

struct vusb_dev {
    struct xenbus_device *dev;
    unsigned nports, usb_ver;
    struct vusb_port ports[USBIF_MAX_PORTNR + 1];
    struct vusb_hc *hc;
    bool suspended;
    /* The guest suspended here: its local devices were let go for its next
     * controller (xl restore, a live migration to this host) and its port
     * records are kept. */
    bool ports_kept;
    /* The drained controller's devices are let go after the event batch:
     * libusb cannot close a device from inside its own callbacks. */
    struct evloop_deferred after_drain;
    char uuid[40];
    struct timeline_op *tl;      /* suspend record in progress */
};

/* ---- ports ------------------------------------------------------------------ */

static void on_target_changed(void *opaque)
{
    struct vusb_port *p = opaque;
    if (p->v->hc)
        vusb_hc_port_changed(p->v->hc, p->num);
}

static bool is_remote(const char *name)
{
    return strncmp(name, "netbus://", 9) == 0;
}

/* Whether the guest's URBs for the port should wait for its device. */
static bool awaiting(const struct vusb_port *p)
{
    return !p->target && p->name && *p->name && p->retries > 0 &&
           p->retries <= AWAIT_ATTEMPTS;
}

static void close_port(struct vusb_port *p)
{
    timer_cancel(p->retry);
    p->retries = 0;
    if (p->v->hc) {
        vusb_hc_port_awaiting(p->v->hc, p->num, false);
        vusb_hc_set_port(p->v->hc, p->num, NULL);
    }
    if (p->target) {
        p->target->ops->close(p->target);
        p->target = NULL;
    }
    free(p->name);
    p->name = NULL;
}

/* A netbus:// port whose export refused us or went away for good. */
static void port_failed(void *opaque, const char *why)
{
    struct vusb_port *p = opaque;
    char key[40];
    snprintf(key, sizeof(key), "netbus-port-error/%u", p->num);
    log_error(xenbus_backend_path(p->v->dev), "port %u: %s", p->num, why);
    xenbus_printf(p->v->dev, key, "%s", why);
}

/* Opens what port/N names now. A device that cannot be claimed leaves the
 * port empty and says why in the log and in netbus-port-error/N; the other
 * ports carry on. */
static void open_port(struct vusb_port *p, const char *name)
{
    struct xenbus_device *dev = p->v->dev;
    char key[40], where[300];
    snprintf(key, sizeof(key), "netbus-port-error/%u", p->num);
    snprintf(where, sizeof(where), "%s/port/%u", xenbus_backend_path(dev), p->num);
    p->name = strdup(name);
    if (!p->name || !*name) {
        xenbus_printf(dev, key, "%s", "");
        return;
    }
    char err[300] = "";
    errno = 0;
    if (is_remote(name))
        p->target = channel_open_usb_url(name, p->v->uuid[0] ? p->v->uuid : NULL,
                                         where, port_failed, p, err,
                                         sizeof(err));
    else
        p->target = vusb_target_libusb_open(name, xenbus_loop(dev), where, err,
                                            sizeof(err));
    if (!p->target) {
        bool again = errno == EBUSY || errno == ENODEV;
        if (p->retries++ == 0) {
            const char *note = again ? "; trying again every 200 ms" : "";
            log_error(where, "%s%s", err, note);
            xenbus_printf(dev, key, "%s%s", err, note);
        }
        if (again)
            timer_at(p->retry, mono_ms() + CLAIM_RETRY_MS);
        else
            p->retries = AWAIT_ATTEMPTS + 1;
        if (p->v->hc)
            vusb_hc_port_awaiting(p->v->hc, p->num, awaiting(p));
        return;
    }
    if (p->retries)
        log_info(where, "claimed on attempt %u", p->retries + 1);
    p->retries = 0;
    xenbus_printf(dev, key, "%s", "");
    p->target->changed = on_target_changed;
    p->target->opaque = p;
    if (p->v->hc)
        vusb_hc_set_port(p->v->hc, p->num, p->target);
}

static void on_retry(void *opaque)
{
    struct vusb_port *p = opaque;
    if (p->target || !p->name || !*p->name || p->v->ports_kept)
        return;
    char *name = p->name;
    p->name = NULL;
    open_port(p, name);
    free(name);
}

/* Makes port N serve what port/N names, if that changed. */
static void sync_port(struct vusb_dev *v, unsigned n)
{
    char key[16];
    snprintf(key, sizeof(key), "port/%u", n);
    char *name = xenbus_read(v->dev, key);
    const char *now = name ? name : "";
    struct vusb_port *p = &v->ports[n];
    if (!p->name || strcmp(p->name, now) != 0) {
        if (p->name)
            log_info(xenbus_backend_path(v->dev), "port %u: '%s' -> '%s'", n,
                     p->name, now);
        close_port(p);
        open_port(p, now);
        if (v->uuid[0] && !v->suspended && !v->ports_kept)
            port_record_store(v->dev, v->uuid, n, now);
    }
    free(name);
}

/* A port libxl created empty gets the device the guest's previous
 * controller on this host had there (see port_record.h). */
static void restore_port(struct vusb_dev *v, unsigned n)
{
    char key[16];
    snprintf(key, sizeof(key), "port/%u", n);
    char *now = xenbus_read(v->dev, key);
    char *kept = now && *now ? NULL : port_record_load(v->dev, v->uuid, n);
    if (kept && *kept) {
        log_info(xenbus_backend_path(v->dev), "port %u: '%s', as this guest "
                 "had it before its save or migration", n, kept);
        xenbus_printf(v->dev, key, "%s", kept);
    }
    free(kept);
    free(now);
}

/* The guest no longer runs on this controller: its local devices go to its
 * next one (remote ones stay with their export, whose session the next
 * controller takes over). The ports keep their names and, should the guest
 * resume here, claim them back without the guest seeing a change. */
static void let_ports_go(struct vusb_dev *v)
{
    v->ports_kept = true;
    for (unsigned i = 1; i <= v->nports; i++) {
        struct vusb_port *p = &v->ports[i];
        timer_cancel(p->retry); /* a device still being claimed stays free */
        if (!p->target || is_remote(p->name))
            continue;
        if (v->hc) {
            vusb_hc_port_awaiting(v->hc, i, true);
            vusb_hc_set_port(v->hc, i, NULL);
        }
        p->target->keep_detached = true;
        p->target->ops->close(p->target);
        p->target = NULL;
        log_info(xenbus_backend_path(v->dev), "port %u: %s let go for the "
                 "guest's next controller", i, p->name);
    }
}

static void claim_ports_back(struct vusb_dev *v)
{
    v->ports_kept = false;
    for (unsigned i = 1; i <= v->nports; i++) {
        struct vusb_port *p = &v->ports[i];
        if (p->name && *p->name && !p->target) {
            p->retries = 0;
            on_retry(p);
        }
    }
}

/* ---- xenbus class --------------------------------------------------------- */

static void let_go_after_drain(void *opaque);

static int vusb_init(struct xenbus_device *dev)
{
    unsigned long nports, ver = 2;
    if (xenbus_read_uint(dev, "num-ports", &nports) < 0 || nports == 0 ||
        nports > USBIF_MAX_PORTNR) {
        xenbus_device_error(dev, "num-ports must be 1 to %d (the toolstack "
                            "writes it from usbctrl's ports=)", USBIF_MAX_PORTNR);
        return -1;
    }
    char *s = xenbus_read(dev, "usb-ver");
    if (s && (xenbus_read_uint(dev, "usb-ver", &ver) < 0 || ver < 1 || ver > 2)) {
        free(s);
        xenbus_device_error(dev, "usb-ver must be 1 or 2 (usbctrl's version=)");
        return -1;
    }
    free(s);
    struct vusb_dev *v = calloc(1, sizeof(*v));
    if (!v) {
        xenbus_device_error(dev, "out of memory");
        return -1;
    }
    v->dev = dev;
    v->after_drain.cb = let_go_after_drain;
    v->after_drain.opaque = v;
    v->nports = (unsigned)nports;
    v->usb_ver = (unsigned)ver;
    xenbus_frontend_uuid(dev, v->uuid, sizeof(v->uuid));
    xenbus_set_priv(dev, v);
    for (unsigned i = 1; i <= v->nports; i++) {
        v->ports[i].v = v;
        v->ports[i].num = i;
        v->ports[i].retry = timer_new(xenbus_loop(dev), on_retry, &v->ports[i]);
        if (!v->ports[i].retry) {
            xenbus_device_error(dev, "out of memory");
            return -1;
        }
        if (v->uuid[0])
            restore_port(v, i);
        sync_port(v, i);
    }
    log_info(xenbus_backend_path(dev), "USB %s controller, %u port(s)",
             v->usb_ver == 1 ? "1.1" : "2.0", v->nports);
    return 0;
}

static void hc_failed(void *opaque, const char *why)
{
    struct vusb_dev *v = opaque;
    xenbus_device_error(v->dev, "%s", why);
}

static int fe_uint(struct xenbus_device *dev, const char *key,
                   unsigned long *out)
{
    if (xenbus_read_frontend_uint(dev, key, out) == 0 && *out <= UINT32_MAX)
        return 0;
    xenbus_device_error(dev, "frontend %s missing or not a number", key);
    return -1;
}

static int vusb_connect(struct xenbus_device *dev)
{
    struct vusb_dev *v = xenbus_priv(dev);
    vusb_hc_close(v->hc); /* a frontend starting over */
    v->hc = NULL;
    v->suspended = false;
    if (v->ports_kept)
        claim_ports_back(v);
    uint64_t t_attach = timeline_now_us();
    unsigned long urb_ref, conn_ref, evtchn;
    if (fe_uint(dev, "urb-ring-ref", &urb_ref) < 0 ||
        fe_uint(dev, "conn-ring-ref", &conn_ref) < 0 ||
        fe_uint(dev, "event-channel", &evtchn) < 0)
        return -1;
    struct vusb_target *targets[USBIF_MAX_PORTNR + 1] = { NULL };
    for (unsigned i = 1; i <= v->nports; i++)
        targets[i] = v->ports[i].target;
    struct vusb_hc_params p = {
        .where = xenbus_backend_path(dev),
        .loop = xenbus_loop(dev),
        .cfg = xenbus_xenif_config(dev),
        .domid = xenbus_frontend_id(dev),
        .urb_ref = (xenif_gref)urb_ref,
        .conn_ref = (xenif_gref)conn_ref,
        .remote_port = (xenif_port)evtchn,
        .nports = v->nports,
        .targets = targets,
        .fail = hc_failed,
        .opaque = v,
    };
    char err[300];
    v->hc = vusb_hc_open(&p, err, sizeof(err));
    if (!v->hc) {
        xenbus_device_error(dev, "%s", err);
        return -1;
    }
    for (unsigned i = 1; i <= v->nports; i++)
        vusb_hc_port_awaiting(v->hc, i, awaiting(&v->ports[i]));
    if (xenbus_sees_suspend(dev))
        xenbus_printf(dev, "netbus-quiesced", "0");
    struct timeline_op *op = timeline_begin("connect", p.where, v->uuid,
                                            p.domid, "usb");
    timeline_mark_at(op, "attached", t_attach);
    timeline_end(op, "ok");
    log_info(p.where, "connected");
    return 0;
}

/* netbus-quiesced is written once the devices are let go, so the guest's
 * next controller can claim them as soon as the toolstack sees it. */
static void let_go_after_drain(void *opaque)
{
    struct vusb_dev *v = opaque;
    let_ports_go(v);
    xenbus_printf(v->dev, "netbus-quiesced", "1");
    log_info(xenbus_backend_path(v->dev), "quiesced: no URB in flight");
}

static void suspend_drained(void *opaque)
{
    struct vusb_dev *v = opaque;
    timeline_mark(v->tl, "drained");
    evloop_defer(xenbus_loop(v->dev), &v->after_drain);
}

static void vusb_suspend(struct xenbus_device *dev)
{
    struct vusb_dev *v = xenbus_priv(dev);
    if (!v || !v->hc || v->suspended)
        return;
    v->suspended = true;
    v->tl = timeline_begin("suspend", xenbus_backend_path(dev), v->uuid,
                           xenbus_frontend_id(dev), "usb");
    timeline_mark(v->tl, "quiesce-start");
    vusb_hc_quiesce(v->hc, suspend_drained);
}

static void vusb_resume(struct xenbus_device *dev)
{
    struct vusb_dev *v = xenbus_priv(dev);
    if (!v)
        return;
    evloop_defer_cancel(xenbus_loop(dev), &v->after_drain);
    if (v->ports_kept)
        claim_ports_back(v);
    if (!v->suspended)
        return;
    v->suspended = false;
    if (!v->hc)
        return;
    xenbus_printf(dev, "netbus-quiesced", "0");
    timeline_end(v->tl, "resumed");
    v->tl = NULL;
    vusb_hc_resume(v->hc);
}

static void vusb_backend_changed(struct xenbus_device *dev, const char *key)
{
    struct vusb_dev *v = xenbus_priv(dev);
    unsigned long n;
    char *end;
    if (!v || strncmp(key, "port/", 5) != 0)
        return;
    n = strtoul(key + 5, &end, 10);
    if (*end == '\0' && n >= 1 && n <= v->nports)
        sync_port(v, (unsigned)n);
}

static void vusb_disconnect(struct xenbus_device *dev)
{
    struct vusb_dev *v = xenbus_priv(dev);
    if (!v || !v->hc)
        return;
    struct vusb_hc_stats st;
    vusb_hc_stats(v->hc, &st);
    vusb_hc_close(v->hc);
    v->hc = NULL;
    v->suspended = false;
    if (v->tl) {
        timeline_mark(v->tl, "detached");
        timeline_end(v->tl, "ok");
        v->tl = NULL;
    }
    log_info(xenbus_backend_path(dev), "disconnected (%llu URBs, %llu errors, "
             "%llu unlinks)", (unsigned long long)st.urbs,
             (unsigned long long)st.errors, (unsigned long long)st.unlinks);
}

static void vusb_free(struct xenbus_device *dev)
{
    struct vusb_dev *v = xenbus_priv(dev);
    if (!v)
        return;
    evloop_defer_cancel(xenbus_loop(dev), &v->after_drain);
    vusb_disconnect(dev);
    if (v->uuid[0] && !v->ports_kept)
        port_record_forget(dev, v->uuid);
    for (unsigned i = 1; i <= v->nports; i++) {
        close_port(&v->ports[i]);
        timer_free(v->ports[i].retry);
    }
    timeline_end(v->tl, "ok");
    xenbus_set_priv(dev, NULL);
    free(v);
}

const struct xenbus_class vusb_class = {
    .type = "vusb",
    .init = vusb_init,
    .connect = vusb_connect,
    .disconnect = vusb_disconnect,
    .suspend = vusb_suspend,
    .resume = vusb_resume,
    .backend_changed = vusb_backend_changed,
    .free = vusb_free,
};

const struct xenbus_class qusb_class = {
    .type = "qusb",
    .init = vusb_init,
    .connect = vusb_connect,
    .disconnect = vusb_disconnect,
    .suspend = vusb_suspend,
    .resume = vusb_resume,
    .backend_changed = vusb_backend_changed,
    .free = vusb_free,
};
