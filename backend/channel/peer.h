/* peer: the client side of a connection to one export host, shared by
 * every remote target (LBE device) that imports from that HOST:PORT. It
 * connects without blocking, reconnects after a failure with exponential
 * backoff (100 ms doubling up to reconnect_max_ms), and routes replies to
 * the calls that sent the requests by tag. A tag is never reused within a
 * connection: slot index and a generation. When the connection drops every
 * call in flight is dropped (its tag goes back to 0) and each user is told,
 * so it can resubmit on the next connection. */
#ifndef NETBUS_CHANNEL_PEER_H
#define NETBUS_CHANNEL_PEER_H

#include "conn.h"

#include <stdbool.h>
#include <stdint.h>

struct evloop;
struct nb_peer;

/* Shared by all peers of a process. */
struct nb_peer_pool {
    struct evloop *loop;
    const struct nb_conn_cfg *cfg;  /* role NB_ROLE_CLIENT */
    unsigned reconnect_max_ms;
    struct nb_peer *list;
};

/* One request awaiting its reply. */
struct nb_call {
    struct nb_out out;
    uint64_t tag;           /* 0: not in flight */
    /* Where the reply payload goes (NULL: buffered). -1: protocol error. */
    int (*sink)(struct nb_call *call, const struct nb_hdr *h,
                const struct iovec **iov, unsigned *n);
    /* The reply. -1: protocol error (the connection is reset). */
    int (*reply)(struct nb_call *call, const struct nb_hdr *h,
                 const uint8_t *payload);
};

struct nb_peer_user {
    void (*up)(struct nb_peer_user *u);
    /* The connection dropped: the user's calls are no longer in flight. */
    void (*down)(struct nb_peer_user *u, const char *why);
    void (*event)(struct nb_peer_user *u, const struct nb_event_body *ev);
    uint32_t session;       /* EVENTs for this session come here */
    struct nb_peer_user *next;
};

/* The peer for host:port (created and connecting if new) with u added.
 * u->up is called on each (re)connection from then on, not for one that is
 * up already (see nb_peer_up). */
struct nb_peer *nb_peer_attach(struct nb_peer_pool *pool, const char *host,
                               unsigned port, struct nb_peer_user *u);
/* Removes u; the last user closes the connection and frees the peer. */
void nb_peer_detach(struct nb_peer *p, struct nb_peer_user *u);
bool nb_peer_up(const struct nb_peer *p);
/* Authenticated name of the server ("" while not connected). */
const char *nb_peer_name(const struct nb_peer *p);
/* Why the last connection attempt failed ("" if none did). */
const char *nb_peer_error(const struct nb_peer *p);

/* Sends call (call->out set by the caller; its tag is written into the
 * header here). -1 if the connection is not up. */
int nb_peer_send(struct nb_peer *p, struct nb_call *call);
/* Sends a request whose reply nobody waits for (tag 0). */
void nb_peer_send_untracked(struct nb_peer *p, uint8_t type, uint32_t session);
/* Takes call back: its reply, if one comes, is dropped. A request half on
 * the wire resets the connection. */
void nb_peer_cancel(struct nb_peer *p, struct nb_call *call);
void nb_peer_flush(struct nb_peer *p);
/* Drops the connection (e.g. a request went unanswered too long); the peer
 * reconnects. */
void nb_peer_reset(struct nb_peer *p, const char *why);

#endif
