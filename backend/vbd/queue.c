/* queue: one blkif ring + event channel served from the event loop (see
 * queue.h). The shared ring is accessed through its index words and slot
 * bytes only, so one code path serves all three ABIs; the index protocol is
 * that of xen/io/ring.h (BACK_RING_ATTACH, RING_FINAL_CHECK_FOR_REQUESTS,
 * RING_PUSH_RESPONSES_AND_CHECK_NOTIFY), written out here with the guest's
 * words read once each. */
#include "queue.h"

#include "evloop.h"
#include "log.h"
#include "ring.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define PAGE XENIF_PAGE_SIZE
/* Bad requests logged per queue before only every BAD_LOG_EVERY-th is. */
#define BAD_LOG_FIRST 32
#define BAD_LOG_EVERY 1024


struct vbd_io {
    struct vbd_target_io tio; /* first: the target hands it back */
    struct vbd_queue *q;
    struct vbd_io *next_free;
    void *map;
    unsigned map_count;
    struct blkif_req req;
    struct iovec iov[BLKIF_MAX_INDIRECT_SEGS];
};

/* Persistent grants kept per ring slot: Linux blkfront keeps up to its
 * indirect segments per request (32 by default) + 1 indirect page. */
#define PGNT_PER_SLOT 33

/* Persistent grants of one queue: gref -> page mapped read-write, open
 * addressing, never removed before the queue closes (the frontend reuses a
 * fixed pool; Linux blkfront keeps up to a ring's worth of segments). */
struct pgnt {
    xenif_gref gref;
    void *addr; /* NULL: free slot */
};

struct vbd_queue {
    struct vbd_disk *disk;
    unsigned index;
    enum blkif_abi abi;
    uint8_t *sring;
    unsigned nr_pages;
    uint32_t size;            /* entries, power of two */
    struct back_ring ring;
    struct xenif_evtchn *ec;
    xenif_port port;
    int fd;
    bool fd_added, stopped, dead;
    bool processing, reprocess; /* queue_process running, and called again */
    unsigned inflight;
    struct vbd_io *ios, *free_ios;
    uint64_t bad;
    struct pgnt *pg;          /* persistent grants (2 * pg_max slots) */
    unsigned pg_count, pg_max;
    char why[160];
};

static const char *op_name(uint8_t op)
{
    switch (op) {
    case BLKIF_REQ_READ: return "read";
    case BLKIF_REQ_WRITE: return "write";
    case BLKIF_REQ_WRITE_BARRIER: return "barrier";
    case BLKIF_REQ_FLUSH: return "flush";
    case BLKIF_REQ_DISCARD: return "discard";
    case BLKIF_REQ_INDIRECT: return "indirect";
    default: return "unknown";
    }
}

static uint8_t rsp_op(const struct blkif_req *r)
{
    /* Linux blkfront checks an indirect request's response against its
     * indirect_op. */
    return r->indirect ? r->op : r->operation;
}

/* ---- responses ----------------------------------------------------------- */

static void respond(struct vbd_queue *q, const struct blkif_req *r, int16_t st)
{
    struct vbd_disk *d = q->disk;
    if (d->on_first_response) {
        void (*cb)(struct vbd_disk *) = d->on_first_response;
        d->on_first_response = NULL;
        cb(d);
    }
    blkif_abi_put_response(q->abi, back_ring_next_response(&q->ring), r->id,
                           rsp_op(r), st);
    back_ring_respond(&q->ring);
}

static void push(struct vbd_queue *q)
{
    /* A guest that just got answers tends to send the next requests soon
     * (a queue depth's worth keeps coming back): worth polling for. */
    if (q->ring.sring && q->ring.rsp_prod_pvt != q->ring.rsp_pushed)
        evloop_expect_soon(q->disk->loop);
    if (q->ring.sring && back_ring_push(&q->ring) &&
        xenif_evtchn_notify(q->ec, q->port) < 0)
        log_warn(q->disk->where, "queue %u: notify: %s", q->index, strerror(errno));
}

static void free_io(struct vbd_queue *q, struct vbd_io *io)
{
    io->next_free = q->free_ios;
    q->free_ios = io;
}

static void bad_request(struct vbd_queue *q, struct vbd_io *io, int st,
                        const char *why)
{
    struct vbd_disk *d = q->disk;
    d->errors++;
    q->bad++;
    if (q->bad <= BAD_LOG_FIRST || q->bad % BAD_LOG_EVERY == 0)
        log_warn(d->where, "queue %u: bad %s request id %" PRIu64
                 " (op %u, sector %" PRIu64 ", %u segs): %s%s", q->index,
                 op_name(io->req.operation), io->req.id, io->req.operation,
                 io->req.sector, io->req.nr_segments, why,
                 q->bad == BAD_LOG_FIRST ? " (further ones logged 1 in "
                 "1024)" : "");
    respond(q, &io->req, (int16_t)st);
    free_io(q, io);
}

/* Ring-level abuse: stop this queue and have the device disconnected. */
static void queue_abuse(struct vbd_queue *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void queue_abuse(struct vbd_queue *q, const char *fmt, ...)
{
    struct vbd_disk *d = q->disk;
    q->dead = true;
    if (q->fd_added) {
        evloop_del(d->loop, q->fd);
        q->fd_added = false;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->why, sizeof(q->why), fmt, ap);
    va_end(ap);
    if (!d->failed) {
        d->failed = true;
        if (d->fail)
            d->fail(d, q->why);
        else
            log_error(d->where, "%s", q->why);
    }
}

/* ---- requests ------------------------------------------------------------ */

static void io_done(struct vbd_target_io *tio, int err)
{
    struct vbd_io *io = (struct vbd_io *)tio;
    struct vbd_queue *q = io->q;
    struct vbd_disk *d = q->disk;
    if (io->map) {
        if (xenif_gnt_unmap(d->gnt, io->map, io->map_count) < 0)
            log_error(d->where, "queue %u: unmapping %u grants: %s", q->index,
                      io->map_count, strerror(errno));
        io->map = NULL;
    }
    int16_t st = BLKIF_ST_OKAY;
    if (err) {
        d->errors++;
        st = err == -EOPNOTSUPP && tio->kind == VBD_IO_DISCARD
                 ? BLKIF_ST_EOPNOTSUPP : BLKIF_ST_ERROR;
        log_warn(d->where, "queue %u: %s id %" PRIu64 " at sector %" PRIu64
                 " (+%" PRIu64 "): %s", q->index, op_name(io->req.op),
                 io->req.id, io->req.sector, io->req.nr_sectors, strerror(-err));
    }
    respond(q, &io->req, st);
    q->inflight--;
    free_io(q, io);
}

/* The persistent mapping of gref, mapping it now if there is room; NULL if
 * the grant cannot be mapped read-write or the table is full (the request
 * then takes the per-request path). */
static void *pgnt_get(struct vbd_queue *q, xenif_gref gref)
{
    unsigned cap = 2 * q->pg_max;
    unsigned h = (gref * 2654435761u) % cap;
    for (unsigned n = 0; n < cap; n++, h = (h + 1) % cap) {
        if (!q->pg[h].addr)
            break;
        if (q->pg[h].gref == gref)
            return q->pg[h].addr;
    }
    if (q->pg_count >= q->pg_max)
        return NULL;
    struct vbd_disk *d = q->disk;
    void *addr = xenif_gnt_map(d->gnt, d->domid, 1, &gref,
                               XENIF_GNT_READ | XENIF_GNT_WRITE);
    if (!addr)
        return NULL;
    q->pg[h].gref = gref;
    q->pg[h].addr = addr;
    q->pg_count++;
    d->persistent_maps++;
    return addr;
}

static void pgnt_free(struct vbd_queue *q)
{
    for (unsigned i = 0; q->pg && i < 2 * q->pg_max; i++)
        if (q->pg[i].addr &&
            xenif_gnt_unmap(q->disk->gnt, q->pg[i].addr, 1) < 0)
            log_error(q->disk->where, "queue %u: unmapping persistent grant "
                      "%u: %s", q->index, q->pg[i].gref, strerror(errno));
    free(q->pg);
    q->pg = NULL;
}

/* Copies the indirect descriptors out of the persistently mapped descriptor
 * pages into buf (room for BLKIF_MAX_INDIRECT_SEGS descriptors); false if a
 * page has no persistent mapping (the caller maps them per request). */
static bool gather_indirect_persistent(struct vbd_queue *q,
                                       const struct blkif_req *r, uint8_t *buf)
{
    size_t left = (size_t)(r->nr_segments < BLKIF_MAX_INDIRECT_SEGS
                           ? r->nr_segments : BLKIF_MAX_INDIRECT_SEGS) * 8;
    for (unsigned i = 0; i < r->nr_indirect_pages && left; i++) {
        const uint8_t *page = pgnt_get(q, r->indirect_grefs[i]);
        if (!page)
            return false;
        size_t n = left < PAGE ? left : PAGE;
        memcpy(buf, page, n);
        buf += n;
        left -= n;
    }
    return true;
}

/* Copies the indirect descriptors out of the descriptor pages: through
 * persistent grants when they are in use (Linux blkback maps indirect pages
 * persistently too), else mapped read-only for this request. */
static int load_indirect(struct vbd_queue *q, struct vbd_io *io, const char **why)
{
    struct vbd_disk *d = q->disk;
    struct blkif_req *r = &io->req;
    if (q->pg) {
        uint8_t desc[BLKIF_MAX_INDIRECT_SEGS * 8];
        if (gather_indirect_persistent(q, r, desc))
            return blkif_req_load_indirect(r, desc, &d->lim, why);
    }
    void *pages = xenif_gnt_map(d->gnt, d->domid, r->nr_indirect_pages,
                                r->indirect_grefs, XENIF_GNT_READ);
    if (!pages) {
        snprintf(q->why, sizeof(q->why), "cannot map %u indirect descriptor "
                 "page(s): %s", r->nr_indirect_pages, strerror(errno));
        *why = q->why;
        return BLKIF_ST_ERROR;
    }
    int st = blkif_req_load_indirect(r, pages, &d->lim, why);
    if (xenif_gnt_unmap(d->gnt, pages, r->nr_indirect_pages) < 0)
        log_error(d->where, "queue %u: unmapping indirect pages: %s", q->index,
                  strerror(errno));
    return st;
}

/* Segments through persistent grants; false if one is not available. */
static bool map_persistent(struct vbd_queue *q, struct vbd_io *io)
{
    struct blkif_req *r = &io->req;
    for (unsigned i = 0; i < r->nr_segments; i++) {
        uint8_t *page = pgnt_get(q, r->seg[i].gref);
        if (!page)
            return false;
        io->iov[i].iov_base = page + ((size_t)r->seg[i].first_sect
                                      << BLKIF_SECTOR_SHIFT);
        io->iov[i].iov_len = ((size_t)r->seg[i].last_sect -
                              r->seg[i].first_sect + 1) << BLKIF_SECTOR_SHIFT;
    }
    return true;
}

/* Joins iovecs that continue one another (whole pages mapped side by side,
 * as a per-request mapping lays them out): the kernel pins and builds the
 * bio per iovec, 256 one-page iovecs cost it far more than one of 1 MiB.
 * Returns the new count. */
static unsigned merge_iov(struct iovec *iov, unsigned n)
{
    unsigned out = 0;
    for (unsigned i = 0; i < n; i++) {
        if (out && (uint8_t *)iov[out - 1].iov_base + iov[out - 1].iov_len ==
                       (uint8_t *)iov[i].iov_base)
            iov[out - 1].iov_len += iov[i].iov_len;
        else
            iov[out++] = iov[i];
    }
    return out;
}

static int start_io(struct vbd_queue *q, struct vbd_io *io, const char **why)
{
    struct vbd_disk *d = q->disk;
    struct blkif_req *r = &io->req;
    struct vbd_target_io *t = &io->tio;
    t->preflush = false;
    t->iov = io->iov;
    t->iovcnt = 0;
    t->done = io_done;
    t->offset = r->sector << BLKIF_SECTOR_SHIFT;
    t->len = blkif_req_bytes(r);
    io->map = NULL;
    if (r->op == BLKIF_REQ_FLUSH && r->nr_segments == 0) {
        t->kind = VBD_IO_FLUSH;
        t->offset = t->len = 0;
    } else if (r->op == BLKIF_REQ_DISCARD) {
        t->kind = VBD_IO_DISCARD;
    } else {
        bool to_guest = r->op == BLKIF_REQ_READ;
        t->kind = to_guest ? VBD_IO_READ : VBD_IO_WRITE;
        t->preflush = r->op == BLKIF_REQ_FLUSH;
        t->iovcnt = r->nr_segments;
        if (q->pg && map_persistent(q, io))
            goto submit;
        xenif_gref refs[BLKIF_MAX_INDIRECT_SEGS];
        for (unsigned i = 0; i < r->nr_segments; i++)
            refs[i] = r->seg[i].gref;
        io->map = xenif_gnt_map(d->gnt, d->domid, r->nr_segments, refs,
                                to_guest ? XENIF_GNT_READ | XENIF_GNT_WRITE
                                         : XENIF_GNT_READ);
        if (!io->map) {
            snprintf(q->why, sizeof(q->why), "cannot map %u segment grant(s) "
                     "%s: %s", r->nr_segments,
                     to_guest ? "writable (data goes to the guest)" : "read-only",
                     strerror(errno));
            *why = q->why;
            return BLKIF_ST_ERROR;
        }
        io->map_count = r->nr_segments;
        for (unsigned i = 0; i < r->nr_segments; i++) {
            const struct blkif_seg *s = &r->seg[i];
            io->iov[i].iov_base = (uint8_t *)io->map + (size_t)i * PAGE +
                                  ((size_t)s->first_sect << BLKIF_SECTOR_SHIFT);
            io->iov[i].iov_len = ((size_t)s->last_sect - s->first_sect + 1)
                                 << BLKIF_SECTOR_SHIFT;
        }
    }
submit:
    t->iovcnt = merge_iov(io->iov, t->iovcnt);
    int rc = d->target->ops->submit(d->target, t);
    if (rc < 0) {
        if (io->map)
            xenif_gnt_unmap(d->gnt, io->map, io->map_count);
        io->map = NULL;
        snprintf(q->why, sizeof(q->why), "target did not take it: %s",
                 strerror(-rc));
        *why = q->why;
        return BLKIF_ST_ERROR;
    }
    q->inflight++;
    return BLKIF_ST_OKAY;
}

/* One request, already copied out of the ring into `copy`. */
static void handle(struct vbd_queue *q, const uint8_t *copy)
{
    struct vbd_disk *d = q->disk;
    struct vbd_io *io = q->free_ios;
    q->free_ios = io->next_free;
    d->requests++;
    const char *why = NULL;
    int st = blkif_req_parse(q->abi, copy, &d->lim, &io->req, &why);
    if (st == BLKIF_ST_OKAY && io->req.indirect)
        st = load_indirect(q, io, &why);
    if (st == BLKIF_ST_OKAY)
        st = start_io(q, io, &why);
    if (st != BLKIF_ST_OKAY)
        bad_request(q, io, st, why ? why : "rejected");
}

/* Takes the requests on the ring (see queue_process). */
static void consume(struct vbd_queue *q)
{
    struct vbd_disk *d = q->disk;
    while (!q->stopped && !q->dead && !d->quiesced) {
        struct back_ring *r = &q->ring;
        uint32_t rp;
        if (back_ring_req_prod(r, &rp) < 0) {
            queue_abuse(q, "queue %u: frontend req_prod %u is %u requests "
                        "ahead of req_cons %u, the ring holds %u: disconnecting",
                        q->index, rp, rp - r->req_cons, r->req_cons, r->size);
            break;
        }
        bool blocked = false;
        while (r->req_cons != rp && !q->dead) {
            /* At most a ring's worth consumed and unanswered (a frontend
             * keeping to the protocol never reaches this). */
            if (!back_ring_has_room(r) || !q->free_ios) {
                blocked = true;
                break;
            }
            uint8_t copy[BLKIF_SLOT_MAX];
            memcpy(copy, back_ring_slot(r, r->req_cons), r->slot_size);
            __atomic_signal_fence(__ATOMIC_SEQ_CST); /* parse the copy only */
            r->req_cons++;
            handle(q, copy);
        }
        if (blocked || q->dead)
            break; /* resumed when completions free a slot */
        if (!back_ring_final_check(r))
            break;
    }
}

static void queue_process(struct vbd_queue *q)
{
    struct vbd_disk *d = q->disk;
    /* A target may complete I/O from inside submit or kick (io_uring when
     * its queues are full), and completions come back here: never walk the
     * ring twice at once, go round again instead. */
    if (q->processing) {
        q->reprocess = true;
        return;
    }
    q->processing = true;
    do {
        q->reprocess = false;
        consume(q);
        d->target->ops->kick(d->target);
    } while (q->reprocess);
    q->processing = false;
    push(q);
}

static void on_evtchn(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)loop;
    (void)fd;
    (void)events;
    struct vbd_queue *q = opaque;
    /* The handle has this queue's port only: one pending() clears and masks
     * it, unmask() re-arms it before we look at the ring, so a request
     * posted from now on notifies us again. */
    int p = xenif_evtchn_pending(q->ec);
    if (p >= 0)
        xenif_evtchn_unmask(q->ec, (xenif_port)p);
    queue_process(q);
}

unsigned vbd_disk_inflight(const struct vbd_disk *disk)
{
    unsigned n = 0;
    for (unsigned i = 0; i < disk->nr_queues; i++)
        n += disk->queues[i]->inflight;
    return n;
}

static void check_drained(struct vbd_disk *d)
{
    if (!d->quiesced || !d->on_drained || vbd_disk_inflight(d))
        return;
    void (*cb)(struct vbd_disk *) = d->on_drained;
    d->on_drained = NULL;
    cb(d);
}

static void on_reaped(void *opaque)
{
    struct vbd_disk *d = opaque;
    for (unsigned i = 0; i < d->nr_queues; i++) {
        struct vbd_queue *q = d->queues[i];
        push(q);
        queue_process(q); /* picks up where a full queue stopped */
    }
    check_drained(d);
}

void vbd_disk_quiesce(struct vbd_disk *disk,
                      void (*on_drained)(struct vbd_disk *disk))
{
    disk->quiesced = true;
    disk->on_drained = on_drained;
    if (disk->target)
        disk->target->ops->kick(disk->target);
    for (unsigned i = 0; i < disk->nr_queues; i++)
        push(disk->queues[i]);
    check_drained(disk);
}

void vbd_disk_resume(struct vbd_disk *disk)
{
    disk->quiesced = false;
    disk->on_drained = NULL;
    for (unsigned i = 0; i < disk->nr_queues; i++)
        queue_process(disk->queues[i]);
}

void vbd_disk_attach_target(struct vbd_disk *disk)
{
    disk->target->reaped = on_reaped;
    disk->target->opaque = disk;
}

/* ---- open / close -------------------------------------------------------- */

static void queue_free(struct vbd_queue *q)
{
    struct vbd_disk *d = q->disk;
    if (q->fd_added)
        evloop_del(d->loop, q->fd);
    if (q->ec) {
        if (q->port)
            xenif_evtchn_unbind(q->ec, q->port);
        xenif_evtchn_close(q->ec);
    }
    if (q->sring && xenif_gnt_unmap(d->gnt, q->sring, q->nr_pages) < 0)
        log_error(d->where, "queue %u: unmapping the ring: %s", q->index,
                  strerror(errno));
    if (!q->inflight) { /* else the target still holds them: leak, not crash */
        free(q->ios);
        pgnt_free(q);
    }
    free(q);
}

struct vbd_queue *vbd_queue_open(struct vbd_disk *disk,
                                 const struct vbd_queue_params *p, char *err,
                                 size_t errlen)
{
    if (p->nr_pages == 0 || p->nr_pages > VBD_MAX_RING_PAGES ||
        (p->nr_pages & (p->nr_pages - 1))) {
        snprintf(err, errlen, "queue %u: ring of %u pages", p->index, p->nr_pages);
        return NULL;
    }
    if (disk->nr_queues >= VBD_MAX_QUEUES) {
        snprintf(err, errlen, "too many queues");
        return NULL;
    }
    struct vbd_queue *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->disk = disk;
    q->index = p->index;
    q->abi = p->abi;
    q->fd = -1;
    q->nr_pages = p->nr_pages;
    q->sring = xenif_gnt_map(disk->gnt, disk->domid, p->nr_pages, p->refs,
                             XENIF_GNT_READ | XENIF_GNT_WRITE);
    if (!q->sring) {
        snprintf(err, errlen, "queue %u: mapping the %u ring page(s): %s",
                 p->index, p->nr_pages, strerror(errno));
        goto fail;
    }
    q->ec = xenif_evtchn_open(disk->cfg, err, errlen);
    if (!q->ec)
        goto fail;
    int port = xenif_evtchn_bind_interdomain(q->ec, disk->domid, p->remote_port);
    if (port < 0) {
        snprintf(err, errlen, "queue %u: binding event channel %u: %s",
                 p->index, p->remote_port, strerror(errno));
        goto fail;
    }
    q->port = (xenif_port)port;
    q->fd = xenif_evtchn_fd(q->ec);

    /* Answered requests end at rsp_prod; whatever lies between it and
     * req_prod is served now. */
    if (back_ring_attach(&q->ring, q->sring, (size_t)p->nr_pages * PAGE,
                         blkif_abi_slot_size(p->abi)) < 0) {
        snprintf(err, errlen, "queue %u: ring indexes req_prod and rsp_prod "
                 "are more than the ring's %u entries apart", p->index,
                 q->ring.size);
        goto fail;
    }
    uint32_t pending = back_ring_pending_at_attach(&q->ring);
    q->size = q->ring.size;

    q->ios = calloc(q->size, sizeof(*q->ios));
    if (!q->ios) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (disk->persistent) {
        q->pg_max = q->size * PGNT_PER_SLOT;
        if (q->pg_max > 4096)
            q->pg_max = 4096;
        q->pg = calloc(2 * (size_t)q->pg_max, sizeof(*q->pg));
        if (!q->pg) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    for (uint32_t i = q->size; i-- > 0;) {
        q->ios[i].q = q;
        free_io(q, &q->ios[i]);
    }
    if (evloop_add(disk->loop, q->fd, EPOLLIN, on_evtchn, q) < 0) {
        snprintf(err, errlen, "queue %u: evloop: %s", p->index, strerror(errno));
        goto fail;
    }
    q->fd_added = true;
    disk->queues[disk->nr_queues++] = q;
    if (pending)
        log_info(disk->where, "queue %u: %u request(s) already on the ring",
                 p->index, pending);
    queue_process(q);
    return q;
fail:
    queue_free(q);
    return NULL;
}

void vbd_disk_close_queues(struct vbd_disk *disk)
{
    for (unsigned i = 0; i < disk->nr_queues; i++) {
        struct vbd_queue *q = disk->queues[i];
        q->stopped = true;
        if (q->fd_added) {
            evloop_del(disk->loop, q->fd);
            q->fd_added = false;
        }
    }
    if (disk->target)
        disk->target->ops->drain(disk->target);
    for (unsigned i = 0; i < disk->nr_queues; i++) {
        struct vbd_queue *q = disk->queues[i];
        push(q);
        if (q->inflight)
            log_error(disk->where, "queue %u: %u request(s) still in flight at "
                      "close", q->index, q->inflight);
        queue_free(q);
        disk->queues[i] = NULL;
    }
    disk->nr_queues = 0;
}
