/* channel: the netbus channel of one netbusd: its name, keys, exports,
 * listener and connections to other hosts. netbusd starts it; the vbd
 * class opens `netbus://` device URLs through it. One per process. */
#ifndef NETBUS_CHANNEL_CHANNEL_H
#define NETBUS_CHANNEL_CHANNEL_H

#include "frame.h"
#include "xenif.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct evloop;
struct vbd_target;
struct vusb_target;

enum nb_encrypt { NB_ENCRYPT_NO, NB_ENCRYPT_YES, NB_ENCRYPT_REQUIRED };

#define NB_LISTEN_AUTO "auto"   /* 0.0.0.0:7797 once an export exists */
#define NB_LISTEN_OFF  "off"
#define NB_DEFAULT_KEYS "/etc/netbus/keys"

struct channel_settings {
    char name[NB_NAME_MAX + 1];     /* this host's netbus name */
    char aliases[512];              /* more names/addresses meaning us */
    char listen[128];               /* auto, off, HOST[:PORT] */
    char keys[PATH_MAX];
    enum nb_encrypt encrypt;
    unsigned keepalive_ms;
    unsigned io_timeout_ms;
    unsigned reconnect_max_ms;
};

/* Defaults: name = the host name (up to its first dot), listen auto, keys
 * /etc/netbus/keys, encrypt no, keepalive 2000 ms, io-timeout 30000 ms,
 * reconnect-max 5000 ms. */
void channel_settings_default(struct channel_settings *s);

/* Starts the channel. A missing key file is not an error (peers are then
 * refused and only this host's exports can be used); a key file that is
 * wrong is. 0, or -1 with err. */
int channel_start(struct evloop *loop, const struct xenif_config *cfg,
                  const struct channel_settings *s, char *err, size_t errlen);
/* Ends every session and connection, closes the exports (their xenstore
 * entries stay for the next netbusd). */
void channel_stop(void);

/* Opens a vbd target for a netbus:// URL. The target is usable (its info
 * valid) when *pending is false; otherwise ready(opaque, NULL or why) is
 * called once later from the event loop (on failure, close the target).
 * owner names who the export's session belongs to: the guest's domain
 * UUID, so that the LBE of the host a guest migrated to takes the session
 * over; NULL: this host's name and `where` (a guest of unknown identity).
 * NULL with err for a bad URL or when the channel is not running. */
struct vbd_target *channel_open_url(const char *url, bool readonly,
                                    const char *owner, const char *where,
                                    void (*ready)(void *opaque,
                                                  const char *err),
                                    void *opaque, bool *pending, char *err,
                                    size_t errlen);

/* Opens a USB target (backend/vusb/target.h) for a netbus:// URL naming a
 * usb export. It returns at once: the target reports VUSB_SPEED_NONE until
 * the export answered (and while the export's device is unplugged, or the
 * connection has been down io-timeout-ms: a shorter break is bridged, see
 * usb_remote.h), and calls its `changed` whenever its speed changes.
 * A failure for good after this call (export refused, gone) is told once
 * through failed(opaque, why). owner as for channel_open_url. NULL with
 * err for a bad URL or when the channel is not running. */
struct vusb_target *channel_open_usb_url(const char *url, const char *owner,
                                         const char *where,
                                         void (*failed)(void *opaque,
                                                        const char *why),
                                         void *opaque, char *err,
                                         size_t errlen);

#endif
