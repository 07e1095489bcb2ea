/* usb_export: URBs of a remote session on the export's device (see
 * usb_export.h and PROTOCOL.md section 8). */
#include "usb_export.h"

#include "backend/vusb/target.h"
#include "export.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One URB from its arrival until its result is acknowledged. */
struct urb_entry {
    struct vusb_xfer x;         /* first: the device hands it back */
    struct nb_usb_sess *u;
    uint64_t seq;
    uint64_t tag;               /* a reply is owed under this tag (0: none) */
    uint64_t reply_no;          /* of the last reply sent (0: none yet) */
    bool done, cancelled, forgotten;
    unsigned refs;              /* replies queued that point into it */
    uint8_t *buf;               /* the transfer buffer */
    uint8_t *iso_wire;          /* ISO results as they go on the wire */
    struct urb_entry *next, *prev;
};

struct reply_out {
    struct nb_out out;
    struct urb_entry *e;
    struct iovec iov[2];
};

struct nb_usb_sess {
    struct nb_session *s;
    nb_usb_send *send;
    void *opaque;
    uint64_t max_seq, reply_no;
    struct urb_entry *head, *tail;
    unsigned count, executing;
    bool orphan;                /* freed by its owner: URBs at the device
                                   free themselves, the last frees u */
    bool freeing;               /* inside nb_usb_sess_free */
};

static void entry_free(struct urb_entry *e)
{
    free(e->buf);
    free(e->x.iso);
    free(e->iso_wire);
    free(e);
}

/* Drops e from the session; its memory goes once no reply points into it. */
static void forget(struct nb_usb_sess *u, struct urb_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        u->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        u->tail = e->prev;
    u->count--;
    e->forgotten = true;
    if (!e->refs)
        entry_free(e);
}

static void free_out(struct nb_out *o)
{
    free(o);
}

static void send_status(struct nb_usb_sess *u, uint8_t type, uint64_t tag,
                        int32_t st)
{
    if (!u->send)
        return;
    struct nb_out *o = calloc(1, sizeof(*o));
    if (!o)
        return;
    uint8_t b[NB_STATUS_BODY];
    struct nb_hdr h = { .type = type | NB_REPLY, .session = u->s->id,
                        .tag = tag };
    nb_out_set(o, &h, b, nb_status_encode(b, st), NULL, 0);
    o->release = free_out;
    u->send(u->opaque, o);
}

static void reply_released(struct nb_out *o)
{
    struct reply_out *r = (struct reply_out *)o;
    struct urb_entry *e = r->e;
    free(r);
    if (--e->refs == 0 && e->forgotten)
        entry_free(e);
}

static bool is_in(const struct vusb_xfer *x)
{
    return x->type == VUSB_XFER_CTRL ? (x->setup[0] & 0x80) != 0
                                     : (x->ep & 0x80) != 0;
}

/* Sends e's result under tag, with the session's next reply number. */
static void send_result(struct nb_usb_sess *u, struct urb_entry *e,
                        uint64_t tag)
{
    e->tag = 0;
    if (!u->send)
        return;
    struct reply_out *r = calloc(1, sizeof(*r));
    if (!r)
        return; /* the client resends it after its time-out's reconnect */
    const struct vusb_xfer *x = &e->x;
    uint32_t actual = x->actual > x->length ? x->length : x->actual;
    uint32_t data = !is_in(x) ? 0 : x->type == VUSB_XFER_ISO ? x->length
                                                             : actual;
    struct nb_urb_result m = {
        .seq = e->seq, .reply_no = ++u->reply_no,
        .status = nb_urb_status_of(x->status), .actual = actual,
        .error_count = x->error_count, .start_frame = x->start_frame,
        .nr_iso = x->nr_iso, .data_len = data,
    };
    e->reply_no = m.reply_no;
    uint8_t b[NB_URB_REPLY_BODY];
    struct nb_hdr h = { .type = NB_URB | NB_REPLY, .session = u->s->id,
                        .tag = tag };
    unsigned n = 0;
    if (x->nr_iso)
        r->iov[n++] = (struct iovec){ e->iso_wire,
                                      (size_t)x->nr_iso * NB_URB_ISO_DESC };
    if (data)
        r->iov[n++] = (struct iovec){ e->buf, data };
    nb_out_set(&r->out, &h, b, nb_urb_result_encode(b, &m), r->iov, n);
    r->out.release = reply_released;
    r->e = e;
    e->refs++;
    u->send(u->opaque, &r->out);
}

/* A URB whose result is no longer kept (or that was never run): the client
 * learns it cannot know the outcome. */
static void send_lost(struct nb_usb_sess *u, uint64_t seq, uint64_t tag)
{
    struct reply_out *r = u->send ? calloc(1, sizeof(*r)) : NULL;
    if (!r)
        return;
    struct nb_urb_result m = { .seq = seq, .reply_no = ++u->reply_no,
                               .status = NB_URB_PROTO };
    uint8_t b[NB_URB_REPLY_BODY];
    struct nb_hdr h = { .type = NB_URB | NB_REPLY, .session = u->s->id,
                        .tag = tag };
    nb_out_set(&r->out, &h, b, nb_urb_result_encode(b, &m), NULL, 0);
    r->out.release = free_out;
    u->send(u->opaque, &r->out);
}

static void entry_done(struct vusb_xfer *x)
{
    struct urb_entry *e = (struct urb_entry *)x;
    struct nb_usb_sess *u = e->u;
    struct nb_session *s = u->s;
    e->done = true;
    u->executing--;
    if (x->nr_iso) {
        struct nb_urb_iso r[1];
        for (unsigned i = 0; i < x->nr_iso; i++) {
            r[0].actual = x->iso[i].actual;
            r[0].status = nb_urb_status_of(x->iso[i].status);
            nb_urb_iso_result_encode(e->iso_wire + i * NB_URB_ISO_DESC, r, 1);
        }
    }
    if (u->orphan) {
        forget(u, e);
        if (!u->executing && !u->count && !u->freeing)
            free(u);
    } else if (e->tag) {
        send_result(u, e, e->tag);
    }
    nb_session_io_end(s); /* last: it may free the session */
}

static struct urb_entry *find(struct nb_usb_sess *u, uint64_t seq)
{
    for (struct urb_entry *e = u->head; e; e = e->next)
        if (e->seq == seq)
            return e;
    return NULL;
}

/* The client received every reply numbered up to ack. */
static void acknowledge(struct nb_usb_sess *u, uint64_t ack)
{
    for (struct urb_entry *e = u->head, *next; e; e = next) {
        next = e->next;
        if (e->done && e->reply_no && e->reply_no <= ack)
            forget(u, e);
    }
}

static struct urb_entry *entry_new(struct nb_usb_sess *u,
                                   const struct nb_urb *m,
                                   const struct nb_urb_iso *iso,
                                   const uint8_t *data)
{
    struct urb_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    /* Zeroed: an ISO IN result sends the whole buffer, packets' unused
     * bytes included, and nothing of this process may leak into it. */
    e->buf = calloc(1, m->length ? m->length : 1);
    if (m->nr_iso) {
        e->x.iso = calloc(m->nr_iso, sizeof(*e->x.iso));
        e->iso_wire = calloc(m->nr_iso, NB_URB_ISO_DESC);
    }
    if (!e->buf || (m->nr_iso && (!e->x.iso || !e->iso_wire))) {
        entry_free(e);
        return NULL;
    }
    e->u = u;
    e->seq = m->seq;
    if (data)
        memcpy(e->buf, data, m->length);
    struct vusb_xfer *x = &e->x;
    x->type = (enum vusb_xfer_type)m->type;
    x->ep = m->ep;
    memcpy(x->setup, m->setup, sizeof(x->setup));
    x->short_not_ok = m->flags & NB_URB_SHORT_NOT_OK;
    x->interval = m->interval;
    x->start_frame = m->start_frame;
    x->length = m->length;
    x->data = e->buf;
    x->nr_iso = m->nr_iso;
    for (unsigned i = 0; i < m->nr_iso; i++) {
        x->iso[i].offset = iso[i].offset;
        x->iso[i].length = iso[i].length;
    }
    x->done = entry_done;
    e->prev = u->tail;
    if (u->tail)
        u->tail->next = e;
    else
        u->head = e;
    u->tail = e;
    u->count++;
    return e;
}

void nb_usb_urb(struct nb_usb_sess *u, const struct nb_hdr *h,
                const uint8_t *payload)
{
    static struct nb_urb_iso iso[NB_URB_MAX_ISO];
    struct nb_urb m;
    const uint8_t *data;
    const char *why;
    struct nb_session *s = u->s;
    if (nb_urb_decode(payload, h->length, &m, iso, &data, &why) < 0) {
        log_warn(nb_export_name(s->ex), "session %u: bad URB: %s", s->id, why);
        send_status(u, NB_URB, h->tag, NB_ST_INVAL);
        return;
    }
    acknowledge(u, m.ack);
    if (s->superseded) {
        send_status(u, NB_URB, h->tag, NB_ST_BUSY);
        return;
    }
    struct urb_entry *e = find(u, m.seq);
    if (e) { /* resent after a reconnect */
        if (e->done)
            send_result(u, e, h->tag);
        else
            e->tag = h->tag;
        return;
    }
    if (m.seq <= u->max_seq) {
        send_lost(u, m.seq, h->tag);
        return;
    }
    u->max_seq = m.seq;
    if (u->count >= NB_USB_WINDOW) {
        log_warn(nb_export_name(s->ex), "session %u: %u URBs not "
                 "acknowledged: URB %llu refused", s->id, u->count,
                 (unsigned long long)m.seq);
        send_status(u, NB_URB, h->tag, NB_ST_NOSPC);
        return;
    }
    e = entry_new(u, &m, iso, data);
    if (!e) {
        send_status(u, NB_URB, h->tag, NB_ST_EIO);
        return;
    }
    e->tag = h->tag;
    struct vusb_target *t = nb_export_usb(s->ex);
    int rc = t->speed == VUSB_SPEED_NONE ? -ENODEV : 0;
    if (rc == 0) {
        u->executing++;
        nb_session_io_start(s);
        rc = t->ops->submit(t, &e->x);
        if (rc < 0) {
            u->executing--;
            nb_session_io_end(s);
        }
    }
    if (rc < 0) { /* not run: the result is the refusal */
        e->done = true;
        e->x.status = rc;
        send_result(u, e, e->tag);
    }
}

void nb_usb_unlink(struct nb_usb_sess *u, const struct nb_hdr *h,
                   const uint8_t *payload)
{
    struct nb_unlink m;
    const char *why;
    if (nb_unlink_decode(payload, h->length, &m, &why) < 0) {
        send_status(u, NB_UNLINK, h->tag, NB_ST_INVAL);
        return;
    }
    acknowledge(u, m.ack);
    struct urb_entry *e = find(u, m.seq);
    /* Answered first: a cancel that completes at once replies after it. */
    send_status(u, NB_UNLINK, h->tag, NB_ST_OK);
    if (e && !e->done && !e->cancelled) {
        struct vusb_target *t = nb_export_usb(u->s->ex);
        e->cancelled = true;
        t->ops->cancel(t, &e->x);
    }
}

struct nb_usb_sess *nb_usb_sess_new(struct nb_session *s)
{
    struct nb_usb_sess *u = calloc(1, sizeof(*u));
    if (u)
        u->s = s;
    return u;
}

void nb_usb_sess_connect(struct nb_usb_sess *u, nb_usb_send *send,
                         void *opaque)
{
    u->send = send;
    u->opaque = opaque;
    if (!send)
        for (struct urb_entry *e = u->head; e; e = e->next)
            e->tag = 0;
}

uint64_t nb_usb_sess_next_seq(const struct nb_usb_sess *u)
{
    return u->max_seq + 1;
}

void nb_usb_sess_free(struct nb_usb_sess *u)
{
    if (!u)
        return;
    nb_usb_sess_connect(u, NULL, NULL);
    u->orphan = true;
    u->freeing = true; /* a cancel may complete at once */
    for (struct urb_entry *e = u->head, *next; e; e = next) {
        next = e->next;
        if (e->done)
            forget(u, e);
    }
    struct vusb_target *t = nb_export_usb(u->s->ex);
    for (struct urb_entry *e = u->head, *next; e; e = next) {
        next = e->next;
        if (!e->cancelled) {
            e->cancelled = true;
            t->ops->cancel(t, &e->x);
        }
    }
    u->freeing = false;
    if (!u->executing && !u->count)
        free(u);
}
