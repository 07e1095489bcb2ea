/* auth: the mutual challenge-response of the netbus handshake. Each side
 * sends a fresh random nonce; each proves it holds the pre-shared key K with
 *   HMAC-SHA256(K, label | nonce_c | nonce_s | len|client | len|server
 *                  | flags | version)
 * label "netbus1 client" for the client's AUTH, "netbus1 server" for the
 * server's WELCOME. With TLS agreed, both derive the TLS 1.3 PSK of this
 * connection with label "netbus1 tls". A replayed AUTH fails: the server's
 * nonce is new on every connection. */
#ifndef NETBUS_CHANNEL_AUTH_H
#define NETBUS_CHANNEL_AUTH_H

#include "frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum nb_auth_label { NB_LABEL_CLIENT, NB_LABEL_SERVER, NB_LABEL_TLS };

/* What both sides agreed on; the MAC covers all of it. */
struct nb_transcript {
    uint8_t client_nonce[NB_NONCE_SIZE], server_nonce[NB_NONCE_SIZE];
    char client[NB_NAME_MAX + 1], server[NB_NAME_MAX + 1];
    uint32_t flags;    /* NB_HELLO_TLS if agreed */
    uint16_t version;
};

/* 0, or -1 if the crypto library failed. */
int nb_auth_mac(const uint8_t *key, size_t keylen, enum nb_auth_label label,
                const struct nb_transcript *t, uint8_t out[NB_MAC_SIZE]);
/* Constant-time comparison. */
bool nb_mac_equal(const uint8_t a[NB_MAC_SIZE], const uint8_t b[NB_MAC_SIZE]);
/* Fresh random nonce; 0 or -1. */
int nb_auth_nonce(uint8_t out[NB_NONCE_SIZE]);

#endif
