/* log: one line per event, to stderr or syslog. Device code passes the
 * xenstore path of the device it speaks for so every line names it. */
#ifndef NETBUS_LOG_H
#define NETBUS_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* ident: program name; use_syslog: send to syslog(3) instead of stderr. */
void log_init(const char *ident, enum log_level max, bool use_syslog);
/* Parses "error", "warn", "info" or "debug"; returns -1 on anything else. */
int log_level_parse(const char *name);

void log_msg(enum log_level lvl, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(where, ...) log_msg(LOG_LVL_ERROR, where, __VA_ARGS__)
#define log_warn(where, ...)  log_msg(LOG_LVL_WARN, where, __VA_ARGS__)
#define log_info(where, ...)  log_msg(LOG_LVL_INFO, where, __VA_ARGS__)
#define log_debug(where, ...) log_msg(LOG_LVL_DEBUG, where, __VA_ARGS__)

#endif
