/* peer: shared client connection to one export host (see peer.h). */
#include "peer.h"

#include "evloop.h"
#include "log.h"
#include "timer.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 100
#define SLOTS_FIRST 256
#define SLOTS_MAX (1u << 20)

struct slot {
    struct nb_call *call;   /* NULL: free or cancelled */
    uint32_t gen;
    bool busy;              /* in use (call, or cancelled awaiting reply) */
    uint32_t next_free;
};

struct nb_peer {
    struct nb_peer_pool *pool;
    char host[256];
    unsigned port;
    char where[300];
    struct nb_conn *conn;
    struct nb_peer_user *users;
    struct timer *timer;
    unsigned backoff_ms;
    unsigned failures;
    char error[256];
    char name[NB_NAME_MAX + 1];
    struct slot *slots;
    uint32_t nslots, free_head; /* free_head: index + 1, 0 = none */
    struct nb_peer *next;
};

static const struct nb_conn_ops peer_ops;
static void connect_now(struct nb_peer *p);

bool nb_peer_up(const struct nb_peer *p)
{
    return p->conn && nb_conn_is_up(p->conn);
}

const char *nb_peer_name(const struct nb_peer *p)
{
    return nb_peer_up(p) ? p->name : "";
}

const char *nb_peer_error(const struct nb_peer *p)
{
    return p->error;
}

/* ---- tags --------------------------------------------------------------------- */

static int slot_alloc(struct nb_peer *p, uint32_t *idx)
{
    if (!p->free_head) {
        uint32_t n = p->nslots ? p->nslots * 2 : SLOTS_FIRST;
        if (n > SLOTS_MAX)
            return -1;
        struct slot *s = realloc(p->slots, n * sizeof(*s));
        if (!s)
            return -1;
        memset(s + p->nslots, 0, (n - p->nslots) * sizeof(*s));
        for (uint32_t i = n; i-- > p->nslots;) {
            s[i].next_free = p->free_head;
            p->free_head = i + 1;
        }
        p->slots = s;
        p->nslots = n;
    }
    *idx = p->free_head - 1;
    p->free_head = p->slots[*idx].next_free;
    p->slots[*idx].busy = true;
    return 0;
}

static void slot_free(struct nb_peer *p, uint32_t idx)
{
    struct slot *s = &p->slots[idx];
    s->call = NULL;
    s->busy = false;
    s->gen++;
    s->next_free = p->free_head;
    p->free_head = idx + 1;
}

/* The slot a tag from the wire names, or NULL. */
static struct slot *slot_of(struct nb_peer *p, uint64_t tag, uint32_t *idx)
{
    uint32_t i = (uint32_t)tag;
    if (i == 0 || i > p->nslots)
        return NULL;
    struct slot *s = &p->slots[i - 1];
    if (!s->busy || s->gen != (uint32_t)(tag >> 32))
        return NULL;
    *idx = i - 1;
    return s;
}

int nb_peer_send(struct nb_peer *p, struct nb_call *call)
{
    uint32_t idx;
    if (!nb_peer_up(p) || slot_alloc(p, &idx) < 0)
        return -1;
    p->slots[idx].call = call;
    call->tag = (uint64_t)p->slots[idx].gen << 32 | (idx + 1);
    nb_hdr_set_tag(call->out.head, call->tag);
    call->out.release = NULL;
    nb_conn_send(p->conn, &call->out);
    return 0;
}

static void free_out(struct nb_out *o)
{
    free(o);
}

void nb_peer_send_untracked(struct nb_peer *p, uint8_t type, uint32_t session)
{
    if (!nb_peer_up(p))
        return;
    struct nb_out *o = calloc(1, sizeof(*o));
    if (!o)
        return;
    struct nb_hdr h = { .type = type, .session = session };
    nb_out_set(o, &h, NULL, 0, NULL, 0);
    o->release = free_out;
    nb_conn_send(p->conn, o);
}

void nb_peer_cancel(struct nb_peer *p, struct nb_call *call)
{
    if (!call->tag)
        return;
    uint32_t idx;
    struct slot *s = slot_of(p, call->tag, &idx);
    call->tag = 0;
    if (s)
        s->call = NULL; /* busy stays: the reply is recognised and dropped */
    if (p->conn && nb_conn_cancel(p->conn, &call->out) < 0)
        nb_peer_reset(p, "a cancelled request was already half sent");
}

void nb_peer_flush(struct nb_peer *p)
{
    if (nb_peer_up(p))
        nb_conn_flush(p->conn);
}

void nb_peer_reset(struct nb_peer *p, const char *why)
{
    if (p->conn)
        nb_conn_close(p->conn, "%s", why);
}

/* ---- connection --------------------------------------------------------------- */

static void schedule(struct nb_peer *p)
{
    if (!p->users)
        return;
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (p->backoff_ms > p->pool->reconnect_max_ms)
        p->backoff_ms = p->pool->reconnect_max_ms;
    timer_at(p->timer, mono_ms() + p->backoff_ms);
}

static void failed(struct nb_peer *p, const char *why)
{
    p->failures++;
    if (p->failures == 1 || p->failures % 10 == 0 ||
        strcmp(p->error, why) != 0)
        log_warn(p->where, "%s (attempt %u; retrying with backoff)", why,
                 p->failures);
    snprintf(p->error, sizeof(p->error), "%s", why);
    schedule(p);
}

static void connect_now(struct nb_peer *p)
{
    char ps[16], why[300];
    snprintf(ps, sizeof(ps), "%u", p->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(p->host, ps, &hints, &ai);
    if (rc) {
        snprintf(why, sizeof(why), "cannot resolve %s: %s", p->host,
                 gai_strerror(rc));
        failed(p, why);
        return;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0 || (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
                   errno != EINPROGRESS)) {
        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        failed(p, why);
        return;
    }
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p->conn = nb_conn_new(p->pool->loop, fd, p->pool->cfg, &peer_ops, p,
                          p->where);
    if (!p->conn)
        failed(p, "out of memory");
}

static void on_timer(void *opaque)
{
    struct nb_peer *p = opaque;
    if (!p->conn && p->users)
        connect_now(p);
}

static int peer_sink(struct nb_conn *c, const struct nb_hdr *h,
                     const struct iovec **iov, unsigned *n)
{
    struct nb_peer *p = nb_conn_opaque(c);
    if (h->type == NB_EVENT || h->type == (NB_CLOSE | NB_REPLY))
        return 0;
    uint32_t idx;
    struct slot *s = (h->type & NB_REPLY) ? slot_of(p, h->tag, &idx) : NULL;
    if (!s)
        return -1; /* a request from the server, or a tag we never sent */
    if (!s->call || !s->call->sink)
        return 0;
    return s->call->sink(s->call, h, iov, n);
}

static int peer_frame(struct nb_conn *c, const struct nb_hdr *h,
                      const uint8_t *payload)
{
    struct nb_peer *p = nb_conn_opaque(c);
    if (h->type == NB_EVENT) {
        struct nb_event_body ev;
        const char *why;
        if (nb_event_decode(payload, h->length, &ev, &why) < 0)
            return -1;
        for (struct nb_peer_user *u = p->users; u; u = u->next)
            if (u->session == h->session && h->session) {
                u->event(u, &ev);
                break;
            }
        return 0;
    }
    if (h->type == (NB_CLOSE | NB_REPLY) && h->tag == 0)
        return 0; /* the answer to an untracked CLOSE */
    uint32_t idx;
    struct slot *s = (h->type & NB_REPLY) ? slot_of(p, h->tag, &idx) : NULL;
    if (!s)
        return -1;
    struct nb_call *call = s->call;
    slot_free(p, idx);
    if (!call)
        return 0; /* cancelled */
    call->tag = 0;
    if (h->type != (call->out.head[5] | NB_REPLY))
        return -1; /* a reply of the wrong type */
    return call->reply(call, h, payload);
}

static void peer_up(struct nb_conn *c)
{
    struct nb_peer *p = nb_conn_opaque(c);
    snprintf(p->name, sizeof(p->name), "%s", nb_conn_peer(c));
    if (p->failures)
        log_info(p->where, "connected to %s again after %u failed attempt(s)",
                 p->name, p->failures);
    p->failures = 0;
    p->backoff_ms = 0;
    p->error[0] = '\0';
    for (struct nb_peer_user *u = p->users, *next; u; u = next) {
        next = u->next;
        u->up(u);
    }
    nb_peer_flush(p);
}

static void peer_down(struct nb_conn *c, const char *why)
{
    struct nb_peer *p = nb_conn_opaque(c);
    bool was_up = p->name[0] != '\0';
    p->conn = NULL;
    p->name[0] = '\0';
    for (uint32_t i = 0; i < p->nslots; i++) {
        if (!p->slots[i].busy)
            continue;
        if (p->slots[i].call)
            p->slots[i].call->tag = 0;
        slot_free(p, i);
    }
    for (struct nb_peer_user *u = p->users, *next; u; u = next) {
        next = u->next;
        u->down(u, why);
    }
    if (!p->users)
        return; /* being detached */
    if (was_up) {
        log_warn(p->where, "connection lost: %s", why);
        snprintf(p->error, sizeof(p->error), "%s", why);
        p->failures = 1;
        schedule(p);
    } else {
        failed(p, why);
    }
}

static const struct nb_conn_ops peer_ops = {
    .sink = peer_sink,
    .frame = peer_frame,
    .up = peer_up,
    .down = peer_down,
};

struct nb_peer *nb_peer_attach(struct nb_peer_pool *pool, const char *host,
                               unsigned port, struct nb_peer_user *u)
{
    struct nb_peer *p;
    for (p = pool->list; p; p = p->next)
        if (p->port == port && strcmp(p->host, host) == 0)
            break;
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return NULL;
        p->pool = pool;
        snprintf(p->host, sizeof(p->host), "%s", host);
        p->port = port;
        snprintf(p->where, sizeof(p->where), strchr(host, ':')
                 ? "netbus [%s]:%u" : "netbus %s:%u", host, port);
        p->timer = timer_new(pool->loop, on_timer, p);
        if (!p->timer) {
            free(p);
            return NULL;
        }
        p->next = pool->list;
        pool->list = p;
    }
    u->next = p->users;
    p->users = u;
    if (!p->conn && !p->backoff_ms)
        connect_now(p);
    return p;
}

void nb_peer_detach(struct nb_peer *p, struct nb_peer_user *u)
{
    for (struct nb_peer_user **pp = &p->users; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    if (p->users)
        return;
    nb_peer_flush(p);
    if (p->conn)
        nb_conn_close(p->conn, "no device uses this host any more");
    for (struct nb_peer **pp = &p->pool->list; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    timer_free(p->timer);
    free(p->slots);
    free(p);
}
