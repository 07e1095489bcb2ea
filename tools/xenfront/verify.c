/* `xenfront blk verify`: writes seeded patterns (pattern.h) at random offsets
 * with random sizes up to the largest indirect request, with many requests
 * in flight, mixed with reads that check every byte against the model,
 * flushes and discards; then reads the whole region back and checks every
 * sector. Requests in flight never overlap (a per-sector busy map), so the
 * model is exact regardless of completion order.
 *
 * Discard: blkif.h promises nothing about a discarded range's contents, so
 * by default it becomes "unknown" (any content accepted) until rewritten;
 * --discard-zeroes asserts that it reads back as zeroes (true of netbusd's
 * vbd on a file: it punches holes).
 *
 * Read-only disks (info has VDISK_READONLY): reads are checked against the
 * model, and writes and discards are still sent, one at a time, expecting
 * BLKIF_RSP_ERROR; a write that succeeds is an error.
 *
 * `xenfront blk check-file` checks an image from dom0 against the model a
 * verify run saved (--model-out), bypassing the backend. */
#include "pattern.h"
#include "xenbus_front.h"
#include "xenfront.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xen/io/blkif.h>

#define MAX_REPORTS 10

struct vio;

struct vctx {
    struct blkfront *bf;
    struct pat_model m;
    struct pat_rng rng;
    uint64_t region;          /* sectors under test */
    uint8_t *busy;            /* per sector: a request in flight covers it */
    uint32_t align, max_sect;
    bool ro, expect_ro, discard_zeroes, do_flush, do_discard, quiet;
    struct vio *free;
    unsigned idle;
    /* results */
    uint64_t writes, wsect, reads, rsect, flushes, discards, dsect, checked;
    uint64_t indirect_ios, offset_ios, ro_rejected, discard_unsupported;
    uint64_t mismatches, errors;
    unsigned reported;
};

struct vio {
    struct bf_io io;
    struct vctx *v;
    uint32_t gen;
    uint8_t *buf;
    struct vio *next;
};

static void report(struct vctx *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void report(struct vctx *v, const char *fmt, ...)
{
    if (v->reported++ >= MAX_REPORTS) {
        if (v->reported == MAX_REPORTS + 1)
            fprintf(stderr, "xenfront verify: (further problems not shown)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("xenfront verify: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void set_busy(struct vctx *v, uint64_t lba, uint32_t n, uint8_t b)
{
    memset(v->busy + lba, b, n);
}

static bool range_free(const struct vctx *v, uint64_t lba, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (v->busy[lba + i])
            return false;
    return true;
}

static const char *status_name(int st)
{
    return st == BLKIF_RSP_OKAY ? "OKAY" : st == BLKIF_RSP_ERROR ? "ERROR"
           : st == BLKIF_RSP_EOPNOTSUPP ? "EOPNOTSUPP" : "?";
}

static void io_done(struct bf_io *io, int st)
{
    struct vio *x = io->opaque;
    struct vctx *v = x->v;
    uint64_t lba = io->sector;
    uint32_t n = io->nsect;
    switch (io->op) {
    case BF_WRITE:
        if (v->ro) {
            if (st == BLKIF_RSP_OKAY) {
                v->errors++;
                report(v, "write of sectors %llu..%llu succeeded on a read-only "
                       "disk", (unsigned long long)lba, (unsigned long long)(lba + n - 1));
                pat_model_set(&v->m, lba, n, PAT_GEN_UNKNOWN);
            } else {
                v->ro_rejected++;
            }
        } else if (st == BLKIF_RSP_OKAY) {
            pat_model_set(&v->m, lba, n, x->gen);
            v->writes++;
            v->wsect += n;
        } else {
            v->errors++;
            report(v, "write of sectors %llu..%llu: backend answered %s",
                   (unsigned long long)lba, (unsigned long long)(lba + n - 1),
                   status_name(st));
            pat_model_set(&v->m, lba, n, PAT_GEN_UNKNOWN);
        }
        break;
    case BF_READ:
        if (st != BLKIF_RSP_OKAY) {
            v->errors++;
            report(v, "read of sectors %llu..%llu: backend answered %s",
                   (unsigned long long)lba, (unsigned long long)(lba + n - 1),
                   status_name(st));
            break;
        }
        v->reads++;
        v->rsect += n;
        for (uint32_t i = 0; i < n; i++) {
            struct pat_found f;
            uint32_t gen = v->m.gen[lba + i];
            if (gen != PAT_GEN_UNKNOWN)
                v->checked++;
            if (pat_check(x->buf + (size_t)i * PAT_SECTOR, v->m.seed, lba + i, gen, &f))
                continue;
            v->mismatches++;
            char line[300];
            pat_describe(line, sizeof(line), v->m.seed, lba + i, gen, &f);
            report(v, "MISMATCH %s (read of %u sectors at %llu)", line, n,
                   (unsigned long long)lba);
        }
        break;
    case BF_DISCARD:
        if (v->ro) {
            if (st == BLKIF_RSP_OKAY) {
                v->errors++;
                report(v, "discard of sectors %llu..%llu succeeded on a read-only "
                       "disk", (unsigned long long)lba, (unsigned long long)(lba + n - 1));
                pat_model_set(&v->m, lba, n, PAT_GEN_UNKNOWN);
            } else {
                v->ro_rejected++;
            }
        } else if (st == BLKIF_RSP_OKAY) {
            v->discards++;
            v->dsect += n;
            pat_model_set(&v->m, lba, n, v->discard_zeroes ? PAT_GEN_ZERO
                                                           : PAT_GEN_UNKNOWN);
        } else if (st == BLKIF_RSP_EOPNOTSUPP) {
            /* Allowed at any time (blkif.h); Linux stops discarding. */
            v->discard_unsupported++;
            v->do_discard = false;
            pat_model_set(&v->m, lba, n, PAT_GEN_UNKNOWN);
        } else {
            v->errors++;
            report(v, "discard of sectors %llu..%llu: backend answered %s",
                   (unsigned long long)lba, (unsigned long long)(lba + n - 1),
                   status_name(st));
            pat_model_set(&v->m, lba, n, PAT_GEN_UNKNOWN);
        }
        break;
    case BF_FLUSH:
        if (st == BLKIF_RSP_OKAY) {
            v->flushes++;
        } else if (st == BLKIF_RSP_EOPNOTSUPP) {
            v->do_flush = false; /* allowed at any time, as for Linux */
        } else {
            v->errors++;
            report(v, "flush: backend answered %s", status_name(st));
        }
        break;
    }
    if (io->op != BF_FLUSH)
        set_busy(v, lba, n, 0);
    x->next = v->free;
    v->free = x;
    v->idle++;
}

static uint32_t pick_len(struct vctx *v, uint32_t max)
{
    uint32_t lo, hi;
    switch (pat_rng_below(&v->rng, 10)) {
    case 0: case 1: case 2: case 3: case 4:
        lo = 1, hi = 8; /* up to a page */
        break;
    case 5: case 6: case 7:
        lo = 9, hi = BLKIF_MAX_SEGMENTS_PER_REQUEST * BF_SECTORS_PER_PAGE;
        break;
    default:
        lo = BLKIF_MAX_SEGMENTS_PER_REQUEST * BF_SECTORS_PER_PAGE + 1, hi = max;
        break;
    }
    if (hi > max)
        hi = max;
    if (lo > hi)
        lo = 1;
    uint32_t n = lo + (uint32_t)pat_rng_below(&v->rng, hi - lo + 1);
    n = n / v->align * v->align;
    return n ? n : v->align;
}

/* Picks a free range of n sectors; false if none found in a few tries. */
static bool pick_range(struct vctx *v, uint32_t *n, uint64_t *lba)
{
    if (*n > v->region)
        *n = (uint32_t)(v->region / v->align * v->align);
    for (int t = 0; t < 8; t++) {
        uint64_t s = pat_rng_below(&v->rng, v->region - *n + 1);
        s = s / v->align * v->align;
        if (range_free(v, s, *n)) {
            *lba = s;
            return true;
        }
    }
    return false;
}

/* Issues one random operation. Returns 1 issued, 0 nothing possible now,
 * -1 device failure. */
static int issue_random(struct vctx *v)
{
    struct vio *x = v->free;
    unsigned dice = (unsigned)pat_rng_below(&v->rng, 100);
    enum bf_op op = dice < 45 ? BF_WRITE : dice < 88 ? BF_READ
                    : dice < 93 ? BF_FLUSH : BF_DISCARD;
    if (op == BF_FLUSH && !v->do_flush)
        op = BF_READ;
    if (op == BF_DISCARD && !v->do_discard)
        op = BF_WRITE;
    /* On a read-only disk, writes are probes: one at a time, rarely. */
    if (v->ro && (op == BF_WRITE || op == BF_DISCARD) &&
        pat_rng_below(&v->rng, 8) != 0)
        op = BF_READ;

    memset(&x->io, 0, sizeof(x->io));
    x->io.op = op;
    x->io.done = io_done;
    x->io.opaque = x;
    if (op == BF_READ || op == BF_WRITE) {
        uint32_t page_off = 0;
        if (pat_rng_below(&v->rng, 4) == 0)
            page_off = (uint32_t)pat_rng_below(&v->rng, BF_SECTORS_PER_PAGE) /
                       v->align * v->align;
        uint32_t n = pick_len(v, v->max_sect - page_off);
        uint64_t lba;
        if (!pick_range(v, &n, &lba))
            return 0;
        x->io.sector = lba;
        x->io.nsect = n;
        x->io.page_off = page_off;
        x->io.buf = x->buf;
        if (op == BF_WRITE) {
            x->gen = pat_model_new_gen(&v->m);
            for (uint32_t i = 0; i < n; i++)
                pat_fill(x->buf + (size_t)i * PAT_SECTOR, v->m.seed, lba + i, x->gen);
        }
        if (page_off)
            v->offset_ios++;
        if ((page_off + n + BF_SECTORS_PER_PAGE - 1) / BF_SECTORS_PER_PAGE >
            BLKIF_MAX_SEGMENTS_PER_REQUEST)
            v->indirect_ios++;
    } else if (op == BF_DISCARD) {
        uint32_t n = (1 + (uint32_t)pat_rng_below(&v->rng, 2048)) / v->align * v->align;
        if (!n)
            n = v->align;
        uint64_t lba;
        if (!pick_range(v, &n, &lba))
            return 0;
        x->io.sector = lba;
        x->io.nsect = n;
    }
    if (bf_submit(v->bf, &x->io) < 0) {
        if (errno == EAGAIN)
            return 0;
        if (errno == EINVAL) {
            fprintf(stderr, "xenfront verify: internal error: request refused "
                    "(op %d sector %llu n %u off %u)\n", op,
                    (unsigned long long)x->io.sector, x->io.nsect, x->io.page_off);
        }
        return -1;
    }
    if (op != BF_FLUSH)
        set_busy(v, x->io.sector, x->io.nsect, 1);
    v->free = x->next;
    v->idle--;
    return 1;
}

/* Reads [*next, region) back in the largest requests, qd at a time. */
static int issue_sequential(struct vctx *v, uint64_t *next)
{
    if (*next >= v->region)
        return 0;
    struct vio *x = v->free;
    uint64_t n = v->region - *next;
    if (n > v->max_sect)
        n = v->max_sect;
    memset(&x->io, 0, sizeof(x->io));
    x->io.op = BF_READ;
    x->io.sector = *next;
    x->io.nsect = (uint32_t)n;
    x->io.buf = x->buf;
    x->io.done = io_done;
    x->io.opaque = x;
    if (bf_submit(v->bf, &x->io) < 0)
        return errno == EAGAIN ? 0 : -1;
    set_busy(v, x->io.sector, x->io.nsect, 1);
    v->free = x->next;
    v->idle--;
    *next += n;
    return 1;
}

static void verify_usage(FILE *f)
{
    fputs("usage: xenfront blk verify --vdev VDEV [options] [device options]\n"
          "  --seed N            pattern seed (default: from domid and vdev)\n"
          "  --ops N             random operations (default 3000)\n"
          "  --seconds S         run random operations for S seconds instead\n"
          "  --stop-file FILE    end the random operations once FILE exists\n"
          "                      (looked for every 100 ms; --ops or --seconds\n"
          "                      still bound them): a test stops the run when\n"
          "                      its events are over, however long they took\n"
          "  --qd N              requests in flight (default 16)\n"
          "  --region SIZE       test the first SIZE bytes (default: whole disk,\n"
          "                      at most 1 GiB)\n"
          "  --initial zero|unknown  what the disk holds before (default unknown)\n"
          "  --model-in FILE     start from a model saved by an earlier run\n"
          "  --model-out FILE    save the model at the end (for check-file)\n"
          "  --discard-zeroes    discarded ranges must read back as zeroes\n"
          "                      (default: their contents are unspecified)\n"
          "  --no-flush, --no-discard   leave those operations out\n"
          "  --expect-readonly   fail unless the disk is read-only; writes and\n"
          "                      discards must be refused\n"
          "  --quiet             only the VERIFY result line\n"
          "Prints `VERIFY vdev=... result=ok|FAIL writes=... mismatches=...`.\n", f);
    xf_dev_usage(f);
}

int xf_blk_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        XF_DEV_LONGOPTS,
        { "seed", required_argument, NULL, 's' },
        { "ops", required_argument, NULL, 'n' },
        { "seconds", required_argument, NULL, 't' },
        { "stop-file", required_argument, NULL, 'S' },
        { "qd", required_argument, NULL, 'q' },
        { "region", required_argument, NULL, 'r' },
        { "initial", required_argument, NULL, 'i' },
        { "model-in", required_argument, NULL, 'I' },
        { "model-out", required_argument, NULL, 'O' },
        { "discard-zeroes", no_argument, NULL, 'z' },
        { "no-flush", no_argument, NULL, 'F' },
        { "no-discard", no_argument, NULL, 'D' },
        { "expect-readonly", no_argument, NULL, 'R' },
        { "quiet", no_argument, NULL, 'Q' },
        { NULL, 0, NULL, 0 },
    };
    struct xf_blk_cmd cmd = { .name = "verify", .usage = verify_usage };
    bf_opts_default(&cmd.dev);
    int c, status;
    uint64_t seed = 0, ops = 3000, seconds = 0, qd = 16, region = 0;
    bool have_seed = false;
    uint32_t initial = PAT_GEN_UNKNOWN;
    const char *model_in = NULL, *model_out = NULL;
    struct xf_stop_file stop = { 0 };
    struct vctx v;
    memset(&v, 0, sizeof(v));
    v.do_flush = v.do_discard = true;
    while ((c = xf_blk_getopt(&cmd, argc, argv, opts, &status)) != -1) {
        switch (c) {
        case XF_OPTS_EXIT:
            return status;
        case 's':
            if (xf_parse_uint(optarg, UINT64_MAX, &seed) < 0)
                goto bad;
            have_seed = true;
            break;
        case 'n':
            if (xf_parse_uint(optarg, 1ull << 40, &ops) < 0)
                goto bad;
            break;
        case 't':
            if (xf_parse_uint(optarg, 86400, &seconds) < 0 || !seconds)
                goto bad;
            break;
        case 'q':
            if (xf_parse_uint(optarg, 1024, &qd) < 0 || !qd)
                goto bad;
            break;
        case 'r':
            if (xf_parse_size(optarg, &region) < 0 || region < PAT_SECTOR)
                goto bad;
            break;
        case 'i':
            if (strcmp(optarg, "zero") == 0)
                initial = PAT_GEN_ZERO;
            else if (strcmp(optarg, "unknown") == 0)
                initial = PAT_GEN_UNKNOWN;
            else
                goto bad;
            break;
        case 'S': stop.path = optarg; break;
        case 'I': model_in = optarg; break;
        case 'O': model_out = optarg; break;
        case 'z': v.discard_zeroes = true; break;
        case 'F': v.do_flush = false; break;
        case 'D': v.do_discard = false; break;
        case 'R': v.expect_ro = true; break;
        case 'Q': v.quiet = true; break;
        }
    }

    struct pat_model in;
    bool have_in = false;
    if (model_in) {
        if (pat_model_load(&in, model_in) < 0) {
            fprintf(stderr, "xenfront verify: --model-in %s: %s\n", model_in,
                    errno == EINVAL ? "not a model file" : strerror(errno));
            return 1;
        }
        have_in = true;
        if (have_seed && seed != in.seed) {
            fprintf(stderr, "xenfront verify: --seed differs from the model's "
                    "seed %llu\n", (unsigned long long)in.seed);
            pat_model_free(&in);
            return 2;
        }
        seed = in.seed;
        have_seed = true;
    }

    v.bf = xf_open(&cmd.dev, "verify");
    if (!v.bf) {
        if (have_in)
            pat_model_free(&in);
        return 1;
    }
    int rc = 1;
    uint64_t disk = bf_sectors(v.bf);
    v.region = region ? region / PAT_SECTOR : disk;
    if (!region && v.region > (1ull << 21))
        v.region = 1ull << 21;
    v.align = bf_sector_size(v.bf) / PAT_SECTOR;
    v.region = v.region / v.align * v.align;
    v.max_sect = bf_max_sectors(v.bf);
    v.ro = bf_readonly(v.bf);
    if (!bf_has_flush(v.bf))
        v.do_flush = false;
    if (!bf_has_discard(v.bf))
        v.do_discard = false;
    if (!have_seed)
        seed = (uint64_t)cmd.dev.devid << 16 ^ (uint64_t)atoi(getenv("XENSIM_DOMID") ?
                                                         getenv("XENSIM_DOMID") : "0");
    if (v.region == 0 || v.region > disk) {
        fprintf(stderr, "xenfront verify: region of %llu sectors does not fit the "
                "disk (%llu sectors)\n", (unsigned long long)v.region,
                (unsigned long long)disk);
        goto out;
    }
    if (v.expect_ro && !v.ro) {
        fprintf(stderr, "xenfront verify: vbd/%u is not read-only (info %#x)\n",
                cmd.dev.devid, bf_info(v.bf));
        v.errors++;
        goto out;
    }
    if (have_in) {
        if (in.sectors < v.region) {
            fprintf(stderr, "xenfront verify: the model covers %llu sectors, the "
                    "region %llu\n", (unsigned long long)in.sectors,
                    (unsigned long long)v.region);
            goto out;
        }
        v.m = in;
        have_in = false;
    } else if (pat_model_init(&v.m, seed, v.region, initial) < 0) {
        fprintf(stderr, "xenfront verify: out of memory for the model\n");
        goto out;
    }
    pat_rng_seed(&v.rng, seed ^ 0x5eedf00dull);
    v.busy = calloc(v.m.sectors, 1);
    struct vio *pool = calloc(qd, sizeof(*pool));
    if (!v.busy || !pool) {
        fprintf(stderr, "xenfront verify: out of memory\n");
        free(pool);
        goto out;
    }
    for (uint64_t i = 0; i < qd; i++) {
        pool[i].v = &v;
        pool[i].buf = aligned_alloc(4096, (size_t)v.max_sect * PAT_SECTOR);
        if (!pool[i].buf) {
            fprintf(stderr, "xenfront verify: out of memory\n");
            goto free_pool;
        }
        pool[i].next = v.free;
        v.free = &pool[i];
        v.idle++;
    }
    if (!v.quiet)
        fprintf(stderr, "xenfront verify: vbd/%u: %llu sectors of %llu, seed %llu, "
                "qd %llu, %u ring(s) x %u slots, up to %u sectors a request, "
                "%s grants%s%s%s\n", cmd.dev.devid, (unsigned long long)v.region,
                (unsigned long long)disk, (unsigned long long)seed,
                (unsigned long long)qd, bf_nr_rings(v.bf), bf_ring_size(v.bf),
                v.max_sect, bf_persistent(v.bf) ? "persistent" : "per-request",
                v.ro ? ", read-only" : "", v.do_flush ? ", flush" : "",
                v.do_discard ? (v.discard_zeroes ? ", discard (zeroes)"
                                                 : ", discard (unspecified)") : "");

    /* Phase 1: random operations. */
    uint64_t issued = 0, end = seconds ? fe_now_ns() + seconds * 1000000000ull : 0;
    bool failed = false;
    for (;;) {
        uint64_t now = fe_now_ns();
        bool more = !xf_stop_file_seen(&stop, now) && (seconds ? now < end : issued < ops);
        while (more && v.free) {
            int r = issue_random(&v);
            if (r < 0) {
                failed = true;
                break;
            }
            if (r == 0)
                break;
            issued++;
            more = seconds ? true : issued < ops;
        }
        if (failed || (!more && v.idle == qd))
            break;
        if (bf_poll(v.bf, 1000) < 0) {
            failed = true;
            break;
        }
    }
    /* Phase 2: read everything back. */
    uint64_t next = 0;
    while (!failed && (next < v.region || v.idle < qd)) {
        while (v.free && next < v.region) {
            int r = issue_sequential(&v, &next);
            if (r < 0)
                failed = true;
            if (r <= 0)
                break;
        }
        if (!failed && bf_poll(v.bf, 1000) < 0)
            failed = true;
    }
    if (failed) {
        fprintf(stderr, "xenfront verify: vbd/%u: device failed: %s\n", cmd.dev.devid,
                bf_error(v.bf));
        v.errors++;
    }
    if (model_out && !failed && pat_model_save(&v.m, model_out) < 0) {
        fprintf(stderr, "xenfront verify: --model-out %s: %s\n", model_out,
                strerror(errno));
        v.errors++;
    }
    rc = 0;
free_pool:
    for (uint64_t i = 0; i < qd; i++)
        free(pool[i].buf);
    free(pool);
out:;
    const struct bf_stats *st = bf_stats(v.bf);
    uint64_t direct = st->direct, indirect = st->indirect;
    uint64_t shared = st->grants_shared;
    if (bf_close(v.bf) < 0)
        v.errors++;
    bool ok = rc == 0 && v.errors == 0 && v.mismatches == 0;
    printf("VERIFY vdev=%u result=%s writes=%llu written_sectors=%llu reads=%llu "
           "read_sectors=%llu checked_sectors=%llu flushes=%llu discards=%llu "
           "discarded_sectors=%llu direct=%llu indirect=%llu offset_ios=%llu "
           "ro_rejected=%llu grants=%llu mismatches=%llu errors=%llu\n",
           cmd.dev.devid, ok ? "ok" : "FAIL", (unsigned long long)v.writes,
           (unsigned long long)v.wsect, (unsigned long long)v.reads,
           (unsigned long long)v.rsect, (unsigned long long)v.checked,
           (unsigned long long)v.flushes, (unsigned long long)v.discards,
           (unsigned long long)v.dsect, (unsigned long long)direct,
           (unsigned long long)indirect, (unsigned long long)v.offset_ios,
           (unsigned long long)v.ro_rejected, (unsigned long long)shared,
           (unsigned long long)v.mismatches, (unsigned long long)v.errors);
    free(v.busy);
    pat_model_free(&v.m);
    if (have_in)
        pat_model_free(&in);
    return ok ? 0 : 1;
bad:
    fprintf(stderr, "xenfront verify: bad value '%s' for %s\n", optarg,
            argv[optind - 1]);
    return 2;
}

/* ---- check-file ---------------------------------------------------------- */

int xf_blk_check_file(int argc, char **argv)
{
    static const struct option opts[] = {
        { "model", required_argument, NULL, 'm' },
        { "file", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *model = NULL, *file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'm')
            model = optarg;
        else if (c == 'f')
            file = optarg;
        else if (c == 'h') {
            printf("usage: xenfront blk check-file --model MODEL --file IMAGE\n");
            return 0;
        } else
            goto usage;
    }
    if (!model || !file || optind != argc)
        goto usage;
    struct pat_model m;
    if (pat_model_load(&m, model) < 0) {
        fprintf(stderr, "xenfront check-file: %s: %s\n", model,
                errno == EINVAL ? "not a model file" : strerror(errno));
        return 1;
    }
    int fd = open(file, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "xenfront check-file: %s: %s\n", file, strerror(errno));
        pat_model_free(&m);
        return 1;
    }
    enum { CHUNK = 2048 };
    uint8_t *buf = malloc((size_t)CHUNK * PAT_SECTOR);
    uint64_t bad = 0, checked = 0;
    int rc = 0;
    for (uint64_t s = 0; buf && s < m.sectors; s += CHUNK) {
        uint64_t n = m.sectors - s < CHUNK ? m.sectors - s : CHUNK;
        ssize_t got = pread(fd, buf, n * PAT_SECTOR, (off_t)(s * PAT_SECTOR));
        if (got < 0 || (uint64_t)got != n * PAT_SECTOR) {
            fprintf(stderr, "xenfront check-file: %s: short read at sector %llu "
                    "(the image is smaller than the model)\n", file,
                    (unsigned long long)s);
            rc = 1;
            break;
        }
        char line[300];
        uint64_t b = pat_check_range(&m, buf, s, n, line, sizeof(line));
        if (b && bad < MAX_REPORTS)
            fprintf(stderr, "xenfront check-file: MISMATCH %s\n", line);
        bad += b;
        for (uint64_t i = 0; i < n; i++)
            checked += m.gen[s + i] != PAT_GEN_UNKNOWN;
    }
    if (!buf)
        rc = 1;
    printf("CHECKFILE file=%s sectors=%llu checked_sectors=%llu mismatches=%llu "
           "result=%s\n", file, (unsigned long long)m.sectors,
           (unsigned long long)checked, (unsigned long long)bad,
           rc == 0 && bad == 0 ? "ok" : "FAIL");
    free(buf);
    close(fd);
    pat_model_free(&m);
    return rc == 0 && bad == 0 ? 0 : 1;
usage:
    fprintf(stderr, "usage: xenfront blk check-file --model MODEL --file IMAGE\n"
            "  checks every sector of IMAGE that MODEL (from `verify --model-out`)\n"
            "  knows, without a guest or backend\n");
    return 2;
}
