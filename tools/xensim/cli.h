/* The xensim subcommands other than `host` and `xenstored`: toolstack
 * commands talking to a running host over its dom0 control socket. */
#ifndef NETBUS_XENSIM_CLI_H
#define NETBUS_XENSIM_CLI_H

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

#endif
