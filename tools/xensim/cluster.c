/* `xensim cluster`: several simulated hosts on one machine, each in its own
 * network namespace with its own xenstore (one `xensim host` each) and,
 * optionally, its own netbusd. The namespaces are joined by veth pairs to a
 * bridge that lives in a hub namespace, so traffic between hosts crosses a
 * real network stack and a link can be taken down. Nothing is added to the
 * root namespace: no interface, no address, no route; the test subnet exists
 * only inside the namespaces, which have no default route.
 *
 * Where namespaces cannot be made (not root, no CAP_NET_ADMIN, no `ip`) the
 * hosts share the root namespace on loopback addresses 127.X.Y.N, and the
 * cluster says so on stderr and in DIR/cluster.json ("mode": "loopback").
 *
 * Layout and state: DIR/cluster.json (hosts, namespaces, addresses, host
 * directories, pids); host H runs in DIR/H (logs DIR/H/host.log and
 * DIR/H/netbusd.log). Links and namespaces are made with iproute2's `ip`. */
#include "cluster.h"
#include "xensim_client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CL_MAX_HOSTS   32
#define CL_NAME_MAX    16          /* host name length, without the NUL */
#define CL_DIR_MAX     150         /* host dirs hold unix sockets (108 bytes) */
#define CL_MAX_NBARGS  32
#define CL_JSON        "cluster.json"
#define CL_NETNS_RUN   "/run/netns"

struct cl_host {
    char name[CL_NAME_MAX + 1];
    char netns[64];               /* "" in loopback mode */
    char veth[16];                /* hub-side end of the host's link */
    char addr[INET_ADDRSTRLEN];
    char dir[PATH_MAX];
    long long pid, start;         /* xensim host: pid and /proc start time */
    long long nb_pid, nb_start;   /* netbusd, if the cluster started one */
};

struct cluster {
    char dir[PATH_MAX];
    bool netns;                   /* false: loopback fallback */
    char warning[512];
    char subnet[32];
    char hub[64];
    unsigned nhosts;
    struct cl_host hosts[CL_MAX_HOSTS];
};

static const char *cl_cmd = "cluster";

static void die_usage(void);

/* --- small helpers ------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static bool valid_host_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CL_NAME_MAX || !isalnum((unsigned char)s[0]))
        return false;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

/* Start time of pid (field 22 of /proc/PID/stat), 0 when it is gone or a
 * zombie. Together with the pid it names one process, whatever reuse. */
static long long proc_start(long long pid)
{
    if (pid <= 0)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    p += 2;                       /* field 3: state */
    if (*p == 'Z' || *p == 'X')
        return 0;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    return strtoll(p, NULL, 10);
}

static bool proc_alive(long long pid, long long start)
{
    return pid > 0 && start > 0 && proc_start(pid) == start;
}

static int enter_netns(const char *ns, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), CL_NETNS_RUN "/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "network namespace %s: %s (is the cluster up?)",
                 ns, strerror(errno));
        return -1;
    }
    int rc = setns(fd, CLONE_NEWNET);
    int e = errno;
    close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "entering network namespace %s: %s", ns,
                 strerror(e));
        return -1;
    }
    return 0;
}

/* Runs a program (argv[0] looked up in PATH) with a time limit, inside
 * network namespace netns if not NULL; its stderr and stdout go to out
 * (NUL-terminated, may be cut). Returns its exit status, or -1 when it could
 * not be run or timed out (out says why). Entering the namespace with setns
 * rather than `ip -n` keeps working where / is not a mount point (a
 * chroot), which `ip -n` needs for its private mount namespace. */
static int run_prog_in(const char *netns, char *const argv[], char *out,
                       size_t outlen, int timeout_s)
{
    int pfd[2];
    out[0] = 0;
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(out, outlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(out, outlen, "fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        char err[PATH_MAX + 64];
        if (netns && enter_netns(netns, err, sizeof(err)) < 0) {
            dprintf(2, "%s", err);
            _exit(126);
        }
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    size_t used = 0;
    double deadline = now_s() + timeout_s;
    bool timed_out = false;
    for (;;) {
        int left = (int)((deadline - now_s()) * 1000);
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = { .fd = pfd[0], .events = POLLIN };
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char tmp[512];
        ssize_t n = read(pfd[0], tmp, sizeof(tmp));
        if (n <= 0)
            break;
        size_t take = (size_t)n;
        if (used + take >= outlen)
            take = outlen - 1 - used;
        memcpy(out + used, tmp, take);
        used += take;
        out[used] = 0;
    }
    close(pfd[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    while (used > 0 && (out[used - 1] == '\n' || out[used - 1] == ' '))
        out[--used] = 0;
    if (timed_out) {
        snprintf(out, outlen, "%s did not finish within %d s", argv[0], timeout_s);
        return -1;
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st) == 127 && strstr(out, "cannot run") ? -1
                                                                   : WEXITSTATUS(st);
    snprintf(out + used, outlen - used, "%s killed by signal %d",
             used ? "; " : "", WTERMSIG(st));
    return -1;
}

static int run_prog(char *const argv[], char *out, size_t outlen, int timeout_s)
{
    return run_prog_in(NULL, argv, out, outlen, timeout_s);
}

/* `ip ARGS...` (`ip -n NS ARGS...` runs `ip ARGS...` inside NS): 0, or -1
 * after printing the command and ip's message. */
static int ip_(bool quiet, ...)
{
    char *argv[24];
    int n = 0;
    argv[n++] = (char *)"ip";
    va_list ap;
    va_start(ap, quiet);
    for (char *a; n < 23 && (a = va_arg(ap, char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char out[1024];
    const char *netns = NULL;
    char *inner[24];
    char **run = argv;
    if (n >= 3 && strcmp(argv[1], "-n") == 0) {
        netns = argv[2];
        inner[0] = (char *)"ip";
        memcpy(inner + 1, argv + 3, sizeof(char *) * (size_t)(n - 2));
        run = inner;
    }
    int rc = run_prog_in(netns, run, out, sizeof(out), 10);
    if (rc == 0)
        return 0;
    if (!quiet) {
        fprintf(stderr, "xensim %s: `", cl_cmd);
        for (int i = 0; i < n; i++)
            fprintf(stderr, "%s%s", i ? " " : "", argv[i]);
        fprintf(stderr, "` failed: %s\n", *out ? out : "(no message)");
    }
    return -1;
}
#define IP(...)       ip_(false, __VA_ARGS__, (char *)NULL)
#define IP_QUIET(...) ip_(true, __VA_ARGS__, (char *)NULL)

/* The environment of a process running as dom0 of host h. */
static void host_env(const struct cl_host *h)
{
    char xs[PATH_MAX + 16];
    snprintf(xs, sizeof(xs), "%s/socket", h->dir);
    setenv("XENSIM_DIR", h->dir, 1);
    setenv("XENSIM_DOMID", "0", 1);
    setenv("XENSTORED_PATH", xs, 1);
    setenv("XENSTORED_RUNDIR", h->dir, 1);
    setenv("NETBUS_XENIF", "xensim", 1);
    setenv("XENSIM_CLUSTER_HOST", h->name, 1);
    setenv("XENSIM_CLUSTER_ADDR", h->addr, 1);
}

/* Forks a daemon running argv inside h's namespace as h's dom0, its own
 * session, output appended to logpath. Returns its pid, or -1. */
static pid_t spawn_in_host(const struct cluster *c, const struct cl_host *h,
                           char *const argv[], const char *logpath)
{
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "xensim %s: fork: %s\n", cl_cmd, strerror(errno));
        return -1;
    }
    if (pid > 0)
        return pid;
    setsid();
    int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
        dup2(nul, 0);
    if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
    }
    char err[512];
    if (c->netns && enter_netns(h->netns, err, sizeof(err)) < 0) {
        dprintf(2, "xensim cluster: %s\n", err);
        _exit(126);
    }
    host_env(h);
    execv(argv[0], argv);
    dprintf(2, "xensim cluster: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void show_log_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char lines[8][256];
    unsigned n = 0;
    while (fgets(lines[n % 8], sizeof(lines[0]), f))
        n++;
    fclose(f);
    for (unsigned i = n > 8 ? n - 8 : 0; i < n; i++)
        fprintf(stderr, "    %s", lines[i % 8]);
}

/* Whether a process `cluster up` just started (*pid: WHAT, "host NAME" or
 * "netbusd on host NAME") has exited already; then says so with the tail of
 * its log, DIR/LOGNAME, and forgets it (*pid = 0). */
static bool exited_at_start(long long *pid, const char *what, const char *name,
                            const char *dir, const char *logname)
{
    int st;
    if (waitpid((pid_t)*pid, &st, WNOHANG) != (pid_t)*pid)
        return false;
    *pid = 0;
    fprintf(stderr, "xensim cluster up: %s %s exited at start; its log (%s/%s):\n",
            what, name, dir, logname);
    char log[PATH_MAX + 16];
    snprintf(log, sizeof(log), "%s/%s", dir, logname);
    show_log_tail(log);
    return true;
}

/* --- cluster.json ------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static int cluster_save(const struct cluster *c)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 40];
    snprintf(path, sizeof(path), "%s/" CL_JSON, c->dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "xensim %s: %s: %s\n", cl_cmd, tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"version\": 1,\n  \"mode\": \"%s\",\n  \"warning\": ",
            c->netns ? "netns" : "loopback");
    json_str(f, c->warning);
    fprintf(f, ",\n  \"dir\": ");
    json_str(f, c->dir);
    fprintf(f, ",\n  \"subnet\": ");
    json_str(f, c->subnet);
    fprintf(f, ",\n  \"hub\": ");
    json_str(f, c->hub);
    fprintf(f, ",\n  \"hosts\": [");
    for (unsigned i = 0; i < c->nhosts; i++) {
        const struct cl_host *h = &c->hosts[i];
        fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
        json_str(f, h->name);
        fprintf(f, ", \"netns\": ");
        json_str(f, h->netns);
        fprintf(f, ", \"veth\": ");
        json_str(f, h->veth);
        fprintf(f, ", \"address\": ");
        json_str(f, h->addr);
        fprintf(f, ", \"dir\": ");
        json_str(f, h->dir);
        fprintf(f, ", \"pid\": %lld, \"start\": %lld, \"netbusd_pid\": %lld, "
                "\"netbusd_start\": %lld}", h->pid, h->start, h->nb_pid,
                h->nb_start);
    }
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        fprintf(stderr, "xensim %s: writing %s: %s\n", cl_cmd, path,
                strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* A reader for the JSON cluster_save writes: objects, arrays of objects,
 * strings, integers, true/false/null. */
struct jp {
    const char *p, *end;
};

static void jws(struct jp *j)
{
    while (j->p < j->end && isspace((unsigned char)*j->p))
        j->p++;
}

static bool jlit(struct jp *j, char ch)
{
    jws(j);
    if (j->p < j->end && *j->p == ch) {
        j->p++;
        return true;
    }
    return false;
}

static int jstring(struct jp *j, char *out, size_t n)
{
    if (!jlit(j, '"'))
        return -1;
    size_t used = 0;
    while (j->p < j->end && *j->p != '"') {
        char ch = *j->p++;
        if (ch == '\\') {
            if (j->p >= j->end)
                return -1;
            ch = *j->p++;
            if (ch == 'u') {
                if (j->end - j->p < 4)
                    return -1;
                char hex[5] = { j->p[0], j->p[1], j->p[2], j->p[3], 0 };
                ch = (char)strtol(hex, NULL, 16);
                j->p += 4;
            } else if (ch == 'n') {
                ch = '\n';
            } else if (ch == 't') {
                ch = '\t';
            }
        }
        if (used + 1 >= n)
            return -1;
        out[used++] = ch;
    }
    if (j->p >= j->end)
        return -1;
    j->p++;
    out[used] = 0;
    return 0;
}

static int jnumber(struct jp *j, long long *v)
{
    jws(j);
    char *e;
    errno = 0;
    *v = strtoll(j->p, &e, 10);
    if (e == j->p || errno)
        return -1;
    j->p = e;
    return 0;
}

/* Skips a scalar value it does not know. */
static int jskip(struct jp *j)
{
    jws(j);
    if (j->p < j->end && *j->p == '"') {
        char tmp[PATH_MAX];
        return jstring(j, tmp, sizeof(tmp));
    }
    static const char *words[] = { "true", "false", "null" };
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i], n) == 0) {
            j->p += n;
            return 0;
        }
    }
    long long v;
    return jnumber(j, &v);
}

static int jhost(struct jp *j, struct cl_host *h)
{
    memset(h, 0, sizeof(*h));
    if (!jlit(j, '{'))
        return -1;
    if (jlit(j, '}'))
        return 0;
    do {
        char key[32];
        if (jstring(j, key, sizeof(key)) < 0 || !jlit(j, ':'))
            return -1;
        struct { const char *k; char *s; size_t n; } strs[] = {
            { "name", h->name, sizeof(h->name) },
            { "netns", h->netns, sizeof(h->netns) },
            { "veth", h->veth, sizeof(h->veth) },
            { "address", h->addr, sizeof(h->addr) },
            { "dir", h->dir, sizeof(h->dir) },
        };
        struct { const char *k; long long *v; } nums[] = {
            { "pid", &h->pid }, { "start", &h->start },
            { "netbusd_pid", &h->nb_pid }, { "netbusd_start", &h->nb_start },
        };
        int rc = 1;
        for (size_t i = 0; rc == 1 && i < sizeof(strs) / sizeof(strs[0]); i++)
            if (strcmp(key, strs[i].k) == 0)
                rc = jstring(j, strs[i].s, strs[i].n);
        for (size_t i = 0; rc == 1 && i < sizeof(nums) / sizeof(nums[0]); i++)
            if (strcmp(key, nums[i].k) == 0)
                rc = jnumber(j, nums[i].v);
        if (rc == 1)
            rc = jskip(j);
        if (rc < 0)
            return -1;
    } while (jlit(j, ','));
    return jlit(j, '}') ? 0 : -1;
}

/* Loads DIR/cluster.json. Returns 0, or -1 after saying why (1 = none). */
static int cluster_load(const char *dir, struct cluster *c)
{
    memset(c, 0, sizeof(*c));
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/" CL_JSON, dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "xensim %s: no cluster at %s (%s: %s); start one "
                "with `xensim cluster up`\n", cl_cmd, dir, path, strerror(errno));
        return -1;
    }
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    struct jp j = { buf, buf + n };
    char mode[16] = "";
    if (!jlit(&j, '{'))
        goto bad;
    do {
        char key[32];
        if (jstring(&j, key, sizeof(key)) < 0 || !jlit(&j, ':'))
            goto bad;
        int rc;
        if (strcmp(key, "mode") == 0)
            rc = jstring(&j, mode, sizeof(mode));
        else if (strcmp(key, "warning") == 0)
            rc = jstring(&j, c->warning, sizeof(c->warning));
        else if (strcmp(key, "dir") == 0)
            rc = jstring(&j, c->dir, sizeof(c->dir));
        else if (strcmp(key, "subnet") == 0)
            rc = jstring(&j, c->subnet, sizeof(c->subnet));
        else if (strcmp(key, "hub") == 0)
            rc = jstring(&j, c->hub, sizeof(c->hub));
        else if (strcmp(key, "hosts") == 0) {
            rc = jlit(&j, '[') ? 0 : -1;
            if (rc == 0 && !jlit(&j, ']')) {
                do {
                    if (c->nhosts == CL_MAX_HOSTS ||
                        jhost(&j, &c->hosts[c->nhosts]) < 0)
                        goto bad;
                    c->nhosts++;
                } while (jlit(&j, ','));
                rc = jlit(&j, ']') ? 0 : -1;
            }
        } else
            rc = jskip(&j);
        if (rc < 0)
            goto bad;
    } while (jlit(&j, ','));
    if (!jlit(&j, '}'))
        goto bad;
    if (strcmp(mode, "netns") != 0 && strcmp(mode, "loopback") != 0)
        goto bad;
    c->netns = strcmp(mode, "netns") == 0;
    if (!*c->dir)
        snprintf(c->dir, sizeof(c->dir), "%s", dir);
    return 0;
bad:
    fprintf(stderr, "xensim %s: %s is not a cluster file this xensim "
            "understands\n", cl_cmd, path);
    return -1;
}

static const struct cl_host *cluster_host(const struct cluster *c,
                                          const char *name)
{
    for (unsigned i = 0; i < c->nhosts; i++)
        if (strcmp(c->hosts[i].name, name) == 0)
            return &c->hosts[i];
    fprintf(stderr, "xensim %s: no host '%s' in the cluster at %s (hosts:",
            cl_cmd, name, c->dir);
    for (unsigned i = 0; i < c->nhosts; i++)
        fprintf(stderr, " %s", c->hosts[i].name);
    fprintf(stderr, ")\n");
    return NULL;
}

/* --- processes in a namespace ------------------------------------------- */

/* Adds to pids[] (capacity cap) the processes whose network namespace is
 * ns. Returns the new count. */
static unsigned netns_pids(const char *ns, long long *pids, unsigned n,
                           unsigned cap)
{
    char path[PATH_MAX];
    struct stat want, st;
    snprintf(path, sizeof(path), CL_NETNS_RUN "/%s", ns);
    if (stat(path, &want) < 0)
        return n;
    DIR *d = opendir("/proc");
    if (!d)
        return n;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/ns/net", e->d_name);
        if (stat(path, &st) == 0 && st.st_ino == want.st_ino &&
            st.st_dev == want.st_dev)
            pids[n++] = strtoll(e->d_name, NULL, 10);
    }
    closedir(d);
    return n;
}

struct victim {
    long long pid, start;
};

/* SIGTERM to each, wait up to timeout; SIGKILL the rest, wait 3 s more.
 * Returns how many needed SIGKILL. */
static unsigned stop_all(struct victim *v, unsigned n, double timeout)
{
    for (unsigned i = 0; i < n; i++)
        if (proc_alive(v[i].pid, v[i].start))
            kill((pid_t)v[i].pid, SIGTERM);
    unsigned killed = 0;
    for (int round = 0; round < 2; round++) {
        double deadline = now_s() + (round == 0 ? timeout : 3.0);
        for (;;) {
            unsigned left = 0;
            for (unsigned i = 0; i < n; i++) {
                if (!proc_alive(v[i].pid, v[i].start))
                    continue;
                left++;
                waitpid((pid_t)v[i].pid, NULL, WNOHANG); /* if ours */
            }
            if (left == 0 || now_s() >= deadline)
                break;
            usleep(20000);
        }
        if (round == 0)
            for (unsigned i = 0; i < n; i++)
                if (proc_alive(v[i].pid, v[i].start)) {
                    kill((pid_t)v[i].pid, SIGKILL);
                    killed++;
                }
    }
    return killed;
}

/* Stops every process of the cluster and removes its namespaces. Returns 0,
 * or -1 if something could not be removed. */
static int cluster_teardown(const struct cluster *c, double timeout, bool verbose)
{
    enum { CAP = 4096 };
    static struct victim first[CAP], hosts[CL_MAX_HOSTS];
    static long long pids[CAP];
    unsigned nfirst = 0, nhosts = 0;
    /* Phase 1: netbusd and everything else in the namespaces; phase 2: the
     * xensim hosts, so the others still had their xenstore while stopping. */
    for (unsigned i = 0; i < c->nhosts; i++) {
        const struct cl_host *h = &c->hosts[i];
        if (proc_alive(h->pid, h->start))
            hosts[nhosts++] = (struct victim){ h->pid, h->start };
        if (proc_alive(h->nb_pid, h->nb_start) && nfirst < CAP)
            first[nfirst++] = (struct victim){ h->nb_pid, h->nb_start };
    }
    if (c->netns) {
        unsigned np = 0;
        for (unsigned i = 0; i < c->nhosts; i++)
            if (*c->hosts[i].netns)
                np = netns_pids(c->hosts[i].netns, pids, np, CAP);
        if (*c->hub)
            np = netns_pids(c->hub, pids, np, CAP);
        for (unsigned i = 0; i < np && nfirst < CAP; i++) {
            bool is_host = false;
            for (unsigned k = 0; k < nhosts; k++)
                is_host |= hosts[k].pid == pids[i];
            for (unsigned k = 0; k < nfirst; k++)
                is_host |= first[k].pid == pids[i];
            if (!is_host && pids[i] != getpid())
                first[nfirst++] = (struct victim){ pids[i], proc_start(pids[i]) };
        }
    }
    unsigned killed = stop_all(first, nfirst, timeout / 2);
    killed += stop_all(hosts, nhosts, timeout / 2);
    int rc = 0;
    if (c->netns) {
        char path[PATH_MAX];
        for (unsigned i = 0; i <= c->nhosts; i++) {
            const char *ns = i < c->nhosts ? c->hosts[i].netns : c->hub;
            snprintf(path, sizeof(path), CL_NETNS_RUN "/%s", ns);
            if (!*ns || access(path, F_OK) < 0)
                continue;
            if (IP("netns", "delete", (char *)ns) < 0)
                rc = -1;
        }
    }
    if (verbose)
        printf("cluster down: %u process%s stopped%s%s\n", nfirst + nhosts,
               nfirst + nhosts == 1 ? "" : "es", killed ? ", some with SIGKILL" : "",
               c->netns ? ", namespaces removed" : "");
    return rc;
}

/* --- subcommands -------------------------------------------------------- */

static const char *cluster_dir_default(void)
{
    const char *d = getenv("XENSIM_CLUSTER_DIR");
    return d && *d ? d : NULL;
}

/* Parses "a.b.c.d/len": network (host order) and prefix length. */
static int parse_subnet(const char *s, uint32_t *net, unsigned *len)
{
    char buf[32];
    const char *slash = strchr(s, '/');
    if (!slash || (size_t)(slash - s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, (size_t)(slash - s));
    buf[slash - s] = 0;
    struct in_addr a;
    char *end;
    unsigned long l = strtoul(slash + 1, &end, 10);
    if (inet_pton(AF_INET, buf, &a) != 1 || *end || !slash[1] || l < 8 || l > 30)
        return -1;
    *len = (unsigned)l;
    *net = ntohl(a.s_addr) & (0xffffffffu << (32 - l));
    return 0;
}

static void addr_str(uint32_t host_order, char *out)
{
    struct in_addr a = { .s_addr = htonl(host_order) };
    inet_ntop(AF_INET, &a, out, INET_ADDRSTRLEN);
}

static int cmd_up(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "hosts", required_argument, NULL, 'H' },
        { "subnet", required_argument, NULL, 's' },
        { "loopback", no_argument, NULL, 'L' },
        { "netbusd", required_argument, NULL, 'n' },
        { "netbusd-arg", required_argument, NULL, 'a' },
        { "dom0-memory", required_argument, NULL, 'm' },
        { "log-level", required_argument, NULL, 'l' },
        { "timeout", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 },
    };
    const char *dir = cluster_dir_default(), *hosts_arg = NULL;
    const char *subnet = "10.77.0.0/24", *netbusd = NULL, *level = "warn";
    const char *dom0_mib = "1024";
    const char *nbargs[CL_MAX_NBARGS];
    unsigned nnbargs = 0;
    bool loopback = false;
    unsigned long timeout = 10;
    int o;
    while ((o = getopt_long(argc, argv, "d:H:s:Ln:a:m:l:t:", opts, NULL)) != -1) {
        char *end;
        switch (o) {
        case 'd': dir = optarg; break;
        case 'H': hosts_arg = optarg; break;
        case 's': subnet = optarg; break;
        case 'L': loopback = true; break;
        case 'n': netbusd = optarg; break;
        case 'm': dom0_mib = optarg; break;
        case 'l': level = optarg; break;
        case 'a':
            if (nnbargs == CL_MAX_NBARGS) {
                fprintf(stderr, "xensim cluster up: at most %d --netbusd-arg\n",
                        CL_MAX_NBARGS);
                return 2;
            }
            nbargs[nnbargs++] = optarg;
            break;
        case 't':
            timeout = strtoul(optarg, &end, 10);
            if (*end || !*optarg || timeout == 0 || timeout > 3600) {
                fprintf(stderr, "xensim cluster up: --timeout %s: want 1..3600 s\n",
                        optarg);
                return 2;
            }
            break;
        default:
            die_usage();
            return 2;
        }
    }
    if (!dir || !hosts_arg || optind != argc) {
        fprintf(stderr, "xensim cluster up: %s\n", optind != argc
                ? "unexpected argument" : !dir
                ? "no --dir given (or set XENSIM_CLUSTER_DIR)"
                : "--hosts NAME,NAME,... is required");
        die_usage();
        return 2;
    }
    if (netbusd && access(netbusd, X_OK) < 0) {
        fprintf(stderr, "xensim cluster up: --netbusd %s: %s\n", netbusd,
                strerror(errno));
        return 1;
    }
    uint32_t net;
    unsigned plen;
    if (parse_subnet(subnet, &net, &plen) < 0) {
        fprintf(stderr, "xensim cluster up: --subnet %s: want an IPv4 "
                "network A.B.C.D/LEN with LEN 8..30\n", subnet);
        return 2;
    }

    static struct cluster cl;
    struct cluster *c = &cl;
    memset(c, 0, sizeof(*c));
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "xensim cluster up: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char absdir[PATH_MAX];
    if (!realpath(dir, absdir)) {
        fprintf(stderr, "xensim cluster up: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    memcpy(c->dir, absdir, sizeof(c->dir));
    char jpath[PATH_MAX + 32];
    snprintf(jpath, sizeof(jpath), "%s/" CL_JSON, absdir);
    if (access(jpath, F_OK) == 0) {
        fprintf(stderr, "xensim cluster up: %s exists: a cluster is up there "
                "(or was not taken down); run `xensim cluster down --dir %s`\n",
                jpath, absdir);
        return 1;
    }

    /* Hosts: names, directories. */
    char list[1024];
    snprintf(list, sizeof(list), "%s", hosts_arg);
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!valid_host_name(t)) {
            fprintf(stderr, "xensim cluster up: host name '%s': use 1-%d "
                    "characters a-z 0-9 - _, starting with a letter or digit\n",
                    t, CL_NAME_MAX);
            return 2;
        }
        for (unsigned i = 0; i < c->nhosts; i++)
            if (strcmp(c->hosts[i].name, t) == 0) {
                fprintf(stderr, "xensim cluster up: host '%s' given twice\n", t);
                return 2;
            }
        if (c->nhosts == CL_MAX_HOSTS) {
            fprintf(stderr, "xensim cluster up: at most %d hosts\n", CL_MAX_HOSTS);
            return 2;
        }
        struct cl_host *h = &c->hosts[c->nhosts++];
        snprintf(h->name, sizeof(h->name), "%s", t);
        if (strlen(absdir) + 1 + strlen(t) > CL_DIR_MAX) {
            fprintf(stderr, "xensim cluster up: %s is too long a path for host "
                    "directories (their unix sockets); use a shorter --dir\n",
                    absdir);
            return 1;
        }
        snprintf(h->dir, sizeof(h->dir), "%s/%s", absdir, t);
    }
    if (c->nhosts == 0) {
        fprintf(stderr, "xensim cluster up: --hosts names no host\n");
        return 2;
    }
    if (c->nhosts + 2 > (1u << (32 - plen))) {
        fprintf(stderr, "xensim cluster up: --subnet %s has no room for %u "
                "hosts\n", subnet, c->nhosts);
        return 2;
    }
    snprintf(c->subnet, sizeof(c->subnet), "%s", subnet);
    uint32_t hash = fnv1a(absdir);

    /* Namespaces, or the loopback fallback. */
    char why[600] = "";
    if (loopback) {
        snprintf(why, sizeof(why), "--loopback was given");
    } else if (geteuid() != 0) {
        snprintf(why, sizeof(why), "not running as root");
    } else {
        char *probe[] = { (char *)"ip", (char *)"-V", NULL };
        char out[256];
        if (run_prog(probe, out, sizeof(out), 5) != 0)
            snprintf(why, sizeof(why), "iproute2's ip cannot be run (%s)", out);
    }
    c->netns = !*why;
    if (c->netns) {
        snprintf(c->hub, sizeof(c->hub), "nbsim-%08x.hub", hash);
        for (unsigned i = 0; i < c->nhosts; i++) {
            struct cl_host *h = &c->hosts[i];
            char nm[CL_NAME_MAX + 1];
            memcpy(nm, h->name, sizeof(nm));
            snprintf(h->netns, sizeof(h->netns), "nbsim-%08x-%s", hash, nm);
            snprintf(h->veth, sizeof(h->veth), "vh%u", i);
            addr_str(net + 1 + i, h->addr);
        }
        char stale[PATH_MAX];
        snprintf(stale, sizeof(stale), CL_NETNS_RUN "/nbsim-%08x.hub", hash);
        if (access(stale, F_OK) == 0) {
            fprintf(stderr, "xensim cluster up: namespace nbsim-%08x.hub of an "
                    "earlier cluster on %s is still there, without %s; remove "
                    "its namespaces: ip netns list | grep nbsim-%08x | xargs "
                    "-n1 ip netns delete\n", hash, absdir, jpath, hash);
            return 1;
        }
        /* The hub first: if it cannot be made, nothing else was. */
        char *argv_add[] = { (char *)"ip", (char *)"netns", (char *)"add",
                             c->hub, NULL };
        char out[512];
        if (run_prog(argv_add, out, sizeof(out), 10) != 0) {
            snprintf(why, sizeof(why), "`ip netns add nbsim-%08x.hub` failed: "
                     "%.400s", hash, *out ? out : "(no message)");
            c->netns = false;
            c->hub[0] = 0;
        }
    }
    if (!c->netns) {
        snprintf(c->warning, sizeof(c->warning), "network namespaces could not "
                 "be made (%s): hosts share the root namespace on loopback "
                 "addresses; link faults are not available", why);
        fprintf(stderr,
                "xensim cluster up: WARNING: NO NETWORK NAMESPACES. %s.\n"
                "xensim cluster up: WARNING: traffic between hosts goes over "
                "loopback, not veth; `xensim cluster link` will refuse.\n",
                c->warning);
        snprintf(c->subnet, sizeof(c->subnet), "127.%u.%u.0/24",
                 1 + (hash >> 8) % 250, 1 + hash % 250);
        for (unsigned i = 0; i < c->nhosts; i++) {
            struct cl_host *h = &c->hosts[i];
            h->netns[0] = h->veth[0] = 0;
            addr_str(127u << 24 | (1 + (hash >> 8) % 250) << 16 |
                     (1 + hash % 250) << 8 | (1 + i), h->addr);
        }
    }
    /* From here on a failure tears down what exists. */
    if (cluster_save(c) < 0)
        goto fail;
    if (c->netns) {
        char plen_s[8], cidr[INET_ADDRSTRLEN + 8];
        snprintf(plen_s, sizeof(plen_s), "%u", plen);
        if (IP("-n", c->hub, "link", "set", "lo", "up") < 0 ||
            IP("-n", c->hub, "link", "add", "br0", "type", "bridge") < 0 ||
            IP("-n", c->hub, "link", "set", "br0", "up") < 0)
            goto fail;
        for (unsigned i = 0; i < c->nhosts; i++) {
            struct cl_host *h = &c->hosts[i];
            snprintf(cidr, sizeof(cidr), "%s/%s", h->addr, plen_s);
            if (IP("netns", "add", h->netns) < 0 ||
                IP("-n", h->netns, "link", "set", "lo", "up") < 0 ||
                IP("-n", c->hub, "link", "add", h->veth, "type", "veth",
                   "peer", "name", "eth0", "netns", h->netns) < 0 ||
                IP("-n", c->hub, "link", "set", h->veth, "master", "br0") < 0 ||
                IP("-n", c->hub, "link", "set", h->veth, "up") < 0 ||
                IP("-n", h->netns, "addr", "add", cidr, "dev", "eth0") < 0 ||
                IP("-n", h->netns, "link", "set", "eth0", "up") < 0)
                goto fail;
        }
    }

    /* The hosts. */
    for (unsigned i = 0; i < c->nhosts; i++) {
        struct cl_host *h = &c->hosts[i];
        if (mkdir(h->dir, 0755) < 0 && errno != EEXIST) {
            fprintf(stderr, "xensim cluster up: %s: %s\n", h->dir, strerror(errno));
            goto fail;
        }
        char log[PATH_MAX + 16];
        snprintf(log, sizeof(log), "%s/host.log", h->dir);
        char *av[] = { (char *)"/proc/self/exe", (char *)"host", (char *)"--dir",
                       h->dir, (char *)"--log-level", (char *)level,
                       (char *)"--dom0-memory", (char *)dom0_mib, NULL };
        pid_t pid = spawn_in_host(c, h, av, log);
        if (pid < 0)
            goto fail;
        h->pid = pid;
        h->start = proc_start(pid);
    }
    if (cluster_save(c) < 0)
        goto fail;
    double deadline = now_s() + (double)timeout;
    for (unsigned i = 0; i < c->nhosts; i++) {
        struct cl_host *h = &c->hosts[i];
        char err[512];
        while (!xensim_host_answers(h->dir, err, sizeof(err))) {
            if (exited_at_start(&h->pid, "host", h->name, h->dir, "host.log"))
                goto fail;
            if (now_s() >= deadline) {
                fprintf(stderr, "xensim cluster up: host %s did not answer "
                        "within %lu s: %s\n", h->name, timeout, err);
                goto fail;
            }
            usleep(20000);
        }
    }

    /* netbusd on each host, if asked. */
    if (netbusd) {
        char abs_nb[PATH_MAX];
        if (!realpath(netbusd, abs_nb)) {
            fprintf(stderr, "xensim cluster up: %s: %s\n", netbusd, strerror(errno));
            goto fail;
        }
        for (unsigned i = 0; i < c->nhosts; i++) {
            struct cl_host *h = &c->hosts[i];
            static char expanded[CL_MAX_NBARGS][PATH_MAX];
            char pidfile[PATH_MAX + 16], log[PATH_MAX + 16];
            snprintf(pidfile, sizeof(pidfile), "%s/netbusd.pid", h->dir);
            snprintf(log, sizeof(log), "%s/netbusd.log", h->dir);
            char *av[CL_MAX_NBARGS + 8];
            unsigned n = 0;
            av[n++] = abs_nb;
            av[n++] = (char *)"--xensim-dir";
            av[n++] = h->dir;
            av[n++] = (char *)"--pidfile";
            av[n++] = pidfile;
            for (unsigned k = 0; k < nnbargs; k++) {
                /* %h host name, %a address, %d host dir, %% a percent */
                size_t used = 0;
                char *out = expanded[k];
                for (const char *p = nbargs[k]; *p && used + 1 < PATH_MAX; p++) {
                    const char *sub = NULL;
                    char one[2] = { *p, 0 };
                    if (*p == '%' && p[1]) {
                        p++;
                        sub = *p == 'h' ? h->name : *p == 'a' ? h->addr
                            : *p == 'd' ? h->dir : *p == '%' ? "%" : NULL;
                        if (!sub) {
                            fprintf(stderr, "xensim cluster up: --netbusd-arg "
                                    "%s: unknown %%%c (want %%h %%a %%d %%%%)\n",
                                    nbargs[k], *p);
                            goto fail;
                        }
                    } else
                        sub = one;
                    size_t sl = strlen(sub);
                    if (used + sl >= PATH_MAX)
                        break;
                    memcpy(out + used, sub, sl);
                    used += sl;
                }
                out[used] = 0;
                av[n++] = out;
            }
            av[n] = NULL;
            pid_t pid = spawn_in_host(c, h, av, log);
            if (pid < 0)
                goto fail;
            h->nb_pid = pid;
            h->nb_start = proc_start(pid);
        }
        cluster_save(c);
        usleep(300000);
        for (unsigned i = 0; i < c->nhosts; i++) {
            struct cl_host *h = &c->hosts[i];
            if (exited_at_start(&h->nb_pid, "netbusd on host", h->name, h->dir,
                                "netbusd.log"))
                goto fail;
        }
    }
    if (cluster_save(c) < 0)
        goto fail;
    for (unsigned i = 0; i < c->nhosts; i++)
        printf("%s %s %s %s\n", c->hosts[i].name, c->hosts[i].addr,
               c->netns ? c->hosts[i].netns : "-", c->hosts[i].dir);
    return 0;
fail:
    fprintf(stderr, "xensim cluster up: failed; taking down what was set up\n");
    cluster_teardown(c, 4, false);
    unlink(jpath);
    return 1;
}

static int dir_and_rest(int argc, char **argv, const char *usage,
                        const char **dir, double *timeout)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "timeout", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 },
    };
    *dir = cluster_dir_default();
    int o;
    /* '+': for exec, CMD's options are its own. */
    while ((o = getopt_long(argc, argv, "+d:t:", opts, NULL)) != -1) {
        char *end;
        if (o == 'd')
            *dir = optarg;
        else if (o == 't' && timeout &&
                 (*timeout = strtod(optarg, &end)) > 0 && !*end && *timeout <= 3600)
            continue;
        else {
            fprintf(stderr, "usage: %s\n", usage);
            return -1;
        }
    }
    if (!*dir) {
        fprintf(stderr, "xensim %s: no --dir given (or set XENSIM_CLUSTER_DIR)\n"
                "usage: %s\n", cl_cmd, usage);
        return -1;
    }
    return 0;
}

static int cmd_down(int argc, char **argv)
{
    const char *usage = "xensim cluster down --dir DIR [--timeout SEC]";
    const char *dir;
    double timeout = 10;
    if (dir_and_rest(argc, argv, usage, &dir, &timeout) < 0)
        return 2;
    if (optind != argc) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    static struct cluster c;
    if (cluster_load(dir, &c) < 0)
        return 1;
    int rc = cluster_teardown(&c, timeout, true);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/" CL_JSON, dir);
    if (rc == 0)
        unlink(path);
    return rc < 0 ? 1 : 0;
}

static int cmd_list(int argc, char **argv)
{
    const char *usage = "xensim cluster list --dir DIR";
    const char *dir;
    if (dir_and_rest(argc, argv, usage, &dir, NULL) < 0)
        return 2;
    if (optind != argc) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    static struct cluster c;
    if (cluster_load(dir, &c) < 0)
        return 1;
    if (!c.netns)
        fprintf(stderr, "xensim cluster list: WARNING: loopback mode: %s\n",
                c.warning);
    printf("%-16s %-15s %-6s %-8s %-28s %s\n", "HOST", "ADDRESS", "HOST",
           "NETBUSD", "NETNS", "DIR");
    for (unsigned i = 0; i < c.nhosts; i++) {
        const struct cl_host *h = &c.hosts[i];
        printf("%-16s %-15s %-6s %-8s %-28s %s\n", h->name, h->addr,
               proc_alive(h->pid, h->start) ? "up" : "down",
               !h->nb_pid ? "-" : proc_alive(h->nb_pid, h->nb_start) ? "up" : "down",
               *h->netns ? h->netns : "-", h->dir);
    }
    return 0;
}

/* The cluster at dir (into c) and its host name; NULL after saying why. */
static const struct cl_host *cluster_load_host(const char *dir, const char *name,
                                               struct cluster *c)
{
    return cluster_load(dir, c) < 0 ? NULL : cluster_host(c, name);
}

/* addr HOST / dir HOST / netns HOST: one field, for scripts. */
static int cmd_field(int argc, char **argv)
{
    const char *what = argv[0];
    char usage[128];
    snprintf(usage, sizeof(usage), "xensim cluster %s --dir DIR HOST", what);
    const char *dir;
    if (dir_and_rest(argc, argv, usage, &dir, NULL) < 0)
        return 2;
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    static struct cluster c;
    const struct cl_host *h = cluster_load_host(dir, argv[optind], &c);
    if (!h)
        return 1;
    if (strcmp(what, "netns") == 0 && !c.netns) {
        fprintf(stderr, "xensim cluster netns: loopback mode: %s\n", c.warning);
        return 1;
    }
    puts(strcmp(what, "addr") == 0 ? h->addr
         : strcmp(what, "dir") == 0 ? h->dir : h->netns);
    return 0;
}

static int cmd_exec(int argc, char **argv)
{
    const char *usage = "xensim cluster exec --dir DIR HOST [--] CMD [ARG...]";
    const char *dir;
    if (dir_and_rest(argc, argv, usage, &dir, NULL) < 0)
        return 2;
    if (optind >= argc) {
        fprintf(stderr, "xensim cluster exec: no host given\nusage: %s\n", usage);
        return 2;
    }
    const char *name = argv[optind++];
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind >= argc) {
        fprintf(stderr, "xensim cluster exec: no command given\nusage: %s\n", usage);
        return 2;
    }
    static struct cluster c;
    const struct cl_host *h = cluster_load_host(dir, name, &c);
    if (!h)
        return 1;
    char err[512];
    if (c.netns && enter_netns(h->netns, err, sizeof(err)) < 0) {
        fprintf(stderr, "xensim cluster exec: %s\n", err);
        return 1;
    }
    host_env(h);
    execvp(argv[optind], argv + optind);
    fprintf(stderr, "xensim cluster exec: cannot run %s: %s\n", argv[optind],
            strerror(errno));
    return 127;
}

static int cmd_link(int argc, char **argv)
{
    const char *usage = "xensim cluster link --dir DIR HOST up|down";
    const char *dir;
    if (dir_and_rest(argc, argv, usage, &dir, NULL) < 0)
        return 2;
    if (optind + 2 != argc || (strcmp(argv[optind + 1], "up") != 0 &&
                               strcmp(argv[optind + 1], "down") != 0)) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    static struct cluster c;
    const struct cl_host *h = cluster_load_host(dir, argv[optind], &c);
    if (!h)
        return 1;
    if (!c.netns) {
        fprintf(stderr, "xensim cluster link: the cluster at %s runs on "
                "loopback addresses (%s); a link cannot be taken down\n",
                c.dir, c.warning);
        return 1;
    }
    /* The hub's end, as if the cable were pulled at the switch: the host
     * keeps its address and routes and sees its carrier go. */
    return IP("-n", c.hub, "link", "set", (char *)h->veth,
              argv[optind + 1]) < 0 ? 1 : 0;
}

static void cluster_usage(FILE *f)
{
    fputs(
"usage: xensim cluster COMMAND [--dir DIR] ...   (DIR: $XENSIM_CLUSTER_DIR)\n"
"  up --dir DIR --hosts A,B,... [--subnet CIDR] [--loopback]\n"
"     [--netbusd PATH [--netbusd-arg ARG]...] [--dom0-memory MiB]\n"
"     [--log-level LEVEL] [--timeout SEC]\n"
"        one network namespace per host, veth to a bridge in a hub\n"
"        namespace, addresses from CIDR (default 10.77.0.0/24; first host\n"
"        .1), `xensim host --dir DIR/HOST` in each, netbusd in each if\n"
"        asked (ARG: %h host, %a address, %d host dir); layout in\n"
"        DIR/cluster.json. Without namespaces: loopback addresses, loudly\n"
"  down --dir DIR [--timeout SEC]\n"
"        stop every process in the hosts' namespaces, delete them\n"
"  list --dir DIR\n"
"        one line per host: name, address, host/netbusd state, netns, dir\n"
"  addr | dir | netns --dir DIR HOST\n"
"        print that field of HOST\n"
"  exec --dir DIR HOST [--] CMD [ARG...]\n"
"        run CMD in HOST's namespace as its dom0 (XENSIM_DIR,\n"
"        XENSTORED_PATH, XENSIM_CLUSTER_HOST, XENSIM_CLUSTER_ADDR set)\n"
"  link --dir DIR HOST up|down\n"
"        connect / disconnect HOST's link to the bridge\n", f);
}

static void die_usage(void)
{
    cluster_usage(stderr);
}

int xensim_cmd_cluster(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        cluster_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
    } cmds[] = {
        { "up", cmd_up }, { "down", cmd_down }, { "list", cmd_list },
        { "addr", cmd_field }, { "dir", cmd_field }, { "netns", cmd_field },
        { "exec", cmd_exec }, { "link", cmd_link },
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[1], cmds[i].name) == 0) {
            static char label[32];
            snprintf(label, sizeof(label), "cluster %s", cmds[i].name);
            cl_cmd = label;
            optind = 1;
            return cmds[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "xensim cluster: unknown command '%s'\n", argv[1]);
    cluster_usage(stderr);
    return 2;
}
