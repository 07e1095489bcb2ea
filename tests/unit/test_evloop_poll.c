/* evloop polling: the adaptive window (poll_window) and the loop using it
 * only when a source expects an event. */
#include "unit.h"
#include "evloop.h"
#include "poll_window.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define US 1000u

static void test_window_grows_to_the_cap(void)
{
    struct poll_window w;
    poll_window_init(&w, 20 * US);
    CU_ASSERT_EQUAL(w.ns, 0);
    /* Events within the cap but after the window: 4, 8, 16, then the cap. */
    uint64_t expect[] = { POLL_WINDOW_MIN_NS, 2 * POLL_WINDOW_MIN_NS,
                          4 * POLL_WINDOW_MIN_NS, 20 * US, 20 * US };
    for (unsigned i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        poll_window_update(&w, 19 * US);
        CU_ASSERT_EQUAL(w.ns, expect[i]);
    }
}

static void test_window_kept_while_polling_catches(void)
{
    struct poll_window w;
    poll_window_init(&w, 64 * US);
    for (int i = 0; i < 3; i++)
        poll_window_update(&w, 10 * US);
    CU_ASSERT_EQUAL(w.ns, 4 * POLL_WINDOW_MIN_NS);
    /* Caught within the window, however early: no change. */
    poll_window_update(&w, 0);
    poll_window_update(&w, 4 * POLL_WINDOW_MIN_NS);
    CU_ASSERT_EQUAL(w.ns, 4 * POLL_WINDOW_MIN_NS);
}

static void test_window_shrinks_to_off(void)
{
    struct poll_window w;
    poll_window_init(&w, 64 * US);
    while (w.ns < 64 * US)
        poll_window_update(&w, 60 * US);
    /* Later than the cap (or no event at all): halve, then off. */
    poll_window_update(&w, 65 * US);
    CU_ASSERT_EQUAL(w.ns, 32 * US);
    poll_window_update(&w, POLL_WAIT_NO_EVENT);
    CU_ASSERT_EQUAL(w.ns, 16 * US);
    poll_window_update(&w, 1000 * US);
    poll_window_update(&w, 1000 * US);
    CU_ASSERT_EQUAL(w.ns, 4 * US);
    poll_window_update(&w, 1000 * US);
    CU_ASSERT_EQUAL(w.ns, 0);
    poll_window_update(&w, POLL_WAIT_NO_EVENT);
    CU_ASSERT_EQUAL(w.ns, 0);
}

static void test_window_off_and_small_caps(void)
{
    struct poll_window w;
    poll_window_init(&w, 0);
    poll_window_update(&w, 1);
    poll_window_update(&w, 0);
    CU_ASSERT_EQUAL(w.ns, 0);
    poll_window_init(&w, 1 * US); /* below the first step: the cap */
    poll_window_update(&w, 500);
    CU_ASSERT_EQUAL(w.ns, 1 * US);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void drain_cb(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)loop;
    (void)events;
    uint64_t v;
    CU_ASSERT_EQUAL(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    (*(int *)opaque)++;
}

static void test_loop_polls_only_when_expecting(void)
{
    struct evloop *loop = evloop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    int fd = eventfd(0, EFD_NONBLOCK), hits = 0;
    uint64_t one = 1;
    CU_ASSERT_EQUAL(evloop_add(loop, fd, EPOLLIN, drain_cb, &hits), 0);
    evloop_set_poll_max_ns(loop, 1000 * US);
    /* Nothing expected: the loop neither polls nor learns. */
    CU_ASSERT_EQUAL(write(fd, &one, 8), 8);
    CU_ASSERT_EQUAL(evloop_run_once(loop, 1000), 1);
    CU_ASSERT_EQUAL(evloop_poll_window_ns(loop), 0);
    /* Expected and quick (already there): the window opens. */
    CU_ASSERT_EQUAL(write(fd, &one, 8), 8);
    evloop_expect_soon(loop);
    CU_ASSERT_EQUAL(evloop_run_once(loop, 1000), 1);
    CU_ASSERT_EQUAL(evloop_poll_window_ns(loop), POLL_WINDOW_MIN_NS);
    /* Expected but nothing comes: each wait polls no longer than the
     * window, and the window closes. */
    for (int i = 0; i < 8 && evloop_poll_window_ns(loop); i++) {
        uint64_t window = evloop_poll_window_ns(loop), t0 = mono_ns();
        evloop_expect_soon(loop);
        CU_ASSERT_EQUAL(evloop_run_once(loop, 1), 0);
        CU_ASSERT(mono_ns() - t0 >= window);
    }
    CU_ASSERT_EQUAL(evloop_poll_window_ns(loop), 0);
    /* An expectation outlives a wait that does not sleep... */
    evloop_expect_soon(loop);
    CU_ASSERT_EQUAL(evloop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(write(fd, &one, 8), 8);
    CU_ASSERT_EQUAL(evloop_run_once(loop, 1000), 1);
    CU_ASSERT_EQUAL(evloop_poll_window_ns(loop), POLL_WINDOW_MIN_NS);
    /* ...and holds for one wait that would sleep only. */
    CU_ASSERT_EQUAL(write(fd, &one, 8), 8);
    CU_ASSERT_EQUAL(evloop_run_once(loop, 1000), 1);
    CU_ASSERT_EQUAL(evloop_poll_window_ns(loop), POLL_WINDOW_MIN_NS);
    CU_ASSERT_EQUAL(hits, 4);
    evloop_free(loop);
    close(fd);
}

/* A peer that answers each request after a short delay, as an export
 * does. */
struct answerer {
    int fd;
    atomic_int asked; /* 1: answer, -1: quit */
};

static void *answer(void *opaque)
{
    struct answerer *a = opaque;
    for (;;) {
        int v = atomic_load(&a->asked);
        if (v < 0)
            return NULL;
        if (!v)
            continue;
        atomic_store(&a->asked, 0);
        struct timespec d = { 0, 50 * US };
        nanosleep(&d, NULL);
        uint64_t one = 1;
        if (write(a->fd, &one, 8) != 8)
            return NULL;
    }
}

static void test_loop_window_follows_answers(void)
{
    struct evloop *loop = evloop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    struct answerer a = { .fd = eventfd(0, EFD_NONBLOCK) };
    int hits = 0;
    CU_ASSERT_EQUAL(evloop_add(loop, a.fd, EPOLLIN, drain_cb, &hits), 0);
    /* A cap far above the answers' ~50-100 us, even on a loaded machine. */
    evloop_set_poll_max_ns(loop, 20000 * US);
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, answer, &a), 0);
    for (int i = 0; i < 12; i++) {
        atomic_store(&a.asked, 1);
        evloop_expect_soon(loop);
        /* A signal (a child of an earlier suite exiting) ends a wait
         * with nothing run: wait again. */
        int ran = 0;
        for (int tries = 0; ran == 0 && tries < 5; tries++)
            ran = evloop_run_once(loop, 5000);
        CU_ASSERT_EQUAL(ran, 1);
    }
    /* From the first step up by doubling until the answers fall within
     * the window (above their 50 us), and never past the cap. */
    uint64_t w = evloop_poll_window_ns(loop);
    CU_ASSERT(w >= 64 * US);
    CU_ASSERT(w <= 20000 * US);
    atomic_store(&a.asked, -1);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(hits, 12);
    evloop_free(loop);
    close(a.fd);
}

static CU_TestInfo evloop_poll_tests[] = {
    { "window grows to the cap", test_window_grows_to_the_cap },
    { "window kept while polling catches", test_window_kept_while_polling_catches },
    { "window shrinks to off", test_window_shrinks_to_off },
    { "window off and small caps", test_window_off_and_small_caps },
    { "loop polls only when expecting", test_loop_polls_only_when_expecting },
    { "loop window follows answers", test_loop_window_follows_answers },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(evloop_poll, NULL, NULL, evloop_poll_tests)
