/* usbdev-check: drives the netbus test USB devices through plain libusb-1.0
 * the way netbusd does: asynchronous transfers, libusb's pollfds in our own
 * poll() loop, hotplug callbacks. Run it under build/usbdev --bulk --hid
 * --iso --control PATH. Prints "ok   ..." / "FAIL ..." lines; exits 1 on any
 * failure. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libusb.h>
#include <linux/usbdevice_fs.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define VENDOR 0x1209
#define BULK_PRODUCT 0x4e42
#define HID_PRODUCT 0x4e48
#define ISO_PRODUCT 0x4e49
#define LOOPS 1000
#define DEPTH 4
#define MAX_XFER 65536
#define TIMEOUT_MS 5000

static libusb_context *ctx;
static int passed, failed;
static unsigned polls; /* poll() calls made by run_events */

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;

    printf(ok ? "ok   " : "FAIL ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    ok ? passed++ : failed++;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One turn of an event loop built on libusb's pollfds: poll them (bounded by
 * libusb's next timeout and by max_ms), then let libusb handle what is
 * ready without blocking. */
static void run_events(int max_ms)
{
    const struct libusb_pollfd **fds = libusb_get_pollfds(ctx);
    struct pollfd pfd[16];
    struct timeval tv, zero = { 0, 0 };
    int n = 0, timeout = max_ms;

    for (; fds && fds[n] && n < 16; n++)
        pfd[n] = (struct pollfd){ .fd = fds[n]->fd, .events = fds[n]->events };
    libusb_free_pollfds(fds);
    if (libusb_get_next_timeout(ctx, &tv) == 1) {
        int lt = (int)(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
        if (lt < timeout)
            timeout = lt;
    }
    polls++;
    poll(pfd, (nfds_t)n, timeout);
    libusb_handle_events_timeout_completed(ctx, &zero, NULL);
}

/* Runs the loop until *flag is set or timeout_ms passed; returns *flag. */
static bool wait_flag(const volatile int *flag, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    while (!*flag && now_ms() < end)
        run_events((int)(end - now_ms()));
    return *flag;
}

/* --- the control socket (usbdev --control) ------------------------------- */

static bool tell(const char *line, char *answer, size_t size)
{
    const char *path = getenv("USBDEV_CONTROL");
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    size_t got = 0;
    int fd;

    if (!path || strlen(path) >= sizeof(addr.sun_path))
        return false;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        dprintf(fd, "%s\n", line) < 0) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    while (got < size - 1) {
        ssize_t n = read(fd, answer + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (memchr(answer, '\n', got))
            break;
    }
    close(fd);
    answer[got] = '\0';
    answer[strcspn(answer, "\n")] = '\0';
    return got > 0 && strncmp(answer, "error", 5) != 0;
}

/* --- transfers --------------------------------------------------------------- */

struct xfer_state {
    volatile int done;
    enum libusb_transfer_status status;
    int actual;
};

static void LIBUSB_CALL xfer_done(struct libusb_transfer *t)
{
    struct xfer_state *s = t->user_data;

    s->status = t->status;
    s->actual = t->actual_length;
    s->done = 1;
}

/* An asynchronous control transfer, waited for in our loop. Returns the
 * data length or -1 (stall or error). */
static int control(libusb_device_handle *h, uint8_t rt, uint8_t req, uint16_t value,
                   uint16_t index, uint8_t *data, uint16_t len)
{
    struct libusb_transfer *t = libusb_alloc_transfer(0);
    uint8_t buf[LIBUSB_CONTROL_SETUP_SIZE + 256];
    struct xfer_state s = { 0 };
    int r = -1;

    if (len > 256 || !t)
        return -1;
    libusb_fill_control_setup(buf, rt, req, value, index, len);
    if (!(rt & 0x80) && len)
        memcpy(buf + LIBUSB_CONTROL_SETUP_SIZE, data, len);
    libusb_fill_control_transfer(t, h, buf, xfer_done, &s, TIMEOUT_MS);
    if (libusb_submit_transfer(t) == 0 && wait_flag(&s.done, TIMEOUT_MS + 1000) &&
        s.status == LIBUSB_TRANSFER_COMPLETED) {
        r = s.actual;
        if (rt & 0x80)
            memcpy(data, buf + LIBUSB_CONTROL_SETUP_SIZE, (size_t)r);
    }
    libusb_free_transfer(t);
    return r;
}

static bool get_counters(libusb_device_handle *h, uint64_t c[4])
{
    uint8_t b[32];

    if (control(h, 0xc0, 0x01, 0, 0, b, sizeof(b)) != 32)
        return false;
    for (int i = 0; i < 4; i++) {
        c[i] = 0;
        for (int j = 7; j >= 0; j--)
            c[i] = c[i] << 8 | b[8 * i + j];
    }
    return true;
}

static bool counters_are(libusb_device_handle *h, uint64_t oc, uint64_t ob, uint64_t ic,
                         uint64_t ib, const char *what)
{
    uint64_t c[4];
    bool ok = get_counters(h, c) && c[0] == oc && c[1] == ob && c[2] == ic && c[3] == ib;

    check(ok, "%s: GET_COUNTERS = %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, what,
          oc, ob, ic, ib);
    return ok;
}

/* The device's own counters read through the control socket agree. */
static void stats_are(uint64_t oc, uint64_t ob, uint64_t ic, uint64_t ib, const char *what)
{
    char answer[128], want[128];

    snprintf(want, sizeof(want), "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, oc, ob, ic, ib);
    check(tell("stats nb-bulk", answer, sizeof(answer)) && !strcmp(answer, want),
          "%s: control socket stats [%s]", what, want);
}

static struct libusb_transfer *bulk(libusb_device_handle *h, uint8_t ep, uint8_t *buf,
                                    int len, struct xfer_state *s)
{
    struct libusb_transfer *t = libusb_alloc_transfer(0);

    libusb_fill_bulk_transfer(t, h, ep, buf, len, xfer_done, s, 0);
    return t;
}

/* --- devices ------------------------------------------------------------ */

static libusb_device *find(uint16_t product)
{
    libusb_device **list, *found = NULL;
    ssize_t n = libusb_get_device_list(ctx, &list);

    for (ssize_t i = 0; i < n && !found; i++) {
        struct libusb_device_descriptor dd;
        if (libusb_get_device_descriptor(list[i], &dd) == 0 && dd.idVendor == VENDOR &&
            dd.idProduct == product)
            found = libusb_ref_device(list[i]);
    }
    if (n >= 0)
        libusb_free_device_list(list, 1);
    return found;
}

static void check_strings(libusb_device_handle *h, const char *product, const char *serial)
{
    struct libusb_device_descriptor dd;
    char s[3][64] = { "", "", "" };

    libusb_get_device_descriptor(libusb_get_device(h), &dd);
    libusb_get_string_descriptor_ascii(h, dd.iManufacturer, (unsigned char *)s[0], 64);
    libusb_get_string_descriptor_ascii(h, dd.iProduct, (unsigned char *)s[1], 64);
    libusb_get_string_descriptor_ascii(h, dd.iSerialNumber, (unsigned char *)s[2], 64);
    check(!strcmp(s[0], "netbus") && !strcmp(s[1], product) && !strcmp(s[2], serial),
          "%s: strings [%s] [%s] [%s]", product, s[0], s[1], s[2]);
}

/* GET_DESCRIPTOR through endpoint 0 matches what libusb read from sysfs. */
static void check_get_descriptor(libusb_device_handle *h, const char *name, int config_len)
{
    struct libusb_device_descriptor dd;
    uint8_t buf[256];
    int n;

    libusb_get_device_descriptor(libusb_get_device(h), &dd);
    n = control(h, 0x80, LIBUSB_REQUEST_GET_DESCRIPTOR, LIBUSB_DT_DEVICE << 8, 0, buf, 18);
    check(n == 18 && buf[0] == 18 && buf[1] == 1 && (buf[8] | buf[9] << 8) == dd.idVendor &&
          (buf[10] | buf[11] << 8) == dd.idProduct && buf[7] == dd.bMaxPacketSize0,
          "%s: GET_DESCRIPTOR(device) over ep0 (%d bytes)", name, n);
    n = control(h, 0x80, LIBUSB_REQUEST_GET_DESCRIPTOR, LIBUSB_DT_CONFIG << 8, 0, buf, 255);
    check(n == config_len && buf[1] == 2 && (buf[2] | buf[3] << 8) == config_len,
          "%s: GET_DESCRIPTOR(configuration) %d bytes", name, n);
    n = control(h, 0x80, LIBUSB_REQUEST_GET_DESCRIPTOR, 0x0600, 0, buf, 10);
    check(n < 0, "%s: an unsupported request stalls", name);
}

/* --- bulk loopback ----------------------------------------------------------- */

static int size_of(int i)
{
    static const int edges[] = { 1, 2, 63, 64, 65, 511, 512, 513, 1023, 1024, 4096,
                                 16384, 65535, 65536 };
    int n = (int)(sizeof(edges) / sizeof(edges[0]));

    if (i < n)
        return edges[i];
    /* mostly small, some large: a cheap deterministic spread */
    unsigned x = (unsigned)i * 2654435761u;
    return (x >> 8) % 8 == 0 ? 1 + (int)((x >> 12) % MAX_XFER) : 1 + (int)((x >> 12) % 2048);
}

static void fill(uint8_t *buf, int len, int seed)
{
    for (int i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

struct slot {
    struct libusb_transfer *in, *out;
    struct xfer_state si, so;
    uint8_t *inbuf, *outbuf;
    int index, len;
    bool busy;
};

static uint64_t loopback(libusb_device_handle *h)
{
    struct slot slots[DEPTH];
    int next = 0, finished = 0, bad = 0;
    uint64_t bytes = 0;
    int64_t end = now_ms() + 60000;

    for (int i = 0; i < DEPTH; i++) {
        slots[i] = (struct slot){ .inbuf = malloc(MAX_XFER), .outbuf = malloc(MAX_XFER) };
        slots[i].in = bulk(h, 0x81, slots[i].inbuf, 0, &slots[i].si);
        slots[i].out = bulk(h, 0x01, slots[i].outbuf, 0, &slots[i].so);
    }
    while (finished < LOOPS && now_ms() < end) {
        for (int i = 0; i < DEPTH && next < LOOPS; i++) {
            struct slot *s = &slots[i];
            if (s->busy)
                continue;
            s->index = next++;
            s->len = size_of(s->index);
            fill(s->outbuf, s->len, s->index);
            memset(s->inbuf, 0, (size_t)s->len);
            s->si = s->so = (struct xfer_state){ 0 };
            s->in->length = s->out->length = s->len;
            /* the IN first: it waits in the device until the OUT's data */
            if (libusb_submit_transfer(s->in) || libusb_submit_transfer(s->out)) {
                bad++;
                break;
            }
            s->busy = true;
        }
        run_events(1000);
        for (int i = 0; i < DEPTH; i++) {
            struct slot *s = &slots[i];
            if (!s->busy || !s->si.done || !s->so.done)
                continue;
            if (s->si.status || s->so.status || s->si.actual != s->len ||
                s->so.actual != s->len || memcmp(s->inbuf, s->outbuf, (size_t)s->len)) {
                if (bad++ < 3)
                    printf("     transfer %d (%d bytes): in %d/%d out %d/%d\n", s->index,
                           s->len, s->si.status, s->si.actual, s->so.status, s->so.actual);
            }
            bytes += (uint64_t)s->len;
            s->busy = false;
            finished++;
        }
    }
    check(finished == LOOPS && bad == 0,
          "bulk: %d OUT/IN loopback transfers of 1 B..64 KiB, data verified (%d bad, %" PRIu64
          " bytes)", finished, bad, bytes);
    for (int i = 0; i < DEPTH; i++) {
        libusb_free_transfer(slots[i].in);
        libusb_free_transfer(slots[i].out);
        free(slots[i].inbuf);
        free(slots[i].outbuf);
    }
    return bytes;
}

/* An OUT that does not fit the 1 MiB FIFO waits until an IN makes room. */
static void backpressure(libusb_device_handle *h)
{
    const int big = 1 << 20, small = 1000;
    uint8_t *out = malloc((size_t)big), *in = malloc((size_t)big * 2);
    struct xfer_state s1 = { 0 }, s2 = { 0 }, s3 = { 0 }, s4 = { 0 };
    struct libusb_transfer *t1 = bulk(h, 0x01, out, big, &s1);
    struct libusb_transfer *t2 = bulk(h, 0x01, out, small, &s2);
    struct libusb_transfer *t3 = bulk(h, 0x81, in, 4096, &s3);
    struct libusb_transfer *t4 = bulk(h, 0x81, in, big * 2, &s4);

    fill(out, big, 7);
    libusb_submit_transfer(t1);
    check(wait_flag(&s1.done, TIMEOUT_MS) && s1.actual == big, "bulk: a 1 MiB OUT fills the FIFO");
    libusb_submit_transfer(t2);
    wait_flag(&s2.done, 200);
    check(!s2.done, "bulk: an OUT that does not fit stays pending");
    libusb_submit_transfer(t3);
    check(wait_flag(&s3.done, TIMEOUT_MS) && s3.actual == 4096 && !memcmp(in, out, 4096),
          "bulk: a 4 KiB IN takes the FIFO's front");
    check(wait_flag(&s2.done, TIMEOUT_MS) && s2.actual == small,
          "bulk: the pending OUT completes once there is room");
    libusb_submit_transfer(t4);
    wait_flag(&s4.done, TIMEOUT_MS);
    check(s4.done && s4.actual == big - 4096 + small &&
          !memcmp(in, out + 4096, (size_t)big - 4096) && !memcmp(in + big - 4096, out, small),
          "bulk: a 2 MiB IN returns the %d bytes left, in order", s4.actual);
    libusb_free_transfer(t1);
    libusb_free_transfer(t2);
    libusb_free_transfer(t3);
    libusb_free_transfer(t4);
    free(out);
    free(in);
}

/* A pending IN leaves the loop asleep, and a discarded one ends CANCELLED
 * without having run. */
static void discard(libusb_device_handle *h)
{
    uint8_t buf[512];
    struct xfer_state s = { 0 };
    struct libusb_transfer *t = bulk(h, 0x81, buf, sizeof(buf), &s);
    int64_t start;
    unsigned before;

    libusb_submit_transfer(t);
    before = polls;
    start = now_ms();
    while (now_ms() - start < 300 && !s.done)
        run_events(100);
    check(!s.done && polls - before <= 6,
          "bulk: an IN on the empty FIFO stays pending, poll() sleeps (%u wake-ups in 300 ms)",
          polls - before);
    libusb_cancel_transfer(t);
    wait_flag(&s.done, TIMEOUT_MS);
    check(s.done && s.status == LIBUSB_TRANSFER_CANCELLED,
          "bulk: the discarded IN is reaped as cancelled (status %d)", s.status);
    libusb_free_transfer(t);
}

static libusb_device_handle *test_bulk(void)
{
    libusb_device *dev = find(BULK_PRODUCT);
    libusb_device_handle *h = NULL;
    struct libusb_config_descriptor *cfg = NULL;
    uint64_t bytes;

    check(dev != NULL, "nb-bulk: found as %04x:%04x", VENDOR, BULK_PRODUCT);
    if (!dev)
        return NULL;
    check(libusb_get_device_speed(dev) == LIBUSB_SPEED_HIGH, "nb-bulk: high speed");
    if (libusb_get_active_config_descriptor(dev, &cfg) == 0) {
        const struct libusb_interface_descriptor *id = &cfg->interface[0].altsetting[0];
        check(cfg->bConfigurationValue == 1 && id->bInterfaceClass == 0xff &&
              id->bNumEndpoints == 2 && id->endpoint[0].bEndpointAddress == 0x01 &&
              id->endpoint[1].bEndpointAddress == 0x81 &&
              id->endpoint[1].wMaxPacketSize == 512 &&
              (id->endpoint[1].bmAttributes & 3) == LIBUSB_TRANSFER_TYPE_BULK,
              "nb-bulk: configuration 1, vendor interface, bulk 0x01/0x81 of 512");
        libusb_free_config_descriptor(cfg);
    } else {
        check(false, "nb-bulk: active configuration descriptor");
    }
    check(libusb_open(dev, &h) == 0, "nb-bulk: open");
    libusb_unref_device(dev);
    if (!h)
        return NULL;
    check_strings(h, "netbus bulk loopback", "NB-BULK-1");
    check(libusb_kernel_driver_active(h, 0) == 0, "nb-bulk: no kernel driver bound");
    check(libusb_claim_interface(h, 0) == 0, "nb-bulk: claim interface 0");
    check(libusb_set_interface_alt_setting(h, 0, 0) == 0, "nb-bulk: SET_INTERFACE alt 0");
    check(libusb_clear_halt(h, 0x81) == 0, "nb-bulk: CLEAR_HALT 0x81");
    check_get_descriptor(h, "nb-bulk", 32);
    check(control(h, 0x40, 0x02, 0, 0, NULL, 0) == 0, "nb-bulk: vendor RESET");
    counters_are(h, 0, 0, 0, 0, "nb-bulk after RESET");
    bytes = loopback(h);
    counters_are(h, LOOPS, bytes, LOOPS, bytes, "nb-bulk after the loopback");
    stats_are(LOOPS, bytes, LOOPS, bytes, "nb-bulk after the loopback");
    discard(h);
    counters_are(h, LOOPS, bytes, LOOPS, bytes, "nb-bulk: the discarded IN did not count");
    backpressure(h);
    return h;
}

/* --- the node's ioctls that libusb does not use ---------------------------- */

static void test_raw_ioctls(void)
{
    libusb_device *dev = find(BULK_PRODUCT);
    char path[64];
    uint8_t out[100], in[200], desc[18];
    struct usbdevfs_connectinfo ci;
    struct usbdevfs_ctrltransfer ct = { .bRequestType = 0x80, .bRequest = 6,
                                        .wValue = 0x0100, .wLength = 18, .timeout = 1000,
                                        .data = desc };
    struct usbdevfs_bulktransfer bo = { .ep = 0x01, .len = sizeof(out), .timeout = 1000,
                                        .data = out };
    struct usbdevfs_bulktransfer bi = { .ep = 0x81, .len = sizeof(in), .timeout = 1000,
                                        .data = in };
    struct usbdevfs_urb ui = { .type = USBDEVFS_URB_TYPE_BULK, .endpoint = 0x81,
                               .buffer = in, .buffer_length = sizeof(in) };
    struct usbdevfs_urb uo = { .type = USBDEVFS_URB_TYPE_BULK, .endpoint = 0x01,
                               .buffer = out, .buffer_length = sizeof(out) };
    struct usbdevfs_urb *reaped[2] = { NULL, NULL };
    int fd, r, e;

    if (!dev)
        return;
    snprintf(path, sizeof(path), "/dev/bus/usb/%03d/%03d", libusb_get_bus_number(dev),
             libusb_get_device_address(dev));
    fd = open(path, O_RDWR | O_CLOEXEC);
    check(fd >= 0, "raw: open %s", path);
    if (fd < 0) {
        libusb_unref_device(dev);
        return;
    }
    check(ioctl(fd, USBDEVFS_GET_SPEED) == LIBUSB_SPEED_HIGH, "raw: GET_SPEED high");
    check(ioctl(fd, USBDEVFS_CONNECTINFO, &ci) == 0 &&
          ci.devnum == libusb_get_device_address(dev) && !ci.slow, "raw: CONNECTINFO");
    check(ioctl(fd, USBDEVFS_CONTROL, &ct) == 18 && desc[0] == 18 && desc[1] == 1,
          "raw: sync CONTROL GET_DESCRIPTOR");
    fill(out, sizeof(out), 5);
    check(ioctl(fd, USBDEVFS_BULK, &bo) == (int)sizeof(out), "raw: sync BULK OUT");
    check(ioctl(fd, USBDEVFS_BULK, &bi) == (int)sizeof(out) && !memcmp(in, out, sizeof(out)),
          "raw: sync BULK IN returns what is there");
    bi.timeout = 100;
    r = ioctl(fd, USBDEVFS_BULK, &bi);
    e = errno;
    check(r == -1 && e == ETIMEDOUT, "raw: sync BULK IN on the empty FIFO times out");
    ioctl(fd, USBDEVFS_SUBMITURB, &ui);
    ioctl(fd, USBDEVFS_SUBMITURB, &uo);
    r = ioctl(fd, USBDEVFS_REAPURB, &reaped[0]);
    r |= ioctl(fd, USBDEVFS_REAPURB, &reaped[1]);
    check(r == 0 && reaped[0] == &uo && reaped[1] == &ui && ui.status == 0 &&
          ui.actual_length == (int)sizeof(out) && uo.actual_length == (int)sizeof(out),
          "raw: blocking REAPURB returns the client's URBs in completion order");
    r = ioctl(fd, USBDEVFS_REAPURBNDELAY, &reaped[0]);
    e = errno;
    check(r == -1 && e == EAGAIN, "raw: REAPURBNDELAY with nothing done: EAGAIN");
    close(fd);
    libusb_unref_device(dev);
}

/* --- HID --------------------------------------------------------------------- */

static void test_hid(void)
{
    libusb_device *dev = find(HID_PRODUCT);
    libusb_device_handle *h = NULL;
    uint8_t report[8], desc[64];
    uint32_t expect = 1;
    int bad = 0, n;
    int64_t start;

    check(dev != NULL, "nb-hid: found as %04x:%04x", VENDOR, HID_PRODUCT);
    if (!dev)
        return;
    check(libusb_get_device_speed(dev) == LIBUSB_SPEED_FULL, "nb-hid: full speed");
    check(libusb_open(dev, &h) == 0, "nb-hid: open");
    libusb_unref_device(dev);
    if (!h)
        return;
    check_strings(h, "netbus hid", "NB-HID-1");
    check(libusb_kernel_driver_active(h, 0) == 1, "nb-hid: usbhid bound at plug");
    check(libusb_claim_interface(h, 0) == LIBUSB_ERROR_BUSY,
          "nb-hid: claim refused while usbhid holds it");
    check(libusb_detach_kernel_driver(h, 0) == 0 && libusb_kernel_driver_active(h, 0) == 0,
          "nb-hid: detach kernel driver");
    check(libusb_claim_interface(h, 0) == 0, "nb-hid: claim interface 0");
    check_get_descriptor(h, "nb-hid", 34);
    n = control(h, 0x81, LIBUSB_REQUEST_GET_DESCRIPTOR, 0x2200, 0, desc, sizeof(desc));
    check(n == 21 && desc[0] == 0x06, "nb-hid: HID report descriptor (%d bytes)", n);

    start = now_ms();
    for (int i = 0; i < 50; i++) {
        struct xfer_state s = { 0 };
        struct libusb_transfer *t = libusb_alloc_transfer(0);
        static const uint8_t tail[4] = { 0xa5, 0x5a, 0xa5, 0x5a };

        libusb_fill_interrupt_transfer(t, h, 0x81, report, sizeof(report), xfer_done, &s, 0);
        if (libusb_submit_transfer(t) || !wait_flag(&s.done, TIMEOUT_MS) || s.status ||
            s.actual != 8 ||
            (uint32_t)(report[0] | report[1] << 8 | report[2] << 16 | (uint32_t)report[3] << 24) != expect ||
            memcmp(report + 4, tail, 4))
            bad++;
        expect++;
        libusb_free_transfer(t);
    }
    int64_t took = now_ms() - start;
    check(bad == 0, "nb-hid: 50 interrupt reports with sequence numbers 1..50");
    check(took >= 450, "nb-hid: paced at one report per 10 ms (%" PRId64 " ms for 50)", took);
    n = control(h, 0xa1, 0x01, 0x0100, 0, report, 8);
    check(n == 8 && report[0] == 50 && report[1] == 0,
          "nb-hid: GET_REPORT returns the last sequence number (%d)", report[0]);

    /* Held, the device has nothing to report: an IN waits until release. */
    char answer[64];
    struct xfer_state held = { 0 };
    struct libusb_transfer *t = libusb_alloc_transfer(0);
    libusb_fill_interrupt_transfer(t, h, 0x81, report, sizeof(report), xfer_done, &held, 0);
    check(tell("hold nb-hid", answer, sizeof(answer)) && libusb_submit_transfer(t) == 0 &&
          !wait_flag(&held.done, 200), "nb-hid: held, an interrupt IN waits (200 ms)");
    check(tell("release nb-hid", answer, sizeof(answer)) && wait_flag(&held.done, TIMEOUT_MS) &&
          held.status == 0 && held.actual == 8 && report[0] == 51,
          "nb-hid: released, it gets report 51");
    libusb_free_transfer(t);
    check(!tell("hold nb-bulk", answer, sizeof(answer)) && strstr(answer, "error"),
          "control: hold refused for nb-bulk [%s]", answer);
    check(libusb_release_interface(h, 0) == 0 && libusb_attach_kernel_driver(h, 0) == 0 &&
          libusb_kernel_driver_active(h, 0) == 1, "nb-hid: release and re-attach usbhid");
    libusb_close(h);
}

/* --- isochronous --------------------------------------------------------------- */

#define ISO_PACKETS 8
#define ISO_URBS 4
/* Short, empty and full packets: each lies at the sum of the lengths
 * before it. */
static const int iso_lengths[ISO_PACKETS] = { 1024, 512, 3, 0, 1000, 64, 1024, 7 };

static struct libusb_transfer *iso(libusb_device_handle *h, uint8_t ep, uint8_t *buf,
                                   int packets, const int *lengths, struct xfer_state *s)
{
    struct libusb_transfer *t = libusb_alloc_transfer(packets);
    int total = 0;

    for (int i = 0; i < packets; i++)
        total += lengths[i % ISO_PACKETS];
    libusb_fill_iso_transfer(t, h, ep, buf, total, packets, xfer_done, s, 0);
    for (int i = 0; i < packets; i++)
        t->iso_packet_desc[i].length = (unsigned)lengths[i % ISO_PACKETS];
    return t;
}

/* An IN packet as devices.md says: the sequence number, then (seq + i). */
static bool iso_packet_ok(const uint8_t *p, unsigned len, uint32_t seq)
{
    for (unsigned i = 0; i < len; i++)
        if (p[i] != (i < 4 ? (uint8_t)(seq >> (8 * i)) : (uint8_t)(seq + i)))
            return false;
    return true;
}

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static bool get_iso_counters(libusb_device_handle *h, uint64_t c[5])
{
    uint8_t b[40];

    if (control(h, 0xc0, 0x01, 0, 0, b, sizeof(b)) != 40)
        return false;
    for (int i = 0; i < 5; i++) {
        c[i] = 0;
        for (int j = 7; j >= 0; j--)
            c[i] = c[i] << 8 | b[8 * i + j];
    }
    return true;
}

/* ISO_URBS IN transfers queued at once: every packet complete, full
 * length, in sequence from *seq; paced at about 1 ms a packet. */
static void iso_in_stream(libusb_device_handle *h, uint32_t *seq, uint64_t *bytes)
{
    static uint8_t bufs[ISO_URBS][ISO_PACKETS * 1024];
    struct xfer_state s[ISO_URBS] = { 0 };
    struct libusb_transfer *t[ISO_URBS];
    int submitted = 0, bad_status = 0, bad_data = 0;
    int64_t start = now_ms();

    for (int u = 0; u < ISO_URBS; u++) {
        memset(bufs[u], 0xee, sizeof(bufs[u]));
        t[u] = iso(h, 0x82, bufs[u], ISO_PACKETS, iso_lengths, &s[u]);
        submitted += libusb_submit_transfer(t[u]) == 0;
    }
    check(submitted == ISO_URBS, "nb-iso: %d iso IN transfers of %d packets queued",
          ISO_URBS, ISO_PACKETS);
    for (int u = 0; u < ISO_URBS; u++) {
        bool done = u < submitted && wait_flag(&s[u].done, TIMEOUT_MS);
        if (!done || s[u].status != LIBUSB_TRANSFER_COMPLETED)
            bad_status++;
        for (int i = 0; done && i < ISO_PACKETS; i++) {
            struct libusb_iso_packet_descriptor *p = &t[u]->iso_packet_desc[i];
            if (p->status != LIBUSB_TRANSFER_COMPLETED || p->actual_length != p->length)
                bad_status++;
            else if (!iso_packet_ok(libusb_get_iso_packet_buffer(t[u], (unsigned)i),
                                    p->actual_length, *seq))
                bad_data++;
            *bytes += p->actual_length;
            ++*seq;
        }
    }
    int64_t took = now_ms() - start;
    check(bad_status == 0, "nb-iso: every IN packet completed with its full length");
    check(bad_data == 0, "nb-iso: IN packets carry sequence numbers %u.. and their pattern",
          *seq - ISO_URBS * ISO_PACKETS);
    check(took >= ISO_URBS * ISO_PACKETS - 2,
          "nb-iso: paced at about 1 ms a packet (%" PRId64 " ms for %d)", took,
          ISO_URBS * ISO_PACKETS);
    for (int u = 0; u < ISO_URBS; u++)
        libusb_free_transfer(t[u]);
}

static void iso_out_stream(libusb_device_handle *h, uint64_t *packets, uint64_t *bytes,
                           uint64_t *sum)
{
    static uint8_t buf[ISO_PACKETS * 1024];
    int bad = 0;

    for (int u = 0; u < 3; u++) {
        struct xfer_state s = { 0 };
        struct libusb_transfer *t;
        int off = 0;
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (uint8_t)(i * 7 + u);
        t = iso(h, 0x02, buf, ISO_PACKETS, iso_lengths, &s);
        if (libusb_submit_transfer(t) || !wait_flag(&s.done, TIMEOUT_MS) ||
            s.status != LIBUSB_TRANSFER_COMPLETED)
            bad++;
        for (int i = 0; i < ISO_PACKETS; i++) {
            struct libusb_iso_packet_descriptor *p = &t->iso_packet_desc[i];
            if (p->status != LIBUSB_TRANSFER_COMPLETED || p->actual_length != p->length)
                bad++;
            ++*packets;
            *bytes += p->length;
            *sum += fnv1a(buf + off, p->length);
            off += (int)p->length;
        }
        libusb_free_transfer(t);
    }
    check(bad == 0, "nb-iso: 3 iso OUT transfers of %d packets, every packet sent whole",
          ISO_PACKETS);
}

static void test_iso(void)
{
    libusb_device *dev = find(ISO_PRODUCT);
    libusb_device_handle *h = NULL;
    static uint8_t buf[64 * 1024];
    uint64_t c[5], in_bytes = 0, out_packets = 0, out_bytes = 0, out_sum = 0;
    uint32_t seq = 0;
    struct xfer_state s = { 0 };
    struct libusb_transfer *t;
    static const int too_long[1] = { 1025 };
    char answer[160], want[160];

    check(dev != NULL, "nb-iso: found as %04x:%04x", VENDOR, ISO_PRODUCT);
    if (!dev)
        return;
    check(libusb_get_device_speed(dev) == LIBUSB_SPEED_HIGH, "nb-iso: high speed");
    check(libusb_get_max_iso_packet_size(dev, 0x82) == 1024,
          "nb-iso: EP 0x82 max iso packet 1024 (alternate setting 1)");
    check(libusb_open(dev, &h) == 0, "nb-iso: open");
    libusb_unref_device(dev);
    if (!h)
        return;
    check_strings(h, "netbus iso", "NB-ISO-1");
    check(libusb_claim_interface(h, 0) == 0, "nb-iso: claim interface 0");
    check_get_descriptor(h, "nb-iso", 41);

    t = iso(h, 0x82, buf, 1, iso_lengths, &s);
    check(libusb_submit_transfer(t) != 0, "nb-iso: iso IN refused in alternate setting 0");
    libusb_free_transfer(t);
    check(libusb_set_interface_alt_setting(h, 0, 2) != 0, "nb-iso: no alternate setting 2");
    check(libusb_set_interface_alt_setting(h, 0, 1) == 0, "nb-iso: SET_INTERFACE alt 1");

    iso_in_stream(h, &seq, &in_bytes);
    iso_out_stream(h, &out_packets, &out_bytes, &out_sum);
    iso_in_stream(h, &seq, &in_bytes);

    /* a discarded IN delivers nothing: the sequence carries on after it */
    memset(&s, 0, sizeof(s));
    t = iso(h, 0x82, buf, 64, iso_lengths, &s);
    check(libusb_submit_transfer(t) == 0 && libusb_cancel_transfer(t) == 0 &&
          wait_flag(&s.done, TIMEOUT_MS) && s.status == LIBUSB_TRANSFER_CANCELLED,
          "nb-iso: a discarded iso IN ends cancelled");
    libusb_free_transfer(t);
    iso_in_stream(h, &seq, &in_bytes);

    t = iso(h, 0x02, buf, 1, too_long, &s);
    check(libusb_submit_transfer(t) != 0, "nb-iso: a 1025-byte packet is refused (EMSGSIZE)");
    libusb_free_transfer(t);

    check(get_iso_counters(h, c) && c[0] == out_packets && c[1] == out_bytes && c[2] == seq &&
          c[3] == in_bytes && c[4] == out_sum,
          "nb-iso: GET_COUNTERS = %" PRIu64 " %" PRIu64 " %u %" PRIu64 " and the OUT checksum",
          out_packets, out_bytes, seq, in_bytes);
    snprintf(want, sizeof(want), "%" PRIu64 " %" PRIu64 " %u %" PRIu64 " %" PRIu64, out_packets,
             out_bytes, seq, in_bytes, out_sum);
    check(tell("stats nb-iso", answer, sizeof(answer)) && !strcmp(answer, want),
          "nb-iso: control socket stats [%s]", want);

    /* leaving the setting ends what is in flight on its endpoints */
    memset(&s, 0, sizeof(s));
    t = iso(h, 0x82, buf, 64, iso_lengths, &s);
    bool ended = libusb_submit_transfer(t) == 0 && libusb_set_interface_alt_setting(h, 0, 0) == 0 &&
                 wait_flag(&s.done, TIMEOUT_MS);
    check(ended && s.status == LIBUSB_TRANSFER_NO_DEVICE,
          "nb-iso: SET_INTERFACE alt 0 ends the iso IN in flight (-ESHUTDOWN, status %d)",
          s.status);
    libusb_free_transfer(t);
    check(get_iso_counters(h, c) && c[2] == seq, "nb-iso: and it delivered no packet");
    libusb_release_interface(h, 0);
    libusb_close(h);
}

/* --- hotplug ----------------------------------------------------------------- */

static volatile int arrived, left;
static libusb_device *arrived_dev;

static int LIBUSB_CALL on_hotplug(libusb_context *c, libusb_device *dev,
                                  libusb_hotplug_event event, void *data)
{
    (void)c;
    (void)data;
    if (event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED) {
        arrived_dev = libusb_ref_device(dev);
        arrived = 1;
    } else {
        left = 1;
    }
    return 0;
}

static void test_hotplug(libusb_device_handle *h)
{
    libusb_hotplug_callback_handle cb;
    uint8_t buf[64];
    struct xfer_state s = { 0 };
    struct libusb_transfer *t = bulk(h, 0x81, buf, sizeof(buf), &s);
    char answer[64];
    uint8_t old_addr = libusb_get_device_address(libusb_get_device(h));
    libusb_device_handle *h2 = NULL;

    check(libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG), "libusb has hotplug");
    libusb_hotplug_register_callback(ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED |
                                     LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT, 0, VENDOR,
                                     BULK_PRODUCT, LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug,
                                     NULL, &cb);
    libusb_submit_transfer(t);
    check(tell("unplug nb-bulk", answer, sizeof(answer)), "control: unplug nb-bulk [%s]", answer);
    check(wait_flag(&left, TIMEOUT_MS), "hotplug: LEFT callback for nb-bulk");
    wait_flag(&s.done, TIMEOUT_MS);
    check(s.done && s.status == LIBUSB_TRANSFER_NO_DEVICE,
          "hotplug: the pending IN ends with NO_DEVICE (status %d)", s.status);
    check(libusb_submit_transfer(t) == LIBUSB_ERROR_NO_DEVICE,
          "hotplug: a new transfer on the unplugged device fails with NO_DEVICE");
    libusb_free_transfer(t);
    libusb_close(h);

    check(tell("plug nb-bulk", answer, sizeof(answer)), "control: plug nb-bulk [%s]", answer);
    check(wait_flag(&arrived, TIMEOUT_MS), "hotplug: ARRIVED callback for nb-bulk");
    if (arrived_dev) {
        check(libusb_get_device_address(arrived_dev) != old_addr,
              "hotplug: replugged at a new address (%d, was %d)",
              libusb_get_device_address(arrived_dev), old_addr);
        check(libusb_open(arrived_dev, &h2) == 0 && libusb_claim_interface(h2, 0) == 0,
              "hotplug: open and claim the replugged device");
        libusb_unref_device(arrived_dev);
    }
    if (h2) {
        uint8_t out[100], in[100];
        struct xfer_state si = { 0 }, so = { 0 };
        struct libusb_transfer *ti = bulk(h2, 0x81, in, sizeof(in), &si);
        struct libusb_transfer *to = bulk(h2, 0x01, out, sizeof(out), &so);

        counters_are(h2, 0, 0, 0, 0, "hotplug: a replugged device starts afresh");
        fill(out, sizeof(out), 99);
        libusb_submit_transfer(ti);
        libusb_submit_transfer(to);
        check(wait_flag(&si.done, TIMEOUT_MS) && si.actual == 100 && !memcmp(in, out, 100),
              "hotplug: loopback on the replugged device");
        wait_flag(&so.done, TIMEOUT_MS);
        counters_are(h2, 1, 100, 1, 100, "hotplug: replugged");
        stats_are(1, 100, 1, 100, "hotplug: replugged");
        libusb_free_transfer(ti);
        libusb_free_transfer(to);
        libusb_release_interface(h2, 0);
        libusb_close(h2);
    }
    libusb_hotplug_deregister_callback(ctx, cb);
}

int main(void)
{
    libusb_device_handle *bulk_handle;

    if (libusb_init(&ctx) != 0) {
        printf("FAIL libusb_init\n");
        return 1;
    }
    test_raw_ioctls();
    bulk_handle = test_bulk();
    test_hid();
    test_iso();
    if (bulk_handle && getenv("USBDEV_CONTROL"))
        test_hotplug(bulk_handle);
    else if (bulk_handle)
        libusb_close(bulk_handle);
    libusb_exit(ctx);
    printf("usbdev-check: %d checks passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
