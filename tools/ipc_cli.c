/*
 * ipc — the operator's command line: an echo server, a latency probe, and a
 * demo that runs both transports side by side.
 *
 * Exit codes: 0 success, 1 failure at run time, 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "tools/bench/bench.h"
#include "tools/ipc_admin.h"

#define EXIT_USAGE 2

typedef struct endpoint {
    const char *socket_path;
    const char *shm_name;
    size_t clients;
} endpoint;

typedef struct ping_stats {
    double p50_us, p99_us, p999_us, max_us, mean_us;
    uint64_t count;
} ping_stats;

static const char usage_text[] =
    "usage: ipc <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve  (--socket PATH | --shm NAME) [--clients N] [--max-message BYTES]\n"
    "         [--ring-size BYTES]      echo server; stops on SIGINT/SIGTERM\n"
    "  ping   (--socket PATH | --shm NAME) [--clients N] [--count N] [--size BYTES]\n"
    "         [--timeout-ms MS]         round trips, with p50/p99/p99.9\n"
    "  demo                             echo server in a child process, both\n"
    "                                   transports, a short latency table\n"
    "  bench  [--quick] [--json FILE] [--plot FILE] [--only ID,...]\n"
    "                                   both transports against raw-kernel limits\n"
    "                                   and nng/ZeroMQ (docs/BENCHMARKS.md)\n"
    "  ls     [DIR...]                  live servers, and stale socket files\n"
    "                                   under DIR (default /tmp)\n"
    "  stat   (--socket PATH | --shm NAME) [--watch] [--interval-ms MS] [--count N]\n"
    "                                   a live server's counters and latency\n"
    "  clean  PATH|DIR...               remove socket files whose server is dead;\n"
    "                                   live servers are left alone (exit 1)\n"
    "  help                             this text\n"
    "\n"
    "--clients: shared memory: the server's capacity (default 8), which a\n"
    "client must repeat; sockets: the initial table size.\n";

static int usage(FILE *out, int code)
{
    fputs(usage_text, out);
    return code;
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "ipc: %s: %s\n", what, ipc_strerror(err));
    return EXIT_FAILURE;
}

static bool parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return false;
    if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    if (*end != '\0')
        return false;
    *out = (size_t)v;
    return true;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --------------------------------------------------------------- factories */

static ipc_server *make_server(const endpoint *ep, const ipc_server_options *o)
{
    if (ep->socket_path != NULL)
        return ipc_server_create_socket_ex(ep->socket_path, (int)ep->clients, o);
    return ipc_server_create_shm_ex(ep->shm_name, ep->clients, o);
}

static ipc_client *make_client(const endpoint *ep)
{
    if (ep->socket_path != NULL)
        return ipc_client_create_socket(ep->socket_path);
    return ipc_client_create_shm(ep->shm_name, ep->clients);
}

/* ------------------------------------------------------------------- serve */

/* SIGINT/SIGTERM stop the server: blocked everywhere and taken by sigwait()
 * on a thread of their own, which calls the async-signal-safe
 * ipc_server_stop(). (A plain handler works too; this shape also behaves
 * under ThreadSanitizer, which defers handlers.) */
static void *stop_on_signal(void *server)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig;
    while (sigwait(&set, &sig) != 0) {
    }
    ipc_server_stop(server);
    return NULL;
}

/* Blocks SIGINT/SIGTERM in this thread (and the ones it creates later). */
static void block_stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Serves until stopped; the server is destroyed on return. */
static int run_until_signal(ipc_server *s, ipc_handler handler, size_t max_message)
{
    pthread_t stopper;
    if (pthread_create(&stopper, NULL, stop_on_signal, s) != 0) {
        ipc_server_destroy(s);
        return -EAGAIN;
    }
    int rc = ipc_server_run(s, handler, NULL, max_message);
    pthread_cancel(stopper); /* sigwait() is a cancellation point */
    pthread_join(stopper, NULL);
    ipc_server_destroy(s);
    return rc;
}

static ipc_action echo(void *ctx, int id, const void *req, size_t len, ipc_response *r)
{
    (void)ctx;
    (void)id;
    ipc_response_set(r, req, len);
    return IPC_CONTINUE;
}

static int serve(const endpoint *ep, const ipc_server_options *o, bool quiet)
{
    block_stop_signals();
    ipc_server *s = make_server(ep, o);
    if (s == NULL) {
        fprintf(stderr, "ipc: invalid server arguments\n");
        return EXIT_USAGE;
    }
    int rc = ipc_server_listen(s);
    if (rc < 0) {
        ipc_server_destroy(s);
        return fail("listen", rc);
    }
    if (!quiet) {
        printf("serving %s (echo); Ctrl-C stops\n",
               ep->socket_path ? ep->socket_path : ep->shm_name);
        fflush(stdout);
    }
    rc = run_until_signal(s, echo, o->max_message_size);
    return rc < 0 ? fail("run", rc) : EXIT_SUCCESS;
}

/* -------------------------------------------------------------------- ping */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *sorted, uint64_t n, double p)
{
    uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1000.0;
}

static int connect_retry(ipc_client *c)
{
    int rc;
    for (int i = 0; i < 500; i++) {
        rc = ipc_client_connect(c);
        if (rc != -ENOENT && rc != -ECONNREFUSED)
            return rc;
        usleep(2000);
    }
    return rc;
}

/* count round trips of size bytes; each reply is checked byte for byte. */
static int ping_run(const endpoint *ep, uint64_t count, size_t size, uint64_t timeout_ns,
                    ping_stats *st)
{
    int rc = -ENOMEM;
    ipc_client *c = make_client(ep);
    uint8_t *msg = malloc(size ? size : 1), *buf = malloc(size ? size : 1);
    uint64_t *lat = malloc(count * sizeof(*lat));
    if (c == NULL || msg == NULL || buf == NULL || lat == NULL)
        goto out;
    for (size_t i = 0; i < size; i++)
        msg[i] = (uint8_t)(i * 31 + 7);
    if ((rc = connect_retry(c)) < 0)
        goto out;
    uint64_t warmup = count / 10 < 1000 ? count / 10 : 1000;
    for (uint64_t i = 0; i < warmup + count; i++) {
        uint64_t t0 = now_ns();
        if ((rc = ipc_client_send(c, msg, size, timeout_ns)) < 0)
            goto out;
        ssize_t n = ipc_client_recv(c, buf, size, timeout_ns);
        if (n < 0) {
            rc = (int)n;
            goto out;
        }
        if ((size_t)n != size || memcmp(buf, msg, size) != 0) {
            rc = -EBADMSG;
            goto out;
        }
        if (i >= warmup)
            lat[i - warmup] = now_ns() - t0;
    }
    qsort(lat, count, sizeof(*lat), cmp_u64);
    double sum = 0;
    for (uint64_t i = 0; i < count; i++)
        sum += (double)lat[i];
    *st = (ping_stats){.p50_us = pct_us(lat, count, 0.50),
                       .p99_us = pct_us(lat, count, 0.99),
                       .p999_us = pct_us(lat, count, 0.999),
                       .max_us = (double)lat[count - 1] / 1000.0,
                       .mean_us = sum / (double)count / 1000.0,
                       .count = count};
    rc = 0;
out:
    ipc_client_destroy(c);
    free(lat);
    free(buf);
    free(msg);
    return rc;
}

static void print_stats_header(void)
{
    printf("%-10s %9s %8s %10s %10s %10s %10s\n", "transport", "size", "count", "p50 us",
           "p99 us", "p99.9 us", "max us");
}

static void print_stats(const char *name, size_t size, const ping_stats *st)
{
    printf("%-10s %9zu %8" PRIu64 " %10.2f %10.2f %10.2f %10.2f\n", name, size, st->count,
           st->p50_us, st->p99_us, st->p999_us, st->max_us);
}

static int ping(const endpoint *ep, uint64_t count, size_t size, uint64_t timeout_ns)
{
    ping_stats st;
    int rc = ping_run(ep, count, size, timeout_ns, &st);
    if (rc < 0)
        return fail("ping", rc);
    print_stats_header();
    print_stats(ep->socket_path ? "socket" : "shm", size, &st);
    return EXIT_SUCCESS;
}

/* -------------------------------------------------------------------- demo */

/* Forks an echo server; returns its pid once it listens, or -errno. */
static pid_t spawn_server(const endpoint *ep, const ipc_server_options *o)
{
    int ready[2];
    if (pipe(ready) < 0)
        return -errno;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        block_stop_signals();
        ipc_server *s = make_server(ep, o);
        if (s == NULL || ipc_server_listen(s) < 0)
            _exit(1);
        if (write(ready[1], "", 1) != 1)
            _exit(1);
        close(ready[1]);
        _exit(run_until_signal(s, echo, o->max_message_size) < 0);
    }
    close(ready[1]);
    char b;
    ssize_t n = pid > 0 ? read(ready[0], &b, 1) : -1;
    close(ready[0]);
    if (n != 1) {
        if (pid > 0)
            waitpid(pid, NULL, 0);
        return -EIO;
    }
    return pid;
}

static int stop_server(pid_t pid)
{
    int status;
    kill(pid, SIGTERM);
    if (waitpid(pid, &status, 0) != pid)
        return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int demo_transport(const char *name, const endpoint *ep)
{
    static const size_t sizes[] = {64, 4096, 65536};
    ipc_server_options o = {.max_message_size = 1 << 20};
    pid_t pid = spawn_server(ep, &o);
    if (pid < 0)
        return fail(name, (int)pid);
    int rc = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && rc == 0; i++) {
        ping_stats st;
        rc = ping_run(ep, sizes[i] > 4096 ? 2000 : 20000, sizes[i], 5000000000ull, &st);
        if (rc == 0)
            print_stats(name, sizes[i], &st);
    }
    int stop = stop_server(pid);
    if (rc < 0)
        return fail(name, rc);
    return stop < 0 ? fail("server exit", stop) : 0;
}

static int demo(void)
{
    char dir[] = "/tmp/ipc-demo-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return fail("mkdtemp", -errno);
    char path[64], name[64];
    snprintf(path, sizeof(path), "%s/demo.sock", dir);
    /* The pid alone is not unique: processes in other pid namespaces
     * (containers, sandboxes) share the abstract socket namespace. */
    uint32_t salt = 0;
    if (getrandom(&salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
        salt = (uint32_t)now_ns();
    snprintf(name, sizeof(name), "ipc-demo-%d-%08x", (int)getpid(), salt);
    printf("ipc demo: an echo server in a child process, one client, round trips\n\n");
    print_stats_header();
    endpoint sock = {.socket_path = path, .clients = 4};
    endpoint shm = {.shm_name = name, .clients = 4};
    int rc = demo_transport("socket", &sock);
    if (rc == 0)
        rc = demo_transport("shm", &shm);
    rmdir(dir);
    if (rc == 0)
        printf("\nshared memory skips the kernel on the hot path; sockets take any "
               "number of clients.\n");
    return rc;
}

/* ------------------------------------------------------------------- main */

enum { OPT_SOCKET = 1, OPT_SHM, OPT_CLIENTS, OPT_COUNT, OPT_SIZE, OPT_MAXMSG, OPT_RING,
       OPT_TIMEOUT, OPT_HELP };

static const struct option long_opts[] = {
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"shm", required_argument, NULL, OPT_SHM},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"count", required_argument, NULL, OPT_COUNT},
    {"size", required_argument, NULL, OPT_SIZE},
    {"max-message", required_argument, NULL, OPT_MAXMSG},
    {"ring-size", required_argument, NULL, OPT_RING},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct cli_args {
    endpoint ep;
    ipc_server_options opts;
    size_t count, size, timeout_ms;
} cli_args;

/* Parses the options of serve/ping; false on a bad one (message printed). */
static bool parse_args(int argc, char **argv, cli_args *a)
{
    *a = (cli_args){.ep.clients = 8, .count = 10000, .size = 64, .timeout_ms = 5000};
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case OPT_SOCKET: a->ep.socket_path = optarg; break;
        case OPT_SHM: a->ep.shm_name = optarg; break;
        case OPT_CLIENTS: ok = parse_size(optarg, &a->ep.clients) && a->ep.clients > 0; break;
        case OPT_COUNT: ok = parse_size(optarg, &a->count) && a->count > 0; break;
        case OPT_SIZE: ok = parse_size(optarg, &a->size); break;
        case OPT_MAXMSG: ok = parse_size(optarg, &a->opts.max_message_size); break;
        case OPT_RING: ok = parse_size(optarg, &a->opts.ring_size); break;
        case OPT_TIMEOUT: ok = parse_size(optarg, &a->timeout_ms); break;
        default: return false;
        }
        if (!ok) {
            fprintf(stderr, "ipc: bad value for --%s: %s\n", long_opts[opt - 1].name, optarg);
            return false;
        }
    }
    if (optind != argc || (a->ep.socket_path == NULL) == (a->ep.shm_name == NULL)) {
        fprintf(stderr, "ipc: give exactly one of --socket PATH or --shm NAME\n");
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr, EXIT_USAGE);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return usage(stdout, EXIT_SUCCESS);
    if (!strcmp(cmd, "--version") && argc == 2)
        return printf("ipc %s\n", ipc_version()) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
    if (!strcmp(cmd, "demo"))
        return argc == 2 ? demo() : usage(stderr, EXIT_USAGE);
    if (!strcmp(cmd, "bench"))
        return ipc_bench_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "ls"))
        return ipc_cmd_ls(argc, argv);
    if (!strcmp(cmd, "stat"))
        return ipc_cmd_stat(argc, argv);
    if (!strcmp(cmd, "clean"))
        return ipc_cmd_clean(argc, argv);
    bool is_serve = !strcmp(cmd, "serve"), is_ping = !strcmp(cmd, "ping");
    if (!is_serve && !is_ping) {
        fprintf(stderr, "ipc: unknown command '%s'\n", cmd);
        return usage(stderr, EXIT_USAGE);
    }
    cli_args a;
    if (!parse_args(argc, argv, &a))
        return usage(stderr, EXIT_USAGE);
    if (is_serve)
        return serve(&a.ep, &a.opts, false);
    return ping(&a.ep, a.count, a.size, (uint64_t)a.timeout_ms * 1000000ull);
}
