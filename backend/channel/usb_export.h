/* usb_export: the export side of a remote USB session (PROTOCOL.md section
 * 8). Runs the session's URBs on the export's claimed device and keeps
 * what makes each run exactly once across reconnects:
 *   - the highest sequence number seen: only a higher one is executed;
 *   - each URB from its arrival until the client acknowledged its result
 *     (by reply number), so a resent URB is answered from the kept result
 *     or, if it is still at the device, when it completes;
 *   - at most NB_USB_WINDOW URBs at once: beyond that a URB is refused
 *     (NOSPC) without being run.
 * Replies go out through the session's current connection (send); while it
 * has none, results wait. The server (server.c) feeds it URB and UNLINK
 * frames and tells it when the connection comes and goes. As target.h
 * has it, the device completes a cancelled URB later from the event loop,
 * never inside the cancel call. */
#ifndef NETBUS_CHANNEL_USB_EXPORT_H
#define NETBUS_CHANNEL_USB_EXPORT_H

#include "conn.h"

#include <stdint.h>

#define NB_USB_WINDOW 256

struct nb_session;
struct nb_usb_sess;

/* Where replies go: out must be queued on the connection (which calls its
 * release when done with it). */
typedef void nb_usb_send(void *opaque, struct nb_out *out);

/* State for session s of a usb export. NULL if out of memory. */
struct nb_usb_sess *nb_usb_sess_new(struct nb_session *s);
/* Forgets the results. URBs still at the device are cancelled and freed as
 * they complete (s must stay valid until its inflight count is 0). */
void nb_usb_sess_free(struct nb_usb_sess *u);
/* The session is served on a connection (send, opaque) or none (NULL):
 * replies owed to a connection that went away are not sent. */
void nb_usb_sess_connect(struct nb_usb_sess *u, nb_usb_send *send,
                         void *opaque);
/* The lowest sequence number not seen yet. */
uint64_t nb_usb_sess_next_seq(const struct nb_usb_sess *u);

/* A URB frame (payload: its whole body) and an UNLINK frame for the
 * session; each is answered through send. */
void nb_usb_urb(struct nb_usb_sess *u, const struct nb_hdr *h,
                const uint8_t *payload);
void nb_usb_unlink(struct nb_usb_sess *u, const struct nb_hdr *h,
                   const uint8_t *payload);

#endif
