/* usbfront: the userspace reference usbif frontend. See usbfront.h. */
/* ring.h leaves the barriers to the includer. */
#define mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include "usbfront.h"
#include "xenbus_front.h"
#include "xensim_guest.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xen/io/xenbus.h>

#define URB_SLOTS ((unsigned)USB_URB_RING_SIZE)
#define CONN_SLOTS ((unsigned)USB_CONN_RING_SIZE)

_Static_assert(URB_SLOTS <= 0x10000, "ids are 16 bits");
_Static_assert(UF_MAX_LEN <= (size_t)UF_MAX_SEGS * XENIF_PAGE_SIZE, "16 pages hold a URB");

/* ---- the wire ------------------------------------------------------------ */

uint32_t uf_pipe(unsigned port, unsigned addr, unsigned ep, bool in, enum uf_type type)
{
    if (port < 1 || port > USBIF_MAX_PORTNR || addr > USBIF_PIPE_DEV_MASK ||
        ep > USBIF_PIPE_EP_MASK || (unsigned)type > USBIF_PIPE_TYPE_MASK)
        return 0;
    return (uint32_t)port | (in ? USBIF_PIPE_DIR : 0) |
           (uint32_t)addr << USBIF_PIPE_DEV_SHIFT |
           (uint32_t)ep << USBIF_PIPE_EP_SHIFT |
           (uint32_t)type << USBIF_PIPE_TYPE_SHIFT;
}

void uf_setup(uint8_t setup[8], uint8_t bm_request_type, uint8_t b_request,
              uint16_t w_value, uint16_t w_index, uint16_t w_length)
{
    setup[0] = bm_request_type;
    setup[1] = b_request;
    setup[2] = (uint8_t)w_value;
    setup[3] = (uint8_t)(w_value >> 8);
    setup[4] = (uint8_t)w_index;
    setup[5] = (uint8_t)(w_index >> 8);
    setup[6] = (uint8_t)w_length;
    setup[7] = (uint8_t)(w_length >> 8);
}

unsigned uf_pages_for(unsigned page_off, uint32_t len, bool scattered)
{
    if (scattered) {
        uint32_t per_page = XENIF_PAGE_SIZE - page_off;
        return (unsigned)(((uint64_t)len + per_page - 1) / per_page);
    }
    return len ? (unsigned)(((uint64_t)page_off + len + XENIF_PAGE_SIZE - 1) /
                            XENIF_PAGE_SIZE) : 0;
}

int uf_fill_segments(struct usbif_urb_request *req, const xenif_gref *refs,
                     unsigned page_off, uint32_t len, bool scattered)
{
    if (len > UF_MAX_LEN || page_off >= XENIF_PAGE_SIZE)
        return -1;
    unsigned n = uf_pages_for(page_off, len, scattered);
    if (n > UF_MAX_SEGS)
        return -1;
    uint32_t left = len;
    for (unsigned i = 0; i < n; i++) {
        unsigned off = i == 0 || scattered ? page_off : 0;
        uint32_t chunk = XENIF_PAGE_SIZE - off;
        if (chunk > left)
            chunk = left;
        req->seg[i].gref = refs[i];
        req->seg[i].offset = (uint16_t)off;
        req->seg[i].length = (uint16_t)chunk;
        left -= chunk;
    }
    req->nr_buffer_segs = (uint16_t)n;
    req->buffer_length = (uint16_t)len;
    return (int)n;
}

int uf_fill_iso(struct usbif_urb_request *req, const xenif_gref *refs,
                unsigned nr_packets, uint16_t interval)
{
    unsigned n = req->nr_buffer_segs;
    if (nr_packets == 0 || nr_packets > UF_MAX_ISO_PACKETS || n >= UF_MAX_SEGS)
        return -1;
    req->u.isoc.interval = interval;
    req->u.isoc.start_frame = UF_ISO_ASAP;
    req->u.isoc.number_of_packets = (uint16_t)nr_packets;
    req->u.isoc.nr_frame_desc_segs = 1;
    req->seg[n].gref = refs[n];
    req->seg[n].offset = 0;
    req->seg[n].length = (uint16_t)(nr_packets * sizeof(struct uf_iso_packet));
    return (int)n + 1;
}

int uf_build_request(struct usbif_urb_request *req, uint16_t id,
                     const struct uf_urb *u, const xenif_gref *refs)
{
    memset(req, 0, sizeof(*req));
    if (usbif_pipeunlink(u->pipe))
        return -1;
    req->id = id;
    req->pipe = u->pipe;
    req->transfer_flags = u->short_not_ok ? USBIF_SHORT_NOT_OK : 0;
    if (usbif_pipectrl(u->pipe))
        memcpy(req->u.ctrl, u->setup, 8);
    else if (usbif_pipeint(u->pipe))
        req->u.intr.interval = u->interval;
    int n = uf_fill_segments(req, refs, u->page_off, u->len, u->scattered);
    if (n >= 0 && usbif_pipeisoc(u->pipe))
        n = uf_fill_iso(req, refs, u->nr_packets, u->interval);
    return n;
}

void uf_build_unlink(struct usbif_urb_request *req, uint16_t id,
                     const struct uf_urb *target)
{
    memset(req, 0, sizeof(*req));
    req->id = id;
    /* xenhcd_do_request: the URB's pipe with the unlink bit. */
    req->pipe = usbif_setunlink_pipe(target->pipe);
    req->u.unlink.unlink_id = target->id;
}

int uf_check_urb_response(const struct usbif_urb_response *rsp,
                          uint16_t buffer_length, char *why, size_t whylen)
{
    if (rsp->status > 0 || rsp->status < -4095) {
        snprintf(why, whylen, "status %d is not 0 or a -errno", rsp->status);
        return -1;
    }
    if (rsp->actual_length < 0 || (uint32_t)rsp->actual_length > buffer_length) {
        snprintf(why, whylen, "actual_length %d for a %u-byte buffer",
                 rsp->actual_length, buffer_length);
        return -1;
    }
    return 0;
}

int uf_check_conn_response(const struct usbif_conn_response *rsp,
                           unsigned num_ports, char *why, size_t whylen)
{
    if (rsp->id >= CONN_SLOTS) {
        snprintf(why, whylen, "conn response id %u (the ring has %u slots)",
                 rsp->id, (unsigned)CONN_SLOTS);
        return -1;
    }
    if (rsp->portnum < 1 || rsp->portnum > num_ports) {
        snprintf(why, whylen, "conn response for port %u (num-ports %u)",
                 rsp->portnum, num_ports);
        return -1;
    }
    if (rsp->speed > USBIF_SPEED_HIGH) {
        snprintf(why, whylen, "conn response with speed %u for port %u",
                 rsp->speed, rsp->portnum);
        return -1;
    }
    return 0;
}

const char *uf_speed_name(unsigned speed)
{
    static const char *names[] = { "none", "low", "full", "high" };
    return speed < 4 ? names[speed] : "invalid";
}

const char *uf_status_name(int status)
{
    switch (status) {
    case USBIF_STATUS_OK: return "ok";
    case USBIF_STATUS_NODEV: return "no device (-ENODEV)";
    case USBIF_STATUS_INVAL: return "invalid (-EINVAL)";
    case USBIF_STATUS_STALL: return "stall (-EPIPE)";
    case USBIF_STATUS_IOERROR: return "I/O error (-EPROTO)";
    case USBIF_STATUS_BABBLE: return "babble (-EOVERFLOW)";
    case USBIF_STATUS_SHUTDOWN: return "shut down (-ESHUTDOWN)";
    case -ECONNRESET: return "unlinked (-ECONNRESET)";
    case -ENOENT: return "unlinked (-ENOENT)";
    case -ETIMEDOUT: return "timed out (-ETIMEDOUT)";
    case UF_STATUS_FAILED: return "device failed";
    default: return "other error";
    }
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

int uf_parse_device_desc(const uint8_t *buf, size_t len, struct uf_device_desc *d)
{
    if (len < 18 || buf[0] != 18 || buf[1] != 1)
        return -1;
    d->bcd_usb = le16(buf + 2);
    d->dev_class = buf[4];
    d->dev_subclass = buf[5];
    d->dev_protocol = buf[6];
    d->max_packet0 = buf[7];
    d->id_vendor = le16(buf + 8);
    d->id_product = le16(buf + 10);
    d->bcd_device = le16(buf + 12);
    d->i_manufacturer = buf[14];
    d->i_product = buf[15];
    d->i_serial = buf[16];
    d->num_configurations = buf[17];
    return 0;
}

int uf_parse_config_desc(const uint8_t *buf, size_t len, struct uf_config_desc *c,
                         char *why, size_t whylen)
{
    memset(c, 0, sizeof(*c));
    if (len < 9 || buf[0] != 9 || buf[1] != 2) {
        snprintf(why, whylen, "not a configuration descriptor");
        return -1;
    }
    c->total_length = le16(buf + 2);
    c->num_interfaces = buf[4];
    c->value = buf[5];
    c->attributes = buf[7];
    c->max_power = buf[8];
    if (c->total_length > len) {
        snprintf(why, whylen, "wTotalLength %u but %zu bytes", c->total_length, len);
        return -1;
    }
    bool in_if0 = false;
    for (size_t off = 9; off < c->total_length;) {
        uint8_t dlen = buf[off], type = off + 1 < c->total_length ? buf[off + 1] : 0;
        if (dlen < 2 || off + dlen > c->total_length) {
            snprintf(why, whylen, "descriptor at byte %zu has length %u (%u bytes "
                     "in all)", off, dlen, c->total_length);
            return -1;
        }
        if (type == 4) { /* interface */
            if (dlen < 9) {
                snprintf(why, whylen, "interface descriptor of %u bytes", dlen);
                return -1;
            }
            in_if0 = buf[off + 2] == 0 && buf[off + 3] == 0;
            if (in_if0) {
                c->if_class = buf[off + 5];
                c->if_subclass = buf[off + 6];
                c->if_protocol = buf[off + 7];
            }
        } else if (type == 5 && in_if0) { /* endpoint */
            if (dlen < 7 || c->nr_endpoints >= UF_MAX_ENDPOINTS) {
                snprintf(why, whylen, "endpoint descriptor of %u bytes or too many "
                         "endpoints", dlen);
                return -1;
            }
            struct uf_endpoint *e = &c->ep[c->nr_endpoints++];
            e->address = buf[off + 2];
            e->attributes = buf[off + 3];
            e->max_packet = le16(buf + off + 4);
            e->interval = buf[off + 6];
        } else if (type == 0x21 && in_if0) {
            c->has_hid = true;
        }
        off += dlen;
    }
    return 0;
}

int uf_parse_string_desc(const uint8_t *buf, size_t len, char *out, size_t outlen)
{
    if (len < 2 || buf[1] != 3 || buf[0] > len || buf[0] % 2 || outlen == 0)
        return -1;
    size_t n = 0;
    for (size_t i = 2; i + 1 < buf[0] && n + 1 < outlen; i += 2) {
        uint16_t ch = le16(buf + i);
        out[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    out[n] = 0;
    return 0;
}

/* ---- state --------------------------------------------------------------- */

struct slot {
    bool busy;
    bool is_unlink;
    /* An unlink naming this id is on the ring: the id is not reused until
     * it is answered, or the backend would cancel the wrong URB. */
    bool unlink_pending;
    bool held;                 /* answered, waiting for that unlink */
    unsigned target;           /* an unlink's: the id it cancels */
    struct uf_urb *urb;        /* the URB, or the one an unlink cancels */
    uint16_t length;           /* buffer_length asked for */
    bool in;
    void *pages;               /* UF_MAX_SEGS pages granted once */
    xenif_gref refs[UF_MAX_SEGS];
    unsigned next_free;
};

struct port {
    unsigned speed;
    unsigned carried;          /* after a migration: the speed it had, until
                                * the new backend reports the port */
    uint64_t connects, disconnects;
};

struct usbfront {
    struct uf_opts o;
    struct xenbus_front fe;
    unsigned num_ports, usb_ver;
    struct port ports[USBIF_MAX_PORTNR + 1];

    void *urb_sring, *conn_sring, *pool;
    xenif_gref urb_ref, conn_ref, pool_refs[URB_SLOTS * UF_MAX_SEGS];
    int port_ec;
    usbif_urb_front_ring_t urb;
    usbif_conn_front_ring_t conn;
    struct slot slots[URB_SLOTS];
    unsigned free_head;        /* == URB_SLOTS: none free */
    unsigned in_flight;        /* URBs (not unlinks) */
    unsigned busy_slots;
    bool unpushed, conn_unpushed;

    bool connected;
    bool suspending;
    bool resuming;             /* in resume_moved: its polls do not suspend */
    uint64_t susp_start_ns, drain_deadline_ns, unlink_deadline_ns;
    bool drain_unlinked;
    uint64_t last_deadline_check;
    struct uf_stats stats;
};

static const struct fe_kind vusb_kind = {
    .type = "vusb", .name = "USB controller",
    .attach = "add one with `xensim usbctrl-attach`", .unit = "controller",
};

void uf_opts_default(struct uf_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 20000;
    o->drain_ms = 5000;
    o->follow_suspend = true;
}

/* ---- xenstore ------------------------------------------------------------ */

/* Our frontend directory, the backend's path and domain, and the
 * controller's geometry; watches the backend's state. */
static int read_otherend(struct usbfront *uf)
{
    if (fe_find_backend(&uf->fe) < 0)
        return -1;
    /* Read before any state, as xenhcd_probe does. */
    unsigned long ports, ver;
    if (fe_read_uint(&uf->fe, uf->fe.be_path, "num-ports", &ports) < 0 || ports < 1 ||
        ports > USBIF_MAX_PORTNR) {
        fe_fail(&uf->fe, "%s/num-ports is missing or not 1..%u", uf->fe.be_path,
                USBIF_MAX_PORTNR);
        return -1;
    }
    if (fe_read_uint(&uf->fe, uf->fe.be_path, "usb-ver", &ver) < 0 || ver < USB_VER_USB11 ||
        ver > USB_VER_USB20) {
        fe_fail(&uf->fe, "%s/usb-ver is missing or not 1 or 2", uf->fe.be_path);
        return -1;
    }
    if (uf->num_ports && ports != uf->num_ports) {
        fe_fail(&uf->fe, "the new backend has %lu ports, we had %u", ports, uf->num_ports);
        return -1;
    }
    uf->num_ports = (unsigned)ports;
    uf->usb_ver = (unsigned)ver;
    return fe_watch_backend(&uf->fe);
}

/* ---- rings --------------------------------------------------------------- */

/* Grants the ring pages and the data pages (once per frontend). */
static int share_pages(struct usbfront *uf)
{
    uf->urb_sring = xenif_gnt_share(uf->fe.gnt, uf->fe.be_id, 1, &uf->urb_ref, true);
    uf->conn_sring = uf->urb_sring ? xenif_gnt_share(uf->fe.gnt, uf->fe.be_id, 1,
                                                     &uf->conn_ref, true) : NULL;
    uf->pool = uf->conn_sring ? xenif_gnt_share(uf->fe.gnt, uf->fe.be_id,
                                                URB_SLOTS * UF_MAX_SEGS,
                                                uf->pool_refs, true) : NULL;
    if (!uf->pool) {
        fe_fail(&uf->fe, "cannot share the rings and %u data pages with domain %u: %s",
                URB_SLOTS * UF_MAX_SEGS, uf->fe.be_id, strerror(errno));
        return -1;
    }
    for (unsigned i = 0; i < URB_SLOTS; i++) {
        struct slot *s = &uf->slots[i];
        s->pages = (uint8_t *)uf->pool + (size_t)i * UF_MAX_SEGS * XENIF_PAGE_SIZE;
        memcpy(s->refs, uf->pool_refs + i * UF_MAX_SEGS, sizeof(s->refs));
    }
    return 0;
}

/* Fresh rings on the shared pages, every id free, the conn ring full of
 * requests (xenhcd_connect), a new event channel. */
static int init_rings(struct usbfront *uf)
{
    usbif_urb_sring_t *us = uf->urb_sring;
    usbif_conn_sring_t *cs = uf->conn_sring;
    SHARED_RING_INIT(us);
    FRONT_RING_INIT(&uf->urb, us, XENIF_PAGE_SIZE);
    SHARED_RING_INIT(cs);
    FRONT_RING_INIT(&uf->conn, cs, XENIF_PAGE_SIZE);
    for (unsigned i = 0; i < URB_SLOTS; i++) {
        uf->slots[i].busy = uf->slots[i].unlink_pending = uf->slots[i].held = false;
        uf->slots[i].next_free = i + 1;
    }
    uf->free_head = 0;
    uf->in_flight = uf->busy_slots = 0;
    uf->unpushed = false;
    for (unsigned i = 0; i < CONN_SLOTS; i++)
        RING_GET_REQUEST(&uf->conn, i)->id = (uint16_t)i;
    uf->conn.req_prod_pvt = CONN_SLOTS;
    uf->conn_unpushed = true;
    uf->port_ec = fe_alloc_port(&uf->fe);
    return uf->port_ec < 0 ? -1 : 0;
}

/* xenhcd_talk_to_backend's transaction: the three keys. */
static int write_rings(void *arg, xenif_txn t)
{
    struct usbfront *uf = arg;
    char path[200];
    int rc = 0;
    snprintf(path, sizeof(path), "%s/urb-ring-ref", uf->fe.fe_path);
    rc |= xenif_xs_printf(uf->fe.xs, t, path, "%u", uf->urb_ref);
    snprintf(path, sizeof(path), "%s/conn-ring-ref", uf->fe.fe_path);
    rc |= xenif_xs_printf(uf->fe.xs, t, path, "%u", uf->conn_ref);
    snprintf(path, sizeof(path), "%s/event-channel", uf->fe.fe_path);
    rc |= xenif_xs_printf(uf->fe.xs, t, path, "%d", uf->port_ec);
    return rc ? -1 : 0;
}

/* The backend is ready for us (InitWait or later) -> rings published, conn
 * requests pushed, Connected -> the backend's Connected. */
static int connect_backend(struct usbfront *uf)
{
    /* Closed is no failure here: a backend that served an earlier frontend
     * goes back to InitWait once it sees us Initialising. */
    if (fe_wait_backend(&uf->fe, 1u << XenbusStateInitWait | 1u << XenbusStateInitialised |
                          1u << XenbusStateConnected, 0,
                      "waiting for InitWait") < 0)
        return -1;
    if (init_rings(uf) < 0 || fe_publish(&uf->fe, write_rings, uf) < 0 || uf_kick(uf) < 0 ||
        fe_set_state(&uf->fe, XenbusStateConnected) < 0)
        return -1;
    if (fe_wait_backend(&uf->fe, 1u << XenbusStateConnected,
                        1u << XenbusStateClosing | 1u << XenbusStateClosed,
                        "waiting for Connected") < 0)
        return -1;
    uf->connected = true;
    uf->last_deadline_check = fe_now_ns();
    fe_vlog(&uf->fe, "connected to %s (domain %u): %u port(s), USB %s, urb ring %u slots, "
            "event channel %d", uf->fe.be_path, uf->fe.be_id, uf->num_ports,
            uf->usb_ver == USB_VER_USB20 ? "2.0" : "1.1", (unsigned)URB_SLOTS,
            uf->port_ec);
    /* Nudge the backend once more now that it listens. */
    return fe_notify(&uf->fe, uf->port_ec);
}

struct usbfront *uf_open(const struct uf_opts *o, char *err, size_t errlen)
{
    struct usbfront *uf = calloc(1, sizeof(*uf));
    if (!uf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uf->o = *o;
    uf->port_ec = -1;
    if (fe_open(&uf->fe, &vusb_kind, o->devid, o->timeout_ms, o->verbose, err,
                errlen) < 0) {
        uf_close(uf);
        return NULL;
    }
    /* An earlier frontend died while connected: take the backend through
     * Closing and Closed first. */
    if (read_otherend(uf) < 0 ||
        fe_reset_earlier(&uf->fe, 1u << XenbusStateClosed | 1u << XenbusStateInitWait) < 0)
        goto fail;
    if (fe_set_state(&uf->fe, XenbusStateInitialising) < 0 || share_pages(uf) < 0 ||
        connect_backend(uf) < 0)
        goto fail;
    if (o->follow_suspend && fe_follow_suspend(&uf->fe) < 0)
        goto fail;
    return uf;
fail:
    snprintf(err, errlen, "%s", uf->fe.err);
    uf->fe.failed = false;
    uf_close(uf);
    return NULL;
}

/* ---- URBs ---------------------------------------------------------------- */

/* The page after an isochronous URB's data: its packet descriptors. */
static void *iso_page(const struct slot *s, const struct uf_urb *u)
{
    return (uint8_t *)s->pages +
           (size_t)uf_pages_for(u->page_off, u->len, u->scattered) *
               XENIF_PAGE_SIZE;
}

/* The first len bytes of u's buffer to or from the slot's pages, where
 * uf_fill_segments put them. */
static void copy_data(const struct slot *s, struct uf_urb *u, bool to_pages, uint32_t len)
{
    uint8_t *page = s->pages, *b = u->buf;
    uint32_t run = u->scattered ? XENIF_PAGE_SIZE - u->page_off : len;
    while (len) {
        uint32_t n = run < len ? run : len;
        if (to_pages)
            memcpy(page + u->page_off, b, n);
        else
            memcpy(b, page + u->page_off, n);
        page += XENIF_PAGE_SIZE;
        b += n;
        len -= n;
    }
}

static struct slot *take_slot(struct usbfront *uf, unsigned *id)
{
    if (uf->free_head >= URB_SLOTS || RING_FULL(&uf->urb))
        return NULL;
    *id = uf->free_head;
    struct slot *s = &uf->slots[*id];
    uf->free_head = s->next_free;
    s->busy = true;
    uf->busy_slots++;
    return s;
}

static void put_request(struct usbfront *uf, const struct usbif_urb_request *req)
{
    memcpy(RING_GET_REQUEST(&uf->urb, uf->urb.req_prod_pvt), req, sizeof(*req));
    uf->urb.req_prod_pvt++;
    uf->unpushed = true;
}

int uf_submit(struct usbfront *uf, struct uf_urb *u)
{
    if (uf->fe.failed) {
        errno = EIO;
        return -1;
    }
    if (u->len > UF_MAX_LEN || u->page_off >= XENIF_PAGE_SIZE ||
        uf_pages_for(u->page_off, u->len, u->scattered) > UF_MAX_SEGS ||
        usbif_pipeportnum(u->pipe) < 1 || usbif_pipeportnum(u->pipe) > uf->num_ports ||
        usbif_pipeunlink(u->pipe) || (u->len && !u->buf) ||
        (usbif_pipeisoc(u->pipe) &&
         (!u->iso || u->nr_packets == 0 || u->nr_packets > UF_MAX_ISO_PACKETS ||
          uf_pages_for(u->page_off, u->len, u->scattered) >= UF_MAX_SEGS))) {
        errno = EINVAL;
        return -1;
    }
    if (uf->suspending) {
        errno = EAGAIN;
        return -1;
    }
    if (!uf->connected) {
        errno = EIO;
        return -1;
    }
    unsigned id;
    struct slot *s = take_slot(uf, &id);
    if (!s) {
        errno = EAGAIN;
        return -1;
    }
    struct usbif_urb_request req;
    int nseg = uf_build_request(&req, (uint16_t)id, u, s->refs);
    s->in = usbif_pipein(u->pipe) != 0;
    if (!s->in && u->len)
        copy_data(s, u, true, u->len);
    if (usbif_pipeisoc(u->pipe))
        memcpy(iso_page(s, u), u->iso, u->nr_packets * sizeof(*u->iso));
    s->is_unlink = false;
    s->urb = u;
    s->length = (uint16_t)u->len;
    u->id = (uint16_t)id;
    u->status = 0;
    u->actual = 0;
    u->unlinked = false;
    u->submit_ns = fe_now_ns();
    put_request(uf, &req);
    uf->in_flight++;
    uf->stats.urbs++;
    uf->stats.segments += (unsigned)nseg;
    return 0;
}

int uf_unlink(struct usbfront *uf, struct uf_urb *u)
{
    if (uf->fe.failed || !uf->connected) {
        errno = EIO;
        return -1;
    }
    if (u->id >= URB_SLOTS || !uf->slots[u->id].busy || uf->slots[u->id].is_unlink ||
        uf->slots[u->id].urb != u) {
        errno = EINVAL;
        return -1;
    }
    unsigned id;
    struct slot *s = take_slot(uf, &id);
    if (!s) {
        errno = EAGAIN;
        return -1;
    }
    struct usbif_urb_request req;
    uf_build_unlink(&req, (uint16_t)id, u);
    s->is_unlink = true;
    s->urb = u;
    s->target = u->id;
    s->length = 0;
    uf->slots[u->id].unlink_pending = true;
    u->unlinked = true;
    put_request(uf, &req);
    uf->stats.unlinks++;
    return 0;
}

int uf_kick(struct usbfront *uf)
{
    int notify = 0, n;
    if (uf->unpushed) {
        uf->unpushed = false;
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&uf->urb, n);
        notify |= n;
    }
    if (uf->conn_unpushed) {
        uf->conn_unpushed = false;
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&uf->conn, n);
        notify |= n;
    }
    return notify ? fe_notify(&uf->fe, uf->port_ec) : 0;
}

static void release_slot(struct usbfront *uf, unsigned id)
{
    struct slot *s = &uf->slots[id];
    s->busy = false;
    s->urb = NULL;
    uf->busy_slots--;
    if (s->unlink_pending) {
        s->held = true;
        return;
    }
    s->next_free = uf->free_head;
    uf->free_head = id;
}

/* The unlink naming target was answered: its id may be used again. */
static void unlink_answered(struct usbfront *uf, unsigned target)
{
    struct slot *t = &uf->slots[target];
    t->unlink_pending = false;
    if (t->held) {
        t->held = false;
        t->next_free = uf->free_head;
        uf->free_head = target;
    }
}

static void complete(struct usbfront *uf, unsigned id, int status, uint32_t actual,
                     uint32_t error_count)
{
    struct slot *s = &uf->slots[id];
    struct uf_urb *u = s->urb;
    bool isoc = usbif_pipeisoc(u->pipe);
    /* isochronous packets lie at their offsets: the whole buffer comes back */
    uint32_t back = isoc && actual ? u->len : actual;
    if (s->in && back)
        copy_data(s, u, false, back);
    if (isoc)
        memcpy(u->iso, iso_page(s, u), u->nr_packets * sizeof(*u->iso));
    u->status = status;
    u->actual = actual;
    u->error_count = error_count;
    uf->in_flight--;
    if (uf->suspending)
        uf->stats.drained++;
    release_slot(uf, id);
    if (u->done)
        u->done(u);
}

/* xenhcd_urb_request_done: every response on the urb ring. */
static int take_urb_responses(struct usbfront *uf)
{
    int n = 0, more;
    do {
        RING_IDX rp = uf->urb.sring->rsp_prod;
        rmb();
        if (RING_RESPONSE_PROD_OVERFLOW(&uf->urb, rp)) {
            fe_fail(&uf->fe, "urb ring: backend produced %u responses at once (ring has %u)",
                    rp - uf->urb.rsp_cons, (unsigned)URB_SLOTS);
            return -1;
        }
        for (RING_IDX i = uf->urb.rsp_cons; i != rp; i++) {
            struct usbif_urb_response rsp;
            RING_COPY_RESPONSE(&uf->urb, i, &rsp);
            uf->urb.rsp_cons = i + 1;
            if (rsp.id >= URB_SLOTS || !uf->slots[rsp.id].busy) {
                fe_fail(&uf->fe, "urb ring: response with id %u that is not in flight", rsp.id);
                return -1;
            }
            struct slot *s = &uf->slots[rsp.id];
            if (s->is_unlink) {
                /* The unlink's own answer; the URB has (or gets) its own. */
                fe_vlog(&uf->fe, "unlink of id %u answered %d", s->target, rsp.status);
                unsigned target = s->target;
                release_slot(uf, rsp.id);
                unlink_answered(uf, target);
                continue;
            }
            char why[160];
            if (uf_check_urb_response(&rsp, s->length, why, sizeof(why)) < 0) {
                fe_fail(&uf->fe, "urb ring: response to id %u (pipe %#x): %s", rsp.id,
                        s->urb->pipe, why);
                return -1;
            }
            complete(uf, rsp.id, rsp.status, (uint32_t)rsp.actual_length,
                     (uint32_t)rsp.error_count);
            n++;
        }
        RING_FINAL_CHECK_FOR_RESPONSES(&uf->urb, more);
    } while (more);
    return n;
}

/* xenhcd_conn_notify: port changes; each id goes back on the ring. */
static int take_conn_responses(struct usbfront *uf)
{
    int more;
    do {
        RING_IDX rp = uf->conn.sring->rsp_prod;
        rmb();
        if (RING_RESPONSE_PROD_OVERFLOW(&uf->conn, rp)) {
            fe_fail(&uf->fe, "conn ring: backend produced %u responses at once",
                    rp - uf->conn.rsp_cons);
            return -1;
        }
        for (RING_IDX i = uf->conn.rsp_cons; i != rp; i++) {
            struct usbif_conn_response rsp;
            RING_COPY_RESPONSE(&uf->conn, i, &rsp);
            uf->conn.rsp_cons = i + 1;
            char why[160];
            if (uf_check_conn_response(&rsp, uf->num_ports, why, sizeof(why)) < 0) {
                fe_fail(&uf->fe, "conn ring: %s", why);
                return -1;
            }
            struct port *p = &uf->ports[rsp.portnum];
            bool same_device = p->carried != USBIF_SPEED_NONE && p->carried == rsp.speed;
            p->carried = USBIF_SPEED_NONE;
            if (rsp.speed != USBIF_SPEED_NONE && p->speed == USBIF_SPEED_NONE &&
                !same_device)
                p->connects++;
            else if (rsp.speed == USBIF_SPEED_NONE && p->speed != USBIF_SPEED_NONE)
                p->disconnects++;
            fe_vlog(&uf->fe, "port %u: %s speed (was %s)", rsp.portnum,
                    uf_speed_name(rsp.speed), uf_speed_name(p->speed));
            p->speed = rsp.speed;
            uf->stats.conn_events++;
            RING_GET_REQUEST(&uf->conn, uf->conn.req_prod_pvt)->id = rsp.id;
            uf->conn.req_prod_pvt++;
            uf->conn_unpushed = true;
        }
        RING_FINAL_CHECK_FOR_RESPONSES(&uf->conn, more);
    } while (more);
    return 0;
}

static int check_deadlines(struct usbfront *uf)
{
    uint64_t now = fe_now_ns(), limit = (uint64_t)uf->o.timeout_ms * 1000000ull;
    uf->last_deadline_check = now;
    for (unsigned id = 0; id < URB_SLOTS; id++) {
        struct slot *s = &uf->slots[id];
        /* An interrupt or bulk IN may wait for its device as long as it
         * likes; the caller unlinks it. Control transfers and OUTs must
         * answer. */
        if (s->busy && !s->is_unlink && now - s->urb->submit_ns > limit &&
            (usbif_pipectrl(s->urb->pipe) || !s->in)) {
            fe_fail(&uf->fe, "no response to URB id %u (pipe %#x, %u bytes) after %d ms", id,
                    s->urb->pipe, s->length, uf->o.timeout_ms);
            return -1;
        }
    }
    return 0;
}

/* ---- suspend / resume ---------------------------------------------------- */
/* The patched xen-hcd's freeze: no new URBs; the in-flight ones get drain_ms
 * to complete (interrupt INs are not waited for: they complete only when the
 * device has something to report, maybe never; in Linux, usbhid's suspend
 * kills them before xen-hcd's suspend runs), then are unlinked and the
 * backend gets the URB timeout to answer; what is still unanswered then is
 * failed with -ESHUTDOWN (the device may or may not have executed it).
 * Resumed elsewhere: same data pages and ring pages granted again to the new
 * backend, fresh rings, new event channel, handshake, and every port that
 * had a device must report it again. */

static void restart_deadlines(struct usbfront *uf)
{
    uint64_t now = fe_now_ns();
    for (unsigned id = 0; id < URB_SLOTS; id++)
        if (uf->slots[id].busy && !uf->slots[id].is_unlink)
            uf->slots[id].urb->submit_ns = now;
    uf->last_deadline_check = now;
}

/* Waits (bounded) until this domain's device/vusb/DEVID names a backend
 * on the new host. */
static int wait_controller(struct usbfront *uf)
{
    char path[160];
    snprintf(path, sizeof(path), "/local/domain/%u/device/vusb/%u/backend",
             xenif_xs_own_domid(uf->fe.xs), uf->o.devid);
    uint64_t end = fe_now_ns() + (uint64_t)uf->o.timeout_ms * 1000000ull;
    for (;;) {
        char *be = xenif_xs_read(uf->fe.xs, 0, path, NULL);
        free(be);
        if (be)
            return 0;
        if (fe_now_ns() >= end) {
            fe_fail(&uf->fe, "after the migration: no %s on the new host within %d ms (the "
                    "toolstack did not recreate the USB controller)", path,
                    uf->o.timeout_ms);
            return -1;
        }
        usleep(50000);
    }
}

static int resume_moved(struct usbfront *uf)
{
    uf->connected = false;
    if (fe_move_grants(&uf->fe) < 0)
        return -1;
    uf->port_ec = -1;
    /* Leave the old host first: its toolstack finishes (destroys the old
     * domain, its backend lets the device go) before a toolstack that
     * writes the controller on this host only after the migration does. */
    if (fe_reopen_handles(&uf->fe) < 0 || fe_leave_old_host(&uf->fe) < 0)
        return -1;
    if (wait_controller(uf) < 0 || read_otherend(uf) < 0)
        return -1;
    if (fe_regrant(&uf->fe, uf->urb_sring, 1) < 0 || fe_regrant(&uf->fe, uf->conn_sring, 1) < 0 ||
        fe_regrant(&uf->fe, uf->pool, URB_SLOTS * UF_MAX_SEGS) < 0)
        return -1;
    if (fe_start_initialising(&uf->fe) < 0)
        return -1;
    /* The new backend learns the ports anew: until it reports them they
     * count as they were, so a device it brings back is no new connect. */
    unsigned before[USBIF_MAX_PORTNR + 1];
    for (unsigned p = 1; p <= uf->num_ports; p++) {
        before[p] = uf->ports[p].carried = uf->ports[p].speed;
        uf->ports[p].speed = USBIF_SPEED_NONE;
    }
    if (connect_backend(uf) < 0)
        return -1;
    for (unsigned p = 1; p <= uf->num_ports; p++) {
        if (before[p] == USBIF_SPEED_NONE)
            continue;
        if (uf_wait_port(uf, p, true, uf->o.timeout_ms) < 0) {
            fe_fail(&uf->fe, "port %u had a %s-speed device before the migration; the new "
                    "backend did not report it within %d ms", p,
                    uf_speed_name(before[p]), uf->o.timeout_ms);
            return -1;
        }
        if (uf->ports[p].speed != before[p]) {
            fe_fail(&uf->fe, "port %u: %s speed before the migration, %s after", p,
                    uf_speed_name(before[p]), uf_speed_name(uf->ports[p].speed));
            return -1;
        }
    }
    return 0;
}

static int do_suspend(struct usbfront *uf)
{
    char why[512];
    fe_vlog(&uf->fe, "suspending with %u URB(s) unanswered", uf->in_flight);
    uf->stats.suspends++;
    /* uf->suspending stays set until we run again: no URB is taken, and
     * the polls of the resume do not suspend again. */
    int r = xsg_suspend(uf->fe.xsg, why, sizeof(why));
    if (r < 0) {
        fe_fail(&uf->fe, "%s", why);
        return -1;
    }
    if (r == XSG_CANCELLED) {
        fe_vlog(&uf->fe, "suspend cancelled: carrying on");
        uf->stats.cancelled++;
        restart_deadlines(uf);
    } else {
        fe_vlog(&uf->fe, "resumed as domain %u of %s", xsg_domid(uf->fe.xsg), xsg_dir(uf->fe.xsg));
        uf->connected = false;
        /* What the drain could not finish went with the old rings. */
        for (unsigned id = 0; id < URB_SLOTS; id++) {
            struct slot *s = &uf->slots[id];
            if (s->busy && !s->is_unlink)
                complete(uf, id, USBIF_STATUS_SHUTDOWN, 0, 0);
            else if (s->busy)
                release_slot(uf, id);
        }
        uf->resuming = true;
        r = resume_moved(uf);
        uf->resuming = false;
        if (r < 0)
            return -1;
        uf->stats.migrations++;
    }
    uf->suspending = false;
    uint64_t pause = fe_now_ns() - uf->susp_start_ns;
    if (pause > uf->stats.pause_ns_max)
        uf->stats.pause_ns_max = pause;
    return 0;
}

static bool only_interrupt_ins_in_flight(const struct usbfront *uf)
{
    for (unsigned id = 0; id < URB_SLOTS; id++) {
        const struct slot *s = &uf->slots[id];
        if (s->busy && (s->is_unlink || !usbif_pipeint(s->urb->pipe) ||
                        !usbif_pipein(s->urb->pipe)))
            return false;
    }
    return true;
}

/* Called from uf_poll while suspending: after drain_ms, or once only
 * interrupt INs are left, unlink what is still in flight (more as ring
 * slots free up) and give the backend the URB timeout to answer; suspend
 * once nothing is in flight, or then. */
static int suspend_step(struct usbfront *uf)
{
    uint64_t now = fe_now_ns();
    if (uf->busy_slots == 0)
        return do_suspend(uf);
    if (now < uf->drain_deadline_ns && !uf->drain_unlinked &&
        !only_interrupt_ins_in_flight(uf))
        return 0;
    if (!uf->drain_unlinked) {
        fe_vlog(&uf->fe, "drain: %u URB(s) still in flight after %.1f ms: unlinking",
                uf->in_flight, (double)(now - uf->susp_start_ns) / 1e6);
        uf->drain_unlinked = true;
        uf->unlink_deadline_ns = now + (uint64_t)uf->o.timeout_ms * 1000000ull;
    }
    for (unsigned id = 0; id < URB_SLOTS; id++) {
        struct slot *s = &uf->slots[id];
        if (s->busy && !s->is_unlink && !s->urb->unlinked) {
            if (uf_unlink(uf, s->urb) < 0) {
                if (errno == EAGAIN)
                    break; /* the ring is full: again when slots free up */
                return -1;
            }
            uf->stats.drain_unlinked++;
        }
    }
    if (now >= uf->unlink_deadline_ns)
        return do_suspend(uf);
    return uf_kick(uf);
}

static int suspend_check(struct usbfront *uf)
{
    if (uf->suspending || !xsg_suspend_requested(uf->fe.xsg))
        return 0;
    uf->suspending = true;
    uf->drain_unlinked = false;
    uf->susp_start_ns = fe_now_ns();
    uf->drain_deadline_ns = uf->susp_start_ns + (uint64_t)uf->o.drain_ms * 1000000ull;
    fe_vlog(&uf->fe, "suspend requested: draining %u URB(s)", uf->in_flight);
    return 0;
}

/* ---- polling ------------------------------------------------------------- */

int uf_poll(struct usbfront *uf, int timeout_ms)
{
    if (uf->fe.failed || uf_kick(uf) < 0)
        return -1;
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
                        : fe_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int done = 0;
    for (;;) {
        uint64_t events = uf->stats.conn_events;
        int n = take_urb_responses(uf);
        if (n < 0 || take_conn_responses(uf) < 0)
            return -1;
        done += n;
        bool port_news = uf->stats.conn_events != events;
        if (uf->suspending && !uf->resuming && suspend_step(uf) < 0)
            return -1;
        if (uf_kick(uf) < 0)
            return -1;
        uint64_t now = fe_now_ns();
        if (now - uf->last_deadline_check > 500000000ull && !uf->suspending &&
            check_deadlines(uf) < 0)
            return -1;
        if (done > 0 || port_news || now >= deadline)
            return done;
        struct pollfd p[3] = {
            { .fd = xenif_evtchn_fd(uf->fe.ec), .events = POLLIN },
            { .fd = xenif_xs_fd(uf->fe.xs), .events = POLLIN },
            { .fd = uf->fe.xsg && !uf->suspending ? xsg_fd(uf->fe.xsg) : -1,
              .events = POLLIN },
        };
        uint64_t left_ms = (deadline - now + 999999) / 1000000ull;
        int rc = poll(p, 3, left_ms > 100 ? 100 : (int)left_ms);
        if (rc < 0 && errno != EINTR) {
            fe_fail(&uf->fe, "poll: %s", strerror(errno));
            return -1;
        }
        if (rc > 0 && p[0].revents && fe_take_event(&uf->fe) < 0)
            return -1;
        if (rc > 0 && p[1].revents && fe_check_connected(&uf->fe) < 0)
            return -1;
        /* Last: a suspend may replace every handle polled above. */
        if (rc > 0 && p[2].revents && suspend_check(uf) < 0)
            return -1;
    }
}

int uf_wait_port(struct usbfront *uf, unsigned port, bool connected, int timeout_ms)
{
    uint64_t end = fe_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        if (port >= 1 && port <= uf->num_ports &&
            (uf->ports[port].speed != USBIF_SPEED_NONE) == connected)
            return 0;
        uint64_t now = fe_now_ns();
        if (now >= end) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (uf_poll(uf, (int)((end - now) / 1000000ull) + 1) < 0)
            return -1;
    }
}

struct run_state {
    bool done;
};

static void run_done(struct uf_urb *u)
{
    ((struct run_state *)u->opaque)->done = true;
}

int uf_run(struct usbfront *uf, struct uf_urb *u)
{
    struct run_state st = { false };
    u->done = run_done;
    u->opaque = &st;
    for (;;) {
        if (uf_submit(uf, u) == 0)
            break;
        if (errno != EAGAIN || uf_poll(uf, 100) < 0)
            return UF_STATUS_FAILED;
    }
    uint64_t end = fe_now_ns() + (uint64_t)uf->o.timeout_ms * 1000000ull;
    while (!st.done) {
        if (uf_poll(uf, 100) < 0)
            return UF_STATUS_FAILED;
        if (!st.done && fe_now_ns() > end && !u->unlinked) {
            /* An IN the device does not answer: take it back. */
            if (uf_unlink(uf, u) < 0 && errno != EAGAIN)
                return UF_STATUS_FAILED;
            end = fe_now_ns() + (uint64_t)uf->o.timeout_ms * 1000000ull;
        } else if (!st.done && u->unlinked && fe_now_ns() > end) {
            fe_fail(&uf->fe, "URB id %u (pipe %#x) unlinked after %d ms without an answer",
                    u->id, u->pipe, uf->o.timeout_ms);
            return UF_STATUS_FAILED;
        }
    }
    return u->status;
}

/* ---- close --------------------------------------------------------------- */

int uf_close(struct usbfront *uf)
{
    if (!uf)
        return 0;
    if (uf->connected && !uf->fe.failed) {
        uint64_t end = fe_now_ns() + (uint64_t)uf->o.timeout_ms * 1000000ull;
        while (uf->busy_slots > 0 && !uf->fe.failed && fe_now_ns() < end)
            uf_poll(uf, 100);
        if (uf->busy_slots > 0)
            fe_fail(&uf->fe, "%u URB(s) still in flight at close", uf->in_flight);
    }
    if (uf->fe.xs && uf->urb_sring)
        fe_close_backend(&uf->fe);
    uf->connected = false;
    if (uf->port_ec >= 0 && uf->fe.ec)
        xenif_evtchn_unbind(uf->fe.ec, (xenif_port)uf->port_ec);
    if (uf->fe.gnt) {
        fe_unshare_wait(&uf->fe, uf->urb_sring, 1, "the urb ring");
        fe_unshare_wait(&uf->fe, uf->conn_sring, 1, "the conn ring");
        fe_unshare_wait(&uf->fe, uf->pool, URB_SLOTS * UF_MAX_SEGS, "the data pages");
    }
    if (uf->stats.suspends)
        fprintf(stderr, "xenfront: vusb/%u: suspended %llu time(s): %llu "
                "migration(s), %llu cancelled; URBs completed while draining: "
                "%llu; unlinked when the drain timed out: %llu; longest pause "
                "%.1f ms\n", uf->o.devid, (unsigned long long)uf->stats.suspends,
                (unsigned long long)uf->stats.migrations,
                (unsigned long long)uf->stats.cancelled,
                (unsigned long long)uf->stats.drained,
                (unsigned long long)uf->stats.drain_unlinked,
                uf->stats.pause_ns_max / 1e6);
    int rc = fe_release(&uf->fe);
    free(uf);
    return rc;
}

/* ---- accessors ----------------------------------------------------------- */

unsigned uf_num_ports(const struct usbfront *uf) { return uf->num_ports; }
unsigned uf_usb_ver(const struct usbfront *uf) { return uf->usb_ver; }
unsigned uf_port_speed(const struct usbfront *uf, unsigned port)
{
    return port >= 1 && port <= uf->num_ports ? uf->ports[port].speed : USBIF_SPEED_NONE;
}
uint64_t uf_port_connects(const struct usbfront *uf, unsigned port)
{
    return port >= 1 && port <= uf->num_ports ? uf->ports[port].connects : 0;
}
uint64_t uf_port_disconnects(const struct usbfront *uf, unsigned port)
{
    return port >= 1 && port <= uf->num_ports ? uf->ports[port].disconnects : 0;
}
const struct uf_stats *uf_stats(const struct usbfront *uf) { return &uf->stats; }
const char *uf_error(const struct usbfront *uf) { return uf->fe.err; }
