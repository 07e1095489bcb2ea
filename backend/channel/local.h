/* local: the short-circuit. A vbd whose device URL names this host is
 * served by the export's own target in-process, as a session of the export
 * (peer = this host's name): no socket, no copy. The export keeps the
 * device; closing the vbd ends only the session. */
#ifndef NETBUS_CHANNEL_LOCAL_H
#define NETBUS_CHANNEL_LOCAL_H

#include <stdbool.h>
#include <stddef.h>

struct nb_export;
struct vbd_target;

/* NULL with a reason in err. */
struct vbd_target *nb_local_open(struct nb_export *ex, const char *peer,
                                 const char *owner, bool readonly,
                                 const char *where, char *err, size_t errlen);

#endif
