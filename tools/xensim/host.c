/* The simulated host's process: xsd and the control sockets in one evloop.
 * Every client message is treated as hostile: a malformed one closes that
 * connection, a bad value gets an error reply; neither stops the host. */
#include "host.h"
#include "evloop.h"
#include "log.h"
#include "xensim_client.h"
#include "xsd.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct domain *host_domain(struct host *h, unsigned domid)
{
    return domid <= XENSIM_DOMID_MAX ? h->domains[domid] : NULL;
}

unsigned host_req_domid(const struct conn *c, uint32_t domid)
{
    return domid == XENSIM_DOMID_SELF ? c->domid : domid;
}

void host_close_conn(struct host *h, struct conn *c)
{
    evloop_del(h->loop, c->fd);
    evtchn_conn_gone(h, c);
    gnttab_conn_gone(h, c);
    close(c->fd);
    for (struct conn **pp = &h->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    free(c);
}

static int dispatch(struct host *h, struct conn *c, const struct xensim_req *req,
                    struct xensim_rsp *rsp, int *fds, unsigned *nfds)
{
    switch (req->op) {
    case XENSIM_OP_DOMAIN_CREATE ... XENSIM_OP_DOMAIN_INFO:
        return domain_handle(h, c, req, rsp);
    case XENSIM_OP_GNT_ATTACH ... XENSIM_OP_GNT_FREE:
        return gnttab_handle(h, c, req, rsp, fds, nfds);
    case XENSIM_OP_EVTCHN_ATTACH ... XENSIM_OP_EVTCHN_STATUS:
        return evtchn_handle(h, c, req, rsp, fds, nfds);
    case XENSIM_OP_GUEST_REGISTER:
    case XENSIM_OP_GUEST_SUSPEND:
        return domain_guest_handle(h, c, req, rsp);
    case XENSIM_OP_GNT_CLAIM:
        return gnttab_handle(h, c, req, rsp, fds, nfds);
    case XENSIM_OP_DOMAIN_RESTORE:
    case XENSIM_OP_DOMAIN_MIGRATED:
        return domain_handle(h, c, req, rsp);
    default:
        return EINVAL;
    }
}

static int send_rsp(int fd, const struct xensim_rsp *rsp, const int *fds,
                    unsigned nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * XENSIM_MAX_FDS)];
    } ctl;
    struct iovec iov = { (void *)rsp, sizeof(*rsp) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    return sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) ==
           (ssize_t)sizeof(*rsp) ? 0 : -1;
}

/* Reads one request. 1: got it; 0: nothing yet; -1: drop the connection. */
static int recv_req(struct conn *c, struct xensim_req *req)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } ctl;
    struct iovec iov = { req, sizeof(*req) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    bool had_fds = false;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); n >= 0 && cm;
         cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        had_fds = true;
        for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            close(fd);
        }
    }
    if (n == 0)
        return -1;
    if (n < 0 || n != (ssize_t)sizeof(*req) || had_fds ||
        (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        log_warn(NULL, "dom%u pid %d: malformed control message (%zd "
                 "bytes, want %zu%s); closing the connection", c->domid,
                 (int)c->pid, n, sizeof(*req), had_fds ? ", with fds" : "");
        return -1;
    }
    return 1;
}

static void conn_cb(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)loop;
    (void)fd;
    struct conn *c = opaque;
    struct host *h = c->host;
    struct xensim_req req;
    int r = recv_req(c, &req);
    if (r == 0) {
        if (events & (EPOLLHUP | EPOLLERR))
            host_close_conn(h, c);
        return;
    }
    if (r < 0 || c->suspending) {
        /* A request while one waits for its answer breaks the one
         * request, one answer rule. */
        if (r > 0)
            log_warn(NULL, "dom%u pid %d: request while suspended; closing "
                     "the connection", c->domid, (int)c->pid);
        host_close_conn(h, c);
        return;
    }
    struct xensim_rsp rsp;
    memset(&rsp, 0, sizeof(rsp));
    int fds[XENSIM_MAX_FDS] = { -1, -1, -1, -1 };
    unsigned nfds = 0;
    rsp.err = dispatch(h, c, &req, &rsp, fds, &nfds);
    if (rsp.err == XENSIM_DEFERRED)
        return; /* host_reply answers later */
    if (rsp.err) {
        struct xensim_rsp only_err = { .err = rsp.err };
        rsp = only_err;
        nfds = 0;
    }
    if (send_rsp(c->fd, &rsp, fds, nfds) < 0)
        host_close_conn(h, c);
}

void host_reply(struct host *h, struct conn *c, const struct xensim_rsp *rsp)
{
    c->suspending = false;
    if (send_rsp(c->fd, rsp, NULL, 0) < 0)
        host_close_conn(h, c);
}

static void accept_cb(struct evloop *loop, int lfd, uint32_t events, void *opaque)
{
    (void)events;
    struct domain *d = opaque;
    struct host *h = d->host;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct conn *c = calloc(1, sizeof(*c));
    if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
        evloop_add(loop, fd, EPOLLIN, conn_cb, c) < 0) {
        free(c);
        close(fd);
        return;
    }
    c->host = h;
    c->fd = fd;
    c->domid = d->domid;
    c->pid = cred.pid;
    /* Signal a whole process group only when the client leads its own (as
     * `xensim run` arranges), never the host's group. */
    c->group_leader = getpgid(cred.pid) == cred.pid && cred.pid != getpgrp();
    if (++h->next_serial == 0 || h->next_serial == XENSIM_SERIAL_RESERVED)
        h->next_serial = 1;
    c->serial = h->next_serial;
    c->next = h->conns;
    h->conns = c;
    if (d->state != XENSIM_DOM_RUNNING)
        domain_signal(h, d, SIGSTOP);
}

int host_listen(struct host *h, struct domain *d)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (d->domid != 0) {
        char sub[sizeof(h->dir) + 16];
        snprintf(sub, sizeof(sub), "%s/dom%u", h->dir, d->domid);
        if (mkdir(sub, 0755) < 0 && errno != EEXIST)
            return -1;
    }
    if (xensim_sock_path(sa.sun_path, sizeof(sa.sun_path), h->dir, d->domid) < 0)
        return -1;
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
        evloop_add(h->loop, fd, EPOLLIN, accept_cb, d) < 0) {
        int e = errno;
        close(fd);
        unlink(sa.sun_path);
        errno = e;
        return -1;
    }
    d->listen_fd = fd;
    return 0;
}

void host_unlisten(struct host *h, struct domain *d)
{
    if (d->listen_fd < 0)
        return;
    evloop_del(h->loop, d->listen_fd);
    close(d->listen_fd);
    d->listen_fd = -1;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (xensim_sock_path(path, sizeof(path), h->dir, d->domid) == 0)
        unlink(path);
}

static void host_free(struct host *h)
{
    /* Connections first: stopping the host disconnects the processes of its
     * domains (their calls fail) but does not kill them. */
    while (h->conns)
        host_close_conn(h, h->conns);
    for (unsigned id = XENSIM_DOMID_MAX; id > 0; id--)
        if (h->domains[id])
            domain_destroy(h, h->domains[id]);
    if (h->domains[0])
        domain_destroy(h, h->domains[0]);
    if (h->xsd)
        xsd_free(h->xsd);
    evloop_free(h->loop);
    free(h);
}

int xensim_host_run(const char *dir, unsigned dom0_mib)
{
    struct host *h = calloc(1, sizeof(*h));
    if (!h) {
        log_error(NULL, "out of memory");
        return 1;
    }
    h->next_domid = 1;
    if (strlen(dir) + 32 >= sizeof(h->dir)) {
        log_error(NULL, "--dir %s is too long for unix socket paths; use "
                  "a shorter directory", dir);
        free(h);
        return 2;
    }
    strcpy(h->dir, dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        log_error(NULL, "cannot create %s: %s", dir, strerror(errno));
        free(h);
        return 1;
    }
    h->loop = evloop_new();
    if (!h->loop) {
        log_error(NULL, "cannot create the event loop: %s", strerror(errno));
        free(h);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (evloop_stop_on_signals(h->loop, "xensim host") < 0) {
        log_error(NULL, "signalfd: %s", strerror(errno));
        host_free(h);
        return 1;
    }

    char err[256];
    struct xsd_limits limits;
    xsd_limits_default(&limits);
    h->xsd = xsd_new(h->loop, dir, &limits, err, sizeof(err));
    if (!h->xsd) {
        log_error(NULL, "xenstored: %s", err);
        host_free(h);
        return 1;
    }
    static const uint8_t dom0_uuid[16];
    int e = 0;
    if (!domain_new(h, 0, "Domain-0", dom0_uuid, dom0_mib, &e)) {
        log_error(NULL, "cannot create domain 0 in %s: %s", dir, strerror(e));
        host_free(h);
        return 1;
    }
    log_info(NULL, "host up: xenstore at %s/socket, control at %s/%s",
             dir, dir, XENSIM_SOCK_NAME);
    int rc = evloop_run(h->loop);
    host_free(h);
    return rc < 0 ? 1 : 0;
}

static void host_usage(FILE *f)
{
    fprintf(f, "usage: xensim host --dir DIR [--dom0-memory MiB] "
               "[--log-level LEVEL]\n");
}

int xensim_host_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "dom0-memory", required_argument, NULL, 'm' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *dir = getenv("XENSIM_DIR");
    unsigned long mib = XENSIM_DEFAULT_DOM0_MIB;
    int level = LOG_LVL_INFO;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "d:m:l:h", opts, NULL)) != -1) {
        char *end;
        switch (o) {
        case 'd':
            dir = optarg;
            break;
        case 'm':
            mib = strtoul(optarg, &end, 10);
            if (*end || mib == 0 || mib > XENSIM_MAX_MIB) {
                fprintf(stderr, "xensim host: --dom0-memory %s: want 1..%u MiB\n",
                        optarg, XENSIM_MAX_MIB);
                return 2;
            }
            break;
        case 'l':
            level = log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "xensim host: --log-level %s: want error, "
                        "warn, info or debug\n", optarg);
                return 2;
            }
            break;
        case 'h':
            host_usage(stdout);
            return 0;
        default:
            host_usage(stderr);
            return 2;
        }
    }
    if (!dir || !*dir || optind != argc) {
        fprintf(stderr, "xensim host: %s\n", optind != argc
                ? "unexpected argument" : "no --dir given (or set XENSIM_DIR)");
        host_usage(stderr);
        return 2;
    }
    log_init("xensim", (enum log_level)level, false);
    return xensim_host_run(dir, (unsigned)mib);
}
