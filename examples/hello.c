/* A C11 program using ipc: an echo server in this process, its client in a
 * child, one round trip on each transport. Exits 0 when both came back whole.
 * Built by every route of README.md "Use it from your project". */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, fork: POSIX beyond strict C11 */

#include "ipc/ipc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static ipc_action echo(void *ctx, int client_id, const void *req, size_t len,
                       ipc_response *resp)
{
    (void)ctx;
    (void)client_id;
    ipc_response_set(resp, req, len);
    /* "bye": reply, then ipc_server_run() returns. */
    return len == 3 && memcmp(req, "bye", 3) == 0 ? IPC_SHUTDOWN : IPC_CONTINUE;
}

/* The child: 0 when "hello" and "bye" both come back. */
static int client(ipc_client *c)
{
    char buf[16];
    if (c == NULL || ipc_client_connect(c) < 0)
        return 1;
    const char *msgs[] = {"hello", "bye"};
    for (int i = 0; i < 2; i++) {
        size_t len = strlen(msgs[i]);
        if (ipc_client_send(c, msgs[i], len, 0) < 0 ||
            ipc_client_recv(c, buf, sizeof(buf), 1000000000) != (ssize_t)len ||
            memcmp(buf, msgs[i], len) != 0)
            return 1;
    }
    ipc_client_destroy(c);
    return 0;
}

/* Serves s until the child's "bye"; 0 when both ends succeeded. */
static int serve(const char *what, ipc_server *s, ipc_client *c)
{
    int rc = s == NULL ? -1 : ipc_server_listen(s);
    if (rc < 0) {
        fprintf(stderr, "%s: listen: %s\n", what, ipc_strerror(rc));
        return 1;
    }
    pid_t kid = fork();
    if (kid == 0)
        _exit(client(c));
    rc = kid < 0 ? -1 : ipc_server_run(s, echo, NULL, 0);
    int status = 0;
    if (kid > 0)
        waitpid(kid, &status, 0);
    ipc_server_destroy(s);
    ipc_client_destroy(c);
    bool ok = rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("%s: %s\n", what, ok ? "echo ok" : "FAILED");
    return ok ? 0 : 1;
}

int main(void)
{
    printf("ipc %s (header %s)\n", ipc_version(), IPC_VERSION_STRING);
    char dir[] = "/tmp/hello_ipcXXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    char path[64], name[64];
    snprintf(path, sizeof(path), "%s/echo.sock", dir);
    snprintf(name, sizeof(name), "hello_ipc_%d", (int)getpid());

    int failed = serve("socket", ipc_server_create_socket(path, 1),
                       ipc_client_create_socket(path));
    failed += serve("shm", ipc_server_create_shm(name, 1), ipc_client_create_shm(name, 1));
    rmdir(dir);
    return failed ? 1 : 0;
}
