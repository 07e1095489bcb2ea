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

/* For migrate.c and usb.c: the same steps on a host's xenstore (a dom0
 * handle). */
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
/* A state as the commands print it: its xenbus name, "gone" for -1. */
const char *device_state_name(long s);
/* Waits up to timeout_s for the backend at be_dir (of domain be) to reach
 * InitWait or Connected; -1 with why in err: it refused (its error node) or
 * took none of WHAT ("vbd 51712") of its TYPE in time. */
int device_wait_ready(struct xenif_xs *xs, unsigned be, const char *be_dir,
                      const char *what, const char *type, unsigned timeout_s,
                      char *err, size_t errlen);
/* A device's three directories: its backend's, its frontend's and libxl's
 * trusted copy. */
struct device_dirs {
    char be[256], fe[256], libxl[256];
};
/* libxl__device_generic_add, in one transaction: libxl's copy (frontend,
 * backend, bents), the frontend directory (backend, fents; the guest owns
 * it, the backend may read) and the backend directory (frontend, bents; the
 * backend owns it, the guest may read). WHAT ("vbd 51712") names the
 * device in err. -1 + errno (EEXIST: the guest has it already). */
int device_generic_add(struct xenif_xs *xs, unsigned be, unsigned domid,
                       const struct device_dirs *d, const char *what,
                       const char *(*fents)[2], size_t nfents,
                       const char *(*bents)[2], size_t nbents,
                       char *err, size_t errlen);
/* libxl__initiate_device_generic_remove: online=0 and state=Closing on the
 * backend at be_dir, if it is still there, in one transaction. */
void device_ask_close(struct xenif_xs *xs, const char *be_dir);
/* libxl__device_destroy: a device's backend, frontend and libxl
 * directories, with parents left empty, in one transaction. -1 + errno. */
int device_remove_nodes(struct xenif_xs *xs, unsigned be, unsigned domid,
                        const char *be_dir, const char *fe_dir,
                        const char *libxl_dir);
/* For the CLI commands, which print why as "xensim CMD: ..." and return
 * -1: */
/* After a new device's nodes are written: waits for its backend as
 * device_wait_ready does; on failure removes the device again, as libxl
 * does. */
int device_cli_wait_ready_or_remove(struct xenif_xs *xs, const char *cmd,
                                    unsigned be, unsigned domid,
                                    const struct device_dirs *d, const char *what,
                                    const char *type, unsigned timeout_s);
/* Asks the backend to close, waits up to timeout_s for Closed (then goes
 * on, as libxl's forced remove does) and removes the nodes. */
int device_cli_detach(struct xenif_xs *xs, const char *cmd, unsigned be,
                      unsigned domid, const struct device_dirs *d,
                      const char *what, unsigned timeout_s);
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
