/* The netbus test devices (/tmp/prompts/devices.md, mirrored in
 * tests/usbdev/README.md): descriptors, endpoint-0 requests, the bulk
 * loopback FIFO and the paced HID reports (nb-iso's streams: iso.c).
 * Nothing here knows usbfs: URBs come in through device_submit and leave
 * through usbfs_urb_done. */
#include "usbdev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LE16(v) (uint8_t)((v) & 0xff), (uint8_t)((v) >> 8)

static const uint8_t bulk_descriptors[] = {
    /* device: USB 2.0, class per interface, ep0 64 bytes, 1209:4e42 */
    18, 1, LE16(0x0200), 0, 0, 0, 64, LE16(USBDEV_VENDOR), LE16(0x4e42),
    LE16(0x0100), 1, 2, 3, 1,
    /* configuration 1: one interface, bus powered, 100 mA */
    9, 2, LE16(32), 1, 1, 0, 0x80, 50,
    /* interface 0: vendor class, two endpoints */
    9, 4, 0, 0, 2, 0xff, 0, 0, 0,
    7, 5, 0x01, 2, LE16(512), 0,
    7, 5, 0x81, 2, LE16(512), 0,
};

/* A vendor-defined 8-byte input report. */
static const uint8_t hid_report[] = {
    0x06, 0x00, 0xff,  /* usage page (vendor 0xff00) */
    0x09, 0x01,        /* usage 1 */
    0xa1, 0x01,        /* collection (application) */
    0x09, 0x01,        /*   usage 1 */
    0x15, 0x00,        /*   logical minimum 0 */
    0x26, 0xff, 0x00,  /*   logical maximum 255 */
    0x75, 0x08,        /*   report size 8 */
    0x95, 0x08,        /*   report count 8 */
    0x81, 0x02,        /*   input (data, variable, absolute) */
    0xc0,              /* end collection */
};

static const uint8_t hid_descriptors[] = {
    18, 1, LE16(0x0200), 0, 0, 0, 8, LE16(USBDEV_VENDOR), LE16(0x4e48),
    LE16(0x0100), 1, 2, 3, 1,
    9, 2, LE16(34), 1, 1, 0, 0x80, 50,
    9, 4, 0, 0, 1, 3, 0, 0, 0,
    /* HID 1.11, one report descriptor */
    9, 0x21, LE16(0x0111), 0, 1, 0x22, LE16(sizeof(hid_report)),
    7, 5, 0x81, 3, LE16(8), 10,
};

#define HID_CLASS_DESC_OFFSET (18 + 9 + 9)

/* Streaming needs alternate setting 1, as on audio and video devices. */
static const uint8_t iso_descriptors[] = {
    18, 1, LE16(0x0200), 0, 0, 0, 64, LE16(USBDEV_VENDOR), LE16(0x4e49),
    LE16(0x0100), 1, 2, 3, 1,
    9, 2, LE16(41), 1, 1, 0, 0x80, 50,
    9, 4, 0, 0, 0, 0xff, 0, 0, 0,
    9, 4, 0, 1, 2, 0xff, 0, 0, 0,
    7, 5, 0x82, 1, LE16(USBDEV_ISO_MAX_PACKET), 1,
    7, 5, 0x02, 1, LE16(USBDEV_ISO_MAX_PACKET), 1,
};

const struct usbdev_model usbdev_models[USBDEV_KINDS] = {
    [USBDEV_BULK] = {
        .name = "nb-bulk", .product_id = 0x4e42, .port = 1,
        .speed_mbps = 480, .usbfs_speed = 3 /* USB_SPEED_HIGH */,
        .descriptors = bulk_descriptors, .descriptors_len = sizeof(bulk_descriptors),
        .strings = { NULL, "netbus", "netbus bulk loopback", "NB-BULK-1" },
        .in_ep = 0x81, .out_ep = 0x01, .in_type = USBDEVFS_URB_TYPE_BULK,
        .out_type = USBDEVFS_URB_TYPE_BULK,
    },
    [USBDEV_HID] = {
        .name = "nb-hid", .product_id = 0x4e48, .port = 2,
        .speed_mbps = 12, .usbfs_speed = 2 /* USB_SPEED_FULL */,
        .descriptors = hid_descriptors, .descriptors_len = sizeof(hid_descriptors),
        .report = hid_report, .report_len = sizeof(hid_report),
        .strings = { NULL, "netbus", "netbus hid", "NB-HID-1" },
        .bound_driver = "usbhid",
        .in_ep = 0x81, .in_type = USBDEVFS_URB_TYPE_INTERRUPT,
    },
    [USBDEV_ISO] = {
        .name = "nb-iso", .product_id = 0x4e49, .port = 3,
        .speed_mbps = 480, .usbfs_speed = 3 /* USB_SPEED_HIGH */,
        .descriptors = iso_descriptors, .descriptors_len = sizeof(iso_descriptors),
        .strings = { NULL, "netbus", "netbus iso", "NB-ISO-1" },
        .in_ep = 0x82, .out_ep = 0x02, .in_type = USBDEVFS_URB_TYPE_ISO,
        .out_type = USBDEVFS_URB_TYPE_ISO, .ep_alt = 1,
    },
};

struct usbdev_device *device_new(const struct usbdev_model *model, int devnum)
{
    struct usbdev_device *d = g_new0(struct usbdev_device, 1);

    d->model = model;
    d->devnum = devnum;
    d->present = true;
    d->ready_fd = -1;
    d->config = 1;
    g_strlcpy(d->driver, model->bound_driver ? model->bound_driver : "", sizeof(d->driver));
    g_queue_init(&d->in_queue);
    g_queue_init(&d->out_queue);
    if (model->out_type == USBDEVFS_URB_TYPE_BULK)
        d->fifo = g_malloc(USBDEV_FIFO_MAX);
    return d;
}

void device_free(struct usbdev_device *d)
{
    if (d->report_timer)
        g_source_remove(d->report_timer);
    iso_stop(d);
    g_free(d->fifo);
    g_free(d->syspath);
    g_free(d->devnode);
    g_free(d->fifo_path);
    g_free(d);
}

int device_endpoint_type(const struct usbdev_device *d, uint8_t ep)
{
    const struct usbdev_model *m = d->model;

    if (d->alt != m->ep_alt)
        return -1;
    if (ep == m->in_ep)
        return m->in_type;
    if (m->out_ep && ep == m->out_ep)
        return m->out_type;
    return -1;
}

bool device_has_endpoint(const struct usbdev_device *d, uint8_t ep, uint8_t type)
{
    return device_endpoint_type(d, ep) == type;
}

int device_set_alt(struct usbdev_device *d, unsigned alt)
{
    if (alt > d->model->ep_alt)
        return -EINVAL;
    /* the kernel flushes the endpoints of the setting left */
    if (alt != d->alt)
        usbfs_endpoints_gone(d);
    d->alt = (uint8_t)alt;
    return 0;
}

/* --- endpoint 0 ---------------------------------------------------------- */

static int reply(uint8_t *data, int *len, const void *src, size_t n)
{
    if ((size_t)*len > n)
        *len = (int)n;
    memcpy(data, src, (size_t)*len);
    return 0;
}

static int string_descriptor(const struct usbdev_device *d, unsigned idx,
                             uint8_t *data, int *len)
{
    uint8_t desc[2 + 2 * 64];
    size_t n;

    if (idx == 0) {
        static const uint8_t langids[] = { 4, 3, LE16(0x0409) };
        return reply(data, len, langids, sizeof(langids));
    }
    if (idx > 3)
        return -EPIPE;
    n = strlen(d->model->strings[idx]);
    desc[0] = (uint8_t)(2 + 2 * n);
    desc[1] = 3;
    for (size_t i = 0; i < n; i++) {
        desc[2 + 2 * i] = (uint8_t)d->model->strings[idx][i];
        desc[3 + 2 * i] = 0;
    }
    return reply(data, len, desc, desc[0]);
}

static int get_descriptor(const struct usbdev_device *d, uint8_t recipient,
                          unsigned value, unsigned index, uint8_t *data, int *len)
{
    const struct usbdev_model *m = d->model;
    unsigned type = value >> 8, idx = value & 0xff;

    if (recipient == 1) { /* interface: the HID class descriptors */
        if (!m->report || index != 0)
            return -EPIPE;
        if (type == 0x21)
            return reply(data, len, m->descriptors + HID_CLASS_DESC_OFFSET, 9);
        if (type == 0x22)
            return reply(data, len, m->report, m->report_len);
        return -EPIPE;
    }
    if (recipient != 0)
        return -EPIPE;
    switch (type) {
    case 1:
        return reply(data, len, m->descriptors, 18);
    case 2:
        return idx == 0 ? reply(data, len, m->descriptors + 18, m->descriptors_len - 18)
                        : -EPIPE;
    case 3:
        return string_descriptor(d, idx, data, len);
    default:
        return -EPIPE;
    }
}

static bool valid_endpoint(const struct usbdev_device *d, unsigned ep)
{
    return ep <= 0xff && device_endpoint_type(d, (uint8_t)ep) >= 0;
}

static int standard_request(struct usbdev_device *d, const uint8_t *s, uint8_t *data,
                            int *len)
{
    uint8_t rt = s[0], req = s[1];
    unsigned value = s[2] | s[3] << 8, index = s[4] | s[5] << 8;
    static const uint8_t zero_status[2];

    switch (req) {
    case 6: /* GET_DESCRIPTOR */
        if (!(rt & 0x80))
            return -EPIPE;
        return get_descriptor(d, rt & 0x1f, value, index, data, len);
    case 0: /* GET_STATUS: not self powered, no remote wakeup, no halt */
        if (rt == 0x80 || (rt == 0x81 && index == 0) || (rt == 0x82 && valid_endpoint(d, index)))
            return reply(data, len, zero_status, 2);
        return -EPIPE;
    case 8: /* GET_CONFIGURATION */
        if (rt != 0x80)
            return -EPIPE;
        return reply(data, len, &d->config, 1);
    case 9: /* SET_CONFIGURATION */
        if (rt != 0x00 || value > 1)
            return -EPIPE;
        d->config = (uint8_t)value;
        device_set_alt(d, 0);
        *len = 0;
        return 0;
    case 11: /* SET_INTERFACE */
        if (rt != 0x01 || index != 0 || device_set_alt(d, value) < 0)
            return -EPIPE;
        *len = 0;
        return 0;
    case 1: /* CLEAR_FEATURE(ENDPOINT_HALT): no endpoint ever halts */
        if (rt != 0x02 || value != 0 || !valid_endpoint(d, index))
            return -EPIPE;
        *len = 0;
        return 0;
    default:
        return -EPIPE;
    }
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void hid_report_bytes(uint32_t seq, uint8_t report[8])
{
    static const uint8_t tail[4] = { 0xa5, 0x5a, 0xa5, 0x5a };

    for (int i = 0; i < 4; i++)
        report[i] = (uint8_t)(seq >> (8 * i));
    memcpy(report + 4, tail, 4);
}

int device_control(struct usbdev_device *d, const uint8_t setup[8], uint8_t *data,
                   int *len)
{
    unsigned value = setup[2] | setup[3] << 8, index = setup[4] | setup[5] << 8;

    switch (setup[0] & 0x60) {
    case 0x00:
        return standard_request(d, setup, data, len);
    case 0x40: /* vendor: the counters, the loopback's reset */
        if (!d->model->out_ep || value != 0 || index != 0)
            return -EPIPE;
        if (setup[0] == 0xc0 && setup[1] == 0x01) {
            /* nb-iso: a fifth, the OUT checksum, for a 40-byte read */
            uint8_t c[40];
            for (int i = 0; i < 4; i++)
                put_le64(c + 8 * i, d->counters[i]);
            put_le64(c + 32, d->out_sum);
            return reply(data, len, c, d->fifo ? 32 : sizeof(c));
        }
        if (d->fifo && setup[0] == 0x40 && setup[1] == 0x02) {
            d->fifo_head = d->fifo_len = 0;
            memset(d->counters, 0, sizeof(d->counters));
            *len = 0;
            return 0;
        }
        return -EPIPE;
    case 0x20: /* class: HID GET_REPORT (input report 0) */
        if (d->model->report && setup[0] == 0xa1 && setup[1] == 0x01 &&
            value == 0x0100 && index == 0) {
            uint8_t report[8];
            hid_report_bytes(d->seq, report);
            return reply(data, len, report, sizeof(report));
        }
        return -EPIPE;
    default:
        return -EPIPE;
    }
}

/* --- bulk loopback --------------------------------------------------------- */

static void fifo_put(struct usbdev_device *d, const uint8_t *src, size_t n)
{
    size_t tail = (d->fifo_head + d->fifo_len) % USBDEV_FIFO_MAX;
    size_t first = MIN(n, USBDEV_FIFO_MAX - tail);

    memcpy(d->fifo + tail, src, first);
    memcpy(d->fifo, src + first, n - first);
    d->fifo_len += n;
}

static void fifo_take(struct usbdev_device *d, uint8_t *dst, size_t n)
{
    size_t first = MIN(n, USBDEV_FIFO_MAX - d->fifo_head);

    memcpy(dst, d->fifo + d->fifo_head, first);
    memcpy(dst + first, d->fifo, n - first);
    d->fifo_head = (d->fifo_head + n) % USBDEV_FIFO_MAX;
    d->fifo_len -= n;
}

/* Moves data until neither queue can progress: OUTs in order while they
 * fit, INs in order while there is data. */
static void bulk_pump(struct usbdev_device *d)
{
    bool progress = true;

    while (progress) {
        struct usbdev_urb *u;
        progress = false;
        while ((u = g_queue_peek_head(&d->out_queue)) &&
               d->fifo_len + (size_t)u->length <= USBDEV_FIFO_MAX) {
            g_queue_pop_head(&d->out_queue);
            fifo_put(d, u->buf, (size_t)u->length);
            u->actual = u->length;
            d->counters[0]++;
            d->counters[1] += (uint64_t)u->length;
            usbfs_urb_done(u, 0);
            progress = true;
        }
        while ((u = g_queue_peek_head(&d->in_queue)) && d->fifo_len > 0) {
            g_queue_pop_head(&d->in_queue);
            u->actual = (int)MIN((size_t)u->length, d->fifo_len);
            fifo_take(d, u->buf, (size_t)u->actual);
            d->counters[2]++;
            d->counters[3] += (uint64_t)u->actual;
            usbfs_urb_done(u, 0);
            progress = true;
        }
    }
}

/* --- HID reports ------------------------------------------------------------ */

static gboolean hid_tick(gpointer data);

static void hid_schedule(struct usbdev_device *d)
{
    gint64 due, now = g_get_monotonic_time();

    if (d->report_timer || d->held || g_queue_is_empty(&d->in_queue))
        return;
    due = d->last_report_us ? d->last_report_us + USBDEV_HID_PERIOD_US : now;
    d->report_timer = g_timeout_add(due > now ? (guint)((due - now + 999) / 1000) : 0,
                                    hid_tick, d);
}

/* One report per period, and only to a waiting IN transfer. */
static gboolean hid_tick(gpointer data)
{
    struct usbdev_device *d = data;
    struct usbdev_urb *u;
    uint8_t report[8];

    g_rec_mutex_lock(&usbdev_lock);
    d->report_timer = 0;
    u = g_queue_pop_head(&d->in_queue);
    if (u) {
        if (u->length < (int)sizeof(report)) {
            /* the device sends 8 bytes: babble, the report is not consumed */
            hid_report_bytes(d->seq + 1, report);
            memcpy(u->buf, report, (size_t)u->length);
            u->actual = u->length;
            usbfs_urb_done(u, -EOVERFLOW);
        } else {
            hid_report_bytes(++d->seq, report);
            memcpy(u->buf, report, sizeof(report));
            u->actual = sizeof(report);
            d->last_report_us = g_get_monotonic_time();
            usbfs_urb_done(u, 0);
        }
    }
    hid_schedule(d);
    g_rec_mutex_unlock(&usbdev_lock);
    return G_SOURCE_REMOVE;
}

int device_hold_reports(struct usbdev_device *d, bool hold)
{
    if (!d->model->report)
        return -EINVAL;
    d->held = hold;
    if (hold && d->report_timer) {
        g_source_remove(d->report_timer);
        d->report_timer = 0;
    }
    hid_schedule(d);
    return 0;
}

int device_submit(struct usbdev_device *d, struct usbdev_urb *urb)
{
    if (urb->type == USBDEVFS_URB_TYPE_ISO) {
        iso_submit(d, urb);
        return 0;
    }
    g_queue_push_tail(urb->endpoint & 0x80 ? &d->in_queue : &d->out_queue, urb);
    if (d->fifo)
        bulk_pump(d);
    else
        hid_schedule(d);
    return 0;
}

bool device_cancel(struct usbdev_device *d, struct usbdev_urb *urb)
{
    bool found = g_queue_remove(&d->in_queue, urb) || g_queue_remove(&d->out_queue, urb);

    /* a blocked OUT leaving may let the next one in */
    if (found && d->fifo)
        bulk_pump(d);
    if (found && urb->type == USBDEVFS_URB_TYPE_ISO)
        iso_cancelled(d);
    return found;
}
