/*
 * serve, ping and demo: an echo server, a latency probe that talks to any
 * server, and both side by side.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "tools/ipc_cmds.h"

/* ------------------------------------------------------------------- serve */

/* What the echo handler does besides echoing: sleep (a handler waiting on
 * I/O) or spin (one burning CPU) for work_us microseconds. */
typedef struct serve_work {
    uint64_t us;
    bool spin;
} serve_work;

typedef struct serve_plan {
    ipc__cli_endpoint ep;
    uint64_t clients;
    ipc_server_options opts;
    serve_work work;
    bool quiet;
} serve_plan;

static ipc_server *make_server(const serve_plan *p)
{
    if (!p->ep.shm)
        return ipc_server_create_socket_ex(p->ep.name, (int)p->clients, &p->opts);
    return ipc_server_create_shm_ex(p->ep.name, p->clients, &p->opts);
}

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

/* Listens and starts the thread that stops the server on a signal: 0 once
 * both run, or -errno with neither (-EUSERS: a thread could not start, the
 * library's or this one). */
static int serve_start(ipc_server *s, pthread_t *stopper)
{
    int rc = ipc_server_listen(s);
    if (rc < 0)
        return rc;
    rc = pthread_create(stopper, NULL, stop_on_signal, s);
    if (rc != 0) {
        ipc_server_close(s);
        /* pthread_create's EAGAIN under the library's name for it (ipc.h). */
        return rc == EAGAIN ? -EUSERS : -rc;
    }
    return 0;
}

/* Serves until stopped, then ends the stopper. run() also returns without
 * a signal (an error, a handler's IPC_SHUTDOWN): the stopper is woken by the
 * signal it waits for, sent to it alone, never cancelled (a cancellation
 * inside ipc_server_stop() unwinds through its write(2), and AddressSanitizer
 * reports the unwinding as a stack-buffer-overflow). It may be inside
 * ipc_server_stop() or done already: a stop after run() returned is
 * harmless, and the server is destroyed only after the join. */
static int serve_until_signal(ipc_server *s, pthread_t stopper, ipc_handler handler, void *ctx,
                              size_t max_message)
{
    int rc = ipc_server_run(s, handler, ctx, max_message);
    pthread_kill(stopper, SIGTERM);
    pthread_join(stopper, NULL);
    return rc;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ctx: a serve_work, or NULL for none. */
static ipc_action echo(void *ctx, int id, const void *req, size_t len, ipc_response *r)
{
    const serve_work *w = ctx;
    (void)id;
    if (w != NULL && w->us != 0) {
        if (w->spin) {
            uint64_t until = now_ns() + w->us * 1000;
            while (now_ns() < until) {
            }
        } else {
            struct timespec ts = {.tv_sec = (time_t)(w->us / 1000000),
                                  .tv_nsec = (long)(w->us % 1000000) * 1000};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
    }
    ipc_response_set(r, req, len);
    return IPC_CONTINUE;
}

/* -EUSERS from the library or from serve_start(): no thread. */
static int no_thread_error(const ipc__cli_cmd *cmd)
{
    return ipc__cli_error(cmd, IPC_EXIT_NO_THREAD,
                          "cannot start a thread: the user's process/thread limit (ulimit -u) "
                          "is reached, or memory for a thread stack is short");
}

static int serve_start_error(const ipc__cli_cmd *cmd, const serve_plan *p, int rc)
{
    if (rc == -EUSERS)
        return no_thread_error(cmd);
    if (rc == -EADDRINUSE)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "%s %s: address in use by a live server (ipc stat %s%s shows it)",
                              p->ep.shm ? "shm" : "socket", p->ep.name, p->ep.shm ? "--shm " : "",
                              p->ep.name);
    return ipc__cli_error(cmd, IPC_EXIT_FAIL, "listen on %s: %s", p->ep.name, ipc_strerror(rc));
}

/* "serving" is printed once everything runs: the listener, the library's
 * threads and the stopper. */
static int serve_run(const ipc__cli_cmd *cmd, const serve_plan *p)
{
    block_stop_signals();
    ipc_server *s = make_server(p);
    if (s == NULL) /* every argument was checked: only memory is left */
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "cannot create the server: out of memory");
    pthread_t stopper;
    int rc = serve_start(s, &stopper);
    if (rc < 0) {
        ipc_server_destroy(s);
        return serve_start_error(cmd, p, rc);
    }
    if (!p->quiet) {
        printf("serving %s %s (echo, %s wire, %s); Ctrl-C stops\n", p->ep.shm ? "shm" : "socket",
               p->ep.name, p->opts.wire == IPC_WIRE_MUX ? "mux" : "legacy",
               p->opts.workers == 0 ? "serial" : "workers");
        fflush(stdout);
    }
    rc = serve_until_signal(s, stopper, echo, (void *)&p->work, p->opts.max_message_size);
    ipc_server_destroy(s);
    return rc < 0 ? ipc__cli_error(cmd, IPC_EXIT_FAIL, "run: %s", ipc_strerror(rc))
                  : IPC_EXIT_OK;
}

enum { OPT_SOCKET = 256, OPT_SHM, OPT_CLIENTS, OPT_COUNT, OPT_SIZE, OPT_MAXMSG, OPT_RING,
       OPT_TIMEOUT, OPT_QUIET, OPT_PAYLOAD, OPT_EXPECT, OPT_NO_CHECK, OPT_JSON, OPT_HELP,
       OPT_WIRE, OPT_WORKERS, OPT_SLEEP_US, OPT_SPIN_US, OPT_INFLIGHT };

/* --wire legacy|mux into *wire. */
static int wire_option(const ipc__cli_cmd *cmd, const char *arg, uint32_t *wire)
{
    if (strcmp(arg, "legacy") == 0)
        *wire = IPC_WIRE_LEGACY;
    else if (strcmp(arg, "mux") == 0)
        *wire = IPC_WIRE_MUX;
    else
        return ipc__cli_error(cmd, IPC_EXIT_USAGE,
                              "bad value for --wire: '%s' (legacy or mux)", arg);
    return IPC_EXIT_OK;
}

static int serve_option(const ipc__cli_cmd *cmd, int opt, serve_plan *p)
{
    uint64_t v;
    switch (opt) {
    case OPT_SOCKET:
    case OPT_SHM: return ipc__cli_endpoint_set(cmd, &p->ep, opt == OPT_SHM, optarg);
    case OPT_CLIENTS:
        if (!ipc__cli_count(cmd, "clients", optarg, 0, IPC__CLI_SHM_MAX_CLIENTS, &p->clients))
            return IPC_EXIT_USAGE;
        break;
    case OPT_MAXMSG:
        if (!ipc__cli_size(cmd, "max-message", optarg, 1, IPC_MAX_MESSAGE_LIMIT, &v))
            return IPC_EXIT_USAGE;
        p->opts.max_message_size = (size_t)v;
        break;
    case OPT_RING:
        if (!ipc__cli_size(cmd, "ring-size", optarg, 4096, (uint64_t)1 << 31, &v))
            return IPC_EXIT_USAGE;
        if ((v & (v - 1)) != 0)
            return ipc__cli_error(cmd, IPC_EXIT_USAGE,
                                  "bad value for --ring-size: %s is not a power of two", optarg);
        p->opts.ring_size = (size_t)v;
        break;
    case OPT_QUIET: p->quiet = true; break;
    case OPT_WIRE: return wire_option(cmd, optarg, &p->opts.wire);
    case OPT_WORKERS:
        if (!ipc__cli_count(cmd, "workers", optarg, 0, 1024, &v))
            return IPC_EXIT_USAGE;
        p->opts.workers = (uint32_t)v;
        break;
    case OPT_SLEEP_US:
    case OPT_SPIN_US:
        if (p->work.us != 0)
            return ipc__cli_error(cmd, IPC_EXIT_USAGE, "give --sleep-us or --spin-us, not both");
        if (!ipc__cli_count(cmd, opt == OPT_SPIN_US ? "spin-us" : "sleep-us", optarg, 0,
                            60ull * 1000 * 1000, &p->work.us))
            return IPC_EXIT_USAGE;
        p->work.spin = opt == OPT_SPIN_US;
        break;
    default: return IPC_EXIT_USAGE;
    }
    return IPC_EXIT_OK;
}

static int serve_main(const ipc__cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"shm", required_argument, NULL, OPT_SHM},
        {"clients", required_argument, NULL, OPT_CLIENTS},
        {"max-message", required_argument, NULL, OPT_MAXMSG},
        {"ring-size", required_argument, NULL, OPT_RING},
        {"wire", required_argument, NULL, OPT_WIRE},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"sleep-us", required_argument, NULL, OPT_SLEEP_US},
        {"spin-us", required_argument, NULL, OPT_SPIN_US},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    serve_plan p = {.clients = 8};
    bool clients_given = false;
    optind = 0;
    for (int opt; (opt = ipc__cli_getopt(cmd, argc, argv, opts)) != -1;) {
        if (opt == OPT_HELP)
            return ipc__cli_help(cmd);
        clients_given |= opt == OPT_CLIENTS;
        int rc = opt == '?' ? IPC_EXIT_USAGE : serve_option(cmd, opt, &p);
        if (rc != IPC_EXIT_OK)
            return rc;
    }
    if (optind != argc)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!p.ep.set)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "give --socket PATH or --shm NAME");
    if (p.ep.shm && p.clients == 0)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE,
                              "bad value for --clients: a shared-memory server serves 1 to %d",
                              IPC__CLI_SHM_MAX_CLIENTS);
    if (!p.ep.shm && !clients_given)
        p.clients = 0; /* the library's initial table */
    if (p.opts.wire == IPC_WIRE_MUX && p.opts.max_message_size > ((size_t)1 << 30) - 8)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE,
                              "bad value for --max-message: the mux wire carries at most "
                              "1 GiB - 8 bytes (a frame, its id included, is at most 1 GiB)");
    return serve_run(cmd, &p);
}

const ipc__cli_cmd ipc__cmd_serve = {
    .name = "serve",
    .summary = "an echo server; stops on SIGINT/SIGTERM",
    .help =
        "usage: ipc serve (--socket PATH | --shm NAME) [options]\n"
        "\n"
        "An echo server: every request comes back as its reply. Runs until SIGINT\n"
        "or SIGTERM, then removes its socket file.\n"
        "\n"
        "  --socket PATH        listen on a Unix socket at PATH (at most 107 bytes once\n"
        "                       resolved; relative to the directory you typed the\n"
        "                       command in, also under `bazel run`)\n"
        "  --shm NAME           serve shared memory under NAME (1-64 of A-Z a-z 0-9 . _ -)\n"
        "  --clients N          shm: clients served at once, 1-4096 (default 8);\n"
        "                       socket: initial client table size (grows; default 16)\n"
        "  --max-message SIZE   largest request and reply (default 1M); a socket client\n"
        "                       sending a larger request is dropped\n"
        "  --ring-size SIZE     shm ring per direction, a power of two, 4K-2G (default 4M)\n"
        "  --wire legacy|mux    framing (default legacy, the seed's and bb.js's); mux:\n"
        "                       every message begins with a u64 LE request id, replies\n"
        "                       in completion order (docs/PROTOCOL.md)\n"
        "  --workers N          threads running the handler, 0-1024 (default 0: serial)\n"
        "  --sleep-us T         the handler sleeps T us before echoing (a handler\n"
        "                       waiting on I/O); 0-60000000\n"
        "  --spin-us T          the handler burns T us of CPU before echoing\n"
        "  --quiet              print nothing once listening\n"
        "  --help               this text\n"
        "SIZE: digits with an optional unit B, K/KiB, M/MiB, G/GiB (powers of 1024).\n"
        "\n"
        "Prints \"serving ...\" once it serves (unless --quiet).\n"
        "\n"
        "Exit: 0 stopped by a signal, 1 cannot listen (address in use...), 2 bad usage,\n"
        "3 cannot start a thread (the user's process/thread limit, ulimit -u).\n"
        "\n"
        "example:\n"
        "  ipc serve --socket /tmp/echo.sock --max-message 64K\n",
    .run = serve_main,
};

/* -------------------------------------------------------------------- ping */

enum { CHECK_ECHO, CHECK_EXPECT, CHECK_NONE };
static const char *const check_names[] = {"echo", "expect", "none"};

typedef struct ping_plan {
    ipc__cli_endpoint ep;
    uint64_t clients; /* shm: the server's capacity to insist on; 0 takes the server's */
    uint64_t count, timeout_ms;
    uint8_t *payload, *expect;
    size_t payload_len, expect_len;
    int check;
    bool json;
    uint32_t wire;     /* ipc_wire */
    uint64_t inflight; /* mux: requests out at once */
} ping_plan;

typedef struct ping_result {
    uint64_t count, warmup;
    double mean_ns;
    uint64_t min_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns;
    /* Where it failed: the round trip (1-based, warm-up included), and for
     * a wrong reply its length and the first differing byte. */
    uint64_t failed_at;
    size_t got_len, differs_at;
    size_t served; /* shm: the server's capacity, once a connect reached it */
    int reset;     /* after -ECONNRESET/-EPIPE: what is known of why (RESET_*) */
} ping_result;

/* Why the server closed a ping's connection, as far as its stats page tells
 * (read before the connect and after the reset). */
enum {
    RESET_UNKNOWN,  /* no stats page before: not one of ours, or not readable */
    RESET_GONE,     /* its page is gone: the server stopped or crashed */
    RESET_DROPPED,  /* it still runs: it dropped this client */
    RESET_OVERSIZE, /* ... and counted an oversize request meanwhile */
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least q of them at or below. */
static uint64_t nearest_rank(const uint64_t *sorted, uint64_t n, double q)
{
    uint64_t rank = (uint64_t)(q * (double)n + 0.999999);
    return sorted[(rank < 1 ? 1 : rank > n ? n : rank) - 1];
}

static ipc_client *make_client(const ping_plan *p)
{
    ipc_client_options o = {.wire = p->wire};
    if (!p->ep.shm)
        return ipc_client_create_socket_ex(p->ep.name, &o);
    return ipc_client_create_shm_ex(p->ep.name, p->clients, &o);
}

/* Connects within timeout_ns (0: without limit, as --timeout-ms 0 says),
 * retrying for up to 1 s of it while nothing listens yet (a server just
 * started). */
static int connect_retry(ipc_client *c, uint64_t timeout_ns)
{
    uint64_t limit = timeout_ns != 0 ? timeout_ns : UINT64_MAX;
    uint64_t start = ipc__cli_now_ns();
    for (int i = 0;; i++) {
        uint64_t spent = ipc__cli_now_ns() - start;
        int rc = ipc_client_connect_timeout(c, spent < limit ? limit - spent : 1);
        if ((rc != -ENOENT && rc != -ECONNREFUSED) || i == 499 ||
            ipc__cli_now_ns() - start >= limit)
            return rc;
        usleep(2000);
    }
}

/* 0 when the reply is what the plan expects, else -EBADMSG with where. */
static int ping_check(const ping_plan *p, const uint8_t *got, size_t n, ping_result *r)
{
    const uint8_t *want = p->check == CHECK_EXPECT ? p->expect : p->payload;
    size_t want_len = p->check == CHECK_EXPECT ? p->expect_len : p->payload_len;
    if (p->check == CHECK_NONE || (n == want_len && memcmp(got, want, n) == 0))
        return 0;
    size_t i = 0;
    while (i < n && i < want_len && got[i] == want[i])
        i++;
    r->got_len = n;
    r->differs_at = i;
    return -EBADMSG;
}

static int ping_round(ipc_client *c, const ping_plan *p, uint64_t timeout_ns, ping_result *r)
{
    int rc = ipc_client_send(c, p->payload, p->payload_len, timeout_ns);
    if (rc < 0)
        return rc;
    const void *reply;
    ssize_t n = ipc_client_peek(c, &reply, timeout_ns);
    if (n < 0)
        return (int)n;
    rc = ping_check(p, reply, (size_t)n, r);
    ssize_t released = ipc_client_release(c);
    return rc < 0 ? rc : released < 0 ? (int)released : 0;
}

static void ping_summarize(uint64_t *lat, uint64_t count, ping_result *r)
{
    qsort(lat, count, sizeof(*lat), cmp_u64);
    double sum = 0;
    for (uint64_t i = 0; i < count; i++)
        sum += (double)lat[i];
    r->count = count;
    r->mean_ns = sum / (double)count;
    r->min_ns = lat[0];
    r->p50_ns = nearest_rank(lat, count, 0.50);
    r->p90_ns = nearest_rank(lat, count, 0.90);
    r->p99_ns = nearest_rank(lat, count, 0.99);
    r->p999_ns = nearest_rank(lat, count, 0.999);
    r->max_ns = lat[count - 1];
}

static const char *transport_name(const ipc__cli_endpoint *ep)
{
    return ep->shm ? "shm" : "socket";
}

/* The server's oversize counter, from its stats page: 0 with *oversize and
 * *pid, or -errno (no page: not one of ours, or gone). */
static int server_oversize(const ping_plan *p, uint64_t *oversize, int32_t *pid)
{
    ipc_stats st;
    ipc_server_info info;
    int rc = ipc_stats_fetch(transport_name(&p->ep), p->ep.name, &st, &info);
    if (rc == 0) {
        *oversize = st.oversize;
        *pid = info.pid;
    }
    return rc;
}

/* After a reset: what the server's page says now, against before. */
static int reset_cause(const ping_plan *p, int before_rc, uint64_t before, int32_t before_pid)
{
    uint64_t after;
    int32_t pid;
    if (before_rc < 0)
        return RESET_UNKNOWN;
    /* A server killed has closed its stats listener when we see the reset
     * (its last thread is gone): the page is read only from a live one. */
    if (server_oversize(p, &after, &pid) < 0 || pid != before_pid)
        return RESET_GONE;
    return after > before ? RESET_OVERSIZE : RESET_DROPPED;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The multiplexed wire: n requests, up to p->inflight out at once, ids
 * from a random start; each reply is matched by its id (one nobody asked
 * for, or a second for one id, is -EPROTO) and timed from its own send.
 * lat gets the samples of requests warmup.. in completion order. */
static int ping_mux(ipc_client *c, const ping_plan *p, uint64_t timeout_ns, uint64_t warmup,
                    uint64_t n, uint64_t *lat, ping_result *r)
{
    uint64_t base = 0;
    if (getrandom(&base, sizeof base, 0) != (ssize_t)sizeof base)
        base = ipc__cli_now_ns();
    base = (base >> 1) | 1; /* never 0 (the server's), no wrap within n */
    uint64_t *sent_at = calloc(n, sizeof(*sent_at));
    uint8_t *msg = malloc(8 + p->payload_len);
    int rc = -ENOMEM;
    if (sent_at == NULL || msg == NULL)
        goto out;
    if (p->payload_len != 0)
        memcpy(msg + 8, p->payload, p->payload_len);
    uint64_t next = 0, done = 0, samples = 0;
    for (rc = 0; rc == 0 && done < n; done++) {
        for (; next < n && next - done < p->inflight; next++) {
            put_le64(msg, base + next);
            sent_at[next] = ipc__cli_now_ns();
            if ((rc = ipc_client_send(c, msg, 8 + p->payload_len, timeout_ns)) < 0)
                break;
        }
        const void *reply;
        ssize_t len = rc < 0 ? rc : ipc_client_peek(c, &reply, timeout_ns);
        if (len < 0) {
            rc = (int)len;
            break;
        }
        uint64_t seq = len >= 8 ? get_le64(reply) - base : UINT64_MAX;
        if (seq >= next || sent_at[seq] == 0)
            rc = -EPROTO; /* an id nobody asked for, or answered twice */
        else
            rc = ping_check(p, (const uint8_t *)reply + 8, (size_t)len - 8, r);
        if (rc == 0 && seq >= warmup)
            lat[samples++] = ipc__cli_now_ns() - sent_at[seq];
        if (rc == 0)
            sent_at[seq] = 0;
        ssize_t released = ipc_client_release(c);
        if (rc == 0 && released < 0)
            rc = (int)released;
    }
    if (rc < 0)
        r->failed_at = done + 1;
out:
    free(msg);
    free(sent_at);
    return rc;
}

/* Connects, warms up, then times count round trips. 0 or -errno; on a
 * failed round trip r->failed_at says which. */
static int ping_run(const ping_plan *p, ping_result *r)
{
    int rc = -ENOMEM;
    *r = (ping_result){.warmup = p->count / 10 < 1000 ? p->count / 10 : 1000};
    uint64_t timeout_ns = p->timeout_ms * 1000000ull;
    ipc_client *c = make_client(p);
    uint64_t *lat = malloc(p->count * sizeof(*lat));
    uint64_t oversize = 0;
    int32_t pid = 0;
    if (c == NULL || lat == NULL)
        goto out;
    if ((rc = connect_retry(c, timeout_ns)) < 0)
        goto out;
    /* After the connect: a server that was just starting has its page. */
    int page_rc = server_oversize(p, &oversize, &pid);
    if (p->wire == IPC_WIRE_MUX) {
        rc = ping_mux(c, p, timeout_ns, r->warmup, r->warmup + p->count, lat, r);
        if (rc == -ECONNRESET || rc == -EPIPE)
            r->reset = reset_cause(p, page_rc, oversize, pid);
        if (rc < 0)
            goto out;
        ping_summarize(lat, p->count, r);
        goto out;
    }
    for (uint64_t i = 0; i < r->warmup + p->count; i++) {
        uint64_t t0 = ipc__cli_now_ns();
        if ((rc = ping_round(c, p, timeout_ns, r)) < 0) {
            r->failed_at = i + 1;
            if (rc == -ECONNRESET || rc == -EPIPE)
                r->reset = reset_cause(p, page_rc, oversize, pid);
            goto out;
        }
        if (i >= r->warmup)
            lat[i - r->warmup] = ipc__cli_now_ns() - t0;
    }
    ping_summarize(lat, p->count, r);
    rc = 0;
out:
    r->served = ipc_client_shm_capacity(c);
    ipc_client_destroy(c);
    free(lat);
    return rc;
}

/* The cause of a failed ping, and what to do about it. */
static int ping_error(const ipc__cli_cmd *cmd, const ping_plan *p, const ping_result *r, int rc)
{
    const char *t = transport_name(&p->ep), *n = p->ep.name;
    if (r->failed_at == 0 && (rc == -ENOENT || rc == -ECONNREFUSED))
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "no server at %s %s (nothing listens there; `ipc ls` lists the "
                              "live ones)",
                              t, n);
    if (r->failed_at == 0 && rc == -EINVAL && p->ep.shm && r->served != 0)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "shm %s serves %zu clients, --clients asked for %" PRIu64
                              "; omit --clients (or give 0) to take the server's",
                              n, r->served, p->clients);
    if (r->failed_at == 0 && rc == -EAGAIN)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "shm %s has no free client slot: all are taken", n);
    if (r->failed_at == 0 && rc == -ETIMEDOUT)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "connect to %s %s: no answer within %" PRIu64
                              " ms (--timeout-ms): the server is stopped, hung or overloaded",
                              t, n, p->timeout_ms);
    if (r->failed_at == 0)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "connect to %s %s: %s", t, n, ipc_strerror(rc));
    if (rc == -EBADMSG)
        return ipc__cli_error(
            cmd, IPC_EXIT_FAIL,
            "reply %" PRIu64 " is not the one expected (%zu bytes, want %zu; first difference at "
            "byte %zu); give --expect DATA for a server that does not echo, or --no-check",
            r->failed_at, r->got_len,
            p->check == CHECK_EXPECT ? p->expect_len : p->payload_len, r->differs_at);
    if (rc == -ETIMEDOUT)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "round trip %" PRIu64 ": no reply within %" PRIu64
                              " ms (--timeout-ms; 0 waits forever)",
                              r->failed_at, p->timeout_ms);
    if ((rc == -ECONNRESET || rc == -EPIPE) && r->reset == RESET_OVERSIZE)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "round trip %" PRIu64 ": the server dropped this client: the "
                              "request of %zu bytes is over its --max-message (it counted it "
                              "as oversize)",
                              r->failed_at, p->payload_len);
    if ((rc == -ECONNRESET || rc == -EPIPE) && r->reset == RESET_DROPPED)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "round trip %" PRIu64 ": the server closed the connection but "
                              "still runs: it dropped this client (ipc stat %s%s shows its drops)",
                              r->failed_at, p->ep.shm ? "--shm " : "", n);
    if ((rc == -ECONNRESET || rc == -EPIPE) && r->reset == RESET_GONE)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "round trip %" PRIu64 ": the server closed the connection (it "
                              "stopped or crashed)",
                              r->failed_at);
    if (rc == -ECONNRESET || rc == -EPIPE)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "round trip %" PRIu64 ": the server closed the connection (it "
                              "stopped, crashed, or dropped this client)",
                              r->failed_at);
    if (rc == -EMSGSIZE)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "a request of %zu bytes is larger than this server takes",
                              p->payload_len);
    if (rc == -EPROTO && p->wire == IPC_WIRE_MUX)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL,
                              "reply %" PRIu64 " carries a request id that was not asked for "
                              "(or was answered already): is the server on the mux wire "
                              "(ipc serve --wire mux)?",
                              r->failed_at);
    return ipc__cli_error(cmd, IPC_EXIT_FAIL, "round trip %" PRIu64 ": %s", r->failed_at,
                          ipc_strerror(rc));
}

static void print_stats_header(void)
{
    printf("%-10s %9s %8s %10s %10s %10s %10s\n", "transport", "size", "count", "p50 us",
           "p99 us", "p99.9 us", "max us");
}

static void print_stats(const char *name, size_t size, const ping_result *r)
{
    printf("%-10s %9zu %8" PRIu64 " %10.2f %10.2f %10.2f %10.2f\n", name, size, r->count,
           (double)r->p50_ns / 1e3, (double)r->p99_ns / 1e3, (double)r->p999_ns / 1e3,
           (double)r->max_ns / 1e3);
}

static void print_json(const ping_plan *p, const ping_result *r)
{
    printf("{\"transport\": \"%s\", \"name\": ", transport_name(&p->ep));
    ipc__cli_json_str(stdout, p->ep.name);
    printf(", \"size\": %zu, \"count\": %" PRIu64 ", \"warmup\": %" PRIu64
           ", \"check\": \"%s\", \"min_ns\": %" PRIu64 ", \"mean_ns\": %.0f, \"p50_ns\": %" PRIu64
           ", \"p90_ns\": %" PRIu64 ", \"p99_ns\": %" PRIu64 ", \"p999_ns\": %" PRIu64
           ", \"max_ns\": %" PRIu64 "}\n",
           p->payload_len, r->count, r->warmup, check_names[p->check], r->min_ns, r->mean_ns,
           r->p50_ns, r->p90_ns, r->p99_ns, r->p999_ns, r->max_ns);
}

/* The default request: size bytes of a pattern. */
static int ping_pattern(const ipc__cli_cmd *cmd, ping_plan *p, uint64_t size)
{
    p->payload = malloc(size ? size : 1);
    if (p->payload == NULL)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "out of memory for --size %" PRIu64, size);
    for (uint64_t i = 0; i < size; i++)
        p->payload[i] = (uint8_t)(i * 31 + 7);
    p->payload_len = (size_t)size;
    return IPC_EXIT_OK;
}

typedef struct ping_args {
    ping_plan plan;
    uint64_t size;
    bool size_given, payload_given, expect_given, no_check, inflight_given;
} ping_args;

static int ping_option(const ipc__cli_cmd *cmd, int opt, ping_args *a)
{
    ping_plan *p = &a->plan;
    switch (opt) {
    case OPT_SOCKET:
    case OPT_SHM: return ipc__cli_endpoint_set(cmd, &p->ep, opt == OPT_SHM, optarg);
    case OPT_CLIENTS:
        return ipc__cli_count(cmd, "clients", optarg, 0, IPC__CLI_SHM_MAX_CLIENTS, &p->clients)
                   ? IPC_EXIT_OK
                   : IPC_EXIT_USAGE;
    case OPT_COUNT:
        return ipc__cli_count(cmd, "count", optarg, 1, 100000000, &p->count) ? IPC_EXIT_OK
                                                                              : IPC_EXIT_USAGE;
    case OPT_SIZE:
        a->size_given = true;
        return ipc__cli_size(cmd, "size", optarg, 0, IPC_MAX_MESSAGE_LIMIT, &a->size)
                   ? IPC_EXIT_OK
                   : IPC_EXIT_USAGE;
    case OPT_TIMEOUT:
        return ipc__cli_count(cmd, "timeout-ms", optarg, 0, UINT64_MAX / 1000000, &p->timeout_ms)
                   ? IPC_EXIT_OK
                   : IPC_EXIT_USAGE;
    case OPT_PAYLOAD:
        if (a->payload_given)
            return ipc__cli_error(cmd, IPC_EXIT_USAGE, "--payload given twice");
        a->payload_given = true;
        return ipc__cli_data(cmd, "payload", optarg, &p->payload, &p->payload_len);
    case OPT_EXPECT:
        if (a->expect_given)
            return ipc__cli_error(cmd, IPC_EXIT_USAGE, "--expect given twice");
        a->expect_given = true;
        return ipc__cli_data(cmd, "expect", optarg, &p->expect, &p->expect_len);
    case OPT_NO_CHECK: a->no_check = true; return IPC_EXIT_OK;
    case OPT_JSON: p->json = true; return IPC_EXIT_OK;
    case OPT_WIRE: return wire_option(cmd, optarg, &p->wire);
    case OPT_INFLIGHT:
        a->inflight_given = true;
        return ipc__cli_count(cmd, "inflight", optarg, 1, 65536, &p->inflight) ? IPC_EXIT_OK
                                                                              : IPC_EXIT_USAGE;
    default: return IPC_EXIT_USAGE;
    }
}

/* The options that exclude each other, and the request to send. */
static int ping_finish(const ipc__cli_cmd *cmd, int argc, char **argv, ping_args *a)
{
    ping_plan *p = &a->plan;
    if (optind != argc)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!p->ep.set)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "give --socket PATH or --shm NAME");
    if (a->size_given && a->payload_given)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE,
                              "give --size or --payload, not both (the payload sets the size)");
    if (a->expect_given && a->no_check)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "give --expect or --no-check, not both");
    if (!p->ep.shm && p->clients != 0)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "--clients is for --shm only");
    if (a->inflight_given && p->wire != IPC_WIRE_MUX)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE,
                              "--inflight needs --wire mux (the legacy wire answers in order, "
                              "one request after another)");
    p->check = a->no_check ? CHECK_NONE : a->expect_given ? CHECK_EXPECT : CHECK_ECHO;
    return a->payload_given ? IPC_EXIT_OK : ping_pattern(cmd, p, a->size);
}

static int ping_main(const ipc__cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"shm", required_argument, NULL, OPT_SHM},
        {"clients", required_argument, NULL, OPT_CLIENTS},
        {"count", required_argument, NULL, OPT_COUNT},
        {"size", required_argument, NULL, OPT_SIZE},
        {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
        {"payload", required_argument, NULL, OPT_PAYLOAD},
        {"expect", required_argument, NULL, OPT_EXPECT},
        {"no-check", no_argument, NULL, OPT_NO_CHECK},
        {"json", no_argument, NULL, OPT_JSON},
        {"wire", required_argument, NULL, OPT_WIRE},
        {"inflight", required_argument, NULL, OPT_INFLIGHT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    ping_args a = {.plan = {.count = 10000, .timeout_ms = 5000, .inflight = 1}, .size = 64};
    int rc = IPC_EXIT_OK;
    optind = 0;
    for (int opt; rc == IPC_EXIT_OK && (opt = ipc__cli_getopt(cmd, argc, argv, opts)) != -1;) {
        if (opt == OPT_HELP) {
            rc = ipc__cli_help(cmd);
            goto out;
        }
        rc = opt == '?' ? IPC_EXIT_USAGE : ping_option(cmd, opt, &a);
    }
    if (rc == IPC_EXIT_OK)
        rc = ping_finish(cmd, argc, argv, &a);
    if (rc != IPC_EXIT_OK)
        goto out;
    ping_result r;
    int err = ping_run(&a.plan, &r);
    if (err < 0) {
        rc = ping_error(cmd, &a.plan, &r, err);
    } else if (a.plan.json) {
        print_json(&a.plan, &r);
    } else {
        print_stats_header();
        print_stats(transport_name(&a.plan.ep), a.plan.payload_len, &r);
    }
out:
    free(a.plan.payload);
    free(a.plan.expect);
    return rc;
}

const ipc__cli_cmd ipc__cmd_ping = {
    .name = "ping",
    .summary = "round trips to any server, with p50/p99/p99.9",
    .help =
        "usage: ipc ping (--socket PATH | --shm NAME) [options]\n"
        "\n"
        "Sends --count requests one at a time (after a warm-up of a tenth, at most\n"
        "1000), checks each reply and prints the round-trip percentiles.\n"
        "\n"
        "  --socket PATH       a Unix socket server (resolved like `ipc serve` does)\n"
        "  --shm NAME          a shared-memory server\n"
        "  --clients N         shm: insist the server serves N clients (default 0:\n"
        "                      take whatever it serves)\n"
        "  --count N           timed round trips, 1-100000000 (default 10000)\n"
        "  --size SIZE         request of SIZE pattern bytes (default 64)\n"
        "  --payload DATA      the request instead: TEXT, text:TEXT, hex:48690a, @FILE\n"
        "  --expect DATA       the reply every request must get (same forms); default:\n"
        "                      the request itself (an echo server)\n"
        "  --no-check          accept any reply\n"
        "  --timeout-ms MS     for the connect, and per send and per reply (default\n"
        "                      5000; 0 waits forever)\n"
        "  --json              one JSON object instead of the table (docs/OPERATIONS.md)\n"
        "  --wire legacy|mux   the server's framing (default legacy; see ipc serve)\n"
        "  --inflight K        mux: keep K requests out at once, 1-65536 (default 1);\n"
        "                      each reply is matched by its id and timed from its send\n"
        "  --help              this text\n"
        "SIZE: digits with an optional unit B, K/KiB, M/MiB, G/GiB (powers of 1024).\n"
        "\n"
        "A connection the server closes is explained from its stats page: a request\n"
        "over its --max-message, a client it dropped, or a server that stopped or\n"
        "crashed; nothing is claimed that the page does not show.\n"
        "\n"
        "Exit: 0 every reply as expected, 1 no server / wrong reply / timeout\n"
        "(connect included) / connection closed, 2 bad usage.\n"
        "\n"
        "example:\n"
        "  ipc ping --socket /tmp/echo.sock --count 1000 --payload hello --json\n"
        "  ipc ping --socket /tmp/mux.sock --wire mux --inflight 64\n",
    .run = ping_main,
};

/* -------------------------------------------------------------------- demo */

/* Forks an echo server; returns its pid once it serves, or -errno (the
 * child's serve_start() error; -EUSERS also when no process can start). */
static pid_t spawn_server(const serve_plan *sp)
{
    int ready[2];
    if (pipe(ready) < 0)
        return -errno;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        block_stop_signals();
        ipc_server *s = make_server(sp);
        pthread_t stopper;
        int rc = s != NULL ? serve_start(s, &stopper) : -ENOMEM;
        if (write(ready[1], &rc, sizeof(rc)) != (ssize_t)sizeof(rc) || rc < 0)
            _exit(1);
        close(ready[1]);
        rc = serve_until_signal(s, stopper, echo, NULL, sp->opts.max_message_size);
        ipc_server_destroy(s);
        _exit(rc < 0);
    }
    int err = pid < 0 ? (errno == EAGAIN ? -EUSERS : -errno) : 0;
    close(ready[1]);
    int rc = -EIO;
    if (pid > 0 && read(ready[0], &rc, sizeof(rc)) != (ssize_t)sizeof(rc))
        rc = -EIO;
    close(ready[0]);
    if (pid < 0)
        return err;
    if (rc < 0) {
        waitpid(pid, NULL, 0);
        return rc;
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

static int demo_transport(const ipc__cli_cmd *cmd, const ipc__cli_endpoint *ep)
{
    static const size_t sizes[] = {64, 4096, 65536};
    serve_plan sp = {.ep = *ep, .clients = 4, .opts = {.max_message_size = 1 << 20}};
    pid_t pid = spawn_server(&sp);
    if (pid == -EUSERS)
        return no_thread_error(cmd);
    if (pid < 0)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "%s server: %s", transport_name(ep),
                              ipc_strerror((int)pid));
    int rc = IPC_EXIT_OK;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && rc == IPC_EXIT_OK; i++) {
        ping_plan p = {.ep = *ep, .count = sizes[i] > 4096 ? 2000 : 20000, .timeout_ms = 5000};
        ping_result r;
        rc = ping_pattern(cmd, &p, sizes[i]);
        int err = rc == IPC_EXIT_OK ? ping_run(&p, &r) : 0;
        if (err < 0)
            rc = ping_error(cmd, &p, &r, err);
        else if (rc == IPC_EXIT_OK)
            print_stats(transport_name(ep), sizes[i], &r);
        free(p.payload);
    }
    int stop = stop_server(pid);
    if (rc == IPC_EXIT_OK && stop < 0)
        rc = ipc__cli_error(cmd, IPC_EXIT_FAIL, "server exit: %s", ipc_strerror(stop));
    return rc;
}

static int demo_main(const ipc__cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, OPT_HELP},
                                         {NULL, 0, NULL, 0}};
    optind = 0;
    for (int opt; (opt = ipc__cli_getopt(cmd, argc, argv, opts)) != -1;)
        return opt == OPT_HELP ? ipc__cli_help(cmd) : IPC_EXIT_USAGE;
    if (optind != argc)
        return ipc__cli_error(cmd, IPC_EXIT_USAGE, "unexpected argument '%s'", argv[optind]);
    char dir[] = "/tmp/ipc-demo-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return ipc__cli_error(cmd, IPC_EXIT_FAIL, "mkdtemp: %s", strerror(errno));
    ipc__cli_endpoint sock = {.set = true}, shm = {.set = true, .shm = true};
    snprintf(sock.name, sizeof(sock.name), "%s/demo.sock", dir);
    /* The pid alone is not unique: processes in other pid namespaces
     * (containers, sandboxes) share the abstract socket namespace. */
    uint32_t salt = 0;
    if (getrandom(&salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
        salt = (uint32_t)ipc__cli_now_ns();
    snprintf(shm.name, sizeof(shm.name), "ipc-demo-%d-%08x", (int)getpid(), salt);
    printf("ipc demo: an echo server in a child process, one client, round trips\n\n");
    print_stats_header();
    int rc = demo_transport(cmd, &sock);
    if (rc == IPC_EXIT_OK)
        rc = demo_transport(cmd, &shm);
    rmdir(dir);
    if (rc == IPC_EXIT_OK)
        printf("\nshared memory skips the kernel on the hot path; sockets take any "
               "number of clients.\n");
    return rc;
}

const ipc__cli_cmd ipc__cmd_demo = {
    .name = "demo",
    .summary = "both transports side by side: a short latency table",
    .help = "usage: ipc demo\n"
            "\n"
            "Starts an echo server in a child process, first on a Unix socket in a\n"
            "fresh /tmp directory, then on shared memory, and prints round-trip\n"
            "percentiles for 64 B, 4 KiB and 64 KiB requests. Takes a few seconds and\n"
            "leaves nothing behind.\n"
            "\n"
            "  --help   this text\n"
            "\n"
            "Exit: 0 done, 1 a server or a round trip failed, 2 bad usage, 3 cannot\n"
            "start a thread or process (the user's process/thread limit, ulimit -u).\n"
            "\n"
            "example:\n"
            "  bazel run //tools:ipc -- demo\n",
    .run = demo_main,
};
