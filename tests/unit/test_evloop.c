/* evloop: dispatch, removal from inside a callback, stop. */
#include "unit.h"
#include "evloop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct counter {
    int hits;
    int other_fd;      /* removed by the callback when set */
};

static void count_cb(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    struct counter *c = opaque;
    uint64_t v;
    CU_ASSERT(events & EPOLLIN);
    CU_ASSERT_EQUAL(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    c->hits++;
    if (c->other_fd >= 0) {
        evloop_del(loop, c->other_fd);
        c->other_fd = -1;
    }
}

static void test_dispatch_and_delete_in_callback(void)
{
    struct evloop *loop = evloop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    int a = eventfd(0, EFD_NONBLOCK), b = eventfd(0, EFD_NONBLOCK);
    struct counter ca = { 0, b }, cb = { 0, a };
    CU_ASSERT_EQUAL(evloop_add(loop, a, EPOLLIN, count_cb, &ca), 0);
    CU_ASSERT_EQUAL(evloop_add(loop, b, EPOLLIN, count_cb, &cb), 0);
    uint64_t one = 1;
    CU_ASSERT_EQUAL(write(a, &one, 8), 8);
    CU_ASSERT_EQUAL(write(b, &one, 8), 8);
    /* Both are ready in one batch; whichever runs first removes the other,
     * which must then not be called. */
    CU_ASSERT_EQUAL(evloop_run_once(loop, 1000), 1);
    CU_ASSERT_EQUAL(ca.hits + cb.hits, 1);
    CU_ASSERT_EQUAL(evloop_add(loop, a, EPOLLIN, count_cb, &ca) == 0 ||
                    evloop_add(loop, b, EPOLLIN, count_cb, &cb) == 0, 1);
    evloop_free(loop);
    close(a);
    close(b);
}

static void stop_cb(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)events;
    uint64_t v;
    CU_ASSERT_EQUAL(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    (*(int *)opaque)++;
    evloop_stop(loop);
}

static void test_run_until_stop(void)
{
    struct evloop *loop = evloop_new();
    int fd = eventfd(1, EFD_NONBLOCK);
    int calls = 0;
    CU_ASSERT_EQUAL(evloop_add(loop, fd, EPOLLIN, stop_cb, &calls), 0);
    CU_ASSERT_EQUAL(evloop_run(loop), 0);
    CU_ASSERT_EQUAL(calls, 1);
    CU_ASSERT(evloop_stopped(loop));
    CU_ASSERT_EQUAL(evloop_mod(loop, 12345, EPOLLIN), -1);
    evloop_free(loop);
    close(fd);
}

static CU_TestInfo evloop_tests[] = {
    { "dispatch and delete in callback", test_dispatch_and_delete_in_callback },
    { "run until stop", test_run_until_stop },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(evloop, NULL, NULL, evloop_tests)
