/* `xenfront blk load`: a small fio-like load generator over blkfront, used
 * by tests/bench/vbd.sh. Keeps --qd requests in flight for --seconds, random
 * (uniform, block-aligned) or sequential (wrapping) offsets within --size,
 * no data copied (the granted pages go to the backend as they are). Prints
 * one machine-readable line:
 *   LOAD rw=randread bs=4096 qd=32 seconds=5.00 ops=N iops=X mbps=Y lat_us=Z
 */
#include "pattern.h"
#include "xenbus_front.h"
#include "xenfront.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/blkif.h>

struct lctx {
    struct blkfront *bf;
    struct pat_rng rng;
    bool random, write;
    uint32_t bs_sect;
    uint64_t blocks, next_block;
    uint64_t ops, errors, lat_ns;
    bool stop;
};

struct lio {
    struct bf_io io;
    struct lctx *l;
};

static int submit_one(struct lctx *l, struct lio *x);

static void load_done(struct bf_io *io, int st)
{
    struct lio *x = io->opaque;
    struct lctx *l = x->l;
    if (st != BLKIF_RSP_OKAY)
        l->errors++;
    l->ops++;
    l->lat_ns += fe_now_ns() - io->submit_ns;
    if (!l->stop)
        submit_one(l, x);
}

static int submit_one(struct lctx *l, struct lio *x)
{
    uint64_t b;
    if (l->random) {
        b = pat_rng_below(&l->rng, l->blocks);
    } else {
        b = l->next_block++;
        if (l->next_block == l->blocks)
            l->next_block = 0;
    }
    memset(&x->io, 0, sizeof(x->io));
    x->io.op = l->write ? BF_WRITE : BF_READ;
    x->io.sector = b * l->bs_sect;
    x->io.nsect = l->bs_sect;
    x->io.done = load_done;
    x->io.opaque = x;
    return bf_submit(l->bf, &x->io);
}

static void load_usage(FILE *f)
{
    fputs("usage: xenfront blk load --vdev VDEV --rw MODE [options] [device options]\n"
          "  --rw MODE       randread, randwrite, read or write (sequential)\n"
          "  --bs SIZE       block size (default 4k; at most what one request "
          "carries)\n"
          "  --qd N          requests in flight (default 1)\n"
          "  --seconds S     duration (default 5)\n"
          "  --size SIZE     use the first SIZE bytes of the disk (default: all)\n"
          "  --seed N        offsets' seed (default 1)\n"
          "Prints `LOAD rw=... bs=... qd=... seconds=... ops=... iops=... "
          "mbps=... lat_us=...`.\n", f);
    xf_dev_usage(f);
}

int xf_blk_load(int argc, char **argv)
{
    static const struct option opts[] = {
        XF_DEV_LONGOPTS,
        { "rw", required_argument, NULL, 'w' },
        { "bs", required_argument, NULL, 'b' },
        { "qd", required_argument, NULL, 'q' },
        { "seconds", required_argument, NULL, 't' },
        { "size", required_argument, NULL, 'S' },
        { "seed", required_argument, NULL, 's' },
        { NULL, 0, NULL, 0 },
    };
    struct xf_blk_cmd cmd = { .name = "load", .usage = load_usage };
    struct bf_opts *o = &cmd.dev;
    bf_opts_default(o);
    o->reuse_grants = true; /* measure the backend, not xensim's page churn */
    int c, status;
    const char *rw = NULL;
    uint64_t bs = 4096, qd = 1, seconds = 5, size = 0, seed = 1;
    struct lctx l;
    memset(&l, 0, sizeof(l));
    while ((c = xf_blk_getopt(&cmd, argc, argv, opts, &status)) != -1) {
        switch (c) {
        case XF_OPTS_EXIT:
            return status;
        case 'w':
            rw = optarg;
            if (strcmp(rw, "randread") == 0)
                l.random = true;
            else if (strcmp(rw, "randwrite") == 0)
                l.random = l.write = true;
            else if (strcmp(rw, "write") == 0)
                l.write = true;
            else if (strcmp(rw, "read") != 0)
                goto bad;
            break;
        case 'b':
            if (xf_parse_size(optarg, &bs) < 0 || bs < BF_SECTOR || bs % BF_SECTOR ||
                bs > BF_MAX_INDIRECT * XENIF_PAGE_SIZE)
                goto bad;
            break;
        case 'q':
            if (xf_parse_uint(optarg, 4096, &qd) < 0 || !qd)
                goto bad;
            break;
        case 't':
            if (xf_parse_uint(optarg, 86400, &seconds) < 0 || !seconds)
                goto bad;
            break;
        case 'S':
            if (xf_parse_size(optarg, &size) < 0)
                goto bad;
            break;
        case 's':
            if (xf_parse_uint(optarg, UINT64_MAX, &seed) < 0)
                goto bad;
            break;
        }
    }
    if (!rw) {
        load_usage(stderr);
        return 2;
    }
    l.bf = xf_open(o, "load");
    if (!l.bf)
        return 1;
    int rc = 1;
    struct lio *pool = NULL;
    l.bs_sect = (uint32_t)(bs / BF_SECTOR);
    uint64_t disk = bf_sectors(l.bf) * BF_SECTOR;
    if (!size || size > disk)
        size = disk;
    l.blocks = size / bs;
    if (l.bs_sect > bf_max_sectors(l.bf) || l.blocks == 0 ||
        l.bs_sect % (bf_sector_size(l.bf) / BF_SECTOR)) {
        fprintf(stderr, "xenfront load: --bs %llu does not fit vbd/%u (one request "
                "carries at most %u bytes, the disk has %llu bytes, %u-byte "
                "sectors)\n", (unsigned long long)bs, o->devid,
                bf_max_sectors(l.bf) * BF_SECTOR, (unsigned long long)disk,
                bf_sector_size(l.bf));
        goto out;
    }
    pat_rng_seed(&l.rng, seed);
    pool = calloc(qd, sizeof(*pool));
    if (!pool)
        goto out;
    uint64_t t0 = fe_now_ns(), end = t0 + seconds * 1000000000ull;
    for (uint64_t i = 0; i < qd; i++) {
        pool[i].l = &l;
        if (submit_one(&l, &pool[i]) < 0) {
            fprintf(stderr, "xenfront load: cannot keep %llu requests in flight "
                    "(%u ring(s) of %u slots)\n", (unsigned long long)qd,
                    bf_nr_rings(l.bf), bf_ring_size(l.bf));
            goto out;
        }
    }
    while (fe_now_ns() < end)
        if (bf_poll(l.bf, 200) < 0)
            goto out;
    l.stop = true;
    uint64_t t1 = fe_now_ns();
    uint64_t ops_at_end = l.ops;
    while (bf_in_flight(l.bf) > 0)
        if (bf_poll(l.bf, 1000) < 0)
            goto out;
    double secs = (double)(t1 - t0) / 1e9;
    printf("LOAD rw=%s bs=%llu qd=%llu seconds=%.2f ops=%llu iops=%.0f mbps=%.1f "
           "lat_us=%.1f errors=%llu\n", rw, (unsigned long long)bs,
           (unsigned long long)qd, secs, (unsigned long long)ops_at_end,
           (double)ops_at_end / secs, (double)ops_at_end * (double)bs / secs / 1e6,
           l.ops ? (double)l.lat_ns / (double)l.ops / 1e3 : 0.0,
           (unsigned long long)l.errors);
    rc = l.errors ? 1 : 0;
    if (l.errors)
        fprintf(stderr, "xenfront load: %llu request(s) failed\n",
                (unsigned long long)l.errors);
out:
    free(pool);
    if (bf_close(l.bf) < 0)
        rc = 1;
    return rc;
bad:
    fprintf(stderr, "xenfront load: bad value '%s' for %s\n", optarg, argv[optind - 1]);
    return 2;
}
