#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static const char *log_ident = "netbus";
static enum log_level log_max = LOG_LVL_INFO;
static bool log_syslog;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_init(const char *ident, enum log_level max, bool use_syslog)
{
    log_ident = ident;
    log_max = max;
    log_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID, LOG_DAEMON);
}

int log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_LVL_DEBUG; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_msg(enum log_level lvl, const char *where, const char *fmt, ...)
{
    if (lvl > log_max)
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (log_syslog) {
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
        syslog(prio[lvl], "%s%s%s", where ? where : "", where ? ": " : "", text);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s%s%s\n", tm.tm_hour,
            tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_ident,
            level_names[lvl], where ? where : "", where ? ": " : "", text);
}
