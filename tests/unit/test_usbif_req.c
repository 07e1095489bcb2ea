/* usbif URB request parsing: every field of an accepted request, every
 * rejection (table-driven), the contiguous flag, control direction and
 * length from the setup packet, isochronous descriptor byte counts. */
#include "backend/vusb/usbif_req.h"
#include "unit.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NPORTS 4

static uint32_t pipe_of(unsigned port, bool in, unsigned dev, unsigned ep,
                        unsigned type)
{
    return port | (in ? USBIF_PIPE_DIR : 0) | dev << USBIF_PIPE_DEV_SHIFT |
           ep << USBIF_PIPE_EP_SHIFT | (uint32_t)type << USBIF_PIPE_TYPE_SHIFT;
}

/* Data segments of n bytes starting at offset off of the first page, one
 * run of bytes over pages 100, 101, ... */
static void run_segs(struct usbif_urb_request *q, unsigned off, unsigned n)
{
    unsigned i = 0;
    q->buffer_length = (uint16_t)n;
    while (n) {
        unsigned len = 4096 - off < n ? 4096 - off : n;
        q->seg[i] = (struct usbif_request_segment){ 100 + i, (uint16_t)off,
                                                    (uint16_t)len };
        n -= len;
        off = 0;
        i++;
    }
    q->nr_buffer_segs = (uint16_t)i;
}

static struct usbif_urb_request bulk(bool in, unsigned n)
{
    struct usbif_urb_request q = { .id = 0x1234,
                                   .pipe = pipe_of(2, in, 5, 1, USBIF_PIPE_TYPE_BULK) };
    run_segs(&q, 0, n);
    return q;
}

static struct usbif_urb_request ctrl(uint8_t type, uint8_t req, uint16_t wlength,
                                     unsigned buflen)
{
    struct usbif_urb_request q = { .id = 7,
                                   .pipe = pipe_of(1, false, 3, 0, USBIF_PIPE_TYPE_CTRL) };
    uint8_t setup[8] = { type, req, 0x01, 0x02, 0x03, 0x04, (uint8_t)wlength,
                         (uint8_t)(wlength >> 8) };
    memcpy(q.u.ctrl, setup, 8);
    if (buflen)
        run_segs(&q, 0, buflen);
    return q;
}

/* Isochronous IN of n packets of pktlen bytes; descriptors at the start
 * of page 200 on. */
static struct usbif_urb_request iso(unsigned packets, unsigned pktlen)
{
    struct usbif_urb_request q = { .id = 99,
                                   .pipe = pipe_of(3, true, 4, 2, USBIF_PIPE_TYPE_ISOC) };
    run_segs(&q, 0, packets * pktlen);
    q.u.isoc.interval = 8;
    q.u.isoc.start_frame = 321;
    q.u.isoc.number_of_packets = (uint16_t)packets;
    unsigned desc = packets * 16, d = q.nr_buffer_segs;
    while (desc) {
        unsigned len = desc < 4096 ? desc : 4096;
        q.seg[d] = (struct usbif_request_segment){ 200 + d, 0, (uint16_t)len };
        desc -= len;
        d++;
    }
    q.u.isoc.nr_frame_desc_segs = (uint16_t)(d - q.nr_buffer_segs);
    return q;
}

static struct usbif_req r;

static int parse(const struct usbif_urb_request *q, const char **why)
{
    uint8_t slot[sizeof(*q)];
    memcpy(slot, q, sizeof(slot));
    *why = NULL;
    memset(&r, 0xa5, sizeof(r)); /* nothing stale may leak through */
    return usbif_req_parse(slot, NPORTS, &r, why);
}

static void test_layout(void)
{
    CU_ASSERT_EQUAL(sizeof(struct usbif_urb_request), 148);
    CU_ASSERT_EQUAL(sizeof(struct usbif_urb_response), 16);
    CU_ASSERT_EQUAL(sizeof(struct usbif_conn_response), 4);
    CU_ASSERT_EQUAL(usbif_pipeportnum(pipe_of(31, 0, 0, 0, 0)), 31);
    CU_ASSERT_EQUAL(usbif_pipedevice(pipe_of(1, 0, 127, 0, 0)), 127);
    CU_ASSERT_EQUAL(usbif_pipeendpoint(pipe_of(1, 0, 0, 15, 0)), 15);
}

/* Every field of an accepted bulk request lands where it belongs. */
static void test_bulk_fields(void)
{
    const char *why;
    struct usbif_urb_request q = bulk(true, 9000);
    q.transfer_flags = USBIF_SHORT_NOT_OK;
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_PTR_NULL(why);
    CU_ASSERT_EQUAL(r.id, 0x1234);
    CU_ASSERT_FALSE(r.unlink);
    CU_ASSERT_EQUAL(r.port, 2);
    CU_ASSERT_EQUAL(r.devaddr, 5);
    CU_ASSERT_EQUAL(r.type, VUSB_XFER_BULK);
    CU_ASSERT_EQUAL(r.ep, 0x81);
    CU_ASSERT_TRUE(r.in);
    CU_ASSERT_TRUE(r.short_not_ok);
    CU_ASSERT_EQUAL(r.length, 9000);
    CU_ASSERT_EQUAL(r.nr_data_segs, 3);
    CU_ASSERT_EQUAL(r.nr_iso_segs, 0);
    CU_ASSERT_EQUAL(r.nr_packets, 0);
    CU_ASSERT_TRUE(r.contiguous);
    CU_ASSERT_EQUAL(r.seg[0].gref, 100);
    CU_ASSERT_EQUAL(r.seg[2].gref, 102);
    CU_ASSERT_EQUAL(r.seg[2].length, 9000 - 8192);
    CU_ASSERT_EQUAL(usbif_req_iso_bytes(&r), 0);

    q = bulk(false, 0); /* zero-length OUT: no segments, fine */
    q.pipe = pipe_of(4, false, 127, 15, USBIF_PIPE_TYPE_BULK);
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(r.port, 4);
    CU_ASSERT_EQUAL(r.devaddr, 127);
    CU_ASSERT_EQUAL(r.ep, 0x0f);
    CU_ASSERT_FALSE(r.in);
    CU_ASSERT_FALSE(r.short_not_ok);
    CU_ASSERT_EQUAL(r.length, 0);
    CU_ASSERT_EQUAL(r.nr_data_segs, 0);

    /* 65535 bytes over 16 pages: the largest buffer there is */
    q = bulk(false, 65535);
    CU_ASSERT_EQUAL(q.nr_buffer_segs, 16);
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(r.length, 65535);
    CU_ASSERT_TRUE(r.contiguous);

    /* 64 KiB, as xen-hcd sends it: buffer_length wrapped to 0 */
    q = bulk(true, 65536);
    CU_ASSERT_EQUAL(q.buffer_length, 0);
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(r.length, 65536);
    CU_ASSERT_EQUAL(r.nr_data_segs, 16);

    /* interrupt: the interval is taken */
    q = bulk(true, 8);
    q.pipe = pipe_of(1, true, 9, 3, USBIF_PIPE_TYPE_INT);
    q.u.intr.interval = 10;
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(r.type, VUSB_XFER_INT);
    CU_ASSERT_EQUAL(r.interval, 10);
    CU_ASSERT_EQUAL(r.ep, 0x83);
}

static void test_unlink(void)
{
    const char *why;
    struct usbif_urb_request q = { .id = 40,
                                   .pipe = pipe_of(3, false, 0, 0, 0) | USBIF_PIPE_UNLINK };
    q.u.unlink.unlink_id = 39;
    q.nr_buffer_segs = 200; /* not looked at: an unlink has no data */
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_TRUE(r.unlink);
    CU_ASSERT_EQUAL(r.id, 40);
    CU_ASSERT_EQUAL(r.unlink_id, 39);
    CU_ASSERT_EQUAL(r.port, 3);
    q.pipe = USBIF_PIPE_UNLINK | 5; /* still needs a port */
    CU_ASSERT_EQUAL(parse(&q, &why), USBIF_STATUS_INVAL);
    CU_ASSERT_EQUAL(r.id, 40);
}

/* Control: direction and length come from the setup packet, whatever the
 * pipe's direction bit and buffer_length say. */
static void test_control(void)
{
    const char *why;
    struct usbif_urb_request q = ctrl(0x80, 6, 18, 64); /* GET_DESCRIPTOR */
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(r.type, VUSB_XFER_CTRL);
    CU_ASSERT_TRUE(r.in);
    CU_ASSERT_EQUAL(r.ep, 0x80);
    CU_ASSERT_EQUAL(r.length, 18); /* wLength, not buffer_length */
    CU_ASSERT_EQUAL(r.nr_data_segs, 1);
    CU_ASSERT_EQUAL(memcmp(r.setup, q.u.ctrl, 8), 0);
    CU_ASSERT_EQUAL(r.devaddr, 3);
    CU_ASSERT_EQUAL(r.port, 1);

    q = ctrl(0x40, 2, 0, 0); /* vendor OUT, no data stage */
    q.pipe |= USBIF_PIPE_DIR; /* a lying direction bit */
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_FALSE(r.in);
    CU_ASSERT_EQUAL(r.ep, 0x00);
    CU_ASSERT_EQUAL(r.length, 0);

    q = ctrl(0x21, 9, 300, 300); /* class OUT with data over two pages */
    q.seg[0].offset = 4000;
    q.seg[0].length = 96;
    q.seg[1] = (struct usbif_request_segment){ 101, 0, 204 };
    q.nr_buffer_segs = 2;
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_FALSE(r.in);
    CU_ASSERT_EQUAL(r.length, 300);
    CU_ASSERT_TRUE(r.contiguous);

    /* wLength 0 with a buffer: nothing moves */
    q = ctrl(0xc0, 1, 0, 32);
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(r.length, 0);
    CU_ASSERT_TRUE(r.in);
    /* control on another endpoint than 0 is legal USB */
    q = ctrl(0x80, 0, 2, 2);
    q.pipe |= 2u << USBIF_PIPE_EP_SHIFT;
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(r.ep, 0x82);
}

/* Whether the data segments are one run of bytes (mapped directly) or
 * not (bounce buffer). */
static void test_contiguous(void)
{
    static const struct {
        const char *name;
        struct usbif_request_segment s[3];
        unsigned n;
        bool contiguous;
    } cases[] = {
        { "one segment anywhere", { { 1, 1000, 50 } }, 1, true },
        { "first ends at the page end, second starts at 0",
          { { 1, 4000, 96 }, { 2, 0, 10 } }, 2, true },
        { "three: middle a whole page", { { 1, 1, 4095 }, { 2, 0, 4096 }, { 3, 0, 1 } },
          3, true },
        { "first stops short of the page end", { { 1, 0, 100 }, { 2, 0, 100 } }, 2, false },
        { "second starts at an offset", { { 1, 0, 4096 }, { 2, 8, 100 } }, 2, false },
        { "middle a partial page", { { 1, 0, 4096 }, { 2, 0, 4000 }, { 3, 0, 10 } },
          3, false },
        { "same grant twice", { { 1, 0, 4096 }, { 1, 0, 4096 } }, 2, true },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct usbif_urb_request q = bulk(false, 0);
        unsigned total = 0;
        for (unsigned j = 0; j < cases[i].n; j++) {
            q.seg[j] = cases[i].s[j];
            total += cases[i].s[j].length;
        }
        q.nr_buffer_segs = (uint16_t)cases[i].n;
        q.buffer_length = (uint16_t)total;
        const char *why;
        int st = parse(&q, &why);
        CU_ASSERT_EQUAL(st, 0);
        CU_ASSERT_EQUAL(r.contiguous, cases[i].contiguous);
        if (st || r.contiguous != cases[i].contiguous)
            fprintf(stderr, "contiguous case '%s': st %d contiguous %d\n",
                    cases[i].name, st, r.contiguous);
    }
}

static void test_iso(void)
{
    const char *why;
    struct usbif_urb_request q = iso(8, 64);
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(r.type, VUSB_XFER_ISO);
    CU_ASSERT_EQUAL(r.ep, 0x82);
    CU_ASSERT_EQUAL(r.interval, 8);
    CU_ASSERT_EQUAL(r.start_frame, 321);
    CU_ASSERT_EQUAL(r.nr_packets, 8);
    CU_ASSERT_EQUAL(r.nr_data_segs, 1);
    CU_ASSERT_EQUAL(r.nr_iso_segs, 1);
    CU_ASSERT_EQUAL(usbif_req_iso_bytes(&r), 8 * 16);
    CU_ASSERT_EQUAL(r.seg[1].gref, 201);
    CU_ASSERT_EQUAL(r.length, 512);

    /* The most packets there may be: 1024 descriptors = 4 pages. */
    q = iso(VUSB_MAX_ISO_PACKETS, 4);
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(usbif_req_iso_bytes(&r), 16384);
    CU_ASSERT_EQUAL(r.nr_iso_segs, 4);

    /* Descriptors that start mid-page and spill into a second one */
    q = iso(10, 64);
    q.seg[1] = (struct usbif_request_segment){ 201, 4000, 96 };
    q.seg[2] = (struct usbif_request_segment){ 202, 0, 64 };
    q.u.isoc.nr_frame_desc_segs = 2;
    CU_ASSERT_EQUAL_FATAL(parse(&q, &why), 0);
    CU_ASSERT_EQUAL(usbif_req_iso_bytes(&r), 160);
    /* the descriptor segments do not count for contiguity of the data */
    CU_ASSERT_TRUE(r.contiguous);
}

/* Each rejection: INVAL, a reason, the id kept for the answer. */
struct bad_case {
    const char *name;
    struct usbif_urb_request q;
    const char *why;
};

static void test_rejections(void)
{
    static struct bad_case cases[32];
    unsigned n = 0;
#define BAD(label, expr, reason)                                             \
    do {                                                                     \
        struct usbif_urb_request q_ = (expr);                                \
        cases[n++] = (struct bad_case){ label, q_, reason };                 \
    } while (0)
    struct usbif_urb_request q;

    q = bulk(true, 100); q.pipe &= ~USBIF_PIPE_PORT_MASK;
    BAD("port 0", q, "no such port");
    q = bulk(true, 100); q.pipe = (q.pipe & ~USBIF_PIPE_PORT_MASK) | (NPORTS + 1);
    BAD("port past num-ports", q, "no such port");
    q = bulk(true, 100); q.pipe |= 31;
    BAD("port 31 of 4", q, "no such port");
    q = bulk(true, 100); q.nr_buffer_segs = 17;
    BAD("17 segments", q, "more than 16 segments");
    q = bulk(true, 100); q.nr_buffer_segs = 0xffff;
    BAD("65535 segments", q, "more than 16 segments");
    q = bulk(true, 100); q.seg[0].offset = 4000;
    BAD("segment past its page", q, "segment outside its page");
    q = bulk(true, 100); q.seg[0].offset = 0xffff; q.seg[0].length = 0xffff;
    BAD("segment offset and length at their maximum", q, "segment outside its page");
    q = bulk(true, 100); q.seg[0].length = 0; q.buffer_length = 0;
    BAD("zero-length segment", q, "segment outside its page");
    q = bulk(true, 100); q.buffer_length = 101;
    BAD("buffer_length over the segments", q, "do not add up");
    q = bulk(true, 100); q.buffer_length = 99;
    BAD("buffer_length under the segments", q, "do not add up");
    q = bulk(true, 100); q.nr_buffer_segs = 0;
    BAD("buffer without segments", q, "do not add up");
    q = bulk(true, 0); q.buffer_length = 5;
    BAD("length, no segment", q, "do not add up");
    q = bulk(true, 65536); q.buffer_length = 4096;
    BAD("64 KiB of segments, buffer_length neither 0 nor 64 KiB", q, "do not add up");
    q = bulk(true, 65535); q.buffer_length = 0;
    BAD("64 KiB less one of segments, buffer_length 0", q, "do not add up");
    q = bulk(true, 100); q.pipe &= ~(USBIF_PIPE_EP_MASK << USBIF_PIPE_EP_SHIFT);
    BAD("bulk on endpoint 0", q, "endpoint 0");
    q = bulk(true, 8); q.pipe = pipe_of(1, true, 2, 0, USBIF_PIPE_TYPE_INT);
    BAD("interrupt on endpoint 0", q, "endpoint 0");
    q = iso(4, 64); q.pipe &= ~(USBIF_PIPE_EP_MASK << USBIF_PIPE_EP_SHIFT);
    BAD("isochronous on endpoint 0", q, "endpoint 0");
    BAD("control wLength past buffer_length", ctrl(0x80, 6, 64, 18), "wLength beyond");
    BAD("control wLength without a buffer", ctrl(0xc0, 1, 32, 0), "wLength beyond");
    q = ctrl(0x80, 6, 18, 18); q.seg[0].length = 10;
    BAD("control segments short of buffer_length", q, "do not add up");
    q = iso(4, 64); q.u.isoc.number_of_packets = 0;
    BAD("no isochronous packet", q, "isochronous packets");
    q = iso(4, 64); q.u.isoc.number_of_packets = VUSB_MAX_ISO_PACKETS + 1;
    BAD("1025 isochronous packets", q, "isochronous packets");
    q = iso(4, 64); q.u.isoc.number_of_packets = 5;
    BAD("descriptor bytes short of the packets", q, "descriptor segments");
    q = iso(4, 64); q.seg[1].length = 80;
    BAD("descriptor bytes over the packets", q, "descriptor segments");
    q = iso(4, 64); q.u.isoc.nr_frame_desc_segs = 0;
    BAD("packets without descriptor segments", q, "descriptor segments");
    q = iso(4, 64); q.seg[1].offset = 4090;
    BAD("descriptor segment past its page", q, "segment outside its page");
    q = iso(256, 64); /* 16 data segments + 1 descriptor segment */
    q.nr_buffer_segs = 16;
    q.buffer_length = 16 * 1024;
    for (unsigned i = 0; i < 16; i++)
        q.seg[i] = (struct usbif_request_segment){ 100 + i, 0, 1024 };
    q.u.isoc.nr_frame_desc_segs = 1;
    BAD("16 data + 1 descriptor segments", q, NULL);
    q = iso(512, 64); q.u.isoc.nr_frame_desc_segs = 0xffff;
    BAD("65535 descriptor segments", q, NULL);
#undef BAD

    for (unsigned i = 0; i < n; i++) {
        const char *why;
        int st = parse(&cases[i].q, &why);
        bool ok = st == USBIF_STATUS_INVAL && why &&
                  (!cases[i].why || strstr(why, cases[i].why)) &&
                  r.id == cases[i].q.id;
        CU_ASSERT(ok);
        if (!ok)
            fprintf(stderr, "\nrejection '%s': status %d, why '%s', id %u\n",
                    cases[i].name, st, why ? why : "(none)", r.id);
    }
    CU_ASSERT(n >= 26);
}

static CU_TestInfo usbif_req_tests[] = {
    { "layout and pipe bits", test_layout },
    { "bulk and interrupt fields", test_bulk_fields },
    { "unlink", test_unlink },
    { "control: direction and length from the setup packet", test_control },
    { "contiguous flag", test_contiguous },
    { "isochronous descriptor byte counts", test_iso },
    { "every rejection", test_rejections },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(usbif_req, NULL, NULL, usbif_req_tests)
