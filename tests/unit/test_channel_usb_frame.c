/* netbus channel, USB frames (PROTOCOL.md section 8): URB, its reply,
 * UNLINK, the usb OPEN reply and the USB_SPEED event, round trips and
 * hostile input (truncated, lengths that do not add up, packets outside the
 * buffer, reserved bits). */
#include "backend/channel/frame.h"
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int dec_hdr(uint8_t type, uint32_t len)
{
    uint8_t b[NB_HDR_SIZE];
    struct nb_hdr h = { .type = type, .session = 1, .length = len, .tag = 1 };
    nb_hdr_encode(b, &h);
    const char *why;
    return nb_hdr_decode(b, &h, true, &why);
}

static void test_usb_headers(void)
{
    uint32_t urb_max = NB_URB_BODY + NB_URB_MAX_ISO * NB_URB_ISO_DESC +
                       NB_URB_MAX_DATA;
    uint32_t reply_max = NB_URB_REPLY_BODY + NB_URB_MAX_ISO * NB_URB_ISO_DESC +
                         NB_URB_MAX_DATA;
    CU_ASSERT_EQUAL(dec_hdr(NB_URB, NB_URB_BODY), 0);
    CU_ASSERT_EQUAL(dec_hdr(NB_URB, urb_max), 0);
    CU_ASSERT_EQUAL(dec_hdr(NB_URB, urb_max + 1), -1);
    CU_ASSERT_EQUAL(dec_hdr(NB_URB, NB_URB_BODY - 1), -1);
    CU_ASSERT_EQUAL(dec_hdr(NB_URB | NB_REPLY, NB_STATUS_BODY), 0);
    CU_ASSERT_EQUAL(dec_hdr(NB_URB | NB_REPLY, reply_max), 0);
    CU_ASSERT_EQUAL(dec_hdr(NB_URB | NB_REPLY, reply_max + 1), -1);
    CU_ASSERT_EQUAL(dec_hdr(NB_URB | NB_REPLY, NB_STATUS_BODY - 1), -1);
    CU_ASSERT_EQUAL(dec_hdr(NB_UNLINK, NB_UNLINK_BODY), 0);
    CU_ASSERT_EQUAL(dec_hdr(NB_UNLINK, NB_MAX_CTRL + 1), -1);
    CU_ASSERT_EQUAL(dec_hdr(NB_UNLINK | NB_REPLY, NB_STATUS_BODY), 0);
    CU_ASSERT_EQUAL(dec_hdr(0x62, 0), -1); /* not a type */
    CU_ASSERT_STRING_EQUAL(nb_type_name(NB_URB), "URB");
    CU_ASSERT_STRING_EQUAL(nb_type_name(NB_UNLINK), "UNLINK");
}

static struct nb_urb_iso iso[NB_URB_MAX_ISO];

static void test_urb_round_trip(void)
{
    static uint8_t b[NB_URB_BODY + NB_URB_MAX_ISO * NB_URB_ISO_DESC +
                     NB_URB_MAX_DATA + 1];
    const char *why;
    /* A control OUT with its data stage. */
    struct nb_urb m = { .seq = 7, .ack = 3, .type = 2, .ep = 0,
                        .flags = NB_URB_SHORT_NOT_OK, .length = 5,
                        .setup = { 0x21, 9, 0, 2, 0, 0, 5, 0 } };
    size_t n = nb_urb_encode(b, &m);
    CU_ASSERT_EQUAL(n, NB_URB_BODY);
    memcpy(b + n, "hello", 5);
    CU_ASSERT_EQUAL(nb_urb_body_len(&m), NB_URB_BODY + 5);
    struct nb_urb m2;
    const uint8_t *data;
    CU_ASSERT_EQUAL_FATAL(nb_urb_decode(b, n + 5, &m2, iso, &data, &why), 0);
    CU_ASSERT_EQUAL(m2.seq, 7);
    CU_ASSERT_EQUAL(m2.ack, 3);
    CU_ASSERT_EQUAL(m2.flags, NB_URB_SHORT_NOT_OK);
    CU_ASSERT_EQUAL(memcmp(m2.setup, m.setup, 8), 0);
    CU_ASSERT_PTR_EQUAL(data, b + NB_URB_BODY);
    CU_ASSERT(!nb_urb_is_in(&m2));
    for (size_t cut = 0; cut < n + 5; cut++)
        CU_ASSERT_EQUAL(nb_urb_decode(b, cut, &m2, iso, &data, &why), -1);
    CU_ASSERT_EQUAL(nb_urb_decode(b, n + 6, &m2, iso, &data, &why), -1);

    /* A control IN carries no data; the endpoint bit does not decide. */
    m.setup[0] = 0x80;
    m.length = 18;
    n = nb_urb_encode(b, &m);
    CU_ASSERT_EQUAL(nb_urb_decode(b, n, &m2, iso, &data, &why), 0);
    CU_ASSERT_PTR_NULL(data);
    CU_ASSERT(nb_urb_is_in(&m2));

    /* An isochronous IN with its packets. */
    struct nb_urb is = { .seq = 9, .type = 0, .ep = 0x81, .interval = 1,
                         .start_frame = 100, .length = 3 * 192, .nr_iso = 3 };
    n = nb_urb_encode(b, &is);
    struct nb_urb_iso pk[3] = { { 0, 192, 0, 0 }, { 192, 192, 0, 0 },
                                { 384, 192, 0, 0 } };
    CU_ASSERT_EQUAL(nb_urb_iso_desc_encode(b + n, pk, 3), 3 * NB_URB_ISO_DESC);
    size_t total = n + 3 * NB_URB_ISO_DESC;
    CU_ASSERT_EQUAL_FATAL(nb_urb_decode(b, total, &m2, iso, &data, &why), 0);
    CU_ASSERT_EQUAL(m2.nr_iso, 3);
    CU_ASSERT_EQUAL(iso[2].offset, 384);
    CU_ASSERT_EQUAL(iso[2].length, 192);
    /* A packet reaching past the buffer. */
    b[n + 2 * NB_URB_ISO_DESC + 4] = 193;
    CU_ASSERT_EQUAL(nb_urb_decode(b, total, &m2, iso, &data, &why), -1);

    /* A bulk OUT of the largest size. */
    struct nb_urb big = { .seq = 1, .type = 3, .ep = 0x02,
                          .length = NB_URB_MAX_DATA };
    n = nb_urb_encode(b, &big);
    CU_ASSERT_EQUAL(nb_urb_decode(b, n + NB_URB_MAX_DATA, &m2, iso, &data,
                                  &why), 0);
}

/* Each malformed head on its own. */
static void test_urb_hostile(void)
{
    static uint8_t b[NB_URB_BODY + 4096];
    const char *why;
    struct nb_urb m2;
    const uint8_t *data;
    const struct nb_urb good = { .seq = 1, .type = 3, .ep = 0x81, .length = 64 };
    struct nb_urb bad[] = { good, good, good, good, good, good, good, good };
    bad[0].seq = 0;                  /* sequence numbers start at 1 */
    bad[1].type = 4;
    bad[2].flags = 0x2;              /* reserved flag */
    bad[3].ep = 0x91;                /* reserved endpoint bits */
    bad[4].length = NB_URB_MAX_DATA + 1;
    bad[5].nr_iso = 1;               /* packets on a bulk transfer */
    bad[6].type = 2;                 /* control on endpoint 1 */
    bad[7].type = 0;
    bad[7].nr_iso = NB_URB_MAX_ISO + 1;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = nb_urb_encode(b, &bad[i]);
        size_t len = bad[i].nr_iso <= NB_URB_MAX_ISO
                     && bad[i].length <= 4096 ? nb_urb_body_len(&bad[i]) : n;
        memset(b + n, 0, len - n);
        why = NULL;
        CU_ASSERT_EQUAL(nb_urb_decode(b, len, &m2, iso, &data, &why), -1);
        CU_ASSERT_PTR_NOT_NULL(why);
    }
    size_t n = nb_urb_encode(b, &good);
    CU_ASSERT_EQUAL(nb_urb_decode(b, n, &m2, iso, &data, &why), 0);
    /* IN with data after it: the length must match exactly. */
    CU_ASSERT_EQUAL(nb_urb_decode(b, n + 64, &m2, iso, &data, &why), -1);
}

static void test_urb_reply(void)
{
    static uint8_t b[NB_URB_REPLY_BODY + 8 * NB_URB_ISO_DESC + 512];
    const char *why;
    struct nb_urb_result r = { .seq = 5, .reply_no = 11, .status = NB_URB_OK,
                               .actual = 18, .data_len = 18 };
    size_t n = nb_urb_result_encode(b, &r);
    CU_ASSERT_EQUAL(n, NB_URB_REPLY_BODY);
    memset(b + n, 0x5a, 18);
    int32_t st;
    struct nb_urb_result r2;
    const uint8_t *data;
    CU_ASSERT_EQUAL_FATAL(nb_urb_reply_decode(b, n + 18, &st, &r2, iso, &data,
                                              &why), 0);
    CU_ASSERT_EQUAL(st, NB_ST_OK);
    CU_ASSERT_EQUAL(r2.seq, 5);
    CU_ASSERT_EQUAL(r2.reply_no, 11);
    CU_ASSERT_EQUAL(r2.actual, 18);
    CU_ASSERT_PTR_EQUAL(data, b + n);
    for (size_t cut = 0; cut < n + 18; cut++)
        CU_ASSERT_EQUAL(nb_urb_reply_decode(b, cut, &st, &r2, iso, &data,
                                            &why), -1);
    /* The status alone is a refusal only when it is not OK. */
    CU_ASSERT_EQUAL(nb_urb_reply_decode(b, NB_STATUS_BODY, &st, &r2, iso,
                                        &data, &why), -1);
    n = nb_status_encode(b, NB_ST_NOSPC);
    CU_ASSERT_EQUAL(nb_urb_reply_decode(b, n, &st, &r2, iso, &data, &why), 0);
    CU_ASSERT_EQUAL(st, NB_ST_NOSPC);
    CU_ASSERT_EQUAL(nb_urb_reply_decode(b, n + 4, &st, &r2, iso, &data, &why),
                    -1);

    /* Isochronous results. */
    struct nb_urb_result ri = { .seq = 6, .reply_no = 12, .nr_iso = 2,
                                .error_count = 1, .data_len = 8 };
    struct nb_urb_iso pk[2] = { { .actual = 4, .status = NB_URB_OK },
                                { .actual = 0, .status = NB_URB_PROTO } };
    n = nb_urb_result_encode(b, &ri);
    n += nb_urb_iso_result_encode(b + n, pk, 2);
    memset(b + n, 1, 8);
    CU_ASSERT_EQUAL_FATAL(nb_urb_reply_decode(b, n + 8, &st, &r2, iso, &data,
                                              &why), 0);
    CU_ASSERT_EQUAL(iso[1].status, NB_URB_PROTO);
    CU_ASSERT_EQUAL(iso[0].actual, 4);
    b[NB_URB_REPLY_BODY + NB_URB_ISO_DESC + 4] = 99; /* packet status */
    CU_ASSERT_EQUAL(nb_urb_reply_decode(b, n + 8, &st, &r2, iso, &data, &why),
                    -1);
    /* Unknown URB status, reply number 0. */
    struct nb_urb_result bad = r;
    bad.status = NB_URB_MAX + 1;
    n = nb_urb_result_encode(b, &bad);
    CU_ASSERT_EQUAL(nb_urb_reply_decode(b, n + 18, &st, &r2, iso, &data, &why),
                    -1);
    bad = r;
    bad.reply_no = 0;
    n = nb_urb_result_encode(b, &bad);
    CU_ASSERT_EQUAL(nb_urb_reply_decode(b, n + 18, &st, &r2, iso, &data, &why),
                    -1);
}

static void test_usb_misc(void)
{
    uint8_t b[NB_MAX_CTRL];
    const char *why;
    struct nb_unlink u = { .seq = 4, .ack = 2 }, u2;
    size_t n = nb_unlink_encode(b, &u);
    CU_ASSERT_EQUAL(nb_unlink_decode(b, n, &u2, &why), 0);
    CU_ASSERT_EQUAL(u2.seq, 4);
    CU_ASSERT_EQUAL(u2.ack, 2);
    CU_ASSERT_EQUAL(nb_unlink_decode(b, n - 1, &u2, &why), -1);
    u.seq = 0;
    n = nb_unlink_encode(b, &u);
    CU_ASSERT_EQUAL(nb_unlink_decode(b, n, &u2, &why), -1);

    struct nb_usb_opened o = { .speed = 3, .vendor = 0x1d6b,
                               .product = 0x0104, .next_seq = 1 }, o2;
    int32_t st;
    n = nb_usb_opened_encode(b, &o);
    CU_ASSERT_EQUAL(n, NB_OPENED_BODY);
    CU_ASSERT_EQUAL_FATAL(nb_usb_opened_decode(b, n, &st, &o2, &why), 0);
    CU_ASSERT_EQUAL(st, NB_ST_OK);
    CU_ASSERT_EQUAL(o2.vendor, 0x1d6b);
    CU_ASSERT_EQUAL(o2.speed, 3);
    /* A disk's answer is not a usb export's. */
    struct nb_opened disk = { .status = 0, .size = 1 << 20, .sector_size = 512,
                              .physical_sector_size = 512,
                              .discard_granularity = 512 };
    n = nb_opened_encode(b, &disk);
    CU_ASSERT_EQUAL(nb_usb_opened_decode(b, n, &st, &o2, &why), -1);
    o.speed = 4;
    n = nb_usb_opened_encode(b, &o);
    CU_ASSERT_EQUAL(nb_usb_opened_decode(b, n, &st, &o2, &why), -1);
    n = nb_status_encode(b, NB_ST_NOTSUP);
    CU_ASSERT_EQUAL(nb_usb_opened_decode(b, n, &st, &o2, &why), 0);
    CU_ASSERT_EQUAL(st, NB_ST_NOTSUP);

    struct nb_open op = { .flags = NB_OPEN_USB }, op2;
    strcpy(op.name, "dongle");
    n = nb_open_encode(b, &op);
    CU_ASSERT_EQUAL(nb_open_decode(b, n, &op2, &why), 0);
    CU_ASSERT_EQUAL(op2.flags, NB_OPEN_USB);
    b[0] = 0x4;
    CU_ASSERT_EQUAL(nb_open_decode(b, n, &op2, &why), -1);

    struct nb_event_body ev = { .kind = NB_EV_USB_SPEED, .value = 2 }, ev2;
    n = nb_event_encode(b, &ev);
    CU_ASSERT_EQUAL(nb_event_decode(b, n, &ev2, &why), 0);
    CU_ASSERT_EQUAL(ev2.value, 2);
    ev.value = 4;
    n = nb_event_encode(b, &ev);
    CU_ASSERT_EQUAL(nb_event_decode(b, n, &ev2, &why), -1);

    /* Statuses survive the wire; unknown errors become PROTO. */
    const int errs[] = { 0, -EPIPE, -ENODEV, -EPROTO, -EOVERFLOW,
                         -ECONNRESET, -ESHUTDOWN, -EINVAL };
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        CU_ASSERT_EQUAL(nb_urb_errno(nb_urb_status_of(errs[i])), errs[i]);
    CU_ASSERT_EQUAL(nb_urb_status_of(-ETIMEDOUT), NB_URB_PROTO);
    CU_ASSERT_EQUAL(nb_urb_errno(99), -EPROTO);
}

static CU_TestInfo channel_usb_frame_tests[] = {
    { "URB frame lengths in the header", test_usb_headers },
    { "URB round trip: control, isochronous, bulk", test_urb_round_trip },
    { "URB heads that are malformed", test_urb_hostile },
    { "URB reply, with results and refusals", test_urb_reply },
    { "UNLINK, usb OPEN reply, USB_SPEED event, statuses", test_usb_misc },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(channel_usb_frame, NULL, NULL, channel_usb_frame_tests)
