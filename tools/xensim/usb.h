/* Toolstack USB commands (usb.c): usbctrl-attach, usbdev-attach,
 * usbdev-detach, usbctrl-detach, usb-list, written the way libxl 4.17
 * (tools/libs/light/libxl_usb.c) writes a PV USB controller into
 * xenstore. */
#ifndef NETBUS_XENSIM_USB_H
#define NETBUS_XENSIM_USB_H

#include <stdbool.h>
#include <stddef.h>

#define USB_MAX_PORTS 31        /* USBIF_MAX_PORTNR */
#define USB_DEVICE_MAX 200      /* longest port/N value we write */

/* argv[0] = the subcommand; exit status 0 ok, 1 failed, 2 bad usage. */
int xensim_cmd_usbctrl_attach(int argc, char **argv);
int xensim_cmd_usbctrl_detach(int argc, char **argv);
int xensim_cmd_usbdev_attach(int argc, char **argv);
int xensim_cmd_usbdev_detach(int argc, char **argv);
int xensim_cmd_usb_list(int argc, char **argv);

/* A controller as libxl describes it. */
struct usb_ctrl {
    unsigned devid;
    unsigned be;                /* backend domain */
    char type[8];               /* backend kind: "vusb" (type pv) or "qusb" */
    unsigned version;           /* usb-ver: 1 or 2 */
    unsigned ports;             /* num-ports: 1..31 */
    /* port/1..ports: "" (free), a bus id, VENDOR:PRODUCT[:SERIAL] or a
     * netbus:// URL */
    char port[USB_MAX_PORTS][USB_DEVICE_MAX];
};

struct xenif_xs;
/* Writes controller c of domain domid in one transaction as
 * libxl__device_usbctrl_add_xenstore does, ports included (a migrating
 * toolstack recreates it with its devices). -1 + errno (EEXIST: the
 * domain has that controller), message in err. */
int usb_ctrl_write(struct xenif_xs *xs, unsigned domid, const struct usb_ctrl *c,
                   char *err, size_t errlen);
/* Reads controller devid of domain domid from libxl's copy and its
 * backend directory. -1 + ENOENT if there is none. */
int usb_ctrl_read(struct xenif_xs *xs, unsigned domid, unsigned devid,
                  struct usb_ctrl *c);
/* Waits up to timeout_s for controller c of domain domid to reach InitWait
 * or Connected. -1 with why in err. */
int usb_ctrl_wait_ready(struct xenif_xs *xs, unsigned domid,
                        const struct usb_ctrl *c, unsigned timeout_s, char *err,
                        size_t errlen);
/* Removes controller c's nodes (backend, frontend, libxl's copy), after
 * waiting up to wait_s for its backend to close (the domain went). */
int usb_ctrl_remove(struct xenif_xs *xs, unsigned domid, const struct usb_ctrl *c,
                    unsigned wait_s);
/* A valid port/N value: a bus id ("1-2", "3-1.5"), VENDOR:PRODUCT[:SERIAL]
 * ("1209:4e42") or a device URL netbus://HOST[:PORT]/EXPORT. */
bool usb_device_name_ok(const char *s);

#endif
