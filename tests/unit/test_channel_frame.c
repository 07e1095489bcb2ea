/* netbus channel: the frame codec and the key file, fed hostile input. */
#include "backend/channel/frame.h"
#include "backend/channel/keys.h"
#include "backend/channel/url.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void hdr(uint8_t *b, uint8_t type, uint16_t flags, uint32_t session,
                uint32_t len, uint64_t tag)
{
    struct nb_hdr h = { .type = type, .flags = flags, .session = session,
                        .length = len, .tag = tag };
    nb_hdr_encode(b, &h);
}

static int dec(const uint8_t *b, bool authed, struct nb_hdr *h)
{
    const char *why = NULL;
    int rc = nb_hdr_decode(b, h, authed, &why);
    if (rc < 0)
        CU_ASSERT_PTR_NOT_NULL(why);
    return rc;
}

static void test_header_round_trip(void)
{
    uint8_t b[NB_HDR_SIZE];
    struct nb_hdr h;
    hdr(b, NB_WRITE, NB_F_PREFLUSH, 7, NB_IO_BODY + 4096, 0x1122334455667788ull);
    CU_ASSERT_EQUAL(memcmp(b, "NBUS", 4), 0); /* magic bytes on the wire */
    CU_ASSERT_EQUAL_FATAL(dec(b, true, &h), 0);
    CU_ASSERT_EQUAL(h.type, NB_WRITE);
    CU_ASSERT_EQUAL(h.flags, NB_F_PREFLUSH);
    CU_ASSERT_EQUAL(h.session, 7);
    CU_ASSERT_EQUAL(h.length, NB_IO_BODY + 4096);
    CU_ASSERT_EQUAL(h.tag, 0x1122334455667788ull);
    nb_hdr_set_tag(b, 42);
    CU_ASSERT_EQUAL_FATAL(dec(b, true, &h), 0);
    CU_ASSERT_EQUAL(h.tag, 42);
    hdr(b, NB_READ | NB_REPLY, 0, 1, NB_STATUS_BODY + NB_MAX_DATA, 9);
    CU_ASSERT_EQUAL(dec(b, true, &h), 0);
    hdr(b, NB_HELLO, 0, 0, 100, 0);
    CU_ASSERT_EQUAL(dec(b, false, &h), 0);
}

static void test_header_hostile(void)
{
    uint8_t b[NB_HDR_SIZE];
    struct nb_hdr h;
    hdr(b, NB_READ, 0, 1, NB_IO_BODY, 1);
    b[0] ^= 1;
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);           /* magic */
    hdr(b, NB_READ, 0, 1, NB_IO_BODY, 1);
    b[4] = 2;
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);           /* version */
    hdr(b, 0x7f, 0, 1, 0, 1);
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);           /* unknown type */
    hdr(b, NB_EVENT | NB_REPLY, 0, 1, 0, 1);
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);           /* events have no reply */
    hdr(b, NB_HELLO | NB_REPLY, 0, 0, 0, 0);
    CU_ASSERT_EQUAL(dec(b, false, &h), -1);
    hdr(b, NB_OPEN, 0, 0, 20, 1);
    CU_ASSERT_EQUAL(dec(b, false, &h), -1);          /* before authentication */
    hdr(b, NB_HELLO, 0, 0, 50, 0);
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);           /* handshake after it */
    hdr(b, NB_HELLO, 0, 3, 50, 0);
    CU_ASSERT_EQUAL(dec(b, false, &h), -1);          /* handshake with session */
    hdr(b, NB_READ, NB_F_PREFLUSH, 1, NB_IO_BODY, 1);
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);           /* flag on a READ */
    hdr(b, NB_WRITE, 0x8000, 1, NB_IO_BODY, 1);
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);           /* reserved flag */
    hdr(b, NB_WRITE, 0, 1, NB_IO_BODY + NB_MAX_DATA + 1, 1);
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);           /* data over the limit */
    hdr(b, NB_WRITE, 0, 1, NB_IO_BODY - 1, 1);
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);
    hdr(b, NB_READ, 0, 1, NB_MAX_CTRL + 1, 1);
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);           /* control frame too big */
    hdr(b, NB_READ | NB_REPLY, 0, 1, NB_STATUS_BODY - 1, 1);
    CU_ASSERT_EQUAL(dec(b, true, &h), -1);
    hdr(b, NB_HELLO, 0, 0, 0xffffffffu, 0);
    CU_ASSERT_EQUAL(dec(b, false, &h), -1);
}

static void test_bodies(void)
{
    const char *why;
    uint8_t b[NB_MAX_CTRL];
    struct nb_hello hi = { .min_version = 1, .max_version = 1,
                           .flags = NB_HELLO_TLS, .keepalive_ms = 2000 };
    memset(hi.nonce, 0xab, sizeof(hi.nonce));
    strcpy(hi.name, "host-a.example");
    size_t n = nb_hello_encode(b, &hi);
    struct nb_hello h2;
    CU_ASSERT_EQUAL_FATAL(nb_hello_decode(b, n, &h2, &why), 0);
    CU_ASSERT_STRING_EQUAL(h2.name, "host-a.example");
    CU_ASSERT_EQUAL(h2.keepalive_ms, 2000);
    for (size_t cut = 0; cut < n; cut++)
        CU_ASSERT_EQUAL(nb_hello_decode(b, cut, &h2, &why), -1);
    CU_ASSERT_EQUAL(nb_hello_decode(b, n + 1, &h2, &why), -1); /* trailing */
    b[n - 3] = '/';
    CU_ASSERT_EQUAL(nb_hello_decode(b, n, &h2, &why), -1);     /* bad name */
    n = nb_hello_encode(b, &hi);
    b[12 + NB_NONCE_SIZE] = 200;                               /* name length */
    CU_ASSERT_EQUAL(nb_hello_decode(b, n, &h2, &why), -1);
    n = nb_hello_encode(b, &hi);
    b[4] |= 0x80;                                              /* flags */
    CU_ASSERT_EQUAL(nb_hello_decode(b, n, &h2, &why), -1);

    struct nb_open op = { .flags = NB_OPEN_READONLY, .resume_session = 5 };
    strcpy(op.name, "disk1");
    strcpy(op.owner, "hostA /local/domain/0/backend/vbd/1/51712");
    n = nb_open_encode(b, &op);
    struct nb_open o2;
    CU_ASSERT_EQUAL_FATAL(nb_open_decode(b, n, &o2, &why), 0);
    CU_ASSERT_STRING_EQUAL(o2.owner, op.owner);
    CU_ASSERT_EQUAL(o2.resume_session, 5);
    b[n - 1] = '\n';                                           /* owner */
    CU_ASSERT_EQUAL(nb_open_decode(b, n, &o2, &why), -1);
    op.name[0] = '\0';
    n = nb_open_encode(b, &op);
    CU_ASSERT_EQUAL(nb_open_decode(b, n, &o2, &why), -1);      /* empty name */

    struct nb_opened ok = { .status = 0, .flags = NB_INFO_FLUSH,
                            .size = 1 << 20, .sector_size = 512,
                            .physical_sector_size = 4096,
                            .discard_granularity = 4096 };
    n = nb_opened_encode(b, &ok);
    CU_ASSERT_EQUAL(n, NB_OPENED_BODY);
    struct nb_opened m;
    CU_ASSERT_EQUAL_FATAL(nb_opened_decode(b, n, &m, &why), 0);
    CU_ASSERT_EQUAL(m.size, 1 << 20);
    CU_ASSERT_EQUAL(m.flags, NB_INFO_FLUSH);
    struct nb_opened bad = ok;
    bad.sector_size = 1000;
    n = nb_opened_encode(b, &bad);
    CU_ASSERT_EQUAL(nb_opened_decode(b, n, &m, &why), -1);
    bad = ok;
    bad.size = 1000;                                   /* not whole sectors */
    n = nb_opened_encode(b, &bad);
    CU_ASSERT_EQUAL(nb_opened_decode(b, n, &m, &why), -1);
    struct nb_opened err = { .status = NB_ST_NOENT };
    n = nb_opened_encode(b, &err);
    CU_ASSERT_EQUAL(n, NB_STATUS_BODY);
    CU_ASSERT_EQUAL(nb_opened_decode(b, n, &m, &why), 0);
    CU_ASSERT_EQUAL(m.status, NB_ST_NOENT);
    CU_ASSERT_EQUAL(nb_opened_decode(b, NB_OPENED_BODY, &m, &why), -1);

    struct nb_io io = { .offset = 4096, .len = NB_MAX_DATA };
    n = nb_io_encode(b, &io);
    struct nb_io io2;
    CU_ASSERT_EQUAL(nb_io_decode(b, n, &io2, &why), 0);
    b[8] = 1;                                          /* len over the limit */
    CU_ASSERT_EQUAL(nb_io_decode(b, n, &io2, &why), -1);
    n = nb_io_encode(b, &io);
    b[15] = 1;
    CU_ASSERT_EQUAL(nb_io_decode(b, n, &io2, &why), -1);

    int32_t st;
    n = nb_status_encode(b, NB_ST_ROFS);
    CU_ASSERT_EQUAL(nb_status_decode(b, n, &st, &why), 0);
    CU_ASSERT_EQUAL(nb_status_errno(st), -EROFS);
    nb_status_encode(b, 99);
    CU_ASSERT_EQUAL(nb_status_decode(b, n, &st, &why), -1);
    CU_ASSERT_EQUAL(nb_errno_status(-ENOMEM), NB_ST_EIO);

    struct nb_event_body ev = { .kind = NB_EV_GONE }, ev2;
    n = nb_event_encode(b, &ev);
    CU_ASSERT_EQUAL(nb_event_decode(b, n, &ev2, &why), 0);
    b[0] = 9;
    CU_ASSERT_EQUAL(nb_event_decode(b, n, &ev2, &why), -1);
    uint32_t code;
    CU_ASSERT_EQUAL(nb_refused_decode(b, 3, &code, &why), -1);
}

static void test_url(void)
{
    struct nb_url u;
    char err[256];
    CU_ASSERT_EQUAL(nb_url_parse("netbus://hostB/disk1", &u, err, sizeof(err)), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "hostB");
    CU_ASSERT_EQUAL(u.port, NB_DEFAULT_PORT);
    CU_ASSERT_STRING_EQUAL(u.export_name, "disk1");
    CU_ASSERT_EQUAL(nb_url_parse("netbus://10.0.0.2:9000/d", &u, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(u.port, 9000);
    CU_ASSERT_EQUAL(nb_url_parse("netbus://[fd00::1]:7/d", &u, err, sizeof(err)), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "fd00::1");
    const char *bad[] = { "netbus://", "netbus:///d", "netbus://h/", "netbus://h",
                          "netbus://h:99999/d", "netbus://h:/d", "netbus://h/a/b",
                          "netbus://u@h/d", "netbus://fd00::1/d", "nbd://h/d",
                          "netbus://h:0/d", "netbus://h/.x", "netbus://h h/d" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(nb_url_parse(bad[i], &u, err, sizeof(err)), -1);
        CU_ASSERT(err[0] != '\0');
    }
}

static void test_keys(void)
{
    char err[512];
    struct nb_keyring *kr = nb_keyring_parse(
        "# cluster\n* 00112233445566778899aabbccddeeff\n"
        "hostB 0123456789abcdef0123456789abcdef0123456789abcdef\n\n",
        "keys", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(kr);
    CU_ASSERT_EQUAL(nb_keyring_count(kr), 2);
    const struct nb_key *k = nb_keyring_find(kr, "hostB");
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_EQUAL(k->len, 24);
    k = nb_keyring_find(kr, "hostC");              /* the cluster key */
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    CU_ASSERT_STRING_EQUAL(k->name, "*");
    nb_keyring_free(kr);
    kr = nb_keyring_parse("hostB 00112233445566778899aabbccddeeff\n", "keys",
                          err, sizeof(err));
    CU_ASSERT_PTR_NULL(nb_keyring_find(kr, "hostC")); /* no cluster key */
    nb_keyring_free(kr);

    const char *bad[] = {
        "hostB 0011\n",                                      /* too short */
        "hostB 00112233445566778899aabbccddeeffx0\n",         /* not hex */
        "hostB 00112233445566778899aabbccddeef\n",            /* odd */
        "host/B 00112233445566778899aabbccddeeff\n",          /* name */
        "hostB\n",
        "hostB 00112233445566778899aabbccddeeff extra\n",
        "hostB 00112233445566778899aabbccddeeff\nhostB 00112233445566778899aabbccddeeff\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        CU_ASSERT_PTR_NULL(nb_keyring_parse(bad[i], "keys", err, sizeof(err)));
        CU_ASSERT(strstr(err, "keys:") != NULL);
    }

    char *dir = unit_tmpdir("keys");
    char path[512];
    snprintf(path, sizeof(path), "%s/keys", dir);
    FILE *f = fopen(path, "w");
    fputs("* 00112233445566778899aabbccddeeff\n", f);
    fclose(f);
    chmod(path, 0644);
    CU_ASSERT_PTR_NULL(nb_keyring_load(path, err, sizeof(err)));
    CU_ASSERT(strstr(err, "chmod 600") != NULL);
    chmod(path, 0600);
    kr = nb_keyring_load(path, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(kr);
    nb_keyring_free(kr);
    snprintf(path, sizeof(path), "%s/none", dir);
    CU_ASSERT_PTR_NULL(nb_keyring_load(path, err, sizeof(err)));
    unit_rmtree(dir);
    free(dir);
}

static CU_TestInfo channel_frame_tests[] = {
    { "header round trip", test_header_round_trip },
    { "hostile headers", test_header_hostile },
    { "bodies, truncated and malformed", test_bodies },
    { "device URLs", test_url },
    { "key file", test_keys },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(channel_frame, NULL, NULL, channel_frame_tests)
