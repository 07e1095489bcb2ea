/* The daemon: listening sockets (dom0's and one per introduced domain),
 * domain lifecycle, the host process's direct store access, and
 * `xensim xenstored`. */
#include "xsd_internal.h"
#include "evloop.h"
#include "log.h"

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

void xsd_limits_default(struct xsd_limits *l)
{
    l->nodes_per_domain = 1000;
    l->watches_per_domain = 128;
    l->transactions_per_conn = 10;
    l->value_max = 2048;
    l->perms_per_node = 5;
}

void xsd_enter(struct xsd *x)
{
    x->depth++;
}

void xsd_leave(struct xsd *x)
{
    if (--x->depth)
        return;
    for (struct xsd_conn **pp = &x->conns; *pp;) {
        struct xsd_conn *c = *pp;
        if (c->dead) {
            *pp = c->next;
            conn_destroy(c);
        } else {
            pp = &c->next;
        }
    }
}

struct xsd_domain *domain_find(const struct xsd *x, unsigned domid)
{
    for (struct xsd_domain *d = x->domains; d; d = d->next)
        if (d->domid == domid)
            return d;
    return NULL;
}

/* --- sockets ------------------------------------------------------------- */

static void listen_accept(struct evloop *loop, int fd, uint32_t events,
                          void *opaque)
{
    struct xsd *x = opaque;
    (void)loop;
    (void)events;
    unsigned domid = 0;
    if (fd != x->listen_fd)
        for (struct xsd_domain *d = x->domains; d; d = d->next)
            if (d->listen_fd == fd)
                domid = d->domid;
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0)
        return;
    if (!conn_new(x, c, domid)) {
        log_warn("xenstored", "cannot serve a new connection");
        close(c);
    }
}

static int listen_unix(struct xsd *x, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "%s: socket path too long", path);
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    unlink(path); /* a stale socket from an earlier run */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 64) < 0 ||
        evloop_add(x->loop, fd, EPOLLIN, listen_accept, x) < 0)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        unlink(path);
        errno = saved;
    }
    return -1;
}

static void listen_close(struct xsd *x, int fd, const char *path)
{
    if (fd < 0)
        return;
    evloop_del(x->loop, fd);
    close(fd);
    unlink(path);
}

/* --- setup --------------------------------------------------------------- */

static const struct xsd_perm dom0_only = { 0, 0 };

static int add_initial_node(struct xsd *x, const char *path)
{
    struct xsd_perms p = { 1, (struct xsd_perm *)&dom0_only };
    struct xsd_req r = { x, NULL, 0, NULL };
    struct xsd_node *n = node_new(path, &p);
    if (!n)
        return ENOMEM;
    if (strcmp(path, "/") != 0) {
        char parent[XSD_PATH_BUF];
        parent_path(path, parent);
        struct xsd_node *up = node_dup(store_get(&x->store, parent));
        if (!up || node_add_child(up, leaf_name(path)) || db_write(&r, up)) {
            node_free(n);
            return ENOMEM;
        }
    }
    return db_write(&r, n);
}

struct xsd *xsd_new(struct evloop *loop, const char *rundir,
                    const struct xsd_limits *limits, char *err, size_t errlen)
{
    struct xsd *x = calloc(1, sizeof(*x));
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    x->loop = loop;
    x->listen_fd = -1;
    if (limits)
        x->lim = *limits;
    else
        xsd_limits_default(&x->lim);
    if (!x->lim.perms_per_node) /* callers that predate the field */
        x->lim.perms_per_node = 5;
    struct xsd_perms p = { 1, (struct xsd_perm *)&dom0_only };
    static const char *const initial[] = { "/", "/local", "/local/domain",
                                           "/tool" };
    if (perms_copy(&x->introduce_perms, &p) ||
        perms_copy(&x->release_perms, &p))
        goto nomem;
    for (size_t i = 0; i < sizeof(initial) / sizeof(initial[0]); i++)
        if (add_initial_node(x, initial[i]))
            goto nomem;
    if (rundir) {
        if (!loop) {
            snprintf(err, errlen, "sockets need an event loop");
            goto fail;
        }
        if (mkdir(rundir, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: %s", rundir, strerror(errno));
            goto fail;
        }
        if (!(x->rundir = strdup(rundir)) ||
            asprintf(&x->sock_path, "%s/socket", rundir) < 0) {
            x->sock_path = NULL;
            goto nomem;
        }
        x->listen_fd = listen_unix(x, x->sock_path, err, errlen);
        if (x->listen_fd < 0)
            goto fail;
    }
    return x;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    xsd_free(x);
    return NULL;
}

static void domain_free(struct xsd *x, struct xsd_domain *d)
{
    listen_close(x, d->listen_fd, d->sock_path);
    if (d->sock_dir)
        rmdir(d->sock_dir);
    free(d->sock_path);
    free(d->sock_dir);
    free(d);
}

void xsd_free(struct xsd *x)
{
    if (!x)
        return;
    while (x->conns) {
        struct xsd_conn *c = x->conns;
        x->conns = c->next;
        conn_destroy(c);
    }
    while (x->domains) {
        struct xsd_domain *d = x->domains;
        x->domains = d->next;
        domain_free(x, d);
    }
    if (x->sock_path)
        listen_close(x, x->listen_fd, x->sock_path);
    store_free(&x->store);
    free(x->introduce_perms.p);
    free(x->release_perms.p);
    free(x->sock_path);
    free(x->rundir);
    free(x);
}

/* --- domains ------------------------------------------------------------- */

bool xsd_domain_introduced(const struct xsd *x, unsigned domid)
{
    return domain_find(x, domid) != NULL;
}

int xsd_domain_introduce(struct xsd *x, unsigned domid)
{
    if (domid == 0 || domid > XSD_DOMID_MAX) {
        errno = EINVAL;
        return -1;
    }
    if (domain_find(x, domid))
        return 0; /* xenstored re-introduction only rebinds the channel */
    struct xsd_domain *d = calloc(1, sizeof(*d));
    if (!d) {
        errno = ENOMEM;
        return -1;
    }
    d->domid = domid;
    d->listen_fd = -1;
    if (x->rundir) {
        char err[256];
        if (asprintf(&d->sock_dir, "%s/dom%u", x->rundir, domid) < 0) {
            d->sock_dir = NULL;
            goto nomem;
        }
        if (asprintf(&d->sock_path, "%s/socket", d->sock_dir) < 0) {
            d->sock_path = NULL;
            goto nomem;
        }
        if (mkdir(d->sock_dir, 0755) < 0 && errno != EEXIST)
            goto fail;
        d->listen_fd = listen_unix(x, d->sock_path, err, sizeof(err));
        if (d->listen_fd < 0) {
            log_error("xenstored", "%s", err);
            goto fail;
        }
    }
    xsd_enter(x);
    /* The domain's home, owned by it, unless the toolstack made it. */
    char home[32];
    snprintf(home, sizeof(home), "/local/domain/%u", domid);
    struct xsd_req r = { x, NULL, 0, NULL };
    if (!store_get(&x->store, home)) {
        struct xsd_perm own = { domid, 0 };
        struct xsd_perms p = { 1, &own };
        int e = op_mkdir(&r, home);
        if (!e)
            e = op_set_perms(&r, home, &p);
        if (e) {
            xsd_leave(x);
            errno = e;
            goto fail;
        }
    }
    d->next = x->domains;
    x->domains = d;
    watch_fire(&r, "@introduceDomain", NULL, true, NULL);
    xsd_leave(x);
    return 0;
nomem:
    errno = ENOMEM;
fail:;
    int saved = errno;
    domain_free(x, d);
    errno = saved;
    return -1;
}

static void perms_strip(struct xsd_perms *p, unsigned domid)
{
    unsigned out = 1;
    for (unsigned i = 1; i < p->n; i++)
        if (p->p[i].id != domid)
            p->p[out++] = p->p[i];
    p->n = out;
}

/* Forgets a gone domain in the store, as xenstored does: nodes it owns go
 * (with their subtrees), and it loses any access granted to it, so a later
 * domain with the same id inherits nothing. */
static void store_forget_domain(struct xsd *x, unsigned domid)
{
    struct xsd_req r = { x, NULL, 0, NULL };
    for (;;) {
        struct xsd_node *victim = NULL;
        for (size_t i = 0; i < x->store.nodes.nb && !victim; i++)
            for (struct xsd_hent *e = x->store.nodes.b[i]; e; e = e->hnext) {
                struct xsd_node *n = (struct xsd_node *)e;
                if (n->perms.p[0].id == domid && strcmp(n->h.key, "/") != 0) {
                    victim = n;
                    break;
                }
            }
        if (!victim)
            break;
        char path[XSD_PATH_BUF];
        strcpy(path, node_name(victim));
        if (op_rm_tree(&r, path)) {
            /* Cannot remove: hand it to dom0 rather than loop forever. */
            victim->perms.p[0].id = 0;
        }
    }
    for (size_t i = 0; i < x->store.nodes.nb; i++)
        for (struct xsd_hent *e = x->store.nodes.b[i]; e; e = e->hnext)
            perms_strip(&((struct xsd_node *)e)->perms, domid);
    perms_strip(&x->introduce_perms, domid);
    perms_strip(&x->release_perms, domid);
}

int xsd_domain_release(struct xsd *x, unsigned domid)
{
    struct xsd_domain **pp = &x->domains;
    while (*pp && (*pp)->domid != domid)
        pp = &(*pp)->next;
    if (!*pp) {
        errno = ENOENT;
        return -1;
    }
    struct xsd_domain *d = *pp;
    xsd_enter(x);
    for (struct xsd_conn *c = x->conns; c; c = c->next)
        if (c->domid == domid)
            conn_kill(c, "domain released");
    *pp = d->next;
    domain_free(x, d);
    store_forget_domain(x, domid);
    struct xsd_req r = { x, NULL, 0, NULL };
    watch_fire(&r, "@releaseDomain", NULL, true, NULL);
    xsd_leave(x);
    return 0;
}

void xsd_fire_special(struct xsd *x, const char *name)
{
    struct xsd_req r = { x, NULL, 0, NULL };
    xsd_enter(x);
    watch_fire(&r, name, NULL, true, NULL);
    xsd_leave(x);
}

/* --- the host's direct access (as dom0) ---------------------------------- */

static int host_result(struct xsd *x, int err)
{
    xsd_leave(x);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

int xsd_store_write(struct xsd *x, const char *path, const char *value)
{
    struct xsd_req r = { x, NULL, 0, NULL };
    xsd_enter(x);
    return host_result(x, op_write(&r, path, value, (uint32_t)strlen(value)));
}

int xsd_store_mkdir(struct xsd *x, const char *path)
{
    struct xsd_req r = { x, NULL, 0, NULL };
    xsd_enter(x);
    return host_result(x, op_mkdir(&r, path));
}

int xsd_store_rm(struct xsd *x, const char *path)
{
    struct xsd_req r = { x, NULL, 0, NULL };
    xsd_enter(x);
    return host_result(x, op_rm(&r, path));
}

char *xsd_store_read(struct xsd *x, const char *path)
{
    struct xsd_req r = { x, NULL, 0, NULL };
    const struct xsd_node *n = op_read(&r, path, XSD_PERM_READ);
    if (!n)
        return NULL;
    char *v = malloc(n->vlen + 1);
    if (!v) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(v, n->value, n->vlen);
    v[n->vlen] = '\0';
    return v;
}

int xsd_store_set_perms(struct xsd *x, const char *path,
                        const char *const *perms, unsigned n)
{
    if (n == 0) {
        errno = EINVAL;
        return -1;
    }
    size_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += strlen(perms[i]) + 1;
    char *buf = malloc(len);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    char *p = buf;
    for (unsigned i = 0; i < n; i++)
        p = stpcpy(p, perms[i]) + 1;
    struct xsd_perms parsed = { 0, NULL };
    int err = perms_parse(buf, n, &parsed);
    free(buf);
    struct xsd_req r = { x, NULL, 0, NULL };
    xsd_enter(x);
    if (!err)
        err = op_set_perms(&r, path, &parsed);
    free(parsed.p);
    return host_result(x, err);
}

/* --- xensim xenstored ---------------------------------------------------- */

static struct evloop *main_loop;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: xensim xenstored --dir DIR [options]\n"
        "Runs a xenstore daemon in the foreground speaking xs_wire: dom0 at\n"
        "DIR/socket (use XENSTORED_RUNDIR=DIR with xenstore-* tools), domain N\n"
        "at DIR/domN/socket once introduced (XENSTORED_PATH=DIR/domN/socket).\n"
        "Stops on SIGINT or SIGTERM.\n"
        "  --dir DIR              run directory (created if missing)\n"
        "  --introduce N          introduce domain N at start (repeatable);\n"
        "                         dom0 can also send XS_INTRODUCE later\n"
        "  --quota-nodes N        nodes per domain (default 1000)\n"
        "  --quota-watches N      watches per domain (default 128)\n"
        "  --quota-transactions N transactions per connection (default 10)\n"
        "  --quota-value N        value bytes for unprivileged writes (2048)\n"
        "  --log-level LEVEL      error, warn, info (default) or debug\n"
        "  --help                 this text\n");
}

static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > max || s[0] == '-')
        return false;
    *out = (unsigned)v;
    return true;
}

int xsd_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "introduce", required_argument, NULL, 'i' },
        { "quota-nodes", required_argument, NULL, 'N' },
        { "quota-watches", required_argument, NULL, 'W' },
        { "quota-transactions", required_argument, NULL, 'T' },
        { "quota-value", required_argument, NULL, 'S' },
        { "log-level", required_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *dir = NULL;
    unsigned doms[64], ndoms = 0;
    struct xsd_limits lim;
    xsd_limits_default(&lim);
    int level = LOG_LVL_INFO;
    optind = 1;
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        unsigned *quota = NULL;
        switch (o) {
        case 'd': dir = optarg; continue;
        case 'h': usage(stdout); return 0;
        case 'i':
            if (ndoms == 64 || !parse_uint(optarg, XSD_DOMID_MAX, &doms[ndoms]) ||
                doms[ndoms] == 0) {
                fprintf(stderr, "xenstored: --introduce wants a domid 1..%u "
                        "(at most 64 of them), not '%s'\n", XSD_DOMID_MAX, optarg);
                return 2;
            }
            ndoms++;
            continue;
        case 'l':
            if ((level = log_level_parse(optarg)) < 0) {
                fprintf(stderr, "xenstored: unknown log level '%s'\n", optarg);
                return 2;
            }
            continue;
        case 'N': quota = &lim.nodes_per_domain; break;
        case 'W': quota = &lim.watches_per_domain; break;
        case 'T': quota = &lim.transactions_per_conn; break;
        case 'S': quota = &lim.value_max; break;
        default: usage(stderr); return 2;
        }
        if (!parse_uint(optarg, 1u << 30, quota)) {
            fprintf(stderr, "xenstored: quota wants a number, not '%s'\n", optarg);
            return 2;
        }
    }
    if (!dir || optind != argc) {
        fprintf(stderr, optind != argc ? "xenstored: unexpected argument '%s'\n"
                                       : "xenstored: --dir DIR is required%s\n",
                optind != argc ? argv[optind] : "");
        usage(stderr);
        return 2;
    }
    log_init("xensim-xenstored", (enum log_level)level, false);
    main_loop = evloop_new();
    char err[512];
    struct xsd *x = main_loop ? xsd_new(main_loop, dir, &lim, err, sizeof(err))
                              : NULL;
    if (!x) {
        fprintf(stderr, "xenstored: %s\n", main_loop ? err : "no event loop");
        evloop_free(main_loop);
        return 1;
    }
    int rc = 0;
    for (unsigned i = 0; i < ndoms && !rc; i++)
        if (xsd_domain_introduce(x, doms[i]) < 0) {
            fprintf(stderr, "xenstored: introduce %u: %s\n", doms[i],
                    strerror(errno));
            rc = 1;
        }
    if (!rc) {
        signal(SIGPIPE, SIG_IGN);
        if (evloop_stop_on_signals(main_loop, "xenstored") < 0) {
            fprintf(stderr, "xenstored: signalfd: %s\n", strerror(errno));
            rc = 1;
        } else {
            log_info("xenstored", "serving %s/socket", dir);
            rc = evloop_run(main_loop) < 0 ? 1 : 0;
        }
    }
    xsd_free(x);
    evloop_free(main_loop);
    return rc;
}
