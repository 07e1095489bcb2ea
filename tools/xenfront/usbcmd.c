/* `xenfront usb list|verify|hid|iso|rtt`: what a host controller driver
 * and a class driver do with the netbus test devices (the spec every side
 * shares: nb-bulk, a bulk loopback FIFO with transfer counters; nb-hid, an
 * interrupt endpoint delivering numbered reports; nb-iso, isochronous
 * streams of numbered IN packets and counted, checksummed OUT packets).
 *
 * Enumeration, as Linux's hub driver does it: wait for the port's connect
 * on the conn ring, GET_DESCRIPTOR(device, 64) at address 0, SET_ADDRESS,
 * GET_DESCRIPTOR(device) at the new address, the configuration descriptor
 * (9 bytes, then wTotalLength), the string descriptors, SET_CONFIGURATION.
 *
 * verify streams bulk OUT and IN transfers of assorted sizes through the
 * nb-bulk FIFO with Q in flight. The OUT data is a seeded byte stream (each
 * byte a function of the seed and its offset in the stream), so every IN
 * byte is checked against the offset it must come from: the device
 * completes transfers of one endpoint in order, and so do the responses.
 * Flow control keeps both directions live without unlinks: OUT bytes not
 * yet read back stay within the FIFO (--window, at most 1 MiB), and the IN
 * lengths in flight never exceed the bytes written and not yet read (but
 * an IN alone may ask for more, to be answered short), so every OUT fits
 * and every IN gets data. At the end GET_COUNTERS must show
 * exactly the transfers and bytes that completed: none lost, none run
 * twice. */
#include "usbfront.h"
#include "xenbus_front.h"
#include "xenfront.h"

#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NB_VENDOR 0x1209
#define NB_BULK_PRODUCT 0x4e42
#define NB_HID_PRODUCT 0x4e48
#define NB_ISO_PRODUCT 0x4e49
#define NB_GET_COUNTERS 0x01
#define NB_RESET 0x02
#define NB_FIFO_MAX (1u << 20)
#define HID_REPORT_LEN 8
#define MAX_REPORTS 10
#define ISO_MAX_PACKETS 128

/* ---- options --------------------------------------------------------------- */

struct usb_args {
    struct uf_opts o;
    unsigned port;
    bool have_port;
    uint64_t seconds, count, seed, window;
    unsigned queue, packets, page_offset;
    bool have_seconds, have_count, scatter;
    struct xf_stop_file stop;
    int settle_ms;
};

#define USB_LONGOPTS                                                          \
    { "devid", required_argument, NULL, 2000 },                               \
    { "port", required_argument, NULL, 2001 },                                \
    { "timeout", required_argument, NULL, 2002 },                             \
    { "drain-ms", required_argument, NULL, 2003 },                            \
    { "no-follow", no_argument, NULL, 2004 },                                 \
    { "seconds", required_argument, NULL, 2005 },                             \
    { "count", required_argument, NULL, 2006 },                               \
    { "queue", required_argument, NULL, 2007 },                               \
    { "seed", required_argument, NULL, 2008 },                                \
    { "window", required_argument, NULL, 2009 },                              \
    { "settle-ms", required_argument, NULL, 2010 },                           \
    { "packets", required_argument, NULL, 2011 },                             \
    { "page-offset", required_argument, NULL, 2012 },                         \
    { "scatter", no_argument, NULL, 2013 },                                   \
    { "stop-file", required_argument, NULL, 2014 },                           \
    { "verbose", no_argument, NULL, 'v' },                                    \
    { "help", no_argument, NULL, 'h' }

static void usb_usage(FILE *f, const char *cmd)
{
    if (strcmp(cmd, "list") == 0)
        fputs("usage: xenfront usb list [--devid N] [--settle-ms MS] [options]\n"
              "  connects to controller vusb/N (default 0), waits MS (default 1000)\n"
              "  for the ports to be reported, prints each port's speed, then\n"
              "  enumerates every connected device and prints its descriptors\n", f);
    else if (strcmp(cmd, "verify") == 0)
        fputs("usage: xenfront usb verify --port P [--devid N] [--seconds S | "
              "--count C]\n"
              "                           [--queue Q] [--seed X] [--window BYTES] "
              "[options]\n"
              "  enumerates the nb-bulk device on port P, resets it, streams bulk\n"
              "  OUT/IN loopback transfers of assorted sizes (Q in flight, default\n"
              "  8) for S seconds (default 10) or C OUT transfers, checks every\n"
              "  byte, then checks the device's transfer counters\n"
              "  --stop-file FILE   no OUT is started once FILE exists (looked for\n"
              "                     every 100 ms; S or C still bound the run)\n", f);
    else if (strcmp(cmd, "rtt") == 0)
        fputs("usage: xenfront usb rtt --port P [--count C] [--devid N] [options]\n"
              "  enumerates the nb-bulk device on port P, then times C (default\n"
              "  1000) round trips of each kind, one URB at a time: control\n"
              "  GET_DESCRIPTOR(device), 512-byte bulk OUT, 512-byte bulk IN (of\n"
              "  what the OUT wrote, checked); prints the medians in microseconds\n",
              f);
    else if (strcmp(cmd, "iso") == 0)
        fputs("usage: xenfront usb iso --port P [--count C] [--packets K] [--queue Q]\n"
              "                        [--page-offset N [--scatter]] [--devid N] [options]\n"
              "  enumerates the nb-iso device on port P, selects alternate setting 1,\n"
              "  runs C (default 8) isochronous IN URBs of K packets (default 8, at\n"
              "  most 128; lengths 0..1024) with Q in flight (default 4) and checks\n"
              "  every packet's status, length, sequence number and data; then C\n"
              "  OUT URBs; then the device's packet, byte and checksum counters.\n"
              "  The data starts at byte N (default 0) of its first granted page;\n"
              "  with --scatter at byte N of every page, so that the segments are\n"
              "  not one run of bytes\n", f);
    else
        fputs("usage: xenfront usb hid --port P --count C [--devid N] [--queue Q] "
              "[options]\n"
              "  enumerates the nb-hid device on port P, reads C interrupt reports\n"
              "  (Q in flight, default 1) and checks consecutive sequence numbers\n", f);
    fputs("options:\n"
          "  --timeout SEC      handshake, port waits and each URB (default 20)\n"
          "  --drain-ms MS      at a suspend, wait this long for URBs in flight\n"
          "                     before unlinking them (default 5000); interrupt\n"
          "                     INs alone are unlinked at once\n"
          "  --no-follow        do not take part in suspend/migration\n"
          "  -v, --verbose      log the handshake and port events to stderr\n", f);
}

/* 1 took it, 0 not ours, -1 bad value, 2 help. */
static int usb_option(struct usb_args *a, int opt, const char *arg, const char *cmd)
{
    uint64_t v;
    switch (opt) {
    case 2000:
        if (xf_parse_uint(arg, 0x7fffffff, &v) < 0)
            goto bad;
        a->o.devid = (unsigned)v;
        return 1;
    case 2001:
        if (xf_parse_uint(arg, USBIF_MAX_PORTNR, &v) < 0 || v == 0)
            goto bad;
        a->port = (unsigned)v;
        a->have_port = true;
        return 1;
    case 2002:
        if (xf_parse_uint(arg, 3600, &v) < 0 || v == 0)
            goto bad;
        a->o.timeout_ms = (int)v * 1000;
        return 1;
    case 2003:
        if (xf_parse_uint(arg, 600000, &v) < 0)
            goto bad;
        a->o.drain_ms = (int)v;
        return 1;
    case 2004:
        a->o.follow_suspend = false;
        return 1;
    case 2005:
        if (xf_parse_uint(arg, 86400, &v) < 0 || v == 0)
            goto bad;
        a->seconds = v;
        a->have_seconds = true;
        return 1;
    case 2006:
        if (xf_parse_uint(arg, UINT32_MAX, &v) < 0 || v == 0)
            goto bad;
        a->count = v;
        a->have_count = true;
        return 1;
    case 2007:
        if (xf_parse_uint(arg, 15, &v) < 0 || v == 0)
            goto bad;
        a->queue = (unsigned)v;
        return 1;
    case 2008:
        if (xf_parse_uint(arg, UINT64_MAX, &v) < 0)
            goto bad;
        a->seed = v;
        return 1;
    case 2009:
        if (xf_parse_size(arg, &v) < 0 || v < UF_MAX_LEN || v > NB_FIFO_MAX)
            goto bad;
        a->window = v;
        return 1;
    case 2010:
        if (xf_parse_uint(arg, 600000, &v) < 0)
            goto bad;
        a->settle_ms = (int)v;
        return 1;
    case 2011:
        if (xf_parse_uint(arg, ISO_MAX_PACKETS, &v) < 0 || v == 0)
            goto bad;
        a->packets = (unsigned)v;
        return 1;
    case 2012:
        if (xf_parse_uint(arg, XENIF_PAGE_SIZE - 1, &v) < 0)
            goto bad;
        a->page_offset = (unsigned)v;
        return 1;
    case 2013:
        a->scatter = true;
        return 1;
    case 2014:
        a->stop.path = arg;
        return 1;
    case 'v':
        a->o.verbose = true;
        return 1;
    case 'h':
        return 2;
    }
    return 0;
bad:
    fprintf(stderr, "xenfront usb %s: bad value '%s' (see --help)\n", cmd, arg);
    return -1;
}

/* Parses argv; 0 ok, else the exit status. */
static int parse_args(struct usb_args *a, int argc, char **argv, const char *cmd)
{
    static const struct option opts[] = { USB_LONGOPTS, { NULL, 0, NULL, 0 } };
    memset(a, 0, sizeof(*a));
    uf_opts_default(&a->o);
    a->seconds = 10;
    a->window = NB_FIFO_MAX;
    a->settle_ms = 1000;
    a->seed = (uint64_t)time(NULL) ^ ((uint64_t)fe_now_ns() << 20);
    int c;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        int r = usb_option(a, c, optarg, cmd);
        if (r < 0)
            return 2;
        if (r == 2) {
            usb_usage(stdout, cmd);
            return -1;
        }
        if (r == 0) {
            usb_usage(stderr, cmd);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "xenfront usb %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return 2;
    }
    return 0;
}

static struct usbfront *open_ctrl(const struct usb_args *a, const char *cmd)
{
    char err[600];
    struct usbfront *uf = uf_open(&a->o, err, sizeof(err));
    if (!uf)
        fprintf(stderr, "xenfront usb %s: vusb/%u: %s\n", cmd, a->o.devid, err);
    return uf;
}

/* ---- control transfers and enumeration ------------------------------------ */

struct usbdev {
    unsigned port, addr, speed;
    struct uf_device_desc dd;
    struct uf_config_desc cd;
    char manufacturer[128], product[128], serial[128];
};

/* One control transfer; its status, *actual set. Prints what failed. */
static int control(struct usbfront *uf, unsigned port, unsigned addr,
                   uint8_t bm_request_type, uint8_t b_request, uint16_t w_value,
                   uint16_t w_index, void *buf, uint16_t len, uint32_t *actual,
                   const char *what)
{
    struct uf_urb u;
    memset(&u, 0, sizeof(u));
    bool in = bm_request_type & 0x80;
    u.pipe = uf_pipe(port, addr, 0, in, UF_CTRL);
    uf_setup(u.setup, bm_request_type, b_request, w_value, w_index, len);
    u.buf = buf;
    u.len = len;
    int st = uf_run(uf, &u);
    if (actual)
        *actual = u.actual;
    if (st != 0 && st != UF_STATUS_FAILED)
        fprintf(stderr, "xenfront usb: port %u address %u: %s: %s (status %d)\n", port,
                addr, what, uf_status_name(st), st);
    return st;
}

static int get_string(struct usbfront *uf, struct usbdev *d, uint8_t index,
                      uint16_t lang, char *out, size_t outlen)
{
    out[0] = 0;
    if (!index)
        return 0;
    uint8_t buf[255];
    uint32_t n;
    if (control(uf, d->port, d->addr, 0x80, 6, (uint16_t)(0x0300 | index), lang, buf,
                sizeof(buf), &n, "GET_DESCRIPTOR(string)") != 0)
        return -1;
    if (uf_parse_string_desc(buf, n, out, outlen) < 0) {
        fprintf(stderr, "xenfront usb: port %u: string descriptor %u is malformed\n",
                d->port, index);
        return -1;
    }
    return 0;
}

/* The hub driver's part: address 0, SET_ADDRESS, descriptors, then
 * SET_CONFIGURATION(1) if configure. 0 or -1 (message printed). */
static int enumerate(struct usbfront *uf, unsigned port, int timeout_ms,
                     bool configure, struct usbdev *d)
{
    memset(d, 0, sizeof(*d));
    d->port = port;
    if (uf_wait_port(uf, port, true, timeout_ms) < 0) {
        if (!*uf_error(uf))
            fprintf(stderr, "xenfront usb: port %u: no device connected within %d ms "
                    "(is a device attached with `xensim usbdev-attach`?)\n", port,
                    timeout_ms);
        return -1;
    }
    d->speed = uf_port_speed(uf, port);
    uint8_t buf[1024];
    uint32_t n;
    if (control(uf, port, 0, 0x80, 6, 0x0100, 0, buf, 64, &n,
                "GET_DESCRIPTOR(device) at address 0") != 0)
        return -1;
    if (n < 8 || buf[1] != 1) {
        fprintf(stderr, "xenfront usb: port %u: the device descriptor at address 0 "
                "is %u bytes of type %u\n", port, n, n > 1 ? buf[1] : 0);
        return -1;
    }
    d->addr = port; /* one device per port: its number is free */
    if (control(uf, port, 0, 0x00, 5, (uint16_t)d->addr, 0, NULL, 0, NULL,
                "SET_ADDRESS") != 0)
        return -1;
    if (control(uf, port, d->addr, 0x80, 6, 0x0100, 0, buf, 18, &n,
                "GET_DESCRIPTOR(device)") != 0)
        return -1;
    if (uf_parse_device_desc(buf, n, &d->dd) < 0) {
        fprintf(stderr, "xenfront usb: port %u: malformed device descriptor (%u "
                "bytes)\n", port, n);
        return -1;
    }
    if (control(uf, port, d->addr, 0x80, 6, 0x0200, 0, buf, 9, &n,
                "GET_DESCRIPTOR(configuration, 9 bytes)") != 0)
        return -1;
    uint16_t total = n >= 4 ? (uint16_t)(buf[2] | buf[3] << 8) : 0;
    if (total < 9 || total > sizeof(buf)) {
        fprintf(stderr, "xenfront usb: port %u: configuration wTotalLength %u\n", port,
                total);
        return -1;
    }
    if (control(uf, port, d->addr, 0x80, 6, 0x0200, 0, buf, total, &n,
                "GET_DESCRIPTOR(configuration)") != 0)
        return -1;
    char why[200];
    if (uf_parse_config_desc(buf, n, &d->cd, why, sizeof(why)) < 0) {
        fprintf(stderr, "xenfront usb: port %u: configuration descriptor: %s\n", port,
                why);
        return -1;
    }
    uint8_t langs[8];
    uint16_t lang = 0x0409;
    if (d->dd.i_manufacturer || d->dd.i_product || d->dd.i_serial) {
        if (control(uf, port, d->addr, 0x80, 6, 0x0300, 0, langs, sizeof(langs), &n,
                    "GET_DESCRIPTOR(string 0)") != 0)
            return -1;
        if (n >= 4 && langs[1] == 3)
            lang = (uint16_t)(langs[2] | langs[3] << 8);
    }
    if (get_string(uf, d, d->dd.i_manufacturer, lang, d->manufacturer,
                   sizeof(d->manufacturer)) < 0 ||
        get_string(uf, d, d->dd.i_product, lang, d->product, sizeof(d->product)) < 0 ||
        get_string(uf, d, d->dd.i_serial, lang, d->serial, sizeof(d->serial)) < 0)
        return -1;
    if (configure && control(uf, port, d->addr, 0x00, 9, d->cd.value, 0, NULL, 0, NULL,
                             "SET_CONFIGURATION") != 0)
        return -1;
    return 0;
}

static void print_device(const struct usbdev *d)
{
    printf("port=%u addr=%u speed=%s vid=%04x pid=%04x bcdusb=%04x class=%02x "
           "maxpacket0=%u configs=%u manufacturer=\"%s\" product=\"%s\" "
           "serial=\"%s\"\n", d->port, d->addr, uf_speed_name(d->speed),
           d->dd.id_vendor, d->dd.id_product, d->dd.bcd_usb, d->dd.dev_class,
           d->dd.max_packet0, d->dd.num_configurations, d->manufacturer, d->product,
           d->serial);
    static const char *types[] = { "control", "isoc", "bulk", "interrupt" };
    printf("port=%u config=%u interfaces=%u if0-class=%02x/%02x/%02x hid=%d "
           "endpoints=", d->port, d->cd.value, d->cd.num_interfaces, d->cd.if_class,
           d->cd.if_subclass, d->cd.if_protocol, d->cd.has_hid);
    for (unsigned i = 0; i < d->cd.nr_endpoints; i++) {
        const struct uf_endpoint *e = &d->cd.ep[i];
        printf("%s0x%02x:%s:%u", i ? "," : "", e->address, types[e->attributes & 3],
               e->max_packet);
        if ((e->attributes & 3) == 3)
            printf(":%ums", e->interval);
    }
    printf("\n");
}

/* The endpoint of d with this address and transfer type, or NULL. */
static const struct uf_endpoint *find_ep(const struct usbdev *d, uint8_t address,
                                         unsigned type)
{
    for (unsigned i = 0; i < d->cd.nr_endpoints; i++)
        if (d->cd.ep[i].address == address && (d->cd.ep[i].attributes & 3) == type)
            return &d->cd.ep[i];
    return NULL;
}

/* ---- list ------------------------------------------------------------------ */

static int usb_list(int argc, char **argv)
{
    struct usb_args a;
    int r = parse_args(&a, argc, argv, "list");
    if (r)
        return r < 0 ? 0 : r;
    struct usbfront *uf = open_ctrl(&a, "list");
    if (!uf)
        return 1;
    int rc = 0;
    uint64_t end = fe_now_ns() + (uint64_t)a.settle_ms * 1000000ull;
    while (fe_now_ns() < end)
        if (uf_poll(uf, 50) < 0) {
            rc = 1;
            goto out;
        }
    printf("controller=vusb/%u ports=%u usb-ver=%u\n", a.o.devid, uf_num_ports(uf),
           uf_usb_ver(uf));
    for (unsigned p = 1; p <= uf_num_ports(uf); p++)
        printf("port=%u speed=%s\n", p, uf_speed_name(uf_port_speed(uf, p)));
    for (unsigned p = 1; p <= uf_num_ports(uf); p++) {
        if (uf_port_speed(uf, p) == USBIF_SPEED_NONE)
            continue;
        struct usbdev d;
        if (enumerate(uf, p, a.o.timeout_ms, false, &d) < 0) {
            rc = 1;
            continue;
        }
        print_device(&d);
    }
out:
    if (uf_close(uf) < 0)
        rc = 1;
    return rc;
}

/* ---- verify ------------------------------------------------------------------ */

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Byte `off` of the stream seeded with seed. */
static uint8_t stream_byte(uint64_t seed, uint64_t off)
{
    return (uint8_t)(splitmix(seed ^ (off >> 3) * 0x2545f4914f6cdd1dull) >> ((off & 7) * 8));
}

static void stream_fill(uint8_t *buf, uint64_t seed, uint64_t off, uint32_t len)
{
    for (uint32_t i = 0; i < len;) {
        uint64_t o = off + i;
        uint64_t w = splitmix(seed ^ (o >> 3) * 0x2545f4914f6cdd1dull);
        for (unsigned b = (unsigned)(o & 7); b < 8 && i < len; b++, i++)
            buf[i] = (uint8_t)(w >> (b * 8));
    }
}

struct xfer;

struct vctx {
    struct usbfront *uf;
    struct usbdev dev;
    uint64_t seed, rng, window;
    /* stream positions */
    uint64_t out_sub;          /* bytes submitted OUT (stream offset of next) */
    uint64_t in_consumed;      /* bytes completed IN (offset next IN reads) */
    uint64_t in_pending_len;   /* IN lengths in flight */
    /* order checks: sequence numbers per direction */
    uint64_t out_next_seq, out_done_seq, in_next_seq, in_done_seq;
    /* results */
    uint64_t outs, out_bytes, ins, in_bytes, short_ins, offset_xfers, max_segs_xfers;
    uint64_t mismatches, errors;
    unsigned in_flight, reported;
    struct xfer *free;
};

struct xfer {
    struct uf_urb u;
    struct vctx *v;
    bool in;
    uint64_t seq;
    uint8_t *buf;
    struct xfer *next;
};

static void vreport(struct vctx *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void vreport(struct vctx *v, const char *fmt, ...)
{
    if (v->reported++ >= MAX_REPORTS) {
        if (v->reported == MAX_REPORTS + 1)
            fprintf(stderr, "xenfront usb verify: (further problems not shown)\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("xenfront usb verify: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t rnd(struct vctx *v)
{
    v->rng = splitmix(v->rng);
    return v->rng;
}

static void xfer_done(struct uf_urb *u)
{
    struct xfer *x = (struct xfer *)u;
    struct vctx *v = x->v;
    v->in_flight--;
    if (x->in) {
        v->in_pending_len -= x->u.len;
        if (x->seq != v->in_done_seq) {
            vreport(v, "bulk IN #%llu completed before #%llu (one endpoint's "
                    "transfers must complete in order)", (unsigned long long)x->seq,
                    (unsigned long long)v->in_done_seq);
            v->errors++;
        }
        v->in_done_seq = x->seq + 1;
        if (u->status != 0 || u->actual == 0) {
            vreport(v, "bulk IN #%llu of %u bytes: %s (status %d), %u bytes",
                    (unsigned long long)x->seq, u->len, uf_status_name(u->status),
                    u->status, u->actual);
            v->errors++;
            v->in_consumed += u->actual; /* keep the stream aligned if we can */
        } else {
            for (uint32_t i = 0; i < u->actual; i++) {
                uint8_t want = stream_byte(v->seed, v->in_consumed + i);
                if (x->buf[i] != want) {
                    vreport(v, "bulk IN #%llu: byte %u (stream offset %llu) is %#04x, "
                            "expected %#04x (%u of %u bytes returned)",
                            (unsigned long long)x->seq, i,
                            (unsigned long long)(v->in_consumed + i), x->buf[i], want,
                            u->actual, u->len);
                    v->mismatches++;
                    break;
                }
            }
            v->ins++;
            v->in_bytes += u->actual;
            v->short_ins += u->actual < u->len;
            v->in_consumed += u->actual;
        }
    } else {
        if (x->seq != v->out_done_seq) {
            vreport(v, "bulk OUT #%llu completed before #%llu",
                    (unsigned long long)x->seq, (unsigned long long)v->out_done_seq);
            v->errors++;
        }
        v->out_done_seq = x->seq + 1;
        if (u->status != 0 || u->actual != u->len) {
            vreport(v, "bulk OUT #%llu of %u bytes: %s (status %d), %u bytes sent",
                    (unsigned long long)x->seq, u->len, uf_status_name(u->status),
                    u->status, u->actual);
            v->errors++;
        } else {
            v->outs++;
            v->out_bytes += u->actual;
        }
    }
    x->next = v->free;
    v->free = x;
}

/* A length and a first-page offset that fit 16 segments. */
static void pick_size(struct vctx *v, uint32_t *len, unsigned *off)
{
    uint64_t r = rnd(v);
    *off = r % 4 == 0 ? 0 : (unsigned)((r >> 8) % XENIF_PAGE_SIZE);
    uint32_t max = UF_MAX_SEGS * XENIF_PAGE_SIZE - *off;
    if (max > UF_MAX_LEN)
        max = UF_MAX_LEN;
    switch ((r >> 24) % 10) {
    case 0: case 1: case 2: case 3:
        *len = 1 + (uint32_t)((r >> 32) % 512);
        break;
    case 4: case 5: case 6:
        *len = 513 + (uint32_t)((r >> 32) % 8192);
        break;
    case 7:
        *len = max; /* all 16 segments */
        break;
    default:
        *len = 8193 + (uint32_t)((r >> 32) % (max - 8193 + 1));
    }
}

/* Submits one transfer if flow control allows one. 1 submitted, 0 not now,
 * -1 failed. */
static int submit_next(struct vctx *v, bool outs_allowed)
{
    /* After a failure only what is in flight is waited for: an IN for data
     * that will never come would fail at once, again and again. */
    if (!v->free || v->errors || v->mismatches)
        return 0;
    uint32_t len;
    unsigned off;
    pick_size(v, &len, &off);
    uint64_t unread = v->out_sub - v->in_consumed;
    uint64_t avail_in = unread > v->in_pending_len ? unread - v->in_pending_len : 0;
    bool can_out = outs_allowed && v->out_sub + len - v->in_consumed <= v->window;
    bool can_in = avail_in > 0;
    if (!can_out && !can_in)
        return 0;
    bool in = can_in && (!can_out || rnd(v) % 2);
    struct xfer *x = v->free;
    memset(&x->u, 0, sizeof(x->u));
    x->in = in;
    /* An IN asks for at most what is on its way, so the INs behind it get
     * data too; alone, it may ask for more and is answered short. */
    if (in && len > avail_in && (v->in_pending_len > 0 || rnd(v) % 4))
        len = (uint32_t)avail_in;
    x->u.pipe = uf_pipe(v->dev.port, v->dev.addr, 1, in, UF_BULK);
    x->u.buf = x->buf;
    x->u.len = len;
    x->u.page_off = off;
    x->u.done = xfer_done;
    x->v = v;
    if (!in)
        stream_fill(x->buf, v->seed, v->out_sub, len);
    if (uf_submit(v->uf, &x->u) < 0) {
        if (errno == EAGAIN)
            return 0;
        return -1;
    }
    v->free = x->next;
    v->in_flight++;
    if (in) {
        x->seq = v->in_next_seq++;
        v->in_pending_len += len;
    } else {
        x->seq = v->out_next_seq++;
        v->out_sub += len;
    }
    v->offset_xfers += off != 0;
    v->max_segs_xfers += uf_pages_for(off, len, false) == UF_MAX_SEGS;
    return 1;
}

/* GET_COUNTERS: OUT transfers, OUT bytes, IN transfers, IN bytes. */
static int get_counters(struct usbfront *uf, const struct usbdev *d, uint64_t c[4])
{
    uint8_t buf[32];
    uint32_t n;
    if (control(uf, d->port, d->addr, 0xc0, NB_GET_COUNTERS, 0, 0, buf, sizeof(buf),
                &n, "GET_COUNTERS") != 0)
        return -1;
    if (n != sizeof(buf)) {
        fprintf(stderr, "xenfront usb verify: GET_COUNTERS returned %u bytes, not 32\n",
                n);
        return -1;
    }
    for (unsigned i = 0; i < 4; i++) {
        c[i] = 0;
        for (unsigned b = 0; b < 8; b++)
            c[i] |= (uint64_t)buf[i * 8 + b] << (b * 8);
    }
    return 0;
}

/* A bulk IN on the empty FIFO stays pending; unlinked, it is answered with
 * an error and no data, and the device counts no IN. */
static int unlink_check(struct vctx *v)
{
    static uint8_t buf[512];
    struct uf_urb u;
    memset(&u, 0, sizeof(u));
    u.pipe = uf_pipe(v->dev.port, v->dev.addr, 1, true, UF_BULK);
    u.buf = buf;
    u.len = sizeof(buf);
    bool done = false;
    if (uf_submit(v->uf, &u) < 0 || uf_kick(v->uf) < 0) {
        fprintf(stderr, "xenfront usb verify: cannot submit the bulk IN to unlink: %s\n",
                *uf_error(v->uf) ? uf_error(v->uf) : strerror(errno));
        return -1;
    }
    uint64_t t0 = fe_now_ns();
    while (fe_now_ns() - t0 < 100000000ull) {
        int n = uf_poll(v->uf, 20);
        if (n < 0)
            return -1;
        if (n > 0) {
            fprintf(stderr, "xenfront usb verify: a bulk IN on the empty FIFO "
                    "completed (%s, %u bytes); it must wait for data\n",
                    uf_status_name(u.status), u.actual);
            return -1;
        }
    }
    if (uf_unlink(v->uf, &u) < 0) {
        fprintf(stderr, "xenfront usb verify: unlink: %s\n", strerror(errno));
        return -1;
    }
    uint64_t end = fe_now_ns() + 5000000000ull;
    while (!done && fe_now_ns() < end) {
        int n = uf_poll(v->uf, 100);
        if (n < 0)
            return -1;
        done = n > 0;
    }
    if (!done) {
        fprintf(stderr, "xenfront usb verify: an unlinked bulk IN got no answer "
                "within 5 s\n");
        return -1;
    }
    if (u.status == 0 || u.actual != 0) {
        fprintf(stderr, "xenfront usb verify: the unlinked bulk IN was answered %s "
                "with %u bytes; expected an error and no data\n",
                uf_status_name(u.status), u.actual);
        return -1;
    }
    return 0;
}

static int usb_verify(int argc, char **argv)
{
    struct usb_args a;
    int r = parse_args(&a, argc, argv, "verify");
    if (r)
        return r < 0 ? 0 : r;
    if (!a.have_port) {
        fprintf(stderr, "xenfront usb verify: --port is required\n");
        usb_usage(stderr, "verify");
        return 2;
    }
    if (a.have_seconds && a.have_count) {
        fprintf(stderr, "xenfront usb verify: --seconds and --count exclude each other\n");
        return 2;
    }
    struct vctx v;
    memset(&v, 0, sizeof(v));
    v.seed = v.rng = a.seed;
    v.window = a.window;
    unsigned q = a.queue ? a.queue : 8;
    struct xfer *xs = calloc(q, sizeof(*xs));
    for (unsigned i = 0; xs && i < q; i++) {
        xs[i].buf = malloc(UF_MAX_LEN);
        if (!xs[i].buf) {
            fprintf(stderr, "xenfront usb verify: out of memory\n");
            return 1;
        }
        xs[i].next = v.free;
        v.free = &xs[i];
    }
    if (!xs) {
        fprintf(stderr, "xenfront usb verify: out of memory\n");
        return 1;
    }
    int rc = 1;
    v.uf = open_ctrl(&a, "verify");
    if (!v.uf)
        goto out_free;
    if (enumerate(v.uf, a.port, a.o.timeout_ms, true, &v.dev) < 0)
        goto out;
    if (v.dev.dd.id_vendor != NB_VENDOR || v.dev.dd.id_product != NB_BULK_PRODUCT ||
        !find_ep(&v.dev, 0x01, 2) || !find_ep(&v.dev, 0x81, 2)) {
        fprintf(stderr, "xenfront usb verify: port %u has %04x:%04x, not the nb-bulk "
                "device %04x:%04x with bulk endpoints 0x01 and 0x81\n", a.port,
                v.dev.dd.id_vendor, v.dev.dd.id_product, NB_VENDOR, NB_BULK_PRODUCT);
        goto out;
    }
    uint64_t c[4];
    if (control(v.uf, a.port, v.dev.addr, 0x40, NB_RESET, 0, 0, NULL, 0, NULL,
                "vendor RESET") != 0 || get_counters(v.uf, &v.dev, c) < 0)
        goto out;
    if (c[0] || c[1] || c[2] || c[3]) {
        fprintf(stderr, "xenfront usb verify: counters after RESET are %llu/%llu/%llu/"
                "%llu, not zero\n", (unsigned long long)c[0], (unsigned long long)c[1],
                (unsigned long long)c[2], (unsigned long long)c[3]);
        goto out;
    }
    if (unlink_check(&v) < 0)
        goto out;

    uint64_t t0 = fe_now_ns(), deadline = t0 + a.seconds * 1000000000ull;
    bool outs_allowed = true;
    for (;;) {
        uint64_t now = fe_now_ns();
        if (outs_allowed && (xf_stop_file_seen(&a.stop, now) ||
                             (a.have_count ? v.out_next_seq >= a.count : now >= deadline)))
            outs_allowed = false;
        if (v.errors || v.mismatches)
            outs_allowed = false;
        int s;
        while ((s = submit_next(&v, outs_allowed)) > 0)
            if (a.have_count && v.out_next_seq >= a.count)
                outs_allowed = false;
        if (s < 0) {
            fprintf(stderr, "xenfront usb verify: submit: %s\n",
                    *uf_error(v.uf) ? uf_error(v.uf) : strerror(errno));
            goto out;
        }
        if (!outs_allowed && v.in_flight == 0 &&
            (v.in_consumed == v.out_sub || v.errors || v.mismatches))
            break;
        if (uf_poll(v.uf, 200) < 0)
            goto out;
    }
    double secs = (fe_now_ns() - t0) / 1e9;
    if (v.errors || v.mismatches) {
        fprintf(stderr, "xenfront usb verify: stopped: %llu error(s), %llu "
                "mismatch(es)\n", (unsigned long long)v.errors,
                (unsigned long long)v.mismatches);
    } else if (get_counters(v.uf, &v.dev, c) == 0) {
        if (c[0] != v.outs || c[1] != v.out_bytes || c[2] != v.ins || c[3] != v.in_bytes) {
            fprintf(stderr, "xenfront usb verify: the device counted %llu OUT (%llu "
                    "bytes) and %llu IN (%llu bytes); completed here: %llu OUT (%llu "
                    "bytes), %llu IN (%llu bytes)\n", (unsigned long long)c[0],
                    (unsigned long long)c[1], (unsigned long long)c[2],
                    (unsigned long long)c[3], (unsigned long long)v.outs,
                    (unsigned long long)v.out_bytes, (unsigned long long)v.ins,
                    (unsigned long long)v.in_bytes);
            v.errors++;
        } else {
            rc = 0;
        }
    }
    const struct uf_stats *st = uf_stats(v.uf);
    printf("result=%s seed=%llu outs=%llu out_bytes=%llu ins=%llu in_bytes=%llu "
           "short_ins=%llu offset_xfers=%llu full_16seg_xfers=%llu unlinks=%llu "
           "mismatches=%llu errors=%llu seconds=%.1f MBps=%.1f suspends=%llu "
           "migrations=%llu drain_unlinked=%llu port_connects=%llu\n",
           rc == 0 ? "ok" : "FAILED",
           (unsigned long long)v.seed, (unsigned long long)v.outs,
           (unsigned long long)v.out_bytes, (unsigned long long)v.ins,
           (unsigned long long)v.in_bytes, (unsigned long long)v.short_ins,
           (unsigned long long)v.offset_xfers, (unsigned long long)v.max_segs_xfers,
           (unsigned long long)st->unlinks, (unsigned long long)v.mismatches,
           (unsigned long long)v.errors, secs,
           secs > 0 ? (v.out_bytes + v.in_bytes) / secs / 1e6 : 0.0,
           (unsigned long long)st->suspends, (unsigned long long)st->migrations,
           (unsigned long long)st->drain_unlinked,
           (unsigned long long)uf_port_connects(v.uf, a.port));
    if (uf_port_disconnects(v.uf, a.port)) {
        fprintf(stderr, "xenfront usb verify: port %u was reported disconnected %llu "
                "time(s) during the run\n", a.port,
                (unsigned long long)uf_port_disconnects(v.uf, a.port));
        rc = 1;
    }
out:
    if (uf_close(v.uf) < 0)
        rc = 1;
out_free:
    for (unsigned i = 0; i < q; i++)
        free(xs[i].buf);
    free(xs);
    return rc;
}

/* ---- hid ------------------------------------------------------------------- */

struct report {
    struct uf_urb u;
    uint8_t buf[HID_REPORT_LEN];
    bool done;
};

static void report_done(struct uf_urb *u)
{
    ((struct report *)u)->done = true;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static int usb_hid(int argc, char **argv)
{
    struct usb_args a;
    int r = parse_args(&a, argc, argv, "hid");
    if (r)
        return r < 0 ? 0 : r;
    if (!a.have_port || !a.have_count) {
        fprintf(stderr, "xenfront usb hid: --port and --count are required\n");
        usb_usage(stderr, "hid");
        return 2;
    }
    unsigned q = a.queue ? a.queue : 1;
    struct usbfront *uf = open_ctrl(&a, "hid");
    if (!uf)
        return 1;
    int rc = 1;
    struct usbdev d;
    struct report rep[15];
    uint64_t got = 0, submitted = 0, bad = 0, requeued = 0;
    uint32_t first = 0, last = 0;
    if (enumerate(uf, a.port, a.o.timeout_ms, true, &d) < 0)
        goto out;
    const struct uf_endpoint *ep = find_ep(&d, 0x81, 3);
    if (d.dd.id_vendor != NB_VENDOR || d.dd.id_product != NB_HID_PRODUCT || !ep ||
        !d.cd.has_hid || d.cd.if_class != 3) {
        fprintf(stderr, "xenfront usb hid: port %u has %04x:%04x, not the nb-hid "
                "device %04x:%04x (HID interface, interrupt endpoint 0x81)\n", a.port,
                d.dd.id_vendor, d.dd.id_product, NB_VENDOR, NB_HID_PRODUCT);
        goto out;
    }
    uint64_t t0 = fe_now_ns();
    unsigned next_check = 0; /* reports complete in submission order */
    unsigned in_flight = 0;
    while (got < a.count && !bad) {
        /* Free slots follow the oldest in flight, in ring order. */
        while (in_flight < q && submitted < a.count) {
            struct report *p = &rep[(next_check + in_flight) % q];
            memset(&p->u, 0, sizeof(p->u));
            p->u.pipe = uf_pipe(a.port, d.addr, 1, true, UF_INTR);
            p->u.interval = ep->interval;
            p->u.buf = p->buf;
            p->u.len = HID_REPORT_LEN;
            p->u.done = report_done;
            p->done = false;
            if (uf_submit(uf, &p->u) < 0) {
                if (errno == EAGAIN)
                    break;
                goto out;
            }
            in_flight++;
            submitted++;
        }
        if (uf_poll(uf, 200) < 0)
            goto out;
        while (in_flight && rep[next_check].done) {
            struct report *p = &rep[next_check];
            next_check = (next_check + 1) % q;
            in_flight--;
            if (p->u.unlinked && p->u.status != 0 && p->u.actual == 0) {
                /* Unlinked at a suspend before the device produced a
                 * report: asked again. */
                submitted--;
                requeued++;
                continue;
            }
            got++;
            uint32_t seq = p->u.actual >= 4 ? le32(p->buf) : 0;
            static const uint8_t tail[4] = { 0xa5, 0x5a, 0xa5, 0x5a };
            if (p->u.status != 0 || p->u.actual != HID_REPORT_LEN ||
                memcmp(p->buf + 4, tail, 4) != 0) {
                fprintf(stderr, "xenfront usb hid: report %llu: %s (status %d), %u "
                        "bytes, tail %02x %02x %02x %02x\n", (unsigned long long)got,
                        uf_status_name(p->u.status), p->u.status, p->u.actual,
                        p->buf[4], p->buf[5], p->buf[6], p->buf[7]);
                bad++;
            } else if (got > 1 && seq != last + 1) {
                fprintf(stderr, "xenfront usb hid: report %llu has sequence number "
                        "%u after %u\n", (unsigned long long)got, seq, last);
                bad++;
            }
            if (got == 1)
                first = seq;
            last = seq;
        }
    }
    double secs = (fe_now_ns() - t0) / 1e9;
    if (!bad) {
        uint8_t buf[HID_REPORT_LEN];
        uint32_t n;
        if (control(uf, a.port, d.addr, 0xa1, 0x01, 0x0100, 0, buf, sizeof(buf), &n,
                    "GET_REPORT") != 0)
            goto out;
        if (n != HID_REPORT_LEN || le32(buf) != last) {
            fprintf(stderr, "xenfront usb hid: GET_REPORT returned %u bytes with "
                    "sequence number %u; the last report read had %u\n", n,
                    n >= 4 ? le32(buf) : 0, last);
            goto out;
        }
        rc = 0;
    }
    const struct uf_stats *st = uf_stats(uf);
    printf("result=%s reports=%llu first=%u last=%u seconds=%.2f ms_per_report=%.2f "
           "suspends=%llu migrations=%llu drain_unlinked=%llu asked_again=%llu "
           "pause_ms_max=%.1f\n",
           rc == 0 ? "ok" : "FAILED", (unsigned long long)got, first, last, secs,
           got ? secs * 1000 / (double)got : 0.0, (unsigned long long)st->suspends,
           (unsigned long long)st->migrations, (unsigned long long)st->drain_unlinked,
           (unsigned long long)requeued, (double)st->pause_ns_max / 1e6);
out:
    if (uf_close(uf) < 0)
        rc = 1;
    return rc;
}

/* ---- iso ---------------------------------------------------------------------- */

/* Packet lengths, cycled: full, short, tiny, empty. */
static const uint32_t iso_lengths[] = { 1024, 512, 3, 0, 1000, 64, 1024, 7 };
#define ISO_LENGTHS (sizeof(iso_lengths) / sizeof(iso_lengths[0]))

struct iso_urb {
    struct uf_urb u;
    struct uf_iso_packet pk[ISO_MAX_PACKETS];
    uint8_t buf[ISO_MAX_PACKETS * 1024];
    bool done;
};

struct iso_run {
    struct usbfront *uf;
    const struct usbdev *d;
    unsigned packets, queue;
    unsigned page_off;         /* the data's layout in the granted pages */
    bool scattered;
    uint64_t count;
    bool in;
    uint32_t seq;              /* IN: the next packet's sequence number */
    uint64_t out_fill;         /* OUT: the data pattern's position */
    uint64_t urbs, packets_done, bytes, sum;
};

static void iso_done(struct uf_urb *u)
{
    ((struct iso_urb *)u)->done = true;
}

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* The longest buffer a URB of this many packets gets (its lengths start
 * anywhere in the cycle). */
static uint32_t iso_max_length(unsigned packets)
{
    uint32_t max = 0;
    for (unsigned first = 0; first < ISO_LENGTHS; first++) {
        uint32_t len = 0;
        for (unsigned i = 0; i < packets; i++)
            len += iso_lengths[(first + i) % ISO_LENGTHS];
        if (len > max)
            max = len;
    }
    return max;
}

static void iso_prepare(struct iso_run *r, struct iso_urb *x)
{
    uint32_t off = 0;
    memset(&x->u, 0, sizeof(x->u));
    for (unsigned i = 0; i < r->packets; i++) {
        uint32_t len = iso_lengths[(r->urbs * r->packets + i) % ISO_LENGTHS];
        x->pk[i] = (struct uf_iso_packet){ .offset = off, .length = len,
                                           .status = -EINPROGRESS };
        off += len;
    }
    if (r->in) {
        memset(x->buf, 0xee, off);
    } else {
        for (uint32_t b = 0; b < off; b++)
            x->buf[b] = (uint8_t)((r->out_fill + b) * 13 + 1);
        r->out_fill += off;
    }
    x->u.pipe = uf_pipe(r->d->port, r->d->addr, 2, r->in, UF_ISOC);
    x->u.interval = 1;
    x->u.nr_packets = r->packets;
    x->u.iso = x->pk;
    x->u.buf = x->buf;
    x->u.len = off;
    x->u.page_off = r->page_off;
    x->u.scattered = r->scattered;
    x->u.done = iso_done;
    x->done = false;
}

/* One completed URB: every packet ok and whole; IN data as devices.md
 * says, in sequence. 0 or -1 (message printed). */
static int iso_check(struct iso_run *r, struct iso_urb *x, uint64_t n)
{
    const char *dir = r->in ? "IN" : "OUT";
    uint32_t sum = 0, failed = 0;
    if (x->u.status != 0) {
        fprintf(stderr, "xenfront usb iso: %s URB %llu: %s (status %d)\n", dir,
                (unsigned long long)n, uf_status_name(x->u.status), x->u.status);
        return -1;
    }
    for (unsigned i = 0; i < r->packets; i++) {
        const struct uf_iso_packet *p = &x->pk[i];
        const uint8_t *b = x->buf + p->offset;
        if (p->status != 0 || p->actual != p->length) {
            fprintf(stderr, "xenfront usb iso: %s URB %llu packet %u: status %d, %u of "
                    "%u bytes\n", dir, (unsigned long long)n, i, p->status, p->actual,
                    p->length);
            return -1;
        }
        failed += p->status != 0;
        sum += p->actual;
        if (r->in) {
            for (uint32_t j = 0; j < p->actual; j++) {
                uint8_t want = j < 4 ? (uint8_t)(r->seq >> (8 * j)) : (uint8_t)(r->seq + j);
                if (b[j] != want) {
                    fprintf(stderr, "xenfront usb iso: IN URB %llu packet %u (sequence "
                            "number %u expected): byte %u is %02x, not %02x\n",
                            (unsigned long long)n, i, r->seq, j, b[j], want);
                    return -1;
                }
            }
            r->seq++;
        } else {
            r->sum += fnv1a(b, p->actual);
        }
        r->packets_done++;
        r->bytes += p->actual;
    }
    if (x->u.actual != sum || x->u.error_count != failed) {
        fprintf(stderr, "xenfront usb iso: %s URB %llu: actual_length %u and error_count "
                "%u, but its packets add up to %u and %u\n", dir, (unsigned long long)n,
                x->u.actual, x->u.error_count, sum, failed);
        return -1;
    }
    return 0;
}

/* count URBs on one endpoint, queue in flight; they complete in order. */
static int iso_stream(struct iso_run *r, struct iso_urb *xs)
{
    uint64_t submitted = 0, checked = 0;
    unsigned head = 0, in_flight = 0;
    while (checked < r->count) {
        while (in_flight < r->queue && submitted < r->count) {
            struct iso_urb *x = &xs[(head + in_flight) % r->queue];
            iso_prepare(r, x);
            if (uf_submit(r->uf, &x->u) < 0) {
                if (errno == EAGAIN)
                    break;
                fprintf(stderr, "xenfront usb iso: submit: %s\n", strerror(errno));
                return -1;
            }
            r->urbs++;
            in_flight++;
            submitted++;
        }
        if (uf_kick(r->uf) < 0 || uf_poll(r->uf, 200) < 0)
            return -1;
        while (in_flight && xs[head].done) {
            if (iso_check(r, &xs[head], ++checked) < 0)
                return -1;
            head = (head + 1) % r->queue;
            in_flight--;
        }
    }
    return 0;
}

/* GET_COUNTERS with the checksum: OUT packets, OUT bytes, IN packets, IN
 * bytes, OUT sum. */
static int iso_counters(struct usbfront *uf, const struct usbdev *d, uint64_t c[5])
{
    uint8_t buf[40];
    uint32_t n;
    if (control(uf, d->port, d->addr, 0xc0, NB_GET_COUNTERS, 0, 0, buf, sizeof(buf), &n,
                "GET_COUNTERS") != 0)
        return -1;
    if (n != sizeof(buf)) {
        fprintf(stderr, "xenfront usb iso: GET_COUNTERS returned %u bytes, not 40\n", n);
        return -1;
    }
    for (unsigned i = 0; i < 5; i++) {
        c[i] = 0;
        for (unsigned b = 0; b < 8; b++)
            c[i] |= (uint64_t)buf[i * 8 + b] << (b * 8);
    }
    return 0;
}

static int usb_iso(int argc, char **argv)
{
    struct usb_args a;
    int r = parse_args(&a, argc, argv, "iso");
    if (r)
        return r < 0 ? 0 : r;
    if (!a.have_port) {
        fprintf(stderr, "xenfront usb iso: --port is required\n");
        usb_usage(stderr, "iso");
        return 2;
    }
    struct iso_run in = { .packets = a.packets ? a.packets : 8,
                          .queue = a.queue ? a.queue : 4,
                          .count = a.have_count ? a.count : 8, .in = true,
                          .page_off = a.page_offset, .scattered = a.scatter };
    unsigned pages = uf_pages_for(in.page_off, iso_max_length(in.packets), in.scattered);
    if (pages >= UF_MAX_SEGS) {
        fprintf(stderr, "xenfront usb iso: %u packets at page offset %u%s take %u "
                "pages: more than the %u a URB's data can have beside its "
                "descriptors\n", in.packets, in.page_off, in.scattered ? " (scattered)" : "",
                pages, UF_MAX_SEGS - 1);
        return 2;
    }
    struct iso_urb *xs = calloc(in.queue, sizeof(*xs));
    struct usbfront *uf = xs ? open_ctrl(&a, "iso") : NULL;
    if (!uf) {
        free(xs);
        return 1;
    }
    int rc = 1;
    struct usbdev d;
    uint64_t before[5], after[5];
    if (enumerate(uf, a.port, a.o.timeout_ms, true, &d) < 0)
        goto out;
    if (d.dd.id_vendor != NB_VENDOR || d.dd.id_product != NB_ISO_PRODUCT ||
        d.cd.total_length != 41 || d.speed != USBIF_SPEED_HIGH) {
        fprintf(stderr, "xenfront usb iso: port %u has %04x:%04x (%s speed, %u-byte "
                "configuration), not the nb-iso device %04x:%04x\n", a.port,
                d.dd.id_vendor, d.dd.id_product, uf_speed_name(d.speed),
                d.cd.total_length, NB_VENDOR, NB_ISO_PRODUCT);
        goto out;
    }
    if (iso_counters(uf, &d, before) < 0 ||
        control(uf, a.port, d.addr, 0x01, 11, 1, 0, NULL, 0, NULL,
                "SET_INTERFACE(alt 1)") != 0)
        goto out;
    in.uf = uf;
    in.d = &d;
    in.seq = (uint32_t)before[2];
    struct iso_run out = in;
    out.in = false;
    uint64_t t0 = fe_now_ns();
    if (iso_stream(&in, xs) < 0 || iso_stream(&out, xs) < 0)
        goto out;
    double secs = (fe_now_ns() - t0) / 1e9;
    if (control(uf, a.port, d.addr, 0x01, 11, 0, 0, NULL, 0, NULL,
                "SET_INTERFACE(alt 0)") != 0 || iso_counters(uf, &d, after) < 0)
        goto out;
    uint64_t want[5] = { out.packets_done, out.bytes, in.packets_done, in.bytes, out.sum };
    static const char *names[5] = { "OUT packets", "OUT bytes", "IN packets", "IN bytes",
                                    "OUT checksum" };
    rc = 0;
    for (unsigned i = 0; i < 5; i++)
        if (after[i] - before[i] != want[i]) {
            fprintf(stderr, "xenfront usb iso: the device counted %llu %s, the URBs "
                    "completed %llu\n", (unsigned long long)(after[i] - before[i]),
                    names[i], (unsigned long long)want[i]);
            rc = 1;
        }
    const struct uf_stats *st = uf_stats(uf);
    printf("result=%s in_urbs=%llu out_urbs=%llu packets_per_urb=%u in_packets=%llu "
           "in_bytes=%llu out_packets=%llu out_bytes=%llu first_seq=%llu last_seq=%u "
           "page_offset=%u scattered=%d seconds=%.3f suspends=%llu migrations=%llu "
           "drain_unlinked=%llu\n", rc == 0 ? "ok" : "FAILED",
           (unsigned long long)in.urbs,
           (unsigned long long)out.urbs, in.packets, (unsigned long long)in.packets_done,
           (unsigned long long)in.bytes, (unsigned long long)out.packets_done,
           (unsigned long long)out.bytes, (unsigned long long)before[2], in.seq - 1,
           in.page_off, in.scattered, secs, (unsigned long long)st->suspends,
           (unsigned long long)st->migrations, (unsigned long long)st->drain_unlinked);
out:
    if (uf_close(uf) < 0)
        rc = 1;
    free(xs);
    return rc;
}

/* ---- rtt ---------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median_us(uint64_t *ns, uint64_t n)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    return (double)ns[n / 2] / 1000.0;
}

/* One URB, timed: 0 with *ns set, or -1 (message printed). */
static int timed(struct usbfront *uf, struct uf_urb *u, const char *what, uint64_t *ns)
{
    uint64_t t0 = fe_now_ns();
    int st = uf_run(uf, u);
    *ns = fe_now_ns() - t0;
    if (st != 0) {
        fprintf(stderr, "xenfront usb rtt: %s: %s\n", what, uf_status_name(st));
        return -1;
    }
    return 0;
}

/* Round trips through the whole path (guest ring, backend, device), one
 * URB in flight: what a class driver waiting on each transfer sees. */
static int usb_rtt(int argc, char **argv)
{
    struct usb_args a;
    int r = parse_args(&a, argc, argv, "rtt");
    if (r)
        return r < 0 ? 0 : r;
    if (!a.have_port) {
        fprintf(stderr, "xenfront usb rtt: --port is required\n");
        usb_usage(stderr, "rtt");
        return 2;
    }
    uint64_t n = a.have_count ? a.count : 1000;
    uint64_t *t_ctrl = calloc(n, sizeof(uint64_t)), *t_out = calloc(n, sizeof(uint64_t)),
             *t_in = calloc(n, sizeof(uint64_t));
    struct usbfront *uf = t_ctrl && t_out && t_in ? open_ctrl(&a, "rtt") : NULL;
    int rc = 1;
    struct usbdev d;
    if (!uf || enumerate(uf, a.port, a.o.timeout_ms, true, &d) < 0)
        goto out;
    if (d.dd.id_vendor != NB_VENDOR || d.dd.id_product != NB_BULK_PRODUCT) {
        fprintf(stderr, "xenfront usb rtt: port %u has %04x:%04x, not nb-bulk\n",
                a.port, d.dd.id_vendor, d.dd.id_product);
        goto out;
    }
    if (control(uf, d.port, d.addr, 0x40, NB_RESET, 0, 0, NULL, 0, NULL, "RESET") != 0)
        goto out;
    uint8_t desc[18], out_buf[512], in_buf[512];
    for (uint64_t i = 0; i < n; i++) {
        struct uf_urb u;
        memset(&u, 0, sizeof(u));
        u.pipe = uf_pipe(d.port, d.addr, 0, true, UF_CTRL);
        uf_setup(u.setup, 0x80, 6, 0x0100, 0, sizeof(desc));
        u.buf = desc;
        u.len = sizeof(desc);
        if (timed(uf, &u, "GET_DESCRIPTOR", &t_ctrl[i]) < 0)
            goto out;
        memset(out_buf, (int)(i & 0xff), sizeof(out_buf));
        memset(&u, 0, sizeof(u));
        u.pipe = uf_pipe(d.port, d.addr, 1, false, UF_BULK);
        u.buf = out_buf;
        u.len = sizeof(out_buf);
        if (timed(uf, &u, "bulk OUT", &t_out[i]) < 0)
            goto out;
        memset(&u, 0, sizeof(u));
        u.pipe = uf_pipe(d.port, d.addr, 1, true, UF_BULK);
        u.buf = in_buf;
        u.len = sizeof(in_buf);
        if (timed(uf, &u, "bulk IN", &t_in[i]) < 0)
            goto out;
        if (u.actual != sizeof(in_buf) || memcmp(in_buf, out_buf, sizeof(in_buf)) != 0) {
            fprintf(stderr, "xenfront usb rtt: bulk IN %" PRIu64 " did not return "
                    "the 512 bytes written\n", i);
            goto out;
        }
    }
    printf("result=ok count=%" PRIu64 " control_us=%.1f bulk512_out_us=%.1f "
           "bulk512_in_us=%.1f\n", n, median_us(t_ctrl, n), median_us(t_out, n),
           median_us(t_in, n));
    rc = 0;
out:
    free(t_ctrl);
    free(t_out);
    free(t_in);
    if (uf && uf_close(uf) < 0)
        rc = 1;
    return rc;
}

/* ---- dispatch ---------------------------------------------------------------- */

int xf_usb_main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        { "list", usb_list },
        { "verify", usb_verify },
        { "hid", usb_hid },
        { "rtt", usb_rtt },
        { "iso", usb_iso },
    };
    if (argc >= 1)
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
            if (strcmp(argv[0], cmds[i].name) == 0)
                return cmds[i].fn(argc, argv);
    fprintf(stderr, "usage: xenfront usb list|verify|hid|iso|rtt [OPTIONS]\n"
            "  `xenfront usb COMMAND --help` lists a command's options\n");
    return 2;
}
