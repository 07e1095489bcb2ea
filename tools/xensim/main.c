/* xensim: a simulated Xen host and its toolstack commands. */
#include "cli.h"
#include "cluster.h"
#include "device.h"
#include "host.h"
#include "migrate.h"
#include "usb.h"
#include "xsd.h"

#include <getopt.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        xensim_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } cmds[] = {
        { "host", xensim_host_main },
        { "xenstored", xsd_main },
        { "wait", xensim_cmd_wait },
        { "create", xensim_cmd_create },
        { "list", xensim_cmd_list },
        { "pause", xensim_cmd_lifecycle },
        { "unpause", xensim_cmd_lifecycle },
        { "suspend", xensim_cmd_lifecycle },
        { "resume", xensim_cmd_lifecycle },
        { "destroy", xensim_cmd_lifecycle },
        { "run", xensim_cmd_run },
        { "block-attach", xensim_cmd_block_attach },
        { "block-detach", xensim_cmd_block_detach },
        { "block-list", xensim_cmd_block_list },
        { "usbctrl-attach", xensim_cmd_usbctrl_attach },
        { "usbctrl-detach", xensim_cmd_usbctrl_detach },
        { "usbdev-attach", xensim_cmd_usbdev_attach },
        { "usbdev-detach", xensim_cmd_usbdev_detach },
        { "usb-list", xensim_cmd_usb_list },
        { "cluster", xensim_cmd_cluster },
        { "migrate", xensim_cmd_migrate },
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[1], cmds[i].name) == 0) {
            optind = 1;
            return cmds[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "xensim: unknown command '%s'\n\n", argv[1]);
    xensim_usage(stderr);
    return 2;
}
