/* conn: a netbus connection (see conn.h). */
#include "conn.h"

#include "auth.h"
#include "evloop.h"
#include "log.h"
#include "timer.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+ECDHE-PSK:+DHE-PSK:+PSK:" \
                     "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"
#define TLS_STAGE 16384  /* one TLS record */
#define GATHER_IOV 1024 /* IOV_MAX: many frames, 1 MiB of pages, one writev */
/* Read-ahead past the frame being read, plain connections once up. A
 * client reads block payloads straight into guest pages, so it reads ahead
 * little: two URB reply heads and 64 data bytes. That holds a reply without
 * data (a WRITE's, a bulk OUT's) or with a few (a descriptor, a HID
 * report) whole, with its successor's start, so such a reply takes one
 * read that comes back short, and no read for EAGAIN follows; at most 176
 * data bytes of a READ reply are staged and copied. A server copies what
 * it read ahead into its own buffers: many small requests in one recv. */
#define RA_CLIENT (2 * (NB_HDR_SIZE + NB_URB_REPLY_BODY) + 64)
#define RA_SERVER (64u << 10)
#define SERVER_SLACK_MS 1000
#define KA_MIN_MS 50
#define KA_MAX_MS 600000

enum conn_state {
    ST_CONNECTING,
    ST_WAIT_HELLO,      /* server */
    ST_WAIT_CHALLENGE,  /* client */
    ST_WAIT_AUTH,       /* server */
    ST_WAIT_WELCOME,    /* client */
    ST_TLS_PENDING,     /* server: WELCOME still being written */
    ST_TLS,
    ST_UP,
    ST_REFUSING,        /* server: REFUSED being written, then close */
};

struct nb_conn {
    struct evloop *loop;
    int fd;
    char *where;
    const struct nb_conn_cfg *cfg;
    const struct nb_conn_ops *ops;
    void *opaque;
    void (*rx_end)(struct nb_conn *c);
    enum conn_state st;
    bool paused, dead, in_epoll;
    int busy;
    uint32_t events;
    struct timer *timer;
    uint64_t last_rx, hs_deadline;
    unsigned peer_ka_ms;
    /* handshake */
    struct nb_transcript tr;
    uint8_t key[NB_KEY_MAX];
    size_t keylen;
    char peer[NB_NAME_MAX + 1];
    bool tls_agreed;
    gnutls_session_t tls;
    gnutls_psk_client_credentials_t pskc;
    gnutls_psk_server_credentials_t psks;
    uint8_t tls_key[NB_MAC_SIZE];
    /* receive */
    bool rx_body;
    uint8_t hdr[NB_HDR_SIZE];
    size_t hdr_have;
    struct nb_hdr h;
    struct iovec rx_iov[NB_MAX_IOV + 1]; /* + the read-ahead tail */
    unsigned rx_n, rx_i;
    bool rx_buffered;
    uint8_t *ra;            /* read-ahead (NULL: exact reads) */
    size_t ra_cap, ra_off, ra_len;
    uint8_t ctrl[NB_MAX_CTRL];
    uint8_t *big;
    /* send */
    struct nb_out *q_head, **q_tail;
    uint8_t *stage;
    size_t stage_len;
    unsigned stage_outs;    /* frames (from the head) the stage holds */
    bool stage_pending;
    /* TLS read-ahead: gnutls pulls records from here, one recv for many */
    uint8_t *rbuf;
    size_t rlen, roff;
    struct nb_out ping;
};

static void conn_free(struct nb_conn *c);

void nb_out_set(struct nb_out *o, const struct nb_hdr *h, const void *body,
                size_t body_len, const struct iovec *iov, unsigned iovcnt)
{
    size_t data = 0;
    for (unsigned i = 0; i < iovcnt; i++)
        data += iov[i].iov_len;
    struct nb_hdr hh = *h;
    hh.length = (uint32_t)(body_len + data);
    nb_hdr_encode(o->head, &hh);
    if (body_len)
        memcpy(o->head + NB_HDR_SIZE, body, body_len);
    o->head_len = NB_HDR_SIZE + body_len;
    o->iov = iov;
    o->iovcnt = iovcnt;
    o->total = o->head_len + data;
    o->done = 0;
}

void *nb_conn_opaque(const struct nb_conn *c)
{
    return c->opaque;
}

void nb_conn_on_rx_end(struct nb_conn *c, void (*cb)(struct nb_conn *c))
{
    c->rx_end = cb;
}

const char *nb_conn_peer(const struct nb_conn *c)
{
    return c->st == ST_UP ? c->peer : "";
}

bool nb_conn_is_up(const struct nb_conn *c)
{
    return c->st == ST_UP && !c->dead;
}

bool nb_conn_encrypted(const struct nb_conn *c)
{
    return c->tls_agreed;
}

const char *nb_conn_where(const struct nb_conn *c)
{
    return c->where;
}

/* ---- events -------------------------------------------------------------- */

static bool tls_wants_write(const struct nb_conn *c)
{
    return c->st == ST_TLS && gnutls_record_get_direction(c->tls) == 1;
}

static void update_events(struct nb_conn *c)
{
    if (c->dead)
        return;
    uint32_t want = 0;
    if (!c->paused && c->st != ST_REFUSING && c->st != ST_CONNECTING)
        want |= EPOLLIN;
    if (c->st == ST_CONNECTING || c->q_head || tls_wants_write(c))
        want |= EPOLLOUT;
    if (want != c->events && evloop_mod(c->loop, c->fd, want) == 0)
        c->events = want;
}

/* ---- closing --------------------------------------------------------------- */

static void drop_queue(struct nb_conn *c)
{
    while (c->q_head) {
        struct nb_out *o = c->q_head;
        c->q_head = o->next;
        o->next = NULL;
        o->queued = false;
        if (o->release)
            o->release(o);
    }
    c->q_tail = &c->q_head;
}

static void conn_closev(struct nb_conn *c, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void conn_closev(struct nb_conn *c, const char *fmt, va_list ap)
{
    if (c->dead)
        return;
    char why[256];
    vsnprintf(why, sizeof(why), fmt, ap);
    c->dead = true;
    if (c->in_epoll)
        evloop_del(c->loop, c->fd);
    c->in_epoll = false;
    timer_cancel(c->timer);
    drop_queue(c);
    c->ops->down(c, why);
    if (c->busy == 0)
        conn_free(c);
}

void nb_conn_close(struct nb_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conn_closev(c, fmt, ap);
    va_end(ap);
}

static void conn_free(struct nb_conn *c)
{
    timer_free(c->timer);
    if (c->tls)
        gnutls_deinit(c->tls);
    if (c->pskc)
        gnutls_psk_free_client_credentials(c->pskc);
    if (c->psks)
        gnutls_psk_free_server_credentials(c->psks);
    close(c->fd);
    explicit_bzero(c->key, sizeof(c->key));
    explicit_bzero(c->tls_key, sizeof(c->tls_key));
    free(c->big);
    free(c->ra);
    free(c->stage);
    free(c->rbuf);
    free(c->where);
    free(c);
}

/* ---- sending ------------------------------------------------------------- */

static void free_out(struct nb_out *o)
{
    free(o);
}

/* A handshake or control frame the connection sends itself. */
static int send_ctrl(struct nb_conn *c, uint8_t type, uint32_t session,
                     uint64_t tag, const void *body, size_t len)
{
    struct nb_out *o = calloc(1, sizeof(*o));
    if (!o) {
        nb_conn_close(c, "out of memory");
        return -1;
    }
    struct nb_hdr h = { .type = type, .session = session, .tag = tag };
    nb_out_set(o, &h, body, len, NULL, 0);
    o->release = free_out;
    nb_conn_send(c, o);
    return 0;
}

void nb_conn_send(struct nb_conn *c, struct nb_out *o)
{
    if (c->dead) {
        if (o->release)
            o->release(o);
        return;
    }
    o->next = NULL;
    o->queued = true;
    *c->q_tail = o;
    c->q_tail = &o->next;
}

/* n bytes of the queue went out. */
static void consume(struct nb_conn *c, size_t n)
{
    while (n && c->q_head) {
        struct nb_out *o = c->q_head;
        size_t left = o->total - o->done;
        if (n < left) {
            o->done += n;
            return;
        }
        n -= left;
        o->done = o->total;
        c->q_head = o->next;
        if (!c->q_head)
            c->q_tail = &c->q_head;
        o->next = NULL;
        o->queued = false;
        if (o->release)
            o->release(o);
    }
}

/* The iovecs of o from byte `from` on; returns how many were filled. */
static unsigned out_iov(const struct nb_out *o, size_t from, struct iovec *v,
                        unsigned max)
{
    unsigned n = 0;
    if (from < o->head_len && n < max) {
        v[n].iov_base = (uint8_t *)o->head + from;
        v[n++].iov_len = o->head_len - from;
        from = 0;
    } else {
        from -= o->head_len;
    }
    for (unsigned i = 0; i < o->iovcnt && n < max; i++) {
        if (from >= o->iov[i].iov_len) {
            from -= o->iov[i].iov_len;
            continue;
        }
        v[n].iov_base = (uint8_t *)o->iov[i].iov_base + from;
        v[n++].iov_len = o->iov[i].iov_len - from;
        from = 0;
    }
    return n;
}

/* One write: >0 bytes went, 0 would block (or the socket took less than
 * offered: it is full, the next write would only fail), -1 closed. */
static ssize_t send_some(struct nb_conn *c)
{
    if (!c->tls_agreed || c->st != ST_UP) {
        struct iovec v[GATHER_IOV];
        unsigned n = 0;
        size_t want = 0;
        for (struct nb_out *o = c->q_head; o && n < GATHER_IOV; o = o->next)
            n += out_iov(o, o->done, v + n, GATHER_IOV - n);
        for (unsigned i = 0; i < n; i++)
            want += v[i].iov_len;
        ssize_t w = writev(c->fd, v, (int)n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            nb_conn_close(c, "send: %s", strerror(errno));
            return -1;
        }
        consume(c, (size_t)w);
        return (size_t)w < want ? 0 : w;
    }
    if (!c->stage_pending) {
        /* Encrypted: copy up to one record from the queued frames. */
        c->stage_len = 0;
        c->stage_outs = 0;
        for (struct nb_out *o = c->q_head; o && c->stage_len < TLS_STAGE;
             o = o->next) {
            struct iovec v[NB_MAX_IOV];
            unsigned n = out_iov(o, o->done, v, NB_MAX_IOV);
            for (unsigned i = 0; i < n && c->stage_len < TLS_STAGE; i++) {
                size_t k = v[i].iov_len;
                if (k > TLS_STAGE - c->stage_len)
                    k = TLS_STAGE - c->stage_len;
                memcpy(c->stage + c->stage_len, v[i].iov_base, k);
                c->stage_len += k;
            }
            c->stage_outs++;
        }
    }
    ssize_t w = gnutls_record_send(c->tls, c->stage, c->stage_len);
    if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
        c->stage_pending = true;
        return 0;
    }
    c->stage_pending = false;
    if (w < 0) {
        nb_conn_close(c, "TLS send: %s", gnutls_strerror((int)w));
        return -1;
    }
    consume(c, (size_t)w);
    return w;
}

static void start_tls(struct nb_conn *c);

void nb_conn_flush(struct nb_conn *c)
{
    if (c->dead || c->st == ST_CONNECTING || c->st == ST_TLS)
        return;
    c->busy++;
    while (c->q_head && !c->dead)
        if (send_some(c) <= 0)
            break;
    if (!c->dead && !c->q_head) {
        if (c->st == ST_REFUSING)
            nb_conn_close(c, "refused the peer");
        else if (c->st == ST_TLS_PENDING)
            start_tls(c);
    }
    update_events(c);
    if (--c->busy == 0 && c->dead)
        conn_free(c);
}

int nb_conn_cancel(struct nb_conn *c, struct nb_out *o)
{
    if (!o->queued)
        return 0;
    if (o->done)
        return -1;
    unsigned pos = 0;
    for (struct nb_out *q = c->q_head; q && q != o; q = q->next)
        pos++;
    if (c->stage_pending && pos < c->stage_outs)
        return -1; /* its bytes are in a TLS record being sent */
    for (struct nb_out **pp = &c->q_head; *pp; pp = &(*pp)->next) {
        if (*pp != o)
            continue;
        *pp = o->next;
        if (c->q_tail == &o->next)
            c->q_tail = pp;
        o->next = NULL;
        o->queued = false;
        return 0;
    }
    return 0;
}

static void on_readable(struct nb_conn *c);
static bool tls_buffered(struct nb_conn *c);

/* Bytes received but not handed out yet (epoll does not see them). */
static bool rx_pending(struct nb_conn *c)
{
    return c->ra_off < c->ra_len || tls_buffered(c);
}

void nb_conn_pause(struct nb_conn *c, bool paused)
{
    c->paused = paused;
    update_events(c);
    if (!paused && c->busy == 0 && c->st == ST_UP && rx_pending(c)) {
        /* Decrypted or read-ahead bytes wait: no epoll event will come. */
        c->busy++;
        on_readable(c);
        nb_conn_flush(c);
        if (--c->busy == 0 && c->dead)
            conn_free(c);
    }
}

/* ---- handshake --------------------------------------------------------------- */

static void go_up(struct nb_conn *c)
{
    if (!c->tls_agreed) {
        /* The handshake was read exactly: nothing is read ahead yet. */
        c->ra_cap = c->cfg->role == NB_ROLE_CLIENT ? RA_CLIENT : RA_SERVER;
        c->ra = malloc(c->ra_cap);
        if (!c->ra) {
            nb_conn_close(c, "out of memory");
            return;
        }
    }
    c->st = ST_UP;
    c->last_rx = mono_ms();
    timer_at(c->timer, c->last_rx + (c->cfg->role == NB_ROLE_CLIENT
                                     ? c->cfg->keepalive_ms / 2
                                     : c->peer_ka_ms));
    log_info(c->where, "authenticated %s %s%s", c->cfg->role == NB_ROLE_CLIENT
             ? "server" : "client", c->peer, c->tls_agreed ? ", TLS 1.3" : "");
    c->ops->up(c);
}

static int psk_server_key(gnutls_session_t s, const char *user,
                          gnutls_datum_t *key)
{
    (void)user;
    struct nb_conn *c = gnutls_session_get_ptr(s);
    key->data = gnutls_malloc(NB_MAC_SIZE);
    if (!key->data)
        return -1;
    memcpy(key->data, c->tls_key, NB_MAC_SIZE);
    key->size = NB_MAC_SIZE;
    return 0;
}

/* gnutls reads through here: one recv fills the read-ahead buffer. */
static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
    struct nb_conn *c = ptr;
    if (c->roff == c->rlen) {
        ssize_t r = recv(c->fd, c->rbuf, TLS_STAGE * 4, 0);
        if (r < 0) {
            gnutls_transport_set_errno(c->tls, errno);
            return -1;
        }
        c->rlen = (size_t)r;
        c->roff = 0;
        if (r == 0)
            return 0;
    }
    size_t k = c->rlen - c->roff < len ? c->rlen - c->roff : len;
    memcpy(data, c->rbuf + c->roff, k);
    c->roff += k;
    return (ssize_t)k;
}

static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
    struct nb_conn *c = ptr;
    if (c->roff < c->rlen)
        return 1;
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    return poll(&p, 1, (int)ms);
}

/* Bytes received but not yet handed out (epoll does not see them). */
static bool tls_buffered(struct nb_conn *c)
{
    return c->tls && (c->roff < c->rlen ||
                      gnutls_record_check_pending(c->tls) > 0);
}

static void tls_step(struct nb_conn *c)
{
    int rc = gnutls_handshake(c->tls);
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
        update_events(c);
        return;
    }
    if (rc < 0) {
        nb_conn_close(c, "TLS handshake: %s", gnutls_strerror(rc));
        return;
    }
    go_up(c);
    update_events(c);
}

static void start_tls(struct nb_conn *c)
{
    c->st = ST_TLS;
    bool server = c->cfg->role == NB_ROLE_SERVER;
    const char *what = "gnutls_init";
    int rc = gnutls_init(&c->tls, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                         GNUTLS_NONBLOCK);
    if (rc >= 0 && nb_auth_mac(c->key, c->keylen, NB_LABEL_TLS, &c->tr,
                               c->tls_key) < 0) {
        nb_conn_close(c, "deriving the TLS key failed");
        return;
    }
    if (rc >= 0) {
        what = "TLS priority";
        rc = gnutls_priority_set_direct(c->tls, TLS_PRIORITY, NULL);
    }
    if (rc >= 0 && server) {
        what = "TLS PSK server credentials";
        rc = gnutls_psk_allocate_server_credentials(&c->psks);
        if (rc >= 0) {
            gnutls_psk_set_server_credentials_function(c->psks, psk_server_key);
            rc = gnutls_credentials_set(c->tls, GNUTLS_CRD_PSK, c->psks);
        }
    } else if (rc >= 0) {
        what = "TLS PSK client credentials";
        rc = gnutls_psk_allocate_client_credentials(&c->pskc);
        gnutls_datum_t k = { .data = c->tls_key, .size = NB_MAC_SIZE };
        if (rc >= 0)
            rc = gnutls_psk_set_client_credentials(c->pskc, "netbus1", &k,
                                                   GNUTLS_PSK_KEY_RAW);
        if (rc >= 0)
            rc = gnutls_credentials_set(c->tls, GNUTLS_CRD_PSK, c->pskc);
    }
    if (rc >= 0) {
        c->stage = malloc(TLS_STAGE);
        c->rbuf = malloc(TLS_STAGE * 4);
        if (!c->stage || !c->rbuf) {
            nb_conn_close(c, "out of memory");
            return;
        }
    }
    if (rc < 0) {
        nb_conn_close(c, "%s: %s", what, gnutls_strerror(rc));
        return;
    }
    gnutls_session_set_ptr(c->tls, c);
    gnutls_transport_set_pull_function(c->tls, tls_pull);
    gnutls_transport_set_pull_timeout_function(c->tls, tls_pull_timeout);
    /* reads through tls_pull, writes with the default writev on the fd */
    gnutls_transport_set_ptr2(c->tls, c,
                              (gnutls_transport_ptr_t)(intptr_t)c->fd);
    tls_step(c);
}

static void refuse(struct nb_conn *c, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(struct nb_conn *c, uint32_t code, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_warn(c->where, "refusing the peer: %s", why);
    uint8_t b[4];
    nb_u32_encode(b, code);
    if (send_ctrl(c, NB_REFUSED, 0, 0, b, sizeof(b)) < 0)
        return;
    c->st = ST_REFUSING;
    nb_conn_flush(c);
}

static const char *refusal_text(uint32_t code)
{
    switch (code) {
    case NB_REFUSE_AUTH: return "authentication failed (unknown peer name or "
                                "wrong key)";
    case NB_REFUSE_VERSION: return "protocol version not supported";
    case NB_REFUSE_NEED_TLS: return "the peer requires encryption (set "
                                    "encrypt = yes)";
    default: return "unknown reason";
    }
}

static void client_hello(struct nb_conn *c)
{
    struct nb_hello m = { .min_version = NB_VERSION,
                          .max_version = NB_VERSION,
                          .flags = c->cfg->want_tls ? NB_HELLO_TLS : 0,
                          .keepalive_ms = c->cfg->keepalive_ms };
    snprintf(m.name, sizeof(m.name), "%s", c->cfg->my_name);
    if (nb_auth_nonce(m.nonce) < 0) {
        nb_conn_close(c, "no random numbers for the handshake");
        return;
    }
    memcpy(c->tr.client_nonce, m.nonce, NB_NONCE_SIZE);
    snprintf(c->tr.client, sizeof(c->tr.client), "%s", m.name);
    uint8_t b[NB_MAX_CTRL];
    size_t n = nb_hello_encode(b, &m);
    c->st = ST_WAIT_CHALLENGE;
    if (send_ctrl(c, NB_HELLO, 0, 0, b, n) == 0)
        nb_conn_flush(c);
}

static bool take_key(struct nb_conn *c, const char *peer)
{
    const struct nb_key *k = nb_keyring_find(c->cfg->keys, peer);
    if (!k)
        return false;
    memcpy(c->key, k->key, k->len);
    c->keylen = k->len;
    return true;
}

/* A frame while not yet up. */
static void handshake_frame(struct nb_conn *c, const uint8_t *p)
{
    const struct nb_hdr *h = &c->h;
    const char *why = NULL;
    bool server = c->cfg->role == NB_ROLE_SERVER;
    if (h->type == NB_REFUSED && !server) {
        uint32_t code = 0;
        if (nb_refused_decode(p, h->length, &code, &why) < 0)
            nb_conn_close(c, "bad REFUSED frame: %s", why);
        else
            nb_conn_close(c, "refused by the peer: %s", refusal_text(code));
        return;
    }
    if (server && c->st == ST_WAIT_HELLO && h->type == NB_HELLO) {
        struct nb_hello m;
        if (nb_hello_decode(p, h->length, &m, &why) < 0) {
            refuse(c, NB_REFUSE_AUTH, "bad HELLO: %s", why);
            return;
        }
        if (m.min_version > NB_VERSION || m.max_version < NB_VERSION) {
            refuse(c, NB_REFUSE_VERSION, "%s speaks versions %u-%u only",
                   m.name, m.min_version, m.max_version);
            return;
        }
        if (c->cfg->require_tls && !(m.flags & NB_HELLO_TLS)) {
            refuse(c, NB_REFUSE_NEED_TLS, "%s did not ask for TLS, which "
                   "this host requires", m.name);
            return;
        }
        c->peer_ka_ms = m.keepalive_ms < KA_MIN_MS ? KA_MIN_MS
                        : m.keepalive_ms > KA_MAX_MS ? KA_MAX_MS
                        : m.keepalive_ms;
        struct nb_challenge ch = { .version = NB_VERSION,
                                   .flags = m.flags & NB_HELLO_TLS };
        snprintf(ch.name, sizeof(ch.name), "%s", c->cfg->my_name);
        if (nb_auth_nonce(ch.nonce) < 0) {
            nb_conn_close(c, "no random numbers for the handshake");
            return;
        }
        memcpy(c->tr.client_nonce, m.nonce, NB_NONCE_SIZE);
        memcpy(c->tr.server_nonce, ch.nonce, NB_NONCE_SIZE);
        snprintf(c->tr.client, sizeof(c->tr.client), "%s", m.name);
        snprintf(c->tr.server, sizeof(c->tr.server), "%s", ch.name);
        c->tr.flags = ch.flags;
        c->tr.version = NB_VERSION;
        uint8_t b[NB_MAX_CTRL];
        size_t n = nb_challenge_encode(b, &ch);
        c->st = ST_WAIT_AUTH;
        if (send_ctrl(c, NB_CHALLENGE, 0, 0, b, n) == 0)
            nb_conn_flush(c);
        return;
    }
    if (server && c->st == ST_WAIT_AUTH && h->type == NB_AUTH) {
        uint8_t mac[NB_MAC_SIZE], want[NB_MAC_SIZE];
        if (nb_mac_decode(p, h->length, mac, &why) < 0) {
            refuse(c, NB_REFUSE_AUTH, "bad AUTH: %s", why);
            return;
        }
        if (!take_key(c, c->tr.client)) {
            refuse(c, NB_REFUSE_AUTH, "no key for a peer named '%s' (and no "
                   "cluster key)", c->tr.client);
            return;
        }
        if (nb_auth_mac(c->key, c->keylen, NB_LABEL_CLIENT, &c->tr, want) < 0 ||
            !nb_mac_equal(mac, want)) {
            refuse(c, NB_REFUSE_AUTH, "'%s' did not prove the key (wrong key "
                   "or a replayed handshake)", c->tr.client);
            return;
        }
        if (nb_auth_mac(c->key, c->keylen, NB_LABEL_SERVER, &c->tr, mac) < 0) {
            nb_conn_close(c, "HMAC failed");
            return;
        }
        snprintf(c->peer, sizeof(c->peer), "%s", c->tr.client);
        c->tls_agreed = c->tr.flags & NB_HELLO_TLS;
        if (send_ctrl(c, NB_WELCOME, 0, 0, mac, sizeof(mac)) < 0)
            return;
        if (c->tls_agreed) {
            c->st = ST_TLS_PENDING; /* TLS starts once WELCOME is out */
            nb_conn_flush(c);
        } else {
            go_up(c);
            nb_conn_flush(c);
        }
        return;
    }
    if (!server && c->st == ST_WAIT_CHALLENGE && h->type == NB_CHALLENGE) {
        struct nb_challenge ch;
        if (nb_challenge_decode(p, h->length, &ch, &why) < 0) {
            nb_conn_close(c, "bad CHALLENGE: %s", why);
            return;
        }
        if (ch.version != NB_VERSION) {
            nb_conn_close(c, "the peer chose protocol version %u", ch.version);
            return;
        }
        if (ch.flags != (c->cfg->want_tls ? NB_HELLO_TLS : 0u)) {
            nb_conn_close(c, "the peer did not agree to our TLS choice");
            return;
        }
        if (!take_key(c, ch.name)) {
            nb_conn_close(c, "no key for the peer named '%s': add '%s KEY-HEX' "
                          "(or '* KEY-HEX', the cluster key) to the key file",
                          ch.name, ch.name);
            return;
        }
        memcpy(c->tr.server_nonce, ch.nonce, NB_NONCE_SIZE);
        snprintf(c->tr.server, sizeof(c->tr.server), "%s", ch.name);
        c->tr.flags = ch.flags;
        c->tr.version = NB_VERSION;
        uint8_t mac[NB_MAC_SIZE];
        if (nb_auth_mac(c->key, c->keylen, NB_LABEL_CLIENT, &c->tr, mac) < 0) {
            nb_conn_close(c, "HMAC failed");
            return;
        }
        c->st = ST_WAIT_WELCOME;
        if (send_ctrl(c, NB_AUTH, 0, 0, mac, sizeof(mac)) == 0)
            nb_conn_flush(c);
        return;
    }
    if (!server && c->st == ST_WAIT_WELCOME && h->type == NB_WELCOME) {
        uint8_t mac[NB_MAC_SIZE], want[NB_MAC_SIZE];
        if (nb_mac_decode(p, h->length, mac, &why) < 0) {
            nb_conn_close(c, "bad WELCOME: %s", why);
            return;
        }
        if (nb_auth_mac(c->key, c->keylen, NB_LABEL_SERVER, &c->tr, want) < 0 ||
            !nb_mac_equal(mac, want)) {
            nb_conn_close(c, "the peer '%s' did not prove the key (different "
                          "keys on the two hosts?)", c->tr.server);
            return;
        }
        snprintf(c->peer, sizeof(c->peer), "%s", c->tr.server);
        c->tls_agreed = c->tr.flags & NB_HELLO_TLS;
        if (c->tls_agreed)
            start_tls(c);
        else
            go_up(c);
        return;
    }
    if (server)
        refuse(c, NB_REFUSE_AUTH, "unexpected %s frame during the handshake",
               nb_type_name(h->type));
    else
        nb_conn_close(c, "unexpected %s frame during the handshake",
                      nb_type_name(h->type));
}

/* ---- receiving --------------------------------------------------------------- */

/* One read: >0 bytes, 0 would block, -1 closed. */
static ssize_t recv_some(struct nb_conn *c, struct iovec *v, unsigned n)
{
    ssize_t r;
    if (c->tls_agreed && c->st == ST_UP) {
        r = gnutls_record_recv(c->tls, v[0].iov_base, v[0].iov_len);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
            return 0;
        if (r < 0) {
            nb_conn_close(c, "TLS receive: %s", gnutls_strerror((int)r));
            return -1;
        }
    } else {
        r = readv(c->fd, v, (int)n);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            nb_conn_close(c, "receive: %s", strerror(errno));
            return -1;
        }
    }
    if (r == 0) {
        nb_conn_close(c, "the peer closed the connection");
        return -1;
    }
    c->last_rx = mono_ms();
    return r;
}

static void deliver(struct nb_conn *c)
{
    const uint8_t *p = c->rx_buffered ? (c->big ? c->big : c->ctrl) : NULL;
    const struct nb_hdr *h = &c->h;
    if (c->st != ST_UP) {
        handshake_frame(c, p);
    } else if (h->type == NB_PING) {
        send_ctrl(c, NB_PING | NB_REPLY, 0, h->tag, NULL, 0);
    } else if (h->type == (NB_PING | NB_REPLY)) {
        /* last_rx is all a PONG is for */
    } else if (c->ops->frame(c, h, p) < 0) {
        nb_conn_close(c, "protocol error in a %s frame (type 0x%02x) from %s",
                      nb_type_name(h->type), h->type, c->peer);
    }
    free(c->big);
    c->big = NULL;
}

/* Sets up the payload of the header just read. 0, or -1 if closed. */
static int start_body(struct nb_conn *c)
{
    const char *why;
    if (nb_hdr_decode(c->hdr, &c->h, c->st == ST_UP, &why) < 0) {
        if (c->cfg->role == NB_ROLE_SERVER && c->st != ST_UP)
            refuse(c, NB_REFUSE_AUTH, "bad frame header: %s", why);
        else
            nb_conn_close(c, "bad frame header from %s: %s",
                          c->peer[0] ? c->peer : "the peer", why);
        return -1;
    }
    const struct nb_hdr *h = &c->h;
    const struct iovec *iov = NULL;
    unsigned n = 0;
    bool own = c->st != ST_UP || (h->type & ~NB_REPLY) == NB_PING;
    if (!own && h->length && c->ops->sink(c, h, &iov, &n) < 0) {
        nb_conn_close(c, "protocol error: unexpected %s frame (type 0x%02x, "
                      "tag %llu, %u bytes) from %s", nb_type_name(h->type),
                      h->type, (unsigned long long)h->tag, h->length, c->peer);
        return -1;
    }
    c->rx_i = 0;
    if (n) {
        size_t total = 0;
        for (unsigned i = 0; i < n && i < NB_MAX_IOV; i++) {
            c->rx_iov[i] = iov[i];
            total += iov[i].iov_len;
        }
        if (n > NB_MAX_IOV || total != h->length) {
            nb_conn_close(c, "internal: sink of %zu bytes for a %u-byte frame",
                          total, h->length);
            return -1;
        }
        c->rx_n = n;
        c->rx_buffered = false;
    } else {
        uint8_t *buf = c->ctrl;
        if (h->length > sizeof(c->ctrl)) {
            c->big = malloc(h->length);
            if (!c->big) {
                nb_conn_close(c, "out of memory");
                return -1;
            }
            buf = c->big;
        }
        c->rx_iov[0].iov_base = buf;
        c->rx_iov[0].iov_len = h->length;
        c->rx_n = h->length ? 1 : 0;
        c->rx_buffered = true;
    }
    c->rx_body = true;
    return 0;
}

/* Copies read-ahead bytes to v (n bytes at most); returns how many. */
static size_t ra_take(struct nb_conn *c, void *v, size_t n)
{
    size_t k = c->ra_len - c->ra_off;
    if (k > n)
        k = n;
    memcpy(v, c->ra + c->ra_off, k);
    c->ra_off += k;
    return k;
}

/* Moves the body iovecs on by k bytes (past empty ones too). */
static void rx_advance(struct nb_conn *c, size_t k)
{
    while (c->rx_i < c->rx_n) {
        struct iovec *v = &c->rx_iov[c->rx_i];
        size_t take = k < v->iov_len ? k : v->iov_len;
        v->iov_base = (uint8_t *)v->iov_base + take;
        v->iov_len -= take;
        k -= take;
        if (v->iov_len)
            break;
        c->rx_i++;
    }
}

/* Reads go to the socket as they are (not through TLS). */
static bool plain_rx(const struct nb_conn *c)
{
    return !(c->tls_agreed && c->st == ST_UP);
}

/* Reads frames until the socket is empty. A plain read that returns less
 * than asked emptied the socket: no second read just to see EAGAIN (epoll
 * is level-triggered, new bytes wake us again). Each read also takes the
 * read-ahead room past the frame (RA_CLIENT, RA_SERVER). */
static void read_frames(struct nb_conn *c)
{
    bool drained = false;
    while (!c->dead && !c->paused && c->st != ST_TLS &&
           c->st != ST_TLS_PENDING && c->st != ST_REFUSING) {
        if (!c->rx_body) {
            if (c->ra)
                c->hdr_have += ra_take(c, c->hdr + c->hdr_have,
                                       NB_HDR_SIZE - c->hdr_have);
            if (c->hdr_have < NB_HDR_SIZE) {
                if (drained)
                    return;
                struct iovec v[2] = {
                    { c->hdr + c->hdr_have, NB_HDR_SIZE - c->hdr_have },
                };
                size_t want = v[0].iov_len;
                unsigned n = 1;
                if (c->ra) {
                    v[n++] = (struct iovec){ c->ra, c->ra_cap - NB_HDR_SIZE };
                    want += c->ra_cap - NB_HDR_SIZE;
                }
                ssize_t r = recv_some(c, v, n);
                if (r <= 0)
                    return;
                size_t k = (size_t)r;
                drained = plain_rx(c) && k < want;
                size_t h = k < v[0].iov_len ? k : v[0].iov_len;
                c->hdr_have += h;
                c->ra_off = 0;
                c->ra_len = k - h;
                if (c->hdr_have < NB_HDR_SIZE)
                    continue;
            }
            c->hdr_have = 0;
            if (start_body(c) < 0)
                return;
        }
        while (c->rx_i < c->rx_n) {
            if (c->ra && c->ra_off < c->ra_len) {
                struct iovec *v = &c->rx_iov[c->rx_i];
                rx_advance(c, ra_take(c, v->iov_base, v->iov_len));
                continue;
            }
            if (drained)
                return;
            unsigned n = c->rx_n - c->rx_i;
            size_t want = 0;
            for (unsigned i = c->rx_i; i < c->rx_n; i++)
                want += c->rx_iov[i].iov_len;
            if (c->ra) {
                c->rx_iov[c->rx_n] = (struct iovec){ c->ra, c->ra_cap };
                n++;
            }
            ssize_t r = recv_some(c, c->rx_iov + c->rx_i, n);
            if (r <= 0)
                return;
            size_t k = (size_t)r;
            drained = plain_rx(c) && k < want + (c->ra ? c->ra_cap : 0);
            c->ra_off = 0;
            c->ra_len = k > want ? k - want : 0;
            rx_advance(c, k - c->ra_len);
        }
        c->rx_body = false;
        deliver(c);
    }
}

static void on_readable(struct nb_conn *c)
{
    read_frames(c);
    if (!c->dead && c->st == ST_UP && c->rx_end)
        c->rx_end(c);
}

/* ---- the event loop side ---------------------------------------------------- */

static void on_event(struct evloop *loop, int fd, uint32_t events,
                     void *opaque)
{
    (void)loop;
    (void)fd;
    struct nb_conn *c = opaque;
    c->busy++;
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err)
            nb_conn_close(c, "connect: %s", strerror(err));
        else if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            client_hello(c);
    } else if (c->st == ST_TLS) {
        tls_step(c);
    }
    if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        on_readable(c);
    if (!c->dead)
        nb_conn_flush(c);
    if (--c->busy == 0 && c->dead)
        conn_free(c);
}

static void on_timer(void *opaque)
{
    struct nb_conn *c = opaque;
    uint64_t now = mono_ms();
    c->busy++;
    if (c->st != ST_UP) {
        if (now >= c->hs_deadline)
            nb_conn_close(c, "handshake not finished within %u ms",
                          c->cfg->handshake_ms);
        else
            timer_at(c->timer, c->hs_deadline);
    } else if (c->cfg->role == NB_ROLE_CLIENT) {
        unsigned ka = c->cfg->keepalive_ms;
        if (now - c->last_rx >= 3ull * ka) {
            nb_conn_close(c, "no answer from %s for %llu ms (keepalive)",
                          c->peer, (unsigned long long)(now - c->last_rx));
        } else {
            if (now - c->last_rx >= ka && !c->ping.queued) {
                struct nb_hdr h = { .type = NB_PING };
                nb_out_set(&c->ping, &h, NULL, 0, NULL, 0);
                nb_conn_send(c, &c->ping);
                nb_conn_flush(c);
            }
            timer_at(c->timer, now + ka / 2);
        }
    } else {
        uint64_t limit = 3ull * c->peer_ka_ms + SERVER_SLACK_MS;
        if (now - c->last_rx >= limit)
            nb_conn_close(c, "nothing from %s for %llu ms: giving it up",
                          c->peer, (unsigned long long)(now - c->last_rx));
        else
            timer_at(c->timer, c->last_rx + limit);
    }
    if (--c->busy == 0 && c->dead)
        conn_free(c);
}

struct nb_conn *nb_conn_new(struct evloop *loop, int fd,
                            const struct nb_conn_cfg *cfg,
                            const struct nb_conn_ops *ops, void *opaque,
                            const char *where)
{
    struct nb_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return NULL;
    }
    c->loop = loop;
    c->fd = fd;
    c->cfg = cfg;
    c->ops = ops;
    c->opaque = opaque;
    c->q_tail = &c->q_head;
    c->where = strdup(where ? where : "netbus");
    c->timer = timer_new(loop, on_timer, c);
    bool server = cfg->role == NB_ROLE_SERVER;
    /* A client says HELLO once the socket is writable (connected). */
    c->st = server ? ST_WAIT_HELLO : ST_CONNECTING;
    c->events = server ? EPOLLIN : EPOLLOUT;
    if (!c->where || !c->timer ||
        evloop_add(loop, fd, c->events, on_event, c) < 0) {
        timer_free(c->timer);
        free(c->where);
        close(fd);
        free(c);
        return NULL;
    }
    c->in_epoll = true;
    c->hs_deadline = mono_ms() + cfg->handshake_ms;
    timer_at(c->timer, c->hs_deadline);
    return c;
}
