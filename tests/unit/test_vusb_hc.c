/* The usbif host controller (backend/vusb/hc.c) against guests on a xensim
 * host, without the xenbus bus: a forked child is the daemon (dom0: the
 * controller over a fake nb-bulk device, driven by commands on a socket),
 * this process plays the guests (domains A and B: urb and conn ring pages,
 * data pages, raw URB requests written into the ring).
 *
 * The fake device is the nb-bulk loopback of the test-device spec: bulk OUT
 * 0x01 appends to a FIFO of at most 1 MiB (waits while full), bulk IN 0x81
 * takes from it (waits while empty), vendor GET_COUNTERS/RESET, the
 * standard requests, a stall for anything else. It completes transfers
 * from its own eventfd on the event loop, never inside submit. Beyond
 * nb-bulk (whose spec has no isochronous endpoint) it has an isochronous
 * IN endpoint 0x82 whose packets come back half full, so that the
 * controller's descriptor and packet-offset handling can be checked.
 *
 * Suites: vusb_ring (conn ring reports, SET_ADDRESS and address adoption,
 * control, bulk loopback direct and bounced, unlink, URBs on the ring at
 * connect, quiesce, a full ring) and vusb_hostile (every malformed URB is
 * answered with an error and the controller carries on; ring-index abuse
 * fails that controller only, another guest's keeps working). */
#include "backend/vusb/hc.h"
#include "evloop.h"
#include "log.h"
#include "test_backend_child.h"
#include "timer.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/io/usbif.h>

#define NPORTS 2
#define DEV_PORT 1          /* the nb-bulk device's port; port 2 is empty */
#define MAX_HC 3
#define NDATA 32            /* writable data pages per guest */
#define NRO 2               /* read-only granted pages */
#define FIFO_MAX (1u << 20)
#define MAX_QUEUED 128
#define URB_SLOT sizeof(union usbif_urb_sring_entry)
#define CONN_SLOT sizeof(union usbif_conn_sring_entry)
#define RING_HDR 64

/* ---- the fake nb-bulk device (daemon side) ------------------------------ */

struct nb_bulk {
    struct vusb_target t;
    struct evloop *loop;
    int efd;
    struct vusb_xfer *queue[MAX_QUEUED]; /* submission order */
    unsigned nq;
    uint8_t *fifo;
    size_t fifo_len;
    uint64_t counters[4];  /* OUT transfers, OUT bytes, IN transfers, IN bytes */
    uint8_t config;
    bool hold;             /* a slow device: completes nothing meanwhile */
    unsigned ctrl_seen, set_address_seen, max_queued;
};

static char cancel_mark; /* x->target_priv of a cancelled transfer */

static const uint8_t dev_desc[18] = {
    18, 1, 0x00, 0x02, 0, 0, 0, 64, 0x09, 0x12, 0x42, 0x4e, 0x00, 0x01, 1, 2, 3, 1,
};
static const uint8_t cfg_desc[32] = {
    9, 2, 32, 0, 1, 1, 0, 0x80, 50,
    9, 4, 0, 0, 2, 0xff, 0, 0, 0,
    7, 5, 0x01, 2, 0x00, 0x02, 0,
    7, 5, 0x81, 2, 0x00, 0x02, 0,
};
static const char *const strings[] = { NULL, "netbus", "netbus bulk loopback",
                                       "NB-BULK-1" };

/* Writes an IN answer of n bytes, cut to wLength. */
static void answer(struct vusb_xfer *x, const void *p, size_t n)
{
    x->actual = (uint32_t)(n < x->length ? n : x->length);
    if (x->actual)
        memcpy(x->data, p, x->actual);
    x->status = 0;
}

static void string_desc(struct vusb_xfer *x, unsigned idx)
{
    uint8_t d[64] = { 4, 3, 0x09, 0x04 };
    if (idx >= 4) {
        x->status = -EPIPE;
        return;
    }
    if (idx) {
        size_t n = strlen(strings[idx]);
        d[0] = (uint8_t)(2 + 2 * n);
        for (size_t i = 0; i < n; i++) {
            d[2 + 2 * i] = (uint8_t)strings[idx][i];
            d[3 + 2 * i] = 0;
        }
    }
    answer(x, d, d[0]);
}

static void control(struct nb_bulk *d, struct vusb_xfer *x)
{
    const uint8_t *s = x->setup;
    unsigned wvalue = s[2] | s[3] << 8, windex = s[4] | s[5] << 8;
    d->ctrl_seen++;
    x->status = 0;
    x->actual = 0;
    switch (s[0] << 8 | s[1]) {
    case 0x8006:
        if (wvalue >> 8 == 1)
            answer(x, dev_desc, sizeof(dev_desc));
        else if (wvalue >> 8 == 2)
            answer(x, cfg_desc, sizeof(cfg_desc));
        else if (wvalue >> 8 == 3)
            string_desc(x, wvalue & 0xff);
        else
            x->status = -EPIPE;
        return;
    case 0x8008:
        answer(x, &d->config, 1);
        return;
    case 0x0009:
        if (wvalue > 1)
            x->status = -EPIPE;
        else
            d->config = (uint8_t)wvalue;
        return;
    case 0x8000: case 0x8100: case 0x8200: {
        static const uint8_t zero[2];
        answer(x, zero, 2);
        return;
    }
    case 0x010b:
        if (wvalue != 0 || windex != 0)
            x->status = -EPIPE;
        return;
    case 0x0201:
        if (wvalue != 0)
            x->status = -EPIPE;
        return;
    case 0xc001: {
        uint8_t c[32];
        for (unsigned i = 0; i < 32; i++)
            c[i] = (uint8_t)(d->counters[i / 8] >> (8 * (i % 8)));
        if (wvalue || windex || x->length != 32)
            x->status = -EPIPE;
        else
            answer(x, c, 32);
        return;
    }
    case 0x4002:
        d->fifo_len = 0;
        memset(d->counters, 0, sizeof(d->counters));
        return;
    case 0x0005:
        d->set_address_seen++;
        x->status = -EPIPE; /* the host controller's business, not ours */
        return;
    default:
        x->status = -EPIPE;
    }
}

/* Isochronous IN 0x82: packet i gets length/2 bytes of value i + 1. */
static void iso_in(struct vusb_xfer *x)
{
    x->actual = 0;
    for (unsigned i = 0; i < x->nr_iso; i++) {
        struct vusb_iso_packet *p = &x->iso[i];
        p->actual = p->length / 2;
        p->status = 0;
        memset(x->data + p->offset, (int)(i + 1), p->actual);
        x->actual += p->actual;
    }
    x->status = 0;
}

/* Runs x on the device: false while it has to wait (FIFO full or empty). */
static bool run_xfer(struct nb_bulk *d, struct vusb_xfer *x)
{
    if (x->type == VUSB_XFER_CTRL) {
        control(d, x);
        return true;
    }
    if (x->type == VUSB_XFER_ISO && x->ep == 0x82) {
        iso_in(x);
        return true;
    }
    x->actual = 0;
    x->status = -EPIPE;
    if (x->type != VUSB_XFER_BULK || (x->ep != 0x01 && x->ep != 0x81))
        return true;
    if (x->ep == 0x01) {
        if (d->fifo_len + x->length > FIFO_MAX)
            return false;
        if (x->length)
            memcpy(d->fifo + d->fifo_len, x->data, x->length);
        d->fifo_len += x->length;
        d->counters[0]++;
        d->counters[1] += x->length;
        x->actual = x->length;
    } else {
        if (d->fifo_len == 0)
            return false;
        size_t n = x->length < d->fifo_len ? x->length : d->fifo_len;
        memcpy(x->data, d->fifo, n);
        memmove(d->fifo, d->fifo + n, d->fifo_len - n);
        d->fifo_len -= n;
        d->counters[2]++;
        d->counters[3] += n;
        x->actual = (uint32_t)n;
    }
    x->status = 0;
    return true;
}

/* Completes what can complete, in order per endpoint, until nothing moves. */
static void service(struct nb_bulk *d)
{
    bool moved = true;
    while (moved) {
        moved = false;
        uint32_t blocked = 0; /* endpoints with an earlier transfer waiting */
        for (unsigned i = 0; i < d->nq;) {
            struct vusb_xfer *x = d->queue[i];
            uint32_t bit = 1u << ((x->ep & 0x0f) | (x->ep & 0x80 ? 16 : 0));
            if (x->target_priv == &cancel_mark) {
                x->status = -ECONNRESET;
                x->actual = 0;
            } else if (d->hold || (blocked & bit) || !run_xfer(d, x)) {
                blocked |= bit;
                i++;
                continue;
            }
            memmove(&d->queue[i], &d->queue[i + 1],
                    (d->nq - i - 1) * sizeof(d->queue[0]));
            d->nq--;
            x->done(x); /* x belongs to the controller again */
            moved = true;
        }
    }
}

static void kick(struct nb_bulk *d)
{
    uint64_t one = 1;
    if (write(d->efd, &one, sizeof(one)) != sizeof(one))
        log_error("nb-bulk", "eventfd: %s", strerror(errno));
}

static void on_kick(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)loop;
    (void)events;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_error("nb-bulk", "eventfd: %s", strerror(errno));
    service(opaque);
}

static int nb_submit(struct vusb_target *t, struct vusb_xfer *x)
{
    struct nb_bulk *d = (struct nb_bulk *)t;
    if (t->speed == VUSB_SPEED_NONE)
        return -ENODEV;
    if (d->nq == MAX_QUEUED)
        return -ENOMEM;
    x->target_priv = NULL;
    d->queue[d->nq++] = x;
    if (d->nq > d->max_queued)
        d->max_queued = d->nq;
    kick(d);
    return 0;
}

static void nb_cancel(struct vusb_target *t, struct vusb_xfer *x)
{
    struct nb_bulk *d = (struct nb_bulk *)t;
    for (unsigned i = 0; i < d->nq; i++)
        if (d->queue[i] == x) {
            x->target_priv = &cancel_mark;
            kick(d);
        }
}

static unsigned nb_inflight(const struct vusb_target *t)
{
    return ((const struct nb_bulk *)t)->nq;
}

static void nb_drain(struct vusb_target *t)
{
    service((struct nb_bulk *)t);
}

static void nb_close(struct vusb_target *t)
{
    struct nb_bulk *d = (struct nb_bulk *)t;
    for (unsigned i = 0; i < d->nq; i++)
        d->queue[i]->target_priv = &cancel_mark;
    service(d);
    evloop_del(d->loop, d->efd);
    close(d->efd);
    free(d->fifo);
    free(d);
}

static const struct vusb_target_ops nb_ops = {
    .submit = nb_submit, .cancel = nb_cancel, .inflight = nb_inflight,
    .drain = nb_drain, .close = nb_close,
};

static struct nb_bulk *nb_open(struct evloop *loop)
{
    struct nb_bulk *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->t.ops = &nb_ops;
    d->t.speed = VUSB_SPEED_HIGH;
    d->loop = loop;
    d->fifo = malloc(FIFO_MAX);
    d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!d->fifo || d->efd < 0 || evloop_add(loop, d->efd, EPOLLIN, on_kick, d) < 0) {
        if (d->efd >= 0)
            close(d->efd);
        free(d->fifo);
        free(d);
        return NULL;
    }
    return d;
}

/* ---- the daemon child ---------------------------------------------------- */

enum cmd_op { CMD_OPEN = 1, CMD_CLOSE, CMD_PLUG, CMD_SPEED, CMD_HOLD,
              CMD_QUIESCE, CMD_RESUME, CMD_STATS, CMD_AWAIT, CMD_QUIT };

struct be_cmd {
    int op;
    unsigned hc;
    unsigned domid;
    xenif_gref urb_ref, conn_ref;
    xenif_port port;
    int arg;
};

struct be_rsp {
    int rc;
    unsigned fails, drained, inflight, dev_queued, max_queued;
    unsigned ctrl_seen, set_address_seen;
    struct vusb_hc_stats stats;
    char msg[256];
};

struct be_hc {
    struct vusb_hc *hc;
    struct nb_bulk *dev;
    bool plugged;
    unsigned fails, drained;
    char where[64];
    char failmsg[256];
};

static struct be_child be;
static struct be_hc be_hcs[MAX_HC];
static struct xenif_config be_cfg;

static void be_fail(void *opaque, const char *why)
{
    struct be_hc *b = opaque;
    b->fails++;
    snprintf(b->failmsg, sizeof(b->failmsg), "%s", why);
    log_error(b->where, "controller failed: %s", why);
}

static void be_drained(void *opaque)
{
    struct be_hc *b = opaque;
    b->drained++;
}

static void be_close_hc(struct be_hc *b)
{
    if (b->hc)
        vusb_hc_close(b->hc);
    if (b->dev)
        b->dev->t.ops->close(&b->dev->t);
    memset(b, 0, sizeof(*b));
}

static void be_close_all(void)
{
    for (unsigned i = 0; i < MAX_HC; i++)
        be_close_hc(&be_hcs[i]);
}

static int be_open_hc(struct be_hc *b, struct evloop *loop, const struct be_cmd *c,
                      char *err, size_t errlen)
{
    be_close_hc(b);
    snprintf(b->where, sizeof(b->where), "test/vusb/%u/%u", c->domid,
             (unsigned)(b - be_hcs));
    b->dev = nb_open(loop);
    if (!b->dev) {
        snprintf(err, errlen, "fake device: %s", strerror(errno));
        return -1;
    }
    b->plugged = true;
    struct vusb_target *targets[NPORTS + 1] = { NULL };
    targets[DEV_PORT] = &b->dev->t;
    struct vusb_hc_params p = {
        .where = b->where, .loop = loop, .cfg = &be_cfg,
        .domid = (xenif_domid)c->domid, .urb_ref = c->urb_ref,
        .conn_ref = c->conn_ref, .remote_port = c->port, .nports = NPORTS,
        .targets = targets, .fail = be_fail, .opaque = b,
    };
    b->hc = vusb_hc_open(&p, err, errlen);
    if (!b->hc)
        log_error(b->where, "open refused: %s", err);
    return b->hc ? 0 : -1;
}

static void be_command(struct evloop *loop, const void *cmd, void *rsp)
{
    const struct be_cmd *c = cmd;
    struct be_rsp *r = rsp;
    struct be_hc *b = c->hc < MAX_HC ? &be_hcs[c->hc] : NULL;
    if (!b || (c->op != CMD_OPEN && c->op != CMD_QUIT && c->op != CMD_CLOSE && !b->hc)) {
        r->rc = -1;
        return;
    }
    switch (c->op) {
    case CMD_OPEN:
        r->rc = be_open_hc(b, loop, c, r->msg, sizeof(r->msg));
        break;
    case CMD_CLOSE:
        be_close_hc(b);
        break;
    case CMD_PLUG:
        b->plugged = c->arg;
        vusb_hc_set_port(b->hc, DEV_PORT, c->arg ? &b->dev->t : NULL);
        break;
    case CMD_SPEED:
        b->dev->t.speed = (enum vusb_speed)c->arg;
        vusb_hc_port_changed(b->hc, DEV_PORT);
        break;
    case CMD_HOLD:
        b->dev->hold = c->arg;
        kick(b->dev);
        break;
    case CMD_AWAIT:
        vusb_hc_port_awaiting(b->hc, DEV_PORT, c->arg);
        break;
    case CMD_QUIESCE:
        vusb_hc_quiesce(b->hc, be_drained);
        break;
    case CMD_RESUME:
        vusb_hc_resume(b->hc);
        break;
    case CMD_STATS:
        r->fails = b->fails;
        r->drained = b->drained;
        r->inflight = vusb_hc_inflight(b->hc);
        r->dev_queued = b->dev->nq;
        r->max_queued = b->dev->max_queued;
        r->ctrl_seen = b->dev->ctrl_seen;
        r->set_address_seen = b->dev->set_address_seen;
        vusb_hc_stats(b->hc, &r->stats);
        snprintf(r->msg, sizeof(r->msg), "%s", b->failmsg);
        break;
    case CMD_QUIT:
        be_close_all();
        evloop_stop(loop);
        break;
    default:
        r->rc = -1;
    }
}

static int be_main(int sock)
{
    be_cfg = sim_config(&be.host, 0);
    return be_child_serve(&be, sock, LOG_LVL_DEBUG, sizeof(struct be_cmd),
                          sizeof(struct be_rsp), be_command, be_close_all);
}

static int be_call(struct be_cmd *c, struct be_rsp *r)
{
    return be_child_call(&be, c, sizeof(*c), r, sizeof(*r)) < 0 ? -1 : r->rc;
}

static int be_op(enum cmd_op op, unsigned hc, int arg)
{
    struct be_cmd c = { .op = op, .hc = hc, .arg = arg };
    struct be_rsp r;
    return be_call(&c, &r);
}

static struct be_rsp be_stats(unsigned hc)
{
    struct be_cmd c = { .op = CMD_STATS, .hc = hc };
    struct be_rsp r = { .rc = -1 };
    be_call(&c, &r);
    return r;
}

/* ---- guests -------------------------------------------------------------- */

struct fe {
    unsigned domid;
    struct xenif_gnt *g;
    struct xenif_evtchn *ec;
    uint8_t *urb, *conn;
    xenif_gref urb_ref, conn_ref;
    int port;
    unsigned urb_size, conn_size;
    uint32_t urb_prod, urb_cons, conn_prod, conn_cons;
    uint8_t *data, *ro;
    xenif_gref data_refs[NDATA], ro_refs[NRO];
};

static uint32_t *idx(uint8_t *ring, int i)
{
    return (uint32_t *)(void *)ring + i;
}

static uint8_t *urb_slot(struct fe *f, uint32_t i)
{
    return f->urb + RING_HDR + (size_t)(i & (f->urb_size - 1)) * URB_SLOT;
}

static uint8_t *conn_slot(struct fe *f, uint32_t i)
{
    return f->conn + RING_HDR + (size_t)(i & (f->conn_size - 1)) * CONN_SLOT;
}

static int fe_open(struct fe *f, unsigned domid)
{
    memset(f, 0, sizeof(*f));
    char err[256];
    struct xenif_config cfg = sim_config(&be.host, domid);
    f->domid = domid;
    f->urb_size = USB_URB_RING_SIZE;
    f->conn_size = USB_CONN_RING_SIZE;
    f->g = xenif_gnt_open(&cfg, err, sizeof(err));
    f->ec = xenif_evtchn_open(&cfg, err, sizeof(err));
    if (!f->g || !f->ec)
        return -1;
    f->urb = xenif_gnt_share(f->g, 0, 1, &f->urb_ref, true);
    f->conn = xenif_gnt_share(f->g, 0, 1, &f->conn_ref, true);
    f->data = xenif_gnt_share(f->g, 0, NDATA, f->data_refs, true);
    f->ro = xenif_gnt_share(f->g, 0, NRO, f->ro_refs, false);
    f->port = xenif_evtchn_alloc_unbound(f->ec, 0);
    if (!f->urb || !f->conn || !f->data || !f->ro || f->port < 0)
        return -1;
    /* SHARED_RING_INIT on both */
    *idx(f->urb, 1) = *idx(f->urb, 3) = 1;
    *idx(f->conn, 1) = *idx(f->conn, 3) = 1;
    return 0;
}

static void fe_close(struct fe *f)
{
    if (f->port > 0)
        xenif_evtchn_unbind(f->ec, (xenif_port)f->port);
    /* Unsharing fails while the backend still maps a page: checks that
     * every URB's mapping was released. */
    if (f->urb)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(f->g, f->urb, 1), 0);
    if (f->conn)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(f->g, f->conn, 1), 0);
    if (f->data)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(f->g, f->data, NDATA), 0);
    if (f->ro)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(f->g, f->ro, NRO), 0);
    xenif_evtchn_close(f->ec);
    xenif_gnt_close(f->g);
    memset(f, 0, sizeof(*f));
}

static int fe_connect(struct fe *f, unsigned hc)
{
    struct be_cmd c = { .op = CMD_OPEN, .hc = hc, .domid = f->domid,
                        .urb_ref = f->urb_ref, .conn_ref = f->conn_ref,
                        .port = (xenif_port)f->port };
    struct be_rsp r;
    return be_call(&c, &r); /* the reason of a refusal is in the log */
}

static void fe_notify(struct fe *f)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    xenif_evtchn_notify(f->ec, (xenif_port)f->port);
}

/* Puts a URB on the ring (not yet visible). */
static void urb_put(struct fe *f, const struct usbif_urb_request *q)
{
    memcpy(urb_slot(f, f->urb_prod++), q, sizeof(*q));
}

static void urb_publish(struct fe *f)
{
    __atomic_store_n(idx(f->urb, 0), f->urb_prod, __ATOMIC_RELEASE);
    fe_notify(f);
}

/* Posts n conn ring requests with ids from id. */
static void conn_post(struct fe *f, unsigned n, uint16_t id)
{
    for (unsigned i = 0; i < n; i++) {
        struct usbif_conn_request q = { .id = (uint16_t)(id + i) };
        memcpy(conn_slot(f, f->conn_prod++), &q, sizeof(q));
    }
    __atomic_store_n(idx(f->conn, 0), f->conn_prod, __ATOMIC_RELEASE);
    fe_notify(f);
}

/* Waits for the next response on ring (idx 2 past *cons); copies it out.
 * -1 after timeout_ms without one. */
static int ring_get(struct fe *f, uint8_t *ring, uint8_t *slot_at, uint32_t *cons,
                    void *out, size_t len, int timeout_ms)
{
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint32_t rp = __atomic_load_n(idx(ring, 2), __ATOMIC_ACQUIRE);
        if (rp != *cons) {
            memcpy(out, slot_at, len);
            (*cons)++;
            return 0;
        }
        __atomic_store_n(idx(ring, 3), *cons + 1, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(idx(ring, 2), __ATOMIC_ACQUIRE) != *cons)
            continue;
        uint64_t now = mono_ms();
        if (now >= deadline)
            return -1;
        struct pollfd p = { .fd = xenif_evtchn_fd(f->ec), .events = POLLIN };
        if (poll(&p, 1, (int)(deadline - now)) != 1)
            return -1;
        int port;
        while ((port = xenif_evtchn_pending(f->ec)) >= 0)
            xenif_evtchn_unmask(f->ec, (xenif_port)port);
    }
}

static int urb_get(struct fe *f, struct usbif_urb_response *rsp, int timeout_ms)
{
    return ring_get(f, f->urb, urb_slot(f, f->urb_cons), &f->urb_cons, rsp,
                    sizeof(*rsp), timeout_ms);
}

static int conn_get(struct fe *f, struct usbif_conn_response *rsp, int timeout_ms)
{
    return ring_get(f, f->conn, conn_slot(f, f->conn_cons), &f->conn_cons, rsp,
                    sizeof(*rsp), timeout_ms);
}

#define NO_ANSWER 99

/* One URB, its response; returns the status (NO_ANSWER on none). */
static int urb_do(struct fe *f, const struct usbif_urb_request *q,
                  struct usbif_urb_response *out)
{
    struct usbif_urb_response rsp;
    urb_put(f, q);
    urb_publish(f);
    if (urb_get(f, &rsp, 5000) < 0)
        return NO_ANSWER;
    CU_ASSERT_EQUAL(rsp.id, q->id);
    if (out)
        *out = rsp;
    return rsp.status;
}

/* ---- URBs ------------------------------------------------------------------ */

static uint32_t pipe_of(unsigned port, bool in, unsigned dev, unsigned ep,
                        unsigned type)
{
    return port | (in ? USBIF_PIPE_DIR : 0) | dev << USBIF_PIPE_DEV_SHIFT |
           ep << USBIF_PIPE_EP_SHIFT | (uint32_t)type << USBIF_PIPE_TYPE_SHIFT;
}

static struct usbif_request_segment seg(xenif_gref ref, unsigned off, unsigned len)
{
    return (struct usbif_request_segment){ ref, (uint16_t)off, (uint16_t)len };
}

/* A control URB to the device at devaddr; data (if wlength) in one
 * segment at the start of data page `page`. */
static struct usbif_urb_request ctrl_urb(struct fe *f, uint16_t id, unsigned devaddr,
                                         uint8_t type, uint8_t req, uint16_t wvalue,
                                         uint16_t windex, uint16_t wlength,
                                         unsigned page)
{
    struct usbif_urb_request q = {
        .id = id, .pipe = pipe_of(DEV_PORT, type & 0x80, devaddr, 0,
                                  USBIF_PIPE_TYPE_CTRL),
        .u.ctrl = { type, req, (uint8_t)wvalue, (uint8_t)(wvalue >> 8),
                    (uint8_t)windex, (uint8_t)(windex >> 8), (uint8_t)wlength,
                    (uint8_t)(wlength >> 8) },
    };
    if (wlength) {
        q.nr_buffer_segs = 1;
        q.buffer_length = wlength;
        q.seg[0] = seg(f->data_refs[page], 0, wlength);
    }
    return q;
}

static struct usbif_urb_request get_desc(struct fe *f, uint16_t id, unsigned devaddr)
{
    return ctrl_urb(f, id, devaddr, 0x80, 6, 0x0100, 0, 18, NDATA - 1);
}

/* Bulk URB to nb-bulk (OUT to 0x01, IN from 0x81) over the given segments. */
static struct usbif_urb_request bulk_urb(uint16_t id, bool in,
                                         const struct usbif_request_segment *s,
                                         unsigned n)
{
    struct usbif_urb_request q = {
        .id = id, .pipe = pipe_of(DEV_PORT, in, 0, 1, USBIF_PIPE_TYPE_BULK),
        .nr_buffer_segs = (uint16_t)n,
    };
    unsigned total = 0;
    for (unsigned i = 0; i < n; i++) {
        q.seg[i] = s[i];
        total += s[i].length;
    }
    q.buffer_length = (uint16_t)total;
    return q;
}

/* Bulk URB over data pages [first, first+len/4096] from offset off. */
static struct usbif_urb_request bulk_run(struct fe *f, uint16_t id, bool in,
                                         unsigned first, unsigned off, unsigned len)
{
    struct usbif_request_segment s[USBIF_MAX_SEGMENTS_PER_REQUEST];
    unsigned n = 0;
    while (len) {
        unsigned l = 4096 - off < len ? 4096 - off : len;
        s[n] = seg(f->data_refs[first + n], off, l);
        n++;
        len -= l;
        off = 0;
    }
    return bulk_urb(id, in, s, n);
}

static uint8_t *page(struct fe *f, unsigned i)
{
    return f->data + (size_t)i * 4096;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((seed * 7919 + i * 13 + (i >> 8)) & 0xff);
}

static int filled(const uint8_t *p, size_t n, unsigned seed, size_t from)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)((seed * 7919 + (from + i) * 13 + ((from + i) >> 8)) & 0xff))
            return 0;
    return 1;
}

/* The device's counters through GET_COUNTERS. */
static int counters(struct fe *f, uint64_t c[4])
{
    struct usbif_urb_request q = ctrl_urb(f, 0xc0c0, 0, 0xc0, 1, 0, 0, 32, NDATA - 2);
    struct usbif_urb_response rsp;
    if (urb_do(f, &q, &rsp) != 0 || rsp.actual_length != 32)
        return -1;
    for (unsigned i = 0; i < 4; i++) {
        c[i] = 0;
        for (unsigned b = 0; b < 8; b++)
            c[i] |= (uint64_t)page(f, NDATA - 2)[8 * i + b] << (8 * b);
    }
    return 0;
}

/* Isochronous IN to endpoint 2: 4 packets of 64 bytes in data page 0, the
 * descriptors (4 x 16 bytes) at the start of data page 1. */
static struct usbif_urb_request iso_urb(struct fe *f, uint16_t id)
{
    struct usbif_urb_request q = {
        .id = id, .pipe = pipe_of(DEV_PORT, true, 0, 2, USBIF_PIPE_TYPE_ISOC),
        .nr_buffer_segs = 1, .buffer_length = 256,
        .u.isoc = { .interval = 1, .start_frame = 5, .number_of_packets = 4,
                    .nr_frame_desc_segs = 1 },
    };
    q.seg[0] = seg(f->data_refs[0], 0, 256);
    q.seg[1] = seg(f->data_refs[1], 0, 64);
    struct vusb_iso_packet *p = (struct vusb_iso_packet *)(void *)page(f, 1);
    for (unsigned i = 0; i < 4; i++)
        p[i] = (struct vusb_iso_packet){ .offset = 64 * i, .length = 64,
                                         .actual = 0xdeadbeef, .status = 77 };
    return q;
}

/* 1 if the backend maps none of f's data and read-only pages (each URB's
 * mappings are released when it is answered). */
static int nothing_mapped(struct fe *f)
{
    for (unsigned i = 0; i < NDATA + NRO; i++) {
        xenif_gref ref = i < NDATA ? f->data_refs[i] : f->ro_refs[i - NDATA];
        int flags = sim_grant_flags(&be.host, f->domid, ref);
        if (flags < 0 || (flags & (XENSIM_GTF_reading | XENSIM_GTF_writing)))
            return 0;
    }
    return 1;
}

static int reset_device(struct fe *f)
{
    struct usbif_urb_request q = ctrl_urb(f, 0x4002, 0, 0x40, 2, 0, 0, 0, 0);
    return urb_do(f, &q, NULL);
}

/* ---- suite set-up ------------------------------------------------------ */

static int suite_init_common(const char *tag)
{
    return be_child_start(&be, tag, be_main);
}

static int suite_cleanup(void)
{
    struct be_cmd c = { .op = CMD_QUIT };
    struct be_rsp r;
    be_call(&c, &r);
    return be_child_stop(&be);
}

static int ring_init(void) { return suite_init_common("vusb-ring"); }
static int hostile_init(void) { return suite_init_common("vusb-hostile"); }

/* 1 if the daemon's log contains s. */
static int log_has(const char *s)
{
    return be_child_log_has(&be, s);
}

/* Polls the controller's stats until done(r) or about 3 s. */
static struct be_rsp wait_stats(unsigned hc, bool (*done)(const struct be_rsp *))
{
    struct be_rsp r = be_stats(hc);
    for (int i = 0; i < 300 && !done(&r); i++) {
        usleep(10000);
        r = be_stats(hc);
    }
    return r;
}

static bool drained_once(const struct be_rsp *r) { return r->drained >= 1; }
static bool failed(const struct be_rsp *r) { return r->fails >= 1; }

/* ---- vusb_ring ---------------------------------------------------------- */

/* The conn ring: the plugged port's speed at connect (port 2 is empty and
 * not reported), a port taken off and put back, the target's own speed
 * change, and a report that waits for the frontend to post a request. */
static void test_conn_ring(void)
{
    struct fe f;
    struct usbif_conn_response c;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    conn_post(&f, 2, 1);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    CU_ASSERT_EQUAL_FATAL(conn_get(&f, &c, 5000), 0);
    CU_ASSERT_EQUAL(c.id, 1);
    CU_ASSERT_EQUAL(c.portnum, DEV_PORT);
    CU_ASSERT_EQUAL(c.speed, USBIF_SPEED_HIGH);
    CU_ASSERT_EQUAL(conn_get(&f, &c, 200), -1);

    /* Port 2 has nothing: NODEV. */
    struct usbif_urb_request q = get_desc(&f, 10, 0);
    q.pipe = (q.pipe & ~USBIF_PIPE_PORT_MASK) | 2;
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_NODEV);

    /* Unplugged: speed NONE, and URBs to the port get NODEV. */
    CU_ASSERT_EQUAL(be_op(CMD_PLUG, 0, 0), 0);
    CU_ASSERT_EQUAL_FATAL(conn_get(&f, &c, 5000), 0);
    CU_ASSERT_EQUAL(c.id, 2);
    CU_ASSERT_EQUAL(c.portnum, DEV_PORT);
    CU_ASSERT_EQUAL(c.speed, USBIF_SPEED_NONE);
    q = get_desc(&f, 11, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_NODEV);

    /* Back: no request posted, so the report waits for one. */
    CU_ASSERT_EQUAL(be_op(CMD_PLUG, 0, 1), 0);
    CU_ASSERT_EQUAL(conn_get(&f, &c, 300), -1);
    conn_post(&f, 1, 3);
    CU_ASSERT_EQUAL_FATAL(conn_get(&f, &c, 5000), 0);
    CU_ASSERT_EQUAL(c.id, 3);
    CU_ASSERT_EQUAL(c.portnum, DEV_PORT);
    CU_ASSERT_EQUAL(c.speed, USBIF_SPEED_HIGH);
    q = get_desc(&f, 12, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 18);

    /* The device vanishes under its target (speed NONE) and comes back at
     * full speed. */
    conn_post(&f, 4, 10);
    CU_ASSERT_EQUAL(be_op(CMD_SPEED, 0, VUSB_SPEED_NONE), 0);
    CU_ASSERT_EQUAL_FATAL(conn_get(&f, &c, 5000), 0);
    CU_ASSERT_EQUAL(c.id, 10);
    CU_ASSERT_EQUAL(c.speed, USBIF_SPEED_NONE);
    q = get_desc(&f, 13, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_NODEV);
    CU_ASSERT_EQUAL(be_op(CMD_SPEED, 0, VUSB_SPEED_FULL), 0);
    CU_ASSERT_EQUAL_FATAL(conn_get(&f, &c, 5000), 0);
    CU_ASSERT_EQUAL(c.id, 11);
    CU_ASSERT_EQUAL(c.portnum, DEV_PORT);
    CU_ASSERT_EQUAL(c.speed, USBIF_SPEED_FULL);
    /* No change, no report. */
    CU_ASSERT_EQUAL(be_op(CMD_SPEED, 0, VUSB_SPEED_FULL), 0);
    CU_ASSERT_EQUAL(conn_get(&f, &c, 200), -1);
    CU_ASSERT(log_has("port 1: device gone"));
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* SET_ADDRESS is answered by the controller; the address is then the
 * device's only one. A controller that never saw SET_ADDRESS adopts the
 * first address it is sent (the guest enumerated through an earlier
 * backend); a device plugged anew starts over. */
static void test_addresses(void)
{
    struct fe f;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    memset(page(&f, NDATA - 1), 0xee, 4096);
    struct usbif_urb_request q = ctrl_urb(&f, 1, 0, 0x80, 6, 0x0100, 0, 64, NDATA - 1);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 18);
    CU_ASSERT_EQUAL(memcmp(page(&f, NDATA - 1), dev_desc, 18), 0);
    CU_ASSERT_EQUAL(page(&f, NDATA - 1)[18], 0xee);
    CU_ASSERT_EQUAL(be_stats(0).ctrl_seen, 1);

    q = ctrl_urb(&f, 2, 0, 0x00, 5, 5, 0, 0, 0); /* SET_ADDRESS 5 */
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 0);
    struct be_rsp s = be_stats(0);
    CU_ASSERT_EQUAL(s.ctrl_seen, 1);
    CU_ASSERT_EQUAL(s.set_address_seen, 0);

    q = get_desc(&f, 3, 5);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 18);
    q = get_desc(&f, 4, 6);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_NODEV);
    q = bulk_run(&f, 5, false, 0, 0, 64);
    q.pipe |= 6u << USBIF_PIPE_DEV_SHIFT;
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_NODEV);
    q = get_desc(&f, 6, 5);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_OK);
    s = be_stats(0);
    CU_ASSERT_EQUAL(s.ctrl_seen, 3); /* the wrong-address URBs never got there */
    CU_ASSERT_EQUAL(s.set_address_seen, 0);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);

    /* A new controller (after a migration): address 7 is adopted. */
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    q = get_desc(&f, 7, 7);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_OK);
    q = get_desc(&f, 8, 8);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_NODEV);
    q = bulk_run(&f, 9, false, 0, 0, 64);
    q.pipe |= 7u << USBIF_PIPE_DEV_SHIFT;
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_OK);
    CU_ASSERT(log_has("adopting address 7"));

    /* Unplugged and back: the device is at address 0 again and is given
     * a new one; the old one is no longer its. */
    CU_ASSERT_EQUAL(be_op(CMD_PLUG, 0, 0), 0);
    CU_ASSERT_EQUAL(be_op(CMD_PLUG, 0, 1), 0);
    q = ctrl_urb(&f, 10, 0, 0x00, 5, 9, 0, 0, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_OK);
    q = get_desc(&f, 11, 9);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_OK);
    q = get_desc(&f, 12, 7);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_NODEV);
    CU_ASSERT_EQUAL(be_stats(0).set_address_seen, 0);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* A port whose device is being claimed (a migrated guest's, still held by
 * the backend it left): its URBs wait on the ring and are served once the
 * device is there; without it, or once the wait is over, they fail NODEV. */
static void test_awaiting_port(void)
{
    struct fe f;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    CU_ASSERT_EQUAL(be_op(CMD_PLUG, 0, 0), 0);
    struct usbif_urb_request q = get_desc(&f, 1, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_NODEV);

    CU_ASSERT_EQUAL(be_op(CMD_AWAIT, 0, 1), 0);
    q = get_desc(&f, 2, 0);
    urb_put(&f, &q);
    urb_publish(&f);
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 300), -1); /* waits on the ring */
    CU_ASSERT_EQUAL(be_op(CMD_PLUG, 0, 1), 0);
    CU_ASSERT_EQUAL_FATAL(urb_get(&f, &rsp, 5000), 0);
    CU_ASSERT_EQUAL(rsp.id, 2);
    CU_ASSERT_EQUAL(rsp.status, USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 18);

    CU_ASSERT_EQUAL(be_op(CMD_PLUG, 0, 0), 0);
    CU_ASSERT_EQUAL(be_op(CMD_AWAIT, 0, 1), 0);
    q = get_desc(&f, 3, 0);
    urb_put(&f, &q);
    urb_publish(&f);
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 300), -1);
    CU_ASSERT_EQUAL(be_op(CMD_AWAIT, 0, 0), 0); /* given up: NODEV */
    CU_ASSERT_EQUAL_FATAL(urb_get(&f, &rsp, 5000), 0);
    CU_ASSERT_EQUAL(rsp.id, 3);
    CU_ASSERT_EQUAL(rsp.status, USBIF_STATUS_NODEV);
    CU_ASSERT_EQUAL(be_op(CMD_PLUG, 0, 1), 0);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* Control IN and OUT, with and without a data stage, a bounced IN across
 * two non-contiguous segments, stalls. */
static void test_control(void)
{
    struct fe f;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    CU_ASSERT_EQUAL(reset_device(&f), USBIF_STATUS_OK);
    uint64_t c[4] = { 1, 1, 1, 1 };
    CU_ASSERT_EQUAL(counters(&f, c), 0);
    CU_ASSERT(c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] == 0);

    /* configuration descriptor: the header first, then the lot */
    struct usbif_urb_request q = ctrl_urb(&f, 1, 0, 0x80, 6, 0x0200, 0, 9, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 9);
    CU_ASSERT_EQUAL(page(&f, 0)[2], 32);
    q = ctrl_urb(&f, 2, 0, 0x80, 6, 0x0200, 0, 255, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 32);
    CU_ASSERT_EQUAL(memcmp(page(&f, 0), cfg_desc, 32), 0);
    /* device descriptor cut to wLength 8 */
    memset(page(&f, 0), 0xee, 64);
    q = ctrl_urb(&f, 3, 0, 0x80, 6, 0x0100, 0, 8, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 8);
    CU_ASSERT_EQUAL(page(&f, 0)[7], 64);
    CU_ASSERT_EQUAL(page(&f, 0)[8], 0xee);

    /* The product string (42 bytes) into 20 bytes at the end of page 1 and
     * 100 bytes in the middle of page 2: bounced. */
    memset(page(&f, 1), 0xee, 4096);
    memset(page(&f, 2), 0xee, 4096);
    q = ctrl_urb(&f, 4, 0, 0x80, 6, 0x0302, 0x0409, 120, 0);
    q.nr_buffer_segs = 2;
    q.seg[0] = seg(f.data_refs[1], 4076, 20);
    q.seg[1] = seg(f.data_refs[2], 100, 100);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 42);
    uint8_t got[42];
    memcpy(got, page(&f, 1) + 4076, 20);
    memcpy(got + 20, page(&f, 2) + 100, 22);
    CU_ASSERT_EQUAL(got[0], 42);
    CU_ASSERT_EQUAL(got[1], 3);
    const char *want = "netbus bulk loopback";
    int same = 1;
    for (unsigned i = 0; i < 20; i++)
        same &= got[2 + 2 * i] == (uint8_t)want[i] && got[3 + 2 * i] == 0;
    CU_ASSERT(same);
    CU_ASSERT_EQUAL(page(&f, 1)[4075], 0xee);
    CU_ASSERT_EQUAL(page(&f, 2)[99], 0xee);
    CU_ASSERT_EQUAL(page(&f, 2)[122], 0xee); /* past what the device sent */

    /* SET_CONFIGURATION (OUT, no data) then GET_CONFIGURATION, GET_STATUS */
    q = ctrl_urb(&f, 5, 0, 0x00, 9, 1, 0, 0, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_OK);
    q = ctrl_urb(&f, 6, 0, 0x80, 8, 0, 0, 1, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 1);
    CU_ASSERT_EQUAL(page(&f, 0)[0], 1);
    q = ctrl_urb(&f, 7, 0, 0x80, 0, 0, 0, 2, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 2);
    q = ctrl_urb(&f, 8, 0, 0x02, 1, 0, 0x81, 0, 0); /* CLEAR_FEATURE(HALT) */
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_OK);

    /* Stalls: an unknown request; a vendor OUT with a data stage from a
     * read-only grant (the data only leaves: mapped fine, then stalled). */
    q = ctrl_urb(&f, 9, 0, 0x80, 0x55, 0, 0, 4, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_STALL);
    CU_ASSERT_EQUAL(rsp.actual_length, 0);
    q = ctrl_urb(&f, 10, 0, 0x40, 7, 0, 0, 16, 0);
    q.seg[0] = seg(f.ro_refs[0], 0, 16);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_STALL);
    q = ctrl_urb(&f, 11, 0, 0x80, 6, 0x0304, 0, 4, 0); /* no string 4 */
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_STALL);
    CU_ASSERT(nothing_mapped(&f));
    CU_ASSERT_EQUAL(be_stats(0).stats.errors, 3);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* Bulk OUT then IN through the device's FIFO: segments forming one run
 * (mapped directly) and not (bounced), the largest buffer, short INs;
 * data byte for byte; the counters show every transfer once. */
static void test_bulk_loopback(void)
{
    struct fe f;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    CU_ASSERT_EQUAL(reset_device(&f), USBIF_STATUS_OK);

    /* one run: 9092 bytes from offset 100 of page 0 */
    fill(page(&f, 0) + 100, 9092, 1);
    struct usbif_urb_request q = bulk_run(&f, 1, false, 0, 100, 9092);
    CU_ASSERT_EQUAL(q.nr_buffer_segs, 3);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 9092);
    memset(page(&f, 4), 0, 3 * 4096);
    q = bulk_run(&f, 2, true, 4, 200, 9092);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 9092);
    CU_ASSERT(filled(page(&f, 4) + 200, 9092, 1, 0));
    CU_ASSERT_EQUAL(page(&f, 4)[199], 0);
    CU_ASSERT_EQUAL(page(&f, 4)[200 + 9092], 0);

    /* not one run: OUT of 100 + 200 + 50 bytes, IN into 150 + 300 */
    fill(page(&f, 8) + 10, 100, 2);
    fill(page(&f, 9) + 500, 200, 3);
    fill(page(&f, 10), 50, 4);
    struct usbif_request_segment out[3] = {
        seg(f.data_refs[8], 10, 100), seg(f.data_refs[9], 500, 200),
        seg(f.data_refs[10], 0, 50),
    };
    q = bulk_urb(3, false, out, 3);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 350);
    memset(page(&f, 11), 0xee, 2 * 4096);
    struct usbif_request_segment in[2] = {
        seg(f.data_refs[11], 7, 150), seg(f.data_refs[12], 2000, 300),
    };
    q = bulk_urb(4, true, in, 2);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 350);
    uint8_t got[350], want[350];
    memcpy(got, page(&f, 11) + 7, 150);
    memcpy(got + 150, page(&f, 12) + 2000, 200);
    memcpy(want, page(&f, 8) + 10, 100);
    memcpy(want + 100, page(&f, 9) + 500, 200);
    memcpy(want + 300, page(&f, 10), 50);
    CU_ASSERT_EQUAL(memcmp(got, want, 350), 0);
    CU_ASSERT_EQUAL(page(&f, 11)[6], 0xee);
    CU_ASSERT_EQUAL(page(&f, 11)[157], 0xee);
    CU_ASSERT_EQUAL(page(&f, 12)[2200], 0xee); /* past the 350 bytes */

    /* the largest buffer: 64 KiB over 16 pages, both ways, with
     * buffer_length wrapped to 0 as Linux's xen-hcd sends it */
    fill(page(&f, 0), 65536, 5);
    q = bulk_run(&f, 5, false, 0, 0, 65536);
    CU_ASSERT_EQUAL(q.nr_buffer_segs, 16);
    CU_ASSERT_EQUAL(q.buffer_length, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 65536);
    memset(page(&f, 16), 0, 16 * 4096);
    q = bulk_run(&f, 6, true, 16, 0, 65536);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 65536);
    CU_ASSERT(filled(page(&f, 16), 65536, 5, 0));

    /* short INs: 1000 bytes in, taken as 300 then the other 700 */
    fill(page(&f, 0), 1000, 6);
    q = bulk_run(&f, 7, false, 0, 0, 1000);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_OK);
    q = bulk_run(&f, 8, true, 1, 0, 300);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 300);
    CU_ASSERT(filled(page(&f, 1), 300, 6, 0));
    q = bulk_run(&f, 9, true, 2, 0, 4096);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 700);
    CU_ASSERT(filled(page(&f, 2), 700, 6, 300));

    /* a zero-length OUT goes through too */
    q = bulk_urb(10, false, NULL, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 0);

    uint64_t c[4];
    CU_ASSERT_EQUAL(counters(&f, c), 0);
    CU_ASSERT_EQUAL(c[0], 5);
    CU_ASSERT_EQUAL(c[1], 9092 + 350 + 65536 + 1000);
    CU_ASSERT_EQUAL(c[2], 5);
    CU_ASSERT_EQUAL(c[3], 9092 + 350 + 65536 + 1000);

    CU_ASSERT(nothing_mapped(&f));
    /* endpoints the device does not have stall */
    q = bulk_run(&f, 11, false, 0, 0, 64);
    q.pipe = pipe_of(DEV_PORT, false, 0, 2, USBIF_PIPE_TYPE_BULK);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_STALL);
    q = bulk_run(&f, 12, true, 0, 0, 8);
    q.pipe = pipe_of(DEV_PORT, true, 0, 1, USBIF_PIPE_TYPE_INT);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_STALL);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* A bulk IN waits while the FIFO is empty; unlinked, it is answered
 * SHUTDOWN and the unlink itself OK; it took nothing from the device. An
 * IN waiting is completed by a later OUT. */
static void test_unlink(void)
{
    struct fe f;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    CU_ASSERT_EQUAL(reset_device(&f), USBIF_STATUS_OK);

    struct usbif_urb_request q = bulk_run(&f, 50, true, 0, 0, 512);
    urb_put(&f, &q);
    urb_publish(&f);
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 200), -1);
    CU_ASSERT_EQUAL(be_stats(0).inflight, 1);
    struct usbif_urb_request u = { .id = 51,
                                   .pipe = pipe_of(DEV_PORT, false, 0, 0, 0) |
                                           USBIF_PIPE_UNLINK };
    u.u.unlink.unlink_id = 50;
    urb_put(&f, &u);
    urb_publish(&f);
    int seen50 = 0, seen51 = 0;
    for (int i = 0; i < 2; i++) {
        if (urb_get(&f, &rsp, 5000) < 0)
            break;
        if (rsp.id == 50) {
            seen50++;
            CU_ASSERT_EQUAL(rsp.status, USBIF_STATUS_SHUTDOWN);
            CU_ASSERT_EQUAL(rsp.actual_length, 0);
        } else if (rsp.id == 51) {
            seen51++;
            CU_ASSERT_EQUAL(rsp.status, USBIF_STATUS_OK);
        }
    }
    CU_ASSERT_EQUAL(seen50, 1);
    CU_ASSERT_EQUAL(seen51, 1);
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 100), -1); /* nothing answered twice */
    struct be_rsp s = be_stats(0);
    CU_ASSERT_EQUAL(s.inflight, 0);
    CU_ASSERT_EQUAL(s.dev_queued, 0);
    CU_ASSERT_EQUAL(s.stats.unlinks, 1);

    /* Unlinking what is not in flight is answered OK, nothing else. */
    u.id = 52;
    u.u.unlink.unlink_id = 50;
    CU_ASSERT_EQUAL(urb_do(&f, &u, NULL), USBIF_STATUS_OK);
    u.id = 53;
    u.u.unlink.unlink_id = 999;
    CU_ASSERT_EQUAL(urb_do(&f, &u, NULL), USBIF_STATUS_OK);

    /* A waiting IN completed by the OUT that follows it. */
    memset(page(&f, 1), 0, 4096);
    q = bulk_run(&f, 60, true, 1, 0, 512);
    urb_put(&f, &q);
    fill(page(&f, 2), 100, 7);
    q = bulk_run(&f, 61, false, 2, 0, 100);
    urb_put(&f, &q);
    urb_publish(&f);
    int ok = 0;
    for (int i = 0; i < 2; i++) {
        if (urb_get(&f, &rsp, 5000) < 0)
            break;
        ok += rsp.status == 0 && rsp.actual_length == 100 &&
              (rsp.id == 60 || rsp.id == 61);
    }
    CU_ASSERT_EQUAL(ok, 2);
    CU_ASSERT(filled(page(&f, 1), 100, 7, 0));
    uint64_t c[4];
    CU_ASSERT_EQUAL(counters(&f, c), 0);
    CU_ASSERT(nothing_mapped(&f));
    CU_ASSERT(c[0] == 1 && c[1] == 100 && c[2] == 1 && c[3] == 100);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* URBs put on the ring before the controller connects (a ring kept across
 * a migration, indexes not at 0) are served. */
static void test_ring_not_empty_at_connect(void)
{
    struct fe f;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    *idx(f.urb, 0) = *idx(f.urb, 2) = 5;
    f.urb_prod = f.urb_cons = 5;
    struct usbif_urb_request q = ctrl_urb(&f, 100, 0, 0x40, 2, 0, 0, 0, 0);
    urb_put(&f, &q);
    fill(page(&f, 0), 100, 8);
    q = bulk_run(&f, 101, false, 0, 0, 100);
    urb_put(&f, &q);
    q = bulk_run(&f, 102, true, 1, 0, 100);
    urb_put(&f, &q);
    q = get_desc(&f, 103, 0);
    urb_put(&f, &q);
    __atomic_store_n(idx(f.urb, 0), f.urb_prod, __ATOMIC_RELEASE);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    unsigned seen = 0;
    for (int i = 0; i < 4; i++)
        if (urb_get(&f, &rsp, 5000) == 0 && rsp.status == 0 && rsp.id >= 100 &&
            rsp.id < 104)
            seen |= 1u << (rsp.id - 100);
    CU_ASSERT_EQUAL(seen, 0xf);
    CU_ASSERT(filled(page(&f, 1), 100, 8, 0));
    CU_ASSERT(log_has("4 URB(s) already on the ring"));
    uint64_t c[4];
    CU_ASSERT_EQUAL(counters(&f, c), 0);
    CU_ASSERT(c[0] == 1 && c[1] == 100 && c[2] == 1 && c[3] == 100);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* Quiesce: idle, drained at once and nothing taken until resume; busy,
 * on_drained waits for what is in flight; an IN that never completes is
 * cancelled after the grace period. */
static void test_quiesce(void)
{
    struct fe f;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    CU_ASSERT_EQUAL(reset_device(&f), USBIF_STATUS_OK);

    CU_ASSERT_EQUAL(be_op(CMD_QUIESCE, 0, 0), 0);
    CU_ASSERT_EQUAL(be_stats(0).drained, 1);
    uint64_t urbs = be_stats(0).stats.urbs;
    struct usbif_urb_request q = get_desc(&f, 1, 0);
    urb_put(&f, &q);
    q = get_desc(&f, 2, 0);
    urb_put(&f, &q);
    urb_publish(&f);
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 300), -1);
    CU_ASSERT_EQUAL(be_stats(0).stats.urbs, urbs);
    CU_ASSERT_EQUAL(be_op(CMD_RESUME, 0, 0), 0);
    int ok = 0;
    for (int i = 0; i < 2; i++)
        ok += urb_get(&f, &rsp, 5000) == 0 && rsp.status == 0;
    CU_ASSERT_EQUAL(ok, 2);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);

    /* Busy: a slow device holds 3 URBs when the quiesce comes. */
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    CU_ASSERT_EQUAL(be_op(CMD_HOLD, 0, 1), 0);
    fill(page(&f, 0), 200, 9);
    q = bulk_run(&f, 10, false, 0, 0, 200);
    urb_put(&f, &q);
    q = bulk_run(&f, 11, true, 1, 0, 200);
    urb_put(&f, &q);
    q = get_desc(&f, 12, 0);
    urb_put(&f, &q);
    urb_publish(&f);
    struct be_rsp s = be_stats(0);
    for (int i = 0; i < 300 && s.inflight < 3; i++) {
        usleep(10000);
        s = be_stats(0);
    }
    CU_ASSERT_EQUAL(s.inflight, 3);
    CU_ASSERT_EQUAL(be_op(CMD_QUIESCE, 0, 0), 0);
    q = get_desc(&f, 13, 0); /* after the quiesce: waits for resume */
    urb_put(&f, &q);
    urb_publish(&f);
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 300), -1);
    CU_ASSERT_EQUAL(be_stats(0).drained, 0);
    CU_ASSERT_EQUAL(be_op(CMD_HOLD, 0, 0), 0);
    s = wait_stats(0, drained_once);
    CU_ASSERT_EQUAL(s.drained, 1);
    CU_ASSERT_EQUAL(s.inflight, 0);
    unsigned seen = 0;
    for (int i = 0; i < 3; i++)
        if (urb_get(&f, &rsp, 5000) == 0 && rsp.status == 0 && rsp.id >= 10 &&
            rsp.id < 13)
            seen |= 1u << (rsp.id - 10);
    CU_ASSERT_EQUAL(seen, 7);
    CU_ASSERT(filled(page(&f, 1), 200, 9, 0));
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 200), -1); /* 13 still on the ring */
    CU_ASSERT_EQUAL(be_op(CMD_RESUME, 0, 0), 0);
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 5000), 0);
    CU_ASSERT_EQUAL(rsp.id, 13);
    CU_ASSERT_EQUAL(rsp.status, 0);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);

    /* An IN on an empty FIFO never completes: cancelled after the grace
     * period, answered SHUTDOWN, then drained. */
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    q = bulk_run(&f, 20, true, 0, 0, 512);
    urb_put(&f, &q);
    urb_publish(&f);
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 100), -1);
    uint64_t t0 = mono_ms();
    CU_ASSERT_EQUAL(be_op(CMD_QUIESCE, 0, 0), 0);
    CU_ASSERT_EQUAL(urb_get(&f, &rsp, 500), -1);
    CU_ASSERT_EQUAL(be_stats(0).drained, 0);
    CU_ASSERT_EQUAL_FATAL(urb_get(&f, &rsp, 5000), 0);
    uint64_t waited = mono_ms() - t0;
    CU_ASSERT_EQUAL(rsp.id, 20);
    CU_ASSERT_EQUAL(rsp.status, USBIF_STATUS_SHUTDOWN);
    CU_ASSERT(waited >= 900 && waited < 3000);
    s = wait_stats(0, drained_once);
    CU_ASSERT_EQUAL(s.drained, 1);
    CU_ASSERT_EQUAL(s.inflight, 0);
    CU_ASSERT(log_has("still in flight after"));
    CU_ASSERT_EQUAL(be_op(CMD_RESUME, 0, 0), 0);
    q = get_desc(&f, 21, 0);
    CU_ASSERT_EQUAL(urb_do(&f, &q, NULL), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* Isochronous IN: each packet's data at its own offset, its descriptor
 * (actual, status) written back; with the data in one run of bytes and
 * with it bounced. */
static void test_iso(void)
{
    struct fe f;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    const struct vusb_iso_packet *p = (void *)page(&f, 1);
    for (int bounced = 0; bounced < 2; bounced++) {
        memset(page(&f, 0), 0xee, 4096);
        memset(page(&f, 2), 0xee, 2 * 4096);
        struct usbif_urb_request q = iso_urb(&f, (uint16_t)(40 + bounced));
        /* where byte k of the 256-byte buffer is in the guest */
        uint8_t *at[256];
        if (bounced) {
            q.nr_buffer_segs = 2;
            q.seg[0] = seg(f.data_refs[2], 4000, 96);
            q.seg[2] = seg(f.data_refs[1], 0, 64); /* the descriptors */
            q.seg[1] = seg(f.data_refs[3], 100, 160);
            q.u.isoc.nr_frame_desc_segs = 1;
            for (unsigned k = 0; k < 256; k++)
                at[k] = k < 96 ? page(&f, 2) + 4000 + k : page(&f, 3) + 100 + k - 96;
        } else {
            for (unsigned k = 0; k < 256; k++)
                at[k] = page(&f, 0) + k;
        }
        CU_ASSERT_EQUAL(urb_do(&f, &q, &rsp), USBIF_STATUS_OK);
        CU_ASSERT_EQUAL(rsp.actual_length, 4 * 32);
        CU_ASSERT_EQUAL(rsp.error_count, 0);
        CU_ASSERT_EQUAL(rsp.start_frame, 5);
        for (unsigned i = 0; i < 4; i++) {
            CU_ASSERT_EQUAL(p[i].actual, 32);
            CU_ASSERT_EQUAL(p[i].status, 0);
            CU_ASSERT_EQUAL(p[i].offset, 64 * i);
            int same = 1;
            for (unsigned k = 0; k < 32; k++)
                same &= *at[64 * i + k] == i + 1;
            CU_ASSERT(same);
            if (!same)
                fprintf(stderr, "\niso (%s): packet %u data not where it belongs\n",
                        bounced ? "bounced" : "direct", i);
        }
        /* The rest of each packet: untouched, or zeroed when bounced;
         * never bytes of the backend's own memory. */
        int gaps = 1;
        for (unsigned k = 0; k < 256; k++)
            if (k % 64 >= 32)
                gaps &= *at[k] == 0xee || (bounced && *at[k] == 0);
        CU_ASSERT(gaps);
    }
    CU_ASSERT(nothing_mapped(&f));
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* A full ring (16 URBs) in flight at once, 20 rounds: 8 INs waiting on an
 * empty FIFO, then the 8 OUTs that feed them in order. */
static void test_full_ring(void)
{
    struct fe f;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(f.urb_size, 16);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0), 0);
    CU_ASSERT_EQUAL(reset_device(&f), USBIF_STATUS_OK);
    enum { ROUNDS = 20, HALF = 8, LEN = 512 };
    int all = 1;
    for (unsigned r = 0; r < ROUNDS; r++) {
        memset(page(&f, 0), 0, 4096);
        for (unsigned i = 0; i < HALF; i++) {
            struct usbif_urb_request q = bulk_run(&f, (uint16_t)(r * 100 + i), true,
                                                  0, i * LEN, LEN);
            urb_put(&f, &q);
        }
        for (unsigned i = 0; i < HALF; i++) {
            fill(page(&f, 1) + i * LEN, LEN, r * 100 + i);
            struct usbif_urb_request q = bulk_run(&f, (uint16_t)(r * 100 + 50 + i),
                                                  false, 1, i * LEN, LEN);
            urb_put(&f, &q);
        }
        urb_publish(&f);
        unsigned ok = 0;
        for (unsigned i = 0; i < 2 * HALF; i++) {
            if (urb_get(&f, &rsp, 5000) < 0)
                break;
            ok += rsp.status == 0 && rsp.actual_length == LEN &&
                  rsp.id / 100 == r;
        }
        CU_ASSERT_EQUAL(ok, 2 * HALF);
        for (unsigned i = 0; i < HALF; i++)
            all &= filled(page(&f, 0) + i * LEN, LEN, r * 100 + i, 0);
    }
    CU_ASSERT(all);
    struct be_rsp s = be_stats(0);
    CU_ASSERT_EQUAL(s.max_queued, 2 * HALF);
    CU_ASSERT_EQUAL(s.inflight, 0);
    uint64_t c[4];
    CU_ASSERT_EQUAL(counters(&f, c), 0);
    CU_ASSERT_EQUAL(c[0], ROUNDS * HALF);
    CU_ASSERT_EQUAL(c[1], ROUNDS * HALF * LEN);
    CU_ASSERT_EQUAL(c[2], ROUNDS * HALF);
    CU_ASSERT(nothing_mapped(&f));
    CU_ASSERT_EQUAL(c[3], ROUNDS * HALF * LEN);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&f);
}

/* ---- vusb_hostile ---------------------------------------------------------- */

/* Sends a bad URB; expects status want; then a good one still works. */
static void bad(struct fe *f, const char *what, struct usbif_urb_request q, int want)
{
    static uint16_t good_id = 30000;
    struct usbif_urb_response rsp = { .actual_length = -1 };
    int st = urb_do(f, &q, &rsp);
    CU_ASSERT_EQUAL(st, want);
    CU_ASSERT_EQUAL(rsp.actual_length, 0);
    struct usbif_urb_request g = get_desc(f, good_id++, 0);
    int gst = urb_do(f, &g, NULL);
    CU_ASSERT_EQUAL(gst, USBIF_STATUS_OK);
    if (st != want || gst != USBIF_STATUS_OK)
        fprintf(stderr, "\nhostile '%s': status %d (want %d), then %d\n", what,
                st, want, gst);
}

static void test_hostile(void)
{
    struct fe a, b;
    struct usbif_urb_response rsp;
    CU_ASSERT_EQUAL_FATAL(fe_open(&a, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(fe_open(&b, be.dom_b), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&a, 0), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&b, 1), 0);
    CU_ASSERT_EQUAL(reset_device(&b), USBIF_STATUS_OK);
    fill(page(&b, 0), 1000, 11);
    struct usbif_urb_request q = bulk_run(&b, 1, false, 0, 0, 1000);
    CU_ASSERT_EQUAL(urb_do(&b, &q, NULL), USBIF_STATUS_OK);

    /* A: a page granted to B instead of dom0 */
    xenif_gref to_b;
    uint8_t *other = xenif_gnt_share(a.g, (xenif_domid)be.dom_b, 1, &to_b, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    memset(a.ro, 0x5a, NRO * 4096);
    memset(other, 0x5a, 4096);
    uint16_t id = 100;

    /* ports */
    q = get_desc(&a, id++, 0);
    q.pipe &= ~USBIF_PIPE_PORT_MASK;
    bad(&a, "port 0", q, USBIF_STATUS_INVAL);
    q.pipe |= NPORTS + 1;
    q.id = id++;
    bad(&a, "port past num-ports", q, USBIF_STATUS_INVAL);
    q.pipe |= 31;
    q.id = id++;
    bad(&a, "port 31", q, USBIF_STATUS_INVAL);
    q = get_desc(&a, id++, 0);
    q.pipe = (q.pipe & ~USBIF_PIPE_PORT_MASK) | 2;
    bad(&a, "empty port", q, USBIF_STATUS_NODEV);
    /* segments */
    q = bulk_run(&a, id++, true, 0, 0, 4096);
    q.nr_buffer_segs = 17;
    bad(&a, "17 segments", q, USBIF_STATUS_INVAL);
    q.nr_buffer_segs = 0xffff;
    q.id = id++;
    bad(&a, "65535 segments", q, USBIF_STATUS_INVAL);
    q = bulk_run(&a, id++, true, 0, 4000, 200);
    q.nr_buffer_segs = 1;
    q.seg[0].length = 200;
    bad(&a, "segment past its page", q, USBIF_STATUS_INVAL);
    q = bulk_run(&a, id++, false, 0, 0, 100);
    q.seg[0].length = 0;
    q.buffer_length = 0;
    bad(&a, "zero-length segment", q, USBIF_STATUS_INVAL);
    q = bulk_run(&a, id++, false, 0, 0, 100);
    q.buffer_length = 200;
    bad(&a, "buffer_length over its segments", q, USBIF_STATUS_INVAL);
    q = bulk_run(&a, id++, false, 0, 0, 8192);
    q.buffer_length = 4096;
    bad(&a, "buffer_length under its segments", q, USBIF_STATUS_INVAL);
    q = ctrl_urb(&a, id++, 0, 0x80, 6, 0x0100, 0, 18, 0);
    q.u.ctrl[6] = 64;
    bad(&a, "wLength beyond the buffer", q, USBIF_STATUS_INVAL);
    q = bulk_run(&a, id++, true, 0, 0, 64);
    q.pipe &= ~(USBIF_PIPE_EP_MASK << USBIF_PIPE_EP_SHIFT);
    bad(&a, "bulk to endpoint 0", q, USBIF_STATUS_INVAL);
    q.pipe = pipe_of(DEV_PORT, true, 0, 0, USBIF_PIPE_TYPE_INT);
    q.id = id++;
    bad(&a, "interrupt to endpoint 0", q, USBIF_STATUS_INVAL);
    /* isochronous */
    q = iso_urb(&a, id++);
    q.u.isoc.number_of_packets = 0;
    bad(&a, "no packets", q, USBIF_STATUS_INVAL);
    q.u.isoc.number_of_packets = VUSB_MAX_ISO_PACKETS + 1;
    q.id = id++;
    bad(&a, "1025 packets", q, USBIF_STATUS_INVAL);
    q = iso_urb(&a, id++);
    q.u.isoc.number_of_packets = 5;
    bad(&a, "descriptors short of the packets", q, USBIF_STATUS_INVAL);
    q = iso_urb(&a, id++);
    q.u.isoc.nr_frame_desc_segs = 2;
    q.seg[1].length = 32;
    q.seg[2] = seg(a.data_refs[2], 0, 32);
    bad(&a, "descriptors not one run", q, USBIF_STATUS_INVAL);
    q = iso_urb(&a, id++);
    ((struct vusb_iso_packet *)(void *)page(&a, 1))[3].offset = 250;
    bad(&a, "packet past the buffer", q, USBIF_STATUS_INVAL);
    q = iso_urb(&a, id++);
    ((struct vusb_iso_packet *)(void *)page(&a, 1))[2].length = 0xffffffffu;
    bad(&a, "packet length wrapping", q, USBIF_STATUS_INVAL);
    q = iso_urb(&a, id++);
    q.seg[1].gref = 16000;
    bad(&a, "descriptors not granted", q, USBIF_STATUS_INVAL);
    q = iso_urb(&a, id++);
    q.seg[1].gref = a.ro_refs[1];
    bad(&a, "descriptors read-only", q, USBIF_STATUS_INVAL);
    q = iso_urb(&a, id++);
    q.nr_buffer_segs = 16;
    for (unsigned i = 0; i < 16; i++)
        q.seg[i] = seg(a.data_refs[i], 0, 16);
    q.u.isoc.nr_frame_desc_segs = 1;
    bad(&a, "16 data + 1 descriptor segments", q, USBIF_STATUS_INVAL);
    /* grants */
    q = bulk_run(&a, id++, true, 0, 0, 64);
    q.seg[0].gref = 16000;
    bad(&a, "IN into a ref never granted", q, USBIF_STATUS_INVAL);
    q = bulk_run(&a, id++, false, 0, 0, 64);
    q.seg[0].gref = 0xffffffffu;
    bad(&a, "OUT from a ref past the table", q, USBIF_STATUS_INVAL);
    q = bulk_run(&a, id++, true, 0, 0, 64);
    q.seg[0].gref = a.ro_refs[0];
    bad(&a, "bulk IN into a read-only grant", q, USBIF_STATUS_INVAL);
    q = ctrl_urb(&a, id++, 0, 0x80, 6, 0x0100, 0, 18, 0);
    q.seg[0].gref = a.ro_refs[0];
    bad(&a, "control IN into a read-only grant", q, USBIF_STATUS_INVAL);
    q = bulk_run(&a, id++, true, 3, 0, 8192);
    q.seg[1].gref = a.ro_refs[1];
    bad(&a, "IN into writable + read-only grants", q, USBIF_STATUS_INVAL);
    q = bulk_run(&a, id++, true, 0, 0, 64);
    q.seg[0].gref = to_b;
    bad(&a, "IN into a page granted to another domain", q, USBIF_STATUS_INVAL);
    q.pipe &= ~USBIF_PIPE_DIR;
    q.id = id++;
    bad(&a, "OUT from a page granted to another domain", q, USBIF_STATUS_INVAL);
    CU_ASSERT(a.ro[0] == 0x5a && a.ro[4095] == 0x5a && a.ro[4096 + 17] == 0x5a);
    CU_ASSERT(other[0] == 0x5a);
    /* unlink without a port */
    struct usbif_urb_request u = { .id = id++, .pipe = USBIF_PIPE_UNLINK };
    u.u.unlink.unlink_id = 1;
    bad(&a, "unlink to port 0", u, USBIF_STATUS_INVAL);
    unsigned nbad = id - 100;

    /* A burst of bad URBs filling the ring: each answered once. */
    for (unsigned i = 0; i < a.urb_size; i++) {
        q = bulk_run(&a, (uint16_t)(2000 + i), true, 0, 0, 64);
        q.buffer_length = 65;
        urb_put(&a, &q);
    }
    urb_publish(&a);
    unsigned answered = 0;
    for (unsigned i = 0; i < a.urb_size; i++)
        answered += urb_get(&a, &rsp, 5000) == 0 && rsp.status == USBIF_STATUS_INVAL;
    CU_ASSERT_EQUAL(answered, a.urb_size);

    /* Well-formed but odd: OUT from a read-only grant is fine (the data
     * only leaves); an isochronous OUT to the IN-only endpoint reaches the
     * device (which stalls) and its descriptors are written back. */
    q = bulk_run(&a, id++, false, 0, 0, 64);
    q.seg[0].gref = a.ro_refs[0];
    CU_ASSERT_EQUAL(urb_do(&a, &q, NULL), USBIF_STATUS_OK);
    q = iso_urb(&a, id++);
    q.pipe &= ~USBIF_PIPE_DIR;
    CU_ASSERT_EQUAL(urb_do(&a, &q, &rsp), USBIF_STATUS_STALL);
    CU_ASSERT_EQUAL(((struct vusb_iso_packet *)(void *)page(&a, 1))[0].actual, 0);
    CU_ASSERT_EQUAL(((struct vusb_iso_packet *)(void *)page(&a, 1))[3].status, 0);
    /* Two URBs in flight with the same id: an unlink cancels one; each is
     * answered once. */
    CU_ASSERT_EQUAL(reset_device(&a), USBIF_STATUS_OK);
    q = bulk_run(&a, 7000, true, 4, 0, 64);
    urb_put(&a, &q);
    q = bulk_run(&a, 7000, true, 5, 0, 64);
    urb_put(&a, &q);
    u = (struct usbif_urb_request){ .id = 7001,
                                    .pipe = DEV_PORT | USBIF_PIPE_UNLINK };
    u.u.unlink.unlink_id = 7000;
    urb_put(&a, &u);
    urb_publish(&a);
    unsigned shut = 0, ok = 0;
    for (int i = 0; i < 2; i++)
        if (urb_get(&a, &rsp, 5000) == 0) {
            shut += rsp.id == 7000 && rsp.status == USBIF_STATUS_SHUTDOWN;
            ok += rsp.id == 7001 && rsp.status == USBIF_STATUS_OK;
        }
    CU_ASSERT(shut == 1 && ok == 1);
    fill(page(&a, 6), 64, 12);
    q = bulk_run(&a, 7002, false, 6, 0, 64);
    urb_put(&a, &q);
    urb_publish(&a);
    ok = 0;
    for (int i = 0; i < 2; i++)
        ok += urb_get(&a, &rsp, 5000) == 0 && rsp.status == 0 &&
              (rsp.id == 7000 || rsp.id == 7002);
    CU_ASSERT_EQUAL(ok, 2);
    CU_ASSERT_EQUAL(urb_get(&a, &rsp, 100), -1);
    uint64_t c[4];
    CU_ASSERT_EQUAL(counters(&a, c), 0);
    CU_ASSERT(c[0] == 1 && c[1] == 64 && c[2] == 1 && c[3] == 64);

    CU_ASSERT(nothing_mapped(&a));
    struct be_rsp s = be_stats(0);
    CU_ASSERT_EQUAL(s.fails, 0);
    CU_ASSERT(s.stats.errors >= nbad + a.urb_size);
    CU_ASSERT_EQUAL(s.inflight, 0);
    static const char *const reasons[] = {
        "no such port", "more than 16 segments", "segment outside its page",
        "do not add up", "wLength beyond the buffer", "endpoint 0 is for control",
        "isochronous packets", "not one run of bytes", "packet outside the buffer",
        "descriptor grants cannot be mapped", "data grants cannot be mapped",
        "further ones logged 1 in 1024",
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        int has = log_has(reasons[i]);
        CU_ASSERT(has);
        if (!has)
            fprintf(stderr, "\nmissing log line: %s\n", reasons[i]);
    }

    /* Ring abuse: req_prod more than a ring ahead fails A's controller. */
    a.urb_prod += a.urb_size + 5;
    urb_publish(&a);
    s = wait_stats(0, failed);
    CU_ASSERT_EQUAL(s.fails, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.msg, "ahead of req_cons"));

    /* B carries on: its data comes back, nothing failed. */
    memset(page(&b, 4), 0, 4096);
    q = bulk_run(&b, 2, true, 4, 0, 4096);
    CU_ASSERT_EQUAL(urb_do(&b, &q, &rsp), USBIF_STATUS_OK);
    CU_ASSERT_EQUAL(rsp.actual_length, 1000);
    CU_ASSERT(filled(page(&b, 4), 1000, 11, 0));
    s = be_stats(1);
    CU_ASSERT_EQUAL(s.fails, 0);
    CU_ASSERT_EQUAL(s.stats.errors, 0);

    /* A reconnects with fresh rings: served again. Then the conn ring is
     * abused: that fails the controller too. */
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    CU_ASSERT_EQUAL(xenif_gnt_unshare(a.g, other, 1), 0);
    fe_close(&a);
    CU_ASSERT_EQUAL_FATAL(fe_open(&a, be.dom_a), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&a, 0), 0);
    q = get_desc(&a, 1, 0);
    CU_ASSERT_EQUAL(urb_do(&a, &q, NULL), USBIF_STATUS_OK);
    a.conn_prod += a.conn_size + 1;
    __atomic_store_n(idx(a.conn, 0), a.conn_prod, __ATOMIC_RELEASE);
    fe_notify(&a);
    s = wait_stats(0, failed);
    CU_ASSERT_EQUAL(s.fails, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.msg, "conn ring"));
    q = get_desc(&b, 3, 0);
    CU_ASSERT_EQUAL(urb_do(&b, &q, NULL), USBIF_STATUS_OK);

    /* A ring whose indexes are already a ring apart is refused at connect. */
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    fe_close(&a);
    CU_ASSERT_EQUAL_FATAL(fe_open(&a, be.dom_a), 0);
    *idx(a.urb, 0) = 1000;
    CU_ASSERT_NOT_EQUAL(fe_connect(&a, 0), 0);
    CU_ASSERT(log_has("open refused: ring indexes more than a ring apart"));
    CU_ASSERT_EQUAL(be_stats(1).fails, 0);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 0, 0), 0);
    CU_ASSERT_EQUAL(be_op(CMD_CLOSE, 1, 0), 0);
    fe_close(&a);
    fe_close(&b);
}

static CU_TestInfo vusb_ring_tests[] = {
    { "conn ring: speed at connect and on port changes", test_conn_ring },
    { "SET_ADDRESS, wrong addresses, address adoption", test_addresses },
    { "URBs for a port awaiting its device wait on the ring", test_awaiting_port },
    { "control IN and OUT, bounced, stalls", test_control },
    { "bulk loopback, direct and bounced", test_bulk_loopback },
    { "unlink of a waiting IN", test_unlink },
    { "URBs already on the ring at connect", test_ring_not_empty_at_connect },
    { "quiesce: idle, busy, never-completing IN", test_quiesce },
    { "isochronous IN, direct and bounced", test_iso },
    { "a full ring in flight, 20 rounds", test_full_ring },
    CU_TEST_INFO_NULL,
};

static CU_TestInfo vusb_hostile_tests[] = {
    { "hostile guest next to a well-behaved one", test_hostile },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(vusb_ring, ring_init, suite_cleanup, vusb_ring_tests)
UNIT_SUITE(vusb_hostile, hostile_init, suite_cleanup, vusb_hostile_tests)
