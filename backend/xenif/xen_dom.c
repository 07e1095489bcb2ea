/* Domain run state on real Xen: libxenctrl's getdomaininfo, which only a
 * privileged domain (dom0) may call; elsewhere every answer is "unknown"
 * and backends then never quiesce on their own. */
/* xenctrl.h pulls in Xen headers that need GNU C (anonymous unions in
 * xen/hvm/save.h); the rest of the tree stays strict C11. */
#undef __STRICT_ANSI__
#include "xenif_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <xenctrl.h>

static void *xen_dom_open(const struct xenif_config *cfg, char *err,
                          size_t errlen)
{
    (void)cfg;
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    if (!xch)
        snprintf(err, errlen, "cannot open the Xen control interface "
                 "(/dev/xen/privcmd): %s", strerror(errno));
    return xch;
}

static void xen_dom_close(void *h)
{
    xc_interface_close(h);
}

static enum xenif_dom_run xen_dom_run_state(void *h, xenif_domid domid)
{
    xc_dominfo_t info;
    /* Answers the first domain >= domid: not ours if the ids differ. */
    int n = xc_domain_getinfo(h, domid, 1, &info);
    if (n < 0)
        return errno == ESRCH ? XENIF_DOM_GONE : XENIF_DOM_UNKNOWN;
    if (n == 0 || info.domid != domid || info.dying)
        return XENIF_DOM_GONE;
    if (info.shutdown)
        return info.shutdown_reason == SHUTDOWN_suspend ? XENIF_DOM_SUSPENDED
                                                        : XENIF_DOM_GONE;
    return XENIF_DOM_RUNNING;
}

const struct xenif_dom_ops xenif_xen_dom_ops = {
    .open = xen_dom_open,
    .close = xen_dom_close,
    .run_state = xen_dom_run_state,
};
