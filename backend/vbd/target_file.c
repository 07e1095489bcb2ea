/* target_file: a vbd backed by a local regular file or block device.
 *
 * I/O goes through one io_uring per target with as many operations in flight
 * as the rings hand us, readv/writev straight from/to the mapped guest pages.
 * The file is opened with O_DIRECT when the file system allows it; requests
 * that do not meet the direct-I/O alignment (statx STATX_DIOALIGN) go through
 * a second, buffered descriptor of the same file. Flush is fdatasync
 * (IORING_FSYNC_DATASYNC); a write with a preflush is an fdatasync linked
 * before the write. Discard is fallocate(PUNCH_HOLE|KEEP_SIZE), which block
 * devices turn into a discard/zero-out as BLKDISCARD would.
 *
 * Few system calls: the event loop polls the ring's own fd (level-triggered:
 * it reports only completions nobody reaped yet, and needs no read to
 * reset), and after a submission the completion queue is peeked before the
 * loop sleeps, so an operation that finished within io_uring_enter (a
 * page-cache read) costs no wake-up at all.
 *
 * Files in memory (tmpfs, ramfs) are the exception: they have no
 * non-blocking I/O, so io_uring would hand each operation to a kernel
 * worker thread, two thread switches for a memory copy (a 4 KiB read: 22
 * us through io_uring, 1.6 us with preadv, measured). Their operations of
 * up to IN_MEMORY_SYNC_MAX bytes are done at submission with
 * preadv/pwritev, which wait on memory only, and completed after the
 * loop's batch like the ring's. Larger ones stay on the ring: its workers
 * copy them on other CPUs while the loop takes the next request (1 MiB
 * sequential writes lost 12% done in the loop). */
#include "target.h"

#include "evloop.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#define QUEUE_DEPTH 256
#define AUX_TAG 1ul /* user_data low bit: the fdatasync linked before a write */
#define IN_MEMORY_SYNC_MAX (128u << 10)

struct file_target {
    struct vbd_target pub;
    char *where;
    struct evloop *loop;
    int fd_direct;      /* -1 when O_DIRECT is not available */
    int fd_buf;
    unsigned mem_align, off_align;
    struct io_uring ring;
    /* Reaps after the loop's batch: deferred rather than done inside kick,
     * whose callers do not expect done() before kick returns. A kick from
     * the peek's own completions is left to the ring fd, so a guest that
     * keeps the queue busy cannot hold the loop in deferred work. */
    struct evloop_deferred peek;
    bool peeking;
    unsigned inflight;
    bool in_memory;                   /* tmpfs, ramfs: small I/O done at
                                         submission */
    struct vbd_target_io **done_tail; /* done at submission, not reported */
    struct vbd_target_io *done_head;
    bool nop_posted;                  /* a NOP is on the ring to wake us */
};

#define FT(t) ((struct file_target *)(t))

static bool dio_ok(const struct file_target *f, const struct vbd_target_io *io)
{
    if (f->fd_direct < 0)
        return false;
    if (io->kind != VBD_IO_READ && io->kind != VBD_IO_WRITE)
        return true;
    if ((io->offset | io->len) & (f->off_align - 1))
        return false;
    for (unsigned i = 0; i < io->iovcnt; i++)
        if (((uintptr_t)io->iov[i].iov_base & (f->mem_align - 1)) ||
            (io->iov[i].iov_len & (f->off_align - 1)))
            return false;
    return true;
}

static void submit_now(struct file_target *f);

/* Operations done at submission while the peek reported completions: a NOP
 * on the ring makes its fd report them at the loop's next turn, as a busy
 * guest's io_uring completions are. */
static void report_next_turn(struct file_target *f)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
    if (!sqe) {
        submit_now(f);
        sqe = io_uring_get_sqe(&f->ring);
    }
    if (!sqe)
        return; /* the ring is full: its completions wake us anyway */
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, NULL);
    f->nop_posted = true;
    submit_now(f);
}

static void reap(struct file_target *f)
{
    struct io_uring_cqe *cqe;
    /* Those done at submission until now: what their done() submits in
     * turn waits for the next reap. */
    struct vbd_target_io *io = f->done_head, *next;
    bool any = io != NULL;
    f->done_head = NULL;
    f->done_tail = &f->done_head;
    for (; io; io = next) {
        next = io->next_done;
        f->inflight--;
        io->done(io, io->err);
    }
    while (io_uring_peek_cqe(&f->ring, &cqe) == 0) {
        uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&f->ring, cqe);
        io = (struct vbd_target_io *)(ud & ~AUX_TAG);
        if (!io) {
            f->nop_posted = false;
            continue;
        }
        int err = res < 0 ? res : 0;
        if (!err && !(ud & AUX_TAG) &&
            (io->kind == VBD_IO_READ || io->kind == VBD_IO_WRITE) &&
            (uint64_t)res != io->len)
            err = -EIO; /* short transfer: the file shrank under us */
        if (err && !io->err)
            io->err = err;
        if (--io->pending == 0) {
            f->inflight--;
            any = true;
            io->done(io, io->err);
        }
    }
    if (any && f->pub.reaped)
        f->pub.reaped(f->pub.opaque);
    if (f->peeking && f->done_head && !f->nop_posted)
        report_next_turn(f);
}

static void submit_now(struct file_target *f)
{
    for (int tries = 0; io_uring_sq_ready(&f->ring) && tries < 1000; tries++) {
        int rc = io_uring_submit(&f->ring);
        if (rc >= 0)
            continue;
        if (rc == -EBUSY || rc == -EAGAIN || rc == -EINTR) {
            /* Completions are waiting to be reaped first. */
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&f->ring, &cqe) == 0)
                reap(f);
            continue;
        }
        log_error(f->where, "io_uring_submit: %s", strerror(-rc));
        break;
    }
}

static int sync_io(struct file_target *f, const struct vbd_target_io *io)
{
    ssize_t n = 0;
    switch (io->kind) {
    case VBD_IO_READ:
        n = preadv(f->fd_buf, io->iov, (int)io->iovcnt, (off_t)io->offset);
        break;
    case VBD_IO_WRITE:
        if (io->preflush && fdatasync(f->fd_buf) < 0)
            return -errno;
        n = pwritev(f->fd_buf, io->iov, (int)io->iovcnt, (off_t)io->offset);
        break;
    case VBD_IO_FLUSH:
        return fdatasync(f->fd_buf) < 0 ? -errno : 0;
    case VBD_IO_DISCARD:
        if (io->len && fallocate(f->fd_buf, FALLOC_FL_PUNCH_HOLE |
                                 FALLOC_FL_KEEP_SIZE, (off_t)io->offset,
                                 (off_t)io->len) < 0)
            return -errno;
        return 0;
    }
    if (n < 0)
        return -errno;
    return (uint64_t)n == io->len ? 0 : -EIO; /* short: the file shrank */
}

static int file_submit(struct vbd_target *t, struct vbd_target_io *io)
{
    struct file_target *f = FT(t);
    if (f->in_memory && io->len <= IN_MEMORY_SYNC_MAX) {
        io->err = sync_io(f, io);
        io->next_done = NULL;
        *f->done_tail = io;
        f->done_tail = &io->next_done;
        f->inflight++;
        return 0;
    }
    unsigned need = io->kind == VBD_IO_WRITE && io->preflush ? 2 : 1;
    if (io_uring_sq_space_left(&f->ring) < need)
        submit_now(f);
    if (io_uring_sq_space_left(&f->ring) < need)
        return -EAGAIN;
    int fd = dio_ok(f, io) ? f->fd_direct : f->fd_buf;
    io->pending = (int)need;
    io->err = 0;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
    if (need == 2) {
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
        io_uring_sqe_set_data(sqe, (void *)((uintptr_t)io | AUX_TAG));
        io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
        sqe = io_uring_get_sqe(&f->ring);
    }
    switch (io->kind) {
    case VBD_IO_READ:
        io_uring_prep_readv(sqe, fd, io->iov, io->iovcnt, io->offset);
        break;
    case VBD_IO_WRITE:
        io_uring_prep_writev(sqe, fd, io->iov, io->iovcnt, io->offset);
        break;
    case VBD_IO_FLUSH:
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
        break;
    case VBD_IO_DISCARD:
        if (io->len == 0)
            io_uring_prep_nop(sqe);
        else
            io_uring_prep_fallocate(sqe, fd,
                                    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                    io->offset, io->len);
        break;
    }
    io_uring_sqe_set_data(sqe, io);
    f->inflight++;
    return 0;
}

static void file_kick(struct vbd_target *t)
{
    struct file_target *f = FT(t);
    submit_now(f);
    if (f->inflight && !f->peeking)
        evloop_defer(f->loop, &f->peek);
}

static void on_peek(void *opaque)
{
    struct file_target *f = opaque;
    f->peeking = true;
    reap(f);
    f->peeking = false;
}

static void file_drain(struct vbd_target *t)
{
    struct file_target *f = FT(t);
    submit_now(f);
    while (f->inflight) {
        struct io_uring_cqe *cqe;
        int rc = f->done_head ? 0 : io_uring_wait_cqe(&f->ring, &cqe);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
            log_error(f->where, "waiting for I/O completions: %s", strerror(-rc));
            break;
        }
        reap(f);
        submit_now(f);
    }
}

static unsigned file_inflight(const struct vbd_target *t)
{
    return ((const struct file_target *)t)->inflight;
}

static void on_ring(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)loop;
    (void)fd;
    (void)events;
    reap(opaque);
}

static void file_close(struct vbd_target *t)
{
    struct file_target *f = FT(t);
    if (!f)
        return;
    file_drain(t);
    evloop_defer_cancel(f->loop, &f->peek);
    evloop_del(f->loop, f->ring.ring_fd);
    io_uring_queue_exit(&f->ring);
    if (f->fd_direct >= 0)
        close(f->fd_direct);
    close(f->fd_buf);
    free(f->where);
    free(f);
}

static const struct vbd_target_ops file_ops = {
    .submit = file_submit,
    .kick = file_kick,
    .drain = file_drain,
    .inflight = file_inflight,
    .close = file_close,
};

static unsigned clamp_pow2(unsigned v, unsigned lo, unsigned hi)
{
    if (v < lo || (v & (v - 1)))
        return lo;
    return v > hi ? hi : v;
}

struct vbd_target *vbd_target_file_open(const char *path, bool readonly,
                                        struct evloop *loop, const char *where,
                                        char *err, size_t errlen)
{
    struct file_target *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->fd_direct = f->fd_buf = -1;
    f->loop = loop;
    f->peek.cb = on_peek;
    f->peek.opaque = f;
    f->done_tail = &f->done_head;
    f->where = strdup(where ? where : path);
    int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    f->fd_buf = open(path, flags);
    if (f->fd_buf < 0) {
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(f->fd_buf, &st) < 0) {
        snprintf(err, errlen, "stat %s: %s", path, strerror(errno));
        goto fail;
    }
    struct vbd_target_info *info = &f->pub.info;
    info->readonly = readonly;
    if (S_ISREG(st.st_mode)) {
        info->size = (uint64_t)st.st_size;
        info->sector_size = 512;
        info->physical_sector_size = clamp_pow2((unsigned)st.st_blksize, 512, 4096);
        info->discard_granularity = clamp_pow2((unsigned)st.st_blksize, 512, 1u << 20);
    } else if (S_ISBLK(st.st_mode)) {
        uint64_t size;
        int lbs;
        unsigned pbs;
        if (ioctl(f->fd_buf, BLKGETSIZE64, &size) < 0 ||
            ioctl(f->fd_buf, BLKSSZGET, &lbs) < 0) {
            snprintf(err, errlen, "%s: BLKGETSIZE64/BLKSSZGET: %s", path,
                     strerror(errno));
            goto fail;
        }
        if (ioctl(f->fd_buf, BLKPBSZGET, &pbs) < 0)
            pbs = (unsigned)lbs;
        info->is_blockdev = true;
        info->size = size;
        info->sector_size = clamp_pow2((unsigned)lbs, 512, 4096);
        info->physical_sector_size = clamp_pow2(pbs, info->sector_size, 65536);
        info->discard_granularity = info->physical_sector_size;
    } else {
        snprintf(err, errlen, "%s is neither a regular file nor a block device",
                 path);
        goto fail;
    }
    info->can_flush = !readonly;
    info->can_discard = !readonly;
    struct statfs sfs;
    f->in_memory = S_ISREG(st.st_mode) && fstatfs(f->fd_buf, &sfs) == 0 &&
                   (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
    if (f->in_memory)
        log_info(f->where, "%s is in memory (tmpfs/ramfs): I/O up to %u KiB "
                 "done at submission, not through io_uring", path,
                 IN_MEMORY_SYNC_MAX >> 10);

    f->fd_direct = open(path, flags | O_DIRECT);
    if (f->fd_direct < 0) {
        log_info(f->where, "%s: O_DIRECT not available (%s); buffered I/O",
                 path, strerror(errno));
    } else {
        struct statx stx;
        f->mem_align = f->off_align = info->sector_size;
        if (statx(f->fd_direct, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
            (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
            f->mem_align = stx.stx_dio_mem_align ? stx.stx_dio_mem_align : 1;
            f->off_align = stx.stx_dio_offset_align;
        }
        if ((f->mem_align & (f->mem_align - 1)) ||
            (f->off_align & (f->off_align - 1)) || f->off_align > 4096) {
            log_info(f->where, "%s: odd direct-I/O alignment; buffered I/O", path);
            close(f->fd_direct);
            f->fd_direct = -1;
        } else {
            info->direct = true;
        }
    }

    int rc = io_uring_queue_init(QUEUE_DEPTH, &f->ring, 0);
    if (rc < 0) {
        snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
        goto fail;
    }
    if (evloop_add(loop, f->ring.ring_fd, EPOLLIN, on_ring, f) < 0) {
        snprintf(err, errlen, "polling the io_uring: %s", strerror(errno));
        io_uring_queue_exit(&f->ring);
        goto fail;
    }
    f->pub.ops = &file_ops;
    return &f->pub;
fail:
    if (f->fd_direct >= 0)
        close(f->fd_direct);
    if (f->fd_buf >= 0)
        close(f->fd_buf);
    free(f->where);
    free(f);
    return NULL;
}
