/*
 * Adaptive wait on a futex word that lives in shared memory.
 *
 * A waiter spins for a while (cheap when the peer answers within
 * microseconds), then sleeps in the kernel with FUTEX_WAIT. A publisher that
 * changed the state a waiter's ready() predicate looks at calls
 * ipc__wait_notify(), which costs a fence and a load, and a syscall only when
 * somebody actually sleeps.
 *
 * Lost-wake freedom (Dekker / store buffering with seq_cst fences):
 *
 *   waiter                               publisher
 *   W1 waiters += 1                      P1 store state (release)
 *      fence(seq_cst)                       fence(seq_cst)
 *   W2 s = seq; ready()? -> done         P2 waiters != 0 ?
 *   W3 futex_wait(&seq, s)               P3   seq += 1; futex_wake(&seq)
 *
 * The two fences are totally ordered. If the waiter's fence comes first, P2
 * sees W1 and the publisher bumps seq and wakes: either the bump happened
 * before W2 read seq (then W2 synchronises with it, so ready() sees P1), or
 * after (then the kernel's compare in W3 fails, or the waiter is already
 * queued and the wake reaches it). If the publisher's fence comes first,
 * ready() in W2 sees P1 and the waiter never sleeps. No interleaving leaves
 * the waiter asleep with the state published. docs/SHM.md has the long form.
 * Model-checked: ipc/shm/model/spsc_wait.pml
 */
#ifndef IPC_SHM_WAIT_H
#define IPC_SHM_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ipc/unix/unix.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shared between processes: fixed layout, 8 bytes, zero is a valid state. */
typedef struct ipc__waitpoint {
    _Atomic uint32_t seq;     /* futex word: bumped by every waking notify */
    _Atomic uint32_t waiters; /* how many are in (or about to enter) the kernel */
} ipc__waitpoint;

#ifdef __cplusplus
static_assert(sizeof(ipc__waitpoint) == 8, "ipc__waitpoint is ABI: 8 bytes");
#else
_Static_assert(sizeof(ipc__waitpoint) == 8, "ipc__waitpoint is ABI: 8 bytes");
#endif

/* Absolute deadline meaning "no limit": the transports' IPC_FOREVER. */
#define IPC__WAIT_FOREVER IPC_FOREVER

void ipc__waitpoint_init(ipc__waitpoint *w);

/* Waits until ready(arg) returns true (0) or the absolute CLOCK_MONOTONIC
 * deadline_ns passes (-ETIMEDOUT; ready() was false at the last look).
 * Spins for up to spin_ns first (0: no spinning). Signals, spurious wakes and
 * stale futex values are retried, never reported. ready() must be cheap and
 * may be called many times. */
int ipc__wait_until(ipc__waitpoint *w, bool (*ready)(void *arg), void *arg,
                   uint64_t spin_ns, uint64_t deadline_ns);

/* The spin phase alone: true as soon as ready(arg), false once spin_ns (0:
 * at once) or the deadline passed. The first round reads no clock. For waits
 * that sleep on something else than a waitpoint (bell.h). */
bool ipc__wait_spin(bool (*ready)(void *arg), void *arg, uint64_t spin_ns, uint64_t deadline_ns);

/* One short round of looks at ready() (~1.5 us), reading no clock: true as
 * soon as it holds. For a caller about to compute a deadline for
 * ipc__wait_until(): the common, quick answer then costs no clock read. */
bool ipc__wait_spin_briefly(bool (*ready)(void *arg), void *arg);

/* A hint, no substitute for ipc__wait_notify(): true when a sleeper of w is
 * visible now. A publisher that defers its notify (to one per batch) calls
 * ipc__wait_notify() at once when this holds, so that a peer already asleep
 * is not kept waiting for the batch; the deferred notify, with its fence,
 * still catches one that was just falling asleep. */
static inline bool ipc__wait_sleeper_seen(ipc__waitpoint *w)
{
    /* Relaxed: a hint only (see above); the fenced look decides. */
    return atomic_load_explicit(&w->waiters, memory_order_relaxed) != 0;
}

/* Wakes every sleeper of w. Call it after the store that makes ready() true
 * (any memory order: the fence inside orders it). */
void ipc__wait_notify(ipc__waitpoint *w);

/* ipc__wait_notify() for two waitpoints that one store each made ready, with
 * one fence for both: the stores, then the fence, then both checks. */
void ipc__wait_notify_pair(ipc__waitpoint *a, ipc__waitpoint *b);

/*
 * Stalled waits: a process-wide count of the waits (here and in bell.c)
 * whose kernel sleep ended by its timeout while their condition held: a
 * wake-up that was lost or came late. Zero on the hot path: only a sleep
 * that timed out pays, and only when ready() then holds.
 *
 * Such a timeout is a stall only if the publish came before it, and a
 * waiter cannot read the publisher's clock. It can rely on the handshake
 * instead: it is still announced (waiters, or the bell's asleep) when it
 * looks, and its last look before the sleep missed the publish, so by the
 * fence pair the publisher's P2 sees it and P3 (the seq bump, the eventfd
 * write) must follow, a few instructions after P1. So the waiter stays
 * announced for IPC__WAIT_STALL_GRACE_NS more and waits for that P3:
 *   - it comes (or came already): the wake was on its way when the timer
 *     fired; the publish raced the timeout, or the publisher was descheduled
 *     between its publish and its wake. A late wake, not ours:
 *     ipc__wait_late_wakes() counts it, for information.
 *   - it does not come within the grace: the publisher's P2 missed the
 *     sleeper or it never notified; whenever it published, that is a lost
 *     wake-up (or, when its P3 is due at the end of a batch longer than the
 *     grace, a late one of our own making): ipc__wait_stalls() counts it.
 * A publish after the timeout is never counted, its P3 comes within the
 * grace. What this cannot see: a P3 of a later publish that arrives within
 * the grace hides a lost one (the count errs low, never high); a futex
 * wake lost after its seq bump (the kernel's part, assumed as in the
 * models, docs/SHM.md §10); a publisher stopped for longer than the grace
 * between P1 and P3 is counted.
 */
#define IPC__WAIT_STALL_GRACE_NS 1000000000ull

uint64_t ipc__wait_stalls(void);
uint64_t ipc__wait_late_wakes(void);

/* For the other sleeps (bell.c): one timeout whose condition held, and
 * whether its P3 came within the grace (late) or not (stall). */
void ipc__wait_count_timeout_held(bool p3_came);

/*
 * A standing subscription: while one is held, every ipc__wait_notify() on w
 * bumps seq and wakes, as if a waiter were always asleep. For a watcher that
 * follows seq from outside ipc__wait_until() (the event-fd relay): it reads
 * seq, checks its condition, and is then sure to see seq move on any later
 * notify. Costs each notifier a futex wake while held.
 */
void ipc__wait_subscribe(ipc__waitpoint *w);
void ipc__wait_unsubscribe(ipc__waitpoint *w);

/* A full (seq_cst) fence for the Dekker handshakes above. On x86-64 a locked
 * or to the stack, as Linux's smp_mb(): as strong as MFENCE for the ordinary
 * loads and stores all this code uses, and ~8x cheaper on this CPU (2.4 ns
 * against 19.5 ns, measured). ThreadSanitizer does not see inline assembly,
 * so its builds keep the C11 fence. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IPC__WAIT_C11_FENCE 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define IPC__WAIT_C11_FENCE 1
#endif
static inline void ipc__wait_fence(void)
{
#if defined(__x86_64__) && !defined(IPC__WAIT_C11_FENCE)
    __asm__ __volatile__("lock orq $0, (%%rsp)" ::: "memory", "cc");
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* One CPU relax hint for spin loops. */
static inline void ipc__wait_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* IPC_SHM_WAIT_H */
