/* target: where a virtual USB port's transfers go. The ring code hands a
 * target transfers that are already checked (endpoint, direction, lengths)
 * with a flat data buffer (mapped guest pages when the guest's segments are
 * contiguous, else a bounce buffer); the target completes them
 * asynchronously from the event loop through xfer->done. target_libusb.c
 * claims a device of this host; a netbus export on another host plugs in
 * behind the same ops.
 *
 * Statuses are Linux URB statuses (0 or -errno), the ones usbif can carry:
 * -EPIPE stall, -ENODEV device gone, -EPROTO transfer error, -EOVERFLOW
 * babble, -ECONNRESET unlinked, -ESHUTDOWN the target closed. */
#ifndef NETBUS_VUSB_TARGET_H
#define NETBUS_VUSB_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* As usbif's pipe type field. */
enum vusb_xfer_type {
    VUSB_XFER_ISO = 0,
    VUSB_XFER_INT = 1,
    VUSB_XFER_CTRL = 2,
    VUSB_XFER_BULK = 3,
};

/* As usbif's conn ring speeds (USBIF_SPEED_*). */
enum vusb_speed {
    VUSB_SPEED_NONE = 0, /* nothing plugged in */
    VUSB_SPEED_LOW = 1,
    VUSB_SPEED_FULL = 2,
    VUSB_SPEED_HIGH = 3,
};

/* One isochronous packet; the layout of Linux's usb_iso_packet_descriptor,
 * which is what xen-hcd grants to the backend. */
struct vusb_iso_packet {
    uint32_t offset, length, actual;
    int32_t status;
};

#define VUSB_MAX_ISO_PACKETS 1024
#define VUSB_MAX_DATA 65536u /* 16 segments of a page (buffer_length
                                 * is 16 bits: see usbif_req.c) */

struct vusb_xfer {
    enum vusb_xfer_type type;
    uint8_t ep;              /* endpoint address, 0x80 set for IN */
    uint8_t setup[8];        /* CTRL: the setup packet */
    bool short_not_ok;
    uint16_t interval;       /* INT/ISO, ms */
    uint16_t start_frame;
    uint32_t length;         /* data bytes (CTRL: wLength) */
    uint8_t *data;           /* length bytes; IN data is written here */
    unsigned nr_iso;
    struct vusb_iso_packet *iso;
    /* results */
    int status;
    uint32_t actual;
    uint32_t error_count;    /* ISO: packets that failed */
    void (*done)(struct vusb_xfer *x);
    void *target_priv;
};

struct vusb_target;

struct vusb_target_ops {
    /* Queues x; it completes later through x->done. -errno when it cannot be
     * queued (done is then not called). */
    int (*submit)(struct vusb_target *t, struct vusb_xfer *x);
    /* Asks for x to be cancelled: it completes (soon) with -ECONNRESET, or
     * normally if it was already done on the device. */
    void (*cancel)(struct vusb_target *t, struct vusb_xfer *x);
    unsigned (*inflight)(const struct vusb_target *t);
    /* Blocks (bounded) until every submitted transfer has completed. */
    void (*drain)(struct vusb_target *t);
    /* Cancels what is in flight, waits for it (done is called for each) and
     * releases the device. */
    void (*close)(struct vusb_target *t);
};

struct vusb_target {
    const struct vusb_target_ops *ops;
    enum vusb_speed speed;   /* VUSB_SPEED_NONE while the device is gone */
    /* The device went away or came back (speed changed); set by the owner. */
    void (*changed)(void *opaque);
    void *opaque;
    /* Set before close when the device goes to the guest's next backend
     * rather than back to the host: its kernel drivers are not reattached. */
    bool keep_detached;
};

const char *vusb_speed_name(enum vusb_speed s);

struct evloop;

/* Claims a device of this host (named as usb_host.h says): detaches the
 * kernel's drivers from its interfaces and claims them, follows it through
 * unplug and replug. where names the port in log lines. NULL with a reason
 * in err and errno ENODEV (no such device), EBUSY (another program or
 * backend holds it), EACCES or EIO. */
struct vusb_target *vusb_target_libusb_open(const char *name,
                                            struct evloop *loop,
                                            const char *where, char *err,
                                            size_t errlen);

#endif
