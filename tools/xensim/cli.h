/* The xensim subcommands other than `host` and `xenstored`: toolstack
 * commands talking to a running host over its dom0 control socket. */
#ifndef NETBUS_XENSIM_CLI_H
#define NETBUS_XENSIM_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* Each takes argv with argv[0] = the subcommand name; returns the exit
 * status (0 ok, 1 failed, 2 usage error). */
int xensim_cmd_wait(int argc, char **argv);
int xensim_cmd_create(int argc, char **argv);
int xensim_cmd_list(int argc, char **argv);
/* pause, unpause, suspend, resume, destroy */
int xensim_cmd_lifecycle(int argc, char **argv);
int xensim_cmd_run(int argc, char **argv);

void xensim_usage(FILE *f);

/* Helpers for the subcommands; on failure they print why ("xensim CMD: ...")
 * and return -1. */
/* The dom0 control socket of the host at dir (--dir, or $XENSIM_DIR). */
int xensim_cli_connect(const char *cmd, const char *dir);
/* s as a decimal number of digits only, at most max: 0, or -1 (nothing
 * printed). */
int xensim_cli_number(const char *s, unsigned long max, unsigned long *out);
/* The domain arg names, by id or by name. A number is taken as the id
 * as it stands, unless must_exist: then it must be a domain's id, or else is
 * looked up as a name. */
long xensim_cli_domain(const char *cmd, int sock, const char *arg,
                       bool must_exist);
/* --timeout SEC: 1..3600 seconds. */
int xensim_cli_timeout(const char *cmd, const char *arg, unsigned long *out);

/* A toolstack command's connection as dom0: the control socket and the
 * host's xenstore. */
struct xenif_xs;
struct xensim_cli_ctx {
    const char *cmd;
    int sock;
    struct xenif_xs *xs;
};
int xensim_cli_ctx_open(struct xensim_cli_ctx *c, const char *cmd, const char *dir);
void xensim_cli_ctx_close(struct xensim_cli_ctx *c);

#endif
