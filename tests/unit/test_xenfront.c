/* The reference blkfront's pure parts: verify-mode patterns, the sector
 * model and its files, vdev names (as libxl numbers them), sizes, the stop file.
 * tools/xenfront is not part of the library, so its two device-free files
 * are compiled into this test directly. */
#include "unit.h"

#include "tools/xenfront/pattern.c"
#include "tools/xenfront/util.c"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_pattern_fill_and_check(void)
{
    uint8_t a[PAT_SECTOR], b[PAT_SECTOR];
    pat_fill(a, 42, 1000, 7);
    pat_fill(b, 42, 1000, 7);
    CU_ASSERT_EQUAL(memcmp(a, b, PAT_SECTOR), 0); /* deterministic */
    CU_ASSERT_TRUE(pat_check(a, 42, 1000, 7, NULL));
    /* Every input changes the data. */
    pat_fill(b, 43, 1000, 7);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, PAT_SECTOR), 0);
    pat_fill(b, 42, 1001, 7);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, PAT_SECTOR), 0);
    pat_fill(b, 42, 1000, 8);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, PAT_SECTOR), 0);
    /* ... and the tail too, not only the header. */
    CU_ASSERT_NOT_EQUAL(memcmp(a + 32, b + 32, PAT_SECTOR - 32), 0);

    struct pat_found f;
    /* One flipped byte anywhere. */
    for (unsigned off = 0; off < PAT_SECTOR; off += 37) {
        memcpy(b, a, PAT_SECTOR);
        b[off] ^= 0x40;
        CU_ASSERT_FALSE(pat_check(b, 42, 1000, 7, &f));
        CU_ASSERT_EQUAL(f.first_bad, off);
    }
    /* A misplaced sector names where it belongs. */
    pat_fill(b, 42, 999, 7);
    CU_ASSERT_FALSE(pat_check(b, 42, 1000, 7, &f));
    CU_ASSERT_TRUE(f.ours);
    CU_ASSERT_EQUAL(f.lba, 999);
    CU_ASSERT_EQUAL(f.gen, 7);
    char line[300];
    pat_describe(line, sizeof(line), 42, 1000, 7, &f);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "misplaced"));
    /* A stale one names its generation. */
    pat_fill(b, 42, 1000, 5);
    CU_ASSERT_FALSE(pat_check(b, 42, 1000, 7, &f));
    CU_ASSERT_EQUAL(f.gen, 5);
    pat_describe(line, sizeof(line), 42, 1000, 7, &f);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "stale"));
    /* Another run's data. */
    pat_fill(b, 1, 1000, 7);
    CU_ASSERT_FALSE(pat_check(b, 42, 1000, 7, &f));
    pat_describe(line, sizeof(line), 42, 1000, 7, &f);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "another"));
    /* Zeroes: expected, and found. */
    memset(b, 0, sizeof(b));
    CU_ASSERT_TRUE(pat_check(b, 42, 1000, PAT_GEN_ZERO, NULL));
    CU_ASSERT_FALSE(pat_check(b, 42, 1000, 7, &f));
    CU_ASSERT_TRUE(f.zero);
    CU_ASSERT_FALSE(f.ours);
    CU_ASSERT_FALSE(pat_check(a, 42, 1000, PAT_GEN_ZERO, &f));
    /* Unknown accepts anything. */
    CU_ASSERT_TRUE(pat_check(a, 1, 2, PAT_GEN_UNKNOWN, NULL));
    /* A forged header with a wrong checksum is not "ours". */
    memcpy(b, a, PAT_SECTOR);
    b[8] ^= 1; /* lba field */
    CU_ASSERT_FALSE(pat_check(b, 42, 1000, 7, &f));
    CU_ASSERT_FALSE(f.ours);
}

static void test_model(void)
{
    struct pat_model m;
    CU_ASSERT_EQUAL(pat_model_init(&m, 9, 0, PAT_GEN_ZERO), -1);
    CU_ASSERT_EQUAL(pat_model_init(&m, 9, 16, 5), -1);
    CU_ASSERT_EQUAL_FATAL(pat_model_init(&m, 9, 64, PAT_GEN_ZERO), 0);
    uint32_t g1 = pat_model_new_gen(&m), g2 = pat_model_new_gen(&m);
    CU_ASSERT_NOT_EQUAL(g1, g2);
    CU_ASSERT(g1 != PAT_GEN_ZERO && g1 != PAT_GEN_UNKNOWN);
    /* Generations skip the two special values when they wrap. */
    m.next_gen = PAT_GEN_UNKNOWN;
    uint32_t g3 = pat_model_new_gen(&m);
    CU_ASSERT(g3 != PAT_GEN_ZERO && g3 != PAT_GEN_UNKNOWN);

    uint8_t *buf = calloc(64, PAT_SECTOR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    pat_model_set(&m, 8, 4, g1);
    pat_model_set(&m, 60, 10, g2); /* clipped at the end */
    CU_ASSERT_EQUAL(m.gen[63], g2);
    for (unsigned i = 8; i < 12; i++)
        pat_fill(buf + i * PAT_SECTOR, 9, i, g1);
    for (unsigned i = 60; i < 64; i++)
        pat_fill(buf + i * PAT_SECTOR, 9, i, g2);
    char report[300] = "";
    CU_ASSERT_EQUAL(pat_check_range(&m, buf, 0, 64, report, sizeof(report)), 0);
    /* Two sectors swapped: both reported, the first described. */
    uint8_t tmp[PAT_SECTOR];
    memcpy(tmp, buf + 9 * PAT_SECTOR, PAT_SECTOR);
    memcpy(buf + 9 * PAT_SECTOR, buf + 10 * PAT_SECTOR, PAT_SECTOR);
    memcpy(buf + 10 * PAT_SECTOR, tmp, PAT_SECTOR);
    CU_ASSERT_EQUAL(pat_check_range(&m, buf, 0, 64, report, sizeof(report)), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(report, "sector 9:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(report, "misplaced"));
    /* Discarded with unspecified contents: anything goes. */
    pat_model_set(&m, 9, 2, PAT_GEN_UNKNOWN);
    CU_ASSERT_EQUAL(pat_check_range(&m, buf, 0, 64, NULL, 0), 0);
    /* A sub-range checks against the right sectors. */
    CU_ASSERT_EQUAL(pat_check_range(&m, buf + 60 * PAT_SECTOR, 60, 4, NULL, 0), 0);
    CU_ASSERT_EQUAL(pat_check_range(&m, buf + 60 * PAT_SECTOR, 59, 4, NULL, 0), 4);

    /* Files: round trip; garbage and truncation refused. */
    char *dir = unit_tmpdir("xenfront");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char path[512];
    snprintf(path, sizeof(path), "%s/model", dir);
    CU_ASSERT_EQUAL(pat_model_save(&m, path), 0);
    struct pat_model l;
    CU_ASSERT_EQUAL_FATAL(pat_model_load(&l, path), 0);
    CU_ASSERT_EQUAL(l.seed, 9);
    CU_ASSERT_EQUAL(l.sectors, 64);
    CU_ASSERT_EQUAL(l.next_gen, m.next_gen);
    CU_ASSERT_EQUAL(memcmp(l.gen, m.gen, 64 * sizeof(uint32_t)), 0);
    pat_model_free(&l);
    CU_ASSERT_EQUAL(truncate(path, 8 + 24 + 10), 0);
    CU_ASSERT_EQUAL(pat_model_load(&l, path), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("not a model at all, just text", f);
    fclose(f);
    CU_ASSERT_EQUAL(pat_model_load(&l, path), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    /* A header claiming a huge disk is refused before allocating. */
    f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    uint64_t hdr[3] = { 1, UINT64_MAX / 2, 1 };
    fwrite("XFMODEL1", 8, 1, f);
    fwrite(hdr, sizeof(hdr), 1, f);
    fclose(f);
    CU_ASSERT_EQUAL(pat_model_load(&l, path), -1);
    snprintf(path, sizeof(path), "%s/missing", dir);
    CU_ASSERT_EQUAL(pat_model_load(&l, path), -1);
    CU_ASSERT_EQUAL(errno, ENOENT);
    unit_rmtree(dir);
    free(dir);
    free(buf);
    pat_model_free(&m);
}

static void test_rng(void)
{
    struct pat_rng r1, r2;
    pat_rng_seed(&r1, 5);
    pat_rng_seed(&r2, 5);
    unsigned hits[7] = { 0 };
    for (int i = 0; i < 7000; i++) {
        uint64_t v = pat_rng_below(&r1, 7);
        CU_ASSERT(v < 7);
        CU_ASSERT_EQUAL(v, pat_rng_below(&r2, 7)); /* same seed, same run */
        hits[v]++;
    }
    for (int i = 0; i < 7; i++)
        CU_ASSERT(hits[i] > 800 && hits[i] < 1200);
    CU_ASSERT_EQUAL(pat_rng_below(&r1, 1), 0);
}

static void test_vdev_names(void)
{
    /* libxl__device_disk_dev_number */
    CU_ASSERT_EQUAL(xf_vdev_to_devid("xvda"), 51712);
    CU_ASSERT_EQUAL(xf_vdev_to_devid("xvdb"), 51728);
    CU_ASSERT_EQUAL(xf_vdev_to_devid("xvda1"), 51713);
    CU_ASSERT_EQUAL(xf_vdev_to_devid("xvdp15"), (202 << 8) | (15 << 4) | 15);
    CU_ASSERT_EQUAL(xf_vdev_to_devid("xvdq"), (1L << 28) | (16 << 8));
    CU_ASSERT_EQUAL(xf_vdev_to_devid("xvda16"), (1L << 28) | 16);
    CU_ASSERT_EQUAL(xf_vdev_to_devid("xvdaa"), (1L << 28) | (26 << 8));
    CU_ASSERT_EQUAL(xf_vdev_to_devid("d0p0"), 51712);
    CU_ASSERT_EQUAL(xf_vdev_to_devid("d1p2"), 51730);
    CU_ASSERT_EQUAL(xf_vdev_to_devid("51712"), 51712);
    CU_ASSERT_EQUAL(xf_vdev_to_devid("768"), 768);
    const char *bad[] = { "", "xvd", "xvda0", "xvdA", "hda", "-1", "xvda256",
                          "d0p", "d0p0x", "99999999999", "xvda 1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(xf_vdev_to_devid(bad[i]), -1);
    CU_ASSERT_EQUAL(xf_vdev_to_devid(NULL), -1);
}

static void test_stop_file(void)
{
    char path[] = "/tmp/netbus-stop-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_FATAL(unlink(path) == 0);
    struct xf_stop_file none = { 0 }, s = { .path = path };
    CU_ASSERT_FALSE(xf_stop_file_seen(&none, 0));
    uint64_t t = 5000000000ull;
    CU_ASSERT_FALSE(xf_stop_file_seen(&s, t));
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT_FALSE(xf_stop_file_seen(&s, t + 99000000ull)); /* not looked again yet */
    CU_ASSERT_TRUE(xf_stop_file_seen(&s, t + 100000000ull));
    CU_ASSERT_EQUAL(unlink(path), 0);
    CU_ASSERT_TRUE(xf_stop_file_seen(&s, t + 300000000ull)); /* seen stays seen */
}

static void test_sizes(void)
{
    uint64_t v;
    CU_ASSERT(xf_parse_size("4096", &v) == 0 && v == 4096);
    CU_ASSERT(xf_parse_size("4k", &v) == 0 && v == 4096);
    CU_ASSERT(xf_parse_size("1m", &v) == 0 && v == 1 << 20);
    CU_ASSERT(xf_parse_size("1MiB", &v) == 0 && v == 1 << 20);
    CU_ASSERT(xf_parse_size("2G", &v) == 0 && v == 2ull << 30);
    const char *bad[] = { "", "k", "-4k", "4x", "4kk", "1b", "99999999999999999999g" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(xf_parse_size(bad[i], &v), -1);
    CU_ASSERT(xf_parse_uint("12", 12, &v) == 0 && v == 12);
    CU_ASSERT_EQUAL(xf_parse_uint("13", 12, &v), -1);
    CU_ASSERT_EQUAL(xf_parse_uint("+1", 12, &v), -1);
}

static CU_TestInfo xenfront_tests[] = {
    { "patterns: deterministic, every corruption told apart", test_pattern_fill_and_check },
    { "sector model, range checks, model files", test_model },
    { "offset generator", test_rng },
    { "vdev names as libxl numbers them", test_vdev_names },
    { "size and number arguments", test_sizes },
    { "stop file: looked for every 100 ms, seen for good", test_stop_file },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(xenfront, NULL, NULL, xenfront_tests)
