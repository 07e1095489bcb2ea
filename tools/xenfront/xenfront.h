/* xenfront: userspace reference frontends, run as xensim guests.
 * Shared command-line helpers of the `xenfront blk ...` subcommands. */
#ifndef NETBUS_XENFRONT_H
#define NETBUS_XENFRONT_H

#include "blkfront.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* libxl's libxl__device_disk_dev_number for the forms we accept: xvdX[N]
 * (xvda = 51712 = 202 << 8 | 0 << 4; disks past xvdp and partitions past 15
 * use the extended 1 << 28 encoding), dDpP, and a plain number. Returns the
 * devid, or -1. */
long xf_vdev_to_devid(const char *vdev);

/* "4096", "4k", "1m", "2g" (powers of 1024). Returns 0 or -1. */
int xf_parse_size(const char *s, uint64_t *out);
int xf_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* --stop-file FILE: a test ends a timed run once FILE exists, however long
 * its events took. Looks at most every 100 ms of now_ns; once seen, stays
 * seen. A NULL path never stops. */
struct xf_stop_file {
    const char *path;
    uint64_t looked_ns;
    bool looked, seen;
};
bool xf_stop_file_seen(struct xf_stop_file *s, uint64_t now_ns);

/* Device options shared by every blk subcommand; returns 1 if it took the
 * option (o = getopt_long's return), 0 if not, -1 on a bad value (message
 * printed), 2 for --help. */
#define XF_DEV_LONGOPTS                                                       \
    { "vdev", required_argument, NULL, 1000 },                                \
    { "queues", required_argument, NULL, 1001 },                              \
    { "ring-order", required_argument, NULL, 1002 },                          \
    { "max-indirect", required_argument, NULL, 1003 },                        \
    { "no-persistent", no_argument, NULL, 1004 },                             \
    { "timeout", required_argument, NULL, 1005 },                             \
    { "reuse-grants", no_argument, NULL, 1006 },                              \
    { "revoke-grants", no_argument, NULL, 1007 },                             \
    { "resume", required_argument, NULL, 1008 },                             \
    { "verbose", no_argument, NULL, 'v' },                                    \
    { "help", no_argument, NULL, 'h' }
int xf_dev_option(struct bf_opts *o, int opt, const char *arg, const char *cmd,
                  int *have_vdev);
void xf_dev_usage(FILE *f);

/* getopt_long over a blk subcommand's options: takes the device options
 * (xf_dev_option) itself and returns the next of the subcommand's own, -1
 * when they are all read, or XF_OPTS_EXIT with *exit_status set: 0 after
 * --help (usage on stdout), 2 after a bad option or a missing --vdev or
 * stray operands (usage on stderr). */
#define XF_OPTS_EXIT (-2)
struct option;
struct xf_blk_cmd {
    const char *name;           /* "load": messages say "xenfront blk load" */
    void (*usage)(FILE *f);
    struct bf_opts dev;
    int have_vdev;
};
int xf_blk_getopt(struct xf_blk_cmd *cmd, int argc, char **argv,
                  const struct option *opts, int *exit_status);

/* bf_open with the error printed. */
struct blkfront *xf_open(const struct bf_opts *o, const char *cmd);

int xf_blk_verify(int argc, char **argv);
int xf_blk_load(int argc, char **argv);
int xf_blk_check_file(int argc, char **argv);
/* `xenfront usb ...` (usbcmd.c); argv[0] = the subcommand. */
int xf_usb_main(int argc, char **argv);

#endif
