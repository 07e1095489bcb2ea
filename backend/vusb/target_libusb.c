/* target_libusb: a USB device of this host, claimed through libusb (see
 * target.h). Transfers are libusb asynchronous transfers completed from the
 * event loop (usb_host.c). The standard requests that change what the
 * kernel must know (SET_CONFIGURATION, SET_INTERFACE, CLEAR_FEATURE
 * ENDPOINT_HALT) are done through usbfs' own calls, as QEMU's usb-host
 * does: sent raw, they would leave the kernel's view of the device stale. */
#include "superspeed.h"
#include "target.h"
#include "usb_host.h"

#include "evloop.h"
#include "log.h"
#include "timer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INTERFACES 32
#define SS_CONFIG_MAX 4096     /* usbfs' limit for a control transfer */
#define CLOSE_WAIT_MS 5000

struct lu_xfer {
    struct vusb_xfer *x;
    struct libusb_transfer *tr;
    struct lu_target *t;
    uint8_t *ctrl;             /* setup + data for control transfers */
    uint8_t descriptor;        /* a GET_DESCRIPTOR to translate: its type */
    struct lu_xfer *prev, *next;
};

struct lu_target {
    struct vusb_target t;      /* first: the ops get it back */
    struct evloop *loop;
    struct usb_host *host;
    struct usb_host_match match;
    struct usb_host_listener listener;
    char where[128];
    libusb_device *dev;        /* NULL while unplugged */
    libusb_device_handle *h;
    uint32_t claimed;          /* bit per interface number */
    bool superspeed;           /* shown to the guest as high speed */
    bool gone;                 /* unplugged: waiting for in-flight to end */
    unsigned inflight;
    struct lu_xfer *active;
    /* Requests done without a transfer complete after the current batch,
     * like every other completion. */
    struct vusb_xfer **instant;
    unsigned nr_instant, cap_instant;
    struct evloop_deferred finish;
};

const char *vusb_speed_name(enum vusb_speed s)
{
    switch (s) {
    case VUSB_SPEED_NONE: return "none";
    case VUSB_SPEED_LOW: return "low";
    case VUSB_SPEED_FULL: return "full";
    case VUSB_SPEED_HIGH: return "high";
    }
    return "?";
}

static enum vusb_speed speed_of(libusb_device *dev)
{
    switch (libusb_get_device_speed(dev)) {
    case LIBUSB_SPEED_LOW: return VUSB_SPEED_LOW;
    case LIBUSB_SPEED_FULL: return VUSB_SPEED_FULL;
    /* usbif stops at USB 2: USB 3 devices are served at high speed. */
    default: return VUSB_SPEED_HIGH;
    }
}

static int errno_of(int libusb_err)
{
    switch (libusb_err) {
    case LIBUSB_ERROR_NO_DEVICE: return -ENODEV;
    case LIBUSB_ERROR_PIPE: return -EPIPE;
    case LIBUSB_ERROR_INVALID_PARAM: return -EINVAL;
    case LIBUSB_ERROR_BUSY: return -EBUSY;
    case LIBUSB_ERROR_NO_MEM: return -ENOMEM;
    case LIBUSB_ERROR_NOT_FOUND: return -ENOENT;
    case LIBUSB_ERROR_OVERFLOW: return -EOVERFLOW;
    default: return -EPROTO;
    }
}

/* ---- claiming ---------------------------------------------------------------- */

static void release_interfaces(struct lu_target *t)
{
    for (int i = 0; i < MAX_INTERFACES; i++)
        if (t->claimed & (1u << i)) {
            int rc = libusb_release_interface(t->h, i);
            if (rc < 0 && rc != LIBUSB_ERROR_NO_DEVICE)
                log_warn(t->where, "releasing interface %d: %s", i,
                         libusb_strerror(rc));
        }
    t->claimed = 0;
}

/* Claims every interface of the active configuration (none when the device
 * is unconfigured). */
static int claim_interfaces(struct lu_target *t, char *err, size_t errlen)
{
    struct libusb_config_descriptor *cfg;
    int rc = libusb_get_active_config_descriptor(t->dev, &cfg);
    if (rc == LIBUSB_ERROR_NOT_FOUND)
        return 0;
    if (rc < 0) {
        snprintf(err, errlen, "reading the active configuration: %s",
                 libusb_strerror(rc));
        return -1;
    }
    for (int i = 0; i < cfg->bNumInterfaces; i++) {
        int num = cfg->interface[i].altsetting[0].bInterfaceNumber;
        if (num >= MAX_INTERFACES)
            continue;
        rc = libusb_claim_interface(t->h, num);
        if (rc < 0) {
            snprintf(err, errlen, "claiming interface %d: %s (another "
                     "program holds the device?)", num, libusb_strerror(rc));
            libusb_free_config_descriptor(cfg);
            release_interfaces(t);
            errno = rc == LIBUSB_ERROR_BUSY ? EBUSY : EIO;
            return -1;
        }
        t->claimed |= 1u << num;
    }
    libusb_free_config_descriptor(cfg);
    return 0;
}

static int claim(struct lu_target *t, libusb_device *dev, char *err,
                 size_t errlen)
{
    int rc = libusb_open(dev, &t->h);
    if (rc < 0) {
        snprintf(err, errlen, "opening the device: %s%s", libusb_strerror(rc),
                 rc == LIBUSB_ERROR_ACCESS ? " (netbusd needs write access to "
                 "/dev/bus/usb)" : "");
        errno = rc == LIBUSB_ERROR_ACCESS ? EACCES : EIO;
        return -1;
    }
    t->dev = dev;
    /* The kernel's drivers come back when we release an interface. */
    libusb_set_auto_detach_kernel_driver(t->h, 1);
    if (claim_interfaces(t, err, errlen) < 0) {
        libusb_close(t->h);
        t->h = NULL;
        t->dev = NULL;
        return -1;
    }
    t->gone = false;
    t->t.speed = speed_of(dev);
    t->superspeed = libusb_get_device_speed(dev) >= LIBUSB_SPEED_SUPER;
    return 0;
}

/* Unplugged and nothing in flight any more: let the device go. */
static void let_go(struct lu_target *t)
{
    if (!t->h)
        return;
    release_interfaces(t);
    libusb_close(t->h);
    t->h = NULL;
    libusb_unref_device(t->dev);
    t->dev = NULL;
}

static void tell_changed(struct lu_target *t)
{
    if (t->t.changed)
        t->t.changed(t->t.opaque);
}

static void on_left(struct usb_host_listener *l, libusb_device *dev)
{
    struct lu_target *t = (struct lu_target *)((char *)l -
                                               offsetof(struct lu_target, listener));
    if (!t->dev || dev != t->dev || t->gone)
        return;
    log_warn(t->where, "device unplugged (%u transfers in flight end with "
             "-ENODEV)", t->inflight);
    t->gone = true;
    t->t.speed = VUSB_SPEED_NONE;
    for (struct lu_xfer *lx = t->active; lx; lx = lx->next)
        libusb_cancel_transfer(lx->tr);
    if (t->inflight == 0)
        let_go(t);
    tell_changed(t);
}

static void on_arrived(struct usb_host_listener *l, libusb_device *dev)
{
    struct lu_target *t = (struct lu_target *)((char *)l -
                                               offsetof(struct lu_target, listener));
    if (t->h || !usb_host_matches(&t->match, dev))
        return;
    char err[200];
    if (claim(t, libusb_ref_device(dev), err, sizeof(err)) < 0) {
        libusb_unref_device(dev);
        log_error(t->where, "device plugged back in but not claimed: %s", err);
        return;
    }
    log_info(t->where, "device plugged back in: claimed, %s speed",
             vusb_speed_name(t->t.speed));
    tell_changed(t);
}

/* ---- transfers --------------------------------------------------------------- */

static void finish_instant(void *opaque)
{
    struct lu_target *t = opaque;
    /* done() may submit more, which may add to the list: take it first. */
    while (t->nr_instant) {
        struct vusb_xfer *x = t->instant[0];
        memmove(t->instant, t->instant + 1,
                --t->nr_instant * sizeof(*t->instant));
        t->inflight--;
        x->done(x);
    }
}

static int complete_now(struct lu_target *t, struct vusb_xfer *x, int status)
{
    if (t->nr_instant == t->cap_instant) {
        unsigned cap = t->cap_instant ? 2 * t->cap_instant : 8;
        void *p = realloc(t->instant, cap * sizeof(*t->instant));
        if (!p)
            return -ENOMEM;
        t->instant = p;
        t->cap_instant = cap;
    }
    x->status = status;
    x->actual = 0;
    t->instant[t->nr_instant++] = x;
    t->inflight++;
    evloop_defer(t->loop, &t->finish);
    return 0;
}

static int set_configuration(struct lu_target *t, int value)
{
    release_interfaces(t);
    int rc = libusb_set_configuration(t->h, value);
    if (rc < 0) {
        log_warn(t->where, "SET_CONFIGURATION %d: %s", value, libusb_strerror(rc));
        return errno_of(rc);
    }
    char err[200];
    if (claim_interfaces(t, err, sizeof(err)) < 0) {
        log_error(t->where, "after SET_CONFIGURATION %d: %s", value, err);
        return -EPROTO;
    }
    return 0;
}

/* The standard requests done through usbfs calls: returns 1 and the status
 * when x is one of them, 0 otherwise. */
static int intercept(struct lu_target *t, struct vusb_xfer *x, int *status)
{
    const uint8_t *s = x->setup;
    unsigned value = s[2] | s[3] << 8, index = s[4] | s[5] << 8;
    if (s[0] == 0x00 && s[1] == 9) {              /* SET_CONFIGURATION */
        *status = set_configuration(t, (int)(value & 0xff));
        return 1;
    }
    if (s[0] == 0x01 && s[1] == 11) {             /* SET_INTERFACE */
        int rc = libusb_set_interface_alt_setting(t->h, (int)index, (int)value);
        *status = rc < 0 ? errno_of(rc) : 0;
        return 1;
    }
    if (s[0] == 0x02 && s[1] == 1 && value == 0) { /* CLEAR_FEATURE(HALT) */
        int rc = libusb_clear_halt(t->h, (unsigned char)index);
        *status = rc < 0 ? errno_of(rc) : 0;
        return 1;
    }
    return 0;
}

static int status_of(enum libusb_transfer_status st)
{
    switch (st) {
    case LIBUSB_TRANSFER_COMPLETED: return 0;
    case LIBUSB_TRANSFER_STALL: return -EPIPE;
    case LIBUSB_TRANSFER_NO_DEVICE: return -ENODEV;
    case LIBUSB_TRANSFER_OVERFLOW: return -EOVERFLOW;
    case LIBUSB_TRANSFER_CANCELLED: return -ECONNRESET;
    default: return -EPROTO; /* error, timed out */
    }
}

/* A SuperSpeed device's GET_DESCRIPTOR answer, as a high-speed device's
 * (superspeed.h); x->actual may exceed what the guest asked for here (a
 * configuration is always read whole). */
static void translate_descriptor(struct lu_xfer *lx)
{
    uint8_t *d = lx->ctrl + LIBUSB_CONTROL_SETUP_SIZE;
    if (lx->descriptor == LIBUSB_DT_DEVICE)
        superspeed_device_to_high(d, lx->x->actual);
    else
        lx->x->actual = (uint32_t)superspeed_config_to_high(d, lx->x->actual);
}

static void LIBUSB_CALL on_transfer(struct libusb_transfer *tr)
{
    struct lu_xfer *lx = tr->user_data;
    struct lu_target *t = lx->t;
    struct vusb_xfer *x = lx->x;
    x->status = status_of(tr->status);
    /* A transfer cancelled because the device left ended for that reason. */
    if (t->gone && x->status == -ECONNRESET)
        x->status = -ENODEV;
    x->actual = tr->actual_length > 0 ? (uint32_t)tr->actual_length : 0;
    if (lx->descriptor)
        translate_descriptor(lx);
    if (x->actual > x->length)
        x->actual = x->length;
    if (x->type == VUSB_XFER_CTRL && (x->setup[0] & 0x80) && x->actual)
        memcpy(x->data, lx->ctrl + LIBUSB_CONTROL_SETUP_SIZE, x->actual);
    if (x->type == VUSB_XFER_ISO) {
        x->actual = 0;
        x->error_count = 0;
        for (unsigned i = 0; i < x->nr_iso; i++) {
            struct libusb_iso_packet_descriptor *p = &tr->iso_packet_desc[i];
            x->iso[i].actual = p->actual_length;
            x->iso[i].status = status_of(p->status);
            x->actual += p->actual_length;
            x->error_count += p->status != LIBUSB_TRANSFER_COMPLETED;
        }
    }
    if (lx->prev)
        lx->prev->next = lx->next;
    else
        t->active = lx->next;
    if (lx->next)
        lx->next->prev = lx->prev;
    free(lx->ctrl);
    libusb_free_transfer(tr);
    free(lx);
    x->target_priv = NULL;
    t->inflight--;
    if (t->gone && t->inflight == 0)
        let_go(t);
    x->done(x);
}

/* libusb lays isochronous packets out back to back; usbif gives each an
 * offset. Guests lay them out back to back too; other layouts are refused. */
static bool iso_contiguous(const struct vusb_xfer *x)
{
    uint32_t at = 0;
    for (unsigned i = 0; i < x->nr_iso; i++) {
        if (x->iso[i].offset != at)
            return false;
        at += x->iso[i].length;
    }
    return at <= x->length;
}

static int fill(struct lu_target *t, struct lu_xfer *lx)
{
    struct vusb_xfer *x = lx->x;
    struct libusb_transfer *tr = lx->tr;
    int len = (int)x->length;
    switch (x->type) {
    case VUSB_XFER_CTRL:
        /* A SuperSpeed configuration descriptor is read whole: its
         * translated length is what the guest must see, even in the
         * first 9 bytes. */
        if (t->superspeed && x->setup[0] == 0x80 && x->setup[1] == 6 &&
            (x->setup[3] == LIBUSB_DT_DEVICE || x->setup[3] == LIBUSB_DT_CONFIG))
            lx->descriptor = x->setup[3];
        if (lx->descriptor == LIBUSB_DT_CONFIG)
            len = SS_CONFIG_MAX;
        lx->ctrl = malloc(LIBUSB_CONTROL_SETUP_SIZE + (size_t)len);
        if (!lx->ctrl)
            return -ENOMEM;
        memcpy(lx->ctrl, x->setup, LIBUSB_CONTROL_SETUP_SIZE);
        lx->ctrl[6] = (uint8_t)(len & 0xff);
        lx->ctrl[7] = (uint8_t)(len >> 8);
        if (!(x->setup[0] & 0x80) && x->length)
            memcpy(lx->ctrl + LIBUSB_CONTROL_SETUP_SIZE, x->data, x->length);
        libusb_fill_control_transfer(tr, t->h, lx->ctrl, on_transfer, lx, 0);
        /* The setup packet's wLength bounds the data stage, not our length. */
        tr->length = LIBUSB_CONTROL_SETUP_SIZE + len;
        break;
    case VUSB_XFER_BULK:
        libusb_fill_bulk_transfer(tr, t->h, x->ep, x->data, len, on_transfer,
                                  lx, 0);
        break;
    case VUSB_XFER_INT:
        libusb_fill_interrupt_transfer(tr, t->h, x->ep, x->data, len,
                                       on_transfer, lx, 0);
        break;
    case VUSB_XFER_ISO:
        if (!iso_contiguous(x))
            return -EINVAL;
        libusb_fill_iso_transfer(tr, t->h, x->ep, x->data, len, (int)x->nr_iso,
                                 on_transfer, lx, 0);
        for (unsigned i = 0; i < x->nr_iso; i++)
            tr->iso_packet_desc[i].length = x->iso[i].length;
        break;
    }
    if (x->short_not_ok)
        tr->flags |= LIBUSB_TRANSFER_SHORT_NOT_OK;
    return 0;
}

static int lu_submit(struct vusb_target *vt, struct vusb_xfer *x)
{
    struct lu_target *t = (struct lu_target *)vt;
    if (!t->h || t->gone)
        return -ENODEV;
    int status;
    if (x->type == VUSB_XFER_CTRL && intercept(t, x, &status))
        return complete_now(t, x, status);
    struct lu_xfer *lx = calloc(1, sizeof(*lx));
    if (!lx)
        return -ENOMEM;
    lx->x = x;
    lx->t = t;
    lx->tr = libusb_alloc_transfer(x->type == VUSB_XFER_ISO ? (int)x->nr_iso : 0);
    int rc = lx->tr ? fill(t, lx) : -ENOMEM;
    if (rc == 0) {
        int lrc = libusb_submit_transfer(lx->tr);
        rc = lrc < 0 ? errno_of(lrc) : 0;
    }
    if (rc < 0) {
        free(lx->ctrl);
        libusb_free_transfer(lx->tr);
        free(lx);
        return rc;
    }
    x->target_priv = lx;
    lx->next = t->active;
    if (t->active)
        t->active->prev = lx;
    t->active = lx;
    t->inflight++;
    return 0;
}

static void lu_cancel(struct vusb_target *vt, struct vusb_xfer *x)
{
    (void)vt;
    struct lu_xfer *lx = x->target_priv;
    /* Instant completions have no transfer: they are done already. */
    if (lx)
        libusb_cancel_transfer(lx->tr);
}

static unsigned lu_inflight(const struct vusb_target *vt)
{
    return ((const struct lu_target *)vt)->inflight;
}

static void lu_drain(struct vusb_target *vt)
{
    struct lu_target *t = (struct lu_target *)vt;
    uint64_t deadline = mono_ms() + CLOSE_WAIT_MS;
    while (t->active && mono_ms() < deadline) {
        struct timeval tv = { 0, 100 * 1000 };
        libusb_handle_events_timeout_completed(usb_host_ctx(t->host), &tv, NULL);
    }
    if (t->active)
        log_error(t->where, "%u transfers did not end within %d ms",
                  t->inflight, CLOSE_WAIT_MS);
    evloop_defer_cancel(t->loop, &t->finish);
    finish_instant(t);
}

static void lu_close(struct vusb_target *vt)
{
    struct lu_target *t = (struct lu_target *)vt;
    for (struct lu_xfer *lx = t->active; lx; lx = lx->next)
        libusb_cancel_transfer(lx->tr);
    lu_drain(vt);
    if (vt->keep_detached && t->h)
        libusb_set_auto_detach_kernel_driver(t->h, 0);
    let_go(t);
    usb_host_unlisten(t->host, &t->listener);
    usb_host_put(t->host);
    free(t->instant);
    free(t);
}

static const struct vusb_target_ops lu_ops = {
    .submit = lu_submit,
    .cancel = lu_cancel,
    .inflight = lu_inflight,
    .drain = lu_drain,
    .close = lu_close,
};

struct vusb_target *vusb_target_libusb_open(const char *name,
                                            struct evloop *loop,
                                            const char *where, char *err,
                                            size_t errlen)
{
    struct lu_target *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->t.ops = &lu_ops;
    t->loop = loop;
    snprintf(t->where, sizeof(t->where), "%s", where);
    t->finish.cb = finish_instant;
    t->finish.opaque = t;
    t->listener.arrived = on_arrived;
    t->listener.left = on_left;
    if (usb_host_parse(name, &t->match, err, errlen) < 0) {
        free(t);
        errno = EINVAL;
        return NULL;
    }
    t->host = usb_host_get(loop, err, errlen);
    if (!t->host) {
        free(t);
        errno = EIO;
        return NULL;
    }
    libusb_device *dev = usb_host_find(t->host, &t->match);
    if (!dev) {
        snprintf(err, errlen, "no USB device %s on this host (lsusb lists "
                 "them)", name);
        usb_host_put(t->host);
        free(t);
        errno = ENODEV;
        return NULL;
    }
    if (claim(t, dev, err, errlen) < 0) {
        int e = errno;
        libusb_unref_device(dev);
        usb_host_put(t->host);
        free(t);
        errno = e;
        return NULL;
    }
    usb_host_listen(t->host, &t->listener);
    log_info(where, "claimed USB device %s (bus %u, %s speed)", name,
             libusb_get_bus_number(dev), vusb_speed_name(t->t.speed));
    return &t->t;
}
