/* Private to backend/xenif: the ops tables each implementation fills in.
 * xenif.c dispatches through them; xen.c and xensim_*.c provide them. */
#ifndef NETBUS_XENIF_IMPL_H
#define NETBUS_XENIF_IMPL_H

#include "xenif.h"

struct xenif_evtchn_ops {
    void *(*open)(const struct xenif_config *cfg, char *err, size_t errlen);
    void (*close)(void *h);
    int (*fd)(void *h);
    int (*bind_interdomain)(void *h, xenif_domid remote, xenif_port port);
    int (*alloc_unbound)(void *h, xenif_domid remote);
    int (*unbind)(void *h, xenif_port port);
    int (*notify)(void *h, xenif_port port);
    int (*pending)(void *h);
    int (*unmask)(void *h, xenif_port port);
};

struct xenif_gnt_ops {
    void *(*open)(const struct xenif_config *cfg, char *err, size_t errlen);
    void (*close)(void *h);
    void *(*map)(void *h, xenif_domid domid, unsigned count,
                 const xenif_gref *refs, int prot);
    int (*unmap)(void *h, void *addr, unsigned count);
    int (*copy)(void *h, struct xenif_gnt_copy *segs, unsigned count);
    void *(*share)(void *h, xenif_domid domid, unsigned count,
                   xenif_gref *refs, bool writable);
    int (*unshare)(void *h, void *addr, unsigned count);
};

struct xenif_dom_ops {
    void *(*open)(const struct xenif_config *cfg, char *err, size_t errlen);
    void (*close)(void *h);
    enum xenif_dom_run (*run_state)(void *h, xenif_domid domid);
};

extern const struct xenif_evtchn_ops xenif_xen_evtchn_ops;
extern const struct xenif_gnt_ops xenif_xen_gnt_ops;
extern const struct xenif_evtchn_ops xenif_xensim_evtchn_ops;
extern const struct xenif_gnt_ops xenif_xensim_gnt_ops;
extern const struct xenif_dom_ops xenif_xen_dom_ops;
extern const struct xenif_dom_ops xenif_xensim_dom_ops;

/* Resolved config with the xensim fields filled in (dir and domid). */
struct xenif_resolved {
    enum xenif_kind kind;
    char xensim_dir[256];
    xenif_domid domid;
};
/* xensim guests moving between hosts (xensim_guest.c). The xensim handle
 * behind g, or NULL if g is not a xensim handle. */
void *xenif_gnt_xensim_handle(struct xenif_gnt *g);
/* Re-points the handle at domain domid of the host at dir: claims every
 * frame and ref it uses there, maps the shared pages from the new memory at
 * the same addresses. -1 with a message in err (after the remap started,
 * the handle is unusable). */
int xensim_gnt_move(void *h, const char *dir, unsigned domid, char *err,
                    size_t errlen);
/* Writes the grant entries of the share at addr again, to domid. */
int xensim_gnt_regrant(void *h, void *addr, unsigned count, xenif_domid domid);

int xenif_resolve(const struct xenif_config *cfg, struct xenif_resolved *r,
                  char *err, size_t errlen);

#endif
