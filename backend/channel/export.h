/* export: the devices this host publishes, by name, and their sessions.
 *
 * An export owns an open target (backend/vbd target_file for kind vbd, a
 * claimed USB device, backend/vusb target_libusb, for kind usb)
 * independently of any guest: it is opened when netbusctl asks and stays open until
 * unexported, whoever attaches or leaves. A session is one LBE's attachment
 * to one export: remote (server.c, over a connection) or in-process
 * (local_target.c, the short-circuit). The registry lives in this host's
 * xenstore (schema in PROTOCOL.md, "xenstore registry"):
 *
 *   /local/domain/SELF/netbus/node            this host's netbus name
 *   /local/domain/SELF/netbus/listen          ADDR:PORT served, or ""
 *   /local/domain/SELF/netbus/exports/NAME/
 *       params kind readonly allowed-peers    written by netbusctl
 *       state     requested | ready | error | remove | remove-force
 *       error     why (state error, or a refused remove)
 *       owner size sector-size                written by netbusd (vbd)
 *       owner speed vendor-product            written by netbusd (usb)
 *       sessions/ID/{peer,owner,opened}       written by netbusd
 *
 * netbusd watches exports/: `requested` is opened and answered `ready` or
 * `error`; `remove` is refused (error set, state back to ready) while
 * sessions exist, `remove-force` ends them; an export found `ready` at
 * start-up (netbusd restarted) is opened again. */
#ifndef NETBUS_CHANNEL_EXPORT_H
#define NETBUS_CHANNEL_EXPORT_H

#include "frame.h"
#include "xenif.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evloop;
struct vbd_target;
struct vusb_target;
struct nb_exports;
struct nb_export;

enum nb_export_kind { NB_EXPORT_VBD, NB_EXPORT_USB };

struct nb_session {
    uint32_t id;
    struct nb_export *ex;
    char peer[NB_NAME_MAX + 1];
    char owner[NB_OWNER_MAX + 1];
    bool readonly;
    /* Another session was opened for the same guest (it migrated): this
     * one takes no new I/O. */
    bool superseded;
    uint32_t superseded_by; /* reinstated if that session closes first */
    unsigned inflight;      /* target I/O not completed yet */
    /* The side serving the session (server connection or local target). */
    void *user;
    /* The export is going away (unexport --force): stop using it. */
    void (*kill)(struct nb_session *s);
    /* inflight dropped to 0 (the session's user waits for that). */
    void (*drained)(struct nb_session *s);
    /* usb exports: the device's speed changed (unplugged, back). */
    void (*changed)(struct nb_session *s);
    struct nb_session *next;
};

/* Opens the registry: its own xenstore connection, a watch on exports/,
 * the node name and listen nodes written. NULL with err. */
struct nb_exports *nb_exports_new(struct evloop *loop,
                                  const struct xenif_config *cfg,
                                  const char *node_name, char *err,
                                  size_t errlen);
/* Closes every export (sessions killed, targets drained); the xenstore
 * nodes stay so the next netbusd opens the exports again. */
void nb_exports_free(struct nb_exports *reg);
/* Publishes the listen address ("" when not listening). */
void nb_exports_set_listen(struct nb_exports *reg, const char *addr);
/* Called when the number of ready exports changes (to start listening). */
void nb_exports_on_change(struct nb_exports *reg, void (*cb)(void *opaque),
                          void *opaque);
unsigned nb_exports_count(const struct nb_exports *reg);

struct nb_export *nb_exports_find(struct nb_exports *reg, const char *name);
/* Whether peer may open ex ("" allowed-peers: every authenticated peer). */
bool nb_export_allows(const struct nb_export *ex, const char *peer);
bool nb_export_readonly(const struct nb_export *ex);
enum nb_export_kind nb_export_kind(const struct nb_export *ex);
/* The export's device: kind vbd, kind usb respectively (else NULL). */
struct vbd_target *nb_export_target(struct nb_export *ex);
struct vusb_target *nb_export_usb(struct nb_export *ex);
/* kind usb: the claimed device's identity (0 when unknown). */
void nb_export_usb_id(const struct nb_export *ex, uint16_t *vendor,
                      uint16_t *product);
const char *nb_export_name(const struct nb_export *ex);

/* How usb exports claim their device: vusb_target_libusb_open unless a
 * test puts a simulated device in its place. */
typedef struct vusb_target *nb_usb_opener(const char *name,
                                          struct evloop *loop,
                                          const char *where, char *err,
                                          size_t errlen);
void nb_exports_set_usb_opener(struct nb_exports *reg, nb_usb_opener *open);

/* A new session (published under sessions/ID). A session of the same owner
 * (a guest's domain UUID) is superseded; while another guest holds the
 * export writable (or asks to write), NULL with errno EBUSY. NULL with
 * ENOMEM if out of memory. Every session of a usb export is a writer: one
 * guest at a time drives a device. */
struct nb_session *nb_session_new(struct nb_export *ex, const char *peer,
                                  const char *owner, bool readonly);
/* Session id on this host; NULL if none. */
struct nb_session *nb_session_find(struct nb_exports *reg, uint32_t id);
/* Removes it (and its xenstore node). inflight must be 0. */
void nb_session_free(struct nb_session *s);
/* Target I/O accounting for s (drained is called when it falls to 0). */
/* Whether a session s took over (same guest) still has I/O at the device:
 * s must not start any before it completed (its `drained` is called then). */
bool nb_session_must_wait(const struct nb_session *s);
void nb_session_io_start(struct nb_session *s);
void nb_session_io_end(struct nb_session *s);

/* Called after each batch of the export target's completions: the local
 * sessions' rings push their responses then. */
void nb_export_add_reaped(struct nb_export *ex, void (*cb)(void *opaque),
                          void *opaque);
void nb_export_del_reaped(struct nb_export *ex, void *opaque);

#endif
