/* superspeed: presenting a USB 3 device to a guest as a high-speed one.
 * usbif's conn ring knows speeds up to high, so a SuperSpeed device is
 * reported at high speed, and the descriptors the guest reads must then be
 * those of a high-speed device, or its USB core refuses them (a
 * SuperSpeed device descriptor says bMaxPacketSize0 = 9, an exponent, which
 * a high-speed host takes for 9 bytes). The host's own controller still
 * runs the device at SuperSpeed; only the descriptors change:
 *   - device descriptor: bcdUSB 3.x -> 2.00 (so the guest reads no BOS
 *     descriptor), bMaxPacketSize0 9 -> 64;
 *   - configuration descriptor: SuperSpeed endpoint companions dropped,
 *     bulk wMaxPacketSize 1024 -> 512 (interrupt and isochronous endpoints
 *     keep theirs: 1024 is valid at high speed), wTotalLength fixed.
 * Pure functions: the libusb target applies them to GET_DESCRIPTOR
 * answers, the unit tests drive them directly. */
#ifndef NETBUS_VUSB_SUPERSPEED_H
#define NETBUS_VUSB_SUPERSPEED_H

#include <stddef.h>
#include <stdint.h>

/* Rewrites a whole device descriptor (18 bytes) in place. */
void superspeed_device_to_high(uint8_t *desc, size_t len);
/* Rewrites a whole configuration descriptor (len bytes as read, its
 * wTotalLength) in place; returns the new length. A malformed descriptor
 * is left as it is (the guest's USB core judges it). */
size_t superspeed_config_to_high(uint8_t *desc, size_t len);

#endif
