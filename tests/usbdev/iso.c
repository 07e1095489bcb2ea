/* nb-iso's isochronous streams (devices.md): each endpoint's URBs are
 * served in order, one packet per millisecond (a frame; microframe timing
 * does not matter here), so a URB of N packets completes about N ms after
 * the previous one on its endpoint, or after its submission.
 *   IN: a packet of length L delivers L bytes: the little-endian uint32
 *       packet sequence number, then bytes (seq + offset) & 0xff; the
 *       sequence goes up by one per packet delivered.
 *   OUT: packets are counted, their bytes summed, and their FNV-1a 64
 *       added to out_sum (GET_COUNTERS' fifth value).
 * counters[] count packets here: OUT packets, OUT bytes, IN packets, IN
 * bytes. */
#include "usbdev.h"

#include <errno.h>

#define ISO_PACKET_US 1000

int iso_check(const struct usbdev_urb *urb)
{
    if (urb->nr_packets < 1 || urb->nr_packets > USBDEV_ISO_MAX_PACKETS)
        return -EINVAL;
    /* usb_submit_urb: no packet above the endpoint's wMaxPacketSize */
    for (int i = 0; i < urb->nr_packets; i++)
        if (urb->iso[i].length > USBDEV_ISO_MAX_PACKET)
            return -EMSGSIZE;
    return 0;
}

uint64_t iso_packet_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static GQueue *queue_of(struct usbdev_device *d, int in)
{
    return in ? &d->in_queue : &d->out_queue;
}

static void run_packets(struct usbdev_device *d, struct usbdev_urb *u)
{
    uint8_t *p = u->buf;

    u->actual = 0;
    for (int i = 0; i < u->nr_packets; i++) {
        unsigned len = u->iso[i].length;
        if (u->endpoint & 0x80) {
            uint32_t seq = (uint32_t)d->counters[2];
            for (unsigned b = 0; b < len; b++)
                p[b] = b < 4 ? (uint8_t)(seq >> (8 * b)) : (uint8_t)(seq + b);
            d->counters[2]++;
            d->counters[3] += len;
        } else {
            d->counters[0]++;
            d->counters[1] += len;
            d->out_sum += iso_packet_hash(p, len);
        }
        u->iso[i].actual_length = len;
        u->iso[i].status = 0;
        u->actual += (int)len;
        p += len;
    }
}

static void schedule(struct usbdev_device *d, int in);

/* Completes the endpoint's URBs whose packets have all gone. */
static void tick(struct usbdev_device *d, int in)
{
    gint64 now = g_get_monotonic_time();
    struct usbdev_urb *u;

    g_rec_mutex_lock(&usbdev_lock);
    d->iso_timer[in] = 0;
    while ((u = g_queue_peek_head(queue_of(d, in))) && u->due_us <= now) {
        g_queue_pop_head(queue_of(d, in));
        run_packets(d, u);
        usbfs_urb_done(u, 0);
    }
    schedule(d, in);
    g_rec_mutex_unlock(&usbdev_lock);
}

static gboolean tick_out(gpointer data)
{
    tick(data, 0);
    return G_SOURCE_REMOVE;
}

static gboolean tick_in(gpointer data)
{
    tick(data, 1);
    return G_SOURCE_REMOVE;
}

static void schedule(struct usbdev_device *d, int in)
{
    struct usbdev_urb *u = g_queue_peek_head(queue_of(d, in));
    gint64 now = g_get_monotonic_time();

    if (d->iso_timer[in] || !u)
        return;
    d->iso_timer[in] = g_timeout_add(u->due_us > now ? (guint)((u->due_us - now + 999) / 1000) : 0,
                                     in ? tick_in : tick_out, d);
}

void iso_submit(struct usbdev_device *d, struct usbdev_urb *u)
{
    int in = (u->endpoint & 0x80) != 0;
    gint64 start = MAX(g_get_monotonic_time(), d->iso_busy_until[in]);

    u->due_us = start + (gint64)u->nr_packets * ISO_PACKET_US;
    d->iso_busy_until[in] = u->due_us;
    g_queue_push_tail(queue_of(d, in), u);
    schedule(d, in);
}

void iso_cancelled(struct usbdev_device *d)
{
    for (int in = 0; in < 2; in++) {
        struct usbdev_urb *last = g_queue_peek_tail(queue_of(d, in));
        d->iso_busy_until[in] = last ? last->due_us : 0;
        /* the timer may have been set for the one that left */
        if (d->iso_timer[in])
            g_source_remove(d->iso_timer[in]);
        d->iso_timer[in] = 0;
        schedule(d, in);
    }
}

void iso_stop(struct usbdev_device *d)
{
    for (int in = 0; in < 2; in++) {
        if (d->iso_timer[in])
            g_source_remove(d->iso_timer[in]);
        d->iso_timer[in] = 0;
    }
}
