/* A backend under test in a child forked from the test runner, on a
 * xensim host with two guests (the runner plays them): the child logs to
 * HOST/netbusd.log and serves fixed-size commands on a SEQPACKET socket
 * from an event loop; the runner sends them with be_child_call. Shared by
 * the ring suites (test_vbd_ring.c, test_vusb_hc.c). */
#ifndef NETBUS_TEST_BACKEND_CHILD_H
#define NETBUS_TEST_BACKEND_CHILD_H

#include "evloop.h"
#include "test_xensim.h"

#include <stddef.h>
#include <sys/types.h>

struct be_child {
    struct sim_host host;
    unsigned dom_a, dom_b;   /* domains guest-a and guest-b */
    char *logpath;
    pid_t pid;
    int sock;                /* the runner's end */
};

/* Starts the host (tag), creates the guests and forks child_main(its end
 * of the socket) as the backend. 0, or -1. */
int be_child_start(struct be_child *c, const char *tag, int (*child_main)(int sock));
/* Answers one command of the suite's: cmd (clen bytes) read whole, rsp
 * (rlen bytes) zeroed, sent back once it returns; it stops the loop to
 * quit. */
typedef void (*be_child_command)(struct evloop *loop, const void *cmd, void *rsp);
/* In the child: stderr to the log, log_init at level, commands read from
 * sock and answered by command until it stops the loop (a command that does
 * not arrive whole, or an answer that cannot be sent, stops it too); then
 * close_all. The child's exit status. */
int be_child_serve(const struct be_child *c, int sock, int level, size_t clen,
                   size_t rlen, be_child_command command, void (*close_all)(void));
/* Sends cmd and waits (10 s) for the answer of rlen bytes: 0, or -1. */
int be_child_call(const struct be_child *c, const void *cmd, size_t clen, void *rsp,
                  size_t rlen);
/* Once the child was told to quit: reaps it (showing its log if it did not
 * exit 0) and stops the host. 0 if both exited cleanly. */
int be_child_stop(struct be_child *c);
/* 1 if the child's log has a line containing s. */
int be_child_log_has(const struct be_child *c, const char *s);

#endif
