/* xenbus: the backend side of Xen's split-driver handshake, shared by every
 * device class (vbd, vusb, vif). Modelled on QEMU's hw/xen/xen-bus.c and
 * Linux's xenbus backend drivers.
 *
 * The bus watches /local/domain/SELF/backend/TYPE for each registered class.
 * A device exists for each backend/TYPE/FRONTEND-DOMID/DEVID directory that
 * the toolstack created with online=1 and state=Initialising. The bus then
 * drives the state machine (states as in xen/io/xenbus.h):
 *
 *   Initialising --init()--> InitWait         (features published,
 *                                               hotplug-status=connected)
 *   frontend Initialised/Connected --connect()--> Connected
 *   frontend Closing            --disconnect()--> Closing
 *   frontend Closed             --disconnect()--> Closed; then removed if
 *                                               online=0, else back to
 *                                               InitWait when the frontend
 *                                               starts over (Initialising)
 *   online=0 from the toolstack: Closing (frontend connected) or removed
 *   frontend state Unknown, frontend directory gone, backend directory gone,
 *   or the frontend domain gone (@releaseDomain): disconnect + free.
 *
 * A class callback that fails puts that one device into Closing with an
 * error node (as Linux's xenbus_dev_fatal does) and a log line; the bus and
 * every other device carry on.
 */
#ifndef NETBUS_XENBUS_H
#define NETBUS_XENBUS_H

#include "xenif.h"

#include <stdbool.h>

struct evloop;
struct xenbus;
struct xenbus_device;

#define XENBUS_INIT_PENDING 1
#define XENBUS_SWAP_KEY "netbus-swap"


struct xenbus_class {
    const char *type; /* backend type: "vbd", "qdisk", "vusb", ... */
    /* The toolstack created the device: validate the backend nodes, open the
     * target, publish features (xenbus_printf). Return 0 to go InitWait,
     * -1 after xenbus_device_error() to fail the device, or
     * XENBUS_INIT_PENDING when the target opens asynchronously (a remote
     * export): the device then waits until the class calls
     * xenbus_device_ready() or xenbus_device_error(). */
    int (*init)(struct xenbus_device *dev);
    /* The frontend published its rings: read its keys, map rings, bind event
     * channels, start serving. Requests already on the ring (kept across a
     * migration) must be served. Return 0 to go Connected, -1 after
     * xenbus_device_error(). */
    int (*connect)(struct xenbus_device *dev);
    /* Stop taking requests, finish what is in flight, answer it, unmap and
     * unbind. Called before Closing/Closed and before free; may be called
     * when not connected (must then do nothing). */
    void (*disconnect)(struct xenbus_device *dev);
    /* Optional. The frontend's domain suspended (save, migration): stop
     * taking requests, finish and answer those in flight; requests still on
     * the ring stay there (for this backend if the suspend is cancelled,
     * else for the destination's). */
    void (*suspend)(struct xenbus_device *dev);
    /* Optional. The domain runs again on this host (a cancelled suspend):
     * serve the ring again. */
    void (*resume)(struct xenbus_device *dev);
    /* Optional. Backend key XENBUS_SWAP_KEY was written (netbusctl swap):
     * read it and answer in the keys the class documents. */
    void (*swap)(struct xenbus_device *dev);
    /* Optional. A key below the backend directory changed (the toolstack
     * writes usbif's port/N while the device runs); key is relative to the
     * directory. Called for the bus's own writes too: compare, then act. */
    void (*backend_changed)(struct xenbus_device *dev, const char *key);
    /* The device goes away: release the target and the private state. */
    void (*free)(struct xenbus_device *dev);
};

/* The bus of one netbusd: xs is used for every device's xenstore access and
 * watches; cfg is handed to classes so they can open grant and event channel
 * handles. */
struct xenbus *xenbus_new(struct evloop *loop, struct xenif_xs *xs,
                          const struct xenif_config *cfg);
/* Disconnects (drains and unmaps) and frees every device, leaving the
 * xenstore states as they are so that a restarted netbusd adopts the
 * devices and the guests keep them. */
void xenbus_free(struct xenbus *bus);
/* Starts serving backend/TYPE for this class; existing devices are picked
 * up at once (netbusd restarted under running guests). */
int xenbus_register(struct xenbus *bus, const struct xenbus_class *cls);
unsigned xenbus_device_count(const struct xenbus *bus);
/* True once the xenstore connection failed; the bus then stopped the loop
 * (evloop_stop) and serves nothing more: the daemon should exit. */
bool xenbus_lost(const struct xenbus *bus);

/* ---- for device classes ------------------------------------------------ */

/* "/local/domain/0/backend/vbd/5/51712": used as the `where` of log lines. */
const char *xenbus_backend_path(const struct xenbus_device *dev);
const char *xenbus_frontend_path(const struct xenbus_device *dev);
xenif_domid xenbus_frontend_id(const struct xenbus_device *dev);
unsigned xenbus_devid(const struct xenbus_device *dev);
const char *xenbus_type(const struct xenbus_device *dev);
struct evloop *xenbus_loop(const struct xenbus_device *dev);
const struct xenif_config *xenbus_xenif_config(const struct xenbus_device *dev);

void *xenbus_priv(const struct xenbus_device *dev);
void xenbus_set_priv(struct xenbus_device *dev, void *priv);

/* Backend (own) and frontend keys, relative to the device's directories.
 * Reads return a malloc'd string or NULL with errno. */
char *xenbus_read(struct xenbus_device *dev, const char *key);
int xenbus_read_uint(struct xenbus_device *dev, const char *key,
                     unsigned long *out);
int xenbus_printf(struct xenbus_device *dev, const char *key, const char *fmt,
                  ...) __attribute__((format(printf, 3, 4)));
char *xenbus_read_frontend(struct xenbus_device *dev, const char *key);
int xenbus_read_frontend_uint(struct xenbus_device *dev, const char *key,
                              unsigned long *out);

/* The backend domain's own netbus area, /local/domain/SELF/netbus/KEY, for
 * state that outlives a device (kept across a guest's save and restore).
 * Read: malloc'd string or NULL with errno; rm of a missing key is fine. */
char *xenbus_read_own(struct xenbus_device *dev, const char *key);
int xenbus_write_own(struct xenbus_device *dev, const char *key,
                     const char *value);
int xenbus_rm_own(struct xenbus_device *dev, const char *key);

/* Whether the bus sees its devices' domains suspend (and so calls the
 * class's suspend): false where the domain's run state cannot be read. */
bool xenbus_sees_suspend(const struct xenbus_device *dev);

/* The UUID of the frontend's domain (from /local/domain/FE/vm), into buf
 * (37 bytes); "" when it cannot be read (a driver domain may not). */
void xenbus_frontend_uuid(struct xenbus_device *dev, char *buf, size_t len);

/* A device whose init returned XENBUS_INIT_PENDING is ready: it goes on as
 * if init had returned 0. */
void xenbus_device_ready(struct xenbus_device *dev);

/* Records why the device failed: logs it, writes the message to
 * /local/domain/SELF/error/BACKEND-PATH/error as Linux does, and makes the
 * bus close this device once the current callback returns. Safe to call
 * from any callback, including ring processing after connect. */
void xenbus_device_error(struct xenbus_device *dev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
