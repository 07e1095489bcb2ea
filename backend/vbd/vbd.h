/* vbd: the blkif backend device class, served as backend type "vbd" (what
 * libxl uses for phy disks) and "qdisk" (what it uses for QEMU-served ones).
 * Both share the code: a local file or block device named by `params`,
 * served through queue.c and target_file.c, or a device URL
 * netbus://HOST[:PORT]/EXPORT served through the netbus channel
 * (backend/channel: in-process when HOST is this host, else over the
 * network; the device then waits in Initialising until the export opened).
 *
 * Backend keys read: params ("/path", or "file:", "phy:", "aio:", "raw:"
 * followed by the path, or netbus://HOST[:PORT]/EXPORT), mode ("r"/"ro" read-only, "w"/"rw"/"w!" writable;
 * default writable), device-type ("cdrom"), removable, discard-enable.
 * Published at InitWait: feature-flush-cache, feature-discard with
 * discard-granularity/-alignment/-secure, feature-persistent,
 * feature-max-indirect-segments, max-ring-page-order, multi-queue-max-queues.
 * At Connected: sectors (512-byte units, as Linux blkfront reads it),
 * sector-size, physical-sector-size, info.
 *
 * Frontend keys read: ring-ref or ring-refN (with ring-page-order),
 * event-channel, protocol, feature-persistent, multi-queue-num-queues with
 * queue-N/{ring-ref*,event-channel}. Persistent grants are used when the
 * frontend sets feature-persistent=1: on xensim mapping is an mmap per page
 * per request, and keeping data grants mapped cut the cost of a 44 KiB
 * request markedly (measured by the vbd_ring suite, printed each run). */
#ifndef NETBUS_VBD_H
#define NETBUS_VBD_H

#include "xenbus.h"

extern const struct xenbus_class vbd_class, qdisk_class;

/* Queues offered per device (multi-queue-max-queues). */
#define VBD_DEFAULT_MAX_QUEUES 4

/* The path of a `params` value, or NULL if the form is not one we serve
 * (returns a pointer into params). */
const char *vbd_params_path(const char *params);

#endif
