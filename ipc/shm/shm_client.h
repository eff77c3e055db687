/*
 * The shared-memory client object. Private to the transport and its tests
 * (which read the segment to play a hostile client); users see only
 * ipc_client.
 */
#ifndef IPC_SHM_SHM_CLIENT_H
#define IPC_SHM_SHM_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/ipc.h"
#include "ipc/shm/fd_relay.h"
#include "ipc/shm/shm_handshake.h"
#include "ipc/shm/shm_layout.h"
#include "ipc/shm/shm_segment.h"
#include "ipc/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ipc__shm_client {
    ipc_client base;
    char name[IPC_SHM_NAME_MAX + 1];
    size_t max_clients; /* asked for; 0 takes what the server serves */
    uint32_t served;    /* the server's, from the last valid segment; 0 before */
    int fd;
    ipc__shm_segment seg; /* we produce seg.req and consume seg.resp */
    const ipc__bell_page *bell; /* the server's doorbell page, read-only */
    int wake_fd;                /* our eventfd for waking the server */
    size_t max_payload;
    /* The server is gone. Written by the sending and the receiving thread of
     * a full-duplex client: relaxed atomic, as it only caches what
     * server_closed and the socket's hang-up already said. */
    atomic_bool dead;
    bool loaned;  /* a request is being written in place */
    bool peeked;  /* a reply is lent to the application */
    uint32_t peeked_len;
    ipc__fd_relay relay; /* running once ipc_client_fd() was asked for */
    int epoll_fd;        /* relay eventfd + rendezvous socket, for ipc_client_fd */
} ipc__shm_client;

extern const ipc_client_ops ipc__shm_client_ops;

/* The client behind an ipc_client of the shm transport, else NULL. */
static inline ipc__shm_client *ipc__shm_client_of(ipc_client *base)
{
    return base != NULL && base->ops == &ipc__shm_client_ops ? (ipc__shm_client *)base : NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* IPC_SHM_SHM_CLIENT_H */
