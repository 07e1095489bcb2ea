/* blkfront: the userspace reference blkif frontend. See blkfront.h. */
#include "blkfront.h"
#include "xenbus_front.h"
#include "xensim_guest.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ring.h leaves the barriers to the includer. */
#define mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/xen.h>
#include <xen/io/blkif.h>
#include <xen/io/protocols.h>
#include <xen/io/xenbus.h>

#define SEGS_PER_INDIRECT_PAGE (XENIF_PAGE_SIZE / sizeof(struct blkif_request_segment))
#define POOL_BATCH 64u

_Static_assert(sizeof(blkif_request_indirect_t) <= sizeof(blkif_request_t),
               "indirect request fits a ring slot");
_Static_assert(sizeof(blkif_request_discard_t) <= sizeof(blkif_request_t),
               "discard request fits a ring slot");
_Static_assert(BF_MAX_INDIRECT <= SEGS_PER_INDIRECT_PAGE * BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
               "indirect limit");

struct gpage {
    void *addr;
    xenif_gref ref;
};

struct shadow {
    bool busy;
    struct bf_io *io;
    uint8_t rsp_op;          /* operation the response must carry */
    bool writes_data;        /* a WRITE: the backend reads our pages */
    unsigned nseg, nind;
    /* non-persistent mode: one share for the data pages, one for the
     * indirect pages (NULL if none) */
    void *data_share, *ind_share;
    struct gpage *pg;        /* nseg data pages, then nind indirect pages */
    unsigned next_free;
};

struct ring {
    unsigned idx;
    void *sring;
    unsigned npages;
    xenif_gref refs[1u << BF_MAX_RING_ORDER];
    int port;
    blkif_front_ring_t front;
    unsigned size;
    struct shadow *shadow;
    unsigned free_head;      /* == size: none free */
    unsigned in_flight;
    bool unpushed;
    RING_IDX pushed;         /* req_prod as last published */
};

struct batch {
    void *addr;
    unsigned count;
    struct batch *next;
};

/* Revocations the backend did not allow yet (it still maps the pages). */
struct deferred {
    void *addr;
    unsigned count;
    struct deferred *next;
};

struct blkfront {
    struct bf_opts o;
    struct xenbus_front fe;

    uint64_t sectors;
    unsigned sector_size, info;
    bool flush, barrier, discard, discard_secure, persistent, pooled;
    unsigned discard_gran, discard_align;
    unsigned max_indirect;   /* 0: direct requests only */
    unsigned max_segs, max_ind_pages;

    unsigned order, nr_rings, next_ring;
    struct ring rings[BF_MAX_QUEUES];

    struct gpage *pool;      /* free persistent pages, LIFO */
    size_t pool_n, pool_cap, pool_total;
    struct batch *batches;
    struct deferred *deferred;

    bool connected;
    /* suspend / resume (xensim) */
    bool draining;           /* keep mode: suspend asked, waiting for the
                              * backend to answer what it was given */
    uint64_t susp_start_ns;
    struct bf_io **requeue;  /* re-issued requests the new rings could not
                              * take yet */
    unsigned nrequeue, requeue_cap;
    uint64_t last_deadline_check;
    struct bf_stats stats;
};

static const struct fe_kind vbd_kind = {
    .type = "vbd", .name = "disk", .attach = "attach one with `xensim block-attach`",
    .unit = "device",
};

void bf_opts_default(struct bf_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->devid = 51712;
    o->max_ring_order = BF_MAX_RING_ORDER;
    o->max_queues = 1;
    o->max_indirect = 256;
    o->persistent = true;
    o->timeout_ms = 20000;
}

/* ---- xenstore helpers --------------------------------------------------- */

static unsigned long be_uint(struct blkfront *bf, const char *key,
                             unsigned long dflt)
{
    unsigned long v;
    return fe_read_uint(&bf->fe, bf->fe.be_path, key, &v) == 0 ? v : dflt;
}

/* ---- grants ------------------------------------------------------------- */

static int pool_grow(struct blkfront *bf, unsigned need)
{
    unsigned count = need > POOL_BATCH ? need : POOL_BATCH;
    xenif_gref *refs = malloc(count * sizeof(*refs));
    struct batch *b = calloc(1, sizeof(*b));
    /* Room for every page ever granted: those in flight come back. */
    if (bf->pool_total + count > bf->pool_cap) {
        size_t cap = bf->pool_cap ? bf->pool_cap * 2 : 256;
        while (cap < bf->pool_total + count)
            cap *= 2;
        struct gpage *p = realloc(bf->pool, cap * sizeof(*p));
        if (!p) {
            free(refs);
            free(b);
            return -1;
        }
        bf->pool = p;
        bf->pool_cap = cap;
    }
    void *addr = refs && b ? xenif_gnt_share(bf->fe.gnt, bf->fe.be_id, count, refs, true)
                           : NULL;
    if (!addr) {
        int e = errno;
        free(refs);
        free(b);
        errno = e;
        return -1;
    }
    b->addr = addr;
    b->count = count;
    b->next = bf->batches;
    bf->batches = b;
    for (unsigned i = 0; i < count; i++)
        bf->pool[bf->pool_n++] = (struct gpage){ (uint8_t *)addr + (size_t)i * XENIF_PAGE_SIZE,
                                                 refs[i] };
    bf->pool_total += count;
    bf->stats.grants_shared += count;
    free(refs);
    return 0;
}

static void try_deferred(struct blkfront *bf)
{
    for (struct deferred **pp = &bf->deferred; *pp;) {
        struct deferred *d = *pp;
        if (xenif_gnt_unshare(bf->fe.gnt, d->addr, d->count) == 0) {
            bf->stats.grants_revoked += d->count;
            *pp = d->next;
            free(d);
        } else {
            pp = &d->next;
        }
    }
}

/* Revokes a per-request share; if the backend still maps it (it answered
 * before unmapping, which xensim reports as EBUSY) the revocation is retried
 * later and reported at close if it never succeeds. */
static void revoke_share(struct blkfront *bf, void *addr, unsigned count)
{
    if (!addr)
        return;
    if (xenif_gnt_unshare(bf->fe.gnt, addr, count) == 0) {
        bf->stats.grants_revoked += count;
        return;
    }
    struct deferred *d = malloc(sizeof(*d));
    if (!d)
        return; /* leaks the share; the host reclaims it when we exit */
    d->addr = addr;
    d->count = count;
    d->next = bf->deferred;
    bf->deferred = d;
}

/* Grants nseg data pages and nind indirect pages for slot s. */
static int grant_pages(struct blkfront *bf, struct shadow *s, bool backend_writes)
{
    unsigned total = s->nseg + s->nind;
    if (bf->pooled) {
        if (bf->pool_n < total && pool_grow(bf, total - (unsigned)bf->pool_n) < 0)
            return -1;
        for (unsigned i = 0; i < total; i++)
            s->pg[i] = bf->pool[--bf->pool_n];
        return 0;
    }
    xenif_gref refs[BF_MAX_INDIRECT];
    s->data_share = s->nseg ? xenif_gnt_share(bf->fe.gnt, bf->fe.be_id, s->nseg, refs,
                                              backend_writes) : NULL;
    if (s->nseg && !s->data_share)
        return -1;
    for (unsigned i = 0; i < s->nseg; i++)
        s->pg[i] = (struct gpage){ (uint8_t *)s->data_share + (size_t)i * XENIF_PAGE_SIZE,
                                   refs[i] };
    if (s->nind) {
        s->ind_share = xenif_gnt_share(bf->fe.gnt, bf->fe.be_id, s->nind, refs, false);
        if (!s->ind_share) {
            int e = errno;
            revoke_share(bf, s->data_share, s->nseg);
            s->data_share = NULL;
            errno = e;
            return -1;
        }
        for (unsigned i = 0; i < s->nind; i++)
            s->pg[s->nseg + i] = (struct gpage){
                (uint8_t *)s->ind_share + (size_t)i * XENIF_PAGE_SIZE, refs[i] };
    }
    bf->stats.grants_shared += total;
    return 0;
}

static void release_pages(struct blkfront *bf, struct shadow *s)
{
    if (bf->pooled) {
        for (unsigned i = 0; i < s->nseg + s->nind; i++)
            bf->pool[bf->pool_n++] = s->pg[i]; /* LIFO, as blkif.h advises */
        return;
    }
    revoke_share(bf, s->data_share, s->nseg);
    revoke_share(bf, s->ind_share, s->nind);
    s->data_share = s->ind_share = NULL;
}

/* ---- handshake ---------------------------------------------------------- */

static int setup_ring(struct blkfront *bf, struct ring *r)
{
    r->npages = 1u << bf->order;
    r->sring = xenif_gnt_share(bf->fe.gnt, bf->fe.be_id, r->npages, r->refs, true);
    if (!r->sring) {
        fe_fail(&bf->fe, "cannot share %u ring page(s) with domain %u: %s", r->npages,
                bf->fe.be_id, strerror(errno));
        return -1;
    }
    bf->stats.grants_shared += r->npages;
    blkif_sring_t *sring = r->sring;
    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&r->front, sring, (size_t)XENIF_PAGE_SIZE * r->npages);
    r->size = RING_SIZE(&r->front);
    r->port = fe_alloc_port(&bf->fe);
    return r->port < 0 ? -1 : 0;
}

static int write_ring_nodes(struct blkfront *bf, xenif_txn t, const struct ring *r,
                            const char *dir)
{
    char path[256];
    if (r->npages == 1) {
        snprintf(path, sizeof(path), "%s/ring-ref", dir);
        if (xenif_xs_printf(bf->fe.xs, t, path, "%u", r->refs[0]) < 0)
            return -1;
    } else {
        for (unsigned i = 0; i < r->npages; i++) {
            snprintf(path, sizeof(path), "%s/ring-ref%u", dir, i);
            if (xenif_xs_printf(bf->fe.xs, t, path, "%u", r->refs[i]) < 0)
                return -1;
        }
    }
    snprintf(path, sizeof(path), "%s/event-channel", dir);
    return xenif_xs_printf(bf->fe.xs, t, path, "%d", r->port);
}

/* An earlier connection (another queue count or ring order) may have left
 * its keys: the backend must not find stale queue-N or ring-refN nodes. */
static int remove_old_keys(struct blkfront *bf, xenif_txn t)
{
    static const char *const prefixes[] = { "ring-ref", "event-channel",
                                            "ring-page-order", "queue-",
                                            "multi-queue-num-queues" };
    unsigned n = 0;
    char **names = xenif_xs_directory(bf->fe.xs, t, bf->fe.fe_path, &n);
    if (!names)
        return -1;
    int rc = 0;
    for (unsigned i = 0; rc == 0 && i < n; i++)
        for (size_t k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++)
            if (strncmp(names[i], prefixes[k], strlen(prefixes[k])) == 0) {
                char path[300];
                snprintf(path, sizeof(path), "%s/%s", bf->fe.fe_path, names[i]);
                if (xenif_xs_rm(bf->fe.xs, t, path) < 0 && errno != ENOENT)
                    rc = -1;
                break;
            }
    free(names);
    return rc;
}

/* talk_to_blkback's transaction: rings, event channels and protocol. */
static int write_rings(void *arg, xenif_txn t)
{
    struct blkfront *bf = arg;
    char path[256];
    int rc = remove_old_keys(bf, t);
    if (rc == 0 && bf->order > 0) {
        snprintf(path, sizeof(path), "%s/ring-page-order", bf->fe.fe_path);
        rc = xenif_xs_printf(bf->fe.xs, t, path, "%u", bf->order);
    }
    if (rc == 0 && bf->nr_rings == 1) {
        rc = write_ring_nodes(bf, t, &bf->rings[0], bf->fe.fe_path);
    } else if (rc == 0) {
        snprintf(path, sizeof(path), "%s/multi-queue-num-queues", bf->fe.fe_path);
        rc = xenif_xs_printf(bf->fe.xs, t, path, "%u", bf->nr_rings);
        for (unsigned i = 0; rc == 0 && i < bf->nr_rings; i++) {
            char dir[200];
            snprintf(dir, sizeof(dir), "%s/queue-%u", bf->fe.fe_path, i);
            rc = write_ring_nodes(bf, t, &bf->rings[i], dir);
        }
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/protocol", bf->fe.fe_path);
        rc = xenif_xs_printf(bf->fe.xs, t, path, "%s", XEN_IO_PROTO_ABI_NATIVE);
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/feature-persistent", bf->fe.fe_path);
        rc = xenif_xs_printf(bf->fe.xs, t, path, "%u", bf->o.persistent ? 1 : 0);
    }
    return rc;
}

/* blkfront_connect: the backend is Connected; read the disk and features. */
static int read_disk(struct blkfront *bf)
{
    unsigned long sectors, info, ssize;
    if (fe_read_uint(&bf->fe, bf->fe.be_path, "sectors", &sectors) < 0 ||
        fe_read_uint(&bf->fe, bf->fe.be_path, "info", &info) < 0 ||
        fe_read_uint(&bf->fe, bf->fe.be_path, "sector-size", &ssize) < 0) {
        fe_fail(&bf->fe, "backend %s is Connected but lacks sectors/info/sector-size",
                bf->fe.be_path);
        return -1;
    }
    if (ssize < BF_SECTOR || ssize > XENIF_PAGE_SIZE || ssize % BF_SECTOR ||
        (ssize & (ssize - 1))) {
        fe_fail(&bf->fe, "backend sector-size %lu is not a power of two in 512..4096", ssize);
        return -1;
    }
    bf->sectors = sectors;
    bf->info = (unsigned)info;
    bf->sector_size = (unsigned)ssize;
    bf->barrier = be_uint(bf, "feature-barrier", 0) != 0;
    bf->flush = be_uint(bf, "feature-flush-cache", 0) != 0;
    bf->discard = be_uint(bf, "feature-discard", 0) != 0;
    if (bf->discard) {
        bf->discard_gran = (unsigned)be_uint(bf, "discard-granularity", 0);
        bf->discard_align = (unsigned)be_uint(bf, "discard-alignment", 0);
        bf->discard_secure = be_uint(bf, "discard-secure", 0) != 0;
    }
    unsigned long ind = be_uint(bf, "feature-max-indirect-segments", 0);
    if (ind > bf->o.max_indirect)
        ind = bf->o.max_indirect;
    if (ind > BF_MAX_INDIRECT)
        ind = BF_MAX_INDIRECT;
    if (ind <= BLKIF_MAX_SEGMENTS_PER_REQUEST)
        ind = 0;
    bf->max_indirect = (unsigned)ind;
    bf->max_segs = ind ? (unsigned)ind : BLKIF_MAX_SEGMENTS_PER_REQUEST;
    bf->max_ind_pages = ind ? (unsigned)((ind + SEGS_PER_INDIRECT_PAGE - 1) /
                                         SEGS_PER_INDIRECT_PAGE) : 0;
    fe_vlog(&bf->fe, "disk: %llu sectors, sector-size %u, info %#x, flush %d, "
            "barrier %d, discard %d (granularity %u), indirect %u, persistent %d, "
            "pooled grants %d",
            (unsigned long long)bf->sectors, bf->sector_size, bf->info, bf->flush,
            bf->barrier, bf->discard, bf->discard_gran, bf->max_indirect,
            bf->persistent, bf->pooled);
    return 0;
}

static int alloc_shadows(struct blkfront *bf)
{
    unsigned per = bf->max_segs + bf->max_ind_pages;
    for (unsigned i = 0; i < bf->nr_rings; i++) {
        struct ring *r = &bf->rings[i];
        r->shadow = calloc(r->size, sizeof(*r->shadow));
        if (!r->shadow)
            return -1;
        for (unsigned j = 0; j < r->size; j++) {
            r->shadow[j].pg = calloc(per, sizeof(struct gpage));
            if (!r->shadow[j].pg)
                return -1;
            r->shadow[j].next_free = j + 1;
        }
        r->free_head = 0;
    }
    return 0;
}

/* The backend's path and domain (again after a migration); watches its
 * state. */
static int read_otherend(struct blkfront *bf)
{
    return fe_find_backend(&bf->fe) < 0 || fe_watch_backend(&bf->fe) < 0 ? -1 : 0;
}

/* Waits for InitWait and settles ring order, queue count and grants from
 * the backend's offer. */
static int negotiate(struct blkfront *bf, unsigned *max_order, unsigned *max_queues,
                     bool *be_persistent)
{
    if (fe_wait_backend(&bf->fe, 1u << XenbusStateInitWait, 0, "waiting for InitWait") < 0)
        return -1;
    *max_order = (unsigned)be_uint(bf, "max-ring-page-order", 0);
    *max_queues = (unsigned)be_uint(bf, "multi-queue-max-queues", 1);
    *be_persistent = be_uint(bf, "feature-persistent", 0) != 0;
    return 0;
}

static void set_geometry(struct blkfront *bf, unsigned max_order, unsigned max_queues)
{
    const struct bf_opts *o = &bf->o;
    bf->order = max_order < o->max_ring_order ? max_order : o->max_ring_order;
    if (bf->order > BF_MAX_RING_ORDER)
        bf->order = BF_MAX_RING_ORDER;
    bf->nr_rings = max_queues < o->max_queues ? max_queues : o->max_queues;
    if (bf->nr_rings > BF_MAX_QUEUES)
        bf->nr_rings = BF_MAX_QUEUES;
    if (bf->nr_rings == 0)
        bf->nr_rings = 1;
}

/* Initialised -> the backend's Connected -> disk properties -> Connected. */
static int finish_connect(struct blkfront *bf, bool shadows)
{
    if (fe_publish(&bf->fe, write_rings, bf) < 0 ||
        fe_set_state(&bf->fe, XenbusStateInitialised) < 0)
        return -1;
    if (fe_wait_backend(&bf->fe, 1u << XenbusStateConnected,
                        1u << XenbusStateClosing | 1u << XenbusStateClosed,
                        "waiting for Connected") < 0)
        return -1;
    if (read_disk(bf) < 0)
        return -1;
    if (shadows && alloc_shadows(bf) < 0) {
        fe_fail(&bf->fe, "out of memory");
        return -1;
    }
    if (fe_set_state(&bf->fe, XenbusStateConnected) < 0)
        return -1;
    bf->connected = true;
    bf->last_deadline_check = fe_now_ns();
    return 0;
}

struct blkfront *bf_open(const struct bf_opts *o, char *err, size_t errlen)
{
    struct blkfront *bf = calloc(1, sizeof(*bf));
    if (!bf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    bf->o = *o;
    for (unsigned i = 0; i < BF_MAX_QUEUES; i++)
        bf->rings[i].port = -1;
    if (fe_open(&bf->fe, &vbd_kind, o->devid, o->timeout_ms, o->verbose, err,
                errlen) < 0)
        goto fail_quiet;
    if (read_otherend(bf) < 0)
        goto fail;

    /* An earlier frontend died while connected (kexec, crash); or one
     * left the device Closed: start over. */
    if (fe_reset_earlier(&bf->fe, 1u << XenbusStateClosed) < 0 ||
        fe_start_initialising(&bf->fe) < 0)
        goto fail;

    unsigned max_order, max_queues;
    bool be_persistent;
    if (negotiate(bf, &max_order, &max_queues, &be_persistent) < 0)
        goto fail;
    set_geometry(bf, max_order, max_queues);
    bf->persistent = o->persistent && be_persistent;
    bf->pooled = bf->persistent || o->reuse_grants;
    for (unsigned i = 0; i < bf->nr_rings; i++) {
        bf->rings[i].idx = i;
        if (setup_ring(bf, &bf->rings[i]) < 0)
            goto fail;
    }
    fe_vlog(&bf->fe, "backend %s (domain %u): %u ring(s) of %u page(s)", bf->fe.be_path,
            bf->fe.be_id, bf->nr_rings, 1u << bf->order);
    if (finish_connect(bf, true) < 0)
        goto fail;
    if (o->resume != BF_RESUME_OFF && fe_follow_suspend(&bf->fe) < 0)
        goto fail;
    return bf;

fail:
    snprintf(err, errlen, "%s", bf->fe.err);
    bf->fe.failed = false;
    bf_close(bf);
    return NULL;
fail_quiet:
    bf_close(bf);
    return NULL;
}

/* ---- I/O ---------------------------------------------------------------- */

static struct ring *pick_ring(struct blkfront *bf)
{
    for (unsigned n = 0; n < bf->nr_rings; n++) {
        struct ring *r = &bf->rings[(bf->next_ring + n) % bf->nr_rings];
        if (r->free_head < r->size && !RING_FULL(&r->front)) {
            bf->next_ring = (r->idx + 1) % bf->nr_rings;
            return r;
        }
    }
    return NULL;
}

static int check_io(struct blkfront *bf, const struct bf_io *io)
{
    uint32_t align = bf->sector_size / BF_SECTOR;
    switch (io->op) {
    case BF_READ:
    case BF_WRITE:
        if (io->nsect == 0 || io->page_off >= BF_SECTORS_PER_PAGE ||
            io->page_off % align || io->sector % align || io->nsect % align)
            return -1;
        if ((io->page_off + io->nsect + BF_SECTORS_PER_PAGE - 1) / BF_SECTORS_PER_PAGE >
            bf->max_segs)
            return -1;
        break;
    case BF_DISCARD:
        if (!bf->discard || io->nsect == 0 || io->sector % align || io->nsect % align)
            return -1;
        break;
    case BF_FLUSH:
        return bf->flush || bf->barrier ? 0 : -1;
    default:
        return -1;
    }
    /* Past the end is the backend's to refuse; we only refuse overflow. */
    if (io->sector + io->nsect < io->sector)
        return -1;
    return 0;
}

static int submit_one(struct blkfront *bf, struct bf_io *io);

int bf_submit(struct blkfront *bf, struct bf_io *io)
{
    if (bf->fe.failed || !bf->connected) {
        errno = EIO;
        return -1;
    }
    if (bf->nrequeue) {
        errno = EAGAIN; /* re-issued requests go first */
        return -1;
    }
    return submit_one(bf, io);
}

static int submit_one(struct blkfront *bf, struct bf_io *io)
{
    if (check_io(bf, io) < 0) {
        errno = EINVAL;
        return -1;
    }
    struct ring *r = pick_ring(bf);
    if (!r) {
        errno = EAGAIN;
        return -1;
    }
    unsigned id = r->free_head;
    struct shadow *s = &r->shadow[id];
    s->nseg = s->nind = 0;
    s->writes_data = false;
    blkif_request_t req;
    memset(&req, 0, sizeof(req));

    if (io->op == BF_FLUSH) {
        req.operation = bf->flush ? BLKIF_OP_FLUSH_DISKCACHE : BLKIF_OP_WRITE_BARRIER;
        req.id = id;
        req.handle = (blkif_vdev_t)bf->o.devid;
        s->rsp_op = req.operation;
        bf->stats.flushes++;
    } else if (io->op == BF_DISCARD) {
        blkif_request_discard_t *d = (blkif_request_discard_t *)&req;
        d->operation = BLKIF_OP_DISCARD;
        d->flag = io->secure && bf->discard_secure ? BLKIF_DISCARD_SECURE : 0;
        d->handle = (blkif_vdev_t)bf->o.devid;
        d->id = id;
        d->sector_number = io->sector;
        d->nr_sectors = io->nsect;
        s->rsp_op = BLKIF_OP_DISCARD;
        bf->stats.discards++;
    } else {
        uint8_t op = io->op == BF_READ ? BLKIF_OP_READ : BLKIF_OP_WRITE;
        s->nseg = (io->page_off + io->nsect + BF_SECTORS_PER_PAGE - 1) / BF_SECTORS_PER_PAGE;
        bool indirect = s->nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST;
        s->nind = indirect ? (unsigned)((s->nseg + SEGS_PER_INDIRECT_PAGE - 1) /
                                        SEGS_PER_INDIRECT_PAGE) : 0;
        s->writes_data = op == BLKIF_OP_WRITE;
        if (grant_pages(bf, s, op == BLKIF_OP_READ) < 0) {
            if ((errno == ENOMEM || errno == ENOSPC) && bf_in_flight(bf) > 0) {
                errno = EAGAIN;
                return -1;
            }
            fe_fail(&bf->fe, "cannot grant %u page(s) to domain %u: %s", s->nseg + s->nind,
                    bf->fe.be_id, strerror(errno));
            errno = EIO;
            return -1;
        }
        struct blkif_request_segment seg[BF_MAX_INDIRECT];
        uint32_t left = io->nsect;
        for (unsigned i = 0; i < s->nseg; i++) {
            unsigned first = i == 0 ? io->page_off : 0;
            unsigned n = BF_SECTORS_PER_PAGE - first;
            if (n > left)
                n = left;
            seg[i].gref = s->pg[i].ref;
            seg[i].first_sect = (uint8_t)first;
            seg[i].last_sect = (uint8_t)(first + n - 1);
            if (io->buf && s->writes_data)
                memcpy((uint8_t *)s->pg[i].addr + first * BF_SECTOR,
                       (uint8_t *)io->buf + (size_t)(io->nsect - left) * BF_SECTOR,
                       (size_t)n * BF_SECTOR);
            left -= n;
        }
        if (indirect) {
            blkif_request_indirect_t *ind = (blkif_request_indirect_t *)&req;
            ind->operation = BLKIF_OP_INDIRECT;
            ind->indirect_op = op;
            ind->nr_segments = (uint16_t)s->nseg;
            ind->id = id;
            ind->sector_number = io->sector;
            ind->handle = (blkif_vdev_t)bf->o.devid;
            for (unsigned p = 0; p < s->nind; p++) {
                unsigned from = p * (unsigned)SEGS_PER_INDIRECT_PAGE;
                unsigned n = s->nseg - from;
                if (n > SEGS_PER_INDIRECT_PAGE)
                    n = (unsigned)SEGS_PER_INDIRECT_PAGE;
                memcpy(s->pg[s->nseg + p].addr, &seg[from], n * sizeof(seg[0]));
                ind->indirect_grefs[p] = s->pg[s->nseg + p].ref;
            }
            bf->stats.indirect++;
        } else {
            req.operation = op;
            req.nr_segments = (uint8_t)s->nseg;
            req.handle = (blkif_vdev_t)bf->o.devid;
            req.id = id;
            req.sector_number = io->sector;
            memcpy(req.seg, seg, s->nseg * sizeof(seg[0]));
            bf->stats.direct++;
        }
        s->rsp_op = op;
    }
    r->free_head = s->next_free;
    s->busy = true;
    s->io = io;
    io->submit_ns = fe_now_ns();
    memcpy(RING_GET_REQUEST(&r->front, r->front.req_prod_pvt), &req, sizeof(req));
    r->front.req_prod_pvt++;
    r->in_flight++;
    r->unpushed = true;
    bf->stats.requests++;
    return 0;
}

int bf_kick(struct blkfront *bf)
{
    if (bf->draining)
        return 0; /* held on the ring for the next backend */
    for (unsigned i = 0; i < bf->nr_rings; i++) {
        struct ring *r = &bf->rings[i];
        if (!r->unpushed)
            continue;
        r->unpushed = false;
        int notify;
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&r->front, notify);
        r->pushed = r->front.req_prod_pvt;
        if (notify && fe_notify(&bf->fe, r->port) < 0)
            return -1;
    }
    return 0;
}

static void complete(struct blkfront *bf, struct ring *r, unsigned id, int status)
{
    struct shadow *s = &r->shadow[id];
    struct bf_io *io = s->io;
    if (status == BLKIF_RSP_OKAY && io->buf && io->op == BF_READ) {
        uint32_t left = io->nsect;
        for (unsigned i = 0; i < s->nseg; i++) {
            unsigned first = i == 0 ? io->page_off : 0;
            unsigned n = BF_SECTORS_PER_PAGE - first;
            if (n > left)
                n = left;
            memcpy((uint8_t *)io->buf + (size_t)(io->nsect - left) * BF_SECTOR,
                   (uint8_t *)s->pg[i].addr + first * BF_SECTOR, (size_t)n * BF_SECTOR);
            left -= n;
        }
    }
    release_pages(bf, s);
    s->busy = false;
    s->io = NULL;
    s->next_free = r->free_head;
    r->free_head = id;
    r->in_flight--;
    if (io->done)
        io->done(io, status);
}

/* blkif_interrupt: takes every response on the ring. */
static int take_responses(struct blkfront *bf, struct ring *r)
{
    int n = 0, more;
    do {
        RING_IDX rp = r->front.sring->rsp_prod;
        rmb();
        if (RING_RESPONSE_PROD_OVERFLOW(&r->front, rp)) {
            fe_fail(&bf->fe, "ring %u: backend produced %u responses at once (ring has %u)",
                    r->idx, rp - r->front.rsp_cons, r->size);
            return -1;
        }
        for (RING_IDX i = r->front.rsp_cons; i != rp; i++) {
            blkif_response_t rsp;
            RING_COPY_RESPONSE(&r->front, i, &rsp);
            r->front.rsp_cons = i + 1;
            if (rsp.id >= r->size || !r->shadow[rsp.id].busy) {
                fe_fail(&bf->fe, "ring %u: response with id %llu that is not in flight",
                        r->idx, (unsigned long long)rsp.id);
                return -1;
            }
            struct shadow *s = &r->shadow[rsp.id];
            if (rsp.operation != s->rsp_op) {
                fe_fail(&bf->fe, "ring %u: response to id %llu has operation %u, request "
                        "had %u", r->idx, (unsigned long long)rsp.id, rsp.operation,
                        s->rsp_op);
                return -1;
            }
            if (rsp.status != BLKIF_RSP_OKAY && rsp.status != BLKIF_RSP_ERROR &&
                rsp.status != BLKIF_RSP_EOPNOTSUPP) {
                fe_fail(&bf->fe, "ring %u: response to id %llu has unknown status %d",
                        r->idx, (unsigned long long)rsp.id, rsp.status);
                return -1;
            }
            complete(bf, r, (unsigned)rsp.id, rsp.status);
            n++;
        }
        RING_FINAL_CHECK_FOR_RESPONSES(&r->front, more);
    } while (more);
    return n;
}

static int check_deadlines(struct blkfront *bf)
{
    uint64_t now = fe_now_ns(), limit = (uint64_t)bf->o.timeout_ms * 1000000ull;
    bf->last_deadline_check = now;
    for (unsigned i = 0; i < bf->nr_rings; i++) {
        struct ring *r = &bf->rings[i];
        for (unsigned id = 0; r->in_flight && id < r->size; id++) {
            struct shadow *s = &r->shadow[id];
            if (s->busy && now - s->io->submit_ns > limit) {
                fe_fail(&bf->fe, "ring %u: no response to request id %u (operation %u, "
                        "sector %llu) after %d ms", i, id, s->rsp_op,
                        (unsigned long long)s->io->sector, bf->o.timeout_ms);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- suspend / resume ---------------------------------------------------- */
/* The toolstack asks for a suspend through xensim_guest (control/shutdown).
 *   reissue (Linux blkfront): acknowledge at once; whatever is in flight
 *     stays so. Resumed on another host: give up the old rings and grants,
 *     make fresh ones with the new backend, and issue every request that
 *     had no response again (blkif_recover): the backend may see some twice.
 *   keep: stop publishing requests (they still go onto the ring, unpushed)
 *     and wait until the backend answered what it had; then acknowledge.
 *     Resumed elsewhere: grant the same pages again (same refs) to the new
 *     backend, publish the held requests on the ring and the same ring refs
 *     with new event channels: the new backend finds the requests there
 *     when it connects. If the new backend offers fewer ring pages or
 *     queues, fall back to reissue.
 * A cancelled suspend (the toolstack rolled back) just carries on. */

static unsigned pushed_unanswered(const struct blkfront *bf)
{
    unsigned n = 0;
    for (unsigned i = 0; i < bf->nr_rings; i++)
        n += bf->rings[i].pushed - bf->rings[i].front.rsp_cons;
    return n;
}

static void restart_deadlines(struct blkfront *bf)
{
    uint64_t now = fe_now_ns();
    for (unsigned i = 0; i < bf->nr_rings; i++) {
        struct ring *r = &bf->rings[i];
        for (unsigned id = 0; r->shadow && id < r->size; id++)
            if (r->shadow[id].busy)
                r->shadow[id].io->submit_ns = now;
    }
    bf->last_deadline_check = now;
}

/* Grant, event-channel and xenstore handles onto the new host. */
static int move_handles(struct blkfront *bf)
{
    if (fe_move_grants(&bf->fe) < 0)
        return -1;
    for (unsigned i = 0; i < BF_MAX_QUEUES; i++)
        bf->rings[i].port = -1;
    if (fe_reopen_handles(&bf->fe) < 0 || read_otherend(bf) < 0 ||
        fe_leave_old_host(&bf->fe) < 0)
        return -1;
    return 0;
}

static int keep_resume(struct blkfront *bf, bool be_persistent)
{
    for (unsigned i = 0; i < bf->nr_rings; i++)
        if (fe_regrant(&bf->fe, bf->rings[i].sring, bf->rings[i].npages) < 0)
            return -1;
    for (struct batch *b = bf->batches; b; b = b->next)
        if (fe_regrant(&bf->fe, b->addr, b->count) < 0)
            return -1;
    for (unsigned i = 0; i < bf->nr_rings && !bf->pooled; i++) {
        struct ring *r = &bf->rings[i];
        for (unsigned id = 0; id < r->size; id++) {
            struct shadow *s = &r->shadow[id];
            if (s->busy && (fe_regrant(&bf->fe, s->data_share, s->nseg) < 0 ||
                            fe_regrant(&bf->fe, s->ind_share, s->nind) < 0))
                return -1;
        }
    }
    bf->persistent = bf->o.persistent && be_persistent;
    unsigned kept = 0;
    for (unsigned i = 0; i < bf->nr_rings; i++) {
        struct ring *r = &bf->rings[i];
        r->port = fe_alloc_port(&bf->fe);
        if (r->port < 0)
            return -1;
        /* The held requests go on the ring now, before the backend
         * connects: it serves them when it attaches the ring. */
        kept += r->front.req_prod_pvt - r->pushed;
        RING_PUSH_REQUESTS(&r->front);
        r->pushed = r->front.req_prod_pvt;
        r->unpushed = false;
        r->front.sring->rsp_event = r->front.rsp_cons + 1;
    }
    bf->stats.kept += kept;
    unsigned max_segs = bf->max_segs, max_indirect = bf->max_indirect,
             max_ind_pages = bf->max_ind_pages;
    if (finish_connect(bf, false) < 0)
        return -1;
    if (bf->max_segs > max_segs) { /* the shadows are sized for the old */
        bf->max_segs = max_segs;
        bf->max_indirect = max_indirect;
        bf->max_ind_pages = max_ind_pages;
    }
    fe_vlog(&bf->fe, "resumed with the ring kept: %u request(s) left on it for the "
            "new backend", kept);
    restart_deadlines(bf);
    for (unsigned i = 0; i < bf->nr_rings; i++)
        if (fe_notify(&bf->fe, bf->rings[i].port) < 0)
            return -1;
    return 0;
}

static int requeue_push(struct blkfront *bf, struct bf_io *io)
{
    if (bf->nrequeue == bf->requeue_cap) {
        unsigned cap = bf->requeue_cap ? bf->requeue_cap * 2 : 64;
        struct bf_io **q = realloc(bf->requeue, cap * sizeof(*q));
        if (!q)
            return -1;
        bf->requeue = q;
        bf->requeue_cap = cap;
    }
    bf->requeue[bf->nrequeue++] = io;
    return 0;
}

/* Submits re-issued requests while the rings take them. */
static int drain_requeue(struct blkfront *bf)
{
    unsigned done = 0;
    while (done < bf->nrequeue) {
        if (submit_one(bf, bf->requeue[done]) < 0) {
            if (errno == EAGAIN)
                break;
            fe_fail(&bf->fe, "re-issuing a request after resume: %s", strerror(errno));
            return -1;
        }
        done++;
    }
    memmove(bf->requeue, bf->requeue + done,
            (bf->nrequeue - done) * sizeof(*bf->requeue));
    bf->nrequeue -= done;
    return 0;
}

/* blkfront_resume + blkif_recover. */
static int reissue_resume(struct blkfront *bf, unsigned max_order,
                          unsigned max_queues, bool be_persistent)
{
    unsigned n = 0;
    for (unsigned i = 0; i < bf->nr_rings; i++) {
        struct ring *r = &bf->rings[i];
        for (unsigned id = 0; r->shadow && id < r->size; id++) {
            struct shadow *s = &r->shadow[id];
            if (s->busy) {
                if (requeue_push(bf, s->io) < 0) {
                    fe_fail(&bf->fe, "out of memory");
                    return -1;
                }
                release_pages(bf, s);
                n++;
            }
            free(s->pg);
        }
        free(r->shadow);
        r->shadow = NULL;
        if (r->sring)
            revoke_share(bf, r->sring, r->npages);
        memset(r, 0, sizeof(*r));
        r->idx = i;
        r->port = -1;
    }
    /* Persistent grants are not kept either (blkif_free). */
    while (bf->batches) {
        struct batch *b = bf->batches;
        bf->batches = b->next;
        revoke_share(bf, b->addr, b->count);
        free(b);
    }
    bf->pool_n = bf->pool_total = 0;
    set_geometry(bf, max_order, max_queues);
    bf->persistent = bf->o.persistent && be_persistent;
    bf->pooled = bf->persistent || bf->o.reuse_grants;
    for (unsigned i = 0; i < bf->nr_rings; i++) {
        bf->rings[i].idx = i;
        if (setup_ring(bf, &bf->rings[i]) < 0)
            return -1;
    }
    if (finish_connect(bf, true) < 0)
        return -1;
    bf->stats.reissued += n;
    fe_vlog(&bf->fe, "resumed with fresh rings: %u request(s) re-issued", n);
    return drain_requeue(bf);
}

static int resume_moved(struct blkfront *bf)
{
    bf->connected = false;
    if (move_handles(bf) < 0)
        return -1;
    unsigned max_order, max_queues;
    bool be_persistent;
    if (negotiate(bf, &max_order, &max_queues, &be_persistent) < 0)
        return -1;
    if (bf->o.resume == BF_RESUME_KEEP) {
        unsigned want_order = bf->order, want_rings = bf->nr_rings;
        if (max_order >= want_order && max_queues >= want_rings)
            return keep_resume(bf, be_persistent);
        fprintf(stderr, "xenfront: vbd/%u: the new backend offers %u ring "
                "page order / %u queue(s), we have %u / %u: re-issuing instead "
                "of keeping the ring\n", bf->o.devid, max_order, max_queues,
                want_order, want_rings);
        /* The held requests are in flight too: re-issued with the rest. */
    }
    return reissue_resume(bf, max_order, max_queues, be_persistent);
}

static int do_suspend(struct blkfront *bf)
{
    char why[512];
    unsigned held = 0;
    for (unsigned i = 0; i < bf->nr_rings; i++)
        held += bf->rings[i].front.req_prod_pvt - bf->rings[i].pushed;
    fe_vlog(&bf->fe, "suspending: %u request(s) in flight, %u held on the ring",
            bf_in_flight(bf), held);
    bf->stats.suspends++;
    int r = xsg_suspend(bf->fe.xsg, why, sizeof(why));
    bf->draining = false;
    if (r < 0) {
        fe_fail(&bf->fe, "%s", why);
        return -1;
    }
    if (r == XSG_CANCELLED) {
        fe_vlog(&bf->fe, "suspend cancelled: carrying on");
        bf->stats.cancelled++;
        restart_deadlines(bf);
    } else {
        fe_vlog(&bf->fe, "resumed as domain %u of %s", xsg_domid(bf->fe.xsg), xsg_dir(bf->fe.xsg));
        if (resume_moved(bf) < 0)
            return -1;
        bf->stats.migrations++;
    }
    uint64_t pause = fe_now_ns() - bf->susp_start_ns;
    bf->stats.pause_ns_total += pause;
    if (pause > bf->stats.pause_ns_max)
        bf->stats.pause_ns_max = pause;
    return 0;
}

/* The xsg fd was readable. */
static int suspend_check(struct blkfront *bf)
{
    if (!xsg_suspend_requested(bf->fe.xsg))
        return 0;
    bf->susp_start_ns = fe_now_ns();
    if (bf->o.resume == BF_RESUME_KEEP) {
        bf->draining = true; /* do_suspend once the backend answered */
        return 0;
    }
    return do_suspend(bf);
}

int bf_poll(struct blkfront *bf, int timeout_ms)
{
    if (bf->fe.failed || bf_kick(bf) < 0)
        return -1;
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
                        : fe_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int done = 0;
    for (;;) {
        for (unsigned i = 0; i < bf->nr_rings; i++) {
            int n = take_responses(bf, &bf->rings[i]);
            if (n < 0)
                return -1;
            done += n;
        }
        if (bf->deferred)
            try_deferred(bf);
        if (bf->draining && pushed_unanswered(bf) == 0 && do_suspend(bf) < 0)
            return -1;
        if (bf->nrequeue && drain_requeue(bf) < 0)
            return -1;
        /* Completions may have queued more: push them before waiting. */
        if (bf_kick(bf) < 0)
            return -1;
        uint64_t now = fe_now_ns();
        if (now - bf->last_deadline_check > 500000000ull && check_deadlines(bf) < 0)
            return -1;
        if (done > 0 || now >= deadline)
            return done;
        struct pollfd p[3] = {
            { .fd = xenif_evtchn_fd(bf->fe.ec), .events = POLLIN },
            { .fd = xenif_xs_fd(bf->fe.xs), .events = POLLIN },
            { .fd = bf->fe.xsg && !bf->draining ? xsg_fd(bf->fe.xsg) : -1,
              .events = POLLIN },
        };
        uint64_t left_ms = (deadline - now + 999999) / 1000000ull;
        int rc = poll(p, 3, left_ms > 500 ? 500 : (int)left_ms);
        if (rc < 0 && errno != EINTR) {
            fe_fail(&bf->fe, "poll: %s", strerror(errno));
            return -1;
        }
        if (rc > 0 && p[0].revents) {
            /* At most one event per ring (each port is masked once handed
             * out); the loop above then looks at every ring anyway. */
            for (unsigned i = 0; i < bf->nr_rings; i++) {
                int taken = fe_take_event(&bf->fe);
                if (taken < 0)
                    return -1;
                if (taken == 0)
                    break;
            }
        }
        if (rc > 0 && p[1].revents && fe_check_connected(&bf->fe) < 0)
            return -1;
        /* Last: a suspend may replace every handle polled above. */
        if (rc > 0 && p[2].revents && suspend_check(bf) < 0)
            return -1;
    }
}

unsigned bf_in_flight(const struct blkfront *bf)
{
    unsigned n = bf->nrequeue;
    for (unsigned i = 0; i < bf->nr_rings; i++)
        n += bf->rings[i].in_flight;
    return n;
}

/* ---- close -------------------------------------------------------------- */

/* fe_unshare_wait, counted. */
static void unshare_wait(struct blkfront *bf, void *addr, unsigned count,
                         const char *what)
{
    if (fe_unshare_wait(&bf->fe, addr, count, what) == 0)
        bf->stats.grants_revoked += count;
}

int bf_close(struct blkfront *bf)
{
    if (!bf)
        return 0;
    if (bf->connected && !bf->fe.failed) {
        /* Finish what is in flight first. */
        uint64_t end = fe_now_ns() + (uint64_t)bf->o.timeout_ms * 1000000ull;
        while (bf_in_flight(bf) > 0 && !bf->fe.failed && fe_now_ns() < end)
            bf_poll(bf, 100);
        if (bf_in_flight(bf) > 0)
            fe_fail(&bf->fe, "%u request(s) still in flight at close", bf_in_flight(bf));
    }
    bool had_rings = bf->rings[0].sring != NULL;
    if (bf->fe.xs && had_rings) {
        fe_close_backend(&bf->fe);
        fe_vlog(&bf->fe, "backend is %s", fe_state_name(fe_backend_state(&bf->fe)));
    }
    bf->connected = false;
    for (unsigned i = 0; i < BF_MAX_QUEUES; i++) {
        struct ring *r = &bf->rings[i];
        if (r->port >= 0 && bf->fe.ec)
            xenif_evtchn_unbind(bf->fe.ec, (xenif_port)r->port);
        if (r->sring)
            unshare_wait(bf, r->sring, r->npages, "ring");
        if (r->shadow) {
            for (unsigned j = 0; j < r->size; j++) {
                if (r->shadow[j].busy && !bf->pooled) {
                    revoke_share(bf, r->shadow[j].data_share, r->shadow[j].nseg);
                    revoke_share(bf, r->shadow[j].ind_share, r->shadow[j].nind);
                }
                free(r->shadow[j].pg);
            }
            free(r->shadow);
        }
    }
    while (bf->batches) {
        struct batch *b = bf->batches;
        bf->batches = b->next;
        unshare_wait(bf, b->addr, b->count, "persistent grants");
        free(b);
    }
    try_deferred(bf);
    if (bf->deferred) {
        unsigned n = 0;
        for (struct deferred *d = bf->deferred; d; d = d->next)
            n += d->count;
        fe_fail(&bf->fe, "%u data page(s) could not be revoked: the backend answered "
                "requests without unmapping their grants", n);
        while (bf->deferred) {
            struct deferred *d = bf->deferred;
            bf->deferred = d->next;
            free(d);
        }
    }
    if (bf->stats.suspends)
        fprintf(stderr, "xenfront: vbd/%u: suspended %llu time(s): %llu "
                "migration(s), %llu cancelled; requests kept across suspend: "
                "%llu; requests re-issued after resume: %llu; longest pause "
                "%.1f ms\n", bf->o.devid, (unsigned long long)bf->stats.suspends,
                (unsigned long long)bf->stats.migrations,
                (unsigned long long)bf->stats.cancelled,
                (unsigned long long)bf->stats.kept,
                (unsigned long long)bf->stats.reissued,
                bf->stats.pause_ns_max / 1e6);
    free(bf->pool);
    free(bf->requeue);
    int rc = fe_release(&bf->fe);
    free(bf);
    return rc;
}

/* ---- accessors ---------------------------------------------------------- */

uint64_t bf_sectors(const struct blkfront *bf) { return bf->sectors; }
unsigned bf_sector_size(const struct blkfront *bf) { return bf->sector_size; }
unsigned bf_info(const struct blkfront *bf) { return bf->info; }
bool bf_readonly(const struct blkfront *bf) { return bf->info & VDISK_READONLY; }
bool bf_has_flush(const struct blkfront *bf) { return bf->flush || bf->barrier; }
bool bf_has_discard(const struct blkfront *bf) { return bf->discard; }
unsigned bf_max_segments(const struct blkfront *bf) { return bf->max_segs; }
uint32_t bf_max_sectors(const struct blkfront *bf) { return bf->max_segs * BF_SECTORS_PER_PAGE; }
unsigned bf_nr_rings(const struct blkfront *bf) { return bf->nr_rings; }
unsigned bf_ring_order(const struct blkfront *bf) { return bf->order; }
unsigned bf_ring_size(const struct blkfront *bf) { return bf->rings[0].size; }
bool bf_persistent(const struct blkfront *bf) { return bf->persistent; }
bool bf_pooled_grants(const struct blkfront *bf) { return bf->pooled; }
const struct bf_stats *bf_stats(const struct blkfront *bf) { return &bf->stats; }
const char *bf_error(const struct blkfront *bf) { return bf->fe.err; }
