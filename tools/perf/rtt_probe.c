/*
 * Round trips for instruction counting: a forked echo server and a client
 * doing COUNT round trips of SIZE bytes, one at a time, each reply checked.
 *
 *   rtt_probe shm|shm_zc|socket|raw_spin COUNT SIZE
 *
 * RTT_PROBE_PIN=1 pins the server to CPU 1 and the client to CPU 0.
 * RTT_PROBE_WINDOW=W (shm, socket) pipelines instead: W requests in
 * flight, one new request per reply, COUNT replies in all (per message,
 * callgrind_rtt.sh then counts a pipelined message, not a round trip).
 * RTT_PROBE_PHASES=1 prints, for each side, wall time, CPU time and minor
 * page faults per round trip over round trips 1, 2-10, 11-40 and 41-COUNT
 * (where a new connection's first pass costs; docs/BENCHMARKS.md, issue 23).
 * Run under `valgrind --tool=callgrind` by tools/perf/callgrind_rtt.sh,
 * which counts only our own work per round trip (waiting is toggled off).
 * raw_spin is the floor: two processes, one shared page, a sequence number
 * each way and a memcpy; nothing else.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"

#define PROBE_MAX_SIZE (1 << 20)

static void probe_die(const char *what, int err)
{
    fprintf(stderr, "rtt_probe: %s: %s\n", what, err < 0 ? ipc_strerror(err) : "failed");
    exit(1);
}

/* ------------------------------------------------------------- raw spin */

typedef struct {
    _Alignas(64) _Atomic uint64_t req_seq;
    _Alignas(64) _Atomic uint64_t resp_seq;
    _Alignas(64) uint32_t req_len, resp_len;
    unsigned char req[PROBE_MAX_SIZE];
    unsigned char resp[PROBE_MAX_SIZE];
} probe_page;

/* Spins until *seq reaches want. Separate so that it can be left uncounted. */
__attribute__((noinline)) void probe_spin_until(_Atomic uint64_t *seq, uint64_t want)
{
    /* Acquire: pairs with the release in probe_raw_publish(); publishes the
     * frame written before it. */
    while (atomic_load_explicit(seq, memory_order_acquire) < want)
        __builtin_ia32_pause();
}

static void probe_raw_publish(_Atomic uint64_t *seq, uint64_t v)
{
    /* Release: publishes the frame's bytes and length to the other side. */
    atomic_store_explicit(seq, v, memory_order_release);
}

__attribute__((noinline)) void probe_raw_serve_one(probe_page *p, uint64_t n)
{
    probe_spin_until(&p->req_seq, n);
    p->resp_len = p->req_len;
    memcpy(p->resp, p->req, p->req_len);
    probe_raw_publish(&p->resp_seq, n);
}

__attribute__((noinline)) void probe_raw_round_trip(probe_page *p, uint64_t n,
                                                     const unsigned char *msg, uint32_t len,
                                                     unsigned char *out)
{
    p->req_len = len;
    memcpy(p->req, msg, len);
    probe_raw_publish(&p->req_seq, n);
    probe_spin_until(&p->resp_seq, n);
    memcpy(out, p->resp, p->resp_len);
}

static int probe_raw(long count, size_t size, const unsigned char *msg, unsigned char *out)
{
    probe_page *p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                         -1, 0);
    if (p == MAP_FAILED)
        probe_die("mmap", -errno);
    pid_t pid = fork();
    if (pid < 0)
        probe_die("fork", -errno);
    if (pid == 0) {
        for (uint64_t n = 1; n <= (uint64_t)count; n++)
            probe_raw_serve_one(p, n);
        _exit(0);
    }
    for (uint64_t n = 1; n <= (uint64_t)count; n++) {
        probe_raw_round_trip(p, n, msg, (uint32_t)size, out);
        if (memcmp(out, msg, size) != 0)
            probe_die("raw echo differs", -EPROTO);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -ECHILD;
}

/* --------------------------------------------------------------- phases */

/* Round trips 1, 2-10, 11-40, 41-: boundaries after which a snapshot is taken. */
static const long probe_phase_end[] = {1, 10, 40};
#define PROBE_PHASES 4

typedef struct {
    uint64_t wall_ns, cpu_ns, minflt;
} probe_snap;

static bool probe_phases_on(void)
{
    const char *v = getenv("RTT_PROBE_PHASES");
    return v != NULL && strcmp(v, "1") == 0;
}

static probe_snap probe_snap_now(void)
{
    struct timespec w, c;
    struct rusage ru;
    clock_gettime(CLOCK_MONOTONIC, &w);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
    getrusage(RUSAGE_THREAD, &ru);
    return (probe_snap){(uint64_t)w.tv_sec * 1000000000ull + (uint64_t)w.tv_nsec,
                        (uint64_t)c.tv_sec * 1000000000ull + (uint64_t)c.tv_nsec,
                        (uint64_t)ru.ru_minflt};
}

typedef struct {
    long done;
    int next;
    probe_snap at[PROBE_PHASES + 1];
} probe_phases;

/* Called after each round trip (or each request served). */
static void probe_phase_tick(probe_phases *p)
{
    p->done++;
    if (p->next < PROBE_PHASES - 1 && p->done == probe_phase_end[p->next])
        p->at[++p->next] = probe_snap_now();
}

static void probe_phase_print(probe_phases *p, const char *side)
{
    p->at[p->next + 1] = probe_snap_now();
    long from = 0;
    for (int i = 0; i <= p->next; i++) {
        long to = i < PROBE_PHASES - 1 && i < p->next ? probe_phase_end[i] : p->done;
        long n = to - from;
        if (n > 0)
            fprintf(stderr,
                    "%s round trips %5ld-%-7ld wall %9.2f us  cpu %9.2f us  minflt %7.2f per rt\n",
                    side, from + 1, to, (double)(p->at[i + 1].wall_ns - p->at[i].wall_ns) / 1e3 / n,
                    (double)(p->at[i + 1].cpu_ns - p->at[i].cpu_ns) / 1e3 / n,
                    (double)(p->at[i + 1].minflt - p->at[i].minflt) / n);
        from = to;
    }
}

/* ------------------------------------------------------------------ ipc */

static ipc_action probe_echo(void *ctx, int client_id, const void *req, size_t len,
                             ipc_response *resp)
{
    probe_phases *ph = ctx;
    (void)client_id;
    if (len == 0)
        return IPC_SHUTDOWN; /* the probe's own "done" */
    if (ph != NULL) {
        if (ph->done == 0)
            ph->at[0] = probe_snap_now(); /* from the first request's arrival */
        probe_phase_tick(ph);
    }
    ipc_response_set(resp, req, len);
    return IPC_CONTINUE;
}

static ipc_server *probe_server(const char *kind, const char *name)
{
    /* Spin for a long time: under valgrind nobody should fall asleep, so
     * the counts hold our work, not the scheduler's. */
    ipc_server_options o = {.spin_ns = 10ull * 1000 * 1000 * 1000};
    if (strcmp(kind, "shm") == 0)
        return ipc_server_create_shm_ex(name, 1, &o);
    return ipc_server_create_socket_ex(name, 1, &o);
}

static ipc_client *probe_client(const char *kind, const char *name)
{
    if (strcmp(kind, "shm") == 0)
        return ipc_client_create_shm(name, 1);
    return ipc_client_create_socket(name);
}

static int probe_connect(ipc_client *c)
{
    for (int i = 0; i < 20000; i++) {
        int rc = ipc_client_connect(c);
        if (rc != -ENOENT && rc != -ECONNREFUSED && rc != -EAGAIN)
            return rc;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -ETIMEDOUT;
}

static ssize_t probe_copy_round_trip(ipc_client *c, const unsigned char *msg, size_t size,
                                     unsigned char *out)
{
    int rc = ipc_client_send(c, msg, size, 0);
    return rc < 0 ? rc : ipc_client_recv(c, out, PROBE_MAX_SIZE, 0);
}

/* The zero-copy client: the request written in place, the reply read in
 * place (copied out, so the check below reads it as the copying one does). */
static ssize_t probe_zc_round_trip(ipc_client *c, const unsigned char *msg, size_t size,
                                   unsigned char *out)
{
    void *buf;
    int rc = ipc_client_loan(c, size, &buf, 0);
    if (rc < 0)
        return rc;
    memcpy(buf, msg, size);
    if ((rc = ipc_client_commit(c, size)) < 0)
        return rc;
    const void *reply;
    ssize_t n = ipc_client_peek(c, &reply, 0);
    if (n < 0)
        return n;
    memcpy(out, reply, (size_t)n);
    return ipc_client_release(c);
}

/* With RTT_PROBE_PIN=1 in the environment, server on CPU 1 and client on
 * CPU 0, as ipc_bench places them (each wake-up then crosses CPUs). */
static void probe_pin(int cpu)
{
    const char *pin = getenv("RTT_PROBE_PIN");
    if (pin == NULL || strcmp(pin, "1") != 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        probe_die("sched_setaffinity", -errno);
}

static int probe_ipc(const char *kind, long count, size_t size, const unsigned char *msg,
                     unsigned char *out)
{
    bool zero_copy = strcmp(kind, "shm_zc") == 0;
    if (zero_copy)
        kind = "shm";
    char name[96];
    if (strcmp(kind, "shm") == 0)
        snprintf(name, sizeof name, "rtt_probe_%d_%ld", (int)getpid(), (long)time(NULL));
    else
        snprintf(name, sizeof name, "/tmp/rtt_probe_%d.sock", (int)getpid());
    pid_t pid = fork();
    if (pid < 0)
        probe_die("fork", -errno);
    if (pid == 0) {
        probe_pin(1);
        ipc_server *s = probe_server(kind, name);
        if (s == NULL)
            _exit(2);
        static probe_phases server_ph;
        int rc = ipc_server_run(s, probe_echo, probe_phases_on() ? &server_ph : NULL, 0);
        if (probe_phases_on())
            probe_phase_print(&server_ph, "server");
        ipc_server_destroy(s);
        _exit(rc == 0 ? 0 : 3);
    }
    probe_pin(0);
    ipc_client *c = probe_client(kind, name);
    int rc = c == NULL ? -EINVAL : probe_connect(c);
    if (rc < 0)
        probe_die("connect", rc);
    static probe_phases client_ph;
    client_ph.at[0] = probe_snap_now();
    const char *win_env = getenv("RTT_PROBE_WINDOW");
    long window = win_env != NULL ? strtol(win_env, NULL, 10) : 0;
    if (window > 1 && !zero_copy) {
        long sent = 0;
        for (long got = 0; got < count; got++) {
            while (sent < count && sent - got < window) {
                if ((rc = ipc_client_send(c, msg, size, 0)) < 0)
                    probe_die("send", rc);
                sent++;
            }
            ssize_t n = ipc_client_recv(c, out, PROBE_MAX_SIZE, 0);
            if (n < 0)
                probe_die("recv", (int)n);
            if ((size_t)n != size || memcmp(out, msg, size) != 0)
                probe_die("echo differs", -EPROTO);
        }
        count = 0; /* done: skip the ping-pong below */
    }
    for (long i = 0; i < count; i++) {
        ssize_t n = zero_copy ? probe_zc_round_trip(c, msg, size, out)
                              : probe_copy_round_trip(c, msg, size, out);
        if (n < 0)
            probe_die("round trip", (int)n);
        if ((size_t)n != size || memcmp(out, msg, size) != 0)
            probe_die("echo differs", -EPROTO);
        probe_phase_tick(&client_ph);
    }
    if (probe_phases_on())
        probe_phase_print(&client_ph, "client");
    (void)ipc_client_send(c, "", 0, 0);
    (void)ipc_client_recv(c, out, PROBE_MAX_SIZE, 0);
    ipc_client_destroy(c);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -ECHILD;
}

int main(int argc, char **argv)
{
    char *end;
    if (argc != 4) {
        fprintf(stderr, "usage: rtt_probe shm|shm_zc|socket|raw_spin COUNT SIZE\n");
        return 2;
    }
    long count = strtol(argv[2], &end, 10);
    if (*end != '\0' || count <= 0) {
        fprintf(stderr, "rtt_probe: COUNT must be a positive integer\n");
        return 2;
    }
    unsigned long size = strtoul(argv[3], &end, 10);
    if (*end != '\0' || size == 0 || size > PROBE_MAX_SIZE) {
        fprintf(stderr, "rtt_probe: SIZE must be 1..%d\n", PROBE_MAX_SIZE);
        return 2;
    }
    static unsigned char msg[PROBE_MAX_SIZE], out[PROBE_MAX_SIZE];
    for (size_t i = 0; i < size; i++)
        msg[i] = (unsigned char)(i * 131 + 7);
    int rc;
    if (strcmp(argv[1], "raw_spin") == 0)
        rc = probe_raw(count, size, msg, out);
    else if (strcmp(argv[1], "shm") == 0 || strcmp(argv[1], "shm_zc") == 0 ||
             strcmp(argv[1], "socket") == 0)
        rc = probe_ipc(argv[1], count, size, msg, out);
    else {
        fprintf(stderr, "rtt_probe: unknown transport '%s' (shm, shm_zc, socket, raw_spin)\n",
                argv[1]);
        return 2;
    }
    return rc == 0 ? 0 : 1;
}
