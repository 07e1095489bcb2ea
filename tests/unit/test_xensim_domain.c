/* xensim domains: create/list/destroy with their xenstore nodes and the
 * @introduceDomain/@releaseDomain watches, pause/suspend/resume acting on
 * the domain's processes, and what destroy does to ports and grants. */
#include "test_xensim.h"
#include "unit.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sim_host host;
static int admin = -1;

static int domain_init(void)
{
    if (sim_host_start(&host, "xensim-domain") < 0)
        return -1;
    admin = sim_admin(&host);
    return admin >= 0 ? 0 : -1;
}

static int domain_cleanup(void)
{
    close(admin);
    int status = sim_host_stop(&host);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int create(const char *name, const char *uuid, unsigned mib,
                  struct xensim_dom_info *info)
{
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_DOMAIN_CREATE);
    snprintf(req.name, sizeof(req.name), "%s", name);
    if (uuid && xensim_uuid_parse(uuid, req.uuid) < 0)
        return -1;
    req.memory_mib = mib;
    if (xensim_call(admin, &req, &rsp, NULL, NULL) < 0)
        return -1;
    if (info)
        *info = rsp.dom;
    return (int)rsp.dom.domid;
}

/* Waits for the next watch event with this token; 0 when it came. */
static int expect_watch(struct xenif_xs *xs, const char *token)
{
    for (int i = 0; i < 200; i++) {
        char *path, *tok;
        int r = xenif_xs_next_event(xs, &path, &tok);
        if (r < 0)
            return -1;
        if (r == 1) {
            int match = strcmp(tok, token) == 0;
            free(path);
            if (match)
                return 0;
            continue;
        }
        sim_readable(xenif_xs_fd(xs), 10);
    }
    return -1;
}

static void drain_watches(struct xenif_xs *xs)
{
    char *path, *tok;
    while (sim_readable(xenif_xs_fd(xs), 50))
        while (xenif_xs_next_event(xs, &path, &tok) == 1)
            free(path);
}

static void test_create_list_destroy(void)
{
    char err[256];
    struct xenif_config cfg = sim_config(&host, 0);
    struct xenif_xs *xs = xenif_xs_open(&cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(xs);
    CU_ASSERT_EQUAL(xenif_xs_watch(xs, "@introduceDomain", "intro"), 0);
    CU_ASSERT_EQUAL(xenif_xs_watch(xs, "@releaseDomain", "release"), 0);
    drain_watches(xs);

    const char *uuid = "0badc0de-1234-4321-8765-00000000abcd";
    struct xensim_dom_info info;
    int a = create("alpha", uuid, 32, &info);
    CU_ASSERT_FATAL(a > 0);
    CU_ASSERT_EQUAL(expect_watch(xs, "intro"), 0);
    CU_ASSERT_STRING_EQUAL(info.name, "alpha");
    CU_ASSERT_EQUAL(info.state, XENSIM_DOM_RUNNING);
    CU_ASSERT_EQUAL(info.memory_mib, 32);
    int b = create("beta", NULL, 0, NULL);
    CU_ASSERT_FATAL(b > a);

    /* Duplicates and bad values are refused. */
    CU_ASSERT_EQUAL(create("alpha", NULL, 0, NULL), -1);
    CU_ASSERT_EQUAL(errno, EEXIST);
    CU_ASSERT_EQUAL(create("gamma", uuid, 0, NULL), -1);
    CU_ASSERT_EQUAL(errno, EEXIST);
    CU_ASSERT_EQUAL(create("bad/name", NULL, 0, NULL), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(create("", NULL, 0, NULL), -1);
    CU_ASSERT_EQUAL(create("huge", NULL, 1u << 30, NULL), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);

    /* The nodes libxl writes. */
    char path[128], *v;
    snprintf(path, sizeof(path), "/local/domain/%d/name", a);
    v = xenif_xs_read(xs, 0, path, NULL);
    CU_ASSERT_STRING_EQUAL(v ? v : "", "alpha");
    free(v);
    snprintf(path, sizeof(path), "/local/domain/%d/vm", a);
    v = xenif_xs_read(xs, 0, path, NULL);
    CU_ASSERT_STRING_EQUAL(v ? v : "", "/vm/0badc0de-1234-4321-8765-00000000abcd");
    free(v);
    v = xenif_xs_read(xs, 0, "/vm/0badc0de-1234-4321-8765-00000000abcd/uuid", NULL);
    CU_ASSERT_STRING_EQUAL(v ? v : "", uuid);
    free(v);
    unsigned long domid;
    snprintf(path, sizeof(path), "/local/domain/%d/domid", a);
    CU_ASSERT_EQUAL(xenif_xs_read_uint(xs, 0, path, &domid), 0);
    CU_ASSERT_EQUAL(domid, (unsigned long)a);

    /* List: dom0 then both guests, in order. */
    unsigned seen[8], n = 0;
    for (unsigned next = 0; n < 8 && xensim_domain_info(admin, next, &info) == 0;
         next = info.domid + 1)
        seen[n++] = info.domid;
    CU_ASSERT_EQUAL(errno, ENOENT);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_EQUAL(seen[0], 0);
    CU_ASSERT_EQUAL(seen[1], (unsigned)a);
    CU_ASSERT_EQUAL(seen[2], (unsigned)b);

    drain_watches(xs);
    CU_ASSERT_EQUAL(sim_destroy(&host, (unsigned)a), 0);
    CU_ASSERT_EQUAL(expect_watch(xs, "release"), 0);
    snprintf(path, sizeof(path), "/local/domain/%d", a);
    v = xenif_xs_read(xs, 0, path, NULL);
    CU_ASSERT_PTR_NULL(v);
    free(v);
    CU_ASSERT_EQUAL(xensim_domain_info(admin, (unsigned)a, &info), 0);
    CU_ASSERT_EQUAL(info.domid, (unsigned)b); /* a is gone */
    CU_ASSERT_EQUAL(sim_destroy(&host, (unsigned)a), -1);
    CU_ASSERT_EQUAL(errno, ESRCH);
    CU_ASSERT_EQUAL(sim_destroy(&host, 0), -1);
    CU_ASSERT_EQUAL(errno, EPERM);
    /* Domain ids are not reused right away. */
    int c = create("alpha", NULL, 0, NULL);
    CU_ASSERT(c > b);
    CU_ASSERT_EQUAL(sim_destroy(&host, (unsigned)b), 0);
    CU_ASSERT_EQUAL(sim_destroy(&host, (unsigned)c), 0);
    xenif_xs_close(xs);
}

/* A process running as domain domid, stopped and killed by the host. */
static pid_t spawn_guest(unsigned domid)
{
    int ready[2];
    if (pipe(ready) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char err[256];
        int fd = xensim_connect(host.dir, domid, false, err, sizeof(err));
        if (fd < 0)
            _exit(1);
        struct xensim_dom_info info;
        if (xensim_domain_info(fd, XENSIM_DOMID_SELF, &info) < 0 || info.domid != domid)
            _exit(2);
        if (write(ready[1], "r", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    if (read(ready[0], &c, 1) != 1)
        pid = -1;
    close(ready[0]);
    return pid;
}

static void test_pause_suspend_resume(void)
{
    char err[256];
    struct xenif_config cfg = sim_config(&host, 0);
    struct xenif_xs *xs = xenif_xs_open(&cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(xs);
    CU_ASSERT_EQUAL(xenif_xs_watch(xs, "@releaseDomain", "release"), 0);
    drain_watches(xs);

    int d = create("sleeper", NULL, 0, NULL);
    CU_ASSERT_FATAL(d > 0);
    pid_t pid = spawn_guest((unsigned)d);
    CU_ASSERT_FATAL(pid > 0);
    struct xensim_dom_info info;
    CU_ASSERT_EQUAL(xensim_domain_info(admin, (unsigned)d, &info), 0);
    CU_ASSERT_EQUAL(info.nr_procs, 1);

    int status;
    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_PAUSE, (unsigned)d), 0);
    CU_ASSERT_EQUAL(waitpid(pid, &status, WUNTRACED), pid);
    CU_ASSERT(WIFSTOPPED(status));
    CU_ASSERT_EQUAL(xensim_domain_info(admin, (unsigned)d, &info), 0);
    CU_ASSERT_EQUAL(info.state, XENSIM_DOM_PAUSED);
    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_UNPAUSE, (unsigned)d), 0);
    CU_ASSERT_EQUAL(waitpid(pid, &status, WCONTINUED), pid);
    CU_ASSERT(WIFCONTINUED(status));

    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_SUSPEND, (unsigned)d), 0);
    CU_ASSERT_EQUAL(expect_watch(xs, "release"), 0);
    CU_ASSERT_EQUAL(waitpid(pid, &status, WUNTRACED), pid);
    CU_ASSERT(WIFSTOPPED(status));
    CU_ASSERT_EQUAL(xensim_domain_info(admin, (unsigned)d, &info), 0);
    CU_ASSERT_EQUAL(info.state, XENSIM_DOM_SUSPENDED);
    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_SUSPEND, (unsigned)d), -1);
    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_UNPAUSE, (unsigned)d), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_RESUME, (unsigned)d), 0);
    CU_ASSERT_EQUAL(waitpid(pid, &status, WCONTINUED), pid);
    CU_ASSERT(WIFCONTINUED(status));
    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_RESUME, (unsigned)d), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(xensim_domain_op(admin, XENSIM_OP_DOMAIN_PAUSE, 0), -1);
    CU_ASSERT_EQUAL(errno, EPERM);

    /* Destroy kills the domain's processes. */
    CU_ASSERT_EQUAL(sim_destroy(&host, (unsigned)d), 0);
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    xenif_xs_close(xs);
}

/* Waits until the host has seen every process of domid disconnect, so a
 * destroy cannot hit this test process. */
static int wait_no_procs(unsigned domid)
{
    struct xensim_dom_info info;
    for (int i = 0; i < 400; i++) {
        if (xensim_domain_info(admin, domid, &info) < 0 || info.domid != domid)
            return -1;
        if (info.nr_procs == 0)
            return 0;
        usleep(5000);
    }
    return -1;
}

static void test_guest_is_not_admin(void)
{
    int d = create("unprivileged", NULL, 0, NULL);
    CU_ASSERT_FATAL(d > 0);
    char err[256];
    int fd = xensim_connect(host.dir, (unsigned)d, false, err, sizeof(err));
    CU_ASSERT_FATAL(fd >= 0);
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_DOMAIN_CREATE);
    strcpy(req.name, "evil");
    CU_ASSERT_EQUAL(xensim_call(fd, &req, &rsp, NULL, NULL), -1);
    CU_ASSERT_EQUAL(errno, EPERM);
    CU_ASSERT_EQUAL(xensim_domain_op(fd, XENSIM_OP_DOMAIN_DESTROY, 0), -1);
    CU_ASSERT_EQUAL(errno, EPERM);
    struct xensim_dom_info info;
    CU_ASSERT_EQUAL(xensim_domain_info(fd, 0, &info), -1);
    CU_ASSERT_EQUAL(errno, EPERM);
    CU_ASSERT_EQUAL(xensim_domain_info(fd, (unsigned)d, &info), 0);
    CU_ASSERT_EQUAL(info.domid, (unsigned)d);
    close(fd);
    CU_ASSERT_EQUAL_FATAL(wait_no_procs((unsigned)d), 0);
    CU_ASSERT_EQUAL(sim_destroy(&host, (unsigned)d), 0);
}

/* The guest half of test_destroy_releases, in a child: binds a port and
 * shares two pages, reports them, waits to be killed. */
static void victim_guest(unsigned d, int report)
{
    char err[256];
    struct xenif_config cfg = sim_config(&host, d);
    struct xenif_evtchn *ec = xenif_evtchn_open(&cfg, err, sizeof(err));
    struct xenif_gnt *g = xenif_gnt_open(&cfg, err, sizeof(err));
    if (!ec || !g)
        _exit(1);
    uint32_t msg[3];
    int port = xenif_evtchn_alloc_unbound(ec, 0);
    char *p = xenif_gnt_share(g, 0, 2, msg + 1, true);
    if (port < 0 || !p)
        _exit(2);
    strcpy(p, "before");
    msg[0] = (uint32_t)port;
    if (write(report, msg, sizeof(msg)) != sizeof(msg))
        _exit(3);
    for (;;)
        pause();
}

/* Destroy: the guest's processes die, the peer's port goes unbound, the
 * domain's grants stop mapping. */
static void test_destroy_releases(void)
{
    int d = create("victim", NULL, 0, NULL);
    CU_ASSERT_FATAL(d > 0);
    int pfd[2];
    CU_ASSERT_EQUAL_FATAL(pipe(pfd), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        victim_guest((unsigned)d, pfd[1]);
    }
    close(pfd[1]);
    uint32_t msg[3];
    CU_ASSERT_EQUAL_FATAL(read(pfd[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
    close(pfd[0]);

    char err[256];
    struct xenif_config bcfg = sim_config(&host, 0);
    struct xenif_evtchn *bec = xenif_evtchn_open(&bcfg, err, sizeof(err));
    struct xenif_gnt *bg = xenif_gnt_open(&bcfg, err, sizeof(err));
    CU_ASSERT_FATAL(bec && bg);
    int bport = xenif_evtchn_bind_interdomain(bec, (xenif_domid)d, msg[0]);
    CU_ASSERT_FATAL(bport > 0);
    char *m = xenif_gnt_map(bg, (xenif_domid)d, 1, &msg[1], XENIF_GNT_READ);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);

    CU_ASSERT_EQUAL(sim_destroy(&host, (unsigned)d), 0);
    int status;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    struct xensim_rsp st;
    CU_ASSERT_EQUAL(sim_port_status(&host, 0, (xenif_port)bport, &st), 0);
    CU_ASSERT_EQUAL(st.state, XENSIM_PORT_UNBOUND);
    CU_ASSERT_EQUAL(xenif_evtchn_notify(bec, (xenif_port)bport), 0); /* dropped */
    /* An existing mapping stays readable (the memory lives until unmapped);
     * new maps of the dead domain fail. */
    CU_ASSERT_STRING_EQUAL(m, "before");
    CU_ASSERT_PTR_NULL(xenif_gnt_map(bg, (xenif_domid)d, 1, &msg[2], XENIF_GNT_READ));
    CU_ASSERT_EQUAL(errno, ESRCH);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(bg, m, 1), 0);
    CU_ASSERT_EQUAL(xenif_evtchn_unbind(bec, (xenif_port)bport), 0);
    xenif_evtchn_close(bec);
    xenif_gnt_close(bg);
}

static CU_TestInfo domain_tests[] = {
    { "create, list, destroy, xenstore nodes, watches", test_create_list_destroy },
    { "pause, suspend, resume, destroy a process", test_pause_suspend_resume },
    { "a guest cannot administer", test_guest_is_not_admin },
    { "destroy unbinds ports and ends grants", test_destroy_releases },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(xensim_domain, domain_init, domain_cleanup, domain_tests)
