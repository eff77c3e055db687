/*
 * MPSC doorbell: one consumer over a set of per-producer SPSC rings.
 *
 * Each producer owns one ring (so producers never contend and a hostile one
 * can only corrupt its own ring). After publishing, a producer rings the
 * consumer's doorbell (bell.h) through an eventfd of its own; ringing costs
 * a fence and a load unless the consumer actually sleeps, and no producer
 * can silence another's ring.
 *
 * The consumer polls the rings round robin, starting after the ring it
 * served last, so a flooding producer cannot starve the others.
 */
#ifndef IPC_SHM_MPSC_H
#define IPC_SHM_MPSC_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "ipc/shm/bell.h"
#include "ipc/shm/spsc_ring.h"
#include "ipc/shm/wait.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ipc__mpsc_wait() result when interrupt() fired. */
#define IPC__MPSC_INTERRUPTED (-EINTR)

typedef struct ipc__mpsc {
    ipc__spsc_ring *const *rings; /* consumer views; NULL slots are skipped */
    size_t count;
    ipc__bell *bell;
    size_t next; /* where the next poll starts */
} ipc__mpsc;

/* rings[0 .. count) may be changed (slots filled or cleared) between calls
 * by the consumer's thread. Producers ring bell with ipc__bell_ring(). */
void ipc__mpsc_init(ipc__mpsc *m, ipc__spsc_ring *const *rings, size_t count, ipc__bell *bell);

/* Index of the next ring (round robin) whose ipc__spsc_peek() will not
 * return 0: it holds a frame, or it is corrupt and peek gives -EPROTO (the
 * caller then drops that producer). -1 when every ring is empty. No
 * syscalls. */
int ipc__mpsc_poll(ipc__mpsc *m);

/* ipc__mpsc_poll() for a short while (ipc__wait_spin_briefly, no clock
 * read): a ring index, IPC__MPSC_INTERRUPTED, or -1 when nothing came. */
int ipc__mpsc_poll_briefly(ipc__mpsc *m, bool (*interrupt)(void *arg), void *arg);

/* Polls, spins up to spin_ns, then sleeps on the doorbell: a ring index as
 * ipc__mpsc_poll(), IPC__MPSC_INTERRUPTED when interrupt(arg) returned true
 * (checked first; interrupt may be NULL), or -ETIMEDOUT at the absolute
 * deadline. Whoever makes interrupt() true must ring the bell afterwards
 * (ipc__bell_ring_self() from the consumer's process). */
int ipc__mpsc_wait(ipc__mpsc *m, bool (*interrupt)(void *arg), void *arg, uint64_t spin_ns,
                  uint64_t deadline_ns);

#ifdef __cplusplus
}
#endif

#endif /* IPC_SHM_MPSC_H */
