/* queue: one blkif queue = one (multi-page) shared ring + one event channel,
 * served from the event loop. A device (struct vbd_disk) has one or more
 * queues sharing one target.
 *
 * Per request: the slot is copied out of the shared ring once, parsed and
 * checked (blkif_abi), indirect descriptor pages mapped read-only and copied
 * out once, segment grants mapped in one batch (writable for a READ, since
 * the data goes into guest memory), handed to the target with iovecs into
 * the mapping, unmapped and answered on completion. With persistent grants
 * data and indirect descriptor pages alike are mapped once (read-write, as
 * Linux blkback does) and stay mapped until the queue closes. Bad requests are
 * answered with an error status and a log line. Ring-level abuse (req_prod
 * more than a ring ahead) stops the queue and fails the device through
 * disk->fail. The ring is attached at the indexes found: requests already on
 * it when we connect are served. */
#ifndef NETBUS_VBD_QUEUE_H
#define NETBUS_VBD_QUEUE_H

#include "blkif_abi.h"
#include "target.h"
#include "xenif.h"

#include <stdbool.h>
#include <stdint.h>

struct evloop;
struct vbd_queue;

#define VBD_MAX_RING_ORDER 4  /* 16 pages per ring */
#define VBD_MAX_RING_PAGES (1u << VBD_MAX_RING_ORDER)
#define VBD_MAX_QUEUES     16

/* What a device's queues share. Owned by the caller (vbd.c or a test). */
struct vbd_disk {
    const char *where;          /* log prefix: the backend path */
    struct evloop *loop;
    struct xenif_gnt *gnt;
    const struct xenif_config *cfg;
    xenif_domid domid;          /* the frontend's domain */
    struct vbd_target *target;
    struct blkif_limits lim;
    /* Persistent grants negotiated (feature-persistent on both sides): data
     * grants stay mapped, one page each, until the queue closes. */
    bool persistent;
    /* Ring-level abuse: the device must be disconnected. Called once. */
    void (*fail)(struct vbd_disk *disk, const char *why);
    void *opaque;
    bool failed;
    /* Quiesced (a guest suspending, a hot-swap): no request is taken from
     * the rings; those left there wait for resume or for the next backend.
     * on_drained runs once when nothing is in flight any more. */
    bool quiesced;
    void (*on_drained)(struct vbd_disk *disk);
    /* Runs once, at the first response written after it was set (the
     * timeline's first-request). */
    void (*on_first_response)(struct vbd_disk *disk);
    struct vbd_queue *queues[VBD_MAX_QUEUES];
    unsigned nr_queues;
    /* counters (tests, stats) */
    uint64_t requests, errors, persistent_maps;
};

struct vbd_queue_params {
    unsigned index;
    enum blkif_abi abi;
    unsigned nr_pages;                   /* 1 << ring-page-order */
    xenif_gref refs[VBD_MAX_RING_PAGES];
    xenif_port remote_port;
};

/* Sets target callbacks; call once after disk->target is set. */
void vbd_disk_attach_target(struct vbd_disk *disk);
/* Maps the ring, binds the event channel, adds the queue to disk->queues
 * and serves what is already on the ring. NULL with a reason in err. */
struct vbd_queue *vbd_queue_open(struct vbd_disk *disk,
                                 const struct vbd_queue_params *p, char *err,
                                 size_t errlen);
/* Stops taking requests from the rings; what is in flight finishes and is
 * answered, then on_drained runs (at once, from here, when nothing is in
 * flight). */
void vbd_disk_quiesce(struct vbd_disk *disk,
                      void (*on_drained)(struct vbd_disk *disk));
/* Takes requests again, starting with those that waited on the rings. */
void vbd_disk_resume(struct vbd_disk *disk);
unsigned vbd_disk_inflight(const struct vbd_disk *disk);
/* Stops taking requests on every queue, waits for the target to finish what
 * is in flight, pushes those responses, then unmaps and unbinds all queues. */
void vbd_disk_close_queues(struct vbd_disk *disk);

#endif
