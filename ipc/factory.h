/*
 * What the public factories of each transport (ipc_socket.c, ipc_shm.c) take
 * from the transport-independent layer (ipc.c). Internal.
 *
 * The factories live apart from ipc.c so that a program linking only
 * //ipc:socket carries no shared-memory code, and one linking only
 * //ipc:shm no socket code.
 */
#ifndef IPC_FACTORY_H
#define IPC_FACTORY_H

#include <stdbool.h>

#include "ipc/ipc.h"

/* Gives a new transport client its counters; NULL (and nothing left, c is
 * destroyed) when c is NULL or out of memory. */
ipc_client *ipc__client_init(ipc_client *c);
/* The same, with the caller's options (NULL: the defaults). */
ipc_client *ipc__client_init_ex(ipc_client *c, const ipc_client_options *o);
/* NULL or valid options. */
bool ipc__client_options_ok(const ipc_client_options *o);

/* Gives a new transport server its name and counters; NULL (and nothing
 * left) when s is NULL or out of memory. */
ipc_server *ipc__server_init(ipc_server *s, const char *name);

/* *out = *in (or all defaults for NULL), defaults filled in; false when a
 * value is invalid. */
bool ipc__resolve_copy(const ipc_server_options *in, ipc_server_options *out);

#endif /* IPC_FACTORY_H */
