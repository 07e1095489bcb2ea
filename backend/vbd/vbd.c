/* vbd: the blkif device class on the xenbus state machine (see vbd.h). */
#include "vbd.h"

#include "backend/channel/channel.h"
#include "backend/channel/url.h"
#include "evloop.h"
#include "log.h"
#include "queue.h"
#include "target.h"
#include "timeline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VDISK_CDROM_BIT     1
#define VDISK_REMOVABLE_BIT 2
#define VDISK_READONLY_BIT  4

/* A hot-swap in progress (netbusctl swap): the new target opens while the
 * old one still serves, then the queues quiesce and the targets change. */
struct vbd_swap {
    char *spec;                  /* path or netbus:// URL */
    struct vbd_target *target;   /* the new one, until it is in place */
};

struct vbd_dev {
    struct xenbus_device *dev;
    struct vbd_disk disk;
    unsigned info;
    bool readonly, discard_enable;
    bool connected;
    bool suspended;              /* the guest's domain is suspended */
    char *spec;                  /* what params named when opened */
    char uuid[40];               /* the guest's domain UUID, or "" */
    struct timeline_op *tl;      /* suspend or swap record in progress */
    struct timeline_op *tl_first; /* record waiting for its first-request */
    struct vbd_swap swap;
    /* The target a swap replaced: closed after the event loop's batch,
     * since the swap completes from inside that target's own completion
     * callback, which must not see it freed. */
    struct vbd_target *retired;
    struct evloop_deferred retire;
};

const char *vbd_params_path(const char *params)
{
    static const char *const prefixes[] = { "file:", "phy:", "aio:", "raw:" };
    if (!params)
        return NULL;
    const char *p = params;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(p, prefixes[i], n) == 0) {
            p += n;
            break;
        }
    }
    if (p[0] != '/' || strlen(p) >= 4096)
        return NULL;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return NULL;
    return p;
}

static void vbd_fail(struct vbd_disk *disk, const char *why)
{
    struct vbd_dev *v = disk->opaque;
    xenbus_device_error(v->dev, "%s", why);
}

/* Limits and features from the open target; 0, or -1 after a device
 * error. */
static int vbd_publish(struct vbd_dev *v)
{
    struct xenbus_device *dev = v->dev;
    struct vbd_disk *d = &v->disk;
    const struct vbd_target_info *ti = &d->target->info;
    d->lim.sectors = ti->size >> BLKIF_SECTOR_SHIFT;
    d->lim.sector_size = ti->sector_size;
    d->lim.max_indirect_segments = BLKIF_MAX_INDIRECT_SEGS;
    d->lim.readonly = v->readonly;
    d->lim.flush = ti->can_flush;
    d->lim.discard = ti->can_discard && v->discard_enable;

    int rc = 0;
    if (d->lim.flush)
        rc |= xenbus_printf(dev, "feature-flush-cache", "1");
    if (d->lim.discard) {
        rc |= xenbus_printf(dev, "feature-discard", "1");
        rc |= xenbus_printf(dev, "discard-granularity", "%u",
                            ti->discard_granularity);
        rc |= xenbus_printf(dev, "discard-alignment", "0");
        rc |= xenbus_printf(dev, "discard-secure", "0");
    }
    rc |= xenbus_printf(dev, "feature-persistent", "1");
    rc |= xenbus_printf(dev, "feature-max-indirect-segments", "%u",
                        d->lim.max_indirect_segments);
    rc |= xenbus_printf(dev, "max-ring-page-order", "%u", VBD_MAX_RING_ORDER);
    rc |= xenbus_printf(dev, "multi-queue-max-queues", "%u",
                        VBD_DEFAULT_MAX_QUEUES);
    if (rc) {
        xenbus_device_error(dev, "publishing features: %s", strerror(errno));
        return -1;
    }
    log_info(d->where, "%llu sectors, %u-byte sectors, %s%s",
             (unsigned long long)d->lim.sectors, ti->sector_size,
             v->readonly ? "read-only" : "read-write",
             ti->direct ? ", O_DIRECT" : "");
    return 0;
}

/* Opens the target named by spec (a path as vbd_params_path accepts, or a
 * netbus:// URL). A URL may open asynchronously: *pending is then set and
 * ready(v, err) runs later. NULL with err. */
static struct vbd_target *open_target(struct vbd_dev *v, const char *spec,
                                      void (*ready)(void *opaque,
                                                    const char *err),
                                      bool *pending, char *err, size_t errlen)
{
    struct vbd_disk *d = &v->disk;
    *pending = false;
    if (nb_url_is_netbus(spec))
        /* The owner is the guest, not this backend: after a migration the
         * destination's LBE takes the export's session over. */
        return channel_open_url(spec, v->readonly, v->uuid[0] ? v->uuid : NULL,
                                d->where, ready, v, pending, err, errlen);
    const char *path = vbd_params_path(spec);
    if (!path) {
        snprintf(err, errlen, "cannot serve \"%.200s\" (want an absolute path, "
                 "optionally file:/phy:/aio:/raw:, or netbus://HOST[:PORT]/EXPORT)",
                 spec);
        return NULL;
    }
    return vbd_target_file_open(path, v->readonly, d->loop, d->where, err,
                                errlen);
}

/* A netbus:// target opened (err NULL) or could not be. */
static void vbd_target_ready(void *opaque, const char *err)
{
    struct vbd_dev *v = opaque;
    if (err)
        xenbus_device_error(v->dev, "cannot open the disk: %s", err);
    else if (vbd_publish(v) == 0)
        xenbus_device_ready(v->dev);
}

static int vbd_init(struct xenbus_device *dev)
{
    const char *where = xenbus_backend_path(dev);
    char *params = xenbus_read(dev, "params");
    bool url = nb_url_is_netbus(params);
    const char *path = url ? params : vbd_params_path(params);
    if (!path) {
        xenbus_device_error(dev, params ? "params: cannot serve \"%.200s\" (want "
                            "an absolute path, optionally file:/phy:/aio:/raw:, "
                            "or netbus://HOST[:PORT]/EXPORT)"
                            : "no params node%.0s", params ? params : "");
        free(params);
        return -1;
    }
    char *mode = xenbus_read(dev, "mode");
    bool readonly;
    if (!mode || strcmp(mode, "w") == 0 || strcmp(mode, "rw") == 0 ||
        strcmp(mode, "w!") == 0) {
        readonly = false;
    } else if (strcmp(mode, "r") == 0 || strcmp(mode, "ro") == 0) {
        readonly = true;
    } else {
        xenbus_device_error(dev, "mode: \"%.40s\" is neither r nor w", mode);
        free(mode);
        free(params);
        return -1;
    }
    free(mode);
    unsigned info = readonly ? VDISK_READONLY_BIT : 0;
    char *dtype = xenbus_read(dev, "device-type");
    if (dtype && strcmp(dtype, "cdrom") == 0)
        info |= VDISK_CDROM_BIT;
    free(dtype);
    unsigned long val;
    if (xenbus_read_uint(dev, "removable", &val) == 0 && val)
        info |= VDISK_REMOVABLE_BIT;

    struct vbd_dev *v = calloc(1, sizeof(*v));
    char err[512];
    if (!v) {
        xenbus_device_error(dev, "out of memory");
        free(params);
        return -1;
    }
    v->dev = dev;
    v->info = info;
    v->readonly = readonly;
    v->discard_enable = !(xenbus_read_uint(dev, "discard-enable", &val) == 0 &&
                          val == 0);
    struct vbd_disk *d = &v->disk;
    d->where = where;
    d->loop = xenbus_loop(dev);
    d->cfg = xenbus_xenif_config(dev);
    d->domid = xenbus_frontend_id(dev);
    d->fail = vbd_fail;
    d->opaque = v;
    xenbus_frontend_uuid(dev, v->uuid, sizeof(v->uuid));
    v->spec = params;
    params = NULL;
    bool pending = false;
    d->target = open_target(v, v->spec, vbd_target_ready, &pending, err,
                            sizeof(err));
    if (!d->target) {
        xenbus_device_error(dev, "cannot open the disk: %s", err);
        goto fail;
    }
    d->gnt = xenif_gnt_open(d->cfg, err, sizeof(err));
    if (!d->gnt) {
        xenbus_device_error(dev, "grant handle: %s", err);
        goto fail;
    }
    vbd_disk_attach_target(d);
    xenbus_set_priv(dev, v);
    log_info(where, "disk %s%s%s", v->spec, v->uuid[0] ? ", guest " : "",
             v->uuid);
    if (pending)
        return XENBUS_INIT_PENDING; /* vbd_target_ready goes on */
    return vbd_publish(v); /* on failure, free() releases v */
fail:
    if (d->target)
        d->target->ops->close(d->target);
    xenif_gnt_close(d->gnt);
    free(v->spec);
    free(v);
    free(params);
    return -1;
}

/* Reads an unsigned frontend key below prefix; -1 after a device error. */
static int fe_uint(struct xenbus_device *dev, const char *prefix,
                   const char *key, unsigned long max, unsigned long *out)
{
    char k[64];
    snprintf(k, sizeof(k), "%s%s", prefix, key);
    if (xenbus_read_frontend_uint(dev, k, out) < 0) {
        xenbus_device_error(dev, "frontend %s: %s", k,
                            errno == ENOENT ? "missing" : "not a number");
        return -1;
    }
    if (*out > max) {
        xenbus_device_error(dev, "frontend %s: %lu is over %lu", k, *out, max);
        return -1;
    }
    return 0;
}

static void first_response(struct vbd_disk *d)
{
    struct vbd_dev *v = d->opaque;
    timeline_mark(v->tl_first, "first-request");
    timeline_end(v->tl_first, "ok");
    v->tl_first = NULL;
}

/* Records the time from attached to the first request served in op. */
static void await_first_response(struct vbd_dev *v, struct timeline_op *op)
{
    timeline_end(v->tl_first, "ok"); /* one that never saw a request */
    v->tl_first = op;
    v->disk.on_first_response = op ? first_response : NULL;
}

static int vbd_connect(struct xenbus_device *dev)
{
    struct vbd_dev *v = xenbus_priv(dev);
    struct vbd_disk *d = &v->disk;
    if (v->connected) /* a frontend starting over */
        vbd_disk_close_queues(d);
    v->connected = false;
    d->failed = false;
    d->quiesced = false;
    v->suspended = false;
    uint64_t t_attach = timeline_now_us();

    enum blkif_abi abi;
    char *proto = xenbus_read_frontend(dev, "protocol");
    if (blkif_abi_from_protocol(proto, &abi) < 0) {
        xenbus_device_error(dev, "frontend protocol \"%.40s\" unknown", proto);
        free(proto);
        return -1;
    }
    free(proto);

    unsigned long nq = 1, order = 0, val;
    /* Anything but "1" (absent, garbage) means no persistent grants. */
    d->persistent = xenbus_read_frontend_uint(dev, "feature-persistent", &val) == 0
                    && val == 1;
    bool have_order = false;
    char *s = xenbus_read_frontend(dev, "multi-queue-num-queues");
    bool have_nq = s != NULL;
    free(s);
    if (have_nq && fe_uint(dev, "", "multi-queue-num-queues",
                     VBD_DEFAULT_MAX_QUEUES, &nq) < 0)
        return -1;
    if (nq == 0) {
        xenbus_device_error(dev, "frontend multi-queue-num-queues is 0");
        return -1;
    }
    s = xenbus_read_frontend(dev, "ring-page-order");
    have_order = s != NULL;
    free(s);
    if (have_order) {
        if (fe_uint(dev, "", "ring-page-order", VBD_MAX_RING_ORDER, &order) < 0)
            return -1;
    }

    for (unsigned q = 0; q < nq; q++) {
        struct vbd_queue_params p = { .index = q, .abi = abi,
                                      .nr_pages = 1u << order };
        char prefix[24] = "";
        if (nq > 1)
            snprintf(prefix, sizeof(prefix), "queue-%u/", q);
        for (unsigned i = 0; i < p.nr_pages; i++) {
            char key[24];
            if (have_order)
                snprintf(key, sizeof(key), "ring-ref%u", i);
            else
                snprintf(key, sizeof(key), "ring-ref");
            if (fe_uint(dev, prefix, key, UINT32_MAX, &val) < 0)
                goto fail;
            p.refs[i] = (xenif_gref)val;
        }
        if (fe_uint(dev, prefix, "event-channel", UINT32_MAX, &val) < 0)
            goto fail;
        p.remote_port = (xenif_port)val;
        char err[512];
        if (!vbd_queue_open(d, &p, err, sizeof(err))) {
            xenbus_device_error(dev, "%s", err);
            goto fail;
        }
    }
    const struct vbd_target_info *ti = &d->target->info;
    int rc = xenbus_printf(dev, "sectors", "%llu",
                           (unsigned long long)d->lim.sectors);
    /* Present: a toolstack suspending the guest may wait for it to be 1. */
    if (xenbus_sees_suspend(dev))
        rc |= xenbus_printf(dev, "netbus-quiesced", "0");
    rc |= xenbus_printf(dev, "info", "%u", v->info);
    rc |= xenbus_printf(dev, "sector-size", "%u", ti->sector_size);
    rc |= xenbus_printf(dev, "physical-sector-size", "%u",
                        ti->physical_sector_size);
    if (rc) {
        xenbus_device_error(dev, "publishing the disk: %s", strerror(errno));
        goto fail;
    }
    v->connected = true;
    struct timeline_op *op = timeline_begin("connect", d->where, v->uuid,
                                            xenbus_frontend_id(dev), v->spec);
    timeline_mark_at(op, "attached", t_attach);
    await_first_response(v, op);
    log_info(xenbus_backend_path(dev), "connected: %lu queue(s) of %u ring "
             "page(s), %s%s", nq, 1u << order, blkif_abi_name(abi),
             d->persistent ? ", persistent grants" : "");
    return 0;
fail:
    vbd_disk_close_queues(d);
    return -1;
}

/* ---- suspend: quiesce for the toolstack -------------------------------- */

static void suspend_drained(struct vbd_disk *d)
{
    struct vbd_dev *v = d->opaque;
    timeline_mark(v->tl, "drained");
    /* Tells a toolstack that waits for it (xensim migrate) that nothing is
     * in flight any more and nothing will be taken from the rings. */
    xenbus_printf(v->dev, "netbus-quiesced", "1");
    log_info(d->where, "quiesced: nothing in flight, %llu requests served",
             (unsigned long long)d->requests);
}

static void start_suspend(struct vbd_dev *v)
{
    uint64_t t = timeline_now_us();
    timeline_end(v->tl_first, "ok");
    v->tl_first = NULL;
    v->disk.on_first_response = NULL;
    v->tl = timeline_begin("suspend", v->disk.where, v->uuid,
                           xenbus_frontend_id(v->dev), v->spec);
    timeline_mark_at(v->tl, "quiesce-start", t);
    vbd_disk_quiesce(&v->disk, suspend_drained);
}

static void vbd_suspend(struct xenbus_device *dev)
{
    struct vbd_dev *v = xenbus_priv(dev);
    if (!v || !v->connected || v->suspended)
        return;
    v->suspended = true;
    if (!v->swap.spec) /* else the swap finishes first, then quiesces */
        start_suspend(v);
}

static void vbd_resume(struct xenbus_device *dev)
{
    struct vbd_dev *v = xenbus_priv(dev);
    if (!v || !v->suspended)
        return;
    v->suspended = false;
    if (!v->connected || v->swap.spec)
        return;
    xenbus_printf(dev, "netbus-quiesced", "0");
    timeline_end(v->tl, "resumed");
    v->tl = NULL;
    vbd_disk_resume(&v->disk);
}

/* ---- hot-swap ------------------------------------------------------------ */

static void swap_answer(struct vbd_dev *v, const char *err)
{
    struct vbd_swap *sw = &v->swap;
    if (err) {
        log_warn(v->disk.where, "swap to %s failed: %s", sw->spec ? sw->spec : "?", err);
        xenbus_printf(v->dev, "netbus-swap-error", "%s", err);
    } else {
        xenbus_printf(v->dev, "netbus-swap-error", "%s", "");
    }
    xenbus_printf(v->dev, "netbus-swap-state", "%s", err ? "error" : "done");
    if (sw->target)
        sw->target->ops->close(sw->target);
    free(sw->spec);
    memset(sw, 0, sizeof(*sw));
}

static void close_retired(void *opaque)
{
    struct vbd_dev *v = opaque;
    if (v->retired)
        v->retired->ops->close(v->retired);
    v->retired = NULL;
}

/* Quiesced and drained: the new target takes over. */
static void swap_drained(struct vbd_disk *d)
{
    struct vbd_dev *v = d->opaque;
    struct vbd_swap *sw = &v->swap;
    timeline_mark(v->tl, "drained");
    close_retired(v); /* an earlier swap's, if still there */
    v->retired = d->target;
    v->retire.cb = close_retired;
    v->retire.opaque = v;
    evloop_defer(d->loop, &v->retire);
    timeline_mark(v->tl, "detached");
    d->target = sw->target;
    sw->target = NULL;
    vbd_disk_attach_target(d);
    timeline_mark(v->tl, "attached");
    log_info(d->where, "swapped: %s -> %s", v->spec, sw->spec);
    free(v->spec);
    v->spec = sw->spec;
    sw->spec = NULL;
    /* A netbusd started later (and the toolstack's view) must find the
     * new target. */
    xenbus_printf(v->dev, "params", "%s", v->spec);
    await_first_response(v, v->tl);
    v->tl = NULL;
    swap_answer(v, NULL);
    if (v->suspended)
        start_suspend(v); /* the guest suspended meanwhile: stay quiesced */
    else
        vbd_disk_resume(d);
}

/* Compatible: same size and sector size, writable if the device is. */
static const char *swap_incompatible(const struct vbd_target_info *a,
                                     const struct vbd_target_info *b,
                                     char *why, size_t len)
{
    if (a->size != b->size)
        snprintf(why, len, "the new target has %llu bytes, the disk %llu",
                 (unsigned long long)b->size, (unsigned long long)a->size);
    else if (a->sector_size != b->sector_size)
        snprintf(why, len, "the new target has %u-byte sectors, the disk %u",
                 b->sector_size, a->sector_size);
    else if (!a->readonly && b->readonly)
        snprintf(why, len, "the new target is read-only, the disk is not");
    else
        return NULL;
    return why;
}

static void swap_target_ready(void *opaque, const char *err)
{
    struct vbd_dev *v = opaque;
    struct vbd_swap *sw = &v->swap;
    struct vbd_disk *d = &v->disk;
    char why[256];
    if (err) {
        snprintf(why, sizeof(why), "cannot open %s: %s", sw->spec, err);
        swap_answer(v, why);
        return;
    }
    if (swap_incompatible(&d->target->info, &sw->target->info, why,
                          sizeof(why))) {
        swap_answer(v, why);
        return;
    }
    char detail[600];
    snprintf(detail, sizeof(detail), "%s -> %s", v->spec, sw->spec);
    uint64_t t = timeline_now_us();
    v->tl = timeline_begin("swap", d->where, v->uuid,
                           xenbus_frontend_id(v->dev), detail);
    timeline_mark_at(v->tl, "quiesce-start", t);
    if (!v->connected) {
        d->quiesced = true; /* no queues: nothing to drain */
        swap_drained(d);
        d->quiesced = false;
        return;
    }
    vbd_disk_quiesce(d, swap_drained);
}

/* The new target does no I/O before it is attached. */
static void no_reaped(void *opaque)
{
    (void)opaque;
}

static void vbd_swap(struct xenbus_device *dev)
{
    struct vbd_dev *v = xenbus_priv(dev);
    char *spec = xenbus_read(dev, XENBUS_SWAP_KEY);
    if (!v || !spec || !*spec) {
        free(spec);
        return;
    }
    if (v->swap.spec) {
        log_warn(v->disk.where, "swap to %s refused: a swap to %s is running",
                 spec, v->swap.spec);
        free(spec);
        return;
    }
    v->swap.spec = spec;
    xenbus_printf(dev, "netbus-swap-state", "running");
    if (v->suspended) {
        swap_answer(v, "the guest is suspended; swap after it resumes");
        return;
    }
    if (strcmp(spec, v->spec) == 0) {
        swap_answer(v, "the disk already uses that target");
        return;
    }
    char err[512];
    bool pending;
    v->swap.target = open_target(v, spec, swap_target_ready, &pending, err,
                                 sizeof(err));
    if (!v->swap.target) {
        char why[700];
        snprintf(why, sizeof(why), "cannot open %s: %s", spec, err);
        swap_answer(v, why);
        return;
    }
    v->swap.target->reaped = no_reaped;
    log_info(v->disk.where, "swap to %s requested", spec);
    if (!pending)
        swap_target_ready(v, NULL);
}

/* ---- teardown ------------------------------------------------------------ */

static void vbd_disconnect(struct xenbus_device *dev)
{
    struct vbd_dev *v = xenbus_priv(dev);
    if (!v || !v->connected)
        return;
    v->disk.on_drained = NULL;
    if (v->swap.spec)
        swap_answer(v, "the device disconnected during the swap");
    vbd_disk_close_queues(&v->disk);
    v->connected = false;
    v->suspended = false;
    v->disk.quiesced = false;
    v->disk.on_first_response = NULL;
    timeline_end(v->tl_first, "ok");
    v->tl_first = NULL;
    if (v->tl) {
        timeline_mark(v->tl, "detached");
        timeline_end(v->tl, "ok");
        v->tl = NULL;
    }
    log_info(xenbus_backend_path(dev), "disconnected (%llu requests, %llu "
             "errors)", (unsigned long long)v->disk.requests,
             (unsigned long long)v->disk.errors);
}

static void vbd_free(struct xenbus_device *dev)
{
    struct vbd_dev *v = xenbus_priv(dev);
    if (!v)
        return;
    if (v->swap.spec)
        swap_answer(v, "the device went away during the swap");
    vbd_disk_close_queues(&v->disk);
    evloop_defer_cancel(v->disk.loop, &v->retire);
    close_retired(v);
    if (v->disk.target)
        v->disk.target->ops->close(v->disk.target);
    xenif_gnt_close(v->disk.gnt);
    timeline_end(v->tl_first, "ok");
    timeline_end(v->tl, "ok");
    xenbus_set_priv(dev, NULL);
    free(v->spec);
    free(v);
}

const struct xenbus_class vbd_class = {
    .type = "vbd",
    .init = vbd_init,
    .connect = vbd_connect,
    .disconnect = vbd_disconnect,
    .suspend = vbd_suspend,
    .resume = vbd_resume,
    .swap = vbd_swap,
    .free = vbd_free,
};

const struct xenbus_class qdisk_class = {
    .type = "qdisk",
    .init = vbd_init,
    .connect = vbd_connect,
    .disconnect = vbd_disconnect,
    .suspend = vbd_suspend,
    .resume = vbd_resume,
    .swap = vbd_swap,
    .free = vbd_free,
};
