#include "timer.h"

#include "evloop.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct timer {
    struct evloop *loop;
    int fd;
    void (*cb)(void *opaque);
    void *opaque;
};

uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_timerfd(struct evloop *loop, int fd, uint32_t events,
                       void *opaque)
{
    (void)loop;
    (void)events;
    struct timer *t = opaque;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
        return; /* re-armed or cancelled since it fired */
    t->cb(t->opaque);
}

struct timer *timer_new(struct evloop *loop, void (*cb)(void *opaque),
                        void *opaque)
{
    struct timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->loop = loop;
    t->cb = cb;
    t->opaque = opaque;
    t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->fd < 0 || evloop_add(loop, t->fd, EPOLLIN, on_timerfd, t) < 0) {
        int saved = errno;
        if (t->fd >= 0)
            close(t->fd);
        free(t);
        errno = saved;
        return NULL;
    }
    return t;
}

void timer_at(struct timer *t, uint64_t when)
{
    if (when == 0)
        when = 1; /* an all-zero it_value would disarm */
    struct itimerspec its = {
        .it_value = { .tv_sec = (time_t)(when / 1000),
                      .tv_nsec = (long)(when % 1000) * 1000000 },
    };
    if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        log_error(NULL, "timerfd_settime: %s", strerror(errno));
}

void timer_cancel(struct timer *t)
{
    if (!t)
        return;
    struct itimerspec its = { 0 };
    timerfd_settime(t->fd, 0, &its, NULL);
}

void timer_free(struct timer *t)
{
    if (!t)
        return;
    evloop_del(t->loop, t->fd);
    close(t->fd);
    free(t);
}
