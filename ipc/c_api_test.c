/* A plain-C11 user of every public C header: compiles only if the headers
 * stay valid C. Exercises a socket round trip between two processes. */
#include "ipc/ipc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static ipc_action upper(void *ctx, int id, const void *req, size_t len, ipc_response *r)
{
    (void)ctx;
    (void)id;
    char *out = ipc_response_reserve(r, len);
    for (size_t i = 0; i < len; i++) {
        char ch = ((const char *)req)[i];
        out[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
    return len == 4 && memcmp(req, "quit", 4) == 0 ? IPC_SHUTDOWN : IPC_CONTINUE;
}

int main(void)
{
    char dir[] = "/tmp/ipccXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof(path), "%s/c.sock", dir);

    ipc_server *s = ipc_server_create_socket(path, 1);
    CHECK(s != NULL);
    CHECK(ipc_server_listen(s) == 0);
    pid_t kid = fork();
    if (kid == 0) {
        ipc_server_destroy(NULL); /* a no-op, in the child's copy */
        ipc_client *c = ipc_client_create_socket(path);
        char buf[16];
        if (ipc_client_connect(c) != 0 || ipc_client_send(c, "hello", 5, 0) != 0 ||
            ipc_client_recv(c, buf, sizeof(buf), 0) != 5 || memcmp(buf, "HELLO", 5) != 0 ||
            ipc_client_send(c, "quit", 4, 0) != 0 || ipc_client_recv(c, buf, 2, 0) != -EMSGSIZE)
            _exit(1);
        ipc_client_destroy(c);
        _exit(0);
    }
    CHECK(ipc_server_run(s, upper, NULL, 0) == 0);
    int status;
    CHECK(waitpid(kid, &status, 0) == kid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ipc_server_destroy(s);
    CHECK(rmdir(dir) == 0); /* the socket file is gone */
    CHECK(ipc_client_create_shm("bad name!", 1) == NULL);
    CHECK(ipc_client_create_shm("ok", 4097) == NULL);
    ipc_client *any = ipc_client_create_shm("ok", 0); /* takes the server's */
    CHECK(any != NULL && ipc_client_shm_capacity(any) == 0);
    ipc_client_destroy(any);
    /* The version: the same in the header and the library, and the string
     * spells the numbers. */
    char version[32];
    snprintf(version, sizeof(version), "%d.%d.%d", IPC_VERSION_MAJOR, IPC_VERSION_MINOR,
             IPC_VERSION_PATCH);
    CHECK(strcmp(IPC_VERSION_STRING, version) == 0);
    CHECK(strcmp(ipc_version(), IPC_VERSION_STRING) == 0);
    puts("1 passed, 0 failed");
    return 0;
}
