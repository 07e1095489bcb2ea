/* usbdev: scripted USB devices behind umockdev's usbdevfs emulation.
 *
 * device.c   what the two netbus test devices do (descriptors, requests,
 *            bulk loopback FIFO, HID reports), independent of usbfs
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

enum usbdev_kind { USBDEV_BULK, USBDEV_HID, USBDEV_KINDS };

#define USBDEV_VENDOR 0x1209
#define USBDEV_BUS 1
#define USBDEV_FIFO_MAX (1u << 20)
#define USBDEV_HID_PERIOD_US 10000

/* The fixed description of one test device (devices.md). */
struct usbdev_model {
    const char *name;          /* nb-bulk, nb-hid */
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
    uint8_t in_type;           /* USBDEVFS_URB_TYPE_* of the IN endpoint */
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
    char driver[32];           /* interface 0's kernel driver, "" if none */
    struct usbdev_client *claimed_by;
    GQueue in_queue, out_queue; /* struct usbdev_urb waiting for the device */
    /* bulk loopback */
    uint8_t *fifo;
    size_t fifo_head, fifo_len;
    uint64_t counters[4];      /* OUT count, OUT bytes, IN count, IN bytes */
    /* HID */
    uint32_t seq;
    gint64 last_report_us;
    guint report_timer;
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
/* Takes a URB out of the device queues (discard, client gone). */
bool device_cancel(struct usbdev_device *d, struct usbdev_urb *urb);
bool device_has_endpoint(const struct usbdev_device *d, uint8_t ep, uint8_t type);

/* usbfs.c */
UMockdevIoctlBase *usbfs_handler_new(struct usbdev_device *d);
void usbfs_urb_done(struct usbdev_urb *urb, int status);
void usbfs_device_gone(struct usbdev_device *d);
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
