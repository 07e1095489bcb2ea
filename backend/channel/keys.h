/* keys: the pre-shared keys a host authenticates peers with, from a key
 * file of `PEER-NAME KEY-HEX` lines (`*` as the name: the cluster key, used
 * for every peer without a line of its own; `#` comments). The file must be
 * a regular file readable by its owner only: the keys are secrets. Keys are
 * 16 to 64 bytes (32 to 128 hex digits). */
#ifndef NETBUS_CHANNEL_KEYS_H
#define NETBUS_CHANNEL_KEYS_H

#include "frame.h"

#include <stddef.h>
#include <stdint.h>

#define NB_KEY_MIN 16
#define NB_KEY_MAX 64

struct nb_key {
    char name[NB_NAME_MAX + 1]; /* "*" for the cluster key */
    uint8_t key[NB_KEY_MAX];
    size_t len;
};

struct nb_keyring;

/* Loads path. NULL with a reason (FILE:LINE: what and how to fix) in err. */
struct nb_keyring *nb_keyring_load(const char *path, char *err, size_t errlen);
/* Parses key-file text (no permission check): for tests and the loader. */
struct nb_keyring *nb_keyring_parse(const char *text, const char *origin,
                                    char *err, size_t errlen);
/* An empty keyring: every peer is refused. */
struct nb_keyring *nb_keyring_empty(void);
/* The key for peer: its own line, else the cluster key, else NULL. */
const struct nb_key *nb_keyring_find(const struct nb_keyring *kr,
                                     const char *peer);
unsigned nb_keyring_count(const struct nb_keyring *kr);
/* Wipes the keys and frees. */
void nb_keyring_free(struct nb_keyring *kr);

#endif
