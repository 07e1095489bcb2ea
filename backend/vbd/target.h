/* target: where a vbd's I/O goes. The ring code hands over operations that
 * are already validated (in range, aligned to sector_size) with iovecs that
 * point straight into mapped guest pages; a target completes them
 * asynchronously through io->done from the event loop. target_file.c is the
 * local one (regular file or block device, io_uring); a netbus remote target
 * plugs in behind the same ops. */
#ifndef NETBUS_VBD_TARGET_H
#define NETBUS_VBD_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct evloop;

enum vbd_io_kind { VBD_IO_READ, VBD_IO_WRITE, VBD_IO_FLUSH, VBD_IO_DISCARD };

struct vbd_target_io {
    enum vbd_io_kind kind;
    bool preflush;          /* WRITE: earlier writes stable before this one */
    uint64_t offset, len;   /* bytes */
    const struct iovec *iov;
    unsigned iovcnt;
    /* err: 0 or -errno. Called from the event loop (or from drain). */
    void (*done)(struct vbd_target_io *io, int err);
    /* target private */
    int pending;
    int err;
    struct vbd_target_io *next_done;
};

struct vbd_target_info {
    uint64_t size;                 /* bytes */
    unsigned sector_size;          /* logical: 512 for files */
    unsigned physical_sector_size;
    unsigned discard_granularity;  /* bytes */
    bool readonly, can_flush, can_discard, is_blockdev;
    bool direct;                   /* O_DIRECT in use */
};

struct vbd_target;

struct vbd_target_ops {
    /* Queues io (completes later through io->done). -errno if it cannot be
     * queued at all; done is then not called. */
    int (*submit)(struct vbd_target *t, struct vbd_target_io *io);
    /* Sends what was queued since the last kick. */
    void (*kick)(struct vbd_target *t);
    /* Blocks until every submitted io has completed (done called). */
    void (*drain)(struct vbd_target *t);
    unsigned (*inflight)(const struct vbd_target *t);
    void (*close)(struct vbd_target *t);
};

struct vbd_target {
    const struct vbd_target_ops *ops;
    struct vbd_target_info info;
    /* Called after each batch of completions (so the ring code pushes the
     * responses once per batch). */
    void (*reaped)(void *opaque);
    void *opaque;
};

/* Opens a regular file or block device; O_DIRECT when the file system
 * allows it (else buffered, logged), io_uring registered with loop.
 * where names the device in log lines. NULL with a reason in err. */
struct vbd_target *vbd_target_file_open(const char *path, bool readonly,
                                        struct evloop *loop, const char *where,
                                        char *err, size_t errlen);

#endif
