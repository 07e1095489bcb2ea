/* netbus channel end to end on loopback TCP: a xensim host's xenstore holds
 * the export registry, a server serves it, and a remote target (the LBE
 * side) reaches it through a proxy in this process that can cut the byte
 * stream into tiny pieces (short reads and writes everywhere), kill the
 * connections in the middle of requests, and refuse new ones (peer gone).
 * Covered: many tags in flight, read/write/flush/discard, bad requests,
 * resubmission after the peer died mid-request (data intact), the wait
 * limit failing requests with an error while the loop runs on, an export
 * the peer may not use answered exactly like a missing one, and unexport
 * --force ending a session. */
#include "backend/channel/export.h"
#include "backend/channel/keys.h"
#include "backend/channel/remote.h"
#include "backend/channel/server.h"
#include "backend/vbd/target.h"
#include "evloop.h"
#include "test_channel_link.h"
#include "test_xensim.h"
#include "timer.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define DISK_SIZE (8u << 20)
#define NIO 64
#define KEEPALIVE_MS 200 /* the link's; see test_short_reads_writes */

static struct sim_host host;
static struct xenif_config cfg0;
static struct evloop *loop;
static struct xenif_xs *ts;
static struct nb_exports *reg;
/* The server and the remote target's peer pool, with the proxy between. */
static struct test_link chan;
static char img[512];

#define PUMP_UNTIL(cond, ms)                                                 \
    do {                                                                     \
        uint64_t end_ = mono_ms() + (ms);                                    \
        while (!(cond) && mono_ms() < end_)                                  \
            evloop_run_once(loop, 10);                                       \
    } while (0)

/* ---- the LBE side ---------------------------------------------------------- */

struct tio {
    struct vbd_target_io io;
    int err;
    bool done;
    uint8_t *buf;
    struct iovec iov[4];
};

static unsigned completions;

static void tio_done(struct vbd_target_io *io, int err)
{
    struct tio *t = (struct tio *)io;
    t->err = err;
    t->done = true;
    completions++;
}

static void tio_set(struct tio *t, enum vbd_io_kind kind, uint64_t off,
                    size_t len)
{
    free(t->buf);
    memset(t, 0, sizeof(*t));
    void *buf = NULL;
    if (len && posix_memalign(&buf, 4096, len) != 0)
        buf = NULL;
    t->buf = buf;
    t->io.kind = kind;
    t->io.offset = off;
    t->io.len = len;
    t->io.done = tio_done;
    /* Four pieces, as a ring request's segments would be. */
    for (unsigned i = 0; len && i < 4; i++) {
        t->iov[i].iov_base = t->buf + i * (len / 4);
        t->iov[i].iov_len = len / 4;
    }
    t->io.iov = t->iov;
    t->io.iovcnt = len ? 4 : 0;
}

struct opened {
    bool called;
    char err[300];
};

static void on_ready(void *opaque, const char *err)
{
    struct opened *o = opaque;
    o->called = true;
    snprintf(o->err, sizeof(o->err), "%s", err ? err : "");
}

static struct vbd_target *open_remote(const char *name, unsigned timeout_ms,
                                      struct opened *o)
{
    memset(o, 0, sizeof(*o));
    struct nb_remote_params p = {
        .pool = &chan.pool, .host = "127.0.0.1", .port = chan.px.port,
        .export_name = name, .owner = "test", .io_timeout_ms = timeout_ms,
        .where = "test lbe", .ready = on_ready, .ready_opaque = o };
    struct vbd_target *t = nb_remote_open(&p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    PUMP_UNTIL(o->called, 5000);
    return t;
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static bool check(const uint8_t *b, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        if (b[i] != (uint8_t)(seed * 131 + i * 7 + (i >> 9)))
            return false;
    return true;
}

static struct tio ios[NIO];

/* Writes NIO chunks of len at i*stride with pattern seed+i, all in flight
 * at once; returns how many completed OK. */
static unsigned write_all(struct vbd_target *t, size_t len, unsigned seed,
                          unsigned wait_ms)
{
    completions = 0;
    for (unsigned i = 0; i < NIO; i++) {
        tio_set(&ios[i], VBD_IO_WRITE, (uint64_t)i * (DISK_SIZE / NIO), len);
        fill(ios[i].buf, len, seed + i);
        CU_ASSERT_EQUAL(t->ops->submit(t, &ios[i].io), 0);
    }
    t->ops->kick(t);
    PUMP_UNTIL(completions == NIO, wait_ms);
    unsigned ok = 0;
    for (unsigned i = 0; i < NIO; i++)
        ok += ios[i].done && ios[i].err == 0;
    return ok;
}

static unsigned read_check(struct vbd_target *t, size_t len, unsigned seed)
{
    completions = 0;
    for (unsigned i = 0; i < NIO; i++) {
        tio_set(&ios[i], VBD_IO_READ, (uint64_t)i * (DISK_SIZE / NIO), len);
        CU_ASSERT_EQUAL(t->ops->submit(t, &ios[i].io), 0);
    }
    t->ops->kick(t);
    PUMP_UNTIL(completions == NIO, 10000);
    unsigned ok = 0;
    for (unsigned i = 0; i < NIO; i++)
        ok += ios[i].done && ios[i].err == 0 && check(ios[i].buf, len, seed + i);
    return ok;
}

/* One request, waited for; returns its error. */
static int one(struct vbd_target *t, enum vbd_io_kind kind, uint64_t off,
               size_t len, struct tio *x)
{
    tio_set(x, kind, off, len);
    if (kind == VBD_IO_WRITE)
        fill(x->buf, len, 99);
    int rc = t->ops->submit(t, &x->io);
    if (rc < 0)
        return rc;
    t->ops->kick(t);
    PUMP_UNTIL(x->done, 10000);
    return x->done ? x->err : -ETIMEDOUT;
}

static void test_many_in_flight(void)
{
    struct opened o;
    struct vbd_target *t = open_remote("disk1", 10000, &o);
    CU_ASSERT_STRING_EQUAL_FATAL(o.err, "");
    CU_ASSERT_EQUAL(t->info.size, DISK_SIZE);
    CU_ASSERT_EQUAL(t->info.sector_size, 512);
    CU_ASSERT(t->info.can_flush && t->info.can_discard && !t->info.readonly);
    CU_ASSERT_EQUAL(write_all(t, 65536, 1, 10000), NIO);
    CU_ASSERT_EQUAL(read_check(t, 65536, 1), NIO);
    /* What the export's file holds. */
    int fd = open(img, O_RDONLY);
    uint8_t *b = malloc(65536);
    CU_ASSERT_EQUAL(pread(fd, b, 65536, 5 * (DISK_SIZE / NIO)), 65536);
    CU_ASSERT(check(b, 65536, 1 + 5));
    free(b);
    close(fd);

    struct tio x = { 0 };
    CU_ASSERT_EQUAL(one(t, VBD_IO_FLUSH, 0, 0, &x), 0);
    CU_ASSERT_EQUAL(one(t, VBD_IO_DISCARD, 0, 65536, &x), 0);
    CU_ASSERT_EQUAL(one(t, VBD_IO_READ, 0, 65536, &x), 0);
    bool zero = true;
    for (size_t i = 0; i < 65536; i++)
        zero &= x.buf[i] == 0;
    CU_ASSERT(zero);
    x.io.preflush = true;
    CU_ASSERT_EQUAL(one(t, VBD_IO_WRITE, 4096, 4096, &x), 0);
    /* The export checks what the LBE sends, too. */
    CU_ASSERT_EQUAL(one(t, VBD_IO_READ, DISK_SIZE, 4096, &x), -EINVAL);
    CU_ASSERT_EQUAL(one(t, VBD_IO_READ, 100, 512, &x), -EINVAL);
    CU_ASSERT_EQUAL(one(t, VBD_IO_DISCARD, 0, 100, &x), -EINVAL);
    CU_ASSERT_EQUAL(t->ops->inflight(t), 0);
    free(x.buf);
    t->ops->close(t);
    PUMP_UNTIL(false, 50);
}

/* The framing, not the keepalive: the chopped stream is slow (about 80000
 * pieces each way), and on a loaded machine it can leave a 200 ms
 * keepalive's three periods without a byte; each reconnection would start
 * the stream over. So this test's connection pings every 2 s. */
static void test_short_reads_writes(void)
{
    chan.ccfg.keepalive_ms = 2000;
    proxy_kill_all(&chan.px); /* the next connection's HELLO carries it */
    chan.px.chop = 13;        /* every read of the proxy 1..13 bytes */
    struct opened o;
    struct vbd_target *t = open_remote("disk1", 20000, &o);
    CU_ASSERT_STRING_EQUAL_FATAL(o.err, "");
    unsigned conns = chan.px.accepted;
    CU_ASSERT_EQUAL(write_all(t, 16384, 2, 20000), NIO);
    CU_ASSERT_EQUAL(read_check(t, 16384, 2), NIO);
    CU_ASSERT_EQUAL(chan.px.accepted, conns); /* one connection all along */
    t->ops->close(t);
    chan.px.chop = 0;
    chan.ccfg.keepalive_ms = KEEPALIVE_MS;
    proxy_kill_all(&chan.px);
    PUMP_UNTIL(false, 50);
}

static void test_peer_dies_mid_request(void)
{
    struct opened o;
    struct vbd_target *t = open_remote("disk1", 20000, &o);
    CU_ASSERT_STRING_EQUAL_FATAL(o.err, "");
    unsigned before = chan.px.accepted;
    /* Kill every connection once ~1.5 MiB went through: writes are then
     * partly answered, partly on the wire, partly not sent. */
    chan.px.kill_at = chan.px.bytes + 1536 * 1024;
    CU_ASSERT_EQUAL(write_all(t, 65536, 3, 20000), NIO);
    CU_ASSERT(chan.px.accepted > before); /* it reconnected */
    CU_ASSERT_EQUAL(chan.px.kill_at, 0);  /* the kill happened */
    CU_ASSERT_EQUAL(read_check(t, 65536, 3), NIO);
    /* And once more while reads are in flight. */
    chan.px.kill_at = chan.px.bytes + 1024 * 1024;
    CU_ASSERT_EQUAL(read_check(t, 65536, 3), NIO);
    t->ops->close(t);
    PUMP_UNTIL(false, 50);
}

static void test_wait_limit(void)
{
    struct opened o;
    struct vbd_target *t = open_remote("disk1", 400, &o);
    CU_ASSERT_STRING_EQUAL_FATAL(o.err, "");
    chan.px.down = true;
    proxy_kill_all(&chan.px);
    uint64_t t0 = mono_ms();
    struct tio x = { 0 };
    int err = one(t, VBD_IO_READ, 0, 4096, &x);
    uint64_t took = mono_ms() - t0;
    CU_ASSERT_EQUAL(err, -EIO);
    CU_ASSERT(took >= 350 && took < 3000);
    /* The peer is back: the next request works. */
    chan.px.down = false;
    CU_ASSERT_EQUAL(one(t, VBD_IO_WRITE, 0, 4096, &x), 0);
    free(x.buf);
    t->ops->close(t);
    PUMP_UNTIL(false, 50);
}

static void test_refusals_reveal_nothing(void)
{
    struct opened a, b;
    struct vbd_target *t = open_remote("secret", 5000, &a);
    CU_ASSERT(a.called);
    CU_ASSERT(strstr(a.err, "has no export 'secret' for this host") != NULL);
    t->ops->close(t);
    t = open_remote("nosuch", 5000, &b);
    CU_ASSERT(strstr(b.err, "has no export 'nosuch' for this host") != NULL);
    t->ops->close(t);
    /* Word for word the same apart from the name. */
    char *p = strstr(a.err, "secret");
    memcpy(p, "nosuch", 6);
    CU_ASSERT_STRING_EQUAL(a.err, b.err);
    PUMP_UNTIL(false, 50);
}

static void test_shared_connection(void)
{
    struct opened o1, o2;
    struct vbd_target *t1 = open_remote("disk1", 5000, &o1);
    struct vbd_target *t2 = open_remote("disk1", 5000, &o2);
    CU_ASSERT_STRING_EQUAL_FATAL(o1.err, "");
    CU_ASSERT_STRING_EQUAL_FATAL(o2.err, "");
    unsigned conns = chan.px.accepted;
    struct tio x = { 0 };
    CU_ASSERT_EQUAL(one(t1, VBD_IO_WRITE, 8192, 4096, &x), 0);
    t1->ops->close(t1); /* its CLOSE is answered on the shared connection */
    PUMP_UNTIL(false, 100);
    CU_ASSERT_EQUAL(one(t2, VBD_IO_READ, 8192, 4096, &x), 0);
    CU_ASSERT_EQUAL(chan.px.accepted, conns); /* one connection all along */
    free(x.buf);
    t2->ops->close(t2);
    PUMP_UNTIL(false, 50);
}

static int put(const char *name, const char *key, const char *v)
{
    char path[256];
    snprintf(path, sizeof(path), "/local/domain/0/netbus/exports/%s/%s", name,
             key);
    return xenif_xs_write(ts, 0, path, v, strlen(v));
}

static char *state(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "/local/domain/0/netbus/exports/%s/state",
             name);
    return xenif_xs_read(ts, 0, path, NULL);
}

static bool state_is(const char *name, const char *want)
{
    char *s = state(name);
    bool eq = s && strcmp(s, want) == 0;
    free(s);
    return eq;
}

static void test_unexport_force(void)
{
    struct opened o;
    struct vbd_target *t = open_remote("disk1", 5000, &o);
    CU_ASSERT_STRING_EQUAL_FATAL(o.err, "");
    CU_ASSERT_EQUAL(put("disk1", "state", "remove"), 0); /* refused: in use */
    PUMP_UNTIL(state_is("disk1", "ready"), 3000);
    CU_ASSERT(state_is("disk1", "ready"));
    CU_ASSERT_EQUAL(put("disk1", "state", "remove-force"), 0);
    char *s = NULL;
    for (int i = 0; i < 300 && (s = state("disk1")); i++) {
        free(s);
        evloop_run_once(loop, 10);
    }
    CU_ASSERT_PTR_NULL(s);
    struct tio x = { 0 };
    PUMP_UNTIL(false, 200); /* the EVENT arrives */
    CU_ASSERT_EQUAL(one(t, VBD_IO_READ, 0, 4096, &x), -ENODEV);
    free(x.buf);
    t->ops->close(t);
    PUMP_UNTIL(false, 50);
}

/* ---- suite ------------------------------------------------------------------ */

static int cleanup(void);

/* Says what failed, stops what was started. */
static int init_failed(const char *what, const char *err)
{
    fprintf(stderr, "channel_net: %s%s%s\n", what, err[0] ? ": " : "", err);
    cleanup();
    return -1;
}

static int init(void)
{
    char err[512] = "";
    if (sim_host_start(&host, "chnet") < 0)
        return init_failed("xensim host", "");
    cfg0 = sim_config(&host, 0);
    loop = evloop_new();
    ts = loop ? xenif_xs_open(&cfg0, err, sizeof(err)) : NULL;
    reg = ts ? nb_exports_new(loop, &cfg0, "hostB", err, sizeof(err)) : NULL;
    if (!reg)
        return init_failed("export registry", err);
    snprintf(img, sizeof(img), "%s/disk1.img", host.dir);
    int fd = open(img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, DISK_SIZE) < 0)
        return init_failed("disk image", strerror(errno));
    close(fd);
    const char *names[] = { "disk1", "secret" };
    for (int i = 0; i < 2; i++) {
        if (put(names[i], "params", img) < 0 || put(names[i], "kind", "vbd") < 0 ||
            put(names[i], "readonly", i ? "1" : "0") < 0 ||
            put(names[i], "allowed-peers", i ? "hostZ" : "") < 0 ||
            put(names[i], "state", "requested") < 0)
            return init_failed("writing the export request", strerror(errno));
        PUMP_UNTIL(state_is(names[i], "ready"), 3000);
        if (!state_is(names[i], "ready"))
            return init_failed("the export did not become ready", names[i]);
    }
    const char *what = test_link_start(&chan, loop, reg, KEEPALIVE_MS, err, sizeof(err));
    if (what)
        return init_failed(what, err);
    return 0;
}

static int cleanup(void)
{
    for (unsigned i = 0; i < NIO; i++)
        free(ios[i].buf);
    test_link_stop(&chan);
    nb_exports_free(reg);
    if (ts)
        xenif_xs_close(ts);
    for (int i = 0; loop && i < 5; i++)
        evloop_run_once(loop, 0);
    evloop_free(loop);
    int st = sim_host_stop(&host);
    return st == 0 ? 0 : -1;
}

static CU_TestInfo channel_net_tests[] = {
    { "many tags in flight; read, write, flush, discard", test_many_in_flight },
    { "short reads and writes everywhere", test_short_reads_writes },
    { "peer dies mid-request: resubmitted, data intact", test_peer_dies_mid_request },
    { "wait limit: error status, loop keeps running", test_wait_limit },
    { "a not-allowed export is answered like a missing one", test_refusals_reveal_nothing },
    { "devices share one connection; closing one leaves it", test_shared_connection },
    { "unexport --force ends the session", test_unexport_force },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(channel_net, init, cleanup, channel_net_tests)
