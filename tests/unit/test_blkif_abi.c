/* blkif request parsing in each ABI: layouts, every op, every bad case. */
#include "backend/vbd/blkif_abi.h"
#include "unit.h"

#include <stdint.h>
#include <string.h>

static const enum blkif_abi abis[] = { BLKIF_ABI_NATIVE, BLKIF_ABI_X86_32,
                                       BLKIF_ABI_X86_64 };
#define NABI (sizeof(abis) / sizeof(abis[0]))

static const struct blkif_limits lim = {
    .sectors = 2048, .sector_size = 512,
    .max_indirect_segments = BLKIF_MAX_INDIRECT_SEGS,
    .flush = true, .discard = true,
};

static struct blkif_req req; /* large: keep it off the stack */

static int parse(enum blkif_abi abi, const struct blkif_raw_req *r,
                 const struct blkif_limits *l)
{
    uint8_t slot[BLKIF_SLOT_MAX];
    memset(slot, 0xa5, sizeof(slot));
    blkif_abi_put_request(abi, slot, r);
    const char *why = NULL;
    int st = blkif_req_parse(abi, slot, l, &req, &why);
    if (st != BLKIF_ST_OKAY)
        CU_ASSERT_PTR_NOT_NULL(why); /* every refusal says why */
    return st;
}

static struct blkif_raw_req rw(uint8_t op, unsigned nseg)
{
    struct blkif_raw_req r = { .operation = op, .nr_segments_or_flag = (uint8_t)nseg,
                               .handle = 51712, .id = 0x1122334455667788ull,
                               .sector = 100 };
    for (unsigned i = 0; i < BLKIF_DIRECT_SEGS; i++)
        r.seg[i] = (struct blkif_seg){ .gref = 1000 + i, .first_sect = 0,
                                       .last_sect = 7 };
    return r;
}

static void test_layouts(void)
{
    CU_ASSERT_EQUAL(blkif_abi_slot_size(BLKIF_ABI_X86_32), 108);
    CU_ASSERT_EQUAL(blkif_abi_slot_size(BLKIF_ABI_X86_64), 112);
    for (unsigned a = 0; a < NABI; a++) {
        CU_ASSERT_EQUAL(blkif_abi_ring_entries(abis[a], 1), 32);
        CU_ASSERT_EQUAL(blkif_abi_ring_entries(abis[a], 2), 64);
        CU_ASSERT_EQUAL(blkif_abi_ring_entries(abis[a], 16), 512);
    }
    enum blkif_abi abi;
    CU_ASSERT_EQUAL(blkif_abi_from_protocol(NULL, &abi), 0);
    CU_ASSERT_EQUAL(abi, BLKIF_ABI_NATIVE);
    CU_ASSERT_EQUAL(blkif_abi_from_protocol("x86_32-abi", &abi), 0);
    CU_ASSERT_EQUAL(abi, BLKIF_ABI_X86_32);
    CU_ASSERT_EQUAL(blkif_abi_from_protocol("x86_64-abi", &abi), 0);
    CU_ASSERT(abi == BLKIF_ABI_NATIVE || abi == BLKIF_ABI_X86_64);
    CU_ASSERT_EQUAL(blkif_abi_from_protocol("arm-abi-x", &abi), -1);
    CU_ASSERT_EQUAL(blkif_abi_from_protocol("", &abi), -1);
}

/* Bytes laid out by hand, independent of the encoder. */
static void test_x86_32_bytes(void)
{
    uint8_t s[108] = { 0 };
    s[0] = BLKIF_REQ_WRITE;
    s[1] = 2;
    uint64_t id = 0xdeadbeefcafef00dull, sector = 77;
    memcpy(s + 4, &id, 8);
    memcpy(s + 12, &sector, 8);
    uint32_t g0 = 9, g1 = 10;
    memcpy(s + 20, &g0, 4);
    s[24] = 1; s[25] = 3;
    memcpy(s + 28, &g1, 4);
    s[32] = 0; s[33] = 0;
    const char *why;
    CU_ASSERT_EQUAL(blkif_req_parse(BLKIF_ABI_X86_32, s, &lim, &req, &why), 0);
    CU_ASSERT_EQUAL(req.id, id);
    CU_ASSERT_EQUAL(req.sector, 77);
    CU_ASSERT_EQUAL(req.nr_segments, 2);
    CU_ASSERT_EQUAL(req.seg[0].gref, 9);
    CU_ASSERT_EQUAL(req.seg[1].gref, 10);
    CU_ASSERT_EQUAL(req.nr_sectors, 4);

    /* x86_64: id at 8, sector at 16, segments at 24. */
    uint8_t t[112] = { 0 };
    t[0] = BLKIF_REQ_READ;
    t[1] = 1;
    memcpy(t + 8, &id, 8);
    memcpy(t + 16, &sector, 8);
    memcpy(t + 24, &g0, 4);
    t[29] = 7;
    CU_ASSERT_EQUAL(blkif_req_parse(BLKIF_ABI_X86_64, t, &lim, &req, &why), 0);
    CU_ASSERT_EQUAL(req.id, id);
    CU_ASSERT_EQUAL(req.sector, 77);
    CU_ASSERT_EQUAL(req.nr_sectors, 8);

    /* x86_32 indirect: nr_segments u16 @2, id @4, sector @12, grefs @24. */
    uint8_t u[108] = { 0 };
    u[0] = BLKIF_REQ_INDIRECT;
    u[1] = BLKIF_REQ_READ;
    uint16_t n = 20;
    memcpy(u + 2, &n, 2);
    memcpy(u + 4, &id, 8);
    memcpy(u + 12, &sector, 8);
    memcpy(u + 24, &g1, 4);
    CU_ASSERT_EQUAL(blkif_req_parse(BLKIF_ABI_X86_32, u, &lim, &req, &why), 0);
    CU_ASSERT(req.indirect);
    CU_ASSERT_EQUAL(req.nr_segments, 20);
    CU_ASSERT_EQUAL(req.nr_indirect_pages, 1);
    CU_ASSERT_EQUAL(req.indirect_grefs[0], 10);
    CU_ASSERT_EQUAL(req.id, id);

    /* Responses: id @0, operation @8, status @10 in both x86 ABIs. */
    uint8_t r[16];
    memset(r, 0xff, sizeof(r));
    blkif_abi_put_response(BLKIF_ABI_X86_32, r, id, 6, -1);
    CU_ASSERT_EQUAL(memcmp(r, &id, 8), 0);
    CU_ASSERT_EQUAL(r[8], 6);
    CU_ASSERT(r[10] == 0xff && r[11] == 0xff);
    CU_ASSERT_EQUAL(r[12], 0xff); /* 12-byte response leaves the rest alone */
}

static void test_each_op_each_abi(void)
{
    for (unsigned a = 0; a < NABI; a++) {
        enum blkif_abi abi = abis[a];
        struct blkif_raw_req r = rw(BLKIF_REQ_READ, 11);
        r.seg[3].first_sect = 2;
        r.seg[3].last_sect = 5;
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), 0);
        CU_ASSERT_EQUAL(req.op, BLKIF_REQ_READ);
        CU_ASSERT_EQUAL(req.id, r.id);
        CU_ASSERT_EQUAL(req.handle, 51712);
        CU_ASSERT_EQUAL(req.nr_segments, 11);
        CU_ASSERT_EQUAL(req.seg[10].gref, 1010);
        CU_ASSERT_EQUAL(req.nr_sectors, 10 * 8 + 4);

        r = rw(BLKIF_REQ_WRITE, 1);
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), 0);
        CU_ASSERT_EQUAL(req.op, BLKIF_REQ_WRITE);

        r = rw(BLKIF_REQ_FLUSH, 0);
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), 0);
        CU_ASSERT_EQUAL(req.op, BLKIF_REQ_FLUSH);
        CU_ASSERT_EQUAL(req.nr_segments, 0);
        r.sector = UINT64_MAX; /* what Linux's blkfront sends for an empty flush */
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), 0);
        r = rw(BLKIF_REQ_FLUSH, 2); /* a write with a preflush */
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), 0);
        CU_ASSERT_EQUAL(req.nr_sectors, 16);

        struct blkif_raw_req d = { .operation = BLKIF_REQ_DISCARD, .id = 5,
                                   .sector = 8, .nr_sectors = 2040 };
        CU_ASSERT_EQUAL(parse(abi, &d, &lim), 0);
        CU_ASSERT_EQUAL(req.op, BLKIF_REQ_DISCARD);
        CU_ASSERT_EQUAL(req.id, 5);
        CU_ASSERT_EQUAL(req.sector, 8);
        CU_ASSERT_EQUAL(req.nr_sectors, 2040);

        struct blkif_raw_req in = { .operation = BLKIF_REQ_INDIRECT,
                                    .nr_segments_or_flag = BLKIF_REQ_WRITE,
                                    .nr_segments16 = 256, .id = 6, .sector = 0,
                                    .handle = 7,
                                    .indirect_grefs = { 44, 45 } };
        CU_ASSERT_EQUAL(parse(abi, &in, &lim), 0);
        CU_ASSERT(req.indirect);
        CU_ASSERT_EQUAL(req.op, BLKIF_REQ_WRITE);
        CU_ASSERT_EQUAL(req.operation, BLKIF_REQ_INDIRECT);
        CU_ASSERT_EQUAL(req.handle, 7);
        CU_ASSERT_EQUAL(req.nr_indirect_pages, 1);
        CU_ASSERT_EQUAL(req.indirect_grefs[0], 44);
        /* its descriptor page */
        static uint8_t page[4096];
        for (unsigned i = 0; i < 256; i++) {
            uint32_t g = 2000 + i;
            memcpy(page + 8 * i, &g, 4);
            page[8 * i + 4] = 0;
            page[8 * i + 5] = 7;
        }
        const char *why;
        CU_ASSERT_EQUAL(blkif_req_load_indirect(&req, page, &lim, &why), 0);
        CU_ASSERT_EQUAL(req.seg[255].gref, 2255);
        CU_ASSERT_EQUAL(req.nr_sectors, 2048);
        /* a shorter last segment, then the whole range shifted past the end */
        page[8 * 255 + 5] = 0;
        page[8 * 255 + 4] = 0;
        CU_ASSERT_EQUAL(blkif_req_load_indirect(&req, page, &lim, &why), 0);
        in.sector = 8;
        CU_ASSERT_EQUAL(parse(abi, &in, &lim), 0);
        page[8 * 255 + 5] = 7;
        CU_ASSERT_EQUAL(blkif_req_load_indirect(&req, page, &lim, &why),
                        BLKIF_ST_ERROR);
        /* bad descriptors */
        in.sector = 0;
        CU_ASSERT_EQUAL(parse(abi, &in, &lim), 0);
        page[8 * 17 + 4] = 6;
        page[8 * 17 + 5] = 2;
        CU_ASSERT_EQUAL(blkif_req_load_indirect(&req, page, &lim, &why),
                        BLKIF_ST_ERROR);
        page[8 * 17 + 4] = 0;
        page[8 * 17 + 5] = 8;
        CU_ASSERT_EQUAL(blkif_req_load_indirect(&req, page, &lim, &why),
                        BLKIF_ST_ERROR);

        /* responses round trip */
        uint8_t slot[BLKIF_SLOT_MAX];
        blkif_abi_put_response(abi, slot, 0xfeedull << 40, BLKIF_REQ_DISCARD,
                               BLKIF_ST_EOPNOTSUPP);
        uint64_t id;
        uint8_t op;
        int16_t st;
        blkif_abi_get_response(abi, slot, &id, &op, &st);
        CU_ASSERT_EQUAL(id, 0xfeedull << 40);
        CU_ASSERT_EQUAL(op, BLKIF_REQ_DISCARD);
        CU_ASSERT_EQUAL(st, BLKIF_ST_EOPNOTSUPP);
    }
}

static void test_bad_requests(void)
{
    struct blkif_limits ro = lim;
    ro.readonly = true;
    ro.flush = ro.discard = false;
    struct blkif_limits bare = lim;
    bare.flush = bare.discard = false;
    bare.max_indirect_segments = 0;
    struct blkif_limits k4 = lim;
    k4.sector_size = 4096;

    for (unsigned a = 0; a < NABI; a++) {
        enum blkif_abi abi = abis[a];
        struct blkif_raw_req r;

        r = rw(BLKIF_REQ_READ, 12); /* nr_segments over the limit */
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r = rw(BLKIF_REQ_WRITE, 255);
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r = rw(BLKIF_REQ_READ, 0);  /* no segments */
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r = rw(BLKIF_REQ_READ, 3);  /* first_sect > last_sect */
        r.seg[2].first_sect = 5;
        r.seg[2].last_sect = 4;
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r = rw(BLKIF_REQ_READ, 3);  /* past the page */
        r.seg[1].last_sect = 8;
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r.seg[1].first_sect = r.seg[1].last_sect = 200;
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r = rw(BLKIF_REQ_READ, 1);  /* past the end of the disk */
        r.sector = 2048 - 7;
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r.sector = 2048 - 8;        /* the last page is fine */
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), 0);
        r.sector = UINT64_MAX - 3;  /* wrap-around */
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r.sector = UINT64_MAX;
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r = rw(7, 1);               /* unknown operations */
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        CU_ASSERT_EQUAL(req.id, r.id); /* still answerable */
        r = rw(255, 1);
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r = rw(BLKIF_REQ_RESERVED_1, 1);
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_ERROR);
        r = rw(BLKIF_REQ_WRITE_BARRIER, 1);
        CU_ASSERT_EQUAL(parse(abi, &r, &lim), BLKIF_ST_EOPNOTSUPP);

        /* read-only device */
        r = rw(BLKIF_REQ_WRITE, 1);
        CU_ASSERT_EQUAL(parse(abi, &r, &ro), BLKIF_ST_ERROR);
        r = rw(BLKIF_REQ_READ, 1);
        CU_ASSERT_EQUAL(parse(abi, &r, &ro), 0);
        r = rw(BLKIF_REQ_FLUSH, 0);
        CU_ASSERT_NOT_EQUAL(parse(abi, &r, &ro), 0);
        struct blkif_raw_req d = { .operation = BLKIF_REQ_DISCARD, .id = 5,
                                   .sector = 8, .nr_sectors = 8 };
        CU_ASSERT_NOT_EQUAL(parse(abi, &d, &ro), 0);
        struct blkif_raw_req in = { .operation = BLKIF_REQ_INDIRECT,
                                    .nr_segments_or_flag = BLKIF_REQ_WRITE,
                                    .nr_segments16 = 12 };
        CU_ASSERT_EQUAL(parse(abi, &in, &ro), BLKIF_ST_ERROR);

        /* features not offered */
        r = rw(BLKIF_REQ_FLUSH, 0);
        CU_ASSERT_EQUAL(parse(abi, &r, &bare), BLKIF_ST_EOPNOTSUPP);
        CU_ASSERT_EQUAL(parse(abi, &d, &bare), BLKIF_ST_EOPNOTSUPP);
        in.nr_segments_or_flag = BLKIF_REQ_READ;
        CU_ASSERT_EQUAL(parse(abi, &in, &bare), BLKIF_ST_EOPNOTSUPP);

        /* discard range */
        d.sector = 2040;
        d.nr_sectors = 9;
        CU_ASSERT_EQUAL(parse(abi, &d, &lim), BLKIF_ST_ERROR);
        d.sector = 1;
        d.nr_sectors = UINT64_MAX;
        CU_ASSERT_EQUAL(parse(abi, &d, &lim), BLKIF_ST_ERROR);

        /* indirect */
        in.nr_segments16 = BLKIF_MAX_INDIRECT_SEGS + 1;
        CU_ASSERT_EQUAL(parse(abi, &in, &lim), BLKIF_ST_ERROR);
        in.nr_segments16 = 0xffff;
        CU_ASSERT_EQUAL(parse(abi, &in, &lim), BLKIF_ST_ERROR);
        in.nr_segments16 = 0;
        CU_ASSERT_EQUAL(parse(abi, &in, &lim), BLKIF_ST_ERROR);
        in.nr_segments16 = 4;
        in.nr_segments_or_flag = BLKIF_REQ_FLUSH;
        CU_ASSERT_EQUAL(parse(abi, &in, &lim), BLKIF_ST_ERROR);
        in.nr_segments_or_flag = BLKIF_REQ_INDIRECT;
        CU_ASSERT_EQUAL(parse(abi, &in, &lim), BLKIF_ST_ERROR);
        CU_ASSERT_EQUAL(req.op, BLKIF_REQ_INDIRECT); /* answered with it */

        /* 4K logical sectors: 512-byte granularity refused */
        r = rw(BLKIF_REQ_READ, 1);
        r.sector = 8;
        CU_ASSERT_EQUAL(parse(abi, &r, &k4), 0);
        r.sector = 9;
        CU_ASSERT_EQUAL(parse(abi, &r, &k4), BLKIF_ST_ERROR);
        r.sector = 8;
        r.seg[0].first_sect = 1;
        CU_ASSERT_EQUAL(parse(abi, &r, &k4), BLKIF_ST_ERROR);
    }
}

static CU_TestInfo blkif_abi_tests[] = {
    { "ring slot sizes and protocols", test_layouts },
    { "x86_32/x86_64 bytes laid out by hand", test_x86_32_bytes },
    { "every op in every ABI", test_each_op_each_abi },
    { "bad requests get an error status and a reason", test_bad_requests },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(blkif_abi, NULL, NULL, blkif_abi_tests)
