/* Helpers shared by the xensim test suites: a simulated host in a child
 * process (the XENSIM_BIN binary when set, else the host code linked into
 * the test runner), admin calls, and a view of a domain's grant table. */
#ifndef NETBUS_TEST_XENSIM_H
#define NETBUS_TEST_XENSIM_H

#include "xenif.h"
#include "xensim_client.h"

#include <sys/types.h>

struct sim_host {
    char *dir;
    pid_t pid;
};

/* 0 when the host answers on its control socket. */
int sim_host_start(struct sim_host *h, const char *tag);
/* Stops it with SIGTERM; returns its wait status. */
int sim_host_stop(struct sim_host *h);
/* A dom0 control connection (caller closes), or -1. */
int sim_admin(const struct sim_host *h);
/* Creates a domain; returns its domid or -1. */
int sim_create(const struct sim_host *h, const char *name);
int sim_destroy(const struct sim_host *h, unsigned domid);
struct xenif_config sim_config(const struct sim_host *h, unsigned domid);
/* Current flags of grant ref of domain domid, or -1. */
int sim_grant_flags(const struct sim_host *h, unsigned domid, xenif_gref ref);
/* Port status as the host sees it; rsp fields state/remote/remote_port. */
int sim_port_status(const struct sim_host *h, unsigned domid, xenif_port port,
                    struct xensim_rsp *rsp);
/* 1 if fd is readable within timeout_ms. */
int sim_readable(int fd, int timeout_ms);

#endif
