/* Client end of the xensim control socket (see xensim_proto.h): connect as a
 * domain and make synchronous calls. Used by the xenif xensim ops, the xensim
 * CLI and tests. */
#ifndef NETBUS_XENSIM_CLIENT_H
#define NETBUS_XENSIM_CLIENT_H

#include "xensim_proto.h"

#include <stdbool.h>
#include <stddef.h>

/* Path of domain domid's control socket under dir. -1 + ENAMETOOLONG. */
int xensim_sock_path(char *buf, size_t len, const char *dir, unsigned domid);

/* Connects to the host at dir as domain domid. Returns the socket fd
 * (close-on-exec unless keep_on_exec), or -1 with errno and a message in err
 * that says what to do. */
int xensim_connect(const char *dir, unsigned domid, bool keep_on_exec,
                   char *err, size_t errlen);

/* For the xenif xensim ops: resolves cfg (xenif_resolve) and connects as the
 * domain it names, *domid. Returns the socket, or -1 with a message in err. */
struct xenif_config;
int xensim_connect_config(const struct xenif_config *cfg, unsigned *domid,
                          char *err, size_t errlen);

/* Sends req, waits for the response. fds (may be NULL) receives up to
 * XENSIM_MAX_FDS descriptors, *nfds their number; unused slots are -1.
 * Returns 0 when the host answered err 0; otherwise -1 with errno set (the
 * host's error, or the transport's: EPIPE when the host went away), and any
 * received fds closed. */
int xensim_call(int sock, const struct xensim_req *req, struct xensim_rsp *rsp,
                int *fds, unsigned *nfds);

/* A request with op set and everything else zero. */
void xensim_req_init(struct xensim_req *req, enum xensim_op op);

/* True when a host serves dir: it accepts a dom0 connection and answers
 * about domain 0. Otherwise false, with the reason in err. */
bool xensim_host_answers(const char *dir, char *err, size_t errlen);

/* XENSIM_OP_GNT_ATTACH: maps domain domid's grant table with prot (munmap
 * sizeof(struct xensim_gnt_layout) when done). *mem_fd gets the domain's
 * memory memfd (closed instead when mem_fd is NULL), *mem_pages (may be NULL)
 * its size. NULL with errno. */
struct xensim_gnt_layout *xensim_gnt_attach(int sock, unsigned domid, int prot,
                                            int *mem_fd, uint32_t *mem_pages);

/* Convenience wrappers for the admin ops (dom0 connection). */
int xensim_domain_op(int sock, enum xensim_op op, unsigned domid);
int xensim_domain_info(int sock, unsigned domid, struct xensim_dom_info *info);

const char *xensim_dom_state_name(unsigned state);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"; buf must hold 37 bytes. */
void xensim_uuid_format(const uint8_t uuid[16], char *buf);
/* 0, or -1 if s is not a UUID in that form. */
int xensim_uuid_parse(const char *s, uint8_t uuid[16]);

#endif
