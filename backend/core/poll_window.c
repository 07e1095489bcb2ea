/* poll_window: adaptive busy-poll time (see poll_window.h). */
#include "poll_window.h"

void poll_window_init(struct poll_window *w, uint64_t max_ns)
{
    w->max_ns = max_ns;
    w->ns = 0;
}

void poll_window_update(struct poll_window *w, uint64_t waited_ns)
{
    if (waited_ns <= w->ns)
        return; /* caught by polling: the window is right */
    if (waited_ns > w->max_ns) {
        /* Too late for any window allowed: halve, then off. */
        w->ns /= 2;
        if (w->ns < POLL_WINDOW_MIN_NS)
            w->ns = 0;
        return;
    }
    /* Within reach: doubling catches it after a few waits. */
    w->ns = w->ns ? w->ns * 2 : POLL_WINDOW_MIN_NS;
    if (w->ns > w->max_ns)
        w->ns = w->max_ns;
}
