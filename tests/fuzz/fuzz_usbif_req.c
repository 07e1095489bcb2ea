/* libFuzzer: arbitrary bytes as one usbif urb ring slot. Byte 0 picks the
 * controller's number of ports (1..31); the next 148 bytes are the slot
 * (zero padded). A request the parser accepts must be one the host
 * controller can map and hand to a target safely: its port exists, its
 * segments are at most 16 and lie inside their pages, the data segments
 * hold the buffer, the contiguous flag is true only for one run of bytes,
 * the isochronous descriptor segments hold exactly the packets'
 * descriptors. A refusal is INVAL with a reason, and the id is kept. */
#include "backend/vusb/usbif_req.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_accepted(const struct usbif_urb_request *q, unsigned nports,
                           const struct usbif_req *r)
{
    if (r->port == 0 || r->port > nports)
        abort();
    if (r->unlink) {
        if (r->unlink_id != q->u.unlink.unlink_id)
            abort();
        return;
    }
    unsigned total = r->nr_data_segs + r->nr_iso_segs;
    if (total > USBIF_MAX_SEGMENTS_PER_REQUEST)
        abort();
    uint32_t data = 0, desc = 0;
    bool run = true;
    for (unsigned i = 0; i < total; i++) {
        const struct usbif_request_segment *s = &r->seg[i];
        if (s->length == 0 || s->offset + (uint32_t)s->length > 4096)
            abort();
        if (i >= r->nr_data_segs) {
            desc += s->length;
            continue;
        }
        data += s->length;
        if ((i > 0 && s->offset != 0) ||
            (i + 1 < r->nr_data_segs && s->offset + s->length != 4096))
            run = false;
    }
    if (r->contiguous && !run)
        abort();
    /* buffer_length wraps at 64 KiB (see usbif_req.c) */
    if ((data & 0xffff) != q->buffer_length || r->length > VUSB_MAX_DATA)
        abort();
    if (r->type == VUSB_XFER_CTRL) {
        uint32_t wlength = r->setup[6] | (uint32_t)r->setup[7] << 8;
        if (r->length != wlength || r->length > data ||
            r->in != ((r->setup[0] & 0x80) != 0) ||
            ((r->ep & 0x80) != 0) != r->in)
            abort();
    } else {
        if (r->length != data || (r->ep & 0x0f) == 0)
            abort();
    }
    if (r->type == VUSB_XFER_ISO) {
        if (r->nr_packets == 0 || r->nr_packets > VUSB_MAX_ISO_PACKETS ||
            desc != usbif_req_iso_bytes(r))
            abort();
    } else if (r->nr_iso_segs != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned nports = data[0] % USBIF_MAX_PORTNR + 1;
    data++;
    size--;
    struct usbif_urb_request q;
    memset(&q, 0, sizeof(q));
    memcpy(&q, data, size < sizeof(q) ? size : sizeof(q));

    struct usbif_req r;
    const char *why = NULL;
    int st = usbif_req_parse(&q, nports, &r, &why);
    if (r.id != q.id)
        abort();
    if (st != 0) {
        if (st != USBIF_STATUS_INVAL || !why)
            abort();
        return 0;
    }
    check_accepted(&q, nports, &r);
    return 0;
}
