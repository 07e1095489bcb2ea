/* xenbus: the backend state machine against a xensim host. The test plays
 * the toolstack (backend/frontend directories, online, rm) and the guest
 * frontend (its state node) with plain xenstore writes, and a fake device
 * class records what the bus asked of it and can be told to fail. */
#include "evloop.h"
#include "log.h"
#include "test_xensim.h"
#include "unit.h"
#include "xenbus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sim_host host;
static struct evloop *loop;
static struct xenif_config bus_cfg;
static struct xenif_xs *bus_xs, *ts; /* the bus's connection; toolstack+guest */
static struct xenbus *bus;
static unsigned guest;

/* ---- the fake class ----------------------------------------------------- */

struct rec {
    char path[128];
    struct xenbus_device *dev; /* NULL once freed */
    int init, connect, disconnect, freed;
    bool connected;
};

static struct rec recs[64];
static unsigned nrecs;
static unsigned fail_init_devid = ~0u, fail_connect_devid = ~0u;
static unsigned error_in_disconnect_devid = ~0u; /* e.g. a failed flush */

static struct rec *rec_find(const char *path)
{
    for (unsigned i = 0; i < nrecs; i++)
        if (strcmp(recs[i].path, path) == 0)
            return &recs[i];
    return NULL;
}

static int fake_init(struct xenbus_device *dev)
{
    struct rec *r = rec_find(xenbus_backend_path(dev));
    if (!r && nrecs < sizeof(recs) / sizeof(recs[0])) {
        r = &recs[nrecs++];
        snprintf(r->path, sizeof(r->path), "%s", xenbus_backend_path(dev));
    }
    if (!r)
        return -1;
    r->dev = dev;
    r->init++;
    xenbus_set_priv(dev, r);
    if (xenbus_devid(dev) == fail_init_devid) {
        xenbus_device_error(dev, "fake init failure");
        return -1;
    }
    return xenbus_printf(dev, "feature-fake", "%d", 1);
}

static int fake_connect(struct xenbus_device *dev)
{
    struct rec *r = xenbus_priv(dev);
    r->connect++;
    if (xenbus_devid(dev) == fail_connect_devid) {
        xenbus_device_error(dev, "fake connect failure");
        return -1;
    }
    unsigned long ref;
    if (xenbus_read_frontend_uint(dev, "ring-ref", &ref) < 0) {
        xenbus_device_error(dev, "reading ring-ref: %s", strerror(errno));
        return -1;
    }
    r->connected = true;
    return 0;
}

static void fake_disconnect(struct xenbus_device *dev)
{
    struct rec *r = xenbus_priv(dev);
    if (r->connected) {
        r->connected = false;
        r->disconnect++;
        if (xenbus_devid(dev) == error_in_disconnect_devid)
            xenbus_device_error(dev, "flush failed while disconnecting");
    }
}

static void fake_free(struct xenbus_device *dev)
{
    struct rec *r = xenbus_priv(dev);
    CU_ASSERT_FALSE(r->connected); /* disconnect always comes first */
    r->freed++;
    r->dev = NULL;
}

static const struct xenbus_class fake_vbd = {
    .type = "vbd", .init = fake_init, .connect = fake_connect,
    .disconnect = fake_disconnect, .free = fake_free,
};
static const struct xenbus_class fake_qdisk = {
    .type = "qdisk", .init = fake_init, .connect = fake_connect,
    .disconnect = fake_disconnect, .free = fake_free,
};
static const struct xenbus_class fake_late = {
    .type = "late", .init = fake_init, .connect = fake_connect,
    .disconnect = fake_disconnect, .free = fake_free,
};

/* ---- the toolstack and the guest --------------------------------------- */

/* Bounded wait: pump the bus until cond holds (at most ~10 s). */
#define WAIT_FOR(cond)                                                       \
    do {                                                                     \
        for (int w_ = 0; w_ < 1000 && !(cond); w_++)                         \
            evloop_run_once(loop, 10);                                       \
    } while (0)
/* ... and asserts it holds, so that a failure names the caller's line. */
#define WAIT_TRUE(cond)                                                      \
    do {                                                                     \
        WAIT_FOR(cond);                                                      \
        CU_ASSERT_TRUE(cond);                                                \
    } while (0)

static void be_path(char *buf, size_t len, const char *type, unsigned fe,
                    unsigned devid)
{
    snprintf(buf, len, "/local/domain/0/backend/%s/%u/%u", type, fe, devid);
}

static void fe_path(char *buf, size_t len, unsigned fe, unsigned devid)
{
    snprintf(buf, len, "/local/domain/%u/device/vbd/%u", fe, devid);
}

static void put(const char *dir, const char *key, const char *value)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, key);
    CU_ASSERT_EQUAL(xenif_xs_write(ts, 0, p, value, strlen(value)), 0);
}

static char *get(const char *dir, const char *key)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, key);
    return xenif_xs_read(ts, 0, p, NULL);
}

/* True if DIR/key currently reads value. */
static bool is(const char *dir, const char *key, const char *value)
{
    char *v = get(dir, key);
    bool eq = v && strcmp(v, value) == 0;
    free(v);
    return eq;
}

static bool exists(const char *path)
{
    char *v = xenif_xs_read(ts, 0, path, NULL);
    free(v);
    return v != NULL;
}

/* What libxl does, in one transaction: both directories, state=1. */
static void ts_add_raw(const char *type, unsigned fe, unsigned devid,
                       const char *frontend, const char *frontend_id,
                       const char *state)
{
    char be[128], fp[128];
    be_path(be, sizeof(be), type, fe, devid);
    fe_path(fp, sizeof(fp), fe, devid);
    for (int attempt = 0; attempt < 10; attempt++) {
        xenif_txn t = xenif_xs_transaction_start(ts);
        CU_ASSERT_NOT_EQUAL_FATAL(t, 0);
        char p[256];
#define W(dir, key, val)                                                     \
    do {                                                                     \
        snprintf(p, sizeof(p), "%s/%s", dir, key);                           \
        xenif_xs_write(ts, t, p, val, strlen(val));                          \
    } while (0)
        if (frontend)
            W(be, "frontend", frontend);
        if (frontend_id)
            W(be, "frontend-id", frontend_id);
        W(be, "online", "1");
        W(be, "state", state);
        W(fp, "backend", be);
        W(fp, "backend-id", "0");
        W(fp, "state", "1");
#undef W
        if (xenif_xs_transaction_end(ts, t, false) == 0)
            return;
        CU_ASSERT_EQUAL_FATAL(errno, EAGAIN);
    }
    CU_FAIL("transaction kept conflicting");
}

static void ts_add(const char *type, unsigned fe, unsigned devid)
{
    char fp[128], id[16];
    fe_path(fp, sizeof(fp), fe, devid);
    snprintf(id, sizeof(id), "%u", fe);
    ts_add_raw(type, fe, devid, fp, id, "1");
}

static void fe_state(unsigned fe, unsigned devid, const char *state)
{
    char fp[128];
    fe_path(fp, sizeof(fp), fe, devid);
    put(fp, "state", state);
}

/* The frontend publishes its ring and goes Initialised. */
static void fe_publish(unsigned fe, unsigned devid)
{
    char fp[128];
    fe_path(fp, sizeof(fp), fe, devid);
    put(fp, "ring-ref", "8");
    put(fp, "event-channel", "3");
    put(fp, "state", "3");
}

static struct rec *rec_of(const char *type, unsigned fe, unsigned devid)
{
    char be[128];
    be_path(be, sizeof(be), type, fe, devid);
    return rec_find(be);
}

static bool freed(const char *type, unsigned fe, unsigned devid)
{
    struct rec *r = rec_of(type, fe, devid);
    return r && r->freed == 1 && !r->dev;
}

/* ---- suite ------------------------------------------------------------- */

/* The toolstack adds a vbd of the guest and its frontend connects. */
static void vbd_connected(const char *be, unsigned id)
{
    ts_add("vbd", guest, id);
    WAIT_FOR(is(be, "state", "2"));
    fe_publish(guest, id);
    WAIT_TRUE(is(be, "state", "4"));
}

/* The frontend starts over (kexec, resume) and connects again. */
static void fe_reconnects(const char *be, unsigned id)
{
    fe_state(guest, id, "1");
    WAIT_TRUE(is(be, "state", "2"));
    fe_publish(guest, id);
    WAIT_TRUE(is(be, "state", "4"));
}

static int xenbus_suite_init(void)
{
    log_init("test-xenbus", getenv("NETBUS_TEST_VERBOSE") ? LOG_LVL_DEBUG
                                                          : LOG_LVL_ERROR,
             false);
    if (sim_host_start(&host, "xenbus") < 0)
        return -1;
    int g = sim_create(&host, "guest1");
    if (g < 0)
        return -1;
    guest = (unsigned)g;
    char err[256];
    bus_cfg = sim_config(&host, 0);
    bus_xs = xenif_xs_open(&bus_cfg, err, sizeof(err));
    ts = xenif_xs_open(&bus_cfg, err, sizeof(err));
    loop = evloop_new();
    if (!bus_xs || !ts || !loop)
        return -1;
    bus = xenbus_new(loop, bus_xs, &bus_cfg);
    if (!bus || xenbus_register(bus, &fake_vbd) < 0 ||
        xenbus_register(bus, &fake_qdisk) < 0)
        return -1;
    return 0;
}

static int xenbus_suite_cleanup(void)
{
    xenbus_free(bus);
    evloop_free(loop);
    xenif_xs_close(bus_xs);
    xenif_xs_close(ts);
    sim_host_stop(&host);
    return 0;
}

/* Create -> InitWait -> Connected -> Closing -> Closed -> reconnect ->
 * online=0 (as libxl removes a device) -> freed. */
static void test_lifecycle(void)
{
    const unsigned id = 51712;
    char be[128];
    be_path(be, sizeof(be), "vbd", guest, id);
    unsigned before = xenbus_device_count(bus);
    ts_add("vbd", guest, id);
    WAIT_TRUE(is(be, "state", "2"));
    CU_ASSERT_TRUE(is(be, "hotplug-status", "connected"));
    CU_ASSERT_TRUE(is(be, "feature-fake", "1"));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before + 1);
    struct rec *r = rec_of("vbd", guest, id);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(r->init, 1);
    CU_ASSERT_EQUAL(r->connect, 0);

    fe_publish(guest, id);
    WAIT_TRUE(is(be, "state", "4"));
    CU_ASSERT_EQUAL(r->connect, 1);
    CU_ASSERT_TRUE(r->connected);

    fe_state(guest, id, "4"); /* frontend Connected: nothing changes */
    fe_state(guest, id, "5");
    WAIT_TRUE(is(be, "state", "5"));
    CU_ASSERT_EQUAL(r->disconnect, 1);
    CU_ASSERT_FALSE(r->connected);
    fe_state(guest, id, "6");
    WAIT_TRUE(is(be, "state", "6"));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before + 1); /* still online */

    /* Guest kexec/resume: the frontend starts over. */
    fe_reconnects(be, id);
    CU_ASSERT_EQUAL(r->connect, 2);
    CU_ASSERT_EQUAL(r->init, 1);

    /* libxl's remove: online=0 and state=Closing in one go. */
    xenif_txn t = xenif_xs_transaction_start(ts);
    char p[256];
    snprintf(p, sizeof(p), "%s/online", be);
    xenif_xs_write(ts, t, p, "0", 1);
    snprintf(p, sizeof(p), "%s/state", be);
    xenif_xs_write(ts, t, p, "5", 1);
    CU_ASSERT_EQUAL(xenif_xs_transaction_end(ts, t, false), 0);
    /* The frontend is connected: the bus waits for it to close. */
    for (int i = 0; i < 20; i++)
        evloop_run_once(loop, 5);
    CU_ASSERT_TRUE(r->connected);
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before + 1);
    fe_state(guest, id, "5");
    fe_state(guest, id, "6");
    WAIT_TRUE(freed("vbd", guest, id));
    CU_ASSERT_TRUE(is(be, "state", "6"));
    CU_ASSERT_EQUAL(r->disconnect, 2);
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
    xenif_xs_rm(ts, 0, be); /* what libxl does next */
}

/* The frontend closed first (backend Closed), then libxl's remove writes
 * online=0 and state=Closing over it: the backend must answer Closed again,
 * libxl waits for it. */
static void test_remove_after_frontend_closed(void)
{
    const unsigned id = 51808;
    char be[128];
    be_path(be, sizeof(be), "vbd", guest, id);
    unsigned before = xenbus_device_count(bus);
    vbd_connected(be, id);
    fe_state(guest, id, "5");
    fe_state(guest, id, "6");
    WAIT_FOR(is(be, "state", "6"));
    xenif_txn t = xenif_xs_transaction_start(ts);
    char p[256];
    snprintf(p, sizeof(p), "%s/online", be);
    xenif_xs_write(ts, t, p, "0", 1);
    snprintf(p, sizeof(p), "%s/state", be);
    xenif_xs_write(ts, t, p, "5", 1);
    CU_ASSERT_EQUAL(xenif_xs_transaction_end(ts, t, false), 0);
    WAIT_FOR(freed("vbd", guest, id) && is(be, "state", "6"));
    CU_ASSERT_TRUE(freed("vbd", guest, id));
    CU_ASSERT_TRUE(is(be, "state", "6"));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
    xenif_xs_rm(ts, 0, be);
}

/* xl's disks carry script=: libxl runs the hotplug script after it sees
 * InitWait and fails the attach on any other state, so the bus leaves
 * hotplug-status to the script and connects only once it reported. */
static void test_hotplug_script(void)
{
    const unsigned id = 51824;
    char be[128], hs[160];
    be_path(be, sizeof(be), "vbd", guest, id);
    snprintf(hs, sizeof(hs), "%s/hotplug-status", be);
    put(be, "script", "/etc/xen/scripts/netbus-block");
    ts_add("vbd", guest, id);
    WAIT_TRUE(is(be, "state", "2"));
    CU_ASSERT_FALSE(exists(hs));
    fe_publish(guest, id);
    for (int i = 0; i < 20; i++)
        evloop_run_once(loop, 5);
    CU_ASSERT_TRUE(is(be, "state", "2"));
    CU_ASSERT_FALSE(rec_of("vbd", guest, id)->connected);
    put(be, "hotplug-status", "connected"); /* what netbus-block writes */
    WAIT_TRUE(is(be, "state", "4"));
    CU_ASSERT_TRUE(rec_of("vbd", guest, id)->connected);
    xenif_xs_rm(ts, 0, be);
    WAIT_TRUE(freed("vbd", guest, id));
}

/* online=0 before the frontend connected: Closed and gone at once. */
static void test_offline_unconnected(void)
{
    const unsigned id = 51728;
    char be[128];
    be_path(be, sizeof(be), "vbd", guest, id);
    unsigned before = xenbus_device_count(bus);
    ts_add("vbd", guest, id);
    WAIT_FOR(is(be, "state", "2"));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before + 1);
    put(be, "online", "0");
    WAIT_TRUE(freed("vbd", guest, id));
    CU_ASSERT_TRUE(is(be, "state", "6"));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
    xenif_xs_rm(ts, 0, be);
}

/* The toolstack removes the backend directory under a connected device. */
static void test_backend_removed(void)
{
    const unsigned id = 51744;
    char be[128];
    be_path(be, sizeof(be), "vbd", guest, id);
    unsigned before = xenbus_device_count(bus);
    vbd_connected(be, id);
    /* The class reports an error while being torn down: only recorded. */
    error_in_disconnect_devid = id;
    CU_ASSERT_EQUAL(xenif_xs_rm(ts, 0, be), 0);
    WAIT_FOR(freed("vbd", guest, id));
    error_in_disconnect_devid = ~0u;
    CU_ASSERT_TRUE(freed("vbd", guest, id));
    CU_ASSERT_EQUAL(rec_of("vbd", guest, id)->disconnect, 1);
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
    /* No state write brought the directory back. */
    for (int i = 0; i < 10; i++)
        evloop_run_once(loop, 5);
    CU_ASSERT_FALSE(exists(be));
}

/* The frontend directory disappears (state reads as Unknown). */
static void test_frontend_removed(void)
{
    const unsigned id = 51760;
    char be[128], fp[128];
    be_path(be, sizeof(be), "vbd", guest, id);
    fe_path(fp, sizeof(fp), guest, id);
    unsigned before = xenbus_device_count(bus);
    vbd_connected(be, id);
    CU_ASSERT_EQUAL(xenif_xs_rm(ts, 0, fp), 0);
    WAIT_TRUE(freed("vbd", guest, id));
    CU_ASSERT_TRUE(is(be, "state", "6"));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
    xenif_xs_rm(ts, 0, be);
}

/* The frontend's domain is destroyed: @releaseDomain frees its devices,
 * the other domain's devices stay. */
static void test_domain_death(void)
{
    int g = sim_create(&host, "doomed");
    CU_ASSERT_TRUE_FATAL(g > 0);
    unsigned dom = (unsigned)g;
    char be1[128], be2[128], other[128];
    be_path(be1, sizeof(be1), "vbd", dom, 51712);
    be_path(be2, sizeof(be2), "qdisk", dom, 51728);
    be_path(other, sizeof(other), "vbd", guest, 768);
    unsigned before = xenbus_device_count(bus);
    ts_add("vbd", dom, 51712);
    ts_add("qdisk", dom, 51728);
    ts_add("vbd", guest, 768);
    WAIT_FOR(is(be1, "state", "2") && is(be2, "state", "2") &&
             is(other, "state", "2"));
    fe_publish(dom, 51712);
    WAIT_TRUE(is(be1, "state", "4"));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before + 3);
    /* Suspend fires @releaseDomain too, but the domain is still there. */
    int admin = sim_admin(&host);
    CU_ASSERT_TRUE_FATAL(admin >= 0);
    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_SUSPEND, dom), 0);
    for (int i = 0; i < 20; i++)
        evloop_run_once(loop, 5);
    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_RESUME, dom), 0);
    close(admin);
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before + 3);
    CU_ASSERT_TRUE(rec_of("vbd", dom, 51712)->connected);
    CU_ASSERT_EQUAL(sim_destroy(&host, dom), 0);
    WAIT_FOR(freed("vbd", dom, 51712) && freed("qdisk", dom, 51728));
    CU_ASSERT_TRUE(freed("vbd", dom, 51712));
    CU_ASSERT_TRUE(freed("qdisk", dom, 51728));
    CU_ASSERT_EQUAL(rec_of("vbd", dom, 51712)->disconnect, 1);
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before + 1);
    CU_ASSERT_TRUE(is(other, "state", "2"));
    put(other, "online", "0");
    WAIT_FOR(freed("vbd", guest, 768));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
    xenif_xs_rm(ts, 0, be1);
    xenif_xs_rm(ts, 0, be2);
    xenif_xs_rm(ts, 0, other);
}

/* A failing init: error node, hotplug-status=error, Closing; a second
 * device at the same time is served normally. */
static void test_init_failure(void)
{
    char bad[128], good[128];
    be_path(bad, sizeof(bad), "vbd", guest, 1000);
    be_path(good, sizeof(good), "vbd", guest, 1001);
    unsigned before = xenbus_device_count(bus);
    fail_init_devid = 1000;
    ts_add("vbd", guest, 1000);
    ts_add("vbd", guest, 1001);
    WAIT_FOR(is(bad, "state", "5") && is(good, "state", "2"));
    fail_init_devid = ~0u;
    CU_ASSERT_TRUE(is(bad, "state", "5"));
    CU_ASSERT_TRUE(is(bad, "hotplug-status", "error"));
    CU_ASSERT_TRUE(is(bad, "hotplug-error", "fake init failure"));
    char err[192];
    snprintf(err, sizeof(err), "/local/domain/0/error/backend/vbd/%u/1000",
             guest);
    CU_ASSERT_TRUE(is(err, "error", "fake init failure"));
    CU_ASSERT_TRUE(is(good, "state", "2"));
    CU_ASSERT_TRUE(is(good, "hotplug-status", "connected"));

    /* The frontend connects both: only the good one connects. */
    fe_publish(guest, 1000);
    fe_publish(guest, 1001);
    WAIT_TRUE(is(good, "state", "4"));
    CU_ASSERT_TRUE(is(bad, "state", "5"));
    CU_ASSERT_EQUAL(rec_of("vbd", guest, 1000)->connect, 0);
    /* The frontend gives up on the bad one; a restart does not revive a
     * device whose init failed. */
    fe_state(guest, 1000, "6");
    WAIT_TRUE(is(bad, "state", "6"));
    fe_state(guest, 1000, "1");
    for (int i = 0; i < 20; i++)
        evloop_run_once(loop, 5);
    CU_ASSERT_TRUE(is(bad, "state", "6"));
    CU_ASSERT_EQUAL(rec_of("vbd", guest, 1000)->init, 1);
    /* The toolstack removes it. */
    put(bad, "online", "0");
    WAIT_TRUE(freed("vbd", guest, 1000));
    CU_ASSERT_TRUE(is(good, "state", "4"));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before + 1);
    xenif_xs_rm(ts, 0, bad);
    xenif_xs_rm(ts, 0, good); /* takes the good one away too */
    WAIT_FOR(freed("vbd", guest, 1001));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
}

/* xenbus_device_error from outside any bus callback (ring processing):
 * the device closes from the loop; a failing connect closes it at once;
 * both recover when the frontend starts over. */
static void test_device_error(void)
{
    char be[128], be2[128], err[192];
    be_path(be, sizeof(be), "vbd", guest, 1002);
    be_path(be2, sizeof(be2), "vbd", guest, 1003);
    unsigned before = xenbus_device_count(bus);
    vbd_connected(be, 1002);
    struct rec *r = rec_of("vbd", guest, 1002);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->dev);
    xenbus_device_error(r->dev, "bad request %d on the ring", 7);
    xenbus_device_error(r->dev, "and another"); /* closes once */
    CU_ASSERT_TRUE(r->connected); /* deferred */
    WAIT_TRUE(is(be, "state", "5"));
    CU_ASSERT_FALSE(r->connected);
    CU_ASSERT_EQUAL(r->disconnect, 1);
    snprintf(err, sizeof(err), "/local/domain/0/error/backend/vbd/%u/1002",
             guest);
    CU_ASSERT_TRUE(is(err, "error", "and another"));
    fe_state(guest, 1002, "6");
    WAIT_FOR(is(be, "state", "6"));
    fe_reconnects(be, 1002);
    CU_ASSERT_EQUAL(r->connect, 2);

    /* connect() fails. */
    fail_connect_devid = 1003;
    ts_add("vbd", guest, 1003);
    WAIT_FOR(is(be2, "state", "2"));
    fe_publish(guest, 1003);
    WAIT_TRUE(is(be2, "state", "5"));
    CU_ASSERT_TRUE(is(be2, "hotplug-status", "connected"));
    fail_connect_devid = ~0u;
    fe_state(guest, 1003, "6");
    WAIT_FOR(is(be2, "state", "6"));
    fe_reconnects(be2, 1003);
    CU_ASSERT_TRUE(is(be, "state", "4"));

    xenif_xs_rm(ts, 0, be);
    xenif_xs_rm(ts, 0, be2);
    WAIT_FOR(freed("vbd", guest, 1002) && freed("vbd", guest, 1003));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
}

/* Whatever a guest or broken toolstack writes, the bus fails that device
 * and carries on. */
static void test_garbage(void)
{
    char be[128], err[192];
    unsigned before = xenbus_device_count(bus);
    static const char *const bad_fe_states[] = {
        "banana", "99999999999999999999999", "4294967300", "-1", "", "4x",
        "9",
    };
    unsigned id = 1100;
    for (size_t i = 0; i < sizeof(bad_fe_states) / sizeof(*bad_fe_states);
         i++, id++) {
        be_path(be, sizeof(be), "vbd", guest, id);
        vbd_connected(be, id);
        fe_state(guest, id, bad_fe_states[i]);
        WAIT_TRUE(is(be, "state", "5"));
        snprintf(err, sizeof(err), "/local/domain/0/error/backend/vbd/%u/%u",
                 guest, id);
        char *msg = get(err, "error");
        CU_ASSERT_PTR_NOT_NULL(msg);
        CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, "frontend state") : NULL);
        free(msg);
        CU_ASSERT_FALSE(rec_of("vbd", guest, id)->connected);
    }

    /* Toolstack-side garbage: the class never sees these. */
    char fp[128], other[128];
    id = 1200;
    fe_path(fp, sizeof(fp), guest, id);
    ts_add_raw("vbd", guest, id, fp, "7", "1");          /* wrong frontend-id */
    ts_add_raw("vbd", guest, id + 1, "/local/domain/0/backend/vbd", NULL,
               "1");                                     /* missing frontend-id */
    snprintf(other, sizeof(other), "%u", guest);
    ts_add_raw("vbd", guest, id + 2, "/local/domain/0/backend/vbd", other,
               "1");                                     /* not a frontend */
    ts_add_raw("vbd", guest, id + 3, NULL, other, "1");  /* no frontend */
    snprintf(fp, sizeof(fp), "/local/domain/%u/device/vbd/../../../0", guest);
    ts_add_raw("vbd", guest, id + 4, fp, other, "1");    /* escapes */
    fe_path(fp, sizeof(fp), guest, id + 5);
    ts_add_raw("vbd", guest, id + 5, fp, other, "zzz");  /* state */
    snprintf(fp, sizeof(fp), "/local/domain/%u/device/vbd/nothere", guest);
    ts_add_raw("vbd", guest, id + 6, fp, other, "1");    /* no such frontend */
    for (unsigned k = 0; k < 7; k++) {
        be_path(be, sizeof(be), "vbd", guest, id + k);
        WAIT_TRUE(is(be, "hotplug-status", "error"));
        CU_ASSERT_TRUE(is(be, "state", "6"));
        CU_ASSERT_PTR_NULL(rec_of("vbd", guest, id + k));
        snprintf(err, sizeof(err), "/local/domain/0/error/backend/vbd/%u/%u",
                 guest, id + k);
        CU_ASSERT_TRUE(exists(err));
    }
    /* Entries that are not devices at all, and online garbage. */
    put("/local/domain/0/backend/vbd/abc", "1/online", "1");
    put("/local/domain/0/backend/vbd/99999999999", "1/state", "1");
    be_path(be, sizeof(be), "vbd", guest, 1300);
    fe_path(fp, sizeof(fp), guest, 1300);
    put(fp, "state", "1");
    put(be, "frontend", fp);
    put(be, "frontend-id", other);
    put(be, "state", "1");
    put(be, "online", "yes");
    for (int i = 0; i < 20; i++)
        evloop_run_once(loop, 5);
    CU_ASSERT_PTR_NULL(rec_of("vbd", guest, 1300));
    CU_ASSERT_TRUE(is(be, "state", "1"));
    /* Once online=1 appears, it is a device. */
    put(be, "online", "1");
    WAIT_TRUE(is(be, "state", "2"));

    /* The toolstack cleans up; everything goes away. */
    xenif_xs_rm(ts, 0, "/local/domain/0/backend/vbd/abc");
    xenif_xs_rm(ts, 0, "/local/domain/0/backend/vbd/99999999999");
    char dir[64];
    snprintf(dir, sizeof(dir), "/local/domain/0/backend/vbd/%u", guest);
    CU_ASSERT_EQUAL(xenif_xs_rm(ts, 0, dir), 0);
    WAIT_FOR(xenbus_device_count(bus) == before &&
             freed("vbd", guest, 1300));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
}

/* Devices of two classes side by side. */
static void test_two_classes(void)
{
    char a[128], b[128];
    be_path(a, sizeof(a), "vbd", guest, 2000);
    be_path(b, sizeof(b), "qdisk", guest, 2001);
    unsigned before = xenbus_device_count(bus);
    ts_add("vbd", guest, 2000);
    ts_add("qdisk", guest, 2001);
    WAIT_FOR(is(a, "state", "2") && is(b, "state", "2"));
    CU_ASSERT_TRUE(is(a, "state", "2"));
    CU_ASSERT_TRUE(is(b, "state", "2"));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before + 2);
    struct rec *rb = rec_of("qdisk", guest, 2001);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rb);
    CU_ASSERT_STRING_EQUAL(xenbus_type(rb->dev), "qdisk");
    CU_ASSERT_EQUAL(xenbus_frontend_id(rb->dev), guest);
    CU_ASSERT_EQUAL(xenbus_devid(rb->dev), 2001);
    char fp[128];
    fe_path(fp, sizeof(fp), guest, 2001);
    CU_ASSERT_STRING_EQUAL(xenbus_frontend_path(rb->dev), fp);
    CU_ASSERT_PTR_EQUAL(xenbus_loop(rb->dev), loop);
    fe_publish(guest, 2001);
    WAIT_TRUE(is(b, "state", "4"));
    CU_ASSERT_TRUE(is(a, "state", "2"));
    /* Registering a type twice is refused. */
    CU_ASSERT_EQUAL(xenbus_register(bus, &fake_vbd), -1);
    put(a, "online", "0");
    xenif_xs_rm(ts, 0, b);
    WAIT_FOR(freed("vbd", guest, 2000) && freed("qdisk", guest, 2001));
    CU_ASSERT_EQUAL(xenbus_device_count(bus), before);
    xenif_xs_rm(ts, 0, a);
}

/* A bus started under existing devices picks them up; one connected under
 * an earlier daemon reconnects. xenbus_free (netbusd stopping) leaves the
 * states as they are, so the guests see nothing and the next netbusd adopts
 * the devices again. */
static void test_existing_at_startup(void)
{
    char a[128], b[128];
    be_path(a, sizeof(a), "late", guest, 3000);
    be_path(b, sizeof(b), "late", guest, 3001);
    ts_add("late", guest, 3000);
    ts_add("late", guest, 3001);
    put(b, "state", "4"); /* served by a netbusd that died */
    fe_publish(guest, 3001);
    fe_state(guest, 3001, "4");

    char errbuf[256];
    struct xenif_xs *xs2 = xenif_xs_open(&bus_cfg, errbuf, sizeof(errbuf));
    CU_ASSERT_PTR_NOT_NULL_FATAL(xs2);
    struct evloop *saved = loop;
    loop = evloop_new();
    struct xenbus *bus2 = xenbus_new(loop, xs2, &bus_cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bus2);
    CU_ASSERT_EQUAL(xenbus_register(bus2, &fake_late), 0);
    CU_ASSERT_EQUAL(xenbus_device_count(bus2), 2); /* at once */
    CU_ASSERT_TRUE(is(a, "state", "2"));
    WAIT_FOR(is(b, "state", "4") && rec_of("late", guest, 3001)->connected);
    CU_ASSERT_TRUE(is(b, "state", "4"));
    CU_ASSERT_EQUAL(rec_of("late", guest, 3001)->connect, 1);
    xenbus_free(bus2);
    CU_ASSERT_TRUE(is(a, "state", "2"));
    CU_ASSERT_TRUE(is(b, "state", "4"));
    CU_ASSERT_TRUE(freed("late", guest, 3000));
    CU_ASSERT_TRUE(freed("late", guest, 3001));
    evloop_free(loop);
    loop = saved;
    xenif_xs_close(xs2);
    xenif_xs_rm(ts, 0, "/local/domain/0/backend/late");
}

static const CU_TestInfo xenbus_tests[] = {
    { "lifecycle and reconnect", test_lifecycle },
    { "online=0 before connect", test_offline_unconnected },
    { "hotplug script reports before connect", test_hotplug_script },
    { "remove after the frontend closed", test_remove_after_frontend_closed },
    { "backend directory removed", test_backend_removed },
    { "frontend directory removed", test_frontend_removed },
    { "frontend domain destroyed", test_domain_death },
    { "init failure, other device unaffected", test_init_failure },
    { "deferred device error, connect failure", test_device_error },
    { "garbage from guest and toolstack", test_garbage },
    { "two classes", test_two_classes },
    { "existing devices at startup", test_existing_at_startup },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(xenbus, xenbus_suite_init, xenbus_suite_cleanup, xenbus_tests)
