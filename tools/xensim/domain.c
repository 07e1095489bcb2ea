/* Domains: create, pause, suspend, resume, destroy; the xenstore nodes libxl
 * writes for a domain; the processes that run as it. */
#include "host.h"
#include "log.h"
#include "xensim_client.h"
#include "xsd.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static bool name_ok(const char *name)
{
    size_t n = strnlen(name, XENSIM_NAME_MAX);
    if (n == 0 || n == XENSIM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(name[i] >= 'a' && name[i] <= 'z') && !(name[i] >= 'A' && name[i] <= 'Z') &&
            !(name[i] >= '0' && name[i] <= '9') && !strchr("._-", name[i]))
            return false;
    return true;
}

static bool uuid_zero(const uint8_t uuid[16])
{
    for (int i = 0; i < 16; i++)
        if (uuid[i])
            return false;
    return true;
}

static void fill_info(struct host *h, const struct domain *d,
                      struct xensim_dom_info *info)
{
    memset(info, 0, sizeof(*info));
    info->domid = d->domid;
    info->state = d->state;
    info->memory_mib = d->memory_mib;
    memcpy(info->name, d->name, sizeof(info->name));
    memcpy(info->uuid, d->uuid, sizeof(info->uuid));
    for (const struct conn *c = h->conns; c; c = c->next) {
        if (c->domid != d->domid)
            continue;
        info->nr_suspendable += c->suspendable;
        info->nr_suspending += c->suspending;
        const struct conn *seen = h->conns;
        while (seen != c && !(seen->domid == d->domid && seen->pid == c->pid))
            seen = seen->next;
        info->nr_procs += seen == c;
    }
}

unsigned domain_signal(struct host *h, struct domain *d, int sig)
{
    unsigned n = 0;
    if (d->domid == 0)
        return 0;
    for (struct conn *c = h->conns; c; c = c->next) {
        if (c->domid != d->domid || c->pid <= 1 || c->pid == getpid())
            continue;
        if (kill(c->group_leader ? -c->pid : c->pid, sig) == 0)
            n++;
    }
    return n;
}

static int store_printf(struct host *h, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int store_printf(struct host *h, const char *path, const char *fmt, ...)
{
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    return xsd_store_write(h->xsd, path, value);
}

/* The nodes libxl creates for a domain: /local/domain/N readable by N, with
 * the few subtrees N may write; /vm/UUID. */
static int write_nodes(struct host *h, const struct domain *d)
{
    char dom[64], path[160], vm[64], uuid[37], reader[16], owner[16];
    xensim_uuid_format(d->uuid, uuid);
    snprintf(dom, sizeof(dom), "/local/domain/%u", d->domid);
    snprintf(vm, sizeof(vm), "/vm/%s", uuid);
    snprintf(reader, sizeof(reader), "r%u", d->domid);
    snprintf(owner, sizeof(owner), "n%u", d->domid);
    const char *ro[] = { "n0", reader };
    const char *rw[] = { owner };
    unsigned nro = d->domid ? 2 : 1;
    int rc = 0;

    rc |= xsd_store_mkdir(h->xsd, dom);
    rc |= xsd_store_set_perms(h->xsd, dom, ro, nro);
    rc |= xsd_store_mkdir(h->xsd, vm);
    rc |= xsd_store_set_perms(h->xsd, vm, ro, nro);
    snprintf(path, sizeof(path), "%s/uuid", vm);
    rc |= xsd_store_write(h->xsd, path, uuid);
    snprintf(path, sizeof(path), "%s/name", vm);
    rc |= xsd_store_write(h->xsd, path, d->name);

    snprintf(path, sizeof(path), "%s/vm", dom);
    rc |= xsd_store_write(h->xsd, path, vm);
    snprintf(path, sizeof(path), "%s/name", dom);
    rc |= xsd_store_write(h->xsd, path, d->name);
    snprintf(path, sizeof(path), "%s/domid", dom);
    rc |= store_printf(h, path, "%u", d->domid);
    snprintf(path, sizeof(path), "%s/memory/static-max", dom);
    rc |= store_printf(h, path, "%u", d->memory_mib * 1024);
    snprintf(path, sizeof(path), "%s/memory/target", dom);
    rc |= store_printf(h, path, "%u", d->memory_mib * 1024);
    snprintf(path, sizeof(path), "%s/device", dom);
    rc |= xsd_store_mkdir(h->xsd, path);
    snprintf(path, sizeof(path), "%s/control", dom);
    rc |= xsd_store_mkdir(h->xsd, path);
    if (d->domid == 0)
        return rc ? -1 : 0;
    snprintf(path, sizeof(path), "%s/control/shutdown", dom);
    rc |= xsd_store_write(h->xsd, path, "");
    rc |= xsd_store_set_perms(h->xsd, path, rw, 1);
    snprintf(path, sizeof(path), "%s/data", dom);
    rc |= xsd_store_mkdir(h->xsd, path);
    rc |= xsd_store_set_perms(h->xsd, path, rw, 1);
    return rc ? -1 : 0;
}

static void remove_nodes(struct host *h, const struct domain *d)
{
    char path[64], uuid[37];
    snprintf(path, sizeof(path), "/local/domain/%u", d->domid);
    xsd_store_rm(h->xsd, path);
    xensim_uuid_format(d->uuid, uuid);
    snprintf(path, sizeof(path), "/vm/%s", uuid);
    xsd_store_rm(h->xsd, path);
}

struct domain *domain_new(struct host *h, unsigned domid, const char *name,
                          const uint8_t uuid[16], unsigned memory_mib, int *err)
{
    struct domain *d = calloc(1, sizeof(*d));
    if (!d) {
        *err = ENOMEM;
        return NULL;
    }
    d->host = h;
    d->domid = domid;
    d->state = XENSIM_DOM_RUNNING;
    d->memory_mib = memory_mib;
    d->listen_fd = d->mem_fd = d->gnt_fd = d->gen_fd = -1;
    snprintf(d->name, sizeof(d->name), "%s", name);
    memcpy(d->uuid, uuid, 16);
    h->domains[domid] = d;
    if (gnttab_domain_init(d) < 0 || evtchn_domain_init(d) < 0 ||
        write_nodes(h, d) < 0 ||
        (domid != 0 && xsd_domain_introduce(h->xsd, domid) < 0) ||
        host_listen(h, d) < 0) {
        *err = errno ? errno : EIO;
        domain_destroy(h, d);
        return NULL;
    }
    if (domid != 0) {
        /* Introduce hands /local/domain/N to N; libxl keeps it dom0's. */
        char dom[64], reader[16];
        snprintf(dom, sizeof(dom), "/local/domain/%u", domid);
        snprintf(reader, sizeof(reader), "r%u", domid);
        const char *ro[] = { "n0", reader };
        xsd_store_set_perms(h->xsd, dom, ro, 2);
    }
    log_info(NULL, "domain %u (%s) created, %u MiB", domid, d->name,
             memory_mib);
    return d;
}

void domain_destroy(struct host *h, struct domain *d)
{
    domain_signal(h, d, SIGKILL);
    for (struct conn *c = h->conns, *next; c; c = next) {
        next = c->next;
        if (c->domid == d->domid)
            host_close_conn(h, c);
    }
    host_unlisten(h, d);
    evtchn_domain_free(h, d);
    gnttab_domain_free(d);
    if (h->xsd) {
        remove_nodes(h, d);
        if (d->domid != 0 && xsd_domain_introduced(h->xsd, d->domid))
            xsd_domain_release(h->xsd, d->domid);
    }
    if (d->domid != 0) {
        char sub[sizeof(h->dir) + 16];
        snprintf(sub, sizeof(sub), "%s/dom%u", h->dir, d->domid);
        rmdir(sub);
    }
    h->domains[d->domid] = NULL;
    free(d);
}

static int op_create(struct host *h, const struct xensim_req *req,
                     struct xensim_rsp *rsp)
{
    char name[XENSIM_NAME_MAX];
    memcpy(name, req->name, sizeof(name));
    if (!name_ok(name))
        return EINVAL;
    unsigned mib = req->memory_mib ? req->memory_mib : XENSIM_DEFAULT_GUEST_MIB;
    if (mib > XENSIM_MAX_MIB)
        return EINVAL;
    uint8_t uuid[16];
    memcpy(uuid, req->uuid, 16);
    if (uuid_zero(uuid)) {
        if (getrandom(uuid, sizeof(uuid), 0) != sizeof(uuid))
            return EIO;
        uuid[6] = (uuid[6] & 0x0f) | 0x40; /* version 4 */
        uuid[8] = (uuid[8] & 0x3f) | 0x80; /* RFC 4122 variant */
    }
    for (unsigned id = 0; id <= XENSIM_DOMID_MAX; id++) {
        const struct domain *o = h->domains[id];
        if (o && (strcmp(o->name, name) == 0 || memcmp(o->uuid, uuid, 16) == 0))
            return EEXIST;
    }
    /* Domain ids are not reused until they wrap, as in Xen. */
    unsigned domid = 0;
    for (unsigned k = 0; k < XENSIM_DOMID_MAX && !domid; k++) {
        unsigned id = 1 + (h->next_domid - 1 + k) % XENSIM_DOMID_MAX;
        if (!h->domains[id])
            domid = id;
    }
    if (!domid)
        return ENOSPC;
    h->next_domid = domid % XENSIM_DOMID_MAX + 1;
    int err = 0;
    struct domain *d = domain_new(h, domid, name, uuid, mib, &err);
    if (!d)
        return err;
    fill_info(h, d, &rsp->dom);
    return 0;
}

static int op_info(struct host *h, struct conn *c, const struct xensim_req *req,
                   struct xensim_rsp *rsp)
{
    unsigned domid = host_req_domid(c, req->domid);
    if (c->domid != 0 && domid != c->domid)
        return EPERM;
    for (unsigned id = domid; id <= XENSIM_DOMID_MAX; id++)
        if (h->domains[id] && (c->domid == 0 || id == c->domid)) {
            fill_info(h, h->domains[id], &rsp->dom);
            return 0;
        }
    return ENOENT;
}

static int set_state(struct host *h, struct domain *d,
                     enum xensim_dom_state state, int sig)
{
    d->state = state;
    domain_signal(h, d, sig);
    return 0;
}

/* Answers the domain's GUEST_SUSPEND waiters: cancelled (the domain goes
 * on here), or migrated to domain new_domid of the host at dir. */
static unsigned answer_suspended(struct host *h, struct domain *d, bool cancelled,
                                 unsigned new_domid, const char *dir)
{
    struct xensim_rsp rsp;
    memset(&rsp, 0, sizeof(rsp));
    rsp.val[0] = cancelled ? 1 : 0;
    if (!cancelled) {
        rsp.dom.domid = new_domid;
        snprintf(rsp.dir, sizeof(rsp.dir), "%s", dir);
    }
    unsigned n = 0;
    for (struct conn *c = h->conns, *next; c; c = next) {
        next = c->next;
        if (c->domid == d->domid && c->suspending) {
            host_reply(h, c, &rsp); /* may close c */
            n++;
        }
    }
    return n;
}

static int change_state(struct host *h, struct domain *d, unsigned op)
{
    bool suspended = d->state == XENSIM_DOM_SUSPENDED;
    if (d->state == XENSIM_DOM_MIGRATED)
        return EINVAL; /* only destroy is left */
    switch (op) {
    case XENSIM_OP_DOMAIN_PAUSE:
        return suspended ? EINVAL : set_state(h, d, XENSIM_DOM_PAUSED, SIGSTOP);
    case XENSIM_OP_DOMAIN_UNPAUSE:
        return suspended ? EINVAL : set_state(h, d, XENSIM_DOM_RUNNING, SIGCONT);
    case XENSIM_OP_DOMAIN_SUSPEND:
        if (suspended)
            return EALREADY;
        set_state(h, d, XENSIM_DOM_SUSPENDED, SIGSTOP);
        /* xenstored announces every domain shutdown, suspend included. */
        xsd_fire_special(h->xsd, "@releaseDomain");
        return 0;
    case XENSIM_OP_DOMAIN_RESUME: {
        /* Also cancels a suspend the guest acknowledged before the
         * toolstack paused the domain (a migration rolling back). */
        unsigned waiters = answer_suspended(h, d, true, 0, NULL);
        if (suspended)
            return set_state(h, d, XENSIM_DOM_RUNNING, SIGCONT);
        return waiters ? 0 : EINVAL;
    }
    default:
        return EINVAL;
    }
}

static int op_migrated(struct host *h, struct domain *d,
                       const struct xensim_req *req)
{
    char dir[XENSIM_DIR_MAX];
    memcpy(dir, req->dir, sizeof(dir));
    size_t n = strnlen(dir, sizeof(dir));
    if (n == 0 || n == sizeof(dir) || dir[0] != '/' || req->remote == 0 ||
        req->remote > XENSIM_DOMID_MAX)
        return EINVAL;
    if (d->state != XENSIM_DOM_SUSPENDED)
        return EINVAL;
    d->state = XENSIM_DOM_MIGRATED;
    unsigned waiters = answer_suspended(h, d, false, req->remote, dir);
    domain_signal(h, d, SIGCONT); /* they move themselves */
    log_info(NULL, "domain %u (%s) migrated to %s as domain %u (%u process(es) "
             "follow)", d->domid, d->name, dir, req->remote, waiters);
    return 0;
}

int domain_guest_handle(struct host *h, struct conn *c,
                        const struct xensim_req *req, struct xensim_rsp *rsp)
{
    (void)rsp;
    struct domain *d = host_domain(h, c->domid);
    if (!d)
        return ESRCH;
    if (c->domid == 0)
        return EPERM; /* dom0 is the host: it is never suspended */
    if (req->op == XENSIM_OP_GUEST_REGISTER) {
        c->suspendable = true;
        return 0;
    }
    if (!c->suspendable)
        return EINVAL;
    char path[64];
    snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", d->domid);
    char *v = xsd_store_read(h->xsd, path);
    bool asked = v && strcmp(v, "suspend") == 0;
    free(v);
    if (!asked || d->state != XENSIM_DOM_RUNNING)
        return EAGAIN;
    c->suspending = true;
    return XENSIM_DEFERRED;
}

int domain_handle(struct host *h, struct conn *c, const struct xensim_req *req,
                  struct xensim_rsp *rsp)
{
    if (req->op == XENSIM_OP_DOMAIN_INFO)
        return op_info(h, c, req, rsp);
    if (c->domid != 0)
        return EPERM;
    if (req->op == XENSIM_OP_DOMAIN_CREATE)
        return op_create(h, req, rsp);
    struct domain *d = host_domain(h, req->domid);
    if (!d)
        return ESRCH;
    if (d->domid == 0)
        return EPERM; /* dom0 is the host itself */
    if (req->op == XENSIM_OP_DOMAIN_DESTROY) {
        log_info(NULL, "domain %u (%s) destroyed", d->domid, d->name);
        domain_destroy(h, d);
        return 0;
    }
    if (req->op == XENSIM_OP_DOMAIN_MIGRATED)
        return op_migrated(h, d, req);
    if (req->op == XENSIM_OP_DOMAIN_RESTORE)
        return gnttab_restore(d) < 0 ? errno : 0;
    int err = change_state(h, d, req->op);
    if (!err)
        fill_info(h, d, &rsp->dom);
    return err;
}
