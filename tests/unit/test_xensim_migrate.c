/* Migration pieces: the guest suspend handshake on the host (register,
 * suspend only when asked, answered on resume, nothing else meanwhile),
 * restore reservations and claims, and whole migrations between two hosts
 * with a guest process that keeps its shared pages at the same addresses,
 * or sees the migration roll back. */
#include "test_xensim.h"
#include "tools/xensim/migrate.h"
#include "unit.h"
#include "xensim_guest.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sim_host ha, hb;
static int admin_a = -1, admin_b = -1;

static int mig_init(void)
{
    if (sim_host_start(&ha, "mig-a") < 0 || sim_host_start(&hb, "mig-b") < 0)
        return -1;
    admin_a = sim_admin(&ha);
    admin_b = sim_admin(&hb);
    unsetenv("XENSIM_RUN_FD");
    return admin_a >= 0 && admin_b >= 0 ? 0 : -1;
}

static int mig_cleanup(void)
{
    close(admin_a);
    close(admin_b);
    sim_host_stop(&ha);
    sim_host_stop(&hb);
    return 0;
}

static struct xenif_xs *dom0_xs(const struct sim_host *h)
{
    char err[256];
    struct xenif_config cfg = sim_config(h, 0);
    return xenif_xs_open(&cfg, err, sizeof(err));
}

static int set_shutdown(const struct sim_host *h, unsigned domid, const char *v)
{
    struct xenif_xs *xs = dom0_xs(h);
    if (!xs)
        return -1;
    char path[64];
    snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", domid);
    int rc = xenif_xs_write(xs, 0, path, v, strlen(v));
    xenif_xs_close(xs);
    return rc;
}

static char *get_shutdown(const struct sim_host *h, unsigned domid)
{
    struct xenif_xs *xs = dom0_xs(h);
    if (!xs)
        return NULL;
    char path[64];
    snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", domid);
    char *v = xenif_xs_read(xs, 0, path, NULL);
    xenif_xs_close(xs);
    return v;
}

static int op(int fd, enum xensim_op o)
{
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, o);
    return xensim_call(fd, &req, &rsp, NULL, NULL) < 0 ? errno : 0;
}

static struct xensim_dom_info info_of(int admin, unsigned domid)
{
    struct xensim_dom_info info;
    memset(&info, 0, sizeof(info));
    if (xensim_domain_info(admin, domid, &info) < 0 || info.domid != domid)
        info.domid = 0;
    return info;
}

/* ---- the handshake on one host ------------------------------------------ */

static void test_suspend_handshake(void)
{
    int d = sim_create(&ha, "handshake");
    CU_ASSERT_FATAL(d > 0);
    char err[256];
    int g = xensim_connect(ha.dir, (unsigned)d, false, err, sizeof(err));
    CU_ASSERT_FATAL(g >= 0);
    CU_ASSERT_EQUAL(op(g, XENSIM_OP_GUEST_SUSPEND), EINVAL); /* not registered */
    CU_ASSERT_EQUAL(op(admin_a, XENSIM_OP_GUEST_REGISTER), EPERM); /* dom0 */
    CU_ASSERT_EQUAL(op(g, XENSIM_OP_GUEST_REGISTER), 0);
    CU_ASSERT_EQUAL(op(g, XENSIM_OP_GUEST_SUSPEND), EAGAIN); /* not asked */
    struct xensim_dom_info info = info_of(admin_a, (unsigned)d);
    CU_ASSERT_EQUAL(info.nr_suspendable, 1);
    CU_ASSERT_EQUAL(info.nr_suspending, 0);

    /* Asked: the answer waits for the toolstack. */
    CU_ASSERT_EQUAL_FATAL(set_shutdown(&ha, (unsigned)d, "suspend"), 0);
    struct xensim_req req;
    xensim_req_init(&req, XENSIM_OP_GUEST_SUSPEND);
    CU_ASSERT_EQUAL(send(g, &req, sizeof(req), 0), (ssize_t)sizeof(req));
    for (int i = 0; i < 200 && info.nr_suspending == 0; i++) {
        usleep(2000);
        info = info_of(admin_a, (unsigned)d);
    }
    CU_ASSERT_EQUAL(info.nr_suspending, 1);
    CU_ASSERT_FALSE(sim_readable(g, 50));
    /* Cancelled (the toolstack resumes without pausing): val[0] = 1. */
    CU_ASSERT_EQUAL(xensim_domain_op(admin_a, XENSIM_OP_DOMAIN_RESUME, (unsigned)d), 0);
    CU_ASSERT_FATAL(sim_readable(g, 2000));
    struct xensim_rsp rsp;
    CU_ASSERT_EQUAL(recv(g, &rsp, sizeof(rsp), 0), (ssize_t)sizeof(rsp));
    CU_ASSERT_EQUAL(rsp.err, 0);
    CU_ASSERT_EQUAL(rsp.val[0], 1);
    CU_ASSERT_EQUAL(info_of(admin_a, (unsigned)d).nr_suspending, 0);
    /* Nothing waits: resume of a running domain is an error again. */
    CU_ASSERT_EQUAL(xensim_domain_op(admin_a, XENSIM_OP_DOMAIN_RESUME, (unsigned)d), -1);
    /* MIGRATED needs a suspended domain and a sane destination. */
    CU_ASSERT_EQUAL(xensim_domain_op(admin_a, XENSIM_OP_DOMAIN_MIGRATED, (unsigned)d), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);

    /* A second request while waiting breaks the protocol: disconnected. */
    CU_ASSERT_EQUAL(send(g, &req, sizeof(req), 0), (ssize_t)sizeof(req));
    for (int i = 0; i < 200 && info_of(admin_a, (unsigned)d).nr_suspending == 0; i++)
        usleep(2000);
    CU_ASSERT_EQUAL(send(g, &req, sizeof(req), MSG_NOSIGNAL), (ssize_t)sizeof(req));
    CU_ASSERT(sim_readable(g, 2000));
    CU_ASSERT_EQUAL(recv(g, &rsp, sizeof(rsp), 0), 0); /* closed */
    close(g);
    for (int i = 0; i < 200 && info_of(admin_a, (unsigned)d).nr_procs; i++)
        usleep(2000);
    CU_ASSERT_EQUAL(info_of(admin_a, (unsigned)d).nr_suspendable, 0);
    set_shutdown(&ha, (unsigned)d, "");
    CU_ASSERT_EQUAL(sim_destroy(&ha, (unsigned)d), 0);
}

/* ---- restore reservations and claims ------------------------------------ */

static int claim(int fd, uint32_t frame, uint32_t ref, uint32_t *got_f, uint32_t *got_r)
{
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_GNT_CLAIM);
    req.nframes = req.nrefs = 1;
    req.frames[0] = frame;
    req.refs[0] = ref;
    if (xensim_call(fd, &req, &rsp, NULL, NULL) < 0)
        return -1;
    *got_f = rsp.frames[0];
    *got_r = rsp.refs[0];
    return 0;
}

static void test_restore_and_claim(void)
{
    int d = sim_create(&ha, "restored");
    CU_ASSERT_FATAL(d > 0);
    int mem = -1;
    uint32_t pages = 0;
    struct xensim_gnt_layout *tab = xensim_gnt_attach(admin_a, (unsigned)d,
                                                      PROT_READ | PROT_WRITE,
                                                      &mem, &pages);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tab);
    /* What a toolstack copies in: data in frames 5 and 6, refs 10 and 11
     * granted (one still marked in use by a mapper on the old host). */
    char page[4096];
    memset(page, 0x77, sizeof(page));
    CU_ASSERT_EQUAL(pwrite(mem, page, sizeof(page), 5 * 4096), 4096);
    CU_ASSERT_EQUAL(pwrite(mem, page, sizeof(page), 6 * 4096), 4096);
    tab->entries[10].frame = 5;
    tab->entries[10].flags_domid = XENSIM_GTF_permit_access | XENSIM_GTF_reading;
    tab->entries[11].frame = 6;
    tab->entries[11].flags_domid = XENSIM_GTF_permit_access;
    tab->active[10].pins_ro = 3;

    char err[256];
    int g = xensim_connect(ha.dir, (unsigned)d, false, err, sizeof(err));
    CU_ASSERT_FATAL(g >= 0);
    CU_ASSERT_EQUAL(xensim_domain_op(g, XENSIM_OP_DOMAIN_RESTORE, (unsigned)d), -1);
    CU_ASSERT_EQUAL(errno, EPERM);
    CU_ASSERT_EQUAL(xensim_domain_op(admin_a, XENSIM_OP_DOMAIN_RESTORE, (unsigned)d), 0);
    CU_ASSERT_EQUAL(tab->entries[10].flags_domid, XENSIM_GTF_permit_access);
    CU_ASSERT_EQUAL(tab->active[10].pins_ro, 0);

    /* Reserved: never handed out by an allocation. */
    struct xensim_req req;
    struct xensim_rsp rsp;
    bool handed = false;
    for (int round = 0; round < 2; round++) {
        xensim_req_init(&req, XENSIM_OP_GNT_ALLOC);
        req.nframes = req.nrefs = XENSIM_BATCH;
        CU_ASSERT_EQUAL_FATAL(xensim_call(g, &req, &rsp, NULL, NULL), 0);
        for (unsigned i = 0; i < rsp.nframes; i++)
            handed |= rsp.frames[i] == 5 || rsp.frames[i] == 6;
        for (unsigned i = 0; i < rsp.nrefs; i++)
            handed |= rsp.refs[i] == 10 || rsp.refs[i] == 11;
    }
    CU_ASSERT_FALSE(handed);
    /* Claimed by the first process that asks; taken ones are refused. */
    uint32_t f, r;
    CU_ASSERT_EQUAL(claim(g, 5, 10, &f, &r), 0);
    CU_ASSERT(f == 1 && r == 1);
    CU_ASSERT_EQUAL(claim(g, 5, 10, &f, &r), 0); /* ours already: fine */
    CU_ASSERT(f == 1 && r == 1);
    int g2 = xensim_connect(ha.dir, (unsigned)d, false, err, sizeof(err));
    CU_ASSERT_FATAL(g2 >= 0);
    CU_ASSERT_EQUAL(claim(g2, 5, 10, &f, &r), 0);
    CU_ASSERT(f == 0 && r == 0);
    CU_ASSERT_EQUAL(claim(g2, 6, 11, &f, &r), 0);
    CU_ASSERT(f == 1 && r == 1);
    CU_ASSERT_EQUAL(claim(g2, pages, 3, &f, &r), 0); /* out of range, reserved ref */
    CU_ASSERT(f == 0 && r == 0);
    CU_ASSERT_EQUAL(claim(g2, rsp.frames[0], rsp.refs[0], &f, &r), 0); /* g's */
    CU_ASSERT(f == 0 && r == 0);
    xensim_req_init(&req, XENSIM_OP_GNT_CLAIM);
    req.nframes = XENSIM_BATCH + 1;
    CU_ASSERT_EQUAL(xensim_call(g2, &req, &rsp, NULL, NULL), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    close(g);
    close(g2);
    munmap(tab, sizeof(*tab));
    close(mem);
    CU_ASSERT_EQUAL(sim_destroy(&ha, (unsigned)d), 0);
}

/* ---- whole migrations ---------------------------------------------------- */

struct report {
    int result;          /* XSG_*, or -1 */
    unsigned domid;
    xenif_gref refs[2];
    int same_data;       /* the pages still held what was written before */
    char err[200];
};

/* A guest process: shares two pages, fills them, registers for suspend and
 * answers one suspend request; reports through fd. */
static pid_t spawn_guest(const struct sim_host *h, unsigned domid, int *rd)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid != 0) {
        close(p[1]);
        *rd = p[0];
        return pid;
    }
    close(p[0]);
    struct report rep;
    memset(&rep, 0, sizeof(rep));
    rep.result = -1;
    char err[256];
    struct xenif_config cfg = sim_config(h, domid);
    struct xenif_gnt *g = xenif_gnt_open(&cfg, err, sizeof(err));
    uint8_t *pg = g ? xenif_gnt_share(g, 0, 2, rep.refs, true) : NULL;
    struct xsg *x = pg ? xsg_open(&cfg, err, sizeof(err)) : NULL;
    if (!x)
        _exit(1);
    memset(pg, 0xa5, 2 * 4096);
    if (write(p[1], &rep, sizeof(rep)) != sizeof(rep)) /* ready */
        _exit(2);
    for (;;) {
        struct pollfd pf = { .fd = xsg_fd(x), .events = POLLIN };
        if (poll(&pf, 1, -1) < 0 || !xsg_suspend_requested(x))
            continue;
        rep.result = xsg_suspend(x, rep.err, sizeof(rep.err));
        if (rep.result == XSG_MIGRATED) {
            if (xsg_gnt_move(x, g, rep.err, sizeof(rep.err)) < 0) {
                rep.result = -1;
            } else {
                rep.same_data = pg[0] == 0xa5 && pg[8191] == 0xa5;
                memset(pg, 0x5a, 4096); /* lands in the new host's memory */
                if (xsg_gnt_regrant(g, pg, 2, 0) < 0 ||
                    xsg_resumed(x, rep.err, sizeof(rep.err)) < 0)
                    rep.result = -1;
            }
            rep.domid = xsg_domid(x);
        }
        if (write(p[1], &rep, sizeof(rep)) != sizeof(rep))
            _exit(3);
    }
}

static int read_report(int fd, struct report *rep, int timeout_ms)
{
    if (!sim_readable(fd, timeout_ms))
        return -1;
    return read(fd, rep, sizeof(*rep)) == sizeof(*rep) ? 0 : -1;
}

static void test_migrate_guest(void)
{
    int d = sim_create(&ha, "traveller");
    CU_ASSERT_FATAL(d > 0);
    struct xensim_dom_info before = info_of(admin_a, (unsigned)d);
    int rd;
    pid_t pid = spawn_guest(&ha, (unsigned)d, &rd);
    CU_ASSERT_FATAL(pid > 0);
    struct report rep;
    CU_ASSERT_EQUAL_FATAL(read_report(rd, &rep, 5000), 0);

    struct migrate_opts o = { .src_dir = ha.dir, .dst_dir = hb.dir,
                              .domain = "traveller", .timeout_s = 5 };
    struct migrate_result res;
    char err[1024];
    int rc = xensim_migrate(&o, &res, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "migrate: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(res.procs, 1);
    CU_ASSERT(res.copied_bytes >= 2 * 4096);
    CU_ASSERT_EQUAL_FATAL(read_report(rd, &rep, 5000), 0);
    CU_ASSERT_EQUAL(rep.result, XSG_MIGRATED);
    CU_ASSERT_EQUAL(rep.domid, res.new_domid);
    CU_ASSERT_EQUAL(rep.same_data, 1);
    if (rep.result < 0)
        fprintf(stderr, "guest: %s\n", rep.err);

    /* Same name and UUID on B; gone from A; the process lives on, as B's. */
    struct xensim_dom_info after = info_of(admin_b, res.new_domid);
    CU_ASSERT_STRING_EQUAL(after.name, "traveller");
    CU_ASSERT_EQUAL(memcmp(after.uuid, before.uuid, 16), 0);
    CU_ASSERT_EQUAL(after.nr_suspendable, 1);
    CU_ASSERT_EQUAL(info_of(admin_a, (unsigned)d).domid, 0);
    CU_ASSERT_EQUAL(kill(pid, 0), 0);
    /* The refs kept their numbers and frames; what the guest wrote after
     * the move is in B's memory. */
    int mem = -1;
    struct xensim_gnt_layout *tab = xensim_gnt_attach(admin_b, res.new_domid,
                                                      PROT_READ, &mem, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tab);
    uint32_t fl = tab->entries[rep.refs[0]].flags_domid;
    CU_ASSERT_EQUAL(fl & XENSIM_GTF_permit_access, XENSIM_GTF_permit_access);
    CU_ASSERT_EQUAL(fl >> 16, 0);
    uint8_t b0 = 0, b1 = 0;
    CU_ASSERT_EQUAL(pread(mem, &b0, 1, (off_t)tab->entries[rep.refs[0]].frame * 4096), 1);
    CU_ASSERT_EQUAL(pread(mem, &b1, 1, (off_t)tab->entries[rep.refs[1]].frame * 4096), 1);
    CU_ASSERT_EQUAL(b0, 0x5a);
    CU_ASSERT_EQUAL(b1, 0xa5);
    munmap(tab, sizeof(*tab));
    close(mem);

    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(rd);
    CU_ASSERT_EQUAL(sim_destroy(&hb, res.new_domid), 0);
}

static void test_migrate_rollback(void)
{
    int d = sim_create(&ha, "homebody");
    CU_ASSERT_FATAL(d > 0);
    int rd;
    pid_t pid = spawn_guest(&ha, (unsigned)d, &rd);
    CU_ASSERT_FATAL(pid > 0);
    struct report rep;
    CU_ASSERT_EQUAL_FATAL(read_report(rd, &rep, 5000), 0);

    /* B has a domain of that name: the restore fails after the guest
     * acknowledged and was paused; it must be resumed, "cancelled". */
    int clash = sim_create(&hb, "homebody");
    CU_ASSERT_FATAL(clash > 0);
    struct migrate_opts o = { .src_dir = ha.dir, .dst_dir = hb.dir,
                              .domain = "homebody", .timeout_s = 2 };
    struct migrate_result res;
    char err[1024];
    CU_ASSERT_EQUAL(xensim_migrate(&o, &res, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "keeps running on the source"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "exists there"));
    CU_ASSERT_EQUAL_FATAL(read_report(rd, &rep, 5000), 0);
    CU_ASSERT_EQUAL(rep.result, XSG_CANCELLED);
    struct xensim_dom_info info = info_of(admin_a, (unsigned)d);
    CU_ASSERT_EQUAL(info.state, XENSIM_DOM_RUNNING);
    CU_ASSERT_EQUAL(info.nr_suspendable, 1);
    char *v = get_shutdown(&ha, (unsigned)d);
    CU_ASSERT_PTR_NOT_NULL(v);
    if (v)
        CU_ASSERT_STRING_EQUAL(v, "");
    free(v);
    CU_ASSERT_EQUAL(sim_destroy(&hb, (unsigned)clash), 0);
    /* B is as before: only dom0. */
    CU_ASSERT_EQUAL(info_of(admin_b, 1).domid + info_of(admin_b, 2).domid +
                    info_of(admin_b, 3).domid, 0);

    /* A guest that stops answering (stopped here by us): the suspend
     * request times out, nothing is paused. */
    kill(pid, SIGSTOP);
    o.timeout_s = 1;
    CU_ASSERT_EQUAL(xensim_migrate(&o, &res, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "did not acknowledge"));
    CU_ASSERT_EQUAL(info_of(admin_a, (unsigned)d).state, XENSIM_DOM_RUNNING);
    v = get_shutdown(&ha, (unsigned)d);
    CU_ASSERT(v && strcmp(v, "") == 0);
    free(v);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(rd);
    CU_ASSERT_EQUAL(sim_destroy(&ha, (unsigned)d), 0);
}

static CU_TestInfo migrate_tests[] = {
    { "guest suspend handshake", test_suspend_handshake },
    { "restore reserves, processes claim", test_restore_and_claim },
    { "a guest moves with its shared pages", test_migrate_guest },
    { "failed migrations roll back", test_migrate_rollback },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(xensim_migrate, mig_init, mig_cleanup, migrate_tests)
