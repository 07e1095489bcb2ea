/* vusb: the usbif (PVUSB) device class, for backend types "vusb" (libxl's
 * usbctrl type=pv) and "qusb" (type=qusb, instead of QEMU).
 *
 * Backend keys read: num-ports (1..31), usb-ver (1 or 2), port/N naming the
 * device on port N: a bus id of this host ("3-1.5", as libxl writes it) or
 * VENDOR:PRODUCT[:SERIAL]. port/N may change while the controller runs
 * (usbdev-attach/-detach). Written: netbus-port-error/N ("" or why the
 * device could not be claimed), netbus-quiesced (0 at connect, 1 once a
 * suspending guest has nothing in flight). Frontend keys: urb-ring-ref,
 * conn-ring-ref, event-channel. */
#ifndef NETBUS_VUSB_H
#define NETBUS_VUSB_H

#include "xenbus.h"

extern const struct xenbus_class vusb_class, qusb_class;

#endif
