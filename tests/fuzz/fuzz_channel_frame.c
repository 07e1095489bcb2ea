/* libFuzzer: netbus frames from the network. The input is decoded as a
 * frame header (in both phases) and as every body type, and is also fed as
 * a byte stream to a server connection on a socketpair, which must answer
 * an unauthenticated peer with at most one REFUSED frame and never crash,
 * leak or read out of bounds. Accepted headers must respect their type's
 * length bounds. */
#include "backend/channel/conn.h"
#include "evloop.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* USB bodies: whatever is accepted lies inside the input and the limits. */
static void decode_usb(const uint8_t *p, size_t n)
{
    static struct nb_urb_iso iso[NB_URB_MAX_ISO];
    const char *why;
    const uint8_t *data;
    struct nb_urb urb;
    if (nb_urb_decode(p, n, &urb, iso, &data, &why) == 0) {
        if (urb.length > NB_URB_MAX_DATA || urb.nr_iso > NB_URB_MAX_ISO ||
            nb_urb_body_len(&urb) != n || (data && data + urb.length != p + n))
            abort();
        for (uint32_t i = 0; i < urb.nr_iso; i++)
            if (iso[i].offset + (uint64_t)iso[i].length > urb.length)
                abort();
    }
    int32_t st;
    struct nb_urb_result r;
    if (nb_urb_reply_decode(p, n, &st, &r, iso, &data, &why) == 0 &&
        st == NB_ST_OK && (r.nr_iso > NB_URB_MAX_ISO ||
                           data + r.data_len != p + n))
        abort();
    struct nb_usb_opened uo;
    if (nb_usb_opened_decode(p, n, &st, &uo, &why) == 0 && st == NB_ST_OK &&
        (uo.speed > 3 || uo.next_seq == 0))
        abort();
    struct nb_unlink ul;
    nb_unlink_decode(p, n, &ul, &why);
}

static void decode_all(const uint8_t *p, size_t n)
{
    const char *why;
    struct nb_hdr h;
    if (n >= NB_HDR_SIZE) {
        for (int authed = 0; authed < 2; authed++)
            if (nb_hdr_decode(p, &h, authed, &why) == 0) {
                if (h.length > NB_MAX_DATA + NB_IO_BODY)
                    abort();
                if (h.type != NB_WRITE && h.type != (NB_READ | NB_REPLY) &&
                    h.type != NB_URB && h.type != (NB_URB | NB_REPLY) &&
                    h.length > NB_MAX_CTRL)
                    abort();
                if ((h.type & ~NB_REPLY) == NB_URB &&
                    h.length > NB_URB_REPLY_BODY + NB_URB_MAX_DATA +
                               NB_URB_MAX_ISO * NB_URB_ISO_DESC)
                    abort();
            }
        p += NB_HDR_SIZE;
        n -= NB_HDR_SIZE;
    }
    struct nb_hello hello;
    struct nb_challenge ch;
    struct nb_open op;
    struct nb_opened od;
    struct nb_io io;
    struct nb_event_body ev;
    uint8_t mac[NB_MAC_SIZE];
    uint32_t code;
    int32_t st;
    if (nb_hello_decode(p, n, &hello, &why) == 0 &&
        !nb_name_ok(hello.name, strlen(hello.name)))
        abort();
    if (nb_challenge_decode(p, n, &ch, &why) == 0 &&
        !nb_name_ok(ch.name, strlen(ch.name)))
        abort();
    if (nb_open_decode(p, n, &op, &why) == 0 &&
        (!nb_name_ok(op.name, strlen(op.name)) ||
         strlen(op.owner) > NB_OWNER_MAX))
        abort();
    if (nb_opened_decode(p, n, &od, &why) == 0 && od.status == NB_ST_OK &&
        (od.sector_size < 512 || od.size % od.sector_size))
        abort();
    if (nb_io_decode(p, n, &io, &why) == 0 && io.len > NB_MAX_DATA)
        abort();
    nb_status_decode(p, n, &st, &why);
    nb_event_decode(p, n, &ev, &why);
    decode_usb(p, n);
    nb_mac_decode(p, n, mac, &why);
    nb_refused_decode(p, n, &code, &why);
}

static bool closed;

static int sink(struct nb_conn *c, const struct nb_hdr *h,
                const struct iovec **iov, unsigned *n)
{
    (void)c; (void)h; (void)iov; (void)n;
    abort(); /* nothing gets past the handshake without a key */
}

static int frame(struct nb_conn *c, const struct nb_hdr *h, const uint8_t *p)
{
    (void)c; (void)h; (void)p;
    abort();
}

static void up(struct nb_conn *c)
{
    (void)c;
    abort();
}

static void down(struct nb_conn *c, const char *why)
{
    (void)c; (void)why;
    closed = true;
}

static const struct nb_conn_ops ops = { sink, frame, up, down };

static void stream(const uint8_t *p, size_t n)
{
    static struct evloop *loop;
    static struct nb_keyring *kr;
    static struct nb_conn_cfg cfg;
    if (!loop) {
        log_init("fuzz", LOG_LVL_ERROR, false);
        loop = evloop_new();
        char err[128];
        kr = nb_keyring_parse("* 00112233445566778899aabbccddeeff\n", "fuzz",
                              err, sizeof(err));
        cfg = (struct nb_conn_cfg){ .role = NB_ROLE_SERVER, .my_name = "fuzz",
                                    .keys = kr, .keepalive_ms = 1000,
                                    .handshake_ms = 1000 };
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return;
    closed = false;
    struct nb_conn *c = nb_conn_new(loop, sv[1], &cfg, &ops, NULL, "fuzz");
    if (!c) {
        close(sv[0]);
        return;
    }
    size_t off = 0;
    uint8_t out[4096];
    size_t got = 0;
    for (int i = 0; i < 64 && !closed; i++) {
        if (off < n) {
            ssize_t w = write(sv[0], p + off, n - off);
            if (w > 0)
                off += (size_t)w;
        }
        evloop_run_once(loop, 0);
        ssize_t r = read(sv[0], out + got, sizeof(out) - got);
        if (r > 0)
            got += (size_t)r;
        if (off >= n && r <= 0 && i > 4)
            break;
    }
    if (!closed)
        nb_conn_close(c, "fuzz input done");
    /* Before authentication the server says CHALLENGE or REFUSED, no more. */
    if (got > NB_HDR_SIZE + NB_MAX_CTRL * 2)
        abort();
    close(sv[0]);
    evloop_run_once(loop, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_all(data, size);
    stream(data, size);
    return 0;
}
