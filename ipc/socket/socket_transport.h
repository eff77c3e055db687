/* Unix-domain-socket transport: the factories ipc.c dispatches to. Internal. */
#ifndef IPC_SOCKET_SOCKET_TRANSPORT_H
#define IPC_SOCKET_SOCKET_TRANSPORT_H

#include "ipc/transport.h"

/* Longest socket path: sun_path holds 108 bytes with the terminating NUL. */
#define IPC_SOCKET_PATH_MAX 107

/* NULL when the path is empty or too long, or out of memory. */
ipc_client *ipc__socket_client_create(const char *path);
ipc_server *ipc__socket_server_create(const char *path, int initial_clients,
                                      const ipc_server_options *resolved);

#endif
