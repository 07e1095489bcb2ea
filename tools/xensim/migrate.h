/* `xensim migrate`: moves a running domain to another xensim host (see
 * migrate.c for the protocol). */
#ifndef NETBUS_XENSIM_MIGRATE_H
#define NETBUS_XENSIM_MIGRATE_H

#include <stdint.h>
#include <stddef.h>

struct migrate_opts {
    const char *src_dir;      /* host the domain runs on */
    const char *dst_dir;      /* host it goes to */
    const char *domain;       /* id or name on the source */
    unsigned timeout_s;       /* per step: guest ack, drain, backends */
};

struct migrate_result {
    unsigned old_domid, new_domid;
    uint64_t total_ns;        /* the whole migration */
    uint64_t ack_ns;          /* suspend request to the last guest's ack */
    uint64_t paused_ns;       /* domain paused to its processes gone from
                                 the source (running on the destination) */
    uint64_t copied_bytes;    /* memory copied */
    unsigned procs;           /* processes that moved */
    unsigned devices;         /* vbds recreated */
};

/* Runs the migration. 0, or -1 with the reason in err; when it fails
 * before the point of no return the domain runs on as before on the source
 * (the message says so). */
int xensim_migrate(const struct migrate_opts *o, struct migrate_result *res,
                   char *err, size_t errlen);

int xensim_cmd_migrate(int argc, char **argv);

#endif
