/* bufpool: the export side's I/O buffers (READ data on its way to the
 * socket, WRITE data on its way to the device), kept for reuse. A fresh
 * 1 MiB buffer costs 256 page faults and the zeroing of every page, and
 * giving it back costs an munmap with a TLB shootdown to every thread of
 * the process (io_uring's workers): profiled on 1 MiB reads that was more
 * than the copying of the data. Page-aligned (O_DIRECT), sizes rounded up
 * to a power of two from 4 KiB; at most NB_BUFPOOL_KEEP bytes are kept.
 * One pool per process, used from the event loop's thread only. */
#ifndef NETBUS_CHANNEL_BUFPOOL_H
#define NETBUS_CHANNEL_BUFPOOL_H

#include <stddef.h>

#define NB_BUFPOOL_KEEP (32u << 20)

/* A buffer of at least len bytes (len > 0), or NULL. */
void *nb_buf_get(size_t len);
/* Gives back a buffer from nb_buf_get(len) (NULL is ignored). */
void nb_buf_put(void *buf, size_t len);
/* Frees every kept buffer. */
void nb_buf_trim(void);

#endif
