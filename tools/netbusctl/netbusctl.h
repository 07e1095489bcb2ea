/* netbusctl: commands, one file per concept. */
#ifndef NETBUS_NETBUSCTL_H
#define NETBUS_NETBUSCTL_H

/* exports.c: export, unexport, list (argv[0] is the command name). */
int cmd_export(int argc, char **argv);
int cmd_unexport(int argc, char **argv);
int cmd_list(int argc, char **argv);

#endif
