/* Shared-memory transport: the factories ipc.c dispatches to. Internal. */
#ifndef IPC_SHM_SHM_TRANSPORT_H
#define IPC_SHM_SHM_TRANSPORT_H

#include "ipc/shm/shm_handshake.h" /* IPC_SHM_NAME_MAX */
#include "ipc/transport.h"
/* Most clients one shared-memory server takes. */
#define IPC_SHM_MAX_CLIENTS 4096

/* NULL for an invalid name or client count, or out of memory. */
ipc_client *ipc__shm_client_create(const char *name, size_t max_clients);
ipc_server *ipc__shm_server_create(const char *name, size_t max_clients,
                                   const ipc_server_options *resolved);

#endif
