/* Grants on xensim. The granting domain's table and memory are memfds from
 * the host; this file does what Xen does on a grant map, in the mapper's
 * process: check the entry (granted to us, GTF_permit_access, not read-only
 * for a write), set GTF_reading/GTF_writing with cmpxchg while pinned, then
 * mmap the granted frame of the domain's memory. Frontends share pages by
 * writing entries of their own domain's table. */
#include "xenif_impl.h"
#include "xensim_client.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xen/xen.h>
#include <xen/grant_table.h>

/* The proto's two-word view of an entry is grant_entry_v1_t. */
_Static_assert(sizeof(grant_entry_v1_t) == sizeof(struct xensim_gnt_entry),
               "grant entry size");
_Static_assert(offsetof(grant_entry_v1_t, flags) == 0 &&
               offsetof(grant_entry_v1_t, domid) == 2 &&
               offsetof(grant_entry_v1_t, frame) == 4, "grant entry layout");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "flags | domid << 16 assumes little endian");
_Static_assert(XENSIM_GTF_permit_access == GTF_permit_access &&
               XENSIM_GTF_readonly == GTF_readonly &&
               XENSIM_GTF_reading == GTF_reading &&
               XENSIM_GTF_writing == GTF_writing, "GTF values");

#define PAGE XENIF_PAGE_SIZE
#define IN_USE (GTF_reading | GTF_writing)
#define POOL_KEEP (4 * XENSIM_BATCH) /* free frames/refs kept before giving back */

/* A domain whose grant table and memory we have. */
struct gnt_dom {
    xenif_domid domid;
    int mem_fd;
    uint32_t mem_pages;
    struct xensim_gnt_layout *tab;
    struct gnt_dom *next;
};

struct gnt_map {
    void *addr;
    unsigned count;
    bool write;
    struct gnt_dom *dom;
    struct gnt_map *next;
    xenif_gref refs[];
};

struct gnt_share {
    void *addr;
    unsigned count;
    bool writable;
    xenif_domid domid;         /* granted to */
    struct gnt_share *next;
    uint32_t ids[];            /* count frames, then count refs */
};

struct id_pool {
    uint32_t *ids;
    size_t n, cap;
};

struct sim_gnt {
    int sock;
    xenif_domid self;
    struct gnt_dom *doms;
    struct gnt_map *maps;
    struct gnt_share *shares;
    struct id_pool frames, refs; /* allocated to us by the host, unused */
};

/* ---- domains ----------------------------------------------------------- */

/* Forgets every attached domain's grant table and memory. */
static void drop_doms(struct sim_gnt *g)
{
    while (g->doms) {
        struct gnt_dom *d = g->doms;
        g->doms = d->next;
        munmap(d->tab, sizeof(*d->tab));
        close(d->mem_fd);
        free(d);
    }
}

static struct gnt_dom *find_dom(struct sim_gnt *g, xenif_domid domid)
{
    for (struct gnt_dom *d = g->doms; d; d = d->next)
        if (d->domid == domid)
            return d;
    return NULL;
}

static struct gnt_dom *attach(struct sim_gnt *g, xenif_domid domid)
{
    struct gnt_dom *d = find_dom(g, domid);
    if (d)
        return d;
    if (!(d = calloc(1, sizeof(*d)))) {
        errno = ENOMEM;
        return NULL;
    }
    d->tab = xensim_gnt_attach(g->sock, domid, PROT_READ | PROT_WRITE,
                               &d->mem_fd, &d->mem_pages);
    if (!d->tab) {
        free(d);
        return NULL;
    }
    d->domid = domid;
    d->next = g->doms;
    g->doms = d;
    return d;
}

/* ---- pinning: Xen's active-entry logic --------------------------------- */

/* The lock word lives in the granting domain's grant-table memory, which
 * that guest can write: a guest holding it forever must cost us one failed
 * map, never a hung backend. Mappers hold it for a few instructions, so
 * 100 ms of waiting means someone is misbehaving. */
#define LOCK_GIVE_UP_NS 100000000L

static bool lock(struct xensim_gnt_active *a)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (__atomic_exchange_n(&a->lock, 1, __ATOMIC_ACQUIRE)) {
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000000000L +
                (now.tv_nsec - start.tv_nsec) > LOCK_GIVE_UP_NS)
            return false;
    }
    return true;
}

static void unlock(struct xensim_gnt_active *a)
{
    __atomic_store_n(&a->lock, 0, __ATOMIC_RELEASE);
}

/* Clears the in-use flags no pin needs any more. Called locked. */
static void settle(struct xensim_gnt_entry *e, const struct xensim_gnt_active *a)
{
    uint32_t clear = 0;
    if (a->pins_rw == 0)
        clear |= GTF_writing;
    if (a->pins_rw == 0 && a->pins_ro == 0)
        clear |= GTF_reading;
    if (clear)
        __atomic_and_fetch(&e->flags_domid, ~clear, __ATOMIC_RELEASE);
}

/* Pins grant ref of domain d for us. Returns GNTST_okay and the frame, or a
 * GNTST_* error with the entry unchanged. */
static int pin(struct sim_gnt *g, struct gnt_dom *d, xenif_gref ref, bool write,
               uint32_t *frame)
{
    if (__atomic_load_n(&d->tab->status.dead, __ATOMIC_ACQUIRE))
        return GNTST_bad_domain;
    if (ref >= XENSIM_GNT_ENTRIES)
        return GNTST_bad_gntref;
    struct xensim_gnt_entry *e = &d->tab->entries[ref];
    struct xensim_gnt_active *a = &d->tab->active[ref];
    int rc = GNTST_okay;
    if (!lock(a))
        return GNTST_general_error;
    if ((write ? a->pins_rw : a->pins_ro) == UINT16_MAX) {
        rc = GNTST_no_space;
        goto out;
    }
    uint32_t old = __atomic_load_n(&e->flags_domid, __ATOMIC_ACQUIRE), new;
    do {
        uint16_t flags = (uint16_t)old, domid = (uint16_t)(old >> 16);
        if ((flags & GTF_type_mask) != GTF_permit_access || domid != g->self ||
            (write && (flags & GTF_readonly))) {
            rc = GNTST_general_error; /* Xen: "Bad flags or domid" */
            goto out;
        }
        new = old | GTF_reading | (write ? GTF_writing : 0);
    } while (!__atomic_compare_exchange_n(&e->flags_domid, &old, new, false,
                                          __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    /* The guest wrote frame before flags (release); our acquire orders it. */
    *frame = __atomic_load_n(&e->frame, __ATOMIC_RELAXED);
    if (*frame >= d->mem_pages) {
        settle(e, a);
        rc = GNTST_bad_page;
        goto out;
    }
    if (write)
        a->pins_rw++;
    else
        a->pins_ro++;
out:
    unlock(a);
    return rc;
}

static void unpin(struct gnt_dom *d, xenif_gref ref, bool write)
{
    struct xensim_gnt_active *a = &d->tab->active[ref];
    /* If the guest holds the lock, leave its pins and flags as they are:
     * our mapping goes regardless, only the guest's view of it suffers. */
    if (!lock(a))
        return;
    uint16_t *pins = write ? &a->pins_rw : &a->pins_ro;
    if (*pins)
        (*pins)--;
    settle(&d->tab->entries[ref], a);
    unlock(a);
}

static int gntst_errno(int st)
{
    switch (st) {
    case GNTST_bad_domain: return ESRCH;
    case GNTST_bad_gntref: return EINVAL;
    case GNTST_bad_page: return EFAULT;
    case GNTST_no_space: return ENOSPC;
    default: return EPERM;
    }
}

/* ---- open / close ------------------------------------------------------ */

static void *sim_gnt_open(const struct xenif_config *cfg, char *err, size_t errlen)
{
    unsigned self;
    int sock = xensim_connect_config(cfg, &self, err, errlen);
    if (sock < 0)
        return NULL;
    struct sim_gnt *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        close(sock);
        return NULL;
    }
    g->self = (xenif_domid)self;
    g->sock = sock;
    return g;
}

static void sim_gnt_close(void *h)
{
    struct sim_gnt *g = h;
    if (!g)
        return;
    while (g->maps) {
        struct gnt_map *m = g->maps;
        g->maps = m->next;
        munmap(m->addr, (size_t)m->count * PAGE);
        for (unsigned i = 0; i < m->count; i++)
            unpin(m->dom, m->refs[i], m->write);
        free(m);
    }
    /* Shared pages and pooled refs: the host revokes what nobody maps when
     * our connection closes. */
    while (g->shares) {
        struct gnt_share *s = g->shares;
        g->shares = s->next;
        munmap(s->addr, (size_t)s->count * PAGE);
        free(s);
    }
    drop_doms(g);
    free(g->frames.ids);
    free(g->refs.ids);
    close(g->sock);
    free(g);
}

/* ---- map / unmap / copy (backends) -------------------------------------- */

/* count pages of d's memory at frames[], mapped contiguously: one mmap per
 * run of consecutive frames (a frontend's pages often are). */
static void *map_frames(struct gnt_dom *d, const uint32_t *frames, unsigned count,
                        int prot)
{
    size_t len = (size_t)count * PAGE;
    unsigned first_run = 1;
    while (first_run < count && frames[first_run] == frames[0] + first_run)
        first_run++;
    if (first_run == count) { /* one run: no reservation needed */
        void *p = mmap(NULL, len, prot, MAP_SHARED, d->mem_fd,
                       (off_t)frames[0] * PAGE);
        return p == MAP_FAILED ? NULL : p;
    }
    uint8_t *base = mmap(NULL, len, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    for (unsigned i = 0, run; i < count; i += run) {
        for (run = 1; i + run < count && frames[i + run] == frames[i] + run; run++)
            ;
        if (mmap(base + (size_t)i * PAGE, (size_t)run * PAGE, prot,
                 MAP_SHARED | MAP_FIXED, d->mem_fd,
                 (off_t)frames[i] * PAGE) == MAP_FAILED) {
            int e = errno;
            munmap(base, len);
            errno = e;
            return NULL;
        }
    }
    return base;
}

static void *sim_gnt_map(void *h, xenif_domid domid, unsigned count,
                         const xenif_gref *refs, int prot)
{
    struct sim_gnt *g = h;
    bool write = prot & XENIF_GNT_WRITE;
    if (count == 0 || count > XENSIM_GNT_ENTRIES ||
        (prot != XENIF_GNT_READ && prot != (XENIF_GNT_READ | XENIF_GNT_WRITE))) {
        errno = EINVAL;
        return NULL;
    }
    struct gnt_dom *d = attach(g, domid == XENIF_DOMID_SELF ? g->self : domid);
    if (!d)
        return NULL;
    struct gnt_map *m = malloc(sizeof(*m) + count * sizeof(m->refs[0]));
    uint32_t *frames = malloc(count * sizeof(*frames));
    unsigned pinned = 0;
    int e = ENOMEM;
    if (!m || !frames)
        goto fail;
    for (; pinned < count; pinned++) {
        int st = pin(g, d, refs[pinned], write, &frames[pinned]);
        if (st != GNTST_okay) {
            e = gntst_errno(st);
            goto fail;
        }
        m->refs[pinned] = refs[pinned];
    }
    m->addr = map_frames(d, frames, count,
                         write ? PROT_READ | PROT_WRITE : PROT_READ);
    if (!m->addr) {
        e = errno;
        goto fail;
    }
    free(frames);
    m->count = count;
    m->write = write;
    m->dom = d;
    m->next = g->maps;
    g->maps = m;
    return m->addr;
fail:
    while (pinned > 0)
        unpin(d, refs[--pinned], write);
    free(frames);
    free(m);
    errno = e;
    return NULL;
}

static int sim_gnt_unmap(void *h, void *addr, unsigned count)
{
    struct sim_gnt *g = h;
    for (struct gnt_map **pp = &g->maps; *pp; pp = &(*pp)->next) {
        struct gnt_map *m = *pp;
        if (m->addr != addr)
            continue;
        if (m->count != count)
            break;
        *pp = m->next;
        munmap(m->addr, (size_t)count * PAGE);
        for (unsigned i = 0; i < count; i++)
            unpin(m->dom, m->refs[i], m->write);
        free(m);
        return 0;
    }
    errno = EINVAL;
    return -1;
}

static int16_t copy_one(struct sim_gnt *g, const struct xenif_gnt_copy *s)
{
    if ((uint32_t)s->offset + s->len > PAGE || (s->len && !s->local))
        return GNTST_bad_copy_arg;
    struct gnt_dom *d = attach(g, s->domid == XENIF_DOMID_SELF ? g->self : s->domid);
    if (!d)
        return GNTST_bad_domain;
    uint32_t frame;
    int st = pin(g, d, s->ref, s->to_guest, &frame);
    if (st != GNTST_okay)
        return (int16_t)st;
    off_t off = (off_t)frame * PAGE + s->offset;
    ssize_t n = s->to_guest ? pwrite(d->mem_fd, s->local, s->len, off)
                            : pread(d->mem_fd, s->local, s->len, off);
    unpin(d, s->ref, s->to_guest);
    return n == s->len ? GNTST_okay : GNTST_general_error;
}

static int sim_gnt_copy(void *h, struct xenif_gnt_copy *segs, unsigned count)
{
    if (count && !segs) {
        errno = EINVAL;
        return -1;
    }
    for (unsigned i = 0; i < count; i++)
        segs[i].status = copy_one(h, &segs[i]);
    return 0;
}

/* ---- share / unshare (frontends) --------------------------------------- */

static int pool_push(struct id_pool *p, uint32_t id)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : XENSIM_BATCH;
        uint32_t *ids = realloc(p->ids, cap * sizeof(*ids));
        if (!ids)
            return -1;
        p->ids = ids;
        p->cap = cap;
    }
    p->ids[p->n++] = id;
    return 0;
}

/* Asks the host for frames and refs until the pools hold `count` of each.
 * Asks a batch at a time so frontends granting per request rarely need a
 * round trip; falls back to the exact need when memory is short. */
static int refill(struct sim_gnt *g, unsigned count)
{
    while (g->frames.n < count || g->refs.n < count) {
        unsigned need_f = count > g->frames.n ? count - (unsigned)g->frames.n : 0;
        unsigned need_r = count > g->refs.n ? count - (unsigned)g->refs.n : 0;
        struct xensim_req req;
        struct xensim_rsp rsp;
        xensim_req_init(&req, XENSIM_OP_GNT_ALLOC);
        req.nframes = need_f ? XENSIM_BATCH : 0;
        req.nrefs = need_r ? XENSIM_BATCH : 0;
        if (xensim_call(g->sock, &req, &rsp, NULL, NULL) < 0) {
            if (errno != ENOMEM)
                return -1;
            req.nframes = need_f < XENSIM_BATCH ? need_f : XENSIM_BATCH;
            req.nrefs = need_r < XENSIM_BATCH ? need_r : XENSIM_BATCH;
            if (xensim_call(g->sock, &req, &rsp, NULL, NULL) < 0)
                return -1;
        }
        if (rsp.nframes > XENSIM_BATCH || rsp.nrefs > XENSIM_BATCH) {
            errno = EPROTO;
            return -1;
        }
        for (uint32_t i = 0; i < rsp.nframes; i++)
            if (pool_push(&g->frames, rsp.frames[i]) < 0)
                return -1;
        for (uint32_t i = 0; i < rsp.nrefs; i++)
            if (pool_push(&g->refs, rsp.refs[i]) < 0)
                return -1;
    }
    return 0;
}

/* Gives the host back what the pools hold beyond POOL_KEEP. */
static void trim(struct sim_gnt *g)
{
    while (g->frames.n > POOL_KEEP || g->refs.n > POOL_KEEP) {
        struct xensim_req req;
        struct xensim_rsp rsp;
        xensim_req_init(&req, XENSIM_OP_GNT_FREE);
        while (req.nframes < XENSIM_BATCH && g->frames.n > POOL_KEEP)
            req.frames[req.nframes++] = g->frames.ids[--g->frames.n];
        while (req.nrefs < XENSIM_BATCH && g->refs.n > POOL_KEEP)
            req.refs[req.nrefs++] = g->refs.ids[--g->refs.n];
        if (xensim_call(g->sock, &req, &rsp, NULL, NULL) < 0)
            return; /* the host reclaims them when we disconnect */
    }
}

static void *sim_gnt_share(void *h, xenif_domid domid, unsigned count,
                           xenif_gref *refs, bool writable)
{
    struct sim_gnt *g = h;
    if (domid == XENIF_DOMID_SELF)
        domid = g->self;
    if (count == 0 || count > XENSIM_GNT_ENTRIES - XENSIM_GNT_RESERVED ||
        domid > XENSIM_DOMID_MAX || !refs) {
        errno = EINVAL;
        return NULL;
    }
    struct gnt_dom *self = attach(g, g->self);
    struct gnt_share *s = malloc(sizeof(*s) + 2 * count * sizeof(s->ids[0]));
    if (!self || !s || refill(g, count) < 0) {
        int e = !s ? ENOMEM : errno;
        free(s);
        errno = e;
        return NULL;
    }
    uint32_t *frames = s->ids, *grefs = s->ids + count;
    memcpy(frames, g->frames.ids + g->frames.n - count, count * sizeof(*frames));
    memcpy(grefs, g->refs.ids + g->refs.n - count, count * sizeof(*grefs));
    s->addr = map_frames(self, frames, count, PROT_READ | PROT_WRITE);
    if (!s->addr) {
        int e = errno;
        free(s);
        errno = e;
        return NULL;
    }
    g->frames.n -= count;
    g->refs.n -= count;
    /* Pages come back from earlier unshares dirty: hand them out zeroed. */
    memset(s->addr, 0, (size_t)count * PAGE);
    uint32_t flags = GTF_permit_access | (writable ? 0 : GTF_readonly);
    for (unsigned i = 0; i < count; i++) {
        struct xensim_gnt_entry *e = &self->tab->entries[grefs[i]];
        /* Frame and domid before flags, as Xen requires of guests. */
        __atomic_store_n(&e->frame, frames[i], __ATOMIC_RELAXED);
        __atomic_store_n(&e->flags_domid, flags | (uint32_t)domid << 16,
                         __ATOMIC_RELEASE);
        refs[i] = grefs[i];
    }
    s->count = count;
    s->writable = writable;
    s->domid = domid;
    s->next = g->shares;
    g->shares = s;
    return s->addr;
}

static int sim_gnt_unshare(void *h, void *addr, unsigned count)
{
    struct sim_gnt *g = h;
    struct gnt_share **pp = &g->shares;
    while (*pp && (*pp)->addr != addr)
        pp = &(*pp)->next;
    struct gnt_share *s = *pp;
    struct gnt_dom *self = find_dom(g, g->self);
    if (!s || s->count != count || !self) {
        errno = EINVAL;
        return -1;
    }
    uint32_t *frames = s->ids, *grefs = s->ids + count;
    uint32_t *saved = malloc(count * sizeof(*saved));
    if (!saved) {
        errno = ENOMEM;
        return -1;
    }
    /* Revoke each entry unless mapped, as gnttab_end_foreign_access_ref
     * does; all or nothing. */
    for (unsigned i = 0; i < count; i++) {
        uint32_t *word = &self->tab->entries[grefs[i]].flags_domid;
        uint32_t old = __atomic_load_n(word, __ATOMIC_ACQUIRE);
        do {
            if (old & IN_USE) {
                while (i-- > 0)
                    __atomic_store_n(&self->tab->entries[grefs[i]].flags_domid,
                                     saved[i], __ATOMIC_RELEASE);
                free(saved);
                errno = EBUSY;
                return -1;
            }
        } while (!__atomic_compare_exchange_n(word, &old, 0, false,
                                              __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
        saved[i] = old;
    }
    free(saved);
    *pp = s->next;
    munmap(s->addr, (size_t)count * PAGE);
    for (unsigned i = 0; i < count; i++)
        if (pool_push(&g->frames, frames[i]) < 0 || pool_push(&g->refs, grefs[i]) < 0)
            break; /* out of memory: the host reclaims them at disconnect */
    free(s);
    trim(g);
    return 0;
}

/* ---- moving to another host (xensim_guest.h) --------------------------- */

/* Claims frames/refs on the new host through sock, `n` at a time; ok[i]
 * says which it got. */
static int claim(int sock, const uint32_t *ids, size_t n, bool frames, bool *ok)
{
    for (size_t done = 0; done < n;) {
        struct xensim_req req;
        struct xensim_rsp rsp;
        xensim_req_init(&req, XENSIM_OP_GNT_CLAIM);
        uint32_t k = n - done > XENSIM_BATCH ? XENSIM_BATCH : (uint32_t)(n - done);
        memcpy(frames ? req.frames : req.refs, ids + done, k * sizeof(uint32_t));
        if (frames)
            req.nframes = k;
        else
            req.nrefs = k;
        if (xensim_call(sock, &req, &rsp, NULL, NULL) < 0)
            return -1;
        for (uint32_t i = 0; i < k; i++)
            ok[done + i] = (frames ? rsp.frames[i] : rsp.refs[i]) == 1;
        done += k;
    }
    return 0;
}

/* Keeps the pool entries the new host let us claim. */
static int claim_pool(int sock, struct id_pool *p, bool frames)
{
    if (!p->n)
        return 0;
    bool *ok = calloc(p->n, sizeof(*ok));
    if (!ok || claim(sock, p->ids, p->n, frames, ok) < 0) {
        free(ok);
        return -1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < p->n; i++)
        if (ok[i])
            p->ids[kept++] = p->ids[i];
    p->n = kept;
    free(ok);
    return 0;
}

int xensim_gnt_move(void *h, const char *dir, unsigned domid, char *err,
                    size_t errlen)
{
    struct sim_gnt *g = h;
    if (g->maps) {
        snprintf(err, errlen, "this process maps other domains' grants; it "
                 "cannot move to another host");
        errno = EBUSY;
        return -1;
    }
    int sock = xensim_connect(dir, domid, false, err, errlen);
    if (sock < 0)
        return -1;
    struct gnt_dom *nd = calloc(1, sizeof(*nd));
    if (!nd) {
        snprintf(err, errlen, "out of memory");
        close(sock);
        errno = ENOMEM;
        return -1;
    }
    nd->tab = xensim_gnt_attach(sock, XENSIM_DOMID_SELF, PROT_READ | PROT_WRITE,
                                &nd->mem_fd, &nd->mem_pages);
    if (!nd->tab) {
        snprintf(err, errlen, "attaching to domain %u's memory at %s: %s",
                 domid, dir, strerror(errno));
        goto fail;
    }
    nd->domid = (xenif_domid)domid;
    /* Every shared page must be ours on the new host, or we cannot go on. */
    for (struct gnt_share *s = g->shares; s; s = s->next) {
        bool *ok = calloc(2 * (size_t)s->count, sizeof(*ok));
        if (!ok || claim(sock, s->ids, s->count, true, ok) < 0 ||
            claim(sock, s->ids + s->count, s->count, false, ok + s->count) < 0) {
            snprintf(err, errlen, "claiming shared pages: %s", strerror(errno));
            free(ok);
            goto fail;
        }
        for (unsigned i = 0; i < 2 * s->count; i++)
            if (!ok[i]) {
                snprintf(err, errlen, "%s %u of a shared page is taken on the "
                         "new host", i < s->count ? "frame" : "grant ref",
                         s->ids[i]);
                free(ok);
                errno = EBUSY;
                goto fail;
            }
        free(ok);
        for (unsigned i = 0; i < s->count; i++)
            if (s->ids[i] >= nd->mem_pages) {
                snprintf(err, errlen, "frame %u is past the new domain's %u "
                         "pages", s->ids[i], nd->mem_pages);
                errno = ERANGE;
                goto fail;
            }
    }
    if (claim_pool(sock, &g->frames, true) < 0 || claim_pool(sock, &g->refs, false) < 0) {
        snprintf(err, errlen, "claiming pooled pages: %s", strerror(errno));
        goto fail;
    }
    /* Point of no return: the same addresses now show the new host's
     * memory (the toolstack copied it while we were paused). */
    for (struct gnt_share *s = g->shares; s; s = s->next)
        for (unsigned i = 0, run; i < s->count; i += run) {
            for (run = 1; i + run < s->count && s->ids[i + run] == s->ids[i] + run; run++)
                ;
            if (mmap((uint8_t *)s->addr + (size_t)i * PAGE, (size_t)run * PAGE,
                     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, nd->mem_fd,
                     (off_t)s->ids[i] * PAGE) == MAP_FAILED) {
                snprintf(err, errlen, "remapping shared pages: %s", strerror(errno));
                return -1; /* half moved: the caller must give up */
            }
        }
    drop_doms(g);
    g->doms = nd;
    close(g->sock);
    g->sock = sock;
    g->self = (xenif_domid)domid;
    return 0;
fail:;
    int e = errno;
    if (nd->tab) {
        munmap(nd->tab, sizeof(*nd->tab));
        close(nd->mem_fd);
    }
    free(nd);
    close(sock);
    errno = e;
    return -1;
}

int xensim_gnt_regrant(void *h, void *addr, unsigned count, xenif_domid domid)
{
    struct sim_gnt *g = h;
    struct gnt_share *s = g->shares;
    while (s && s->addr != addr)
        s = s->next;
    struct gnt_dom *self = find_dom(g, g->self);
    if (!s || s->count != count || !self || domid > XENSIM_DOMID_MAX) {
        errno = EINVAL;
        return -1;
    }
    uint32_t flags = GTF_permit_access | (s->writable ? 0 : GTF_readonly);
    for (unsigned i = 0; i < count; i++) {
        struct xensim_gnt_entry *e = &self->tab->entries[s->ids[count + i]];
        uint32_t old = __atomic_load_n(&e->flags_domid, __ATOMIC_ACQUIRE);
        if (old & IN_USE) {
            errno = EBUSY; /* someone maps it: not a fresh restore */
            return -1;
        }
        __atomic_store_n(&e->frame, s->ids[i], __ATOMIC_RELAXED);
        __atomic_store_n(&e->flags_domid, flags | (uint32_t)domid << 16,
                         __ATOMIC_RELEASE);
    }
    s->domid = domid;
    return 0;
}

const struct xenif_gnt_ops xenif_xensim_gnt_ops = {
    .open = sim_gnt_open,
    .close = sim_gnt_close,
    .map = sim_gnt_map,
    .unmap = sim_gnt_unmap,
    .copy = sim_gnt_copy,
    .share = sim_gnt_share,
    .unshare = sim_gnt_unshare,
};
