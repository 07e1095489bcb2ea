/* Event channels on xensim. Each bound port has an eventfd and a word of
 * pending and mask bits from the host (xensim_proto.h has the rules): as on
 * Xen, notify, mask and unmask touch only shared memory, and an eventfd is
 * written only to wake a port that was idle and unmasked. The handle's one
 * pollable fd is an epoll set of the eventfds, level-triggered: a port's
 * eventfd stays readable until pending() takes that port. With one port, the
 * usual case for a backend queue, pending() needs no epoll_wait: one read of
 * the eventfd per event. notify() uses the peer port's pair, cached; the
 * host's generation table says when it is stale. */
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
#define READY_BATCH 16
/* A word that keeps changing under take_event (only a hostile peer does
 * that) is left for the next wake-up. */
#define TAKE_TRIES 8

struct sim_port {
    int efd;             /* ours: readable when the peer notified us */
    uint32_t *word;      /* ours: pending and mask bits */
    int peer_fd;         /* the peer port's eventfd, -1 while unbound */
    uint32_t *peer_word; /* the peer port's word, NULL while unbound */
    uint32_t gen;        /* generation the peer's pair was fetched at */
};

struct sim_evtchn {
    int sock;
    int epfd;
    const uint32_t *gens;   /* host's generation table, read-only */
    struct sim_port *ports[XENSIM_EVTCHN_PORTS];
    unsigned nr_ports;
    xenif_port only;        /* the port, while nr_ports == 1 */
    /* Ports reported by the last epoll_wait, not handed out yet (their
     * eventfds stay readable until then). */
    uint32_t ready[READY_BATCH];
    unsigned nready, next_ready;
};

static void *map_word(int fd)
{
    void *w = mmap(NULL, XENSIM_PROTO_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, 0);
    return w == MAP_FAILED ? NULL : w;
}

static void unmap_word(uint32_t *w)
{
    if (w)
        munmap(w, XENSIM_PROTO_PAGE);
}

static void free_port(struct sim_port *sp)
{
    close(sp->efd);
    unmap_word(sp->word);
    if (sp->peer_fd >= 0)
        close(sp->peer_fd);
    unmap_word(sp->peer_word);
    free(sp);
}

static void sim_evtchn_close(void *h)
{
    struct sim_evtchn *ec = h;
    if (!ec)
        return;
    for (unsigned p = 0; p < XENSIM_EVTCHN_PORTS; p++) {
        if (ec->ports[p])
            free_port(ec->ports[p]);
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

/* Records a port the host just bound for us: fds[0..1] our eventfd and
 * word, fds[2..3] the peer's (BIND only). Takes ownership of the fds. */
static int add_port(struct sim_evtchn *ec, const struct xensim_rsp *rsp,
                    const int *fds, unsigned nfds)
{
    uint32_t port = rsp->port;
    bool ours = port != 0 && port < XENSIM_EVTCHN_PORTS && !ec->ports[port];
    struct sim_port *sp = NULL;
    int e = EPROTO;
    if (ours && (nfds == 2 || nfds == 4)) {
        sp = calloc(1, sizeof(*sp));
        e = ENOMEM;
    }
    if (!sp) {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        goto give_back;
    }
    sp->efd = fds[0];
    sp->peer_fd = nfds == 4 ? fds[2] : -1;
    sp->gen = rsp->gen;
    sp->word = map_word(fds[1]);
    if (nfds == 4)
        sp->peer_word = map_word(fds[3]);
    e = errno;
    close(fds[1]);
    if (nfds == 4)
        close(fds[3]);
    bool mapped = sp->word && (nfds == 2 || sp->peer_word);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = port };
    if (mapped && epoll_ctl(ec->epfd, EPOLL_CTL_ADD, sp->efd, &ev) == 0) {
        ec->ports[port] = sp;
        if (++ec->nr_ports == 1)
            ec->only = port;
        return (int)port;
    }
    if (mapped)
        e = errno;
    free_port(sp);
give_back:
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
    free_port(sp);
    ec->ports[port] = NULL;
    if (--ec->nr_ports == 1)
        for (unsigned p = 1; p < XENSIM_EVTCHN_PORTS; p++)
            if (ec->ports[p])
                ec->only = p;
    /* A port bound anew under this number must not inherit a readiness. */
    for (unsigned i = ec->next_ready; i < ec->nready; i++)
        if (ec->ready[i] == port)
            ec->ready[i] = 0;
    return 0;
}

/* Refreshes the cached peer pair after the binding changed. */
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
    if (nfds != 0 && nfds != 2) {
        for (unsigned i = 0; i < nfds; i++)
            close(fds[i]);
        errno = EPROTO;
        return -1;
    }
    uint32_t *peer_word = NULL;
    if (nfds == 2) {
        peer_word = map_word(fds[1]);
        int e = errno;
        close(fds[1]);
        if (!peer_word) {
            close(fds[0]);
            errno = e;
            return -1;
        }
    }
    if (sp->peer_fd >= 0)
        close(sp->peer_fd);
    unmap_word(sp->peer_word);
    sp->peer_fd = nfds == 2 ? fds[0] : -1;
    sp->peer_word = peer_word;
    sp->gen = rsp.gen;
    return 0;
}

/* Writes an eventfd to wake its owner. EAGAIN means the counter is
 * saturated: it is readable anyway. */
static int wake(int efd)
{
    uint64_t one = 1;
    if (write(efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -1;
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
    uint32_t old = __atomic_fetch_or(sp->peer_word, XENSIM_EVTCHN_PENDING,
                                     __ATOMIC_SEQ_CST);
    if (old & (XENSIM_EVTCHN_PENDING | XENSIM_EVTCHN_MASKED))
        return 0; /* the peer has yet to look, or looks after unmasking */
    return wake(sp->peer_fd);
}

/* Takes the port's event if it is pending and unmasked: masks it and clears
 * pending in one step, as Xen's upcall handler leaves a port it handles. */
static bool take_event(struct sim_port *sp)
{
    uint32_t w = __atomic_load_n(sp->word, __ATOMIC_ACQUIRE);
    for (int i = 0; i < TAKE_TRIES; i++) {
        if (!(w & XENSIM_EVTCHN_PENDING) || (w & XENSIM_EVTCHN_MASKED))
            return false;
        uint32_t taken = (w | XENSIM_EVTCHN_MASKED) & ~XENSIM_EVTCHN_PENDING;
        if (__atomic_compare_exchange_n(sp->word, &w, taken, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE))
            return true;
    }
    return false;
}

/* Clears the port's wake-up, then takes its event: an event set after the
 * read writes the eventfd again. */
static int drain_and_take(struct sim_port *sp)
{
    uint64_t count;
    if (read(sp->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        return -1;
    return take_event(sp) ? 1 : 0;
}

static int sim_evtchn_pending(void *h)
{
    struct sim_evtchn *ec = h;
    if (ec->nr_ports == 1 && ec->next_ready == ec->nready) {
        /* The set's only member is the one that can be readable. */
        int r = drain_and_take(ec->ports[ec->only]);
        if (r > 0)
            return (int)ec->only;
        if (r == 0)
            errno = EAGAIN;
        return -1;
    }
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
        int r = drain_and_take(sp);
        if (r < 0)
            return -1;
        if (r > 0)
            return (int)port;
    }
}

static int sim_evtchn_unmask(void *h, xenif_port port)
{
    struct sim_evtchn *ec = h;
    struct sim_port *sp = lookup(ec, port);
    if (!sp)
        return -1;
    uint32_t old = __atomic_fetch_and(sp->word, ~XENSIM_EVTCHN_MASKED,
                                      __ATOMIC_SEQ_CST);
    /* Notifications while masked set pending without waking us. */
    if (old & XENSIM_EVTCHN_PENDING)
        return wake(sp->efd);
    return 0;
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
