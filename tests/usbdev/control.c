/* The control socket: a unix stream socket taking one command a line and
 * answering one line each.
 *   plug NAME     -> ok | error ...      (NAME: nb-bulk, nb-hid, nb-iso)
 *   unplug NAME   -> ok | error ...
 *   hold NAME     -> ok | error ...      (nb-hid: no report until release)
 *   release NAME  -> ok | error ...
 *   stats NAME    -> OUT_COUNT OUT_BYTES IN_COUNT IN_BYTES | error ...
 *                    (nb-iso: packets, and a fifth number, OUT_SUM)
 * stats reads the device's counters from outside the USB path, so a test can
 * check "executed once, none twice" without trusting the device's answer to
 * GET_COUNTERS through libusb. */
#include "usbdev.h"

#include <errno.h>
#include <glib-unix.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct connection {
    int fd;
    GString *in;
};

static char *run_command(const char *line)
{
    g_auto(GStrv) words = g_strsplit(line, " ", 3);
    int kind;
    int r;

    if (!words[0] || !words[1] || words[2])
        return g_strdup("error usage: plug|unplug|hold|release|stats NAME");
    kind = usbdev_kind_by_name(words[1]);
    if (kind < 0)
        return g_strdup_printf("error unknown device %s", words[1]);
    g_rec_mutex_lock(&usbdev_lock);
    if (!strcmp(words[0], "stats")) {
        struct usbdev_device *d = testbed_device(kind);
        char *s = !d ? g_strdup("error not plugged")
                  : kind == USBDEV_ISO
                      ? g_strdup_printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
                                        d->counters[0], d->counters[1], d->counters[2],
                                        d->counters[3], d->out_sum)
                      : g_strdup_printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
                                        d->counters[0], d->counters[1], d->counters[2],
                                        d->counters[3]);
        g_rec_mutex_unlock(&usbdev_lock);
        return s;
    }
    if (!strcmp(words[0], "plug"))
        r = testbed_plug(kind);
    else if (!strcmp(words[0], "unplug"))
        r = testbed_unplug(kind);
    else if (!strcmp(words[0], "hold") || !strcmp(words[0], "release")) {
        struct usbdev_device *d = testbed_device(kind);
        r = d ? device_hold_reports(d, words[0][0] == 'h') : -ENODEV;
    } else
        r = -EINVAL;
    g_rec_mutex_unlock(&usbdev_lock);
    return r ? g_strdup_printf("error %s", g_strerror(-r)) : g_strdup("ok");
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer data)
{
    struct connection *conn = data;
    char buf[512];
    ssize_t n = read(fd, buf, sizeof(buf));
    char *nl;

    (void)cond;
    if (n <= 0) {
        close(fd);
        g_string_free(conn->in, TRUE);
        g_free(conn);
        return G_SOURCE_REMOVE;
    }
    g_string_append_len(conn->in, buf, n);
    while ((nl = memchr(conn->in->str, '\n', conn->in->len))) {
        *nl = '\0';
        g_autofree char *answer = run_command(conn->in->str);
        g_autofree char *out = g_strconcat(answer, "\n", NULL);
        if (write(fd, out, strlen(out)) < 0)
            g_warning("usbdev: control reply: %s", g_strerror(errno));
        g_string_erase(conn->in, 0, nl - conn->in->str + 1);
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_connection(gint fd, GIOCondition cond, gpointer data)
{
    struct connection *conn;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    (void)cond;
    (void)data;
    if (c < 0)
        return G_SOURCE_CONTINUE;
    conn = g_new0(struct connection, 1);
    conn->fd = c;
    conn->in = g_string_new(NULL);
    g_unix_fd_add(c, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, conn);
    return G_SOURCE_CONTINUE;
}

int control_listen(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 8) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    g_unix_fd_add(fd, G_IO_IN, on_connection, NULL);
    return 0;
}
