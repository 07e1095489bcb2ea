/* local_usb: a vusb target on a usb export of this host (see local_usb.h).
 * Each transfer goes to the export's device as a shadow of the port's own
 * (same buffer and packets), so that the session's accounting (handover
 * waits for it) sees it complete. */
#include "local_usb.h"

#include "backend/vusb/target.h"
#include "export.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lu_shadow {
    struct vusb_xfer x;         /* first: the export's device hands it back */
    struct vusb_xfer *orig;
    struct lusb *l;
    struct nb_session *s;
};

struct lusb {
    struct vusb_target pub;
    struct nb_export *ex;       /* NULL once the export went away */
    struct vusb_target *dev;
    struct nb_session *s;
    unsigned inflight;
    char *where;
};

#define LUSB(t) ((struct lusb *)(t))

static void shadow_done(struct vusb_xfer *x)
{
    struct lu_shadow *sh = (struct lu_shadow *)x;
    struct vusb_xfer *orig = sh->orig;
    struct nb_session *s = sh->s;
    sh->l->inflight--;
    orig->status = x->status;
    orig->actual = x->actual;
    orig->error_count = x->error_count;
    orig->start_frame = x->start_frame;
    orig->target_priv = NULL;
    free(sh);
    orig->done(orig);
    nb_session_io_end(s);
}

static int lusb_submit(struct vusb_target *t, struct vusb_xfer *orig)
{
    struct lusb *l = LUSB(t);
    if (!l->ex || l->s->superseded)
        return -ENODEV; /* unexported, or the guest moved on */
    /* The guest's session from its old host still has URBs at the device:
     * none of ours may overtake them. */
    if (nb_session_must_wait(l->s))
        l->dev->ops->drain(l->dev);
    struct lu_shadow *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return -ENOMEM;
    sh->x = *orig;
    sh->x.done = shadow_done;
    sh->x.target_priv = NULL;
    sh->orig = orig;
    sh->l = l;
    sh->s = l->s;
    int rc = l->dev->ops->submit(l->dev, &sh->x);
    if (rc < 0) {
        free(sh);
        return rc;
    }
    orig->target_priv = sh;
    l->inflight++;
    nb_session_io_start(l->s);
    return 0;
}

static void lusb_cancel(struct vusb_target *t, struct vusb_xfer *orig)
{
    struct lusb *l = LUSB(t);
    struct lu_shadow *sh = orig->target_priv;
    if (sh && l->dev)
        l->dev->ops->cancel(l->dev, &sh->x);
}

static unsigned lusb_inflight(const struct vusb_target *t)
{
    return ((const struct lusb *)t)->inflight;
}

static void lusb_drain(struct vusb_target *t)
{
    struct lusb *l = LUSB(t);
    if (l->dev && l->inflight)
        l->dev->ops->drain(l->dev);
}

static void lusb_close(struct vusb_target *t)
{
    struct lusb *l = LUSB(t);
    lusb_drain(t);
    if (l->ex)
        nb_session_free(l->s);
    free(l->where);
    free(l);
}

/* The export's device left or came back. */
static void lusb_changed(struct nb_session *s)
{
    struct lusb *l = s->user;
    l->pub.speed = l->dev->speed;
    if (l->pub.changed)
        l->pub.changed(l->pub.opaque);
}

/* unexport --force: the export's device is about to be closed (which
 * completes what is in flight). */
static void lusb_kill(struct nb_session *s)
{
    struct lusb *l = s->user;
    log_error(l->where, "export '%s' was unexported: the device is gone",
              nb_export_name(l->ex));
    l->ex = NULL;
    l->dev = NULL;
    l->s = NULL;
    s->user = NULL;
    s->kill = NULL;
    s->changed = NULL;
    l->pub.speed = VUSB_SPEED_NONE;
    if (l->pub.changed)
        l->pub.changed(l->pub.opaque);
}

static const struct vusb_target_ops lusb_ops = {
    .submit = lusb_submit,
    .cancel = lusb_cancel,
    .inflight = lusb_inflight,
    .drain = lusb_drain,
    .close = lusb_close,
};

struct vusb_target *nb_local_usb_open(struct nb_export *ex, const char *peer,
                                      const char *owner, const char *where,
                                      char *err, size_t errlen)
{
    struct lusb *l = calloc(1, sizeof(*l));
    if (l)
        l->where = strdup(where);
    if (!l || !l->where || !(l->s = nb_session_new(ex, peer, owner, false))) {
        if (l && l->where && errno == EBUSY)
            snprintf(err, errlen, "export '%s' is in use by another guest",
                     nb_export_name(ex));
        else
            snprintf(err, errlen, "out of memory");
        if (l)
            free(l->where);
        free(l);
        return NULL;
    }
    l->ex = ex;
    l->dev = nb_export_usb(ex);
    l->pub.ops = &lusb_ops;
    l->pub.speed = l->dev->speed;
    l->s->user = l;
    l->s->kill = lusb_kill;
    l->s->changed = lusb_changed;
    return &l->pub;
}
