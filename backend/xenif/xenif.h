/* xenif: the narrow hypervisor interface every backend and frontend uses.
 *
 * Three handle kinds, as in QEMU's xen_backend_ops.h:
 *   - xenstore (struct xenif_xs): read/write/rm/mkdir/perms/watch/transactions;
 *   - event channels (struct xenif_evtchn): one pollable fd per handle;
 *   - grants (struct xenif_gnt): map/unmap/copy for backends, share for
 *     frontends.
 * Two implementations are selected at open time: "xen" (libxenstore,
 * libxengnttab, libxenevtchn on /dev/xen) and "xensim" (the simulated host of
 * tools/xensim). Only files in backend/xenif include the Xen libraries'
 * headers; callers see only this file and the xen/io ring headers.
 *
 * Errors: functions returning int return -1 (pointers: NULL) and set errno,
 * the way the Xen libraries do.
 */
#ifndef NETBUS_XENIF_H
#define NETBUS_XENIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XENIF_PAGE_SIZE 4096u
#define XENIF_DOMID_SELF 0x7ff0u /* DOMID_SELF, as in xen.h */

typedef uint16_t xenif_domid;
typedef uint32_t xenif_gref;
typedef uint32_t xenif_port;
typedef uint32_t xenif_txn; /* 0 = no transaction */

enum xenif_kind {
    XENIF_AUTO,   /* xen if /dev/xen exists, else xensim if XENSIM_DIR is set */
    XENIF_XEN,
    XENIF_XENSIM,
};

/* Where to find the simulated host (XENIF_XENSIM). Defaults come from the
 * environment: XENSIM_DIR (the host's run directory) and XENSIM_DOMID (the
 * domain this process runs as; 0 when unset). */
struct xenif_config {
    enum xenif_kind kind;
    const char *xensim_dir;
    int xensim_domid; /* -1: take XENSIM_DOMID from the environment */
};

/* Fills *cfg from the environment (NETBUS_XENIF=xen|xensim|auto overrides kind). */
void xenif_config_from_env(struct xenif_config *cfg);
/* Resolves XENIF_AUTO into *kind. Returns 0, or -1 with a reason in err. */
int xenif_config_resolve(const struct xenif_config *cfg, enum xenif_kind *kind,
                         char *err, size_t errlen);
const char *xenif_kind_name(enum xenif_kind kind);

/* ---- xenstore ---------------------------------------------------------- */

struct xenif_xs;

enum xenif_xs_perm_bits { XENIF_XS_PERM_NONE = 0, XENIF_XS_PERM_READ = 1,
                          XENIF_XS_PERM_WRITE = 2, XENIF_XS_PERM_BOTH = 3 };

/* Permission list as xenstored keeps it: entry 0 names the owner and the
 * access of every domain not listed; further entries grant per domain. */
struct xenif_xs_perm {
    xenif_domid domid;
    unsigned perms; /* enum xenif_xs_perm_bits */
};

struct xenif_xs *xenif_xs_open(const struct xenif_config *cfg, char *err,
                               size_t errlen);
void xenif_xs_close(struct xenif_xs *xs);

/* Value of path, NUL-terminated for convenience; *len (if non-NULL) excludes
 * the NUL. Caller frees. */
char *xenif_xs_read(struct xenif_xs *xs, xenif_txn t, const char *path,
                    size_t *len);
int xenif_xs_write(struct xenif_xs *xs, xenif_txn t, const char *path,
                   const void *value, size_t len);
int xenif_xs_printf(struct xenif_xs *xs, xenif_txn t, const char *path,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Reads path as an unsigned/signed decimal; -1 + ENOENT/EINVAL on failure. */
int xenif_xs_read_uint(struct xenif_xs *xs, xenif_txn t, const char *path,
                       unsigned long *out);
int xenif_xs_mkdir(struct xenif_xs *xs, xenif_txn t, const char *path);
int xenif_xs_rm(struct xenif_xs *xs, xenif_txn t, const char *path);
/* Child names; one allocation, caller frees the returned array. */
char **xenif_xs_directory(struct xenif_xs *xs, xenif_txn t, const char *path,
                          unsigned *num);
/* Caller frees. */
struct xenif_xs_perm *xenif_xs_get_perms(struct xenif_xs *xs, xenif_txn t,
                                         const char *path, unsigned *num);
int xenif_xs_set_perms(struct xenif_xs *xs, xenif_txn t, const char *path,
                       const struct xenif_xs_perm *perms, unsigned num);

/* 0 on failure (errno set). */
xenif_txn xenif_xs_transaction_start(struct xenif_xs *xs);
/* abort=false commits; -1 with errno EAGAIN means the transaction conflicted
 * and the caller should retry it from the start. */
int xenif_xs_transaction_end(struct xenif_xs *xs, xenif_txn t, bool abort);

/* Watches fire once when set, then on every change of path or below it. */
int xenif_xs_watch(struct xenif_xs *xs, const char *path, const char *token);
int xenif_xs_unwatch(struct xenif_xs *xs, const char *path, const char *token);
/* Readable when watch events are pending. */
int xenif_xs_fd(struct xenif_xs *xs);
/* Next pending event without blocking: 1 with path and token set (both freed by
 * one free(*path)), 0 if none is pending, -1 on error. */
int xenif_xs_next_event(struct xenif_xs *xs, char **path, char **token);
/* The domain this connection runs as (from the xensim config, or from
 * xenstore's "domid" node on real Xen). */
xenif_domid xenif_xs_own_domid(const struct xenif_xs *xs);

/* ---- event channels ---------------------------------------------------- */

struct xenif_evtchn;

struct xenif_evtchn *xenif_evtchn_open(const struct xenif_config *cfg,
                                       char *err, size_t errlen);
void xenif_evtchn_close(struct xenif_evtchn *ec);
/* One fd for all ports bound through this handle; readable when any is
 * pending. */
int xenif_evtchn_fd(struct xenif_evtchn *ec);
/* Returns the local port, or -1. */
int xenif_evtchn_bind_interdomain(struct xenif_evtchn *ec, xenif_domid remote,
                                  xenif_port remote_port);
/* Allocates an unbound port that domain `remote` may bind to (frontends). */
int xenif_evtchn_alloc_unbound(struct xenif_evtchn *ec, xenif_domid remote);
int xenif_evtchn_unbind(struct xenif_evtchn *ec, xenif_port port);
int xenif_evtchn_notify(struct xenif_evtchn *ec, xenif_port port);
/* Next pending port (which stays masked until unmasked), or -1 with errno
 * EAGAIN when nothing is pending. */
int xenif_evtchn_pending(struct xenif_evtchn *ec);
int xenif_evtchn_unmask(struct xenif_evtchn *ec, xenif_port port);

/* ---- domain run state ----------------------------------------------------- */

/* What a backend needs to know of its frontend's domain to quiesce at a
 * suspend: a guest suspending for save or migration stops using its
 * devices, and its backends must finish what is in flight before the
 * toolstack copies the last pages. Real Xen reports it through libxenctrl
 * (dom0 only: a driver domain may not ask, and gets XENIF_DOM_UNKNOWN). */
enum xenif_dom_run {
    XENIF_DOM_UNKNOWN,    /* cannot tell (not privileged, or failed) */
    XENIF_DOM_RUNNING,    /* running or paused, not shut down */
    XENIF_DOM_SUSPENDED,  /* shut down with reason suspend */
    XENIF_DOM_GONE,       /* dying, shut down otherwise, or no such domain */
};

struct xenif_dom;

struct xenif_dom *xenif_dom_open(const struct xenif_config *cfg, char *err,
                                 size_t errlen);
void xenif_dom_close(struct xenif_dom *d);
enum xenif_dom_run xenif_dom_run_state(struct xenif_dom *d, xenif_domid domid);
const char *xenif_dom_run_name(enum xenif_dom_run st);

/* ---- grants ------------------------------------------------------------ */

struct xenif_gnt;

#define XENIF_GNT_READ  1 /* PROT_READ */
#define XENIF_GNT_WRITE 2 /* PROT_WRITE */

struct xenif_gnt *xenif_gnt_open(const struct xenif_config *cfg, char *err,
                                 size_t errlen);
void xenif_gnt_close(struct xenif_gnt *g);

/* Maps `count` grants of domain `domid` into one contiguous virtual range.
 * prot: XENIF_GNT_READ or XENIF_GNT_READ|XENIF_GNT_WRITE. All-or-nothing:
 * if one grant fails (not granted to us, read-only for a write mapping,
 * unknown ref), nothing stays mapped and NULL is returned with errno. */
void *xenif_gnt_map(struct xenif_gnt *g, xenif_domid domid, unsigned count,
                    const xenif_gref *refs, int prot);
int xenif_gnt_unmap(struct xenif_gnt *g, void *addr, unsigned count);

/* One grant copy segment: exactly one side is foreign (a grant of `domid`),
 * the other a local buffer. Same layout meaning as
 * xengnttab_grant_copy_segment. */
struct xenif_gnt_copy {
    bool to_guest;         /* true: local -> grant; false: grant -> local */
    xenif_domid domid;
    xenif_gref ref;
    uint16_t offset;       /* within the granted page */
    uint16_t len;          /* offset + len <= XENIF_PAGE_SIZE */
    void *local;
    int16_t status;        /* out: 0 = okay, negative = GNTST_* error */
};
/* Returns 0 if the batch was processed (check each status), -1 otherwise. */
int xenif_gnt_copy(struct xenif_gnt *g, struct xenif_gnt_copy *segs,
                   unsigned count);

/* Frontend side: allocates `count` fresh zeroed pages, grants them to
 * `domid` (read-write if writable) and returns their address; refs[] gets the
 * grant references. */
void *xenif_gnt_share(struct xenif_gnt *g, xenif_domid domid, unsigned count,
                      xenif_gref *refs, bool writable);
/* Revokes the grants and frees the pages. On xensim this fails with EBUSY
 * while the other side still has a page mapped; on Xen the gntalloc driver
 * defers the release until the other side unmaps. */
int xenif_gnt_unshare(struct xenif_gnt *g, void *addr, unsigned count);

#endif
