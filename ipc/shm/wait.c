/* Adaptive spin-then-futex wait. The handshake is explained in wait.h. */
#include "ipc/shm/wait.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Spin iterations between two clock reads: a clock read costs ~20 ns, a pause
 * ~10-140 ns depending on the CPU, so the clock stays a small fraction. */
#define IPC__SPIN_CLOCK_EVERY 64

void ipc__waitpoint_init(ipc__waitpoint *w)
{
    atomic_store_explicit(&w->seq, 0, memory_order_relaxed);
    atomic_store_explicit(&w->waiters, 0, memory_order_relaxed);
}

/* Shared (not FUTEX_PRIVATE_FLAG): the word is mapped by several processes,
 * and the kernel must key the wait queue on the page, not the mm. */
static long ipc__futex(_Atomic uint32_t *addr, int op, uint32_t val,
                       const struct timespec *rel)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, rel, NULL, 0);
}

static inline bool ipc__spin_round(bool (*ready)(void *), void *arg)
{
    for (int i = 0; i < IPC__SPIN_CLOCK_EVERY; i++) {
        ipc__wait_cpu_relax();
        if (ready(arg))
            return true;
    }
    return false;
}

bool ipc__wait_spin_briefly(bool (*ready)(void *), void *arg)
{
    return ipc__spin_round(ready, arg);
}

/* Spins until ready, the spin budget or the deadline runs out. The first
 * round reads no clock: a peer that answers within a few hundred ns (the
 * common case) is seen without paying for one (~30 ns here), and the
 * budget then counts from the end of that round. */
bool ipc__wait_spin(bool (*ready)(void *), void *arg, uint64_t spin_ns, uint64_t deadline_ns)
{
    if (spin_ns == 0)
        return false;
    uint64_t stop = 0;
    for (;;) {
        if (ipc__spin_round(ready, arg))
            return true;
        uint64_t now = ipc__now_ns();
        if (stop == 0) {
            stop = now + spin_ns < now ? UINT64_MAX : now + spin_ns;
            if (stop > deadline_ns)
                stop = deadline_ns;
        }
        if (now >= stop)
            return false;
    }
}

/* The relative timeout until deadline_ns, in 64-bit arithmetic throughout;
 * false once it has passed. NULL *out means "no limit". */
static bool ipc__timeout_left(uint64_t deadline_ns, struct timespec *ts, struct timespec **out)
{
    if (deadline_ns == IPC__WAIT_FOREVER) {
        *out = NULL;
        return true;
    }
    uint64_t now = ipc__now_ns();
    if (now >= deadline_ns)
        return false;
    uint64_t left = deadline_ns - now;
    ts->tv_sec = (time_t)(left / 1000000000ull);
    ts->tv_nsec = (long)(left % 1000000000ull);
    *out = ts;
    return true;
}

/* Stalled waits (wait.h). Relaxed: each is a statistic that orders
 * nothing; a reader wants an eventual total, and the atomic add alone
 * keeps increments from threads of the process from being lost. */
static _Atomic uint64_t ipc__stalls;
static _Atomic uint64_t ipc__late_wakes;

uint64_t ipc__wait_stalls(void)
{
    /* Relaxed: a statistic (above). */
    return atomic_load_explicit(&ipc__stalls, memory_order_relaxed);
}

uint64_t ipc__wait_late_wakes(void)
{
    /* Relaxed: a statistic (above). */
    return atomic_load_explicit(&ipc__late_wakes, memory_order_relaxed);
}

void ipc__wait_count_timeout_held(bool p3_came)
{
    /* Relaxed: a statistic (above). */
    atomic_fetch_add_explicit(p3_came ? &ipc__late_wakes : &ipc__stalls, 1, memory_order_relaxed);
}

/* The futex slept to its timeout and ready() now holds, while we are still
 * announced (waiters) and seen was read at the W2 that missed the publish.
 * By the handshake the publisher's P3 bumps seq past seen (wait.h): wait up
 * to the grace for that. Cold: only a timeout with the condition held. */
__attribute__((noinline, cold)) static void ipc__judge_timeout(ipc__waitpoint *w, uint32_t seen)
{
    uint64_t until = ipc__now_ns() + IPC__WAIT_STALL_GRACE_NS;
    struct timespec ts, *rel;
    /* Relaxed: only the value is compared; ready() already holds. */
    while (atomic_load_explicit(&w->seq, memory_order_relaxed) == seen) {
        if (!ipc__timeout_left(until, &ts, &rel)) {
            ipc__wait_count_timeout_held(false);
            return;
        }
        (void)ipc__futex(&w->seq, FUTEX_WAIT, seen, rel);
    }
    ipc__wait_count_timeout_held(true);
}

static int ipc__sleep(ipc__waitpoint *w, bool (*ready)(void *), void *arg, uint64_t deadline_ns)
{
    /* W1 of the handshake: announce ourselves before looking at the state. */
    atomic_fetch_add_explicit(&w->waiters, 1, memory_order_seq_cst);
    ipc__wait_fence();
    int rc = 0;
    for (;;) {
        /* W2: read seq before ready(). Acquire pairs with the release bump
         * in ipc__wait_notify(): seeing the bump means seeing the state. */
        uint32_t seen = atomic_load_explicit(&w->seq, memory_order_acquire);
        if (ready(arg))
            break;
        struct timespec ts, *rel;
        if (!ipc__timeout_left(deadline_ns, &ts, &rel)) {
            rc = -ETIMEDOUT;
            break;
        }
        /* W3: sleeps only while seq still equals what we saw; EAGAIN (it
         * moved), EINTR and ETIMEDOUT all just loop: the deadline check
         * above is the only place a timeout is reported. */
        if (ipc__futex(&w->seq, FUTEX_WAIT, seen, rel) < 0 && errno == ETIMEDOUT && ready(arg)) {
            /* The sleep timed out with the condition held: lost or late? */
            ipc__judge_timeout(w, seen);
            break;
        }
    }
    atomic_fetch_sub_explicit(&w->waiters, 1, memory_order_seq_cst);
    return rc;
}

int ipc__wait_until(ipc__waitpoint *w, bool (*ready)(void *arg), void *arg, uint64_t spin_ns,
                   uint64_t deadline_ns)
{
    if (ready(arg) || ipc__wait_spin(ready, arg, spin_ns, deadline_ns))
        return 0;
    int rc = ipc__sleep(w, ready, arg, deadline_ns);
    /* A last look: the state may have turned ready right at the deadline. */
    if (rc == -ETIMEDOUT && ready(arg))
        return 0;
    return rc;
}

/* P2 and P3 of the handshake, after the caller's fence. */
static void ipc__wake_sleepers(ipc__waitpoint *w)
{
    /* Relaxed is enough: the caller's fence pairs with the waiter's (the
     * store-buffering litmus with seq_cst fences) and orders this read
     * against the waiter's increment; the value itself publishes nothing. */
    if (atomic_load_explicit(&w->waiters, memory_order_relaxed) == 0)
        return;
    /* Release: a waiter that reads the new seq sees the caller's state. */
    atomic_fetch_add_explicit(&w->seq, 1, memory_order_release);
    (void)ipc__futex(&w->seq, FUTEX_WAKE, INT_MAX, NULL);
}

void ipc__wait_notify(ipc__waitpoint *w)
{
    /* P1 (the caller's store) is ordered before P2 by this fence. */
    ipc__wait_fence();
    ipc__wake_sleepers(w);
}

void ipc__wait_notify_pair(ipc__waitpoint *a, ipc__waitpoint *b)
{
    /* P1 (both of the caller's stores) before P2 (both checks). */
    ipc__wait_fence();
    ipc__wake_sleepers(a);
    ipc__wake_sleepers(b);
}

void ipc__wait_subscribe(ipc__waitpoint *w)
{
    /* seq_cst: ordered before the subscriber's first read of seq, so a
     * notify either sees this count or comes before that read. */
    atomic_fetch_add_explicit(&w->waiters, 1, memory_order_seq_cst);
}

void ipc__wait_unsubscribe(ipc__waitpoint *w)
{
    atomic_fetch_sub_explicit(&w->waiters, 1, memory_order_relaxed);
}
