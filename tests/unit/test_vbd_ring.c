/* The blkif backend's queues against guests on a xensim host, without the
 * xenbus bus: a forked child is the daemon (dom0: backend/vbd/queue.c over
 * target_file.c, driven by commands on a socket), this process plays the
 * guests (domains A and B: shared ring pages, data pages, raw requests
 * written into the ring in each ABI).
 *
 * Suites: vbd_ring (I/O in each ABI, multi-page rings, multi-queue, many in
 * flight, requests already on the ring at connect, quiesce and resume,
 * read-only disks, flush,
 * discard, indirect) and vbd_hostile (every bad request gets an error
 * status and a log line; ring-index abuse disconnects that one device; the
 * daemon and guest B's disk carry on, B's data unchanged). */
#include "backend/vbd/queue.h"
#include "backend/vbd/target.h"
#include "evloop.h"
#include "log.h"
#include "test_backend_child.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DISK_SECTORS 8192u /* 4 MiB */
#define NDATA 16           /* writable data pages per guest */
#define NRO 2              /* read-only granted pages */
#define NIND 2             /* indirect descriptor pages */
#define MAX_DISKS 4

/* ---- the daemon child -------------------------------------------------- */

enum cmd_op { CMD_OPEN_DISK = 1, CMD_OPEN_QUEUE, CMD_CLOSE_DISK, CMD_STATS,
              CMD_QUIESCE, CMD_RESUME, CMD_QUIT };

struct be_cmd {
    int op;
    unsigned disk;
    char path[256];
    bool readonly, persistent;
    unsigned domid;
    struct vbd_queue_params qp;
};

struct be_rsp {
    int rc;
    bool failed;
    uint64_t requests, errors;
    unsigned inflight;
    uint64_t persistent_maps;
    unsigned drained;      /* on_drained calls since the disk opened */
    char msg[256];
};

struct be_disk {
    bool used;
    unsigned drained;
    struct vbd_disk d;
    char where[64];
    char failmsg[256];
};

static struct be_child be;
static struct be_disk be_disks[MAX_DISKS];
static struct xenif_config be_cfg;

static void be_fail(struct vbd_disk *d, const char *why)
{
    struct be_disk *b = d->opaque;
    snprintf(b->failmsg, sizeof(b->failmsg), "%s", why);
    log_error(d->where, "device failed: %s", why);
}

static void be_drained(struct vbd_disk *d)
{
    struct be_disk *b = d->opaque;
    b->drained++;
}

static void be_close_disk(struct be_disk *b)
{
    if (!b->used)
        return;
    vbd_disk_close_queues(&b->d);
    b->d.target->ops->close(b->d.target);
    xenif_gnt_close(b->d.gnt);
    memset(b, 0, sizeof(*b));
}

static void be_close_all(void)
{
    for (unsigned i = 0; i < MAX_DISKS; i++)
        be_close_disk(&be_disks[i]);
}

static void be_command(struct evloop *loop, const void *cmd, void *rsp)
{
    const struct be_cmd *c = cmd;
    struct be_rsp *r = rsp;
    struct be_disk *b = c->disk < MAX_DISKS ? &be_disks[c->disk] : NULL;
    if (!b) {
        r->rc = -1;
        return;
    }
    switch (c->op) {
    case CMD_OPEN_DISK: {
        be_close_disk(b);
        snprintf(b->where, sizeof(b->where), "test/vbd/%u/%u", c->domid, c->disk);
        struct vbd_disk *d = &b->d;
        d->where = b->where;
        d->loop = loop;
        d->cfg = &be_cfg;
        d->domid = (xenif_domid)c->domid;
        d->fail = be_fail;
        d->opaque = b;
        d->target = vbd_target_file_open(c->path, c->readonly, loop, b->where,
                                         r->msg, sizeof(r->msg));
        d->gnt = d->target ? xenif_gnt_open(&be_cfg, r->msg, sizeof(r->msg)) : NULL;
        if (!d->gnt) {
            if (d->target)
                d->target->ops->close(d->target);
            r->rc = -1;
            break;
        }
        vbd_disk_attach_target(d);
        d->lim.sectors = d->target->info.size >> 9;
        d->lim.sector_size = d->target->info.sector_size;
        d->lim.max_indirect_segments = BLKIF_MAX_INDIRECT_SEGS;
        d->lim.readonly = c->readonly;
        d->lim.flush = d->target->info.can_flush;
        d->lim.discard = d->target->info.can_discard;
        d->persistent = c->persistent;
        b->used = true;
        break;
    }
    case CMD_OPEN_QUEUE:
        if (!b->used || !vbd_queue_open(&b->d, &c->qp, r->msg, sizeof(r->msg)))
            r->rc = -1;
        break;
    case CMD_CLOSE_DISK:
        be_close_disk(b);
        break;
    case CMD_QUIESCE:
        vbd_disk_quiesce(&b->d, be_drained);
        break;
    case CMD_RESUME:
        vbd_disk_resume(&b->d);
        break;
    case CMD_STATS:
        r->failed = b->d.failed;
        r->requests = b->d.requests;
        r->errors = b->d.errors;
        r->inflight = b->used ? b->d.target->ops->inflight(b->d.target) : 0;
        r->persistent_maps = b->d.persistent_maps;
        r->drained = b->drained;
        snprintf(r->msg, sizeof(r->msg), "%s", b->failmsg);
        break;
    case CMD_QUIT:
        be_close_all();
        evloop_stop(loop);
        break;
    default:
        r->rc = -1;
    }
}

static int be_main(int sock)
{
    be_cfg = sim_config(&be.host, 0);
    return be_child_serve(&be, sock, LOG_LVL_INFO, sizeof(struct be_cmd),
                          sizeof(struct be_rsp), be_command, be_close_all);
}

static int be_call(struct be_cmd *c, struct be_rsp *r)
{
    return be_child_call(&be, c, sizeof(*c), r, sizeof(*r)) < 0 ? -1 : r->rc;
}

/* Persistent grants for the disks opened next. */
static bool open_persistent;

static int be_open_disk(unsigned disk, const char *path, unsigned domid,
                        bool readonly)
{
    struct be_cmd c = { .op = CMD_OPEN_DISK, .disk = disk, .domid = domid,
                        .readonly = readonly, .persistent = open_persistent };
    snprintf(c.path, sizeof(c.path), "%s", path);
    struct be_rsp r;
    int rc = be_call(&c, &r);
    if (rc)
        fprintf(stderr, "open disk: %s\n", r.msg);
    return rc;
}

static struct be_rsp be_stats(unsigned disk)
{
    struct be_cmd c = { .op = CMD_STATS, .disk = disk };
    struct be_rsp r = { .rc = -1 };
    be_call(&c, &r);
    return r;
}

static int be_simple(enum cmd_op op, unsigned disk)
{
    struct be_cmd c = { .op = op, .disk = disk };
    struct be_rsp r;
    return be_call(&c, &r);
}

static int be_close(unsigned disk)
{
    struct be_cmd c = { .op = CMD_CLOSE_DISK, .disk = disk };
    struct be_rsp r;
    return be_call(&c, &r);
}

/* ---- guests ------------------------------------------------------------ */

struct fe {
    unsigned domid;
    struct xenif_gnt *g;
    struct xenif_evtchn *ec;
    enum blkif_abi abi;
    unsigned nr_pages, size;
    size_t slot;
    uint8_t *sring;
    xenif_gref ring_refs[VBD_MAX_RING_PAGES];
    int port;
    uint32_t req_prod_pvt, rsp_cons;
    uint8_t *data, *ro, *ind;
    xenif_gref data_refs[NDATA], ro_refs[NRO], ind_refs[NIND];
};

static uint32_t *fe_idx(struct fe *f, int i)
{
    return (uint32_t *)(void *)f->sring + i;
}

static uint8_t *fe_slot(struct fe *f, uint32_t i)
{
    return f->sring + BLKIF_RING_HEADER + (size_t)(i & (f->size - 1)) * f->slot;
}

static int fe_open(struct fe *f, unsigned domid, enum blkif_abi abi,
                   unsigned nr_pages)
{
    memset(f, 0, sizeof(*f));
    char err[256];
    struct xenif_config cfg = sim_config(&be.host, domid);
    f->domid = domid;
    f->abi = abi;
    f->nr_pages = nr_pages;
    f->size = blkif_abi_ring_entries(abi, nr_pages);
    f->slot = blkif_abi_slot_size(abi);
    f->g = xenif_gnt_open(&cfg, err, sizeof(err));
    f->ec = xenif_evtchn_open(&cfg, err, sizeof(err));
    if (!f->g || !f->ec)
        return -1;
    f->sring = xenif_gnt_share(f->g, 0, nr_pages, f->ring_refs, true);
    f->data = xenif_gnt_share(f->g, 0, NDATA, f->data_refs, true);
    f->ro = xenif_gnt_share(f->g, 0, NRO, f->ro_refs, false);
    f->ind = xenif_gnt_share(f->g, 0, NIND, f->ind_refs, true);
    f->port = xenif_evtchn_alloc_unbound(f->ec, 0);
    if (!f->sring || !f->data || !f->ro || !f->ind || f->port < 0)
        return -1;
    /* SHARED_RING_INIT */
    *fe_idx(f, 1) = 1;
    *fe_idx(f, 3) = 1;
    return 0;
}

static void fe_close(struct fe *f)
{
    if (f->port > 0)
        xenif_evtchn_unbind(f->ec, (xenif_port)f->port);
    if (f->sring)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(f->g, f->sring, f->nr_pages), 0);
    if (f->data)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(f->g, f->data, NDATA), 0);
    if (f->ro)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(f->g, f->ro, NRO), 0);
    if (f->ind)
        CU_ASSERT_EQUAL(xenif_gnt_unshare(f->g, f->ind, NIND), 0);
    xenif_evtchn_close(f->ec);
    xenif_gnt_close(f->g);
    memset(f, 0, sizeof(*f));
}

static int fe_connect(struct fe *f, unsigned disk, unsigned index)
{
    struct be_cmd c = { .op = CMD_OPEN_QUEUE, .disk = disk };
    c.qp.index = index;
    c.qp.abi = f->abi;
    c.qp.nr_pages = f->nr_pages;
    memcpy(c.qp.refs, f->ring_refs, sizeof(f->ring_refs));
    c.qp.remote_port = (xenif_port)f->port;
    struct be_rsp r;
    return be_call(&c, &r); /* the reason of a refusal is in the log */
}

/* Puts a request on the ring (not yet visible). */
static void fe_put(struct fe *f, const struct blkif_raw_req *r)
{
    blkif_abi_put_request(f->abi, fe_slot(f, f->req_prod_pvt++), r);
}

static void fe_publish(struct fe *f)
{
    __atomic_store_n(fe_idx(f, 0), f->req_prod_pvt, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    xenif_evtchn_notify(f->ec, (xenif_port)f->port);
}

/* Next response; -1 after timeout_ms without one. */
static int fe_get(struct fe *f, uint64_t *id, uint8_t *op, int16_t *st,
                  int timeout_ms)
{
    for (;;) {
        uint32_t rp = __atomic_load_n(fe_idx(f, 2), __ATOMIC_ACQUIRE);
        if (rp != f->rsp_cons) {
            blkif_abi_get_response(f->abi, fe_slot(f, f->rsp_cons), id, op, st);
            f->rsp_cons++;
            return 0;
        }
        __atomic_store_n(fe_idx(f, 3), f->rsp_cons + 1, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(fe_idx(f, 2), __ATOMIC_ACQUIRE) != f->rsp_cons)
            continue;
        struct pollfd p = { .fd = xenif_evtchn_fd(f->ec), .events = POLLIN };
        if (poll(&p, 1, timeout_ms) != 1)
            return -1;
        int port;
        while ((port = xenif_evtchn_pending(f->ec)) >= 0)
            xenif_evtchn_unmask(f->ec, (xenif_port)port);
    }
}

/* One request, its response; returns the status (or 99 on no answer). */
static int fe_do(struct fe *f, const struct blkif_raw_req *r)
{
    fe_put(f, r);
    fe_publish(f);
    uint64_t id;
    uint8_t op;
    int16_t st;
    if (fe_get(f, &id, &op, &st, 5000) < 0)
        return 99;
    CU_ASSERT_EQUAL(id, r->id);
    uint8_t want = r->operation == BLKIF_REQ_INDIRECT ? r->nr_segments_or_flag
                                                       : r->operation;
    CU_ASSERT_EQUAL(op, want);
    return st;
}

static struct blkif_raw_req fe_rw(uint8_t op, uint64_t id, uint64_t sector,
                                  const xenif_gref *refs, unsigned n)
{
    struct blkif_raw_req r = { .operation = op, .nr_segments_or_flag = (uint8_t)n,
                               .id = id, .sector = sector };
    for (unsigned i = 0; i < n && i < BLKIF_DIRECT_SEGS; i++)
        r.seg[i] = (struct blkif_seg){ refs[i], 0, 7 };
    return r;
}

/* ---- disks ------------------------------------------------------------- */

static char *disk_path[MAX_DISKS];
static const char *disk_dir; /* the xensim host's directory, or a tmpfs one */
static char shm_dir[64];

static uint8_t pattern(unsigned disk, uint64_t off)
{
    return (uint8_t)((off * 131 + disk * 71 + (off >> 12)) & 0xff);
}

static int make_disk(unsigned disk)
{
    free(disk_path[disk]);
    if (asprintf(&disk_path[disk], "%s/disk%u.img", disk_dir, disk) < 0)
        return -1;
    int fd = open(disk_path[disk], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    static uint8_t buf[1 << 16];
    for (uint64_t off = 0; off < (uint64_t)DISK_SECTORS * 512; off += sizeof(buf)) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = pattern(disk, off + i);
        if (pwrite(fd, buf, sizeof(buf), (off_t)off) != (ssize_t)sizeof(buf)) {
            close(fd);
            return -1;
        }
    }
    close(fd);
    return 0;
}

/* 1 if the disk file holds its pattern everywhere except [skip_off,
 * skip_off+skip_len) and still has its size. */
static int disk_pristine(unsigned disk, uint64_t skip_off, uint64_t skip_len)
{
    int fd = open(disk_path[disk], O_RDONLY);
    if (fd < 0)
        return 0;
    struct stat st;
    int ok = fstat(fd, &st) == 0 && st.st_size == (off_t)DISK_SECTORS * 512;
    static uint8_t buf[1 << 16];
    for (uint64_t off = 0; ok && off < (uint64_t)DISK_SECTORS * 512;
         off += sizeof(buf)) {
        if (pread(fd, buf, sizeof(buf), (off_t)off) != (ssize_t)sizeof(buf))
            ok = 0;
        for (size_t i = 0; ok && i < sizeof(buf); i++)
            if (off + i - skip_off >= skip_len && buf[i] != pattern(disk, off + i))
                ok = 0;
    }
    close(fd);
    return ok;
}

static int disk_read(unsigned disk, uint64_t off, void *buf, size_t len)
{
    int fd = open(disk_path[disk], O_RDONLY);
    ssize_t n = fd < 0 ? -1 : pread(fd, buf, len, (off_t)off);
    if (fd >= 0)
        close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

/* ---- suite set-up ------------------------------------------------------ */

static int suite_init_common(const char *tag)
{
    if (be_child_start(&be, tag, be_main) < 0)
        return -1;
    if (!disk_dir)
        disk_dir = be.host.dir;
    for (unsigned i = 0; i < MAX_DISKS; i++)
        if (make_disk(i) < 0)
            return -1;
    return 0;
}

static int suite_cleanup(void)
{
    struct be_cmd c = { .op = CMD_QUIT };
    struct be_rsp r;
    be_call(&c, &r);
    int rc = be_child_stop(&be);
    for (unsigned i = 0; i < MAX_DISKS; i++) {
        if (disk_dir == shm_dir && disk_path[i])
            unlink(disk_path[i]);
        free(disk_path[i]);
        disk_path[i] = NULL;
    }
    if (disk_dir == shm_dir)
        rmdir(shm_dir);
    disk_dir = NULL;
    return rc;
}

static int ring_init(void) { return suite_init_common("vbd-ring"); }
static int hostile_init(void) { return suite_init_common("vbd-hostile"); }
/* The same requests on disks in tmpfs, which target_file serves without
 * io_uring (done at submission, reported after the loop's batch). */
static int tmpfs_init(void)
{
    struct statfs sfs;
    snprintf(shm_dir, sizeof(shm_dir), "/dev/shm/netbus-unit-XXXXXX");
    if (statfs("/dev/shm", &sfs) < 0 || sfs.f_type != TMPFS_MAGIC ||
        !mkdtemp(shm_dir)) {
        fprintf(stderr, "vbd_ring_tmpfs: needs /dev/shm on tmpfs\n");
        return -1;
    }
    disk_dir = shm_dir;
    return suite_init_common("vbd-ring-tmpfs");
}

/* 1 if the daemon's log contains s. */
static int log_has(const char *s)
{
    return be_child_log_has(&be, s);
}

/* ---- I/O --------------------------------------------------------------- */

static void fill_page(uint8_t *p, uint64_t seed)
{
    for (unsigned i = 0; i < 4096; i++)
        p[i] = (uint8_t)((seed * 7919 + i * 13 + (i >> 9)) & 0xff);
}

/* Writes then reads back NDATA pages with as many requests in flight as
 * the ring allows, in one ABI and ring size; checks the file. */
static void io_round(enum blkif_abi abi, unsigned nr_pages, unsigned disk)
{
    struct fe f;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a, abi, nr_pages), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(disk, disk_path[disk], be.dom_a, false), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, disk, 0), 0);

    /* NDATA single-page writes in flight at once, sectors 64*i. */
    for (unsigned i = 0; i < NDATA; i++) {
        fill_page(f.data + i * 4096, abi * 100 + nr_pages * 10 + i);
        struct blkif_raw_req r = fe_rw(BLKIF_REQ_WRITE, 1000 + i, 64 * i,
                                       &f.data_refs[i], 1);
        fe_put(&f, &r);
    }
    fe_publish(&f);
    unsigned seen = 0, mask = 0;
    while (seen < NDATA) {
        uint64_t id;
        uint8_t op;
        int16_t st;
        if (fe_get(&f, &id, &op, &st, 5000) < 0)
            break;
        CU_ASSERT(id >= 1000 && id < 1000 + NDATA);
        CU_ASSERT_EQUAL(op, BLKIF_REQ_WRITE);
        CU_ASSERT_EQUAL(st, BLKIF_ST_OKAY);
        mask |= 1u << (id - 1000);
        seen++;
    }
    CU_ASSERT_EQUAL(mask, (1u << NDATA) - 1);
    static uint8_t want[4096], got[4096];
    for (unsigned i = 0; i < NDATA; i++) {
        fill_page(want, abi * 100 + nr_pages * 10 + i);
        CU_ASSERT_EQUAL(disk_read(disk, 64 * 512 * i, got, 4096), 0);
        CU_ASSERT_EQUAL(memcmp(want, got, 4096), 0);
    }
    /* Read them back with one 11-segment request + the rest, partial
     * segments included: sectors 64*i..+7 into page i, reversed order. */
    memset(f.data, 0, NDATA * 4096);
    for (unsigned i = 0; i < NDATA; i++) {
        struct blkif_raw_req r = fe_rw(BLKIF_REQ_READ, 2000 + i, 64 * i,
                                       &f.data_refs[NDATA - 1 - i], 1);
        fe_put(&f, &r);
    }
    fe_publish(&f);
    for (seen = 0; seen < NDATA; seen++) {
        uint64_t id;
        uint8_t op;
        int16_t st;
        if (fe_get(&f, &id, &op, &st, 5000) < 0)
            break;
        CU_ASSERT_EQUAL(st, BLKIF_ST_OKAY);
    }
    CU_ASSERT_EQUAL(seen, NDATA);
    for (unsigned i = 0; i < NDATA; i++) {
        fill_page(want, abi * 100 + nr_pages * 10 + i);
        CU_ASSERT_EQUAL(memcmp(f.data + (NDATA - 1 - i) * 4096, want, 4096), 0);
    }
    /* Partial segments: sectors 2..5 of page 0 from disk sector 64+3. */
    memset(f.data, 0xee, 4096);
    struct blkif_raw_req r = fe_rw(BLKIF_REQ_READ, 3000, 64 + 3, f.data_refs, 1);
    r.seg[0].first_sect = 2;
    r.seg[0].last_sect = 5;
    CU_ASSERT_EQUAL(fe_do(&f, &r), BLKIF_ST_OKAY);
    fill_page(want, abi * 100 + nr_pages * 10 + 1);
    CU_ASSERT_EQUAL(memcmp(f.data + 1024, want + 3 * 512, 2048), 0);
    CU_ASSERT_EQUAL(f.data[1023], 0xee);
    CU_ASSERT_EQUAL(f.data[3072], 0xee);

    CU_ASSERT_EQUAL(be_close(disk), 0);
    fe_close(&f);
}

static void test_io_native(void) { io_round(BLKIF_ABI_NATIVE, 1, 0); }
static void test_io_x86_32(void) { io_round(BLKIF_ABI_X86_32, 4, 1); }
static void test_io_x86_64(void) { io_round(BLKIF_ABI_X86_64, 16, 2); }

/* Persistent grants: same I/O; grants mapped once; a read into a read-only
 * grant still fails; everything unmapped at close (the guest can unshare). */
static void test_io_persistent(void)
{
    open_persistent = true;
    io_round(BLKIF_ABI_NATIVE, 2, 2);
    struct fe f;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a, BLKIF_ABI_NATIVE, 1), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(2, disk_path[2], be.dom_a, false), 0);
    open_persistent = false;
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 2, 0), 0);
    for (unsigned round = 0; round < 3; round++)
        for (unsigned i = 0; i < NDATA; i++) {
            struct blkif_raw_req r = fe_rw(BLKIF_REQ_READ, i, 8 * i,
                                           &f.data_refs[i], 1);
            CU_ASSERT_EQUAL(fe_do(&f, &r), BLKIF_ST_OKAY);
        }
    CU_ASSERT_EQUAL(be_stats(2).persistent_maps, NDATA);
    memset(f.ro, 0x5a, 4096);
    struct blkif_raw_req r = fe_rw(BLKIF_REQ_READ, 50, 64, f.ro_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&f, &r), BLKIF_ST_ERROR);
    CU_ASSERT_EQUAL(f.ro[0], 0x5a);
    r = fe_rw(BLKIF_REQ_WRITE, 51, 64, f.ro_refs, 1); /* per-request path */
    CU_ASSERT_EQUAL(fe_do(&f, &r), BLKIF_ST_OKAY);
    xenif_gref bogus = 4000;
    r = fe_rw(BLKIF_REQ_WRITE, 52, 64, &bogus, 1);
    CU_ASSERT_EQUAL(fe_do(&f, &r), BLKIF_ST_ERROR);
    CU_ASSERT_EQUAL(be_close(2), 0);
    fe_close(&f); /* asserts the unshares: nothing left mapped */
}

/* A full ring of requests, many rounds: responses match, file matches. */
static void test_ring_full(void)
{
    struct fe f;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a, BLKIF_ABI_NATIVE, 1), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(0, disk_path[0], be.dom_a, false), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0, 0), 0);
    for (unsigned round = 0; round < 20; round++) {
        for (unsigned i = 0; i < f.size; i++) {
            struct blkif_raw_req r = fe_rw(i % 2 ? BLKIF_REQ_READ : BLKIF_REQ_WRITE,
                                           round * 1000 + i, 8 * i,
                                           &f.data_refs[i % NDATA], 1);
            fe_put(&f, &r);
        }
        fe_publish(&f);
        unsigned ok = 0;
        for (unsigned i = 0; i < f.size; i++) {
            uint64_t id;
            uint8_t op;
            int16_t st;
            if (fe_get(&f, &id, &op, &st, 5000) < 0)
                break;
            ok += st == BLKIF_ST_OKAY && id / 1000 == round;
        }
        CU_ASSERT_EQUAL(ok, f.size);
    }
    CU_ASSERT_EQUAL(be_close(0), 0);
    fe_close(&f);
}

/* Requests pushed before the backend connects are served (a ring kept
 * across a migration), including some with answers already consumed. */
static void test_ring_not_empty_at_connect(void)
{
    struct fe f;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a, BLKIF_ABI_X86_32, 1), 0);
    /* As if 5 requests were answered before: indexes start at 5. */
    *fe_idx(&f, 0) = *fe_idx(&f, 2) = 5;
    f.req_prod_pvt = f.rsp_cons = 5;
    for (unsigned i = 0; i < 6; i++) {
        fill_page(f.data + i * 4096, 500 + i);
        struct blkif_raw_req r = fe_rw(BLKIF_REQ_WRITE, 700 + i, 1024 + 8 * i,
                                       &f.data_refs[i], 1);
        fe_put(&f, &r);
    }
    __atomic_store_n(fe_idx(&f, 0), f.req_prod_pvt, __ATOMIC_RELEASE);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(1, disk_path[1], be.dom_a, false), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 1, 0), 0);
    unsigned ok = 0;
    for (unsigned i = 0; i < 6; i++) {
        uint64_t id;
        uint8_t op;
        int16_t st;
        if (fe_get(&f, &id, &op, &st, 5000) < 0)
            break;
        ok += st == BLKIF_ST_OKAY && id >= 700 && id < 706;
    }
    CU_ASSERT_EQUAL(ok, 6);
    static uint8_t want[4096], got[4096];
    for (unsigned i = 0; i < 6; i++) {
        fill_page(want, 500 + i);
        CU_ASSERT_EQUAL(disk_read(1, (1024 + 8 * i) * 512ull, got, 4096), 0);
        CU_ASSERT_EQUAL(memcmp(want, got, 4096), 0);
    }
    CU_ASSERT(log_has("6 request(s) already on the ring"));
    CU_ASSERT_EQUAL(be_close(1), 0);
    fe_close(&f);
}

/* Quiesce (a guest suspending, a hot-swap): nothing more is taken from the
 * ring, what is in flight is answered before on_drained; resume serves the
 * requests that waited. */
static void test_quiesce_resume(void)
{
    struct fe f;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a, BLKIF_ABI_NATIVE, 1), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(2, disk_path[2], be.dom_a, false), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 2, 0), 0);
    uint64_t id;
    uint8_t op;
    int16_t st;

    /* Idle: drained at once; requests wait on the ring. */
    CU_ASSERT_EQUAL(be_simple(CMD_QUIESCE, 2), 0);
    CU_ASSERT_EQUAL(be_stats(2).drained, 1);
    for (unsigned i = 0; i < 4; i++) {
        struct blkif_raw_req r = fe_rw(BLKIF_REQ_READ, 100 + i, 8 * i,
                                       &f.data_refs[i], 1);
        fe_put(&f, &r);
    }
    fe_publish(&f);
    CU_ASSERT_EQUAL(fe_get(&f, &id, &op, &st, 300), -1);
    CU_ASSERT_EQUAL(be_stats(2).requests, 0);
    CU_ASSERT_EQUAL(be_simple(CMD_RESUME, 2), 0);
    unsigned ok = 0;
    for (unsigned i = 0; i < 4; i++)
        ok += fe_get(&f, &id, &op, &st, 5000) == 0 && st == BLKIF_ST_OKAY &&
              id >= 100 && id < 104;
    CU_ASSERT_EQUAL(ok, 4);

    /* Busy: quiesce right after a burst. Every request taken is answered
     * by the time on_drained runs; the rest wait for resume. */
    for (unsigned i = 0; i < 32; i++) {
        struct blkif_raw_req r = fe_rw(i % 2 ? BLKIF_REQ_READ : BLKIF_REQ_WRITE,
                                       200 + i, 64 * i, &f.data_refs[i % NDATA], 1);
        fe_put(&f, &r);
    }
    fe_publish(&f);
    CU_ASSERT_EQUAL(be_simple(CMD_QUIESCE, 2), 0);
    struct be_rsp r;
    for (int i = 0; i < 500 && (r = be_stats(2)).drained < 2; i++)
        usleep(10000);
    CU_ASSERT_EQUAL(r.drained, 2);
    CU_ASSERT_EQUAL(r.inflight, 0);
    uint32_t answered = __atomic_load_n(fe_idx(&f, 2), __ATOMIC_ACQUIRE);
    CU_ASSERT_EQUAL(answered - 4, r.requests - 4); /* taken = answered */
    CU_ASSERT_EQUAL(be_simple(CMD_RESUME, 2), 0);
    uint32_t seen = 0; /* completions come in any order */
    for (unsigned i = 0; i < 32; i++)
        if (fe_get(&f, &id, &op, &st, 5000) == 0 && st == BLKIF_ST_OKAY &&
            id >= 200 && id < 232)
            seen |= 1u << (id - 200);
    CU_ASSERT_EQUAL(seen, 0xffffffffu);
    CU_ASSERT_EQUAL(be_close(2), 0);
    fe_close(&f);
}

/* Two queues on one disk, each its own ring and event channel. */
static void test_multi_queue(void)
{
    struct fe f[2];
    CU_ASSERT_EQUAL_FATAL(be_open_disk(2, disk_path[2], be.dom_a, false), 0);
    for (unsigned q = 0; q < 2; q++) {
        CU_ASSERT_EQUAL_FATAL(fe_open(&f[q], be.dom_a, BLKIF_ABI_NATIVE, 2), 0);
        CU_ASSERT_EQUAL_FATAL(fe_connect(&f[q], 2, q), 0);
    }
    for (unsigned q = 0; q < 2; q++) {
        fill_page(f[q].data, 900 + q);
        struct blkif_raw_req r = fe_rw(BLKIF_REQ_WRITE, q, 2048 + 8 * q,
                                       f[q].data_refs, 1);
        fe_put(&f[q], &r);
        fe_publish(&f[q]);
    }
    for (unsigned q = 0; q < 2; q++) {
        uint64_t id;
        uint8_t op;
        int16_t st;
        CU_ASSERT_EQUAL(fe_get(&f[q], &id, &op, &st, 5000), 0);
        CU_ASSERT_EQUAL(id, q);
        CU_ASSERT_EQUAL(st, BLKIF_ST_OKAY);
    }
    /* Read each other's data back through the other queue. */
    for (unsigned q = 0; q < 2; q++) {
        struct blkif_raw_req r = fe_rw(BLKIF_REQ_READ, 10 + q, 2048 + 8 * (1 - q),
                                       &f[q].data_refs[1], 1);
        CU_ASSERT_EQUAL(fe_do(&f[q], &r), BLKIF_ST_OKAY);
        static uint8_t want[4096];
        fill_page(want, 900 + (1 - q));
        CU_ASSERT_EQUAL(memcmp(f[q].data + 4096, want, 4096), 0);
    }
    CU_ASSERT_EQUAL(be_close(2), 0);
    fe_close(&f[0]);
    fe_close(&f[1]);
}

/* Indirect, flush (alone and with data), discard, read-only. */
static void test_ops(void)
{
    struct fe f;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a, BLKIF_ABI_X86_64, 1), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(3, disk_path[3], be.dom_a, false), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 3, 0), 0);

    /* indirect write of NDATA segments starting at sector 4096 */
    for (unsigned i = 0; i < NDATA; i++) {
        fill_page(f.data + i * 4096, 300 + i);
        struct blkif_seg s = { f.data_refs[i], 0, 7 };
        memcpy(f.ind + 8 * i, &s.gref, 4);
        f.ind[8 * i + 4] = 0;
        f.ind[8 * i + 5] = 7;
    }
    struct blkif_raw_req in = { .operation = BLKIF_REQ_INDIRECT,
                                .nr_segments_or_flag = BLKIF_REQ_WRITE,
                                .nr_segments16 = NDATA, .id = 77, .sector = 4096,
                                .indirect_grefs = { f.ind_refs[0] } };
    CU_ASSERT_EQUAL(fe_do(&f, &in), BLKIF_ST_OKAY);
    static uint8_t want[4096], got[4096];
    for (unsigned i = 0; i < NDATA; i++) {
        fill_page(want, 300 + i);
        CU_ASSERT_EQUAL(disk_read(3, (4096 + 8 * i) * 512ull, got, 4096), 0);
        CU_ASSERT_EQUAL(memcmp(want, got, 4096), 0);
    }
    memset(f.data, 0, NDATA * 4096);
    in.nr_segments_or_flag = BLKIF_REQ_READ;
    in.id = 78;
    CU_ASSERT_EQUAL(fe_do(&f, &in), BLKIF_ST_OKAY);
    fill_page(want, 300 + NDATA - 1);
    CU_ASSERT_EQUAL(memcmp(f.data + (NDATA - 1) * 4096, want, 4096), 0);

    struct blkif_raw_req fl = { .operation = BLKIF_REQ_FLUSH, .id = 79 };
    CU_ASSERT_EQUAL(fe_do(&f, &fl), BLKIF_ST_OKAY);
    fill_page(f.data, 311);
    fl = fe_rw(BLKIF_REQ_FLUSH, 80, 16, f.data_refs, 1); /* preflush + write */
    CU_ASSERT_EQUAL(fe_do(&f, &fl), BLKIF_ST_OKAY);
    fill_page(want, 311);
    CU_ASSERT_EQUAL(disk_read(3, 16 * 512, got, 4096), 0);
    CU_ASSERT_EQUAL(memcmp(want, got, 4096), 0);

    struct blkif_raw_req d = { .operation = BLKIF_REQ_DISCARD, .id = 81,
                               .sector = 4096, .nr_sectors = 64 };
    CU_ASSERT_EQUAL(fe_do(&f, &d), BLKIF_ST_OKAY);
    memset(want, 0, sizeof(want));
    CU_ASSERT_EQUAL(disk_read(3, 4096 * 512ull, got, 4096), 0);
    CU_ASSERT_EQUAL(memcmp(want, got, 4096), 0);
    struct stat st;
    CU_ASSERT(stat(disk_path[3], &st) == 0 && st.st_size == DISK_SECTORS * 512);
    CU_ASSERT_EQUAL(be_close(3), 0);

    /* Read-only: reads work, writes/flush/discard fail, file unchanged. */
    CU_ASSERT_EQUAL_FATAL(make_disk(3), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(3, disk_path[3], be.dom_a, true), 0);
    fe_close(&f);
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a, BLKIF_ABI_NATIVE, 1), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 3, 0), 0);
    struct blkif_raw_req r = fe_rw(BLKIF_REQ_READ, 90, 8, f.data_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&f, &r), BLKIF_ST_OKAY);
    r = fe_rw(BLKIF_REQ_WRITE, 91, 8, f.data_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&f, &r), BLKIF_ST_ERROR);
    in.nr_segments_or_flag = BLKIF_REQ_WRITE;
    in.id = 92;
    CU_ASSERT_EQUAL(fe_do(&f, &in), BLKIF_ST_ERROR);
    fl = (struct blkif_raw_req){ .operation = BLKIF_REQ_FLUSH, .id = 93 };
    CU_ASSERT_NOT_EQUAL(fe_do(&f, &fl), BLKIF_ST_OKAY);
    d.id = 94;
    CU_ASSERT_NOT_EQUAL(fe_do(&f, &d), BLKIF_ST_OKAY);
    CU_ASSERT_EQUAL(be_close(3), 0);
    CU_ASSERT(disk_pristine(3, 0, 0));
    CU_ASSERT(log_has("write to a read-only device"));
    fe_close(&f);
}

/* Persistent grants: what a request costs on xensim with and without the
 * per-request map/unmap, measured here so the decision is checked on each
 * run (printed, not asserted). */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

enum { N = 2000 };

/* Seconds per pipelined 44 KiB read, persistent grants or not. */
static double run_reads(bool persistent)
{
    struct fe f;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a, BLKIF_ABI_NATIVE, 1), 0);
    open_persistent = persistent;
    CU_ASSERT_EQUAL_FATAL(be_open_disk(0, disk_path[0], be.dom_a, false), 0);
    open_persistent = false;
    CU_ASSERT_EQUAL_FATAL(fe_connect(&f, 0, 0), 0);
    /* Pipelined 11-segment reads (44 KiB), ring full. */
    double t0 = now_s();
    unsigned done = 0, sent = 0, inflight = 0;
    while (done < N) {
        while (sent < N && inflight < f.size) {
            struct blkif_raw_req r = fe_rw(BLKIF_REQ_READ, sent, (sent % 64) * 88,
                                           f.data_refs, 11);
            fe_put(&f, &r);
            sent++;
            inflight++;
        }
        fe_publish(&f);
        uint64_t id;
        uint8_t op;
        int16_t st;
        if (fe_get(&f, &id, &op, &st, 5000) < 0)
            break;
        CU_ASSERT_EQUAL(st, BLKIF_ST_OKAY);
        done++;
        inflight--;
    }
    double per_req = (now_s() - t0) / N;
    CU_ASSERT_EQUAL(done, N);
    CU_ASSERT_EQUAL(be_close(0), 0);
    fe_close(&f);
    return per_req;
}

static void test_measure_mapping(void)
{
    double best_plain = 1e9, best_pers = 1e9;
    for (int i = 0; i < 3; i++) { /* interleaved, best of 3 */
        double a = run_reads(false), b = run_reads(true);
        best_plain = a < best_plain ? a : best_plain;
        best_pers = b < best_pers ? b : best_pers;
    }
    struct fe f;
    CU_ASSERT_EQUAL_FATAL(fe_open(&f, be.dom_a, BLKIF_ABI_NATIVE, 1), 0);

    /* The mapping alone, as the backend does it per request. */
    char err[256];
    struct xenif_config cfg = sim_config(&be.host, 0);
    struct xenif_gnt *g = xenif_gnt_open(&cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    double t0 = now_s();
    for (unsigned i = 0; i < N; i++) {
        void *m = xenif_gnt_map(g, (xenif_domid)be.dom_a, 11, f.data_refs,
                                XENIF_GNT_READ | XENIF_GNT_WRITE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(xenif_gnt_unmap(g, m, 11), 0);
    }
    double per_map = (now_s() - t0) / N;
    xenif_gnt_close(g);
    printf("\n    vbd: 44 KiB reads pipelined: %.1f us/request mapping per "
           "request, %.1f us with persistent grants (%.2fx); map+unmap of 11 "
           "grants alone: %.1f us\n    ", best_plain * 1e6, best_pers * 1e6,
           best_plain / best_pers, per_map * 1e6);
    fe_close(&f);
}

/* ---- the hostile guest ----------------------------------------------- */

static void test_hostile(void)
{
    struct fe a, b;
    CU_ASSERT_EQUAL_FATAL(fe_open(&a, be.dom_a, BLKIF_ABI_NATIVE, 1), 0);
    CU_ASSERT_EQUAL_FATAL(fe_open(&b, be.dom_b, BLKIF_ABI_X86_32, 1), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(0, disk_path[0], be.dom_a, false), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(1, disk_path[1], be.dom_b, false), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&a, 0, 0), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&b, 1, 0), 0);

    /* B reads its disk: works. */
    struct blkif_raw_req r = fe_rw(BLKIF_REQ_READ, 1, 0, b.data_refs, 2);
    CU_ASSERT_EQUAL(fe_do(&b, &r), BLKIF_ST_OKAY);
    CU_ASSERT_EQUAL(b.data[4097], pattern(1, 4097));

    /* A: one good write (sector 0) to know what may change on A's disk. */
    fill_page(a.data, 42);
    r = fe_rw(BLKIF_REQ_WRITE, 2, 0, a.data_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_OKAY);

    uint64_t id = 100;
    /* nr_segments over the limit */
    r = fe_rw(BLKIF_REQ_WRITE, id++, 8, a.data_refs, 11);
    r.nr_segments_or_flag = 12;
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    r.nr_segments_or_flag = 255;
    r.id = id++;
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    /* first_sect > last_sect */
    r = fe_rw(BLKIF_REQ_WRITE, id++, 8, a.data_refs, 2);
    r.seg[1].first_sect = 6;
    r.seg[1].last_sect = 1;
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    /* segment past the page */
    r = fe_rw(BLKIF_REQ_READ, id++, 8, a.data_refs, 1);
    r.seg[0].last_sect = 9;
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    /* past the end of the disk, and wrapping */
    r = fe_rw(BLKIF_REQ_WRITE, id++, DISK_SECTORS - 4, a.data_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    r = fe_rw(BLKIF_REQ_WRITE, id++, UINT64_MAX - 2, a.data_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    struct blkif_raw_req d = { .operation = BLKIF_REQ_DISCARD, .id = id++,
                               .sector = 8, .nr_sectors = DISK_SECTORS };
    CU_ASSERT_EQUAL(fe_do(&a, &d), BLKIF_ST_ERROR);
    /* unknown operations */
    r = fe_rw(9, id++, 8, a.data_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    r = fe_rw(200, id++, 8, a.data_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    /* a grant reference not granted (next to a good one: all or nothing) */
    xenif_gref bogus[2] = { 4000, a.data_refs[0] };
    r = fe_rw(BLKIF_REQ_WRITE, id++, 8, bogus, 2);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    r = fe_rw(BLKIF_REQ_READ, id++, 8, bogus, 2);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    /* read into a page granted read-only: refused, page unchanged */
    memset(a.ro, 0x5a, 4096);
    r = fe_rw(BLKIF_REQ_READ, id++, 64, a.ro_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    CU_ASSERT(a.ro[0] == 0x5a && a.ro[4095] == 0x5a);
    xenif_gref mixed[2] = { a.data_refs[3], a.ro_refs[1] };
    r = fe_rw(BLKIF_REQ_READ, id++, 64, mixed, 2);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_ERROR);
    /* indirect: bad descriptor page gref, bad descriptors, too many */
    struct blkif_raw_req in = { .operation = BLKIF_REQ_INDIRECT,
                                .nr_segments_or_flag = BLKIF_REQ_READ,
                                .nr_segments16 = 4, .id = id++, .sector = 8,
                                .indirect_grefs = { 4001 } };
    CU_ASSERT_EQUAL(fe_do(&a, &in), BLKIF_ST_ERROR);
    for (unsigned i = 0; i < 4; i++) {
        memcpy(a.ind + 8 * i, &a.data_refs[i], 4);
        a.ind[8 * i + 4] = 0;
        a.ind[8 * i + 5] = 7;
    }
    a.ind[8 * 2 + 4] = 7;
    a.ind[8 * 2 + 5] = 3;
    in.indirect_grefs[0] = a.ind_refs[0];
    in.id = id++;
    CU_ASSERT_EQUAL(fe_do(&a, &in), BLKIF_ST_ERROR);
    in.nr_segments16 = BLKIF_MAX_INDIRECT_SEGS + 1;
    in.id = id++;
    CU_ASSERT_EQUAL(fe_do(&a, &in), BLKIF_ST_ERROR);
    in.nr_segments16 = 4;
    in.nr_segments_or_flag = BLKIF_REQ_DISCARD;
    in.id = id++;
    CU_ASSERT_EQUAL(fe_do(&a, &in), BLKIF_ST_ERROR);
    /* a write from a read-only grant is fine (the data only leaves) */
    a.ind[8 * 2 + 4] = 0;
    a.ind[8 * 2 + 5] = 7;
    r = fe_rw(BLKIF_REQ_WRITE, id++, 8, a.ro_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_OKAY);

    /* After all that, a good request on A still works. */
    in.nr_segments_or_flag = BLKIF_REQ_READ;
    in.id = id++;
    CU_ASSERT_EQUAL(fe_do(&a, &in), BLKIF_ST_OKAY);
    CU_ASSERT_EQUAL(a.data[0], 0x5a); /* sector 8 = the read-only page */
    r = fe_rw(BLKIF_REQ_READ, id++, 0, &a.data_refs[5], 1);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_OKAY);
    static uint8_t want[4096];
    fill_page(want, 42);
    CU_ASSERT_EQUAL(memcmp(a.data + 5 * 4096, want, 4096), 0);
    struct be_rsp s = be_stats(0);
    CU_ASSERT_FALSE(s.failed);
    CU_ASSERT(s.errors >= 17);

    /* Ring abuse: req_prod more than a ring ahead. A's device is failed. */
    a.req_prod_pvt += a.size + 5;
    fe_publish(&a);
    for (int i = 0; i < 200 && !s.failed; i++) {
        usleep(10000);
        s = be_stats(0);
    }
    CU_ASSERT(s.failed);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.msg, "ahead of req_cons"));

    /* B carries on, and its disk is what it was. */
    r = fe_rw(BLKIF_REQ_READ, 7, 128, b.data_refs, 3);
    CU_ASSERT_EQUAL(fe_do(&b, &r), BLKIF_ST_OKAY);
    CU_ASSERT_EQUAL(b.data[3 * 4096 - 1], pattern(1, 128 * 512 + 3 * 4096 - 1));
    s = be_stats(1);
    CU_ASSERT_FALSE(s.failed);
    CU_ASSERT_EQUAL(s.errors, 0);
    CU_ASSERT(disk_pristine(1, 0, 0));
    /* A's disk changed only where A wrote well-formed requests. */
    CU_ASSERT(disk_pristine(0, 0, 16 * 512));

    /* A reconnects with a fresh ring: served again. */
    CU_ASSERT_EQUAL(be_close(0), 0);
    fe_close(&a);
    CU_ASSERT_EQUAL_FATAL(fe_open(&a, be.dom_a, BLKIF_ABI_NATIVE, 1), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(0, disk_path[0], be.dom_a, false), 0);
    CU_ASSERT_EQUAL_FATAL(fe_connect(&a, 0, 0), 0);
    r = fe_rw(BLKIF_REQ_READ, 8, 0, a.data_refs, 1);
    CU_ASSERT_EQUAL(fe_do(&a, &r), BLKIF_ST_OKAY);
    CU_ASSERT_EQUAL(memcmp(a.data, want, 4096), 0);

    /* A ring whose indexes are already a ring apart at connect is refused. */
    CU_ASSERT_EQUAL(be_close(0), 0);
    fe_close(&a);
    CU_ASSERT_EQUAL_FATAL(fe_open(&a, be.dom_a, BLKIF_ABI_NATIVE, 1), 0);
    CU_ASSERT_EQUAL_FATAL(be_open_disk(0, disk_path[0], be.dom_a, false), 0);
    *fe_idx(&a, 0) = 1000;
    CU_ASSERT_NOT_EQUAL(fe_connect(&a, 0, 0), 0);

    /* Each refusal was logged with its reason. */
    static const char *const reasons[] = {
        "nr_segments over the limit", "first_sect > last_sect",
        "past the end of its page", "past the end of the disk",
        "unknown operation", "cannot map 2 segment grant(s)",
        "writable (data goes to the guest)", "indirect descriptor page",
        "indirect_op is neither read nor write", "ahead of req_cons",
        "test/vbd/",
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        int has = log_has(reasons[i]);
        CU_ASSERT(has);
        if (!has)
            fprintf(stderr, "missing log line: %s\n", reasons[i]);
    }
    CU_ASSERT_EQUAL(be_close(0), 0);
    CU_ASSERT_EQUAL(be_close(1), 0);
    fe_close(&a);
    fe_close(&b);
}

/* The disk was served from memory, not through io_uring. */
static void test_tmpfs_path_taken(void)
{
    CU_ASSERT(log_has("is in memory (tmpfs/ramfs): I/O up to 128 KiB done at submission"));
}

static CU_TestInfo vbd_ring_tests[] = {
    { "native ABI, one-page ring", test_io_native },
    { "x86_32 ABI, 4-page ring", test_io_x86_32 },
    { "x86_64 ABI, 16-page ring", test_io_x86_64 },
    { "persistent grants", test_io_persistent },
    { "a full ring, 20 rounds", test_ring_full },
    { "requests already on the ring at connect", test_ring_not_empty_at_connect },
    { "two queues on one disk", test_multi_queue },
    { "quiesce and resume", test_quiesce_resume },
    { "indirect, flush, discard, read-only", test_ops },
    { "cost of mapping per request (persistent grants?)", test_measure_mapping },
    CU_TEST_INFO_NULL,
};

static CU_TestInfo vbd_ring_tmpfs_tests[] = {
    { "native ABI, one-page ring", test_io_native },
    { "persistent grants", test_io_persistent },
    { "a full ring, 20 rounds", test_ring_full },
    { "two queues on one disk", test_multi_queue },
    { "quiesce and resume", test_quiesce_resume },
    { "indirect, flush, discard, read-only", test_ops },
    { "served without io_uring", test_tmpfs_path_taken },
    CU_TEST_INFO_NULL,
};

static CU_TestInfo vbd_hostile_tests[] = {
    { "hostile guest next to a well-behaved one", test_hostile },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(vbd_ring, ring_init, suite_cleanup, vbd_ring_tests)
UNIT_SUITE(vbd_ring_tmpfs, tmpfs_init, suite_cleanup, vbd_ring_tmpfs_tests)
UNIT_SUITE(vbd_hostile, hostile_init, suite_cleanup, vbd_hostile_tests)
