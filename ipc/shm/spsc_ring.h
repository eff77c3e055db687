/*
 * Single-producer single-consumer ring of variable-length frames over
 * caller-provided (usually shared) memory.
 *
 * Shared control block (ABI, 512 bytes, each field on its own 128-byte block
 * so the two sides never false-share; 128 covers adjacent-line prefetch):
 *
 *   offset   0  u64 tail    producer index: bytes ever published
 *   offset 128  u64 head    consumer index: bytes ever released
 *   offset 256  ipc__waitpoint data    the consumer sleeps here for data
 *   offset 384  ipc__waitpoint space   the producer sleeps here for space
 *
 * Indices are free-running u64 byte counts; position = index & (capacity-1).
 * The data area holds records, 8-byte aligned and contiguous:
 *
 *   u32 len | u32 reserved (0) | payload (len bytes) | pad to 8
 *
 * A record never straddles the end: when it does not fit, the producer writes
 * a wrap marker (len = IPC__SPSC_WRAP) and the record starts at offset 0.
 * Hence every payload up to ipc__spsc_max_payload(capacity) fits an empty
 * ring, and a longer one gives -EMSGSIZE instead of waiting forever.
 *
 * The producer also wraps early, the same way, when a record would end past
 * the warm window (IPC__SPSC_WARM_WINDOW bytes, or the capacity if less)
 * and the consumer keeps up (at most a quarter window behind, and the bytes
 * needed at offset 0 released): both sides then stay on the ring's first pages
 * instead of striding through all of it (the ABI always allowed a marker
 * anywhere mid-ring; docs/BENCHMARKS.md, issue 23, has why it matters).
 *
 * Trust: the peer may be hostile. Each side keeps its own index privately
 * and never reads it back; every value read from shared memory is loaded
 * once, validated, then used. Corruption gives -EPROTO, never a crash, an
 * out-of-bounds access or an endless loop.
 */
#ifndef IPC_SHM_SPSC_RING_H
#define IPC_SHM_SPSC_RING_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc/shm/wait.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IPC__SPSC_HEADER_SIZE 512
#define IPC__SPSC_MIN_CAPACITY 4096
#define IPC__SPSC_MAX_CAPACITY ((size_t)1 << 31)
/* Record header length meaning "skip to offset 0". */
#define IPC__SPSC_WRAP 0xFFFFFFFFu
/* The producer wraps early rather than let a record end past this offset,
 * when the consumer's released bytes allow (a process-private choice: not
 * ABI). */
#define IPC__SPSC_WARM_WINDOW ((uint64_t)64 * 1024)

typedef struct ipc__spsc_shared {
    alignas(128) _Atomic uint64_t tail;
    alignas(128) _Atomic uint64_t head;
    alignas(128) ipc__waitpoint data;
    alignas(128) ipc__waitpoint space;
    uint8_t pad[120];
} ipc__spsc_shared;

#ifdef __cplusplus
static_assert(sizeof(ipc__spsc_shared) == IPC__SPSC_HEADER_SIZE, "ring header is ABI");
#else
_Static_assert(sizeof(ipc__spsc_shared) == IPC__SPSC_HEADER_SIZE, "ring header is ABI");
_Static_assert(offsetof(ipc__spsc_shared, head) == 128, "ring header is ABI");
_Static_assert(offsetof(ipc__spsc_shared, data) == 256, "ring header is ABI");
_Static_assert(offsetof(ipc__spsc_shared, space) == 384, "ring header is ABI");
#endif

typedef enum { IPC__SPSC_PRODUCER = 1, IPC__SPSC_CONSUMER = 2 } ipc__spsc_role;

/* Process-private view of one ring, for one side. */
typedef struct ipc__spsc_ring {
    ipc__spsc_shared *shared;
    uint8_t *data;
    uint64_t capacity;
    uint64_t mask;
    ipc__spsc_role role;
    uint64_t tail;    /* producer: own index (never read back from shared) */
    uint64_t head;    /* consumer: own index (never read back from shared) */
    uint64_t other;   /* last validated index of the other side */
    uint64_t skip;    /* producer: wrap bytes before the claimed record */
    uint64_t warm;    /* producer: the warm window (<= capacity) */
    uint64_t retry;   /* producer: no head re-read for an early wrap below this tail */
    uint64_t claimed; /* producer: payload bytes claimed */
    uint64_t pending; /* consumer: bytes the peeked frame releases, 0: none */
    const uint8_t *peeked; /* consumer: the peeked payload (while pending) */
    uint32_t peeked_len;   /* consumer: its validated length */
    int broken;       /* sticky -EPROTO once the other side was caught lying */
} ipc__spsc_ring;

/* Largest payload that always fits: capacity / 2 - 16. */
static inline size_t ipc__spsc_max_payload(size_t capacity)
{
    return capacity / 2 - 16;
}

/* true for a power of two in [IPC__SPSC_MIN_CAPACITY, IPC__SPSC_MAX_CAPACITY]. */
int ipc__spsc_capacity_ok(size_t capacity);

/* The creator formats the control block once (zeroes it). */
void ipc__spsc_format(ipc__spsc_shared *shared, size_t capacity);

/* 0, or -EINVAL for a bad capacity or role. data holds capacity bytes. */
int ipc__spsc_attach(ipc__spsc_ring *ring, ipc__spsc_shared *shared, void *data,
                    size_t capacity, ipc__spsc_role role);

/* ------------------------------------------------------------ producer */

/* 1: *payload points at len writable bytes in the ring; 0: no room now;
 * -EMSGSIZE: len can never fit; -EPROTO: the consumer's index is corrupt. */
int ipc__spsc_claim(ipc__spsc_ring *ring, size_t len, void **payload);

/* Publishes the claimed frame with its final length (len <= claimed) and
 * wakes a sleeping consumer. */
void ipc__spsc_publish(ipc__spsc_ring *ring, size_t len);

/* The same for a consumer that never sleeps on this ring's data waitpoint
 * (it sleeps on a doorbell shared by many rings, which the caller rings
 * next, and whose fence then orders this publish): no fence, no wake. */
void ipc__spsc_publish_nowake(ipc__spsc_ring *ring, size_t len);

/* claim + copy + publish: 1, 0 (full) or a negative errno as claim. */
int ipc__spsc_push(ipc__spsc_ring *ring, const void *data, size_t len);

/* 1 when a claim of len would succeed now, 0 when full, or claim's errors;
 * writes nothing. */
int ipc__spsc_writable(ipc__spsc_ring *ring, size_t len);

/* Waits (adaptive) until a claim of len can succeed: 0, -ETIMEDOUT, or
 * claim's errors. */
int ipc__spsc_wait_writable(ipc__spsc_ring *ring, size_t len, uint64_t spin_ns,
                           uint64_t deadline_ns);

/* ------------------------------------------------------------ consumer */

/* 1: the oldest frame is at *payload (*len bytes, valid until release);
 * 0: empty; -EPROTO: the producer's index or a record is corrupt. Repeated
 * peeks return the same frame, validated once (the length is our copy). The
 * payload lives in shared memory: a hostile producer may still change it, so
 * copy before trusting its content. */
int ipc__spsc_peek(ipc__spsc_ring *ring, const void **payload, uint32_t *len);

/* 1 when a frame is there, 0 when empty, -EPROTO when the producer's index
 * is corrupt; cheaper than peek (records are checked by peek). */
int ipc__spsc_readable(ipc__spsc_ring *ring);

/* Drops the peeked frame and wakes a producer waiting for space. */
void ipc__spsc_release(ipc__spsc_ring *ring);

/* The same without waking: the caller wakes the producer (space waitpoint)
 * itself, e.g. with ipc__wait_notify_pair(). */
void ipc__spsc_release_nowake(ipc__spsc_ring *ring);

/* peek + copy + release: the length, 0-length frames included; -EAGAIN when
 * empty, -EMSGSIZE when longer than max (the frame is dropped), -EPROTO. */
long ipc__spsc_pop(ipc__spsc_ring *ring, void *buf, size_t max);

/* Waits (adaptive) for a frame: 0 (peek will not return 0), -ETIMEDOUT. */
int ipc__spsc_wait_readable(ipc__spsc_ring *ring, uint64_t spin_ns, uint64_t deadline_ns);

#ifdef __cplusplus
}
#endif

#endif /* IPC_SHM_SPSC_RING_H */
