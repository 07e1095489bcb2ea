/* The usbdevfs side of an emulated device node: umockdev's preload forwards
 * every ioctl/read/write on /dev/bus/usb/BBB/DDD to this process, where these
 * handlers answer them, asynchronously where the kernel would.
 *
 * Pollability: umockdev 0.17 leaves a USB node a regular file, which poll()
 * always reports ready, so libusb would spin on REAPURBNDELAY. Here the node
 * is a FIFO instead, which the client opens O_RDWR and polls for POLLOUT.
 * We keep the pipe full while no URB is reapable and free one page when one
 * is: the client then sees POLLOUT exactly while a completion is waiting,
 * with real kernel wake-ups for poll and epoll. */
#include "usbdev.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

struct usbdev_client {
    struct usbdev_device *dev;
    GList *inflight;              /* URBs submitted, not yet done */
    GQueue completed;             /* URBs waiting to be reaped */
    UMockdevIoctlClient *reaper;  /* a blocking REAPURB waiting (a reference) */
    UMockdevIoctlData *reap_slot;
    size_t read_pos;
};

#define USBFS_CAPS (USBDEVFS_CAP_ZERO_PACKET | USBDEVFS_CAP_BULK_CONTINUATION | \
                    USBDEVFS_CAP_NO_PACKET_SIZE_LIM | USBDEVFS_CAP_BULK_SCATTER_GATHER | \
                    USBDEVFS_CAP_REAP_AFTER_DISCONNECT)

/* --- readiness ------------------------------------------------------------- */

static void fill_pipe(int fd)
{
    static const char page[4096];

    while (write(fd, page, sizeof(page)) > 0)
        ;
}

int usbfs_ready_init(struct usbdev_device *d)
{
    d->ready_fd = open(d->fifo_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (d->ready_fd < 0)
        return -errno;
    fill_pipe(d->ready_fd);
    d->ready = false;
    return 0;
}

static void update_ready(struct usbdev_device *d)
{
    bool want = false;
    char page[4096];

    for (GList *l = d->clients; l && !want; l = l->next)
        want = !g_queue_is_empty(&((struct usbdev_client *)l->data)->completed);
    if (want == d->ready)
        return;
    if (want) {
        /* the pipe holds whole pages: reading one frees a slot */
        if (read(d->ready_fd, page, sizeof(page)) > 0)
            d->ready = true;
    } else {
        fill_pipe(d->ready_fd);
        d->ready = false;
    }
}

/* --- URBs -------------------------------------------------------------------- */

static void urb_free(struct usbdev_urb *u)
{
    if (u->timeout)
        g_source_remove(u->timeout);
    if (u->urb_data)
        g_object_unref(u->urb_data);
    if (u->buf_data)
        g_object_unref(u->buf_data);
    if (u->sync)
        g_object_unref(u->sync);
    g_free(u);
}

static void reap_into(UMockdevIoctlClient *client, UMockdevIoctlData *slot,
                      struct usbdev_urb *u)
{
    umockdev_ioctl_data_set_ptr(slot, 0, u->urb_data);
    umockdev_ioctl_client_complete(client, 0, 0);
    urb_free(u);
}

void usbfs_urb_done(struct usbdev_urb *u, int status)
{
    struct usbdev_client *c = u->owner;

    c->inflight = g_list_remove(c->inflight, u);
    u->status = status;
    if (u->sync) {
        if (status)
            umockdev_ioctl_client_complete(u->sync, -1, -status);
        else
            umockdev_ioctl_client_complete(u->sync, u->actual, 0);
        urb_free(u);
        return;
    }
    struct usbdevfs_urb *k = (struct usbdevfs_urb *)u->urb_data->data;
    k->status = status;
    k->actual_length = u->actual;
    if (u->iso) {
        /* packets that never ran (discarded, unplugged) end with the URB */
        k->error_count = 0;
        for (int i = 0; i < u->nr_packets; i++) {
            if (status) {
                u->iso[i].actual_length = 0;
                u->iso[i].status = (unsigned)status;
            }
            k->error_count += u->iso[i].status != 0;
        }
    }
    if (c->reaper) {
        UMockdevIoctlClient *client = c->reaper;
        UMockdevIoctlData *slot = c->reap_slot;
        c->reaper = NULL;
        c->reap_slot = NULL;
        reap_into(client, slot, u);
        g_object_unref(slot);
        g_object_unref(client);
        return;
    }
    g_queue_push_tail(&c->completed, u);
    update_ready(c->dev);
}

/* --- interface ownership (the kernel's claimintf/checkintf) ------------------ */

static int claim(struct usbdev_client *c, unsigned ifno)
{
    struct usbdev_device *d = c->dev;

    if (ifno != 0)
        return -ENOENT;
    if (d->claimed_by == c)
        return 0;
    if (d->claimed_by || d->driver[0])
        return -EBUSY;
    d->claimed_by = c;
    g_strlcpy(d->driver, "usbfs", sizeof(d->driver));
    return 0;
}

static void release(struct usbdev_client *c)
{
    if (c->dev->claimed_by == c) {
        c->dev->claimed_by = NULL;
        c->dev->driver[0] = '\0';
    }
}

/* Vendor requests pass; others aimed at an interface or endpoint need it. */
static int check_ctrl_recipient(struct usbdev_client *c, const uint8_t *setup)
{
    if ((setup[0] & 0x60) == 0x40)
        return 0;
    switch (setup[0] & 0x1f) {
    case 1:
    case 2:
        return claim(c, 0);
    default:
        return 0;
    }
}

/* --- ioctls --------------------------------------------------------------- */

struct reply {
    long ret;
    int err;
    bool deferred;
};

static struct reply ok(long ret) { return (struct reply){ .ret = ret }; }
static struct reply fail(int err) { return (struct reply){ .ret = -1, .err = err }; }
static struct reply deferred(void) { return (struct reply){ .deferred = true }; }
static struct reply result(int r) { return r ? fail(-r) : ok(0); }

static UMockdevIoctlData *resolve(UMockdevIoctlData *parent, size_t offset, size_t len)
{
    GError *error = NULL;
    UMockdevIoctlData *child = umockdev_ioctl_data_resolve(parent, offset, len, &error);

    if (error) {
        g_warning("usbdev: reading client memory: %s", error->message);
        g_error_free(error);
    }
    return child;
}

/* An isochronous URB's packet descriptors follow struct usbdevfs_urb in the
 * client. umockdev resolves a pointer once, at the size first asked for, so
 * the URB is resolved again, whole: the argument is reloaded (which forgets
 * its resolved child) and given the client's address back. The packet count
 * is the one read first (no double fetch); *length becomes the sum of the
 * packets' lengths, which usbfs uses instead of buffer_length. NULL: a bad
 * packet count or client memory that cannot be read. */
static UMockdevIoctlData *resolve_iso(UMockdevIoctlData *arg, UMockdevIoctlData *urb_data,
                                      int *length)
{
    struct usbdevfs_urb *k = (struct usbdevfs_urb *)urb_data->data;
    int n = k->number_of_packets;
    unsigned long addr = urb_data->client_addr;
    GError *error = NULL;
    UMockdevIoctlData *whole;

    g_object_unref(urb_data);
    if (n < 1 || n > USBDEV_ISO_MAX_PACKETS)
        return NULL;
    if (!umockdev_ioctl_data_reload(arg, &error)) {
        g_warning("usbdev: reloading an ioctl argument: %s",
                  error ? error->message : "failed");
        g_clear_error(&error);
        return NULL;
    }
    memcpy(arg->data, &addr, sizeof(addr));
    whole = resolve(arg, 0, sizeof(*k) + (size_t)n * sizeof(k->iso_frame_desc[0]));
    if (!whole)
        return NULL;
    k = (struct usbdevfs_urb *)whole->data;
    k->number_of_packets = n;
    *length = 0;
    for (int i = 0; i < n; i++)
        *length += (int)MIN(k->iso_frame_desc[i].length, 98304u); /* usbfs's limit */
    return whole;
}

static struct usbdev_urb *urb_new(struct usbdev_client *c, uint8_t type, uint8_t ep,
                                  UMockdevIoctlData *buf_data, int length)
{
    struct usbdev_urb *u = g_new0(struct usbdev_urb, 1);

    u->owner = c;
    u->type = type;
    u->endpoint = ep;
    u->buf_data = buf_data;
    u->buf = buf_data ? buf_data->data : NULL;
    u->length = buf_data ? length : 0;
    c->inflight = g_list_prepend(c->inflight, u);
    return u;
}

static struct reply submit_urb(struct usbdev_client *c, UMockdevIoctlData *arg)
{
    struct usbdev_device *d = c->dev;
    UMockdevIoctlData *urb_data = resolve(arg, 0, sizeof(struct usbdevfs_urb));
    struct usbdevfs_urb *k;
    UMockdevIoctlData *buf = NULL;
    struct usbdev_urb *u;
    int r, length;

    if (!urb_data)
        return fail(EFAULT);
    k = (struct usbdevfs_urb *)urb_data->data;
    length = k->buffer_length;
    if (k->buffer_length < 0 || (k->buffer_length > 0 && !k->buffer)) {
        g_object_unref(urb_data);
        return fail(EINVAL);
    }
    if (k->type == USBDEVFS_URB_TYPE_CONTROL) {
        if ((k->endpoint & 0x7f) != 0 || k->buffer_length < 8)
            r = -EINVAL;
        else
            r = 0;
    } else {
        int type = d->config ? device_endpoint_type(d, k->endpoint) : -1;
        r = type < 0 ? -ENOENT : type != k->type ? -EINVAL : claim(c, 0);
    }
    if (r == 0 && k->type == USBDEVFS_URB_TYPE_ISO) {
        urb_data = resolve_iso(arg, urb_data, &length);
        if (!urb_data)
            return fail(EINVAL);
        k = (struct usbdevfs_urb *)urb_data->data;
        r = iso_check(&(struct usbdev_urb){ .nr_packets = k->number_of_packets,
                                            .iso = k->iso_frame_desc });
    }
    if (r == 0 && length > 0) {
        buf = resolve(urb_data, offsetof(struct usbdevfs_urb, buffer), (size_t)length);
        if (!buf)
            r = -EFAULT;
    }
    if (r == 0 && k->type == USBDEVFS_URB_TYPE_CONTROL)
        r = check_ctrl_recipient(c, buf->data);
    if (r) {
        if (buf)
            g_object_unref(buf);
        g_object_unref(urb_data);
        return fail(-r);
    }
    u = urb_new(c, k->type, k->endpoint, buf, length);
    u->urb_data = urb_data;
    u->client_addr = urb_data->client_addr;
    if (k->type == USBDEVFS_URB_TYPE_ISO) {
        u->nr_packets = k->number_of_packets;
        u->iso = k->iso_frame_desc;
    }
    if (k->type == USBDEVFS_URB_TYPE_CONTROL) {
        int len = MIN(u->buf[6] | u->buf[7] << 8, u->length - 8);
        int status = device_control(d, u->buf, u->buf + 8, &len);
        u->actual = status ? 0 : len;
        usbfs_urb_done(u, status);
    } else {
        device_submit(d, u);
    }
    return ok(0);
}

static struct reply reap_urb(struct usbdev_client *c, UMockdevIoctlClient *client,
                             UMockdevIoctlData *arg, bool block)
{
    UMockdevIoctlData *slot = resolve(arg, 0, sizeof(void *));
    struct usbdev_urb *u;

    if (!slot)
        return fail(EFAULT);
    u = g_queue_pop_head(&c->completed);
    if (u) {
        reap_into(client, slot, u);
        g_object_unref(slot);
        update_ready(c->dev);
        return deferred(); /* answered by reap_into */
    }
    if (!c->dev->present || !block) {
        g_object_unref(slot);
        return fail(c->dev->present ? EAGAIN : ENODEV);
    }
    c->reaper = g_object_ref(client);
    c->reap_slot = slot;
    return deferred();
}

static struct reply discard_urb(struct usbdev_client *c, unsigned long addr)
{
    for (GList *l = c->inflight; l; l = l->next) {
        struct usbdev_urb *u = l->data;
        if (u->client_addr == addr && !u->sync && device_cancel(c->dev, u)) {
            u->actual = 0;
            usbfs_urb_done(u, -ENOENT);
            return ok(0);
        }
    }
    return fail(EINVAL);
}

static gboolean sync_timeout(gpointer data)
{
    struct usbdev_urb *u = data;

    g_rec_mutex_lock(&usbdev_lock);
    u->timeout = 0;
    device_cancel(u->owner->dev, u);
    usbfs_urb_done(u, -ETIMEDOUT);
    g_rec_mutex_unlock(&usbdev_lock);
    return G_SOURCE_REMOVE;
}

static struct reply sync_bulk(struct usbdev_client *c, UMockdevIoctlClient *client,
                              UMockdevIoctlData *arg)
{
    struct usbdev_device *d = c->dev;
    UMockdevIoctlData *bd = resolve(arg, 0, sizeof(struct usbdevfs_bulktransfer));
    struct usbdevfs_bulktransfer *bt;
    UMockdevIoctlData *buf = NULL;
    uint8_t ep, type;
    struct usbdev_urb *u;
    int r;

    if (!bd)
        return fail(EFAULT);
    bt = (struct usbdevfs_bulktransfer *)bd->data;
    ep = (uint8_t)bt->ep;
    type = (uint8_t)device_endpoint_type(d, ep);
    r = d->config && (type == USBDEVFS_URB_TYPE_BULK || type == USBDEVFS_URB_TYPE_INTERRUPT)
            ? claim(c, 0) : -ENOENT;
    if (r == 0 && bt->len > 0 &&
        !(buf = resolve(bd, offsetof(struct usbdevfs_bulktransfer, data), bt->len)))
        r = -EFAULT;
    if (r) {
        g_object_unref(bd);
        return fail(-r);
    }
    u = urb_new(c, type, ep, buf, (int)bt->len);
    u->sync = g_object_ref(client);
    if (bt->timeout)
        u->timeout = g_timeout_add(bt->timeout, sync_timeout, u);
    g_object_unref(bd);
    device_submit(d, u);
    return deferred();
}

static struct reply sync_control(struct usbdev_client *c, UMockdevIoctlData *arg)
{
    UMockdevIoctlData *cd = resolve(arg, 0, sizeof(struct usbdevfs_ctrltransfer));
    struct usbdevfs_ctrltransfer *ct;
    UMockdevIoctlData *buf = NULL;
    uint8_t setup[8];
    int len, r;

    if (!cd)
        return fail(EFAULT);
    ct = (struct usbdevfs_ctrltransfer *)cd->data;
    setup[0] = ct->bRequestType;
    setup[1] = ct->bRequest;
    memcpy(setup + 2, &ct->wValue, 2);
    memcpy(setup + 4, &ct->wIndex, 2);
    memcpy(setup + 6, &ct->wLength, 2);
    len = ct->wLength;
    r = check_ctrl_recipient(c, setup);
    if (r == 0 && len > 0 &&
        !(buf = resolve(cd, offsetof(struct usbdevfs_ctrltransfer, data), (size_t)len)))
        r = -EFAULT;
    if (r == 0)
        r = device_control(c->dev, setup, buf ? buf->data : NULL, &len);
    if (buf)
        g_object_unref(buf);
    g_object_unref(cd);
    return r ? fail(-r) : ok(len);
}

/* USBDEVFS_IOCTL's DISCONNECT/CONNECT: unbind or rebind the kernel driver. */
static struct reply driver_ioctl(struct usbdev_client *c, UMockdevIoctlData *arg)
{
    struct usbdev_device *d = c->dev;
    UMockdevIoctlData *io = resolve(arg, 0, sizeof(struct usbdevfs_ioctl));
    struct usbdevfs_ioctl cmd;

    if (!io)
        return fail(EFAULT);
    memcpy(&cmd, io->data, sizeof(cmd));
    g_object_unref(io);
    if (cmd.ifno != 0)
        return fail(EINVAL);
    if (cmd.ioctl_code == (int)USBDEVFS_DISCONNECT) {
        if (!d->driver[0])
            return fail(ENODATA);
        if (d->claimed_by)
            d->claimed_by = NULL;
        d->driver[0] = '\0';
        return ok(0);
    }
    if (cmd.ioctl_code == (int)USBDEVFS_CONNECT) {
        if (d->driver[0])
            return fail(EBUSY);
        g_strlcpy(d->driver, d->model->bound_driver ? d->model->bound_driver : "",
                  sizeof(d->driver));
        return ok(d->driver[0] != '\0'); /* 1: a driver was bound */
    }
    return fail(ENOTTY);
}

static struct reply disconnect_claim(struct usbdev_client *c, UMockdevIoctlData *arg)
{
    struct usbdev_device *d = c->dev;
    UMockdevIoctlData *dc = resolve(arg, 0, sizeof(struct usbdevfs_disconnect_claim));
    struct usbdevfs_disconnect_claim req;

    if (!dc)
        return fail(EFAULT);
    memcpy(&req, dc->data, sizeof(req));
    g_object_unref(dc);
    req.driver[sizeof(req.driver) - 1] = '\0';
    if (req.interface != 0)
        return fail(ENOENT);
    if (d->driver[0] && d->claimed_by != c) {
        bool named = strcmp(d->driver, req.driver) == 0;
        if (!strcmp(d->driver, "usbfs"))
            return fail(EBUSY);
        if ((req.flags & USBDEVFS_DISCONNECT_CLAIM_IF_DRIVER) && !named)
            return fail(EBUSY);
        if ((req.flags & USBDEVFS_DISCONNECT_CLAIM_EXCEPT_DRIVER) && named)
            return fail(EBUSY);
        d->driver[0] = '\0';
    }
    return result(claim(c, 0));
}

/* Reads a small fixed-size argument (unsigned int, struct) into *out. */
static bool read_arg(UMockdevIoctlData *arg, void *out, size_t len)
{
    UMockdevIoctlData *data = resolve(arg, 0, len);

    if (!data)
        return false;
    memcpy(out, data->data, len);
    g_object_unref(data);
    return true;
}

/* Writes a small result into the client's argument. */
static bool write_arg(UMockdevIoctlData *arg, const void *in, size_t len)
{
    UMockdevIoctlData *data = resolve(arg, 0, len);

    if (!data)
        return false;
    memcpy(data->data, in, len);
    g_object_unref(data);
    return true;
}

static struct reply dispatch(struct usbdev_client *c, UMockdevIoctlClient *client,
                             unsigned long req, UMockdevIoctlData *arg)
{
    struct usbdev_device *d = c->dev;
    unsigned int v;

    if (req == (unsigned)USBDEVFS_REAPURB || req == (unsigned)USBDEVFS_REAPURBNDELAY)
        return reap_urb(c, client, arg, req == (unsigned)USBDEVFS_REAPURB);
    if (!d->present)
        return fail(ENODEV);
    switch (req) {
    case (unsigned)USBDEVFS_SUBMITURB:
        return submit_urb(c, arg);
    case (unsigned)USBDEVFS_DISCARDURB:
        return discard_urb(c, *(unsigned long *)arg->data);
    case (unsigned)USBDEVFS_GET_CAPABILITIES:
        v = USBFS_CAPS;
        return write_arg(arg, &v, sizeof(v)) ? ok(0) : fail(EFAULT);
    case (unsigned)USBDEVFS_CLAIMINTERFACE:
        if (!read_arg(arg, &v, sizeof(v)))
            return fail(EFAULT);
        return result(claim(c, v));
    case (unsigned)USBDEVFS_RELEASEINTERFACE:
        if (!read_arg(arg, &v, sizeof(v)))
            return fail(EFAULT);
        if (v != 0 || d->claimed_by != c)
            return fail(EINVAL);
        release(c);
        return ok(0);
    case (unsigned)USBDEVFS_SETCONFIGURATION: {
        int cfg;
        if (!read_arg(arg, &cfg, sizeof(cfg)))
            return fail(EFAULT);
        if (cfg > 1 || cfg < -1)
            return fail(EINVAL);
        if (d->claimed_by && d->claimed_by != c)
            return fail(EBUSY);
        d->config = cfg == 1;
        device_set_alt(d, 0);
        testbed_config_changed(d);
        return ok(0);
    }
    case (unsigned)USBDEVFS_SETINTERFACE: {
        struct usbdevfs_setinterface si;
        if (!read_arg(arg, &si, sizeof(si)))
            return fail(EFAULT);
        if (si.interface != 0)
            return fail(EINVAL);
        int r = claim(c, 0);
        return result(r ? r : device_set_alt(d, si.altsetting));
    }
    case (unsigned)USBDEVFS_CLEAR_HALT:
    case (unsigned)USBDEVFS_RESETEP:
        if (!read_arg(arg, &v, sizeof(v)))
            return fail(EFAULT);
        if (v > 0xff || device_endpoint_type(d, (uint8_t)v) < 0)
            return fail(ENOENT);
        return result(claim(c, 0));
    case (unsigned)USBDEVFS_RESET:
        return ok(0);
    case (unsigned)USBDEVFS_GETDRIVER: {
        struct usbdevfs_getdriver gd;
        if (!read_arg(arg, &gd, sizeof(gd)))
            return fail(EFAULT);
        if (gd.interface != 0 || !d->driver[0])
            return fail(ENODATA);
        g_strlcpy(gd.driver, d->driver, sizeof(gd.driver));
        return write_arg(arg, &gd, sizeof(gd)) ? ok(0) : fail(EFAULT);
    }
    case (unsigned)USBDEVFS_IOCTL:
        return driver_ioctl(c, arg);
    case (unsigned)USBDEVFS_DISCONNECT_CLAIM:
        return disconnect_claim(c, arg);
    case (unsigned)USBDEVFS_CONNECTINFO: {
        struct usbdevfs_connectinfo ci = { .devnum = (unsigned)d->devnum, .slow = 0 };
        return write_arg(arg, &ci, sizeof(ci)) ? ok(0) : fail(EFAULT);
    }
    case (unsigned)USBDEVFS_GET_SPEED:
        return ok(d->model->usbfs_speed);
    case (unsigned)USBDEVFS_CONTROL:
        return sync_control(c, arg);
    case (unsigned)USBDEVFS_BULK:
        return sync_bulk(c, client, arg);
    default:
        return fail(ENOTTY);
    }
}

static struct usbdev_client *client_of(UMockdevIoctlClient *client)
{
    return g_object_get_data(G_OBJECT(client), "usbdev-client");
}

/* The kernel releases a closed fd's interface at close(); here the close
 * reaches the worker thread as an EOF some time later. So an ioctl refused
 * because another fd holds the interface is tried again for a while before
 * the client gets EBUSY: a close-then-reopen (libusb_close, libusb_open,
 * claim) must not fail. */
#define CLAIM_RETRY_MS 5
#define CLAIM_RETRIES 40

struct retry {
    UMockdevIoctlClient *client;
    int tries;
};

static bool held_elsewhere(struct usbdev_client *c, struct reply r)
{
    return !r.deferred && r.ret == -1 && r.err == EBUSY && c->dev->claimed_by &&
           c->dev->claimed_by != c;
}

static gboolean retry_ioctl(gpointer data)
{
    struct retry *t = data;
    struct usbdev_client *c;
    struct reply r;

    g_rec_mutex_lock(&usbdev_lock);
    c = client_of(t->client);
    if (c) {
        r = dispatch(c, t->client, umockdev_ioctl_client_get_request(t->client),
                     umockdev_ioctl_client_get_arg(t->client));
        if (held_elsewhere(c, r) && ++t->tries < CLAIM_RETRIES) {
            g_rec_mutex_unlock(&usbdev_lock);
            return G_SOURCE_CONTINUE;
        }
        if (!r.deferred)
            umockdev_ioctl_client_complete(t->client, r.ret, r.err);
    }
    g_rec_mutex_unlock(&usbdev_lock);
    g_object_unref(t->client);
    g_free(t);
    return G_SOURCE_REMOVE;
}

static gboolean on_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *client,
                         gpointer data)
{
    struct usbdev_client *c = client_of(client);
    struct reply r;

    (void)handler;
    (void)data;
    g_rec_mutex_lock(&usbdev_lock);
    r = dispatch(c, client, umockdev_ioctl_client_get_request(client),
                 umockdev_ioctl_client_get_arg(client));
    if (held_elsewhere(c, r)) {
        struct retry *t = g_new0(struct retry, 1);
        t->client = g_object_ref(client);
        g_timeout_add(CLAIM_RETRY_MS, retry_ioctl, t);
    } else if (!r.deferred) {
        umockdev_ioctl_client_complete(client, r.ret, r.err);
    }
    g_rec_mutex_unlock(&usbdev_lock);
    return TRUE;
}

/* read() on the node: the device and configuration descriptors, like usbfs. */
static gboolean on_read(UMockdevIoctlBase *handler, UMockdevIoctlClient *client,
                        gpointer data)
{
    struct usbdev_client *c = client_of(client);
    UMockdevIoctlData *buf = umockdev_ioctl_client_get_arg(client);
    const struct usbdev_model *m = c->dev->model;
    size_t n;

    (void)handler;
    (void)data;
    g_rec_mutex_lock(&usbdev_lock);
    n = c->read_pos < m->descriptors_len ? m->descriptors_len - c->read_pos : 0;
    n = MIN(n, (size_t)buf->data_len);
    memcpy(buf->data, m->descriptors + c->read_pos, n);
    c->read_pos += n;
    umockdev_ioctl_client_complete(client, (long)n, 0);
    g_rec_mutex_unlock(&usbdev_lock);
    return TRUE;
}

static gboolean on_write(UMockdevIoctlBase *handler, UMockdevIoctlClient *client,
                         gpointer data)
{
    (void)handler;
    (void)data;
    umockdev_ioctl_client_complete(client, -1, EINVAL);
    return TRUE;
}

static void client_cancel_all(struct usbdev_client *c, int status)
{
    while (c->inflight) {
        struct usbdev_urb *u = c->inflight->data;
        device_cancel(c->dev, u);
        u->actual = 0;
        usbfs_urb_done(u, status);
    }
}

/* The client closed its fd (or died): like usbdev_release, drop its URBs and
 * its claim. umockdev 0.17 never tells (client-vanished is not emitted, and
 * notify::connected waits for a GIOStream notify that never comes), but the
 * client object goes away once its connection has ended and no ioctl of it
 * is pending: a weak reference sees that. */
static void on_client_gone(gpointer data, GObject *where)
{
    struct usbdev_client *c = data;
    struct usbdev_device *d = c->dev;
    struct usbdev_urb *u;

    (void)where;
    g_rec_mutex_lock(&usbdev_lock);
    while (c->inflight) {
        u = c->inflight->data;
        device_cancel(d, u);
        c->inflight = g_list_remove(c->inflight, u);
        urb_free(u);
    }
    while ((u = g_queue_pop_head(&c->completed)))
        urb_free(u);
    release(c);
    d->clients = g_list_remove(d->clients, c);
    update_ready(d);
    g_free(c);
    if (!d->present && !d->clients)
        testbed_release(d);
    g_rec_mutex_unlock(&usbdev_lock);
}

static void on_client_connected(UMockdevIoctlBase *handler, UMockdevIoctlClient *client,
                                gpointer data)
{
    struct usbdev_device *d = data;
    struct usbdev_client *c = g_new0(struct usbdev_client, 1);

    (void)handler;
    g_rec_mutex_lock(&usbdev_lock);
    c->dev = d;
    g_queue_init(&c->completed);
    g_object_set_data(G_OBJECT(client), "usbdev-client", c);
    d->clients = g_list_prepend(d->clients, c);
    g_object_weak_ref(G_OBJECT(client), on_client_gone, c);
    g_rec_mutex_unlock(&usbdev_lock);
}

UMockdevIoctlBase *usbfs_handler_new(struct usbdev_device *d)
{
    UMockdevIoctlBase *h = umockdev_ioctl_base_new();

    g_signal_connect(h, "client-connected", G_CALLBACK(on_client_connected), d);
    g_signal_connect(h, "handle-ioctl", G_CALLBACK(on_ioctl), d);
    g_signal_connect(h, "handle-read", G_CALLBACK(on_read), d);
    g_signal_connect(h, "handle-write", G_CALLBACK(on_write), d);
    return h;
}

/* Unplug: like the kernel's usbdev_remove, every URB in flight completes
 * with -ESHUTDOWN (reapable, CAP_REAP_AFTER_DISCONNECT), and a waiting
 * blocking reap with nothing left gets ENODEV. */
void usbfs_device_gone(struct usbdev_device *d)
{
    d->present = false;
    for (GList *l = d->clients; l; l = l->next) {
        struct usbdev_client *c = l->data;
        client_cancel_all(c, -ESHUTDOWN);
        release(c);
        if (c->reaper) {
            umockdev_ioctl_client_complete(c->reaper, -1, ENODEV);
            g_object_unref(c->reaper);
            g_object_unref(c->reap_slot);
            c->reaper = NULL;
            c->reap_slot = NULL;
        }
    }
}

void usbfs_endpoints_gone(struct usbdev_device *d)
{
    for (GList *l = d->clients; l; l = l->next) {
        struct usbdev_client *c = l->data;
        GList *i = c->inflight;
        while (i) {
            struct usbdev_urb *u = i->data;
            i = i->next;
            if ((u->endpoint & 0x7f) && device_cancel(d, u)) {
                u->actual = 0;
                usbfs_urb_done(u, -ESHUTDOWN);
                i = c->inflight; /* done() changed the list */
            }
        }
    }
}
