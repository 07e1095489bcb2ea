/* xensim control protocol, shared by the simulated host (tools/xensim) and
 * its clients (backend/xenif/xensim_*.c, the xensim CLI).
 *
 * Transport: one SOCK_SEQPACKET unix socket per domain, like xenstore's:
 * RUNDIR/xensim.sock for dom0 (toolstack, backends), RUNDIR/domN/xensim.sock
 * for domain N. The socket a client connects to decides the domain it acts
 * as. Each request is exactly one struct xensim_req; the host answers each
 * with exactly one struct xensim_rsp, with file descriptors (memfds,
 * eventfds) attached as SCM_RIGHTS where the op says so. Anything else (wrong
 * size, fds from the client) closes that connection.
 *
 * Shared memory, also part of the protocol:
 *  - domain memory: a memfd of mem_pages pages; grant frames index it;
 *  - grant table: a memfd laid out as struct xensim_gnt_layout below (v1
 *    entries as Xen's grant_entry_v1_t, then the pin counts mappers keep,
 *    then a status page the host writes);
 *  - event-channel generations: a memfd of XENSIM_EVTCHN_PORTS uint32_t, one
 *    per port of the domain, bumped by the host whenever the port or its
 *    binding changes, sealed against writes by clients;
 *  - event-channel port words: a memfd of one page per bound port, sealed
 *    against resizing, fresh for every port the host opens. Its first
 *    uint32_t holds the port's pending and mask bits, as Xen's shared_info
 *    evtchn_pending/evtchn_mask do for a guest (XENSIM_EVTCHN_* below).
 *
 * Event delivery, with no system call where Xen needs no hypercall: a port
 * has an eventfd and a word. To notify its peer, a client sets PENDING in
 * the peer port's word (atomic or) and writes the peer port's eventfd only
 * when the word had neither PENDING nor MASKED. The owner reads its eventfd
 * when woken, then takes the event by setting MASKED and clearing PENDING;
 * unmasking clears MASKED and, if PENDING came meanwhile, writes its own
 * eventfd. So an eventfd is nonzero whenever its port is pending and
 * unmasked. Both ends of a channel can write both words: what one end
 * writes there only concerns that channel, which it could stall anyway.
 */
#ifndef NETBUS_XENSIM_PROTO_H
#define NETBUS_XENSIM_PROTO_H

#include <stdint.h>

#define XENSIM_PROTO_PAGE      4096u
#define XENSIM_SOCK_NAME       "xensim.sock"
#define XENSIM_DOMID_MAX       0x7fefu /* DOMID_FIRST_RESERVED - 1 */
#define XENSIM_DOMID_SELF      0x7ff0u
#define XENSIM_NAME_MAX        64      /* including the NUL */
#define XENSIM_DIR_MAX         200     /* a host's run directory, with NUL */
#define XENSIM_BATCH           64      /* frames/refs per alloc/free message */

/* Grant table: 32 frames of 8-byte v1 entries, as Xen's default
 * max_grant_frames. Refs below XENSIM_GNT_RESERVED are never handed out
 * (Linux keeps them for the console and xenstore rings). */
#define XENSIM_GNT_FRAMES      32u
#define XENSIM_GNT_ENTRIES     (XENSIM_GNT_FRAMES * XENSIM_PROTO_PAGE / 8u)
#define XENSIM_GNT_RESERVED    8u

/* Event channels: ports 1..XENSIM_EVTCHN_PORTS-1 (0 is never valid, as in
 * Xen). */
#define XENSIM_EVTCHN_PORTS    4096u
/* Bits of a port word. */
#define XENSIM_EVTCHN_PENDING  0x1u /* set by the peer's notify */
#define XENSIM_EVTCHN_MASKED   0x2u /* set by the owner: no wake-up */

/* Bits of a v1 grant entry's first 32-bit word (flags | domid << 16), the
 * word Xen and guests update with cmpxchg. Values as xen/grant_table.h. */
#define XENSIM_GTF_permit_access 0x0001u
#define XENSIM_GTF_type_mask     0x0003u
#define XENSIM_GTF_readonly      0x0004u
#define XENSIM_GTF_reading       0x0008u
#define XENSIM_GTF_writing       0x0010u

/* One grant entry as two 32-bit words: [0] = flags | domid << 16 (the layout
 * of grant_entry_v1_t's flags and domid on little-endian hosts), [1] = frame. */
struct xensim_gnt_entry {
    uint32_t flags_domid;
    uint32_t frame;
};

/* Per-entry state kept by mappers (Xen's active entry): a spinlock and pin
 * counts, so GTF_reading/GTF_writing stay set while any mapping is alive. */
struct xensim_gnt_active {
    uint32_t lock;
    uint16_t pins_ro;   /* read-only mappings and copies in flight */
    uint16_t pins_rw;   /* writable mappings and copies in flight */
};

struct xensim_gnt_status {
    uint32_t dead;      /* set by the host when the domain is destroyed */
    uint32_t mem_pages; /* size of the domain's memory memfd in pages */
};

struct xensim_gnt_layout {
    struct xensim_gnt_entry entries[XENSIM_GNT_ENTRIES];
    struct xensim_gnt_active active[XENSIM_GNT_ENTRIES];
    struct xensim_gnt_status status;
    uint8_t pad[XENSIM_PROTO_PAGE - sizeof(struct xensim_gnt_status)];
};

enum xensim_op {
    /* Admin, dom0 only. req.domid selects the domain. */
    XENSIM_OP_DOMAIN_CREATE = 1, /* name, uuid (all zero: random), memory_mib;
                                    rsp.dom */
    XENSIM_OP_DOMAIN_DESTROY,
    XENSIM_OP_DOMAIN_PAUSE,
    XENSIM_OP_DOMAIN_UNPAUSE,
    XENSIM_OP_DOMAIN_SUSPEND,
    XENSIM_OP_DOMAIN_RESUME,
    /* rsp.dom = first domain with domid >= req.domid (ENOENT: none). dom0
     * may ask about any domain, others only about themselves. */
    XENSIM_OP_DOMAIN_INFO,

    /* Grants. */
    XENSIM_OP_GNT_ATTACH,  /* req.domid (or SELF); fds: [memory, table];
                              rsp.val[0] = mem_pages */
    XENSIM_OP_GNT_ALLOC,   /* req.nframes frames and req.nrefs refs of the
                              caller's domain; rsp.frames/refs */
    XENSIM_OP_GNT_FREE,    /* gives back req.frames/refs (all or nothing) */

    /* Event channels, on ports of the caller's domain. */
    XENSIM_OP_EVTCHN_ATTACH,       /* fds: [generation table] */
    XENSIM_OP_EVTCHN_ALLOC_UNBOUND,/* req.remote; rsp.port, rsp.gen;
                                      fds: [port eventfd, port word] */
    XENSIM_OP_EVTCHN_BIND,         /* req.remote, req.remote_port; rsp.port,
                                      rsp.gen; fds: [port eventfd, port
                                      word, peer eventfd, peer word] */
    XENSIM_OP_EVTCHN_UNBIND,       /* req.port */
    XENSIM_OP_EVTCHN_PEER,         /* req.port; rsp.state, rsp.gen; fds:
                                      [peer eventfd, peer word] when
                                      interdomain */
    XENSIM_OP_EVTCHN_STATUS,       /* req.domid, req.port; rsp.state,
                                      rsp.remote, rsp.remote_port */

    /* Save/restore and migration (tools/xensim/migrate.c has the whole
     * protocol). Guest side, on a connection of the guest's domain: */
    XENSIM_OP_GUEST_REGISTER,  /* this connection's process handles suspend:
                                  the toolstack waits for its
                                  GUEST_SUSPEND before pausing the domain */
    XENSIM_OP_GUEST_SUSPEND,   /* only while the domain's control/shutdown
                                  is "suspend" (else EAGAIN), on a
                                  registered connection (else EINVAL).
                                  Answered only when the toolstack resumes
                                  the domain: rsp.val[0] = 1 cancelled
                                  (carry on, same host), 0 migrated: the
                                  domain now is rsp.dom.domid on the host
                                  at rsp.dir. Any other request on the
                                  connection meanwhile closes it. */
    XENSIM_OP_GNT_CLAIM,       /* after a move: take req.frames/refs of
                                  the caller's domain that are reserved by
                                  the restore or free; rsp.frames[i] /
                                  rsp.refs[i] = 1 taken, 0 owned by another
                                  connection (or out of range) */
    /* Toolstack, dom0 only: */
    XENSIM_OP_DOMAIN_RESTORE,  /* req.domid: its memory and grant table were
                                  just written by the toolstack: reserve
                                  every frame holding data and every ref
                                  with an entry, clear in-use flags and
                                  pins (nobody maps them here) */
    XENSIM_OP_DOMAIN_MIGRATED, /* req.domid (suspended): it lives on as
                                  domain req.remote of the host at req.dir;
                                  answers the GUEST_SUSPEND waiters with
                                  that, state MIGRATED, continues the
                                  processes so they can move */
    XENSIM_OP_MAX,
};

enum xensim_dom_state {
    XENSIM_DOM_RUNNING = 1,
    XENSIM_DOM_PAUSED,
    XENSIM_DOM_SUSPENDED,
    XENSIM_DOM_MIGRATED,  /* moved away; only destroy is left to do */
};

enum xensim_port_state {
    XENSIM_PORT_FREE = 0,
    XENSIM_PORT_UNBOUND,
    XENSIM_PORT_INTERDOMAIN,
};

struct xensim_dom_info {
    uint32_t domid;
    uint32_t state;       /* enum xensim_dom_state */
    uint32_t memory_mib;
    uint32_t nr_procs;    /* processes connected as the domain */
    uint32_t nr_suspendable; /* connections that did GUEST_REGISTER */
    uint32_t nr_suspending;  /* of those, waiting in GUEST_SUSPEND */
    char name[XENSIM_NAME_MAX];
    uint8_t uuid[16];
};

struct xensim_req {
    uint32_t op;          /* enum xensim_op */
    uint32_t domid;
    uint32_t remote;      /* evtchn: remote domain */
    uint32_t remote_port;
    uint32_t port;
    uint32_t memory_mib;  /* create; 0 = default */
    char name[XENSIM_NAME_MAX];
    uint8_t uuid[16];
    uint32_t nframes, nrefs;
    uint32_t frames[XENSIM_BATCH];
    uint32_t refs[XENSIM_BATCH];
    char dir[XENSIM_DIR_MAX];  /* DOMAIN_MIGRATED: the destination host */
};

struct xensim_rsp {
    int32_t err;          /* 0, or a positive errno value */
    uint32_t val[2];
    uint32_t port;
    uint32_t gen;
    uint32_t state;       /* evtchn: enum xensim_port_state */
    uint32_t remote;
    uint32_t remote_port;
    struct xensim_dom_info dom;
    uint32_t nframes, nrefs;
    uint32_t frames[XENSIM_BATCH];
    uint32_t refs[XENSIM_BATCH];
    char dir[XENSIM_DIR_MAX];  /* GUEST_SUSPEND, migrated: the new host */
};

#define XENSIM_MAX_FDS 4

#endif
