/* hc: the virtual USB host controller a guest's xen-hcd talks to: the urb
 * ring, the conn ring and their event channel, and the root ports.
 *
 * Per URB: the slot is copied out once and checked (usbif_req), its data
 * segments mapped in one batch (writable for IN) and handed to the port's
 * target as one buffer (a bounce buffer when the guest's segments are not
 * one run of bytes); isochronous packet descriptors are copied out and back.
 * Responses are pushed once per event-loop batch.
 *
 * Addressing is the host controller's business, as on real hardware the
 * device's address belongs to the bus: SET_ADDRESS is answered here and
 * never reaches the device (it has its real address on its real bus).
 * Address 0 reaches the port's device (default state); a port's first URB
 * to an address it never saw set adopts it: the guest enumerated the device
 * through an earlier backend, before a migration.
 *
 * Conn ring: every port's device is reported at connect and at each change
 * (unplug = speed NONE), as soon as the frontend has posted a request. */
#ifndef NETBUS_VUSB_HC_H
#define NETBUS_VUSB_HC_H

#include "target.h"
#include "xenif.h"

#include <stdbool.h>
#include <stdint.h>

struct evloop;
struct vusb_hc;

struct vusb_hc_params {
    const char *where;          /* log prefix: the backend path */
    struct evloop *loop;
    const struct xenif_config *cfg;
    xenif_domid domid;          /* the frontend's domain */
    xenif_gref urb_ref, conn_ref;
    xenif_port remote_port;
    unsigned nports;            /* 1..USBIF_MAX_PORTNR */
    /* targets[1..nports]: the device on each port, NULL for none (owned by
     * the caller; vusb_hc_set_port changes them later). */
    struct vusb_target *const *targets;
    /* Ring-level abuse: the device must be disconnected. Called once. */
    void (*fail)(void *opaque, const char *why);
    void *opaque;
};

/* Maps both rings and binds the event channel; serves what is already on
 * them. NULL with a reason in err. */
struct vusb_hc *vusb_hc_open(const struct vusb_hc_params *p, char *err,
                             size_t errlen);
/* Cancels what is in flight, waits for it, answers it, unmaps, unbinds. */
void vusb_hc_close(struct vusb_hc *hc);

/* Puts a device on port (1-based) or takes it off (NULL); the caller owns
 * the target. Either way the frontend hears of it on the conn ring.
 * Transfers in flight on a removed target must be over (target closed). */
void vusb_hc_set_port(struct vusb_hc *hc, unsigned port, struct vusb_target *t);
/* The port's device is named but not claimed yet (held by the backend a
 * migrating guest leaves, which lets it go only once the guest runs here):
 * while awaiting, URBs for it stay on the ring, with those behind them,
 * instead of failing with NODEV, and the conn ring goes on showing the
 * device the frontend last heard of. vusb_hc_set_port with a target ends
 * it. */
void vusb_hc_port_awaiting(struct vusb_hc *hc, unsigned port, bool awaiting);
/* The port's target changed speed (unplugged, plugged back). */
void vusb_hc_port_changed(struct vusb_hc *hc, unsigned port);

/* Quiesce (suspend, swap): no URB is taken from the ring; what is in flight
 * completes and is answered, then on_drained runs once (at once when idle).
 * Resume takes requests again. */
void vusb_hc_quiesce(struct vusb_hc *hc, void (*on_drained)(void *opaque));
void vusb_hc_resume(struct vusb_hc *hc);
unsigned vusb_hc_inflight(const struct vusb_hc *hc);

struct vusb_hc_stats {
    uint64_t urbs, errors, unlinks;
};
void vusb_hc_stats(const struct vusb_hc *hc, struct vusb_hc_stats *out);

#endif
