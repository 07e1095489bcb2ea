/* Two hosts' channel in one test process. See test_channel_link.h. */
#include "test_channel_link.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

const char *test_link_start(struct test_link *l, struct evloop *loop,
                            struct nb_exports *reg, unsigned keepalive_ms,
                            char *err, size_t errlen)
{
    l->keys = nb_keyring_parse("* 00112233445566778899aabbccddeeff\n", "test",
                               err, errlen);
    l->scfg = (struct nb_conn_cfg){ .role = NB_ROLE_SERVER, .my_name = "hostB",
                                    .keys = l->keys, .keepalive_ms = keepalive_ms,
                                    .handshake_ms = 2000 };
    l->ccfg = (struct nb_conn_cfg){ .role = NB_ROLE_CLIENT, .my_name = "hostA",
                                    .keys = l->keys, .keepalive_ms = keepalive_ms,
                                    .handshake_ms = 2000 };
    l->srv = nb_server_new(loop, reg, &l->scfg, "127.0.0.1:0", err, errlen);
    if (!l->srv)
        return "server";
    const char *colon = strrchr(nb_server_addr(l->srv), ':');
    if (proxy_start(&l->px, loop, (unsigned)atoi(colon + 1)) < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return "proxy";
    }
    l->pool = (struct nb_peer_pool){ .loop = loop, .cfg = &l->ccfg,
                                     .reconnect_max_ms = 200 };
    return NULL;
}

void test_link_stop(struct test_link *l)
{
    proxy_stop(&l->px);
    nb_server_free(l->srv);
    nb_keyring_free(l->keys);
}
