/* xenfront: userspace reference frontends for netbus, run as guests of a
 * xensim host (`xensim run --domid N -- xenfront ...`) or on Xen.
 *
 *   xenfront blk info   --vdev V          handshake, print the disk, close
 *   xenfront blk write  --vdev V ...      write a string or file at a sector
 *   xenfront blk read   --vdev V ...      read sectors to stdout
 *   xenfront blk verify --vdev V ...      patterns, read-back, every byte
 *   xenfront blk load   --vdev V ...      load generator for the benchmark
 *   xenfront usb list   [--devid N]       ports, then each device's descriptors
 *   xenfront usb verify --port P ...      bulk loopback stream, every byte
 *   xenfront usb hid    --port P ...      interrupt reports in sequence
 */
#include "xenfront.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xen/io/blkif.h>

/* ---- options ------------------------------------------------------------ */

int xf_dev_option(struct bf_opts *o, int opt, const char *arg, const char *cmd,
                  int *have_vdev)
{
    uint64_t v;
    long devid;
    switch (opt) {
    case 1000:
        devid = xf_vdev_to_devid(arg);
        if (devid < 0) {
            fprintf(stderr, "xenfront blk %s: --vdev %s: expected xvdX, dDpP or a "
                    "device number\n", cmd, arg);
            return -1;
        }
        o->devid = (unsigned)devid;
        *have_vdev = 1;
        return 1;
    case 1001:
        if (xf_parse_uint(arg, BF_MAX_QUEUES, &v) < 0 || v == 0) {
            fprintf(stderr, "xenfront blk %s: --queues %s: want 1..%u\n", cmd, arg,
                    BF_MAX_QUEUES);
            return -1;
        }
        o->max_queues = (unsigned)v;
        return 1;
    case 1002:
        if (xf_parse_uint(arg, BF_MAX_RING_ORDER, &v) < 0) {
            fprintf(stderr, "xenfront blk %s: --ring-order %s: want 0..%u\n", cmd,
                    arg, BF_MAX_RING_ORDER);
            return -1;
        }
        o->max_ring_order = (unsigned)v;
        return 1;
    case 1003:
        if (xf_parse_uint(arg, BF_MAX_INDIRECT, &v) < 0) {
            fprintf(stderr, "xenfront blk %s: --max-indirect %s: want 0..%u "
                    "segments\n", cmd, arg, BF_MAX_INDIRECT);
            return -1;
        }
        o->max_indirect = (unsigned)v;
        return 1;
    case 1004:
        o->persistent = false;
        return 1;
    case 1005:
        if (xf_parse_uint(arg, 3600, &v) < 0 || v == 0) {
            fprintf(stderr, "xenfront blk %s: --timeout %s: want 1..3600 seconds\n",
                    cmd, arg);
            return -1;
        }
        o->timeout_ms = (int)v * 1000;
        return 1;
    case 1006:
        o->reuse_grants = true;
        return 1;
    case 1007:
        o->reuse_grants = false;
        return 1;
    case 1008:
        if (strcmp(arg, "reissue") == 0)
            o->resume = BF_RESUME_REISSUE;
        else if (strcmp(arg, "keep") == 0)
            o->resume = BF_RESUME_KEEP;
        else if (strcmp(arg, "off") == 0)
            o->resume = BF_RESUME_OFF;
        else {
            fprintf(stderr, "xenfront blk %s: --resume %s: expected reissue, keep "
                    "or off\n", cmd, arg);
            return -1;
        }
        return 1;
    case 'v':
        o->verbose = true;
        return 1;
    case 'h':
        return 2;
    }
    return 0;
}

int xf_blk_getopt(struct xf_blk_cmd *cmd, int argc, char **argv,
                  const struct option *opts, int *exit_status)
{
    int c;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        int r = xf_dev_option(&cmd->dev, c, optarg, cmd->name, &cmd->have_vdev);
        if (r == 1)
            continue;
        if (r == 2) {
            cmd->usage(stdout);
            *exit_status = 0;
            return XF_OPTS_EXIT;
        }
        if (r == 0 && c != '?')
            return c;
        if (r == 0)
            cmd->usage(stderr);
        *exit_status = 2;
        return XF_OPTS_EXIT;
    }
    if (cmd->have_vdev && optind == argc)
        return -1;
    cmd->usage(stderr);
    *exit_status = 2;
    return XF_OPTS_EXIT;
}

void xf_dev_usage(FILE *f)
{
    fputs("device options:\n"
          "  --vdev VDEV          xvda, xvdb, ..., d0p0 or a device number "
          "(51712)\n"
          "  --queues N           use up to N rings (multi-queue; default 1)\n"
          "  --ring-order N       use up to 2^N ring pages (default 4)\n"
          "  --max-indirect N     segments per indirect request (default 256)\n"
          "  --no-persistent      grant pages per request even if the backend\n"
          "                       offers feature-persistent\n"
          "  --timeout SEC        handshake steps and each request (default 20)\n"
          "  --reuse-grants       keep data pages granted between requests (the\n"
          "                       backend still maps them per request); default\n"
          "                       for load\n"
          "  --revoke-grants      grant per request, revoke on the response and\n"
          "                       fail if the backend still maps the page, as\n"
          "                       Linux does; default except for load\n"
          "  --resume MODE        when the domain is suspended and resumed (xensim\n"
          "                       migrate): reissue (default; Linux blkfront:\n"
          "                       fresh ring, re-issue what had no response),\n"
          "                       keep (requests queued meanwhile stay on the\n"
          "                       ring for the new backend), off (do not follow\n"
          "                       the domain)\n"
          "  -v, --verbose        log the handshake to stderr\n", f);
}

struct blkfront *xf_open(const struct bf_opts *o, const char *cmd)
{
    char err[600];
    struct blkfront *bf = bf_open(o, err, sizeof(err));
    if (!bf)
        fprintf(stderr, "xenfront blk %s: vbd/%u: %s\n", cmd, o->devid, err);
    return bf;
}

/* Runs one I/O to completion. Returns its status or -100 on device failure. */
struct sync_io {
    int status;
    int done;
};

static void sync_done(struct bf_io *io, int status)
{
    struct sync_io *s = io->opaque;
    s->status = status;
    s->done = 1;
}

static int run_sync(struct blkfront *bf, struct bf_io *io)
{
    struct sync_io s = { 0, 0 };
    io->done = sync_done;
    io->opaque = &s;
    if (bf_submit(bf, io) < 0)
        return -100;
    while (!s.done)
        if (bf_poll(bf, 1000) < 0)
            return -100;
    return s.status;
}

/* ---- info / read / write ------------------------------------------------ */

static int blk_info(int argc, char **argv)
{
    static const struct option opts[] = { XF_DEV_LONGOPTS, { NULL, 0, NULL, 0 } };
    struct bf_opts o;
    bf_opts_default(&o);
    int have = 0, c;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        int r = xf_dev_option(&o, c, optarg, "info", &have);
        if (r < 0)
            return 2;
        if (r == 2) {
            printf("usage: xenfront blk info --vdev VDEV [device options]\n");
            xf_dev_usage(stdout);
            return 0;
        }
        if (r == 0)
            goto usage;
    }
    if (!have || optind != argc)
        goto usage;
    struct blkfront *bf = xf_open(&o, "info");
    if (!bf)
        return 1;
    printf("vdev=%u sectors=%llu sector-size=%u bytes=%llu info=%#x readonly=%d "
           "flush=%d discard=%d max-segments=%u rings=%u ring-pages=%u "
           "ring-slots=%u persistent=%d pooled-grants=%d\n",
           o.devid, (unsigned long long)bf_sectors(bf), bf_sector_size(bf),
           (unsigned long long)bf_sectors(bf) * BF_SECTOR, bf_info(bf),
           bf_readonly(bf), bf_has_flush(bf), bf_has_discard(bf),
           bf_max_segments(bf), bf_nr_rings(bf), 1u << bf_ring_order(bf),
           bf_ring_size(bf), bf_persistent(bf), bf_pooled_grants(bf));
    return bf_close(bf) < 0 ? 1 : 0;
usage:
    fprintf(stderr, "usage: xenfront blk info --vdev VDEV [device options]\n");
    xf_dev_usage(stderr);
    return 2;
}

static int blk_rw(int argc, char **argv, bool write)
{
    static const struct option opts[] = {
        XF_DEV_LONGOPTS,
        { "sector", required_argument, NULL, 's' },
        { "count", required_argument, NULL, 'n' },
        { "text", required_argument, NULL, 't' },
        { "file", required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmd = write ? "write" : "read";
    struct bf_opts o;
    bf_opts_default(&o);
    int have = 0, c;
    uint64_t sector = 0, count = 1;
    const char *text = NULL, *file = NULL;
    while ((c = getopt_long(argc, argv, "vs:n:t:f:", opts, NULL)) != -1) {
        int r = xf_dev_option(&o, c, optarg, cmd, &have);
        if (r < 0)
            return 2;
        if (r == 1)
            continue;
        if (r == 2)
            goto usage;
        if (c == 's' && xf_parse_uint(optarg, UINT64_MAX / 2, &sector) == 0)
            continue;
        if (c == 'n' && !write && xf_parse_uint(optarg, 1u << 20, &count) == 0 && count)
            continue;
        if (c == 't' && write) {
            text = optarg;
            continue;
        }
        if (c == 'f' && write) {
            file = optarg;
            continue;
        }
        goto usage;
    }
    if (!have || optind != argc || (write && !!text == !!file))
        goto usage;

    /* The data: a string (padded with zeroes to a sector) or a file. */
    uint8_t *data = NULL;
    size_t len = 0;
    if (write) {
        if (text) {
            len = strlen(text);
            data = malloc(len + 1);
            if (data)
                memcpy(data, text, len);
        } else {
            FILE *f = fopen(file, "rb");
            if (!f) {
                fprintf(stderr, "xenfront blk write: %s: %s\n", file, strerror(errno));
                return 1;
            }
            size_t cap = 1 << 16;
            data = malloc(cap);
            size_t n;
            while (data && (n = fread(data + len, 1, cap - len, f)) > 0) {
                len += n;
                if (len == cap) {
                    uint8_t *d = cap < (64u << 20) ? realloc(data, cap * 2) : NULL;
                    if (!d) {
                        fprintf(stderr, "xenfront blk write: %s: too large "
                                "(64 MiB at most)\n", file);
                        free(data);
                        fclose(f);
                        return 1;
                    }
                    data = d;
                    cap *= 2;
                }
            }
            fclose(f);
        }
        if (!data || len == 0) {
            fprintf(stderr, "xenfront blk write: nothing to write\n");
            free(data);
            return 1;
        }
    }
    struct blkfront *bf = xf_open(&o, cmd);
    if (!bf) {
        free(data);
        return 1;
    }
    uint32_t align = bf_sector_size(bf) / BF_SECTOR;
    uint64_t total = write ? (len + BF_SECTOR - 1) / BF_SECTOR : count;
    total = (total + align - 1) / align * align;
    uint8_t *buf = calloc(total, BF_SECTOR);
    int rc = 0;
    if (!buf) {
        fprintf(stderr, "xenfront blk %s: out of memory\n", cmd);
        rc = 1;
        goto out;
    }
    if (write)
        memcpy(buf, data, len);
    if (sector % align) {
        fprintf(stderr, "xenfront blk %s: sector %llu is not aligned to the "
                "disk's %u-byte sectors\n", cmd, (unsigned long long)sector,
                bf_sector_size(bf));
        rc = 1;
        goto out;
    }
    for (uint64_t done = 0; done < total;) {
        uint32_t n = bf_max_sectors(bf);
        if (n > total - done)
            n = (uint32_t)(total - done);
        struct bf_io io = { .op = write ? BF_WRITE : BF_READ, .sector = sector + done,
                            .nsect = n, .buf = buf + done * BF_SECTOR };
        int st = run_sync(bf, &io);
        if (st != BLKIF_RSP_OKAY) {
            if (st != -100)
                fprintf(stderr, "xenfront blk %s: sectors %llu..%llu: the backend "
                        "answered %s\n", cmd, (unsigned long long)io.sector,
                        (unsigned long long)(io.sector + n - 1),
                        st == BLKIF_RSP_EOPNOTSUPP ? "EOPNOTSUPP" : "ERROR");
            rc = 1;
            goto out;
        }
        done += n;
    }
    if (write && bf_has_flush(bf)) {
        struct bf_io io = { .op = BF_FLUSH };
        if (run_sync(bf, &io) != BLKIF_RSP_OKAY) {
            fprintf(stderr, "xenfront blk write: flush failed\n");
            rc = 1;
            goto out;
        }
    }
    if (write)
        fprintf(stderr, "xenfront: wrote %zu bytes at sector %llu of vbd/%u\n", len,
                (unsigned long long)sector, o.devid);
    else if (fwrite(buf, BF_SECTOR, total, stdout) != total)
        rc = 1;
out:
    free(buf);
    free(data);
    if (bf_close(bf) < 0)
        rc = 1;
    return rc;
usage:
    if (write)
        fprintf(stderr, "usage: xenfront blk write --vdev VDEV [--sector S] "
                "(--text STRING | --file FILE) [device options]\n"
                "  writes the data at sector S (default 0), padded with zeroes "
                "to a whole sector, then flushes\n");
    else
        fprintf(stderr, "usage: xenfront blk read --vdev VDEV [--sector S] "
                "[--count N] [device options]\n"
                "  writes N sectors (default 1) from sector S to stdout\n");
    xf_dev_usage(stderr);
    return 2;
}

static void usage(FILE *f)
{
    fputs("usage: xenfront blk COMMAND --vdev VDEV [OPTIONS]\n"
          "\n"
          "A userspace blkif frontend (what Linux's xen-blkfront does), run as\n"
          "a guest: `xensim run --domid N -- xenfront blk ...`.\n"
          "\n"
          "Commands:\n"
          "  info     connect, print the disk's properties, disconnect\n"
          "  read     read sectors to stdout\n"
          "  write    write a string or a file at a sector\n"
          "  verify   write seeded patterns at random offsets and sizes, flush,\n"
          "           discard, read back and check every byte\n"
          "  load     generate load (random/sequential read/write) and print\n"
          "           IOPS and MB/s\n"
          "  check-file  (no guest needed) check a disk image against the model\n"
          "           a verify run saved with --model-out\n"
          "\n"
          "`xenfront blk COMMAND --help` lists a command's options.\n"
          "\n"
          "usage: xenfront usb COMMAND [--devid N] [OPTIONS]\n"
          "\n"
          "A userspace usbif (PV USB) frontend, what Linux's xen-hcd does:\n"
          "  list     ports and speeds, then each connected device's descriptors\n"
          "  verify   bulk OUT/IN loopback stream through the nb-bulk device,\n"
          "           every byte checked, then the device's transfer counters\n"
          "  hid      interrupt reports of the nb-hid device, in sequence\n"
          "`xenfront usb COMMAND --help` lists a command's options.\n"
          "Exit status: 0 ok, 1 failed (message on stderr), 2 bad usage.\n", f);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "usb") == 0) {
        optind = 1;
        return xf_usb_main(argc - 2, argv + 2);
    }
    if (argc < 3 || strcmp(argv[1], "blk") != 0) {
        if (argc >= 2 && strcmp(argv[1], "blk") != 0)
            fprintf(stderr, "xenfront: unknown device class '%s' (blk or usb)\n\n",
                    argv[1]);
        usage(stderr);
        return 2;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        { "verify", xf_blk_verify },
        { "load", xf_blk_load },
        { "info", blk_info },
        { "check-file", xf_blk_check_file },
    };
    const char *cmd = argv[2];
    optind = 1;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            return cmds[i].fn(argc - 2, argv + 2);
    if (strcmp(cmd, "read") == 0 || strcmp(cmd, "write") == 0)
        return blk_rw(argc - 2, argv + 2, cmd[0] == 'w');
    fprintf(stderr, "xenfront blk: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
