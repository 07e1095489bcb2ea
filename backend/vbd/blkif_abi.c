/* blkif_abi: request layouts and the request parser (see blkif_abi.h). */
#include "blkif_abi.h"

#include <stddef.h>
#include <string.h>

#define mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/xen.h>
#include <xen/io/blkif.h>
#include <xen/io/protocols.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the x86 ABIs are little endian; fields are copied bytewise");
_Static_assert(BLKIF_REQ_INDIRECT == BLKIF_OP_INDIRECT &&
               BLKIF_REQ_DISCARD == BLKIF_OP_DISCARD &&
               BLKIF_REQ_FLUSH == BLKIF_OP_FLUSH_DISKCACHE &&
               BLKIF_REQ_WRITE_BARRIER == BLKIF_OP_WRITE_BARRIER &&
               BLKIF_ST_EOPNOTSUPP == BLKIF_RSP_EOPNOTSUPP &&
               BLKIF_ST_ERROR == BLKIF_RSP_ERROR, "blkif.h values");
_Static_assert(BLKIF_DIRECT_SEGS == BLKIF_MAX_SEGMENTS_PER_REQUEST &&
               BLKIF_INDIRECT_PAGES == BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
               "blkif.h limits");
_Static_assert(sizeof(struct blkif_request_segment) == 8, "segment size");
_Static_assert(offsetof(struct blkif_sring, ring) == BLKIF_RING_HEADER,
               "ring header");
_Static_assert(BLKIF_MAX_INDIRECT_SEGS <=
               BLKIF_INDIRECT_PAGES * BLKIF_SEGS_PER_INDIRECT, "indirect cap");

/* Where each field sits in one ABI. operation is at 0 and the second byte
 * (nr_segments / discard flag / indirect_op) at 1 in all of them; the rw
 * handle at 2. */
struct layout {
    size_t slot;
    size_t rw_id, rw_sector, rw_seg;
    size_t d_id, d_sector, d_nr;
    size_t i_nrseg, i_id, i_sector, i_handle, i_grefs;
    size_t r_id, r_op, r_status;
};

static const struct layout layouts[] = {
    [BLKIF_ABI_NATIVE] = {
        .slot = sizeof(union blkif_sring_entry),
        .rw_id = offsetof(struct blkif_request, id),
        .rw_sector = offsetof(struct blkif_request, sector_number),
        .rw_seg = offsetof(struct blkif_request, seg),
        .d_id = offsetof(struct blkif_request_discard, id),
        .d_sector = offsetof(struct blkif_request_discard, sector_number),
        .d_nr = offsetof(struct blkif_request_discard, nr_sectors),
        .i_nrseg = offsetof(struct blkif_request_indirect, nr_segments),
        .i_id = offsetof(struct blkif_request_indirect, id),
        .i_sector = offsetof(struct blkif_request_indirect, sector_number),
        .i_handle = offsetof(struct blkif_request_indirect, handle),
        .i_grefs = offsetof(struct blkif_request_indirect, indirect_grefs),
        .r_id = offsetof(struct blkif_response, id),
        .r_op = offsetof(struct blkif_response, operation),
        .r_status = offsetof(struct blkif_response, status),
    },
    [BLKIF_ABI_X86_32] = {
        .slot = 108,
        .rw_id = 4, .rw_sector = 12, .rw_seg = 20,
        .d_id = 4, .d_sector = 12, .d_nr = 20,
        .i_nrseg = 2, .i_id = 4, .i_sector = 12, .i_handle = 20, .i_grefs = 24,
        .r_id = 0, .r_op = 8, .r_status = 10,
    },
    [BLKIF_ABI_X86_64] = {
        .slot = 112,
        .rw_id = 8, .rw_sector = 16, .rw_seg = 24,
        .d_id = 8, .d_sector = 16, .d_nr = 24,
        .i_nrseg = 2, .i_id = 8, .i_sector = 16, .i_handle = 24, .i_grefs = 28,
        .r_id = 0, .r_op = 8, .r_status = 10,
    },
};

#if defined(__x86_64__)
_Static_assert(sizeof(union blkif_sring_entry) == 112 &&
               offsetof(struct blkif_request, seg) == 24 &&
               offsetof(struct blkif_request_indirect, indirect_grefs) == 28 &&
               offsetof(struct blkif_request_discard, nr_sectors) == 24,
               "native is x86_64-abi on x86_64");
#endif
_Static_assert(sizeof(union blkif_sring_entry) <= BLKIF_SLOT_MAX, "slot max");

int blkif_abi_from_protocol(const char *protocol, enum blkif_abi *abi)
{
    if (!protocol || strcmp(protocol, XEN_IO_PROTO_ABI_NATIVE) == 0)
        *abi = BLKIF_ABI_NATIVE;
    else if (strcmp(protocol, XEN_IO_PROTO_ABI_X86_32) == 0)
        *abi = BLKIF_ABI_X86_32;
    else if (strcmp(protocol, XEN_IO_PROTO_ABI_X86_64) == 0)
        *abi = BLKIF_ABI_X86_64;
    else
        return -1;
    return 0;
}

const char *blkif_abi_name(enum blkif_abi abi)
{
    switch (abi) {
    case BLKIF_ABI_X86_32: return XEN_IO_PROTO_ABI_X86_32;
    case BLKIF_ABI_X86_64: return XEN_IO_PROTO_ABI_X86_64;
    default: return "native (" XEN_IO_PROTO_ABI_NATIVE ")";
    }
}

size_t blkif_abi_slot_size(enum blkif_abi abi)
{
    return layouts[abi].slot;
}

unsigned blkif_abi_ring_entries(enum blkif_abi abi, unsigned nr_pages)
{
    size_t n = ((size_t)nr_pages * 4096 - BLKIF_RING_HEADER) / layouts[abi].slot;
    unsigned p = 1;
    while ((size_t)p * 2 <= n)
        p *= 2;
    return p;
}

static uint16_t get16(const uint8_t *p, size_t off)
{
    uint16_t v;
    memcpy(&v, p + off, sizeof(v));
    return v;
}

static uint32_t get32(const uint8_t *p, size_t off)
{
    uint32_t v;
    memcpy(&v, p + off, sizeof(v));
    return v;
}

static uint64_t get64(const uint8_t *p, size_t off)
{
    uint64_t v;
    memcpy(&v, p + off, sizeof(v));
    return v;
}

static void get_seg(const uint8_t *p, struct blkif_seg *s)
{
    s->gref = get32(p, 0);
    s->first_sect = p[4];
    s->last_sect = p[5];
}

/* sector..sector+count within the disk and aligned to its logical size. */
static int check_range(const struct blkif_req *req, uint64_t count,
                       const struct blkif_limits *lim, const char **why)
{
    if (req->sector > lim->sectors || count > lim->sectors - req->sector) {
        *why = "sector range past the end of the disk";
        return BLKIF_ST_ERROR;
    }
    uint64_t align = lim->sector_size >> BLKIF_SECTOR_SHIFT;
    if (align > 1 && (req->sector % align || count % align)) {
        *why = "sector range not aligned to the logical sector size";
        return BLKIF_ST_ERROR;
    }
    return BLKIF_ST_OKAY;
}

/* Segment bounds, total length, disk range. */
static int check_segments(struct blkif_req *req, const struct blkif_limits *lim,
                          const char **why)
{
    uint64_t total = 0;
    unsigned align = lim->sector_size >> BLKIF_SECTOR_SHIFT;
    for (unsigned i = 0; i < req->nr_segments; i++) {
        const struct blkif_seg *s = &req->seg[i];
        if (s->last_sect >= BLKIF_SECTORS_PER_PAGE) {
            *why = "segment runs past the end of its page";
            return BLKIF_ST_ERROR;
        }
        if (s->first_sect > s->last_sect) {
            *why = "segment first_sect > last_sect";
            return BLKIF_ST_ERROR;
        }
        if (align > 1 && (s->first_sect % align || (s->last_sect + 1u) % align)) {
            *why = "segment not aligned to the logical sector size";
            return BLKIF_ST_ERROR;
        }
        total += (uint64_t)s->last_sect - s->first_sect + 1;
    }
    req->nr_sectors = total;
    return check_range(req, total, lim, why);
}

int blkif_req_parse(enum blkif_abi abi, const void *slot,
                    const struct blkif_limits *lim, struct blkif_req *req,
                    const char **why)
{
    const struct layout *L = &layouts[abi];
    const uint8_t *p = slot;
    req->operation = p[0];
    req->op = p[0];
    req->indirect = false;
    req->nr_segments = 0;
    req->nr_indirect_pages = 0;
    req->nr_sectors = 0;
    req->discard_flag = 0;
    req->handle = 0;
    req->sector = 0;
    *why = NULL;

    switch (req->operation) {
    case BLKIF_REQ_READ:
    case BLKIF_REQ_WRITE:
    case BLKIF_REQ_FLUSH:
        req->id = get64(p, L->rw_id);
        req->handle = get16(p, 2);
        req->sector = get64(p, L->rw_sector);
        req->nr_segments = p[1];
        if (req->operation == BLKIF_REQ_FLUSH && !lim->flush) {
            *why = "flush not offered";
            return BLKIF_ST_EOPNOTSUPP;
        }
        if (req->operation != BLKIF_REQ_READ && lim->readonly) {
            *why = "write to a read-only device";
            return BLKIF_ST_ERROR;
        }
        if (req->nr_segments > BLKIF_DIRECT_SEGS) {
            *why = "nr_segments over the limit";
            return BLKIF_ST_ERROR;
        }
        if (req->nr_segments == 0 && req->operation != BLKIF_REQ_FLUSH) {
            *why = "read/write without segments";
            return BLKIF_ST_ERROR;
        }
        /* A flush without data names no range: Linux's blkfront leaves
         * its sector at whatever the block layer had (seen: all ones), and
         * blkback checks ranges only for requests that carry sectors. */
        if (req->nr_segments == 0)
            return BLKIF_ST_OKAY;
        for (unsigned i = 0; i < req->nr_segments; i++)
            get_seg(p + L->rw_seg + 8 * i, &req->seg[i]);
        return check_segments(req, lim, why);

    case BLKIF_REQ_DISCARD:
        req->id = get64(p, L->d_id);
        req->handle = get16(p, 2);
        req->discard_flag = p[1];
        req->sector = get64(p, L->d_sector);
        req->nr_sectors = get64(p, L->d_nr);
        if (!lim->discard) {
            *why = "discard not offered";
            return BLKIF_ST_EOPNOTSUPP;
        }
        if (lim->readonly) {
            *why = "discard on a read-only device";
            return BLKIF_ST_ERROR;
        }
        return check_range(req, req->nr_sectors, lim, why);

    case BLKIF_REQ_INDIRECT: {
        req->id = get64(p, L->i_id);
        req->indirect = true;
        req->op = p[1];
        req->handle = get16(p, L->i_handle);
        req->sector = get64(p, L->i_sector);
        unsigned nseg = get16(p, L->i_nrseg);
        if (lim->max_indirect_segments == 0) {
            *why = "indirect requests not offered";
            return BLKIF_ST_EOPNOTSUPP;
        }
        if (req->op != BLKIF_REQ_READ && req->op != BLKIF_REQ_WRITE) {
            *why = "indirect_op is neither read nor write";
            return BLKIF_ST_ERROR;
        }
        if (req->op == BLKIF_REQ_WRITE && lim->readonly) {
            *why = "write to a read-only device";
            return BLKIF_ST_ERROR;
        }
        if (nseg == 0 || nseg > lim->max_indirect_segments ||
            nseg > BLKIF_MAX_INDIRECT_SEGS) {
            *why = "indirect nr_segments over the limit (or zero)";
            return BLKIF_ST_ERROR;
        }
        req->nr_segments = nseg;
        req->nr_indirect_pages =
            (nseg + BLKIF_SEGS_PER_INDIRECT - 1) / BLKIF_SEGS_PER_INDIRECT;
        for (unsigned i = 0; i < req->nr_indirect_pages; i++)
            req->indirect_grefs[i] = get32(p, L->i_grefs + 4 * i);
        return BLKIF_ST_OKAY;
    }

    case BLKIF_REQ_WRITE_BARRIER:
        req->id = get64(p, L->rw_id);
        *why = "write barriers not offered";
        return BLKIF_ST_EOPNOTSUPP;

    default:
        /* Unknown: the id sits where read/write puts it in every ABI we
         * know; echo that. */
        req->id = get64(p, L->rw_id);
        *why = "unknown operation";
        return BLKIF_ST_ERROR;
    }
}

int blkif_req_load_indirect(struct blkif_req *req, const void *pages,
                            const struct blkif_limits *lim, const char **why)
{
    /* One copy out of the guest's pages, then checks on the copy. */
    uint8_t desc[BLKIF_MAX_INDIRECT_SEGS * 8];
    size_t n = (size_t)req->nr_segments * 8;
    if (req->nr_segments > BLKIF_MAX_INDIRECT_SEGS) {
        *why = "indirect nr_segments over the limit";
        return BLKIF_ST_ERROR;
    }
    memcpy(desc, pages, n);
    for (unsigned i = 0; i < req->nr_segments; i++)
        get_seg(desc + 8 * i, &req->seg[i]);
    return check_segments(req, lim, why);
}

void blkif_abi_put_response(enum blkif_abi abi, void *slot, uint64_t id,
                            uint8_t operation, int16_t status)
{
    const struct layout *L = &layouts[abi];
    uint8_t rsp[16] = { 0 };
    memcpy(rsp + L->r_id, &id, 8);
    rsp[L->r_op] = operation;
    memcpy(rsp + L->r_status, &status, 2);
    memcpy(slot, rsp, L->r_status + 2);
}

void blkif_abi_get_response(enum blkif_abi abi, const void *slot,
                            uint64_t *id, uint8_t *operation, int16_t *status)
{
    const struct layout *L = &layouts[abi];
    uint8_t rsp[16];
    memcpy(rsp, slot, L->r_status + 2);
    memcpy(id, rsp + L->r_id, 8);
    *operation = rsp[L->r_op];
    memcpy(status, rsp + L->r_status, 2);
}

static void put16(uint8_t *p, size_t off, uint16_t v) { memcpy(p + off, &v, 2); }
static void put32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }
static void put64(uint8_t *p, size_t off, uint64_t v) { memcpy(p + off, &v, 8); }

void blkif_abi_put_request(enum blkif_abi abi, void *slot,
                           const struct blkif_raw_req *r)
{
    const struct layout *L = &layouts[abi];
    uint8_t b[BLKIF_SLOT_MAX] = { 0 };
    b[0] = r->operation;
    b[1] = r->nr_segments_or_flag;
    switch (r->operation) {
    case BLKIF_REQ_DISCARD:
        put16(b, 2, r->handle);
        put64(b, L->d_id, r->id);
        put64(b, L->d_sector, r->sector);
        put64(b, L->d_nr, r->nr_sectors);
        break;
    case BLKIF_REQ_INDIRECT:
        put16(b, L->i_nrseg, r->nr_segments16);
        put64(b, L->i_id, r->id);
        put64(b, L->i_sector, r->sector);
        put16(b, L->i_handle, r->handle);
        for (unsigned i = 0; i < BLKIF_INDIRECT_PAGES; i++)
            put32(b, L->i_grefs + 4 * i, r->indirect_grefs[i]);
        break;
    default:
        put16(b, 2, r->handle);
        put64(b, L->rw_id, r->id);
        put64(b, L->rw_sector, r->sector);
        for (unsigned i = 0; i < BLKIF_DIRECT_SEGS; i++) {
            put32(b, L->rw_seg + 8 * i, r->seg[i].gref);
            b[L->rw_seg + 8 * i + 4] = r->seg[i].first_sect;
            b[L->rw_seg + 8 * i + 5] = r->seg[i].last_sect;
        }
        break;
    }
    memcpy(slot, b, L->slot);
}
