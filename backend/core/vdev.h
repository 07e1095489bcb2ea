/* vdev: Xen virtual disk names and device numbers, as libxl converts them
 * (libxl__device_disk_dev_number, libxl__devid_to_vdev): xvda = 51712,
 * xvdq and beyond use the extended form, "dDpP" and plain numbers too. */
#ifndef NETBUS_VDEV_H
#define NETBUS_VDEV_H

#include <stddef.h>

/* The device number of a vdev name, or -1. */
long vdev_to_devid(const char *vdev);
/* The vdev name of a device number ("xvda"), or the number itself. */
void devid_to_vdev(unsigned long devid, char *out, size_t len);

#endif
