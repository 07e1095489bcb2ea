/* `xensim migrate [--dir A] DOMAIN --to B`: moves a running simulated guest
 * from host A to host B (each a `xensim host` run directory; the unix
 * sockets in them work across network namespaces, so B may be another
 * `xensim cluster` host). The steps are libxl's save/restore, done by this
 * one toolstack process that talks to both hosts as dom0:
 *
 *  1. Suspend request. Write control/shutdown = "suspend" in the domain's
 *     xenstore directory on A, as the toolstack does for PV guests. Every
 *     guest process that handles suspend registered itself with A
 *     (XENSIM_OP_GUEST_REGISTER, backend/xenif/xensim_guest.h) and watches
 *     that node; it quiesces its frontends as it likes and acknowledges with
 *     XENSIM_OP_GUEST_SUSPEND, which A answers only when the toolstack
 *     resumes the domain (Xen's SCHEDOP_shutdown(suspend) hypercall, which
 *     returns on resume, "cancelled" or not). We wait until every registered
 *     process waits there (DOMAIN_INFO nr_suspending == nr_suspendable),
 *     then clear the node. Processes that did not register are not asked:
 *     they stay behind and die with A's domain.
 *  2. Pause. XENSIM_OP_DOMAIN_SUSPEND: the domain's processes are stopped
 *     and @releaseDomain fires, on which netbusd quiesces the domain's
 *     devices (stops taking requests, answers those in flight) and writes
 *     netbus-quiesced=1 in each backend directory. Wait for that, or, for
 *     a backend that does not quiesce, until each connected vbd ring is
 *     answered up to its req_prod (read from A's copy of the ring page):
 *     A's backend must not write into memory that was already copied, nor
 *     execute a request late that B's backend or a re-issuing frontend
 *     executes again. Requests a quiesced backend left on a ring are for
 *     B's backend.
 *  3. Restore on B. Create a domain with the same name, UUID and memory (a
 *     new domid); copy every page of A's memory that holds data (rings
 *     included: a frontend's ring page keeps its requests) and the grant
 *     table's entries, then XENSIM_OP_DOMAIN_RESTORE on B reserves those
 *     frames and refs until the moving processes claim them
 *     (XENSIM_OP_GNT_CLAIM). Copying the grant table is a simulator
 *     choice: Xen gives the new domain an empty table, which is why Linux
 *     blkfront grants everything again on resume; here a frontend may keep
 *     its requests, and their grant refs, on the ring across the move.
 *     Event channels are not carried over: frontends allocate new unbound
 *     ports and publish them, as Linux does.
 *  4. Devices on B. From libxl's trusted copy on A
 *     (/libxl/DOMID/device/vbd/DEVID, written by block-attach, and
 *     /libxl/DOMID/device/vusb/DEVID, written by usbctrl-attach, with the
 *     controller's ports) write each device anew on B for the new domid,
 *     backend on the B domain with the backend's name (dom0 for dom0),
 *     backend and frontend state Initialising; wait for each backend to
 *     reach InitWait.
 *  5. Resume on B. XENSIM_OP_DOMAIN_MIGRATED on A answers the waiting
 *     processes with B's directory and the new domid, and continues them:
 *     each maps its shared pages from B's memory at the same virtual
 *     addresses (MAP_FIXED), claims its frames and refs there, reopens its
 *     xenstore and event-channel handles against B, reconnects its
 *     frontends, registers with B and closes its connections to A. This is
 *     the point of no return.
 *  6. Destroy on A once every registered process has left it (or after
 *     the timeout: stragglers are killed with it); A's backends see their
 *     frontends gone and close; then the device nodes on A are removed.
 *
 * Any failure before step 5 rolls back: devices and domain on B go, A's
 * domain is resumed (its waiting processes are answered "cancelled" and
 * carry on where they were), and the message says what failed. The domain
 * is paused from step 2 to the end of step 5; `paused` in the result is
 * that time plus the processes' move.
 *
 * The reference frontends (tools/xenfront) implement both ways real
 * frontends resume: `--resume reissue` as Linux blkfront (fresh ring,
 * grant again, re-issue every request that had no response) and
 * `--resume keep` (requests queued while suspending stay on the ring; the
 * same ring refs are published again and the new backend serves them when
 * it connects). */
#include "migrate.h"
#include "cli.h"
#include "device.h"
#include "host.h"
#include "usb.h"
#include "xenif.h"
#include "xensim_client.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_KEYS 32
#define MAX_RINGS 64

struct mdev {
    unsigned long devid;
    char type[16];
    unsigned be_a, be_b;
    char be_path[256];
    unsigned nkeys;
    char *keys[MAX_KEYS], *vals[MAX_KEYS];
    bool created;
};

/* A USB controller of the domain. */
struct musb {
    struct usb_ctrl c;          /* c.be: the backend domain on A */
    unsigned be_b;
    char be_path[256];
    bool created;
};

struct mig {
    const struct migrate_opts *o;
    struct migrate_result *res;
    char a[PATH_MAX], b[PATH_MAX];
    int sa, sb;
    struct xenif_xs *xa, *xb;
    unsigned domid, new_domid;
    struct xensim_dom_info info;
    struct mdev *devs;
    unsigned ndevs;
    struct musb *usbs;
    unsigned nusbs;
    int mem_a;
    uint32_t pages_a;
    struct xensim_gnt_layout *tab_a;
    char *err;
    size_t errlen;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int fail(struct mig *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(struct mig *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, m->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- set-up --------------------------------------------------------------- */

static int open_host(struct mig *m, const char *dir, char *abs, int *sock,
                     struct xenif_xs **xs, const char *which)
{
    if (!dir || !*dir)
        return fail(m, "no %s host directory given", which);
    if (!realpath(dir, abs))
        return fail(m, "%s host %s: %s", which, dir, strerror(errno));
    if (strlen(abs) + 32 >= XENSIM_DIR_MAX)
        return fail(m, "%s host directory %s is too long (max %d bytes)", which,
                    abs, XENSIM_DIR_MAX - 33);
    char err[512];
    *sock = xensim_connect(abs, 0, false, err, sizeof(err));
    if (*sock < 0)
        return fail(m, "%s host: %s", which, err);
    struct xenif_config cfg = { .kind = XENIF_XENSIM, .xensim_dir = abs,
                                .xensim_domid = 0 };
    *xs = xenif_xs_open(&cfg, err, sizeof(err));
    if (!*xs)
        return fail(m, "%s host: xenstore: %s", which, err);
    return 0;
}

static long find_domain(int sock, const char *arg, struct xensim_dom_info *info)
{
    char *end;
    errno = 0;
    unsigned long id = strtoul(arg, &end, 10);
    if (*arg >= '0' && *arg <= '9' && !*end && !errno && id <= XENSIM_DOMID_MAX &&
        xensim_domain_info(sock, (unsigned)id, info) == 0 && info->domid == id)
        return (long)id;
    for (unsigned next = 0; xensim_domain_info(sock, next, info) == 0;
         next = info->domid + 1)
        if (strcmp(info->name, arg) == 0)
            return info->domid;
    return -1;
}

static void free_devs(struct mig *m)
{
    for (unsigned i = 0; i < m->ndevs; i++)
        for (unsigned k = 0; k < m->devs[i].nkeys; k++) {
            free(m->devs[i].keys[k]);
            free(m->devs[i].vals[k]);
        }
    free(m->devs);
    m->devs = NULL;
    m->ndevs = 0;
    free(m->usbs);
    m->usbs = NULL;
    m->nusbs = 0;
}

/* The USB controllers of the domain, from libxl's copy on A. */
static int read_usbs(struct mig *m)
{
    char base[64];
    snprintf(base, sizeof(base), "/libxl/%u/device/vusb", m->domid);
    unsigned n = 0;
    char **ids = xenif_xs_directory(m->xa, 0, base, &n);
    if (!ids)
        return errno == ENOENT ? 0 : fail(m, "reading %s: %s", base, strerror(errno));
    m->usbs = calloc(n ? n : 1, sizeof(*m->usbs));
    if (!m->usbs) {
        free(ids);
        return fail(m, "out of memory");
    }
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        char *end;
        unsigned long devid = strtoul(ids[i], &end, 10);
        if (*end || !*ids[i] || devid > UINT32_MAX)
            continue;
        struct musb *u = &m->usbs[m->nusbs];
        if (usb_ctrl_read(m->xa, m->domid, (unsigned)devid, &u->c) < 0) {
            rc = fail(m, "USB controller %lu of domain %u cannot be read from "
                      "%s: %s", devid, m->domid, base, strerror(errno));
            break;
        }
        snprintf(u->be_path, sizeof(u->be_path), "/local/domain/%u/backend/%s/%u/%u",
                 u->c.be, u->c.type, m->domid, u->c.devid);
        m->nusbs++;
    }
    free(ids);
    return rc;
}

/* The vbds of the domain, from libxl's copy on A. */
static int read_devices(struct mig *m)
{
    char base[64], path[512];
    snprintf(base, sizeof(base), "/libxl/%u/device/vbd", m->domid);
    unsigned n = 0;
    char **ids = xenif_xs_directory(m->xa, 0, base, &n);
    if (!ids)
        return errno == ENOENT ? 0 : fail(m, "reading %s: %s", base, strerror(errno));
    m->devs = calloc(n ? n : 1, sizeof(*m->devs));
    if (!m->devs) {
        free(ids);
        return fail(m, "out of memory");
    }
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        struct mdev *d = &m->devs[m->ndevs];
        char *end;
        d->devid = strtoul(ids[i], &end, 10);
        if (*end || !*ids[i])
            continue;
        snprintf(path, sizeof(path), "%s/%s/backend", base, ids[i]);
        char *be = xenif_xs_read(m->xa, 0, path, NULL);
        unsigned bd, fd;
        unsigned long id;
        int used = -1;
        if (!be || strlen(be) >= sizeof(d->be_path) ||
            sscanf(be, "/local/domain/%u/backend/%15[^/]/%u/%lu%n", &bd, d->type,
                   &fd, &id, &used) != 4 || used != (int)strlen(be) ||
            fd != m->domid || id != d->devid) {
            rc = fail(m, "%s is missing or not a backend path of domain %u's "
                      "vbd %lu", path, m->domid, d->devid);
            free(be);
            break;
        }
        snprintf(d->be_path, sizeof(d->be_path), "%s", be);
        free(be);
        d->be_a = bd;
        m->ndevs++;
        snprintf(path, sizeof(path), "%s/%s", base, ids[i]);
        unsigned nk = 0;
        char **keys = xenif_xs_directory(m->xa, 0, path, &nk);
        for (unsigned k = 0; keys && k < nk && rc == 0; k++) {
            if (strcmp(keys[k], "frontend") == 0 || strcmp(keys[k], "backend") == 0)
                continue;
            if (d->nkeys == MAX_KEYS) {
                rc = fail(m, "%s has too many keys", path);
                break;
            }
            char kp[600];
            snprintf(kp, sizeof(kp), "%s/%s", path, keys[k]);
            char *v = xenif_xs_read(m->xa, 0, kp, NULL);
            d->keys[d->nkeys] = strdup(keys[k]);
            d->vals[d->nkeys] = v ? v : strdup("");
            if (!d->keys[d->nkeys] || !d->vals[d->nkeys])
                rc = fail(m, "out of memory");
            d->nkeys++;
        }
        free(keys);
    }
    free(ids);
    return rc;
}

/* The B domain that plays the part of A's backend domain be_a: dom0, or
 * the domain with the same name. what names the device in messages. */
static int map_backend(struct mig *m, unsigned be_a, const char *what,
                       unsigned *be_b)
{
    if (be_a == 0) {
        *be_b = 0;
        return 0;
    }
    struct xensim_dom_info info;
    if (xensim_domain_info(m->sa, be_a, &info) < 0 || info.domid != be_a)
        return fail(m, "%s's backend domain %u is gone on the source", what, be_a);
    char name[XENSIM_NAME_MAX];
    memcpy(name, info.name, sizeof(name));
    long b = find_domain(m->sb, name, &info);
    if (b < 0 || strcmp(info.name, name) != 0)
        return fail(m, "%s's backend domain '%s' does not exist on the "
                    "destination", what, name);
    *be_b = (unsigned)b;
    return 0;
}

static int map_backends(struct mig *m)
{
    char what[64];
    for (unsigned i = 0; i < m->ndevs; i++) {
        snprintf(what, sizeof(what), "vbd %lu", m->devs[i].devid);
        if (map_backend(m, m->devs[i].be_a, what, &m->devs[i].be_b) < 0)
            return -1;
    }
    for (unsigned i = 0; i < m->nusbs; i++) {
        snprintf(what, sizeof(what), "USB controller %u", m->usbs[i].c.devid);
        if (map_backend(m, m->usbs[i].c.be, what, &m->usbs[i].be_b) < 0)
            return -1;
    }
    return 0;
}

/* ---- steps ---------------------------------------------------------------- */

static int write_shutdown(struct mig *m, const char *value)
{
    char path[64];
    snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", m->domid);
    return xenif_xs_write(m->xa, 0, path, value, strlen(value));
}

/* Step 1: every registered process acknowledges. */
static int ask_suspend(struct mig *m)
{
    if (write_shutdown(m, "suspend") < 0)
        return fail(m, "writing control/shutdown on the source: %s", strerror(errno));
    uint64_t start = now_ns(), limit = (uint64_t)m->o->timeout_s * 1000000000ull;
    struct xensim_dom_info info;
    for (;;) {
        if (xensim_domain_info(m->sa, m->domid, &info) < 0 || info.domid != m->domid)
            return fail(m, "domain %u disappeared from the source", m->domid);
        if (info.nr_suspending >= info.nr_suspendable)
            break;
        if (now_ns() - start > limit)
            return fail(m, "%u of the domain's %u suspend-capable process(es) did "
                        "not acknowledge the suspend request within %us",
                        info.nr_suspendable - info.nr_suspending,
                        info.nr_suspendable, m->o->timeout_s);
        usleep(1000);
    }
    m->res->procs = info.nr_suspendable;
    m->res->ack_ns = now_ns() - start;
    write_shutdown(m, "");
    return 0;
}

/* The first page of the ring dir/key names (blkif: ring-ref, or ring-ref0
 * for a multi-page ring). */
static int ring_refs(struct mig *m, const char *dir, const char *key,
                     uint32_t *refs, unsigned *n)
{
    char path[600];
    unsigned long v;
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    if (xenif_xs_read_uint(m->xa, 0, path, &v) < 0) {
        snprintf(path, sizeof(path), "%s/%s0", dir, key);
        if (xenif_xs_read_uint(m->xa, 0, path, &v) < 0)
            return 0; /* no ring published */
    }
    if (*n == MAX_RINGS)
        return fail(m, "too many rings");
    refs[(*n)++] = (uint32_t)v;
    return 0;
}

/* The quiesce state a connected device's backend reports: 1 quiesced
 * (netbusd, once it saw the domain suspended: nothing in flight, nothing
 * more taken from the rings; requests left there are for the destination),
 * 0 not yet, -1 a backend that does not quiesce (no netbus-quiesced node). */
static int backend_quiesced(struct mig *m, const char *be_path)
{
    char path[600];
    unsigned long v;
    snprintf(path, sizeof(path), "%s/netbus-quiesced", be_path);
    if (xenif_xs_read_uint(m->xa, 0, path, &v) < 0)
        return -1;
    return v == 1;
}

static bool connected(struct mig *m, const char *be_path)
{
    char path[600];
    unsigned long st;
    snprintf(path, sizeof(path), "%s/state", be_path);
    return xenif_xs_read_uint(m->xa, 0, path, &st) == 0 && st == 4;
}

/* Step 2, second half: each connected device quiesced by its backend, or
 * (a backend that does not) its request rings answered up to req_prod. */
static int drain_rings(struct mig *m)
{
    uint32_t refs[MAX_RINGS];
    unsigned n = 0;
    const char *ring_be[MAX_RINGS];
    for (unsigned i = 0; i < m->ndevs; i++) {
        char path[600], fe[128];
        unsigned long nq = 0;
        unsigned before = n;
        if (!connected(m, m->devs[i].be_path))
            continue; /* nothing in flight */
        snprintf(fe, sizeof(fe), "/local/domain/%u/device/vbd/%lu", m->domid,
                 m->devs[i].devid);
        snprintf(path, sizeof(path), "%s/multi-queue-num-queues", fe);
        if (xenif_xs_read_uint(m->xa, 0, path, &nq) < 0 &&
            ring_refs(m, fe, "ring-ref", refs, &n) < 0)
            return -1;
        for (unsigned long q = 0; q < nq && q < MAX_RINGS; q++) {
            snprintf(path, sizeof(path), "%s/queue-%lu", fe, q);
            if (ring_refs(m, path, "ring-ref", refs, &n) < 0)
                return -1;
        }
        for (unsigned r = before; r < n; r++)
            ring_be[r] = m->devs[i].be_path;
    }
    for (unsigned i = 0; i < m->nusbs; i++) {
        char fe[128];
        unsigned before = n;
        if (!connected(m, m->usbs[i].be_path))
            continue;
        snprintf(fe, sizeof(fe), "/local/domain/%u/device/vusb/%u", m->domid,
                 m->usbs[i].c.devid);
        if (ring_refs(m, fe, "urb-ring-ref", refs, &n) < 0)
            return -1;
        for (unsigned r = before; r < n; r++)
            ring_be[r] = m->usbs[i].be_path;
    }
    uint64_t start = now_ns(), limit = (uint64_t)m->o->timeout_s * 1000000000ull;
    for (;;) {
        unsigned busy = 0;
        uint32_t left = 0;
        for (unsigned i = 0; i < n; i++) {
            if (refs[i] >= XENSIM_GNT_ENTRIES)
                continue;
            const struct xensim_gnt_entry *e = &m->tab_a->entries[refs[i]];
            uint32_t frame = __atomic_load_n(&e->frame, __ATOMIC_ACQUIRE);
            if (!(e->flags_domid & XENSIM_GTF_permit_access) || frame >= m->pages_a)
                continue;
            uint32_t idx[4];
            if (pread(m->mem_a, idx, sizeof(idx), (off_t)frame * XENSIM_PROTO_PAGE) !=
                (ssize_t)sizeof(idx))
                continue;
            /* A backend that quiesces is waited for even when its rings
             * look idle: until it saw the suspend it may still take a
             * request. Otherwise req_prod == rsp_prod is the sign. */
            int q = backend_quiesced(m, ring_be[i]);
            if (q == 0 || (q < 0 && idx[0] != idx[2])) {
                busy++;
                left += idx[0] - idx[2];
            }
        }
        if (!busy)
            return 0;
        if (now_ns() - start > limit)
            return fail(m, "the source's backends did not quiesce %u ring(s) "
                        "(%u request(s) unanswered) in %us", busy, left,
                        m->o->timeout_s);
        usleep(1000);
    }
}

/* Copies the data extents of src into dst. */
static int copy_memory(struct mig *m, int src, int dst, uint32_t pages)
{
    off_t end = (off_t)pages * XENSIM_PROTO_PAGE, pos = 0;
    static char buf[1 << 20];
    while (pos < end) {
        off_t data = lseek(src, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO)
                break;
            return fail(m, "reading the source's memory: %s", strerror(errno));
        }
        off_t hole = lseek(src, data, SEEK_HOLE);
        if (hole < 0 || hole > end)
            hole = end;
        for (off_t off = data; off < hole;) {
            loff_t in = off, out = off;
            ssize_t k = copy_file_range(src, &in, dst, &out, (size_t)(hole - off), 0);
            if (k <= 0) {
                size_t want = (size_t)(hole - off) < sizeof(buf) ? (size_t)(hole - off)
                                                                 : sizeof(buf);
                k = pread(src, buf, want, off);
                if (k <= 0 || pwrite(dst, buf, (size_t)k, off) != k)
                    return fail(m, "copying memory at %lld: %s", (long long)off,
                                k < 0 ? strerror(errno) : "short transfer");
            }
            off += k;
            m->res->copied_bytes += (uint64_t)k;
        }
        pos = hole;
    }
    return 0;
}

/* Step 3. */
static int restore(struct mig *m)
{
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_DOMAIN_CREATE);
    memcpy(req.name, m->info.name, sizeof(req.name));
    memcpy(req.uuid, m->info.uuid, sizeof(req.uuid));
    req.memory_mib = m->info.memory_mib;
    if (xensim_call(m->sb, &req, &rsp, NULL, NULL) < 0)
        return fail(m, "cannot create the domain on the destination: %s",
                    errno == EEXIST ? "a domain with its name or UUID exists there"
                                    : strerror(errno));
    m->new_domid = rsp.dom.domid;
    int mem_b = -1;
    uint32_t pages_b = 0;
    struct xensim_gnt_layout *tab_b = xensim_gnt_attach(m->sb, m->new_domid,
                                                        PROT_READ | PROT_WRITE,
                                                        &mem_b, &pages_b);
    if (!tab_b)
        return fail(m, "attaching to the new domain's memory: %s", strerror(errno));
    int rc = 0;
    if (pages_b != m->pages_a)
        rc = fail(m, "the new domain has %u pages, the old %u", pages_b, m->pages_a);
    if (rc == 0)
        rc = copy_memory(m, m->mem_a, mem_b, m->pages_a);
    if (rc == 0) {
        for (uint32_t r = 0; r < XENSIM_GNT_ENTRIES; r++) {
            struct xensim_gnt_entry e = m->tab_a->entries[r];
            e.flags_domid &= ~(uint32_t)(XENSIM_GTF_reading | XENSIM_GTF_writing);
            tab_b->entries[r].frame = e.frame;
            __atomic_store_n(&tab_b->entries[r].flags_domid, e.flags_domid,
                             __ATOMIC_RELEASE);
        }
        if (xensim_domain_op(m->sb, XENSIM_OP_DOMAIN_RESTORE, m->new_domid) < 0)
            rc = fail(m, "restoring on the destination: %s", strerror(errno));
    }
    munmap(tab_b, sizeof(*tab_b));
    close(mem_b);
    return rc;
}

/* Step 4. */
static int create_devices(struct mig *m)
{
    char num[16];
    snprintf(num, sizeof(num), "%u", m->new_domid);
    for (unsigned i = 0; i < m->ndevs; i++) {
        struct mdev *d = &m->devs[i];
        const char *bents[MAX_KEYS][2];
        for (unsigned k = 0; k < d->nkeys; k++) {
            bents[k][0] = d->keys[k];
            bents[k][1] = strcmp(d->keys[k], "frontend-id") == 0 ? num
                          : strcmp(d->keys[k], "state") == 0 ? "1" : d->vals[k];
        }
        char err[400];
        if (device_vbd_write(m->xb, d->be_b, d->type, m->new_domid, d->devid, bents,
                             d->nkeys, err, sizeof(err)) < 0)
            return fail(m, "vbd %lu on the destination: %s", d->devid, err);
        d->created = true;
    }
    for (unsigned i = 0; i < m->ndevs; i++) {
        struct mdev *d = &m->devs[i];
        char err[400];
        if (device_vbd_wait_ready(m->xb, d->be_b, d->type, m->new_domid, d->devid,
                                  m->o->timeout_s, err, sizeof(err)) < 0)
            return fail(m, "destination: %s", err);
    }
    for (unsigned i = 0; i < m->nusbs; i++) {
        struct musb *u = &m->usbs[i];
        struct usb_ctrl c = u->c;
        char err[400];
        c.be = u->be_b;
        if (usb_ctrl_write(m->xb, m->new_domid, &c, err, sizeof(err)) < 0)
            return fail(m, "USB controller %u on the destination: %s", c.devid, err);
        u->created = true;
    }
    for (unsigned i = 0; i < m->nusbs; i++) {
        struct usb_ctrl c = m->usbs[i].c;
        char err[400];
        c.be = m->usbs[i].be_b;
        if (usb_ctrl_wait_ready(m->xb, m->new_domid, &c, m->o->timeout_s, err,
                                sizeof(err)) < 0)
            return fail(m, "destination: %s", err);
    }
    m->res->devices = m->ndevs + m->nusbs;
    return 0;
}

/* Removes the domain's devices after the domain is gone: its backends see
 * the frontend go and close; wait (bounded) for that, then remove. */
static void remove_devices(struct mig *m, struct xenif_xs *xs, bool dest,
                           unsigned domid)
{
    for (unsigned i = 0; i < m->ndevs; i++) {
        struct mdev *d = &m->devs[i];
        if (dest && !d->created)
            continue;
        unsigned be = dest ? d->be_b : d->be_a, wait = m->o->timeout_s < 5 ?
                                                      m->o->timeout_s : 5;
        /* A backend that never took the device has nothing to close. */
        char path[300];
        unsigned long st;
        snprintf(path, sizeof(path), "/local/domain/%u/backend/%s/%u/%lu/state", be,
                 d->type, domid, d->devid);
        if (xenif_xs_read_uint(xs, 0, path, &st) < 0 || st <= 1)
            wait = 0;
        device_vbd_remove(xs, be, d->type, domid, d->devid, wait, false);
    }
    for (unsigned i = 0; i < m->nusbs; i++) {
        struct musb *u = &m->usbs[i];
        if (dest && !u->created)
            continue;
        struct usb_ctrl c = u->c;
        c.be = dest ? u->be_b : u->c.be;
        usb_ctrl_remove(xs, domid, &c, m->o->timeout_s < 5 ? m->o->timeout_s : 5);
    }
}

/* Step 6: wait for the registered processes to leave the source. */
static void wait_gone(struct mig *m)
{
    uint64_t start = now_ns(), limit = (uint64_t)m->o->timeout_s * 1000000000ull;
    struct xensim_dom_info info;
    while (xensim_domain_info(m->sa, m->domid, &info) == 0 && info.domid == m->domid &&
           info.nr_suspendable > 0) {
        if (now_ns() - start > limit) {
            fprintf(stderr, "xensim migrate: %u process(es) did not leave the "
                    "source within %us; destroying them with it\n",
                    info.nr_suspendable, m->o->timeout_s);
            return;
        }
        usleep(500);
    }
}

int xensim_migrate(const struct migrate_opts *o, struct migrate_result *res,
                   char *err, size_t errlen)
{
    struct mig m = { .o = o, .res = res, .sa = -1, .sb = -1, .mem_a = -1,
                     .err = err, .errlen = errlen };
    memset(res, 0, sizeof(*res));
    uint64_t t0 = now_ns(), t_pause = 0;
    bool asked = false, paused = false, created = false;
    int rc = -1;
    if (open_host(&m, o->src_dir, m.a, &m.sa, &m.xa, "source") < 0 ||
        open_host(&m, o->dst_dir, m.b, &m.sb, &m.xb, "destination") < 0)
        goto out;
    if (strcmp(m.a, m.b) == 0) {
        fail(&m, "the source and the destination are the same host (%s)", m.a);
        goto out;
    }
    long id = find_domain(m.sa, o->domain, &m.info);
    if (id <= 0) {
        fail(&m, id == 0 ? "domain 0 is the host itself; it cannot migrate"
                         : "no domain with id or name '%s' on the source (see "
                           "`xensim list`)", o->domain);
        goto out;
    }
    m.domid = (unsigned)id;
    res->old_domid = m.domid;
    if (m.info.state != XENSIM_DOM_RUNNING) {
        fail(&m, "domain %u is %s; only a running domain migrates", m.domid,
             xensim_dom_state_name(m.info.state));
        goto out;
    }
    if (read_devices(&m) < 0 || read_usbs(&m) < 0 || map_backends(&m) < 0)
        goto out;

    /* 1 */
    asked = true;
    if (ask_suspend(&m) < 0)
        goto rollback;
    /* 2 */
    if (xensim_domain_op(m.sa, XENSIM_OP_DOMAIN_SUSPEND, m.domid) < 0) {
        fail(&m, "pausing domain %u: %s", m.domid, strerror(errno));
        goto rollback;
    }
    paused = true;
    t_pause = now_ns();
    m.tab_a = xensim_gnt_attach(m.sa, m.domid, PROT_READ, &m.mem_a, &m.pages_a);
    if (!m.tab_a) {
        fail(&m, "attaching to domain %u's memory: %s", m.domid, strerror(errno));
        goto rollback;
    }
    if (drain_rings(&m) < 0)
        goto rollback;
    /* 3 */
    if (restore(&m) < 0) {
        created = m.new_domid != 0;
        goto rollback;
    }
    created = true;
    /* 4 */
    if (create_devices(&m) < 0)
        goto rollback;
    /* 5: point of no return */
    struct xensim_req req;
    struct xensim_rsp rsp;
    xensim_req_init(&req, XENSIM_OP_DOMAIN_MIGRATED);
    req.domid = m.domid;
    req.remote = m.new_domid;
    memcpy(req.dir, m.b, strlen(m.b) + 1); /* fits: checked by open_host */
    if (xensim_call(m.sa, &req, &rsp, NULL, NULL) < 0) {
        fail(&m, "telling the source that domain %u moved: %s", m.domid,
             strerror(errno));
        goto rollback;
    }
    res->new_domid = m.new_domid;
    /* 6 */
    wait_gone(&m);
    res->paused_ns = now_ns() - t_pause;
    if (xensim_domain_op(m.sa, XENSIM_OP_DOMAIN_DESTROY, m.domid) < 0)
        fprintf(stderr, "xensim migrate: destroying domain %u on the source: %s\n",
                m.domid, strerror(errno));
    remove_devices(&m, m.xa, false, m.domid);
    rc = 0;
    goto out;

rollback:;
    char why[1024];
    snprintf(why, sizeof(why), "%s", err);
    if (created) {
        xensim_domain_op(m.sb, XENSIM_OP_DOMAIN_DESTROY, m.new_domid);
        remove_devices(&m, m.xb, true, m.new_domid);
    }
    if (asked) {
        write_shutdown(&m, "");
        /* Answers the processes that acknowledged ("cancelled") and
         * continues the domain if it was paused. */
        int r = xensim_domain_op(m.sa, XENSIM_OP_DOMAIN_RESUME, m.domid);
        if (r < 0 && paused) {
            snprintf(err, errlen, "%s; and resuming domain %u on the source "
                     "failed: %s", why, m.domid, strerror(errno));
            goto out;
        }
    }
    snprintf(err, errlen, "%s; domain %u keeps running on the source", why, m.domid);
out:
    res->total_ns = now_ns() - t0;
    if (m.tab_a)
        munmap(m.tab_a, sizeof(*m.tab_a));
    if (m.mem_a >= 0)
        close(m.mem_a);
    free_devs(&m);
    if (m.xa)
        xenif_xs_close(m.xa);
    if (m.xb)
        xenif_xs_close(m.xb);
    if (m.sa >= 0)
        close(m.sa);
    if (m.sb >= 0)
        close(m.sb);
    return rc;
}

/* ---- CLI -------------------------------------------------------------------- */

static const char migrate_usage[] =
    "usage: xensim migrate [--dir DIR] DOMAIN --to DEST_DIR [--timeout SEC]\n"
    "                      [--quiet]\n"
    "  moves DOMAIN (id or name) from the host at DIR to the host at DEST_DIR:\n"
    "  suspend request, pause, memory and grant table copied to a new domain\n"
    "  (same name and UUID, new domid), its disks recreated there, resume;\n"
    "  the old domain is destroyed. Prints the new domid. --timeout (default\n"
    "  10 s) bounds each step; a failure before the resume leaves the domain\n"
    "  running on DIR.\n";

int xensim_cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "to", required_argument, NULL, 't' },
        { "timeout", required_argument, NULL, 'T' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct migrate_opts o = { .src_dir = getenv("XENSIM_DIR"), .timeout_s = 10 };
    bool quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "d:t:q", opts, NULL)) != -1) {
        char *end;
        unsigned long v;
        switch (c) {
        case 'd': o.src_dir = optarg; break;
        case 't': o.dst_dir = optarg; break;
        case 'q': quiet = true; break;
        case 'T':
            v = strtoul(optarg, &end, 10);
            if (*end || !*optarg || v == 0 || v > 3600) {
                fprintf(stderr, "xensim migrate: --timeout %s: want 1..3600 "
                        "seconds\n", optarg);
                return 2;
            }
            o.timeout_s = (unsigned)v;
            break;
        case 'h': fputs(migrate_usage, stdout); return 0;
        default: fputs(migrate_usage, stderr); return 2;
        }
    }
    if (argc - optind != 1 || !o.dst_dir) {
        fprintf(stderr, "xensim migrate: %s\n%s", o.dst_dir ? "expected one DOMAIN"
                : "--to DEST_DIR is required", migrate_usage);
        return 2;
    }
    if (!o.src_dir || !*o.src_dir) {
        fprintf(stderr, "xensim migrate: no --dir given and XENSIM_DIR is not set\n");
        return 2;
    }
    o.domain = argv[optind];
    struct migrate_result r;
    char err[1500];
    if (xensim_migrate(&o, &r, err, sizeof(err)) < 0) {
        fprintf(stderr, "xensim migrate: %s\n", err);
        return 1;
    }
    printf("%u\n", r.new_domid);
    if (!quiet)
        fprintf(stderr, "xensim migrate: domain %u -> domain %u of %s: %.1f ms "
                "(suspend ack %.1f ms, paused %.1f ms), %u process(es), %u "
                "device(s), %.1f MiB copied\n", r.old_domid, r.new_domid, o.dst_dir,
                r.total_ns / 1e6, r.ack_ns / 1e6, r.paused_ns / 1e6, r.procs,
                r.devices, r.copied_bytes / 1048576.0);
    return 0;
}
