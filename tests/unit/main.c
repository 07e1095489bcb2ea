/* Runs every registered CUnit suite. Arguments, if any, name the suites to
 * run (e.g. `unit-tests xenstored`). */
#include "unit.h"

#include <CUnit/Basic.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct unit_suite *suites;

void unit_register(struct unit_suite *suite)
{
    /* Append, so suites run in link order. */
    struct unit_suite **pp = &suites;
    while (*pp)
        pp = &(*pp)->next;
    *pp = suite;
}

char *unit_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path;
    if (asprintf(&path, "%s/netbus-%s-XXXXXX", base ? base : "/tmp", tag) < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void unit_rmtree(const char *dir)
{
    if (dir)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int wanted(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    /* A peer closing a socket under a test must fail a call, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (struct unit_suite *s = suites; s; s = s->next) {
        if (!wanted(s->name, argc, argv))
            continue;
        CU_pSuite suite = CU_add_suite(s->name, s->init, s->cleanup);
        if (!suite)
            return 2;
        for (const CU_TestInfo *t = s->tests; t->pName; t++)
            if (!CU_add_test(suite, t->pName, t->pTestFunc))
                return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() +
                      CU_get_number_of_suites_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (ran == 0) {
        fprintf(stderr, "unit-tests: no test ran\n");
        return 1;
    }
    return failed ? 1 : 0;
}
