/* xenbus_front: plumbing shared by the reference frontends. See
 * xenbus_front.h. */
#include "xenbus_front.h"
#include "xensim_guest.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xen/io/xenbus.h>

uint64_t fe_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void fe_fail(struct xenbus_front *fe, const char *fmt, ...)
{
    if (fe->failed)
        return; /* keep the first reason */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fe->err, sizeof(fe->err), fmt, ap);
    va_end(ap);
    fe->failed = true;
}

void fe_vlog(const struct xenbus_front *fe, const char *fmt, ...)
{
    if (!fe->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "xenfront: %s/%u: ", fe->kind->type, fe->devid);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *fe_state_name(unsigned long s)
{
    static const char *names[] = { "Unknown", "Initialising", "InitWait",
                                   "Initialised", "Connected", "Closing",
                                   "Closed", "Reconfiguring", "Reconfigured" };
    return s < sizeof(names) / sizeof(names[0]) ? names[s] : "invalid";
}

/* ---- handles ------------------------------------------------------------ */

int fe_open(struct xenbus_front *fe, const struct fe_kind *kind, unsigned devid,
            int timeout_ms, bool verbose, char *err, size_t errlen)
{
    fe->kind = kind;
    fe->devid = devid;
    fe->timeout_ms = timeout_ms;
    fe->verbose = verbose;
    xenif_config_from_env(&fe->cfg);
    char why[256];
    fe->xs = xenif_xs_open(&fe->cfg, why, sizeof(why));
    if (fe->xs)
        fe->ec = xenif_evtchn_open(&fe->cfg, why, sizeof(why));
    if (fe->ec)
        fe->gnt = xenif_gnt_open(&fe->cfg, why, sizeof(why));
    if (!fe->gnt) {
        snprintf(err, errlen, "cannot open the hypervisor interface: %s (run under "
                 "`xensim run --domid N --` or on Xen)", why);
        return -1;
    }
    return 0;
}

int fe_follow_suspend(struct xenbus_front *fe)
{
    char why[256];
    fe->xsg = xsg_open(&fe->cfg, why, sizeof(why));
    if (!fe->xsg && errno != ENOTSUP) {
        fe_fail(fe, "cannot register for suspend/resume: %s", why);
        return -1;
    }
    return 0;
}

int fe_release(struct xenbus_front *fe)
{
    xsg_close(fe->xsg);
    int rc = fe->failed ? -1 : 0;
    if (rc < 0)
        fprintf(stderr, "xenfront: %s/%u: %s\n", fe->kind->type, fe->devid, fe->err);
    if (fe->gnt)
        xenif_gnt_close(fe->gnt);
    if (fe->ec)
        xenif_evtchn_close(fe->ec);
    if (fe->xs)
        xenif_xs_close(fe->xs);
    return rc;
}

/* ---- xenstore ----------------------------------------------------------- */

int fe_find_backend(struct xenbus_front *fe)
{
    fe->self = xenif_xs_own_domid(fe->xs);
    snprintf(fe->fe_path, sizeof(fe->fe_path), "/local/domain/%u/device/%s/%u",
             fe->self, fe->kind->type, fe->devid);
    char path[200];
    snprintf(path, sizeof(path), "%s/backend", fe->fe_path);
    char *be = xenif_xs_read(fe->xs, 0, path, NULL);
    unsigned long be_id;
    if (!be || fe_read_uint(fe, fe->fe_path, "backend-id", &be_id) < 0) {
        fe_fail(fe, "domain %u has no %s %s/%u (%s/backend and backend-id); %s",
                fe->self, fe->kind->name, fe->kind->type, fe->devid, fe->fe_path,
                fe->kind->attach);
        free(be);
        return -1;
    }
    char prefix[40];
    int plen = snprintf(prefix, sizeof(prefix), "/local/domain/%lu/", be_id);
    if (be_id > 0x7fef || strlen(be) >= sizeof(fe->be_path) ||
        strncmp(be, prefix, (size_t)plen) != 0) {
        fe_fail(fe, "%s/backend = '%s' is not under backend-id %lu's home",
                fe->fe_path, be, be_id);
        free(be);
        return -1;
    }
    strcpy(fe->be_path, be);
    free(be);
    fe->be_id = (xenif_domid)be_id;
    return 0;
}

int fe_watch_backend(struct xenbus_front *fe)
{
    char path[200];
    snprintf(path, sizeof(path), "%.180s/state", fe->be_path);
    if (xenif_xs_watch(fe->xs, path, "be") < 0) {
        fe_fail(fe, "cannot watch %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int fe_read_uint(struct xenbus_front *fe, const char *dir, const char *key,
                 unsigned long *out)
{
    char path[320];
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    return xenif_xs_read_uint(fe->xs, 0, path, out);
}

unsigned long fe_backend_state(struct xenbus_front *fe)
{
    unsigned long v;
    return fe_read_uint(fe, fe->be_path, "state", &v) == 0 ? v : XenbusStateUnknown;
}

int fe_set_state(struct xenbus_front *fe, unsigned long state)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/state", fe->fe_path);
    if (xenif_xs_printf(fe->xs, 0, path, "%lu", state) < 0) {
        fe_fail(fe, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fe_vlog(fe, "frontend -> %s", fe_state_name(state));
    return 0;
}

/* Drops pending watch events (the state is re-read after each). */
static int drain_watch(struct xenbus_front *fe)
{
    char *path, *token;
    int rc;
    while ((rc = xenif_xs_next_event(fe->xs, &path, &token)) == 1)
        free(path);
    return rc;
}

long fe_wait_backend(struct xenbus_front *fe, unsigned want, unsigned bad,
                     const char *what)
{
    uint64_t deadline = fe_now_ns() + (uint64_t)fe->timeout_ms * 1000000ull;
    unsigned long s = XenbusStateUnknown;
    for (;;) {
        if (drain_watch(fe) < 0) {
            fe_fail(fe, "xenstore connection lost while %s", what);
            return -1;
        }
        s = fe_backend_state(fe);
        if (s < 32 && (want & (1u << s)))
            return (long)s;
        if (s < 32 && (bad & (1u << s))) {
            fe_fail(fe, "backend %s went %s while %s", fe->be_path,
                    fe_state_name(s), what);
            return -1;
        }
        uint64_t now = fe_now_ns();
        if (now >= deadline)
            break;
        struct pollfd p = { .fd = xenif_xs_fd(fe->xs), .events = POLLIN };
        int ms = (int)((deadline - now) / 1000000ull) + 1;
        if (poll(&p, 1, ms < 200 ? ms : 200) < 0 && errno != EINTR) {
            fe_fail(fe, "poll: %s", strerror(errno));
            return -1;
        }
    }
    fe_fail(fe, "timed out after %d ms %s: backend %s is %s (is netbusd serving "
            "this %s?)", fe->timeout_ms, what, fe->be_path, fe_state_name(s),
            fe->kind->unit);
    return -1;
}

int fe_reset_earlier(struct xenbus_front *fe, unsigned closed_want)
{
    unsigned long bs = fe_backend_state(fe);
    if (bs != XenbusStateConnected && bs != XenbusStateInitialised)
        return 0;
    fe_vlog(fe, "backend is %s from an earlier frontend: resetting it",
            fe_state_name(bs));
    if (fe_set_state(fe, XenbusStateClosing) < 0 ||
        fe_wait_backend(fe, 1u << XenbusStateClosing | 1u << XenbusStateClosed, 0,
                        "resetting an earlier connection (Closing)") < 0 ||
        fe_set_state(fe, XenbusStateClosed) < 0 ||
        fe_wait_backend(fe, closed_want, 0,
                        "resetting an earlier connection (Closed)") < 0)
        return -1;
    return 0;
}

int fe_start_initialising(struct xenbus_front *fe)
{
    unsigned long state = XenbusStateUnknown;
    fe_read_uint(fe, fe->fe_path, "state", &state);
    if (state == XenbusStateInitialising)
        return 0;
    return fe_set_state(fe, XenbusStateInitialising);
}

int fe_publish(struct xenbus_front *fe, int (*write)(void *arg, xenif_txn t),
               void *arg)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        xenif_txn t = xenif_xs_transaction_start(fe->xs);
        if (!t) {
            fe_fail(fe, "starting transaction: %s", strerror(errno));
            return -1;
        }
        if (write(arg, t) < 0) {
            int e = errno;
            xenif_xs_transaction_end(fe->xs, t, true);
            fe_fail(fe, "writing ring references under %s: %s", fe->fe_path,
                    strerror(e));
            return -1;
        }
        if (xenif_xs_transaction_end(fe->xs, t, false) == 0)
            return 0;
        if (errno != EAGAIN) {
            fe_fail(fe, "completing transaction: %s", strerror(errno));
            return -1;
        }
    }
    fe_fail(fe, "transaction kept conflicting");
    return -1;
}

int fe_check_connected(struct xenbus_front *fe)
{
    if (drain_watch(fe) < 0) {
        fe_fail(fe, "xenstore connection lost");
        return -1;
    }
    unsigned long s = fe_backend_state(fe);
    if (s != XenbusStateConnected) {
        fe_fail(fe, "backend %s went %s while connected", fe->be_path,
                fe_state_name(s));
        return -1;
    }
    return 0;
}

void fe_close_backend(struct xenbus_front *fe)
{
    unsigned long s = fe_backend_state(fe);
    if (fe_set_state(fe, XenbusStateClosing) == 0 && s != XenbusStateUnknown &&
        s != XenbusStateClosed) {
        /* A failure before close keeps its message; a close problem after
         * a clean run is reported. */
        bool was_failed = fe->failed;
        char saved[sizeof(fe->err)];
        memcpy(saved, fe->err, sizeof(saved));
        fe->failed = false;
        fe_wait_backend(fe, 1u << XenbusStateClosing | 1u << XenbusStateClosed |
                            1u << XenbusStateUnknown, 0, "closing");
        if (was_failed) {
            fe->failed = true;
            memcpy(fe->err, saved, sizeof(saved));
        }
    }
    fe_set_state(fe, XenbusStateClosed);
}

/* ---- event channels ----------------------------------------------------- */

int fe_alloc_port(struct xenbus_front *fe)
{
    int port = xenif_evtchn_alloc_unbound(fe->ec, fe->be_id);
    if (port < 0)
        fe_fail(fe, "cannot allocate an event channel for domain %u: %s",
                fe->be_id, strerror(errno));
    return port;
}

int fe_notify(struct xenbus_front *fe, int port)
{
    if (xenif_evtchn_notify(fe->ec, (xenif_port)port) < 0) {
        fe_fail(fe, "event channel notify: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int fe_take_event(struct xenbus_front *fe)
{
    int port = xenif_evtchn_pending(fe->ec);
    if (port < 0) {
        if (errno == EAGAIN)
            return 0;
        fe_fail(fe, "event channel: %s", strerror(errno));
        return -1;
    }
    if (xenif_evtchn_unmask(fe->ec, (xenif_port)port) < 0) {
        fe_fail(fe, "event channel unmask: %s", strerror(errno));
        return -1;
    }
    return 1;
}

/* ---- grants ------------------------------------------------------------- */

int fe_unshare_wait(struct xenbus_front *fe, void *addr, unsigned count,
                    const char *what)
{
    if (!addr)
        return 0;
    for (int i = 0; i < 200; i++) {
        if (xenif_gnt_unshare(fe->gnt, addr, count) == 0)
            return 0;
        if (errno != EBUSY)
            break;
        usleep(10000);
    }
    fe_fail(fe, "cannot revoke %s (%u page(s)): %s%s", what, count, strerror(errno),
            errno == EBUSY ? " (the backend still maps it after closing)" : "");
    return -1;
}

int fe_regrant(struct xenbus_front *fe, void *addr, unsigned count)
{
    if (!addr || xsg_gnt_regrant(fe->gnt, addr, count, fe->be_id) == 0)
        return 0;
    fe_fail(fe, "granting %u page(s) again to domain %u: %s", count, fe->be_id,
            strerror(errno));
    return -1;
}

/* ---- after a migration -------------------------------------------------- */

int fe_move_grants(struct xenbus_front *fe)
{
    char why[512];
    if (xsg_gnt_move(fe->xsg, fe->gnt, why, sizeof(why)) < 0) {
        fe_fail(fe, "moving grants to the new host: %s", why);
        return -1;
    }
    return 0;
}

int fe_reopen_handles(struct xenbus_front *fe)
{
    char why[512];
    xenif_evtchn_close(fe->ec);
    fe->ec = xenif_evtchn_open(&fe->cfg, why, sizeof(why));
    if (!fe->ec) {
        fe_fail(fe, "event channels on the new host: %s", why);
        return -1;
    }
    xenif_xs_close(fe->xs);
    fe->xs = xenif_xs_open(&fe->cfg, why, sizeof(why));
    if (!fe->xs) {
        fe_fail(fe, "xenstore on the new host: %s", why);
        return -1;
    }
    return 0;
}

int fe_leave_old_host(struct xenbus_front *fe)
{
    char why[512];
    if (xsg_resumed(fe->xsg, why, sizeof(why)) < 0) {
        fe_fail(fe, "leaving the old host: %s", why);
        return -1;
    }
    return 0;
}
