/* The vbd and qdisk classes through the xenbus bus on a xensim host: the
 * test writes the toolstack's nodes as libxl does, plays the guest frontend
 * (xenstore keys, shared ring, event channel) in this process, and pumps the
 * event loop the bus and the backend run on. Garbage in xenstore keys fails
 * that one device with an error node; the others keep working. */
#include "backend/vbd/blkif_abi.h"
#include "backend/vbd/vbd.h"
#include "evloop.h"
#include "log.h"
#include "test_xensim.h"
#include "unit.h"
#include "xenbus.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SECTORS 4096u

static struct sim_host host;
static struct evloop *loop;
static struct xenif_config cfg0;
static struct xenif_xs *bus_xs, *ts;
static struct xenbus *bus;
static unsigned guest;
static char *img, *img2;

#define WAIT_FOR(cond)                                                       \
    do {                                                                     \
        for (int w_ = 0; w_ < 1000 && !(cond); w_++)                         \
            evloop_run_once(loop, 10);                                       \
    } while (0)

static void put(const char *dir, const char *key, const char *value)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, key);
    CU_ASSERT_EQUAL(xenif_xs_write(ts, 0, p, value, strlen(value)), 0);
}

static bool is(const char *dir, const char *key, const char *value)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, key);
    char *v = xenif_xs_read(ts, 0, p, NULL);
    bool eq = v && strcmp(v, value) == 0;
    free(v);
    return eq;
}

static bool has(const char *dir, const char *key)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, key);
    char *v = xenif_xs_read(ts, 0, p, NULL);
    free(v);
    return v != NULL;
}

/* libxl's disk add, one transaction: backend and frontend directories. */
static void ts_add_disk(const char *type, unsigned devid, const char *params,
                        const char *mode, char *be, char *fe)
{
    sprintf(be, "/local/domain/0/backend/%s/%u/%u", type, guest, devid);
    sprintf(fe, "/local/domain/%u/device/vbd/%u", guest, devid);
    for (int attempt = 0; attempt < 10; attempt++) {
        xenif_txn t = xenif_xs_transaction_start(ts);
        char p[256], v[64];
#define W(dir, key, val)                                                     \
    do {                                                                     \
        snprintf(p, sizeof(p), "%s/%s", dir, key);                           \
        xenif_xs_write(ts, t, p, val, strlen(val));                          \
    } while (0)
        W(be, "frontend", fe);
        snprintf(v, sizeof(v), "%u", guest);
        W(be, "frontend-id", v);
        W(be, "online", "1");
        W(be, "state", "1");
        W(be, "params", params);
        W(be, "mode", mode);
        W(be, "type", type);
        W(be, "device-type", "disk");
        W(be, "removable", "0");
        W(be, "discard-enable", "1");
        snprintf(v, sizeof(v), "%u", devid);
        W(be, "dev", "xvda");
        W(fe, "backend", be);
        W(fe, "backend-id", "0");
        W(fe, "state", "1");
        W(fe, "virtual-device", v);
        W(fe, "device-type", "disk");
#undef W
        if (xenif_xs_transaction_end(ts, t, false) == 0)
            return;
    }
    CU_FAIL("transaction kept conflicting");
}

/* ---- the guest's side of one queue ---------------------------------------- */

struct gq {
    struct xenif_gnt *g;
    struct xenif_evtchn *ec;
    enum blkif_abi abi;
    unsigned nr_pages, size;
    size_t slot;
    uint8_t *sring, *data;
    xenif_gref refs[4], data_refs[4];
    int port;
    uint32_t prod, cons;
};

static uint32_t *gidx(struct gq *q, int i) { return (uint32_t *)(void *)q->sring + i; }
static uint8_t *gslot(struct gq *q, uint32_t i)
{
    return q->sring + BLKIF_RING_HEADER + (size_t)(i & (q->size - 1)) * q->slot;
}

static int gq_open(struct gq *q, enum blkif_abi abi, unsigned nr_pages)
{
    char err[256];
    struct xenif_config c = sim_config(&host, guest);
    memset(q, 0, sizeof(*q));
    q->abi = abi;
    q->nr_pages = nr_pages;
    q->size = blkif_abi_ring_entries(abi, nr_pages);
    q->slot = blkif_abi_slot_size(abi);
    q->g = xenif_gnt_open(&c, err, sizeof(err));
    q->ec = xenif_evtchn_open(&c, err, sizeof(err));
    if (!q->g || !q->ec)
        return -1;
    q->sring = xenif_gnt_share(q->g, 0, nr_pages, q->refs, true);
    q->data = xenif_gnt_share(q->g, 0, 4, q->data_refs, true);
    q->port = xenif_evtchn_alloc_unbound(q->ec, 0);
    if (!q->sring || !q->data || q->port < 0)
        return -1;
    *gidx(q, 1) = *gidx(q, 3) = 1;
    return 0;
}

/* Unshare once the backend let go (pumping the loop meanwhile). */
static void gq_close(struct gq *q)
{
    xenif_evtchn_unbind(q->ec, (xenif_port)q->port);
    int rc = -1;
    for (int i = 0; i < 500 && rc < 0; i++) {
        rc = xenif_gnt_unshare(q->g, q->sring, q->nr_pages);
        if (rc < 0)
            evloop_run_once(loop, 10);
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(xenif_gnt_unshare(q->g, q->data, 4), 0);
    xenif_evtchn_close(q->ec);
    xenif_gnt_close(q->g);
}

/* Writes the queue's keys below dir/prefix. */
static void gq_publish(struct gq *q, const char *fe, const char *prefix)
{
    char k[64], v[32];
    for (unsigned i = 0; i < q->nr_pages; i++) {
        if (q->nr_pages == 1)
            snprintf(k, sizeof(k), "%sring-ref", prefix);
        else
            snprintf(k, sizeof(k), "%sring-ref%u", prefix, i);
        snprintf(v, sizeof(v), "%u", q->refs[i]);
        put(fe, k, v);
    }
    snprintf(k, sizeof(k), "%sevent-channel", prefix);
    snprintf(v, sizeof(v), "%d", q->port);
    put(fe, k, v);
}

static void gq_push(struct gq *q, uint8_t op, uint64_t id, uint64_t sector,
                    unsigned page, bool notify)
{
    struct blkif_raw_req r = { .operation = op, .nr_segments_or_flag = 1,
                               .id = id, .sector = sector };
    r.seg[0] = (struct blkif_seg){ q->data_refs[page], 0, 7 };
    blkif_abi_put_request(q->abi, gslot(q, q->prod++), &r);
    __atomic_store_n(gidx(q, 0), q->prod, __ATOMIC_RELEASE);
    if (notify)
        xenif_evtchn_notify(q->ec, (xenif_port)q->port);
}

/* Next response's status, pumping the backend's loop; 99 on timeout. */
static int gq_wait(struct gq *q, uint64_t *id)
{
    for (int i = 0; i < 1000; i++) {
        if (__atomic_load_n(gidx(q, 2), __ATOMIC_ACQUIRE) != q->cons) {
            uint8_t op;
            int16_t st;
            blkif_abi_get_response(q->abi, gslot(q, q->cons++), id, &op, &st);
            return st;
        }
        evloop_run_once(loop, 10);
    }
    return 99;
}

/* ---- suite --------------------------------------------------------------- */

static int make_img(char **path, const char *name, uint8_t fill)
{
    if (asprintf(path, "%s/%s", host.dir, name) < 0)
        return -1;
    int fd = open(*path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    static uint8_t buf[SECTORS * 512];
    memset(buf, fill, sizeof(buf));
    int ok = fd >= 0 && write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf);
    if (fd >= 0)
        close(fd);
    return ok ? 0 : -1;
}

static int bus_init(void)
{
    log_init("test-vbd-bus", getenv("NETBUS_TEST_VERBOSE") ? LOG_LVL_DEBUG
                                                           : LOG_LVL_ERROR,
             false);
    if (sim_host_start(&host, "vbd-bus") < 0)
        return -1;
    int g = sim_create(&host, "disk-guest");
    if (g < 0)
        return -1;
    guest = (unsigned)g;
    char err[256];
    cfg0 = sim_config(&host, 0);
    bus_xs = xenif_xs_open(&cfg0, err, sizeof(err));
    ts = xenif_xs_open(&cfg0, err, sizeof(err));
    loop = evloop_new();
    if (!bus_xs || !ts || !loop)
        return -1;
    bus = xenbus_new(loop, bus_xs, &cfg0);
    if (!bus || xenbus_register(bus, &vbd_class) < 0 ||
        xenbus_register(bus, &qdisk_class) < 0)
        return -1;
    if (make_img(&img, "a.img", 0x11) < 0 || make_img(&img2, "b.img", 0x22) < 0)
        return -1;
    return 0;
}

static int bus_cleanup(void)
{
    xenbus_free(bus);
    evloop_free(loop);
    xenif_xs_close(bus_xs);
    xenif_xs_close(ts);
    free(img);
    free(img2);
    int st = sim_host_stop(&host);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Features, x86_32 ABI on a 2-page ring with a request already on it, I/O,
 * close. */
static void test_vbd_through_bus(void)
{
    char be[128], fe[128];
    ts_add_disk("vbd", 51712, img, "w", be, fe);
    WAIT_FOR(is(be, "state", "2"));
    CU_ASSERT_TRUE_FATAL(is(be, "state", "2"));
    CU_ASSERT_TRUE(is(be, "feature-flush-cache", "1"));
    CU_ASSERT_TRUE(is(be, "feature-discard", "1"));
    CU_ASSERT_TRUE(is(be, "feature-max-indirect-segments", "256"));
    CU_ASSERT_TRUE(is(be, "max-ring-page-order", "4"));
    CU_ASSERT_TRUE(is(be, "multi-queue-max-queues", "4"));
    CU_ASSERT_TRUE(is(be, "feature-persistent", "1"));

    struct gq q;
    CU_ASSERT_EQUAL_FATAL(gq_open(&q, BLKIF_ABI_X86_32, 2), 0);
    memset(q.data, 0xab, 4096);
    gq_push(&q, BLKIF_REQ_WRITE, 1, 8, 0, false); /* before connecting */
    gq_publish(&q, fe, "");
    put(fe, "ring-page-order", "1");
    put(fe, "protocol", "x86_32-abi");
    put(fe, "feature-persistent", "1");
    put(fe, "state", "3");
    WAIT_FOR(is(be, "state", "4"));
    CU_ASSERT_TRUE_FATAL(is(be, "state", "4"));
    char v[32];
    snprintf(v, sizeof(v), "%u", SECTORS);
    CU_ASSERT_TRUE(is(be, "sectors", v));
    CU_ASSERT_TRUE(is(be, "sector-size", "512"));
    CU_ASSERT_TRUE(is(be, "info", "0"));
    CU_ASSERT_TRUE(has(be, "physical-sector-size"));
    uint64_t id;
    CU_ASSERT_EQUAL(gq_wait(&q, &id), BLKIF_ST_OKAY);
    CU_ASSERT_EQUAL(id, 1);
    gq_push(&q, BLKIF_REQ_READ, 2, 8, 1, true);
    CU_ASSERT_EQUAL(gq_wait(&q, &id), BLKIF_ST_OKAY);
    CU_ASSERT_EQUAL(id, 2);
    CU_ASSERT(q.data[4096] == 0xab && q.data[8191] == 0xab);

    put(fe, "state", "5");
    WAIT_FOR(is(be, "state", "5"));
    CU_ASSERT_TRUE(is(be, "state", "5"));
    put(fe, "state", "6");
    WAIT_FOR(is(be, "state", "6"));
    gq_close(&q);
}

/* qdisk with "aio:" params, read-only, two queues. */
static void test_qdisk_multiqueue_readonly(void)
{
    char be[128], fe[128], params[300];
    snprintf(params, sizeof(params), "aio:%s", img2);
    ts_add_disk("qdisk", 51728, params, "r", be, fe);
    WAIT_FOR(is(be, "state", "2"));
    CU_ASSERT_TRUE_FATAL(is(be, "state", "2"));
    CU_ASSERT_FALSE(has(be, "feature-flush-cache"));
    CU_ASSERT_FALSE(has(be, "feature-discard"));
    struct gq q[2];
    for (unsigned i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL_FATAL(gq_open(&q[i], BLKIF_ABI_NATIVE, 1), 0);
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "queue-%u/", i);
        gq_publish(&q[i], fe, prefix);
    }
    put(fe, "multi-queue-num-queues", "2");
    put(fe, "state", "3");
    WAIT_FOR(is(be, "state", "4"));
    CU_ASSERT_TRUE_FATAL(is(be, "state", "4"));
    CU_ASSERT_TRUE(is(be, "info", "4")); /* VDISK_READONLY */
    uint64_t id;
    for (unsigned i = 0; i < 2; i++) {
        gq_push(&q[i], BLKIF_REQ_READ, 10 + i, 0, 0, true);
        CU_ASSERT_EQUAL(gq_wait(&q[i], &id), BLKIF_ST_OKAY);
        CU_ASSERT_EQUAL(q[i].data[100], 0x22);
        gq_push(&q[i], BLKIF_REQ_WRITE, 20 + i, 0, 0, true);
        CU_ASSERT_EQUAL(gq_wait(&q[i], &id), BLKIF_ST_ERROR);
    }
    put(fe, "state", "5");
    WAIT_FOR(is(be, "state", "5"));
    put(fe, "state", "6");
    WAIT_FOR(is(be, "state", "6"));
    gq_close(&q[0]);
    gq_close(&q[1]);
}

/* Garbage in the toolstack's and the frontend's keys: that device fails
 * with an error node; the next good device works. */
static void test_garbage_keys(void)
{
    char be[128], fe[128], err[192];
    unsigned devid = 2000;
    static const char *const bad_params[] = { "", "qcow2:/x.img", "relative.img",
                                              "/nonexistent/disk.img",
                                              "file:", "/dev/null/x" };
    for (size_t i = 0; i < sizeof(bad_params) / sizeof(*bad_params); i++, devid++) {
        ts_add_disk("vbd", devid, bad_params[i], "w", be, fe);
        WAIT_FOR(is(be, "state", "5") || is(be, "state", "6"));
        CU_ASSERT_TRUE(is(be, "state", "5") || is(be, "state", "6"));
        CU_ASSERT_TRUE(is(be, "hotplug-status", "error"));
    }
    ts_add_disk("vbd", devid++, img, "rw-maybe", be, fe);
    WAIT_FOR(is(be, "state", "5") || is(be, "state", "6"));
    CU_ASSERT_TRUE(is(be, "state", "5") || is(be, "state", "6"));

    /* Frontend garbage: each key in turn. */
    static const struct { const char *key, *val, *why; } bad_fe[] = {
        { "ring-ref", "abc", "ring-ref" },
        { "ring-ref", "99999999999", "ring-ref" },
        { "ring-ref", "4000", "mapping" },  /* not granted */
        { "event-channel", "-1", "event-channel" },
        { "event-channel", "4000", "event channel" },
        { "protocol", "x86_16-abi", "protocol" },
        { "ring-page-order", "99", "ring-page-order" },
        { "ring-page-order", "1", "ring-ref0" }, /* ring-refN missing */
        { "multi-queue-num-queues", "1000", "multi-queue-num-queues" },
        { "multi-queue-num-queues", "0", "multi-queue-num-queues" },
        { "multi-queue-num-queues", "2", "queue-0/ring-ref" },
    };
    for (size_t i = 0; i < sizeof(bad_fe) / sizeof(*bad_fe); i++, devid++) {
        ts_add_disk("vbd", devid, img, "w", be, fe);
        WAIT_FOR(is(be, "state", "2"));
        CU_ASSERT_TRUE_FATAL(is(be, "state", "2"));
        struct gq q;
        CU_ASSERT_EQUAL_FATAL(gq_open(&q, BLKIF_ABI_NATIVE, 1), 0);
        gq_publish(&q, fe, "");
        put(fe, bad_fe[i].key, bad_fe[i].val);
        put(fe, "state", "3");
        WAIT_FOR(is(be, "state", "5"));
        CU_ASSERT_TRUE(is(be, "state", "5"));
        snprintf(err, sizeof(err), "/local/domain/0/error/backend/vbd/%u/%u",
                 guest, devid);
        char p[256];
        snprintf(p, sizeof(p), "%s/error", err);
        char *msg = xenif_xs_read(ts, 0, p, NULL);
        CU_ASSERT_PTR_NOT_NULL(msg);
        bool said = msg && strstr(msg, bad_fe[i].why);
        CU_ASSERT(said);
        if (!said)
            fprintf(stderr, "\n%s=%s: error \"%s\"\n", bad_fe[i].key,
                    bad_fe[i].val, msg ? msg : "(none)");
        free(msg);
        put(fe, "state", "6");
        WAIT_FOR(is(be, "state", "6"));
        gq_close(&q);
    }

    /* After all that, a good device on the same bus. */
    ts_add_disk("vbd", devid, img, "w", be, fe);
    WAIT_FOR(is(be, "state", "2"));
    struct gq q;
    CU_ASSERT_EQUAL_FATAL(gq_open(&q, BLKIF_ABI_X86_64, 1), 0);
    gq_publish(&q, fe, "");
    put(fe, "protocol", "x86_64-abi");
    put(fe, "state", "3");
    WAIT_FOR(is(be, "state", "4"));
    CU_ASSERT_TRUE_FATAL(is(be, "state", "4"));
    uint64_t id;
    gq_push(&q, BLKIF_REQ_READ, 5, 8, 0, true);
    CU_ASSERT_EQUAL(gq_wait(&q, &id), BLKIF_ST_OKAY);
    CU_ASSERT_EQUAL(q.data[0], 0xab); /* written by the first test */
    /* Ring abuse through the bus: the device goes Closing. */
    q.prod += 1000;
    __atomic_store_n(gidx(&q, 0), q.prod, __ATOMIC_RELEASE);
    xenif_evtchn_notify(q.ec, (xenif_port)q.port);
    WAIT_FOR(is(be, "state", "5"));
    CU_ASSERT_TRUE(is(be, "state", "5"));
    put(fe, "state", "6");
    WAIT_FOR(is(be, "state", "6"));
    gq_close(&q);
}

static CU_TestInfo vbd_bus_tests[] = {
    { "vbd: features, x86_32 2-page ring, I/O, close", test_vbd_through_bus },
    { "qdisk: aio: params, read-only, two queues", test_qdisk_multiqueue_readonly },
    { "garbage in xenstore keys fails that device only", test_garbage_keys },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(vbd_bus, bus_init, bus_cleanup, vbd_bus_tests)
