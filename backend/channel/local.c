/* local: a vbd target on an export of this host (see local.h). Each I/O is
 * forwarded as a shadow of the ring's own (same iovecs into guest pages)
 * so that the export's target can serve several sessions at once. */
#include "local.h"

#include "backend/vbd/target.h"
#include "export.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lt;

struct lt_io {
    struct vbd_target_io tio; /* first: the export's target hands it back */
    struct vbd_target_io *orig;
    struct lt *lt;
    struct nb_session *s;
    struct lt_io *next_free;
};

struct lt {
    struct vbd_target pub;
    struct nb_export *ex;     /* NULL once the export went away */
    struct vbd_target *et;
    struct nb_session *s;
    unsigned inflight;
    struct lt_io *free_ios;
    char *where;
};

#define LT(t) ((struct lt *)(t))

static void lt_io_done(struct vbd_target_io *tio, int err)
{
    struct lt_io *io = (struct lt_io *)tio;
    struct lt *lt = io->lt;
    struct vbd_target_io *orig = io->orig;
    struct nb_session *s = io->s;
    io->next_free = lt->free_ios;
    lt->free_ios = io;
    lt->inflight--;
    orig->done(orig, err);
    nb_session_io_end(s);
}

static int lt_submit(struct vbd_target *t, struct vbd_target_io *orig)
{
    struct lt *lt = LT(t);
    if (!lt->ex)
        return -ENODEV;
    if (lt->s->superseded)
        return -ESTALE; /* the guest moved on: its new LBE has the export */
    /* The guest's session from its old host still has I/O at the device:
     * none of ours may overtake it. */
    if (nb_session_must_wait(lt->s))
        lt->et->ops->drain(lt->et);
    struct lt_io *io = lt->free_ios;
    if (io)
        lt->free_ios = io->next_free;
    else if (!(io = calloc(1, sizeof(*io))))
        return -ENOMEM;
    io->tio = *orig;
    io->tio.done = lt_io_done;
    io->orig = orig;
    io->lt = lt;
    io->s = lt->s;
    int rc = lt->et->ops->submit(lt->et, &io->tio);
    if (rc < 0) {
        io->next_free = lt->free_ios;
        lt->free_ios = io;
        return rc;
    }
    lt->inflight++;
    nb_session_io_start(lt->s);
    return 0;
}

static void lt_kick(struct vbd_target *t)
{
    struct lt *lt = LT(t);
    if (lt->et)
        lt->et->ops->kick(lt->et);
}

static void lt_drain(struct vbd_target *t)
{
    struct lt *lt = LT(t);
    if (lt->et && lt->inflight)
        lt->et->ops->drain(lt->et);
}

static unsigned lt_inflight(const struct vbd_target *t)
{
    return ((const struct lt *)t)->inflight;
}

static void lt_reaped(void *opaque)
{
    struct lt *lt = opaque;
    if (lt->pub.reaped)
        lt->pub.reaped(lt->pub.opaque);
}

static void lt_close(struct vbd_target *t)
{
    struct lt *lt = LT(t);
    lt_drain(t);
    if (lt->ex) {
        nb_export_del_reaped(lt->ex, lt);
        nb_session_free(lt->s);
    }
    while (lt->free_ios) {
        struct lt_io *io = lt->free_ios;
        lt->free_ios = io->next_free;
        free(io);
    }
    free(lt->where);
    free(lt);
}

/* unexport --force: the export's target is about to be drained and closed. */
static void lt_kill(struct nb_session *s)
{
    struct lt *lt = s->user;
    log_error(lt->where, "export '%s' was unexported: the disk fails from "
              "now on", nb_export_name(lt->ex));
    nb_export_del_reaped(lt->ex, lt);
    lt->ex = NULL;
    lt->et = NULL;
    lt->s = NULL;
    s->user = NULL;
    s->kill = NULL;
}

static const struct vbd_target_ops lt_ops = {
    .submit = lt_submit,
    .kick = lt_kick,
    .drain = lt_drain,
    .inflight = lt_inflight,
    .close = lt_close,
};

struct vbd_target *nb_local_open(struct nb_export *ex, const char *peer,
                                 const char *owner, bool readonly,
                                 const char *where, char *err, size_t errlen)
{
    if (!readonly && nb_export_readonly(ex)) {
        snprintf(err, errlen, "export '%s' is read-only: attach it with mode "
                 "r", nb_export_name(ex));
        return NULL;
    }
    struct lt *lt = calloc(1, sizeof(*lt));
    if (lt)
        lt->where = strdup(where);
    if (!lt || !lt->where ||
        !(lt->s = nb_session_new(ex, peer, owner, readonly))) {
        if (lt && lt->where && errno == EBUSY)
            snprintf(err, errlen, "export '%s' is in use by another guest",
                     nb_export_name(ex));
        else
            snprintf(err, errlen, "out of memory");
        if (lt)
            free(lt->where);
        free(lt);
        return NULL;
    }
    lt->ex = ex;
    lt->et = nb_export_target(ex);
    lt->pub.ops = &lt_ops;
    lt->pub.info = lt->et->info;
    lt->pub.info.readonly = readonly;
    lt->pub.info.can_flush = lt->et->info.can_flush && !readonly;
    lt->pub.info.can_discard = lt->et->info.can_discard && !readonly;
    lt->s->user = lt;
    lt->s->kill = lt_kill;
    nb_export_add_reaped(ex, lt_reaped, lt);
    return &lt->pub;
}
