/* netbusd: the netbus backend daemon. One epoll loop (backend/core/evloop)
 * owns every fd: the xenstore connection and its watches (backend/core/xenbus),
 * the device classes' rings and targets, and a signalfd. Configuration comes
 * from a `key = value` file (/etc/netbus/netbusd.conf unless --config names
 * another) with command-line options overriding it. */
#include "evloop.h"
#include "log.h"
#include "timeline.h"
#include "xenbus.h"
#include "xenif.h"

#include "backend/channel/channel.h"
#include "backend/channel/server.h"
#include "backend/vbd/vbd.h"
#include "backend/vusb/vusb.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define NETBUSD_VERSION "0.2"
#define DEFAULT_CONFIG "/etc/netbus/netbusd.conf"
#define DEFAULT_TYPES "vbd,qdisk,vusb"
#define MAX_TYPES 8
/* poll-max-us (evloop_set_poll_max_ns): the cap must cover a network round
 * trip to an export plus its work (35-45 us on the benchmark's veth link):
 * QEMU's 32 us would miss every reply. Measured on 2 cores
 * (tests/bench/channel.sh, interleaved runs): 4 KiB QD1 latency 75 -> 66 us
 * (read) and 80 -> 66 us (write), QD32 unchanged within noise, the LBE busy
 * for a whole core while a QD1 stream lasts and 0 when idle. */
#define POLL_MAX_US_DEFAULT 64
#define POLL_MAX_US_LIMIT 1000

/* The device classes built into this netbusd, by backend type. */
static const struct xenbus_class *const builtin_classes[] = {
    &vbd_class,
    &qdisk_class,
    &vusb_class,
    &qusb_class,
};
#define NUM_CLASSES (sizeof(builtin_classes) / sizeof(builtin_classes[0]))

/* ---- settings ----------------------------------------------------------- */

struct settings {
    enum xenif_kind xenif;
    char xensim_dir[PATH_MAX];
    char types[256];
    int log_level;
    bool use_syslog;
    char pidfile[PATH_MAX];
    unsigned poll_max_us;
    struct channel_settings ch;
};

/* Which settings the command line gave: those win over the file. */
struct cli_set {
    bool xenif, xensim_dir, types, log_level, syslog, pidfile, poll_max;
    bool name, aliases, listen, keys, encrypt, keepalive, io_timeout,
         reconnect_max;
};

static const char *const known_keys =
    "xenif, xensim-dir, types, log-level, syslog, pidfile, poll-max-us, name, "
    "aliases, listen, keys, encrypt, keepalive-ms, io-timeout-ms, "
    "reconnect-max-ms";


static const struct xenbus_class *class_by_type(const char *type, size_t len)
{
    for (size_t i = 0; i < NUM_CLASSES; i++)
        if (strlen(builtin_classes[i]->type) == len &&
            strncmp(builtin_classes[i]->type, type, len) == 0)
            return builtin_classes[i];
    return NULL;
}

static void available_types(char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NUM_CLASSES && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "",
                              builtin_classes[i]->type);
}

/* Checks a comma-separated list of backend types. 0, or -1 with why. */
static int check_types(const char *list, char *why, size_t whylen)
{
    char avail[256];
    available_types(avail, sizeof(avail));
    unsigned n = 0;
    const char *p = list;
    while (1) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            snprintf(why, whylen, "empty type in '%s' (expected a comma-"
                     "separated list of: %s)", list, avail);
            return -1;
        }
        if (!class_by_type(p, len)) {
            snprintf(why, whylen, "unknown type '%.*s' (this netbusd serves: "
                     "%s)", (int)len, p, avail);
            return -1;
        }
        for (const char *q = list; q < p;) {
            const char *c2 = strchr(q, ',');
            size_t l2 = (size_t)(c2 - q);
            if (l2 == len && strncmp(q, p, len) == 0) {
                snprintf(why, whylen, "type '%.*s' listed twice", (int)len, p);
                return -1;
            }
            q = c2 + 1;
        }
        if (++n > MAX_TYPES) {
            snprintf(why, whylen, "more than %d types", MAX_TYPES);
            return -1;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") ||
        !strcmp(v, "1")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") ||
        !strcmp(v, "0")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int parse_xenif(const char *v, enum xenif_kind *out)
{
    if (!strcmp(v, "xen"))
        *out = XENIF_XEN;
    else if (!strcmp(v, "xensim"))
        *out = XENIF_XENSIM;
    else if (!strcmp(v, "auto"))
        *out = XENIF_AUTO;
    else
        return -1;
    return 0;
}

static int copy_path(char *dst, size_t len, const char *v, char *why,
                     size_t whylen)
{
    if (strlen(v) >= len) {
        snprintf(why, whylen, "path too long");
        return -1;
    }
    if (*v && *v != '/') {
        snprintf(why, whylen, "'%s' is not an absolute path", v);
        return -1;
    }
    snprintf(dst, len, "%s", v);
    return 0;
}

static const char *const encrypt_names[] = { "no", "yes", "required" };

/* A number of milliseconds in [lo, hi]; 0 or -1. */
static int parse_ms(const char *v, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (!*v || *end || errno || *v == '-' || *v == '+' || n < lo || n > hi)
        return -1;
    *out = (unsigned)n;
    return 0;
}

/* The channel's settings (apply() below handles the rest). 1 if key is not
 * one of them, 0, or -1 with why. */
static int apply_channel(struct channel_settings *ch, const struct cli_set *only,
                         const char *key, const char *v, char *why,
                         size_t whylen)
{
    static const struct { const char *key; unsigned lo, hi; size_t off; }
        times[] = {
        { "keepalive-ms", 50, 600000,
          offsetof(struct channel_settings, keepalive_ms) },
        { "io-timeout-ms", 100, 86400000,
          offsetof(struct channel_settings, io_timeout_ms) },
        { "reconnect-max-ms", 100, 600000,
          offsetof(struct channel_settings, reconnect_max_ms) },
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        if (strcmp(key, times[i].key) != 0)
            continue;
        unsigned ms;
        if (parse_ms(v, times[i].lo, times[i].hi, &ms) < 0) {
            snprintf(why, whylen, "%s: '%s' is not a number of milliseconds "
                     "from %u to %u", key, v, times[i].lo, times[i].hi);
            return -1;
        }
        bool skip = only && (i == 0 ? only->keepalive : i == 1
                             ? only->io_timeout : only->reconnect_max);
        if (!skip)
            *(unsigned *)((char *)ch + times[i].off) = ms;
        return 0;
    }
    if (!strcmp(key, "name")) {
        if (!nb_name_ok(v, strlen(v))) {
            snprintf(why, whylen, "name: '%s' is not a netbus host name (1-64 "
                     "of A-Z a-z 0-9 . _ -)", v);
            return -1;
        }
        if (!only || !only->name)
            snprintf(ch->name, sizeof(ch->name), "%s", v);
    } else if (!strcmp(key, "aliases")) {
        if (strlen(v) >= sizeof(ch->aliases) || strpbrk(v, " \t")) {
            snprintf(why, whylen, "aliases: want a comma-separated list of "
                     "names and addresses, no spaces, under %zu characters",
                     sizeof(ch->aliases));
            return -1;
        }
        if (!only || !only->aliases)
            snprintf(ch->aliases, sizeof(ch->aliases), "%s", v);
    } else if (!strcmp(key, "listen")) {
        char host[256];
        unsigned port;
        if (strcmp(v, NB_LISTEN_AUTO) && strcmp(v, NB_LISTEN_OFF) &&
            (strlen(v) >= sizeof(ch->listen) ||
             nb_split_hostport(v, host, sizeof(host), &port) < 0)) {
            snprintf(why, whylen, "listen: '%s' is not auto, off, ADDR, "
                     "ADDR:PORT or [IPV6]:PORT", v);
            return -1;
        }
        if (!only || !only->listen)
            snprintf(ch->listen, sizeof(ch->listen), "%s", v);
    } else if (!strcmp(key, "keys")) {
        char inner[PATH_MAX + 64], tmp[PATH_MAX];
        if (copy_path(tmp, sizeof(tmp), v, inner, sizeof(inner)) < 0 || !*v) {
            snprintf(why, whylen, "keys: %s", *v ? inner : "empty path");
            return -1;
        }
        if (!only || !only->keys)
            snprintf(ch->keys, sizeof(ch->keys), "%s", tmp);
    } else if (!strcmp(key, "encrypt")) {
        int e = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(v, encrypt_names[i]))
                e = i;
        if (e < 0) {
            snprintf(why, whylen, "encrypt: '%s' is not one of no, yes, "
                     "required", v);
            return -1;
        }
        if (!only || !only->encrypt)
            ch->encrypt = (enum nb_encrypt)e;
    } else {
        return 1;
    }
    return 0;
}

/* Applies one setting; 0, or -1 with why (naming what is allowed). With
 * `only` non-NULL, settings the command line gave are skipped. */
static int apply(struct settings *s, const struct cli_set *only,
                 const char *key, const char *v, char *why, size_t whylen)
{
    if (!strcmp(key, "xenif")) {
        enum xenif_kind k;
        if (parse_xenif(v, &k) < 0) {
            snprintf(why, whylen, "xenif: '%s' is not one of xen, xensim, "
                     "auto", v);
            return -1;
        }
        if (!only || !only->xenif)
            s->xenif = k;
    } else if (!strcmp(key, "xensim-dir")) {
        char tmp[PATH_MAX], inner[PATH_MAX + 64];
        if (copy_path(tmp, sizeof(tmp), v, inner, sizeof(inner)) < 0) {
            snprintf(why, whylen, "xensim-dir: %s", inner);
            return -1;
        }
        if (!only || !only->xensim_dir)
            snprintf(s->xensim_dir, sizeof(s->xensim_dir), "%s", tmp);
    } else if (!strcmp(key, "types")) {
        char list[256];
        size_t o = 0;
        for (const char *p = v; *p && o + 1 < sizeof(list); p++)
            if (*p != ' ' && *p != '\t')
                list[o++] = *p;
        list[o] = '\0';
        if (strlen(v) >= sizeof(list)) {
            snprintf(why, whylen, "types: list too long");
            return -1;
        }
        char inner[512];
        if (check_types(list, inner, sizeof(inner)) < 0) {
            snprintf(why, whylen, "types: %s", inner);
            return -1;
        }
        if (!only || !only->types)
            snprintf(s->types, sizeof(s->types), "%s", list);
    } else if (!strcmp(key, "log-level")) {
        int lvl = log_level_parse(v);
        if (lvl < 0) {
            snprintf(why, whylen, "log-level: '%s' is not one of error, warn, "
                     "info, debug", v);
            return -1;
        }
        if (!only || !only->log_level)
            s->log_level = lvl;
    } else if (!strcmp(key, "syslog")) {
        bool b;
        if (parse_bool(v, &b) < 0) {
            snprintf(why, whylen, "syslog: '%s' is not one of yes, no (also "
                     "true/false, on/off, 1/0)", v);
            return -1;
        }
        if (!only || !only->syslog)
            s->use_syslog = b;
    } else if (!strcmp(key, "pidfile")) {
        char tmp[PATH_MAX], inner[PATH_MAX + 64];
        if (copy_path(tmp, sizeof(tmp), v, inner, sizeof(inner)) < 0) {
            snprintf(why, whylen, "pidfile: %s", inner);
            return -1;
        }
        if (!only || !only->pidfile)
            snprintf(s->pidfile, sizeof(s->pidfile), "%s", tmp);
    } else if (!strcmp(key, "poll-max-us")) {
        unsigned us;
        if (parse_ms(v, 0, POLL_MAX_US_LIMIT, &us) < 0) {
            snprintf(why, whylen, "poll-max-us: '%s' is not a number of "
                     "microseconds from 0 to %u", v, POLL_MAX_US_LIMIT);
            return -1;
        }
        if (!only || !only->poll_max)
            s->poll_max_us = us;
    } else {
        int rc = apply_channel(&s->ch, only, key, v, why, whylen);
        if (rc <= 0)
            return rc;
        snprintf(why, whylen, "unknown key '%s' (known keys: %s)", key,
                 known_keys);
        return -1;
    }
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
                 s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Reads a config file: `key = value` lines, `#` comments, blank lines.
 * Returns 0, 1 if the file does not exist and missing_ok, -1 after printing
 * FILE:LINE: what is wrong. */
static int read_config(const char *path, bool missing_ok, struct settings *s,
                       const struct cli_set *only)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT && missing_ok)
            return 1;
        fprintf(stderr, "netbusd: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096], why[PATH_MAX + 512];
    unsigned lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "netbusd: %s:%u: line too long\n", path, lineno);
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *t = trim(line);
        if (!*t)
            continue;
        char *eq = strchr(t, '=');
        if (!eq) {
            fprintf(stderr, "netbusd: %s:%u: expected 'key = value' (known "
                    "keys: %s)\n", path, lineno, known_keys);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(t), *value = trim(eq + 1);
        if (apply(s, only, key, value, why, sizeof(why)) < 0) {
            fprintf(stderr, "netbusd: %s:%u: %s\n", path, lineno, why);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "netbusd: %s: read error\n", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

/* ---- running ------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: netbusd [options]\n"
            "  -c, --config FILE    configuration file (default "
            DEFAULT_CONFIG ";\n"
            "                       a missing default file is not an error)\n"
            "  --xenif KIND         xen, xensim or auto (default: auto, or\n"
            "                       $NETBUS_XENIF): xen when /dev/xen exists,\n"
            "                       else xensim when $XENSIM_DIR is set\n"
            "  --xensim-dir DIR     run directory of the xensim host\n"
            "                       (default: $XENSIM_DIR)\n"
            "  --types LIST         backend types to serve, comma-separated\n"
            "                       (default: " DEFAULT_TYPES ")\n"
            "  --log-level LEVEL    error, warn, info (default) or debug\n"
            "  --syslog             log to syslog instead of stderr\n"
            "  --no-syslog          log to stderr even if the file says syslog\n"
            "  --pidfile FILE       write (and lock) a pid file\n"
            "  --poll-max-us US     poll for the next event up to US before\n"
            "                       sleeping, adaptively (default %u; 0: off)\n"
            "netbus channel (exports and netbus:// disks):\n"
            "  --name NAME          this host's netbus name (default: host name)\n"
            "  --aliases LIST       other names/addresses that mean this host\n"
            "                       in netbus:// URLs (served in-process)\n"
            "  --listen ADDR[:PORT] serve exports there; auto (default): on\n"
            "                       0.0.0.0:7797 once an export exists; off\n"
            "  --keys FILE          pre-shared keys (default " NB_DEFAULT_KEYS ")\n"
            "  --encrypt MODE       no (default), yes (TLS to other hosts), or\n"
            "                       required (also refuse peers without TLS)\n"
            "  --keepalive-ms MS    ping an idle export host (default 2000);\n"
            "                       3 missed periods = connection dead\n"
            "  --io-timeout-ms MS   guest I/O waits this long for an export\n"
            "                       host, then fails (default 30000)\n"
            "  --reconnect-max-ms MS  longest reconnect backoff (default 5000)\n"
            "  --check-config       read the configuration, report, exit\n"
            "  --probe              open the hypervisor interface, print what\n"
            "                       was found and exit (0 = usable)\n"
            "  --version, --help\n"
            "Command-line options override the configuration file.\n"
            "SIGTERM/SIGINT: finish the requests in flight, leave the devices\n"
            "to the next netbusd (guests keep them) and exit 0. SIGHUP:\n"
            "re-read log-level and syslog from the configuration file.\n",
            POLL_MAX_US_DEFAULT);
}

static int probe(const struct xenif_config *cfg)
{
    char err[512] = "";
    enum xenif_kind kind;
    if (xenif_config_resolve(cfg, &kind, err, sizeof(err)) < 0) {
        log_error(NULL, "%s", err);
        return 1;
    }
    struct xenif_xs *xs = xenif_xs_open(cfg, err, sizeof(err));
    if (!xs) {
        log_error(NULL, "%s", err);
        return 1;
    }
    struct xenif_evtchn *ec = xenif_evtchn_open(cfg, err, sizeof(err));
    struct xenif_gnt *gnt = ec ? xenif_gnt_open(cfg, err, sizeof(err)) : NULL;
    int rc = 0;
    if (!ec || !gnt) {
        log_error(NULL, "%s", err);
        rc = 1;
    } else {
        printf("hypervisor interface: %s\n", xenif_kind_name(kind));
        printf("domain: %u\n", xenif_xs_own_domid(xs));
        printf("xenstore, event channels, grants: ok\n");
    }
    xenif_gnt_close(gnt);
    xenif_evtchn_close(ec);
    xenif_xs_close(xs);
    return rc;
}

struct daemon {
    struct evloop *loop;
    const char *config_path;
    bool config_missing_ok;
    struct settings *s;
    const struct cli_set *cli;
    int exit_code;
};

/* SIGHUP: log settings can change at run time; the rest needs a restart. */
static void reload(struct daemon *d)
{
    struct settings fresh = *d->s;
    int rc = read_config(d->config_path, d->config_missing_ok, &fresh,
                         d->cli);
    if (rc < 0) {
        log_error(NULL, "SIGHUP: %s not reloaded (see above)", d->config_path);
        return;
    }
    if (strcmp(fresh.types, d->s->types) || fresh.xenif != d->s->xenif ||
        strcmp(fresh.xensim_dir, d->s->xensim_dir) ||
        strcmp(fresh.pidfile, d->s->pidfile) ||
        memcmp(&fresh.ch, &d->s->ch, sizeof(fresh.ch)))
        log_warn(NULL, "SIGHUP: only log-level and syslog change now; the "
                 "other settings take effect at the next start");
    d->s->log_level = fresh.log_level;
    d->s->use_syslog = fresh.use_syslog;
    log_init("netbusd", (enum log_level)d->s->log_level, d->s->use_syslog);
    log_info(NULL, "SIGHUP: log level %d, syslog %s", d->s->log_level,
             d->s->use_syslog ? "yes" : "no");
}

static void on_signal(struct evloop *loop, int fd, uint32_t events,
                      void *opaque)
{
    struct daemon *d = opaque;
    (void)events;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            reload(d);
            continue;
        }
        log_info(NULL, "signal %u: closing devices and exiting", si.ssi_signo);
        evloop_stop(loop);
    }
}

/* Creates and locks the pid file; returns its fd (kept open), or -1. */
static int pidfile_open(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error(NULL, "pidfile %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        log_error(NULL, "pidfile %s is locked: is another netbusd running?",
                  path);
        close(fd);
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)n) != n) {
        log_error(NULL, "pidfile %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int serve(struct daemon *d, const struct xenif_config *cfg)
{
    struct settings *s = d->s;
    char err[512] = "";
    enum xenif_kind kind;
    if (xenif_config_resolve(cfg, &kind, err, sizeof(err)) < 0) {
        log_error(NULL, "%s", err);
        return 1;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
        log_error(NULL, "sigprocmask: %s", strerror(errno));
        return 1;
    }
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    struct evloop *loop = evloop_new();
    struct xenif_xs *xs = NULL;
    struct xenbus *bus = NULL;
    int pidfd = -1, rc = 1;
    if (sfd < 0 || !loop) {
        log_error(NULL, "signalfd/epoll: %s", strerror(errno));
        goto out;
    }
    d->loop = loop;
    evloop_set_poll_max_ns(loop, (uint64_t)s->poll_max_us * 1000u);
    if (evloop_add(loop, sfd, EPOLLIN, on_signal, d) < 0) {
        log_error(NULL, "evloop: %s", strerror(errno));
        goto out;
    }
    if (s->pidfile[0] && (pidfd = pidfile_open(s->pidfile)) < 0)
        goto out;
    xs = xenif_xs_open(cfg, err, sizeof(err));
    if (!xs) {
        log_error(NULL, "%s", err);
        goto out;
    }
    char tlbase[64];
    snprintf(tlbase, sizeof(tlbase), "/local/domain/%u/netbus/timeline",
             xenif_xs_own_domid(xs));
    timeline_start(xs, tlbase);
    if (channel_start(loop, cfg, &s->ch, err, sizeof(err)) < 0) {
        log_error(NULL, "netbus channel: %s", err);
        goto out;
    }
    bus = xenbus_new(loop, xs, cfg);
    if (!bus) {
        log_error(NULL, "cannot start the xenbus: %s", strerror(errno));
        goto out;
    }
    const char *p = s->types;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const struct xenbus_class *cls = class_by_type(p, len);
        if (!cls || xenbus_register(bus, cls) < 0) {
            log_error(NULL, "cannot serve type %.*s: %s", (int)len, p,
                      strerror(errno));
            goto out;
        }
        p = comma ? comma + 1 : p + len;
    }
    log_info(NULL, "netbusd %s serving %s as domain %u (%s)", NETBUSD_VERSION,
             s->types, xenif_xs_own_domid(xs), xenif_kind_name(kind));
    if (evloop_run(loop) < 0) {
        log_error(NULL, "event loop: %s", strerror(errno));
        goto out;
    }
    rc = xenbus_lost(bus) ? 1 : 0;
out:
    /* Disconnects every device (states left for the next netbusd), then
     * the channel's sessions and exports. */
    xenbus_free(bus);
    channel_stop();
    timeline_stop();
    xenif_xs_close(xs);
    if (pidfd >= 0) {
        unlink(s->pidfile);
        close(pidfd);
    }
    if (loop && sfd >= 0)
        evloop_del(loop, sfd);
    evloop_free(loop);
    if (sfd >= 0)
        close(sfd);
    if (rc == 0)
        log_info(NULL, "netbusd stopped");
    return rc;
}

int main(int argc, char **argv)
{
    enum { OPT_PROBE = 256, OPT_XENIF, OPT_XENSIM_DIR, OPT_TYPES, OPT_LOG,
           OPT_SYSLOG, OPT_NO_SYSLOG, OPT_PIDFILE, OPT_CHECK, OPT_VERSION,
           OPT_NAME, OPT_ALIASES, OPT_LISTEN, OPT_KEYS, OPT_ENCRYPT,
           OPT_KEEPALIVE, OPT_IO_TIMEOUT, OPT_RECONNECT_MAX, OPT_POLL_MAX };
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "probe", no_argument, NULL, OPT_PROBE },
        { "xenif", required_argument, NULL, OPT_XENIF },
        { "xensim-dir", required_argument, NULL, OPT_XENSIM_DIR },
        { "types", required_argument, NULL, OPT_TYPES },
        { "log-level", required_argument, NULL, OPT_LOG },
        { "syslog", no_argument, NULL, OPT_SYSLOG },
        { "no-syslog", no_argument, NULL, OPT_NO_SYSLOG },
        { "pidfile", required_argument, NULL, OPT_PIDFILE },
        { "poll-max-us", required_argument, NULL, OPT_POLL_MAX },
        { "check-config", no_argument, NULL, OPT_CHECK },
        { "name", required_argument, NULL, OPT_NAME },
        { "aliases", required_argument, NULL, OPT_ALIASES },
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "keys", required_argument, NULL, OPT_KEYS },
        { "encrypt", required_argument, NULL, OPT_ENCRYPT },
        { "keepalive-ms", required_argument, NULL, OPT_KEEPALIVE },
        { "io-timeout-ms", required_argument, NULL, OPT_IO_TIMEOUT },
        { "reconnect-max-ms", required_argument, NULL, OPT_RECONNECT_MAX },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct xenif_config cfg;
    xenif_config_from_env(&cfg);
    struct settings s = { .xenif = cfg.kind, .types = DEFAULT_TYPES,
                          .log_level = LOG_LVL_INFO,
                          .poll_max_us = POLL_MAX_US_DEFAULT };
    channel_settings_default(&s.ch);
    struct cli_set cli = { 0 };
    const char *config_path = DEFAULT_CONFIG;
    bool config_given = false, do_probe = false, do_check = false;
    char why[PATH_MAX + 512];
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 'c': config_path = optarg; config_given = true; break;
        case OPT_PROBE: do_probe = true; break;
        case OPT_CHECK: do_check = true; break;
        case OPT_XENIF: key = "xenif"; cli.xenif = true; break;
        case OPT_XENSIM_DIR: key = "xensim-dir"; cli.xensim_dir = true; break;
        case OPT_TYPES: key = "types"; cli.types = true; break;
        case OPT_LOG: key = "log-level"; cli.log_level = true; break;
        case OPT_PIDFILE: key = "pidfile"; cli.pidfile = true; break;
        case OPT_POLL_MAX: key = "poll-max-us"; cli.poll_max = true; break;
        case OPT_NAME: key = "name"; cli.name = true; break;
        case OPT_ALIASES: key = "aliases"; cli.aliases = true; break;
        case OPT_LISTEN: key = "listen"; cli.listen = true; break;
        case OPT_KEYS: key = "keys"; cli.keys = true; break;
        case OPT_ENCRYPT: key = "encrypt"; cli.encrypt = true; break;
        case OPT_KEEPALIVE: key = "keepalive-ms"; cli.keepalive = true; break;
        case OPT_IO_TIMEOUT: key = "io-timeout-ms"; cli.io_timeout = true; break;
        case OPT_RECONNECT_MAX:
            key = "reconnect-max-ms";
            cli.reconnect_max = true;
            break;
        case OPT_SYSLOG: s.use_syslog = true; cli.syslog = true; break;
        case OPT_NO_SYSLOG: s.use_syslog = false; cli.syslog = true; break;
        case OPT_VERSION: printf("netbusd %s\n", NETBUSD_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (key && apply(&s, NULL, key, optarg, why, sizeof(why)) < 0) {
            fprintf(stderr, "netbusd: --%s\n", why);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "netbusd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    int crc = read_config(config_path, !config_given, &s, &cli);
    if (crc < 0)
        return 2;
    if (do_check) {
        printf("config: %s%s\n", config_path,
               crc == 1 ? " (not present; defaults)" : "");
        static const char *const levels[] = { "error", "warn", "info",
                                              "debug" };
        printf("xenif = %s\nxensim-dir = %s\ntypes = %s\nlog-level = %s\n"
               "syslog = %s\npidfile = %s\npoll-max-us = %u\n",
               xenif_kind_name(s.xenif), s.xensim_dir, s.types,
               levels[s.log_level], s.use_syslog ? "yes" : "no", s.pidfile,
               s.poll_max_us);
        printf("name = %s\naliases = %s\nlisten = %s\nkeys = %s\n"
               "encrypt = %s\nkeepalive-ms = %u\nio-timeout-ms = %u\n"
               "reconnect-max-ms = %u\n", s.ch.name, s.ch.aliases,
               s.ch.listen, s.ch.keys, encrypt_names[s.ch.encrypt],
               s.ch.keepalive_ms, s.ch.io_timeout_ms, s.ch.reconnect_max_ms);
        return 0;
    }
    cfg.kind = s.xenif;
    if (s.xensim_dir[0])
        cfg.xensim_dir = s.xensim_dir;
    log_init("netbusd", (enum log_level)s.log_level, s.use_syslog);
    signal(SIGPIPE, SIG_IGN);
    if (do_probe)
        return probe(&cfg);
    struct daemon d = { .config_path = config_path,
                        .config_missing_ok = !config_given, .s = &s,
                        .cli = &cli };
    return serve(&d, &cfg);
}
