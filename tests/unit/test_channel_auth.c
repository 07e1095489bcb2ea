/* netbus channel: the handshake between two connections on a socketpair
 * (right key, wrong key, unknown peer, per-peer keys, TLS, TLS required),
 * and a hostile client speaking raw bytes to a server: garbage, a request
 * before authentication, a truncated HELLO, a replayed AUTH. A refused peer
 * gets one REFUSED frame and the connection closes. */
#include "backend/channel/auth.h"
#include "backend/channel/conn.h"
#include "evloop.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KEY1 "00112233445566778899aabbccddeeff"
#define KEY2 "ffeeddccbbaa99887766554433221100"

static struct evloop *loop;

struct side {
    struct nb_conn *c;
    bool up, down;
    char why[256];
    unsigned frames;
    uint8_t last_type;
};

static int sink(struct nb_conn *c, const struct nb_hdr *h,
                const struct iovec **iov, unsigned *n)
{
    (void)c; (void)h; (void)iov; (void)n;
    return 0;
}

static int frame(struct nb_conn *c, const struct nb_hdr *h, const uint8_t *p)
{
    (void)p;
    struct side *s = nb_conn_opaque(c);
    s->frames++;
    s->last_type = h->type;
    return 0;
}

static void up(struct nb_conn *c)
{
    struct side *s = nb_conn_opaque(c);
    s->up = true;
}

static void down(struct nb_conn *c, const char *why)
{
    struct side *s = nb_conn_opaque(c);
    s->down = true;
    s->c = NULL;
    snprintf(s->why, sizeof(s->why), "%s", why);
}

static const struct nb_conn_ops ops = { sink, frame, up, down };

#define PUMP_UNTIL(cond)                                                     \
    do {                                                                     \
        for (int p_ = 0; p_ < 300 && !(cond); p_++)                          \
            evloop_run_once(loop, 10);                                       \
    } while (0)

static struct nb_keyring *ring(const char *text)
{
    char err[256];
    struct nb_keyring *kr = nb_keyring_parse(text, "test", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(kr);
    return kr;
}

static struct nb_conn_cfg cfg(enum nb_role role, const char *name,
                              const struct nb_keyring *kr)
{
    return (struct nb_conn_cfg){ .role = role, .my_name = name, .keys = kr,
                                 .keepalive_ms = 1000, .handshake_ms = 2000 };
}

/* Runs a handshake between cc and sc; both sides end up or down. */
static void handshake(const struct nb_conn_cfg *cc, const struct nb_conn_cfg *sc,
                      struct side *c, struct side *s)
{
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
                                     SOCK_CLOEXEC, 0, sv), 0);
    memset(c, 0, sizeof(*c));
    memset(s, 0, sizeof(*s));
    c->c = nb_conn_new(loop, sv[0], cc, &ops, c, "test client");
    s->c = nb_conn_new(loop, sv[1], sc, &ops, s, "test server");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->c);
    PUMP_UNTIL((c->up && s->up) || (c->down && s->down));
}

static void close_both(struct side *c, struct side *s)
{
    if (c->c)
        nb_conn_close(c->c, "test over");
    if (s->c)
        nb_conn_close(s->c, "test over");
}

static void test_cluster_key(void)
{
    struct nb_keyring *kr = ring("* " KEY1 "\n");
    struct nb_conn_cfg cc = cfg(NB_ROLE_CLIENT, "hostA", kr),
                       sc = cfg(NB_ROLE_SERVER, "hostB", kr);
    struct side c, s;
    handshake(&cc, &sc, &c, &s);
    CU_ASSERT(c.up && s.up);
    CU_ASSERT_STRING_EQUAL(nb_conn_peer(c.c), "hostB");
    CU_ASSERT_STRING_EQUAL(nb_conn_peer(s.c), "hostA");
    CU_ASSERT(!nb_conn_encrypted(c.c));
    /* A frame after authentication reaches the other side. */
    struct nb_out o;
    uint8_t body[NB_IO_BODY];
    struct nb_io io = { .offset = 0, .len = 512 };
    struct nb_hdr h = { .type = NB_READ, .session = 1, .tag = 5 };
    nb_out_set(&o, &h, body, nb_io_encode(body, &io), NULL, 0);
    o.release = NULL;
    nb_conn_send(c.c, &o);
    nb_conn_flush(c.c);
    PUMP_UNTIL(s.frames == 1);
    CU_ASSERT_EQUAL(s.last_type, NB_READ);
    close_both(&c, &s);
    nb_keyring_free(kr);
}

static void test_peer_keys(void)
{
    struct nb_keyring *ka = ring("hostB " KEY2 "\n"),
                      *kb = ring("hostA " KEY2 "\nhostC " KEY1 "\n");
    struct nb_conn_cfg cc = cfg(NB_ROLE_CLIENT, "hostA", ka),
                       sc = cfg(NB_ROLE_SERVER, "hostB", kb);
    struct side c, s;
    handshake(&cc, &sc, &c, &s);
    CU_ASSERT(c.up && s.up);
    close_both(&c, &s);
    nb_keyring_free(ka);
    nb_keyring_free(kb);
}

static void test_wrong_key(void)
{
    struct nb_keyring *ka = ring("* " KEY1 "\n"), *kb = ring("* " KEY2 "\n");
    struct nb_conn_cfg cc = cfg(NB_ROLE_CLIENT, "hostA", ka),
                       sc = cfg(NB_ROLE_SERVER, "hostB", kb);
    struct side c, s;
    handshake(&cc, &sc, &c, &s);
    CU_ASSERT(!c.up && !s.up);
    CU_ASSERT(c.down && s.down);
    CU_ASSERT(strstr(c.why, "refused by the peer: authentication failed") != NULL);
    nb_keyring_free(ka);
    nb_keyring_free(kb);
}

static void test_unknown_peer(void)
{
    struct nb_keyring *ka = ring("* " KEY1 "\n"),
                      *kb = ring("hostZ " KEY1 "\n");
    struct nb_conn_cfg cc = cfg(NB_ROLE_CLIENT, "hostA", ka),
                       sc = cfg(NB_ROLE_SERVER, "hostB", kb);
    struct side c, s;
    handshake(&cc, &sc, &c, &s);
    CU_ASSERT(c.down && !c.up && !s.up);
    CU_ASSERT(strstr(c.why, "authentication failed") != NULL);
    /* The client has no key for the server: it stops by itself. */
    struct nb_keyring *kc = ring("hostQ " KEY1 "\n");
    cc.keys = kc;
    sc.keys = ka;
    handshake(&cc, &sc, &c, &s);
    CU_ASSERT(c.down && !c.up && !s.up);
    CU_ASSERT(strstr(c.why, "no key for the peer named 'hostB'") != NULL);
    if (s.c)
        nb_conn_close(s.c, "test over");
    nb_keyring_free(ka);
    nb_keyring_free(kb);
    nb_keyring_free(kc);
}

static void test_tls(void)
{
    struct nb_keyring *kr = ring("* " KEY1 "\n");
    struct nb_conn_cfg cc = cfg(NB_ROLE_CLIENT, "hostA", kr),
                       sc = cfg(NB_ROLE_SERVER, "hostB", kr);
    cc.want_tls = true;
    sc.require_tls = true;
    struct side c, s;
    handshake(&cc, &sc, &c, &s);
    CU_ASSERT_FATAL(c.up && s.up);
    CU_ASSERT(nb_conn_encrypted(c.c) && nb_conn_encrypted(s.c));
    /* Many frames through TLS, some larger than a record. */
    static uint8_t data[3 * 16384 + 100];
    memset(data, 0x5a, sizeof(data));
    struct iovec v = { data, sizeof(data) };
    struct nb_out o[8];
    for (int i = 0; i < 8; i++) {
        struct nb_io io = { .offset = 0, .len = sizeof(data) };
        uint8_t body[NB_IO_BODY];
        struct nb_hdr h = { .type = NB_WRITE, .session = 1, .tag = (uint64_t)i + 1 };
        nb_out_set(&o[i], &h, body, nb_io_encode(body, &io), &v, 1);
        o[i].release = NULL;
        nb_conn_send(c.c, &o[i]);
    }
    nb_conn_flush(c.c);
    PUMP_UNTIL(s.frames == 8);
    CU_ASSERT_EQUAL(s.frames, 8);
    CU_ASSERT_EQUAL(s.last_type, NB_WRITE);
    close_both(&c, &s);
    /* A plain client and a server that requires TLS. */
    cc.want_tls = false;
    handshake(&cc, &sc, &c, &s);
    CU_ASSERT(c.down && !c.up);
    CU_ASSERT(strstr(c.why, "requires encryption") != NULL);
    nb_keyring_free(kr);
}

/* ---- a hostile client speaking raw bytes -------------------------------- */

struct raw {
    int fd;
    struct side s;
    struct nb_keyring *kr;
    struct nb_conn_cfg sc;
};

static void raw_open(struct raw *r)
{
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
                                     SOCK_CLOEXEC, 0, sv), 0);
    r->kr = ring("* " KEY1 "\n");
    r->sc = cfg(NB_ROLE_SERVER, "hostB", r->kr);
    r->sc.handshake_ms = 300;
    memset(&r->s, 0, sizeof(r->s));
    r->s.c = nb_conn_new(loop, sv[1], &r->sc, &ops, &r->s, "test server");
    r->fd = sv[0];
}

static void raw_frame(struct raw *r, uint8_t type, const void *body,
                      size_t len)
{
    struct nb_out o;
    struct nb_hdr h = { .type = type };
    nb_out_set(&o, &h, body, len, NULL, 0);
    CU_ASSERT_EQUAL(write(r->fd, o.head, o.head_len), (ssize_t)o.head_len);
}

/* Everything the server sent until it closed (or 3 s). */
static size_t raw_drain(struct raw *r, uint8_t *buf, size_t max)
{
    size_t got = 0;
    for (int i = 0; i < 300; i++) {
        evloop_run_once(loop, 10);
        ssize_t n = read(r->fd, buf + got, max - got);
        if (n == 0)
            break;
        if (n > 0)
            got += (size_t)n;
    }
    return got;
}

static void raw_close(struct raw *r)
{
    if (r->s.c)
        nb_conn_close(r->s.c, "test over");
    close(r->fd);
    nb_keyring_free(r->kr);
}

/* buf holds exactly one REFUSED frame with code. */
static void assert_refused(const uint8_t *buf, size_t n, uint32_t code)
{
    CU_ASSERT_EQUAL_FATAL(n, NB_HDR_SIZE + 4);
    struct nb_hdr h;
    const char *why;
    CU_ASSERT_EQUAL_FATAL(nb_hdr_decode(buf, &h, false, &why), 0);
    CU_ASSERT_EQUAL(h.type, NB_REFUSED);
    uint32_t got;
    CU_ASSERT_EQUAL(nb_refused_decode(buf + NB_HDR_SIZE, h.length, &got, &why), 0);
    CU_ASSERT_EQUAL(got, code);
}

static void test_raw_garbage(void)
{
    struct raw r;
    raw_open(&r);
    uint8_t junk[64];
    memset(junk, 'A', sizeof(junk));
    CU_ASSERT_EQUAL(write(r.fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    uint8_t buf[4096];
    size_t n = raw_drain(&r, buf, sizeof(buf));
    assert_refused(buf, n, NB_REFUSE_AUTH);
    CU_ASSERT(r.s.down && !r.s.up);
    raw_close(&r);

    /* A request before authentication: refused, nothing else. */
    raw_open(&r);
    struct nb_open op = { 0 };
    strcpy(op.name, "disk1");
    uint8_t body[NB_MAX_CTRL];
    struct nb_out o;
    struct nb_hdr h = { .type = NB_OPEN, .tag = 1 };
    nb_out_set(&o, &h, body, nb_open_encode(body, &op), NULL, 0);
    CU_ASSERT_EQUAL(write(r.fd, o.head, o.head_len), (ssize_t)o.head_len);
    n = raw_drain(&r, buf, sizeof(buf));
    assert_refused(buf, n, NB_REFUSE_AUTH);
    raw_close(&r);
}

static void test_raw_truncated(void)
{
    struct raw r;
    raw_open(&r);
    struct nb_hello hi = { .min_version = 1, .max_version = 1,
                           .keepalive_ms = 1000 };
    strcpy(hi.name, "hostC");
    uint8_t body[NB_MAX_CTRL];
    struct nb_out o;
    struct nb_hdr h = { .type = NB_HELLO };
    nb_out_set(&o, &h, body, nb_hello_encode(body, &hi), NULL, 0);
    CU_ASSERT_EQUAL(write(r.fd, o.head, o.head_len - 10), (ssize_t)o.head_len - 10);
    uint8_t buf[4096];
    size_t n = raw_drain(&r, buf, sizeof(buf));
    CU_ASSERT_EQUAL(n, 0); /* closed at the handshake deadline, silently */
    CU_ASSERT(r.s.down);
    CU_ASSERT(strstr(r.s.why, "handshake not finished") != NULL);
    raw_close(&r);
}

/* HELLO, CHALLENGE, then an AUTH computed over server_nonce (NULL: the one
 * the server just sent). Returns what the server sent after CHALLENGE. */
static size_t raw_auth(struct raw *r, const uint8_t *server_nonce,
                       uint8_t *buf, size_t max)
{
    struct nb_hello hi = { .min_version = 1, .max_version = 1,
                           .keepalive_ms = 1000 };
    strcpy(hi.name, "hostC");
    memset(hi.nonce, 7, sizeof(hi.nonce));
    uint8_t body[NB_MAX_CTRL];
    raw_frame(r, NB_HELLO, body, nb_hello_encode(body, &hi));
    uint8_t in[NB_HDR_SIZE + NB_MAX_CTRL];
    size_t got = 0;
    struct nb_hdr h = { 0 };
    const char *why;
    for (int i = 0; i < 300; i++) {
        evloop_run_once(loop, 10);
        ssize_t n = read(r->fd, in + got, sizeof(in) - got);
        if (n > 0)
            got += (size_t)n;
        if (got >= NB_HDR_SIZE && nb_hdr_decode(in, &h, false, &why) == 0 &&
            got >= NB_HDR_SIZE + h.length)
            break;
    }
    struct nb_challenge ch;
    CU_ASSERT_EQUAL_FATAL(h.type, NB_CHALLENGE);
    CU_ASSERT_EQUAL_FATAL(nb_challenge_decode(in + NB_HDR_SIZE, h.length, &ch, &why), 0);
    CU_ASSERT_STRING_EQUAL(ch.name, "hostB");
    struct nb_transcript t = { .flags = 0, .version = 1 };
    memcpy(t.client_nonce, hi.nonce, NB_NONCE_SIZE);
    memcpy(t.server_nonce, server_nonce ? server_nonce : ch.nonce, NB_NONCE_SIZE);
    strcpy(t.client, "hostC");
    strcpy(t.server, "hostB");
    uint8_t key[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                        0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
    uint8_t mac[NB_MAC_SIZE];
    CU_ASSERT_EQUAL(nb_auth_mac(key, sizeof(key), NB_LABEL_CLIENT, &t, mac), 0);
    raw_frame(r, NB_AUTH, mac, sizeof(mac));
    size_t n = 0;
    for (int i = 0; i < 50; i++) {
        evloop_run_once(loop, 10);
        ssize_t k = read(r->fd, buf + n, max - n);
        if (k > 0)
            n += (size_t)k;
        if (k == 0 || n >= NB_HDR_SIZE + 4)
            break;
    }
    return n;
}

static void test_raw_replay(void)
{
    uint8_t buf[4096];
    struct raw r;
    /* The right AUTH is welcomed ... */
    raw_open(&r);
    size_t n = raw_auth(&r, NULL, buf, sizeof(buf));
    struct nb_hdr h;
    const char *why;
    CU_ASSERT_FATAL(n >= NB_HDR_SIZE);
    CU_ASSERT_EQUAL(nb_hdr_decode(buf, &h, false, &why), 0);
    CU_ASSERT_EQUAL(h.type, NB_WELCOME);
    CU_ASSERT(r.s.up);
    raw_close(&r);
    /* ... one made for an earlier connection's challenge is refused. */
    raw_open(&r);
    uint8_t old_nonce[NB_NONCE_SIZE];
    memset(old_nonce, 0x42, sizeof(old_nonce));
    n = raw_auth(&r, old_nonce, buf, sizeof(buf));
    assert_refused(buf, n, NB_REFUSE_AUTH);
    CU_ASSERT(!r.s.up);
    raw_close(&r);
}

static int init(void)
{
    loop = evloop_new();
    return loop ? 0 : -1;
}

static int cleanup(void)
{
    for (int i = 0; i < 10; i++)
        evloop_run_once(loop, 0);
    evloop_free(loop);
    return 0;
}

static CU_TestInfo channel_auth_tests[] = {
    { "cluster key: both authenticated, frames flow", test_cluster_key },
    { "per-peer keys", test_peer_keys },
    { "wrong key is refused", test_wrong_key },
    { "unknown peer is refused; no key for the server", test_unknown_peer },
    { "TLS 1.3 PSK; plain client refused when TLS is required", test_tls },
    { "garbage and a request before auth: one REFUSED", test_raw_garbage },
    { "truncated HELLO: closed at the deadline, nothing sent", test_raw_truncated },
    { "replayed AUTH refused", test_raw_replay },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(channel_auth, init, cleanup, channel_auth_tests)
