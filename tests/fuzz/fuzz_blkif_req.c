/* libFuzzer: arbitrary bytes as one blkif ring slot, parsed in each ABI.
 * Byte 0 picks the ABI and the device limits (read-only, features, 4K
 * sectors, disk size); the next BLKIF_SLOT_MAX bytes are the slot (zero
 * padded); whatever follows is the content of an indirect descriptor page.
 * A request the parser accepts must be one the ring code can serve safely:
 * its segments lie inside their pages, its range inside the disk. */
#include "backend/vbd/blkif_abi.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct blkif_req req;
static uint8_t pages[BLKIF_INDIRECT_PAGES * 4096];

static void check_accepted(const struct blkif_limits *lim)
{
    uint64_t total = 0;
    if (req.op == BLKIF_REQ_DISCARD) {
        total = req.nr_sectors;
    } else {
        if (req.nr_segments > BLKIF_MAX_INDIRECT_SEGS ||
            (!req.indirect && req.nr_segments > BLKIF_DIRECT_SEGS))
            abort();
        if (req.op != BLKIF_REQ_READ && req.op != BLKIF_REQ_WRITE &&
            req.op != BLKIF_REQ_FLUSH)
            abort();
        if (lim->readonly && req.op != BLKIF_REQ_READ)
            abort();
        for (unsigned i = 0; i < req.nr_segments; i++) {
            if (req.seg[i].first_sect > req.seg[i].last_sect ||
                req.seg[i].last_sect >= BLKIF_SECTORS_PER_PAGE)
                abort();
            total += req.seg[i].last_sect - req.seg[i].first_sect + 1u;
        }
        if (total != req.nr_sectors)
            abort();
    }
    /* A flush without data names no range (its sector is not used). */
    if (req.op == BLKIF_REQ_FLUSH && req.nr_segments == 0)
        return;
    if (req.sector > lim->sectors || total > lim->sectors - req.sector)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    static const enum blkif_abi abis[] = { BLKIF_ABI_NATIVE, BLKIF_ABI_X86_32,
                                           BLKIF_ABI_X86_64, BLKIF_ABI_X86_32 };
    enum blkif_abi abi = abis[sel & 3];
    struct blkif_limits lim = {
        .sectors = (sel & 0x40) ? 0 : (sel & 0x80) ? UINT64_MAX / 2 : 4096,
        .sector_size = (sel & 0x20) ? 4096 : 512,
        .max_indirect_segments = (sel & 0x10) ? 0 : BLKIF_MAX_INDIRECT_SEGS,
        .readonly = sel & 0x08,
        .flush = !(sel & 0x04),
        .discard = !(sel & 0x04),
    };
    data++;
    size--;
    uint8_t slot[BLKIF_SLOT_MAX] = { 0 };
    size_t n = size < blkif_abi_slot_size(abi) ? size : blkif_abi_slot_size(abi);
    memcpy(slot, data, n);
    data += n;
    size -= n;

    const char *why = NULL;
    int st = blkif_req_parse(abi, slot, &lim, &req, &why);
    if (st != BLKIF_ST_OKAY) {
        if (!why || (st != BLKIF_ST_ERROR && st != BLKIF_ST_EOPNOTSUPP))
            abort();
        return 0;
    }
    if (req.indirect) {
        if (req.nr_indirect_pages == 0 ||
            req.nr_indirect_pages > BLKIF_INDIRECT_PAGES)
            abort();
        size_t avail = (size_t)req.nr_indirect_pages * 4096;
        memset(pages, 0, avail);
        memcpy(pages, data, size < avail ? size : avail);
        st = blkif_req_load_indirect(&req, pages, &lim, &why);
        if (st != BLKIF_ST_OKAY) {
            if (!why)
                abort();
            return 0;
        }
    }
    check_accepted(&lim);
    uint8_t rsp[BLKIF_SLOT_MAX];
    blkif_abi_put_response(abi, rsp, req.id, req.operation, (int16_t)st);
    return 0;
}
