/* A blkif ring between two processes on xensim, through xenif only: the
 * child is the frontend (domain N: grant share + alloc_unbound), the parent
 * the backend (dom0: grant map + bind_interdomain), using the standard
 * macros of xen/io/ring.h. Every response is checked against its request.
 * Prints round trips per second, pipelined and one at a time. */
#include "test_xensim.h"
#include "unit.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ring.h leaves the barriers to the includer. */
#define mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/xen.h>
#include <xen/io/blkif.h>

enum { PIPELINED = 10000, PINGPONG = 2000, TOTAL = PIPELINED + PINGPONG };

static struct sim_host host;
static unsigned fe_dom;

static int ring_init(void)
{
    if (sim_host_start(&host, "xensim-ring") < 0)
        return -1;
    int d = sim_create(&host, "ringfront");
    if (d < 0)
        return -1;
    fe_dom = (unsigned)d;
    return 0;
}

static int ring_cleanup(void)
{
    int status = sim_host_stop(&host);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* What the backend answers for a request: derived from all its fields. */
static int16_t expected_status(uint64_t id, blkif_sector_t sector, uint8_t op)
{
    return (int16_t)((id * 31 + sector * 7 + op) & 0x3fff);
}

static uint8_t op_for(uint64_t id)
{
    return id % 3 == 0 ? BLKIF_OP_WRITE : BLKIF_OP_READ;
}

/* Waits for an event on ec and acknowledges it (pending + unmask). */
static int wait_event(struct xenif_evtchn *ec, xenif_port port)
{
    for (;;) {
        int p = xenif_evtchn_pending(ec);
        if (p >= 0) {
            if ((xenif_port)p != port || xenif_evtchn_unmask(ec, port) < 0)
                return -1;
            return 0;
        }
        if (errno != EAGAIN)
            return -1;
        struct pollfd pfd = { .fd = xenif_evtchn_fd(ec), .events = POLLIN };
        if (poll(&pfd, 1, 5000) != 1)
            return -1;
    }
}

/* Frontend: shares the ring, sends TOTAL requests (first PIPELINED with as
 * many in flight as the ring holds, then one at a time), checks every
 * response. Exit status says what failed. */
static int frontend(int to_backend, int from_backend)
{
    char err[256];
    struct xenif_config cfg = sim_config(&host, fe_dom);
    struct xenif_gnt *g = xenif_gnt_open(&cfg, err, sizeof(err));
    struct xenif_evtchn *ec = xenif_evtchn_open(&cfg, err, sizeof(err));
    if (!g || !ec)
        return 10;
    xenif_gref ref;
    blkif_sring_t *sring = xenif_gnt_share(g, 0, 1, &ref, true);
    int port = xenif_evtchn_alloc_unbound(ec, 0);
    if (!sring || port < 0)
        return 11;
    SHARED_RING_INIT(sring);
    blkif_front_ring_t front;
    FRONT_RING_INIT(&front, sring, XENIF_PAGE_SIZE);
    uint32_t hello[2] = { ref, (uint32_t)port };
    if (write(to_backend, hello, sizeof(hello)) != sizeof(hello))
        return 12;
    char ok;
    if (read(from_backend, &ok, 1) != 1) /* backend mapped and bound */
        return 13;

    uint64_t sent = 0, answered = 0;
    while (answered < TOTAL) {
        unsigned limit = sent < PIPELINED ? RING_SIZE(&front) : 1;
        while (sent < TOTAL && sent - answered < limit &&
               !RING_FULL(&front)) {
            blkif_request_t *req = RING_GET_REQUEST(&front, front.req_prod_pvt);
            memset(req, 0, sizeof(*req));
            req->id = sent;
            req->operation = op_for(sent);
            req->sector_number = sent * 1000 + 17;
            front.req_prod_pvt++;
            sent++;
            if (sent == PIPELINED)
                break; /* drain before switching to ping-pong */
        }
        int notify;
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
        if (notify && xenif_evtchn_notify(ec, (xenif_port)port) < 0)
            return 14;
        int more;
        do {
            RING_IDX rp = front.sring->rsp_prod;
            rmb();
            for (RING_IDX i = front.rsp_cons; i != rp; i++) {
                blkif_response_t rsp = *RING_GET_RESPONSE(&front, i);
                uint64_t id = answered;
                /* In order, and derived from the request it answers. */
                if (rsp.id != id || rsp.operation != op_for(id) ||
                    rsp.status != expected_status(id, id * 1000 + 17, op_for(id)))
                    return 15;
                answered++;
            }
            front.rsp_cons = rp;
            RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
        } while (more);
        if (answered < sent && wait_event(ec, (xenif_port)port) < 0)
            return 16;
    }
    if (xenif_evtchn_unbind(ec, (xenif_port)port) < 0)
        return 17;
    /* The backend unmaps before answering the last byte. */
    if (read(from_backend, &ok, 1) != 1 || xenif_gnt_unshare(g, sring, 1) < 0)
        return 18;
    xenif_evtchn_close(ec);
    xenif_gnt_close(g);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_ring_between_processes(void)
{
    int down[2], up[2];
    CU_ASSERT_EQUAL_FATAL(pipe(down), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(up), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        _exit(frontend(up[1], down[0]));
    }
    close(up[1]);
    close(down[0]);

    char err[256];
    struct xenif_config cfg = sim_config(&host, 0);
    struct xenif_gnt *g = xenif_gnt_open(&cfg, err, sizeof(err));
    struct xenif_evtchn *ec = xenif_evtchn_open(&cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ec);
    uint32_t hello[2];
    CU_ASSERT_EQUAL_FATAL(read(up[0], hello, sizeof(hello)), (ssize_t)sizeof(hello));
    blkif_sring_t *sring = xenif_gnt_map(g, fe_dom, 1, &hello[0],
                                         XENIF_GNT_READ | XENIF_GNT_WRITE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sring);
    int port = xenif_evtchn_bind_interdomain(ec, fe_dom, hello[1]);
    CU_ASSERT_FATAL(port > 0);
    blkif_back_ring_t back;
    BACK_RING_INIT(&back, sring, XENIF_PAGE_SIZE);
    CU_ASSERT_EQUAL_FATAL(write(down[1], "k", 1), 1);

    double t0 = now_s(), t_pipe = 0;
    uint64_t served = 0;
    bool ok = true;
    while (ok && served < TOTAL) {
        int more;
        do {
            RING_IDX rp = back.sring->req_prod;
            rmb();
            /* A guest could write any index: never take more than a ring. */
            if (rp - back.req_cons > RING_SIZE(&back)) {
                ok = false;
                break;
            }
            for (; back.req_cons != rp; back.req_cons++) {
                blkif_request_t req = *RING_GET_REQUEST(&back, back.req_cons);
                blkif_response_t *rsp = RING_GET_RESPONSE(&back, back.rsp_prod_pvt);
                rsp->id = req.id;
                rsp->operation = req.operation;
                rsp->status = expected_status(req.id, req.sector_number,
                                              req.operation);
                back.rsp_prod_pvt++;
                if (++served == PIPELINED)
                    t_pipe = now_s() - t0;
            }
            int notify;
            RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&back, notify);
            if (notify && xenif_evtchn_notify(ec, (xenif_port)port) < 0)
                ok = false;
            RING_FINAL_CHECK_FOR_REQUESTS(&back, more);
        } while (ok && more);
        if (ok && served < TOTAL && wait_event(ec, (xenif_port)port) < 0)
            ok = false;
    }
    double total = now_s() - t0;
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(served, TOTAL);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(g, sring, 1), 0);
    CU_ASSERT_EQUAL(write(down[1], "k", 1), 1);
    int status;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    if (served == TOTAL && t_pipe > 0)
        printf("\n    ring: %d requests pipelined: %.0f round trips/s; %d one "
               "at a time: %.0f round trips/s\n    ", PIPELINED,
               PIPELINED / t_pipe, PINGPONG, PINGPONG / (total - t_pipe));
    close(up[0]);
    close(down[1]);
    xenif_evtchn_close(ec);
    xenif_gnt_close(g);
}

static CU_TestInfo ring_tests[] = {
    { "blkif ring between two processes", test_ring_between_processes },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(ring, ring_init, ring_cleanup, ring_tests)
