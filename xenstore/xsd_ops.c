/* The xenstore operations: path rules, permission checks, node creation and
 * removal with their watch events, and the wire request dispatcher. */
#include "xsd_internal.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- paths and permissions ---------------------------------------------- */

int path_canonical(const struct xsd_req *r, const char *path, bool special,
                   char *out)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789-/_@";
    size_t len = strlen(path);
    if (len == 0 || len >= XENSTORE_PAYLOAD_MAX || strspn(path, ok) != len)
        return EINVAL;
    if (path[0] == '@') {
        if (!special)
            return EINVAL;
        strcpy(out, path);
        return 0;
    }
    if (path[0] == '/')
        strcpy(out, path);
    else
        snprintf(out, XSD_PATH_BUF, "/local/domain/%u/%s", r->domid, path);
    len = strlen(out);
    if ((len > 1 && out[len - 1] == '/') || strstr(out, "//"))
        return EINVAL;
    /* As xenstored: the limit counts what follows /local/domain/N/. */
    unsigned domid;
    int off = 0;
    if (sscanf(out, "/local/domain/%5u/%n", &domid, &off) != 1)
        off = 0;
    if (len - (size_t)off > XENSTORE_REL_PATH_MAX)
        return EINVAL;
    return 0;
}

/* A failed lookup must not tell an unprivileged caller whether a node
 * exists: unless the nearest existing ancestor grants perm, say EACCES. */
static int hide_errno(struct xsd_req *r, const char *path, int err,
                      unsigned perm)
{
    if (err == ENOMEM || req_priv(r))
        return err;
    char anc[XSD_PATH_BUF];
    strcpy(anc, path);
    while (strcmp(anc, "/") != 0) {
        char up[XSD_PATH_BUF];
        parent_path(anc, up);
        strcpy(anc, up);
        const struct xsd_node *n = db_read(r, anc);
        if (n)
            return (perms_access(&n->perms, r->domid) & perm) ? err : EACCES;
        if (errno != ENOENT)
            return errno;
    }
    return EACCES;
}

/* The node at canonical path if the requester has perm on it. */
static const struct xsd_node *node_get(struct xsd_req *r, const char *path,
                                       unsigned perm)
{
    const struct xsd_node *n = db_read(r, path);
    int err = n ? 0 : errno;
    if (n && (perms_access(&n->perms, r->domid) & perm) != perm)
        err = EACCES;
    if (!err)
        return n;
    errno = hide_errno(r, path, err, perm);
    return NULL;
}

const struct xsd_node *op_read(struct xsd_req *r, const char *path,
                               unsigned perm)
{
    char canon[XSD_PATH_BUF];
    int err = path_canonical(r, path, false, canon);
    if (err) {
        errno = err;
        return NULL;
    }
    return node_get(r, canon, perm);
}

/* --- creation ------------------------------------------------------------ */

/* Creates canonical path and its missing ancestors. New nodes inherit
 * their parent's permissions; an unprivileged creator owns them. */
static int node_create(struct xsd_req *r, const char *path, const void *value,
                       uint32_t len)
{
    /* Find the nearest existing ancestor and count the nodes to create. */
    char anc[XSD_PATH_BUF];
    strcpy(anc, path);
    unsigned missing = 1;
    const struct xsd_node *parent;
    for (;;) {
        char up[XSD_PATH_BUF];
        parent_path(anc, up);
        strcpy(anc, up);
        parent = db_read(r, anc);
        if (parent)
            break;
        if (errno != ENOENT || strcmp(anc, "/") == 0)
            return errno;
        missing++;
    }
    if (!req_priv(r) &&
        db_owned(r) + missing > r->x->lim.nodes_per_domain)
        return ENOSPC;

    /* Walk down: add each child to its parent, write both. */
    size_t anclen = strlen(anc);
    const char *rest = path + (anclen == 1 ? 1 : anclen + 1);
    char cur[XSD_PATH_BUF];
    strcpy(cur, anc);
    while (*rest) {
        const char *slash = strchr(rest, '/');
        size_t seg = slash ? (size_t)(slash - rest) : strlen(rest);
        size_t curlen = strlen(cur);
        if (curlen > 1)
            cur[curlen++] = '/';
        memcpy(cur + curlen, rest, seg);
        cur[curlen + seg] = '\0';
        rest += seg + (slash ? 1 : 0);

        struct xsd_node *child = node_new(cur, &parent->perms);
        struct xsd_node *up = node_dup(parent);
        if (!child || !up || node_add_child(up, leaf_name(cur)) ||
            (!*rest && node_set_value(child, value, len))) {
            node_free(child);
            node_free(up);
            return ENOMEM;
        }
        if (!req_priv(r))
            child->perms.p[0].id = r->domid;
        int err = db_write(r, up);
        if (!err)
            err = db_write(r, child);
        if (err)
            return err;
        parent = db_read(r, cur);
        if (!parent)
            return errno;
    }
    return 0;
}

int op_write(struct xsd_req *r, const char *path, const void *value,
             uint32_t len)
{
    char canon[XSD_PATH_BUF];
    int err = path_canonical(r, path, false, canon);
    if (err)
        return err;
    if (!req_priv(r) && len > r->x->lim.value_max)
        return ENOSPC;
    const struct xsd_node *n = node_get(r, canon, XSD_PERM_WRITE);
    if (n) {
        struct xsd_node *m = node_dup(n);
        if (!m || node_set_value(m, value, len)) {
            node_free(m);
            return ENOMEM;
        }
        err = db_write(r, m);
    } else if (errno == ENOENT) {
        err = node_create(r, canon, value, len);
    } else {
        return errno;
    }
    if (!err)
        watch_fire(r, canon, NULL, false, NULL);
    return err;
}

int op_mkdir(struct xsd_req *r, const char *path)
{
    char canon[XSD_PATH_BUF];
    int err = path_canonical(r, path, false, canon);
    if (err)
        return err;
    if (node_get(r, canon, XSD_PERM_WRITE))
        return 0; /* exists already: fine, value untouched */
    if (errno != ENOENT)
        return errno;
    err = node_create(r, canon, NULL, 0);
    if (!err)
        watch_fire(r, canon, NULL, false, NULL);
    return err;
}

/* --- removal ------------------------------------------------------------- */

/* Deletes the subtree at path (in buf, which it extends and restores while
 * descending), children first. Each node's watches fire just before it
 * goes, while its parent can still be read: exact for the descendants,
 * as a subtree event for the root. */
static int rm_walk(struct xsd_req *r, char *buf, bool root)
{
    const struct xsd_node *n = db_read(r, buf);
    if (!n)
        return errno == ENOENT ? 0 : errno;
    char *kids = malloc(n->childlen ? n->childlen : 1);
    if (!kids)
        return ENOMEM;
    uint32_t klen = n->childlen;
    if (klen)
        memcpy(kids, n->children, klen);
    size_t len = strlen(buf);
    int err = 0;
    for (uint32_t off = 0; off < klen && !err;
         off += (uint32_t)strlen(kids + off) + 1) {
        if (len + 1 + strlen(kids + off) >= XSD_PATH_BUF)
            continue; /* cannot exist: paths are bounded */
        snprintf(buf + len, XSD_PATH_BUF - len, "%s%s",
                 len > 1 ? "/" : "", kids + off);
        err = rm_walk(r, buf, false);
        buf[len] = '\0';
    }
    free(kids);
    if (err)
        return err;
    n = db_read(r, buf);
    if (n)
        watch_fire(r, buf, n, !root, NULL);
    return db_delete(r, buf);
}

int op_rm_tree(struct xsd_req *r, const char *path)
{
    char parent[XSD_PATH_BUF], buf[XSD_PATH_BUF];
    parent_path(path, parent);
    const struct xsd_node *p = db_read(r, parent);
    if (!p)
        return errno;
    struct xsd_node *up = node_dup(p);
    if (!up)
        return ENOMEM;
    strcpy(buf, path);
    int err = rm_walk(r, buf, true);
    if (err) {
        node_free(up);
        return err;
    }
    node_del_child(up, leaf_name(path));
    return db_write(r, up);
}

int op_rm(struct xsd_req *r, const char *path)
{
    char canon[XSD_PATH_BUF];
    int err = path_canonical(r, path, false, canon);
    if (err)
        return err;
    if (!node_get(r, canon, XSD_PERM_WRITE)) {
        if (errno != ENOENT)
            return errno;
        /* Absent is fine if the parent exists. */
        char parent[XSD_PATH_BUF];
        parent_path(canon, parent);
        return db_read(r, parent) ? 0 : ENOENT;
    }
    if (strcmp(canon, "/") == 0)
        return EINVAL;
    return op_rm_tree(r, canon);
}

/* --- permissions --------------------------------------------------------- */

int op_set_perms(struct xsd_req *r, const char *path,
                 const struct xsd_perms *perms)
{
    char canon[XSD_PATH_BUF];
    int err = path_canonical(r, path, true, canon);
    if (err)
        return err;
    if (canon[0] == '@') {
        struct xsd_perms *sp = special_perms(r->x, canon);
        if (!sp)
            return EINVAL;
        unsigned need = XSD_PERM_WRITE | XSD_PERM_OWNER;
        if ((perms_access(sp, r->domid) & need) != need)
            return EACCES;
        return perms_copy(sp, perms);
    }
    const struct xsd_node *n =
        node_get(r, canon, XSD_PERM_WRITE | XSD_PERM_OWNER);
    if (!n)
        return errno;
    /* Only the privileged may give a node away. */
    if (!req_priv(r) && perms->p[0].id != n->perms.p[0].id)
        return EPERM;
    struct xsd_perms old = { 0, NULL };
    struct xsd_node *m = node_dup(n);
    if (!m || perms_copy(&old, &n->perms) || perms_copy(&m->perms, perms)) {
        node_free(m);
        free(old.p);
        return ENOMEM;
    }
    err = db_write(r, m);
    if (!err)
        watch_fire(r, canon, NULL, false, &old);
    free(old.p);
    return err;
}

/* --- the wire dispatcher ------------------------------------------------- */

struct wire_req {
    struct xsd_req r;
    const struct xsd_sockmsg *hdr;
    const char *data;
    uint32_t len;
};

static void reply(struct wire_req *w, const void *data, uint32_t len)
{
    if (len > XENSTORE_PAYLOAD_MAX) {
        conn_send_error(w->r.conn, w->hdr, E2BIG);
        return;
    }
    conn_send(w->r.conn, w->hdr->type, w->hdr->req_id, w->hdr->tx_id, data,
              len);
}

static int ack(struct wire_req *w, int err)
{
    if (!err)
        reply(w, "OK", 3);
    return err;
}

/* The one argument of a request: the payload is exactly one string. */
static const char *onearg(const struct wire_req *w)
{
    if (!w->len || memchr(w->data, 0, w->len) != w->data + w->len - 1)
        return NULL;
    return w->data;
}

static unsigned count_strings(const struct wire_req *w)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < w->len; i++)
        n += w->data[i] == '\0';
    return n;
}

/* The node the request's one argument names, readable by the requester;
 * NULL with errno. */
static const struct xsd_node *wire_node(struct wire_req *w)
{
    const char *path = onearg(w);
    if (!path) {
        errno = EINVAL;
        return NULL;
    }
    return op_read(&w->r, path, XSD_PERM_READ);
}

/* The string after the first; only where count_strings(w) >= 2. */
static const char *second_arg(const struct wire_req *w)
{
    return w->data + strlen(w->data) + 1;
}

static int wire_read(struct wire_req *w)
{
    const struct xsd_node *n = wire_node(w);
    if (!n)
        return errno;
    reply(w, n->value, n->vlen);
    return 0;
}

static int wire_directory(struct wire_req *w)
{
    const struct xsd_node *n = wire_node(w);
    if (!n)
        return errno;
    reply(w, n->children, n->childlen);
    return 0;
}

/* Children from a byte offset, prefixed by the node's generation so the
 * client can tell if the list changed between parts; the last part ends
 * with an empty string. */
static int wire_directory_part(struct wire_req *w)
{
    if (count_strings(w) != 2)
        return EINVAL;
    const struct xsd_node *n = op_read(&w->r, w->data, XSD_PERM_READ);
    if (!n)
        return errno;
    unsigned long off = strtoul(second_arg(w), NULL, 10);
    char out[XENSTORE_PAYLOAD_MAX];
    uint32_t len =
        (uint32_t)snprintf(out, sizeof(out), "%llu", (unsigned long long)n->gen) + 1;
    uint32_t pos = off < n->childlen ? (uint32_t)off : n->childlen;
    /* Whole names only, keeping room for the final empty string. */
    while (pos < n->childlen) {
        uint32_t name = (uint32_t)strlen(n->children + pos) + 1;
        if (len + name + 1 > sizeof(out))
            break;
        memcpy(out + len, n->children + pos, name);
        len += name;
        pos += name;
    }
    if (pos >= n->childlen)
        out[len++] = '\0';
    reply(w, out, len);
    return 0;
}

static int wire_get_perms(struct wire_req *w)
{
    const char *path = onearg(w);
    char canon[XSD_PATH_BUF], out[XENSTORE_PAYLOAD_MAX];
    if (!path || path_canonical(&w->r, path, true, canon))
        return EINVAL;
    const struct xsd_perms *p;
    if (canon[0] == '@') {
        if (!(p = special_perms(w->r.x, canon)))
            return ENOENT;
        if (!(perms_access(p, w->r.domid) & XSD_PERM_READ))
            return EACCES;
    } else {
        const struct xsd_node *n = node_get(&w->r, canon, XSD_PERM_READ);
        if (!n)
            return errno;
        p = &n->perms;
    }
    size_t len = perms_format(p, out, sizeof(out));
    if (!len)
        return E2BIG;
    reply(w, out, (uint32_t)len);
    return 0;
}

static int wire_set_perms(struct wire_req *w)
{
    unsigned n = count_strings(w);
    if (n < 2)
        return EINVAL;
    n--;
    if (w->r.domid != 0 && n > w->r.x->lim.perms_per_node)
        return ENOSPC;
    struct xsd_perms perms = { 0, NULL };
    int err = perms_parse(second_arg(w), n, &perms);
    if (!err)
        err = ack(w, op_set_perms(&w->r, w->data, &perms));
    free(perms.p);
    return err;
}

static int wire_write(struct wire_req *w)
{
    const char *nul = memchr(w->data, 0, w->len);
    if (!nul)
        return EINVAL;
    uint32_t off = (uint32_t)(nul - w->data) + 1;
    return ack(w, op_write(&w->r, w->data, w->data + off, w->len - off));
}

static int wire_mkdir(struct wire_req *w)
{
    const char *path = onearg(w);
    return path ? ack(w, op_mkdir(&w->r, path)) : EINVAL;
}

static int wire_rm(struct wire_req *w)
{
    const char *path = onearg(w);
    return path ? ack(w, op_rm(&w->r, path)) : EINVAL;
}

static int wire_watch(struct wire_req *w)
{
    /* xenstored accepts trailing strings (a depth it may not support). */
    if (count_strings(w) < 2)
        return EINVAL;
    return watch_add(w->r.conn, w->data, second_arg(w), w->hdr->req_id);
}

static int wire_unwatch(struct wire_req *w)
{
    if (count_strings(w) < 2)
        return EINVAL;
    return ack(w, watch_remove(w->r.conn, w->data, second_arg(w)));
}

static int wire_transaction_start(struct wire_req *w)
{
    if (w->r.txn)
        return EBUSY; /* no nesting */
    uint32_t id;
    if (!txn_start(w->r.conn, &id))
        return errno;
    char out[16];
    int len = snprintf(out, sizeof(out), "%u", id);
    reply(w, out, (uint32_t)len + 1);
    return 0;
}

static int wire_transaction_end(struct wire_req *w)
{
    const char *arg = onearg(w);
    if (!arg || (strcmp(arg, "T") != 0 && strcmp(arg, "F") != 0))
        return EINVAL;
    if (!w->r.txn)
        return ENOENT;
    struct xsd_txn *t = w->r.txn;
    w->r.txn = NULL;
    return ack(w, txn_end(w->r.conn, t, arg[0] == 'T'));
}

/* A domid argument, as xenstored reads it (atoi). */
static int domid_arg(const struct wire_req *w, unsigned *domid)
{
    const char *arg = onearg(w);
    if (!arg)
        return EINVAL;
    *domid = (unsigned)atoi(arg);
    return 0;
}

static int wire_introduce(struct wire_req *w)
{
    if (count_strings(w) < 3)
        return EINVAL;
    const char *domid = w->data, *gfn = second_arg(w);
    const char *port = gfn + strlen(gfn) + 1;
    if (atoi(port) <= 0)
        return EINVAL; /* xenstored needs an event channel; we ignore it */
    if (xsd_domain_introduce(w->r.x, (unsigned)atoi(domid)))
        return errno;
    return ack(w, 0);
}

static int wire_release(struct wire_req *w)
{
    unsigned domid;
    if (domid_arg(w, &domid) || domid == 0)
        return EINVAL;
    return ack(w, xsd_domain_release(w->r.x, domid) ? errno : 0);
}

static int wire_resume(struct wire_req *w)
{
    unsigned domid;
    if (domid_arg(w, &domid) || domid == 0)
        return EINVAL;
    return ack(w, domain_find(w->r.x, domid) ? 0 : ENOENT);
}

static int wire_get_domain_path(struct wire_req *w)
{
    unsigned domid;
    if (domid_arg(w, &domid))
        return EINVAL;
    char out[32];
    int len = snprintf(out, sizeof(out), "/local/domain/%u", domid);
    reply(w, out, (uint32_t)len + 1);
    return 0;
}

static int wire_is_domain_introduced(struct wire_req *w)
{
    unsigned domid;
    if (domid_arg(w, &domid))
        return EINVAL;
    bool yes = domid == 0 || domid == XSD_DOMID_SELF ||
               xsd_domain_introduced(w->r.x, domid);
    reply(w, yes ? "T" : "F", 2);
    return 0;
}

static int wire_reset_watches(struct wire_req *w)
{
    watch_remove_all(w->r.conn);
    txn_abort_all(w->r.conn);
    w->r.txn = NULL;
    return ack(w, 0);
}

static int wire_control(struct wire_req *w)
{
    static const char help[] = "check\nhelp\nprint\n";
    if (!memchr(w->data, 0, w->len))
        return EINVAL;
    if (strcmp(w->data, "check") == 0)
        return ack(w, 0);
    if (strcmp(w->data, "help") == 0) {
        reply(w, help, sizeof(help));
        return 0;
    }
    if (strcmp(w->data, "print") == 0 && count_strings(w) >= 2) {
        log_info("xenstored", "%s", second_arg(w));
        return ack(w, 0);
    }
    return EINVAL;
}

enum { NOTID = 1, PRIV = 2 };
static const struct {
    int (*fn)(struct wire_req *w);
    unsigned flags;
} wire_ops[XS_TYPE_COUNT] = {
    [XS_CONTROL] = { wire_control, PRIV },
    [XS_DIRECTORY] = { wire_directory, 0 },
    [XS_READ] = { wire_read, 0 },
    [XS_GET_PERMS] = { wire_get_perms, 0 },
    [XS_WATCH] = { wire_watch, NOTID },
    [XS_UNWATCH] = { wire_unwatch, NOTID },
    [XS_TRANSACTION_START] = { wire_transaction_start, 0 },
    [XS_TRANSACTION_END] = { wire_transaction_end, 0 },
    [XS_INTRODUCE] = { wire_introduce, PRIV },
    [XS_RELEASE] = { wire_release, PRIV },
    [XS_GET_DOMAIN_PATH] = { wire_get_domain_path, 0 },
    [XS_WRITE] = { wire_write, 0 },
    [XS_MKDIR] = { wire_mkdir, 0 },
    [XS_RM] = { wire_rm, 0 },
    [XS_SET_PERMS] = { wire_set_perms, 0 },
    [XS_IS_DOMAIN_INTRODUCED] = { wire_is_domain_introduced, PRIV },
    [XS_RESUME] = { wire_resume, PRIV },
    [XS_RESET_WATCHES] = { wire_reset_watches, 0 },
    [XS_DIRECTORY_PART] = { wire_directory_part, 0 },
};

void ops_dispatch(struct xsd_conn *c, const struct xsd_sockmsg *hdr,
                  const char *payload)
{
    struct wire_req w = { { c->x, c, c->domid, NULL }, hdr, payload,
                          hdr->len };
    /* As xenstored: unknown or reply-only types get ENOSYS (SET_TARGET
     * too, which the simulator does not model). */
    if (hdr->type >= XS_TYPE_COUNT || !wire_ops[hdr->type].fn) {
        conn_send_error(c, hdr, ENOSYS);
        return;
    }
    if ((wire_ops[hdr->type].flags & PRIV) && c->domid != 0) {
        conn_send_error(c, hdr, EACCES);
        return;
    }
    if (!(wire_ops[hdr->type].flags & NOTID) && hdr->tx_id) {
        w.r.txn = txn_find(c, hdr->tx_id);
        if (!w.r.txn) {
            conn_send_error(c, hdr, ENOENT);
            return;
        }
    }
    int err = wire_ops[hdr->type].fn(&w);
    if (err)
        conn_send_error(c, hdr, err);
}
