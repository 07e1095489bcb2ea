/* blkif_abi: the three request/response layouts a blkif ring may use (the
 * build's native one, x86_32-abi and x86_64-abi, chosen by the frontend's
 * `protocol` key) and the copy-out + validation of one request into a
 * normalized struct blkif_req. Pure: no I/O, no grant mapping; the ring code
 * maps what the parsed request names and the fuzzer drives this directly.
 *
 * Layouts (xen/io/blkif.h; the x86 ABIs as a 32-bit and a 64-bit x86 guest
 * lay the same structs out):
 *   x86_32: uint64_t aligned to 4 -> request id @4, sector @12, segments @20,
 *           slot 108 bytes; discard nr_sectors @20; indirect handle @20,
 *           grefs @24; response id @0, operation @8, status @10.
 *   x86_64: id @8, sector @16, segments @24, slot 112 bytes; discard
 *           nr_sectors @24; indirect handle @24, grefs @28; response as above.
 * Segment descriptors (direct and in indirect pages) are 8 bytes in every
 * ABI: gref u32, first_sect u8, last_sect u8, 2 bytes padding.
 */
#ifndef NETBUS_VBD_BLKIF_ABI_H
#define NETBUS_VBD_BLKIF_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum blkif_abi { BLKIF_ABI_NATIVE, BLKIF_ABI_X86_32, BLKIF_ABI_X86_64 };

#define BLKIF_SECTOR_SHIFT       9
#define BLKIF_SECTORS_PER_PAGE   8      /* 4096 / 512 */
#define BLKIF_DIRECT_SEGS        11     /* BLKIF_MAX_SEGMENTS_PER_REQUEST */
#define BLKIF_INDIRECT_PAGES     8      /* BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST */
#define BLKIF_SEGS_PER_INDIRECT  512    /* 4096 / 8-byte descriptor */
/* What we offer as feature-max-indirect-segments (Linux blkback's cap). */
#define BLKIF_MAX_INDIRECT_SEGS  256
#define BLKIF_SLOT_MAX           112    /* largest request slot of the ABIs */
#define BLKIF_RING_HEADER        64     /* indexes + padding before slot 0 */

/* Ops and statuses, as in xen/io/blkif.h (kept here so this header stands
 * alone for the fuzzer and tests). */
enum {
    BLKIF_REQ_READ = 0, BLKIF_REQ_WRITE = 1, BLKIF_REQ_WRITE_BARRIER = 2,
    BLKIF_REQ_FLUSH = 3, BLKIF_REQ_RESERVED_1 = 4, BLKIF_REQ_DISCARD = 5,
    BLKIF_REQ_INDIRECT = 6,
};
enum { BLKIF_ST_OKAY = 0, BLKIF_ST_ERROR = -1, BLKIF_ST_EOPNOTSUPP = -2 };

struct blkif_seg {
    uint32_t gref;
    uint8_t first_sect, last_sect;
};

/* One request, normalized and owned by the backend. */
struct blkif_req {
    uint8_t operation;      /* as on the ring: echoed in the response */
    uint8_t op;             /* effective: READ/WRITE/FLUSH/DISCARD (an
                               indirect request's indirect_op) */
    bool indirect;
    uint16_t handle;
    uint64_t id;
    uint64_t sector;        /* 512-byte units */
    uint64_t nr_sectors;    /* discard: from the request; r/w: sum of segs */
    uint8_t discard_flag;
    unsigned nr_segments;
    unsigned nr_indirect_pages;
    uint32_t indirect_grefs[BLKIF_INDIRECT_PAGES];
    struct blkif_seg seg[BLKIF_MAX_INDIRECT_SEGS];
};

/* What the device accepts. */
struct blkif_limits {
    uint64_t sectors;               /* disk size, 512-byte units */
    unsigned sector_size;           /* logical: I/O must be aligned to it */
    unsigned max_indirect_segments; /* 0: INDIRECT not offered */
    bool readonly, flush, discard;
};

/* NULL (key absent) means native. Returns -1 for an unknown protocol. */
int blkif_abi_from_protocol(const char *protocol, enum blkif_abi *abi);
const char *blkif_abi_name(enum blkif_abi abi);
/* Bytes of one ring slot (request/response union). */
size_t blkif_abi_slot_size(enum blkif_abi abi);
/* Entries of a ring of nr_pages pages: a power of two, as __RING_SIZE. */
unsigned blkif_abi_ring_entries(enum blkif_abi abi, unsigned nr_pages);

/* Parses the slot_size bytes at slot, which must already be a private copy
 * of the ring slot (the ring code copies once, then calls this). Returns
 * BLKIF_ST_OKAY when the request may proceed (an indirect one then needs
 * blkif_req_load_indirect), else the status to answer with and *why. The
 * fields id/operation/op are always filled so an error can be answered. */
int blkif_req_parse(enum blkif_abi abi, const void *slot,
                    const struct blkif_limits *lim, struct blkif_req *req,
                    const char **why);
/* Copies the segment descriptors of an indirect request out of its mapped
 * indirect pages (req->nr_indirect_pages pages, contiguous, shared with the
 * guest: read exactly once here) and checks them. Same return as parse. */
int blkif_req_load_indirect(struct blkif_req *req, const void *pages,
                            const struct blkif_limits *lim, const char **why);

/* Bytes a parsed read/write moves (nr_sectors << 9). */
static inline uint64_t blkif_req_bytes(const struct blkif_req *req)
{
    return req->nr_sectors << BLKIF_SECTOR_SHIFT;
}

/* Writes one response into a ring slot in the ring's ABI. */
void blkif_abi_put_response(enum blkif_abi abi, void *slot, uint64_t id,
                            uint8_t operation, int16_t status);

/* ---- frontend side (tests, reference frontends) --------------------------
 * Raw field values are written as given, so tests can build hostile
 * requests: nr_segments is not checked against the array. */
struct blkif_raw_req {
    uint8_t operation;
    uint8_t nr_segments_or_flag; /* r/w: nr_segments; discard: flag;
                                    indirect: indirect_op */
    uint16_t nr_segments16;      /* indirect only */
    uint16_t handle;
    uint64_t id;
    uint64_t sector;
    uint64_t nr_sectors;         /* discard only */
    uint32_t indirect_grefs[BLKIF_INDIRECT_PAGES];
    struct blkif_seg seg[BLKIF_DIRECT_SEGS];
};
void blkif_abi_put_request(enum blkif_abi abi, void *slot,
                           const struct blkif_raw_req *r);
void blkif_abi_get_response(enum blkif_abi abi, const void *slot,
                            uint64_t *id, uint8_t *operation, int16_t *status);

#endif
