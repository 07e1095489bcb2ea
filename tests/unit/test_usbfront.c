/* The reference usbfront's pure parts: usbif pipes, setup packets, the
 * request a URB becomes (segments, unlink), response and conn-ring checks,
 * descriptor parsing; and the port values the toolstack accepts
 * (tools/xensim/usb.c, linked into the test runner). tools/xenfront is not
 * part of the library, so usbfront.c is compiled into this test directly
 * (its device parts link against libnetbus). */
#include "unit.h"

#include "tools/xenfront/usbfront.c"
#include "tools/xenfront/xenbus_front.c"
#include "tools/xensim/usb.h"

#include <string.h>

static void test_pipe_encoding(void)
{
    uint32_t p = uf_pipe(3, 5, 1, true, UF_BULK);
    /* port 3 | IN | address 5 << 8 | endpoint 1 << 15 | bulk 3 << 30 */
    CU_ASSERT_EQUAL(p, 0xc0008583u);
    CU_ASSERT_EQUAL(usbif_pipeportnum(p), 3);
    CU_ASSERT_EQUAL(usbif_pipedevice(p), 5);
    CU_ASSERT_EQUAL(usbif_pipeendpoint(p), 1);
    CU_ASSERT_TRUE(usbif_pipein(p));
    CU_ASSERT_TRUE(usbif_pipebulk(p));
    CU_ASSERT_FALSE(usbif_pipeunlink(p));

    p = uf_pipe(31, 127, 15, false, UF_INTR);
    CU_ASSERT_EQUAL(usbif_pipeportnum(p), 31);
    CU_ASSERT_EQUAL(usbif_pipedevice(p), 127);
    CU_ASSERT_EQUAL(usbif_pipeendpoint(p), 15);
    CU_ASSERT_TRUE(usbif_pipeout(p));
    CU_ASSERT_TRUE(usbif_pipeint(p));
    /* Fields never spill into each other's bits. */
    CU_ASSERT_EQUAL(p & 0x3ff80060u, 0);

    p = uf_pipe(1, 0, 0, false, UF_CTRL);
    CU_ASSERT_EQUAL(p, 0x80000001u);
    CU_ASSERT_TRUE(usbif_pipectrl(p));
    CU_ASSERT_EQUAL(uf_pipe(1, 0, 0, true, UF_ISOC), 0x81u);

    /* Out of range: no pipe. */
    CU_ASSERT_EQUAL(uf_pipe(0, 1, 1, true, UF_BULK), 0);
    CU_ASSERT_EQUAL(uf_pipe(32, 1, 1, true, UF_BULK), 0);
    CU_ASSERT_EQUAL(uf_pipe(1, 128, 1, true, UF_BULK), 0);
    CU_ASSERT_EQUAL(uf_pipe(1, 1, 16, true, UF_BULK), 0);
}

static void test_setup_packet(void)
{
    uint8_t s[8];
    uf_setup(s, 0x80, 6, 0x0100, 0, 64); /* GET_DESCRIPTOR(device, 64) */
    static const uint8_t get_desc[8] = { 0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x40, 0x00 };
    CU_ASSERT_EQUAL(memcmp(s, get_desc, 8), 0);
    uf_setup(s, 0xa1, 0x01, 0x0100, 0x1234, 0x0208);
    static const uint8_t get_report[8] = { 0xa1, 0x01, 0x00, 0x01, 0x34, 0x12, 0x08, 0x02 };
    CU_ASSERT_EQUAL(memcmp(s, get_report, 8), 0);
}

static xenif_gref refs[UF_MAX_SEGS + 1];

static void check_segments(const struct usbif_urb_request *r, unsigned off,
                           uint32_t len, int n, bool scattered)
{
    CU_ASSERT_EQUAL(r->nr_buffer_segs, n);
    CU_ASSERT_EQUAL(r->buffer_length, len);
    uint32_t sum = 0;
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(r->seg[i].gref, refs[i]);
        CU_ASSERT_EQUAL(r->seg[i].offset, i == 0 || scattered ? off : 0);
        CU_ASSERT_TRUE(r->seg[i].offset + r->seg[i].length <= XENIF_PAGE_SIZE);
        CU_ASSERT_TRUE(r->seg[i].length > 0);
        /* every segment but the last runs to its page's end */
        if (i < n - 1)
            CU_ASSERT_EQUAL(r->seg[i].offset + r->seg[i].length, XENIF_PAGE_SIZE);
        sum += r->seg[i].length;
    }
    CU_ASSERT_EQUAL(sum, len);
}

struct seg_case {
    unsigned off;
    uint32_t len;
    int n; /* segments, or -1 */
};

/* Each case's segments, and uf_pages_for agreeing with their number. */
static void check_cases(const struct seg_case *cases, size_t count, bool scattered)
{
    for (unsigned i = 0; i <= UF_MAX_SEGS; i++)
        refs[i] = 100 + i * 7;
    for (size_t i = 0; i < count; i++) {
        struct usbif_urb_request r;
        memset(&r, 0xee, sizeof(r));
        int n = uf_fill_segments(&r, refs, cases[i].off, cases[i].len, scattered);
        CU_ASSERT_EQUAL(n, cases[i].n);
        CU_ASSERT_EQUAL(uf_pages_for(cases[i].off, cases[i].len, scattered),
                        (unsigned)cases[i].n);
        if (n >= 0)
            check_segments(&r, cases[i].off, cases[i].len, n, scattered);
    }
}

static void test_segments(void)
{
    static const struct seg_case cases[] = {
        { 0, 1, 1 }, { 0, 4096, 1 }, { 0, 4097, 2 }, { 100, 3996, 1 },
        { 100, 3997, 2 }, { 4095, 1, 1 }, { 4095, 2, 2 }, { 0, 65535, 16 },
        { 1, 61440, 16 }, { 4095, 61441, 16 }, { 1, 65535, 16 }, { 0, 0, 0 },
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]), false);
    /* 17 pages, a length buffer_length cannot hold, an offset past a page. */
    struct usbif_urb_request r;
    CU_ASSERT_EQUAL(uf_fill_segments(&r, refs, 2, 65535, false), -1);
    CU_ASSERT_EQUAL(uf_fill_segments(&r, refs, 4095, 61442, false), -1);
    CU_ASSERT_EQUAL(uf_fill_segments(&r, refs, 0, 65536, false), -1);
    CU_ASSERT_EQUAL(uf_fill_segments(&r, refs, 4096, 1, false), -1);
}

/* Scattered: every segment from the same offset of its page to its end. */
static void test_scattered_segments(void)
{
    static const struct seg_case cases[] = {
        { 0, 4097, 2 }, { 100, 3996, 1 }, { 100, 3997, 2 }, { 4095, 1, 1 },
        { 4095, 16, 16 }, { 1000, 49536, 16 }, { 2048, 30000, 15 }, { 7, 0, 0 },
    };
    check_cases(cases, sizeof(cases) / sizeof(cases[0]), true);
    /* 17 pages: at 4095 (one byte each), at 1000 (3096 bytes each). */
    struct usbif_urb_request r;
    CU_ASSERT_EQUAL(uf_fill_segments(&r, refs, 4095, 17, true), -1);
    CU_ASSERT_EQUAL(uf_fill_segments(&r, refs, 1000, 49537, true), -1);
    CU_ASSERT_EQUAL(uf_fill_segments(&r, refs, 4096, 1, true), -1);
}

/* Isochronous: the descriptors get the page after the data, whole. */
static void test_iso_request(void)
{
    struct uf_urb u;
    struct uf_iso_packet pk[3];
    struct usbif_urb_request r;
    memset(&u, 0, sizeof(u));
    u.pipe = uf_pipe(1, 1, 2, true, UF_ISOC);
    u.interval = 1;
    u.nr_packets = 3;
    u.iso = pk;
    u.len = 5000;
    u.page_off = 100;
    CU_ASSERT_EQUAL(uf_build_request(&r, 3, &u, refs), 3);
    CU_ASSERT_EQUAL(r.nr_buffer_segs, 2);
    CU_ASSERT_EQUAL(r.buffer_length, 5000);
    CU_ASSERT_EQUAL(r.u.isoc.interval, 1);
    CU_ASSERT_EQUAL(r.u.isoc.start_frame, UF_ISO_ASAP);
    CU_ASSERT_EQUAL(r.u.isoc.number_of_packets, 3);
    CU_ASSERT_EQUAL(r.u.isoc.nr_frame_desc_segs, 1);
    CU_ASSERT_EQUAL(r.seg[2].gref, refs[2]);
    CU_ASSERT_EQUAL(r.seg[2].offset, 0);
    CU_ASSERT_EQUAL(r.seg[2].length, 3 * 16);
    /* scattered data: 1096 bytes in each page, the descriptors after */
    u.page_off = 3000;
    u.scattered = true;
    CU_ASSERT_EQUAL(uf_build_request(&r, 3, &u, refs), 6);
    CU_ASSERT_EQUAL(r.nr_buffer_segs, 5);
    check_segments(&r, 3000, 5000, 5, true);
    CU_ASSERT_EQUAL(r.seg[5].gref, refs[5]);
    CU_ASSERT_EQUAL(r.seg[5].offset, 0);
    u.scattered = false;
    /* no data: the descriptors take the first page */
    u.len = 0;
    CU_ASSERT_EQUAL(uf_build_request(&r, 3, &u, refs), 1);
    CU_ASSERT_EQUAL(r.seg[0].gref, refs[0]);
    /* a full page of descriptors fits, one more does not */
    CU_ASSERT_EQUAL(UF_MAX_ISO_PACKETS, 256);
    u.nr_packets = UF_MAX_ISO_PACKETS;
    CU_ASSERT_EQUAL(uf_build_request(&r, 3, &u, refs), 1);
    CU_ASSERT_EQUAL(r.seg[0].length, 4096);
    u.nr_packets = UF_MAX_ISO_PACKETS + 1;
    CU_ASSERT_EQUAL(uf_build_request(&r, 3, &u, refs), -1);
    u.nr_packets = 0;
    CU_ASSERT_EQUAL(uf_build_request(&r, 3, &u, refs), -1);
    /* 16 data pages leave no segment for the descriptors */
    u.nr_packets = 1;
    u.len = 65535;
    u.page_off = 0;
    CU_ASSERT_EQUAL(uf_build_request(&r, 3, &u, refs), -1);
}

static void test_build_request(void)
{
    struct uf_urb u;
    struct usbif_urb_request r;
    memset(&u, 0, sizeof(u));
    /* Control IN: the setup packet travels in the request. */
    u.pipe = uf_pipe(2, 0, 0, true, UF_CTRL);
    uf_setup(u.setup, 0x80, 6, 0x0200, 0, 9);
    u.len = 9;
    u.page_off = 10;
    CU_ASSERT_EQUAL(uf_build_request(&r, 7, &u, refs), 1);
    CU_ASSERT_EQUAL(r.id, 7);
    CU_ASSERT_EQUAL(r.pipe, u.pipe);
    CU_ASSERT_EQUAL(r.transfer_flags, 0);
    CU_ASSERT_EQUAL(memcmp(r.u.ctrl, u.setup, 8), 0);
    CU_ASSERT_EQUAL(r.seg[0].offset, 10);
    CU_ASSERT_EQUAL(r.seg[0].length, 9);
    /* Control without data stage: no segment. */
    uf_setup(u.setup, 0x00, 5, 3, 0, 0);
    u.len = 0;
    CU_ASSERT_EQUAL(uf_build_request(&r, 8, &u, refs), 0);
    CU_ASSERT_EQUAL(r.nr_buffer_segs, 0);
    CU_ASSERT_EQUAL(r.buffer_length, 0);
    /* Interrupt: the interval; bulk: the type-specific bytes stay zero. */
    u.pipe = uf_pipe(2, 2, 1, true, UF_INTR);
    u.interval = 10;
    u.len = 8;
    u.page_off = 0;
    u.short_not_ok = true;
    CU_ASSERT_EQUAL(uf_build_request(&r, 9, &u, refs), 1);
    CU_ASSERT_EQUAL(r.u.intr.interval, 10);
    CU_ASSERT_EQUAL(r.u.intr.pad[0] | r.u.intr.pad[1] | r.u.intr.pad[2], 0);
    CU_ASSERT_EQUAL(r.transfer_flags, USBIF_SHORT_NOT_OK);
    u.pipe = uf_pipe(2, 2, 1, false, UF_BULK);
    u.short_not_ok = false;
    u.len = 20000;
    u.page_off = 3000;
    CU_ASSERT_EQUAL(uf_build_request(&r, 10, &u, refs), 6);
    static const uint8_t zero[8];
    CU_ASSERT_EQUAL(memcmp(r.u.ctrl, zero, 8), 0);
    check_segments(&r, 3000, 20000, 6, false);
    /* Too big, or an unlink pipe: refused. */
    u.len = 65535;
    CU_ASSERT_EQUAL(uf_build_request(&r, 11, &u, refs), -1);
    u.len = 1;
    u.pipe = usbif_setunlink_pipe(u.pipe);
    CU_ASSERT_EQUAL(uf_build_request(&r, 11, &u, refs), -1);

    /* The unlink: the target's pipe with the unlink bit, its id. */
    u.pipe = uf_pipe(4, 4, 1, true, UF_BULK);
    u.id = 13;
    uf_build_unlink(&r, 14, &u);
    CU_ASSERT_EQUAL(r.id, 14);
    CU_ASSERT_TRUE(usbif_pipeunlink(r.pipe));
    CU_ASSERT_EQUAL(r.pipe & ~(uint32_t)USBIF_PIPE_UNLINK, u.pipe);
    CU_ASSERT_EQUAL(usbif_pipeportnum(r.pipe), 4);
    CU_ASSERT_EQUAL(r.u.unlink.unlink_id, 13);
    CU_ASSERT_EQUAL(r.nr_buffer_segs, 0);
    CU_ASSERT_EQUAL(r.buffer_length, 0);
}

static void test_responses(void)
{
    char why[200];
    struct usbif_urb_response rsp = { .id = 1, .status = 0, .actual_length = 512 };
    CU_ASSERT_EQUAL(uf_check_urb_response(&rsp, 512, why, sizeof(why)), 0);
    rsp.actual_length = 0;
    CU_ASSERT_EQUAL(uf_check_urb_response(&rsp, 512, why, sizeof(why)), 0);
    rsp.actual_length = 513; /* more than the buffer */
    CU_ASSERT_EQUAL(uf_check_urb_response(&rsp, 512, why, sizeof(why)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "513"));
    rsp.actual_length = -1;
    CU_ASSERT_EQUAL(uf_check_urb_response(&rsp, 512, why, sizeof(why)), -1);
    rsp.actual_length = 0;
    rsp.status = USBIF_STATUS_STALL;
    CU_ASSERT_EQUAL(uf_check_urb_response(&rsp, 0, why, sizeof(why)), 0);
    rsp.status = -ECONNRESET;
    CU_ASSERT_EQUAL(uf_check_urb_response(&rsp, 0, why, sizeof(why)), 0);
    rsp.status = 1;
    CU_ASSERT_EQUAL(uf_check_urb_response(&rsp, 0, why, sizeof(why)), -1);
    rsp.status = -5000;
    CU_ASSERT_EQUAL(uf_check_urb_response(&rsp, 0, why, sizeof(why)), -1);
    CU_ASSERT_STRING_EQUAL(uf_status_name(USBIF_STATUS_STALL), "stall (-EPIPE)");

    struct usbif_conn_response c = { .id = 0, .portnum = 1, .speed = USBIF_SPEED_HIGH };
    CU_ASSERT_EQUAL(uf_check_conn_response(&c, 8, why, sizeof(why)), 0);
    c.speed = USBIF_SPEED_NONE;
    CU_ASSERT_EQUAL(uf_check_conn_response(&c, 8, why, sizeof(why)), 0);
    c.speed = USBIF_SPEED_HIGH + 1;
    CU_ASSERT_EQUAL(uf_check_conn_response(&c, 8, why, sizeof(why)), -1);
    c.speed = USBIF_SPEED_FULL;
    c.portnum = 0;
    CU_ASSERT_EQUAL(uf_check_conn_response(&c, 8, why, sizeof(why)), -1);
    c.portnum = 9;
    CU_ASSERT_EQUAL(uf_check_conn_response(&c, 8, why, sizeof(why)), -1);
    c.portnum = 8;
    c.id = (uint16_t)USB_CONN_RING_SIZE;
    CU_ASSERT_EQUAL(uf_check_conn_response(&c, 8, why, sizeof(why)), -1);
    c.id = (uint16_t)(USB_CONN_RING_SIZE - 1);
    CU_ASSERT_EQUAL(uf_check_conn_response(&c, 8, why, sizeof(why)), 0);
}

/* nb-bulk as the device spec describes it. */
static const uint8_t bulk_device[18] = {
    18, 1, 0x00, 0x02, 0, 0, 0, 64, 0x09, 0x12, 0x42, 0x4e, 0x00, 0x01, 1, 2, 3, 1,
};
static const uint8_t bulk_config[32] = {
    9, 2, 32, 0, 1, 1, 0, 0x80, 50,
    9, 4, 0, 0, 2, 0xff, 0, 0, 0,
    7, 5, 0x01, 2, 0x00, 0x02, 0,
    7, 5, 0x81, 2, 0x00, 0x02, 0,
};
/* nb-hid: interface, HID class descriptor, interrupt IN endpoint. */
static const uint8_t hid_config[34] = {
    9, 2, 34, 0, 1, 1, 0, 0x80, 50,
    9, 4, 0, 0, 1, 3, 0, 0, 0,
    9, 0x21, 0x11, 0x01, 0, 1, 0x22, 20, 0,
    7, 5, 0x81, 3, 8, 0, 10,
};

static void test_descriptors(void)
{
    struct uf_device_desc d;
    CU_ASSERT_EQUAL(uf_parse_device_desc(bulk_device, sizeof(bulk_device), &d), 0);
    CU_ASSERT_EQUAL(d.id_vendor, 0x1209);
    CU_ASSERT_EQUAL(d.id_product, 0x4e42);
    CU_ASSERT_EQUAL(d.bcd_usb, 0x0200);
    CU_ASSERT_EQUAL(d.max_packet0, 64);
    CU_ASSERT_EQUAL(d.i_serial, 3);
    CU_ASSERT_EQUAL(uf_parse_device_desc(bulk_device, 17, &d), -1);
    uint8_t bad[18];
    memcpy(bad, bulk_device, 18);
    bad[1] = 2;
    CU_ASSERT_EQUAL(uf_parse_device_desc(bad, 18, &d), -1);

    struct uf_config_desc c;
    char why[200];
    CU_ASSERT_EQUAL(uf_parse_config_desc(bulk_config, sizeof(bulk_config), &c, why,
                                         sizeof(why)), 0);
    CU_ASSERT_EQUAL(c.value, 1);
    CU_ASSERT_EQUAL(c.if_class, 0xff);
    CU_ASSERT_EQUAL(c.nr_endpoints, 2);
    CU_ASSERT_EQUAL(c.ep[0].address, 0x01);
    CU_ASSERT_EQUAL(c.ep[1].address, 0x81);
    CU_ASSERT_EQUAL(c.ep[1].attributes & 3, 2);
    CU_ASSERT_EQUAL(c.ep[1].max_packet, 512);
    CU_ASSERT_FALSE(c.has_hid);
    CU_ASSERT_EQUAL(uf_parse_config_desc(hid_config, sizeof(hid_config), &c, why,
                                         sizeof(why)), 0);
    CU_ASSERT_TRUE(c.has_hid);
    CU_ASSERT_EQUAL(c.if_class, 3);
    CU_ASSERT_EQUAL(c.nr_endpoints, 1);
    CU_ASSERT_EQUAL(c.ep[0].interval, 10);
    CU_ASSERT_EQUAL(c.ep[0].max_packet, 8);

    /* Malformed: a zero length (would loop), a descriptor past the end, a
     * total longer than what came back, a short endpoint. */
    uint8_t m[34];
    memcpy(m, hid_config, sizeof(m));
    m[18] = 0;
    CU_ASSERT_EQUAL(uf_parse_config_desc(m, sizeof(m), &c, why, sizeof(why)), -1);
    memcpy(m, hid_config, sizeof(m));
    m[27] = 9; /* the endpoint claims 9 bytes, 7 remain */
    CU_ASSERT_EQUAL(uf_parse_config_desc(m, sizeof(m), &c, why, sizeof(why)), -1);
    CU_ASSERT_EQUAL(uf_parse_config_desc(hid_config, 20, &c, why, sizeof(why)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "wTotalLength"));
    memcpy(m, bulk_config, sizeof(bulk_config));
    m[18] = 6;
    CU_ASSERT_EQUAL(uf_parse_config_desc(m, sizeof(bulk_config), &c, why,
                                         sizeof(why)), -1);

    static const uint8_t str[] = { 14, 3, 'n', 0, 'e', 0, 't', 0, 'b', 0, 'u', 0, 's', 0 };
    char out[32];
    CU_ASSERT_EQUAL(uf_parse_string_desc(str, sizeof(str), out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, "netbus");
    CU_ASSERT_EQUAL(uf_parse_string_desc(str, sizeof(str), out, 4), 0);
    CU_ASSERT_STRING_EQUAL(out, "net"); /* truncated, terminated */
    CU_ASSERT_EQUAL(uf_parse_string_desc(str, 10, out, sizeof(out)), -1);
    static const uint8_t odd[] = { 3, 3, 'x' };
    CU_ASSERT_EQUAL(uf_parse_string_desc(odd, sizeof(odd), out, sizeof(out)), -1);
}

static void test_port_values(void)
{
    static const char *const good[] = {
        "1-2", "3-1.5", "10-4.3.2", "1209:4e42", "1209:4E42:NB-BULK-1",
        "netbus://hostb/usb1", "netbus://10.0.0.2:7000/bulk",
    };
    static const char *const bad[] = {
        "", "1-", "-2", "1-2.", "1.2", "a-b", "1--2", "1209:4e4", "1209:4e42:",
        "1209:4e42:a b", "netbus://", "netbus://h/", "netbus:///x", "1-2 ",
        "netbus://h/x y",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CU_ASSERT_TRUE(usb_device_name_ok(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_FALSE(usb_device_name_ok(bad[i]));
}

static CU_TestInfo usbfront_tests[] = {
    { "pipe encoding", test_pipe_encoding },
    { "setup packet", test_setup_packet },
    { "data segments", test_segments },
    { "scattered data segments", test_scattered_segments },
    { "request building", test_build_request },
    { "isochronous request", test_iso_request },
    { "response checks", test_responses },
    { "descriptor parsing", test_descriptors },
    { "toolstack port values", test_port_values },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(usbfront, NULL, NULL, usbfront_tests)
