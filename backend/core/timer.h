/* timer: one-shot timers on the evloop, one timerfd each, on the monotonic
 * clock in milliseconds. Arming again moves the deadline; the callback runs
 * from the event loop once the deadline has passed. */
#ifndef NETBUS_TIMER_H
#define NETBUS_TIMER_H

#include <stdint.h>

struct evloop;
struct timer;

/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t mono_ms(void);

struct timer *timer_new(struct evloop *loop, void (*cb)(void *opaque),
                        void *opaque);
/* Fires once at `when` (mono_ms time; a past time fires at once). */
void timer_at(struct timer *t, uint64_t when);
void timer_cancel(struct timer *t);
void timer_free(struct timer *t);

#endif
