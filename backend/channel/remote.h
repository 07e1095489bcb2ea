/* remote: a vbd target served by an export on another host (the LBE side
 * of the netbus channel). It implements backend/vbd/target.h over a shared
 * peer connection (peer.h):
 *   - READ data is read from the socket straight into the mapped guest
 *     pages (the iovecs the ring code hands over), WRITE data written from
 *     them (writev); many requests in flight, each with its own tag;
 *   - the first OPEN is asynchronous: `ready` is called once with NULL (the
 *     target's info is then valid) or a reason;
 *   - when the connection drops, unanswered requests wait and are sent
 *     again once the session is reopened on a new connection (the server
 *     answers that OPEN only after the session's earlier I/O completed, so
 *     nothing from before overtakes anything after); a request still
 *     unanswered io_timeout_ms after it was submitted fails (-EIO, the
 *     guest sees BLKIF_RSP_ERROR), and one in flight on a live connection
 *     that long resets the connection first;
 *   - a write is answered to the guest only when the export answered it.
 * drain() does not wait for the network: requests in flight are answered
 * -EIO at once and the session is fenced (reopened) before the next. */
#ifndef NETBUS_CHANNEL_REMOTE_H
#define NETBUS_CHANNEL_REMOTE_H

#include "peer.h"

#include <stdbool.h>
#include <stddef.h>

struct vbd_target;

struct nb_remote_params {
    struct nb_peer_pool *pool;
    const char *host;
    unsigned port;
    const char *export_name;
    const char *owner;          /* recorded in the export's session */
    bool readonly;
    unsigned io_timeout_ms;
    const char *where;          /* log prefix */
    void (*ready)(void *opaque, const char *err);
    void *ready_opaque;
};

/* NULL only when out of memory. */
struct vbd_target *nb_remote_open(const struct nb_remote_params *p);

#endif
