/* netbusd: the netbus backend daemon. This first version opens the
 * hypervisor interface (real Xen or xensim) and reports what it found;
 * device classes (vbd, vusb, vif) and the xenbus state machine arrive in
 * backend/core and the per-class folders. */
#include "log.h"
#include "xenif.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NETBUSD_VERSION "0.1"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: netbusd [options]\n"
            "  --probe              open the hypervisor interface, print what\n"
            "                       was found and exit (0 = usable)\n"
            "  --xenif KIND         xen, xensim or auto (default: auto, or\n"
            "                       $NETBUS_XENIF): xen when /dev/xen exists,\n"
            "                       else xensim when $XENSIM_DIR is set\n"
            "  --log-level LEVEL    error, warn, info (default) or debug\n"
            "  --syslog             log to syslog instead of stderr\n"
            "  --version, --help\n"
            "Serving devices is not built yet: this version only probes.\n");
}

static int probe(const struct xenif_config *cfg)
{
    char err[512] = "";
    enum xenif_kind kind;
    if (xenif_config_resolve(cfg, &kind, err, sizeof(err)) < 0) {
        log_error(NULL, "%s", err);
        return 1;
    }
    struct xenif_xs *xs = xenif_xs_open(cfg, err, sizeof(err));
    if (!xs) {
        log_error(NULL, "%s", err);
        return 1;
    }
    struct xenif_evtchn *ec = xenif_evtchn_open(cfg, err, sizeof(err));
    struct xenif_gnt *gnt = ec ? xenif_gnt_open(cfg, err, sizeof(err)) : NULL;
    int rc = 0;
    if (!ec || !gnt) {
        log_error(NULL, "%s", err);
        rc = 1;
    } else {
        printf("hypervisor interface: %s\n", xenif_kind_name(kind));
        printf("domain: %u\n", xenif_xs_own_domid(xs));
        printf("xenstore, event channels, grants: ok\n");
    }
    xenif_gnt_close(gnt);
    xenif_evtchn_close(ec);
    xenif_xs_close(xs);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "probe", no_argument, NULL, 'p' },
        { "xenif", required_argument, NULL, 'x' },
        { "log-level", required_argument, NULL, 'l' },
        { "syslog", no_argument, NULL, 's' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct xenif_config cfg;
    xenif_config_from_env(&cfg);
    int level = LOG_LVL_INFO, do_probe = 0, use_syslog = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p': do_probe = 1; break;
        case 's': use_syslog = 1; break;
        case 'x':
            if (strcmp(optarg, "xen") == 0) cfg.kind = XENIF_XEN;
            else if (strcmp(optarg, "xensim") == 0) cfg.kind = XENIF_XENSIM;
            else if (strcmp(optarg, "auto") == 0) cfg.kind = XENIF_AUTO;
            else {
                fprintf(stderr, "netbusd: --xenif %s: expected xen, xensim or "
                        "auto\n", optarg);
                return 2;
            }
            break;
        case 'l':
            level = log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "netbusd: --log-level %s: expected error, "
                        "warn, info or debug\n", optarg);
                return 2;
            }
            break;
        case 'V': printf("netbusd %s\n", NETBUSD_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "netbusd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    log_init("netbusd", (enum log_level)level, use_syslog);
    if (!do_probe) {
        fprintf(stderr, "netbusd: serving devices is not built yet; use "
                "--probe to check the hypervisor interface\n");
        return 2;
    }
    return probe(&cfg);
}
