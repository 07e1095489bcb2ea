/* xensim event channels through xenif: binding rules as Xen's, notify,
 * pending/mask/unmask, unbind and close making the peer unbound. */
#include "test_xensim.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sim_host host;
static unsigned fe_dom;
static struct xenif_evtchn *fe, *be;

static struct xenif_evtchn *open_as(unsigned domid)
{
    char err[256];
    struct xenif_config cfg = sim_config(&host, domid);
    return xenif_evtchn_open(&cfg, err, sizeof(err));
}

static int evtchn_init(void)
{
    if (sim_host_start(&host, "xensim-evtchn") < 0)
        return -1;
    int d = sim_create(&host, "fe");
    if (d < 0)
        return -1;
    fe_dom = (unsigned)d;
    fe = open_as(fe_dom);
    be = open_as(0);
    return fe && be ? 0 : -1;
}

static int evtchn_cleanup(void)
{
    xenif_evtchn_close(fe);
    xenif_evtchn_close(be);
    int status = sim_host_stop(&host);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void assert_port(unsigned domid, xenif_port port, unsigned state,
                        unsigned remote, unsigned remote_port)
{
    struct xensim_rsp st;
    CU_ASSERT_EQUAL_FATAL(sim_port_status(&host, domid, port, &st), 0);
    CU_ASSERT_EQUAL(st.state, state);
    CU_ASSERT_EQUAL(st.remote, remote);
    if (state == XENSIM_PORT_INTERDOMAIN)
        CU_ASSERT_EQUAL(st.remote_port, remote_port);
}

static void test_bind_rules(void)
{
    int fport = xenif_evtchn_alloc_unbound(fe, 0);
    CU_ASSERT_FATAL(fport > 0);
    assert_port(fe_dom, (xenif_port)fport, XENSIM_PORT_UNBOUND, 0, 0);

    /* Reserved for another domain: dom0 may not bind it. */
    int other = xenif_evtchn_alloc_unbound(fe, 77);
    CU_ASSERT_FATAL(other > 0);
    CU_ASSERT_EQUAL(xenif_evtchn_bind_interdomain(be, fe_dom, (xenif_port)other), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);

    int bport = xenif_evtchn_bind_interdomain(be, fe_dom, (xenif_port)fport);
    CU_ASSERT_FATAL(bport > 0);
    assert_port(fe_dom, (xenif_port)fport, XENSIM_PORT_INTERDOMAIN, 0,
                (unsigned)bport);
    assert_port(0, (xenif_port)bport, XENSIM_PORT_INTERDOMAIN, fe_dom,
                (unsigned)fport);

    /* Already bound; never allocated; out of range; port 0; no domain. */
    CU_ASSERT_EQUAL(xenif_evtchn_bind_interdomain(be, fe_dom, (xenif_port)fport), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(xenif_evtchn_bind_interdomain(be, fe_dom, 4000), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(xenif_evtchn_bind_interdomain(be, fe_dom, 1u << 20), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(xenif_evtchn_bind_interdomain(be, fe_dom, 0), -1);
    CU_ASSERT_EQUAL(xenif_evtchn_bind_interdomain(be, 999, 1), -1);
    CU_ASSERT_EQUAL(errno, ESRCH);

    /* Ports not bound through a handle are not its to use, even in the
     * same domain. */
    struct xenif_evtchn *fe2 = open_as(fe_dom);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fe2);
    CU_ASSERT_EQUAL(xenif_evtchn_notify(fe2, (xenif_port)fport), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(xenif_evtchn_unmask(fe2, (xenif_port)fport), -1);
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(fe2, (xenif_port)fport), -1);
    CU_ASSERT_EQUAL(xenif_evtchn_notify(fe, 4095), -1);
    CU_ASSERT_EQUAL(xenif_evtchn_notify(fe, 1u << 30), -1);
    xenif_evtchn_close(fe2);

    CU_ASSERT_EQUAL(xenif_evtchn_unbind(be, (xenif_port)bport), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(fe, (xenif_port)fport), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(fe, (xenif_port)other), 0);
    assert_port(fe_dom, (xenif_port)fport, XENSIM_PORT_FREE, 0, 0);
}

static void test_notify_pending_mask(void)
{
    int fport = xenif_evtchn_alloc_unbound(fe, 0);
    int bport = xenif_evtchn_bind_interdomain(be, fe_dom, (xenif_port)fport);
    CU_ASSERT_FATAL(fport > 0 && bport > 0);
    int bfd = xenif_evtchn_fd(be), ffd = xenif_evtchn_fd(fe);

    CU_ASSERT_EQUAL(xenif_evtchn_pending(be), -1);
    CU_ASSERT_EQUAL(errno, EAGAIN);
    CU_ASSERT_FALSE(sim_readable(bfd, 0));

    /* Front -> back. */
    CU_ASSERT_EQUAL(xenif_evtchn_notify(fe, (xenif_port)fport), 0);
    CU_ASSERT_TRUE(sim_readable(bfd, 1000));
    CU_ASSERT_EQUAL(xenif_evtchn_pending(be), bport);
    CU_ASSERT_EQUAL(xenif_evtchn_pending(be), -1);
    CU_ASSERT_EQUAL(errno, EAGAIN);

    /* Masked until unmask: events meanwhile stay pending, once. */
    CU_ASSERT_EQUAL(xenif_evtchn_notify(fe, (xenif_port)fport), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_notify(fe, (xenif_port)fport), 0);
    CU_ASSERT_FALSE(sim_readable(bfd, 20));
    CU_ASSERT_EQUAL(xenif_evtchn_pending(be), -1);
    CU_ASSERT_EQUAL(xenif_evtchn_unmask(be, (xenif_port)bport), 0);
    CU_ASSERT_TRUE(sim_readable(bfd, 1000));
    CU_ASSERT_EQUAL(xenif_evtchn_pending(be), bport);
    CU_ASSERT_EQUAL(xenif_evtchn_unmask(be, (xenif_port)bport), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_pending(be), -1);
    CU_ASSERT_EQUAL(errno, EAGAIN);

    /* Back -> front. */
    CU_ASSERT_EQUAL(xenif_evtchn_notify(be, (xenif_port)bport), 0);
    CU_ASSERT_TRUE(sim_readable(ffd, 1000));
    CU_ASSERT_EQUAL(xenif_evtchn_pending(fe), fport);
    CU_ASSERT_EQUAL(xenif_evtchn_unmask(fe, (xenif_port)fport), 0);

    /* Unbind makes the peer unbound (reserved for us again); notifies on
     * it are dropped, as in Xen, and it can be bound anew. */
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(be, (xenif_port)bport), 0);
    assert_port(fe_dom, (xenif_port)fport, XENSIM_PORT_UNBOUND, 0, 0);
    CU_ASSERT_EQUAL(xenif_evtchn_notify(fe, (xenif_port)fport), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_notify(be, (xenif_port)bport), -1);
    int again = xenif_evtchn_bind_interdomain(be, fe_dom, (xenif_port)fport);
    CU_ASSERT_FATAL(again > 0);
    CU_ASSERT_EQUAL(xenif_evtchn_pending(be), -1); /* nothing stale */
    CU_ASSERT_EQUAL(xenif_evtchn_notify(fe, (xenif_port)fport), 0);
    CU_ASSERT_TRUE(sim_readable(bfd, 1000));
    CU_ASSERT_EQUAL(xenif_evtchn_pending(be), again);
    CU_ASSERT_EQUAL(xenif_evtchn_unmask(be, (xenif_port)again), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(be, (xenif_port)again), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(fe, (xenif_port)fport), 0);
}

/* Closing a handle (or the process exiting) closes its ports. */
static void test_close_unbinds_peer(void)
{
    struct xenif_evtchn *be2 = open_as(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(be2);
    int fport = xenif_evtchn_alloc_unbound(fe, 0);
    int bport = xenif_evtchn_bind_interdomain(be2, fe_dom, (xenif_port)fport);
    CU_ASSERT_FATAL(fport > 0 && bport > 0);
    xenif_evtchn_close(be2);
    struct xensim_rsp st = { 0 };
    for (int i = 0; i < 200; i++) {
        CU_ASSERT_EQUAL_FATAL(sim_port_status(&host, fe_dom, (xenif_port)fport, &st), 0);
        if (st.state == XENSIM_PORT_UNBOUND)
            break;
        usleep(5000);
    }
    CU_ASSERT_EQUAL(st.state, XENSIM_PORT_UNBOUND);
    CU_ASSERT_EQUAL(st.remote, 0);
    assert_port(0, (xenif_port)bport, XENSIM_PORT_FREE, 0, 0);
    CU_ASSERT_EQUAL(xenif_evtchn_notify(fe, (xenif_port)fport), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(fe, (xenif_port)fport), 0);
}

/* Binding to a port of one's own domain works as loopback. */
static void test_loopback(void)
{
    int a = xenif_evtchn_alloc_unbound(be, XENIF_DOMID_SELF);
    CU_ASSERT_FATAL(a > 0);
    int b = xenif_evtchn_bind_interdomain(be, 0, (xenif_port)a);
    CU_ASSERT_FATAL(b > 0);
    CU_ASSERT_EQUAL(xenif_evtchn_notify(be, (xenif_port)a), 0);
    CU_ASSERT_TRUE(sim_readable(xenif_evtchn_fd(be), 1000));
    CU_ASSERT_EQUAL(xenif_evtchn_pending(be), b);
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(be, (xenif_port)a), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(be, (xenif_port)b), 0);
}

/* The shared-memory side of the protocol, seen from a raw connection: the
 * peer's notify sets PENDING in our port word and writes our eventfd only
 * when the port was idle and unmasked, so notifications coalesce. */
static void test_notify_wakes_idle_unmasked_port(void)
{
    char err[256];
    int sock = xensim_connect(host.dir, fe_dom, false, err, sizeof(err));
    CU_ASSERT_FATAL(sock >= 0);
    struct xensim_req req;
    struct xensim_rsp rsp;
    int fds[XENSIM_MAX_FDS];
    unsigned nfds;
    xensim_req_init(&req, XENSIM_OP_EVTCHN_ALLOC_UNBOUND);
    CU_ASSERT_EQUAL_FATAL(xensim_call(sock, &req, &rsp, fds, &nfds), 0);
    CU_ASSERT_EQUAL_FATAL(nfds, 2);
    int efd = fds[0];
    uint32_t *word = mmap(NULL, XENSIM_PROTO_PAGE, PROT_READ | PROT_WRITE,
                          MAP_SHARED, fds[1], 0);
    close(fds[1]);
    CU_ASSERT_FATAL(word != MAP_FAILED);
    int bport = xenif_evtchn_bind_interdomain(be, fe_dom, (xenif_port)rsp.port);
    CU_ASSERT_FATAL(bport > 0);
    uint64_t count;

    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(xenif_evtchn_notify(be, (xenif_port)bport), 0);
    CU_ASSERT_EQUAL(*word, XENSIM_EVTCHN_PENDING);
    CU_ASSERT_EQUAL(read(efd, &count, sizeof(count)), (ssize_t)sizeof(count));
    CU_ASSERT_EQUAL(count, 1); /* one wake-up for three notifications */

    /* Masked: pending is recorded, nobody is woken. */
    *word = XENSIM_EVTCHN_MASKED;
    CU_ASSERT_EQUAL(xenif_evtchn_notify(be, (xenif_port)bport), 0);
    CU_ASSERT_EQUAL(*word, XENSIM_EVTCHN_MASKED | XENSIM_EVTCHN_PENDING);
    CU_ASSERT_FALSE(sim_readable(efd, 20));

    /* Taken (pending cleared): the next notification wakes again. */
    *word = 0;
    CU_ASSERT_EQUAL(xenif_evtchn_notify(be, (xenif_port)bport), 0);
    CU_ASSERT_EQUAL(read(efd, &count, sizeof(count)), (ssize_t)sizeof(count));
    CU_ASSERT_EQUAL(count, 1);

    CU_ASSERT_EQUAL(xenif_evtchn_unbind(be, (xenif_port)bport), 0);
    munmap(word, XENSIM_PROTO_PAGE);
    close(efd);
    close(sock);
}

static CU_TestInfo evtchn_tests[] = {
    { "bind rules", test_bind_rules },
    { "notify, pending, mask, unmask, rebind", test_notify_pending_mask },
    { "closing a handle unbinds the peer", test_close_unbinds_peer },
    { "loopback in one domain", test_loopback },
    { "notify wakes only an idle, unmasked port",
      test_notify_wakes_idle_unmasked_port },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(xensim_evtchn, evtchn_init, evtchn_cleanup, evtchn_tests)
