/* Watches: per connection (path, token) pairs, fired on changes at or below
 * the path, with xenstored's rules for who gets told. */
#include "xsd_internal.h"

#include <stdlib.h>
#include <string.h>

struct xsd_watch {
    struct xsd_watch *next;
    char *path;        /* canonical, or "@..." */
    char *token;
    size_t prefix_len; /* relative watch: report paths without this prefix */
};

struct xsd_perms *special_perms(struct xsd *x, const char *name)
{
    if (strcmp(name, "@introduceDomain") == 0)
        return &x->introduce_perms;
    if (strcmp(name, "@releaseDomain") == 0)
        return &x->release_perms;
    return NULL;
}

static void watch_free(struct xsd_watch *w)
{
    free(w->path);
    free(w->token);
    free(w);
}

static unsigned *domain_watch_count(struct xsd_conn *c)
{
    struct xsd_domain *d = c->domid ? domain_find(c->x, c->domid) : NULL;
    return d ? &d->nwatches : NULL;
}

int watch_add(struct xsd_conn *c, const char *path, const char *token,
              uint32_t req_id)
{
    struct xsd_req r = { c->x, c, c->domid, NULL };
    char canon[XSD_PATH_BUF];
    bool relative = path[0] != '/' && path[0] != '@';
    if (path[0] == '@') {
        if (strlen(path) > XENSTORE_REL_PATH_MAX)
            return EINVAL;
        strcpy(canon, path);
    } else if (path_canonical(&r, path, false, canon)) {
        return EINVAL;
    }
    for (struct xsd_watch *w = c->watches; w; w = w->next)
        if (strcmp(w->path, canon) == 0 && strcmp(w->token, token) == 0)
            return EEXIST;
    unsigned *count = domain_watch_count(c);
    if (count && *count >= c->x->lim.watches_per_domain)
        return E2BIG; /* xenstored 4.17 answers a full watch quota so */

    struct xsd_watch *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(canon)) || !(w->token = strdup(token))) {
        if (w)
            watch_free(w);
        return ENOMEM;
    }
    /* Relative watches see paths relative to /local/domain/N. */
    w->prefix_len = relative ? strlen(canon) - strlen(path) : 0;
    w->next = c->watches;
    c->watches = w;
    if (count)
        (*count)++;
    conn_send(c, XS_WATCH, req_id, 0, "OK", 3);
    /* Fired once up front, as xenstored does: simplifies clients. */
    conn_send_event(c, w->path + w->prefix_len, w->token);
    return 0;
}

static void watch_unlink(struct xsd_conn *c, struct xsd_watch **pp)
{
    struct xsd_watch *w = *pp;
    *pp = w->next;
    unsigned *count = domain_watch_count(c);
    if (count && *count)
        (*count)--;
    watch_free(w);
}

int watch_remove(struct xsd_conn *c, const char *path, const char *token)
{
    struct xsd_req r = { c->x, c, c->domid, NULL };
    char canon[XSD_PATH_BUF];
    if (path[0] == '@') {
        if (strlen(path) >= sizeof(canon))
            return EINVAL;
        strcpy(canon, path);
    } else if (path_canonical(&r, path, false, canon)) {
        return EINVAL;
    }
    for (struct xsd_watch **pp = &c->watches; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->path, canon) == 0 &&
            strcmp((*pp)->token, token) == 0) {
            watch_unlink(c, pp);
            return 0;
        }
    return ENOENT;
}

void watch_remove_all(struct xsd_conn *c)
{
    while (c->watches)
        watch_unlink(c, &c->watches);
}

/* Is path at or below the watched path? */
static bool path_within(const char *path, const char *watched)
{
    size_t len = strlen(watched);
    if (strcmp(watched, "/") == 0)
        return path[0] == '/';
    return strncmp(path, watched, len) == 0 &&
           (path[len] == '/' || path[len] == '\0');
}

/* xenstored's rule: the watcher must be able to read the node (before or
 * after the change) or its parent. */
static bool watch_permitted(struct xsd *x, unsigned domid, const char *path,
                            const struct xsd_node *node,
                            const struct xsd_perms *old)
{
    if (domid == 0)
        return true;
    if (path[0] == '@') {
        const struct xsd_perms *sp = special_perms(x, path);
        return sp && (perms_access(sp, domid) & XSD_PERM_READ);
    }
    if (old && (perms_access(old, domid) & XSD_PERM_READ))
        return true;
    if (!node)
        node = store_get(&x->store, path);
    if (!node)
        return false;
    if (perms_access(&node->perms, domid) & XSD_PERM_READ)
        return true;
    char parent[XSD_PATH_BUF];
    parent_path(path, parent);
    const struct xsd_node *p = store_get(&x->store, parent);
    return p && (perms_access(&p->perms, domid) & XSD_PERM_READ);
}

void watch_fire(struct xsd_req *r, const char *path, const struct xsd_node *node,
                bool exact, const struct xsd_perms *old)
{
    if (r->txn) {
        txn_queue_watch(r->txn, path, exact);
        return;
    }
    for (struct xsd_conn *c = r->x->conns; c; c = c->next) {
        if (c->dead || !c->watches ||
            !watch_permitted(r->x, c->domid, path, node, old))
            continue;
        for (struct xsd_watch *w = c->watches; w; w = w->next) {
            bool hit = exact || path[0] == '@' ? strcmp(path, w->path) == 0
                                               : path_within(path, w->path);
            if (hit)
                conn_send_event(c, path + w->prefix_len, w->token);
        }
    }
}
