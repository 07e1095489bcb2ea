/* conn: one netbus connection, either role. A non-blocking TCP socket on
 * the event loop carries the handshake (HELLO, CHALLENGE, AUTH, WELCOME or
 * REFUSED; auth.h), then optionally TLS 1.3 with a per-connection PSK, then
 * frames. Keepalive lives here: a client PINGs when it has heard nothing
 * for keepalive_ms and gives the peer up after three such periods; a server
 * gives a client up after three of the client's periods (from HELLO) plus a
 * second. PING/PONG never reach the owner.
 *
 * Zero copy: the owner says where each payload goes (sink: iovecs, e.g.
 * mapped guest pages, read with readv) and queues frames whose data is
 * written from its own memory (writev). With TLS the bytes necessarily pass
 * through the TLS library's buffers.
 *
 * Few system calls: queued frames leave in one writev; a read also takes
 * what follows the frame (a server up to 64 KiB of requests, a client two
 * headers and statuses, so at most 32 data bytes are staged); a short read
 * means the socket is empty (no read for EAGAIN). */
#ifndef NETBUS_CHANNEL_CONN_H
#define NETBUS_CHANNEL_CONN_H

#include "frame.h"
#include "keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct evloop;
struct nb_conn;

#define NB_MAX_IOV 260 /* status/body head + 256 segments + slack */

/* A frame to send: head (header + body) copied in, data by reference. The
 * data must stay valid until release is called or nb_conn_cancel
 * succeeded. */
struct nb_out {
    struct nb_out *next;
    uint8_t head[NB_HDR_SIZE + NB_MAX_CTRL];
    size_t head_len;
    const struct iovec *iov;
    unsigned iovcnt;
    size_t total, done;
    bool queued;
    /* Called once every byte went to the socket (or TLS), or when the
     * connection drops it; may be NULL. */
    void (*release)(struct nb_out *o);
};

/* Fills o: header h (length computed) + body + data iovecs. */
void nb_out_set(struct nb_out *o, const struct nb_hdr *h, const void *body,
                size_t body_len, const struct iovec *iov, unsigned iovcnt);

enum nb_role { NB_ROLE_CLIENT, NB_ROLE_SERVER };

struct nb_conn_cfg {
    enum nb_role role;
    const char *my_name;
    const struct nb_keyring *keys;
    bool want_tls;          /* client: ask for TLS */
    bool require_tls;       /* server: refuse peers without TLS */
    unsigned keepalive_ms;  /* client: ping interval */
    unsigned handshake_ms;  /* whole handshake, TLS included */
};

struct nb_conn_ops {
    /* A frame header after authentication. Fill *iov and *iovcnt (at most
     * NB_MAX_IOV entries, h->length bytes in all) to receive the payload
     * there, or leave *iovcnt 0 to get it buffered. -1: protocol error. */
    int (*sink)(struct nb_conn *c, const struct nb_hdr *h,
                const struct iovec **iov, unsigned *iovcnt);
    /* The whole frame; payload is the buffer, or NULL if it went to the
     * sink's iovecs. -1: protocol error (the connection closes). */
    int (*frame)(struct nb_conn *c, const struct nb_hdr *h,
                 const uint8_t *payload);
    /* Authenticated (and TLS up if agreed). */
    void (*up)(struct nb_conn *c);
    /* The connection is gone (any reason, nb_conn_close included); it is
     * freed after this returns. Queued frames were released. */
    void (*down)(struct nb_conn *c, const char *why);
};

/* Takes fd (a stream socket, connected or with a non-blocking connect in
 * progress). where: log prefix. */
struct nb_conn *nb_conn_new(struct evloop *loop, int fd,
                            const struct nb_conn_cfg *cfg,
                            const struct nb_conn_ops *ops, void *opaque,
                            const char *where);
void *nb_conn_opaque(const struct nb_conn *c);
/* cb runs once the frames that arrived together were all delivered (the
 * socket is empty): what they started can go on as one batch. */
void nb_conn_on_rx_end(struct nb_conn *c, void (*cb)(struct nb_conn *c));
/* The authenticated peer name ("" before). */
const char *nb_conn_peer(const struct nb_conn *c);
bool nb_conn_is_up(const struct nb_conn *c);
bool nb_conn_encrypted(const struct nb_conn *c);
const char *nb_conn_where(const struct nb_conn *c);

/* Queues o (sent by nb_conn_flush, or at once if nothing is pending). */
void nb_conn_send(struct nb_conn *c, struct nb_out *o);
/* Writes what the socket takes now; the rest when it is writable. */
void nb_conn_flush(struct nb_conn *c);
/* Takes o back out of the queue: 0 if it was, or was never queued; -1 if
 * part of it is on the wire already (the caller must close the
 * connection). */
int nb_conn_cancel(struct nb_conn *c, struct nb_out *o);
/* Stops/starts reading (server back-pressure). */
void nb_conn_pause(struct nb_conn *c, bool paused);
/* Closes: down() is called, then the connection is freed (at once, or when
 * the callback running on it returns). */
void nb_conn_close(struct nb_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
