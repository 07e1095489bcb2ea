/* remote: vbd target over a netbus connection (see remote.h). */
#include "remote.h"

#include "backend/vbd/target.h"
#include "client_open.h"
#include "evloop.h"
#include "log.h"
#include "timer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum rt_state {
    RT_CLOSED,    /* no session on the current connection (yet) */
    RT_OPENING,   /* OPEN in flight */
    RT_OPEN,
    RT_FAILED,    /* for good: export gone, refused, first open timed out */
};

struct rt;

struct rt_io {
    struct nb_call call;
    struct vbd_target_io *tio;
    struct rt *t;
    uint64_t deadline;
    struct rt_io *next, *prev;
    uint8_t status[NB_STATUS_BODY];
    struct iovec riov[NB_MAX_IOV];
};

struct rt {
    struct vbd_target pub;
    struct nb_peer_user user;
    struct nb_peer *peer;
    char *where;
    char host[256];
    unsigned port;
    char export_name[NB_NAME_MAX + 1];
    char owner[NB_OWNER_MAX + 1];
    bool readonly;
    enum rt_state st;
    uint32_t session;
    bool opened_once;
    struct nb_call open_call;
    struct rt_io *head, *tail;
    unsigned count;
    struct rt_io *free_ios;
    struct timer *timer;
    uint64_t armed;             /* when the timer fires (0: not armed) */
    /* Replies that arrived together are pushed to the guest's ring once,
     * after the event loop's batch. */
    struct evloop *loop;
    struct evloop_deferred reap;
    unsigned io_timeout_ms;
    uint64_t open_deadline;
    void (*ready)(void *opaque, const char *err);
    void *ready_opaque;
    char why[256];
};

#define RT(t) ((struct rt *)(t))

static void send_open(struct rt *t);
static void send_io(struct rt *t, struct rt_io *io);

/* ---- completion ---------------------------------------------------------- */

static void io_unlink(struct rt *t, struct rt_io *io)
{
    if (io->prev)
        io->prev->next = io->next;
    else
        t->head = io->next;
    if (io->next)
        io->next->prev = io->prev;
    else
        t->tail = io->prev;
    io->next = io->prev = NULL;
    t->count--;
}

/* Answers io (err 0 or -errno) and recycles it. */
static void complete(struct rt *t, struct rt_io *io, int err)
{
    struct vbd_target_io *tio = io->tio;
    io_unlink(t, io);
    io->next = t->free_ios;
    t->free_ios = io;
    tio->done(tio, err);
}

static void reaped(struct rt *t)
{
    if (t->pub.reaped)
        t->pub.reaped(t->pub.opaque);
}

static void reaped_later(void *opaque)
{
    reaped(opaque);
}

/* Fails every request not in flight (or all, with cancel). */
static unsigned fail_all(struct rt *t, bool cancel, int err)
{
    unsigned n = 0;
    for (struct rt_io *io = t->head, *next; io; io = next) {
        next = io->next;
        if (io->call.tag) {
            if (!cancel)
                continue;
            nb_peer_cancel(t->peer, &io->call);
        }
        complete(t, io, err);
        n++;
    }
    if (n)
        reaped(t);
    return n;
}

/* Requests come in deadline order, so a timer armed for an earlier one
 * is left alone: firing early costs one look (on_timer arms it again),
 * moving it costs a timerfd call per request. */
static void arm(struct rt *t)
{
    uint64_t when = 0;
    if (!t->opened_once && t->st != RT_FAILED)
        when = t->open_deadline;
    if (t->head && (!when || t->head->deadline < when))
        when = t->head->deadline;
    if (when && (!t->armed || when < t->armed)) {
        timer_at(t->timer, when);
        t->armed = when;
    }
}

static void first_open_failed(struct rt *t, const char *why)
{
    t->st = RT_FAILED;
    if (why != t->why)
        snprintf(t->why, sizeof(t->why), "%s", why);
    log_error(t->where, "netbus://%s:%u/%s: %s", t->host, t->port,
              t->export_name, why);
    void (*ready)(void *, const char *) = t->ready;
    t->ready = NULL;
    if (ready)
        ready(t->ready_opaque, t->why);
}

static void on_timer(void *opaque)
{
    struct rt *t = opaque;
    uint64_t now = mono_ms();
    t->armed = 0;
    if (!t->opened_once && t->st != RT_FAILED && now >= t->open_deadline) {
        char why[400];
        snprintf(why, sizeof(why), "export not opened within %u ms: %s",
                 t->io_timeout_ms, nb_peer_error(t->peer)[0]
                 ? nb_peer_error(t->peer) : "no answer");
        if (t->st == RT_OPENING)
            nb_peer_cancel(t->peer, &t->open_call);
        first_open_failed(t, why);
        return; /* the caller closes us */
    }
    if (t->head && t->head->deadline <= now && t->head->call.tag)
        nb_peer_reset(t->peer, "a request went unanswered for io-timeout");
    unsigned n = 0;
    while (t->head && t->head->deadline <= now && !t->head->call.tag) {
        complete(t, t->head, -EIO);
        n++;
    }
    if (n) {
        log_error(t->where, "%u request(s) failed: the export on %s:%u did "
                  "not answer within %u ms (%s)", n, t->host, t->port,
                  t->io_timeout_ms, nb_peer_error(t->peer)[0]
                  ? nb_peer_error(t->peer) : "connection up");
        reaped(t);
    }
    arm(t);
}

/* ---- replies --------------------------------------------------------------- */

static int io_sink(struct nb_call *call, const struct nb_hdr *h,
                   const struct iovec **iov, unsigned *n)
{
    struct rt_io *io = (struct rt_io *)call;
    const struct vbd_target_io *tio = io->tio;
    io->riov[0].iov_base = io->status;
    io->riov[0].iov_len = NB_STATUS_BODY;
    *n = 1;
    if (tio->kind == VBD_IO_READ && h->length == NB_STATUS_BODY + tio->len) {
        /* Data goes straight into the guest's pages. */
        for (unsigned i = 0; i < tio->iovcnt; i++)
            io->riov[1 + i] = tio->iov[i];
        *n = 1 + tio->iovcnt;
    } else if (h->length != NB_STATUS_BODY) {
        return -1;
    }
    *iov = io->riov;
    return 0;
}

static int io_reply(struct nb_call *call, const struct nb_hdr *h,
                    const uint8_t *payload)
{
    (void)payload;
    struct rt_io *io = (struct rt_io *)call;
    struct rt *t = io->t;
    int32_t st;
    const char *why;
    if (nb_status_decode(io->status, NB_STATUS_BODY, &st, &why) < 0)
        return -1;
    bool with_data = h->length > NB_STATUS_BODY;
    if ((st == NB_ST_OK) != with_data && io->tio->kind == VBD_IO_READ)
        return -1;
    if (st == NB_ST_STALE) {
        /* The server lost our session: open again, then resend. */
        if (t->st == RT_OPEN) {
            t->st = RT_CLOSED;
            send_open(t);
        }
        return 0;
    }
    complete(t, io, nb_status_errno(st));
    evloop_defer(t->loop, &t->reap);
    return 0;
}

static void resend_all(struct rt *t)
{
    for (struct rt_io *io = t->head; io; io = io->next)
        if (!io->call.tag)
            send_io(t, io);
    nb_peer_flush(t->peer);
}

static const char *open_error(struct rt *t, int32_t st)
{
    return nb_open_refusal(t->why, sizeof(t->why), st, nb_peer_name(t->peer),
                           t->export_name, false);
}

static int open_reply(struct nb_call *call, const struct nb_hdr *h,
                      const uint8_t *payload)
{
    struct rt *t = (struct rt *)((uint8_t *)call - offsetof(struct rt,
                                                             open_call));
    struct nb_opened m;
    const char *why;
    if (nb_opened_decode(payload, h->length, &m, &why) < 0)
        return -1;
    if (m.status != NB_ST_OK) {
        const char *err = open_error(t, m.status);
        if (!t->opened_once) {
            first_open_failed(t, err);
            return 0;
        }
        log_error(t->where, "reopening: %s", err);
        t->st = RT_CLOSED;
        fail_all(t, false, -EIO);
        arm(t);
        return 0;
    }
    if (!t->opened_once) {
        struct vbd_target_info *ti = &t->pub.info;
        ti->size = m.size;
        ti->sector_size = m.sector_size;
        ti->physical_sector_size = m.physical_sector_size;
        ti->discard_granularity = m.discard_granularity;
        ti->readonly = m.flags & NB_INFO_READONLY;
        ti->can_flush = m.flags & NB_INFO_FLUSH;
        ti->can_discard = m.flags & NB_INFO_DISCARD;
        t->opened_once = true;
        log_info(t->where, "netbus://%s:%u/%s: session %u on %s, %llu bytes",
                 t->host, t->port, t->export_name, h->session,
                 nb_peer_name(t->peer), (unsigned long long)m.size);
    } else if (m.size != t->pub.info.size) {
        log_warn(t->where, "the export's size changed from %llu to %llu "
                 "bytes", (unsigned long long)t->pub.info.size,
                 (unsigned long long)m.size);
    } else if (h->session != t->session) {
        log_info(t->where, "session %u (was %u) on %s", h->session,
                 t->session, nb_peer_name(t->peer));
    }
    t->session = h->session;
    t->user.session = h->session;
    t->st = RT_OPEN;
    arm(t);
    if (t->ready) {
        void (*ready)(void *, const char *) = t->ready;
        t->ready = NULL;
        ready(t->ready_opaque, NULL);
    }
    resend_all(t);
    return 0;
}

/* ---- sending --------------------------------------------------------------- */

static void send_open(struct rt *t)
{
    if (t->st != RT_FAILED && t->st != RT_OPENING &&
        nb_send_open(t->peer, &t->open_call,
                     t->readonly ? NB_OPEN_READONLY : 0, t->session,
                     t->export_name, t->owner, open_reply) == 0)
        t->st = RT_OPENING;
}

static void send_io(struct rt *t, struct rt_io *io)
{
    const struct vbd_target_io *tio = io->tio;
    static const uint8_t types[] = { [VBD_IO_READ] = NB_READ,
                                     [VBD_IO_WRITE] = NB_WRITE,
                                     [VBD_IO_FLUSH] = NB_FLUSH,
                                     [VBD_IO_DISCARD] = NB_DISCARD };
    struct nb_hdr h = { .type = types[tio->kind], .session = t->session,
                        .flags = tio->kind == VBD_IO_WRITE && tio->preflush
                                 ? NB_F_PREFLUSH : 0 };
    struct nb_io m = { .offset = tio->offset, .len = (uint32_t)tio->len };
    uint8_t b[NB_IO_BODY];
    bool data = tio->kind == VBD_IO_WRITE;
    /* Written from the guest's pages as they are. */
    nb_out_set(&io->call.out, &h, b, nb_io_encode(b, &m),
               data ? tio->iov : NULL, data ? tio->iovcnt : 0);
    io->call.sink = io_sink;
    io->call.reply = io_reply;
    nb_peer_send(t->peer, &io->call);
}

/* ---- target ops ------------------------------------------------------------ */

static int rt_submit(struct vbd_target *pub, struct vbd_target_io *tio)
{
    struct rt *t = RT(pub);
    if (t->st == RT_FAILED)
        return -ENODEV;
    if (tio->len > NB_MAX_DATA || tio->iovcnt > NB_MAX_IOV - 1)
        return -EINVAL;
    struct rt_io *io = t->free_ios;
    if (io)
        t->free_ios = io->next;
    else if (!(io = calloc(1, sizeof(*io))))
        return -ENOMEM;
    io->next = io->prev = NULL;
    io->call.tag = 0;
    io->tio = tio;
    io->t = t;
    io->deadline = mono_ms() + t->io_timeout_ms;
    io->prev = t->tail;
    if (t->tail)
        t->tail->next = io;
    else
        t->head = io;
    t->tail = io;
    t->count++;
    if (t->st == RT_OPEN)
        send_io(t, io);
    else if (t->st == RT_CLOSED)
        send_open(t);
    if (io == t->head)
        arm(t);
    return 0;
}

static void rt_kick(struct vbd_target *pub)
{
    struct rt *t = RT(pub);
    nb_peer_flush(t->peer);
    /* Answers are a network round trip away: worth polling for. */
    if (t->count)
        evloop_expect_soon(t->loop);
}

static void rt_drain(struct vbd_target *pub)
{
    struct rt *t = RT(pub);
    bool fence = false;
    for (struct rt_io *io = t->head; io; io = io->next)
        fence |= io->call.tag != 0;
    unsigned n = fail_all(t, true, -EIO);
    if (n)
        log_warn(t->where, "%u request(s) still waiting for the export "
                 "answered with an error", n);
    if (fence && t->st == RT_OPEN) {
        /* The export may still run them: reopen, which waits for them,
         * before anything new goes out. */
        t->st = RT_CLOSED;
        send_open(t);
        nb_peer_flush(t->peer);
    }
    arm(t);
}

static unsigned rt_inflight(const struct vbd_target *pub)
{
    return ((const struct rt *)pub)->count;
}

static void rt_close(struct vbd_target *pub)
{
    struct rt *t = RT(pub);
    evloop_defer_cancel(t->loop, &t->reap);
    fail_all(t, true, -EIO);
    if (t->st == RT_OPENING)
        nb_peer_cancel(t->peer, &t->open_call);
    if (t->st == RT_OPEN) {
        nb_peer_send_untracked(t->peer, NB_CLOSE, t->session);
        nb_peer_flush(t->peer);
    }
    nb_peer_detach(t->peer, &t->user);
    timer_free(t->timer);
    while (t->free_ios) {
        struct rt_io *io = t->free_ios;
        t->free_ios = io->next;
        free(io);
    }
    free(t->where);
    free(t);
}

static const struct vbd_target_ops rt_ops = {
    .submit = rt_submit,
    .kick = rt_kick,
    .drain = rt_drain,
    .inflight = rt_inflight,
    .close = rt_close,
};

/* ---- peer events ------------------------------------------------------------ */

static void rt_up(struct nb_peer_user *u)
{
    struct rt *t = (struct rt *)((uint8_t *)u - offsetof(struct rt, user));
    if (t->st == RT_CLOSED && (!t->opened_once || t->head))
        send_open(t);
}

static void rt_down(struct nb_peer_user *u, const char *why)
{
    struct rt *t = (struct rt *)((uint8_t *)u - offsetof(struct rt, user));
    if (t->st == RT_OPEN || t->st == RT_OPENING) {
        t->st = RT_CLOSED;
        if (t->head)
            log_warn(t->where, "connection to the export lost (%s): %u "
                     "request(s) wait for it, up to %u ms", why, t->count,
                     t->io_timeout_ms);
    }
}

static void rt_event(struct nb_peer_user *u, const struct nb_event_body *ev)
{
    struct rt *t = (struct rt *)((uint8_t *)u - offsetof(struct rt, user));
    if (ev->kind == NB_EV_GONE) {
        log_error(t->where, "export '%s' was unexported on %s: the disk "
                  "fails from now on", t->export_name, nb_peer_name(t->peer));
        t->st = RT_FAILED;
        fail_all(t, true, -EIO);
        arm(t);
    } else {
        log_warn(t->where, "export '%s' changed size to %llu bytes",
                 t->export_name, (unsigned long long)ev->value);
    }
}

struct vbd_target *nb_remote_open(const struct nb_remote_params *p)
{
    struct rt *t = calloc(1, sizeof(*t));
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
    t->pub.ops = &rt_ops;
    snprintf(t->host, sizeof(t->host), "%s", p->host);
    t->port = p->port;
    snprintf(t->export_name, sizeof(t->export_name), "%s", p->export_name);
    snprintf(t->owner, sizeof(t->owner), "%s", p->owner);
    t->readonly = p->readonly;
    t->io_timeout_ms = p->io_timeout_ms;
    t->ready = p->ready;
    t->ready_opaque = p->ready_opaque;
    t->user.up = rt_up;
    t->user.down = rt_down;
    t->user.event = rt_event;
    t->loop = p->pool->loop;
    t->reap.cb = reaped_later;
    t->reap.opaque = t;
    t->open_deadline = mono_ms() + p->io_timeout_ms;
    arm(t);
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
