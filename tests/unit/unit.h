/* Unit test registry: each test file declares its suites with UNIT_SUITE and
 * tests/unit/main.c runs them all under one CUnit summary. */
#ifndef NETBUS_UNIT_H
#define NETBUS_UNIT_H

#include <CUnit/CUnit.h>

struct unit_suite {
    const char *name;
    CU_InitializeFunc init;
    CU_CleanupFunc cleanup;
    const CU_TestInfo *tests; /* terminated by CU_TEST_INFO_NULL */
    struct unit_suite *next;
};

void unit_register(struct unit_suite *suite);

/* UNIT_SUITE(xenstored, init_fn, cleanup_fn, tests_array) */
#define UNIT_SUITE(id, init_fn, cleanup_fn, tests_array)                     \
    static struct unit_suite unit_suite_##id = { #id, init_fn, cleanup_fn,   \
                                                 tests_array, 0 };          \
    __attribute__((constructor)) static void unit_register_##id(void)        \
    {                                                                        \
        unit_register(&unit_suite_##id);                                     \
    }

/* A fresh private directory under $TMPDIR (or /tmp); caller frees the string
 * and removes the tree with unit_rmtree. */
char *unit_tmpdir(const char *tag);
void unit_rmtree(const char *dir);

#endif
