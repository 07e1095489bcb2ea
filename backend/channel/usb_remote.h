/* usb_remote: a USB device exported by another host (the LBE side of
 * PROTOCOL.md section 8). It implements backend/vusb/target.h over the
 * shared peer connection (peer.h):
 *   - each transfer becomes a URB frame with the next sequence number of
 *     the session and the highest reply number received (the export
 *     forgets results up to it); its reply completes the transfer; cancel
 *     sends UNLINK;
 *   - when the connection drops, transfers wait: the session is reopened
 *     with resume_session on the next connection and the unanswered URBs
 *     are sent again with the same sequence numbers, so the export answers
 *     them from what it kept (or when they complete) and runs none twice;
 *     if the export no longer has the session, the URBs that had gone out
 *     fail with -EPROTO (whether they ran is unknown) and the others go
 *     out on the new session;
 *   - the device keeps its speed through a reconnect; once the connection
 *     has been down io_timeout_ms, waiting transfers fail (-EPROTO if they
 *     had gone out, else -ENODEV) and the speed is NONE until the session
 *     is open again. On a live connection a URB may wait as long as the
 *     device makes it (an interrupt IN waits for an event);
 *   - the speed is NONE until the export answered the first OPEN, and
 *     follows the export's device (EVENT USB_SPEED: unplugged, back).
 * A refusal, or the export going away, is for good: told once through
 * failed(opaque, why); transfers then fail with -ENODEV. */
#ifndef NETBUS_CHANNEL_USB_REMOTE_H
#define NETBUS_CHANNEL_USB_REMOTE_H

#include "peer.h"

struct vusb_target;

struct nb_usb_remote_params {
    struct nb_peer_pool *pool;
    const char *host;
    unsigned port;
    const char *export_name;
    const char *owner;          /* recorded in the export's session */
    unsigned io_timeout_ms;
    const char *where;          /* log prefix */
    void (*failed)(void *opaque, const char *why);
    void *opaque;
};

/* NULL only when out of memory. */
struct vusb_target *nb_usb_remote_open(const struct nb_usb_remote_params *p);

#endif
