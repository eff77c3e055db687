/*
 * The server calls of ipc.c after their argument checks, for the run loop
 * (run.c), whose arguments are valid by construction; and the run loop's
 * hook into the server's life. Internal.
 */
#ifndef IPC_SERVER_H
#define IPC_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include "ipc/transport.h"

/* -EFAULT for a NULL pointer with a non-zero length. */
int ipc__check_buffer(const void *p, size_t len);

/* Each counts what it moved, or the error, in the server's stats. */
int ipc__server_send(ipc_server *s, int client_id, const void *data, size_t len);
ssize_t ipc__server_peek(ipc_server *s, int client_id, const void **msg);
ssize_t ipc__server_release(ipc_server *s, int client_id);
int ipc__server_loan(ipc_server *s, int client_id, size_t len, void **buf);
int ipc__server_commit(ipc_server *s, int client_id, size_t len);

/* ipc_server_destroy(): requests still held by the application (deferred)
 * outlive the server; their answers are discarded from now on. */
void ipc__run_detach(ipc_server *s);

#endif
