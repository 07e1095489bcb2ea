/* The simulated host: one process owning xenstored (xsd), the domains, their
 * grant tables and event channels, serving the control sockets of
 * xensim_proto.h from one evloop. */
#ifndef NETBUS_XENSIM_HOST_H
#define NETBUS_XENSIM_HOST_H

#include "xensim_proto.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct evloop;
struct xsd;

/* One client connection; its socket decided its domain. */
struct conn {
    struct host *host;
    int fd;
    unsigned domid;
    uint32_t serial;       /* owner tag for frames, refs and ports; never 0 */
    pid_t pid;             /* SO_PEERCRED at connect time */
    bool group_leader;     /* pid leads its process group: signal the group */
    bool suspendable;      /* GUEST_REGISTER: its process handles suspend */
    bool suspending;       /* waiting in GUEST_SUSPEND for an answer */
    struct conn *next;
};

/* An event-channel port of a domain (Xen's struct evtchn, reduced). */
struct port {
    enum xensim_port_state state;
    unsigned remote_dom;   /* UNBOUND: who may bind; INTERDOMAIN: peer */
    unsigned remote_port;  /* INTERDOMAIN */
    int efd;               /* eventfd notified when the peer sends */
    int word_fd;           /* memfd: pending and mask bits (xensim_proto.h) */
    struct conn *owner;    /* the client handle that bound it */
};

/* Everything a domain is, in one struct (migration will copy it). */
struct domain {
    struct host *host;
    unsigned domid;
    char name[XENSIM_NAME_MAX];
    uint8_t uuid[16];
    enum xensim_dom_state state;
    unsigned memory_mib;

    int mem_fd;                 /* the domain's memory */
    uint32_t mem_pages;
    uint32_t *frame_owner;      /* conn serial per page, 0 = free */
    uint32_t frame_hint;

    int gnt_fd;                 /* grant table, struct xensim_gnt_layout */
    struct xensim_gnt_layout *gnt;
    uint32_t *ref_owner;        /* conn serial per ref, 0 = free */
    uint32_t ref_hint;

    struct port *ports;         /* XENSIM_EVTCHN_PORTS */
    int gen_fd;                 /* port generations, read-only for clients */
    uint32_t *gens;

    int listen_fd;              /* this domain's control socket */
};

struct host {
    struct evloop *loop;
    struct xsd *xsd;
    char dir[200];
    struct domain *domains[XENSIM_DOMID_MAX + 1];
    unsigned next_domid;
    struct conn *conns;
    uint32_t next_serial;
};

/* Owner of frames and refs a restore found in use, until the guest
 * process that uses them claims them (GNT_CLAIM). Never a conn serial. */
#define XENSIM_SERIAL_RESERVED UINT32_MAX
/* A handler's answer meaning "the reply comes later" (host_reply). */
#define XENSIM_DEFERRED (-1)

#define XENSIM_DEFAULT_GUEST_MIB 128u
#define XENSIM_DEFAULT_DOM0_MIB  1024u
#define XENSIM_MAX_MIB           16384u

/* `xensim host`: parses its options, runs until SIGINT/SIGTERM. */
int xensim_host_main(int argc, char **argv);
/* Runs a host on dir in the foreground; returns the exit status. */
int xensim_host_run(const char *dir, unsigned dom0_mib);

/* host.c: connection and listener plumbing for domain.c. */
int host_listen(struct host *h, struct domain *d);
void host_unlisten(struct host *h, struct domain *d);
void host_close_conn(struct host *h, struct conn *c);
/* Sends a deferred reply to c (closing c if it cannot be sent). */
void host_reply(struct host *h, struct conn *c, const struct xensim_rsp *rsp);
/* Domain domid, or NULL (also for ids out of range). */
struct domain *host_domain(struct host *h, unsigned domid);
/* The domain a request field names for c: domid, or c's own domain for
 * XENSIM_DOMID_SELF. */
unsigned host_req_domid(const struct conn *c, uint32_t domid);

/* domain.c */
int domain_handle(struct host *h, struct conn *c, const struct xensim_req *req,
                  struct xensim_rsp *rsp);
struct domain *domain_new(struct host *h, unsigned domid, const char *name,
                          const uint8_t uuid[16], unsigned memory_mib,
                          int *err);
/* Tears the domain down (processes, ports, grants, xenstore) and frees it. */
void domain_destroy(struct host *h, struct domain *d);
/* Sends sig to the processes connected as d. Returns how many. */
unsigned domain_signal(struct host *h, struct domain *d, int sig);
/* GUEST_REGISTER, GUEST_SUSPEND. */
int domain_guest_handle(struct host *h, struct conn *c,
                        const struct xensim_req *req, struct xensim_rsp *rsp);

/* gnttab.c: memory, grant table and the grant ops. */
int gnttab_domain_init(struct domain *d);
void gnttab_domain_free(struct domain *d);
int gnttab_handle(struct host *h, struct conn *c, const struct xensim_req *req,
                  struct xensim_rsp *rsp, int *fds, unsigned *nfds);
/* Gives back what the connection held, except grants still in use. */
void gnttab_conn_gone(struct host *h, struct conn *c);
/* DOMAIN_RESTORE: reserve what the copied memory and table use. */
int gnttab_restore(struct domain *d);

/* evtchn.c: port tables and the event-channel ops. */
int evtchn_domain_init(struct domain *d);
/* Closes every port (peers see unbound) and frees the tables. */
void evtchn_domain_free(struct host *h, struct domain *d);
int evtchn_handle(struct host *h, struct conn *c, const struct xensim_req *req,
                  struct xensim_rsp *rsp, int *fds, unsigned *nfds);
void evtchn_conn_gone(struct host *h, struct conn *c);

#endif
