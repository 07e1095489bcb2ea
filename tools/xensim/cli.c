/* Toolstack subcommands: wait, create, list, pause/unpause/suspend/resume/
 * destroy. Output is one line per item so scripts can read it. */
#include "cli.h"
#include "host.h"
#include "xenif.h"
#include "xensim_client.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int xensim_cli_connect(const char *cmd, const char *dir)
{
    if (!dir || !*dir) {
        fprintf(stderr, "xensim %s: no --dir given and XENSIM_DIR is not set; "
                "pass the directory of a running `xensim host`\n", cmd);
        return -1;
    }
    char err[512];
    int fd = xensim_connect(dir, 0, false, err, sizeof(err));
    if (fd < 0)
        fprintf(stderr, "xensim %s: %s\n", cmd, err);
    return fd;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

int xensim_cli_number(const char *s, unsigned long max, unsigned long *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

long xensim_cli_domain(const char *cmd, int sock, const char *arg,
                       bool must_exist)
{
    unsigned long id;
    struct xensim_dom_info info;
    if (parse_uint(arg, XENSIM_DOMID_MAX, &id) == 0 &&
        (!must_exist || (xensim_domain_info(sock, (unsigned)id, &info) == 0 &&
                         info.domid == id)))
        return (long)id;
    for (unsigned next = 0; xensim_domain_info(sock, next, &info) == 0;
         next = info.domid + 1)
        if (strcmp(info.name, arg) == 0)
            return info.domid;
    fprintf(stderr, "xensim %s: no domain with id or name '%s' (see `xensim "
            "list`)\n", cmd, arg);
    return -1;
}

int xensim_cli_timeout(const char *cmd, const char *arg, unsigned long *out)
{
    if (xensim_cli_number(arg, 3600, out) == 0 && *out > 0)
        return 0;
    fprintf(stderr, "xensim %s: --timeout %s: want 1..3600 seconds\n", cmd, arg);
    return -1;
}

int xensim_cli_ctx_open(struct xensim_cli_ctx *c, const char *cmd, const char *dir)
{
    c->cmd = cmd;
    c->xs = NULL;
    c->sock = xensim_cli_connect(cmd, dir);
    if (c->sock < 0)
        return -1;
    char real[PATH_MAX], err[512];
    if (!realpath(dir, real)) {
        fprintf(stderr, "xensim %s: %s: %s\n", cmd, dir, strerror(errno));
        close(c->sock);
        return -1;
    }
    struct xenif_config cfg = { .kind = XENIF_XENSIM, .xensim_dir = real,
                                .xensim_domid = 0 };
    c->xs = xenif_xs_open(&cfg, err, sizeof(err));
    if (!c->xs) {
        fprintf(stderr, "xensim %s: xenstore: %s\n", cmd, err);
        close(c->sock);
        return -1;
    }
    return 0;
}

void xensim_cli_ctx_close(struct xensim_cli_ctx *c)
{
    if (c->xs)
        xenif_xs_close(c->xs);
    if (c->sock >= 0)
        close(c->sock);
}

static const struct option dir_only_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "timeout", required_argument, NULL, 't' },
    { NULL, 0, NULL, 0 },
};

int xensim_cmd_wait(int argc, char **argv)
{
    const char *dir = getenv("XENSIM_DIR");
    unsigned long timeout = 10;
    int o;
    while ((o = getopt_long(argc, argv, "d:t:", dir_only_opts, NULL)) != -1) {
        if (o == 'd')
            dir = optarg;
        else if (o == 't' && parse_uint(optarg, 86400, &timeout) == 0)
            continue;
        else {
            fprintf(stderr, "usage: xensim wait [--dir DIR] [--timeout SEC]\n");
            return 2;
        }
    }
    if (!dir || !*dir) {
        fprintf(stderr, "xensim wait: no --dir given and XENSIM_DIR is not set\n");
        return 2;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    char err[512];
    for (;;) {
        if (xensim_host_answers(dir, err, sizeof(err)))
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= (time_t)timeout) {
            fprintf(stderr, "xensim wait: no host answered within %lus: %s\n",
                    timeout, err);
            return 1;
        }
        usleep(20000);
    }
}

int xensim_cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "name", required_argument, NULL, 'n' },
        { "uuid", required_argument, NULL, 'u' },
        { "memory", required_argument, NULL, 'm' },
        { NULL, 0, NULL, 0 },
    };
    const char *usage = "usage: xensim create [--dir DIR] --name NAME "
                        "[--uuid UUID] [--memory MiB]\n";
    const char *dir = getenv("XENSIM_DIR"), *name = NULL;
    struct xensim_req req;
    xensim_req_init(&req, XENSIM_OP_DOMAIN_CREATE);
    unsigned long mib = XENSIM_DEFAULT_GUEST_MIB;
    int o;
    while ((o = getopt_long(argc, argv, "d:n:u:m:", opts, NULL)) != -1) {
        switch (o) {
        case 'd':
            dir = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'u':
            if (xensim_uuid_parse(optarg, req.uuid) < 0) {
                fprintf(stderr, "xensim create: --uuid %s is not a UUID "
                        "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)\n", optarg);
                return 2;
            }
            break;
        case 'm':
            if (parse_uint(optarg, XENSIM_MAX_MIB, &mib) < 0 || mib == 0) {
                fprintf(stderr, "xensim create: --memory %s: want 1..%u MiB\n",
                        optarg, XENSIM_MAX_MIB);
                return 2;
            }
            break;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!name || optind != argc) {
        fprintf(stderr, "xensim create: %s\n%s", name ? "unexpected argument"
                : "--name is required", usage);
        return 2;
    }
    if (strlen(name) >= XENSIM_NAME_MAX) {
        fprintf(stderr, "xensim create: name too long (max %d characters)\n",
                XENSIM_NAME_MAX - 1);
        return 2;
    }
    strcpy(req.name, name);
    req.memory_mib = (uint32_t)mib;
    int sock = xensim_cli_connect("create", dir);
    if (sock < 0)
        return 1;
    struct xensim_rsp rsp;
    int rc = xensim_call(sock, &req, &rsp, NULL, NULL);
    int e = errno;
    close(sock);
    if (rc < 0) {
        const char *why = e == EEXIST ? "a domain with that name or UUID already "
                                        "exists (see `xensim list`)"
                        : e == EINVAL ? "invalid name: use 1-63 characters of "
                                        "A-Z a-z 0-9 . _ -"
                        : e == ENOSPC ? "no free domain id"
                                      : strerror(e);
        fprintf(stderr, "xensim create: cannot create '%s': %s\n", name, why);
        return 1;
    }
    printf("%u\n", rsp.dom.domid);
    return 0;
}

int xensim_cmd_list(int argc, char **argv)
{
    const char *dir = getenv("XENSIM_DIR");
    int o;
    while ((o = getopt_long(argc, argv, "d:", dir_only_opts, NULL)) != -1) {
        if (o != 'd') {
            fprintf(stderr, "usage: xensim list [--dir DIR]\n");
            return 2;
        }
        dir = optarg;
    }
    int sock = xensim_cli_connect("list", dir);
    if (sock < 0)
        return 1;
    printf("%-5s %-20s %-9s %8s %5s %s\n", "ID", "NAME", "STATE", "MEM(MiB)",
           "PROCS", "UUID");
    struct xensim_dom_info info;
    unsigned next = 0;
    while (xensim_domain_info(sock, next, &info) == 0) {
        char uuid[37];
        xensim_uuid_format(info.uuid, uuid);
        printf("%-5u %-20s %-9s %8u %5u %s\n", info.domid, info.name,
               xensim_dom_state_name(info.state), info.memory_mib,
               info.nr_procs, uuid);
        next = info.domid + 1;
    }
    int e = errno;
    close(sock);
    if (e != ENOENT) {
        fprintf(stderr, "xensim list: %s\n", strerror(e));
        return 1;
    }
    return 0;
}

int xensim_cmd_lifecycle(int argc, char **argv)
{
    static const struct { const char *name; enum xensim_op op; } cmds[] = {
        { "pause", XENSIM_OP_DOMAIN_PAUSE },
        { "unpause", XENSIM_OP_DOMAIN_UNPAUSE },
        { "suspend", XENSIM_OP_DOMAIN_SUSPEND },
        { "resume", XENSIM_OP_DOMAIN_RESUME },
        { "destroy", XENSIM_OP_DOMAIN_DESTROY },
    };
    const char *cmd = argv[0];
    enum xensim_op op = 0;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            op = cmds[i].op;
    const char *dir = getenv("XENSIM_DIR");
    int o;
    while ((o = getopt_long(argc, argv, "d:", dir_only_opts, NULL)) != -1) {
        if (o != 'd')
            goto usage;
        dir = optarg;
    }
    if (!op || optind + 1 != argc)
        goto usage;
    int sock = xensim_cli_connect(cmd, dir);
    if (sock < 0)
        return 1;
    long domid = xensim_cli_domain(cmd, sock, argv[optind], false);
    int rc = domid < 0 ? -1 : xensim_domain_op(sock, op, (unsigned)domid);
    int e = errno;
    close(sock);
    if (domid < 0)
        return 1;
    if (rc < 0) {
        const char *why = e == ESRCH ? "no such domain (see `xensim list`)"
                        : e == EPERM ? "domain 0 is the host and cannot be "
                                       "paused, suspended or destroyed"
                        : e == EALREADY ? "it is already suspended"
                        : e == EINVAL && op == XENSIM_OP_DOMAIN_RESUME
                            ? "it is not suspended"
                        : e == EINVAL ? "it is suspended; use `xensim resume`"
                                      : strerror(e);
        fprintf(stderr, "xensim %s: domain %ld: %s\n", cmd, domid, why);
        return 1;
    }
    return 0;
usage:
    fprintf(stderr, "usage: xensim %s [--dir DIR] DOMAIN (id or name)\n", cmd);
    return 2;
}

void xensim_usage(FILE *f)
{
    fputs(
"usage: xensim COMMAND [OPTIONS]\n"
"\n"
"Simulates a Xen host (xenstore, domains, grant tables, event channels) so\n"
"netbus backends and frontends run without a hypervisor.\n"
"\n"
"Commands (DIR defaults to $XENSIM_DIR; DOMAIN is a domain id or name):\n"
"  host --dir DIR [--dom0-memory MiB] [--log-level LEVEL]\n"
"        run a host in the foreground until SIGINT/SIGTERM: xenstored at\n"
"        DIR/socket (domain N: DIR/domN/socket), control socket at\n"
"        DIR/xensim.sock (domain N: DIR/domN/xensim.sock)\n"
"  xenstored --dir DIR [OPTIONS]\n"
"        run only the xenstore daemon (see `xensim xenstored --help`)\n"
"  wait [--dir DIR] [--timeout SEC]\n"
"        wait until the host at DIR answers (default 10 s)\n"
"  create [--dir DIR] --name NAME [--uuid UUID] [--memory MiB]\n"
"        create a running domain and print its domid (default 128 MiB)\n"
"  list [--dir DIR]\n"
"        one line per domain: id, name, state, memory, processes, uuid\n"
"  pause | unpause [--dir DIR] DOMAIN\n"
"        stop / continue the domain's processes\n"
"  suspend | resume [--dir DIR] DOMAIN\n"
"        suspend (pauses, fires @releaseDomain) / resume the domain\n"
"  destroy [--dir DIR] DOMAIN\n"
"        kill its processes, close its event channels, free its memory,\n"
"        remove /local/domain/N and fire @releaseDomain\n"
"  run [--dir DIR] --domid DOMAIN -- CMD [ARG...]\n"
"        run CMD as a guest of DOMAIN: sets XENSIM_DIR, XENSIM_DOMID,\n"
"        XENSTORED_PATH and NETBUS_XENIF=xensim; CMD gets its own process\n"
"        group, which pause/destroy signal\n"
"  block-attach [--dir DIR] DOMAIN TARGET VDEV [--mode r|w] [--type vbd|qdisk]\n"
"               [--backend DOMAIN] [--no-wait] [--timeout SEC]\n"
"        give DOMAIN a disk as libxl does (VDEV: xvda, xvdb, ... or 51712)\n"
"        and wait for the backend to take it\n"
"  block-detach [--dir DIR] DOMAIN VDEV [--timeout SEC]\n"
"        close the backend, wait for Closed, remove the device\n"
"  block-list [--dir DIR] DOMAIN\n"
"        one line per disk: vdev, devid, backend, type, states, mode, target\n"
"  usbctrl-attach [--dir DIR] DOMAIN [--devid N] [--type pv|qusb] [--version 1|2]\n"
"                 [--ports N] [--backend DOMAIN] [--no-wait] [--timeout SEC]\n"
"        give DOMAIN a PV USB controller as libxl does; prints its devid\n"
"  usbdev-attach [--dir DIR] DOMAIN DEVICE [--controller N] [--port P]\n"
"        put a host USB device (bus id 1-2, VID:PID[:SERIAL] or\n"
"        netbus://HOST[:PORT]/EXPORT) on a free port; prints CONTROLLER PORT\n"
"  usbdev-detach [--dir DIR] DOMAIN CONTROLLER PORT\n"
"        empty the port\n"
"  usbctrl-detach [--dir DIR] DOMAIN DEVID [--timeout SEC]\n"
"        empty its ports, close the backend, remove the controller\n"
"  usb-list [--dir DIR] DOMAIN\n"
"        controllers (devid, type, backend, states, version) and their ports\n"
"  migrate [--dir DIR] DOMAIN --to DEST_DIR [--timeout SEC] [--quiet]\n"
"        move a running domain to the host at DEST_DIR (suspend, pause, copy\n"
"        memory and grants, recreate its disks, resume there); prints the\n"
"        new domid\n"
"  cluster up --dir DIR --hosts A,B,... [--subnet CIDR] [--netbusd PATH]\n"
"        several hosts, each in its own network namespace joined by veth\n"
"        (loopback addresses where namespaces cannot be made); also\n"
"        cluster down|list|addr|exec|link (see `xensim cluster --help`)\n"
"\n"
"Exit status: 0 ok, 1 failed (the message says why), 2 bad usage.\n"
"See xensim(1).\n", f);
}
