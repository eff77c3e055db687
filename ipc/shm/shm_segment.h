/*
 * The per-client segment, for both sides of the ABI in shm_layout.h (the
 * server's doorbell is bell.h). Internal.
 *
 * The server creates a segment (memfd, map, format header and rings, seal,
 * attach as request consumer and response producer); the client maps the fd
 * it was handed (fstat, sealed, map, acquire `ready`, copy and validate the
 * header, attach with the roles swapped). Both halves live in shm_segment.c
 * so that a change to one is made next to the other.
 */
#ifndef IPC_SHM_SHM_SEGMENT_H
#define IPC_SHM_SHM_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "ipc/shm/shm_layout.h"
#include "ipc/shm/spsc_ring.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One mapped segment, as one side sees it. */
typedef struct ipc__shm_segment {
    uint8_t *base; /* NULL when not mapped */
    size_t size;
    ipc__shm_seg_header *hdr;
    ipc__spsc_ring req;  /* server: consumer; client: producer */
    ipc__spsc_ring resp; /* server: producer; client: consumer */
    uint32_t max_request; /* longest request the server takes */
    uint32_t wire;        /* the server's ipc_wire */
} ipc__shm_segment;

/* Server: a new sealed segment for client `id` of `max_clients`, with rings
 * of ring_size bytes, formatted and attached; it tells the client that
 * requests over max_request bytes (capped at what the ring carries) are
 * refused, and that the server speaks wire (an ipc_wire). *fd is the memfd
 * to pass to the client (the caller closes it). 0 or -errno. */
int ipc__shm_segment_create(ipc__shm_segment *seg, uint64_t ring_size, uint32_t id,
                            uint32_t max_clients, uint64_t max_request, uint32_t wire, int *fd);

/* Client: maps the segment fd received as client `id`, checks it and
 * attaches. max_clients 0 takes whatever the server serves. 0, -EPROTO (not
 * a valid segment), -EINVAL (max_clients differs from the server's: the
 * caller's error) or -errno. Leaves seg unmapped on failure. *served (may be
 * NULL) gets the server's capacity from a valid header, also with -EINVAL,
 * else 0. */
int ipc__shm_segment_map(ipc__shm_segment *seg, int fd, uint32_t id, uint32_t max_clients,
                         uint32_t *served);

/* Checks a copy of a segment header against what the client expects
 * (max_clients 0: any). */
int ipc__shm_segment_check(const ipc__shm_seg_header *h, uint32_t id, uint32_t max_clients,
                           uint64_t file_size);

/* Unmaps; safe on a segment never mapped. */
void ipc__shm_segment_unmap(ipc__shm_segment *seg);

#ifdef __cplusplus
}
#endif

#endif /* IPC_SHM_SHM_SEGMENT_H */
