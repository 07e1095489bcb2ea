/* frame: the netbus wire format, version 1 (PROTOCOL.md beside this file
 * is the specification). Every frame is a 24-byte little-endian header and
 * `length` payload bytes. This file encodes and decodes headers and the
 * fixed bodies; everything decoded comes from the network and is checked
 * (bounds, reserved bits, names) before anyone uses it. */
#ifndef NETBUS_CHANNEL_FRAME_H
#define NETBUS_CHANNEL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NB_MAGIC        0x5355424eu /* bytes "NBUS" */
#define NB_VERSION      1
#define NB_HDR_SIZE     24
#define NB_NONCE_SIZE   32
#define NB_MAC_SIZE     32
#define NB_NAME_MAX     64          /* host and export names */
#define NB_OWNER_MAX    128
#define NB_MAX_DATA     (1u << 20)  /* block data of one request */
#define NB_MAX_CTRL     512         /* payload of a frame without data */
#define NB_IO_BODY      16          /* READ/WRITE/FLUSH/DISCARD body */
#define NB_STATUS_BODY  8           /* the head of every reply body */
#define NB_OPENED_BODY  32
#define NB_URB_BODY     40          /* URB head before descriptors, data */
#define NB_URB_REPLY_BODY 48        /* URB reply head (status included) */
#define NB_URB_ISO_DESC 8           /* one ISO packet, either direction */
#define NB_URB_MAX_ISO  1024
#define NB_URB_MAX_DATA 65536u      /* usbif: 16 segments of a page */
#define NB_UNLINK_BODY  16
#define NB_DEFAULT_PORT 7797

enum nb_type {
    NB_HELLO = 0x01,
    NB_CHALLENGE = 0x02,
    NB_AUTH = 0x03,
    NB_WELCOME = 0x04,
    NB_REFUSED = 0x05,
    NB_OPEN = 0x10,
    NB_CLOSE = 0x11,
    NB_READ = 0x20,
    NB_WRITE = 0x21,
    NB_FLUSH = 0x22,
    NB_DISCARD = 0x23,
    NB_EVENT = 0x30,
    NB_PING = 0x40,
    NB_QUIESCE = 0x50,  /* reserved for migration: answered ENOTSUP in v1 */
    NB_RESUME = 0x51,
    NB_HANDOVER = 0x52,
    NB_URB = 0x60,      /* USB exports (PROTOCOL.md section 8) */
    NB_UNLINK = 0x61,
    NB_REPLY = 0x80,    /* reply type = request type | NB_REPLY */
};

/* Header flags. */
#define NB_F_PREFLUSH 0x0001u /* WRITE: earlier writes stable first */

/* HELLO/CHALLENGE flags. */
#define NB_HELLO_TLS 0x1u

/* OPEN flags and OPEN reply flags. */
#define NB_OPEN_READONLY 0x1u
#define NB_OPEN_USB      0x2u   /* the client wants a usb export */
#define NB_INFO_READONLY 0x1u
#define NB_INFO_FLUSH    0x2u
#define NB_INFO_DISCARD  0x4u
#define NB_INFO_USB      0x8u

/* Status in replies (wire values; nb_status_errno maps them). */
enum nb_status {
    NB_ST_OK = 0,
    NB_ST_EIO = 1,
    NB_ST_NOENT = 2,   /* no such export, or not for this peer: same answer */
    NB_ST_ROFS = 3,
    NB_ST_INVAL = 4,
    NB_ST_NOTSUP = 5,
    NB_ST_NOSPC = 6,
    NB_ST_BUSY = 7,
    NB_ST_STALE = 8,   /* session unknown on this connection */
    NB_ST_MAX = 8,
};

/* REFUSED codes: all a refused peer learns. */
enum nb_refusal {
    NB_REFUSE_AUTH = 1,       /* unknown peer, wrong key, bad handshake */
    NB_REFUSE_VERSION = 2,
    NB_REFUSE_NEED_TLS = 3,
};

/* EVENT kinds. */
enum nb_event { NB_EV_GONE = 1, NB_EV_RESIZED = 2, NB_EV_USB_SPEED = 3 };

struct nb_hdr {
    uint8_t type;
    uint16_t flags;
    uint32_t session;
    uint32_t length;
    uint64_t tag;
};

void nb_hdr_encode(uint8_t out[NB_HDR_SIZE], const struct nb_hdr *h);
/* Checks magic, version, type, flags and the length bound of the type.
 * authed: the handshake is over (only handshake types before, none after).
 * 0, or -1 with a reason in *why (static text). */
int nb_hdr_decode(const uint8_t in[NB_HDR_SIZE], struct nb_hdr *h,
                  bool authed, const char **why);
const char *nb_type_name(uint8_t type);
/* Rewrites the tag of an encoded header. */
void nb_hdr_set_tag(uint8_t hdr[NB_HDR_SIZE], uint64_t tag);

/* Names: 1..NB_NAME_MAX of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool nb_name_ok(const char *s, size_t len);

/* ---- bodies --------------------------------------------------------------
 * Encoders return the body length written into out (sized by the caller
 * from the constants above); decoders return 0 or -1 with *why. */

struct nb_hello {
    uint16_t min_version, max_version;
    uint32_t flags;
    uint32_t keepalive_ms;          /* the client's ping interval */
    uint8_t nonce[NB_NONCE_SIZE];
    char name[NB_NAME_MAX + 1];
};
size_t nb_hello_encode(uint8_t *out, const struct nb_hello *m);
int nb_hello_decode(const uint8_t *p, size_t len, struct nb_hello *m,
                    const char **why);

struct nb_challenge {
    uint16_t version;
    uint32_t flags;
    uint8_t nonce[NB_NONCE_SIZE];
    char name[NB_NAME_MAX + 1];
};
size_t nb_challenge_encode(uint8_t *out, const struct nb_challenge *m);
int nb_challenge_decode(const uint8_t *p, size_t len, struct nb_challenge *m,
                        const char **why);

/* AUTH and WELCOME carry one MAC. */
int nb_mac_decode(const uint8_t *p, size_t len, uint8_t mac[NB_MAC_SIZE],
                  const char **why);
size_t nb_u32_encode(uint8_t *out, uint32_t v);
int nb_refused_decode(const uint8_t *p, size_t len, uint32_t *code,
                      const char **why);

struct nb_open {
    uint32_t flags;
    uint32_t resume_session;        /* 0: a new session */
    char name[NB_NAME_MAX + 1];
    char owner[NB_OWNER_MAX + 1];   /* printable ASCII, may be empty */
};
size_t nb_open_encode(uint8_t *out, const struct nb_open *m);
int nb_open_decode(const uint8_t *p, size_t len, struct nb_open *m,
                   const char **why);

struct nb_opened {
    int32_t status;
    uint32_t flags;                 /* NB_INFO_* */
    uint64_t size;                  /* bytes */
    uint32_t sector_size, physical_sector_size, discard_granularity;
};
size_t nb_opened_encode(uint8_t *out, const struct nb_opened *m);
/* A refused OPEN has only the status (NB_STATUS_BODY bytes). */
int nb_opened_decode(const uint8_t *p, size_t len, struct nb_opened *m,
                     const char **why);

struct nb_io {
    uint64_t offset;
    uint32_t len;
};
size_t nb_io_encode(uint8_t *out, const struct nb_io *m);
int nb_io_decode(const uint8_t *p, size_t len, struct nb_io *m,
                 const char **why);

size_t nb_status_encode(uint8_t *out, int32_t status);
int nb_status_decode(const uint8_t *p, size_t len, int32_t *status,
                     const char **why);

struct nb_event_body {
    uint32_t kind;
    uint64_t value;
};
size_t nb_event_encode(uint8_t *out, const struct nb_event_body *m);
int nb_event_decode(const uint8_t *p, size_t len, struct nb_event_body *m,
                    const char **why);

/* ---- USB (PROTOCOL.md section 8) ---------------------------------------- */

/* OPEN reply of a usb export (status OK; a refusal is nb_opened's). */
struct nb_usb_opened {
    uint32_t speed;                 /* 0 none .. 3 high */
    uint16_t vendor, product;
    uint64_t next_seq;
};
size_t nb_usb_opened_encode(uint8_t *out, const struct nb_usb_opened *m);
/* status gets the reply's status; m is filled when it is OK. */
int nb_usb_opened_decode(const uint8_t *p, size_t len, int32_t *status,
                         struct nb_usb_opened *m, const char **why);

/* URB completion statuses on the wire. */
enum nb_urb_status {
    NB_URB_OK = 0,
    NB_URB_STALL = 1,
    NB_URB_NODEV = 2,
    NB_URB_PROTO = 3,
    NB_URB_OVERFLOW = 4,
    NB_URB_UNLINKED = 5,
    NB_URB_SHUTDOWN = 6,
    NB_URB_INVAL = 7,
    NB_URB_MAX = 7,
};
/* Linux URB status (0 or -errno) <-> wire. */
uint32_t nb_urb_status_of(int err);
int nb_urb_errno(uint32_t st);

#define NB_URB_SHORT_NOT_OK 0x1u

struct nb_urb_iso {
    uint32_t offset, length;        /* request */
    uint32_t actual, status;        /* reply (status: enum nb_urb_status) */
};

/* A URB request's head. */
struct nb_urb {
    uint64_t seq, ack;
    uint8_t type;                   /* enum vusb_xfer_type */
    uint8_t ep;
    uint16_t flags;                 /* NB_URB_SHORT_NOT_OK */
    uint16_t interval, start_frame;
    uint8_t setup[8];
    uint32_t length;
    uint32_t nr_iso;
};
/* Whether data flows to the host (IN): CTRL by its setup packet. */
bool nb_urb_is_in(const struct nb_urb *m);
/* The nr packet descriptors (offset, length) that follow a URB's head. */
size_t nb_urb_iso_desc_encode(uint8_t *out, const struct nb_urb_iso *iso,
                              uint32_t nr);
/* Bytes of the whole URB body for m (descriptors and OUT data included). */
size_t nb_urb_body_len(const struct nb_urb *m);
size_t nb_urb_encode(uint8_t *out, const struct nb_urb *m);
/* Decodes and checks a whole URB body: the head into m, then m->nr_iso
 * descriptors into iso (room for NB_URB_MAX_ISO; offset and length filled,
 * each packet inside the buffer), *data pointing at the OUT data (NULL for
 * IN). */
int nb_urb_decode(const uint8_t *p, size_t len, struct nb_urb *m,
                  struct nb_urb_iso *iso, const uint8_t **data,
                  const char **why);

/* A URB reply's head (after the status, which is OK). */
struct nb_urb_result {
    uint64_t seq, reply_no;
    uint32_t status;                /* enum nb_urb_status */
    uint32_t actual, error_count, start_frame;
    uint32_t nr_iso, data_len;
};
/* The 48-byte head; nr_iso results (actual, status) and data_len bytes
 * follow it on the wire. */
size_t nb_urb_result_encode(uint8_t *out, const struct nb_urb_result *m);
size_t nb_urb_iso_result_encode(uint8_t *out, const struct nb_urb_iso *iso,
                                uint32_t nr);
/* Decodes a whole URB reply: *status always; when it is OK, m, nr_iso
 * results into iso (actual, status) and *data (data_len bytes). The lengths
 * must add up to len; nr_iso and data_len are checked against the limits
 * only: the caller compares them with what it asked. */
int nb_urb_reply_decode(const uint8_t *p, size_t len, int32_t *status,
                        struct nb_urb_result *m, struct nb_urb_iso *iso,
                        const uint8_t **data, const char **why);

struct nb_unlink {
    uint64_t seq, ack;
};
size_t nb_unlink_encode(uint8_t *out, const struct nb_unlink *m);
int nb_unlink_decode(const uint8_t *p, size_t len, struct nb_unlink *m,
                     const char **why);

/* Wire status <-> negative errno. */
int nb_status_errno(int32_t status);
int32_t nb_errno_status(int err);

#endif
