/* `xensim run`: runs a command as a process of a simulated domain. The
 * command inherits a connection to the domain's control socket, which is how
 * the host learns its pid (SO_PEERCRED survives exec) to pause or kill it. */
#include "cli.h"
#include "host.h"
#include "xensim_client.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Own process group, so signals from the host reach the command's children;
 * keeps the terminal's foreground if we had it. */
static void own_process_group(void)
{
    bool foreground = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
    if (setpgid(0, 0) < 0)
        return;
    if (foreground) {
        signal(SIGTTOU, SIG_IGN);
        tcsetpgrp(STDIN_FILENO, getpgrp());
        signal(SIGTTOU, SIG_DFL);
    }
}

int xensim_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "domid", required_argument, NULL, 'i' },
        { NULL, 0, NULL, 0 },
    };
    const char *usage = "usage: xensim run [--dir DIR] --domid DOMAIN -- CMD "
                        "[ARG...]\n";
    const char *dir = getenv("XENSIM_DIR"), *dom = NULL;
    int o;
    /* '+': stop at the first non-option, CMD's options are its own. */
    while ((o = getopt_long(argc, argv, "+d:i:", opts, NULL)) != -1) {
        if (o == 'd')
            dir = optarg;
        else if (o == 'i')
            dom = optarg;
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!dom || optind >= argc) {
        fprintf(stderr, "xensim run: %s\n%s", dom ? "no command given"
                : "--domid is required", usage);
        return 2;
    }
    if (!dir || !*dir) {
        fprintf(stderr, "xensim run: no --dir given and XENSIM_DIR is not set\n");
        return 2;
    }
    char absdir[PATH_MAX];
    if (!realpath(dir, absdir)) {
        fprintf(stderr, "xensim run: %s: %s\n", dir, strerror(errno));
        return 1;
    }

    /* Find the domain through dom0, then join it through its own socket. */
    int sock = xensim_cli_connect("run", absdir);
    if (sock < 0)
        return 1;
    long found = xensim_cli_domain("run", sock, dom, true);
    close(sock);
    if (found < 0)
        return 1;
    unsigned domid = (unsigned)found;

    if (domid != 0) {
        own_process_group();
        /* Left open across exec on purpose: it marks CMD as the domain's.
         * XENSIM_RUN_FD tells a guest that migrates which one to move. */
        char err[512], fdnum[16];
        int mark = xensim_connect(absdir, domid, true, err, sizeof(err));
        if (mark < 0) {
            fprintf(stderr, "xensim run: %s\n", err);
            return 1;
        }
        snprintf(fdnum, sizeof(fdnum), "%d", mark);
        setenv("XENSIM_RUN_FD", fdnum, 1);
    } else {
        unsetenv("XENSIM_RUN_FD");
    }
    char num[16], xs[PATH_MAX + 32];
    snprintf(num, sizeof(num), "%u", domid);
    if (domid == 0)
        snprintf(xs, sizeof(xs), "%s/socket", absdir);
    else
        snprintf(xs, sizeof(xs), "%s/dom%u/socket", absdir, domid);
    setenv("XENSIM_DIR", absdir, 1);
    setenv("XENSIM_DOMID", num, 1);
    setenv("XENSTORED_PATH", xs, 1);
    setenv("NETBUS_XENIF", "xensim", 1);
    execvp(argv[optind], argv + optind);
    fprintf(stderr, "xensim run: cannot run %s: %s\n", argv[optind],
            strerror(errno));
    return 127;
}
