/* xsd internals shared by the daemon's files: the node store, transactions,
 * watches, wire connections and domains. Not for use outside xenstore/. */
#ifndef NETBUS_XSD_INTERNAL_H
#define NETBUS_XSD_INTERNAL_H

#include "xsd.h"

#include <errno.h> /* before xs_wire.h, which then defines xsd_errors */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

#define XSD_HDR_LEN ((uint32_t)sizeof(struct xsd_sockmsg))
/* Room for any canonical path: a payload-sized string plus the implicit
 * "/local/domain/N/" prefix. */
#define XSD_PATH_BUF (XENSTORE_PAYLOAD_MAX + 32)
/* Highest domid a guest can have (DOMID_FIRST_RESERVED - 1). */
#define XSD_DOMID_MAX 0x7FEFu
#define XSD_DOMID_SELF 0x7FF0u
#define XSD_NO_GEN UINT64_MAX

/* Permission bits, as XS_PERM_* in xenstore's xs_lib.h. */
#define XSD_PERM_READ  1u
#define XSD_PERM_WRITE 2u
#define XSD_PERM_OWNER 8u

/* --- hash table of named entries (intrusive) ---------------------------- */
struct xsd_hent {
    struct xsd_hent *hnext;
    char *key;
};
struct xsd_htab {
    struct xsd_hent **b;
    size_t nb, n;
};
struct xsd_hent *htab_get(const struct xsd_htab *t, const char *key);
int htab_add(struct xsd_htab *t, struct xsd_hent *e); /* key must be new */
void htab_del(struct xsd_htab *t, struct xsd_hent *e);
void htab_free(struct xsd_htab *t);

/* --- nodes and permissions (xsd_store.c) -------------------------------- */
struct xsd_perm {
    uint32_t id;
    uint32_t perms; /* XSD_PERM_READ | XSD_PERM_WRITE */
};
struct xsd_perms {
    unsigned n; /* >= 1: entry 0 names the owner and the default access */
    struct xsd_perm *p;
};

struct xsd_node {
    struct xsd_hent h; /* h.key is the full path */
    char *value;
    uint32_t vlen;
    char *children; /* leaf names, each NUL-terminated, in creation order */
    uint32_t childlen;
    struct xsd_perms perms;
    uint64_t gen;
};

struct xsd_node *node_new(const char *path, const struct xsd_perms *perms);
struct xsd_node *node_dup(const struct xsd_node *n);
void node_free(struct xsd_node *n);
static inline const char *node_name(const struct xsd_node *n)
{
    return n->h.key;
}
int node_set_value(struct xsd_node *n, const void *value, uint32_t len);
int node_add_child(struct xsd_node *n, const char *leaf);
void node_del_child(struct xsd_node *n, const char *leaf);
int perms_copy(struct xsd_perms *dst, const struct xsd_perms *src);
/* Access domid has under perms; dom0 and the owner get everything. */
unsigned perms_access(const struct xsd_perms *p, unsigned domid);
/* Parses n strings like "r5" from buf (NUL-separated); 0 or EINVAL. */
int perms_parse(const char *buf, unsigned n, struct xsd_perms *out);
/* "b0\0r5\0" form; returns the length or 0 if cap is too small. */
size_t perms_format(const struct xsd_perms *p, char *buf, size_t cap);

/* Path helpers. parent_path("/a/b") is "/a", of "/a" is "/". */
void parent_path(const char *path, char *out);
const char *leaf_name(const char *path);

/* The live store: every node by path, and how many nodes each domain owns
 * (the node quota counts owned nodes, as xenstored does). */
struct xsd_owned {
    unsigned domid, count;
};
struct xsd_store {
    struct xsd_htab nodes;
    uint64_t generation;
    struct xsd_owned *owned;
    size_t nowned;
};
struct xsd_node *store_get(const struct xsd_store *s, const char *path);
/* Inserts or replaces (freeing the old node); takes ownership. */
int store_put(struct xsd_store *s, struct xsd_node *n);
void store_del(struct xsd_store *s, const char *path);
unsigned store_owned(const struct xsd_store *s, unsigned domid);
void store_free(struct xsd_store *s);

/* --- requests and the database view (xsd_txn.c) ------------------------- */
struct xsd;
struct xsd_conn;
struct xsd_txn;

/* Who asks, and through which transaction. */
struct xsd_req {
    struct xsd *x;
    struct xsd_conn *conn; /* NULL: the host process itself */
    unsigned domid;
    struct xsd_txn *txn; /* NULL: the live store */
};
static inline bool req_priv(const struct xsd_req *r)
{
    return r->domid == 0;
}

/* The node as the request sees it; NULL with errno ENOENT (or ENOMEM, or
 * ENOSPC at the transaction's node limit). Valid until the next write. */
const struct xsd_node *db_read(struct xsd_req *r, const char *path);
/* Takes ownership of n, stamps a new generation; 0 or errno. */
int db_write(struct xsd_req *r, struct xsd_node *n);
int db_delete(struct xsd_req *r, const char *path);
/* Nodes owned by the requester, counting its transaction's changes. */
unsigned db_owned(struct xsd_req *r);

struct xsd_txn *txn_start(struct xsd_conn *c, uint32_t *id); /* errno */
struct xsd_txn *txn_find(struct xsd_conn *c, uint32_t id);
/* Ends and frees txn: commit (0, EAGAIN, ENOSPC) or abort. */
int txn_end(struct xsd_conn *c, struct xsd_txn *txn, bool commit);
void txn_abort_all(struct xsd_conn *c);
/* Remember a watch event to fire at commit; 0 or errno. */
int txn_queue_watch(struct xsd_txn *txn, const char *path, bool exact);

/* --- watches (xsd_watch.c) ---------------------------------------------- */
struct xsd_watch;
/* Adds and queues the ack and the initial event; 0 or errno. */
int watch_add(struct xsd_conn *c, const char *path, const char *token,
              uint32_t req_id);
int watch_remove(struct xsd_conn *c, const char *path, const char *token);
void watch_remove_all(struct xsd_conn *c);
/* A change at path: fires (or queues in r's transaction) the watches that
 * match. exact: only watches on path itself (descendants of a removed
 * subtree); else path and its ancestors. node: the node being changed if
 * still at hand; old: its permissions before the change, if any. */
void watch_fire(struct xsd_req *r, const char *path, const struct xsd_node *node,
                bool exact, const struct xsd_perms *old);
/* "@introduceDomain" or "@releaseDomain"; NULL for any other name. */
struct xsd_perms *special_perms(struct xsd *x, const char *name);

/* --- operations shared by the wire and the host API (xsd_ops.c) --------- */
/* path: as sent (relative allowed); out: canonical. 0 or EINVAL. */
int path_canonical(const struct xsd_req *r, const char *path, bool special,
                   char *out);
int op_write(struct xsd_req *r, const char *path, const void *value,
             uint32_t len);
int op_mkdir(struct xsd_req *r, const char *path);
int op_rm(struct xsd_req *r, const char *path);
/* Removes a canonical subtree without permission checks (domain release). */
int op_rm_tree(struct xsd_req *r, const char *path);
const struct xsd_node *op_read(struct xsd_req *r, const char *path,
                               unsigned perm); /* NULL with errno */
int op_set_perms(struct xsd_req *r, const char *path,
                 const struct xsd_perms *perms);
/* Answers one wire request on c: queues a reply or an XS_ERROR. */
void ops_dispatch(struct xsd_conn *c, const struct xsd_sockmsg *hdr,
                  const char *payload);

/* --- connections (xsd_conn.c) ------------------------------------------- */
struct xsd_msg;

struct xsd_conn {
    struct xsd_conn *next;
    struct xsd *x;
    int fd;
    unsigned domid;
    bool dead;     /* closed, freed by xsd_leave() */
    bool paused;   /* not reading: too many replies unread */
    bool want_out; /* EPOLLOUT registered */
    unsigned char in[XSD_HDR_LEN + XENSTORE_PAYLOAD_MAX]; /* one message */
    uint32_t in_used;
    unsigned char rbuf[16384]; /* read from the socket, rpos..rlen unused */
    uint32_t rpos, rlen;
    struct xsd_msg *out_head, **out_tail;
    size_t out_bytes;
    struct xsd_watch *watches;
    struct xsd_txn *txns;
    unsigned ntxns;
    uint32_t next_txn_id;
};

struct xsd_conn *conn_new(struct xsd *x, int fd, unsigned domid);
/* Queues a message; events may be dropped as duplicates (as xenstored). */
void conn_send(struct xsd_conn *c, uint32_t type, uint32_t req_id,
               uint32_t tx_id, const void *data, uint32_t len);
void conn_send_error(struct xsd_conn *c, const struct xsd_sockmsg *req,
                     int err);
void conn_send_event(struct xsd_conn *c, const char *path, const char *token);
/* Marks the connection closed; it is freed when the daemon is idle. */
void conn_kill(struct xsd_conn *c, const char *why);
void conn_destroy(struct xsd_conn *c);

/* --- the daemon (xsd_daemon.c) ------------------------------------------ */
struct xsd_domain {
    struct xsd_domain *next;
    unsigned domid;
    int listen_fd; /* -1 without a run directory */
    char *sock_path, *sock_dir;
    unsigned nwatches;
};

struct xsd {
    struct evloop *loop;
    char *rundir; /* NULL: no sockets */
    char *sock_path;
    int listen_fd;
    struct xsd_limits lim;
    struct xsd_store store;
    struct xsd_conn *conns;
    struct xsd_domain *domains;
    struct xsd_perms introduce_perms, release_perms;
    unsigned depth; /* xsd_enter() nesting */
};

struct xsd_domain *domain_find(const struct xsd *x, unsigned domid);
/* Entry points bracket their work so that connections closed meanwhile are
 * freed only once nothing refers to them. */
void xsd_enter(struct xsd *x);
void xsd_leave(struct xsd *x);

#endif
