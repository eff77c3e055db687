/* The public factories of the shared-memory transport (//ipc:shm). */
#include "ipc/factory.h"
#include "ipc/shm/shm_transport.h"

ipc_client *ipc_client_create_shm_ex(const char *base_name, size_t max_clients,
                                     const ipc_client_options *options)
{
    /* 0: take whatever capacity the server serves. */
    if (base_name == NULL || max_clients > IPC_SHM_MAX_CLIENTS ||
        !ipc__client_options_ok(options))
        return NULL;
    return ipc__client_init_ex(ipc__shm_client_create(base_name, max_clients), options);
}

ipc_client *ipc_client_create_shm(const char *base_name, size_t max_clients)
{
    return ipc_client_create_shm_ex(base_name, max_clients, NULL);
}

ipc_server *ipc_server_create_shm_ex(const char *base_name, size_t max_clients,
                                     const ipc_server_options *options)
{
    ipc_server_options o;
    if (base_name == NULL || max_clients == 0 || max_clients > IPC_SHM_MAX_CLIENTS ||
        !ipc__resolve_copy(options, &o))
        return NULL;
    return ipc__server_init(ipc__shm_server_create(base_name, max_clients, &o), base_name);
}

ipc_server *ipc_server_create_shm(const char *base_name, size_t max_clients)
{
    return ipc_server_create_shm_ex(base_name, max_clients, NULL);
}
