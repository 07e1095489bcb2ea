/* A SuperSpeed device's descriptors as a high-speed device's: the device
 * descriptor (also the 8-byte first read), a configuration with bulk
 * endpoints and their companions (usb-storage's UAS-less layout), an
 * interrupt endpoint that keeps its size, and malformed chains left alone. */
#include "backend/vusb/superspeed.h"
#include "unit.h"

#include <string.h>

static void test_device(void)
{
    uint8_t d[18] = { 18, 1, 0x20, 0x03, 0, 0, 0, 9, 0x27, 0x06, 0x01, 0x00 };
    superspeed_device_to_high(d, sizeof(d));
    CU_ASSERT_EQUAL(d[2], 0x00);
    CU_ASSERT_EQUAL(d[3], 0x02);
    CU_ASSERT_EQUAL(d[7], 64);
    CU_ASSERT_EQUAL(d[8], 0x27); /* idVendor untouched */

    uint8_t first[8] = { 18, 1, 0x00, 0x03, 0, 0, 0, 9 };
    superspeed_device_to_high(first, sizeof(first));
    CU_ASSERT_EQUAL(first[3], 0x02);
    CU_ASSERT_EQUAL(first[7], 64);

    uint8_t hs[18] = { 18, 1, 0x00, 0x02, 0, 0, 0, 64 };
    uint8_t copy[18];
    memcpy(copy, hs, sizeof(hs));
    superspeed_device_to_high(hs, sizeof(hs));
    CU_ASSERT_EQUAL(memcmp(hs, copy, sizeof(hs)), 0);
}

static void test_config(void)
{
    uint8_t c[] = {
        9, 2, 44, 0, 1, 1, 0, 0x80, 50,            /* config, total 44 */
        9, 4, 0, 0, 3, 8, 6, 0x50, 0,              /* mass storage */
        7, 5, 0x81, 2, 0x00, 0x04, 0,              /* bulk IN 1024 */
        6, 0x30, 15, 0, 0, 0,                      /* companion */
        7, 5, 0x02, 2, 0x00, 0x04, 0,              /* bulk OUT 1024 */
        6, 0x30, 15, 0, 0, 0,                      /* companion */
        7, 5, 0x83, 3, 0x00, 0x04, 8,              /* interrupt IN 1024 */
    };
    CU_ASSERT_EQUAL_FATAL(sizeof(c), 51);
    c[2] = sizeof(c);
    size_t n = superspeed_config_to_high(c, sizeof(c));
    CU_ASSERT_EQUAL(n, 39);
    CU_ASSERT_EQUAL(c[2], 39);
    CU_ASSERT_EQUAL(c[3], 0);
    const uint8_t want[] = {
        9, 2, 39, 0, 1, 1, 0, 0x80, 50,
        9, 4, 0, 0, 3, 8, 6, 0x50, 0,
        7, 5, 0x81, 2, 0x00, 0x02, 0,
        7, 5, 0x02, 2, 0x00, 0x02, 0,
        7, 5, 0x83, 3, 0x00, 0x04, 8,
    };
    CU_ASSERT_EQUAL(memcmp(c, want, sizeof(want)), 0);
}

static void test_malformed(void)
{
    /* A descriptor whose length runs past the end, and a zero length. */
    uint8_t past[] = { 9, 2, 16, 0, 1, 1, 0, 0x80, 50, 9, 4, 0 };
    uint8_t copy[sizeof(past)];
    memcpy(copy, past, sizeof(past));
    CU_ASSERT_EQUAL(superspeed_config_to_high(past, sizeof(past)), sizeof(past));
    CU_ASSERT_EQUAL(memcmp(past, copy, sizeof(past)), 0);
    uint8_t zero[] = { 9, 2, 11, 0, 1, 1, 0, 0x80, 50, 0, 0x30 };
    CU_ASSERT_EQUAL(superspeed_config_to_high(zero, sizeof(zero)), sizeof(zero));
    uint8_t not_config[] = { 9, 4, 0, 0, 3, 8, 6, 0x50, 0 };
    CU_ASSERT_EQUAL(superspeed_config_to_high(not_config, sizeof(not_config)),
                    sizeof(not_config));
}

static CU_TestInfo superspeed_tests[] = {
    { "device descriptor", test_device },
    { "configuration descriptor", test_config },
    { "malformed descriptors left alone", test_malformed },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(vusb_superspeed, NULL, NULL, superspeed_tests)
