/* server: serving exports over netbus connections (see server.h). */
#include "server.h"

#include "backend/vbd/target.h"
#include "backend/vusb/target.h"
#include "bufpool.h"
#include "evloop.h"
#include "export.h"
#include "log.h"
#include "timer.h"
#include "usb_export.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_INFLIGHT 512     /* per connection: stop reading above */
#define RESUME_INFLIGHT 256

struct srv_conn;

/* Server side of a remote session (nb_session.user). */
struct srv_sess {
    struct nb_session *s;
    struct srv_conn *sc;      /* NULL: connection gone */
    bool waiting;             /* an OPEN or CLOSE reply waits for drain */
    uint8_t wait_type;
    uint64_t wait_tag;
    struct srv_sess *next;    /* in sc->sessions */
    /* usb exports: the URB state, and how long it outlives a connection */
    struct nb_usb_sess *usb;
    struct timer *linger;
    bool linger_over;
};

struct srv_io {
    struct vbd_target_io tio; /* first: the target hands it back */
    struct nb_out out;
    struct srv_conn *sc;      /* NULL once the connection is gone */
    struct nb_session *s;
    struct srv_io *next, *prev;
    uint64_t tag;
    uint8_t type;
    uint8_t body[NB_IO_BODY];
    void *buf;
    size_t buflen;
    struct iovec rx[2], data;
};

struct srv_conn {
    struct nb_server *srv;
    struct nb_conn *c;
    struct srv_io *ios;
    unsigned inflight;
    bool paused;
    struct srv_io *rx_io;
    struct srv_sess *sessions;
    /* Batching: the target is kicked once for the requests that arrived
     * together (rx_end), the replies of completions that came together
     * go out in one write (after the event loop's batch). */
    struct vbd_target *kick;
    struct evloop_deferred flush;
    struct srv_conn *next, *prev;
};

struct nb_server {
    struct evloop *loop;
    struct nb_exports *reg;
    const struct nb_conn_cfg *cfg;
    int lfd;
    char addr[128];
    struct srv_conn *conns;
    unsigned nconns;
    unsigned usb_linger_ms;
};

/* ---- replies ---------------------------------------------------------------- */

static void free_out(struct nb_out *o)
{
    free(o);
}

static void reply(struct srv_conn *sc, uint8_t type, uint32_t session,
                  uint64_t tag, const void *body, size_t len)
{
    struct nb_out *o = calloc(1, sizeof(*o));
    if (!o) {
        nb_conn_close(sc->c, "out of memory");
        return;
    }
    struct nb_hdr h = { .type = type | NB_REPLY, .session = session,
                        .tag = tag };
    nb_out_set(o, &h, body, len, NULL, 0);
    o->release = free_out;
    nb_conn_send(sc->c, o);
}

static void reply_status(struct srv_conn *sc, uint8_t type, uint32_t session,
                         uint64_t tag, int32_t st)
{
    uint8_t b[NB_STATUS_BODY];
    reply(sc, type, session, tag, b, nb_status_encode(b, st));
}

static void reply_usb_opened(struct srv_conn *sc, struct srv_sess *ss,
                             uint64_t tag)
{
    struct nb_session *s = ss->s;
    struct nb_usb_opened m = {
        .speed = nb_export_usb(s->ex)->speed,
        .next_seq = nb_usb_sess_next_seq(ss->usb),
    };
    nb_export_usb_id(s->ex, &m.vendor, &m.product);
    uint8_t b[NB_OPENED_BODY];
    reply(sc, NB_OPEN, s->id, tag, b, nb_usb_opened_encode(b, &m));
}

static void reply_opened(struct srv_conn *sc, struct nb_session *s,
                         uint64_t tag)
{
    struct srv_sess *ss = s->user;
    if (ss->usb) {
        reply_usb_opened(sc, ss, tag);
        return;
    }
    const struct vbd_target_info *ti = &nb_export_target(s->ex)->info;
    struct nb_opened m = {
        .status = NB_ST_OK,
        .flags = (s->readonly ? NB_INFO_READONLY : 0) |
                 (ti->can_flush && !s->readonly ? NB_INFO_FLUSH : 0) |
                 (ti->can_discard && !s->readonly ? NB_INFO_DISCARD : 0),
        .size = ti->size,
        .sector_size = ti->sector_size,
        .physical_sector_size = ti->physical_sector_size,
        .discard_granularity = ti->discard_granularity,
    };
    uint8_t b[NB_OPENED_BODY];
    reply(sc, NB_OPEN, s->id, tag, b, nb_opened_encode(b, &m));
}

/* ---- sessions ------------------------------------------------------------------ */

static void usb_send(void *opaque, struct nb_out *o)
{
    struct srv_conn *sc = opaque;
    nb_conn_send(sc->c, o);
    evloop_defer(sc->srv->loop, &sc->flush);
}

static void sess_unlink(struct srv_sess *ss)
{
    if (ss->usb)
        nb_usb_sess_connect(ss->usb, NULL, NULL);
    if (!ss->sc)
        return;
    for (struct srv_sess **pp = &ss->sc->sessions; *pp; pp = &(*pp)->next)
        if (*pp == ss) {
            *pp = ss->next;
            break;
        }
    ss->sc = NULL;
    ss->next = NULL;
}

/* Forgets the server's side of s (the export's session stays). */
static void sess_release(struct srv_sess *ss)
{
    struct nb_session *s = ss->s;
    sess_unlink(ss);
    nb_usb_sess_free(ss->usb);
    timer_free(ss->linger);
    s->user = NULL;
    s->kill = NULL;
    s->drained = NULL;
    s->changed = NULL;
    free(ss);
}

static void sess_free(struct srv_sess *ss)
{
    struct nb_session *s = ss->s;
    sess_release(ss);
    nb_session_free(s);
}

/* Serves ss on sc from now on. */
static void sess_attach(struct srv_sess *ss, struct srv_conn *sc)
{
    ss->sc = sc;
    ss->next = sc->sessions;
    sc->sessions = ss;
    if (ss->usb) {
        timer_cancel(ss->linger);
        ss->linger_over = false;
        nb_usb_sess_connect(ss->usb, usb_send, sc);
    }
}

static void sess_drained(struct nb_session *s)
{
    struct srv_sess *ss = s->user;
    if (!ss->sc) {
        /* its connection is gone and nobody took it over (a usb session
         * waits for its client to come back first) */
        if (!ss->usb || ss->linger_over || s->superseded)
            sess_free(ss);
        return;
    }
    if (!ss->waiting)
        return;
    ss->waiting = false;
    struct srv_conn *sc = ss->sc;
    if (ss->wait_type == NB_CLOSE) {
        reply_status(sc, NB_CLOSE, s->id, ss->wait_tag, NB_ST_OK);
        sess_free(ss);
    } else {
        reply_opened(sc, s, ss->wait_tag);
    }
    nb_conn_flush(sc->c);
}

/* unexport --force: tell the peer, forget the session. */
static void sess_kill(struct nb_session *s)
{
    struct srv_sess *ss = s->user;
    if (ss->sc) {
        struct nb_event_body ev = { .kind = NB_EV_GONE };
        uint8_t b[16];
        struct nb_out *o = calloc(1, sizeof(*o));
        if (o) {
            struct nb_hdr h = { .type = NB_EVENT, .session = s->id };
            nb_out_set(o, &h, b, nb_event_encode(b, &ev), NULL, 0);
            o->release = free_out;
            nb_conn_send(ss->sc->c, o);
            nb_conn_flush(ss->sc->c);
        }
    }
    sess_release(ss);
}

/* The usb session's client did not come back in time. */
static void on_linger(void *opaque)
{
    struct srv_sess *ss = opaque;
    if (ss->sc)
        return;
    ss->linger_over = true;
    log_info(nb_export_name(ss->s->ex), "session %u: its client did not "
             "come back in time: closed", ss->s->id);
    nb_usb_sess_free(ss->usb); /* cancels what is still at the device */
    ss->usb = NULL;
    if (ss->s->inflight == 0)
        sess_free(ss);
}

/* usb exports: the device left or came back. */
static void sess_changed(struct nb_session *s)
{
    struct srv_sess *ss = s->user;
    if (!ss->sc)
        return; /* the OPEN that resumes it tells the speed */
    struct nb_event_body ev = { .kind = NB_EV_USB_SPEED,
                                .value = nb_export_usb(s->ex)->speed };
    uint8_t b[16];
    struct nb_out *o = calloc(1, sizeof(*o));
    if (!o)
        return;
    struct nb_hdr h = { .type = NB_EVENT, .session = s->id };
    nb_out_set(o, &h, b, nb_event_encode(b, &ev), NULL, 0);
    o->release = free_out;
    nb_conn_send(ss->sc->c, o);
    evloop_defer(ss->sc->srv->loop, &ss->sc->flush);
}

/* The session h names, if this connection serves it. */
static struct srv_sess *sess_of(struct srv_conn *sc, uint32_t id)
{
    struct nb_session *s = nb_session_find(sc->srv->reg, id);
    if (!s || s->kill != sess_kill)
        return NULL;
    struct srv_sess *ss = s->user;
    return ss->sc == sc && !(ss->waiting && ss->wait_type == NB_CLOSE)
               ? ss : NULL;
}

static void do_open(struct srv_conn *sc, const struct nb_hdr *h,
                    const uint8_t *p)
{
    struct nb_open m;
    const char *why;
    if (nb_open_decode(p, h->length, &m, &why) < 0) {
        log_warn(nb_conn_where(sc->c), "bad OPEN: %s", why);
        reply_status(sc, NB_OPEN, 0, h->tag, NB_ST_INVAL);
        return;
    }
    const char *peer = nb_conn_peer(sc->c);
    struct nb_export *ex = nb_exports_find(sc->srv->reg, m.name);
    if (!ex || !nb_export_allows(ex, peer)) {
        log_info(nb_conn_where(sc->c), "%s asked for export '%s': %s", peer,
                 m.name, ex ? "not allowed" : "no such export");
        reply_status(sc, NB_OPEN, 0, h->tag, NB_ST_NOENT);
        return;
    }
    bool usb = nb_export_kind(ex) == NB_EXPORT_USB;
    if (usb != !!(m.flags & NB_OPEN_USB)) {
        log_info(nb_conn_where(sc->c), "%s asked for export '%s' as a %s: "
                 "it is a %s", peer, m.name, usb ? "disk" : "USB device",
                 usb ? "USB device" : "disk");
        reply_status(sc, NB_OPEN, 0, h->tag, NB_ST_NOTSUP);
        return;
    }
    bool ro = !usb && (m.flags & NB_OPEN_READONLY);
    if (!ro && nb_export_readonly(ex)) {
        reply_status(sc, NB_OPEN, 0, h->tag, NB_ST_ROFS);
        return;
    }
    struct nb_session *s = m.resume_session
        ? nb_session_find(sc->srv->reg, m.resume_session) : NULL;
    struct srv_sess *old_ss = s && s->kill == sess_kill ? s->user : NULL;
    /* A usb session closed or given up keeps no results to resume. */
    if (old_ss && (old_ss->linger_over || (usb && !old_ss->usb)))
        old_ss = NULL;
    if (old_ss && s->ex == ex && !strcmp(s->peer, peer)) {
        struct srv_sess *ss = old_ss;
        if (s->superseded) { /* its guest moved on: no way back in */
            reply_status(sc, NB_OPEN, 0, h->tag, NB_ST_BUSY);
            return;
        }
        if (ss->sc != sc) {
            struct srv_conn *old = ss->sc;
            sess_unlink(ss); /* so that closing old leaves it alone */
            if (old) {
                log_info(nb_conn_where(sc->c), "session %u moves to a new "
                         "connection from %s: closing the old one", s->id,
                         peer);
                nb_conn_close(old->c, "session %u taken over by a new "
                              "connection", s->id);
            }
            sess_attach(ss, sc);
        }
        s->readonly = ro;
        /* A usb session's URBs at the device need not finish first: a
         * resent one is attached to its execution, never run again. */
        if (s->inflight && !ss->usb) {
            ss->waiting = true; /* answered when its old I/O is done */
            ss->wait_type = NB_OPEN;
            ss->wait_tag = h->tag;
        } else {
            reply_opened(sc, s, h->tag);
        }
        return;
    }
    struct srv_sess *ss = calloc(1, sizeof(*ss));
    s = ss ? nb_session_new(ex, peer, m.owner, ro) : NULL;
    if (s && usb) {
        ss->usb = nb_usb_sess_new(s);
        ss->linger = timer_new(sc->srv->loop, on_linger, ss);
        if (!ss->usb || !ss->linger) {
            nb_usb_sess_free(ss->usb);
            timer_free(ss->linger);
            nb_session_free(s);
            s = NULL;
            errno = ENOMEM;
        }
    }
    if (!s) {
        int busy = errno == EBUSY;
        free(ss);
        reply_status(sc, NB_OPEN, 0, h->tag, busy ? NB_ST_BUSY : NB_ST_EIO);
        return;
    }
    ss->s = s;
    sess_attach(ss, sc);
    s->user = ss;
    s->kill = sess_kill;
    s->drained = sess_drained;
    if (usb)
        s->changed = sess_changed;
    if (nb_session_must_wait(s)) {
        ss->waiting = true; /* the guest's old session finishes first */
        ss->wait_type = NB_OPEN;
        ss->wait_tag = h->tag;
        return;
    }
    reply_opened(sc, s, h->tag);
}

static void do_close(struct srv_conn *sc, const struct nb_hdr *h)
{
    struct srv_sess *ss = sess_of(sc, h->session);
    if (!ss) {
        reply_status(sc, NB_CLOSE, h->session, h->tag, NB_ST_STALE);
        return;
    }
    if (ss->usb) {
        /* Its URBs still at the device are cancelled (an interrupt IN may
         * wait for ever) and their results not kept. */
        nb_usb_sess_free(ss->usb);
        ss->usb = NULL;
    }
    if (ss->s->inflight) {
        ss->waiting = true;
        ss->wait_type = NB_CLOSE;
        ss->wait_tag = h->tag;
        return;
    }
    reply_status(sc, NB_CLOSE, h->session, h->tag, NB_ST_OK);
    sess_free(ss);
}

/* ---- block I/O ------------------------------------------------------------------ */

static void io_unlink(struct srv_io *io)
{
    struct srv_conn *sc = io->sc;
    if (!sc)
        return;
    if (io->prev)
        io->prev->next = io->next;
    else
        sc->ios = io->next;
    if (io->next)
        io->next->prev = io->prev;
    io->next = io->prev = NULL;
    sc->inflight--;
    if (sc->paused && sc->inflight < RESUME_INFLIGHT) {
        sc->paused = false;
        nb_conn_pause(sc->c, false);
    }
}

static void io_free(struct srv_io *io)
{
    nb_buf_put(io->buf, io->buflen);
    free(io);
}

static void io_release(struct nb_out *o)
{
    io_free((struct srv_io *)((uint8_t *)o - offsetof(struct srv_io, out)));
}

static struct srv_io *io_new(size_t len)
{
    struct srv_io *io = calloc(1, sizeof(*io));
    if (!io)
        return NULL;
    if (len && !(io->buf = nb_buf_get(len))) {
        free(io);
        return NULL;
    }
    io->buflen = len;
    io->data.iov_base = io->buf;
    io->data.iov_len = len;
    return io;
}

static void io_done(struct vbd_target_io *tio, int err)
{
    struct srv_io *io = (struct srv_io *)tio;
    struct srv_conn *sc = io->sc;
    struct nb_session *s = io->s;
    if (!sc) {
        io_free(io);
    } else {
        io_unlink(io);
        uint8_t b[NB_STATUS_BODY];
        int32_t st = nb_errno_status(err);
        struct nb_hdr h = { .type = io->type | NB_REPLY, .session = s->id,
                            .tag = io->tag };
        bool data = io->type == NB_READ && st == NB_ST_OK;
        nb_out_set(&io->out, &h, b, nb_status_encode(b, st),
                   data ? &io->data : NULL, data ? 1 : 0);
        io->out.release = io_release;
        nb_conn_send(sc->c, &io->out);
        evloop_defer(sc->srv->loop, &sc->flush);
        /* An importer that just got an answer tends to send the next
         * request soon (its guest's queue keeps coming): worth polling for. */
        evloop_expect_soon(sc->srv->loop);
    }
    nb_session_io_end(s);
}

static int32_t check_io(const struct nb_session *s, uint8_t type,
                        const struct nb_io *m)
{
    if (!nb_export_target(s->ex))
        return NB_ST_NOTSUP; /* a usb export's session */
    const struct vbd_target_info *ti = &nb_export_target(s->ex)->info;
    uint64_t ss = ti->sector_size;
    if (s->superseded)
        return NB_ST_BUSY; /* the guest's disk moved to another session */
    if (type == NB_FLUSH) {
        if (m->offset || m->len)
            return NB_ST_INVAL;
        return s->readonly ? NB_ST_ROFS : ti->can_flush ? NB_ST_OK
                                                        : NB_ST_NOTSUP;
    }
    if ((type == NB_WRITE || type == NB_DISCARD) && s->readonly)
        return NB_ST_ROFS;
    if (type == NB_DISCARD && !ti->can_discard)
        return NB_ST_NOTSUP;
    if (m->len == 0 || m->len % ss || m->offset % ss ||
        m->offset > ti->size || m->len > ti->size - m->offset)
        return NB_ST_INVAL;
    return NB_ST_OK;
}

/* READ/WRITE/FLUSH/DISCARD. io: the WRITE received through the sink. */
static void do_io(struct srv_conn *sc, const struct nb_hdr *h,
                  const uint8_t *p, struct srv_io *io)
{
    struct nb_io m;
    const char *why;
    const uint8_t *body = io ? io->body : p;
    int32_t st;
    struct srv_sess *ss = sess_of(sc, h->session);
    if (nb_io_decode(body, NB_IO_BODY, &m, &why) < 0 ||
        (h->type == NB_WRITE ? m.len != h->length - NB_IO_BODY
                             : h->length != NB_IO_BODY))
        st = NB_ST_INVAL;
    else if (!ss)
        st = NB_ST_STALE;
    else
        st = check_io(ss->s, h->type, &m);
    if (st == NB_ST_OK && !io) {
        io = io_new(h->type == NB_READ ? m.len : 0);
        if (!io)
            st = NB_ST_EIO;
    }
    if (st != NB_ST_OK) {
        if (io)
            io_free(io);
        reply_status(sc, h->type, h->session, h->tag, st);
        return;
    }
    struct vbd_target *t = nb_export_target(ss->s->ex);
    io->sc = sc;
    io->s = ss->s;
    io->tag = h->tag;
    io->type = h->type;
    io->tio = (struct vbd_target_io){
        .kind = h->type == NB_READ ? VBD_IO_READ
                : h->type == NB_WRITE ? VBD_IO_WRITE
                : h->type == NB_FLUSH ? VBD_IO_FLUSH : VBD_IO_DISCARD,
        .preflush = h->flags & NB_F_PREFLUSH,
        .offset = m.offset,
        .len = m.len,
        .iov = &io->data,
        .iovcnt = h->type == NB_READ || h->type == NB_WRITE ? 1 : 0,
        .done = io_done,
    };
    nb_session_io_start(ss->s);
    io->next = sc->ios;
    if (sc->ios)
        sc->ios->prev = io;
    sc->ios = io;
    if (++sc->inflight >= MAX_INFLIGHT && !sc->paused) {
        sc->paused = true;
        nb_conn_pause(sc->c, true);
    }
    int rc = t->ops->submit(t, &io->tio);
    if (rc < 0) {
        io_done(&io->tio, rc);
        return;
    }
    if (sc->kick && sc->kick != t)
        sc->kick->ops->kick(sc->kick);
    sc->kick = t;
}

/* ---- USB ------------------------------------------------------------------------- */

static void do_usb(struct srv_conn *sc, const struct nb_hdr *h,
                   const uint8_t *p)
{
    struct srv_sess *ss = sess_of(sc, h->session);
    if (!ss || !ss->usb) {
        reply_status(sc, h->type, h->session, h->tag,
                     ss ? NB_ST_NOTSUP : NB_ST_STALE);
        return;
    }
    if (h->type == NB_URB)
        nb_usb_urb(ss->usb, h, p);
    else
        nb_usb_unlink(ss->usb, h, p);
}

static void kick_now(struct srv_conn *sc)
{
    struct vbd_target *t = sc->kick;
    sc->kick = NULL;
    if (t)
        t->ops->kick(t);
}

static void flush_now(void *opaque)
{
    struct srv_conn *sc = opaque;
    nb_conn_flush(sc->c);
}

/* ---- connection callbacks ----------------------------------------------------- */

static int srv_sink(struct nb_conn *c, const struct nb_hdr *h,
                    const struct iovec **iov, unsigned *n)
{
    struct srv_conn *sc = nb_conn_opaque(c);
    if (h->type & NB_REPLY || h->type == NB_EVENT)
        return -1; /* a client sends no replies and no events */
    if (h->type != NB_WRITE)
        return 0; /* buffered: control-sized */
    size_t data = h->length - NB_IO_BODY;
    struct srv_io *io = io_new(data);
    if (!io)
        return -1;
    io->rx[0].iov_base = io->body;
    io->rx[0].iov_len = NB_IO_BODY;
    io->rx[1] = io->data;
    sc->rx_io = io;
    *iov = io->rx;
    *n = data ? 2 : 1;
    return 0;
}

static int srv_frame(struct nb_conn *c, const struct nb_hdr *h,
                     const uint8_t *p)
{
    struct srv_conn *sc = nb_conn_opaque(c);
    switch (h->type) {
    case NB_OPEN:
        do_open(sc, h, p);
        break;
    case NB_CLOSE:
        do_close(sc, h);
        break;
    case NB_WRITE: {
        struct srv_io *io = sc->rx_io;
        sc->rx_io = NULL;
        do_io(sc, h, NULL, io);
        break;
    }
    case NB_READ:
    case NB_FLUSH:
    case NB_DISCARD:
        do_io(sc, h, p, NULL);
        break;
    case NB_URB:
    case NB_UNLINK:
        do_usb(sc, h, p);
        break;
    case NB_QUIESCE:
    case NB_RESUME:
    case NB_HANDOVER:
        reply_status(sc, h->type, h->session, h->tag, NB_ST_NOTSUP);
        break;
    default:
        return -1;
    }
    return 0; /* replies go out when the frames that came together are done */
}

static void srv_rx_end(struct nb_conn *c)
{
    kick_now(nb_conn_opaque(c));
}

static void srv_up(struct nb_conn *c)
{
    (void)c;
}

static void srv_down(struct nb_conn *c, const char *why)
{
    struct srv_conn *sc = nb_conn_opaque(c);
    struct nb_server *srv = sc->srv;
    log_info(nb_conn_where(c), "connection closed: %s", why);
    kick_now(sc); /* what it submitted still runs to completion */
    evloop_defer_cancel(srv->loop, &sc->flush);
    for (struct srv_io *io = sc->ios, *next; io; io = next) {
        next = io->next;
        io->sc = NULL;
        io->next = io->prev = NULL;
    }
    if (sc->rx_io)
        io_free(sc->rx_io);
    while (sc->sessions) {
        struct srv_sess *ss = sc->sessions;
        sc->sessions = ss->next;
        ss->sc = NULL;
        ss->next = NULL;
        ss->waiting = false;
        if (ss->usb && !ss->s->superseded) {
            /* its results wait for the client to resume it */
            nb_usb_sess_connect(ss->usb, NULL, NULL);
            timer_at(ss->linger, mono_ms() + srv->usb_linger_ms);
        } else {
            /* A handed-over usb session's URBs are cancelled: the session
             * that took over waits for them. */
            nb_usb_sess_free(ss->usb);
            ss->usb = NULL;
            if (ss->s->inflight == 0)
                sess_free(ss); /* else when its I/O is done */
        }
    }
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        srv->conns = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    srv->nconns--;
    free(sc);
}

static const struct nb_conn_ops srv_ops = {
    .sink = srv_sink,
    .frame = srv_frame,
    .up = srv_up,
    .down = srv_down,
};

/* ---- listening ----------------------------------------------------------------- */

static void on_accept(struct evloop *loop, int fd, uint32_t events,
                      void *opaque)
{
    (void)events;
    struct nb_server *srv = opaque;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int cfd = accept4(fd, (struct sockaddr *)&sa, &len,
                          SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn(srv->addr, "accept: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?", where[300];
        getnameinfo((struct sockaddr *)&sa, len, host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(where, sizeof(where), "netbus %s <- %s:%s", srv->addr, host,
                 port);
        struct srv_conn *sc = calloc(1, sizeof(*sc));
        if (!sc) {
            close(cfd);
            return;
        }
        sc->srv = srv;
        sc->flush.cb = flush_now;
        sc->flush.opaque = sc;
        sc->c = nb_conn_new(loop, cfd, srv->cfg, &srv_ops, sc, where);
        if (!sc->c) {
            free(sc);
            continue;
        }
        nb_conn_on_rx_end(sc->c, srv_rx_end);
        sc->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = sc;
        srv->conns = sc;
        srv->nconns++;
    }
}

int nb_split_hostport(const char *s, char *host, size_t hostlen,
                      unsigned *port)
{
    const char *h = s, *colon;
    size_t hl;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end)
            return -1;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end[1] == ':' ? end + 1 : NULL;
        if (end[1] && !colon)
            return -1;
    } else {
        colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon)
            return -1; /* a bare IPv6 address needs brackets */
        hl = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = NB_DEFAULT_PORT;
    if (colon) {
        char *end;
        unsigned long v = strtoul(colon + 1, &end, 10);
        if (!colon[1] || *end || v > 65535 || colon[1] == '-' ||
            colon[1] == '+')
            return -1;
        *port = (unsigned)v;
    }
    return 0;
}

struct nb_server *nb_server_new(struct evloop *loop, struct nb_exports *reg,
                                const struct nb_conn_cfg *cfg,
                                const char *addr, char *err, size_t errlen)
{
    char host[256], ps[16];
    unsigned port;
    if (nb_split_hostport(addr, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "listen address '%s' is not HOST:PORT, "
                 "[IPV6]:PORT or HOST", addr);
        return NULL;
    }
    snprintf(ps, sizeof(ps), "%u", port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc) {
        snprintf(err, errlen, "listen address %s: %s", addr, gai_strerror(rc));
        return NULL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
                             sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
        snprintf(err, errlen, "listening on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return NULL;
    }
    freeaddrinfo(ai);
    struct nb_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->loop = loop;
    srv->reg = reg;
    srv->cfg = cfg;
    srv->lfd = fd;
    srv->usb_linger_ms = NB_USB_LINGER_MS;
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char h2[NI_MAXHOST] = "?", p2[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        getnameinfo((struct sockaddr *)&sa, len, h2, sizeof(h2), p2,
                    sizeof(p2), NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(srv->addr, sizeof(srv->addr), strchr(h2, ':') ? "[%s]:%s"
             : "%s:%s", h2, p2);
    if (evloop_add(loop, fd, EPOLLIN, on_accept, srv) < 0) {
        snprintf(err, errlen, "evloop: %s", strerror(errno));
        close(fd);
        free(srv);
        return NULL;
    }
    log_info(srv->addr, "netbus: listening");
    return srv;
}

const char *nb_server_addr(const struct nb_server *srv)
{
    return srv->addr;
}

void nb_server_set_usb_linger(struct nb_server *srv, unsigned ms)
{
    srv->usb_linger_ms = ms;
}

unsigned nb_server_connections(const struct nb_server *srv)
{
    return srv->nconns;
}

void nb_server_free(struct nb_server *srv)
{
    if (!srv)
        return;
    while (srv->conns)
        nb_conn_close(srv->conns->c, "netbusd is stopping");
    evloop_del(srv->loop, srv->lfd);
    close(srv->lfd);
    free(srv);
    nb_buf_trim();
}
