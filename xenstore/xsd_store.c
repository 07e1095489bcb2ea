/* The node store: nodes by path in a hash table, their permissions, and the
 * count of nodes each domain owns. */
#include "xsd_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- hash table ---------------------------------------------------------- */

static size_t hash_str(const char *s)
{
    size_t h = 14695981039346656037ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

struct xsd_hent *htab_get(const struct xsd_htab *t, const char *key)
{
    if (!t->nb)
        return NULL;
    for (struct xsd_hent *e = t->b[hash_str(key) & (t->nb - 1)]; e;
         e = e->hnext)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int htab_grow(struct xsd_htab *t)
{
    size_t nb = t->nb ? t->nb * 2 : 64;
    struct xsd_hent **b = calloc(nb, sizeof(*b));
    if (!b)
        return ENOMEM;
    for (size_t i = 0; i < t->nb; i++) {
        struct xsd_hent *e = t->b[i];
        while (e) {
            struct xsd_hent *next = e->hnext;
            size_t k = hash_str(e->key) & (nb - 1);
            e->hnext = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

int htab_add(struct xsd_htab *t, struct xsd_hent *e)
{
    if (t->n >= t->nb && htab_grow(t))
        return ENOMEM;
    size_t k = hash_str(e->key) & (t->nb - 1);
    e->hnext = t->b[k];
    t->b[k] = e;
    t->n++;
    return 0;
}

void htab_del(struct xsd_htab *t, struct xsd_hent *e)
{
    struct xsd_hent **pp = &t->b[hash_str(e->key) & (t->nb - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == e) {
            *pp = e->hnext;
            t->n--;
            return;
        }
}

void htab_free(struct xsd_htab *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

/* --- permissions --------------------------------------------------------- */

int perms_copy(struct xsd_perms *dst, const struct xsd_perms *src)
{
    struct xsd_perm *p = malloc(src->n * sizeof(*p));
    if (!p)
        return ENOMEM;
    memcpy(p, src->p, src->n * sizeof(*p));
    free(dst->p);
    dst->p = p;
    dst->n = src->n;
    return 0;
}

unsigned perms_access(const struct xsd_perms *p, unsigned domid)
{
    if (domid == 0 || p->p[0].id == domid)
        return XSD_PERM_READ | XSD_PERM_WRITE | XSD_PERM_OWNER;
    for (unsigned i = 1; i < p->n; i++)
        if (p->p[i].id == domid)
            return p->p[i].perms;
    return p->p[0].perms;
}

int perms_parse(const char *buf, unsigned n, struct xsd_perms *out)
{
    struct xsd_perm *p = calloc(n, sizeof(*p));
    if (!p)
        return ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        switch (*buf) {
        case 'r': p[i].perms = XSD_PERM_READ; break;
        case 'w': p[i].perms = XSD_PERM_WRITE; break;
        case 'b': p[i].perms = XSD_PERM_READ | XSD_PERM_WRITE; break;
        case 'n': p[i].perms = 0; break;
        default: goto inval;
        }
        buf++;
        char *end;
        errno = 0;
        unsigned long id = strtoul(buf, &end, 10);
        if (!*buf || *end || errno || id > 0xFFFF)
            goto inval;
        p[i].id = (uint32_t)id;
        buf = end + 1;
    }
    free(out->p);
    out->p = p;
    out->n = n;
    return 0;
inval:
    free(p);
    return EINVAL;
}

size_t perms_format(const struct xsd_perms *p, char *buf, size_t cap)
{
    static const char letter[] = "nwrb"; /* index: READ=1 | WRITE=2 bits */
    size_t len = 0;
    for (unsigned i = 0; i < p->n; i++) {
        int w = snprintf(buf + len, cap - len, "%c%u",
                         letter[((p->p[i].perms & XSD_PERM_READ) ? 2 : 0) |
                                ((p->p[i].perms & XSD_PERM_WRITE) ? 1 : 0)],
                         p->p[i].id);
        if (w < 0 || (size_t)w + 1 > cap - len)
            return 0;
        len += (size_t)w + 1; /* keep the NUL */
    }
    return len;
}

/* --- nodes --------------------------------------------------------------- */

struct xsd_node *node_new(const char *path, const struct xsd_perms *perms)
{
    struct xsd_node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->h.key = strdup(path);
    if (!n->h.key || perms_copy(&n->perms, perms)) {
        node_free(n);
        return NULL;
    }
    return n;
}

static char *memdup(const void *src, size_t len)
{
    char *p = malloc(len ? len : 1);
    if (p && len)
        memcpy(p, src, len);
    return p;
}

struct xsd_node *node_dup(const struct xsd_node *src)
{
    struct xsd_node *n = node_new(node_name(src), &src->perms);
    if (!n)
        return NULL;
    n->value = memdup(src->value, src->vlen);
    n->children = memdup(src->children, src->childlen);
    if (!n->value || !n->children) {
        node_free(n);
        return NULL;
    }
    n->vlen = src->vlen;
    n->childlen = src->childlen;
    n->gen = src->gen;
    return n;
}

void node_free(struct xsd_node *n)
{
    if (!n)
        return;
    free(n->h.key);
    free(n->value);
    free(n->children);
    free(n->perms.p);
    free(n);
}

int node_set_value(struct xsd_node *n, const void *value, uint32_t len)
{
    char *v = memdup(value, len);
    if (!v)
        return ENOMEM;
    free(n->value);
    n->value = v;
    n->vlen = len;
    return 0;
}

int node_add_child(struct xsd_node *n, const char *leaf)
{
    size_t len = strlen(leaf) + 1;
    char *c = realloc(n->children, n->childlen + len);
    if (!c)
        return ENOMEM;
    memcpy(c + n->childlen, leaf, len);
    n->children = c;
    n->childlen += (uint32_t)len;
    return 0;
}

void node_del_child(struct xsd_node *n, const char *leaf)
{
    size_t len = strlen(leaf) + 1;
    for (uint32_t off = 0; off < n->childlen;
         off += (uint32_t)strlen(n->children + off) + 1) {
        if (strcmp(n->children + off, leaf) == 0) {
            memmove(n->children + off, n->children + off + len,
                    n->childlen - off - len);
            n->childlen -= (uint32_t)len;
            return;
        }
    }
}

void parent_path(const char *path, char *out)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash && slash != path ? (size_t)(slash - path) : 1;
    memcpy(out, path, len);
    out[len] = '\0';
}

const char *leaf_name(const char *path)
{
    return strrchr(path, '/') + 1;
}

/* --- the live store ------------------------------------------------------ */

static struct xsd_owned *owned_slot(struct xsd_store *s, unsigned domid,
                                    bool create)
{
    for (size_t i = 0; i < s->nowned; i++)
        if (s->owned[i].domid == domid)
            return &s->owned[i];
    if (!create)
        return NULL;
    struct xsd_owned *o = realloc(s->owned, (s->nowned + 1) * sizeof(*o));
    if (!o)
        return NULL;
    s->owned = o;
    o[s->nowned] = (struct xsd_owned){ domid, 0 };
    return &o[s->nowned++];
}

static void owned_add(struct xsd_store *s, unsigned domid, int delta)
{
    struct xsd_owned *o = owned_slot(s, domid, true);
    if (o)
        o->count += (unsigned)delta;
}

unsigned store_owned(const struct xsd_store *s, unsigned domid)
{
    struct xsd_owned *o = owned_slot((struct xsd_store *)s, domid, false);
    return o ? o->count : 0;
}

struct xsd_node *store_get(const struct xsd_store *s, const char *path)
{
    struct xsd_hent *e = htab_get(&s->nodes, path);
    return e ? (struct xsd_node *)e : NULL;
}

int store_put(struct xsd_store *s, struct xsd_node *n)
{
    struct xsd_node *old = store_get(s, node_name(n));
    if (old) {
        htab_del(&s->nodes, &old->h);
        owned_add(s, old->perms.p[0].id, -1);
        node_free(old);
    }
    if (htab_add(&s->nodes, &n->h)) {
        node_free(n);
        return ENOMEM;
    }
    owned_add(s, n->perms.p[0].id, 1);
    return 0;
}

void store_del(struct xsd_store *s, const char *path)
{
    struct xsd_node *old = store_get(s, path);
    if (!old)
        return;
    htab_del(&s->nodes, &old->h);
    owned_add(s, old->perms.p[0].id, -1);
    node_free(old);
}

void store_free(struct xsd_store *s)
{
    for (size_t i = 0; i < s->nodes.nb; i++) {
        struct xsd_hent *e = s->nodes.b[i];
        while (e) {
            struct xsd_hent *next = e->hnext;
            node_free((struct xsd_node *)e);
            e = next;
        }
    }
    htab_free(&s->nodes);
    free(s->owned);
    s->owned = NULL;
    s->nowned = 0;
}
