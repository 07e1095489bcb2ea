/* poll_window: how long an event loop busy-polls for its next event before
 * it sleeps, adapted to how long the events actually took to come (the idea
 * of QEMU's AioContext poll-max-ns, written anew).
 *
 * A sleep in epoll_wait followed by a wake-up costs a process tens of
 * microseconds when the event arrives; polling (epoll_wait with no timeout,
 * in a loop) costs CPU for as long as it lasts. So the window grows while
 * events come within the cap but after the window (a longer window would
 * have caught them), stays while polling catches them, and shrinks to off
 * while they come later than the cap (polling could not have caught them:
 * pure waste, and an idle loop must cost nothing). */
#ifndef NETBUS_POLL_WINDOW_H
#define NETBUS_POLL_WINDOW_H

#include <stdint.h>

/* The first window tried once events start coming within the cap, and the
 * smallest one kept when shrinking (below it, polling is turned off). */
#define POLL_WINDOW_MIN_NS 4000u

/* Wait that ended with no event at all (a timeout). */
#define POLL_WAIT_NO_EVENT UINT64_MAX

struct poll_window {
    uint64_t max_ns; /* the cap; 0: polling off for good */
    uint64_t ns;     /* current window, 0 (off for now) to max_ns */
};

void poll_window_init(struct poll_window *w, uint64_t max_ns);
/* Learns from one wait: waited_ns is the time from the start of polling (or
 * of the sleep, with the window at 0) to the first event, or
 * POLL_WAIT_NO_EVENT. */
void poll_window_update(struct poll_window *w, uint64_t waited_ns);

#endif
