/* The public factories of the Unix-domain-socket transport (//ipc:socket). */
#include "ipc/factory.h"
#include "ipc/socket/socket_transport.h"

ipc_client *ipc_client_create_socket_ex(const char *socket_path,
                                        const ipc_client_options *options)
{
    if (socket_path == NULL || !ipc__client_options_ok(options))
        return NULL;
    return ipc__client_init_ex(ipc__socket_client_create(socket_path), options);
}

ipc_client *ipc_client_create_socket(const char *socket_path)
{
    return ipc_client_create_socket_ex(socket_path, NULL);
}

ipc_server *ipc_server_create_socket_ex(const char *socket_path, int max_clients,
                                        const ipc_server_options *options)
{
    ipc_server_options o;
    if (socket_path == NULL || max_clients < 0 || !ipc__resolve_copy(options, &o))
        return NULL;
    return ipc__server_init(
        ipc__socket_server_create(socket_path, max_clients == 0 ? 16 : max_clients, &o),
        socket_path);
}

ipc_server *ipc_server_create_socket(const char *socket_path, int max_clients)
{
    return ipc_server_create_socket_ex(socket_path, max_clients, NULL);
}
