/* Sessions of one export owned by guests (export.c claim()): a guest that
 * migrated opens a new session that supersedes its old one (which then
 * takes no I/O, and serves again if the new one closes first: a cancelled
 * migration), another guest is refused while a writer holds the export,
 * read-only guests share it, and an owner that is not a guest UUID (identity
 * unknown) is not compared. Through the in-process target (local.c), on a
 * simulated host's xenstore. */
#include "unit.h"
#include "test_xensim.h"

#include "backend/channel/export.h"
#include "backend/channel/local.h"
#include "backend/vbd/target.h"
#include "evloop.h"
#include "timer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GUEST1 "11111111-2222-3333-4444-555555555555"
#define GUEST2 "99999999-8888-7777-6666-555555555555"
#define GUEST3 "abcdefab-cdef-abcd-efab-cdefabcdefab"

static struct sim_host host;
static struct evloop *loop;
static struct xenif_xs *xs;
static struct nb_exports *reg;
static struct nb_export *ex;

static bool export_ready(void)
{
    char *st = xenif_xs_read(xs, 0, "/local/domain/0/netbus/exports/hd/state",
                             NULL);
    bool ok = st && strcmp(st, "ready") == 0;
    free(st);
    return ok;
}

static int init(void)
{
    char err[512] = "", img[600];
    if (sim_host_start(&host, "handover") < 0)
        return -1;
    struct xenif_config cfg = sim_config(&host, 0);
    loop = evloop_new();
    xs = loop ? xenif_xs_open(&cfg, err, sizeof(err)) : NULL;
    reg = xs ? nb_exports_new(loop, &cfg, "hostA", err, sizeof(err)) : NULL;
    snprintf(img, sizeof(img), "%s/hd.img", host.dir);
    int fd = open(img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (!reg || fd < 0 || ftruncate(fd, 1 << 20) < 0) {
        fprintf(stderr, "handover: set-up: %s\n", err[0] ? err : strerror(errno));
        return -1;
    }
    close(fd);
    const char *keys[][2] = { { "params", img }, { "kind", "vbd" },
                              { "readonly", "0" }, { "allowed-peers", "" },
                              { "state", "requested" } };
    for (unsigned i = 0; i < 5; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/local/domain/0/netbus/exports/hd/%s",
                 keys[i][0]);
        if (xenif_xs_write(xs, 0, path, keys[i][1], strlen(keys[i][1])) < 0)
            return -1;
    }
    for (uint64_t end = mono_ms() + 3000; !export_ready() && mono_ms() < end;)
        evloop_run_once(loop, 10);
    ex = nb_exports_find(reg, "hd");
    return ex && export_ready() ? 0 : -1;
}

static int cleanup(void)
{
    nb_exports_free(reg);
    if (xs)
        xenif_xs_close(xs);
    evloop_free(loop);
    return sim_host_stop(&host) == 0 ? 0 : -1;
}

static struct vbd_target *open_as(const char *owner, bool ro, char *err)
{
    return nb_local_open(ex, "hostA", owner, ro, "test", err, 256);
}

struct one_io {
    struct vbd_target_io io;
    bool done;
    int err;
};

static void one_done(struct vbd_target_io *io, int err)
{
    struct one_io *o = (struct one_io *)io;
    o->done = true;
    o->err = err;
}

/* A 4 KiB read through t: 0, or the -errno it failed with. */
static int read_4k(struct vbd_target *t)
{
    static char buf[4096] __attribute__((aligned(4096)));
    struct iovec iov = { buf, sizeof(buf) };
    struct one_io o = { .io = { .kind = VBD_IO_READ, .offset = 0,
                                .len = sizeof(buf), .iov = &iov, .iovcnt = 1,
                                .done = one_done } };
    int rc = t->ops->submit(t, &o.io);
    if (rc < 0)
        return rc;
    t->ops->kick(t);
    for (uint64_t end = mono_ms() + 3000; !o.done && mono_ms() < end;)
        evloop_run_once(loop, 10);
    return o.done ? o.err : -ETIMEDOUT;
}

static void test_handover_and_refusal(void)
{
    char err[256];
    struct vbd_target *a = open_as(GUEST1, false, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(read_4k(a), 0);

    /* Another guest may not write, nor read while a writer holds it. */
    CU_ASSERT_PTR_NULL(open_as(GUEST2, false, err));
    CU_ASSERT(strstr(err, "in use by another guest") != NULL);
    CU_ASSERT_PTR_NULL(open_as(GUEST2, true, err));

    /* The same guest from its new host: the old session takes no I/O. */
    struct vbd_target *b = open_as(GUEST1, false, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(read_4k(b), 0);
    CU_ASSERT_EQUAL(read_4k(a), -ESTALE);

    /* The move was cancelled: the new session closes first, the old one
     * serves again. */
    b->ops->close(b);
    CU_ASSERT_EQUAL(read_4k(a), 0);

    /* The move completes: the old session closes, the new one stays. */
    b = open_as(GUEST1, false, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    a->ops->close(a);
    CU_ASSERT_EQUAL(read_4k(b), 0);
    b->ops->close(b);

    /* Free again: another guest may have it. */
    struct vbd_target *c = open_as(GUEST2, false, err);
    CU_ASSERT_PTR_NOT_NULL(c);
    if (c)
        c->ops->close(c);
}

static void test_readers_share(void)
{
    char err[256];
    struct vbd_target *a = open_as(GUEST1, true, err);
    struct vbd_target *b = open_as(GUEST2, true, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(read_4k(a), 0);
    CU_ASSERT_EQUAL(read_4k(b), 0);
    /* ... but no writer joins them. */
    struct vbd_target *w = open_as(GUEST3, false, err);
    CU_ASSERT_PTR_NULL(w);
    if (w)
        w->ops->close(w);
    a->ops->close(a);
    b->ops->close(b);
}

static void test_unknown_identity(void)
{
    char err[256];
    /* Owners that are not UUIDs (a driver domain that cannot read the
     * guest's vm path): nothing is compared, as before handover existed. */
    struct vbd_target *a = open_as("hostA /local/domain/0/backend/vbd/1/51712",
                                   false, err);
    struct vbd_target *b = open_as("hostB /local/domain/0/backend/vbd/2/51712",
                                   false, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(read_4k(a), 0);
    CU_ASSERT_EQUAL(read_4k(b), 0);
    a->ops->close(a);
    b->ops->close(b);
}

static CU_TestInfo handover_tests[] = {
    { "a migrated guest's session is handed over; another guest refused",
      test_handover_and_refusal },
    { "read-only guests share an export", test_readers_share },
    { "owners of unknown identity are not compared", test_unknown_identity },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(channel_handover, init, cleanup, handover_tests)
