/* The devices' presence in the umockdev testbed: the sysfs directory with
 * what libusb and libudev read, the /dev/bus/usb node (a FIFO, see usbfs.c),
 * the ioctl handler behind it, and the add/remove uevents libusb's hotplug
 * monitor receives. A device keeps its port (sysfs name 1-<port>) across
 * replugs and gets a new address each time, like on a real bus. */
#include "usbdev.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define USB_DEVICE_MAJOR 189

static UMockdevTestbed *testbed;
static struct usbdev_device *plugged[USBDEV_KINDS];
static int next_devnum = 2; /* 1 would be the root hub */

void testbed_init(UMockdevTestbed *tb)
{
    testbed = tb;
}

int usbdev_kind_by_name(const char *name)
{
    for (int k = 0; k < USBDEV_KINDS; k++)
        if (!strcmp(name, usbdev_models[k].name))
            return k;
    return -1;
}

struct usbdev_device *testbed_device(enum usbdev_kind kind)
{
    return plugged[kind];
}

static int allocate_devnum(void)
{
    int n = next_devnum;

    next_devnum = next_devnum >= 127 ? 2 : next_devnum + 1;
    return n;
}

static char *add_sysfs_device(const struct usbdev_model *m, int devnum, const char *devnode)
{
    int minor = (USBDEV_BUS - 1) * 128 + devnum - 1;
    g_autofree char *name = g_strdup_printf("%d-%d", USBDEV_BUS, m->port);
    g_autofree char *busnum = g_strdup_printf("%d", USBDEV_BUS);
    g_autofree char *devnum_s = g_strdup_printf("%d", devnum);
    g_autofree char *port = g_strdup_printf("%d", m->port);
    g_autofree char *speed = g_strdup_printf("%d", m->speed_mbps);
    g_autofree char *product = g_strdup_printf("%04x", m->product_id);
    g_autofree char *maxpacket = g_strdup_printf("%d", m->descriptors[7]);
    g_autofree char *dev = g_strdup_printf("%d:%d", USB_DEVICE_MAJOR, minor);
    g_autofree char *product_prop = g_strdup_printf("%x/%x/100", USBDEV_VENDOR, m->product_id);
    g_autofree char *busnum_prop = g_strdup_printf("%03d", USBDEV_BUS);
    g_autofree char *devnum_prop = g_strdup_printf("%03d", devnum);
    g_autofree char *minor_s = g_strdup_printf("%d", minor);
    char *syspath;

    syspath = umockdev_testbed_add_device(
        testbed, "usb", name, NULL,
        "busnum", busnum, "devnum", devnum_s, "devpath", port, "speed", speed,
        "idVendor", "1209", "idProduct", product, "bcdDevice", "0100",
        "version", " 2.00", "bDeviceClass", "00", "bDeviceSubClass", "00",
        "bDeviceProtocol", "00", "bMaxPacketSize0", maxpacket,
        "bNumConfigurations", "1", "bNumInterfaces", " 1", "bConfigurationValue", "1",
        "bmAttributes", "80", "bMaxPower", "100mA", "maxchild", "0",
        "manufacturer", m->strings[1], "product", m->strings[2], "serial", m->strings[3],
        "authorized", "1", "removable", "removable", "dev", dev, NULL,
        "DEVTYPE", "usb_device", "DEVNAME", devnode, "DRIVER", "usb",
        "PRODUCT", product_prop, "TYPE", "0/0/0", "BUSNUM", busnum_prop,
        "DEVNUM", devnum_prop, "MAJOR", "189", "MINOR", minor_s, NULL);
    if (syspath) {
        /* the binding takes a mutable buffer it only reads */
        g_autofree guint8 *desc = g_memdup2(m->descriptors, m->descriptors_len);
        umockdev_testbed_set_attribute_binary(testbed, syspath, "descriptors", desc,
                                              (gssize)m->descriptors_len);
    }
    return syspath;
}

int testbed_plug(enum usbdev_kind kind)
{
    const struct usbdev_model *m = &usbdev_models[kind];
    g_autofree char *root = umockdev_testbed_get_root_dir(testbed);
    g_autofree char *dir = NULL;
    struct usbdev_device *d;
    GError *error = NULL;

    if (plugged[kind])
        return -EEXIST;
    d = device_new(m, allocate_devnum());
    d->devnode = g_strdup_printf("/dev/bus/usb/%03d/%03d", USBDEV_BUS, d->devnum);
    d->fifo_path = g_strconcat(root, d->devnode, NULL);
    dir = g_path_get_dirname(d->fifo_path);
    if (g_mkdir_with_parents(dir, 0755) < 0 || mkfifo(d->fifo_path, 0666) < 0 ||
        usbfs_ready_init(d) < 0) {
        g_warning("usbdev: cannot create %s: %s", d->fifo_path, g_strerror(errno));
        device_free(d);
        return -EIO;
    }
    d->syspath = add_sysfs_device(m, d->devnum, d->devnode);
    d->handler = usbfs_handler_new(d);
    if (!d->syspath || !umockdev_testbed_attach_ioctl(testbed, d->devnode, d->handler, &error)) {
        g_warning("usbdev: cannot plug %s: %s", m->name, error ? error->message : "sysfs");
        g_clear_error(&error);
        return -EIO;
    }
    plugged[kind] = d;
    umockdev_testbed_uevent(testbed, d->syspath, "add");
    return 0;
}

/* Like a cable pulled: URBs end (usbfs_device_gone), then the node and the
 * sysfs device go with a remove uevent. Open clients keep the device object
 * until they close. */
int testbed_unplug(enum usbdev_kind kind)
{
    struct usbdev_device *d = plugged[kind];
    GError *error = NULL;

    if (!d)
        return -ENODEV;
    plugged[kind] = NULL;
    usbfs_device_gone(d);
    umockdev_testbed_uevent(testbed, d->syspath, "remove");
    if (!umockdev_testbed_detach_ioctl(testbed, d->devnode, &error)) {
        g_warning("usbdev: detaching %s: %s", d->devnode, error->message);
        g_clear_error(&error);
    }
    umockdev_testbed_remove_device(testbed, d->syspath);
    unlink(d->fifo_path);
    if (!d->clients)
        testbed_release(d);
    return 0;
}

void testbed_release(struct usbdev_device *d)
{
    g_object_unref(d->handler);
    if (d->ready_fd >= 0)
        close(d->ready_fd);
    device_free(d);
}

void testbed_config_changed(struct usbdev_device *d)
{
    umockdev_testbed_set_attribute(testbed, d->syspath, "bConfigurationValue",
                                   d->config ? "1" : "");
}
