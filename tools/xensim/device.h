/* Toolstack disk commands (device.c): block-attach, block-detach,
 * block-list, written the way libxl writes disks into xenstore. */
#ifndef NETBUS_XENSIM_DEVICE_H
#define NETBUS_XENSIM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

/* argv[0] = the subcommand; exit status 0 ok, 1 failed, 2 bad usage. */
int xensim_cmd_block_attach(int argc, char **argv);
int xensim_cmd_block_detach(int argc, char **argv);
int xensim_cmd_block_list(int argc, char **argv);

/* For migrate.c: the same steps on a host's xenstore (a dom0 handle). */
struct xenif_xs;

/* Waits until dir/state satisfies ok(state) (state -1: dir gone). Returns
 * the last state seen; *met says whether ok() held before the timeout. */
long device_wait_state(struct xenif_xs *xs, const char *dir, bool (*ok)(long),
                       unsigned timeout_s, bool *met);
/* Backend states a toolstack waits for: InitWait or Connected; that or
 * failed (Closing, Closed, gone); Closed or gone. */
bool device_state_ready(long s);
bool device_state_ready_or_failed(long s);
bool device_state_closed(long s);
/* Writes vbd devid of domain domid with backend domain be of type "vbd"
 * or "qdisk" as libxl does (backend keys bents, frontend and libxl's copy
 * derived). -1 + errno (EEXIST: it exists already), message in err. */
int device_vbd_write(struct xenif_xs *xs, unsigned be, const char *type,
                     unsigned domid, unsigned long devid,
                     const char *(*bents)[2], size_t nbents,
                     char *err, size_t errlen);
/* Waits for its backend to reach InitWait or Connected. */
int device_vbd_wait_ready(struct xenif_xs *xs, unsigned be, const char *type,
                          unsigned domid, unsigned long devid, unsigned timeout_s,
                          char *err, size_t errlen);
/* Removes it: with timeout_s, waits up to that for the backend to be
 * Closed, asking it to close first (online=0, Closing) if ask; then
 * removes the nodes. */
int device_vbd_remove(struct xenif_xs *xs, unsigned be, const char *type,
                      unsigned domid, unsigned long devid, unsigned timeout_s,
                      bool ask);

#endif
