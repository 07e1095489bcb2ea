/* Wire connections: framing of xs_wire messages from a non-blocking
 * socket, and a per-connection output queue so a slow reader never blocks
 * the daemon. A reader that falls far behind is first no longer read from
 * (its own requests wait) and, if watch events still pile up, dropped, as
 * xenstored drops a domain over its memory quota. */
#include "xsd_internal.h"
#include "evloop.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Stop reading requests above this much unsent output... */
#define OUT_PAUSE  (64u * 1024)
/* ...and drop the connection above this (xenstored's 2.5 MB hard quota). */
#define OUT_MAX    (2560u * 1024)

struct xsd_msg {
    struct xsd_msg *next;
    uint32_t len;  /* header + payload */
    uint32_t sent;
    bool event;
    unsigned char data[];
};

static void conn_io(struct evloop *loop, int fd, uint32_t events, void *opaque);

struct xsd_conn *conn_new(struct xsd *x, int fd, unsigned domid)
{
    struct xsd_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->x = x;
    c->fd = fd;
    c->domid = domid;
    c->out_tail = &c->out_head;
    c->next_txn_id = 1;
    if (x->loop && evloop_add(x->loop, fd, EPOLLIN, conn_io, c) < 0) {
        free(c);
        return NULL;
    }
    c->next = x->conns;
    x->conns = c;
    return c;
}

void conn_destroy(struct xsd_conn *c)
{
    watch_remove_all(c);
    txn_abort_all(c);
    while (c->out_head) {
        struct xsd_msg *m = c->out_head;
        c->out_head = m->next;
        free(m);
    }
    if (c->x->loop && !c->dead)
        evloop_del(c->x->loop, c->fd);
    close(c->fd);
    free(c);
}

void conn_kill(struct xsd_conn *c, const char *why)
{
    if (c->dead)
        return;
    log_debug("xenstored", "dropping connection of domain %u: %s", c->domid,
              why);
    c->dead = true;
    if (c->x->loop)
        evloop_del(c->x->loop, c->fd);
}

static void conn_update_events(struct xsd_conn *c)
{
    bool want_out = c->out_head != NULL;
    /* Not reading while replies pile up, or while read input waits. */
    bool paused = c->out_bytes > OUT_PAUSE || c->rpos < c->rlen;
    if (c->dead || !c->x->loop ||
        (want_out == c->want_out && paused == c->paused))
        return;
    c->want_out = want_out;
    c->paused = paused;
    evloop_mod(c->x->loop, c->fd,
               (paused ? 0 : EPOLLIN) | (want_out ? EPOLLOUT : 0));
}

/* Sends what the socket takes now; false if the connection failed. */
static bool conn_flush(struct xsd_conn *c)
{
    while (c->out_head) {
        struct iovec iov[64];
        int n = 0;
        for (struct xsd_msg *m = c->out_head; m && n < 64; m = m->next) {
            iov[n].iov_base = m->data + m->sent;
            iov[n].iov_len = m->len - m->sent;
            n++;
        }
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            return false;
        }
        c->out_bytes -= (size_t)w;
        while (w > 0) {
            struct xsd_msg *m = c->out_head;
            size_t left = m->len - m->sent;
            if ((size_t)w < left) {
                m->sent += (uint32_t)w;
                break;
            }
            w -= (ssize_t)left;
            c->out_head = m->next;
            free(m);
        }
        if (!c->out_head)
            c->out_tail = &c->out_head;
    }
    return true;
}

static void conn_queue(struct xsd_conn *c, struct xsd_msg *m)
{
    *c->out_tail = m;
    c->out_tail = &m->next;
    c->out_bytes += m->len;
    if (c->out_bytes > OUT_MAX) {
        conn_kill(c, "output queue over its limit");
        return;
    }
    conn_update_events(c);
}

static struct xsd_msg *msg_new(uint32_t type, uint32_t req_id, uint32_t tx_id,
                               const void *d1, uint32_t l1, const void *d2,
                               uint32_t l2)
{
    struct xsd_msg *m = malloc(sizeof(*m) + XSD_HDR_LEN + l1 + l2);
    if (!m)
        return NULL;
    struct xsd_sockmsg hdr = { type, req_id, tx_id, l1 + l2 };
    memcpy(m->data, &hdr, XSD_HDR_LEN);
    if (l1)
        memcpy(m->data + XSD_HDR_LEN, d1, l1);
    if (l2)
        memcpy(m->data + XSD_HDR_LEN + l1, d2, l2);
    m->next = NULL;
    m->len = XSD_HDR_LEN + l1 + l2;
    m->sent = 0;
    m->event = false;
    return m;
}

void conn_send(struct xsd_conn *c, uint32_t type, uint32_t req_id,
               uint32_t tx_id, const void *data, uint32_t len)
{
    if (c->dead)
        return;
    struct xsd_msg *m = msg_new(type, req_id, tx_id, data, len, NULL, 0);
    if (!m) {
        conn_kill(c, "out of memory");
        return;
    }
    conn_queue(c, m);
}

void conn_send_error(struct xsd_conn *c, const struct xsd_sockmsg *req,
                     int err)
{
    const char *name = "EINVAL";
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == err)
            name = xsd_errors[i].errstring;
    conn_send(c, XS_ERROR, req->req_id, req->tx_id, name,
              (uint32_t)strlen(name) + 1);
}

void conn_send_event(struct xsd_conn *c, const char *path, const char *token)
{
    uint32_t pl = (uint32_t)strlen(path) + 1, tl = (uint32_t)strlen(token) + 1;
    if (c->dead || pl + tl > XENSTORE_PAYLOAD_MAX)
        return; /* xenstored does not send over-long events either */
    struct xsd_msg *m = msg_new(XS_WATCH_EVENT, 0, 0, path, pl, token, tl);
    if (!m) {
        conn_kill(c, "out of memory");
        return;
    }
    /* As xenstored: drop an event identical to one still unsent. */
    if (path[0] != '@')
        for (struct xsd_msg *q = c->out_head; q; q = q->next)
            if (q->event && q->sent == 0 && q->len == m->len &&
                memcmp(q->data, m->data, m->len) == 0) {
                free(m);
                return;
            }
    m->event = true;
    conn_queue(c, m);
}

/* Frames bytes into messages and dispatches each complete one. With
 * obey_pause it stops once too much output waits, so a client pipelining
 * requests without reading replies is slowed down rather than dropped.
 * Returns the bytes consumed. */
static size_t conn_feed(struct xsd_conn *c, const unsigned char *buf,
                        size_t len, bool obey_pause)
{
    size_t used = 0;
    while (used < len && !c->dead &&
           !(obey_pause && c->out_bytes > OUT_PAUSE)) {
        uint32_t want = XSD_HDR_LEN;
        if (c->in_used >= XSD_HDR_LEN) {
            struct xsd_sockmsg hdr;
            memcpy(&hdr, c->in, XSD_HDR_LEN);
            want += hdr.len;
        }
        size_t take = want - c->in_used < len - used ? want - c->in_used
                                                     : len - used;
        memcpy(c->in + c->in_used, buf + used, take);
        c->in_used += (uint32_t)take;
        used += take;
        if (c->in_used < want)
            continue;
        struct xsd_sockmsg hdr;
        memcpy(&hdr, c->in, XSD_HDR_LEN);
        if (want == XSD_HDR_LEN) {
            /* Header complete: xenstored kills clients that exceed the
             * payload limit, as it cannot resynchronise. */
            if (hdr.len > XENSTORE_PAYLOAD_MAX) {
                conn_kill(c, "oversized message");
                break;
            }
            if (hdr.len)
                continue;
        }
        c->in_used = 0;
        /* Copy out: dispatching may queue output but never reads c->in. */
        char payload[XENSTORE_PAYLOAD_MAX + 1];
        memcpy(payload, c->in + XSD_HDR_LEN, hdr.len);
        payload[hdr.len] = '\0';
        ops_dispatch(c, &hdr, payload);
    }
    return used;
}

int xsd_conn_input(struct xsd_conn *c, const void *buf, size_t len)
{
    struct xsd *x = c->x;
    xsd_enter(x);
    conn_feed(c, buf, len, false);
    bool alive = !c->dead;
    if (alive && !conn_flush(c))
        conn_kill(c, "write failed");
    alive = !c->dead;
    if (alive)
        conn_update_events(c);
    xsd_leave(x);
    return alive ? 0 : -1;
}

/* Dispatches input already read, flushing as it goes, until it is used up
 * or the client stops taking replies. */
static void conn_process(struct xsd_conn *c)
{
    while (!c->dead) {
        c->rpos += (uint32_t)conn_feed(c, c->rbuf + c->rpos,
                                       c->rlen - c->rpos, true);
        if (!c->dead && !conn_flush(c))
            conn_kill(c, "write failed");
        if (c->rpos == c->rlen || c->out_bytes > OUT_PAUSE)
            break;
    }
}

static void conn_io(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    struct xsd_conn *c = opaque;
    struct xsd *x = c->x;
    (void)loop;
    xsd_enter(x);
    if ((events & EPOLLOUT) && !conn_flush(c))
        conn_kill(c, "write failed");
    conn_process(c);
    if (!c->dead && c->rpos == c->rlen && c->out_bytes <= OUT_PAUSE &&
        (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        ssize_t n = read(fd, c->rbuf, sizeof(c->rbuf));
        if (n > 0) {
            c->rpos = 0;
            c->rlen = (uint32_t)n;
            conn_process(c);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            conn_kill(c, n == 0 ? "closed by peer" : "read failed");
        }
    }
    if (!c->dead)
        conn_update_events(c);
    xsd_leave(x);
}

struct xsd_conn *xsd_conn_adopt(struct xsd *xsd, int fd, unsigned domid)
{
    return conn_new(xsd, fd, domid);
}
