/*
 * Wire and memory layout of the shared-memory transport (ABI between the
 * server and its clients; docs/SHM.md has the tables). Internal.
 *
 * Per-client segment (one memfd per connection, sealed against resizing):
 *
 *   0                      segment header (4096 bytes reserved)
 *   4096                   request ring control (512 used of 4096)
 *   8192                   request ring data (ring_size)
 *   8192 + R               response ring control
 *   12288 + R              response ring data (ring_size)
 *   12288 + 2R             end
 *
 * Doorbell (one memfd per server, 4096 bytes, read-only to clients): magic,
 * version, and the server's "asleep" word at offset 64 (bell.h). Each client
 * wakes a sleeping server through an eventfd of its own.
 */
#ifndef IPC_SHM_SHM_LAYOUT_H
#define IPC_SHM_SHM_LAYOUT_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/shm/bell.h"
#include "ipc/shm/spsc_ring.h"
#include "ipc/shm/wait.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: the header carries max_request; the doorbell is a page only the server
 * writes, and each client wakes the server through an eventfd of its own. */
#define IPC_SHM_VERSION 2u
#define IPC_SHM_SEG_MAGIC 0x47534d4853435049ull   /* "IPCSHMSG" */
#define IPC_SHM_HELLO_MAGIC 0x4f4c4c4548435049ull /* "IPCHELLO" */
#define IPC_SHM_HEADER_SIZE 4096u
#define IPC_SHM_RING_CTRL_SIZE 4096u

/* Written by the server before it shares the segment; the client copies it
 * and validates the copy. Only the atomics below change afterwards. */
typedef struct ipc__shm_seg_header {
    uint64_t magic;        /*   0 IPC_SHM_SEG_MAGIC */
    uint32_t version;      /*   8 IPC_SHM_VERSION */
    uint32_t header_size;  /*  12 IPC_SHM_HEADER_SIZE */
    uint64_t ring_size;    /*  16 bytes of each ring's data area */
    uint64_t segment_size; /*  24 the whole memfd */
    uint64_t req_offset;   /*  32 request ring control block */
    uint64_t resp_offset;  /*  40 response ring control block */
    uint32_t max_clients;  /*  48 the server's slot count */
    uint32_t client_id;    /*  52 this client's slot */
    uint32_t creator_pid;  /*  56 the server's pid */
    uint32_t creator_uid;  /*  60 the server's uid */
    uint32_t max_request;  /*  64 longest request the server takes (<= ring max) */
    uint32_t wire;         /*  68 ipc_wire: 0 legacy, 1 multiplexed (was zero) */
    uint64_t reserved[7];  /*  72 zero */
    /* 128: 1 once everything above is written (store-release, last). */
    alignas(64) _Atomic uint32_t ready;
    /* 132: 1 once the server dropped this client or closed. */
    _Atomic uint32_t server_closed;
    /* 192: 1 while the server holds replies it could not fit: the client
     * rings the doorbell (its eventfd) after freeing response space. */
    alignas(64) _Atomic uint32_t want_space;
} ipc__shm_seg_header;

/* Sent by the server on accept, with SCM_RIGHTS {segment, doorbell, the
 * client's wake eventfd} when status is 0. status is a positive errno
 * otherwise (EAGAIN: no free slot, EACCES: another user). */
typedef struct ipc__shm_hello {
    uint64_t magic;
    uint32_t version;
    uint32_t status;
    uint32_t client_id;
    uint32_t reserved;
} ipc__shm_hello;

#ifdef __cplusplus
static_assert(sizeof(ipc__shm_seg_header) == 256, "segment header is ABI");
static_assert(sizeof(ipc__shm_hello) == 24, "hello is ABI");
#else
_Static_assert(sizeof(ipc__shm_seg_header) == 256, "segment header is ABI");
_Static_assert(offsetof(ipc__shm_seg_header, ready) == 128, "segment header is ABI");
_Static_assert(offsetof(ipc__shm_seg_header, want_space) == 192, "segment header is ABI");
_Static_assert(sizeof(ipc__shm_hello) == 24, "hello is ABI");
#endif

static inline uint64_t ipc__shm_req_offset(void)
{
    return IPC_SHM_HEADER_SIZE;
}

static inline uint64_t ipc__shm_resp_offset(uint64_t ring_size)
{
    return IPC_SHM_HEADER_SIZE + IPC_SHM_RING_CTRL_SIZE + ring_size;
}

static inline uint64_t ipc__shm_segment_size(uint64_t ring_size)
{
    return IPC_SHM_HEADER_SIZE + 2 * (IPC_SHM_RING_CTRL_SIZE + ring_size);
}

#ifdef __cplusplus
}
#endif

#endif /* IPC_SHM_SHM_LAYOUT_H */
