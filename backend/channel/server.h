/* server: the export side of the netbus channel. Listens on ADDR:PORT,
 * authenticates each connection (conn.c), then serves OPEN/CLOSE and block
 * READ/WRITE/FLUSH/DISCARD on the exports' targets with any number of tags
 * in flight, answering each as its I/O completes. An OPEN for an export
 * that does not exist and one the peer is not allowed get the same answer
 * (NOENT). A session whose connection drops stays until its I/O completes;
 * an OPEN that resumes it from a new connection takes it over (the old
 * connection is closed) and is answered only once that I/O is done, so a
 * request from before a reconnect can never land after one from after. */
#ifndef NETBUS_CHANNEL_SERVER_H
#define NETBUS_CHANNEL_SERVER_H

#include "conn.h"

#include <stddef.h>

struct evloop;
struct nb_exports;
struct nb_server;

/* addr: "HOST:PORT", "[V6]:PORT" or "HOST" (port 7797). cfg must outlive
 * the server (role NB_ROLE_SERVER). NULL with err. */
struct nb_server *nb_server_new(struct evloop *loop, struct nb_exports *reg,
                                const struct nb_conn_cfg *cfg,
                                const char *addr, char *err, size_t errlen);
/* How long a USB session whose connection dropped keeps its URB results
 * for its client to resume it (PROTOCOL.md section 8); then it is closed
 * and its URBs at the device are cancelled. */
#define NB_USB_LINGER_MS 60000
void nb_server_set_usb_linger(struct nb_server *srv, unsigned ms);

/* The address actually bound (port filled in when 0 was asked). */
const char *nb_server_addr(const struct nb_server *srv);
unsigned nb_server_connections(const struct nb_server *srv);
/* Closes every connection and the listener. */
void nb_server_free(struct nb_server *srv);

/* Splits "HOST:PORT" / "[V6]:PORT" / "HOST" into host and port. 0 or -1. */
int nb_split_hostport(const char *s, char *host, size_t hostlen,
                      unsigned *port);

#endif
