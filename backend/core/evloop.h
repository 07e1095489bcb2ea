/* evloop: the one epoll loop a process runs. Every fd a daemon owns is
 * registered here with a callback; nothing else blocks. */
#ifndef NETBUS_EVLOOP_H
#define NETBUS_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct evloop;

/* Called with the epoll events (EPOLLIN, EPOLLOUT, EPOLLHUP, ...) that fired. */
typedef void (*evloop_fd_cb)(struct evloop *loop, int fd, uint32_t events,
                             void *opaque);

struct evloop *evloop_new(void);
void evloop_free(struct evloop *loop);

/* Watch fd for events (EPOLLIN and/or EPOLLOUT). One registration per fd. */
int evloop_add(struct evloop *loop, int fd, uint32_t events, evloop_fd_cb cb,
               void *opaque);
int evloop_mod(struct evloop *loop, int fd, uint32_t events);
/* Safe to call from inside any callback, including the fd's own. */
void evloop_del(struct evloop *loop, int fd);

/* Work to run once after the events being dispatched (batching: many
 * completions in one wake-up, one write or one ring push for all of them).
 * The owner embeds it and sets cb; deferring a queued one again is a
 * no-op. */
struct evloop_deferred {
    void (*cb)(void *opaque);
    void *opaque;
    struct evloop_deferred *next;
    bool queued;
};
void evloop_defer(struct evloop *loop, struct evloop_deferred *d);
/* Takes d back (call before freeing what it points to). */
void evloop_defer_cancel(struct evloop *loop, struct evloop_deferred *d);

/* Wait up to timeout_ms (-1: forever) and dispatch what fired, then run
 * what was deferred (without waiting when something was deferred before).
 * Returns the number of callbacks run, or -1 with errno. */
int evloop_run_once(struct evloop *loop, int timeout_ms);

/* Adaptive polling (poll_window.h): when a source expects an event soon,
 * the next wait looks for events without sleeping for up to a window of at
 * most max_ns, so an answer that comes within it costs no sleep and
 * wake-up. 0 (the default) turns it off. */
void evloop_set_poll_max_ns(struct evloop *loop, uint64_t max_ns);
/* Called from a callback: something this source waits for should come soon
 * (the answer to a request just sent, the next request of a guest just
 * answered). Holds for the next wait that would sleep only. */
void evloop_expect_soon(struct evloop *loop);
/* The window an expected wait polls for (0: it sleeps at once). */
uint64_t evloop_poll_window_ns(const struct evloop *loop);

/* Run until evloop_stop() is called (from a callback or signal handler). */
int evloop_run(struct evloop *loop);
void evloop_stop(struct evloop *loop);
/* SIGINT and SIGTERM stop the loop (through a signalfd, so a signal that
 * lands just before epoll_wait is not missed). Blocks both signals in the
 * calling thread. `who` names the process in the log line. */
int evloop_stop_on_signals(struct evloop *loop, const char *who);
bool evloop_stopped(const struct evloop *loop);

#endif
