/* Save/restore and migration for xensim guest processes. See
 * xensim_guest.h; the protocol is in tools/xensim/migrate.c. */
#include "xensim_guest.h"
#include "xenif_impl.h"
#include "xensim_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct xsg {
    char dir[XENSIM_DIR_MAX];
    unsigned domid;
    int sock;               /* registered connection, current host */
    int old_sock;           /* after XSG_MIGRATED: the old host's, until
                             * xsg_resumed */
    struct xenif_xs *xs;
    char node[64];          /* /local/domain/N/control/shutdown */
};

static struct xenif_xs *watch_node(struct xsg *g, char *err, size_t errlen)
{
    struct xenif_config cfg = xsg_config(g);
    struct xenif_xs *xs = xenif_xs_open(&cfg, err, errlen);
    if (!xs)
        return NULL;
    snprintf(g->node, sizeof(g->node), "/local/domain/%u/control/shutdown",
             g->domid);
    if (xenif_xs_watch(xs, g->node, "shutdown") < 0) {
        snprintf(err, errlen, "cannot watch %s: %s", g->node, strerror(errno));
        xenif_xs_close(xs);
        return NULL;
    }
    return xs;
}

static int register_at(struct xsg *g, char *err, size_t errlen)
{
    int sock = xensim_connect(g->dir, g->domid, false, err, errlen);
    if (sock < 0)
        return -1;
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_GUEST_REGISTER);
    if (xensim_call(sock, &req, &rsp, NULL, NULL) < 0) {
        snprintf(err, errlen, "the xensim host at %s refused to register us "
                 "for suspend: %s", g->dir, strerror(errno));
        close(sock);
        return -1;
    }
    return sock;
}

struct xsg *xsg_open(const struct xenif_config *cfg, char *err, size_t errlen)
{
    struct xenif_resolved r;
    if (xenif_resolve(cfg, &r, err, errlen) < 0)
        return NULL;
    if (r.kind != XENIF_XENSIM) {
        snprintf(err, errlen, "not a xensim guest");
        errno = ENOTSUP;
        return NULL;
    }
    if (strlen(r.xensim_dir) >= XENSIM_DIR_MAX) {
        snprintf(err, errlen, "xensim directory too long: %s", r.xensim_dir);
        errno = ENAMETOOLONG;
        return NULL;
    }
    struct xsg *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->old_sock = -1;
    strcpy(g->dir, r.xensim_dir);
    g->domid = r.domid;
    g->sock = register_at(g, err, errlen);
    if (g->sock < 0 || !(g->xs = watch_node(g, err, errlen))) {
        int e = errno;
        xsg_close(g);
        errno = e;
        return NULL;
    }
    return g;
}

void xsg_close(struct xsg *g)
{
    if (!g)
        return;
    if (g->xs)
        xenif_xs_close(g->xs);
    if (g->sock >= 0)
        close(g->sock);
    if (g->old_sock >= 0)
        close(g->old_sock);
    free(g);
}

int xsg_fd(const struct xsg *g)
{
    return xenif_xs_fd(g->xs);
}

bool xsg_suspend_requested(struct xsg *g)
{
    char *path, *token;
    while (xenif_xs_next_event(g->xs, &path, &token) == 1)
        free(path);
    char *v = xenif_xs_read(g->xs, 0, g->node, NULL);
    bool yes = v && strcmp(v, "suspend") == 0;
    free(v);
    return yes;
}

const char *xsg_dir(const struct xsg *g) { return g->dir; }
unsigned xsg_domid(const struct xsg *g) { return g->domid; }

struct xenif_config xsg_config(const struct xsg *g)
{
    struct xenif_config cfg = { .kind = XENIF_XENSIM, .xensim_dir = g->dir,
                                .xensim_domid = (int)g->domid };
    return cfg;
}

int xsg_suspend(struct xsg *g, char *err, size_t errlen)
{
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_GUEST_SUSPEND);
    /* Blocks while the domain is suspended (and our process stopped). */
    if (xensim_call(g->sock, &req, &rsp, NULL, NULL) < 0) {
        if (errno == EAGAIN)
            return XSG_CANCELLED; /* the toolstack withdrew the request */
        snprintf(err, errlen, "suspend: %s", strerror(errno));
        return -1;
    }
    if (rsp.val[0] == 1)
        return XSG_CANCELLED;
    rsp.dir[sizeof(rsp.dir) - 1] = '\0';
    if (rsp.dir[0] != '/' || rsp.dom.domid == 0 || rsp.dom.domid > XENSIM_DOMID_MAX) {
        snprintf(err, errlen, "the host's resume names no valid destination");
        errno = EPROTO;
        return -1;
    }
    strcpy(g->dir, rsp.dir);
    g->domid = rsp.dom.domid;
    g->old_sock = g->sock;
    g->sock = -1;
    /* Whatever opens handles from the environment from now on (and
     * children) reaches the new host. */
    char num[16], xs[XENSIM_DIR_MAX + 32];
    snprintf(num, sizeof(num), "%u", g->domid);
    snprintf(xs, sizeof(xs), "%s/dom%u/socket", g->dir, g->domid);
    setenv("XENSIM_DIR", g->dir, 1);
    setenv("XENSIM_DOMID", num, 1);
    setenv("XENSTORED_PATH", xs, 1);
    return XSG_MIGRATED;
}

int xsg_gnt_move(struct xsg *g, struct xenif_gnt *gnt, char *err, size_t errlen)
{
    void *h = xenif_gnt_xensim_handle(gnt);
    if (!h) {
        snprintf(err, errlen, "not a xensim grant handle");
        errno = EINVAL;
        return -1;
    }
    return xensim_gnt_move(h, g->dir, g->domid, err, errlen);
}

int xsg_gnt_regrant(struct xenif_gnt *gnt, void *addr, unsigned count,
                    xenif_domid domid)
{
    void *h = xenif_gnt_xensim_handle(gnt);
    if (!h) {
        errno = EINVAL;
        return -1;
    }
    return xensim_gnt_regrant(h, addr, count, domid);
}

/* `xensim run` leaves a connection to the domain open across exec so the
 * host knows the process (and its group) as the domain's: move it too,
 * keeping its descriptor number for our children. */
static int move_run_fd(struct xsg *g, char *err, size_t errlen)
{
    const char *env = getenv("XENSIM_RUN_FD");
    char *end;
    long fd = env && *env ? strtol(env, &end, 10) : -1;
    struct stat st;
    if (fd < 0 || *end || fstat((int)fd, &st) < 0 || !S_ISSOCK(st.st_mode))
        return 0;
    int nfd = xensim_connect(g->dir, g->domid, true, err, errlen);
    if (nfd < 0)
        return -1;
    if (dup2(nfd, (int)fd) < 0) {
        snprintf(err, errlen, "dup2: %s", strerror(errno));
        close(nfd);
        return -1;
    }
    close(nfd);
    return 0;
}

int xsg_resumed(struct xsg *g, char *err, size_t errlen)
{
    if (g->old_sock < 0)
        return 0; /* nothing moved */
    int sock = register_at(g, err, errlen);
    if (sock < 0)
        return -1;
    struct xenif_xs *xs = watch_node(g, err, errlen);
    if (!xs) {
        close(sock);
        return -1;
    }
    if (move_run_fd(g, err, errlen) < 0) {
        xenif_xs_close(xs);
        close(sock);
        return -1;
    }
    xenif_xs_close(g->xs);
    g->xs = xs;
    g->sock = sock;
    /* Last: the toolstack destroys the old domain once we are gone. */
    close(g->old_sock);
    g->old_sock = -1;
    return 0;
}
