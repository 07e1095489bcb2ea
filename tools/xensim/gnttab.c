/* Domain memory and grant tables, host side. The host only creates the
 * memfds and hands out pages and grant refs; mapping, copying and the Xen
 * checks happen in the client (backend/xenif/xensim_gnt.c) on the shared
 * table, the way Xen updates a guest's table in place. */
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int gnttab_domain_init(struct domain *d)
{
    d->mem_pages = (uint32_t)(d->memory_mib * (1024u * 1024u / XENSIM_PROTO_PAGE));
    d->frame_owner = calloc(d->mem_pages, sizeof(uint32_t));
    d->ref_owner = calloc(XENSIM_GNT_ENTRIES, sizeof(uint32_t));
    d->mem_fd = memfd_create("xensim-memory", MFD_CLOEXEC);
    d->gnt_fd = memfd_create("xensim-gnttab", MFD_CLOEXEC);
    d->gnt = NULL;
    if (!d->frame_owner || !d->ref_owner || d->mem_fd < 0 || d->gnt_fd < 0)
        goto fail;
    if (ftruncate(d->mem_fd, (off_t)d->mem_pages * XENSIM_PROTO_PAGE) < 0 ||
        ftruncate(d->gnt_fd, sizeof(struct xensim_gnt_layout)) < 0)
        goto fail;
    d->gnt = mmap(NULL, sizeof(*d->gnt), PROT_READ | PROT_WRITE, MAP_SHARED,
                  d->gnt_fd, 0);
    if (d->gnt == MAP_FAILED) {
        d->gnt = NULL;
        goto fail;
    }
    d->gnt->status.mem_pages = d->mem_pages;
    return 0;
fail:
    gnttab_domain_free(d);
    return -1;
}

void gnttab_domain_free(struct domain *d)
{
    if (d->gnt) {
        /* Clients that still have the table mapped refuse new maps. */
        __atomic_store_n(&d->gnt->status.dead, 1, __ATOMIC_RELEASE);
        munmap(d->gnt, sizeof(*d->gnt));
    }
    if (d->mem_fd >= 0)
        close(d->mem_fd);
    if (d->gnt_fd >= 0)
        close(d->gnt_fd);
    free(d->frame_owner);
    free(d->ref_owner);
    d->gnt = NULL;
    d->mem_fd = d->gnt_fd = -1;
    d->frame_owner = d->ref_owner = NULL;
}

/* Next free slot at or after *hint (wrapping), in [lo, n). */
static int take(uint32_t *owner, uint32_t lo, uint32_t n, uint32_t *hint,
                uint32_t serial, uint32_t *out)
{
    if (*hint < lo || *hint >= n)
        *hint = lo;
    for (uint32_t k = 0; k < n - lo; k++) {
        uint32_t i = lo + (*hint - lo + k) % (n - lo);
        if (owner[i] == 0) {
            owner[i] = serial;
            *hint = i + 1 < n ? i + 1 : lo;
            *out = i;
            return 0;
        }
    }
    return -1;
}

static int op_alloc(struct conn *c, struct domain *d,
                    const struct xensim_req *req, struct xensim_rsp *rsp)
{
    if (req->nframes > XENSIM_BATCH || req->nrefs > XENSIM_BATCH)
        return EINVAL;
    uint32_t nf = 0, nr = 0;
    for (; nf < req->nframes; nf++)
        if (take(d->frame_owner, 0, d->mem_pages, &d->frame_hint, c->serial,
                 &rsp->frames[nf]) < 0)
            goto full;
    for (; nr < req->nrefs; nr++)
        if (take(d->ref_owner, XENSIM_GNT_RESERVED, XENSIM_GNT_ENTRIES,
                 &d->ref_hint, c->serial, &rsp->refs[nr]) < 0)
            goto full;
    rsp->nframes = nf;
    rsp->nrefs = nr;
    return 0;
full:
    /* All or nothing. */
    for (uint32_t i = 0; i < nf; i++)
        d->frame_owner[rsp->frames[i]] = 0;
    for (uint32_t i = 0; i < nr; i++)
        d->ref_owner[rsp->refs[i]] = 0;
    return ENOMEM;
}

static void release_frame(struct domain *d, uint32_t frame)
{
    d->frame_owner[frame] = 0;
    /* Give the memory back; the next owner gets a zeroed page. */
    fallocate(d->mem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
              (off_t)frame * XENSIM_PROTO_PAGE, XENSIM_PROTO_PAGE);
}

static int op_free(struct conn *c, struct domain *d, const struct xensim_req *req)
{
    if (req->nframes > XENSIM_BATCH || req->nrefs > XENSIM_BATCH)
        return EINVAL;
    for (uint32_t i = 0; i < req->nframes; i++)
        if (req->frames[i] >= d->mem_pages ||
            d->frame_owner[req->frames[i]] != c->serial)
            return EINVAL;
    for (uint32_t i = 0; i < req->nrefs; i++)
        if (req->refs[i] >= XENSIM_GNT_ENTRIES ||
            d->ref_owner[req->refs[i]] != c->serial)
            return EINVAL;
    for (uint32_t i = 0; i < req->nframes; i++)
        release_frame(d, req->frames[i]);
    for (uint32_t i = 0; i < req->nrefs; i++)
        d->ref_owner[req->refs[i]] = 0;
    return 0;
}

/* A process that moved here takes back its frames and refs: those the
 * restore reserved, or free ones (a page that held no data was not
 * reserved; another process may have taken it first: then not). */
static int op_claim(struct conn *c, struct domain *d, const struct xensim_req *req,
                    struct xensim_rsp *rsp)
{
    if (req->nframes > XENSIM_BATCH || req->nrefs > XENSIM_BATCH)
        return EINVAL;
    for (uint32_t i = 0; i < req->nframes; i++) {
        uint32_t f = req->frames[i];
        bool ok = f < d->mem_pages && (d->frame_owner[f] == 0 ||
                                       d->frame_owner[f] == XENSIM_SERIAL_RESERVED ||
                                       d->frame_owner[f] == c->serial);
        if (ok)
            d->frame_owner[f] = c->serial;
        rsp->frames[i] = ok;
    }
    for (uint32_t i = 0; i < req->nrefs; i++) {
        uint32_t r = req->refs[i];
        bool ok = r >= XENSIM_GNT_RESERVED && r < XENSIM_GNT_ENTRIES &&
                  (d->ref_owner[r] == 0 || d->ref_owner[r] == XENSIM_SERIAL_RESERVED ||
                   d->ref_owner[r] == c->serial);
        if (ok)
            d->ref_owner[r] = c->serial;
        rsp->refs[i] = ok;
    }
    rsp->nframes = req->nframes;
    rsp->nrefs = req->nrefs;
    return 0;
}

int gnttab_restore(struct domain *d)
{
    /* Frames: whatever holds data (the toolstack copied only data). */
    off_t size = (off_t)d->mem_pages * XENSIM_PROTO_PAGE, pos = 0;
    while (pos < size) {
        off_t data = lseek(d->mem_fd, pos, SEEK_DATA);
        if (data < 0)
            break; /* ENXIO: no data past pos */
        off_t hole = lseek(d->mem_fd, data, SEEK_HOLE);
        if (hole < 0)
            hole = size;
        for (off_t f = data / XENSIM_PROTO_PAGE;
             f < (hole + XENSIM_PROTO_PAGE - 1) / XENSIM_PROTO_PAGE && f < d->mem_pages; f++)
            if (d->frame_owner[f] == 0)
                d->frame_owner[f] = XENSIM_SERIAL_RESERVED;
        pos = hole;
    }
    /* Refs: every entry in use; nobody here maps anything yet. */
    for (uint32_t r = 0; r < XENSIM_GNT_ENTRIES; r++) {
        struct xensim_gnt_entry *e = &d->gnt->entries[r];
        uint32_t v = __atomic_load_n(&e->flags_domid, __ATOMIC_ACQUIRE);
        __atomic_and_fetch(&e->flags_domid,
                           ~(uint32_t)(XENSIM_GTF_reading | XENSIM_GTF_writing),
                           __ATOMIC_RELEASE);
        memset(&d->gnt->active[r], 0, sizeof(d->gnt->active[r]));
        if (r >= XENSIM_GNT_RESERVED && (v & XENSIM_GTF_type_mask) &&
            d->ref_owner[r] == 0)
            d->ref_owner[r] = XENSIM_SERIAL_RESERVED;
    }
    return 0;
}

int gnttab_handle(struct host *h, struct conn *c, const struct xensim_req *req,
                  struct xensim_rsp *rsp, int *fds, unsigned *nfds)
{
    struct domain *self = host_domain(h, c->domid);
    if (!self)
        return ESRCH;
    switch (req->op) {
    case XENSIM_OP_GNT_ATTACH: {
        struct domain *d = host_domain(h, host_req_domid(c, req->domid));
        if (!d)
            return ESRCH;
        fds[0] = d->mem_fd;
        fds[1] = d->gnt_fd;
        *nfds = 2;
        rsp->val[0] = d->mem_pages;
        return 0;
    }
    case XENSIM_OP_GNT_ALLOC:
        return op_alloc(c, self, req, rsp);
    case XENSIM_OP_GNT_FREE:
        return op_free(c, self, req);
    case XENSIM_OP_GNT_CLAIM:
        return op_claim(c, self, req, rsp);
    default:
        return EINVAL;
    }
}

/* A client that went away without unsharing: revoke its grants nobody maps
 * and free their refs. If another domain still maps one of its grants, its
 * pages stay allocated (we do not know which page that grant names). */
void gnttab_conn_gone(struct host *h, struct conn *c)
{
    struct domain *d = host_domain(h, c->domid);
    if (!d)
        return;
    bool busy = false;
    for (uint32_t ref = 0; ref < XENSIM_GNT_ENTRIES; ref++) {
        if (d->ref_owner[ref] != c->serial)
            continue;
        uint32_t old = __atomic_load_n(&d->gnt->entries[ref].flags_domid,
                                       __ATOMIC_ACQUIRE);
        if (!(old & (XENSIM_GTF_reading | XENSIM_GTF_writing)) &&
            __atomic_compare_exchange_n(&d->gnt->entries[ref].flags_domid, &old,
                                        0, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            d->ref_owner[ref] = 0;
        else
            busy = true;
    }
    if (busy)
        return;
    for (uint32_t f = 0; f < d->mem_pages; f++)
        if (d->frame_owner[f] == c->serial)
            release_frame(d, f);
}
