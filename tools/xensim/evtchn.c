/* Event channels, host side: per-domain port tables with Xen's binding rules
 * (xen/common/event_channel.c). Notifications never pass through the host:
 * each port has an eventfd and a word of pending and mask bits, and a client
 * notifies through the peer port's pair, which it fetched from here
 * (xensim_proto.h has the rules). The host never maps a port word, so what
 * clients write there cannot touch it. The generation table tells clients,
 * without a round trip, when the binding behind a cached pair changed. */
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define GEN_BYTES (XENSIM_EVTCHN_PORTS * sizeof(uint32_t))

int evtchn_domain_init(struct domain *d)
{
    d->ports = calloc(XENSIM_EVTCHN_PORTS, sizeof(*d->ports));
    if (!d->ports)
        return -1;
    for (unsigned p = 0; p < XENSIM_EVTCHN_PORTS; p++)
        d->ports[p].efd = d->ports[p].word_fd = -1;
    d->gen_fd = memfd_create("xensim-evtchn-gen", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (d->gen_fd < 0 || ftruncate(d->gen_fd, GEN_BYTES) < 0)
        goto fail;
    d->gens = mmap(NULL, GEN_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
                   d->gen_fd, 0);
    if (d->gens == MAP_FAILED) {
        d->gens = NULL;
        goto fail;
    }
    /* Clients may map it, but only read it. */
    if (fcntl(d->gen_fd, F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
        goto fail;
    return 0;
fail:
    if (d->gens)
        munmap(d->gens, GEN_BYTES);
    if (d->gen_fd >= 0)
        close(d->gen_fd);
    d->gens = NULL;
    d->gen_fd = -1;
    free(d->ports);
    d->ports = NULL;
    return -1;
}

static void bump(struct domain *d, unsigned port)
{
    __atomic_add_fetch(&d->gens[port], 1, __ATOMIC_RELEASE);
}

/* Xen's evtchn_close: frees the port; an interdomain peer goes back to
 * unbound, bindable again by this domain. */
static void close_port(struct host *h, struct domain *d, unsigned port)
{
    struct port *p = &d->ports[port];
    if (p->state == XENSIM_PORT_INTERDOMAIN) {
        struct domain *r = host_domain(h, p->remote_dom);
        if (r && p->remote_port < XENSIM_EVTCHN_PORTS) {
            struct port *rp = &r->ports[p->remote_port];
            rp->state = XENSIM_PORT_UNBOUND;
            rp->remote_dom = d->domid;
            rp->remote_port = 0;
            bump(r, p->remote_port);
        }
    }
    if (p->efd >= 0)
        close(p->efd);
    if (p->word_fd >= 0)
        close(p->word_fd);
    memset(p, 0, sizeof(*p));
    p->efd = p->word_fd = -1;
    bump(d, port);
}

void evtchn_domain_free(struct host *h, struct domain *d)
{
    if (!d->ports)
        return;
    for (unsigned p = 1; p < XENSIM_EVTCHN_PORTS; p++)
        if (d->ports[p].state != XENSIM_PORT_FREE)
            close_port(h, d, p);
    munmap(d->gens, GEN_BYTES);
    close(d->gen_fd);
    free(d->ports);
    d->ports = NULL;
}

void evtchn_conn_gone(struct host *h, struct conn *c)
{
    struct domain *d = host_domain(h, c->domid);
    if (!d)
        return;
    for (unsigned p = 1; p < XENSIM_EVTCHN_PORTS; p++)
        if (d->ports[p].owner == c)
            close_port(h, d, p);
}

/* A zeroed port word (not pending, not masked) nobody can resize: a peer
 * shrinking it would fault the owner. -1 with errno. */
static int new_word(void)
{
    int fd = memfd_create("xensim-evtchn-port", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, XENSIM_PROTO_PAGE) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Takes a free port for owner with a fresh eventfd and word, in state with
 * remote_dom, and puts it in the reply: rsp->port, rsp->gen, fds[0..1]. 0
 * or an errno value. */
static int open_port(struct domain *d, struct conn *owner,
                     enum xensim_port_state state, unsigned remote_dom,
                     struct xensim_rsp *rsp, int *fds, unsigned *nfds)
{
    unsigned port = 1;
    while (port < XENSIM_EVTCHN_PORTS && d->ports[port].state != XENSIM_PORT_FREE)
        port++;
    if (port == XENSIM_EVTCHN_PORTS)
        return ENOSPC;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0)
        return errno;
    int word_fd = new_word();
    if (word_fd < 0) {
        int e = errno;
        close(efd);
        return e;
    }
    struct port *p = &d->ports[port];
    p->state = state;
    p->remote_dom = remote_dom;
    p->efd = efd;
    p->word_fd = word_fd;
    p->owner = owner;
    bump(d, port);
    rsp->port = port;
    rsp->gen = d->gens[port];
    fds[0] = efd;
    fds[1] = word_fd;
    *nfds = 2;
    return 0;
}

static int op_alloc_unbound(struct conn *c, struct domain *d,
                            const struct xensim_req *req, struct xensim_rsp *rsp,
                            int *fds, unsigned *nfds)
{
    unsigned remote = host_req_domid(c, req->remote);
    if (remote > XENSIM_DOMID_MAX)
        return EINVAL;
    return open_port(d, c, XENSIM_PORT_UNBOUND, remote, rsp, fds, nfds);
}

/* Xen's evtchn_bind_interdomain: the remote port must be unbound and
 * reserved for this domain. */
static int op_bind(struct host *h, struct conn *c, struct domain *d,
                   const struct xensim_req *req, struct xensim_rsp *rsp,
                   int *fds, unsigned *nfds)
{
    struct domain *r = host_domain(h, host_req_domid(c, req->remote));
    if (!r)
        return ESRCH;
    if (req->remote_port == 0 || req->remote_port >= XENSIM_EVTCHN_PORTS)
        return EINVAL;
    struct port *rp = &r->ports[req->remote_port];
    if (rp->state != XENSIM_PORT_UNBOUND || rp->remote_dom != d->domid)
        return EINVAL;
    int err = open_port(d, c, XENSIM_PORT_INTERDOMAIN, r->domid, rsp, fds,
                        nfds);
    if (err)
        return err;
    d->ports[rsp->port].remote_port = req->remote_port;
    rp->state = XENSIM_PORT_INTERDOMAIN;
    rp->remote_port = rsp->port;
    bump(r, req->remote_port);
    fds[2] = rp->efd;
    fds[3] = rp->word_fd;
    *nfds = 4;
    return 0;
}

/* The port must have been bound through this connection, as the Linux
 * evtchn device only lets a file use its own ports. */
static struct port *own_port(struct domain *d, struct conn *c, unsigned port)
{
    if (port == 0 || port >= XENSIM_EVTCHN_PORTS || d->ports[port].owner != c)
        return NULL;
    return &d->ports[port];
}

static int op_peer(struct host *h, struct conn *c, struct domain *d,
                   const struct xensim_req *req, struct xensim_rsp *rsp,
                   int *fds, unsigned *nfds)
{
    struct port *p = own_port(d, c, req->port);
    if (!p)
        return EINVAL;
    rsp->state = p->state;
    rsp->gen = d->gens[req->port];
    if (p->state == XENSIM_PORT_INTERDOMAIN) {
        struct domain *r = host_domain(h, p->remote_dom);
        if (r) {
            fds[0] = r->ports[p->remote_port].efd;
            fds[1] = r->ports[p->remote_port].word_fd;
            *nfds = 2;
        }
    }
    return 0;
}

static int op_status(struct host *h, struct conn *c, const struct xensim_req *req,
                     struct xensim_rsp *rsp)
{
    unsigned domid = host_req_domid(c, req->domid);
    if (c->domid != 0 && domid != c->domid)
        return EPERM;
    struct domain *d = host_domain(h, domid);
    if (!d)
        return ESRCH;
    if (req->port == 0 || req->port >= XENSIM_EVTCHN_PORTS)
        return EINVAL;
    const struct port *p = &d->ports[req->port];
    rsp->state = p->state;
    rsp->remote = p->remote_dom;
    rsp->remote_port = p->remote_port;
    return 0;
}

int evtchn_handle(struct host *h, struct conn *c, const struct xensim_req *req,
                  struct xensim_rsp *rsp, int *fds, unsigned *nfds)
{
    struct domain *d = host_domain(h, c->domid);
    if (!d)
        return ESRCH;
    switch (req->op) {
    case XENSIM_OP_EVTCHN_ATTACH:
        fds[0] = d->gen_fd;
        *nfds = 1;
        return 0;
    case XENSIM_OP_EVTCHN_ALLOC_UNBOUND:
        return op_alloc_unbound(c, d, req, rsp, fds, nfds);
    case XENSIM_OP_EVTCHN_BIND:
        return op_bind(h, c, d, req, rsp, fds, nfds);
    case XENSIM_OP_EVTCHN_UNBIND:
        if (!own_port(d, c, req->port))
            return EINVAL;
        close_port(h, d, req->port);
        return 0;
    case XENSIM_OP_EVTCHN_PEER:
        return op_peer(h, c, d, req, rsp, fds, nfds);
    case XENSIM_OP_EVTCHN_STATUS:
        return op_status(h, c, req, rsp);
    default:
        return EINVAL;
    }
}
