/* Toolstack disk commands (device.c): block-attach, block-detach,
 * block-list, written the way libxl writes disks into xenstore. */
#ifndef NETBUS_XENSIM_DEVICE_H
#define NETBUS_XENSIM_DEVICE_H

/* argv[0] = the subcommand; exit status 0 ok, 1 failed, 2 bad usage. */
int xensim_cmd_block_attach(int argc, char **argv);
int xensim_cmd_block_detach(int argc, char **argv);
int xensim_cmd_block_list(int argc, char **argv);

#endif
