/* usbfront: a userspace usbif (PV USB) frontend, run as a xensim (or Xen)
 * guest.
 *
 * Does what Linux's drivers/usb/host/xen-hcd.c does, in one thread:
 *   - handshake on device/vusb/DEVID: waits for the backend's InitWait,
 *     reads num-ports and usb-ver, shares the urb ring and the conn ring
 *     (one page each), allocates an unbound event channel, writes
 *     urb-ring-ref, conn-ring-ref and event-channel in one transaction,
 *     goes Initialised, waits for the backend's Connected, goes Connected;
 *   - conn ring: every slot holds a request (the ids 0..size-1); each
 *     response (portnum, speed; NONE = unplugged) updates the port and its
 *     id goes back on the ring, as xenhcd_conn_notify does;
 *   - URBs: control (setup packet in the request), bulk and interrupt, with
 *     the data in up to 16 granted page segments (usbif_request_segment
 *     gref/offset/length); each ring slot owns 16 pages granted once, so a
 *     URB's buffer can start anywhere in its first page (or, scattered, at
 *     the same place in each of its pages: not one run of bytes). Unlink is
 *     a ring request of its own (pipe unlink bit, unlink_id); the backend
 *     answers both the cancelled URB and the unlink. Every response is
 *     checked: id in flight, status, actual_length within the buffer;
 *   - suspend (xensim migration; what the patched xen-hcd does at freeze):
 *     stop taking URBs, let the in-flight ones complete (bounded), unlink
 *     the rest and wait for their answers (bounded), suspend. Resumed on
 *     another host: the same pages are granted again to the new backend,
 *     fresh rings and event channel are published, and the connected ports
 *     must come back on the conn ring; URBs then carry on, with the device
 *     keeping the address it was given;
 *   - close: Closing, wait for the backend to close, Closed, revoke.
 * A backend that misbehaves makes usbfront fail with a message
 * (uf_error()); the caller reports it and exits non-zero. */
#ifndef NETBUS_XENFRONT_USBFRONT_H
#define NETBUS_XENFRONT_USBFRONT_H

#include "xenif.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The ring macros need barriers only where they are used (usbfront.c). */
#include <xen/io/usbif.h>

#define UF_MAX_SEGS USBIF_MAX_SEGMENTS_PER_REQUEST
/* buffer_length is 16 bits wide. */
#define UF_MAX_LEN 65535u

/* ---- the wire: pure helpers (unit tested) -------------------------------- */

enum uf_type {
    UF_ISOC = USBIF_PIPE_TYPE_ISOC,
    UF_INTR = USBIF_PIPE_TYPE_INT,
    UF_CTRL = USBIF_PIPE_TYPE_CTRL,
    UF_BULK = USBIF_PIPE_TYPE_BULK,
};

/* The pipe of usbif.h: port bits 0-4, direction bit 7 (IN), device
 * address bits 8-14, endpoint bits 15-18, type bits 30-31. 0 if a field is
 * out of range (port 1..31, address 0..127, endpoint 0..15). */
uint32_t uf_pipe(unsigned port, unsigned addr, unsigned ep, bool in, enum uf_type type);

/* A setup packet (USB 2.0 9.3), little-endian fields. */
void uf_setup(uint8_t setup[8], uint8_t bm_request_type, uint8_t b_request,
              uint16_t w_value, uint16_t w_index, uint16_t w_length);

/* Fills the segments of req for len bytes in the pages refs[] (one per
 * page), seg[i] = {ref, offset, length}: one run of bytes from byte
 * page_off of the first page, only the first segment at a non-zero offset
 * (how xen-hcd grants a buffer); or scattered: every segment from byte
 * page_off of its page to the page's end (with page_off > 0 not one run of
 * bytes: the backend has to gather and scatter them). Returns the number
 * of segments, or -1 if it needs more than UF_MAX_SEGS or len > UF_MAX_LEN
 * or page_off >= a page. */
int uf_fill_segments(struct usbif_urb_request *req, const xenif_gref *refs,
                     unsigned page_off, uint32_t len, bool scattered);
/* Pages a buffer of len bytes at page_off (below a page) spans, laid out
 * as above. */
unsigned uf_pages_for(unsigned page_off, uint32_t len, bool scattered);

/* An isochronous packet: Linux's usb_iso_packet_descriptor, which is what
 * xen-hcd grants (offset and length in; actual and status out). */
struct uf_iso_packet {
    uint32_t offset, length, actual;
    int32_t status;
};
/* What one descriptor page holds. */
#define UF_MAX_ISO_PACKETS (XENIF_PAGE_SIZE / sizeof(struct uf_iso_packet))
/* start_frame for "as soon as possible" (xen-hcd: URB_ISO_ASAP -> -1). */
#define UF_ISO_ASAP 0xffffu
/* The isochronous part of a request whose data segments are filled:
 * number_of_packets, interval, start_frame ASAP and one descriptor
 * segment, refs[nr_data_segs] at offset 0 (the page after the data).
 * Returns the number of segments in all, or -1 (no packets, more than a
 * page of them, or no segment left). */
int uf_fill_iso(struct usbif_urb_request *req, const xenif_gref *refs,
                unsigned nr_packets, uint16_t interval);

struct uf_urb;
/* The ring request for URB u with this id, its data in the pages refs[]
 * (laid out by u->page_off and u->scattered): pipe, transfer_flags,
 * buffer_length, the setup packet (control), interval (interrupt),
 * interval and the packet descriptors' segment (isochronous:
 * uf_fill_iso), segments.
 * Returns the number of segments, or -1 (does not fit, or an unlink
 * pipe). */
int uf_build_request(struct usbif_urb_request *req, uint16_t id,
                     const struct uf_urb *u, const xenif_gref *refs);
/* The unlink request (id) for the URB target in flight. */
void uf_build_unlink(struct usbif_urb_request *req, uint16_t id,
                     const struct uf_urb *target);

/* A response to a URB whose request asked for buffer_length bytes:
 * 0 if it is well formed, else -1 with the reason in why (status positive
 * or beyond errno range, actual_length negative or past the buffer). */
int uf_check_urb_response(const struct usbif_urb_response *rsp,
                          uint16_t buffer_length, char *why, size_t whylen);
/* A conn ring response: id within the ring, portnum 1..num_ports, speed
 * NONE..HIGH. */
int uf_check_conn_response(const struct usbif_conn_response *rsp,
                           unsigned num_ports, char *why, size_t whylen);

const char *uf_speed_name(unsigned speed);
/* "stall (-EPIPE)", "ok", ...: for messages. */
const char *uf_status_name(int status);

/* Standard descriptors (USB 2.0 9.6), parsed from the wire. */
struct uf_device_desc {
    uint16_t bcd_usb, id_vendor, id_product, bcd_device;
    uint8_t dev_class, dev_subclass, dev_protocol, max_packet0;
    uint8_t i_manufacturer, i_product, i_serial, num_configurations;
};
/* 0 if buf (len bytes) is a device descriptor (18 bytes, type 1). */
int uf_parse_device_desc(const uint8_t *buf, size_t len, struct uf_device_desc *d);

struct uf_endpoint {
    uint8_t address;       /* bit 7: IN */
    uint8_t attributes;    /* bits 0-1: transfer type */
    uint16_t max_packet;
    uint8_t interval;
};
#define UF_MAX_ENDPOINTS 16
struct uf_config_desc {
    uint16_t total_length;
    uint8_t num_interfaces, value, attributes, max_power;
    uint8_t if_class, if_subclass, if_protocol; /* of interface 0, alt 0 */
    unsigned nr_endpoints;                        /* of interface 0, alt 0 */
    struct uf_endpoint ep[UF_MAX_ENDPOINTS];
    bool has_hid;                                 /* a HID class descriptor */
};
/* Walks a configuration descriptor with its interface, endpoint and class
 * descriptors; -1 with the reason if a descriptor's length is wrong or
 * runs past the buffer. */
int uf_parse_config_desc(const uint8_t *buf, size_t len, struct uf_config_desc *c,
                         char *why, size_t whylen);
/* A string descriptor (UTF-16LE) as ASCII ('?' for the rest); -1 if
 * malformed. */
int uf_parse_string_desc(const uint8_t *buf, size_t len, char *out, size_t outlen);

/* ---- the frontend -------------------------------------------------------- */

struct uf_opts {
    unsigned devid;           /* under device/vusb */
    int timeout_ms;           /* handshake steps, each URB, port waits */
    int drain_ms;             /* at a suspend: wait for in-flight URBs this
                               * long, then unlink them */
    bool follow_suspend;      /* take part in xensim suspend/migration */
    bool verbose;
};
void uf_opts_default(struct uf_opts *o);

struct uf_urb;
typedef void uf_done_fn(struct uf_urb *u);

/* One URB. buf holds len bytes (control: the data stage; wLength in the
 * setup must match len). done() is called from uf_poll with status
 * (USBIF_STATUS_* or another -errno) and actual set. Isochronous: iso holds
 * nr_packets descriptors (offset, length inside buf); at completion their
 * actual and status are the backend's, and an IN's whole buffer is copied
 * back (short packets leave gaps). */
struct uf_urb {
    uint32_t pipe;
    uint8_t setup[8];          /* UF_CTRL */
    uint16_t interval;         /* UF_INTR and UF_ISOC, in (micro)frames */
    unsigned nr_packets;       /* UF_ISOC */
    struct uf_iso_packet *iso; /* UF_ISOC */
    bool short_not_ok;         /* USBIF_SHORT_NOT_OK */
    void *buf;
    uint32_t len;
    unsigned page_off;         /* where in its first page the data starts */
    bool scattered;            /* and in every other page (uf_fill_segments) */
    uf_done_fn *done;
    void *opaque;
    /* results */
    int status;
    uint32_t actual;
    uint32_t error_count;      /* UF_ISOC: packets that failed */
    bool unlinked;             /* an unlink was sent for it */
    /* set by usbfront */
    uint16_t id;
    uint64_t submit_ns;
};

struct uf_stats {
    uint64_t urbs, unlinks, conn_events, segments;
    uint64_t suspends, migrations, cancelled;
    uint64_t drained;          /* URBs that completed while suspending */
    uint64_t drain_unlinked;   /* URBs unlinked because the drain timed out */
    uint64_t pause_ns_max;
};

struct usbfront;

struct usbfront *uf_open(const struct uf_opts *o, char *err, size_t errlen);
/* Clean close; returns 0 or -1 (message printed). Frees uf either way. */
int uf_close(struct usbfront *uf);

unsigned uf_num_ports(const struct usbfront *uf);
unsigned uf_usb_ver(const struct usbfront *uf);
/* USBIF_SPEED_* of port 1..num_ports as the conn ring last said. */
unsigned uf_port_speed(const struct usbfront *uf, unsigned port);
/* Times the port was reported connected (plugged) and disconnected. */
uint64_t uf_port_connects(const struct usbfront *uf, unsigned port);
uint64_t uf_port_disconnects(const struct usbfront *uf, unsigned port);
const struct uf_stats *uf_stats(const struct usbfront *uf);
const char *uf_error(const struct usbfront *uf);

/* Queues a URB. 0; -1 with errno EAGAIN (ring full, or suspending: call
 * uf_poll), EINVAL (does not fit 16 segments, bad pipe), EIO (failed). */
int uf_submit(struct usbfront *uf, struct uf_urb *u);
/* Sends an unlink for u (in flight). 0, or -1 with EAGAIN/EINVAL/EIO. */
int uf_unlink(struct usbfront *uf, struct uf_urb *u);
/* Pushes queued requests and notifies. */
int uf_kick(struct usbfront *uf);
/* Waits up to timeout_ms for responses and conn events and handles them;
 * returns once a URB completed or a port changed: the number of URBs
 * completed, or -1 when the device failed. On
 * xensim it also answers suspend requests and may return after a
 * migration. */
int uf_poll(struct usbfront *uf, int timeout_ms);
/* Polls until port's speed satisfies connected (true: not NONE) or the
 * timeout; 0 or -1 (timeout: errno ETIMEDOUT, no failure recorded). */
int uf_wait_port(struct usbfront *uf, unsigned port, bool connected, int timeout_ms);
/* Runs one URB to completion (the other URBs in flight carry on). Returns
 * its status, or -1000 when the device failed or it got no answer in time. */
#define UF_STATUS_FAILED (-1000)
int uf_run(struct usbfront *uf, struct uf_urb *u);

#endif
