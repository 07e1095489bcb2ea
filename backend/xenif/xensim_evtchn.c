/* Event channels on xensim. Each bound port has an eventfd from the host;
 * the handle's one pollable fd is an epoll set of them, each registered
 * EPOLLONESHOT: the epoll_wait that reports a port also masks it, so
 * notifications arriving meanwhile accumulate in the eventfd and show up
 * again after unmask() (EPOLL_CTL_MOD re-arming it), as a Xen pending bit
 * does: wait, clear and unmask are the only system calls per event. pending()
 * takes a batch of ready ports per epoll_wait and hands them out one per
 * call.
 * notify() writes the peer port's eventfd directly; the host's generation
 * table says when the cached peer fd is stale. */
#include "xenif_impl.h"
#include "xensim_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#define GEN_BYTES (XENSIM_EVTCHN_PORTS * sizeof(uint32_t))
#define ARMED (EPOLLIN | EPOLLONESHOT)
#define READY_BATCH 16

struct sim_port {
    int efd;        /* ours: readable when the peer notified us */
    int peer_fd;    /* the peer port's eventfd, -1 while unbound */
    uint32_t gen;   /* generation peer_fd was fetched at */
};

struct sim_evtchn {
    int sock;
    int epfd;
    const uint32_t *gens;   /* host's generation table, read-only */
    struct sim_port *ports[XENSIM_EVTCHN_PORTS];
    /* Ports reported by the last epoll_wait, not handed out yet (masked by
     * EPOLLONESHOT until then). */
    uint32_t ready[READY_BATCH];
    unsigned nready, next_ready;
};

static void sim_evtchn_close(void *h)
{
    struct sim_evtchn *ec = h;
    if (!ec)
        return;
    for (unsigned p = 0; p < XENSIM_EVTCHN_PORTS; p++) {
        struct sim_port *sp = ec->ports[p];
        if (!sp)
            continue;
        close(sp->efd);
        if (sp->peer_fd >= 0)
            close(sp->peer_fd);
        free(sp);
    }
    if (ec->gens)
        munmap((void *)ec->gens, GEN_BYTES);
    if (ec->epfd >= 0)
        close(ec->epfd);
    /* The host closes our ports when the connection goes. */
    if (ec->sock >= 0)
        close(ec->sock);
    free(ec);
}

static void *sim_evtchn_open(const struct xenif_config *cfg, char *err,
                             size_t errlen)
{
    unsigned domid;
    int sock = xensim_connect_config(cfg, &domid, err, errlen);
    if (sock < 0)
        return NULL;
    struct sim_evtchn *ec = calloc(1, sizeof(*ec));
    if (!ec) {
        snprintf(err, errlen, "out of memory");
        close(sock);
        return NULL;
    }
    ec->sock = sock;
    ec->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ec->epfd < 0) {
        snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
        goto fail;
    }
    struct xensim_req req;
    struct xensim_rsp rsp;
    int fds[XENSIM_MAX_FDS];
    unsigned nfds;
    xensim_req_init(&req, XENSIM_OP_EVTCHN_ATTACH);
    int rc = xensim_call(ec->sock, &req, &rsp, fds, &nfds);
    if (rc < 0 || nfds != 1) {
        int e = rc < 0 ? errno : EPROTO;
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        snprintf(err, errlen, "xensim host refused the event-channel table: %s",
                 strerror(e));
        goto fail;
    }
    void *gens = mmap(NULL, GEN_BYTES, PROT_READ, MAP_SHARED, fds[0], 0);
    close(fds[0]);
    if (gens == MAP_FAILED) {
        snprintf(err, errlen, "mapping the event-channel table: %s",
                 strerror(errno));
        goto fail;
    }
    ec->gens = gens;
    return ec;
fail:
    sim_evtchn_close(ec);
    return NULL;
}

static int sim_evtchn_fd(void *h)
{
    return ((struct sim_evtchn *)h)->epfd;
}

/* Records a port the host just bound for us: fds[0] ours, fds[1] the peer's
 * (or -1). Takes ownership of the fds. */
static int add_port(struct sim_evtchn *ec, const struct xensim_rsp *rsp,
                    const int *fds, unsigned nfds)
{
    uint32_t port = rsp->port;
    struct sim_port *sp = NULL;
    bool ours = port != 0 && port < XENSIM_EVTCHN_PORTS && !ec->ports[port];
    if (!ours || nfds < 1) {
        errno = EPROTO;
        goto fail;
    }
    if (!(sp = malloc(sizeof(*sp))))
        goto fail;
    sp->efd = fds[0];
    sp->peer_fd = nfds > 1 ? fds[1] : -1;
    sp->gen = rsp->gen;
    struct epoll_event ev = { .events = ARMED, .data.u32 = port };
    if (epoll_ctl(ec->epfd, EPOLL_CTL_ADD, sp->efd, &ev) < 0)
        goto fail;
    ec->ports[port] = sp;
    return (int)port;
fail:;
    int e = errno;
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
    free(sp);
    /* The host holds the port for us; give it back. */
    if (ours) {
        struct xensim_req req;
        struct xensim_rsp ignored;
        xensim_req_init(&req, XENSIM_OP_EVTCHN_UNBIND);
        req.port = port;
        xensim_call(ec->sock, &req, &ignored, NULL, NULL);
    }
    errno = e;
    return -1;
}

/* Sends a request that binds a new port (ALLOC_UNBOUND, BIND) and records
 * the port. */
static int bind_port(struct sim_evtchn *ec, const struct xensim_req *req)
{
    struct xensim_rsp rsp;
    int fds[XENSIM_MAX_FDS];
    unsigned nfds;
    if (xensim_call(ec->sock, req, &rsp, fds, &nfds) < 0)
        return -1;
    return add_port(ec, &rsp, fds, nfds);
}

static int sim_evtchn_bind_interdomain(void *h, xenif_domid remote,
                                       xenif_port remote_port)
{
    struct xensim_req req;
    xensim_req_init(&req, XENSIM_OP_EVTCHN_BIND);
    req.remote = remote;
    req.remote_port = remote_port;
    return bind_port(h, &req);
}

static int sim_evtchn_alloc_unbound(void *h, xenif_domid remote)
{
    struct xensim_req req;
    xensim_req_init(&req, XENSIM_OP_EVTCHN_ALLOC_UNBOUND);
    req.remote = remote;
    return bind_port(h, &req);
}

static struct sim_port *lookup(struct sim_evtchn *ec, xenif_port port)
{
    if (port >= XENSIM_EVTCHN_PORTS || !ec->ports[port]) {
        errno = EINVAL;
        return NULL;
    }
    return ec->ports[port];
}

static int sim_evtchn_unbind(void *h, xenif_port port)
{
    struct sim_evtchn *ec = h;
    struct sim_port *sp = lookup(ec, port);
    if (!sp)
        return -1;
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_EVTCHN_UNBIND);
    req.port = port;
    if (xensim_call(ec->sock, &req, &rsp, NULL, NULL) < 0)
        return -1;
    epoll_ctl(ec->epfd, EPOLL_CTL_DEL, sp->efd, NULL);
    close(sp->efd);
    if (sp->peer_fd >= 0)
        close(sp->peer_fd);
    free(sp);
    ec->ports[port] = NULL;
    /* A port bound anew under this number must not inherit a readiness. */
    for (unsigned i = ec->next_ready; i < ec->nready; i++)
        if (ec->ready[i] == port)
            ec->ready[i] = 0;
    return 0;
}

/* Refreshes the cached peer eventfd after the binding changed. */
static int refresh_peer(struct sim_evtchn *ec, xenif_port port,
                        struct sim_port *sp)
{
    struct xensim_req req;
    struct xensim_rsp rsp;
    int fds[XENSIM_MAX_FDS];
    unsigned nfds;
    xensim_req_init(&req, XENSIM_OP_EVTCHN_PEER);
    req.port = port;
    if (xensim_call(ec->sock, &req, &rsp, fds, &nfds) < 0)
        return -1;
    if (sp->peer_fd >= 0)
        close(sp->peer_fd);
    sp->peer_fd = nfds > 0 ? fds[0] : -1;
    sp->gen = rsp.gen;
    return 0;
}

static int sim_evtchn_notify(void *h, xenif_port port)
{
    struct sim_evtchn *ec = h;
    struct sim_port *sp = lookup(ec, port);
    if (!sp)
        return -1;
    uint32_t gen = __atomic_load_n(&ec->gens[port], __ATOMIC_ACQUIRE);
    if (gen != sp->gen && refresh_peer(ec, port, sp) < 0)
        return -1;
    /* Unbound: Xen drops the notification silently. */
    if (sp->peer_fd < 0)
        return 0;
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the event is pending anyway. */
    if (write(sp->peer_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -1;
    return 0;
}

static int sim_evtchn_pending(void *h)
{
    struct sim_evtchn *ec = h;
    for (;;) {
        if (ec->next_ready == ec->nready) {
            struct epoll_event evs[READY_BATCH];
            int n;
            do
                n = epoll_wait(ec->epfd, evs, READY_BATCH, 0);
            while (n < 0 && errno == EINTR);
            if (n < 0)
                return -1;
            if (n == 0) {
                errno = EAGAIN;
                return -1;
            }
            for (int i = 0; i < n; i++)
                ec->ready[i] = evs[i].data.u32;
            ec->nready = (unsigned)n;
            ec->next_ready = 0;
        }
        xenif_port port = ec->ready[ec->next_ready++];
        struct sim_port *sp = port ? ec->ports[port] : NULL;
        if (!sp)
            continue; /* unbound since the wait */
        uint64_t count;
        if (read(sp->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
            return -1;
        return (int)port;
    }
}

static int sim_evtchn_unmask(void *h, xenif_port port)
{
    struct sim_evtchn *ec = h;
    struct sim_port *sp = lookup(ec, port);
    if (!sp)
        return -1;
    struct epoll_event ev = { .events = ARMED, .data.u32 = port };
    return epoll_ctl(ec->epfd, EPOLL_CTL_MOD, sp->efd, &ev);
}

const struct xenif_evtchn_ops xenif_xensim_evtchn_ops = {
    .open = sim_evtchn_open,
    .close = sim_evtchn_close,
    .fd = sim_evtchn_fd,
    .bind_interdomain = sim_evtchn_bind_interdomain,
    .alloc_unbound = sim_evtchn_alloc_unbound,
    .unbind = sim_evtchn_unbind,
    .notify = sim_evtchn_notify,
    .pending = sim_evtchn_pending,
    .unmask = sim_evtchn_unmask,
};
