/* xensim grants through xenif: a frontend domain shares pages, dom0 maps and
 * copies them, with the checks Xen makes. Both sides run in this process,
 * each handle connected as its own domain. */
#include "test_xensim.h"
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/xen.h>
#include <xen/grant_table.h>

static struct sim_host host;
static unsigned fe_dom, other_dom;
static struct xenif_gnt *fe, *be;

static int grant_init(void)
{
    if (sim_host_start(&host, "xensim-grant") < 0)
        return -1;
    int a = sim_create(&host, "fe"), b = sim_create(&host, "other");
    if (a < 0 || b < 0)
        return -1;
    fe_dom = (unsigned)a;
    other_dom = (unsigned)b;
    char err[256];
    struct xenif_config fcfg = sim_config(&host, fe_dom), bcfg = sim_config(&host, 0);
    fe = xenif_gnt_open(&fcfg, err, sizeof(err));
    be = xenif_gnt_open(&bcfg, err, sizeof(err));
    return fe && be ? 0 : -1;
}

static int grant_cleanup(void)
{
    xenif_gnt_close(fe);
    xenif_gnt_close(be);
    int status = sim_host_stop(&host);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void test_map_by_grantee(void)
{
    xenif_gref refs[3];
    uint8_t *pages = xenif_gnt_share(fe, 0, 3, refs, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pages);
    CU_ASSERT(refs[0] != refs[1] && refs[1] != refs[2] && refs[0] >= 8);
    for (int i = 0; i < 3 * 4096; i++)
        CU_ASSERT_EQUAL_FATAL(pages[i], 0); /* fresh pages are zeroed */
    for (int i = 0; i < 3; i++)
        memset(pages + i * 4096, 'a' + i, 4096);
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, refs[0]), GTF_permit_access);

    uint8_t *m = xenif_gnt_map(be, fe_dom, 3, refs, XENIF_GNT_READ | XENIF_GNT_WRITE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(m[0], 'a');
    CU_ASSERT_EQUAL(m[4096 + 17], 'b');
    CU_ASSERT_EQUAL(m[3 * 4096 - 1], 'c');
    m[8192] = 'Z'; /* the backend writes, the frontend sees it */
    CU_ASSERT_EQUAL(pages[8192], 'Z');
    /* In use, as Xen shows it to the granting domain. */
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, refs[1]),
                    GTF_permit_access | GTF_reading | GTF_writing);

    /* A second, read-only mapping of the same grant keeps it pinned. */
    uint8_t *ro = xenif_gnt_map(be, fe_dom, 1, &refs[1], XENIF_GNT_READ);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ro);
    CU_ASSERT_EQUAL(ro[5], 'b');
    CU_ASSERT_EQUAL(xenif_gnt_unmap(be, m, 2), -1); /* wrong count */
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(be, m, 3), 0);
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, refs[1]),
                    GTF_permit_access | GTF_reading);
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, refs[0]), GTF_permit_access);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(be, ro, 1), 0);
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, refs[1]), GTF_permit_access);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(be, ro, 1), -1); /* already gone */
    CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, pages, 3), 0);
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, refs[0]), 0);
}

static void test_map_refused(void)
{
    xenif_gref ref, ro_ref, bad;
    void *p = xenif_gnt_share(fe, other_dom, 1, &ref, true);
    void *q = xenif_gnt_share(fe, 0, 1, &ro_ref, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);

    /* Granted to another domain. */
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 1, &ref, XENIF_GNT_READ));
    CU_ASSERT_EQUAL(errno, EPERM);
    /* Read-only grant, write mapping; a read mapping is fine. */
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 1, &ro_ref,
                                     XENIF_GNT_READ | XENIF_GNT_WRITE));
    CU_ASSERT_EQUAL(errno, EPERM);
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, ro_ref),
                    GTF_permit_access | GTF_readonly);
    void *r = xenif_gnt_map(be, fe_dom, 1, &ro_ref, XENIF_GNT_READ);
    CU_ASSERT_PTR_NOT_NULL(r);
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, ro_ref),
                    GTF_permit_access | GTF_readonly | GTF_reading);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(be, r, 1), 0);
    /* Never granted (no GTF_permit_access). */
    bad = XENSIM_GNT_ENTRIES - 1;
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 1, &bad, XENIF_GNT_READ));
    CU_ASSERT_EQUAL(errno, EPERM);
    /* Out of the table. */
    bad = XENSIM_GNT_ENTRIES;
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 1, &bad, XENIF_GNT_READ));
    CU_ASSERT_EQUAL(errno, EINVAL);
    bad = 0xffffffffu;
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 1, &bad, XENIF_GNT_READ));
    CU_ASSERT_EQUAL(errno, EINVAL);
    /* No such domain; bad arguments. */
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, 999, 1, &ro_ref, XENIF_GNT_READ));
    CU_ASSERT_EQUAL(errno, ESRCH);
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 0, &ro_ref, XENIF_GNT_READ));
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 1, &ro_ref, XENIF_GNT_WRITE));

    /* All or nothing: the good grant of a failed batch is not left pinned. */
    xenif_gref mixed[2] = { ro_ref, ref };
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 2, mixed, XENIF_GNT_READ));
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, ro_ref),
                    GTF_permit_access | GTF_readonly);

    /* Revoked grant. */
    CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, q, 1), 0);
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 1, &ro_ref, XENIF_GNT_READ));
    CU_ASSERT_EQUAL(errno, EPERM);
    CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, p, 1), 0);
    CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, p, 1), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
}

static void test_unshare_busy(void)
{
    xenif_gref refs[2];
    void *p = xenif_gnt_share(fe, 0, 2, refs, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    void *m = xenif_gnt_map(be, fe_dom, 1, &refs[1], XENIF_GNT_READ);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, p, 2), -1);
    CU_ASSERT_EQUAL(errno, EBUSY);
    /* Nothing was revoked by the failed attempt. */
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, refs[0]), GTF_permit_access);
    void *m0 = xenif_gnt_map(be, fe_dom, 1, &refs[0], XENIF_GNT_READ);
    CU_ASSERT_PTR_NOT_NULL(m0);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(be, m0, 1), 0);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(be, m, 1), 0);
    CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, p, 2), 0);
}

/* A guest that grabs the per-entry lock in its own grant table (it can
 * write that memory) costs the backend one failed map, not a hang. */
static void test_guest_held_lock(void)
{
    xenif_gref ref;
    void *p = xenif_gnt_share(fe, 0, 1, &ref, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int fd = sim_admin(&host);
    CU_ASSERT_FATAL(fd >= 0);
    struct xensim_gnt_layout *tab = xensim_gnt_attach(fd, fe_dom,
                                                      PROT_READ | PROT_WRITE,
                                                      NULL, NULL);
    close(fd);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tab);
    __atomic_store_n(&tab->active[ref].lock, 1, __ATOMIC_RELEASE);
    CU_ASSERT_PTR_NULL(xenif_gnt_map(be, fe_dom, 1, &ref, XENIF_GNT_READ));
    __atomic_store_n(&tab->active[ref].lock, 0, __ATOMIC_RELEASE);
    void *m = xenif_gnt_map(be, fe_dom, 1, &ref, XENIF_GNT_READ);
    CU_ASSERT_PTR_NOT_NULL(m);
    if (m)
        CU_ASSERT_EQUAL(xenif_gnt_unmap(be, m, 1), 0);
    munmap(tab, sizeof(*tab));
    CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, p, 1), 0);
}

static void test_copy(void)
{
    xenif_gref refs[2];
    uint8_t *p = xenif_gnt_share(fe, 0, 2, refs, true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    xenif_gref ro_ref;
    uint8_t *q = xenif_gnt_share(fe, 0, 1, &ro_ref, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    memcpy(p + 100, "from the guest", 14);
    memset(q, 'q', 4096);

    char in[16] = { 0 }, out[] = "to the guest", last[4];
    struct xenif_gnt_copy segs[] = {
        { .to_guest = false, .domid = fe_dom, .ref = refs[0], .offset = 100,
          .len = 14, .local = in },
        { .to_guest = true, .domid = fe_dom, .ref = refs[1], .offset = 4000,
          .len = sizeof(out), .local = out },
        { .to_guest = false, .domid = fe_dom, .ref = ro_ref, .offset = 4092,
          .len = 4, .local = last },
        /* Bad segments, each failing alone. */
        { .to_guest = false, .domid = fe_dom, .ref = refs[0], .offset = 4000,
          .len = 200, .local = in },
        { .to_guest = true, .domid = fe_dom, .ref = ro_ref, .offset = 0,
          .len = 4, .local = out },
        { .to_guest = false, .domid = fe_dom, .ref = XENSIM_GNT_ENTRIES + 5,
          .offset = 0, .len = 4, .local = in },
        { .to_guest = false, .domid = fe_dom, .ref = XENSIM_GNT_ENTRIES - 2,
          .offset = 0, .len = 4, .local = in },
        { .to_guest = false, .domid = 999, .ref = refs[0], .offset = 0,
          .len = 4, .local = in },
    };
    const int16_t want[] = { GNTST_okay, GNTST_okay, GNTST_okay,
                             GNTST_bad_copy_arg, GNTST_general_error,
                             GNTST_bad_gntref, GNTST_general_error,
                             GNTST_bad_domain };
    unsigned n = sizeof(segs) / sizeof(segs[0]);
    for (unsigned i = 0; i < n; i++)
        segs[i].status = 99;
    CU_ASSERT_EQUAL(xenif_gnt_copy(be, segs, n), 0);
    for (unsigned i = 0; i < n; i++)
        CU_ASSERT_EQUAL(segs[i].status, want[i]);
    CU_ASSERT_EQUAL(memcmp(in, "from the guest", 14), 0);
    CU_ASSERT_EQUAL(memcmp(p + 4096 + 4000, out, sizeof(out)), 0);
    CU_ASSERT_EQUAL(memcmp(last, "qqqq", 4), 0);
    CU_ASSERT_EQUAL(memcmp(q, "qqqq", 4), 0); /* refused write left it alone */
    /* Copies leave no pins behind. */
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, refs[1]), GTF_permit_access);
    CU_ASSERT_EQUAL(xenif_gnt_copy(be, segs, 0), 0);
    CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, p, 2), 0);
    CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, q, 1), 0);
}

/* Many small shares: refs come from host chunks, stay unique, get reused
 * after unshare, and pages come back zeroed. */
static void test_share_many(void)
{
    enum { N = 300 };
    static void *pages[N];
    static xenif_gref refs[N];
    for (int i = 0; i < N; i++) {
        pages[i] = xenif_gnt_share(fe, 0, 1, &refs[i], true);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pages[i]);
        CU_ASSERT_EQUAL(*(uint32_t *)pages[i], 0);
        *(uint32_t *)pages[i] = 0xdead0000u + (uint32_t)i;
        for (int j = 0; j < i; j++)
            CU_ASSERT_NOT_EQUAL_FATAL(refs[i], refs[j]);
    }
    uint32_t *m = xenif_gnt_map(be, fe_dom, 1, &refs[N - 1], XENIF_GNT_READ);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(*m, 0xdead0000u + N - 1);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(be, m, 1), 0);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, pages[i], 1), 0);
    for (int i = 0; i < N; i++) {
        pages[i] = xenif_gnt_share(fe, 0, 1, &refs[i], false);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pages[i]);
        CU_ASSERT_EQUAL(*(uint32_t *)pages[i], 0);
    }
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(fe, pages[i], 1), 0);
}

/* A frontend that exits without unsharing: its unused grants are revoked,
 * the ones still mapped stay valid for the mapper. */
static void test_frontend_exit(void)
{
    int pipefd[2], mapped[2];
    CU_ASSERT_EQUAL_FATAL(pipe(pipefd), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(mapped), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        char err[256];
        struct xenif_config cfg = sim_config(&host, fe_dom);
        struct xenif_gnt *g = xenif_gnt_open(&cfg, err, sizeof(err));
        xenif_gref refs[2];
        char *p = g ? xenif_gnt_share(g, 0, 2, refs, true) : NULL;
        if (!p)
            _exit(1);
        strcpy(p, "kept");
        if (write(pipefd[1], refs, sizeof(refs)) != sizeof(refs))
            _exit(1);
        /* Exit only once the backend has mapped refs[0]: exiting earlier
         * would (rightly) revoke both grants. */
        char go;
        _exit(read(mapped[0], &go, 1) == 1 ? 0 : 1);
    }
    xenif_gref refs[2];
    CU_ASSERT_EQUAL(read(pipefd[0], refs, sizeof(refs)), (ssize_t)sizeof(refs));
    close(pipefd[0]);
    close(pipefd[1]);
    char *m = xenif_gnt_map(be, fe_dom, 1, &refs[0], XENIF_GNT_READ);
    CU_ASSERT_EQUAL(write(mapped[1], "m", 1), 1);
    close(mapped[0]);
    close(mapped[1]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    int status;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The host reclaims asynchronously; poll briefly for the revocation. */
    int flags = -1;
    for (int i = 0; i < 200 && flags != 0; i++) {
        flags = sim_grant_flags(&host, fe_dom, refs[1]);
        if (flags != 0)
            usleep(5000);
    }
    CU_ASSERT_EQUAL(flags, 0);
    CU_ASSERT_STRING_EQUAL(m, "kept");
    CU_ASSERT_EQUAL(sim_grant_flags(&host, fe_dom, refs[0]),
                    GTF_permit_access | GTF_reading);
    CU_ASSERT_EQUAL(xenif_gnt_unmap(be, m, 1), 0);
}

static CU_TestInfo grant_tests[] = {
    { "map by the grantee, flags while mapped", test_map_by_grantee },
    { "map refused: domain, ro, ref, range", test_map_refused },
    { "unshare while mapped is EBUSY", test_unshare_busy },
    { "guest-held entry lock fails the map", test_guest_held_lock },
    { "grant copy both ways and bad segments", test_copy },
    { "share many: chunked refs, zeroed pages", test_share_many },
    { "frontend exit revokes unused grants", test_frontend_exit },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(xensim_grant, grant_init, grant_cleanup, grant_tests)
