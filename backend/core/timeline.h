/* timeline: what netbusd did to a device during a migration or a hot-swap,
 * step by step with wall-clock times, so that an operator (`netbusctl
 * status`) and automation can see where a device paused and for how long.
 *
 * One record per operation, in this host's xenstore:
 *
 *   /local/domain/SELF/netbus/timeline/SEQ/
 *       kind      suspend | connect | swap
 *       device    the backend path
 *       domain    the guest's UUID ("" when unknown)
 *       domid     the guest's domain id here
 *       detail    free text (swap: "OLD -> NEW")
 *       result    "" while running, then ok | resumed | error: WHY
 *       events/NAME = Unix time in microseconds, for NAME among
 *           quiesce-start  the device stopped taking new requests
 *           drained        every request in flight answered
 *           detached       the old ring or target let go
 *           attached       the new ring or target in place
 *           first-request  the first request served after attached
 *
 * A migration shows as a `suspend` record on the source host (quiesce-start,
 * drained, detached) and a `connect` record on the destination (attached,
 * first-request); the domain UUID joins them. SEQ grows by one per record
 * and the oldest records beyond TIMELINE_KEEP are removed. Writes are best
 * effort: a failed write is logged, never fails the device. Without
 * timeline_start (unit tests) every call does nothing. */
#ifndef NETBUS_TIMELINE_H
#define NETBUS_TIMELINE_H

#include "xenif.h"

#include <stdint.h>

#define TIMELINE_KEEP 200

struct timeline_op;

/* base: /local/domain/SELF/netbus/timeline. Records found there (an earlier
 * netbusd) are kept and numbering goes on after them. */
void timeline_start(struct xenif_xs *xs, const char *base);
void timeline_stop(void);

/* Unix time in microseconds. */
uint64_t timeline_now_us(void);

/* A new record; NULL when the timeline is off or out of memory (every
 * function accepts NULL). */
struct timeline_op *timeline_begin(const char *kind, const char *device,
                                   const char *domain_uuid, unsigned domid,
                                   const char *detail);
/* Records event at time `us` (timeline_now_us() taken when it happened). */
void timeline_mark_at(struct timeline_op *op, const char *event, uint64_t us);
void timeline_mark(struct timeline_op *op, const char *event);
/* Writes the result and forgets the handle (the record stays). */
void timeline_end(struct timeline_op *op, const char *result);

#endif
