/* netbusctl: commands, one file per concept. */
#ifndef NETBUS_NETBUSCTL_H
#define NETBUS_NETBUSCTL_H

#include <stdbool.h>

struct xenif_xs;

/* netbusctl.c: the xenstore connection for command cmd, chosen from the
 * environment as netbusd does; NULL after a message naming cmd. */
struct xenif_xs *netbusctl_xs_open(const char *cmd);
/* A domain id from an id or a name; -1 after a message naming cmd. */
long netbusctl_find_domid(struct xenif_xs *xs, const char *arg, const char *cmd);

/* exports.c: export, unexport, list (argv[0] is the command name). */
int cmd_export(int argc, char **argv);
int cmd_unexport(int argc, char **argv);
int cmd_list(int argc, char **argv);
/* swap.c: hot-swap a guest disk's target. */
int cmd_swap(int argc, char **argv);
/* usb.c: put a USB device on a guest controller's port, take it off. */
int cmd_usb_plug(int argc, char **argv);
int cmd_usb_unplug(int argc, char **argv);
/* status.c: the migration and hot-swap timeline. */
int cmd_status(int argc, char **argv);
/* The newest record of kind for device: its pause (quiesce-start to
 * first-request) and *switch_ms (quiesce-start to attached), in ms; -1
 * for what was not recorded (yet). */
double status_last_pause_ms(struct xenif_xs *xs, const char *device,
                            const char *kind, double *switch_ms);

/* json.c: JSON output on stdout. */
void json_str(const char *s);
/* `"key": "v"`, preceded by ", " when comma. */
void json_field(const char *key, const char *v, bool comma);

#endif
