/* tcp_rtt: the raw TCP baselines of the channel benchmark, on the link it
 * measures.
 * The round trip a remote 4 KiB read costs at best: one connection, one
 * request in flight; the client sends REQ bytes, the server answers RESP
 * bytes (by default 32 and 4096 + 32: a request header, a reply header and
 * one 4 KiB block), over and over for the given time.
 * The throughput one connection carries: the client sends 1 MiB writes for
 * the given time, the server reads them; timed until the server has read
 * the last byte (it closes on end of stream, the client waits for that).
 *   tcp_rtt server ADDR PORT [--timeout SEC]
 *       serve one client (either kind), then exit (or after SEC seconds
 *       without one)
 *   tcp_rtt client ADDR PORT [--seconds S] [--req N] [--resp N]
 *       prints `RTT ops=... mean_us=... p50_us=... p99_us=...`
 *   tcp_rtt stream ADDR PORT [--seconds S]
 *       prints `STREAM bytes=... mb_per_s=...` (10^6 bytes per second)
 * Built by tests/bench/channel.sh; C11, no dependencies. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG (1u << 20)

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int full_io(int fd, void *buf, size_t len, int writing)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int parse_addr(const char *addr, const char *port, struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    char *end;
    unsigned long p = strtoul(port, &end, 10);
    if (inet_pton(AF_INET, addr, &sa->sin_addr) != 1 || *end || p == 0 || p > 65535) {
        fprintf(stderr, "tcp_rtt: bad address %s port %s\n", addr, port);
        return -1;
    }
    sa->sin_port = htons((uint16_t)p);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int server(const struct sockaddr_in *sa, int timeout_s)
{
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(ls, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(ls, 4) < 0) {
        perror("tcp_rtt server: listen");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    struct pollfd p = { .fd = ls, .events = POLLIN };
    if (poll(&p, 1, timeout_s * 1000) <= 0) {
        fprintf(stderr, "tcp_rtt server: no client within %d s\n", timeout_s);
        return 1;
    }
    int fd = accept(ls, NULL, NULL);
    close(ls);
    if (fd < 0) {
        perror("tcp_rtt server: accept");
        return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint32_t sizes[2];
    if (full_io(fd, sizes, sizeof(sizes), 0) < 0)
        return 1;
    uint32_t req = ntohl(sizes[0]), resp = ntohl(sizes[1]);
    if (req == 0 && resp == 0) { /* a stream: read it all, then close */
        uint8_t *sink = malloc(MAX_MSG);
        while (sink && recv(fd, sink, MAX_MSG, 0) > 0)
            ;
        free(sink);
        close(fd);
        return sink ? 0 : 1;
    }
    if (req == 0 || req > MAX_MSG || resp == 0 || resp > MAX_MSG) {
        fprintf(stderr, "tcp_rtt server: bad sizes %u %u\n", req, resp);
        return 1;
    }
    uint8_t *buf = calloc(1, req > resp ? req : resp);
    if (!buf)
        return 1;
    while (full_io(fd, buf, req, 0) == 0)
        if (full_io(fd, buf, resp, 1) < 0)
            break;
    free(buf);
    close(fd);
    return 0;
}

static int client(const struct sockaddr_in *sa, double seconds, uint32_t req,
                  uint32_t resp)
{
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
        perror("tcp_rtt client: connect");
        return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint32_t sizes[2] = { htonl(req), htonl(resp) };
    uint8_t *buf = calloc(1, req > resp ? req : resp);
    size_t cap = 1 << 16, n = 0;
    double *lat = malloc(cap * sizeof(*lat));
    if (!buf || !lat || full_io(fd, sizes, sizeof(sizes), 1) < 0)
        return 1;
    /* Warm-up, not counted. */
    for (int i = 0; i < 100; i++)
        if (full_io(fd, buf, req, 1) < 0 || full_io(fd, buf, resp, 0) < 0)
            goto broken;
    double end = now_us() + seconds * 1e6, t0, total = 0;
    while ((t0 = now_us()) < end) {
        if (full_io(fd, buf, req, 1) < 0 || full_io(fd, buf, resp, 0) < 0)
            goto broken;
        double d = now_us() - t0;
        total += d;
        if (n == cap) {
            double *more = realloc(lat, 2 * cap * sizeof(*lat));
            if (!more)
                return 1;
            lat = more;
            cap *= 2;
        }
        lat[n++] = d;
    }
    close(fd);
    if (n == 0)
        return 1;
    qsort(lat, n, sizeof(*lat), cmp_double);
    printf("RTT ops=%zu mean_us=%.1f p50_us=%.1f p99_us=%.1f\n", n, total / (double)n,
           lat[n / 2], lat[n * 99 / 100]);
    free(lat);
    free(buf);
    return 0;
broken:
    fprintf(stderr, "tcp_rtt client: connection broken\n");
    return 1;
}

static int stream(const struct sockaddr_in *sa, double seconds)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
        perror("tcp_rtt stream: connect");
        return 1;
    }
    uint32_t sizes[2] = { 0, 0 };
    uint8_t *buf = calloc(1, MAX_MSG);
    if (!buf || full_io(fd, sizes, sizeof(sizes), 1) < 0)
        return 1;
    double t0 = now_us(), end = t0 + seconds * 1e6;
    uint64_t bytes = 0;
    while (now_us() < end) {
        if (full_io(fd, buf, MAX_MSG, 1) < 0) {
            fprintf(stderr, "tcp_rtt stream: connection broken\n");
            return 1;
        }
        bytes += MAX_MSG;
    }
    /* Done when the server has read everything: it closes on our end. */
    shutdown(fd, SHUT_WR);
    while (recv(fd, buf, MAX_MSG, 0) > 0)
        ;
    double secs = (now_us() - t0) / 1e6;
    printf("STREAM bytes=%llu mb_per_s=%.1f\n", (unsigned long long)bytes,
           (double)bytes / secs / 1e6);
    free(buf);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "server") != 0 && strcmp(argv[1], "client") != 0 &&
                     strcmp(argv[1], "stream") != 0)) {
        fprintf(stderr, "usage: tcp_rtt server ADDR PORT [--timeout SEC]\n"
                        "       tcp_rtt client ADDR PORT [--seconds S] [--req N] [--resp N]\n"
                        "       tcp_rtt stream ADDR PORT [--seconds S]\n");
        return 2;
    }
    struct sockaddr_in sa;
    if (parse_addr(argv[2], argv[3], &sa) < 0)
        return 2;
    double seconds = 5;
    unsigned long req = 32, resp = 4096 + 32, timeout = 30;
    for (int i = 4; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--seconds") == 0)
            seconds = strtod(v, NULL);
        else if (strcmp(k, "--req") == 0)
            req = strtoul(v, NULL, 10);
        else if (strcmp(k, "--resp") == 0)
            resp = strtoul(v, NULL, 10);
        else if (strcmp(k, "--timeout") == 0)
            timeout = strtoul(v, NULL, 10);
        else {
            fprintf(stderr, "tcp_rtt: unknown option %s\n", k);
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 3600 || req == 0 || req > MAX_MSG ||
        resp == 0 || resp > MAX_MSG || timeout == 0 || timeout > 3600) {
        fprintf(stderr, "tcp_rtt: option out of range\n");
        return 2;
    }
    if (strcmp(argv[1], "server") == 0)
        return server(&sa, (int)timeout);
    if (strcmp(argv[1], "stream") == 0)
        return stream(&sa, seconds);
    return client(&sa, seconds, (uint32_t)req, (uint32_t)resp);
}
