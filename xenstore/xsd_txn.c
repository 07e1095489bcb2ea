/* Transactions, and the database view every request goes through.
 *
 * As xenstored does, a transaction does not copy the store up front: the
 * first time it touches a node it takes a private copy and remembers the
 * node's generation (XSD_NO_GEN if absent). Later reads and writes in the
 * transaction use the copy. Commit fails with EAGAIN if any node the
 * transaction read has changed in the live store since; otherwise it
 * applies the modified copies and only then fires their watches. Nodes it
 * wrote without reading first are not checked (the last writer wins).
 * Parents whose child lists change are always read first, so concurrent
 * creation or removal of siblings conflicts. */
#include "xsd_internal.h"

#include <stdlib.h>
#include <string.h>

/* xenstored's limit on nodes one unprivileged transaction may touch. */
#define TXN_NODES_MAX 1024

struct txn_ent {
    struct xsd_hent h;     /* h.key: the node's path */
    struct txn_ent *next;  /* in first-access order, as commit applies */
    struct xsd_node *node; /* the transaction's copy; NULL: absent */
    uint64_t gen;          /* live generation at first read */
    bool check_gen;        /* first access was a read */
    bool modified;
    bool fire, fire_exact; /* watch event queued for commit */
    bool had_perms;
    struct xsd_perms old_perms; /* perms at first access, for watches */
};

struct xsd_txn {
    struct xsd_txn *next;
    uint32_t id;
    struct xsd_htab ents;
    struct txn_ent *first, **tail;
    unsigned nents;
    int owned_delta; /* nodes owned by the connection's domain, +created */
};

static void ent_free(struct txn_ent *e)
{
    free(e->h.key);
    node_free(e->node);
    free(e->old_perms.p);
    free(e);
}

/* The entry for path, created from the live store on first access. */
static struct txn_ent *txn_ent(struct xsd_req *r, const char *path, bool read)
{
    struct xsd_txn *t = r->txn;
    struct xsd_hent *h = htab_get(&t->ents, path);
    if (h)
        return (struct txn_ent *)h;
    if (t->nents >= TXN_NODES_MAX && !req_priv(r)) {
        errno = ENOSPC;
        return NULL;
    }
    struct txn_ent *e = calloc(1, sizeof(*e));
    if (!e || !(e->h.key = strdup(path)))
        goto nomem;
    const struct xsd_node *live = store_get(&r->x->store, path);
    e->gen = live ? live->gen : XSD_NO_GEN;
    e->check_gen = read;
    if (live) {
        if (!(e->node = node_dup(live)) ||
            perms_copy(&e->old_perms, &live->perms))
            goto nomem;
        e->had_perms = true;
    }
    if (htab_add(&t->ents, &e->h))
        goto nomem;
    *t->tail = e;
    t->tail = &e->next;
    t->nents++;
    return e;
nomem:
    if (e)
        ent_free(e);
    errno = ENOMEM;
    return NULL;
}

const struct xsd_node *db_read(struct xsd_req *r, const char *path)
{
    const struct xsd_node *n;
    if (r->txn) {
        struct txn_ent *e = txn_ent(r, path, true);
        if (!e)
            return NULL;
        n = e->node;
    } else {
        n = store_get(&r->x->store, path);
    }
    if (!n)
        errno = ENOENT;
    return n;
}

/* Tracks the transaction's effect on the node quota of its domain. */
static void txn_count(struct xsd_req *r, const struct xsd_node *old,
                      const struct xsd_node *new)
{
    if (old && old->perms.p[0].id == r->domid)
        r->txn->owned_delta--;
    if (new && new->perms.p[0].id == r->domid)
        r->txn->owned_delta++;
}

/* Makes n (NULL: absent) the transaction's version of path; takes n. */
static int txn_set(struct xsd_req *r, const char *path, struct xsd_node *n)
{
    struct txn_ent *e = txn_ent(r, path, false);
    if (!e) {
        int err = errno;
        node_free(n);
        return err;
    }
    txn_count(r, e->node, n);
    node_free(e->node);
    e->node = n;
    e->modified = true;
    return 0;
}

int db_write(struct xsd_req *r, struct xsd_node *n)
{
    n->gen = ++r->x->store.generation;
    if (!r->txn)
        return store_put(&r->x->store, n);
    return txn_set(r, node_name(n), n);
}

int db_delete(struct xsd_req *r, const char *path)
{
    r->x->store.generation++;
    if (!r->txn) {
        store_del(&r->x->store, path);
        return 0;
    }
    return txn_set(r, path, NULL);
}

unsigned db_owned(struct xsd_req *r)
{
    int n = (int)store_owned(&r->x->store, r->domid);
    if (r->txn)
        n += r->txn->owned_delta;
    return n > 0 ? (unsigned)n : 0;
}

int txn_queue_watch(struct xsd_txn *t, const char *path, bool exact)
{
    struct xsd_hent *h = htab_get(&t->ents, path);
    if (!h)
        return EINVAL; /* every changed node has been accessed */
    struct txn_ent *e = (struct txn_ent *)h;
    /* A subtree event covers an exact one, not the other way round. */
    e->fire_exact = e->fire ? e->fire_exact && exact : exact;
    e->fire = true;
    return 0;
}

struct xsd_txn *txn_start(struct xsd_conn *c, uint32_t *id)
{
    if (c->domid != 0 && c->ntxns >= c->x->lim.transactions_per_conn) {
        errno = ENOSPC;
        return NULL;
    }
    struct xsd_txn *t = calloc(1, sizeof(*t));
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    /* Ids are per connection and never 0 (that means "no transaction"). */
    do {
        t->id = c->next_txn_id++;
    } while (t->id == 0 || txn_find(c, t->id));
    t->tail = &t->first;
    t->next = c->txns;
    c->txns = t;
    c->ntxns++;
    *id = t->id;
    return t;
}

struct xsd_txn *txn_find(struct xsd_conn *c, uint32_t id)
{
    for (struct xsd_txn *t = c->txns; t; t = t->next)
        if (t->id == id)
            return t;
    return NULL;
}

static void txn_free(struct xsd_txn *t)
{
    struct txn_ent *e = t->first;
    while (e) {
        struct txn_ent *next = e->next;
        ent_free(e);
        e = next;
    }
    htab_free(&t->ents);
    free(t);
}

static int txn_commit(struct xsd_conn *c, struct xsd_txn *t)
{
    struct xsd *x = c->x;
    for (struct txn_ent *e = t->first; e; e = e->next) {
        if (!e->check_gen)
            continue;
        const struct xsd_node *live = store_get(&x->store, e->h.key);
        if ((live ? live->gen : XSD_NO_GEN) != e->gen)
            return EAGAIN;
    }
    struct xsd_req live = { x, c, c->domid, NULL };
    if (c->domid != 0 && t->owned_delta > 0 &&
        db_owned(&live) + (unsigned)t->owned_delta >
            x->lim.nodes_per_domain)
        return ENOSPC;
    for (struct txn_ent *e = t->first; e; e = e->next) {
        if (!e->modified)
            continue;
        if (e->node) {
            int err = db_write(&live, e->node);
            e->node = NULL; /* now the store's */
            if (err)
                return err;
        } else {
            db_delete(&live, e->h.key);
        }
    }
    for (struct txn_ent *e = t->first; e; e = e->next)
        if (e->fire)
            watch_fire(&live, e->h.key, NULL, e->fire_exact,
                       e->had_perms ? &e->old_perms : NULL);
    return 0;
}

int txn_end(struct xsd_conn *c, struct xsd_txn *t, bool commit)
{
    for (struct xsd_txn **pp = &c->txns; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    c->ntxns--;
    int err = commit ? txn_commit(c, t) : 0;
    txn_free(t);
    return err;
}

void txn_abort_all(struct xsd_conn *c)
{
    while (c->txns)
        txn_end(c, c->txns, false);
}
