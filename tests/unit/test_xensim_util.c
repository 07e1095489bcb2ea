/* Helpers for the xensim suites (see test_xensim.h). */
#include "test_xensim.h"
#include "log.h"
#include "tools/xensim/host.h"
#include "unit.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int sim_host_start(struct sim_host *h, const char *tag)
{
    h->dir = unit_tmpdir(tag);
    if (!h->dir)
        return -1;
    h->pid = fork();
    if (h->pid < 0)
        return -1;
    if (h->pid == 0) {
        const char *bin = getenv("XENSIM_BIN");
        if (bin && *bin) {
            execl(bin, bin, "host", "--dir", h->dir, "--log-level", "error",
                  (char *)NULL);
            _exit(127);
        }
        log_init("xensim", LOG_LVL_ERROR, false);
        _exit(xensim_host_run(h->dir, 256));
    }
    char err[512];
    for (int i = 0; i < 500; i++) {
        if (xensim_host_answers(h->dir, err, sizeof(err)))
            return 0;
        usleep(10000);
    }
    return -1;
}

int sim_host_stop(struct sim_host *h)
{
    int status = -1;
    if (h->pid > 0) {
        kill(h->pid, SIGTERM);
        waitpid(h->pid, &status, 0);
        h->pid = 0;
    }
    unit_rmtree(h->dir);
    free(h->dir);
    h->dir = NULL;
    return status;
}

int sim_admin(const struct sim_host *h)
{
    char err[512];
    return xensim_connect(h->dir, 0, false, err, sizeof(err));
}

int sim_create(const struct sim_host *h, const char *name)
{
    int fd = sim_admin(h);
    if (fd < 0)
        return -1;
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_DOMAIN_CREATE);
    snprintf(req.name, sizeof(req.name), "%s", name);
    req.memory_mib = 16;
    int rc = xensim_call(fd, &req, &rsp, NULL, NULL);
    close(fd);
    return rc < 0 ? -1 : (int)rsp.dom.domid;
}

int sim_destroy(const struct sim_host *h, unsigned domid)
{
    int fd = sim_admin(h);
    if (fd < 0)
        return -1;
    int rc = xensim_domain_op(fd, XENSIM_OP_DOMAIN_DESTROY, domid);
    close(fd);
    return rc;
}

struct xenif_config sim_config(const struct sim_host *h, unsigned domid)
{
    struct xenif_config cfg = { .kind = XENIF_XENSIM, .xensim_dir = h->dir,
                                .xensim_domid = (int)domid };
    return cfg;
}

int sim_grant_flags(const struct sim_host *h, unsigned domid, xenif_gref ref)
{
    int fd = sim_admin(h);
    if (fd < 0)
        return -1;
    struct xensim_gnt_layout *tab = xensim_gnt_attach(fd, domid, PROT_READ,
                                                      NULL, NULL);
    close(fd);
    if (!tab)
        return -1;
    int flags = (int)(__atomic_load_n(&tab->entries[ref].flags_domid,
                                      __ATOMIC_ACQUIRE) & 0xffff);
    munmap(tab, sizeof(*tab));
    return flags;
}

int sim_port_status(const struct sim_host *h, unsigned domid, xenif_port port,
                    struct xensim_rsp *rsp)
{
    int fd = sim_admin(h);
    if (fd < 0)
        return -1;
    struct xensim_req req;
    xensim_req_init(&req, XENSIM_OP_EVTCHN_STATUS);
    req.domid = domid;
    req.port = port;
    int rc = xensim_call(fd, &req, rsp, NULL, NULL);
    close(fd);
    return rc;
}

int sim_readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}
