/* port_record: a guest's USB ports kept across its controllers (see
 * port_record.h). */
#include "port_record.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void key_of(char *key, size_t len, struct xenbus_device *dev,
                   const char *uuid, unsigned port)
{
    if (port)
        snprintf(key, len, "usb-ports/%s_%u/%u", uuid, xenbus_devid(dev), port);
    else
        snprintf(key, len, "usb-ports/%s_%u", uuid, xenbus_devid(dev));
}

void port_record_store(struct xenbus_device *dev, const char *uuid,
                       unsigned port, const char *name)
{
    char key[96];
    key_of(key, sizeof(key), dev, uuid, port);
    int rc = *name ? xenbus_write_own(dev, key, name) : xenbus_rm_own(dev, key);
    if (rc < 0)
        log_warn(xenbus_backend_path(dev), "port %u: cannot keep its record "
                 "(netbus/%s): %s; a restored guest will not get it back",
                 port, key, strerror(errno));
}

char *port_record_load(struct xenbus_device *dev, const char *uuid,
                       unsigned port)
{
    char key[96];
    key_of(key, sizeof(key), dev, uuid, port);
    return xenbus_read_own(dev, key);
}

void port_record_forget(struct xenbus_device *dev, const char *uuid)
{
    char key[96];
    key_of(key, sizeof(key), dev, uuid, 0);
    if (xenbus_rm_own(dev, key) < 0)
        log_warn(xenbus_backend_path(dev), "cannot remove netbus/%s: %s", key,
                 strerror(errno));
}
