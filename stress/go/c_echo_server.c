/*
 * An echo server in its own process, for the Go compatibility tests.
 *
 *   c_echo_server --socket PATH | --shm NAME  [--clients N] [--max-message BYTES]
 *
 * Prints "ready" on stdout once it listens, serves ipc_server_run() with an
 * echo handler, and stops cleanly on SIGTERM or SIGINT (ipc_server_stop() from
 * the signal handler), exiting 0. Any failure exits 1 with a message on stderr.
 *
 * The signals are taken by a thread that only waits in sigsuspend(): every
 * other thread blocks them. Under ThreadSanitizer a signal that lands on a
 * thread outside an intercepted call is deferred until that thread makes one,
 * and the shared-memory server's loop sleeps in raw futex syscalls, so a
 * handler run on the serving thread could be postponed for ever.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc.h"
#include "stress/go/c_args.h"

typedef struct {
    const char *socket_path;
    const char *shm_name;
    long clients;
    size_t max_message;
} config;

/* The server the signal handler stops; set before handlers are installed. */
static ipc_server *g_server;
/* Set by the handler once it is done with g_server: signal_thread may end. */
static atomic_bool g_signalled;

static void on_signal(int sig)
{
    (void)sig;
    ipc_server_stop(g_server);
    atomic_store_explicit(&g_signalled, true, memory_order_release);
}

static ipc_action echo(void *ctx, int client_id, const void *request, size_t len,
                       ipc_response *response)
{
    (void)ctx;
    (void)client_id;
    /* A failed copy leaves the reply empty: the client sees the mismatch. */
    if (ipc_response_set(response, request, len) < 0)
        fprintf(stderr, "c_echo_server: reply of %zu bytes failed\n", len);
    return IPC_CONTINUE;
}

static int usage(void)
{
    fprintf(stderr, "usage: c_echo_server --socket PATH | --shm NAME"
                    " [--clients N] [--max-message BYTES]\n");
    return -EINVAL;
}

static int parse_args(int argc, char **argv, config *cfg)
{
    *cfg = (config){.clients = 16};
    for (int i = 1; i < argc; i++) {
        unsigned long long v;
        if (i + 1 >= argc)
            return usage();
        const char *flag = argv[i], *value = argv[++i];
        if (strcmp(flag, "--socket") == 0) {
            cfg->socket_path = value;
        } else if (strcmp(flag, "--shm") == 0) {
            cfg->shm_name = value;
        } else if (strcmp(flag, "--clients") == 0) {
            if (parse_number(value, &v) < 0 || v == 0 || v > 4096)
                return usage();
            cfg->clients = (long)v;
        } else if (strcmp(flag, "--max-message") == 0) {
            if (parse_number(value, &v) < 0 || v == 0)
                return usage();
            cfg->max_message = (size_t)v;
        } else {
            return usage();
        }
    }
    if ((cfg->socket_path == NULL) == (cfg->shm_name == NULL))
        return usage();
    return 0;
}

static ipc_server *create_server(const config *cfg)
{
    ipc_server_options opts = {.max_message_size = cfg->max_message};
    if (cfg->socket_path != NULL)
        return ipc_server_create_socket_ex(cfg->socket_path, (int)cfg->clients, &opts);
    return ipc_server_create_shm_ex(cfg->shm_name, (size_t)cfg->clients, &opts);
}

/* Runs the handlers: waits with nothing blocked until one has run. Outside
 * sigsuspend() the signals stay blocked (pending), so none is lost. */
static void *signal_thread(void *arg)
{
    (void)arg;
    sigset_t none;
    sigemptyset(&none);
    while (!atomic_load_explicit(&g_signalled, memory_order_acquire))
        sigsuspend(&none);
    return NULL;
}

/* Installs the handlers and blocks SIGTERM/SIGINT here, so in every thread
 * created from now on (the server's included) but signal_thread. */
static int block_stop_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return -errno;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    return -pthread_sigmask(SIG_BLOCK, &stop, NULL);
}

/* Ends signal_thread (a handler run now only stops a server that is still
 * alive), so no handler can touch the server once it is destroyed. */
static void stop_signal_thread(pthread_t t)
{
    pthread_kill(t, SIGTERM);
    pthread_join(t, NULL);
}

int main(int argc, char **argv)
{
    config cfg;
    if (parse_args(argc, argv, &cfg) < 0)
        return 1;

    int rc = 1;
    ipc_server *s = create_server(&cfg);
    if (s == NULL) {
        fprintf(stderr, "c_echo_server: cannot create the %s server\n",
                cfg.socket_path != NULL ? "socket" : "shm");
        goto out;
    }
    g_server = s;
    int err = block_stop_signals();
    if (err == 0)
        err = ipc_server_listen(s);
    if (err < 0) {
        fprintf(stderr, "c_echo_server: listen: %s\n", ipc_strerror(err));
        goto out_destroy;
    }
    /* Created after listen, so the handler's stop() happens after it: a
     * signal that came meanwhile is pending until sigsuspend() takes it. */
    pthread_t sig_thread;
    err = pthread_create(&sig_thread, NULL, signal_thread, NULL);
    if (err != 0) {
        fprintf(stderr, "c_echo_server: signal thread: %s\n", strerror(err));
        goto out_destroy;
    }
    printf("ready\n");
    fflush(stdout);

    err = ipc_server_run(s, echo, NULL, 0);
    if (err < 0) {
        fprintf(stderr, "c_echo_server: run: %s\n", ipc_strerror(err));
        goto out_signals;
    }
    rc = 0;
out_signals:
    stop_signal_thread(sig_thread);
out_destroy:
    ipc_server_destroy(s);
out:
    return rc;
}
