/* xenif: implementation selection, and the xenstore half (libxenstore)
 * against the simulator's xenstored running in a child process. */
#include "unit.h"
#include "evloop.h"
#include "xenif.h"
#include "xsd.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *dir;
static pid_t xsd_pid;

static struct xenif_config sim_config(int domid)
{
    struct xenif_config cfg = { .kind = XENIF_XENSIM, .xensim_dir = dir,
                                .xensim_domid = domid };
    return cfg;
}

static int start_xsd(void)
{
    dir = unit_tmpdir("xenif");
    if (!dir)
        return -1;
    xsd_pid = fork();
    if (xsd_pid < 0)
        return -1;
    if (xsd_pid == 0) {
        struct evloop *loop = evloop_new();
        char err[256];
        struct xsd *xsd = xsd_new(loop, dir, NULL, err, sizeof(err));
        if (!xsd || xsd_domain_introduce(xsd, 5) < 0) {
            fprintf(stderr, "xsd: %s\n", err);
            _exit(1);
        }
        evloop_run(loop);
        _exit(0);
    }
    char sock[512];
    snprintf(sock, sizeof(sock), "%s/dom5/socket", dir);
    for (int i = 0; i < 200; i++) {
        struct stat st;
        if (stat(sock, &st) == 0)
            return 0;
        usleep(10000);
    }
    return -1;
}

static int stop_xsd(void)
{
    if (xsd_pid > 0) {
        kill(xsd_pid, SIGTERM);
        waitpid(xsd_pid, NULL, 0);
    }
    unit_rmtree(dir);
    free(dir);
    return 0;
}

static void test_resolve_errors(void)
{
    struct xenif_config cfg = { .kind = XENIF_AUTO, .xensim_domid = -1 };
    char err[512] = "";
    enum xenif_kind kind;
    unsetenv("XENSIM_DIR");
    if (access("/dev/xen", F_OK) == 0)
        return; /* a real Xen host resolves to xen; nothing to check here */
    CU_ASSERT_EQUAL(xenif_config_resolve(&cfg, &kind, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, ENODEV);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "XENSIM_DIR"));

    cfg.kind = XENIF_XENSIM;
    CU_ASSERT_EQUAL(xenif_config_resolve(&cfg, &kind, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);

    cfg.xensim_dir = "/nonexistent";
    setenv("XENSIM_DOMID", "12x", 1);
    CU_ASSERT_EQUAL(xenif_config_resolve(&cfg, &kind, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "12x"));
    unsetenv("XENSIM_DOMID");
    CU_ASSERT_EQUAL(xenif_config_resolve(&cfg, &kind, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(kind, XENIF_XENSIM);

    /* No xenstored at that directory: a clear error, not a crash. */
    struct xenif_xs *xs = xenif_xs_open(&cfg, err, sizeof(err));
    CU_ASSERT_PTR_NULL(xs);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/socket"));
}

static void test_xen_without_hypervisor(void)
{
    if (access("/dev/xen", F_OK) == 0)
        return;
    struct xenif_config cfg = { .kind = XENIF_XEN, .xensim_domid = -1 };
    char err[512] = "";
    CU_ASSERT_PTR_NULL(xenif_evtchn_open(&cfg, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "evtchn"));
    CU_ASSERT_PTR_NULL(xenif_gnt_open(&cfg, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "gntdev"));
}

static void test_xs_read_write(void)
{
    struct xenif_config cfg = sim_config(0);
    char err[512] = "";
    struct xenif_xs *xs = xenif_xs_open(&cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(xs);
    CU_ASSERT_EQUAL(xenif_xs_own_domid(xs), 0);

    CU_ASSERT_EQUAL(xenif_xs_write(xs, 0, "/t/a", "hello", 5), 0);
    size_t len = 0;
    char *v = xenif_xs_read(xs, 0, "/t/a", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(len, 5);
    CU_ASSERT_STRING_EQUAL(v, "hello");
    free(v);

    CU_ASSERT_EQUAL(xenif_xs_printf(xs, 0, "/t/n", "%d", 4096), 0);
    unsigned long n = 0;
    CU_ASSERT_EQUAL(xenif_xs_read_uint(xs, 0, "/t/n", &n), 0);
    CU_ASSERT_EQUAL(n, 4096);
    CU_ASSERT_EQUAL(xenif_xs_read_uint(xs, 0, "/t/a", &n), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(xenif_xs_read_uint(xs, 0, "/t/missing", &n), -1);
    CU_ASSERT_EQUAL(errno, ENOENT);

    CU_ASSERT_EQUAL(xenif_xs_mkdir(xs, 0, "/t/d"), 0);
    unsigned num = 0;
    char **names = xenif_xs_directory(xs, 0, "/t", &num);
    CU_ASSERT_PTR_NOT_NULL_FATAL(names);
    CU_ASSERT_EQUAL(num, 3);
    int seen = 0;
    for (unsigned i = 0; i < num; i++)
        seen |= (!strcmp(names[i], "a") ? 1 : 0) | (!strcmp(names[i], "n") ? 2 : 0) |
                (!strcmp(names[i], "d") ? 4 : 0);
    CU_ASSERT_EQUAL(seen, 7);
    free(names);

    CU_ASSERT_EQUAL(xenif_xs_rm(xs, 0, "/t"), 0);
    CU_ASSERT_PTR_NULL(xenif_xs_read(xs, 0, "/t/a", NULL));
    CU_ASSERT_EQUAL(errno, ENOENT);
    xenif_xs_close(xs);
}

static void test_xs_perms_from_domain(void)
{
    char err[512] = "";
    struct xenif_config c0 = sim_config(0), c5 = sim_config(5);
    struct xenif_xs *dom0 = xenif_xs_open(&c0, err, sizeof(err));
    struct xenif_xs *dom5 = xenif_xs_open(&c5, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(dom0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dom5);
    CU_ASSERT_EQUAL(xenif_xs_own_domid(dom5), 5);

    CU_ASSERT_EQUAL(xenif_xs_write(dom0, 0, "/secret", "x", 1), 0);
    CU_ASSERT_PTR_NULL(xenif_xs_read(dom5, 0, "/secret", NULL));
    CU_ASSERT_EQUAL(errno, EACCES);

    /* Owner dom0, others none, domain 5 may read. */
    struct xenif_xs_perm p[2] = { { 0, XENIF_XS_PERM_NONE },
                                  { 5, XENIF_XS_PERM_READ } };
    CU_ASSERT_EQUAL(xenif_xs_set_perms(dom0, 0, "/secret", p, 2), 0);
    char *v = xenif_xs_read(dom5, 0, "/secret", NULL);
    CU_ASSERT_PTR_NOT_NULL(v);
    free(v);
    CU_ASSERT_EQUAL(xenif_xs_write(dom5, 0, "/secret", "y", 1), -1);
    CU_ASSERT_EQUAL(errno, EACCES);

    unsigned n = 0;
    struct xenif_xs_perm *got = xenif_xs_get_perms(dom0, 0, "/secret", &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(got[1].domid, 5);
    CU_ASSERT_EQUAL(got[1].perms, XENIF_XS_PERM_READ);
    free(got);

    /* A relative path lands in the domain's own home. */
    CU_ASSERT_EQUAL(xenif_xs_write(dom5, 0, "data/k", "v", 1), 0);
    v = xenif_xs_read(dom0, 0, "/local/domain/5/data/k", NULL);
    CU_ASSERT_PTR_NOT_NULL(v);
    free(v);
    xenif_xs_rm(dom0, 0, "/secret");
    xenif_xs_close(dom5);
    xenif_xs_close(dom0);
}

static void test_xs_transaction_conflict(void)
{
    char err[512] = "";
    struct xenif_config cfg = sim_config(0);
    struct xenif_xs *a = xenif_xs_open(&cfg, err, sizeof(err));
    struct xenif_xs *b = xenif_xs_open(&cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(xenif_xs_write(a, 0, "/txn/x", "0", 1), 0);

    xenif_txn t = xenif_xs_transaction_start(a);
    CU_ASSERT_NOT_EQUAL_FATAL(t, 0);
    char *v = xenif_xs_read(a, t, "/txn/x", NULL);
    CU_ASSERT_PTR_NOT_NULL(v);
    free(v);
    CU_ASSERT_EQUAL(xenif_xs_write(a, t, "/txn/x", "1", 1), 0);
    CU_ASSERT_EQUAL(xenif_xs_write(b, 0, "/txn/x", "2", 1), 0);
    CU_ASSERT_EQUAL(xenif_xs_transaction_end(a, t, false), -1);
    CU_ASSERT_EQUAL(errno, EAGAIN);
    v = xenif_xs_read(b, 0, "/txn/x", NULL);
    CU_ASSERT_STRING_EQUAL(v, "2");
    free(v);

    t = xenif_xs_transaction_start(a);
    CU_ASSERT_EQUAL(xenif_xs_write(a, t, "/txn/x", "3", 1), 0);
    CU_ASSERT_EQUAL(xenif_xs_transaction_end(a, t, false), 0);
    v = xenif_xs_read(b, 0, "/txn/x", NULL);
    CU_ASSERT_STRING_EQUAL(v, "3");
    free(v);

    t = xenif_xs_transaction_start(a);
    CU_ASSERT_EQUAL(xenif_xs_write(a, t, "/txn/x", "4", 1), 0);
    CU_ASSERT_EQUAL(xenif_xs_transaction_end(a, t, true), 0);
    v = xenif_xs_read(b, 0, "/txn/x", NULL);
    CU_ASSERT_STRING_EQUAL(v, "3");
    free(v);
    xenif_xs_rm(a, 0, "/txn");
    xenif_xs_close(b);
    xenif_xs_close(a);
}

/* Waits for the next watch event; returns 1 with path and token set (one block). */
static int wait_event(struct xenif_xs *xs, char **path, char **token)
{
    for (int i = 0; i < 100; i++) {
        int rc = xenif_xs_next_event(xs, path, token);
        if (rc != 0)
            return rc;
        struct pollfd pfd = { .fd = xenif_xs_fd(xs), .events = POLLIN };
        poll(&pfd, 1, 20);
    }
    return 0;
}

static void test_xs_watch(void)
{
    char err[512] = "";
    struct xenif_config cfg = sim_config(0);
    struct xenif_xs *xs = xenif_xs_open(&cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(xs);
    CU_ASSERT(xenif_xs_fd(xs) >= 0);
    CU_ASSERT_EQUAL(xenif_xs_watch(xs, "/w", "tok"), 0);
    char *path, *token;
    /* The initial event names the watched path. */
    CU_ASSERT_EQUAL_FATAL(wait_event(xs, &path, &token), 1);
    CU_ASSERT_STRING_EQUAL(path, "/w");
    CU_ASSERT_STRING_EQUAL(token, "tok");
    free(path);

    CU_ASSERT_EQUAL(xenif_xs_write(xs, 0, "/w/child", "1", 1), 0);
    CU_ASSERT_EQUAL_FATAL(wait_event(xs, &path, &token), 1);
    CU_ASSERT_STRING_EQUAL(path, "/w/child");
    CU_ASSERT_STRING_EQUAL(token, "tok");
    free(path);

    CU_ASSERT_EQUAL(xenif_xs_unwatch(xs, "/w", "tok"), 0);
    CU_ASSERT_EQUAL(xenif_xs_write(xs, 0, "/w/child", "2", 1), 0);
    usleep(50000);
    CU_ASSERT_EQUAL(xenif_xs_next_event(xs, &path, &token), 0);
    xenif_xs_rm(xs, 0, "/w");
    xenif_xs_close(xs);
}

static CU_TestInfo xenif_tests[] = {
    { "resolve: clear errors", test_resolve_errors },
    { "xen kind without a hypervisor", test_xen_without_hypervisor },
    { "xenstore read/write/dir/rm", test_xs_read_write },
    { "xenstore permissions from a domain", test_xs_perms_from_domain },
    { "xenstore transaction conflict/abort", test_xs_transaction_conflict },
    { "xenstore watch", test_xs_watch },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(xenif, start_xsd, stop_xsd, xenif_tests)
