/* A TCP proxy on loopback, run by the test's event loop, between a channel
 * client and server: it can cut the byte stream into tiny pieces, hold
 * either direction, kill its connections (at once, or once a byte count is
 * reached) and refuse new ones (the peer is gone). Shared by the channel
 * suites (test_channel_net.c, test_channel_usb.c). */
#ifndef NETBUS_TEST_PROXY_H
#define NETBUS_TEST_PROXY_H

#include "evloop.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct test_proxy {
    struct evloop *loop;
    int lfd;
    unsigned port;           /* where clients connect */
    struct sockaddr_in server;
    unsigned chop;           /* 0: whole reads, else 1..chop bytes a read */
    bool hold[2];            /* stop forwarding 0: client -> server, 1: back */
    bool down;               /* refuse connections */
    uint64_t bytes, kill_at; /* kill every connection once bytes >= kill_at */
    unsigned accepted;
    struct proxy_conn *list;
};

/* Listens on a loopback port (px->port) forwarding to server_port. */
int proxy_start(struct test_proxy *px, struct evloop *loop, unsigned server_port);
/* Kills every connection and forwards both ways again. */
void proxy_kill_all(struct test_proxy *px);
/* proxy_kill_all, and no more listening. */
void proxy_stop(struct test_proxy *px);

#endif
