/* xensim_guest: what a guest kernel gets from Xen for save/restore and
 * migration, for the userspace reference frontends running as xensim
 * guests (real guests get this from their kernel; nothing in netbusd uses
 * it). The protocol is described in tools/xensim/migrate.c.
 *
 * A frontend process:
 *   1. xsg_open(): registers with the host as a process that handles
 *      suspend (the toolstack then waits for it before pausing the domain)
 *      and watches the domain's control/shutdown node;
 *   2. polls xsg_fd() with its other fds; when readable,
 *      xsg_suspend_requested() says whether the toolstack asks for a
 *      suspend (control/shutdown = "suspend", as libxl writes for PV
 *      guests);
 *   3. quiesces as it likes, then xsg_suspend(): blocks (the domain is
 *      paused meanwhile) until the toolstack resumes it. XSG_CANCELLED: go
 *      on as before, same host, same handles. XSG_MIGRATED: the domain now
 *      lives on another host with another domid (xsg_dir(), xsg_domid();
 *      XENSIM_DIR, XENSIM_DOMID and XENSTORED_PATH are set to them, so
 *      xenif handles opened from the environment reach the new host);
 *   4. after XSG_MIGRATED: xsg_gnt_move() for each grant handle (its shared
 *      pages stay at the same virtual addresses, now backed by the new
 *      host's copy of the domain's memory; grant refs keep their numbers),
 *      reopens its xenstore and event-channel handles (ports are not
 *      carried over: allocate new ones and publish them, as Linux does),
 *      then xsg_resumed(): registers with the new host and leaves the old
 *      one (the toolstack destroys the old domain once every registered
 *      process has left).
 * One xsg per process. */
#ifndef NETBUS_XENSIM_GUEST_H
#define NETBUS_XENSIM_GUEST_H

#include "xenif.h"

#include <stdbool.h>
#include <stddef.h>

struct xsg;

enum xsg_result {
    XSG_CANCELLED = 1,   /* resumed where it was */
    XSG_MIGRATED = 2,    /* resumed on another host */
};

/* NULL with errno ENOTSUP when cfg does not resolve to xensim (on Xen the
 * kernel does this), or with a message in err. */
struct xsg *xsg_open(const struct xenif_config *cfg, char *err, size_t errlen);
void xsg_close(struct xsg *g);
/* Readable when control/shutdown may have changed. */
int xsg_fd(const struct xsg *g);
/* Reads pending watch events; true when a suspend is asked for. */
bool xsg_suspend_requested(struct xsg *g);
/* Acknowledges the suspend and waits for the resume: XSG_CANCELLED (also
 * when the toolstack withdrew the request meanwhile, having given up
 * waiting) or XSG_MIGRATED, or -1 with a message in err (the host went
 * away). */
int xsg_suspend(struct xsg *g, char *err, size_t errlen);
/* The host and domain the process belongs to now. */
const char *xsg_dir(const struct xsg *g);
unsigned xsg_domid(const struct xsg *g);
/* A config naming them (valid until the next xsg call). */
struct xenif_config xsg_config(const struct xsg *g);

/* After XSG_MIGRATED: re-points a grant handle at the new host. -1 with a
 * message in err; the handle may then be unusable. */
int xsg_gnt_move(struct xsg *g, struct xenif_gnt *gnt, char *err, size_t errlen);
/* Grants the pages of an existing share (xenif_gnt_share's addr and count)
 * again, to domid, keeping their refs: for frontends that keep requests on
 * their rings across a migration. */
int xsg_gnt_regrant(struct xenif_gnt *gnt, void *addr, unsigned count,
                    xenif_domid domid);
/* After moving the handles: registers with the new host, replaces the
 * connection `xensim run` left open (XENSIM_RUN_FD) and leaves the old
 * host. */
int xsg_resumed(struct xsg *g, char *err, size_t errlen);

#endif
