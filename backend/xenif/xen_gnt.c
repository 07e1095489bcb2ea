/* Grants on real Xen: libxengnttab (/dev/xen/gntdev) to map and copy the
 * guest's grants, and libxengntshr (/dev/xen/gntalloc) to share our pages
 * as a frontend. */
#include "xenif_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xengnttab.h>

struct xen_gnt {
    xengnttab_handle *gnttab;
    xengntshr_handle *gntshr; /* opened on first share: backends never need it */
};

static void *xen_gnt_open(const struct xenif_config *cfg, char *err,
                          size_t errlen)
{
    (void)cfg;
    struct xen_gnt *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->gnttab = xengnttab_open(NULL, 0);
    if (!g->gnttab) {
        snprintf(err, errlen, "cannot open /dev/xen/gntdev: %s (load the "
                 "xen-gntdev module and run as root)", strerror(errno));
        free(g);
        return NULL;
    }
    return g;
}

static void xen_gnt_close(void *h)
{
    struct xen_gnt *g = h;
    xengnttab_close(g->gnttab);
    if (g->gntshr)
        xengntshr_close(g->gntshr);
    free(g);
}

static void *xen_gnt_map(void *h, xenif_domid domid, unsigned count,
                         const xenif_gref *refs, int prot)
{
    struct xen_gnt *g = h;
    int mprot = PROT_READ | ((prot & XENIF_GNT_WRITE) ? PROT_WRITE : 0);
    /* libxengnttab's prototype is not const-correct; it does not write. */
    return xengnttab_map_domain_grant_refs(g->gnttab, count, domid,
                                           (uint32_t *)refs, mprot);
}

static int xen_gnt_unmap(void *h, void *addr, unsigned count)
{
    struct xen_gnt *g = h;
    return xengnttab_unmap(g->gnttab, addr, count);
}

static int xen_gnt_copy(void *h, struct xenif_gnt_copy *segs, unsigned count)
{
    struct xen_gnt *g = h;
    xengnttab_grant_copy_segment_t *xs = calloc(count ? count : 1, sizeof(*xs));
    if (!xs)
        return -1;
    for (unsigned i = 0; i < count; i++) {
        union xengnttab_copy_ptr *foreign = segs[i].to_guest ? &xs[i].dest
                                                             : &xs[i].source;
        union xengnttab_copy_ptr *local = segs[i].to_guest ? &xs[i].source
                                                           : &xs[i].dest;
        foreign->foreign.ref = segs[i].ref;
        foreign->foreign.offset = segs[i].offset;
        foreign->foreign.domid = segs[i].domid;
        local->virt = segs[i].local;
        xs[i].len = segs[i].len;
        xs[i].flags = segs[i].to_guest ? GNTCOPY_dest_gref : GNTCOPY_source_gref;
    }
    int rc = xengnttab_grant_copy(g->gnttab, count, xs);
    for (unsigned i = 0; i < count; i++)
        segs[i].status = rc == 0 ? xs[i].status : -1;
    int saved = errno;
    free(xs);
    errno = saved;
    return rc;
}

static void *xen_gnt_share(void *h, xenif_domid domid, unsigned count,
                           xenif_gref *refs, bool writable)
{
    struct xen_gnt *g = h;
    if (!g->gntshr) {
        g->gntshr = xengntshr_open(NULL, 0);
        if (!g->gntshr)
            return NULL;
    }
    return xengntshr_share_pages(g->gntshr, domid, (int)count, refs, writable);
}

static int xen_gnt_unshare(void *h, void *addr, unsigned count)
{
    struct xen_gnt *g = h;
    if (!g->gntshr) {
        errno = EINVAL;
        return -1;
    }
    return xengntshr_unshare(g->gntshr, addr, count);
}

const struct xenif_gnt_ops xenif_xen_gnt_ops = {
    .open = xen_gnt_open,
    .close = xen_gnt_close,
    .map = xen_gnt_map,
    .unmap = xen_gnt_unmap,
    .copy = xen_gnt_copy,
    .share = xen_gnt_share,
    .unshare = xen_gnt_unshare,
};
