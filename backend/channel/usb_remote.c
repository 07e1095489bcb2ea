/* usb_remote: a vusb target over a netbus connection (see usb_remote.h). */
#include "usb_remote.h"

#include "backend/vusb/target.h"
#include "client_open.h"
#include "evloop.h"
#include "log.h"
#include "timer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ur_state {
    UR_CLOSED,    /* no session on the current connection (yet) */
    UR_OPENING,   /* OPEN in flight */
    UR_OPEN,
    UR_FAILED,    /* for good: refused, unexported, handed over */
};

struct ur;

struct ur_urb {
    struct nb_call call;        /* the URB frame */
    struct nb_call unlink;      /* its UNLINK, once cancelled */
    struct ur *t;
    struct vusb_xfer *x;
    uint64_t seq;
    bool sent;                  /* went out on this session: it may run */
    bool cancelled;
    uint8_t *iso_desc;          /* the packets as they go on the wire */
    struct iovec iov[2];
    struct ur_urb *next, *prev;
};

struct ur {
    struct vusb_target pub;
    struct nb_peer_user user;
    struct nb_peer *peer;
    char *where;
    char host[256];
    unsigned port;
    char export_name[NB_NAME_MAX + 1];
    char owner[NB_OWNER_MAX + 1];
    enum ur_state st;
    uint32_t session;
    uint64_t next_seq;
    uint64_t ack;               /* highest reply number received */
    bool opened_once;
    bool lost;                  /* down io_timeout_ms: the device is gone */
    enum vusb_speed device;     /* the export's device, as last told */
    uint64_t down_since;        /* 0: not waiting for a reconnect */
    struct nb_call open_call;
    struct ur_urb *head, *tail;
    unsigned count;
    struct timer *timer;
    /* URBs the port submitted together leave in one write, after the
     * event loop's batch. */
    struct evloop *loop;
    struct evloop_deferred flush;
    unsigned io_timeout_ms;
    void (*failed)(void *opaque, const char *why);
    void *failed_opaque;
    char why[256];
};

#define UR(t) ((struct ur *)(t))

static void send_open(struct ur *t);
static void send_urb(struct ur *t, struct ur_urb *u);

/* ---- speed -------------------------------------------------------------------- */

/* The port shows the device while the session is usable: open, or
 * waiting for a reconnect for less than io_timeout_ms. */
static void update_speed(struct ur *t)
{
    bool usable = t->opened_once && t->st != UR_FAILED && !t->lost;
    enum vusb_speed now = usable ? t->device : VUSB_SPEED_NONE;
    if (now == t->pub.speed)
        return;
    t->pub.speed = now;
    if (t->pub.changed)
        t->pub.changed(t->pub.opaque);
}

/* ---- completion ------------------------------------------------------------------ */

static void complete(struct ur *t, struct ur_urb *u, int status)
{
    struct vusb_xfer *x = u->x;
    if (u->prev)
        u->prev->next = u->next;
    else
        t->head = u->next;
    if (u->next)
        u->next->prev = u->prev;
    else
        t->tail = u->prev;
    t->count--;
    nb_peer_cancel(t->peer, &u->call);
    nb_peer_cancel(t->peer, &u->unlink);
    free(u->iso_desc);
    free(u);
    x->target_priv = NULL;
    if (status) {
        x->status = status;
        x->actual = 0;
    }
    x->done(x);
}

/* Fails every transfer: those that went out with went_out (they may have
 * run), the others with never. */
static unsigned fail_all(struct ur *t, int went_out, int never)
{
    unsigned n = 0;
    while (t->head) {
        complete(t, t->head, t->head->sent ? went_out : never);
        n++;
    }
    return n;
}

static void fail_for_good(struct ur *t, const char *why)
{
    if (t->st == UR_OPENING)
        nb_peer_cancel(t->peer, &t->open_call);
    t->st = UR_FAILED;
    if (why != t->why)
        snprintf(t->why, sizeof(t->why), "%s", why);
    log_error(t->where, "netbus://%s:%u/%s: %s", t->host, t->port,
              t->export_name, t->why);
    timer_cancel(t->timer);
    fail_all(t, -ENODEV, -ENODEV);
    update_speed(t);
    void (*failed)(void *, const char *) = t->failed;
    t->failed = NULL;
    if (failed)
        failed(t->failed_opaque, t->why);
}

/* The connection stayed down io_timeout_ms: the transfers waiting for it
 * fail and the port shows no device until the session is back. */
static void on_timer(void *opaque)
{
    struct ur *t = opaque;
    if (!t->down_since || t->st == UR_OPEN || t->st == UR_FAILED)
        return;
    t->lost = true;
    unsigned n = fail_all(t, -EPROTO, -ENODEV);
    log_error(t->where, "the export on %s:%u was unreachable for %u ms (%s):"
              " %u transfer(s) failed, the device is shown unplugged until "
              "it is back", t->host, t->port, t->io_timeout_ms,
              nb_peer_error(t->peer)[0] ? nb_peer_error(t->peer) : "no answer",
              n);
    update_speed(t);
}

/* ---- replies ---------------------------------------------------------------------- */

static const char *open_error(struct ur *t, int32_t st)
{
    return nb_open_refusal(t->why, sizeof(t->why), st, nb_peer_name(t->peer),
                           t->export_name, true);
}

static void reopen(struct ur *t)
{
    if (t->st == UR_OPEN) {
        t->st = UR_CLOSED;
        send_open(t);
    }
}

/* The reply's result into the transfer; -1 if it does not fit what was
 * asked (a protocol error). */
static int take_result(struct ur_urb *u, const struct nb_urb_result *r,
                       const struct nb_urb_iso *iso, const uint8_t *data)
{
    struct vusb_xfer *x = u->x;
    bool in = x->type == VUSB_XFER_CTRL ? (x->setup[0] & 0x80)
                                        : (x->ep & 0x80);
    if (r->seq != u->seq || r->data_len > x->length || (!in && r->data_len) ||
        (r->nr_iso != x->nr_iso && (r->nr_iso || r->status == NB_URB_OK)))
        return -1;
    if (r->data_len)
        memcpy(x->data, data, r->data_len);
    for (unsigned i = 0; i < r->nr_iso; i++) {
        x->iso[i].actual = iso[i].actual;
        x->iso[i].status = nb_urb_errno(iso[i].status);
    }
    x->status = nb_urb_errno(r->status);
    x->actual = r->actual > x->length ? x->length : r->actual;
    x->error_count = r->error_count;
    x->start_frame = (uint16_t)r->start_frame;
    return 0;
}

static int urb_reply(struct nb_call *call, const struct nb_hdr *h,
                     const uint8_t *payload)
{
    static struct nb_urb_iso iso[NB_URB_MAX_ISO];
    struct ur_urb *u = (struct ur_urb *)call;
    struct ur *t = u->t;
    int32_t st;
    struct nb_urb_result r;
    const uint8_t *data;
    const char *why;
    if (nb_urb_reply_decode(payload, h->length, &st, &r, iso, &data,
                            &why) < 0) {
        log_warn(t->where, "bad URB reply: %s", why);
        return -1;
    }
    switch (st) {
    case NB_ST_OK:
        if (take_result(u, &r, iso, data) < 0) {
            log_warn(t->where, "URB %llu: the reply does not fit the request",
                     (unsigned long long)u->seq);
            return -1;
        }
        if (r.reply_no > t->ack)
            t->ack = r.reply_no;
        complete(t, u, 0);
        return 0;
    case NB_ST_STALE: /* the server lost our session: reopen, resend */
        reopen(t);
        return 0;
    case NB_ST_BUSY:
        fail_for_good(t, "the device was handed over to another host (the "
                      "guest migrated)");
        return 0;
    case NB_ST_NOSPC:
        log_warn(t->where, "URB %llu refused: the export keeps too many "
                 "results", (unsigned long long)u->seq);
        complete(t, u, -EPROTO);
        return 0;
    default:
        complete(t, u, st == NB_ST_INVAL ? -EINVAL : -EPROTO);
        return 0;
    }
}

static int unlink_reply(struct nb_call *call, const struct nb_hdr *h,
                        const uint8_t *payload)
{
    (void)call;
    (void)h;
    (void)payload;
    return 0; /* the URB's own reply says how it ended */
}

static void renumber(struct ur *t, uint64_t next_seq)
{
    t->next_seq = next_seq;
    t->ack = 0;
    unsigned lost = 0;
    for (struct ur_urb *u = t->head, *next; u; u = next) {
        next = u->next;
        if (u->sent) {
            complete(t, u, -EPROTO);
            lost++;
        } else {
            u->seq = t->next_seq++;
        }
    }
    if (lost)
        log_warn(t->where, "the export no longer had our session: %u "
                 "transfer(s) that had gone out failed (they may or may not "
                 "have run)", lost);
}

static int open_reply(struct nb_call *call, const struct nb_hdr *h,
                      const uint8_t *payload)
{
    struct ur *t = (struct ur *)((uint8_t *)call - offsetof(struct ur,
                                                             open_call));
    struct nb_usb_opened m;
    int32_t st;
    const char *why;
    if (nb_usb_opened_decode(payload, h->length, &st, &m, &why) < 0) {
        log_warn(t->where, "bad OPEN reply: %s", why);
        return -1;
    }
    if (st != NB_ST_OK) {
        fail_for_good(t, open_error(t, st));
        return 0;
    }
    if (!t->opened_once)
        log_info(t->where, "netbus://%s:%u/%s: session %u on %s, USB device "
                 "%04x:%04x, %s speed", t->host, t->port, t->export_name,
                 h->session, nb_peer_name(t->peer), m.vendor, m.product,
                 vusb_speed_name((enum vusb_speed)m.speed));
    else if (h->session != t->session)
        log_info(t->where, "session %u (was %u) on %s", h->session,
                 t->session, nb_peer_name(t->peer));
    if (!t->opened_once || h->session != t->session)
        renumber(t, m.next_seq);
    t->session = h->session;
    t->user.session = h->session;
    t->st = UR_OPEN;
    t->opened_once = true;
    t->lost = false;
    t->down_since = 0;
    timer_cancel(t->timer);
    t->device = (enum vusb_speed)m.speed;
    /* Unanswered URBs go again, in sequence order, before anything new. */
    for (struct ur_urb *u = t->head; u; u = u->next)
        if (!u->call.tag)
            send_urb(t, u);
    nb_peer_flush(t->peer);
    update_speed(t);
    return 0;
}

/* ---- sending ------------------------------------------------------------------------ */

static void send_open(struct ur *t)
{
    if (t->st == UR_CLOSED &&
        nb_send_open(t->peer, &t->open_call, NB_OPEN_USB, t->session,
                     t->export_name, t->owner, open_reply) == 0)
        t->st = UR_OPENING;
}

static void send_unlink(struct ur *t, struct ur_urb *u)
{
    if (u->unlink.tag)
        return;
    struct nb_unlink m = { .seq = u->seq, .ack = t->ack };
    uint8_t b[NB_UNLINK_BODY];
    struct nb_hdr h = { .type = NB_UNLINK, .session = t->session };
    nb_out_set(&u->unlink.out, &h, b, nb_unlink_encode(b, &m), NULL, 0);
    u->unlink.reply = unlink_reply;
    u->unlink.sink = NULL;
    nb_peer_send(t->peer, &u->unlink);
}

static void send_urb(struct ur *t, struct ur_urb *u)
{
    const struct vusb_xfer *x = u->x;
    struct nb_urb m = {
        .seq = u->seq, .ack = t->ack, .type = (uint8_t)x->type, .ep = x->ep,
        .flags = x->short_not_ok ? NB_URB_SHORT_NOT_OK : 0,
        .interval = x->interval, .start_frame = x->start_frame,
        .length = x->length, .nr_iso = x->nr_iso,
    };
    memcpy(m.setup, x->setup, sizeof(m.setup));
    unsigned n = 0;
    if (x->nr_iso)
        u->iov[n++] = (struct iovec){ u->iso_desc,
                                      (size_t)x->nr_iso * NB_URB_ISO_DESC };
    if (!nb_urb_is_in(&m) && x->length)
        u->iov[n++] = (struct iovec){ x->data, x->length };
    uint8_t b[NB_URB_BODY];
    struct nb_hdr h = { .type = NB_URB, .session = t->session };
    nb_out_set(&u->call.out, &h, b, nb_urb_encode(b, &m), u->iov, n);
    u->call.reply = urb_reply;
    u->call.sink = NULL;
    if (nb_peer_send(t->peer, &u->call) == 0) {
        u->sent = true;
        if (u->cancelled)
            send_unlink(t, u);
    }
}

/* ---- target ops --------------------------------------------------------------------- */

static int ur_submit(struct vusb_target *pub, struct vusb_xfer *x)
{
    struct ur *t = UR(pub);
    if (t->st == UR_FAILED || pub->speed == VUSB_SPEED_NONE)
        return -ENODEV;
    if (x->length > NB_URB_MAX_DATA || x->nr_iso > NB_URB_MAX_ISO ||
        (x->type != VUSB_XFER_ISO && x->nr_iso))
        return -EINVAL;
    struct ur_urb *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    if (x->nr_iso) {
        u->iso_desc = malloc((size_t)x->nr_iso * NB_URB_ISO_DESC);
        if (!u->iso_desc) {
            free(u);
            return -ENOMEM;
        }
        for (unsigned i = 0; i < x->nr_iso; i++) {
            struct nb_urb_iso d = { .offset = x->iso[i].offset,
                                    .length = x->iso[i].length };
            nb_urb_iso_desc_encode(u->iso_desc + i * NB_URB_ISO_DESC, &d, 1);
        }
    }
    u->t = t;
    u->x = x;
    u->seq = t->next_seq++;
    x->target_priv = u;
    u->prev = t->tail;
    if (t->tail)
        t->tail->next = u;
    else
        t->head = u;
    t->tail = u;
    t->count++;
    if (t->st == UR_OPEN)
        send_urb(t, u);
    else
        send_open(t);
    evloop_defer(t->loop, &t->flush);
    return 0;
}

static void ur_cancel(struct vusb_target *pub, struct vusb_xfer *x)
{
    struct ur *t = UR(pub);
    struct ur_urb *u = x->target_priv;
    if (!u || u->cancelled)
        return;
    u->cancelled = true;
    if (!u->sent) {
        complete(t, u, -ECONNRESET); /* the export never saw it */
        return;
    }
    if (t->st == UR_OPEN) {
        send_unlink(t, u);
        evloop_defer(t->loop, &t->flush);
    } /* else sent with the URB after the reconnect */
}

static void flush_later(void *opaque)
{
    struct ur *t = opaque;
    nb_peer_flush(t->peer);
}

static unsigned ur_inflight(const struct vusb_target *pub)
{
    return ((const struct ur *)pub)->count;
}

/* Does not wait for the network: what is unanswered ends now (the export
 * still completes it, and never runs it twice). */
static void ur_drain(struct vusb_target *pub)
{
    struct ur *t = UR(pub);
    unsigned n = fail_all(t, -ESHUTDOWN, -ESHUTDOWN);
    if (n)
        log_warn(t->where, "%u transfer(s) still waiting for the export "
                 "ended without their result", n);
}

static void ur_close(struct vusb_target *pub)
{
    struct ur *t = UR(pub);
    fail_all(t, -ESHUTDOWN, -ESHUTDOWN);
    if (t->st == UR_OPENING)
        nb_peer_cancel(t->peer, &t->open_call);
    if (t->st == UR_OPEN) {
        nb_peer_send_untracked(t->peer, NB_CLOSE, t->session);
        nb_peer_flush(t->peer);
    }
    evloop_defer_cancel(t->loop, &t->flush);
    nb_peer_detach(t->peer, &t->user);
    timer_free(t->timer);
    free(t->where);
    free(t);
}

static const struct vusb_target_ops ur_ops = {
    .submit = ur_submit,
    .cancel = ur_cancel,
    .inflight = ur_inflight,
    .drain = ur_drain,
    .close = ur_close,
};

/* ---- peer events ---------------------------------------------------------------------- */

static void ur_up(struct nb_peer_user *pu)
{
    struct ur *t = (struct ur *)((uint8_t *)pu - offsetof(struct ur, user));
    send_open(t);
}

static void ur_down(struct nb_peer_user *pu, const char *why)
{
    struct ur *t = (struct ur *)((uint8_t *)pu - offsetof(struct ur, user));
    if (t->st != UR_OPEN && t->st != UR_OPENING)
        return;
    t->st = UR_CLOSED;
    if (!t->opened_once || t->down_since)
        return;
    t->down_since = mono_ms();
    timer_at(t->timer, t->down_since + t->io_timeout_ms);
    log_warn(t->where, "connection to the export lost (%s): %u transfer(s) "
             "wait for it, up to %u ms", why, t->count, t->io_timeout_ms);
}

static void ur_event(struct nb_peer_user *pu, const struct nb_event_body *ev)
{
    struct ur *t = (struct ur *)((uint8_t *)pu - offsetof(struct ur, user));
    if (ev->kind == NB_EV_GONE) {
        fail_for_good(t, "the export was unexported: the device is gone");
    } else if (ev->kind == NB_EV_USB_SPEED) {
        log_info(t->where, "the export's device: %s",
                 ev->value ? vusb_speed_name((enum vusb_speed)ev->value)
                           : "unplugged");
        t->device = (enum vusb_speed)ev->value;
        update_speed(t);
    }
}

struct vusb_target *nb_usb_remote_open(const struct nb_usb_remote_params *p)
{
    struct ur *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->where = strdup(p->where);
    t->timer = timer_new(p->pool->loop, on_timer, t);
    if (!t->where || !t->timer) {
        timer_free(t->timer);
        free(t->where);
        free(t);
        return NULL;
    }
    t->pub.ops = &ur_ops;
    t->pub.speed = VUSB_SPEED_NONE;
    snprintf(t->host, sizeof(t->host), "%s", p->host);
    t->port = p->port;
    snprintf(t->export_name, sizeof(t->export_name), "%s", p->export_name);
    snprintf(t->owner, sizeof(t->owner), "%s", p->owner);
    t->io_timeout_ms = p->io_timeout_ms;
    t->failed = p->failed;
    t->failed_opaque = p->opaque;
    t->next_seq = 1;
    t->loop = p->pool->loop;
    t->flush.cb = flush_later;
    t->flush.opaque = t;
    t->user.up = ur_up;
    t->user.down = ur_down;
    t->user.event = ur_event;
    t->peer = nb_peer_attach(p->pool, p->host, p->port, &t->user);
    if (!t->peer) {
        timer_free(t->timer);
        free(t->where);
        free(t);
        return NULL;
    }
    send_open(t); /* if the shared connection is up already */
    nb_peer_flush(t->peer);
    return &t->pub;
}
