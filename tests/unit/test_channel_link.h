/* A channel between two hosts in one test process: a server (hostB)
 * serving an export registry, reached by a peer pool (hostA) through the
 * test proxy, both with one shared test key. Shared by the channel suites
 * (test_channel_net.c, test_channel_usb.c). */
#ifndef NETBUS_TEST_CHANNEL_LINK_H
#define NETBUS_TEST_CHANNEL_LINK_H

#include "backend/channel/conn.h"
#include "backend/channel/export.h"
#include "backend/channel/keys.h"
#include "backend/channel/peer.h"
#include "backend/channel/server.h"
#include "evloop.h"
#include "test_proxy.h"

#include <stddef.h>

struct test_link {
    struct nb_keyring *keys;
    struct nb_conn_cfg scfg, ccfg;
    struct nb_server *srv;
    struct test_proxy px;
    struct nb_peer_pool pool;  /* clients connect to the proxy's port */
};

/* Starts it with keepalives every keepalive_ms. NULL, or what failed
 * ("server", "proxy") with why in err. */
const char *test_link_start(struct test_link *l, struct evloop *loop,
                            struct nb_exports *reg, unsigned keepalive_ms,
                            char *err, size_t errlen);
/* Stops what was started (also after a partial start). */
void test_link_stop(struct test_link *l);

#endif
