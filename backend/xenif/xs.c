/* xenstore for both implementations: Debian's libxenstore speaks to the real
 * xenstored (xen) and to xensim's xenstored (xensim) alike, because xensim
 * speaks the same wire protocol; only the socket differs. */
#include "xenif_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

struct xenif_xs {
    struct xs_handle *h;
    xenif_domid domid;
};

/* libxenstore takes the socket path only from XENSTORED_PATH at xs_open()
 * time, so set it for the call and put the caller's value back. */
static struct xs_handle *open_socket(const char *path)
{
    const char *old = getenv("XENSTORED_PATH");
    char *saved = old ? strdup(old) : NULL;
    setenv("XENSTORED_PATH", path, 1);
    struct xs_handle *h = xs_open(XS_OPEN_SOCKETONLY);
    int err = errno;
    if (saved) {
        setenv("XENSTORED_PATH", saved, 1);
        free(saved);
    } else {
        unsetenv("XENSTORED_PATH");
    }
    errno = err;
    return h;
}

struct xenif_xs *xenif_xs_open(const struct xenif_config *cfg, char *err,
                               size_t errlen)
{
    struct xenif_resolved r;
    if (xenif_resolve(cfg, &r, err, errlen) < 0)
        return NULL;
    struct xenif_xs *xs = calloc(1, sizeof(*xs));
    if (!xs)
        return NULL;
    if (r.kind == XENIF_XENSIM) {
        char path[sizeof(r.xensim_dir) + 32];
        if (r.domid == 0)
            snprintf(path, sizeof(path), "%s/socket", r.xensim_dir);
        else
            snprintf(path, sizeof(path), "%s/dom%u/socket", r.xensim_dir,
                     r.domid);
        xs->h = open_socket(path);
        if (!xs->h)
            snprintf(err, errlen, "cannot connect to xensim xenstore at %s: "
                     "%s (is `xensim host --dir %s` running?)", path,
                     strerror(errno), r.xensim_dir);
        xs->domid = r.domid;
    } else {
        xs->h = xs_open(0);
        if (!xs->h)
            snprintf(err, errlen, "cannot open xenstore: %s (is xenstored "
                     "running and /dev/xen/xenbus accessible?)", strerror(errno));
    }
    if (!xs->h) {
        int saved = errno;
        free(xs);
        errno = saved;
        return NULL;
    }
    if (r.kind == XENIF_XEN) {
        /* Relative paths resolve to /local/domain/<self>, where the
         * toolstack writes our domid. */
        unsigned long id;
        if (xenif_xs_read_uint(xs, 0, "domid", &id) == 0)
            xs->domid = (xenif_domid)id;
    }
    return xs;
}

void xenif_xs_close(struct xenif_xs *xs)
{
    if (!xs)
        return;
    xs_close(xs->h);
    free(xs);
}

xenif_domid xenif_xs_own_domid(const struct xenif_xs *xs)
{
    return xs->domid;
}

char *xenif_xs_read(struct xenif_xs *xs, xenif_txn t, const char *path,
                    size_t *len)
{
    unsigned int n;
    char *v = xs_read(xs->h, t, path, &n); /* libxenstore NUL-terminates */
    if (v && len)
        *len = n;
    return v;
}

int xenif_xs_write(struct xenif_xs *xs, xenif_txn t, const char *path,
                   const void *value, size_t len)
{
    return xs_write(xs->h, t, path, value, (unsigned)len) ? 0 : -1;
}

int xenif_xs_printf(struct xenif_xs *xs, xenif_txn t, const char *path,
                    const char *fmt, ...)
{
    char *value;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&value, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    int rc = xenif_xs_write(xs, t, path, value, (size_t)n);
    free(value);
    return rc;
}

int xenif_xs_read_uint(struct xenif_xs *xs, xenif_txn t, const char *path,
                       unsigned long *out)
{
    char *v = xenif_xs_read(xs, t, path, NULL);
    if (!v)
        return -1;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    int bad = !*v || *end || errno || v[0] == '-';
    free(v);
    if (bad) {
        errno = EINVAL;
        return -1;
    }
    *out = n;
    return 0;
}

int xenif_xs_mkdir(struct xenif_xs *xs, xenif_txn t, const char *path)
{
    return xs_mkdir(xs->h, t, path) ? 0 : -1;
}

int xenif_xs_rm(struct xenif_xs *xs, xenif_txn t, const char *path)
{
    return xs_rm(xs->h, t, path) ? 0 : -1;
}

char **xenif_xs_directory(struct xenif_xs *xs, xenif_txn t, const char *path,
                          unsigned *num)
{
    return xs_directory(xs->h, t, path, num);
}

struct xenif_xs_perm *xenif_xs_get_perms(struct xenif_xs *xs, xenif_txn t,
                                         const char *path, unsigned *num)
{
    unsigned n;
    struct xs_permissions *p = xs_get_permissions(xs->h, t, path, &n);
    if (!p)
        return NULL;
    struct xenif_xs_perm *out = calloc(n ? n : 1, sizeof(*out));
    if (out) {
        for (unsigned i = 0; i < n; i++) {
            out[i].domid = (xenif_domid)p[i].id;
            out[i].perms = p[i].perms & (XS_PERM_READ | XS_PERM_WRITE);
        }
        *num = n;
    }
    free(p);
    return out;
}

int xenif_xs_set_perms(struct xenif_xs *xs, xenif_txn t, const char *path,
                       const struct xenif_xs_perm *perms, unsigned num)
{
    struct xs_permissions *p = calloc(num ? num : 1, sizeof(*p));
    if (!p)
        return -1;
    for (unsigned i = 0; i < num; i++) {
        p[i].id = perms[i].domid;
        p[i].perms = perms[i].perms & (XS_PERM_READ | XS_PERM_WRITE);
    }
    bool ok = xs_set_permissions(xs->h, t, path, p, num);
    int saved = errno;
    free(p);
    errno = saved;
    return ok ? 0 : -1;
}

xenif_txn xenif_xs_transaction_start(struct xenif_xs *xs)
{
    return xs_transaction_start(xs->h);
}

int xenif_xs_transaction_end(struct xenif_xs *xs, xenif_txn t, bool abort)
{
    return xs_transaction_end(xs->h, t, abort) ? 0 : -1;
}

int xenif_xs_watch(struct xenif_xs *xs, const char *path, const char *token)
{
    return xs_watch(xs->h, path, token) ? 0 : -1;
}

int xenif_xs_unwatch(struct xenif_xs *xs, const char *path, const char *token)
{
    return xs_unwatch(xs->h, path, token) ? 0 : -1;
}

int xenif_xs_fd(struct xenif_xs *xs)
{
    return xs_fileno(xs->h);
}

int xenif_xs_next_event(struct xenif_xs *xs, char **path, char **token)
{
    char **ev = xs_check_watch(xs->h);
    if (!ev)
        return errno == EAGAIN ? 0 : -1;
    /* libxenstore returns one block holding the vector and both strings,
     * with the path first: freeing *path would not free the block, so copy
     * into our own single block whose start is the path. */
    size_t plen = strlen(ev[XS_WATCH_PATH]) + 1;
    size_t tlen = strlen(ev[XS_WATCH_TOKEN]) + 1;
    char *block = malloc(plen + tlen);
    if (!block) {
        free(ev);
        return -1;
    }
    memcpy(block, ev[XS_WATCH_PATH], plen);
    memcpy(block + plen, ev[XS_WATCH_TOKEN], tlen);
    free(ev);
    *path = block;
    *token = block + plen;
    return 1;
}
