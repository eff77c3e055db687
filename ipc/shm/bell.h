/*
 * The shared-memory server's doorbell, built so that a client can ring it
 * but never silence it for others. Internal.
 *
 * A futex word every client can write lets one client hurt all: storing 0
 * into the waiter count, or putting back an old seq between another
 * client's bump and the server's FUTEX_WAIT, loses the other clients'
 * wake-ups. So nothing a client can write is shared:
 *
 *   - one page (ipc__bell_page) that only the server writes: it maps the
 *     memfd, then seals it with F_SEAL_FUTURE_WRITE, after which nobody
 *     else can map it writable (mmap and mprotect fail with EPERM/EACCES)
 *     or write() to it. It says whether the server sleeps.
 *   - one eventfd per client, watched by the server's epoll set,
 *     edge-triggered. The client's copy shares the server's open file
 *     description (SCM_RIGHTS), and so its O_NONBLOCK flag and counter: the
 *     server therefore never reads, drains or blocks on it. Each write is an
 *     edge the next epoll_wait reports, whatever the client did to the fd
 *     since (blocking mode, draining, a saturated counter, O_ASYNC, which
 *     an eventfd ignores). A client can wake the server needlessly or lose
 *     its own wake-ups (a saturated counter refuses its writes), nothing
 *     else.
 *
 * Lost-wake freedom (Dekker with seq_cst fences, as in wait.h):
 *
 *   server (ipc__bell_wait)              client (ipc__bell_ring)
 *   W1 asleep = 1                        P1 publish (tail store)
 *      fence(seq_cst)                       fence(seq_cst)
 *   W2 ready()? -> done                  P2 asleep != 0 ?
 *   W3 epoll_wait(eventfds)              P3   write(own eventfd, 1)
 *
 * If the client's fence comes first, W2 sees P1. Otherwise P2 sees W1 and
 * P3 queues an edge on the eventfd, which stays on the epoll set's ready
 * list until an epoll_wait reports it, so epoll_wait returns whenever it
 * runs: no window at all. Modelled in ipc/shm/model/bell.pml.
 */
#ifndef IPC_SHM_BELL_H
#define IPC_SHM_BELL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IPC__BELL_MAGIC 0x004c4c4542435049ull /* "IPCBELL" */
#define IPC__BELL_PAGE_SIZE 4096u

/* ABI: 4096 bytes, written by the server only. */
typedef struct ipc__bell_page {
    uint64_t magic;   /* 0 IPC__BELL_MAGIC */
    uint32_t version; /* 8 the shm protocol version */
    uint32_t reserved;
    /* 64: non-zero while the server sleeps, or while an event loop waits
     * on its fd: a client then writes its eventfd after publishing. */
    alignas(64) _Atomic uint32_t asleep;
} ipc__bell_page;

#ifdef __cplusplus
static_assert(offsetof(ipc__bell_page, asleep) == 64, "bell page is ABI");
#else
_Static_assert(offsetof(ipc__bell_page, asleep) == 64, "bell page is ABI");
#endif

/* The server's side. */
typedef struct ipc__bell {
    ipc__bell_page *page; /* the server's writable mapping */
    int page_fd;          /* sealed memfd, sent read-only in every hello */
    int ep;               /* epoll: self_fd and every client's eventfd */
    _Atomic int self_fd;  /* eventfd rung by wake() and the watcher */
    bool held;            /* asleep kept set: an event loop polls ep */
} ipc__bell;

/* An empty bell, safe to close and to ring_self (a no-op). */
void ipc__bell_init(ipc__bell *b);

/* Creates the page (magic, version), the epoll set and self_fd. 0 or
 * -errno; on failure nothing is left. */
int ipc__bell_open(ipc__bell *b, uint32_t version);
void ipc__bell_close(ipc__bell *b);

/* A new eventfd for one client, watched by the server; its value is
 * returned in *efd (the server keeps it: close with ipc__bell_remove). */
int ipc__bell_add(ipc__bell *b, int *efd);
void ipc__bell_remove(ipc__bell *b, int efd);

/* Wakes the server from its own process. Async-signal-safe. */
void ipc__bell_ring_self(ipc__bell *b);

/* Spins up to spin_ns, then sleeps until ready(arg) (0) or the absolute
 * CLOCK_MONOTONIC deadline (-ETIMEDOUT). Drains what woke it. */
int ipc__bell_wait(ipc__bell *b, bool (*ready)(void *), void *arg, uint64_t spin_ns,
                   uint64_t deadline_ns);

/* For event loops: keeps asleep set from now on, so that every client's
 * publish makes ep readable; returns ep. */
int ipc__bell_hold(ipc__bell *b);

/* Takes every event that fired, without waiting: drains self_fd and
 * consumes the clients' edges. */
void ipc__bell_drain(ipc__bell *b);

/* The client's side: maps the page read-only after checking the memfd (its
 * size, and that it is sealed so nobody else can write it) and its magic
 * and version. 0, -EPROTO, or -errno. */
int ipc__bell_map(int fd, uint32_t version, const ipc__bell_page **page);
void ipc__bell_unmap(const ipc__bell_page *page);

/* After publishing: wakes the server through this client's eventfd if it
 * sleeps (a fence and a load when it does not). */
void ipc__bell_ring(const ipc__bell_page *page, int efd);

#ifdef __cplusplus
}
#endif

#endif /* IPC_SHM_BELL_H */
