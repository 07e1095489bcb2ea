#include "evloop.h"

#include <errno.h>
#include "log.h"
#include "poll_window.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64

struct evloop_entry {
    int fd;
    evloop_fd_cb cb;
    void *opaque;
    struct evloop_entry *next;
};

struct evloop {
    int epfd;
    struct evloop_entry *entries;
    /* Entries removed while dispatching are freed only after the batch,
     * because later events of the same batch may still point at them. */
    struct evloop_entry *graveyard;
    struct evloop_deferred *deferred, **deferred_tail;
    volatile sig_atomic_t stop;
    int signal_fd; /* -1 unless evloop_stop_on_signals was called */
    const char *signal_who;
    struct poll_window poll;
    bool expect; /* evloop_expect_soon() since the last wait */
};

struct evloop *evloop_new(void)
{
    struct evloop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->signal_fd = -1;
    loop->deferred_tail = &loop->deferred;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    return loop;
}

static void free_list(struct evloop_entry *e)
{
    while (e) {
        struct evloop_entry *next = e->next;
        free(e);
        e = next;
    }
}

void evloop_free(struct evloop *loop)
{
    if (!loop)
        return;
    close(loop->epfd);
    if (loop->signal_fd >= 0)
        close(loop->signal_fd);
    free_list(loop->entries);
    free_list(loop->graveyard);
    free(loop);
}

int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fd_cb cb,
               void *opaque)
{
    struct evloop_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return -1;
    e->fd = fd;
    e->cb = cb;
    e->opaque = opaque;
    struct epoll_event ev = { .events = events, .data.ptr = e };
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int saved = errno;
        free(e);
        errno = saved;
        return -1;
    }
    e->next = loop->entries;
    loop->entries = e;
    return 0;
}

static struct evloop_entry *find(struct evloop *loop, int fd)
{
    for (struct evloop_entry *e = loop->entries; e; e = e->next)
        if (e->fd == fd)
            return e;
    return NULL;
}

int evloop_mod(struct evloop *loop, int fd, uint32_t events)
{
    struct evloop_entry *e = find(loop, fd);
    if (!e) {
        errno = ENOENT;
        return -1;
    }
    struct epoll_event ev = { .events = events, .data.ptr = e };
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void evloop_del(struct evloop *loop, int fd)
{
    for (struct evloop_entry **pp = &loop->entries; *pp; pp = &(*pp)->next) {
        struct evloop_entry *e = *pp;
        if (e->fd != fd)
            continue;
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
        *pp = e->next;
        e->cb = NULL;
        e->next = loop->graveyard;
        loop->graveyard = e;
        return;
    }
}

void evloop_defer(struct evloop *loop, struct evloop_deferred *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    *loop->deferred_tail = d;
    loop->deferred_tail = &d->next;
}

void evloop_defer_cancel(struct evloop *loop, struct evloop_deferred *d)
{
    if (!d->queued)
        return;
    for (struct evloop_deferred **pp = &loop->deferred; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            if (loop->deferred_tail == &d->next)
                loop->deferred_tail = pp;
            break;
        }
    d->queued = false;
    d->next = NULL;
}

/* Runs the deferred work, including what it defers in turn. */
static int run_deferred(struct evloop *loop)
{
    int ran = 0;
    while (loop->deferred) {
        struct evloop_deferred *d = loop->deferred;
        loop->deferred = d->next;
        if (!loop->deferred)
            loop->deferred_tail = &loop->deferred;
        d->next = NULL;
        d->queued = false;
        d->cb(d->opaque);
        ran++;
    }
    return ran;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void evloop_set_poll_max_ns(struct evloop *loop, uint64_t max_ns)
{
    poll_window_init(&loop->poll, max_ns);
}

uint64_t evloop_poll_window_ns(const struct evloop *loop)
{
    return loop->poll.ns;
}

void evloop_expect_soon(struct evloop *loop)
{
    loop->expect = true;
}

/* Waits for events. When a source expects one soon: first by polling
 * (epoll_wait without sleeping) for the current window, then asleep, and
 * the time the first event took adapts the window. Otherwise (nothing
 * expected, polling off, or a wait that must not block, which leaves the
 * expectation to the next wait that would sleep) one epoll_wait: a loop
 * nobody expects anything of never polls. */
static int wait_events(struct evloop *loop, struct epoll_event *evs,
                       int timeout_ms)
{
    if (timeout_ms == 0)
        return epoll_wait(loop->epfd, evs, MAX_EVENTS, 0);
    bool expect = loop->expect;
    loop->expect = false;
    if (!expect || loop->poll.max_ns == 0)
        return epoll_wait(loop->epfd, evs, MAX_EVENTS, timeout_ms);
    uint64_t start = now_ns(), until = start + loop->poll.ns;
    int n = 0;
    if (loop->poll.ns) {
        /* Yielding between looks: a process that has work on this CPU
         * (the guest, the export when they share the host's few cores)
         * runs first, so polling only uses time nobody else wants. */
        while ((n = epoll_wait(loop->epfd, evs, MAX_EVENTS, 0)) == 0 &&
               now_ns() < until)
            sched_yield();
    }
    if (n == 0)
        n = epoll_wait(loop->epfd, evs, MAX_EVENTS, timeout_ms);
    if (n > 0)
        poll_window_update(&loop->poll, now_ns() - start);
    else if (n == 0)
        poll_window_update(&loop->poll, POLL_WAIT_NO_EVENT);
    return n;
}

int evloop_run_once(struct evloop *loop, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = wait_events(loop, evs, loop->deferred ? 0 : timeout_ms);
    if (n < 0 && errno != EINTR)
        return -1;
    int ran = 0;
    for (int i = 0; i < n; i++) {
        struct evloop_entry *e = evs[i].data.ptr;
        if (!e->cb)
            continue; /* removed earlier in this batch */
        e->cb(loop, e->fd, evs[i].events, e->opaque);
        ran++;
    }
    ran += run_deferred(loop);
    free_list(loop->graveyard);
    loop->graveyard = NULL;
    return ran;
}

int evloop_run(struct evloop *loop)
{
    while (!loop->stop)
        if (evloop_run_once(loop, -1) < 0)
            return -1;
    return 0;
}

void evloop_stop(struct evloop *loop)
{
    loop->stop = 1;
}

static void signal_cb(struct evloop *loop, int fd, uint32_t events,
                      void *opaque)
{
    (void)events;
    (void)opaque;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        log_info(loop->signal_who, "signal %u: shutting down", si.ssi_signo);
    evloop_stop(loop);
}

int evloop_stop_on_signals(struct evloop *loop, const char *who)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0)
        return -1;
    int fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (evloop_add(loop, fd, EPOLLIN, signal_cb, NULL) < 0) {
        close(fd);
        return -1;
    }
    loop->signal_fd = fd;
    loop->signal_who = who;
    return 0;
}

bool evloop_stopped(const struct evloop *loop)
{
    return loop->stop;
}
