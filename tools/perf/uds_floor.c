/*
 * The floor of a Unix-socket echo on this machine, with no library: a
 * socketpair, the server pinned to CPU 1 and the client to CPU 0 (as
 * ipc_bench places them), length-prefixed frames, COUNT round trips of SIZE
 * bytes, each reply checked. Two server shapes:
 *
 *   block  one blocking reader: read(4), read(SIZE), writev (the bench's
 *          raw UDS limit, a thread per connection)
 *   epoll  what a server of many clients does: epoll_wait, then
 *          non-blocking recv of the frame (back to epoll_wait on EAGAIN),
 *          then sendmsg (what ipc's socket server does)
 *
 *   uds_floor block|epoll SIZE COUNT
 *
 * Prints the mean round trip and the client's CPU per round trip. Both use
 * 8 MiB send buffers where SO_SNDBUFFORCE is allowed.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void floor_die(const char *what)
{
    fprintf(stderr, "uds_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void floor_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        floor_die("sched_setaffinity");
}

/* 0, or -1 at end of stream. */
static int floor_read_full(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void floor_send(int fd, const uint8_t *p, uint32_t len)
{
    struct iovec v[2] = {{&len, 4}, {(void *)p, len}};
    size_t left = 4 + (size_t)len;
    while (left > 0) {
        ssize_t k = writev(fd, v, 2);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            floor_die("writev");
        left -= (size_t)k;
        for (int i = 0; i < 2; i++) {
            size_t step = (size_t)k < v[i].iov_len ? (size_t)k : v[i].iov_len;
            v[i].iov_base = (uint8_t *)v[i].iov_base + step;
            v[i].iov_len -= step;
            k -= (ssize_t)step;
        }
    }
}

static void floor_serve_block(int fd, uint8_t *buf)
{
    uint32_t len;
    while (floor_read_full(fd, (uint8_t *)&len, 4) == 0 && floor_read_full(fd, buf, len) == 0)
        floor_send(fd, buf, len);
}

/* Reads frames into rx as they come; a whole one is copied out and echoed
 * (ipc's handler copies the request into its reply, too). */
static void floor_serve_epoll(int fd, uint8_t *rx, uint8_t *buf)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event want = {.events = EPOLLIN};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &want) != 0)
        floor_die("epoll");
    size_t have = 0;
    for (;;) {
        struct epoll_event ev;
        if (epoll_wait(ep, &ev, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            floor_die("epoll_wait");
        }
        for (;;) {
            uint32_t len = 0;
            if (have >= 4)
                memcpy(&len, rx, 4);
            size_t room = have < 4 ? 4096 : 4 + (size_t)len - have;
            ssize_t k = recv(fd, rx + have, room, MSG_DONTWAIT);
            if (k == 0)
                return;
            if (k < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                floor_die("recv");
            }
            have += (size_t)k;
            if (have >= 4)
                memcpy(&len, rx, 4);
            if (have >= 4 && have == 4 + (size_t)len) {
                memcpy(buf, rx + 4, len);
                floor_send(fd, buf, len);
                have = 0;
            }
        }
    }
}

static double floor_now(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "block") != 0 && strcmp(argv[1], "epoll") != 0)) {
        fprintf(stderr, "usage: uds_floor block|epoll SIZE COUNT\n");
        return 2;
    }
    long size = atol(argv[2]), count = atol(argv[3]);
    if (size < 1 || size > (16l << 20) || count < 1) {
        fprintf(stderr, "uds_floor: SIZE must be 1..16 MiB and COUNT positive\n");
        return 2;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        floor_die("socketpair");
    int big = 8 << 20;
    for (int i = 0; i < 2; i++)
        if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) != 0)
            (void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    uint8_t *buf = malloc((size_t)size + 4096), *rx = malloc((size_t)size + 8192);
    if (buf == NULL || rx == NULL)
        floor_die("malloc");
    pid_t pid = fork();
    if (pid < 0)
        floor_die("fork");
    if (pid == 0) {
        close(sv[0]);
        floor_pin(1);
        if (strcmp(argv[1], "block") == 0)
            floor_serve_block(sv[1], buf);
        else
            floor_serve_epoll(sv[1], rx, buf);
        _exit(0);
    }
    close(sv[1]);
    floor_pin(0);
    for (long i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    double t0 = floor_now(CLOCK_MONOTONIC), c0 = floor_now(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < count; i++) {
        memcpy(buf, &i, size < (long)sizeof i ? (size_t)size : sizeof i); /* each reply its own */
        floor_send(sv[0], buf, (uint32_t)size);
        uint32_t len;
        if (floor_read_full(sv[0], (uint8_t *)&len, 4) != 0 || len != (uint32_t)size ||
            floor_read_full(sv[0], rx, len) != 0 || memcmp(rx, buf, (size_t)size) != 0) {
            fprintf(stderr, "uds_floor: reply %ld is not the echo of its request\n", i);
            return 1;
        }
    }
    double t1 = floor_now(CLOCK_MONOTONIC), c1 = floor_now(CLOCK_PROCESS_CPUTIME_ID);
    close(sv[0]);
    int st;
    waitpid(pid, &st, 0);
    printf("%s %ld B: %.1f us per round trip, client CPU %.1f us per round trip\n", argv[1], size,
           (t1 - t0) / (double)count * 1e6, (c1 - c0) / (double)count * 1e6);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
