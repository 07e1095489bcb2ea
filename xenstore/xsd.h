/* xsd: the simulator's xenstore daemon, speaking xs_wire (xen/io/xs_wire.h)
 * on unix sockets, one per domain: dom0 at RUNDIR/socket (as the real
 * xenstored's XENSTORED_RUNDIR), domain N at RUNDIR/domN/socket. The socket a
 * client connects to decides the domain it acts as. Runs inside an evloop so
 * the xensim host can serve xenstore and its own control socket in one
 * thread. */
#ifndef NETBUS_XSD_H
#define NETBUS_XSD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evloop;
struct xsd;

/* Quotas, as xenstored's -E/-W/-S/-T options (defaults in xsd_limits_default). */
struct xsd_limits {
    unsigned nodes_per_domain;      /* xenstored default 1000 */
    unsigned watches_per_domain;    /* 128 */
    unsigned transactions_per_conn; /* 10 */
    unsigned value_max;             /* 2048 bytes, for unprivileged domains */
    unsigned perms_per_node;        /* 5, for unprivileged domains (0: 5) */
};
void xsd_limits_default(struct xsd_limits *l);

/* Creates RUNDIR (if needed) and listens on RUNDIR/socket for dom0.
 * Initial tree: "/", "/local", "/local/domain", "/tool" owned by dom0.
 * rundir NULL: no sockets at all (loop may then be NULL too); clients are
 * attached with xsd_conn_adopt / fed with xsd_conn_input.
 * Returns NULL with a message in err. */
struct xsd *xsd_new(struct evloop *loop, const char *rundir,
                    const struct xsd_limits *limits, char *err, size_t errlen);
/* Closes every connection and removes the sockets it created. */
void xsd_free(struct xsd *xsd);

/* Domain lifecycle, as XS_INTRODUCE / XS_RELEASE from the toolstack do:
 * introduce listens on RUNDIR/domN/socket, creates /local/domain/N owned by
 * N, and fires @introduceDomain; release closes N's connections, drops its
 * watches and transactions, removes the socket and fires @releaseDomain
 * (the caller removes /local/domain/N as libxl does). */
int xsd_domain_introduce(struct xsd *xsd, unsigned domid);
int xsd_domain_release(struct xsd *xsd, unsigned domid);
bool xsd_domain_introduced(const struct xsd *xsd, unsigned domid);
/* Fires a special watch ("@releaseDomain" on shutdown/suspend, ...). */
void xsd_fire_special(struct xsd *xsd, const char *name);

/* Direct store access for the host process, acting as dom0 (no transaction).
 * Return 0 or -1 with errno as the wire operation would. */
int xsd_store_write(struct xsd *xsd, const char *path, const char *value);
int xsd_store_mkdir(struct xsd *xsd, const char *path);
int xsd_store_rm(struct xsd *xsd, const char *path);
/* Caller frees; NULL with errno. */
char *xsd_store_read(struct xsd *xsd, const char *path);
/* perms in xenstore's string form, e.g. "n5" then "r0": owner 5, default
 * none, dom0 read. */
int xsd_store_set_perms(struct xsd *xsd, const char *path,
                        const char *const *perms, unsigned n);

/* Serves an already connected, non-blocking stream socket as domain domid
 * (0: dom0), e.g. one end of a socketpair. The daemon owns fd from now on.
 * NULL with errno. */
struct xsd_conn;
struct xsd_conn *xsd_conn_adopt(struct xsd *xsd, int fd, unsigned domid);
/* Hands bytes to the connection as if read from its socket (fuzzing, and
 * daemons without an event loop); replies go to its socket. Returns 0, or
 * -1 once the connection was closed for bad input (the handle is then
 * freed). */
int xsd_conn_input(struct xsd_conn *c, const void *buf, size_t len);

/* `xensim xenstored --dir DIR [options]`: runs the daemon in the foreground
 * until SIGINT/SIGTERM. Returns the process exit status. */
int xsd_main(int argc, char **argv);

#endif
