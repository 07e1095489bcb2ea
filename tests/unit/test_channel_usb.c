/* Remote USB over the netbus channel (PROTOCOL.md section 8), end to end on
 * loopback TCP: a xensim host's xenstore holds a usb export whose device is
 * a simulated one (it counts how often each URB runs, and completes URBs
 * when the test says so), the server serves it, and the LBE side target
 * (usb_remote.c) reaches it through a proxy in this process that can hold
 * the bytes of either direction and kill the connections. Covered: control,
 * bulk and isochronous transfers; every URB runs exactly once when replies
 * are lost on the wire, when requests are lost, and when URBs are still at
 * the device across a reconnect; UNLINK; device unplug and replug reaching
 * the LBE; an LBE that comes back after the export gave its session up;
 * handover to the same guest's new session; the export side's
 * rules on their own (a resent sequence number
 * answered from the kept result, an old one never run again, results
 * forgotten once acknowledged, the window bound); the in-process
 * short-circuit. */
#include "backend/channel/export.h"
#include "backend/channel/keys.h"
#include "backend/channel/local_usb.h"
#include "backend/channel/server.h"
#include "backend/channel/usb_export.h"
#include "backend/channel/usb_remote.h"
#include "backend/vusb/target.h"
#include "evloop.h"
#include "test_channel_link.h"
#include "test_xensim.h"
#include "timer.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_IDS 1024
#define MAX_HELD 512

static struct sim_host host;
static struct evloop *loop;
static struct xenif_xs *ts;
static struct nb_exports *reg;
/* The server and the remote target's peer pool, with the proxy between. */
static struct test_link chan;

#define PUMP_UNTIL(cond, ms)                                                 \
    do {                                                                     \
        uint64_t end_ = mono_ms() + (ms);                                    \
        while (!(cond) && mono_ms() < end_)                                  \
            evloop_run_once(loop, 10);                                       \
    } while (0)

/* ---- the simulated device ---------------------------------------------------
 * OUT transfers carry a 32-bit id in their first bytes: the device counts
 * how often each id ran. IN transfers get a pattern; control IN a fake
 * 18-byte device descriptor. In hold mode URBs wait for fake_complete(). */

static struct {
    struct vusb_target t;
    struct vusb_xfer *held[MAX_HELD];
    unsigned nheld;
    bool hold;
    unsigned runs[MAX_IDS];
    unsigned submits;
    struct vusb_xfer *later[MAX_HELD]; /* completing after the batch */
    int later_status[MAX_HELD];
    unsigned nlater;
    struct evloop_deferred finish;
    bool open;
} dev;

static uint32_t id_of(const struct vusb_xfer *x)
{
    uint32_t id = 0;
    if (x->length >= 4)
        memcpy(&id, x->data, 4);
    return id;
}

static bool xfer_in(const struct vusb_xfer *x)
{
    return x->type == VUSB_XFER_CTRL ? (x->setup[0] & 0x80) : (x->ep & 0x80);
}

/* What the device does with x. */
static void run(struct vusb_xfer *x, int status)
{
    x->status = status;
    x->actual = 0;
    if (status)
        return;
    if (!xfer_in(x)) {
        x->actual = x->length;
        return;
    }
    if (x->type == VUSB_XFER_CTRL) {
        static const uint8_t desc[18] = { 18, 1, 0, 2, 0, 0, 0, 64, 0x34,
                                          0x12, 0x78, 0x56, 0, 1, 1, 2, 3, 1 };
        x->actual = x->length < 18 ? x->length : 18;
        memcpy(x->data, desc, x->actual);
    } else if (x->type == VUSB_XFER_ISO) {
        x->error_count = 0;
        for (unsigned i = 0; i < x->nr_iso; i++) {
            struct vusb_iso_packet *p = &x->iso[i];
            p->actual = p->length / 2;
            p->status = i == 1 ? -EPROTO : 0;
            x->error_count += i == 1;
            memset(x->data + p->offset, 0xa0 + (int)i, p->actual);
            x->actual += p->actual;
        }
    } else {
        for (uint32_t i = 0; i < x->length; i++)
            x->data[i] = (uint8_t)(i * 3 + 1);
        x->actual = x->length;
    }
}

static void finish_later(void *opaque)
{
    (void)opaque;
    while (dev.nlater) {
        struct vusb_xfer *x = dev.later[0];
        int st = dev.later_status[0];
        dev.nlater--;
        memmove(dev.later, dev.later + 1, dev.nlater * sizeof(dev.later[0]));
        memmove(dev.later_status, dev.later_status + 1,
                dev.nlater * sizeof(dev.later_status[0]));
        run(x, st);
        x->done(x);
    }
}

static void complete_later(struct vusb_xfer *x, int status)
{
    dev.later[dev.nlater] = x;
    dev.later_status[dev.nlater++] = status;
    evloop_defer(loop, &dev.finish);
}

static void unhold(struct vusb_xfer *x)
{
    for (unsigned i = 0; i < dev.nheld; i++)
        if (dev.held[i] == x) {
            dev.held[i] = dev.held[--dev.nheld];
            return;
        }
}

static int dev_submit(struct vusb_target *t, struct vusb_xfer *x)
{
    (void)t;
    dev.submits++;
    if (!xfer_in(x) && id_of(x) < MAX_IDS)
        dev.runs[id_of(x)]++;
    if (dev.hold)
        dev.held[dev.nheld++] = x;
    else
        complete_later(x, 0);
    return 0;
}

/* Completes the first n held URBs now (from outside the event loop). */
static void fake_complete(unsigned n)
{
    while (n-- && dev.nheld) {
        struct vusb_xfer *x = dev.held[0];
        unhold(x);
        run(x, 0);
        x->done(x);
    }
}

static void dev_cancel(struct vusb_target *t, struct vusb_xfer *x)
{
    (void)t;
    for (unsigned i = 0; i < dev.nheld; i++)
        if (dev.held[i] == x) {
            unhold(x);
            complete_later(x, -ECONNRESET);
            return;
        }
}

static unsigned dev_inflight(const struct vusb_target *t)
{
    (void)t;
    return dev.nheld + dev.nlater;
}

static void dev_drain(struct vusb_target *t)
{
    (void)t;
    fake_complete(MAX_HELD);
    evloop_defer_cancel(loop, &dev.finish);
    finish_later(NULL);
}

static void dev_close(struct vusb_target *t)
{
    while (dev.nheld)
        dev_cancel(t, dev.held[0]);
    dev_drain(t);
    dev.open = false;
}

static const struct vusb_target_ops dev_ops = {
    .submit = dev_submit, .cancel = dev_cancel, .inflight = dev_inflight,
    .drain = dev_drain, .close = dev_close,
};

static struct vusb_target *dev_open(const char *name, struct evloop *l,
                                    const char *where, char *err,
                                    size_t errlen)
{
    (void)l;
    (void)where;
    if (strcmp(name, "1-1") != 0 || dev.open) {
        snprintf(err, errlen, "no USB device %s", name);
        return NULL;
    }
    dev.t.ops = &dev_ops;
    dev.t.speed = VUSB_SPEED_HIGH;
    dev.open = true;
    return &dev.t;
}

static void dev_set_speed(enum vusb_speed s)
{
    dev.t.speed = s;
    dev.t.changed(dev.t.opaque);
}

static void dev_reset_counts(void)
{
    memset(dev.runs, 0, sizeof(dev.runs));
    dev.submits = 0;
}

/* ---- the LBE side ------------------------------------------------------------------ */

struct cx {
    struct vusb_xfer x;
    unsigned done;
    uint8_t buf[1024];
    struct vusb_iso_packet iso[4];
};

static unsigned completions;

static void cx_done(struct vusb_xfer *x)
{
    ((struct cx *)x)->done++;
    completions++;
}

static void bulk_out(struct cx *c, uint32_t id, uint32_t len)
{
    memset(c, 0, sizeof(*c));
    c->x.type = VUSB_XFER_BULK;
    c->x.ep = 0x02;
    c->x.length = len;
    c->x.data = c->buf;
    memcpy(c->buf, &id, 4);
    for (uint32_t i = 4; i < len; i++)
        c->buf[i] = (uint8_t)(id + i);
    c->x.done = cx_done;
}

static void bulk_in(struct cx *c, uint32_t len)
{
    memset(c, 0, sizeof(*c));
    c->x.type = VUSB_XFER_BULK;
    c->x.ep = 0x81;
    c->x.length = len;
    c->x.data = c->buf;
    c->x.done = cx_done;
}

static unsigned changes;

static void on_changed(void *opaque)
{
    (void)opaque;
    changes++;
}

static char failed_why[300];

static void on_failed(void *opaque, const char *why)
{
    (void)opaque;
    snprintf(failed_why, sizeof(failed_why), "%s", why);
}

static struct vusb_target *open_as(const char *name, const char *owner,
                                   unsigned wait_ms)
{
    failed_why[0] = '\0';
    struct nb_usb_remote_params p = {
        .pool = &chan.pool, .host = "127.0.0.1", .port = chan.px.port,
        .export_name = name, .owner = owner, .io_timeout_ms = 10000,
        .where = "test lbe", .failed = on_failed };
    struct vusb_target *t = nb_usb_remote_open(&p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    t->changed = on_changed;
    PUMP_UNTIL(t->speed != VUSB_SPEED_NONE || failed_why[0], wait_ms);
    return t;
}

static struct vusb_target *open_remote(const char *name)
{
    return open_as(name, "test", 5000);
}

static void close_remote(struct vusb_target *t)
{
    t->ops->close(t);
    PUMP_UNTIL(false, 50);
}

static void test_transfers(void)
{
    struct vusb_target *t = open_remote("dongle");
    CU_ASSERT_EQUAL_FATAL(t->speed, VUSB_SPEED_HIGH);
    CU_ASSERT_STRING_EQUAL(failed_why, "");

    /* GET_DESCRIPTOR(DEVICE) */
    struct cx c = { .x = { .type = VUSB_XFER_CTRL, .ep = 0x80, .length = 64,
                           .setup = { 0x80, 6, 0, 1, 0, 0, 64, 0 },
                           .done = cx_done } };
    c.x.data = c.buf;
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), 0);
    PUMP_UNTIL(c.done, 3000);
    CU_ASSERT_EQUAL(c.done, 1);
    CU_ASSERT_EQUAL(c.x.status, 0);
    CU_ASSERT_EQUAL(c.x.actual, 18);
    CU_ASSERT_EQUAL(c.buf[8], 0x34);
    CU_ASSERT_EQUAL(c.buf[0], 18);

    bulk_out(&c, 7, 512);
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), 0);
    PUMP_UNTIL(c.done, 3000);
    CU_ASSERT_EQUAL(c.x.status, 0);
    CU_ASSERT_EQUAL(c.x.actual, 512);
    CU_ASSERT_EQUAL(dev.runs[7], 1);

    bulk_in(&c, 1000);
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), 0);
    PUMP_UNTIL(c.done, 3000);
    CU_ASSERT_EQUAL(c.x.actual, 1000);
    bool ok = true;
    for (unsigned i = 0; i < 1000; i++)
        ok &= c.buf[i] == (uint8_t)(i * 3 + 1);
    CU_ASSERT(ok);

    /* Isochronous IN, three packets, the second one failing. */
    memset(&c, 0, sizeof(c));
    c.x.type = VUSB_XFER_ISO;
    c.x.ep = 0x83;
    c.x.length = 3 * 192;
    c.x.data = c.buf;
    c.x.nr_iso = 3;
    c.x.iso = c.iso;
    c.x.interval = 1;
    c.x.done = cx_done;
    for (unsigned i = 0; i < 3; i++)
        c.iso[i] = (struct vusb_iso_packet){ .offset = i * 192, .length = 192 };
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), 0);
    PUMP_UNTIL(c.done, 3000);
    CU_ASSERT_EQUAL(c.x.status, 0);
    CU_ASSERT_EQUAL(c.x.error_count, 1);
    CU_ASSERT_EQUAL(c.iso[0].actual, 96);
    CU_ASSERT_EQUAL(c.iso[1].status, -EPROTO);
    CU_ASSERT_EQUAL(c.buf[2 * 192 + 95], 0xa2);
    CU_ASSERT_EQUAL(c.buf[2 * 192 + 96], 0);
    CU_ASSERT_EQUAL(t->ops->inflight(t), 0);
    close_remote(t);
}

#define NURB 24

static struct cx urbs[NURB];

static unsigned submit_outs(struct vusb_target *t, unsigned first)
{
    completions = 0;
    unsigned n = 0;
    for (unsigned i = 0; i < NURB; i++) {
        bulk_out(&urbs[i], first + i, 64 + i);
        n += t->ops->submit(t, &urbs[i].x) == 0;
    }
    return n;
}

/* Each of NURB OUT URBs completed once at the LBE, ran once on the device. */
static void check_once(unsigned first)
{
    unsigned ok = 0, once = 0;
    for (unsigned i = 0; i < NURB; i++) {
        ok += urbs[i].done == 1 && urbs[i].x.status == 0 &&
              urbs[i].x.actual == 64 + i;
        once += dev.runs[first + i] == 1;
    }
    CU_ASSERT_EQUAL(ok, NURB);
    CU_ASSERT_EQUAL(once, NURB);
    CU_ASSERT_EQUAL(dev.submits, NURB);
}

static void test_replies_lost(void)
{
    struct vusb_target *t = open_remote("dongle");
    CU_ASSERT_EQUAL_FATAL(t->speed, VUSB_SPEED_HIGH);
    dev_reset_counts();
    dev.hold = true;
    CU_ASSERT_EQUAL(submit_outs(t, 100), NURB);
    PUMP_UNTIL(dev.nheld == NURB, 3000);
    CU_ASSERT_EQUAL_FATAL(dev.nheld, NURB);
    /* Every result goes out and is lost on the wire with the connection. */
    chan.px.hold[1] = true;
    fake_complete(NURB);
    PUMP_UNTIL(false, 100);
    CU_ASSERT_EQUAL(completions, 0);
    unsigned before = chan.px.accepted;
    proxy_kill_all(&chan.px);
    dev.hold = false;
    PUMP_UNTIL(completions == NURB, 5000);
    CU_ASSERT(chan.px.accepted > before);
    CU_ASSERT_EQUAL(t->speed, VUSB_SPEED_HIGH); /* no unplug seen */
    check_once(100);
    close_remote(t);
}

static void test_requests_lost(void)
{
    struct vusb_target *t = open_remote("dongle");
    CU_ASSERT_EQUAL_FATAL(t->speed, VUSB_SPEED_HIGH);
    dev_reset_counts();
    /* Half the URBs reach the device, the rest die in the network. */
    dev.hold = true;
    completions = 0;
    for (unsigned i = 0; i < NURB / 2; i++) {
        bulk_out(&urbs[i], 200 + i, 64 + i);
        CU_ASSERT_EQUAL(t->ops->submit(t, &urbs[i].x), 0);
    }
    PUMP_UNTIL(dev.nheld == NURB / 2, 3000);
    chan.px.hold[0] = true;
    for (unsigned i = NURB / 2; i < NURB; i++) {
        bulk_out(&urbs[i], 200 + i, 64 + i);
        CU_ASSERT_EQUAL(t->ops->submit(t, &urbs[i].x), 0);
    }
    PUMP_UNTIL(false, 50);
    CU_ASSERT_EQUAL(dev.submits, NURB / 2);
    proxy_kill_all(&chan.px);
    /* Some complete while the LBE is away, the rest after it is back. */
    fake_complete(NURB / 4);
    /* Back: the kept results answered, the rest run (the lost ones) or
     * attached to their execution. */
    PUMP_UNTIL(dev.nheld == NURB - NURB / 4 && completions == NURB / 4, 5000);
    CU_ASSERT_EQUAL(dev.nheld, NURB - NURB / 4);
    CU_ASSERT_EQUAL(completions, NURB / 4);
    fake_complete(MAX_HELD);
    dev.hold = false;
    PUMP_UNTIL(completions == NURB, 5000);
    check_once(200);
    close_remote(t);
}

static void test_unlink(void)
{
    struct vusb_target *t = open_remote("dongle");
    CU_ASSERT_EQUAL_FATAL(t->speed, VUSB_SPEED_HIGH);
    dev.hold = true;
    struct cx c;
    bulk_in(&c, 64); /* an IN that waits for data for ever */
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), 0);
    PUMP_UNTIL(dev.nheld == 1, 3000);
    CU_ASSERT_EQUAL_FATAL(dev.nheld, 1);
    t->ops->cancel(t, &c.x);
    PUMP_UNTIL(c.done, 3000);
    CU_ASSERT_EQUAL(c.done, 1);
    CU_ASSERT_EQUAL(c.x.status, -ECONNRESET);
    CU_ASSERT_EQUAL(dev.nheld, 0);
    /* Cancelled while the connection is down: the UNLINK follows the URB
     * that is sent again. */
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), 0);
    c.done = 0;
    PUMP_UNTIL(dev.nheld == 1, 3000);
    proxy_kill_all(&chan.px);
    t->ops->cancel(t, &c.x);
    PUMP_UNTIL(c.done, 5000);
    CU_ASSERT_EQUAL(c.done, 1);
    CU_ASSERT_EQUAL(c.x.status, -ECONNRESET);
    dev.hold = false;
    close_remote(t);
}

static void test_unplug(void)
{
    struct vusb_target *t = open_remote("dongle");
    CU_ASSERT_EQUAL_FATAL(t->speed, VUSB_SPEED_HIGH);
    changes = 0;
    dev_set_speed(VUSB_SPEED_NONE);
    PUMP_UNTIL(t->speed == VUSB_SPEED_NONE, 3000);
    CU_ASSERT_EQUAL(t->speed, VUSB_SPEED_NONE);
    CU_ASSERT_EQUAL(changes, 1);
    struct cx c;
    bulk_in(&c, 64);
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), -ENODEV);
    dev_set_speed(VUSB_SPEED_FULL);
    PUMP_UNTIL(t->speed == VUSB_SPEED_FULL, 3000);
    CU_ASSERT_EQUAL(t->speed, VUSB_SPEED_FULL);
    CU_ASSERT_EQUAL(changes, 2);
    dev.t.speed = VUSB_SPEED_HIGH;
    close_remote(t);
}

static void test_refusals(void)
{
    struct vusb_target *t = open_remote("nosuch");
    CU_ASSERT(strstr(failed_why, "has no export 'nosuch'") != NULL);
    CU_ASSERT_EQUAL(t->speed, VUSB_SPEED_NONE);
    close_remote(t);
    t = open_remote("disk"); /* a disk is not a USB device */
    CU_ASSERT(strstr(failed_why, "not a USB device") != NULL);
    close_remote(t);
}

/* The LBE stays away longer than the export keeps its session: the URBs it
 * had sent are not run again and fail, whatever became of them; the device
 * carries on with a new session. */
static void test_session_lost(void)
{
    struct vusb_target *t = open_remote("dongle");
    CU_ASSERT_EQUAL_FATAL(t->speed, VUSB_SPEED_HIGH);
    nb_server_set_usb_linger(chan.srv, 300);
    dev_reset_counts();
    dev.hold = true;
    completions = 0;
    for (unsigned i = 0; i < 6; i++) {
        bulk_out(&urbs[i], 400 + i, 64);
        CU_ASSERT_EQUAL(t->ops->submit(t, &urbs[i].x), 0);
    }
    PUMP_UNTIL(dev.nheld == 6, 3000);
    CU_ASSERT_EQUAL_FATAL(dev.nheld, 6);
    fake_complete(2); /* two finish, their results are never fetched */
    chan.px.down = true;
    proxy_kill_all(&chan.px);
    PUMP_UNTIL(false, 800); /* the session lingers 300 ms, then goes */
    CU_ASSERT_EQUAL(dev.nheld, 0); /* the other four were cancelled */
    CU_ASSERT_EQUAL(completions, 0);
    CU_ASSERT_EQUAL(t->speed, VUSB_SPEED_HIGH); /* within io-timeout */
    dev.hold = false;
    chan.px.down = false;
    PUMP_UNTIL(completions == 6, 5000);
    unsigned lost = 0, once = 0;
    for (unsigned i = 0; i < 6; i++) {
        lost += urbs[i].done == 1 && urbs[i].x.status == -EPROTO;
        once += dev.runs[400 + i] == 1;
    }
    CU_ASSERT_EQUAL(lost, 6);
    CU_ASSERT_EQUAL(once, 6);
    CU_ASSERT_EQUAL(dev.submits, 6);
    /* The new session serves. */
    struct cx c;
    bulk_out(&c, 410, 64);
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), 0);
    PUMP_UNTIL(c.done, 3000);
    CU_ASSERT_EQUAL(c.x.status, 0);
    CU_ASSERT_EQUAL(dev.runs[410], 1);
    nb_server_set_usb_linger(chan.srv, NB_USB_LINGER_MS);
    close_remote(t);
}

#define GUEST "11111111-2222-3333-4444-555555555555"

/* The guest migrated: its LBE on the new host opens the same export. */
static void test_handover(void)
{
    struct vusb_target *old = open_as("dongle", GUEST, 5000);
    CU_ASSERT_EQUAL_FATAL(old->speed, VUSB_SPEED_HIGH);
    dev_reset_counts();
    dev.hold = true;
    struct cx c, c2;
    bulk_out(&c, 300, 64);
    CU_ASSERT_EQUAL(old->ops->submit(old, &c.x), 0);
    PUMP_UNTIL(dev.nheld == 1, 3000);
    /* The new session is not answered while the old one's URB is at the
     * device. */
    struct vusb_target *nw = open_as("dongle", GUEST, 300);
    CU_ASSERT_EQUAL(nw->speed, VUSB_SPEED_NONE);
    CU_ASSERT_STRING_EQUAL(failed_why, "");
    fake_complete(1);
    PUMP_UNTIL(nw->speed == VUSB_SPEED_HIGH && c.done, 3000);
    CU_ASSERT_EQUAL(c.done, 1);
    CU_ASSERT_EQUAL(c.x.status, 0);
    CU_ASSERT_EQUAL(nw->speed, VUSB_SPEED_HIGH);
    /* The old session takes no more URBs: its LBE learns it for good. */
    dev.hold = false;
    bulk_out(&c2, 301, 64);
    CU_ASSERT_EQUAL(old->ops->submit(old, &c2.x), 0);
    PUMP_UNTIL(c2.done, 3000);
    CU_ASSERT_EQUAL(c2.x.status, -ENODEV);
    CU_ASSERT(strstr(failed_why, "handed over") != NULL);
    CU_ASSERT_EQUAL(dev.runs[301], 0);
    bulk_out(&c2, 302, 64);
    CU_ASSERT_EQUAL(nw->ops->submit(nw, &c2.x), 0);
    PUMP_UNTIL(c2.done, 3000);
    CU_ASSERT_EQUAL(c2.x.status, 0);
    CU_ASSERT_EQUAL(dev.runs[302], 1);
    close_remote(old);
    close_remote(nw);
}

/* ---- the export side's rules, frame by frame ---------------------------------------- */

static struct nb_export *usb_ex;
static struct {
    uint8_t type;
    int32_t status;
    struct nb_urb_result r;
    uint8_t data[256];
} got[64];
static unsigned ngot;

static void capture(void *opaque, struct nb_out *o)
{
    (void)opaque;
    uint8_t frame[NB_HDR_SIZE + 600];
    size_t n = o->head_len;
    memcpy(frame, o->head, n);
    for (unsigned i = 0; i < o->iovcnt; i++) {
        memcpy(frame + n, o->iov[i].iov_base, o->iov[i].iov_len);
        n += o->iov[i].iov_len;
    }
    struct nb_hdr h;
    const char *why;
    CU_ASSERT_EQUAL_FATAL(nb_hdr_decode(frame, &h, true, &why), 0);
    got[ngot].type = h.type;
    if (h.type == (NB_URB | NB_REPLY)) {
        static struct nb_urb_iso iso[NB_URB_MAX_ISO];
        const uint8_t *data;
        CU_ASSERT_EQUAL(nb_urb_reply_decode(frame + NB_HDR_SIZE, h.length,
                                            &got[ngot].status, &got[ngot].r,
                                            iso, &data, &why), 0);
        if (got[ngot].status == NB_ST_OK)
            memcpy(got[ngot].data, data, got[ngot].r.data_len);
    }
    ngot++;
    if (o->release)
        o->release(o);
}

static void feed_urb(struct nb_usb_sess *u, uint64_t seq, uint64_t ack,
                     uint32_t id)
{
    uint8_t b[NB_URB_BODY + 16];
    struct nb_urb m = { .seq = seq, .ack = ack, .type = VUSB_XFER_BULK,
                        .ep = 0x02, .length = 16 };
    size_t n = nb_urb_encode(b, &m);
    memset(b + n, 0, 16);
    memcpy(b + n, &id, 4);
    struct nb_hdr h = { .type = NB_URB, .session = 1, .length = n + 16,
                        .tag = seq };
    nb_usb_urb(u, &h, b);
}

static void test_export_rules(void)
{
    struct nb_session *s = nb_session_new(usb_ex, "hostA", "rules", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    struct nb_usb_sess *u = nb_usb_sess_new(s);
    nb_usb_sess_connect(u, capture, NULL);
    dev_reset_counts();
    dev.hold = true;
    ngot = 0;
    feed_urb(u, 1, 0, 500);
    feed_urb(u, 2, 0, 501);
    CU_ASSERT_EQUAL(dev.submits, 2);
    CU_ASSERT_EQUAL(nb_usb_sess_next_seq(u), 3);
    /* Resent while at the device: attached, not run again. */
    feed_urb(u, 2, 0, 501);
    CU_ASSERT_EQUAL(dev.submits, 2);
    CU_ASSERT_EQUAL(ngot, 0);
    fake_complete(2);
    CU_ASSERT_EQUAL_FATAL(ngot, 2);
    CU_ASSERT_EQUAL(got[0].r.seq, 1);
    CU_ASSERT_EQUAL(got[1].r.seq, 2);
    CU_ASSERT_EQUAL(got[1].r.reply_no, 2);
    /* Resent after it completed: the kept result, a new reply number. */
    feed_urb(u, 1, 0, 500);
    CU_ASSERT_EQUAL_FATAL(ngot, 3);
    CU_ASSERT_EQUAL(got[2].r.seq, 1);
    CU_ASSERT_EQUAL(got[2].r.reply_no, 3);
    CU_ASSERT_EQUAL(got[2].r.status, NB_URB_OK);
    CU_ASSERT_EQUAL(got[2].r.actual, 16);
    CU_ASSERT_EQUAL(dev.submits, 2);
    /* Acknowledging reply 2 forgets URB 2 (its result went out as reply 2)
     * but keeps URB 1 (its last reply is 3). */
    feed_urb(u, 3, 2, 502);
    CU_ASSERT_EQUAL(dev.submits, 3);
    feed_urb(u, 2, 2, 501);
    CU_ASSERT_EQUAL_FATAL(ngot, 4);
    CU_ASSERT_EQUAL(got[3].r.status, NB_URB_PROTO); /* not run again */
    feed_urb(u, 1, 2, 500);
    CU_ASSERT_EQUAL_FATAL(ngot, 5);
    CU_ASSERT_EQUAL(got[4].r.status, NB_URB_OK);
    CU_ASSERT_EQUAL(dev.submits, 3);
    CU_ASSERT_EQUAL(dev.runs[501], 1);
    /* A client that never acknowledges fills the window, then is refused
     * without anything running. */
    unsigned before = dev.submits;
    for (uint64_t seq = 4; seq < 4 + NB_USB_WINDOW; seq++)
        feed_urb(u, seq, 0, 0);
    CU_ASSERT_EQUAL(dev.submits - before, NB_USB_WINDOW - 2);
    unsigned refused = 0;
    for (unsigned i = 5; i < ngot; i++)
        refused += got[i].status == NB_ST_NOSPC;
    CU_ASSERT_EQUAL(refused, 2);
    /* The session ends: what is at the device is cancelled. */
    dev.hold = false;
    nb_usb_sess_free(u);
    PUMP_UNTIL(dev.nheld == 0 && dev.nlater == 0, 3000);
    PUMP_UNTIL(s->inflight == 0, 3000);
    CU_ASSERT_EQUAL(s->inflight, 0);
    nb_session_free(s);
}

static void test_local(void)
{
    char err[256];
    struct vusb_target *t = nb_local_usb_open(usb_ex, "hostB", "local",
                                              "test local", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->speed, VUSB_SPEED_HIGH);
    dev_reset_counts();
    struct cx c;
    bulk_out(&c, 900, 100);
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), 0);
    PUMP_UNTIL(c.done, 3000);
    CU_ASSERT_EQUAL(c.done, 1);
    CU_ASSERT_EQUAL(c.x.status, 0);
    CU_ASSERT_EQUAL(c.x.actual, 100);
    CU_ASSERT_EQUAL(dev.runs[900], 1);
    bulk_in(&c, 32);
    CU_ASSERT_EQUAL(t->ops->submit(t, &c.x), 0);
    PUMP_UNTIL(c.done, 3000);
    CU_ASSERT_EQUAL(c.buf[5], 16);
    changes = 0;
    t->changed = on_changed;
    dev_set_speed(VUSB_SPEED_NONE);
    CU_ASSERT_EQUAL(t->speed, VUSB_SPEED_NONE);
    CU_ASSERT_EQUAL(changes, 1);
    dev_set_speed(VUSB_SPEED_HIGH);
    /* Another guest is refused while this one holds the device. */
    struct vusb_target *t2 = nb_local_usb_open(usb_ex, "hostB",
                                               "11111111-2222-3333-4444-555555555555",
                                               "test local 2", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(t2); /* the first owner is no guest UUID */
    struct vusb_target *t3 = nb_local_usb_open(usb_ex, "hostB",
                                               "99999999-2222-3333-4444-555555555555",
                                               "test local 3", err, sizeof(err));
    CU_ASSERT_PTR_NULL(t3);
    CU_ASSERT(strstr(err, "in use by another guest") != NULL);
    if (t3)
        t3->ops->close(t3);
    if (t2)
        t2->ops->close(t2);
    t->ops->close(t);
}

/* ---- suite ---------------------------------------------------------------------- */

static int put(const char *name, const char *key, const char *v)
{
    char path[256];
    snprintf(path, sizeof(path), "/local/domain/0/netbus/exports/%s/%s", name,
             key);
    return xenif_xs_write(ts, 0, path, v, strlen(v));
}

static char *get(const char *name, const char *key)
{
    char path[256];
    snprintf(path, sizeof(path), "/local/domain/0/netbus/exports/%s/%s", name,
             key);
    return xenif_xs_read(ts, 0, path, NULL);
}

static bool is(const char *name, const char *key, const char *want)
{
    char *s = get(name, key);
    bool eq = s && strcmp(s, want) == 0;
    free(s);
    return eq;
}

static void test_registry(void)
{
    CU_ASSERT(is("dongle", "state", "ready"));
    CU_ASSERT(is("dongle", "speed", "high"));
    dev_set_speed(VUSB_SPEED_NONE);
    CU_ASSERT(is("dongle", "speed", "none"));
    dev_set_speed(VUSB_SPEED_HIGH);
    /* A device that is not there: the export says why. */
    CU_ASSERT_EQUAL(put("absent", "params", "9-9") | put("absent", "kind", "usb") |
                    put("absent", "state", "requested"), 0);
    PUMP_UNTIL(is("absent", "state", "error"), 3000);
    CU_ASSERT(is("absent", "state", "error"));
    char *e = get("absent", "error");
    CU_ASSERT(e && strstr(e, "no USB device 9-9"));
    free(e);
}

static int cleanup(void);

static int init_failed(const char *what, const char *err)
{
    fprintf(stderr, "channel_usb: %s%s%s\n", what, err[0] ? ": " : "", err);
    cleanup();
    return -1;
}

static int init(void)
{
    char err[512] = "";
    if (sim_host_start(&host, "chusb") < 0)
        return init_failed("xensim host", "");
    struct xenif_config cfg0 = sim_config(&host, 0);
    loop = evloop_new();
    dev.finish.cb = finish_later;
    ts = loop ? xenif_xs_open(&cfg0, err, sizeof(err)) : NULL;
    reg = ts ? nb_exports_new(loop, &cfg0, "hostB", err, sizeof(err)) : NULL;
    if (!reg)
        return init_failed("export registry", err);
    nb_exports_set_usb_opener(reg, dev_open);
    char img[600];
    snprintf(img, sizeof(img), "%s/disk.img", host.dir);
    int fd = open(img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
        return init_failed("disk image", strerror(errno));
    close(fd);
    if (put("dongle", "params", "1-1") < 0 || put("dongle", "kind", "usb") < 0 ||
        put("dongle", "state", "requested") < 0 ||
        put("disk", "params", img) < 0 || put("disk", "kind", "vbd") < 0 ||
        put("disk", "state", "requested") < 0)
        return init_failed("writing the export requests", strerror(errno));
    PUMP_UNTIL(is("dongle", "state", "ready") && is("disk", "state", "ready"),
               3000);
    usb_ex = nb_exports_find(reg, "dongle");
    if (!usb_ex)
        return init_failed("the usb export did not become ready", "");
    const char *what = test_link_start(&chan, loop, reg, 500, err, sizeof(err));
    if (what)
        return init_failed(what, err);
    return 0;
}

static int cleanup(void)
{
    test_link_stop(&chan);
    nb_exports_free(reg);
    if (ts)
        xenif_xs_close(ts);
    for (int i = 0; loop && i < 5; i++)
        evloop_run_once(loop, 0);
    evloop_free(loop);
    return sim_host_stop(&host) == 0 ? 0 : -1;
}

static CU_TestInfo channel_usb_tests[] = {
    { "usb export in the registry; a missing device", test_registry },
    { "control, bulk and isochronous transfers", test_transfers },
    { "replies lost with the connection: each URB ran once", test_replies_lost },
    { "requests lost, URBs at the device across a reconnect: once each",
      test_requests_lost },
    { "unlink, also across a reconnect", test_unlink },
    { "LBE back after the export gave its session up: nothing runs twice",
      test_session_lost },
    { "device unplugged and back reaches the LBE", test_unplug },
    { "a missing export and a disk are refused", test_refusals },
    { "handover: the migrated guest's new session waits for the old URBs",
      test_handover },
    { "export side: resend, acknowledgement, window", test_export_rules },
    { "in-process short-circuit", test_local },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(channel_usb, init, cleanup, channel_usb_tests)
