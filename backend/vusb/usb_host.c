/* usb_host: one libusb context driven by the event loop (see usb_host.h). */
#include "usb_host.h"

#include "evloop.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

struct hotplug_event {
    libusb_device *dev;
    bool arrived;
    struct hotplug_event *next;
};

struct usb_host {
    struct evloop *loop;
    libusb_context *ctx;
    unsigned refs;
    bool hotplug;
    libusb_hotplug_callback_handle hotplug_handle;
    struct usb_host_listener *listeners;
    /* Hotplug events are queued from inside libusb and handed to listeners
     * after the current batch, so a listener may call libusb freely. */
    struct hotplug_event *events, **events_tail;
    struct evloop_deferred dispatch;
};

static struct usb_host *the_host;

static uint32_t epoll_events(short poll_events)
{
    uint32_t ev = 0;
    if (poll_events & POLLIN)
        ev |= EPOLLIN;
    if (poll_events & POLLOUT)
        ev |= EPOLLOUT;
    return ev;
}

void usb_host_poll(struct usb_host *h)
{
    struct timeval zero = { 0, 0 };
    int rc = libusb_handle_events_timeout_completed(h->ctx, &zero, NULL);
    if (rc < 0 && rc != LIBUSB_ERROR_INTERRUPTED)
        log_warn("usb", "libusb event handling: %s", libusb_strerror(rc));
}

static void on_fd(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)loop;
    (void)fd;
    (void)events;
    usb_host_poll(opaque);
}

static void fd_added(int fd, short events, void *opaque)
{
    struct usb_host *h = opaque;
    if (evloop_add(h->loop, fd, epoll_events(events), on_fd, h) < 0)
        log_error("usb", "watching libusb fd %d: %s", fd, strerror(errno));
}

static void fd_removed(int fd, void *opaque)
{
    struct usb_host *h = opaque;
    evloop_del(h->loop, fd);
}

static void dispatch_events(void *opaque)
{
    struct usb_host *h = opaque;
    while (h->events) {
        struct hotplug_event *e = h->events;
        h->events = e->next;
        if (!h->events)
            h->events_tail = &h->events;
        /* A listener may unlisten itself (or another) from its callback. */
        for (struct usb_host_listener *l = h->listeners, *next; l; l = next) {
            next = l->next;
            if (e->arrived && l->arrived)
                l->arrived(l, e->dev);
            else if (!e->arrived && l->left)
                l->left(l, e->dev);
        }
        libusb_unref_device(e->dev);
        free(e);
    }
}

static int on_hotplug(libusb_context *ctx, libusb_device *dev,
                      libusb_hotplug_event event, void *opaque)
{
    (void)ctx;
    struct usb_host *h = opaque;
    struct hotplug_event *e = calloc(1, sizeof(*e));
    if (!e) {
        log_error("usb", "out of memory queueing a hotplug event");
        return 0;
    }
    e->dev = libusb_ref_device(dev);
    e->arrived = event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED;
    *h->events_tail = e;
    h->events_tail = &e->next;
    evloop_defer(h->loop, &h->dispatch);
    return 0;
}

static int watch_fds(struct usb_host *h, char *err, size_t errlen)
{
    if (!libusb_pollfds_handle_timeouts(h->ctx)) {
        /* Only very old kernels lack timerfd; we keep no timer of our own. */
        snprintf(err, errlen, "this libusb needs its own timeouts handled "
                 "(no timerfd): not supported");
        return -1;
    }
    const struct libusb_pollfd **fds = libusb_get_pollfds(h->ctx);
    if (!fds) {
        snprintf(err, errlen, "libusb_get_pollfds failed");
        return -1;
    }
    for (unsigned i = 0; fds[i]; i++)
        fd_added(fds[i]->fd, fds[i]->events, h);
    libusb_free_pollfds(fds);
    libusb_set_pollfd_notifiers(h->ctx, fd_added, fd_removed, h);
    return 0;
}

struct usb_host *usb_host_get(struct evloop *loop, char *err, size_t errlen)
{
    if (the_host) {
        if (the_host->loop != loop) {
            snprintf(err, errlen, "the USB host is bound to another event loop");
            return NULL;
        }
        the_host->refs++;
        return the_host;
    }
    struct usb_host *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->refs = 1;
    h->events_tail = &h->events;
    h->dispatch.cb = dispatch_events;
    h->dispatch.opaque = h;
    int rc = libusb_init(&h->ctx);
    if (rc < 0) {
        snprintf(err, errlen, "libusb_init: %s", libusb_strerror(rc));
        free(h);
        return NULL;
    }
    if (watch_fds(h, err, errlen) < 0) {
        libusb_exit(h->ctx);
        free(h);
        return NULL;
    }
    if (libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) {
        rc = libusb_hotplug_register_callback(
            h->ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED |
                        LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
            0, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
            LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug, h, &h->hotplug_handle);
        h->hotplug = rc == LIBUSB_SUCCESS;
    }
    if (!h->hotplug)
        log_warn("usb", "libusb has no hotplug here: a device that is "
                 "unplugged and plugged back stays gone until reattached");
    the_host = h;
    return h;
}

void usb_host_put(struct usb_host *h)
{
    if (!h || --h->refs)
        return;
    evloop_defer_cancel(h->loop, &h->dispatch);
    if (h->hotplug)
        libusb_hotplug_deregister_callback(h->ctx, h->hotplug_handle);
    while (h->events) {
        struct hotplug_event *e = h->events;
        h->events = e->next;
        libusb_unref_device(e->dev);
        free(e);
    }
    libusb_set_pollfd_notifiers(h->ctx, NULL, NULL, NULL);
    const struct libusb_pollfd **fds = libusb_get_pollfds(h->ctx);
    for (unsigned i = 0; fds && fds[i]; i++)
        evloop_del(h->loop, fds[i]->fd);
    libusb_free_pollfds(fds);
    libusb_exit(h->ctx);
    if (the_host == h)
        the_host = NULL;
    free(h);
}

libusb_context *usb_host_ctx(struct usb_host *h)
{
    return h->ctx;
}

void usb_host_listen(struct usb_host *h, struct usb_host_listener *l)
{
    l->next = h->listeners;
    h->listeners = l;
}

void usb_host_unlisten(struct usb_host *h, struct usb_host_listener *l)
{
    for (struct usb_host_listener **p = &h->listeners; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            return;
        }
}

/* ---- device names ---------------------------------------------------------- */

static int parse_path(const char *s, struct usb_host_match *m)
{
    char *end;
    errno = 0;
    unsigned long bus = strtoul(s, &end, 10);
    if (end == s || *end != '-' || errno || bus == 0 || bus > 255)
        return -1;
    m->bus = (unsigned)bus;
    s = end + 1;
    for (;;) {
        unsigned long p = strtoul(s, &end, 10);
        if (end == s || p == 0 || p > 255 ||
            m->nports >= (int)sizeof(m->ports))
            return -1;
        m->ports[m->nports++] = (unsigned char)p;
        if (*end == '\0')
            break;
        if (*end != '.')
            return -1;
        s = end + 1;
    }
    m->by_path = true;
    return 0;
}

static int parse_hex16(const char *s, size_t n, unsigned *out)
{
    if (n != 4)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static int parse_identity(const char *s, struct usb_host_match *m)
{
    const char *c1 = strchr(s, ':');
    if (!c1 || parse_hex16(s, (size_t)(c1 - s), &m->vendor) < 0)
        return -1;
    const char *c2 = strchr(c1 + 1, ':');
    size_t plen = c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1);
    if (parse_hex16(c1 + 1, plen, &m->product) < 0)
        return -1;
    if (c2) {
        size_t slen = strlen(c2 + 1);
        if (slen == 0 || slen >= sizeof(m->serial))
            return -1;
        memcpy(m->serial, c2 + 1, slen + 1);
    }
    return 0;
}

int usb_host_parse(const char *name, struct usb_host_match *m, char *err,
                   size_t errlen)
{
    memset(m, 0, sizeof(*m));
    if (name && (strchr(name, ':') ? parse_identity(name, m)
                                   : parse_path(name, m)) == 0)
        return 0;
    snprintf(err, errlen, "'%.60s' names no USB device: use a bus id "
             "BUS-PORT[.PORT...] as lsusb -t shows it (e.g. 3-1.5) or "
             "VENDOR:PRODUCT[:SERIAL] in hex (e.g. 1209:4e42)",
             name ? name : "");
    return -1;
}

static bool serial_matches(libusb_device *dev, uint8_t index, const char *want)
{
    libusb_device_handle *h;
    if (index == 0 || libusb_open(dev, &h) < 0)
        return false;
    unsigned char buf[128];
    int n = libusb_get_string_descriptor_ascii(h, index, buf, sizeof(buf));
    libusb_close(h);
    return n > 0 && (size_t)n == strlen(want) && memcmp(buf, want, (size_t)n) == 0;
}

bool usb_host_matches(const struct usb_host_match *m, libusb_device *dev)
{
    if (m->by_path) {
        uint8_t ports[7];
        int n = libusb_get_port_numbers(dev, ports, sizeof(ports));
        return libusb_get_bus_number(dev) == m->bus && n == m->nports &&
               memcmp(ports, m->ports, (size_t)n) == 0;
    }
    struct libusb_device_descriptor d;
    if (libusb_get_device_descriptor(dev, &d) < 0 || d.idVendor != m->vendor ||
        d.idProduct != m->product)
        return false;
    return !m->serial[0] || serial_matches(dev, d.iSerialNumber, m->serial);
}

libusb_device *usb_host_find(struct usb_host *h, const struct usb_host_match *m)
{
    libusb_device **list;
    ssize_t n = libusb_get_device_list(h->ctx, &list);
    libusb_device *found = NULL;
    for (ssize_t i = 0; i < n && !found; i++)
        if (usb_host_matches(m, list[i]))
            found = libusb_ref_device(list[i]);
    if (n >= 0)
        libusb_free_device_list(list, 1);
    return found;
}
