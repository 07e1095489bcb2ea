/* keys: pre-shared key file (see keys.h). */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KEYS 4096
#define MAX_FILE (1u << 20)

struct nb_keyring {
    struct nb_key *keys;
    unsigned n;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static const struct nb_key *find_exact(const struct nb_keyring *kr,
                                       const char *name)
{
    for (unsigned i = 0; i < kr->n; i++)
        if (strcmp(kr->keys[i].name, name) == 0)
            return &kr->keys[i];
    return NULL;
}

struct nb_keyring *nb_keyring_empty(void)
{
    return calloc(1, sizeof(struct nb_keyring));
}

struct nb_keyring *nb_keyring_parse(const char *text, const char *origin,
                                    char *err, size_t errlen)
{
    struct nb_keyring *kr = nb_keyring_empty();
    if (!kr) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    unsigned lineno = 0;
    const char *p = text;
    while (*p) {
        lineno++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[512];
        if (len >= sizeof(line)) {
            snprintf(err, errlen, "%s:%u: line too long", origin, lineno);
            goto fail;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (eol ? 1 : 0);
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *save, *name = strtok_r(line, " \t\r", &save);
        if (!name)
            continue;
        char *hex = strtok_r(NULL, " \t\r", &save);
        if (!hex || strtok_r(NULL, " \t\r", &save)) {
            snprintf(err, errlen, "%s:%u: expected 'PEER-NAME KEY-HEX' (or "
                     "'* KEY-HEX' for the cluster key)", origin, lineno);
            goto fail;
        }
        if (strcmp(name, "*") != 0 && !nb_name_ok(name, strlen(name))) {
            snprintf(err, errlen, "%s:%u: '%.80s' is not a peer name (1-64 "
                     "of A-Z a-z 0-9 . _ -, or * for the cluster key)",
                     origin, lineno, name);
            goto fail;
        }
        size_t hl = strlen(hex);
        if (hl % 2 || hl < 2 * NB_KEY_MIN || hl > 2 * NB_KEY_MAX) {
            snprintf(err, errlen, "%s:%u: the key for %s must be %d to %d hex "
                     "digits, an even number (e.g. from `openssl rand -hex "
                     "32`)", origin, lineno, name, 2 * NB_KEY_MIN,
                     2 * NB_KEY_MAX);
            goto fail;
        }
        if (find_exact(kr, name)) {
            snprintf(err, errlen, "%s:%u: a second key for %s", origin,
                     lineno, name);
            goto fail;
        }
        if (kr->n >= MAX_KEYS) {
            snprintf(err, errlen, "%s:%u: more than %d keys", origin, lineno,
                     MAX_KEYS);
            goto fail;
        }
        struct nb_key k = { .len = hl / 2 };
        snprintf(k.name, sizeof(k.name), "%s", name);
        for (size_t i = 0; i < k.len; i++) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                snprintf(err, errlen, "%s:%u: the key for %s has a character "
                         "that is not a hex digit", origin, lineno, name);
                explicit_bzero(&k, sizeof(k));
                goto fail;
            }
            k.key[i] = (uint8_t)(hi << 4 | lo);
        }
        explicit_bzero(hex, hl);
        struct nb_key *nk = realloc(kr->keys, (kr->n + 1) * sizeof(*nk));
        if (!nk) {
            explicit_bzero(&k, sizeof(k));
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        kr->keys = nk;
        kr->keys[kr->n++] = k;
        explicit_bzero(&k, sizeof(k));
    }
    return kr;
fail:
    nb_keyring_free(kr);
    return NULL;
}

struct nb_keyring *nb_keyring_load(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "key file %s: %s%s", path, strerror(errno),
                 errno == ENOENT ? " (create it with 'PEER-NAME KEY-HEX' "
                 "lines, mode 600)" : "");
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "key file %s is not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "key file %s is readable or writable by group "
                 "or others (mode %03o): run chmod 600 %s", path,
                 (unsigned)(st.st_mode & 0777), path);
        close(fd);
        return NULL;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        snprintf(err, errlen, "key file %s belongs to uid %u, neither root "
                 "nor this process: chown it", path, (unsigned)st.st_uid);
        close(fd);
        return NULL;
    }
    if (st.st_size > (off_t)MAX_FILE) {
        snprintf(err, errlen, "key file %s is larger than 1 MiB", path);
        close(fd);
        return NULL;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (text && got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    text[got] = '\0';
    struct nb_keyring *kr = nb_keyring_parse(text, path, err, errlen);
    explicit_bzero(text, got);
    free(text);
    return kr;
}

const struct nb_key *nb_keyring_find(const struct nb_keyring *kr,
                                     const char *peer)
{
    const struct nb_key *cluster = NULL;
    for (unsigned i = 0; kr && i < kr->n; i++) {
        if (strcmp(kr->keys[i].name, peer) == 0)
            return &kr->keys[i];
        if (strcmp(kr->keys[i].name, "*") == 0)
            cluster = &kr->keys[i];
    }
    return cluster;
}

unsigned nb_keyring_count(const struct nb_keyring *kr)
{
    return kr ? kr->n : 0;
}

void nb_keyring_free(struct nb_keyring *kr)
{
    if (!kr)
        return;
    if (kr->keys)
        explicit_bzero(kr->keys, kr->n * sizeof(*kr->keys));
    free(kr->keys);
    free(kr);
}
