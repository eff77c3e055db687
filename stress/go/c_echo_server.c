/*
 * An echo server in its own process, for the Go compatibility tests.
 *
 *   c_echo_server --socket PATH | --shm NAME  [--clients N] [--max-message BYTES]
 *
 * Prints "ready" on stdout once it listens, serves ipc_server_run() with an
 * echo handler, and stops cleanly on SIGTERM or SIGINT (ipc_server_stop() from
 * the signal handler), exiting 0. Any failure exits 1 with a message on stderr.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc.h"

typedef struct {
    const char *socket_path;
    const char *shm_name;
    long clients;
    size_t max_message;
} config;

/* The server the signal handler stops; set before handlers are installed. */
static ipc_server *volatile g_server;

static void on_signal(int sig)
{
    (void)sig;
    ipc_server_stop(g_server);
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

static int parse_number(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
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

static int install_handlers(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return -errno;
    return 0;
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
    int err = install_handlers();
    if (err == 0)
        err = ipc_server_listen(s);
    if (err < 0) {
        fprintf(stderr, "c_echo_server: listen: %s\n", ipc_strerror(err));
        goto out_destroy;
    }
    printf("ready\n");
    fflush(stdout);

    err = ipc_server_run(s, echo, NULL, 0);
    if (err < 0) {
        fprintf(stderr, "c_echo_server: run: %s\n", ipc_strerror(err));
        goto out_destroy;
    }
    rc = 0;
out_destroy:
    /* Stop signals first: the handler must never see a freed server. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    ipc_server_destroy(s);
out:
    return rc;
}
