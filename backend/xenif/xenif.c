/* xenif: implementation selection and dispatch through the ops tables. */
#include "xenif_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void xenif_config_from_env(struct xenif_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->kind = XENIF_AUTO;
    cfg->xensim_domid = -1;
    const char *kind = getenv("NETBUS_XENIF");
    if (kind && strcmp(kind, "xen") == 0)
        cfg->kind = XENIF_XEN;
    else if (kind && strcmp(kind, "xensim") == 0)
        cfg->kind = XENIF_XENSIM;
}

const char *xenif_kind_name(enum xenif_kind kind)
{
    switch (kind) {
    case XENIF_XEN: return "xen";
    case XENIF_XENSIM: return "xensim";
    default: return "auto";
    }
}

static int fail(char *err, size_t errlen, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    errno = errnum;
    return -1;
}

int xenif_resolve(const struct xenif_config *cfg, struct xenif_resolved *r,
                  char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    const char *dir = cfg->xensim_dir ? cfg->xensim_dir : getenv("XENSIM_DIR");
    r->kind = cfg->kind;
    if (r->kind == XENIF_AUTO) {
        if (access("/dev/xen", F_OK) == 0)
            r->kind = XENIF_XEN;
        else if (dir && *dir)
            r->kind = XENIF_XENSIM;
        else
            return fail(err, errlen, ENODEV,
                        "no hypervisor: /dev/xen does not exist and XENSIM_DIR "
                        "is not set (start `xensim host --dir DIR` and export "
                        "XENSIM_DIR=DIR to use the simulator)");
    }
    if (r->kind == XENIF_XEN)
        return 0;

    if (!dir || !*dir)
        return fail(err, errlen, EINVAL,
                    "xensim selected but no host directory given: set "
                    "XENSIM_DIR to the --dir of a running `xensim host`");
    if (strlen(dir) >= sizeof(r->xensim_dir))
        return fail(err, errlen, ENAMETOOLONG, "XENSIM_DIR is too long: %s", dir);
    strcpy(r->xensim_dir, dir);

    long domid = cfg->xensim_domid;
    if (domid < 0) {
        const char *env = getenv("XENSIM_DOMID");
        char *end = NULL;
        domid = env && *env ? strtol(env, &end, 10) : 0;
        if (env && *env && (*end || domid < 0))
            return fail(err, errlen, EINVAL,
                        "XENSIM_DOMID=%s is not a domain id (0..32751)", env);
    }
    if (domid >= 0x7ff0)
        return fail(err, errlen, EINVAL,
                    "domain id %ld is out of range (0..32751)", domid);
    r->domid = (xenif_domid)domid;
    return 0;
}

int xenif_config_resolve(const struct xenif_config *cfg, enum xenif_kind *kind,
                         char *err, size_t errlen)
{
    struct xenif_resolved r;
    if (xenif_resolve(cfg, &r, err, errlen) < 0)
        return -1;
    *kind = r.kind;
    return 0;
}

/* ---- event channels ---------------------------------------------------- */

struct xenif_evtchn {
    const struct xenif_evtchn_ops *ops;
    void *h;
};

struct xenif_evtchn *xenif_evtchn_open(const struct xenif_config *cfg,
                                       char *err, size_t errlen)
{
    struct xenif_resolved r;
    if (xenif_resolve(cfg, &r, err, errlen) < 0)
        return NULL;
    struct xenif_evtchn *ec = calloc(1, sizeof(*ec));
    if (!ec)
        return NULL;
    ec->ops = r.kind == XENIF_XEN ? &xenif_xen_evtchn_ops
                                  : &xenif_xensim_evtchn_ops;
    ec->h = ec->ops->open(cfg, err, errlen);
    if (!ec->h) {
        int saved = errno;
        free(ec);
        errno = saved;
        return NULL;
    }
    return ec;
}

void xenif_evtchn_close(struct xenif_evtchn *ec)
{
    if (!ec)
        return;
    ec->ops->close(ec->h);
    free(ec);
}

int xenif_evtchn_fd(struct xenif_evtchn *ec)
{
    return ec->ops->fd(ec->h);
}

int xenif_evtchn_bind_interdomain(struct xenif_evtchn *ec, xenif_domid remote,
                                  xenif_port remote_port)
{
    return ec->ops->bind_interdomain(ec->h, remote, remote_port);
}

int xenif_evtchn_alloc_unbound(struct xenif_evtchn *ec, xenif_domid remote)
{
    return ec->ops->alloc_unbound(ec->h, remote);
}

int xenif_evtchn_unbind(struct xenif_evtchn *ec, xenif_port port)
{
    return ec->ops->unbind(ec->h, port);
}

int xenif_evtchn_notify(struct xenif_evtchn *ec, xenif_port port)
{
    return ec->ops->notify(ec->h, port);
}

int xenif_evtchn_pending(struct xenif_evtchn *ec)
{
    return ec->ops->pending(ec->h);
}

int xenif_evtchn_unmask(struct xenif_evtchn *ec, xenif_port port)
{
    return ec->ops->unmask(ec->h, port);
}

/* ---- grants ------------------------------------------------------------ */

struct xenif_gnt {
    const struct xenif_gnt_ops *ops;
    void *h;
};

struct xenif_gnt *xenif_gnt_open(const struct xenif_config *cfg, char *err,
                                 size_t errlen)
{
    struct xenif_resolved r;
    if (xenif_resolve(cfg, &r, err, errlen) < 0)
        return NULL;
    struct xenif_gnt *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->ops = r.kind == XENIF_XEN ? &xenif_xen_gnt_ops : &xenif_xensim_gnt_ops;
    g->h = g->ops->open(cfg, err, errlen);
    if (!g->h) {
        int saved = errno;
        free(g);
        errno = saved;
        return NULL;
    }
    return g;
}

void *xenif_gnt_xensim_handle(struct xenif_gnt *g)
{
    return g && g->ops == &xenif_xensim_gnt_ops ? g->h : NULL;
}

void xenif_gnt_close(struct xenif_gnt *g)
{
    if (!g)
        return;
    g->ops->close(g->h);
    free(g);
}

void *xenif_gnt_map(struct xenif_gnt *g, xenif_domid domid, unsigned count,
                    const xenif_gref *refs, int prot)
{
    if (count == 0 || !(prot & XENIF_GNT_READ) ||
        (prot & ~(XENIF_GNT_READ | XENIF_GNT_WRITE))) {
        errno = EINVAL;
        return NULL;
    }
    return g->ops->map(g->h, domid, count, refs, prot);
}

int xenif_gnt_unmap(struct xenif_gnt *g, void *addr, unsigned count)
{
    return g->ops->unmap(g->h, addr, count);
}

int xenif_gnt_copy(struct xenif_gnt *g, struct xenif_gnt_copy *segs,
                   unsigned count)
{
    return g->ops->copy(g->h, segs, count);
}

void *xenif_gnt_share(struct xenif_gnt *g, xenif_domid domid, unsigned count,
                      xenif_gref *refs, bool writable)
{
    if (count == 0) {
        errno = EINVAL;
        return NULL;
    }
    return g->ops->share(g->h, domid, count, refs, writable);
}

int xenif_gnt_unshare(struct xenif_gnt *g, void *addr, unsigned count)
{
    return g->ops->unshare(g->h, addr, count);
}

/* ---- domain run state ----------------------------------------------------- */

struct xenif_dom {
    const struct xenif_dom_ops *ops;
    void *h;
};

struct xenif_dom *xenif_dom_open(const struct xenif_config *cfg, char *err,
                                 size_t errlen)
{
    struct xenif_resolved r;
    if (xenif_resolve(cfg, &r, err, errlen) < 0)
        return NULL;
    struct xenif_dom *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->ops = r.kind == XENIF_XEN ? &xenif_xen_dom_ops : &xenif_xensim_dom_ops;
    d->h = d->ops->open(cfg, err, errlen);
    if (!d->h) {
        int saved = errno;
        free(d);
        errno = saved;
        return NULL;
    }
    return d;
}

void xenif_dom_close(struct xenif_dom *d)
{
    if (!d)
        return;
    d->ops->close(d->h);
    free(d);
}

enum xenif_dom_run xenif_dom_run_state(struct xenif_dom *d, xenif_domid domid)
{
    return d ? d->ops->run_state(d->h, domid) : XENIF_DOM_UNKNOWN;
}

const char *xenif_dom_run_name(enum xenif_dom_run st)
{
    switch (st) {
    case XENIF_DOM_RUNNING: return "running";
    case XENIF_DOM_SUSPENDED: return "suspended";
    case XENIF_DOM_GONE: return "gone";
    default: return "unknown";
    }
}
