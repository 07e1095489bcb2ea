/* channel: the process's netbus channel (see channel.h). */
#include "channel.h"

#include "export.h"
#include "keys.h"
#include "local.h"
#include "local_usb.h"
#include "log.h"
#include "remote.h"
#include "server.h"
#include "url.h"
#include "usb_remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HANDSHAKE_MS 10000

struct channel {
    struct evloop *loop;
    struct channel_settings s;
    struct nb_keyring *keys;
    struct nb_conn_cfg client_cfg, server_cfg;
    struct nb_exports *exports;
    struct nb_server *server;
    struct nb_peer_pool pool;
};

static struct channel *chan;

void channel_settings_default(struct channel_settings *s)
{
    memset(s, 0, sizeof(*s));
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) == 0) {
        char *dot = strchr(host, '.');
        if (dot)
            *dot = '\0';
    }
    snprintf(s->name, sizeof(s->name), "%s",
             nb_name_ok(host, strlen(host)) ? host : "localhost");
    snprintf(s->listen, sizeof(s->listen), "%s", NB_LISTEN_AUTO);
    snprintf(s->keys, sizeof(s->keys), "%s", NB_DEFAULT_KEYS);
    s->encrypt = NB_ENCRYPT_NO;
    s->keepalive_ms = 2000;
    s->io_timeout_ms = 30000;
    s->reconnect_max_ms = 5000;
}

static int start_server(struct channel *c, const char *addr, char *err,
                        size_t errlen)
{
    c->server = nb_server_new(c->loop, c->exports, &c->server_cfg, addr, err,
                              errlen);
    if (!c->server)
        return -1;
    nb_exports_set_listen(c->exports, nb_server_addr(c->server));
    if (!nb_keyring_count(c->keys))
        log_warn(NULL, "netbus: listening on %s with no keys: every peer is "
                 "refused (see %s)", nb_server_addr(c->server), c->s.keys);
    return 0;
}

/* listen = auto: start serving once the first export is ready. */
static void exports_changed(void *opaque)
{
    struct channel *c = opaque;
    if (c->server || nb_exports_count(c->exports) == 0)
        return;
    char addr[64], err[512];
    snprintf(addr, sizeof(addr), "0.0.0.0:%u", NB_DEFAULT_PORT);
    if (start_server(c, addr, err, sizeof(err)) < 0)
        log_error(NULL, "netbus: exports exist but %s (set listen = "
                  "ADDR:PORT in netbusd.conf)", err);
}

int channel_start(struct evloop *loop, const struct xenif_config *cfg,
                  const struct channel_settings *s, char *err, size_t errlen)
{
    if (chan) {
        snprintf(err, errlen, "the netbus channel is already running");
        return -1;
    }
    struct channel *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->loop = loop;
    c->s = *s;
    if (access(s->keys, F_OK) < 0 && errno == ENOENT) {
        log_info(NULL, "netbus: no key file %s: other hosts are refused and "
                 "cannot be used; this host's exports still serve its own "
                 "guests", s->keys);
        c->keys = nb_keyring_empty();
    } else {
        c->keys = nb_keyring_load(s->keys, err, errlen);
        if (!c->keys)
            goto fail;
    }
    c->client_cfg = (struct nb_conn_cfg){
        .role = NB_ROLE_CLIENT, .my_name = c->s.name, .keys = c->keys,
        .want_tls = s->encrypt != NB_ENCRYPT_NO,
        .keepalive_ms = s->keepalive_ms, .handshake_ms = HANDSHAKE_MS };
    c->server_cfg = (struct nb_conn_cfg){
        .role = NB_ROLE_SERVER, .my_name = c->s.name, .keys = c->keys,
        .require_tls = s->encrypt == NB_ENCRYPT_REQUIRED,
        .keepalive_ms = s->keepalive_ms, .handshake_ms = HANDSHAKE_MS };
    c->pool = (struct nb_peer_pool){ .loop = loop, .cfg = &c->client_cfg,
                                     .reconnect_max_ms = s->reconnect_max_ms };
    c->exports = nb_exports_new(loop, cfg, c->s.name, err, errlen);
    if (!c->exports)
        goto fail;
    if (strcmp(s->listen, NB_LISTEN_AUTO) == 0) {
        nb_exports_on_change(c->exports, exports_changed, c);
        exports_changed(c);
    } else if (strcmp(s->listen, NB_LISTEN_OFF) != 0 &&
               start_server(c, s->listen, err, errlen) < 0) {
        goto fail;
    }
    log_info(NULL, "netbus: this host is '%s', %u key(s), encryption %s",
             c->s.name, nb_keyring_count(c->keys),
             s->encrypt == NB_ENCRYPT_NO ? "off"
             : s->encrypt == NB_ENCRYPT_YES ? "on" : "required");
    chan = c;
    return 0;
fail:
    nb_exports_free(c->exports);
    nb_keyring_free(c->keys);
    free(c);
    return -1;
}

void channel_stop(void)
{
    struct channel *c = chan;
    if (!c)
        return;
    nb_server_free(c->server);
    nb_exports_free(c->exports);
    nb_keyring_free(c->keys);
    free(c);
    chan = NULL;
}

static bool is_this_host(const struct channel *c, const char *host)
{
    if (strcmp(host, c->s.name) == 0)
        return true;
    size_t n = strlen(host);
    for (const char *p = c->s.aliases; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, host, n) == 0)
            return true;
        p += len + (comma ? 1 : 0);
    }
    return false;
}

/* What a device URL names: an export of this host (*local set) or of
 * another (*local NULL; u and owner filled for the remote open). -1 with
 * err when the channel is not running, the URL is bad, or the local export
 * is missing or of another kind. */
static int resolve_url(const char *url, enum nb_export_kind kind,
                       const char *owner_id, const char *where,
                       struct nb_url *u, char owner[NB_OWNER_MAX + 1],
                       struct nb_export **local, char *err, size_t errlen)
{
    static const char *const what[] = { [NB_EXPORT_VBD] = "disks",
                                        [NB_EXPORT_USB] = "USB devices" };
    struct channel *c = chan;
    if (!c) {
        snprintf(err, errlen, "netbus:// %s need the netbus channel, which "
                 "this process does not run", what[kind]);
        return -1;
    }
    if (nb_url_parse(url, u, err, errlen) < 0)
        return -1;
    if (owner_id)
        snprintf(owner, NB_OWNER_MAX + 1, "%s", owner_id);
    else
        snprintf(owner, NB_OWNER_MAX + 1, "%s %s", c->s.name, where);
    *local = NULL;
    if (!is_this_host(c, u->host))
        return 0;
    *local = nb_exports_find(c->exports, u->export_name);
    if (!*local) {
        snprintf(err, errlen, "this host (%s) has no export '%s' (see "
                 "`netbusctl list`)", c->s.name, u->export_name);
        return -1;
    }
    if (nb_export_kind(*local) != kind) {
        snprintf(err, errlen, "export '%s' is %s, not %s", u->export_name,
                 kind == NB_EXPORT_VBD ? "a USB device" : "a disk",
                 kind == NB_EXPORT_VBD ? "a disk" : "a USB device");
        return -1;
    }
    return 0;
}

struct vbd_target *channel_open_url(const char *url, bool readonly,
                                    const char *owner_id, const char *where,
                                    void (*ready)(void *opaque,
                                                  const char *err),
                                    void *opaque, bool *pending, char *err,
                                    size_t errlen)
{
    struct nb_url u;
    char owner[NB_OWNER_MAX + 1];
    struct nb_export *ex;
    if (resolve_url(url, NB_EXPORT_VBD, owner_id, where, &u, owner, &ex, err,
                    errlen) < 0)
        return NULL;
    *pending = ex == NULL;
    if (ex)
        return nb_local_open(ex, chan->s.name, owner, readonly, where, err,
                             errlen);
    struct nb_remote_params p = {
        .pool = &chan->pool, .host = u.host, .port = u.port,
        .export_name = u.export_name, .owner = owner, .readonly = readonly,
        .io_timeout_ms = chan->s.io_timeout_ms, .where = where,
        .ready = ready, .ready_opaque = opaque };
    struct vbd_target *t = nb_remote_open(&p);
    if (!t)
        snprintf(err, errlen, "out of memory");
    return t;
}

struct vusb_target *channel_open_usb_url(const char *url, const char *owner_id,
                                         const char *where,
                                         void (*failed)(void *opaque,
                                                        const char *why),
                                         void *opaque, char *err,
                                         size_t errlen)
{
    struct nb_url u;
    char owner[NB_OWNER_MAX + 1];
    struct nb_export *ex;
    if (resolve_url(url, NB_EXPORT_USB, owner_id, where, &u, owner, &ex, err,
                    errlen) < 0)
        return NULL;
    if (ex)
        return nb_local_usb_open(ex, chan->s.name, owner, where, err, errlen);
    struct nb_usb_remote_params p = {
        .pool = &chan->pool, .host = u.host, .port = u.port,
        .export_name = u.export_name, .owner = owner,
        .io_timeout_ms = chan->s.io_timeout_ms, .where = where,
        .failed = failed, .opaque = opaque };
    struct vusb_target *t = nb_usb_remote_open(&p);
    if (!t)
        snprintf(err, errlen, "out of memory");
    return t;
}
