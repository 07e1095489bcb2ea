/* xsd, the simulator's xenstored: a forked daemon on a temporary run
 * directory, driven over its unix sockets by a raw xs_wire client. */
#include "unit.h"
#include "evloop.h"
#include "xsd.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/io/xs_wire.h>

/* Limits of the test daemon, small so quotas are quick to hit. */
#define Q_NODES 20
#define Q_WATCHES 4
#define Q_TXNS 3
#define DOMU 5 /* introduced at start */

static char *rundir;
static pid_t server;

/* --- the daemon ------------------------------------------------------------ */

static struct evloop *child_loop;

static void child_stop(int sig)
{
    (void)sig;
    evloop_stop(child_loop);
}

static int server_start(void)
{
    rundir = unit_tmpdir("xsd");
    if (!rundir)
        return -1;
    int ready[2];
    if (pipe(ready) < 0)
        return -1;
    server = fork();
    if (server < 0)
        return -1;
    if (server == 0) {
        close(ready[0]);
        struct sigaction sa = { .sa_handler = child_stop };
        sigaction(SIGTERM, &sa, NULL);
        child_loop = evloop_new();
        struct xsd_limits lim;
        xsd_limits_default(&lim);
        lim.nodes_per_domain = Q_NODES;
        lim.watches_per_domain = Q_WATCHES;
        lim.transactions_per_conn = Q_TXNS;
        char err[256];
        struct xsd *x = xsd_new(child_loop, rundir, &lim, err, sizeof(err));
        if (!x || xsd_domain_introduce(x, DOMU) < 0)
            _exit(3);
        if (write(ready[1], "1", 1) != 1)
            _exit(3);
        close(ready[1]);
        int rc = evloop_run(child_loop);
        xsd_free(x);
        evloop_free(child_loop);
        /* exit(), not _exit(): LeakSanitizer checks the daemon here and
         * makes the status non-zero, which the suite cleanup reports. */
        exit(rc ? 4 : 0);
    }
    close(ready[1]);
    char c;
    ssize_t n = read(ready[0], &c, 1);
    close(ready[0]);
    return n == 1 ? 0 : -1;
}

static int server_stop(void)
{
    int status = -1;
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, &status, 0);
    }
    unit_rmtree(rundir);
    free(rundir);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* --- a raw xs_wire client ------------------------------------------------- */

struct xc {
    int fd;
    uint32_t req_id;
    uint32_t type;                   /* of the last reply */
    char reply[XENSTORE_PAYLOAD_MAX + 1];
    uint32_t len;
    struct { char path[256], token[256]; } ev[64]; /* unread watch events */
    int nev;
};

static struct xc *xc_open(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return NULL;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct xc *c = calloc(1, sizeof(*c));
    c->fd = fd;
    return c;
}

static struct xc *xc_dom(unsigned domid)
{
    char path[512];
    if (domid == 0)
        snprintf(path, sizeof(path), "%s/socket", rundir);
    else
        snprintf(path, sizeof(path), "%s/dom%u/socket", rundir, domid);
    return xc_open(path);
}

static void xc_close(struct xc *c)
{
    if (c) {
        close(c->fd);
        free(c);
    }
}

static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, timeout_ms) <= 0)
            return -1;
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Reads one message; watch events are queued, anything else kept as the
 * reply. Returns the type, or -1 on EOF/timeout. */
static int xc_recv(struct xc *c, int timeout_ms)
{
    struct xsd_sockmsg h;
    char body[XENSTORE_PAYLOAD_MAX + 1];
    if (read_full(c->fd, &h, sizeof(h), timeout_ms) < 0 ||
        h.len > XENSTORE_PAYLOAD_MAX ||
        read_full(c->fd, body, h.len, timeout_ms) < 0)
        return -1;
    body[h.len] = '\0';
    if (h.type == XS_WATCH_EVENT) {
        if (c->nev < 64) {
            snprintf(c->ev[c->nev].path, 256, "%.255s", body);
            snprintf(c->ev[c->nev].token, 256, "%.255s",
                     body + strlen(body) + 1);
            c->nev++;
        }
        return XS_WATCH_EVENT;
    }
    memcpy(c->reply, body, h.len + 1);
    c->len = h.len;
    c->type = h.type;
    return (int)h.type;
}

static int xc_send_raw(struct xc *c, uint32_t type, uint32_t tx,
                       const void *data, uint32_t len)
{
    struct xsd_sockmsg h = { type, ++c->req_id, tx, len };
    char buf[sizeof(h) + XENSTORE_PAYLOAD_MAX];
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), data, len);
    return write(c->fd, buf, sizeof(h) + len) == (ssize_t)(sizeof(h) + len)
               ? 0 : -1;
}

/* One request and its reply. Returns 0, or -1 with the error name (or
 * "EOF") in c->reply. */
static int xc_call(struct xc *c, uint32_t type, uint32_t tx, const void *data,
                   uint32_t len)
{
    if (xc_send_raw(c, type, tx, data, len) < 0)
        goto eof;
    int t;
    while ((t = xc_recv(c, 2000)) == XS_WATCH_EVENT)
        ;
    if (t < 0)
        goto eof;
    return t == XS_ERROR ? -1 : 0;
eof:
    strcpy(c->reply, "EOF");
    return -1;
}

/* Payload of NUL-terminated strings, ending at a NULL argument. */
static uint32_t strs(char *buf, ...)
{
    va_list ap;
    va_start(ap, buf);
    uint32_t len = 0;
    for (const char *s; (s = va_arg(ap, const char *));) {
        strcpy(buf + len, s);
        len += (uint32_t)strlen(s) + 1;
    }
    va_end(ap);
    return len;
}

static int xc_str(struct xc *c, uint32_t type, uint32_t tx, const char *a,
                  const char *b)
{
    char buf[XENSTORE_PAYLOAD_MAX];
    return xc_call(c, type, tx, buf, strs(buf, a, b, (char *)NULL));
}

static int xc_write(struct xc *c, uint32_t tx, const char *path,
                    const char *value)
{
    char buf[XENSTORE_PAYLOAD_MAX];
    uint32_t len = strs(buf, path, (char *)NULL);
    memcpy(buf + len, value, strlen(value));
    return xc_call(c, XS_WRITE, tx, buf, len + (uint32_t)strlen(value));
}

/* Reads path; the value or the error name, in c->reply. */
static const char *xc_read(struct xc *c, uint32_t tx, const char *path)
{
    xc_str(c, XS_READ, tx, path, NULL);
    return c->reply;
}

static int xc_set_perms(struct xc *c, const char *path, const char *p1,
                        const char *p2)
{
    char buf[XENSTORE_PAYLOAD_MAX];
    return xc_call(c, XS_SET_PERMS, 0, buf, strs(buf, path, p1, p2, (char *)NULL));
}

/* Waits up to timeout_ms for an event; 1 if one matches (and drops it). */
static int xc_event(struct xc *c, const char *path, const char *token,
                    int timeout_ms)
{
    for (;;) {
        for (int i = 0; i < c->nev; i++)
            if (strcmp(c->ev[i].path, path) == 0 &&
                strcmp(c->ev[i].token, token) == 0) {
                memmove(&c->ev[i], &c->ev[i + 1],
                        (size_t)(c->nev - i - 1) * sizeof(c->ev[0]));
                c->nev--;
                return 1;
            }
        if (xc_recv(c, timeout_ms) < 0)
            return 0;
    }
}

/* Drains whatever arrives within timeout_ms into the event queue. */
static void xc_settle(struct xc *c, int timeout_ms)
{
    while (xc_recv(c, timeout_ms) >= 0)
        ;
}

static bool xc_closed(struct xc *c)
{
    char b[4096];
    for (;;) {
        struct pollfd p = { c->fd, POLLIN, 0 };
        if (poll(&p, 1, 2000) <= 0)
            return false;
        ssize_t n = read(c->fd, b, sizeof(b));
        if (n <= 0)
            return true;
    }
}

/* --- tests ---------------------------------------------------------------- */

static void test_read_write_mkdir_rm_directory(void)
{
    struct xc *c = xc_dom(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(xc_write(c, 0, "/rw/a/b", "hello"), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(c, 0, "/rw/a/b"), "hello");
    CU_ASSERT_STRING_EQUAL(xc_read(c, 0, "/rw/a"), ""); /* made on the way */
    CU_ASSERT_EQUAL(xc_write(c, 0, "/rw/a/c", ""), 0);
    CU_ASSERT_EQUAL(xc_str(c, XS_MKDIR, 0, "/rw/a/d", NULL), 0);
    CU_ASSERT_EQUAL(xc_str(c, XS_MKDIR, 0, "/rw/a/b", NULL), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(c, 0, "/rw/a/b"), "hello"); /* kept */
    CU_ASSERT_EQUAL(xc_str(c, XS_DIRECTORY, 0, "/rw/a", NULL), 0);
    CU_ASSERT_EQUAL(c->len, 6);
    CU_ASSERT_EQUAL(memcmp(c->reply, "b\0c\0d\0", 6), 0);
    /* Binary values survive, NULs included. */
    char buf[64];
    uint32_t len = strs(buf, "/rw/bin", (char *)NULL);
    memcpy(buf + len, "x\0y", 3);
    CU_ASSERT_EQUAL(xc_call(c, XS_WRITE, 0, buf, len + 3), 0);
    CU_ASSERT_EQUAL(xc_str(c, XS_READ, 0, "/rw/bin", NULL), 0);
    CU_ASSERT_EQUAL(c->len, 3);
    CU_ASSERT_EQUAL(memcmp(c->reply, "x\0y", 3), 0);

    CU_ASSERT_EQUAL(xc_str(c, XS_RM, 0, "/rw/a", NULL), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(c, 0, "/rw/a/b"), "ENOENT");
    CU_ASSERT_STRING_EQUAL(xc_read(c, 0, "/rw/a"), "ENOENT");
    CU_ASSERT_EQUAL(xc_str(c, XS_RM, 0, "/rw/a", NULL), 0); /* parent exists */
    CU_ASSERT_EQUAL(xc_str(c, XS_RM, 0, "/rw/x/y", NULL), -1);
    CU_ASSERT_STRING_EQUAL(c->reply, "ENOENT");
    CU_ASSERT_EQUAL(xc_str(c, XS_RM, 0, "/", NULL), -1);
    CU_ASSERT_STRING_EQUAL(c->reply, "EINVAL");
    /* Relative paths from dom0 live under /local/domain/0. */
    CU_ASSERT_EQUAL(xc_write(c, 0, "rel", "r"), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(c, 0, "/local/domain/0/rel"), "r");
    CU_ASSERT_EQUAL(xc_str(c, XS_GET_DOMAIN_PATH, 0, "7", NULL), 0);
    CU_ASSERT_STRING_EQUAL(c->reply, "/local/domain/7");
    xc_close(c);
}

static void test_directory_part(void)
{
    struct xc *c = xc_dom(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char path[128], expect[8192];
    size_t elen = 0;
    for (int i = 0; i < 90; i++) {
        snprintf(path, sizeof(path),
                 "/dp/child-with-a-long-name-to-fill-the-payload-%03d", i);
        CU_ASSERT_EQUAL_FATAL(xc_write(c, 0, path, "v"), 0);
        elen += (size_t)sprintf(expect + elen, "%s", path + 4) + 1;
    }
    CU_ASSERT(elen > XENSTORE_PAYLOAD_MAX);
    CU_ASSERT_EQUAL(xc_str(c, XS_DIRECTORY, 0, "/dp", NULL), -1);
    CU_ASSERT_STRING_EQUAL(c->reply, "E2BIG");
    /* Reassemble as libxenstore does: offsets into the list, same gen. */
    char got[8192], gen[32] = "";
    size_t glen = 0;
    for (int parts = 0; parts < 10; parts++) {
        char off[16];
        snprintf(off, sizeof(off), "%zu", glen);
        CU_ASSERT_EQUAL_FATAL(xc_str(c, XS_DIRECTORY_PART, 0, "/dp", off), 0);
        if (parts == 0)
            strcpy(gen, c->reply);
        CU_ASSERT_STRING_EQUAL(c->reply, gen);
        size_t hl = strlen(c->reply) + 1;
        memcpy(got + glen, c->reply + hl, c->len - hl);
        glen += c->len - hl;
        if (c->len >= 2 && c->reply[c->len - 1] == 0 && c->reply[c->len - 2] == 0)
            break;
    }
    CU_ASSERT_EQUAL(glen, elen + 1); /* plus the closing empty string */
    CU_ASSERT_EQUAL(memcmp(got, expect, elen), 0);
    CU_ASSERT_EQUAL(xc_str(c, XS_RM, 0, "/dp", NULL), 0);
    xc_close(c);
}

static void test_permissions(void)
{
    struct xc *d0 = xc_dom(0), *du = xc_dom(DOMU);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(du);
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/perm/secret", "s"), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(du, 0, "/perm/secret"), "EACCES");
    /* No existence oracle: an absent node under an unreadable parent. */
    CU_ASSERT_STRING_EQUAL(xc_read(du, 0, "/perm/absent"), "EACCES");
    CU_ASSERT_EQUAL(xc_write(du, 0, "/perm/secret", "x"), -1);
    CU_ASSERT_STRING_EQUAL(du->reply, "EACCES");
    CU_ASSERT_EQUAL(xc_write(du, 0, "/perm/new", "x"), -1);
    CU_ASSERT_STRING_EQUAL(du->reply, "EACCES");
    /* Grant read: readable, still not writable; dom0 still has it all. */
    CU_ASSERT_EQUAL(xc_set_perms(d0, "/perm/secret", "n0", "r5"), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(du, 0, "/perm/secret"), "s");
    CU_ASSERT_EQUAL(xc_write(du, 0, "/perm/secret", "x"), -1);
    CU_ASSERT_STRING_EQUAL(du->reply, "EACCES");
    CU_ASSERT_EQUAL(xc_str(d0, XS_GET_PERMS, 0, "/perm/secret", NULL), 0);
    CU_ASSERT_EQUAL(d0->len, 6);
    CU_ASSERT_EQUAL(memcmp(d0->reply, "n0\0r5\0", 6), 0);

    /* Domain's own home: relative paths, it owns what it creates. */
    CU_ASSERT_EQUAL(xc_write(du, 0, "data/x", "1"), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(d0, 0, "/local/domain/5/data/x"), "1");
    CU_ASSERT_EQUAL(xc_str(d0, XS_GET_PERMS, 0, "/local/domain/5/data/x", NULL), 0);
    CU_ASSERT_STRING_EQUAL(d0->reply, "n5");
    /* Owner may change the ACL but not give the node away. */
    CU_ASSERT_EQUAL(xc_set_perms(du, "data/x", "n5", "r6"), 0);
    CU_ASSERT_EQUAL(xc_set_perms(du, "data/x", "n6", NULL), -1);
    CU_ASSERT_STRING_EQUAL(du->reply, "EPERM");
    /* A non-owner with write access may not set permissions. */
    CU_ASSERT_EQUAL(xc_set_perms(d0, "/perm/secret", "n0", "b5"), 0);
    CU_ASSERT_EQUAL(xc_write(du, 0, "/perm/secret", "w"), 0);
    CU_ASSERT_EQUAL(xc_set_perms(du, "/perm/secret", "b0", NULL), -1);
    CU_ASSERT_STRING_EQUAL(du->reply, "EACCES");
    /* A node created in a writable dir inherits its ACL, owned by creator. */
    CU_ASSERT_EQUAL(xc_set_perms(d0, "/perm", "n0", "b5"), 0);
    CU_ASSERT_EQUAL(xc_write(du, 0, "/perm/mine", "m"), 0);
    CU_ASSERT_EQUAL(xc_str(d0, XS_GET_PERMS, 0, "/perm/mine", NULL), 0);
    CU_ASSERT_EQUAL(memcmp(d0->reply, "n5\0b5\0", 6), 0);
    /* dom0 gives it away. */
    CU_ASSERT_EQUAL(xc_set_perms(d0, "/local/domain/5/data/x", "n0", NULL), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(du, 0, "data/x"), "EACCES");
    CU_ASSERT_EQUAL(xc_set_perms(d0, "/perm", "x0", NULL), -1);
    CU_ASSERT_STRING_EQUAL(d0->reply, "EINVAL");
    CU_ASSERT_EQUAL(xc_str(d0, XS_RM, 0, "/perm", NULL), 0);
    CU_ASSERT_EQUAL(xc_str(d0, XS_RM, 0, "/local/domain/5/data", NULL), 0);
    xc_close(d0);
    xc_close(du);
}

static void test_watches(void)
{
    struct xc *w = xc_dom(0), *d0 = xc_dom(0), *du = xc_dom(DOMU);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(du);
    CU_ASSERT_EQUAL(xc_str(w, XS_WATCH, 0, "/wt", "tok1"), 0);
    CU_ASSERT_STRING_EQUAL(w->reply, "OK");
    CU_ASSERT(xc_event(w, "/wt", "tok1", 1000)); /* initial event */
    CU_ASSERT_EQUAL(xc_str(w, XS_WATCH, 0, "/wt", "tok1"), -1);
    CU_ASSERT_STRING_EQUAL(w->reply, "EEXIST");
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/wt/child/leaf", "1"), 0);
    CU_ASSERT(xc_event(w, "/wt/child/leaf", "tok1", 1000));
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/other", "1"), 0);
    /* Removing a subtree: watches on removed nodes fire exactly, watches
     * above fire for the removed root. */
    CU_ASSERT_EQUAL(xc_str(w, XS_WATCH, 0, "/wt/child/leaf", "deep"), 0);
    CU_ASSERT(xc_event(w, "/wt/child/leaf", "deep", 1000));
    CU_ASSERT_EQUAL(xc_str(d0, XS_RM, 0, "/wt/child", NULL), 0);
    CU_ASSERT(xc_event(w, "/wt/child", "tok1", 1000));
    CU_ASSERT(xc_event(w, "/wt/child/leaf", "deep", 1000));
    xc_settle(w, 200);
    for (int i = 0; i < w->nev; i++)
        CU_ASSERT(strcmp(w->ev[i].path, "/other") != 0);
    w->nev = 0;
    CU_ASSERT_EQUAL(xc_str(w, XS_UNWATCH, 0, "/wt", "tok1"), 0);
    CU_ASSERT_EQUAL(xc_str(w, XS_UNWATCH, 0, "/wt", "tok1"), -1);
    CU_ASSERT_STRING_EQUAL(w->reply, "ENOENT");
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/wt/again", "1"), 0);
    CU_ASSERT(!xc_event(w, "/wt/again", "tok1", 200));

    /* A domain's relative watch reports relative paths. */
    CU_ASSERT_EQUAL(xc_str(du, XS_WATCH, 0, "dev", "rel"), 0);
    CU_ASSERT(xc_event(du, "dev", "rel", 1000));
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/local/domain/5/dev/vif", "x"), 0);
    CU_ASSERT(xc_event(du, "dev/vif", "rel", 1000));
    /* Events only for nodes the watcher may read (or their parents). */
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/hidden/a", "1"), 0);
    CU_ASSERT_EQUAL(xc_str(du, XS_WATCH, 0, "/hidden", "h"), 0);
    CU_ASSERT(xc_event(du, "/hidden", "h", 1000)); /* initial: always */
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/hidden/a/b", "1"), 0);
    CU_ASSERT(!xc_event(du, "/hidden/a/b", "h", 300));
    CU_ASSERT_EQUAL(xc_set_perms(d0, "/hidden/a", "n0", "r5"), 0);
    CU_ASSERT(xc_event(du, "/hidden/a", "h", 1000));
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/hidden/a/c", "1"), 0); /* parent readable */
    CU_ASSERT(xc_event(du, "/hidden/a/c", "h", 1000));
    /* Watch quota: the domain has 2 of Q_WATCHES. */
    char tok[16];
    int ok = 0;
    for (int i = 0; i < Q_WATCHES; i++) {
        snprintf(tok, sizeof(tok), "q%d", i);
        ok += xc_str(du, XS_WATCH, 0, "/q", tok) == 0;
    }
    CU_ASSERT_EQUAL(ok, Q_WATCHES - 2);
    CU_ASSERT_STRING_EQUAL(du->reply, "E2BIG");
    /* RESET_WATCHES frees them all. */
    CU_ASSERT_EQUAL(xc_call(du, XS_RESET_WATCHES, 0, "", 1), 0);
    CU_ASSERT_EQUAL(xc_str(du, XS_WATCH, 0, "/q", "after-reset"), 0);
    CU_ASSERT_EQUAL(xc_str(d0, XS_RM, 0, "/hidden", NULL), 0);
    CU_ASSERT_EQUAL(xc_str(d0, XS_RM, 0, "/wt", NULL), 0);
    CU_ASSERT_EQUAL(xc_str(d0, XS_RM, 0, "/local/domain/5/dev", NULL), 0);
    xc_close(w);
    xc_close(d0);
    xc_close(du);
}

static void test_introduce_release(void)
{
    struct xc *d0 = xc_dom(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d0);
    CU_ASSERT_EQUAL(xc_str(d0, XS_WATCH, 0, "@introduceDomain", "in"), 0);
    CU_ASSERT(xc_event(d0, "@introduceDomain", "in", 1000));
    CU_ASSERT_EQUAL(xc_str(d0, XS_WATCH, 0, "@releaseDomain", "out"), 0);
    CU_ASSERT(xc_event(d0, "@releaseDomain", "out", 1000));
    CU_ASSERT_EQUAL(xc_str(d0, XS_IS_DOMAIN_INTRODUCED, 0, "7", NULL), 0);
    CU_ASSERT_STRING_EQUAL(d0->reply, "F");
    CU_ASSERT_PTR_NULL(xc_dom(7));
    char buf[64];
    CU_ASSERT_EQUAL(xc_call(d0, XS_INTRODUCE, 0, buf,
                            strs(buf, "7", "0", "0", (char *)NULL)), -1);
    CU_ASSERT_STRING_EQUAL(d0->reply, "EINVAL"); /* no event channel */
    CU_ASSERT_EQUAL(xc_call(d0, XS_INTRODUCE, 0, buf,
                            strs(buf, "7", "4660", "3", (char *)NULL)), 0);
    CU_ASSERT(xc_event(d0, "@introduceDomain", "in", 1000));
    CU_ASSERT_EQUAL(xc_str(d0, XS_IS_DOMAIN_INTRODUCED, 0, "7", NULL), 0);
    CU_ASSERT_STRING_EQUAL(d0->reply, "T");
    struct xc *d7 = xc_dom(7);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d7);
    CU_ASSERT_EQUAL(xc_write(d7, 0, "hello", "7"), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(d0, 0, "/local/domain/7/hello"), "7");
    /* Guests may not manage domains, nor see the special watches. */
    CU_ASSERT_EQUAL(xc_call(d7, XS_INTRODUCE, 0, buf,
                            strs(buf, "8", "1", "1", (char *)NULL)), -1);
    CU_ASSERT_STRING_EQUAL(d7->reply, "EACCES");
    CU_ASSERT_EQUAL(xc_str(d7, XS_RELEASE, 0, "7", NULL), -1);
    CU_ASSERT_STRING_EQUAL(d7->reply, "EACCES");
    CU_ASSERT_EQUAL(xc_str(d7, XS_WATCH, 0, "@releaseDomain", "r7"), 0);
    CU_ASSERT(xc_event(d7, "@releaseDomain", "r7", 1000)); /* initial */

    CU_ASSERT_EQUAL(xc_str(d0, XS_RELEASE, 0, "7", NULL), 0);
    CU_ASSERT(xc_event(d0, "@releaseDomain", "out", 1000));
    CU_ASSERT(xc_closed(d7));
    CU_ASSERT_EQUAL(xc_str(d0, XS_IS_DOMAIN_INTRODUCED, 0, "7", NULL), 0);
    CU_ASSERT_STRING_EQUAL(d0->reply, "F");
    /* Its nodes went with it, as xenstored removes a gone domain's nodes. */
    CU_ASSERT_STRING_EQUAL(xc_read(d0, 0, "/local/domain/7/hello"), "ENOENT");
    char sock[512];
    snprintf(sock, sizeof(sock), "%s/dom7/socket", rundir);
    CU_ASSERT_EQUAL(access(sock, F_OK), -1);
    CU_ASSERT_EQUAL(xc_str(d0, XS_RELEASE, 0, "7", NULL), -1);
    CU_ASSERT_STRING_EQUAL(d0->reply, "ENOENT");
    xc_close(d7);
    xc_close(d0);
}

static uint32_t xc_txn_start(struct xc *c)
{
    if (xc_call(c, XS_TRANSACTION_START, 0, "", 1))
        return 0;
    return (uint32_t)strtoul(c->reply, NULL, 10);
}

static void test_transactions(void)
{
    struct xc *a = xc_dom(0), *b = xc_dom(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(xc_write(a, 0, "/tx/a", "0"), 0);
    CU_ASSERT_EQUAL(xc_str(b, XS_WATCH, 0, "/tx", "w"), 0);
    CU_ASSERT(xc_event(b, "/tx", "w", 1000));

    /* Commit: invisible until then, watches fire at commit. */
    uint32_t t = xc_txn_start(a);
    CU_ASSERT(t != 0);
    CU_ASSERT_EQUAL(xc_write(a, t, "/tx/a", "1"), 0);
    CU_ASSERT_EQUAL(xc_write(a, t, "/tx/new/n", "n"), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(a, t, "/tx/a"), "1");
    CU_ASSERT_STRING_EQUAL(xc_read(b, 0, "/tx/a"), "0");
    CU_ASSERT_STRING_EQUAL(xc_read(b, 0, "/tx/new/n"), "ENOENT");
    CU_ASSERT(!xc_event(b, "/tx/a", "w", 200));
    CU_ASSERT_EQUAL(xc_str(a, XS_TRANSACTION_END, t, "T", NULL), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(b, 0, "/tx/a"), "1");
    CU_ASSERT_STRING_EQUAL(xc_read(b, 0, "/tx/new/n"), "n");
    CU_ASSERT(xc_event(b, "/tx/a", "w", 1000));
    CU_ASSERT(xc_event(b, "/tx/new/n", "w", 1000));
    /* The transaction is gone after END. */
    CU_ASSERT_STRING_EQUAL(xc_read(a, t, "/tx/a"), "ENOENT");

    /* Conflict: something it read changed meanwhile. */
    t = xc_txn_start(a);
    CU_ASSERT_STRING_EQUAL(xc_read(a, t, "/tx/a"), "1");
    CU_ASSERT_EQUAL(xc_write(b, 0, "/tx/a", "2"), 0);
    CU_ASSERT_EQUAL(xc_write(a, t, "/tx/b", "from-tx"), 0);
    CU_ASSERT_EQUAL(xc_str(a, XS_TRANSACTION_END, t, "T", NULL), -1);
    CU_ASSERT_STRING_EQUAL(a->reply, "EAGAIN");
    CU_ASSERT_STRING_EQUAL(xc_read(b, 0, "/tx/b"), "ENOENT");
    CU_ASSERT_STRING_EQUAL(xc_read(b, 0, "/tx/a"), "2");
    /* Conflict through the child list: a sibling appeared. */
    t = xc_txn_start(a);
    CU_ASSERT_EQUAL(xc_write(a, t, "/tx/c1", "x"), 0);
    CU_ASSERT_EQUAL(xc_write(b, 0, "/tx/c2", "y"), 0);
    CU_ASSERT_EQUAL(xc_str(a, XS_TRANSACTION_END, t, "T", NULL), -1);
    CU_ASSERT_STRING_EQUAL(a->reply, "EAGAIN");

    /* Abort discards. */
    t = xc_txn_start(a);
    CU_ASSERT_EQUAL(xc_str(a, XS_RM, t, "/tx/a", NULL), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(a, t, "/tx/a"), "ENOENT");
    CU_ASSERT_EQUAL(xc_str(a, XS_TRANSACTION_END, t, "X", NULL), -1);
    CU_ASSERT_STRING_EQUAL(a->reply, "EINVAL");
    CU_ASSERT_EQUAL(xc_str(a, XS_TRANSACTION_END, t, "F", NULL), 0);
    CU_ASSERT_STRING_EQUAL(xc_read(b, 0, "/tx/a"), "2");
    /* Unknown transaction ids, and END without one. */
    CU_ASSERT_STRING_EQUAL(xc_read(a, 4242, "/tx/a"), "ENOENT");
    CU_ASSERT_EQUAL(xc_str(a, XS_TRANSACTION_END, 0, "T", NULL), -1);
    CU_ASSERT_STRING_EQUAL(a->reply, "ENOENT");

    /* Transaction quota for a domain connection. */
    struct xc *du = xc_dom(DOMU);
    CU_ASSERT_PTR_NOT_NULL_FATAL(du);
    int ok = 0;
    for (int i = 0; i < Q_TXNS + 1; i++)
        ok += xc_txn_start(du) != 0;
    CU_ASSERT_EQUAL(ok, Q_TXNS);
    CU_ASSERT_STRING_EQUAL(du->reply, "ENOSPC");
    CU_ASSERT_EQUAL(xc_str(a, XS_RM, 0, "/tx", NULL), 0);
    xc_close(du);
    xc_close(a);
    xc_close(b);
}

static void test_node_quota(void)
{
    struct xc *du = xc_dom(DOMU), *d0 = xc_dom(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(du);
    char path[64];
    int ok = 0;
    for (int i = 0; i < Q_NODES + 5; i++) {
        snprintf(path, sizeof(path), "quota/n%d", i);
        if (xc_write(du, 0, path, "x") == 0)
            ok++;
        else
            break;
    }
    CU_ASSERT_STRING_EQUAL(du->reply, "ENOSPC");
    /* Its home counts too: home + quota dir + ok nodes == Q_NODES. */
    CU_ASSERT_EQUAL(ok, Q_NODES - 2);
    /* dom0 is not limited; freeing nodes lets the domain create again. */
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/local/domain/5/quota/by-dom0", "x"), 0);
    CU_ASSERT_EQUAL(xc_write(du, 0, "quota/again", "x"), -1);
    CU_ASSERT_STRING_EQUAL(du->reply, "ENOSPC"); /* by-dom0 is its too */
    CU_ASSERT_EQUAL(xc_str(du, XS_RM, 0, "quota/n0", NULL), 0);
    CU_ASSERT_EQUAL(xc_str(du, XS_RM, 0, "quota/n1", NULL), 0);
    CU_ASSERT_EQUAL(xc_str(du, XS_RM, 0, "quota/n2", NULL), 0);
    CU_ASSERT_EQUAL(xc_write(du, 0, "quota/again", "x"), 0);
    /* Inside a transaction the same limit holds: one more fits. */
    uint32_t t = xc_txn_start(du);
    CU_ASSERT_EQUAL(xc_write(du, t, "quota/t1", "x"), 0);
    CU_ASSERT_EQUAL(xc_write(du, t, "quota/t2", "x"), -1);
    CU_ASSERT_STRING_EQUAL(du->reply, "ENOSPC");
    CU_ASSERT_EQUAL(xc_str(du, XS_TRANSACTION_END, t, "F", NULL), 0);
    CU_ASSERT_EQUAL(xc_str(du, XS_RM, 0, "quota", NULL), 0);
    /* Oversized values from a guest. */
    char big[3000];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    CU_ASSERT_EQUAL(xc_write(du, 0, "bigval", big), -1);
    CU_ASSERT_STRING_EQUAL(du->reply, "ENOSPC");
    CU_ASSERT_EQUAL(xc_write(d0, 0, "/bigval", big), 0);
    CU_ASSERT_EQUAL(xc_str(d0, XS_RM, 0, "/bigval", NULL), 0);
    xc_close(du);
    xc_close(d0);
}

static void test_malformed(void)
{
    struct xc *good = xc_dom(0), *bad = xc_dom(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(good);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    /* Errors xenstored answers without closing. */
    CU_ASSERT_EQUAL(xc_call(bad, 999, 0, "x", 2), -1);
    CU_ASSERT_STRING_EQUAL(bad->reply, "ENOSYS");
    CU_ASSERT_EQUAL(xc_call(bad, XS_WATCH_EVENT, 0, "a\0b", 4), -1);
    CU_ASSERT_STRING_EQUAL(bad->reply, "ENOSYS");
    CU_ASSERT_EQUAL(xc_call(bad, XS_READ, 0, "/local", 6), -1); /* no NUL */
    CU_ASSERT_STRING_EQUAL(bad->reply, "EINVAL");
    CU_ASSERT_EQUAL(xc_call(bad, XS_READ, 0, "/a\0/b", 6), -1); /* two */
    CU_ASSERT_STRING_EQUAL(bad->reply, "EINVAL");
    CU_ASSERT_EQUAL(xc_call(bad, XS_WRITE, 0, "", 0), -1);
    CU_ASSERT_STRING_EQUAL(bad->reply, "EINVAL");
    static const char *const bad_paths[] = { "/a//b", "/a/", "/a b", "",
                                             "@foo", "/x\xff" };
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        CU_ASSERT_EQUAL(xc_write(bad, 0, bad_paths[i], "v"), -1);
        CU_ASSERT_STRING_EQUAL(bad->reply, "EINVAL");
    }
    char longp[XENSTORE_REL_PATH_MAX + 8] = "/";
    memset(longp + 1, 'a', XENSTORE_REL_PATH_MAX + 1);
    CU_ASSERT_EQUAL(xc_write(bad, 0, longp, "v"), -1);
    CU_ASSERT_STRING_EQUAL(bad->reply, "EINVAL");
    CU_ASSERT_EQUAL(xc_str(bad, XS_CONTROL, 0, "no-such-command", NULL), -1);
    CU_ASSERT_STRING_EQUAL(bad->reply, "EINVAL");
    CU_ASSERT_EQUAL(xc_str(bad, XS_CONTROL, 0, "check", NULL), 0);
    CU_ASSERT_STRING_EQUAL(bad->reply, "OK");
    CU_ASSERT_STRING_EQUAL(xc_read(bad, 0, "/local"), ""); /* still alive */

    /* Oversized length: that connection is closed, the daemon serves on. */
    struct xsd_sockmsg h = { XS_READ, 1, 0, XENSTORE_PAYLOAD_MAX + 1 };
    CU_ASSERT_EQUAL(write(bad->fd, &h, sizeof(h)), (ssize_t)sizeof(h));
    CU_ASSERT(xc_closed(bad));
    CU_ASSERT_STRING_EQUAL(xc_read(good, 0, "/local"), "");
    xc_close(bad);
    /* Garbage bytes: same. */
    bad = xc_dom(DOMU);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    unsigned char junk[256];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 37 + 11);
    CU_ASSERT_EQUAL(write(bad->fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    CU_ASSERT(xc_closed(bad));
    CU_ASSERT_STRING_EQUAL(xc_read(good, 0, "/local"), "");
    xc_close(bad);
    xc_close(good);
}

static void test_slow_reader(void)
{
    struct xc *slow = xc_dom(0), *w = xc_dom(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(slow);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    /* A watcher that never reads, with long tokens: ~2 KB per event. */
    char tok[2048];
    memset(tok, 't', sizeof(tok) - 1);
    tok[sizeof(tok) - 1] = 0;
    CU_ASSERT_EQUAL(xc_str(slow, XS_WATCH, 0, "/flood", tok), 0);
    char path[64];
    int ok = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(path, sizeof(path), "/flood/%d", i); /* no duplicates */
        ok += xc_write(w, 0, path, "x") == 0;
    }
    /* The writer was never blocked behind the stuck reader. */
    CU_ASSERT_EQUAL(ok, 2000);
    /* Past the bound the stuck reader is dropped. */
    CU_ASSERT(xc_closed(slow));
    CU_ASSERT_EQUAL(xc_str(w, XS_RM, 0, "/flood", NULL), 0);
    xc_close(slow);
    xc_close(w);
}

static int suite_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    return server_start();
}

static CU_TestInfo xenstored_tests[] = {
    { "read write mkdir rm directory", test_read_write_mkdir_rm_directory },
    { "directory part", test_directory_part },
    { "permissions", test_permissions },
    { "watches", test_watches },
    { "introduce and release", test_introduce_release },
    { "transactions", test_transactions },
    { "node quota", test_node_quota },
    { "malformed messages", test_malformed },
    { "slow reader", test_slow_reader },
    CU_TEST_INFO_NULL,
};

UNIT_SUITE(xenstored, suite_init, server_stop, xenstored_tests)
