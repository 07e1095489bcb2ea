/* frame: netbus v1 wire codec (see frame.h and PROTOCOL.md). */
#include "frame.h"

#include <errno.h>
#include <string.h>

/* ---- little-endian access ------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- header ---------------------------------------------------------------- */

void nb_hdr_encode(uint8_t out[NB_HDR_SIZE], const struct nb_hdr *h)
{
    put32(out, NB_MAGIC);
    out[4] = NB_VERSION;
    out[5] = h->type;
    put16(out + 6, h->flags);
    put32(out + 8, h->session);
    put32(out + 12, h->length);
    put64(out + 16, h->tag);
}

void nb_hdr_set_tag(uint8_t hdr[NB_HDR_SIZE], uint64_t tag)
{
    put64(hdr + 16, tag);
}

static bool is_handshake(uint8_t t)
{
    return t >= NB_HELLO && t <= NB_REFUSED;
}

/* Request types that have a reply form. */
static bool has_reply(uint8_t t)
{
    switch (t) {
    case NB_OPEN: case NB_CLOSE: case NB_READ: case NB_WRITE: case NB_FLUSH:
    case NB_DISCARD: case NB_PING: case NB_QUIESCE: case NB_RESUME:
    case NB_HANDOVER: case NB_URB: case NB_UNLINK:
        return true;
    default:
        return false;
    }
}

const char *nb_type_name(uint8_t type)
{
    static const struct { uint8_t t; const char *n; } names[] = {
        { NB_HELLO, "HELLO" }, { NB_CHALLENGE, "CHALLENGE" },
        { NB_AUTH, "AUTH" }, { NB_WELCOME, "WELCOME" },
        { NB_REFUSED, "REFUSED" }, { NB_OPEN, "OPEN" }, { NB_CLOSE, "CLOSE" },
        { NB_READ, "READ" }, { NB_WRITE, "WRITE" }, { NB_FLUSH, "FLUSH" },
        { NB_DISCARD, "DISCARD" }, { NB_EVENT, "EVENT" }, { NB_PING, "PING" },
        { NB_QUIESCE, "QUIESCE" }, { NB_RESUME, "RESUME" },
        { NB_HANDOVER, "HANDOVER" }, { NB_URB, "URB" },
        { NB_UNLINK, "UNLINK" },
    };
    uint8_t base = type & (uint8_t)~NB_REPLY;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].t == base)
            return type & NB_REPLY ? "reply" : names[i].n;
    return "unknown";
}

int nb_hdr_decode(const uint8_t in[NB_HDR_SIZE], struct nb_hdr *h,
                  bool authed, const char **why)
{
    if (get32(in) != NB_MAGIC) {
        *why = "bad magic (not a netbus peer)";
        return -1;
    }
    if (in[4] != NB_VERSION) {
        *why = "unsupported frame version";
        return -1;
    }
    h->type = in[5];
    h->flags = get16(in + 6);
    h->session = get32(in + 8);
    h->length = get32(in + 12);
    h->tag = get64(in + 16);
    uint8_t base = h->type & (uint8_t)~NB_REPLY;
    bool reply = h->type & NB_REPLY;
    if (reply ? !has_reply(base)
              : !(is_handshake(base) || has_reply(base) || base == NB_EVENT)) {
        *why = "unknown frame type";
        return -1;
    }
    if (is_handshake(base) != !authed) {
        *why = authed ? "handshake frame after authentication"
                      : "frame before authentication";
        return -1;
    }
    if (is_handshake(base) && (h->session || h->tag)) {
        *why = "handshake frame with a session or tag";
        return -1;
    }
    if (h->flags & ~(h->type == NB_WRITE ? NB_F_PREFLUSH : 0u)) {
        *why = "reserved header flags set";
        return -1;
    }
    uint32_t min = 0, max = NB_MAX_CTRL;
    if (h->type == NB_WRITE) {
        min = NB_IO_BODY;
        max = NB_IO_BODY + NB_MAX_DATA;
    } else if (h->type == (NB_READ | NB_REPLY)) {
        min = NB_STATUS_BODY;
        max = NB_STATUS_BODY + NB_MAX_DATA;
    } else if (h->type == NB_URB) {
        min = NB_URB_BODY;
        max = NB_URB_BODY + NB_URB_MAX_ISO * NB_URB_ISO_DESC + NB_URB_MAX_DATA;
    } else if (h->type == (NB_URB | NB_REPLY)) {
        min = NB_STATUS_BODY;
        max = NB_URB_REPLY_BODY + NB_URB_MAX_ISO * NB_URB_ISO_DESC +
              NB_URB_MAX_DATA;
    }
    if (h->length < min || h->length > max) {
        *why = "frame length out of bounds for its type";
        return -1;
    }
    return 0;
}

bool nb_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > NB_NAME_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- bodies ---------------------------------------------------------------- */

/* A length-prefixed name at p (u8 length), within [p, end). */
static int get_name(const uint8_t **p, const uint8_t *end, char *out,
                    size_t max, bool is_owner, const char **why)
{
    if (*p >= end) {
        *why = "truncated name";
        return -1;
    }
    size_t n = **p;
    (*p)++;
    if (n > max || (size_t)(end - *p) < n) {
        *why = "name length out of bounds";
        return -1;
    }
    if (is_owner) {
        for (size_t i = 0; i < n; i++)
            if ((*p)[i] < 0x20 || (*p)[i] > 0x7e) {
                *why = "owner is not printable ASCII";
                return -1;
            }
    } else if (!nb_name_ok((const char *)*p, n)) {
        *why = "bad name (want 1-64 of A-Z a-z 0-9 . _ -)";
        return -1;
    }
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    return 0;
}

static size_t put_name(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    p[0] = (uint8_t)n;
    memcpy(p + 1, s, n);
    return n + 1;
}

size_t nb_hello_encode(uint8_t *out, const struct nb_hello *m)
{
    put16(out, m->min_version);
    put16(out + 2, m->max_version);
    put32(out + 4, m->flags);
    put32(out + 8, m->keepalive_ms);
    memcpy(out + 12, m->nonce, NB_NONCE_SIZE);
    return 12 + NB_NONCE_SIZE + put_name(out + 12 + NB_NONCE_SIZE, m->name);
}

int nb_hello_decode(const uint8_t *p, size_t len, struct nb_hello *m,
                    const char **why)
{
    const uint8_t *end = p + len;
    if (len < 12 + NB_NONCE_SIZE + 1) {
        *why = "HELLO too short";
        return -1;
    }
    m->min_version = get16(p);
    m->max_version = get16(p + 2);
    m->flags = get32(p + 4);
    m->keepalive_ms = get32(p + 8);
    memcpy(m->nonce, p + 12, NB_NONCE_SIZE);
    p += 12 + NB_NONCE_SIZE;
    if (m->flags & ~NB_HELLO_TLS) {
        *why = "HELLO: reserved flags set";
        return -1;
    }
    if (get_name(&p, end, m->name, NB_NAME_MAX, false, why) < 0)
        return -1;
    if (p != end) {
        *why = "HELLO: trailing bytes";
        return -1;
    }
    return 0;
}

size_t nb_challenge_encode(uint8_t *out, const struct nb_challenge *m)
{
    put16(out, m->version);
    put16(out + 2, 0);
    put32(out + 4, m->flags);
    memcpy(out + 8, m->nonce, NB_NONCE_SIZE);
    return 8 + NB_NONCE_SIZE + put_name(out + 8 + NB_NONCE_SIZE, m->name);
}

int nb_challenge_decode(const uint8_t *p, size_t len, struct nb_challenge *m,
                        const char **why)
{
    const uint8_t *end = p + len;
    if (len < 8 + NB_NONCE_SIZE + 1) {
        *why = "CHALLENGE too short";
        return -1;
    }
    m->version = get16(p);
    m->flags = get32(p + 4);
    if (get16(p + 2) || (m->flags & ~NB_HELLO_TLS)) {
        *why = "CHALLENGE: reserved bits set";
        return -1;
    }
    memcpy(m->nonce, p + 8, NB_NONCE_SIZE);
    p += 8 + NB_NONCE_SIZE;
    if (get_name(&p, end, m->name, NB_NAME_MAX, false, why) < 0)
        return -1;
    if (p != end) {
        *why = "CHALLENGE: trailing bytes";
        return -1;
    }
    return 0;
}

int nb_mac_decode(const uint8_t *p, size_t len, uint8_t mac[NB_MAC_SIZE],
                  const char **why)
{
    if (len != NB_MAC_SIZE) {
        *why = "MAC of the wrong size";
        return -1;
    }
    memcpy(mac, p, NB_MAC_SIZE);
    return 0;
}

size_t nb_u32_encode(uint8_t *out, uint32_t v)
{
    put32(out, v);
    return 4;
}

int nb_refused_decode(const uint8_t *p, size_t len, uint32_t *code,
                      const char **why)
{
    if (len != 4) {
        *why = "REFUSED of the wrong size";
        return -1;
    }
    *code = get32(p);
    return 0;
}

size_t nb_open_encode(uint8_t *out, const struct nb_open *m)
{
    put32(out, m->flags);
    put32(out + 4, m->resume_session);
    size_t n = 8 + put_name(out + 8, m->name);
    return n + put_name(out + n, m->owner);
}

int nb_open_decode(const uint8_t *p, size_t len, struct nb_open *m,
                   const char **why)
{
    const uint8_t *end = p + len;
    if (len < 8) {
        *why = "OPEN too short";
        return -1;
    }
    m->flags = get32(p);
    m->resume_session = get32(p + 4);
    if (m->flags & ~(NB_OPEN_READONLY | NB_OPEN_USB)) {
        *why = "OPEN: reserved flags set";
        return -1;
    }
    p += 8;
    if (get_name(&p, end, m->name, NB_NAME_MAX, false, why) < 0 ||
        get_name(&p, end, m->owner, NB_OWNER_MAX, true, why) < 0)
        return -1;
    if (p != end) {
        *why = "OPEN: trailing bytes";
        return -1;
    }
    return 0;
}

size_t nb_opened_encode(uint8_t *out, const struct nb_opened *m)
{
    put32(out, (uint32_t)m->status);
    if (m->status != NB_ST_OK) {
        put32(out + 4, 0);
        return NB_STATUS_BODY;
    }
    put32(out + 4, m->flags);
    put64(out + 8, m->size);
    put32(out + 16, m->sector_size);
    put32(out + 20, m->physical_sector_size);
    put32(out + 24, m->discard_granularity);
    put32(out + 28, 0);
    return NB_OPENED_BODY;
}

static bool pow2_in(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v >= lo && v <= hi && !(v & (v - 1));
}

int nb_opened_decode(const uint8_t *p, size_t len, struct nb_opened *m,
                     const char **why)
{
    memset(m, 0, sizeof(*m));
    if (len < NB_STATUS_BODY || get32(p) > NB_ST_MAX) {
        *why = "OPEN reply: too short or unknown status";
        return -1;
    }
    m->status = (int32_t)get32(p);
    if (m->status != NB_ST_OK) {
        if (len != NB_STATUS_BODY || get32(p + 4)) {
            *why = "OPEN reply: an error with more than its status";
            return -1;
        }
        return 0;
    }
    if (len != NB_OPENED_BODY) {
        *why = "OPEN reply of the wrong size";
        return -1;
    }
    m->flags = get32(p + 4);
    m->size = get64(p + 8);
    m->sector_size = get32(p + 16);
    m->physical_sector_size = get32(p + 20);
    m->discard_granularity = get32(p + 24);
    if ((m->flags & ~(NB_INFO_READONLY | NB_INFO_FLUSH | NB_INFO_DISCARD)) ||
        get32(p + 28)) {
        *why = "OPEN reply: reserved bits set";
        return -1;
    }
    if (!pow2_in(m->sector_size, 512, 4096) ||
        !pow2_in(m->physical_sector_size, m->sector_size, 65536) ||
        !pow2_in(m->discard_granularity, 512, 1u << 30) ||
        m->size % m->sector_size || m->size > (UINT64_MAX >> 1)) {
        *why = "OPEN reply: impossible disk geometry";
        return -1;
    }
    return 0;
}

size_t nb_io_encode(uint8_t *out, const struct nb_io *m)
{
    put64(out, m->offset);
    put32(out + 8, m->len);
    put32(out + 12, 0);
    return NB_IO_BODY;
}

int nb_io_decode(const uint8_t *p, size_t len, struct nb_io *m,
                 const char **why)
{
    if (len < NB_IO_BODY) {
        *why = "request body too short";
        return -1;
    }
    m->offset = get64(p);
    m->len = get32(p + 8);
    if (get32(p + 12)) {
        *why = "request body: reserved bits set";
        return -1;
    }
    if (m->len > NB_MAX_DATA) {
        *why = "request longer than the data limit";
        return -1;
    }
    return 0;
}

size_t nb_status_encode(uint8_t *out, int32_t status)
{
    put32(out, (uint32_t)status);
    put32(out + 4, 0);
    return NB_STATUS_BODY;
}

int nb_status_decode(const uint8_t *p, size_t len, int32_t *status,
                     const char **why)
{
    if (len < NB_STATUS_BODY) {
        *why = "reply too short";
        return -1;
    }
    uint32_t v = get32(p);
    if (v > NB_ST_MAX || get32(p + 4)) {
        *why = "reply: unknown status or reserved bits";
        return -1;
    }
    *status = (int32_t)v;
    return 0;
}

size_t nb_event_encode(uint8_t *out, const struct nb_event_body *m)
{
    put32(out, m->kind);
    put32(out + 4, 0);
    put64(out + 8, m->value);
    return 16;
}

int nb_event_decode(const uint8_t *p, size_t len, struct nb_event_body *m,
                    const char **why)
{
    if (len != 16) {
        *why = "EVENT of the wrong size";
        return -1;
    }
    m->kind = get32(p);
    m->value = get64(p + 8);
    if (get32(p + 4) || m->kind < NB_EV_GONE || m->kind > NB_EV_USB_SPEED ||
        (m->kind == NB_EV_USB_SPEED && m->value > 3)) {
        *why = "EVENT: unknown kind or reserved bits";
        return -1;
    }
    return 0;
}

/* ---- USB ------------------------------------------------------------------ */

size_t nb_usb_opened_encode(uint8_t *out, const struct nb_usb_opened *m)
{
    put32(out, NB_ST_OK);
    put32(out + 4, NB_INFO_USB);
    put32(out + 8, m->speed);
    put16(out + 12, m->vendor);
    put16(out + 14, m->product);
    put64(out + 16, m->next_seq);
    put64(out + 24, 0);
    return NB_OPENED_BODY;
}

int nb_usb_opened_decode(const uint8_t *p, size_t len, int32_t *status,
                         struct nb_usb_opened *m, const char **why)
{
    memset(m, 0, sizeof(*m));
    if (len < NB_STATUS_BODY || get32(p) > NB_ST_MAX) {
        *why = "OPEN reply: too short or unknown status";
        return -1;
    }
    *status = (int32_t)get32(p);
    if (*status != NB_ST_OK) {
        if (len != NB_STATUS_BODY || get32(p + 4)) {
            *why = "OPEN reply: an error with more than its status";
            return -1;
        }
        return 0;
    }
    if (len != NB_OPENED_BODY || get32(p + 4) != NB_INFO_USB ||
        get64(p + 24)) {
        *why = "OPEN reply: not a usb export's answer";
        return -1;
    }
    m->speed = get32(p + 8);
    m->vendor = get16(p + 12);
    m->product = get16(p + 14);
    m->next_seq = get64(p + 16);
    if (m->speed > 3 || m->next_seq == 0) {
        *why = "OPEN reply: impossible speed or sequence number";
        return -1;
    }
    return 0;
}

uint32_t nb_urb_status_of(int err)
{
    switch (err) {
    case 0: return NB_URB_OK;
    case -EPIPE: return NB_URB_STALL;
    case -ENODEV: return NB_URB_NODEV;
    case -EOVERFLOW: return NB_URB_OVERFLOW;
    case -ECONNRESET: return NB_URB_UNLINKED;
    case -ESHUTDOWN: return NB_URB_SHUTDOWN;
    case -EINVAL: return NB_URB_INVAL;
    default: return NB_URB_PROTO;
    }
}

int nb_urb_errno(uint32_t st)
{
    static const int map[] = {
        [NB_URB_OK] = 0, [NB_URB_STALL] = -EPIPE, [NB_URB_NODEV] = -ENODEV,
        [NB_URB_PROTO] = -EPROTO, [NB_URB_OVERFLOW] = -EOVERFLOW,
        [NB_URB_UNLINKED] = -ECONNRESET, [NB_URB_SHUTDOWN] = -ESHUTDOWN,
        [NB_URB_INVAL] = -EINVAL,
    };
    return st <= NB_URB_MAX ? map[st] : -EPROTO;
}

bool nb_urb_is_in(const struct nb_urb *m)
{
    return m->type == 2 ? (m->setup[0] & 0x80) != 0 : (m->ep & 0x80) != 0;
}

size_t nb_urb_body_len(const struct nb_urb *m)
{
    return NB_URB_BODY + (size_t)m->nr_iso * NB_URB_ISO_DESC +
           (nb_urb_is_in(m) ? 0 : m->length);
}

size_t nb_urb_iso_desc_encode(uint8_t *out, const struct nb_urb_iso *iso,
                              uint32_t nr)
{
    for (uint32_t i = 0; i < nr; i++) {
        put32(out + i * NB_URB_ISO_DESC, iso[i].offset);
        put32(out + i * NB_URB_ISO_DESC + 4, iso[i].length);
    }
    return (size_t)nr * NB_URB_ISO_DESC;
}

size_t nb_urb_encode(uint8_t *out, const struct nb_urb *m)
{
    put64(out, m->seq);
    put64(out + 8, m->ack);
    out[16] = m->type;
    out[17] = m->ep;
    put16(out + 18, m->flags);
    put16(out + 20, m->interval);
    put16(out + 22, m->start_frame);
    memcpy(out + 24, m->setup, 8);
    put32(out + 32, m->length);
    put32(out + 36, m->nr_iso);
    return NB_URB_BODY;
}

int nb_urb_decode(const uint8_t *p, size_t len, struct nb_urb *m,
                  struct nb_urb_iso *iso, const uint8_t **data,
                  const char **why)
{
    if (len < NB_URB_BODY) {
        *why = "URB too short";
        return -1;
    }
    m->seq = get64(p);
    m->ack = get64(p + 8);
    m->type = p[16];
    m->ep = p[17];
    m->flags = get16(p + 18);
    m->interval = get16(p + 20);
    m->start_frame = get16(p + 22);
    memcpy(m->setup, p + 24, 8);
    m->length = get32(p + 32);
    m->nr_iso = get32(p + 36);
    if (m->seq == 0 || m->type > 3 || (m->flags & ~NB_URB_SHORT_NOT_OK) ||
        (m->ep & 0x70)) {
        *why = "URB: sequence 0, unknown type or reserved bits set";
        return -1;
    }
    if (m->length > NB_URB_MAX_DATA || m->nr_iso > NB_URB_MAX_ISO ||
        (m->type != 0 && m->nr_iso) || (m->type == 2 && (m->ep & 0x0f))) {
        *why = "URB: length, packet count or endpoint out of bounds";
        return -1;
    }
    if (len != nb_urb_body_len(m)) {
        *why = "URB: body length does not match its head";
        return -1;
    }
    const uint8_t *d = p + NB_URB_BODY;
    for (uint32_t i = 0; i < m->nr_iso; i++, d += NB_URB_ISO_DESC) {
        iso[i].offset = get32(d);
        iso[i].length = get32(d + 4);
        iso[i].actual = iso[i].status = 0;
        if (iso[i].offset > m->length ||
            iso[i].length > m->length - iso[i].offset) {
            *why = "URB: isochronous packet outside the buffer";
            return -1;
        }
    }
    *data = nb_urb_is_in(m) ? NULL : d;
    return 0;
}

size_t nb_urb_result_encode(uint8_t *out, const struct nb_urb_result *m)
{
    put32(out, NB_ST_OK);
    put32(out + 4, 0);
    put64(out + 8, m->seq);
    put64(out + 16, m->reply_no);
    put32(out + 24, m->status);
    put32(out + 28, m->actual);
    put32(out + 32, m->error_count);
    put32(out + 36, m->start_frame);
    put32(out + 40, m->nr_iso);
    put32(out + 44, m->data_len);
    return NB_URB_REPLY_BODY;
}

size_t nb_urb_iso_result_encode(uint8_t *out, const struct nb_urb_iso *iso,
                                uint32_t nr)
{
    for (uint32_t i = 0; i < nr; i++) {
        put32(out + i * NB_URB_ISO_DESC, iso[i].actual);
        put32(out + i * NB_URB_ISO_DESC + 4, iso[i].status);
    }
    return (size_t)nr * NB_URB_ISO_DESC;
}

int nb_urb_reply_decode(const uint8_t *p, size_t len, int32_t *status,
                        struct nb_urb_result *m, struct nb_urb_iso *iso,
                        const uint8_t **data, const char **why)
{
    if (nb_status_decode(p, len, status, why) < 0)
        return -1;
    if (*status != NB_ST_OK) {
        if (len != NB_STATUS_BODY) {
            *why = "URB reply: an error with more than its status";
            return -1;
        }
        return 0;
    }
    if (len < NB_URB_REPLY_BODY) {
        *why = "URB reply too short";
        return -1;
    }
    m->seq = get64(p + 8);
    m->reply_no = get64(p + 16);
    m->status = get32(p + 24);
    m->actual = get32(p + 28);
    m->error_count = get32(p + 32);
    m->start_frame = get32(p + 36);
    m->nr_iso = get32(p + 40);
    m->data_len = get32(p + 44);
    if (m->status > NB_URB_MAX || m->nr_iso > NB_URB_MAX_ISO ||
        m->data_len > NB_URB_MAX_DATA || m->actual > NB_URB_MAX_DATA ||
        m->reply_no == 0) {
        *why = "URB reply: unknown status or counts out of bounds";
        return -1;
    }
    if (len != NB_URB_REPLY_BODY + (size_t)m->nr_iso * NB_URB_ISO_DESC +
               m->data_len) {
        *why = "URB reply: body length does not match its head";
        return -1;
    }
    const uint8_t *d = p + NB_URB_REPLY_BODY;
    for (uint32_t i = 0; i < m->nr_iso; i++, d += NB_URB_ISO_DESC) {
        iso[i].actual = get32(d);
        iso[i].status = get32(d + 4);
        if (iso[i].status > NB_URB_MAX) {
            *why = "URB reply: unknown packet status";
            return -1;
        }
    }
    *data = d;
    return 0;
}

size_t nb_unlink_encode(uint8_t *out, const struct nb_unlink *m)
{
    put64(out, m->seq);
    put64(out + 8, m->ack);
    return NB_UNLINK_BODY;
}

int nb_unlink_decode(const uint8_t *p, size_t len, struct nb_unlink *m,
                     const char **why)
{
    if (len != NB_UNLINK_BODY) {
        *why = "UNLINK of the wrong size";
        return -1;
    }
    m->seq = get64(p);
    m->ack = get64(p + 8);
    if (m->seq == 0) {
        *why = "UNLINK of sequence 0";
        return -1;
    }
    return 0;
}

int nb_status_errno(int32_t status)
{
    static const int map[] = {
        [NB_ST_OK] = 0, [NB_ST_EIO] = -EIO, [NB_ST_NOENT] = -ENOENT,
        [NB_ST_ROFS] = -EROFS, [NB_ST_INVAL] = -EINVAL,
        [NB_ST_NOTSUP] = -EOPNOTSUPP, [NB_ST_NOSPC] = -ENOSPC,
        [NB_ST_BUSY] = -EBUSY, [NB_ST_STALE] = -ESTALE,
    };
    return status >= 0 && status <= NB_ST_MAX ? map[status] : -EIO;
}

int32_t nb_errno_status(int err)
{
    switch (err) {
    case 0: return NB_ST_OK;
    case -ENOENT: return NB_ST_NOENT;
    case -EROFS: return NB_ST_ROFS;
    case -EINVAL: return NB_ST_INVAL;
    case -EOPNOTSUPP: return NB_ST_NOTSUP;
    case -ENOSPC: return NB_ST_NOSPC;
    case -EBUSY: return NB_ST_BUSY;
    case -ESTALE: return NB_ST_STALE;
    default: return NB_ST_EIO;
    }
}
