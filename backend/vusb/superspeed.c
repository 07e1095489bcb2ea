/* superspeed: USB 3 descriptors as a high-speed device's (see superspeed.h). */
#include "superspeed.h"

#include <string.h>

enum {
    DT_DEVICE = 1,
    DT_CONFIG = 2,
    DT_ENDPOINT = 5,
    DT_SS_EP_COMPANION = 0x30,
    DT_SSP_ISO_EP_COMPANION = 0x31,
};

void superspeed_device_to_high(uint8_t *d, size_t len)
{
    if (len < 8 || d[1] != DT_DEVICE)
        return;
    unsigned bcd = d[2] | d[3] << 8;
    if (bcd >= 0x0300) { /* 2.00: no BOS for the guest to read */
        d[2] = 0x00;
        d[3] = 0x02;
    }
    if (d[7] == 9)
        d[7] = 64;
}

size_t superspeed_config_to_high(uint8_t *d, size_t len)
{
    if (len < 9 || d[1] != DT_CONFIG)
        return len;
    /* Check the whole chain first: rewrite all of it or nothing. */
    for (size_t at = 0; at < len;) {
        if (d[at] < 2 || d[at] > len - at)
            return len;
        at += d[at];
    }
    size_t out = 0;
    for (size_t at = 0; at < len;) {
        uint8_t n = d[at], type = d[at + 1];
        if (type != DT_SS_EP_COMPANION && type != DT_SSP_ISO_EP_COMPANION) {
            memmove(d + out, d + at, n);
            if (type == DT_ENDPOINT && n >= 7 && (d[out + 3] & 3) == 2) {
                unsigned mps = d[out + 4] | d[out + 5] << 8;
                if (mps > 512) {
                    d[out + 4] = 512 & 0xff;
                    d[out + 5] = 512 >> 8;
                }
            }
            out += n;
        }
        at += n;
    }
    d[2] = (uint8_t)(out & 0xff);
    d[3] = (uint8_t)(out >> 8);
    return out;
}
