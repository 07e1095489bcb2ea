/* usbif_req: copy-out and validation of one usbif URB request (xen/io/
 * usbif.h) into a normalized struct usbif_req. Pure: no I/O, no grant
 * mapping; the host controller maps what the parsed request names, and the
 * fuzzer drives this directly.
 *
 * The slot layout is the same for 32- and 64-bit guests (148-byte request,
 * 16-byte response), so usbif has no ABI variants. */
#ifndef NETBUS_VUSB_USBIF_REQ_H
#define NETBUS_VUSB_USBIF_REQ_H

#include "target.h"

#include <stdbool.h>
#include <stdint.h>
#include <xen/io/usbif.h>

struct usbif_req {
    uint16_t id;
    bool unlink;
    uint16_t unlink_id;       /* unlink: the request to cancel */
    unsigned port;            /* 1..num-ports */
    unsigned devaddr;         /* the guest's address of the device */
    enum vusb_xfer_type type;
    uint8_t ep;               /* endpoint address, 0x80 set for IN */
    bool in;
    bool short_not_ok;
    uint32_t length;          /* data bytes to move (CTRL: wLength) */
    uint8_t setup[8];
    uint16_t interval, start_frame, nr_packets;
    unsigned nr_data_segs, nr_iso_segs;
    /* The data segments map to one run of bytes: every one but the first
     * starts at offset 0 and every one but the last ends at the page end. */
    bool contiguous;
    struct usbif_request_segment seg[USBIF_MAX_SEGMENTS_PER_REQUEST];
};

/* Parses the ring slot (sizeof(struct usbif_urb_request) bytes, read once
 * each) for a controller with nports ports. Returns 0, or a usbif status
 * (USBIF_STATUS_INVAL) with *why saying what is wrong; r->id is set either
 * way so the request can be answered. */
int usbif_req_parse(const void *slot, unsigned nports, struct usbif_req *r,
                    const char **why);

/* Bytes of isochronous packet descriptors a request carries. */
static inline uint32_t usbif_req_iso_bytes(const struct usbif_req *r)
{
    return (uint32_t)r->nr_packets * sizeof(struct vusb_iso_packet);
}

#endif
