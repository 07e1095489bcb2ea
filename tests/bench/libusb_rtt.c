/* libusb_rtt: what one URB costs on the emulated nb-bulk device itself, with
 * no Xen ring and no netbus in the way, for the usb benchmark's context
 * line. Run under usbdev (tests/usbdev); it opens 1209:4e42, claims
 * interface 0, resets the loopback FIFO, then times C round trips of each
 * kind, one synchronous transfer at a time, the same sequence as
 * `xenfront usb rtt`: control GET_DESCRIPTOR(device) of 18 bytes, 512-byte
 * bulk OUT, 512-byte bulk IN of what the OUT wrote (checked).
 *   libusb_rtt [--count C]
 *       prints `result=ok count=C control_us=... bulk512_out_us=...
 *       bulk512_in_us=...` (medians)
 * Built by tests/bench/usb.sh; C11, libusb-1.0 only. */
#include <libusb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NB_VENDOR 0x1209
#define NB_BULK_PRODUCT 0x4e42
#define NB_RESET 0x02
#define EP_OUT 0x01
#define EP_IN 0x81
#define TIMEOUT_MS 5000

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

static int bulk(libusb_device_handle *h, unsigned char ep, uint8_t *buf, int len,
                double *us)
{
    int done = 0;
    double t0 = now_us();
    int r = libusb_bulk_transfer(h, ep, buf, len, &done, TIMEOUT_MS);
    *us = now_us() - t0;
    if (r != 0 || done != len) {
        fprintf(stderr, "libusb_rtt: bulk %s: %s (%d of %d bytes)\n",
                ep & 0x80 ? "IN" : "OUT", libusb_error_name(r), done, len);
        return -1;
    }
    return 0;
}

static int run(libusb_device_handle *h, size_t n, double *t_ctrl, double *t_out,
               double *t_in)
{
    uint8_t desc[18], out_buf[512], in_buf[512];
    if (libusb_control_transfer(h, 0x40, NB_RESET, 0, 0, NULL, 0, TIMEOUT_MS) != 0) {
        fprintf(stderr, "libusb_rtt: RESET failed\n");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        double t0 = now_us();
        int r = libusb_control_transfer(h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
                                        LIBUSB_DT_DEVICE << 8, 0, desc, sizeof(desc),
                                        TIMEOUT_MS);
        t_ctrl[i] = now_us() - t0;
        if (r != (int)sizeof(desc)) {
            fprintf(stderr, "libusb_rtt: GET_DESCRIPTOR: %s\n",
                    r < 0 ? libusb_error_name(r) : "short");
            return -1;
        }
        memset(out_buf, (int)(i & 0xff), sizeof(out_buf));
        if (bulk(h, EP_OUT, out_buf, sizeof(out_buf), &t_out[i]) < 0 ||
            bulk(h, EP_IN, in_buf, sizeof(in_buf), &t_in[i]) < 0)
            return -1;
        if (memcmp(in_buf, out_buf, sizeof(in_buf)) != 0) {
            fprintf(stderr, "libusb_rtt: bulk IN %zu did not return the 512 bytes "
                    "written\n", i);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long n = 1000;
    if (argc == 3 && strcmp(argv[1], "--count") == 0)
        n = strtoul(argv[2], NULL, 10);
    else if (argc != 1) {
        fprintf(stderr, "usage: libusb_rtt [--count C]\n");
        return 2;
    }
    if (n == 0 || n > 1000000) {
        fprintf(stderr, "libusb_rtt: --count out of range\n");
        return 2;
    }
    double *t_ctrl = calloc(n, sizeof(double)), *t_out = calloc(n, sizeof(double)),
           *t_in = calloc(n, sizeof(double));
    libusb_context *ctx = NULL;
    libusb_device_handle *h = NULL;
    int rc = 1;
    if (!t_ctrl || !t_out || !t_in || libusb_init(&ctx) != 0)
        goto out;
    h = libusb_open_device_with_vid_pid(ctx, NB_VENDOR, NB_BULK_PRODUCT);
    if (!h) {
        fprintf(stderr, "libusb_rtt: no nb-bulk device (run it under usbdev --bulk)\n");
        goto out;
    }
    int r = libusb_claim_interface(h, 0);
    if (r != 0) {
        fprintf(stderr, "libusb_rtt: claim interface 0: %s\n", libusb_error_name(r));
        goto out;
    }
    if (run(h, n, t_ctrl, t_out, t_in) == 0) {
        printf("result=ok count=%lu control_us=%.1f bulk512_out_us=%.1f "
               "bulk512_in_us=%.1f\n", n, median(t_ctrl, n), median(t_out, n),
               median(t_in, n));
        rc = 0;
    }
    libusb_release_interface(h, 0);
out:
    if (h)
        libusb_close(h);
    if (ctx)
        libusb_exit(ctx);
    free(t_ctrl);
    free(t_out);
    free(t_in);
    return rc;
}
