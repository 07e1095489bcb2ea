/* usbif_req: parsing of URB requests (see usbif_req.h). */
#include "usbif_req.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PAGE 4096u

_Static_assert(sizeof(struct usbif_urb_request) == 148, "usbif request layout");
_Static_assert(sizeof(struct usbif_urb_response) == 16, "usbif response layout");
_Static_assert(sizeof(struct vusb_iso_packet) == 16,
               "Linux usb_iso_packet_descriptor layout");

static int invalid(const char **why, const char *what)
{
    *why = what;
    return USBIF_STATUS_INVAL;
}

/* Checks the segments and whether the data ones form one run of bytes. */
static int check_segments(struct usbif_req *r, const char **why)
{
    unsigned total = r->nr_data_segs + r->nr_iso_segs;
    if (total > USBIF_MAX_SEGMENTS_PER_REQUEST)
        return invalid(why, "more than 16 segments");
    uint32_t data = 0;
    r->contiguous = true;
    for (unsigned i = 0; i < total; i++) {
        const struct usbif_request_segment *s = &r->seg[i];
        if (s->length == 0 || (uint32_t)s->offset + s->length > PAGE)
            return invalid(why, "segment outside its page");
        if (i >= r->nr_data_segs)
            continue;
        data += s->length;
        if ((i > 0 && s->offset != 0) ||
            (i + 1 < r->nr_data_segs && s->offset + s->length != PAGE))
            r->contiguous = false;
    }
    /* buffer_length is 16 bits wide and Linux's xen-hcd stores the URB's
     * transfer_buffer_length in it unchecked: a 64 KiB transfer (16 whole
     * pages, what usb-storage sends by default) arrives with buffer_length
     * 0. The segments carry the true length then. */
    if (data > UINT16_MAX && (data & UINT16_MAX) == r->length)
        r->length = data;
    if (data != r->length)
        return invalid(why, "segment lengths do not add up to buffer_length");
    return 0;
}

static int parse_iso(struct usbif_req *r, const struct usbif_urb_request *q,
                     const char **why)
{
    r->interval = q->u.isoc.interval;
    r->start_frame = q->u.isoc.start_frame;
    r->nr_packets = q->u.isoc.number_of_packets;
    r->nr_iso_segs = q->u.isoc.nr_frame_desc_segs;
    if (r->nr_packets == 0 || r->nr_packets > VUSB_MAX_ISO_PACKETS)
        return invalid(why, "bad number of isochronous packets");
    uint32_t desc = 0;
    for (unsigned i = 0; i < r->nr_iso_segs &&
                         r->nr_data_segs + i < USBIF_MAX_SEGMENTS_PER_REQUEST; i++)
        desc += q->seg[r->nr_data_segs + i].length;
    if (desc != usbif_req_iso_bytes(r))
        return invalid(why, "isochronous descriptor segments do not hold "
                       "number_of_packets descriptors");
    return 0;
}

int usbif_req_parse(const void *slot, unsigned nports, struct usbif_req *r,
                    const char **why)
{
    struct usbif_urb_request q;
    memcpy(&q, slot, sizeof(q)); /* the guest may change the slot meanwhile */
    memset(r, 0, sizeof(*r));
    r->id = q.id;
    r->port = usbif_pipeportnum(q.pipe);
    if (r->port == 0 || r->port > nports)
        return invalid(why, "no such port");
    if (usbif_pipeunlink(q.pipe)) {
        r->unlink = true;
        r->unlink_id = q.u.unlink.unlink_id;
        return 0;
    }
    r->devaddr = usbif_pipedevice(q.pipe);
    r->type = (enum vusb_xfer_type)usbif_pipetype(q.pipe);
    r->in = usbif_pipein(q.pipe) != 0;
    r->ep = (uint8_t)(usbif_pipeendpoint(q.pipe) | (r->in ? 0x80 : 0));
    r->short_not_ok = q.transfer_flags & USBIF_SHORT_NOT_OK;
    r->length = q.buffer_length;
    r->nr_data_segs = q.nr_buffer_segs;
    if (r->nr_data_segs > USBIF_MAX_SEGMENTS_PER_REQUEST)
        return invalid(why, "more than 16 segments");
    memcpy(r->seg, q.seg, sizeof(r->seg));
    int st = 0;
    switch (r->type) {
    case VUSB_XFER_CTRL: {
        memcpy(r->setup, q.u.ctrl, sizeof(r->setup));
        /* Direction and data length come from the setup packet. */
        uint32_t wlength = r->setup[6] | (uint32_t)r->setup[7] << 8;
        r->in = r->setup[0] & 0x80;
        r->ep = (uint8_t)(r->ep & 0x0f) | (r->in ? 0x80 : 0);
        if (wlength > r->length)
            return invalid(why, "control wLength beyond the buffer");
        st = check_segments(r, why);
        r->length = wlength;
        return st;
    }
    case VUSB_XFER_INT:
        r->interval = q.u.intr.interval;
        break;
    case VUSB_XFER_ISO:
        st = parse_iso(r, &q, why);
        break;
    case VUSB_XFER_BULK:
        break;
    }
    if (st == 0 && (r->ep & 0x0f) == 0)
        st = invalid(why, "endpoint 0 is for control transfers");
    return st ? st : check_segments(r, why);
}
