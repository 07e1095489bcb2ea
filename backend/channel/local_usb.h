/* local_usb: the short-circuit for USB. A PV USB port whose netbus:// URL
 * names this host is served by the usb export's claimed device in-process,
 * as a session of the export (peer = this host's name): no socket, no
 * sequence numbers (nothing can be lost between the two). The export keeps
 * the device; closing the port ends only the session. */
#ifndef NETBUS_CHANNEL_LOCAL_USB_H
#define NETBUS_CHANNEL_LOCAL_USB_H

#include <stddef.h>

struct nb_export;
struct vusb_target;

/* ex must be a usb export. NULL with a reason in err (another guest holds
 * the device, out of memory). */
struct vusb_target *nb_local_usb_open(struct nb_export *ex, const char *peer,
                                      const char *owner, const char *where,
                                      char *err, size_t errlen);

#endif
