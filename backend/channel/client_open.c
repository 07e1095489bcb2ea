/* client_open: OPEN frames and refusals of the LBE side (see
 * client_open.h). */
#include "client_open.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int nb_send_open(struct nb_peer *p, struct nb_call *call, uint32_t flags,
                 uint32_t resume, const char *export_name, const char *owner,
                 int (*reply)(struct nb_call *call, const struct nb_hdr *h,
                              const uint8_t *payload))
{
    if (!nb_peer_up(p))
        return -1;
    struct nb_open m = { .flags = flags, .resume_session = resume };
    snprintf(m.name, sizeof(m.name), "%s", export_name);
    snprintf(m.owner, sizeof(m.owner), "%s", owner);
    uint8_t b[NB_MAX_CTRL];
    struct nb_hdr h = { .type = NB_OPEN };
    nb_out_set(&call->out, &h, b, nb_open_encode(b, &m), NULL, 0);
    call->reply = reply;
    call->sink = NULL;
    return nb_peer_send(p, call);
}

const char *nb_open_refusal(char *buf, size_t len, int32_t st,
                            const char *server, const char *export_name,
                            bool usb)
{
    const char *what = usb ? "device" : "disk";
    switch (st) {
    case NB_ST_NOENT:
        snprintf(buf, len, "%s has no export '%s' for this host (no such "
                 "export, or this host is not among its allowed peers)",
                 server, export_name);
        break;
    case NB_ST_ROFS:
        snprintf(buf, len, "export '%s' is read-only: attach it with mode r",
                 export_name);
        break;
    case NB_ST_NOTSUP:
        snprintf(buf, len, "export '%s' is not a %s", export_name,
                 usb ? "USB device" : "disk");
        break;
    case NB_ST_BUSY:
        snprintf(buf, len, "export '%s' is in use by another guest (or this "
                 "guest's %s was taken over from another host)", export_name,
                 what);
        break;
    default:
        snprintf(buf, len, "opening export '%s' failed: %s", export_name,
                 strerror(-nb_status_errno(st)));
    }
    return buf;
}
