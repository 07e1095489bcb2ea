/* client_open: what the LBE side's targets share about opening an export
 * (remote.c for disks, usb_remote.c for USB devices): the OPEN frame of a
 * first open or of a resume, and a refusal put in words for the log and
 * xenstore. */
#ifndef NETBUS_CHANNEL_CLIENT_OPEN_H
#define NETBUS_CHANNEL_CLIENT_OPEN_H

#include "peer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sends OPEN (flags NB_OPEN_*, resume: the session to take back, 0 for a
 * new one) on call; reply gets the answer. 0, or -1 if the connection is
 * not up. */
int nb_send_open(struct nb_peer *p, struct nb_call *call, uint32_t flags,
                 uint32_t resume, const char *export_name, const char *owner,
                 int (*reply)(struct nb_call *call, const struct nb_hdr *h,
                              const uint8_t *payload));

/* Why server refused to open export_name (status st), into buf; returns
 * buf. usb: the client asked for a USB device (else a disk). */
const char *nb_open_refusal(char *buf, size_t len, int32_t st,
                            const char *server, const char *export_name,
                            bool usb);

#endif
