/* port_record: which device each port of a guest's USB controller holds,
 * kept by netbusd in its own xenstore area,
 *
 *   /local/domain/SELF/netbus/usb-ports/UUID_DEVID/PORT = device
 *
 * so that the controller libxl creates for the same guest (same UUID and
 * controller devid) after `xl save`/`xl restore` or a live migration to
 * this host gets its devices back: libxl recreates a PV USB controller with
 * empty ports, as devices put there with netbusctl (or by automation) are
 * not in its config. A record is written when a port gets a device, removed
 * when the port is emptied while the guest runs, and the controller's
 * records are removed with it unless its guest left suspended. */
#ifndef NETBUS_VUSB_PORT_RECORD_H
#define NETBUS_VUSB_PORT_RECORD_H

#include "xenbus.h"

/* name "" removes the record. Failures are logged, not fatal: the port
 * works either way. */
void port_record_store(struct xenbus_device *dev, const char *uuid,
                       unsigned port, const char *name);
/* The device recorded for the port, malloc'd, or NULL. */
char *port_record_load(struct xenbus_device *dev, const char *uuid,
                       unsigned port);
/* Removes the controller's records. */
void port_record_forget(struct xenbus_device *dev, const char *uuid);

#endif
