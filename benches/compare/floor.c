/*
 * The floor: the least a user-space TCP relay can do per request, to measure
 * what the kernel alone costs. One thread, epoll, level-triggered; each client
 * connection is paired for life with one backend connection opened when it is
 * accepted, and bytes are copied both ways as they come. No parsing, no
 * routing, no pool, no timeouts: per keep-alive request it makes the four
 * socket calls every proxy must make (recv from the client, send to the
 * server, recv from the server, send to the client) plus its share of
 * epoll_wait. An L7 proxy can be no cheaper than this on the same kernel, so
 * a target beyond what this reaches is beyond the machine, not the code.
 *
 *   gcc -O2 -o floor floor.c && ./floor LISTEN_PORT BACKEND_PORT
 *
 * Loopback only (127.0.0.1); a benchmark tool, not a proxy.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536
#define MAX_FD 65536

/* One direction's bytes read and not yet written on (pending). */
struct side {
    int peer;          /* the descriptor this side's bytes go to */
    char *pending;     /* bytes read from this side, waiting for the peer */
    size_t off, len;
};

static struct side sides[MAX_FD];
static char buf[BUF];
static int ep;

static void die(const char *what) { perror(what); exit(1); }

static void watch(int fd, unsigned events, int op) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(ep, op, fd, &ev) < 0) die("epoll_ctl");
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void close_pair(int fd) {
    int peer = sides[fd].peer;
    int fds[2] = {fd, peer};
    for (int i = 0; i < 2; i++) {
        free(sides[fds[i]].pending);
        memset(&sides[fds[i]], 0, sizeof sides[fds[i]]);
        close(fds[i]);
    }
}

/* Writes what `from` holds pending to its peer; returns 0 when it is all out. */
static int flush(int from) {
    struct side *s = &sides[from];
    while (s->off < s->len) {
        ssize_t n = send(s->peer, s->pending + s->off, s->len - s->off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) return 1;
        if (n <= 0) return -1;
        s->off += n;
    }
    free(s->pending);
    s->pending = NULL;
    s->off = s->len = 0;
    return 0;
}

/* Reads what `fd` has and sends it on; a short send parks the rest and waits
 * for the peer to drain (reading from `fd` stops meanwhile). */
static void relay(int fd) {
    ssize_t n = recv(fd, buf, BUF, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) { close_pair(fd); return; }
    ssize_t sent = send(sides[fd].peer, buf, n, MSG_NOSIGNAL);
    if (sent == n) return;
    if (sent < 0 && errno != EAGAIN) { close_pair(fd); return; }
    if (sent < 0) sent = 0;
    struct side *s = &sides[fd];
    s->len = n - sent;
    s->off = 0;
    s->pending = malloc(s->len);
    if (!s->pending) die("malloc");
    memcpy(s->pending, buf + sent, s->len);
    watch(fd, 0, EPOLL_CTL_MOD);
    watch(s->peer, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
}

static void writable(int fd) {
    int from = sides[fd].peer; /* the side whose bytes wait for fd */
    int left = flush(from);
    if (left < 0) { close_pair(fd); return; }
    if (left == 0) {
        watch(fd, EPOLLIN, EPOLL_CTL_MOD);
        watch(from, EPOLLIN, EPOLL_CTL_MOD);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: floor LISTEN_PORT BACKEND_PORT\n"); return 2; }
    struct sockaddr_in listen_at = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    struct sockaddr_in backend = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, "127.0.0.1", &listen_at.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &backend.sin_addr);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* As every target of the comparison: a client is accepted with its request. */
    int defer_seconds = 1;
    setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_seconds, sizeof defer_seconds);
    if (bind(lfd, (struct sockaddr *)&listen_at, sizeof listen_at) < 0) die("bind");
    if (listen(lfd, 4096) < 0) die("listen");
    ep = epoll_create1(0);
    watch(lfd, EPOLLIN, EPOLL_CTL_ADD);

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int client;
                while ((client = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    /* A blocking connect keeps the floor simple; on loopback it
                     * completes at once and happens once per client. */
                    int server = socket(AF_INET, SOCK_STREAM, 0);
                    if (client >= MAX_FD || server >= MAX_FD ||
                        connect(server, (struct sockaddr *)&backend, sizeof backend) < 0) {
                        close(client);
                        close(server);
                        continue;
                    }
                    if (fcntl(server, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
                    set_nodelay(client);
                    set_nodelay(server);
                    sides[client].peer = server;
                    sides[server].peer = client;
                    watch(client, EPOLLIN, EPOLL_CTL_ADD);
                    watch(server, EPOLLIN, EPOLL_CTL_ADD);
                }
                continue;
            }
            if (sides[fd].peer == 0) continue; /* closed earlier in this batch */
            if (events[i].events & EPOLLOUT) writable(fd);
            if (sides[fd].peer != 0 && (events[i].events & ~EPOLLOUT)) relay(fd);
        }
    }
}
