/* blkfront: a userspace blkif frontend, run as a xensim (or Xen) guest.
 *
 * Does what Linux's drivers/block/xen-blkfront.c does, in one thread:
 *   - handshake: waits for the backend's InitWait, reads its features
 *     (max-ring-page-order, multi-queue-max-queues, feature-persistent),
 *     shares the ring pages (ring-ref or ring-refN + ring-page-order, one
 *     set per queue under queue-N/ with multi-queue-num-queues), allocates
 *     an unbound event channel per ring, writes them with protocol and
 *     feature-persistent in one transaction and goes Initialised; on the
 *     backend's Connected reads sectors, info, sector-size and the I/O
 *     features (feature-flush-cache/barrier, feature-discard + granularity,
 *     feature-max-indirect-segments) and goes Connected;
 *   - I/O: READ/WRITE with up to 11 direct segments, INDIRECT beyond
 *     (segment pages granted read-only), FLUSH_DISKCACHE, DISCARD; data pages
 *     come from a pool of pages granted once when the backend offers
 *     feature-persistent (reused LIFO, as blkif.h suggests) or when asked to
 *     (reuse_grants), otherwise they are granted per request (read-only for
 *     writes) and revoked when the response arrives, which fails if the
 *     backend answered before unmapping (Linux: "backed has not unmapped
 *     grant"); every response is checked (id in range and in
 *     flight, operation matches) and a request unanswered for the timeout
 *     is an error;
 *   - close: Closing, wait for the backend to close, Closed, revoke
 *     everything.
 * A backend that misbehaves makes blkfront fail with a message (bf->err);
 * the caller reports it and exits non-zero. */
#ifndef NETBUS_XENFRONT_BLKFRONT_H
#define NETBUS_XENFRONT_BLKFRONT_H

#include "xenif.h"

#include <stdbool.h>
#include <stdint.h>

#define BF_SECTOR 512u
#define BF_SECTORS_PER_PAGE (XENIF_PAGE_SIZE / BF_SECTOR)
#define BF_MAX_RING_ORDER 4   /* up to 16 ring pages per queue */
#define BF_MAX_QUEUES 8
#define BF_MAX_INDIRECT 512   /* segments per request: one indirect page */

/* What the frontend does when its domain is suspended and resumed
 * (migration): see blkfront.c's "suspend / resume". */
enum bf_resume {
    BF_RESUME_REISSUE,         /* Linux blkfront: fresh rings, grant again,
                                * re-issue every request without a response */
    BF_RESUME_KEEP,            /* requests queued while suspending stay on
                                * the ring; the same ring refs are published
                                * again for the new backend */
    BF_RESUME_OFF,             /* do not take part: the process is left
                                * behind (and killed) when the domain moves */
};

struct bf_opts {
    unsigned devid;            /* virtual-device under device/vbd */
    enum bf_resume resume;     /* on xensim */
    unsigned max_ring_order;   /* we use min(this, backend's max) */
    unsigned max_queues;       /* we use min(this, backend's max) */
    unsigned max_indirect;     /* segments; min(this, backend's) */
    bool persistent;           /* offer feature-persistent */
    bool reuse_grants;         /* without persistent grants: keep data pages
                                * granted between requests instead of
                                * revoking each after its response (the
                                * backend still maps them per request) */
    int timeout_ms;            /* handshake steps and each request */
    bool verbose;
};
void bf_opts_default(struct bf_opts *o);

enum bf_op { BF_READ, BF_WRITE, BF_FLUSH, BF_DISCARD };

/* One I/O. For READ/WRITE, buf holds nsect * 512 bytes (or is NULL: no data
 * is copied, for load generation); page_off (0..7 sectors) places the data
 * at that sector of the first granted page, so segments with first_sect > 0
 * are exercised. done() is called from bf_poll with the response status
 * (BLKIF_RSP_*), or with BF_STATUS_ABORTED when the device failed. */
#define BF_STATUS_ABORTED (-100)
struct bf_io {
    enum bf_op op;
    uint64_t sector;
    uint32_t nsect;
    unsigned page_off;
    void *buf;
    bool secure; /* DISCARD: BLKIF_DISCARD_SECURE */
    void (*done)(struct bf_io *io, int status);
    void *opaque;
    /* set by blkfront */
    uint64_t submit_ns;
};

struct bf_stats {
    uint64_t requests, direct, indirect, flushes, discards;
    uint64_t grants_shared, grants_revoked;
    /* suspend / resume */
    uint64_t suspends, migrations, cancelled;
    uint64_t kept;           /* requests left on the ring across a resume */
    uint64_t reissued;       /* requests issued again after a resume */
    uint64_t pause_ns_max;   /* longest suspend request -> running again */
    uint64_t pause_ns_total;
};

struct blkfront;

/* Opens the hypervisor interface from the environment and performs the
 * handshake on device/vbd/DEVID. NULL with the reason in err. */
struct blkfront *bf_open(const struct bf_opts *o, char *err, size_t errlen);
/* Clean close (Closing, wait, Closed, revoke); returns 0, or -1 with the
 * reason in bf_error(). Frees bf either way. */
int bf_close(struct blkfront *bf);

/* Disk properties, valid after bf_open. */
uint64_t bf_sectors(const struct blkfront *bf);      /* 512-byte units */
unsigned bf_sector_size(const struct blkfront *bf);  /* logical, bytes */
unsigned bf_info(const struct blkfront *bf);         /* VDISK_* bits */
bool bf_readonly(const struct blkfront *bf);
bool bf_has_flush(const struct blkfront *bf);
bool bf_has_discard(const struct blkfront *bf);
/* Largest READ/WRITE in sectors with page_off = 0. */
uint32_t bf_max_sectors(const struct blkfront *bf);
unsigned bf_max_segments(const struct blkfront *bf);
unsigned bf_nr_rings(const struct blkfront *bf);
unsigned bf_ring_order(const struct blkfront *bf);
unsigned bf_ring_size(const struct blkfront *bf);   /* slots per ring */
bool bf_persistent(const struct blkfront *bf);
/* Data pages come from a pool granted once (persistent or reuse_grants). */
bool bf_pooled_grants(const struct blkfront *bf);
const struct bf_stats *bf_stats(const struct blkfront *bf);
const char *bf_error(const struct blkfront *bf);    /* "" if none */

/* Queues an I/O. Returns 0; -1 with errno EAGAIN when every ring is full
 * (call bf_poll), EINVAL for a request the device cannot take (too big,
 * misaligned, past the end, op not offered), EIO after a device failure. */
int bf_submit(struct blkfront *bf, struct bf_io *io);
/* Pushes queued requests and notifies the backend (bf_submit batches). */
int bf_kick(struct blkfront *bf);
/* Waits up to timeout_ms for responses and completes them. Returns the
 * number completed, or -1 when the device failed (bf_error). On xensim it
 * also answers the toolstack's suspend requests: the call then returns
 * after the resume, possibly on another host. */
int bf_poll(struct blkfront *bf, int timeout_ms);
unsigned bf_in_flight(const struct blkfront *bf);

#endif
