/* usbdev: runs a command with the netbus test USB devices plugged in.
 *
 *   usbdev [--bulk] [--hid] [--iso] [--control PATH] -- COMMAND ARGS...
 *   usbdev --control PATH --tell 'LINE'      (one control command, prints
 *                                             the answer; exit 1 on error)
 *
 * The command runs under umockdev's preload the way umockdev-wrapper runs
 * it (LD_PRELOAD=libumockdev-preload.so.0, UMOCKDEV_DIR set by the
 * testbed), with USBDEV_CONTROL=PATH when --control is given. usbdev exits
 * with the command's status; SIGTERM, SIGINT and SIGHUP are passed on.
 *
 * An AddressSanitizer program refuses to start when another library is
 * preloaded before its runtime; the check (verify_asan_link_order) is turned
 * off for the command: the preload's wrappers then call on into ASan's.
 *
 * usbdev itself runs under the preload too (it re-executes itself): the
 * uevent sender looks the device up with libudev in /sys, which must be
 * the testbed's. */
#include "usbdev.h"

#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

GRecMutex usbdev_lock;

static GMainLoop *loop;
static pid_t child;
static int child_status = 1;

static int usage(void)
{
    fprintf(stderr, "usage: usbdev [--bulk] [--hid] [--iso] [--control PATH] -- COMMAND ARGS...\n"
                    "       usbdev --control PATH --tell 'plug|unplug|hold|release|stats NAME'\n");
    return 2;
}

static int tell(const char *path, const char *line)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    char answer[256];
    size_t got = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        fprintf(stderr, "usbdev: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (dprintf(fd, "%s\n", line) < 0)
        return 1;
    while (got < sizeof(answer) - 1) {
        ssize_t n = read(fd, answer + got, sizeof(answer) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (memchr(answer, '\n', got))
            break;
    }
    close(fd);
    answer[got] = '\0';
    fputs(answer, stdout);
    return got == 0 || !strncmp(answer, "error", 5);
}

static gboolean on_signal(gpointer data)
{
    kill(child, GPOINTER_TO_INT(data));
    return G_SOURCE_CONTINUE;
}

static void on_child_exit(GPid pid, gint status, gpointer data)
{
    (void)pid;
    (void)data;
    child_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    g_main_loop_quit(loop);
}

#define PRELOADED_MARK "USBDEV_UNDER_PRELOAD"

static void exec_under_preload(char **argv)
{
    const char *old = getenv("LD_PRELOAD");
    g_autofree char *preload = old && *old ? g_strconcat("libumockdev-preload.so.0:", old, NULL)
                                           : g_strdup("libumockdev-preload.so.0");

    setenv("LD_PRELOAD", preload, 1);
    setenv(PRELOADED_MARK, "1", 1);
    execv("/proc/self/exe", argv);
    perror("usbdev: re-executing under the preload");
    exit(1);
}

int main(int argc, char **argv)
{
    bool want[USBDEV_KINDS] = { false };
    const char *control = NULL, *line = NULL;
    UMockdevTestbed *tb;
    int i;

    for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--bulk"))
            want[USBDEV_BULK] = true;
        else if (!strcmp(argv[i], "--hid"))
            want[USBDEV_HID] = true;
        else if (!strcmp(argv[i], "--iso"))
            want[USBDEV_ISO] = true;
        else if (!strcmp(argv[i], "--control") && i + 1 < argc)
            control = argv[++i];
        else if (!strcmp(argv[i], "--tell") && i + 1 < argc)
            line = argv[++i];
        else
            return usage();
    }
    if (line)
        return control ? tell(control, line) : usage();
    if (i + 1 >= argc)
        return usage();
    if (!getenv(PRELOADED_MARK))
        exec_under_preload(argv);
    unsetenv(PRELOADED_MARK);

    /* Asked before the testbed exists, this says "no" and remembers it:
     * umockdev then sends no uevent of its own and testbed.c sends each
     * one once the device is complete. */
    umockdev_in_mock_environment();
    tb = umockdev_testbed_new();
    testbed_init(tb);
    g_rec_mutex_lock(&usbdev_lock);
    for (int k = 0; k < USBDEV_KINDS; k++)
        if (want[k] && testbed_plug(k) < 0)
            return 1;
    g_rec_mutex_unlock(&usbdev_lock);
    if (control) {
        int r = control_listen(control);
        if (r < 0) {
            fprintf(stderr, "usbdev: control socket %s: %s\n", control, strerror(-r));
            return 1;
        }
        setenv("USBDEV_CONTROL", control, 1);
    }

    loop = g_main_loop_new(NULL, FALSE);
    fflush(NULL);
    child = fork();
    if (child < 0) {
        perror("usbdev: fork");
        return 1;
    }
    if (child == 0) {
        const char *asan = getenv("ASAN_OPTIONS");
        g_autofree char *options = g_strconcat(asan && *asan ? asan : "", asan && *asan ? ":" : "",
                                               "verify_asan_link_order=0", NULL);
        setenv("ASAN_OPTIONS", options, 1);
        execvp(argv[i + 1], argv + i + 1);
        fprintf(stderr, "usbdev: %s: %s\n", argv[i + 1], strerror(errno));
        _exit(127);
    }
    g_child_watch_add(child, on_child_exit, NULL);
    g_unix_signal_add(SIGTERM, on_signal, GINT_TO_POINTER(SIGTERM));
    g_unix_signal_add(SIGINT, on_signal, GINT_TO_POINTER(SIGINT));
    g_unix_signal_add(SIGHUP, on_signal, GINT_TO_POINTER(SIGHUP));
    g_main_loop_run(loop);

    if (control)
        unlink(control);
    g_object_unref(tb);
    return child_status;
}
