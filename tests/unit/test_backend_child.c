/* A backend under test in a forked child. See test_backend_child.h. */
#include "test_backend_child.h"
#include "log.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int be_child_start(struct be_child *c, const char *tag, int (*child_main)(int sock))
{
    if (sim_host_start(&c->host, tag) < 0)
        return -1;
    int a = sim_create(&c->host, "guest-a"), b = sim_create(&c->host, "guest-b");
    if (a < 0 || b < 0)
        return -1;
    c->dom_a = (unsigned)a;
    c->dom_b = (unsigned)b;
    if (asprintf(&c->logpath, "%s/netbusd.log", c->host.dir) < 0)
        return -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    c->pid = fork();
    if (c->pid < 0)
        return -1;
    if (c->pid == 0) {
        close(sv[0]);
        _exit(child_main(sv[1]));
    }
    close(sv[1]);
    c->sock = sv[0];
    return 0;
}

struct command_server {
    size_t clen, rlen;
    be_child_command command;
    void *cmd, *rsp;
};

static void serve_command(struct evloop *loop, int fd, uint32_t events, void *opaque)
{
    (void)events;
    struct command_server *s = opaque;
    if (recv(fd, s->cmd, s->clen, 0) != (ssize_t)s->clen) {
        evloop_stop(loop);
        return;
    }
    memset(s->rsp, 0, s->rlen);
    s->command(loop, s->cmd, s->rsp);
    if (send(fd, s->rsp, s->rlen, 0) != (ssize_t)s->rlen)
        evloop_stop(loop);
}

int be_child_serve(const struct be_child *c, int sock, int level, size_t clen,
                   size_t rlen, be_child_command command, void (*close_all)(void))
{
    struct command_server server = { .clen = clen, .rlen = rlen, .command = command,
                                     .cmd = malloc(clen), .rsp = malloc(rlen) };
    if (!server.cmd || !server.rsp)
        return 3;
    int lfd = open(c->logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (lfd >= 0) {
        dup2(lfd, 2);
        close(lfd);
    }
    log_init("netbusd-test", level, false);
    struct evloop *loop = evloop_new();
    if (!loop || evloop_add(loop, sock, EPOLLIN, serve_command, &server) < 0)
        return 3;
    evloop_run(loop);
    close_all();
    evloop_free(loop);
    close(sock);
    free(server.cmd);
    free(server.rsp);
    return 0;
}

int be_child_call(const struct be_child *c, const void *cmd, size_t clen, void *rsp,
                  size_t rlen)
{
    if (send(c->sock, cmd, clen, 0) != (ssize_t)clen)
        return -1;
    struct pollfd p = { .fd = c->sock, .events = POLLIN };
    if (poll(&p, 1, 10000) != 1)
        return -1;
    if (recv(c->sock, rsp, rlen, 0) != (ssize_t)rlen)
        return -1;
    return 0;
}

int be_child_stop(struct be_child *c)
{
    int status = -1;
    waitpid(c->pid, &status, 0);
    close(c->sock);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) { /* the log goes with the host directory: show it first */
        fprintf(stderr, "backend child: wait status %#x; its log:\n", status);
        FILE *fp = fopen(c->logpath, "r");
        char line[2048];
        while (fp && fgets(line, sizeof(line), fp))
            fputs(line, stderr);
        if (fp)
            fclose(fp);
    }
    int hs = sim_host_stop(&c->host); /* removes the log too */
    free(c->logpath);
    c->logpath = NULL;
    return ok && WIFEXITED(hs) && WEXITSTATUS(hs) == 0 ? 0 : -1;
}

int be_child_log_has(const struct be_child *c, const char *s)
{
    FILE *fp = fopen(c->logpath, "r");
    if (!fp)
        return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof(line), fp))
        found = strstr(line, s) != NULL;
    fclose(fp);
    return found;
}
