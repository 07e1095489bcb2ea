/* ring: the back end of a Xen shared ring (xen/io/ring.h), written out
 * with the guest's index words read once each and checked, so every device
 * class serves its rings the same way: BACK_RING_ATTACH at the indexes
 * found (requests already on the ring are served), a request copied out
 * of its slot before it is parsed, RING_FINAL_CHECK_FOR_REQUESTS and
 * RING_PUSH_RESPONSES_AND_CHECK_NOTIFY. */
#ifndef NETBUS_RING_H
#define NETBUS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_HEADER_SIZE 64 /* req_prod, req_event, rsp_prod, rsp_event, pad */

struct back_ring {
    uint8_t *sring;
    size_t slot_size;
    uint32_t size;               /* entries, a power of two */
    uint32_t req_cons, rsp_prod_pvt, rsp_pushed;
};

/* Entries of a ring of `bytes` whose slots (union of request and response)
 * are slot_size bytes: the largest power of two that fits, as
 * __CONST_RING_SIZE computes it. */
uint32_t back_ring_entries(size_t bytes, size_t slot_size);

/* Attaches at the guest's indexes. -1 when req_prod and rsp_prod are more
 * than a ring apart (nothing sane to serve). */
int back_ring_attach(struct back_ring *r, void *sring, size_t bytes,
                     size_t slot_size);
/* Requests between rsp_prod and req_prod at attach time. */
uint32_t back_ring_pending_at_attach(const struct back_ring *r);

static inline uint8_t *back_ring_slot(const struct back_ring *r, uint32_t i)
{
    return r->sring + RING_HEADER_SIZE + (size_t)(i & (r->size - 1)) * r->slot_size;
}

/* The guest's req_prod, read once; slots up to it may then be read. -1 when
 * it is more than a ring ahead of req_cons (the frontend broke the
 * protocol: the caller should fail the device). */
int back_ring_req_prod(const struct back_ring *r, uint32_t *req_prod);
/* Whether a request may be taken without overwriting an unanswered slot. */
static inline bool back_ring_has_room(const struct back_ring *r)
{
    return r->req_cons - r->rsp_prod_pvt < r->size;
}
/* Asks to be notified of the next request; true if one arrived meanwhile
 * (take it before sleeping). */
bool back_ring_final_check(struct back_ring *r);
/* Response slot to fill next; back_ring_respond() then counts it. */
static inline uint8_t *back_ring_next_response(const struct back_ring *r)
{
    return back_ring_slot(r, r->rsp_prod_pvt);
}
static inline void back_ring_respond(struct back_ring *r)
{
    r->rsp_prod_pvt++;
}
/* Publishes the responses written; true when the frontend asked to be
 * notified of them. */
bool back_ring_push(struct back_ring *r);

#endif
