/* Domain run state on xensim: the host's DOMAIN_INFO over this handle's own
 * control connection. */
#include "xenif_impl.h"
#include "xensim_client.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

static void *xensim_dom_open(const struct xenif_config *cfg, char *err,
                             size_t errlen)
{
    unsigned domid;
    int sock = xensim_connect_config(cfg, &domid, err, errlen);
    if (sock < 0)
        return NULL;
    /* The handle is the socket + 1, so that fd 0 is not a NULL handle. */
    return (void *)(intptr_t)(sock + 1);
}

static void xensim_dom_close(void *h)
{
    close((int)(intptr_t)h - 1);
}

static enum xenif_dom_run xensim_dom_run_state(void *h, xenif_domid domid)
{
    struct xensim_dom_info info;
    if (xensim_domain_info((int)(intptr_t)h - 1, domid, &info) < 0)
        return errno == ENOENT || errno == ESRCH ? XENIF_DOM_GONE
                                                 : XENIF_DOM_UNKNOWN;
    switch (info.state) {
    case XENSIM_DOM_RUNNING:
    case XENSIM_DOM_PAUSED:
        return XENIF_DOM_RUNNING;
    case XENSIM_DOM_SUSPENDED:
        return XENIF_DOM_SUSPENDED;
    default: /* migrated away: only its destruction is left */
        return XENIF_DOM_GONE;
    }
}

const struct xenif_dom_ops xenif_xensim_dom_ops = {
    .open = xensim_dom_open,
    .close = xensim_dom_close,
    .run_state = xensim_dom_run_state,
};
