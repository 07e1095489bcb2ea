/* Client end of the xensim control socket. */
#include "xensim_client.h"
#include "xenif_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int xensim_sock_path(char *buf, size_t len, const char *dir, unsigned domid)
{
    int n = domid == 0 ? snprintf(buf, len, "%s/%s", dir, XENSIM_SOCK_NAME)
                       : snprintf(buf, len, "%s/dom%u/%s", dir, domid,
                                  XENSIM_SOCK_NAME);
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int xensim_connect(const char *dir, unsigned domid, bool keep_on_exec,
                   char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (xensim_sock_path(sa.sun_path, sizeof(sa.sun_path), dir, domid) < 0) {
        snprintf(err, errlen, "xensim directory path too long for a unix "
                 "socket (max %zu bytes): %s", sizeof(sa.sun_path) - 20, dir);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | (keep_on_exec ? 0 : SOCK_CLOEXEC),
                    0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        if (domid == 0)
            snprintf(err, errlen, "cannot connect to the xensim host at %s: %s "
                     "(is `xensim host --dir %s` running?)", sa.sun_path,
                     strerror(e), dir);
        else
            snprintf(err, errlen, "cannot connect to %s: %s (does domain %u "
                     "exist? see `xensim list --dir %s`)", sa.sun_path,
                     strerror(e), domid, dir);
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int xensim_connect_config(const struct xenif_config *cfg, unsigned *domid,
                          char *err, size_t errlen)
{
    struct xenif_resolved r;
    if (xenif_resolve(cfg, &r, err, errlen) < 0)
        return -1;
    *domid = r.domid;
    return xensim_connect(r.xensim_dir, r.domid, false, err, errlen);
}

void xensim_req_init(struct xensim_req *req, enum xensim_op op)
{
    memset(req, 0, sizeof(*req));
    req->op = op;
}

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

int xensim_call(int sock, const struct xensim_req *req, struct xensim_rsp *rsp,
                int *fds, unsigned *nfds)
{
    int local_fds[XENSIM_MAX_FDS];
    if (!fds)
        fds = local_fds;
    for (unsigned i = 0; i < XENSIM_MAX_FDS; i++)
        fds[i] = -1;
    if (nfds)
        *nfds = 0;

    ssize_t n;
    do
        n = send(sock, req, sizeof(*req), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(*req)) {
        if (n >= 0 || errno == ECONNRESET)
            errno = EPIPE;
        return -1;
    }

    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * XENSIM_MAX_FDS)];
    } ctl;
    struct iovec iov = { rsp, sizeof(*rsp) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);

    /* After a failed recvmsg the control buffer holds nothing received. */
    unsigned got = 0;
    for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; c;
         c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        unsigned k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (unsigned i = 0; i < k && got < XENSIM_MAX_FDS; i++)
            memcpy(&fds[got++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    if (n != (ssize_t)sizeof(*rsp) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        close_fds(fds, got);
        if (n >= 0 || errno == ECONNRESET)
            errno = EPIPE;
        return -1;
    }
    if (rsp->err != 0) {
        close_fds(fds, got);
        errno = rsp->err > 0 ? rsp->err : EPROTO;
        return -1;
    }
    if (nfds)
        *nfds = got;
    else
        close_fds(fds, got);
    return 0;
}

bool xensim_host_answers(const char *dir, char *err, size_t errlen)
{
    int fd = xensim_connect(dir, 0, false, err, errlen);
    if (fd < 0)
        return false;
    struct xensim_dom_info info;
    int rc = xensim_domain_info(fd, 0, &info);
    if (rc < 0)
        snprintf(err, errlen, "the xensim host at %s did not answer: %s", dir,
                 strerror(errno));
    close(fd);
    return rc == 0;
}

struct xensim_gnt_layout *xensim_gnt_attach(int sock, unsigned domid, int prot,
                                            int *mem_fd, uint32_t *mem_pages)
{
    struct xensim_req req;
    struct xensim_rsp rsp;
    int fds[XENSIM_MAX_FDS];
    unsigned nfds;
    xensim_req_init(&req, XENSIM_OP_GNT_ATTACH);
    req.domid = domid;
    if (xensim_call(sock, &req, &rsp, fds, &nfds) < 0)
        return NULL;
    if (nfds != 2) {
        close_fds(fds, nfds);
        errno = EPROTO;
        return NULL;
    }
    void *tab = mmap(NULL, sizeof(struct xensim_gnt_layout), prot, MAP_SHARED,
                     fds[1], 0);
    int e = errno;
    close(fds[1]);
    if (tab == MAP_FAILED || !mem_fd)
        close(fds[0]);
    if (tab == MAP_FAILED) {
        errno = e;
        return NULL;
    }
    if (mem_fd)
        *mem_fd = fds[0];
    if (mem_pages)
        *mem_pages = rsp.val[0];
    return tab;
}

int xensim_domain_op(int sock, enum xensim_op op, unsigned domid)
{
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, op);
    req.domid = domid;
    return xensim_call(sock, &req, &rsp, NULL, NULL);
}

int xensim_domain_info(int sock, unsigned domid, struct xensim_dom_info *info)
{
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_DOMAIN_INFO);
    req.domid = domid;
    if (xensim_call(sock, &req, &rsp, NULL, NULL) < 0)
        return -1;
    *info = rsp.dom;
    info->name[XENSIM_NAME_MAX - 1] = '\0';
    return 0;
}

const char *xensim_dom_state_name(unsigned state)
{
    switch (state) {
    case XENSIM_DOM_RUNNING: return "running";
    case XENSIM_DOM_PAUSED: return "paused";
    case XENSIM_DOM_SUSPENDED: return "suspended";
    case XENSIM_DOM_MIGRATED: return "migrated";
    default: return "unknown";
    }
}

void xensim_uuid_format(const uint8_t u[16], char *buf)
{
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
             u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int xensim_uuid_parse(const char *s, uint8_t uuid[16])
{
    if (strlen(s) != 36)
        return -1;
    unsigned byte = 0;
    for (unsigned i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i++] != '-')
                return -1;
            continue;
        }
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        uuid[byte++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return 0;
}
