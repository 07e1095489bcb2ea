/* The tests' TCP proxy. See test_proxy.h. */
#include "test_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct proxy_dir {
    int from, to;
    uint8_t buf[65536];
    size_t len, off;
};

struct proxy_conn {
    struct test_proxy *px;
    struct proxy_dir d[2]; /* 0: client -> server, 1: server -> client */
    struct proxy_conn *next;
};

static void conn_kill(struct proxy_conn *pc)
{
    struct test_proxy *px = pc->px;
    for (struct proxy_conn **pp = &px->list; *pp; pp = &(*pp)->next)
        if (*pp == pc) {
            *pp = pc->next;
            break;
        }
    for (int i = 0; i < 2; i++) {
        evloop_del(px->loop, pc->d[i].from);
        close(pc->d[i].from);
    }
    free(pc);
}

void proxy_kill_all(struct test_proxy *px)
{
    while (px->list)
        conn_kill(px->list);
    px->hold[0] = px->hold[1] = false;
}

void proxy_stop(struct test_proxy *px)
{
    proxy_kill_all(px);
    if (px->lfd > 0) {
        evloop_del(px->loop, px->lfd);
        close(px->lfd);
    }
}

/* Moves bytes one way; -1 if the connection ended or is to be killed. */
static int move(struct test_proxy *px, struct proxy_dir *d, bool hold)
{
    for (;;) {
        if (d->off < d->len) {
            if (hold)
                return 0;
            ssize_t n = write(d->to, d->buf + d->off, d->len - d->off);
            if (n < 0)
                return errno == EAGAIN ? 0 : -1;
            d->off += (size_t)n;
            continue;
        }
        size_t want = px->chop ? 1 + (size_t)rand() % px->chop : sizeof(d->buf);
        ssize_t n = read(d->from, d->buf, want);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            return -1;
        if (n < 0)
            return 0;
        d->len = (size_t)n;
        d->off = 0;
        px->bytes += (uint64_t)n;
        if (px->kill_at && px->bytes >= px->kill_at)
            return -1;
    }
}

static void on_conn(struct evloop *l, int fd, uint32_t events, void *opaque)
{
    (void)l; (void)fd; (void)events;
    struct proxy_conn *pc = opaque;
    struct test_proxy *px = pc->px;
    if (move(px, &pc->d[0], px->hold[0]) < 0 || move(px, &pc->d[1], px->hold[1]) < 0) {
        if (px->kill_at && px->bytes >= px->kill_at)
            px->kill_at = 0; /* once */
        conn_kill(pc);
        return;
    }
    for (int i = 0; i < 2; i++) {
        /* fd d[i].from reads for d[i] and writes for d[1-i] */
        struct proxy_dir *mine = &pc->d[i], *other = &pc->d[1 - i];
        uint32_t ev = (mine->off < mine->len ? 0 : EPOLLIN) |
                      (other->off < other->len && !px->hold[1 - i] ? EPOLLOUT : 0);
        evloop_mod(px->loop, mine->from, ev);
    }
}

static void on_accept(struct evloop *l, int fd, uint32_t events, void *opaque)
{
    (void)l; (void)events;
    struct test_proxy *px = opaque;
    int a = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (a < 0)
        return;
    if (px->down) {
        close(a);
        return;
    }
    int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(b, (struct sockaddr *)&px->server, sizeof(px->server)) < 0) {
        close(a);
        close(b);
        return;
    }
    fcntl(b, F_SETFL, O_NONBLOCK);
    struct proxy_conn *pc = calloc(1, sizeof(*pc));
    pc->px = px;
    pc->d[0].from = a;
    pc->d[0].to = b;
    pc->d[1].from = b;
    pc->d[1].to = a;
    pc->next = px->list;
    px->list = pc;
    px->accepted++;
    evloop_add(px->loop, a, EPOLLIN, on_conn, pc);
    evloop_add(px->loop, b, EPOLLIN, on_conn, pc);
}

int proxy_start(struct test_proxy *px, struct evloop *loop, unsigned server_port)
{
    px->loop = loop;
    px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    if (bind(px->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(px->lfd, 16) < 0 ||
        getsockname(px->lfd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    px->port = ntohs(sa.sin_port);
    px->server = (struct sockaddr_in){ .sin_family = AF_INET,
                                       .sin_port = htons((uint16_t)server_port),
                                       .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    return evloop_add(loop, px->lfd, EPOLLIN, on_accept, px);
}
