/* Test-only hooks into the shared-memory transport. Not for production. */
#ifndef IPC_SHM_SHM_TESTING_H
#define IPC_SHM_SHM_TESTING_H

#include <stddef.h>

#include "ipc/ipc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The segment a connected shm client maps (layout in shm_layout.h), and its
 * size; NULL for another transport or when not connected. */
void *ipc__shm_client_segment(ipc_client *c, size_t *size);

#ifdef __cplusplus
}
#endif

#endif
