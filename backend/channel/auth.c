/* auth: handshake MACs (see auth.h), HMAC-SHA256 through GnuTLS. */
#include "auth.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

int nb_auth_mac(const uint8_t *key, size_t keylen, enum nb_auth_label label,
                const struct nb_transcript *t, uint8_t out[NB_MAC_SIZE])
{
    static const char *const labels[] = { "netbus1 client", "netbus1 server",
                                          "netbus1 tls" };
    uint8_t msg[16 + 2 * NB_NONCE_SIZE + 2 * (NB_NAME_MAX + 1) + 6];
    size_t n = 0, l = strlen(labels[label]);
    memcpy(msg, labels[label], l);
    n += l;
    memcpy(msg + n, t->client_nonce, NB_NONCE_SIZE);
    n += NB_NONCE_SIZE;
    memcpy(msg + n, t->server_nonce, NB_NONCE_SIZE);
    n += NB_NONCE_SIZE;
    const char *names[2] = { t->client, t->server };
    for (int i = 0; i < 2; i++) {
        size_t nl = strnlen(names[i], NB_NAME_MAX);
        msg[n++] = (uint8_t)nl;
        memcpy(msg + n, names[i], nl);
        n += nl;
    }
    for (int i = 0; i < 4; i++)
        msg[n++] = (uint8_t)(t->flags >> (8 * i));
    msg[n++] = (uint8_t)t->version;
    msg[n++] = (uint8_t)(t->version >> 8);
    return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, msg, n, out) < 0
               ? -1 : 0;
}

bool nb_mac_equal(const uint8_t a[NB_MAC_SIZE], const uint8_t b[NB_MAC_SIZE])
{
    uint8_t d = 0;
    for (size_t i = 0; i < NB_MAC_SIZE; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

int nb_auth_nonce(uint8_t out[NB_NONCE_SIZE])
{
    return gnutls_rnd(GNUTLS_RND_NONCE, out, NB_NONCE_SIZE) < 0 ? -1 : 0;
}
