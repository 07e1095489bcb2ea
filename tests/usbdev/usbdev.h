/* usbdev: scripted USB devices behind umockdev's usbdevfs emulation.
 *
 * device.c   what the netbus test devices do (descriptors, requests,
 *            bulk loopback FIFO, HID reports), independent of usbfs
 * iso.c      nb-iso's paced isochronous streams
 * usbfs.c    the usbdevfs ioctls of one opened device node, URB queues and
 *            the readiness FIFO that makes the node pollable
 * testbed.c  sysfs/dev nodes, plug and unplug with uevents
 * control.c  the control socket (plug, unplug, stats)
 * main.c     options, running the wrapped command under the preload
 *
 * Threads: umockdev calls the ioctl handlers from its worker thread; timers
 * and the control socket run in the main thread. One recursive lock
 * (usbdev_lock) guards all emulator state. */
#ifndef USBDEV_H
#define USBDEV_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <umockdev.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>

enum usbdev_kind { USBDEV_BULK, USBDEV_HID, USBDEV_ISO, USBDEV_KINDS };

#define USBDEV_VENDOR 0x1209
#define USBDEV_BUS 1
#define USBDEV_FIFO_MAX (1u << 20)
#define USBDEV_HID_PERIOD_US 10000
#define USBDEV_ISO_MAX_PACKET 1024
#define USBDEV_ISO_MAX_PACKETS 128 /* usbfs's limit per URB */

/* The fixed description of one test device (devices.md). */
struct usbdev_model {
    const char *name;          /* nb-bulk, nb-hid, nb-iso */
    uint16_t product_id;
    int port;                  /* root port: sysfs name 1-<port> */
    int speed_mbps;            /* 480 or 12 */
    int usbfs_speed;           /* enum usb_device_speed for GET_SPEED */
    const uint8_t *descriptors; /* device descriptor + configuration */
    size_t descriptors_len;
    const uint8_t *report;     /* HID report descriptor, or NULL */
    size_t report_len;
    const char *strings[4];    /* 1 manufacturer, 2 product, 3 serial */
    const char *bound_driver;  /* kernel driver bound at plug, or NULL */
    uint8_t in_ep, out_ep;     /* endpoint addresses (0: none) */
    uint8_t in_type, out_type; /* USBDEVFS_URB_TYPE_* of the endpoints */
    uint8_t ep_alt;            /* the alternate setting that has them */
};

extern const struct usbdev_model usbdev_models[USBDEV_KINDS];

struct usbdev_client;

/* One transfer in flight. buf is local memory that usbfs.c syncs back to
 * the client when the URB is reaped (or the ioctl completed). */
struct usbdev_urb {
    struct usbdev_client *owner;
    uint8_t type;              /* USBDEVFS_URB_TYPE_* */
    uint8_t endpoint;
    uint8_t *buf;
    int length;
    int actual;
    int status;                /* 0 or -errno, as the kernel reports it */
    unsigned long client_addr; /* the URB's address in the client */
    UMockdevIoctlData *urb_data, *buf_data;
    UMockdevIoctlClient *sync; /* USBDEVFS_BULK: the ioctl to answer */
    guint timeout;             /* sync bulk timeout source */
    /* isochronous: the packets, inside urb_data (after struct usbdevfs_urb) */
    int nr_packets;
    struct usbdevfs_iso_packet_desc *iso;
    gint64 due_us;             /* when its last packet has gone */
};

/* One plugged (or unplugged but still open) device. */
struct usbdev_device {
    const struct usbdev_model *model;
    int devnum;
    bool present;
    char *syspath, *devnode, *fifo_path;
    UMockdevIoctlBase *handler;
    GList *clients;            /* struct usbdev_client */
    int ready_fd;              /* our end of the node's FIFO */
    bool ready;                /* a slot is free: clients see POLLOUT */
    uint8_t config;            /* bConfigurationValue */
    uint8_t alt;               /* interface 0's alternate setting */
    char driver[32];           /* interface 0's kernel driver, "" if none */
    struct usbdev_client *claimed_by;
    GQueue in_queue, out_queue; /* struct usbdev_urb waiting for the device */
    /* bulk loopback */
    uint8_t *fifo;
    size_t fifo_head, fifo_len;
    uint64_t counters[4];      /* OUT count, OUT bytes, IN count, IN bytes
                                * (nb-iso: packets, not transfers) */
    /* HID */
    uint32_t seq;
    gint64 last_report_us;
    guint report_timer;
    bool held;                 /* "hold": no report until "release" */
    /* isochronous */
    uint64_t out_sum;          /* sum of the OUT packets' FNV-1a 64 */
    guint iso_timer[2];        /* [0] OUT queue, [1] IN queue */
    gint64 iso_busy_until[2];  /* the last queued URB's due_us */
};

extern GRecMutex usbdev_lock;

/* device.c */
struct usbdev_device *device_new(const struct usbdev_model *model, int devnum);
void device_free(struct usbdev_device *d);
/* A control request on endpoint 0: 0 and *len bytes (IN: written to data,
 * at most the request's wLength) or -EPIPE for a stall. */
int device_control(struct usbdev_device *d, const uint8_t setup[8], uint8_t *data,
                   int *len);
/* Queues a bulk/interrupt URB; completes it now or later (usbfs_urb_done). */
int device_submit(struct usbdev_device *d, struct usbdev_urb *urb);
/* nb-hid: while held it has nothing to report, as a keyboard with no key
 * pressed; its interrupt INs wait. -EINVAL for a device without reports. */
int device_hold_reports(struct usbdev_device *d, bool hold);
/* Takes a URB out of the device queues (discard, client gone). */
bool device_cancel(struct usbdev_device *d, struct usbdev_urb *urb);
bool device_has_endpoint(const struct usbdev_device *d, uint8_t ep, uint8_t type);
/* The type of endpoint ep in the current setting, or -1 if it has none. */
int device_endpoint_type(const struct usbdev_device *d, uint8_t ep);
/* SET_INTERFACE of interface 0: 0, or -EINVAL for no such setting. */
int device_set_alt(struct usbdev_device *d, unsigned alt);

/* iso.c */
/* Checks an isochronous URB's packets: 0 or -errno as usbfs answers. */
int iso_check(const struct usbdev_urb *urb);
/* Queues it; it completes about 1 ms per packet later. */
void iso_submit(struct usbdev_device *d, struct usbdev_urb *urb);
/* A URB left a queue: the endpoint is busy only until the last one left. */
void iso_cancelled(struct usbdev_device *d);
void iso_stop(struct usbdev_device *d);
/* FNV-1a 64 of one packet: OUT packets add it to out_sum. */
uint64_t iso_packet_hash(const uint8_t *p, size_t len);

/* usbfs.c */
UMockdevIoctlBase *usbfs_handler_new(struct usbdev_device *d);
void usbfs_urb_done(struct usbdev_urb *urb, int status);
void usbfs_device_gone(struct usbdev_device *d);
/* SET_INTERFACE / SET_CONFIGURATION left a setting: its URBs end -ESHUTDOWN. */
void usbfs_endpoints_gone(struct usbdev_device *d);
int usbfs_ready_init(struct usbdev_device *d);

/* testbed.c */
void testbed_init(UMockdevTestbed *tb);
int testbed_plug(enum usbdev_kind kind);
int testbed_unplug(enum usbdev_kind kind);
struct usbdev_device *testbed_device(enum usbdev_kind kind);
void testbed_release(struct usbdev_device *d);
void testbed_config_changed(struct usbdev_device *d);
int usbdev_kind_by_name(const char *name);

/* control.c */
int control_listen(const char *path);

#endif
