/* xenbus_front: the plumbing every reference frontend (blkfront,
 * usbfront) shares, what Linux's xenbus client code does for its PV
 * drivers: the hypervisor handles, the frontend/backend paths and state
 * handshake, the ring-reference transaction, event channels, revoking
 * grants, and moving to another host after a xensim migration.
 *
 * A frontend embeds a struct xenbus_front; its first failure is kept in
 * err (failed set), later ones are dropped. */
#ifndef NETBUS_XENFRONT_XENBUS_FRONT_H
#define NETBUS_XENFRONT_XENBUS_FRONT_H

#include "xenif.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What kind of device a frontend drives, for paths and messages. */
struct fe_kind {
    const char *type;    /* device/TYPE/DEVID: "vbd" */
    const char *name;    /* "domain 1 has no NAME vbd/51712": "disk" */
    const char *attach;  /* how a toolstack adds one */
    const char *unit;    /* "is netbusd serving this UNIT?": "device" */
};

struct xenbus_front {
    const struct fe_kind *kind;
    unsigned devid;
    int timeout_ms;      /* each handshake step */
    bool verbose;
    struct xenif_config cfg;
    struct xenif_xs *xs;
    struct xenif_evtchn *ec;
    struct xenif_gnt *gnt;
    struct xsg *xsg;     /* NULL: not taking part in suspend/resume */
    xenif_domid self, be_id;
    char fe_path[128], be_path[256];
    bool failed;
    char err[512];
};

uint64_t fe_now_ns(void); /* CLOCK_MONOTONIC */

void fe_fail(struct xenbus_front *fe, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* To stderr with --verbose, prefixed "xenfront: TYPE/DEVID: ". */
void fe_vlog(const struct xenbus_front *fe, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *fe_state_name(unsigned long state);

/* Sets up fe and opens the xenstore, event-channel and grant handles from
 * the environment; -1 with the reason in err. */
int fe_open(struct xenbus_front *fe, const struct fe_kind *kind, unsigned devid,
            int timeout_ms, bool verbose, char *err, size_t errlen);
/* Registers for xensim suspend/resume (fe->xsg); not on Xen. */
int fe_follow_suspend(struct xenbus_front *fe);
/* xsg_close, the failure printed, the handles closed; 0, or -1 if failed. */
int fe_release(struct xenbus_front *fe);

/* xenbus_read_otherend_details: our directory (for our current domid),
 * the backend's path and domain. */
int fe_find_backend(struct xenbus_front *fe);
/* Watches the backend's state (fe_wait_backend's and
 * fe_check_connected's wake-up). */
int fe_watch_backend(struct xenbus_front *fe);

/* DIR/KEY as a number; -1 if absent or not a number. */
int fe_read_uint(struct xenbus_front *fe, const char *dir, const char *key,
                 unsigned long *out);
/* The backend's state; XenbusStateUnknown if its directory is gone. */
unsigned long fe_backend_state(struct xenbus_front *fe);
int fe_set_state(struct xenbus_front *fe, unsigned long state);
/* Waits until the backend reaches a state in want (bit mask of states);
 * states in bad fail at once. The state, or -1 after fe_fail. */
long fe_wait_backend(struct xenbus_front *fe, unsigned want, unsigned bad,
                     const char *what);
/* An earlier frontend died while connected: takes the backend through
 * Closing and Closed (xenbus_reset_frontend), the last step done once it
 * is in a state of closed_want. 0 also when there was nothing to reset. */
int fe_reset_earlier(struct xenbus_front *fe, unsigned closed_want);
/* Initialising, unless already so (the backend may be waiting for it). */
int fe_start_initialising(struct xenbus_front *fe);
/* Runs write (0 or -1) in a transaction, retried while it conflicts. */
int fe_publish(struct xenbus_front *fe, int (*write)(void *arg, xenif_txn t),
               void *arg);
/* A watch event came: the backend must still be Connected. */
int fe_check_connected(struct xenbus_front *fe);
/* Closing, wait for the backend to close, Closed; a failure from before
 * keeps its message. */
void fe_close_backend(struct xenbus_front *fe);

/* An unbound event channel for the backend, or -1 after fe_fail. */
int fe_alloc_port(struct xenbus_front *fe);
int fe_notify(struct xenbus_front *fe, int port);
/* Takes and unmasks one pending event: 1, 0 if none, -1 after fe_fail. */
int fe_take_event(struct xenbus_front *fe);

/* Revokes a share, waiting (bounded) while the backend still maps it;
 * 0 (also for addr NULL) or -1 after fe_fail. */
int fe_unshare_wait(struct xenbus_front *fe, void *addr, unsigned count,
                    const char *what);
/* The pages of a share granted again to the (new) backend; addr NULL: none. */
int fe_regrant(struct xenbus_front *fe, void *addr, unsigned count);

/* After a migration: the grant handle onto the new host, then the event
 * channels (every port is gone) and xenstore reopened there, and, once
 * the frontend is ready, the old host left. */
int fe_move_grants(struct xenbus_front *fe);
int fe_reopen_handles(struct xenbus_front *fe);
int fe_leave_old_host(struct xenbus_front *fe);

#endif
