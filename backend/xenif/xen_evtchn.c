/* Event channels on real Xen: libxenevtchn (/dev/xen/evtchn). */
#include "xenif_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <xenevtchn.h>

static void *xen_evtchn_open(const struct xenif_config *cfg, char *err,
                             size_t errlen)
{
    (void)cfg;
    xenevtchn_handle *h = xenevtchn_open(NULL, 0);
    if (!h) {
        snprintf(err, errlen, "cannot open /dev/xen/evtchn: %s (load the "
                 "xen-evtchn module and run as root)", strerror(errno));
        return NULL;
    }
    /* The device blocks in read() when nothing is pending; callers drain
     * pending() until EAGAIN from the event loop, so it must not. */
    int fd = xenevtchn_fd(h);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "cannot make /dev/xen/evtchn non-blocking: %s",
                 strerror(errno));
        xenevtchn_close(h);
        return NULL;
    }
    return h;
}

static void xen_evtchn_close(void *h)
{
    xenevtchn_close(h);
}

static int xen_evtchn_fd(void *h)
{
    return xenevtchn_fd(h);
}

static int xen_evtchn_bind_interdomain(void *h, xenif_domid remote,
                                       xenif_port port)
{
    return xenevtchn_bind_interdomain(h, remote, port);
}

static int xen_evtchn_alloc_unbound(void *h, xenif_domid remote)
{
    return xenevtchn_bind_unbound_port(h, remote);
}

static int xen_evtchn_unbind(void *h, xenif_port port)
{
    return xenevtchn_unbind(h, port);
}

static int xen_evtchn_notify(void *h, xenif_port port)
{
    return xenevtchn_notify(h, port);
}

static int xen_evtchn_pending(void *h)
{
    /* The evtchn device read is non-blocking only if the fd is; report
     * "nothing pending" the same way the xensim side does. */
    int port = xenevtchn_pending(h);
    if (port < 0 && errno == EWOULDBLOCK)
        errno = EAGAIN;
    return port;
}

static int xen_evtchn_unmask(void *h, xenif_port port)
{
    return xenevtchn_unmask(h, port);
}

const struct xenif_evtchn_ops xenif_xen_evtchn_ops = {
    .open = xen_evtchn_open,
    .close = xen_evtchn_close,
    .fd = xen_evtchn_fd,
    .bind_interdomain = xen_evtchn_bind_interdomain,
    .alloc_unbound = xen_evtchn_alloc_unbound,
    .unbind = xen_evtchn_unbind,
    .notify = xen_evtchn_notify,
    .pending = xen_evtchn_pending,
    .unmask = xen_evtchn_unmask,
};
