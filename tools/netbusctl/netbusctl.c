/* netbusctl: the operator's command line for netbus. Commands talk to
 * xenstore through xenif, the same way netbusd does. */
#include "netbusctl.h"
#include "xenif.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: netbusctl COMMAND [ARGS]\n"
            "commands:\n"
            "  info          which hypervisor interface is in use (xen or\n"
            "                xensim), this domain's id, and the domains that\n"
            "                xenstore lists under /local/domain\n"
            "  export NAME PATH [--allow PEER,...] [--readonly] [--timeout S]\n"
            "                publish a disk under NAME (netbusd opens it)\n"
            "  export NAME usb:DEVICE [--allow PEER,...] [--timeout S]\n"
            "                publish a USB device (netbusd claims it)\n"
            "  unexport NAME [--force] [--timeout S]\n"
            "                stop publishing it (refused while in use)\n"
            "  list [--json] this host's exports and their sessions\n"
            "  swap DOMAIN DEVICE TARGET [--timeout S]\n"
            "                hot-swap a guest disk to another target (a path\n"
            "                or netbus://HOST/EXPORT of the same size)\n"
            "  usb-plug DOMAIN CONTROLLER PORT DEVICE [--timeout S]\n"
            "                put a USB device (BUS-PORT, VENDOR:PRODUCT[:SERIAL]\n"
            "                or netbus://HOST/EXPORT) on a guest controller's port\n"
            "  usb-unplug DOMAIN CONTROLLER PORT\n"
            "                take it off again\n"
            "  status [--json] [--last N]\n"
            "                the migration and hot-swap timeline\n"
            "  help          this text\n"
            "The hypervisor interface is chosen as for netbusd: $NETBUS_XENIF\n"
            "(xen, xensim, auto), /dev/xen, or $XENSIM_DIR for the simulator.\n");
}

struct xenif_xs *netbusctl_xs_open(const char *cmd)
{
    struct xenif_config cfg;
    xenif_config_from_env(&cfg);
    char err[512] = "";
    struct xenif_xs *xs = xenif_xs_open(&cfg, err, sizeof(err));
    if (!xs)
        fprintf(stderr, "netbusctl %s: %s\n", cmd, err);
    return xs;
}

long netbusctl_find_domid(struct xenif_xs *xs, const char *arg, const char *cmd)
{
    char *end;
    unsigned long id = strtoul(arg, &end, 10);
    if (*arg >= '0' && *arg <= '9' && !*end && id < 0x7ff0)
        return (long)id;
    unsigned n = 0;
    char **doms = xenif_xs_directory(xs, 0, "/local/domain", &n);
    long found = -1;
    for (unsigned i = 0; doms && i < n && found < 0; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/local/domain/%s/name", doms[i]);
        char *name = xenif_xs_read(xs, 0, path, NULL);
        if (name && strcmp(name, arg) == 0)
            found = strtol(doms[i], NULL, 10);
        free(name);
    }
    free(doms);
    if (found < 0)
        fprintf(stderr, "netbusctl %s: no domain with id or name '%s'\n", cmd, arg);
    return found;
}

static int cmd_info(void)
{
    struct xenif_config cfg;
    xenif_config_from_env(&cfg);
    char err[512] = "";
    enum xenif_kind kind;
    if (xenif_config_resolve(&cfg, &kind, err, sizeof(err)) < 0) {
        fprintf(stderr, "netbusctl: %s\n", err);
        return 1;
    }
    struct xenif_xs *xs = netbusctl_xs_open("info");
    if (!xs)
        return 1;
    printf("hypervisor interface: %s\n", xenif_kind_name(kind));
    printf("domain: %u\n", xenif_xs_own_domid(xs));
    unsigned n = 0;
    char **doms = xenif_xs_directory(xs, 0, "/local/domain", &n);
    if (!doms) {
        perror("netbusctl: reading /local/domain");
        xenif_xs_close(xs);
        return 1;
    }
    for (unsigned i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/local/domain/%s/name", doms[i]);
        char *name = xenif_xs_read(xs, 0, path, NULL);
        printf("  domain %s: %s\n", doms[i], name ? name : "(no name)");
        free(name);
    }
    free(doms);
    xenif_xs_close(xs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "info") == 0 && argc == 2)
        return cmd_info();
    if (strcmp(argv[1], "export") == 0)
        return cmd_export(argc - 1, argv + 1);
    if (strcmp(argv[1], "unexport") == 0)
        return cmd_unexport(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return cmd_list(argc - 1, argv + 1);
    if (strcmp(argv[1], "swap") == 0)
        return cmd_swap(argc - 1, argv + 1);
    if (strcmp(argv[1], "usb-plug") == 0)
        return cmd_usb_plug(argc - 1, argv + 1);
    if (strcmp(argv[1], "usb-unplug") == 0)
        return cmd_usb_unplug(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "netbusctl: unknown command or arguments: '%s' (see "
            "`netbusctl help`)\n", argv[1]);
    return 2;
}
