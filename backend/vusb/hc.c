/* hc: the virtual host controller serving one usbif connection (see hc.h). */
#include "hc.h"

#include "evloop.h"
#include "log.h"
#include "ring.h"
#include "timer.h"
#include "usbif_req.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define PAGE XENIF_PAGE_SIZE
#define MAX_URBS 64            /* more than a one-page urb ring holds */
#define BAD_LOG_FIRST 32
#define BAD_LOG_EVERY 1024
/* A quiesce waits this long for in-flight URBs, then cancels them (a
 * frontend that drains at freeze, as ours does, has none left). */
#define QUIESCE_CANCEL_MS 1000

struct hc_urb {
    struct vusb_xfer x;        /* first: the target hands it back */
    struct vusb_hc *hc;
    struct usbif_req req;
    void *map, *iso_map;       /* data and isochronous descriptor pages */
    uint8_t *bounce;           /* data when the segments are not one run */
    bool in_use, unlinked;
    struct hc_urb *next_free;
};

struct hc_port {
    struct vusb_target *target;
    unsigned addr;             /* the guest's address of the device */
    bool addressed;
    enum vusb_speed reported;  /* what the frontend was last told */
    /* Its device is named but not claimed yet (the backend the guest
     * migrated from still holds it): URBs for it wait on the ring. */
    bool awaiting;
};

struct vusb_hc {
    struct vusb_hc_params p;
    struct xenif_gnt *gnt;
    struct xenif_evtchn *ec;
    xenif_port port;
    int fd;
    bool fd_added;
    void *urb_page, *conn_page;
    struct back_ring urb, conn;
    struct hc_urb urbs[MAX_URBS], *free_urbs;
    unsigned inflight;
    struct hc_port ports[USBIF_MAX_PORTNR + 1];
    bool quiesced, dead, processing, reprocess;
    void (*on_drained)(void *opaque);
    struct timer *cancel_timer;
    struct evloop_deferred after_batch;
    struct vusb_hc_stats stats;
    uint64_t bad;
};

/* ---- responses ----------------------------------------------------------- */

static int32_t usbif_status(int status)
{
    switch (status) {
    case 0: return USBIF_STATUS_OK;
    case -ENODEV: return USBIF_STATUS_NODEV;
    case -EINVAL: return USBIF_STATUS_INVAL;
    case -EPIPE: return USBIF_STATUS_STALL;
    case -EOVERFLOW: return USBIF_STATUS_BABBLE;
    case -ECONNRESET: case -ESHUTDOWN: return USBIF_STATUS_SHUTDOWN;
    default: return USBIF_STATUS_IOERROR;
    }
}

static void respond(struct vusb_hc *hc, uint16_t id, int32_t status,
                    uint32_t actual, uint16_t start_frame, uint32_t errors)
{
    struct usbif_urb_response rsp = {
        .id = id, .start_frame = start_frame, .status = status,
        .actual_length = (int32_t)actual, .error_count = (int32_t)errors,
    };
    memcpy(back_ring_next_response(&hc->urb), &rsp, sizeof(rsp));
    back_ring_respond(&hc->urb);
    if (status != USBIF_STATUS_OK)
        hc->stats.errors++;
    evloop_defer(hc->p.loop, &hc->after_batch);
}

static void push(struct vusb_hc *hc)
{
    bool notify = back_ring_push(&hc->urb);
    notify |= back_ring_push(&hc->conn);
    if (notify && xenif_evtchn_notify(hc->ec, hc->port) < 0)
        log_warn(hc->p.where, "notify: %s", strerror(errno));
}

static void fail(struct vusb_hc *hc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(struct vusb_hc *hc, const char *fmt, ...)
{
    if (hc->dead)
        return;
    hc->dead = true;
    if (hc->fd_added) {
        evloop_del(hc->p.loop, hc->fd);
        hc->fd_added = false;
    }
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    hc->p.fail(hc->p.opaque, why);
}

static void bad_request(struct vusb_hc *hc, const struct usbif_req *r,
                        int32_t status, const char *why)
{
    hc->bad++;
    if (hc->bad <= BAD_LOG_FIRST || hc->bad % BAD_LOG_EVERY == 0)
        log_warn(hc->p.where, "bad URB id %u (port %u, ep 0x%02x): %s%s",
                 r->id, r->port, r->ep, why, hc->bad == BAD_LOG_FIRST
                 ? " (further ones logged 1 in 1024)" : "");
    respond(hc, r->id, status, 0, 0, 0);
}

/* ---- conn ring ------------------------------------------------------------- */

/* A port awaiting its device still shows the one the frontend knows: the
 * device is being handed between backends, not unplugged. */
static enum vusb_speed port_speed(const struct hc_port *p)
{
    if (!p->target)
        return p->awaiting ? p->reported : VUSB_SPEED_NONE;
    return p->target->speed;
}

/* Tells the frontend of every port whose device it has not heard of, as
 * far as it has posted requests for. */
static void report_ports(struct vusb_hc *hc)
{
    for (unsigned i = 1; i <= hc->p.nports && !hc->dead; i++) {
        struct hc_port *p = &hc->ports[i];
        enum vusb_speed now = port_speed(p);
        if (now == p->reported)
            continue;
        uint32_t rp;
        if (back_ring_req_prod(&hc->conn, &rp) < 0) {
            fail(hc, "conn ring: req_prod %u is more than a ring ahead", rp);
            return;
        }
        if (hc->conn.req_cons == rp || !back_ring_has_room(&hc->conn)) {
            /* Wait for the frontend to post a request. */
            if (!back_ring_final_check(&hc->conn))
                return;
            i--;
            continue;
        }
        struct usbif_conn_request req;
        memcpy(&req, back_ring_slot(&hc->conn, hc->conn.req_cons), sizeof(req));
        hc->conn.req_cons++;
        struct usbif_conn_response rsp = {
            .id = req.id, .portnum = (uint8_t)i, .speed = (uint8_t)now,
        };
        memcpy(back_ring_next_response(&hc->conn), &rsp, sizeof(rsp));
        back_ring_respond(&hc->conn);
        p->reported = now;
        log_info(hc->p.where, "port %u: %s", i, now == VUSB_SPEED_NONE
                 ? "device gone" : vusb_speed_name(now));
        evloop_defer(hc->p.loop, &hc->after_batch);
    }
}

/* ---- URBs ------------------------------------------------------------------ */

static void release(struct vusb_hc *hc, struct hc_urb *u)
{
    const struct usbif_req *r = &u->req;
    if (u->map && xenif_gnt_unmap(hc->gnt, u->map, r->nr_data_segs) < 0)
        log_error(hc->p.where, "unmapping %u data grants: %s",
                  r->nr_data_segs, strerror(errno));
    if (u->iso_map && xenif_gnt_unmap(hc->gnt, u->iso_map, r->nr_iso_segs) < 0)
        log_error(hc->p.where, "unmapping %u descriptor grants: %s",
                  r->nr_iso_segs, strerror(errno));
    free(u->bounce);
    free(u->x.iso);
    u->map = u->iso_map = NULL;
    u->bounce = NULL;
    u->x.iso = NULL;
    u->in_use = false;
    u->next_free = hc->free_urbs;
    hc->free_urbs = u;
}

/* Copies between the bounce buffer and the guest's segments. */
static void bounce_copy(struct hc_urb *u, bool to_guest, uint32_t len)
{
    uint8_t *b = u->bounce;
    for (unsigned i = 0; i < u->req.nr_data_segs && len; i++) {
        const struct usbif_request_segment *s = &u->req.seg[i];
        uint8_t *g = (uint8_t *)u->map + (size_t)i * PAGE + s->offset;
        uint32_t n = s->length < len ? s->length : len;
        if (to_guest)
            memcpy(g, b, n);
        else
            memcpy(b, g, n);
        b += n;
        len -= n;
    }
}

static void check_drained(struct vusb_hc *hc)
{
    if (!hc->quiesced || hc->inflight || !hc->on_drained)
        return;
    timer_cancel(hc->cancel_timer);
    void (*cb)(void *) = hc->on_drained;
    hc->on_drained = NULL;
    cb(hc->p.opaque);
}

static void urb_done(struct vusb_xfer *x)
{
    struct hc_urb *u = (struct hc_urb *)x;
    struct vusb_hc *hc = u->hc;
    if (x->actual > x->length)
        x->actual = x->length;
    /* Isochronous packets lie at their own offsets, short ones leaving
     * gaps: the whole buffer goes back (gaps zeroed by calloc). */
    if (u->req.in && u->bounce)
        bounce_copy(u, true, u->req.type == VUSB_XFER_ISO ? x->length : x->actual);
    if (u->iso_map) {
        uint8_t *d = (uint8_t *)u->iso_map + u->req.seg[u->req.nr_data_segs].offset;
        memcpy(d, x->iso, usbif_req_iso_bytes(&u->req));
    }
    respond(hc, u->req.id, usbif_status(x->status), x->actual, x->start_frame,
            x->error_count);
    hc->inflight--;
    release(hc, u);
    check_drained(hc);
}

static void *map_segs(struct vusb_hc *hc, const struct usbif_request_segment *s,
                      unsigned n, bool writable)
{
    xenif_gref refs[USBIF_MAX_SEGMENTS_PER_REQUEST];
    for (unsigned i = 0; i < n; i++)
        refs[i] = s[i].gref;
    return xenif_gnt_map(hc->gnt, hc->p.domid, n, refs,
                         XENIF_GNT_READ | (writable ? XENIF_GNT_WRITE : 0));
}

/* Isochronous descriptors: copied out, each packet checked to lie inside
 * the data. The mapping stays for the results. */
static const char *load_iso(struct vusb_hc *hc, struct hc_urb *u)
{
    const struct usbif_req *r = &u->req;
    /* The descriptors must be one run too: checked page by page. */
    for (unsigned i = 1; i < r->nr_iso_segs; i++)
        if (r->seg[r->nr_data_segs + i].offset != 0 ||
            r->seg[r->nr_data_segs + i - 1].offset +
                    r->seg[r->nr_data_segs + i - 1].length != PAGE)
            return "isochronous descriptors are not one run of bytes";
    u->iso_map = map_segs(hc, &r->seg[r->nr_data_segs], r->nr_iso_segs, true);
    if (!u->iso_map)
        return "isochronous descriptor grants cannot be mapped";
    u->x.iso = malloc(usbif_req_iso_bytes(r));
    if (!u->x.iso)
        return "out of memory";
    memcpy(u->x.iso, (uint8_t *)u->iso_map + r->seg[r->nr_data_segs].offset,
           usbif_req_iso_bytes(r));
    u->x.nr_iso = r->nr_packets;
    for (unsigned i = 0; i < r->nr_packets; i++) {
        struct vusb_iso_packet *p = &u->x.iso[i];
        if (p->offset > r->length || p->length > r->length - p->offset)
            return "isochronous packet outside the buffer";
        p->actual = 0;
        p->status = 0;
    }
    return NULL;
}

/* Maps the request's buffers into u->x. NULL, or why it cannot be done. */
static const char *load_buffers(struct vusb_hc *hc, struct hc_urb *u)
{
    const struct usbif_req *r = &u->req;
    if (r->nr_data_segs) {
        u->map = map_segs(hc, r->seg, r->nr_data_segs, r->in);
        if (!u->map)
            return "data grants cannot be mapped";
        if (r->contiguous) {
            u->x.data = (uint8_t *)u->map + r->seg[0].offset;
        } else {
            u->bounce = calloc(1, r->length ? r->length : 1);
            if (!u->bounce)
                return "out of memory";
            if (!r->in)
                bounce_copy(u, false, r->length);
            u->x.data = u->bounce;
        }
    }
    if (r->type == VUSB_XFER_ISO)
        return load_iso(hc, u);
    return NULL;
}

static void unlink_urb(struct vusb_hc *hc, const struct usbif_req *r)
{
    hc->stats.unlinks++;
    for (unsigned i = 0; i < MAX_URBS; i++) {
        struct hc_urb *u = &hc->urbs[i];
        if (u->in_use && !u->unlinked && u->req.id == r->unlink_id &&
            u->req.port == r->port) {
            u->unlinked = true;
            struct vusb_target *t = hc->ports[r->port].target;
            if (t)
                t->ops->cancel(t, &u->x);
            break;
        }
    }
    /* Already answered (or never seen): nothing to cancel, as in Linux. */
    respond(hc, r->id, USBIF_STATUS_OK, 0, 0, 0);
}

/* SET_ADDRESS is the host controller's: answered here. */
static bool set_address(struct vusb_hc *hc, const struct usbif_req *r)
{
    if (r->type != VUSB_XFER_CTRL || r->setup[0] != 0x00 || r->setup[1] != 5)
        return false;
    struct hc_port *p = &hc->ports[r->port];
    p->addr = r->setup[2] & 0x7f;
    p->addressed = p->addr != 0;
    log_debug(hc->p.where, "port %u: SET_ADDRESS %u", r->port, p->addr);
    respond(hc, r->id, USBIF_STATUS_OK, 0, 0, 0);
    return true;
}

/* Whether the URB's device address is the port's device. */
static bool address_ok(struct vusb_hc *hc, const struct usbif_req *r)
{
    struct hc_port *p = &hc->ports[r->port];
    if (r->devaddr == 0 || (p->addressed && r->devaddr == p->addr))
        return true;
    if (p->addressed)
        return false;
    log_info(hc->p.where, "port %u: adopting address %u (the guest addressed "
             "the device through an earlier backend)", r->port, r->devaddr);
    p->addr = r->devaddr;
    p->addressed = true;
    return true;
}

static void submit(struct vusb_hc *hc, const struct usbif_req *r)
{
    struct hc_port *p = &hc->ports[r->port];
    if (!p->target || p->target->speed == VUSB_SPEED_NONE) {
        respond(hc, r->id, USBIF_STATUS_NODEV, 0, 0, 0);
        return;
    }
    if (set_address(hc, r))
        return;
    if (!address_ok(hc, r)) {
        bad_request(hc, r, USBIF_STATUS_NODEV, "no device at that address");
        return;
    }
    struct hc_urb *u = hc->free_urbs;
    hc->free_urbs = u->next_free;
    memset(&u->x, 0, sizeof(u->x));
    u->req = *r;
    u->in_use = true;
    u->unlinked = false;
    u->x.type = r->type;
    u->x.ep = r->ep;
    memcpy(u->x.setup, r->setup, sizeof(u->x.setup));
    u->x.short_not_ok = r->short_not_ok;
    u->x.interval = r->interval;
    u->x.start_frame = r->start_frame;
    u->x.length = r->length;
    u->x.done = urb_done;
    const char *why = load_buffers(hc, u);
    if (why) {
        bad_request(hc, r, USBIF_STATUS_INVAL, why);
        release(hc, u);
        return;
    }
    int rc = p->target->ops->submit(p->target, &u->x);
    if (rc < 0) {
        if (rc != -ENODEV)
            log_warn(hc->p.where, "port %u: URB id %u: %s", r->port, r->id,
                     strerror(-rc));
        respond(hc, r->id, usbif_status(rc), 0, 0, 0);
        release(hc, u);
        return;
    }
    hc->inflight++;
}

static void handle(struct vusb_hc *hc, const uint8_t *slot)
{
    struct usbif_req r;
    const char *why = NULL;
    int st = usbif_req_parse(slot, hc->p.nports, &r, &why);
    hc->stats.urbs++;
    if (st)
        bad_request(hc, &r, st, why);
    else if (r.unlink)
        unlink_urb(hc, &r);
    else
        submit(hc, &r);
}

/* Whether the request in slot is for a port whose device is being
 * claimed: it stays on the ring (and those behind it) until then. */
static bool must_wait(const struct vusb_hc *hc, const uint8_t *slot)
{
    uint32_t pipe;
    memcpy(&pipe, slot + offsetof(struct usbif_urb_request, pipe), sizeof(pipe));
    unsigned port = usbif_pipeportnum(pipe);
    return port >= 1 && port <= hc->p.nports && !usbif_pipeunlink(pipe) &&
           hc->ports[port].awaiting && !hc->ports[port].target;
}

static void consume(struct vusb_hc *hc)
{
    while (!hc->dead && !hc->quiesced) {
        uint32_t rp;
        if (back_ring_req_prod(&hc->urb, &rp) < 0) {
            fail(hc, "urb ring: req_prod %u is more than a ring ahead of "
                 "req_cons %u: disconnecting", rp, hc->urb.req_cons);
            return;
        }
        while (hc->urb.req_cons != rp && !hc->dead) {
            /* A frontend keeping to the protocol never fills both. */
            if (!back_ring_has_room(&hc->urb) || !hc->free_urbs)
                return; /* completions free a slot and call us again */
            uint8_t copy[sizeof(struct usbif_urb_request)];
            memcpy(copy, back_ring_slot(&hc->urb, hc->urb.req_cons), sizeof(copy));
            __atomic_signal_fence(__ATOMIC_SEQ_CST); /* parse the copy only */
            if (must_wait(hc, copy))
                return; /* taken when the port's device is there */
            hc->urb.req_cons++;
            handle(hc, copy);
        }
        if (!back_ring_final_check(&hc->urb))
            return;
    }
}

static void process(struct vusb_hc *hc)
{
    /* A target may complete a URB from inside submit: never walk the ring
     * twice at once. */
    if (hc->processing) {
        hc->reprocess = true;
        return;
    }
    hc->processing = true;
    do {
        hc->reprocess = false;
        consume(hc);
        report_ports(hc);
    } while (hc->reprocess);
    hc->processing = false;
}

/* After each batch of events: completions may have made room on the ring;
 * responses go out with one notification. */
static void on_after_batch(void *opaque)
{
    struct vusb_hc *hc = opaque;
    if (!hc->dead)
        process(hc);
    push(hc);
}

static void on_evtchn(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct vusb_hc *hc = opaque;
    int p = xenif_evtchn_pending(hc->ec);
    if (p >= 0)
        xenif_evtchn_unmask(hc->ec, (xenif_port)p);
    process(hc);
    evloop_defer(hc->p.loop, &hc->after_batch);
}

/* ---- ports ------------------------------------------------------------------ */

void vusb_hc_set_port(struct vusb_hc *hc, unsigned port, struct vusb_target *t)
{
    if (port == 0 || port > hc->p.nports)
        return;
    struct hc_port *p = &hc->ports[port];
    p->target = t;
    if (t)
        p->awaiting = false;
    if (!t || t->speed == VUSB_SPEED_NONE)
        p->addressed = false; /* a new device starts at address 0 */
    process(hc);
    evloop_defer(hc->p.loop, &hc->after_batch);
}

void vusb_hc_port_awaiting(struct vusb_hc *hc, unsigned port, bool awaiting)
{
    if (port == 0 || port > hc->p.nports || hc->ports[port].awaiting == awaiting)
        return;
    hc->ports[port].awaiting = awaiting;
    if (!awaiting) {
        process(hc);
        evloop_defer(hc->p.loop, &hc->after_batch);
    }
}

void vusb_hc_port_changed(struct vusb_hc *hc, unsigned port)
{
    vusb_hc_set_port(hc, port, hc->ports[port].target);
}

/* ---- quiesce ------------------------------------------------------------------ */

static void cancel_inflight(struct vusb_hc *hc)
{
    for (unsigned i = 0; i < MAX_URBS; i++) {
        struct hc_urb *u = &hc->urbs[i];
        struct vusb_target *t = hc->ports[u->req.port].target;
        if (u->in_use && t && !u->unlinked) {
            u->unlinked = true;
            t->ops->cancel(t, &u->x);
        }
    }
}

static void on_cancel_timer(void *opaque)
{
    struct vusb_hc *hc = opaque;
    if (!hc->quiesced || !hc->inflight)
        return;
    log_warn(hc->p.where, "quiesce: %u URB(s) still in flight after %d ms: "
             "cancelling them (a frontend that drains at freeze has none)",
             hc->inflight, QUIESCE_CANCEL_MS);
    cancel_inflight(hc);
}

void vusb_hc_quiesce(struct vusb_hc *hc, void (*on_drained)(void *opaque))
{
    hc->quiesced = true;
    hc->on_drained = on_drained;
    if (hc->inflight)
        timer_at(hc->cancel_timer, mono_ms() + QUIESCE_CANCEL_MS);
    check_drained(hc);
}

void vusb_hc_resume(struct vusb_hc *hc)
{
    hc->quiesced = false;
    hc->on_drained = NULL;
    timer_cancel(hc->cancel_timer);
    process(hc);
    evloop_defer(hc->p.loop, &hc->after_batch);
}

unsigned vusb_hc_inflight(const struct vusb_hc *hc)
{
    return hc->inflight;
}

void vusb_hc_stats(const struct vusb_hc *hc, struct vusb_hc_stats *out)
{
    *out = hc->stats;
}

/* ---- open / close --------------------------------------------------------------- */

static void hc_free(struct vusb_hc *hc)
{
    evloop_defer_cancel(hc->p.loop, &hc->after_batch);
    if (hc->fd_added)
        evloop_del(hc->p.loop, hc->fd);
    if (hc->ec) {
        if (hc->port)
            xenif_evtchn_unbind(hc->ec, hc->port);
        xenif_evtchn_close(hc->ec);
    }
    if (hc->urb_page && xenif_gnt_unmap(hc->gnt, hc->urb_page, 1) < 0)
        log_error(hc->p.where, "unmapping the urb ring: %s", strerror(errno));
    if (hc->conn_page && xenif_gnt_unmap(hc->gnt, hc->conn_page, 1) < 0)
        log_error(hc->p.where, "unmapping the conn ring: %s", strerror(errno));
    if (hc->gnt)
        xenif_gnt_close(hc->gnt);
    timer_free(hc->cancel_timer);
    free(hc);
}

struct vusb_hc *vusb_hc_open(const struct vusb_hc_params *p, char *err,
                             size_t errlen)
{
    if (p->nports == 0 || p->nports > USBIF_MAX_PORTNR) {
        snprintf(err, errlen, "%u ports (1 to %d)", p->nports, USBIF_MAX_PORTNR);
        return NULL;
    }
    struct vusb_hc *hc = calloc(1, sizeof(*hc));
    if (!hc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    hc->p = *p;
    hc->p.targets = NULL; /* copied into ports[] once open */
    hc->fd = -1;
    hc->after_batch.cb = on_after_batch;
    hc->after_batch.opaque = hc;
    for (unsigned i = MAX_URBS; i-- > 0;) {
        hc->urbs[i].hc = hc;
        hc->urbs[i].next_free = hc->free_urbs;
        hc->free_urbs = &hc->urbs[i];
    }
    hc->cancel_timer = timer_new(p->loop, on_cancel_timer, hc);
    hc->gnt = xenif_gnt_open(p->cfg, err, errlen);
    if (!hc->cancel_timer || !hc->gnt)
        goto fail;
    int prot = XENIF_GNT_READ | XENIF_GNT_WRITE;
    hc->urb_page = xenif_gnt_map(hc->gnt, p->domid, 1, &p->urb_ref, prot);
    hc->conn_page = hc->urb_page
                        ? xenif_gnt_map(hc->gnt, p->domid, 1, &p->conn_ref, prot)
                        : NULL;
    if (!hc->conn_page) {
        snprintf(err, errlen, "mapping the %s ring (grant %u): %s",
                 hc->urb_page ? "conn" : "urb",
                 hc->urb_page ? p->conn_ref : p->urb_ref, strerror(errno));
        goto fail;
    }
    if (back_ring_attach(&hc->urb, hc->urb_page, PAGE,
                         sizeof(union usbif_urb_sring_entry)) < 0 ||
        back_ring_attach(&hc->conn, hc->conn_page, PAGE,
                         sizeof(union usbif_conn_sring_entry)) < 0) {
        snprintf(err, errlen, "ring indexes more than a ring apart");
        goto fail;
    }
    hc->ec = xenif_evtchn_open(p->cfg, err, errlen);
    if (!hc->ec)
        goto fail;
    int port = xenif_evtchn_bind_interdomain(hc->ec, p->domid, p->remote_port);
    if (port < 0) {
        snprintf(err, errlen, "binding event channel %u: %s", p->remote_port,
                 strerror(errno));
        goto fail;
    }
    hc->port = (xenif_port)port;
    hc->fd = xenif_evtchn_fd(hc->ec);
    if (evloop_add(p->loop, hc->fd, EPOLLIN, on_evtchn, hc) < 0) {
        snprintf(err, errlen, "evloop: %s", strerror(errno));
        goto fail;
    }
    hc->fd_added = true;
    for (unsigned i = 1; i <= p->nports; i++)
        hc->ports[i].target = p->targets[i];
    uint32_t pending = back_ring_pending_at_attach(&hc->urb);
    if (pending)
        log_info(p->where, "%u URB(s) already on the ring", pending);
    process(hc);
    evloop_defer(p->loop, &hc->after_batch);
    return hc;
fail:
    hc_free(hc);
    return NULL;
}

void vusb_hc_close(struct vusb_hc *hc)
{
    if (!hc)
        return;
    hc->quiesced = true;
    hc->on_drained = NULL; /* a suspend's quiesce ends with the connection */
    if (hc->fd_added) {
        evloop_del(hc->p.loop, hc->fd);
        hc->fd_added = false;
    }
    cancel_inflight(hc);
    for (unsigned i = 1; i <= hc->p.nports; i++) {
        struct vusb_target *t = hc->ports[i].target;
        if (t && t->ops->inflight(t))
            t->ops->drain(t);
    }
    push(hc);
    if (hc->inflight) {
        /* The targets still hold them: leak the controller, not crash. */
        log_error(hc->p.where, "%u URB(s) still in flight at close", hc->inflight);
        return;
    }
    hc_free(hc);
}
