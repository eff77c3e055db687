/*
 * Round-trip latency of the C client against an echo server, the baseline
 * the Go latency test prints next to its own numbers.
 *
 *   c_ping --socket PATH | --shm NAME [--clients N] [--size BYTES] [--count N]
 *
 * Sends `count` messages of `size` bytes one at a time (after 1/10 as many
 * warm-up round trips), checks every echo byte for byte, and prints one line:
 *   c_ping transport=socket size=64 count=20000 p50_ns=.. p90_ns=.. p99_ns=.. max_ns=..
 * Exits 0 on success, 1 on any failure or mismatched echo.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipc/ipc.h"
#include "stress/go/c_args.h"

#define TIMEOUT_NS (10ull * 1000 * 1000 * 1000)

typedef struct {
    const char *socket_path;
    const char *shm_name;
    unsigned long long clients, size, count;
} config;

static int usage(void)
{
    fprintf(stderr, "usage: c_ping --socket PATH | --shm NAME [--clients N]"
                    " [--size BYTES] [--count N]\n");
    return -EINVAL;
}

static int parse_args(int argc, char **argv, config *cfg)
{
    *cfg = (config){.clients = 16, .size = 64, .count = 20000};
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        const char *flag = argv[i], *value = argv[++i];
        int err = 0;
        if (strcmp(flag, "--socket") == 0)
            cfg->socket_path = value;
        else if (strcmp(flag, "--shm") == 0)
            cfg->shm_name = value;
        else if (strcmp(flag, "--clients") == 0)
            err = parse_number(value, &cfg->clients);
        else if (strcmp(flag, "--size") == 0)
            err = parse_number(value, &cfg->size);
        else if (strcmp(flag, "--count") == 0)
            err = parse_number(value, &cfg->count);
        else
            return usage();
        if (err < 0)
            return usage();
    }
    if ((cfg->socket_path == NULL) == (cfg->shm_name == NULL) || cfg->count == 0)
        return usage();
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* One round trip of msg; 0, a negative errno, or -EBADMSG on a wrong echo. */
static int round_trip(ipc_client *c, const uint8_t *msg, uint8_t *reply, size_t size)
{
    int err = ipc_client_send(c, msg, size, TIMEOUT_NS);
    if (err < 0)
        return err;
    ssize_t n = ipc_client_recv(c, reply, size + 1, TIMEOUT_NS);
    if (n < 0)
        return (int)n;
    if ((size_t)n != size || memcmp(msg, reply, size) != 0)
        return -EBADMSG;
    return 0;
}

static int run(ipc_client *c, const config *cfg, uint8_t *msg, uint8_t *reply,
               uint64_t *rtt)
{
    for (unsigned long long i = 0; i < cfg->count / 10; i++) {
        int err = round_trip(c, msg, reply, cfg->size);
        if (err < 0)
            return err;
    }
    for (unsigned long long i = 0; i < cfg->count; i++) {
        msg[0] = (uint8_t)i; /* a stale echo cannot pass the check */
        uint64_t t0 = now_ns();
        int err = round_trip(c, msg, reply, cfg->size);
        if (err < 0)
            return err;
        rtt[i] = now_ns() - t0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    config cfg;
    if (parse_args(argc, argv, &cfg) < 0)
        return 1;
    if (cfg.size == 0)
        cfg.size = 1; /* the sequence byte needs room */

    int rc = 1;
    uint8_t *msg = malloc(cfg.size), *reply = malloc(cfg.size + 1);
    uint64_t *rtt = malloc(cfg.count * sizeof *rtt);
    if (msg == NULL || reply == NULL || rtt == NULL)
        goto out_free;
    for (size_t i = 0; i < cfg.size; i++)
        msg[i] = (uint8_t)(i * 31 + 7);

    ipc_client *c = cfg.socket_path != NULL
                        ? ipc_client_create_socket(cfg.socket_path)
                        : ipc_client_create_shm(cfg.shm_name, cfg.clients);
    if (c == NULL) {
        fprintf(stderr, "c_ping: cannot create the client\n");
        goto out_free;
    }
    int err = ipc_client_connect(c);
    if (err == 0)
        err = run(c, &cfg, msg, reply, rtt);
    if (err < 0) {
        fprintf(stderr, "c_ping: %s\n", err == -EBADMSG ? "wrong echo" : ipc_strerror(err));
        goto out_destroy;
    }
    qsort(rtt, cfg.count, sizeof *rtt, cmp_u64);
    printf("c_ping transport=%s size=%llu count=%llu p50_ns=%llu p90_ns=%llu"
           " p99_ns=%llu max_ns=%llu\n",
           cfg.socket_path != NULL ? "socket" : "shm", cfg.size, cfg.count,
           (unsigned long long)rtt[cfg.count / 2],
           (unsigned long long)rtt[cfg.count * 9 / 10],
           (unsigned long long)rtt[cfg.count * 99 / 100],
           (unsigned long long)rtt[cfg.count - 1]);
    rc = 0;
out_destroy:
    ipc_client_destroy(c);
out_free:
    free(rtt);
    free(reply);
    free(msg);
    return rc;
}
