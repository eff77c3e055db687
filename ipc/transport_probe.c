/* One echo round trip between two processes over the socket transport, the
 * shared-memory transport (IPC_PROBE_SHM), or each (IPC_PROBE_BOTH). Built
 * against //ipc:socket or //ipc:shm alone, it shows that each links and runs
 * without the other (transport_split_test.sh). */
#define _POSIX_C_SOURCE 200809L

#include "ipc/ipc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static ipc_action echo_once(void *ctx, int id, const void *req, size_t len, ipc_response *r)
{
    (void)ctx;
    (void)id;
    ipc_response_set(r, req, len);
    return IPC_SHUTDOWN;
}

/* Serves here, the client in a child; true when the echo came back. */
static bool round_trip(const char *what, ipc_server *s, ipc_client *c)
{
    bool ok = s != NULL && c != NULL && ipc_server_listen(s) == 0;
    pid_t kid = ok ? fork() : -1;
    if (kid == 0) {
        char buf[8];
        _exit(ipc_client_connect(c) == 0 && ipc_client_send(c, "probe", 5, 0) == 0 &&
                      ipc_client_recv(c, buf, sizeof(buf), 0) == 5 && memcmp(buf, "probe", 5) == 0
                  ? 0
                  : 1);
    }
    int status = 0;
    ok = kid > 0 && ipc_server_run(s, echo_once, NULL, 0) == 0 && waitpid(kid, &status, 0) == kid &&
         WIFEXITED(status) && WEXITSTATUS(status) == 0;
    ipc_client_destroy(c);
    ipc_server_destroy(s);
    printf("%s: %s\n", what, ok ? "echo ok" : "FAILED");
    return ok;
}

#if !defined(IPC_PROBE_SHM) || defined(IPC_PROBE_BOTH)
static bool socket_round_trip(void)
{
    char dir[] = "/tmp/ipc_probeXXXXXX", path[64];
    if (mkdtemp(dir) == NULL)
        return false;
    snprintf(path, sizeof(path), "%s/s.sock", dir);
    bool ok = round_trip("socket", ipc_server_create_socket(path, 1), ipc_client_create_socket(path));
    rmdir(dir);
    return ok;
}
#endif

#if defined(IPC_PROBE_SHM) || defined(IPC_PROBE_BOTH)
static bool shm_round_trip(void)
{
    char name[64];
    snprintf(name, sizeof(name), "ipc_probe_%d", (int)getpid());
    return round_trip("shm", ipc_server_create_shm(name, 1), ipc_client_create_shm(name, 1));
}
#endif

int main(void)
{
    bool ok = true;
#if !defined(IPC_PROBE_SHM) || defined(IPC_PROBE_BOTH)
    ok = socket_round_trip() && ok;
#endif
#if defined(IPC_PROBE_SHM) || defined(IPC_PROBE_BOTH)
    ok = shm_round_trip() && ok;
#endif
    return ok ? 0 : 1;
}
