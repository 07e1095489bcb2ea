/* usb_host: this host's USB devices, through one libusb context whose file
 * descriptors (usbfs device nodes, its timerfd, the hotplug monitor) are
 * watched by the process's event loop, so libusb never blocks netbusd and
 * never runs a thread of its own for events.
 *
 * One context per process, shared by every claimed device and taken with
 * usb_host_get / released with usb_host_put. Devices are named as libxl
 * names them in port/N (a bus id, "BUS-PORT[.PORT...]", e.g. "3-1.5") or
 * by identity, "VVVV:PPPP[:SERIAL]" (hex vendor and product, as lsusb
 * prints them). */
#ifndef NETBUS_VUSB_USB_HOST_H
#define NETBUS_VUSB_USB_HOST_H

#include <libusb.h>
#include <stdbool.h>
#include <stddef.h>

struct evloop;
struct usb_host;

/* Told when a device arrives on or leaves this host. */
struct usb_host_listener {
    void (*arrived)(struct usb_host_listener *l, libusb_device *dev);
    void (*left)(struct usb_host_listener *l, libusb_device *dev);
    struct usb_host_listener *next;
};

struct usb_host *usb_host_get(struct evloop *loop, char *err, size_t errlen);
void usb_host_put(struct usb_host *h);
libusb_context *usb_host_ctx(struct usb_host *h);

/* Hotplug: NULL callbacks are fine. Listeners are called from the event
 * loop, never from inside a libusb call of the listener's own. */
void usb_host_listen(struct usb_host *h, struct usb_host_listener *l);
void usb_host_unlisten(struct usb_host *h, struct usb_host_listener *l);

/* Runs libusb's event handling once without waiting (completions that are
 * ready get their callbacks). */
void usb_host_poll(struct usb_host *h);

/* A parsed device name. */
struct usb_host_match {
    bool by_path;
    unsigned bus;
    unsigned char ports[7];
    int nports;
    unsigned vendor, product;
    char serial[128]; /* "" = any */
};
/* 0, or -1 with a message saying what the accepted forms are. */
int usb_host_parse(const char *name, struct usb_host_match *m, char *err,
                   size_t errlen);
/* Whether dev is the named device; opens it briefly only when a serial
 * number has to be compared. */
bool usb_host_matches(const struct usb_host_match *m, libusb_device *dev);
/* The first present device matching m, referenced (libusb_unref_device), or
 * NULL. */
libusb_device *usb_host_find(struct usb_host *h, const struct usb_host_match *m);

#endif
