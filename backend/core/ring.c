/* ring: back end of a Xen shared ring (see ring.h). */
#include "ring.h"

enum { IDX_REQ_PROD = 0, IDX_REQ_EVENT = 1, IDX_RSP_PROD = 2, IDX_RSP_EVENT = 3 };

static uint32_t load_idx(const struct back_ring *r, int which)
{
    return __atomic_load_n((uint32_t *)(void *)r->sring + which, __ATOMIC_RELAXED);
}

static void store_idx(struct back_ring *r, int which, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)r->sring + which, v, __ATOMIC_RELAXED);
}

uint32_t back_ring_entries(size_t bytes, size_t slot_size)
{
    size_t n = (bytes - RING_HEADER_SIZE) / slot_size;
    uint32_t p = 1;
    while ((size_t)p * 2 <= n)
        p *= 2;
    return p;
}

int back_ring_attach(struct back_ring *r, void *sring, size_t bytes,
                     size_t slot_size)
{
    r->sring = sring;
    r->slot_size = slot_size;
    r->size = back_ring_entries(bytes, slot_size);
    uint32_t rsp = load_idx(r, IDX_RSP_PROD), req = load_idx(r, IDX_REQ_PROD);
    r->req_cons = r->rsp_prod_pvt = r->rsp_pushed = rsp;
    return req - rsp > r->size ? -1 : 0;
}

uint32_t back_ring_pending_at_attach(const struct back_ring *r)
{
    return load_idx(r, IDX_REQ_PROD) - r->rsp_pushed;
}

int back_ring_req_prod(const struct back_ring *r, uint32_t *req_prod)
{
    uint32_t rp = load_idx(r, IDX_REQ_PROD);
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* index before slots */
    *req_prod = rp;
    return rp - r->req_cons > r->size ? -1 : 0;
}

bool back_ring_final_check(struct back_ring *r)
{
    store_idx(r, IDX_REQ_EVENT, r->req_cons + 1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return load_idx(r, IDX_REQ_PROD) != r->req_cons;
}

bool back_ring_push(struct back_ring *r)
{
    if (r->rsp_prod_pvt == r->rsp_pushed)
        return false;
    uint32_t old = r->rsp_pushed, new = r->rsp_prod_pvt;
    __atomic_thread_fence(__ATOMIC_RELEASE); /* responses before index */
    store_idx(r, IDX_RSP_PROD, new);
    r->rsp_pushed = new;
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* index before rsp_event */
    uint32_t ev = load_idx(r, IDX_RSP_EVENT);
    return (uint32_t)(new - ev) < (uint32_t)(new - old);
}
