/* export: exported devices, their sessions and the xenstore registry (see
 * export.h). */
#include "export.h"

#include "backend/vbd/target.h"
#include "backend/vbd/vbd.h"
#include "backend/vusb/target.h"
#include "backend/vusb/usb_host.h"
#include "evloop.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#define TOKEN "netbus-exports"
#define MAX_REAPED 64

struct reaped_cb {
    void (*cb)(void *opaque);
    void *opaque;
};

struct nb_export {
    struct nb_exports *reg;
    char name[NB_NAME_MAX + 1];
    char *dir;              /* .../netbus/exports/NAME */
    char *allowed;          /* comma-separated peer names; "" = any */
    bool readonly;
    enum nb_export_kind kind;
    struct vbd_target *target;
    struct vusb_target *usb;
    uint16_t vendor, product;
    struct nb_session *sessions;
    struct reaped_cb reaped[MAX_REAPED];
    unsigned nreaped;
    bool seen;              /* in the last scan */
    struct nb_export *next;
};

struct nb_exports {
    struct evloop *loop;
    struct xenif_xs *xs;
    char root[64];          /* /local/domain/SELF/netbus */
    char exports[80];       /* root/exports */
    char node[NB_NAME_MAX + 1];
    struct nb_export *list;
    unsigned count;
    uint32_t next_session;
    void (*on_change)(void *opaque);
    void *change_opaque;
    bool watching;
    nb_usb_opener *usb_open;
};

/* ---- xenstore helpers ---------------------------------------------------- */

static char *rd(struct nb_exports *reg, const char *dir, const char *key)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_read(reg->xs, 0, path, NULL);
}

static void wr(struct nb_exports *reg, const char *dir, const char *key,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void wr(struct nb_exports *reg, const char *dir, const char *key,
               const char *fmt, ...)
{
    char path[1024], val[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    if (xenif_xs_write(reg->xs, 0, path, val, strlen(val)) < 0)
        log_warn(path, "cannot write: %s", strerror(errno));
}

static void rm(struct nb_exports *reg, const char *dir, const char *key)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s%s%s", dir, key ? "/" : "", key ? key : "");
    if (xenif_xs_rm(reg->xs, 0, path) < 0 && errno != ENOENT)
        log_warn(path, "cannot remove: %s", strerror(errno));
}

/* ---- sessions ----------------------------------------------------------- */

struct nb_session *nb_session_find(struct nb_exports *reg, uint32_t id)
{
    for (struct nb_export *ex = reg->list; ex; ex = ex->next)
        for (struct nb_session *s = ex->sessions; s; s = s->next)
            if (s->id == id)
                return s;
    return NULL;
}

/* A guest's identity (its domain UUID) rather than "HOST BACKEND-PATH". */
static bool owner_is_guest(const char *owner)
{
    return strlen(owner) == 36 &&
           strspn(owner, "0123456789abcdefABCDEF-") == 36;
}

/* Handover and exclusion (PROTOCOL.md, "Sessions"): a session opened for a
 * guest that already has one on this export (the LBE of the host it
 * migrated to) supersedes the old one; another guest is refused while a
 * writer holds the export. -1 with errno EBUSY to refuse. */
static int claim(struct nb_export *ex, const char *owner, bool readonly,
                 uint32_t new_id)
{
    if (!owner_is_guest(owner))
        return 0; /* identity unknown: nothing to compare */
    for (struct nb_session *o = ex->sessions; o; o = o->next) {
        if (o->superseded || !owner_is_guest(o->owner) ||
            strcmp(o->owner, owner) == 0)
            continue;
        if (!readonly || !o->readonly) {
            log_warn(ex->dir, "refused a session for guest %s: guest %s holds "
                     "the export (session %u%s)", owner, o->owner, o->id,
                     o->readonly ? ", read-only" : "");
            errno = EBUSY;
            return -1;
        }
    }
    for (struct nb_session *o = ex->sessions; o; o = o->next)
        if (!o->superseded && strcmp(o->owner, owner) == 0) {
            o->superseded = true;
            o->superseded_by = new_id;
            log_info(ex->dir, "session %u of guest %s (from %s) is handed over "
                     "to a new session%s", o->id, owner, o->peer,
                     o->inflight ? "; its requests in flight finish first" : "");
        }
    return 0;
}

struct nb_session *nb_session_new(struct nb_export *ex, const char *peer,
                                  const char *owner, bool readonly)
{
    struct nb_exports *reg = ex->reg;
    uint32_t id;
    if (ex->kind == NB_EXPORT_USB)
        readonly = false;
    do {
        id = ++reg->next_session;
    } while (id == 0 || nb_session_find(reg, id));
    if (claim(ex, owner, readonly, id) < 0)
        return NULL;
    struct nb_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->id = id;
    s->ex = ex;
    snprintf(s->peer, sizeof(s->peer), "%s", peer);
    snprintf(s->owner, sizeof(s->owner), "%s", owner);
    s->readonly = readonly;
    s->next = ex->sessions;
    ex->sessions = s;
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/sessions/%u", ex->dir, s->id);
    wr(reg, dir, "peer", "%s", peer);
    wr(reg, dir, "owner", "%s", owner);
    wr(reg, dir, "opened", "%lld", (long long)time(NULL));
    log_info(ex->dir, "session %u opened by %s (%s)%s", s->id, peer, owner,
             readonly ? ", read-only" : "");
    return s;
}

void nb_session_free(struct nb_session *s)
{
    struct nb_export *ex = s->ex;
    for (struct nb_session **pp = &ex->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    /* The guest's move was cancelled (its new LBE went away before the
     * old one did): the session it superseded serves again. */
    for (struct nb_session *o = ex->sessions; o; o = o->next)
        if (o->superseded && o->superseded_by == s->id) {
            o->superseded = false;
            log_info(ex->dir, "session %u of guest %s is back in service "
                     "(session %u that took it over closed)", o->id, o->owner,
                     s->id);
        }
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/sessions/%u", ex->dir, s->id);
    rm(ex->reg, dir, NULL);
    log_info(ex->dir, "session %u of %s closed", s->id, s->peer);
    free(s);
}

void nb_session_io_start(struct nb_session *s)
{
    s->inflight++;
}

bool nb_session_must_wait(const struct nb_session *s)
{
    for (const struct nb_session *o = s->ex->sessions; o; o = o->next)
        if (o->superseded && o->superseded_by == s->id && o->inflight)
            return true;
    return false;
}

void nb_session_io_end(struct nb_session *s)
{
    if (--s->inflight)
        return;
    struct nb_session *next = NULL;
    if (s->superseded)
        for (next = s->ex->sessions; next; next = next->next)
            if (next->id == s->superseded_by)
                break;
    if (s->drained)
        s->drained(s); /* may free s */
    /* The session that took this one over may have waited for it. */
    if (next && next->drained && !next->inflight && !nb_session_must_wait(next))
        next->drained(next);
}

/* ---- exports -------------------------------------------------------------- */

struct nb_export *nb_exports_find(struct nb_exports *reg, const char *name)
{
    for (struct nb_export *ex = reg->list; ex; ex = ex->next)
        if (strcmp(ex->name, name) == 0)
            return ex;
    return NULL;
}

bool nb_export_allows(const struct nb_export *ex, const char *peer)
{
    if (!ex->allowed[0])
        return true;
    size_t n = strlen(peer);
    for (const char *p = ex->allowed; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, peer, n) == 0)
            return true;
        p += len + (comma ? 1 : 0);
    }
    return false;
}

bool nb_export_readonly(const struct nb_export *ex)
{
    return ex->readonly;
}

enum nb_export_kind nb_export_kind(const struct nb_export *ex)
{
    return ex->kind;
}

struct vbd_target *nb_export_target(struct nb_export *ex)
{
    return ex->target;
}

struct vusb_target *nb_export_usb(struct nb_export *ex)
{
    return ex->usb;
}

void nb_export_usb_id(const struct nb_export *ex, uint16_t *vendor,
                      uint16_t *product)
{
    *vendor = ex->vendor;
    *product = ex->product;
}

void nb_exports_set_usb_opener(struct nb_exports *reg, nb_usb_opener *open)
{
    reg->usb_open = open;
}

const char *nb_export_name(const struct nb_export *ex)
{
    return ex->name;
}

unsigned nb_exports_count(const struct nb_exports *reg)
{
    return reg->count;
}

void nb_export_add_reaped(struct nb_export *ex, void (*cb)(void *opaque),
                          void *opaque)
{
    if (ex->nreaped < MAX_REAPED)
        ex->reaped[ex->nreaped++] = (struct reaped_cb){ cb, opaque };
    else
        log_warn(ex->dir, "more than %d in-process sessions: responses of "
                 "the last are pushed late", MAX_REAPED);
}

void nb_export_del_reaped(struct nb_export *ex, void *opaque)
{
    for (unsigned i = 0; i < ex->nreaped; i++)
        if (ex->reaped[i].opaque == opaque) {
            ex->reaped[i] = ex->reaped[--ex->nreaped];
            return;
        }
}

static void export_reaped(void *opaque)
{
    struct nb_export *ex = opaque;
    for (unsigned i = 0; i < ex->nreaped; i++)
        ex->reaped[i].cb(ex->reaped[i].opaque);
}

static void changed(struct nb_exports *reg)
{
    if (reg->on_change)
        reg->on_change(reg->change_opaque);
}

/* Ends the sessions, drains and closes the target, frees ex. */
static void export_close(struct nb_export *ex)
{
    struct nb_exports *reg = ex->reg;
    for (struct nb_session *s = ex->sessions; s; s = s->next)
        if (s->kill)
            s->kill(s);
    if (ex->target)
        ex->target->ops->close(ex->target);
    if (ex->usb)
        ex->usb->ops->close(ex->usb);
    while (ex->sessions) {
        struct nb_session *s = ex->sessions;
        ex->sessions = s->next;
        free(s);
    }
    for (struct nb_export **pp = &reg->list; *pp; pp = &(*pp)->next)
        if (*pp == ex) {
            *pp = ex->next;
            break;
        }
    reg->count--;
    free(ex->dir);
    free(ex->allowed);
    free(ex);
}

static bool peers_ok(const char *list)
{
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!nb_name_ok(p, len))
            return false;
        p += len + (comma ? 1 : 0);
    }
    return true;
}

/* ---- usb exports ----------------------------------------------------------- */

static void usb_changed(void *opaque)
{
    struct nb_export *ex = opaque;
    wr(ex->reg, ex->dir, "speed", "%s", vusb_speed_name(ex->usb->speed));
    for (struct nb_session *s = ex->sessions, *next; s; s = next) {
        next = s->next;
        if (s->changed)
            s->changed(s);
    }
}

/* The claimed device's vendor and product, from its descriptor. */
static void usb_identify(struct nb_export *ex, const char *name)
{
    char err[256];
    struct usb_host_match m;
    struct usb_host *h = usb_host_get(ex->reg->loop, err, sizeof(err));
    if (!h)
        return;
    libusb_device *dev = usb_host_parse(name, &m, err, sizeof(err)) == 0
                             ? usb_host_find(h, &m) : NULL;
    struct libusb_device_descriptor d;
    if (dev && libusb_get_device_descriptor(dev, &d) == 0) {
        ex->vendor = d.idVendor;
        ex->product = d.idProduct;
    }
    if (dev)
        libusb_unref_device(dev);
    usb_host_put(h);
}

/* Claims the device params names. 0, or -1 with err. */
static int usb_open(struct nb_export *ex, const char *params, char *err,
                    size_t errlen)
{
    struct nb_exports *reg = ex->reg;
    nb_usb_opener *open = reg->usb_open ? reg->usb_open
                                        : vusb_target_libusb_open;
    char terr[512];
    ex->usb = open(params, reg->loop, ex->dir, terr, sizeof(terr));
    if (!ex->usb) {
        snprintf(err, errlen, "cannot claim the USB device: %s", terr);
        return -1;
    }
    if (open == vusb_target_libusb_open)
        usb_identify(ex, params);
    ex->usb->changed = usb_changed;
    ex->usb->opaque = ex;
    return 0;
}

/* Opens the export described under dir; answers state ready or error. */
static void export_open(struct nb_exports *reg, const char *name,
                        const char *dir)
{
    char *params = rd(reg, dir, "params"), *kind = rd(reg, dir, "kind");
    char *ro = rd(reg, dir, "readonly"), *allowed = rd(reg, dir,
                                                         "allowed-peers");
    char err[600] = "";
    bool usb = kind && strcmp(kind, "usb") == 0;
    const char *path = usb ? params : vbd_params_path(params);
    struct nb_export *ex = NULL;
    if (!nb_name_ok(name, strlen(name)))
        snprintf(err, sizeof(err), "'%.80s' is not an export name (1-64 of "
                 "A-Z a-z 0-9 . _ -)", name);
    else if (kind && strcmp(kind, "vbd") != 0 && !usb)
        snprintf(err, sizeof(err), "kind '%.40s' cannot be exported (this "
                 "netbusd exports: vbd, usb)", kind);
    else if (!path || !*path)
        snprintf(err, sizeof(err), usb ? "params '%.200s' does not name a USB "
                 "device (BUS-PORT[.PORT] or VVVV:PPPP[:SERIAL])" : "params "
                 "'%.200s' is not an absolute path of a disk image or block "
                 "device", params ? params : "");
    else if (ro && strcmp(ro, "0") != 0 && strcmp(ro, "1") != 0)
        snprintf(err, sizeof(err), "readonly must be 0 or 1");
    else if (allowed && !peers_ok(allowed))
        snprintf(err, sizeof(err), "allowed-peers '%.200s' is not a comma-"
                 "separated list of peer names", allowed);
    if (!err[0]) {
        ex = calloc(1, sizeof(*ex));
        if (ex) {
            ex->dir = strdup(dir);
            ex->allowed = strdup(allowed ? allowed : "");
        }
        if (!ex || !ex->dir || !ex->allowed)
            snprintf(err, sizeof(err), "out of memory");
    }
    if (!err[0]) {
        ex->reg = reg;
        snprintf(ex->name, sizeof(ex->name), "%s", name);
        ex->readonly = !usb && ro && strcmp(ro, "1") == 0;
        ex->kind = usb ? NB_EXPORT_USB : NB_EXPORT_VBD;
        char terr[512];
        if (usb) {
            usb_open(ex, path, err, sizeof(err));
        } else {
            ex->target = vbd_target_file_open(path, ex->readonly, reg->loop,
                                              dir, terr, sizeof(terr));
            if (!ex->target)
                snprintf(err, sizeof(err), "cannot open the device: %s", terr);
        }
    }
    if (err[0]) {
        log_error(dir, "export: %s", err);
        wr(reg, dir, "error", "%s", err);
        wr(reg, dir, "state", "error");
        if (ex) {
            free(ex->dir);
            free(ex->allowed);
            free(ex);
        }
    } else {
        ex->seen = true;
        ex->next = reg->list;
        reg->list = ex;
        reg->count++;
        rm(reg, dir, "sessions");
        rm(reg, dir, "error");
        wr(reg, dir, "owner", "%s", reg->node);
        if (usb) {
            wr(reg, dir, "speed", "%s", vusb_speed_name(ex->usb->speed));
            if (ex->vendor || ex->product)
                wr(reg, dir, "vendor-product", "%04x:%04x", ex->vendor,
                   ex->product);
            log_info(dir, "exported USB device %s (%s speed)%s", path,
                     vusb_speed_name(ex->usb->speed),
                     ex->allowed[0] ? ", limited to named peers" : "");
        } else {
            ex->target->reaped = export_reaped;
            ex->target->opaque = ex;
            const struct vbd_target_info *ti = &ex->target->info;
            wr(reg, dir, "size", "%llu", (unsigned long long)ti->size);
            wr(reg, dir, "sector-size", "%u", ti->sector_size);
            log_info(dir, "exported %s: %llu bytes, %s%s", path,
                     (unsigned long long)ti->size,
                     ex->readonly ? "read-only" : "read-write",
                     ex->allowed[0] ? ", limited to named peers" : "");
        }
        wr(reg, dir, "state", "ready");
        changed(reg);
    }
    free(params);
    free(kind);
    free(ro);
    free(allowed);
}

static void export_remove(struct nb_exports *reg, struct nb_export *ex,
                          bool force)
{
    unsigned n = 0;
    for (struct nb_session *s = ex->sessions; s; s = s->next)
        n++;
    char *dir = strdup(ex->dir);
    if (!dir)
        return;
    if (n && !force) {
        wr(reg, dir, "error", "%u session(s) open: `netbusctl unexport "
           "--force` ends them", n);
        wr(reg, dir, "state", "ready");
        log_warn(dir, "unexport refused: %u session(s) open", n);
        free(dir);
        return;
    }
    if (n)
        log_warn(dir, "unexport --force: ending %u session(s)", n);
    export_close(ex);
    rm(reg, dir, NULL);
    log_info(dir, "unexported");
    free(dir);
    changed(reg);
}

static void scan(struct nb_exports *reg)
{
    unsigned n = 0;
    char **names = xenif_xs_directory(reg->xs, 0, reg->exports, &n);
    if (!names)
        n = 0;
    for (struct nb_export *ex = reg->list; ex; ex = ex->next)
        ex->seen = false;
    for (unsigned i = 0; i < n; i++) {
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s", reg->exports, names[i]);
        char *state = rd(reg, dir, "state");
        struct nb_export *ex = nb_exports_find(reg, names[i]);
        if (ex)
            ex->seen = true;
        if (!state) {
            /* being written by netbusctl, or removed by us */
        } else if (!ex && (strcmp(state, "requested") == 0 ||
                           strcmp(state, "ready") == 0)) {
            export_open(reg, names[i], dir);
        } else if (ex && (strcmp(state, "remove") == 0 ||
                          strcmp(state, "remove-force") == 0)) {
            export_remove(reg, ex, strcmp(state, "remove-force") == 0);
        } else if (!ex && (strcmp(state, "remove") == 0 ||
                           strcmp(state, "remove-force") == 0)) {
            rm(reg, dir, NULL); /* a failed export being taken away */
        }
        free(state);
    }
    free(names);
    /* Exports whose directory was removed behind our back. */
    for (struct nb_export *ex = reg->list, *next; ex; ex = next) {
        next = ex->next;
        if (!ex->seen) {
            log_warn(ex->dir, "registry entry removed: unexporting");
            export_close(ex);
            changed(reg);
        }
    }
}

static void on_xs(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)events;
    struct nb_exports *reg = opaque;
    bool any = false;
    for (;;) {
        char *path, *token;
        int r = xenif_xs_next_event(reg->xs, &path, &token);
        if (r == 0)
            break;
        if (r < 0) {
            log_error(reg->exports, "lost the xenstore connection: %s",
                      strerror(errno));
            evloop_del(loop, fd);
            evloop_stop(loop);
            return;
        }
        free(path);
        any = true;
    }
    if (any)
        scan(reg);
}

struct nb_exports *nb_exports_new(struct evloop *loop,
                                  const struct xenif_config *cfg,
                                  const char *node_name, char *err,
                                  size_t errlen)
{
    struct nb_exports *reg = calloc(1, sizeof(*reg));
    if (!reg) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    reg->loop = loop;
    snprintf(reg->node, sizeof(reg->node), "%s", node_name);
    reg->next_session = (uint32_t)time(NULL) << 8; /* ids differ per run */
    reg->xs = xenif_xs_open(cfg, err, errlen);
    if (!reg->xs) {
        free(reg);
        return NULL;
    }
    snprintf(reg->root, sizeof(reg->root), "/local/domain/%u/netbus",
             xenif_xs_own_domid(reg->xs));
    snprintf(reg->exports, sizeof(reg->exports), "%s/exports", reg->root);
    wr(reg, reg->root, "node", "%s", node_name);
    wr(reg, reg->root, "listen", "%s", "");
    char path[128];
    snprintf(path, sizeof(path), "%s", reg->exports);
    if (xenif_xs_mkdir(reg->xs, 0, path) < 0 ||
        xenif_xs_watch(reg->xs, reg->exports, TOKEN) < 0 ||
        evloop_add(loop, xenif_xs_fd(reg->xs), EPOLLIN, on_xs, reg) < 0) {
        snprintf(err, errlen, "watching %s: %s", reg->exports,
                 strerror(errno));
        xenif_xs_close(reg->xs);
        free(reg);
        return NULL;
    }
    reg->watching = true;
    scan(reg); /* now: devices naming our exports may be created next */
    return reg;
}

void nb_exports_on_change(struct nb_exports *reg, void (*cb)(void *opaque),
                          void *opaque)
{
    reg->on_change = cb;
    reg->change_opaque = opaque;
}

void nb_exports_set_listen(struct nb_exports *reg, const char *addr)
{
    wr(reg, reg->root, "listen", "%s", addr);
}

void nb_exports_free(struct nb_exports *reg)
{
    if (!reg)
        return;
    while (reg->list) {
        char *dir = strdup(reg->list->dir);
        export_close(reg->list);
        if (dir)
            rm(reg, dir, "sessions");
        free(dir);
    }
    if (reg->watching) {
        evloop_del(reg->loop, xenif_xs_fd(reg->xs));
        xenif_xs_unwatch(reg->xs, reg->exports, TOKEN);
    }
    wr(reg, reg->root, "listen", "%s", "");
    xenif_xs_close(reg->xs);
    free(reg);
}
