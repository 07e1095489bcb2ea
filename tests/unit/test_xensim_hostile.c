/* Hostile control messages: wrong sizes, passed fds, bad values, random
 * requests. Each may cost the sender its connection or get an error; the host
 * must keep serving everyone else. */
#include "test_xensim.h"
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sim_host host;
static unsigned guest;

static int hostile_init(void)
{
    if (sim_host_start(&host, "xensim-hostile") < 0)
        return -1;
    int d = sim_create(&host, "target");
    guest = (unsigned)d;
    return d > 0 ? 0 : -1;
}

static int hostile_cleanup(void)
{
    int status = sim_host_stop(&host);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int connect_as(unsigned domid)
{
    char err[256];
    return xensim_connect(host.dir, domid, false, err, sizeof(err));
}

static void assert_host_alive(void)
{
    int fd = sim_admin(&host);
    CU_ASSERT_FATAL(fd >= 0);
    struct xensim_dom_info info;
    CU_ASSERT_EQUAL(xensim_domain_info(fd, guest, &info), 0);
    CU_ASSERT_EQUAL(info.domid, guest);
    close(fd);
}

/* 1 if the host closed fd (read returns 0 or an error) within a second. */
static int closed_by_host(int fd)
{
    if (!sim_readable(fd, 1000))
        return 0;
    char buf[16];
    return recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0;
}

static void test_bad_sizes(void)
{
    static const size_t sizes[] = { 0, 1, 7, sizeof(struct xensim_req) - 1,
                                    sizeof(struct xensim_req) + 1, 4 * 4096 };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int fd = connect_as(guest);
        CU_ASSERT_FATAL(fd >= 0);
        char *buf = calloc(1, sizes[i] + 1);
        CU_ASSERT_EQUAL(send(fd, buf, sizes[i], 0), (ssize_t)sizes[i]);
        CU_ASSERT(closed_by_host(fd));
        free(buf);
        close(fd);
    }
    assert_host_alive();
}

static void test_fds_from_client(void)
{
    int fd = connect_as(0);
    CU_ASSERT_FATAL(fd >= 0);
    struct xensim_req req;
    xensim_req_init(&req, XENSIM_OP_DOMAIN_INFO);
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = { &req, sizeof(req) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    int passed = STDERR_FILENO;
    memcpy(CMSG_DATA(cm), &passed, sizeof(int));
    CU_ASSERT_EQUAL(sendmsg(fd, &msg, 0), (ssize_t)sizeof(req));
    CU_ASSERT(closed_by_host(fd));
    close(fd);
    assert_host_alive();
}

static int call(int fd, const struct xensim_req *req)
{
    struct xensim_rsp rsp;
    int fds[XENSIM_MAX_FDS];
    unsigned nfds;
    int rc = xensim_call(fd, req, &rsp, fds, &nfds);
    if (rc == 0)
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
    return rc < 0 ? errno : 0;
}

/* A request with one bad value, and the error the host must answer. */
struct bad_req {
    struct xensim_req req;
    int err;
};

static void expect_errors(int fd, const struct bad_req *bad, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(call(fd, &bad[i].req), bad[i].err);
}

#define EXPECT_ERRORS(fd, bad) expect_errors(fd, bad, sizeof(bad) / sizeof(bad[0]))

static void test_bad_values(void)
{
    int fd = connect_as(guest), adm = connect_as(0);
    CU_ASSERT_FATAL(fd >= 0 && adm >= 0);
    struct xensim_req req;

    static const struct bad_req ops_and_grants[] = {
        { { .op = 0 }, EINVAL },
        { { .op = XENSIM_OP_MAX }, EINVAL },
        { { .op = 0xffffffffu }, EINVAL },
        /* Grant pool: oversized batches, ids not ours, out of range. */
        { { .op = XENSIM_OP_GNT_ALLOC, .nframes = 1000 }, EINVAL },
        { { .op = XENSIM_OP_GNT_FREE, .nrefs = 1, .refs = { 12 } }, EINVAL },
        { { .op = XENSIM_OP_GNT_FREE, .nframes = 1, .frames = { 0xfffffff0u } },
          EINVAL },
        { { .op = XENSIM_OP_GNT_ATTACH, .domid = 0xffffffffu }, ESRCH },
    };
    EXPECT_ERRORS(fd, ops_and_grants);
    /* Memory exhaustion is an error, not a crash: a 16 MiB guest has 4096
     * pages. */
    unsigned got = 0;
    for (int i = 0; i < 100; i++) {
        xensim_req_init(&req, XENSIM_OP_GNT_ALLOC);
        req.nframes = XENSIM_BATCH;
        int e = call(fd, &req);
        if (e) {
            CU_ASSERT_EQUAL(e, ENOMEM);
            break;
        }
        got += XENSIM_BATCH;
    }
    CU_ASSERT_EQUAL(got, 16u * 256);

    static const struct bad_req evtchn[] = {
        { { .op = XENSIM_OP_EVTCHN_UNBIND, .port = 0xffffffffu }, EINVAL },
        { { .op = XENSIM_OP_EVTCHN_PEER, .port = 0 }, EINVAL },
        { { .op = XENSIM_OP_EVTCHN_BIND, .remote = 0x10000, .remote_port = 1 },
          ESRCH },
        { { .op = XENSIM_OP_EVTCHN_ALLOC_UNBOUND, .remote = 0xffffu }, EINVAL },
        { { .op = XENSIM_OP_EVTCHN_STATUS, .domid = 0, .port = 1 }, EPERM },
    };
    EXPECT_ERRORS(fd, evtchn);
    /* Port table exhaustion. */
    int e = 0;
    for (unsigned i = 0; i < XENSIM_EVTCHN_PORTS + 1 && !e; i++) {
        xensim_req_init(&req, XENSIM_OP_EVTCHN_ALLOC_UNBOUND);
        e = call(fd, &req);
    }
    CU_ASSERT_EQUAL(e, ENOSPC);

    /* Admin ops with nonsense. */
    xensim_req_init(&req, XENSIM_OP_DOMAIN_CREATE);
    memset(req.name, 'A', sizeof(req.name)); /* not NUL-terminated */
    CU_ASSERT_EQUAL(call(adm, &req), EINVAL);
    static const struct bad_req admin[] = {
        { { .op = XENSIM_OP_DOMAIN_CREATE, .name = "x",
            .memory_mib = 0xffffffffu }, EINVAL },
        { { .op = XENSIM_OP_DOMAIN_PAUSE, .domid = 0xffffffffu }, ESRCH },
        { { .op = XENSIM_OP_DOMAIN_INFO, .domid = 0xffffffffu }, ENOENT },
    };
    EXPECT_ERRORS(adm, admin);

    /* Hanging up mid-way frees what the connection held. */
    close(fd);
    close(adm);
    assert_host_alive();
    fd = connect_as(guest);
    CU_ASSERT_FATAL(fd >= 0);
    for (int i = 0; i < 200; i++) {
        xensim_req_init(&req, XENSIM_OP_GNT_ALLOC);
        req.nframes = XENSIM_BATCH;
        if ((e = call(fd, &req)) == 0)
            break;
        usleep(5000); /* the host may not have seen the hang-up yet */
    }
    CU_ASSERT_EQUAL(e, 0);
    close(fd);
}

/* Random well-sized requests from a guest connection (admin ops are refused
 * there, so the domains under test survive). */
static void test_random_requests(void)
{
    int fd = connect_as(guest);
    CU_ASSERT_FATAL(fd >= 0);
    srand(12345);
    unsigned answered = 0, reconnects = 0;
    for (int i = 0; i < 3000; i++) {
        struct xensim_req req;
        uint8_t *b = (uint8_t *)&req;
        for (size_t k = 0; k < sizeof(req); k++)
            b[k] = (uint8_t)rand();
        /* Mostly valid ops with random arguments, some random ops. */
        if (i % 4)
            req.op = 1 + (uint32_t)rand() % (XENSIM_OP_MAX - 1);
        if (i % 3 == 0) {
            req.nframes %= 3;
            req.nrefs %= 3;
            req.port %= 8;
            req.remote %= 4;
        }
        struct xensim_rsp rsp;
        int fds[XENSIM_MAX_FDS];
        unsigned nfds;
        if (xensim_call(fd, &req, &rsp, fds, &nfds) == 0) {
            for (unsigned k = 0; k < nfds; k++)
                close(fds[k]);
            answered++;
        } else if (errno == EPIPE) {
            close(fd);
            fd = connect_as(guest);
            CU_ASSERT_FATAL(fd >= 0);
            reconnects++;
        } else {
            answered++;
        }
    }
    CU_ASSERT_EQUAL(answered, 3000);
    CU_ASSERT_EQUAL(reconnects, 0); /* well-sized requests never cost it */
    close(fd);
    assert_host_alive();
}

/* Takes events from the handle until EAGAIN, unmasking each; a bounded
 * number of calls must do. Returns a bit per port seen (ports below 64). */
static uint64_t drain_events(struct xenif_evtchn *ec)
{
    uint64_t seen = 0;
    for (int i = 0; i < 16; i++) {
        int p = xenif_evtchn_pending(ec);
        if (p < 0) {
            CU_ASSERT_EQUAL(errno, EAGAIN);
            return seen;
        }
        if (p < 64)
            seen |= 1ull << p;
        CU_ASSERT_EQUAL(xenif_evtchn_unmask(ec, (xenif_port)p), 0);
    }
    CU_FAIL("pending() never ran out of events");
    return seen;
}

/* A guest holds, for a channel to dom0, the backend port's eventfd and word
 * (EVTCHN_PEER). Whatever it does with them (resize the memfd, write
 * garbage, mask, saturate or drain the eventfd), the backend's handle keeps
 * serving another guest's channel and the host keeps answering. */
static void test_hostile_port_words(void)
{
    char err[256];
    int evil = connect_as(guest);
    CU_ASSERT_FATAL(evil >= 0);
    struct xensim_req req;
    struct xensim_rsp rsp;
    int fds[XENSIM_MAX_FDS];
    unsigned nfds;
    xensim_req_init(&req, XENSIM_OP_EVTCHN_ALLOC_UNBOUND);
    CU_ASSERT_EQUAL_FATAL(xensim_call(evil, &req, &rsp, fds, &nfds), 0);
    CU_ASSERT_EQUAL_FATAL(nfds, 2);
    close(fds[0]);
    close(fds[1]);
    xenif_port evil_port = (xenif_port)rsp.port;

    int honest = sim_create(&host, "honest");
    CU_ASSERT_FATAL(honest > 0);
    struct xenif_config be_cfg = sim_config(&host, 0);
    struct xenif_config h_cfg = sim_config(&host, (unsigned)honest);
    struct xenif_evtchn *be = xenif_evtchn_open(&be_cfg, err, sizeof(err));
    struct xenif_evtchn *hec = xenif_evtchn_open(&h_cfg, err, sizeof(err));
    CU_ASSERT_FATAL(be && hec);
    int to_evil = xenif_evtchn_bind_interdomain(be, guest, evil_port);
    int h_port = xenif_evtchn_alloc_unbound(hec, 0);
    CU_ASSERT_FATAL(to_evil > 0 && to_evil < 64 && h_port > 0);
    int to_honest = xenif_evtchn_bind_interdomain(be, (unsigned)honest,
                                                  (xenif_port)h_port);
    CU_ASSERT_FATAL(to_honest > 0 && to_honest < 64);

    xensim_req_init(&req, XENSIM_OP_EVTCHN_PEER);
    req.port = evil_port;
    CU_ASSERT_EQUAL_FATAL(xensim_call(evil, &req, &rsp, fds, &nfds), 0);
    CU_ASSERT_EQUAL_FATAL(nfds, 2);
    int be_efd = fds[0], be_word_fd = fds[1];
    /* Shrinking the word would fault the backend; growing it is no use. */
    CU_ASSERT_EQUAL(ftruncate(be_word_fd, 0), -1);
    CU_ASSERT_EQUAL(errno, EPERM);
    CU_ASSERT_EQUAL(ftruncate(be_word_fd, 2 * XENSIM_PROTO_PAGE), -1);
    uint32_t *be_word = mmap(NULL, XENSIM_PROTO_PAGE, PROT_READ | PROT_WRITE,
                             MAP_SHARED, be_word_fd, 0);
    CU_ASSERT_FATAL(be_word != MAP_FAILED);
    uint64_t v = 0xfffffffffffffffeull;
    CU_ASSERT_EQUAL(write(be_efd, &v, sizeof(v)), (ssize_t)sizeof(v));

    uint64_t honest_bit = 1ull << to_honest, evil_bit = 1ull << to_evil;
    const uint32_t garbage[] = { 0xffffffffu, XENSIM_EVTCHN_MASKED,
                                 XENSIM_EVTCHN_PENDING, 0xfffffffcu, 0 };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        *be_word = garbage[i];
        CU_ASSERT_EQUAL(xenif_evtchn_notify(hec, (xenif_port)h_port), 0);
        CU_ASSERT(sim_readable(xenif_evtchn_fd(be), 1000));
        uint64_t seen = drain_events(be);
        CU_ASSERT(seen & honest_bit);
        CU_ASSERT_EQUAL(seen & ~(honest_bit | evil_bit), 0);
        /* And the answer reaches the honest guest. */
        CU_ASSERT_EQUAL(xenif_evtchn_notify(be, (xenif_port)to_honest), 0);
        CU_ASSERT(sim_readable(xenif_evtchn_fd(hec), 1000));
        CU_ASSERT_EQUAL(xenif_evtchn_pending(hec), h_port);
        CU_ASSERT_EQUAL(xenif_evtchn_unmask(hec, (xenif_port)h_port), 0);
        /* Stealing the backend's wake-up for its own port only. */
        CU_ASSERT_EQUAL(read(be_efd, &v, sizeof(v)) == (ssize_t)sizeof(v) ||
                        errno == EAGAIN, 1);
    }

    munmap(be_word, XENSIM_PROTO_PAGE);
    close(be_word_fd);
    close(be_efd);
    xenif_evtchn_close(be);
    xenif_evtchn_close(hec);
    close(evil);
    CU_ASSERT_EQUAL(sim_destroy(&host, (unsigned)honest), 0);
    assert_host_alive();
}

static CU_TestInfo hostile_tests[] = {
    { "wrong message sizes close the connection", test_bad_sizes },
    { "fds sent by a client close the connection", test_fds_from_client },
    { "bad values get errors", test_bad_values },
    { "random requests", test_random_requests },
    { "a peer writing port words hurts only its channel",
      test_hostile_port_words },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(xensim_hostile, hostile_init, hostile_cleanup, hostile_tests)
