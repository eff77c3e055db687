/* Counters and latency histograms of one client or server. */
#include "ipc/counters.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert(offsetof(ipc__stats_block, counter) == 256, "stats page ABI");
_Static_assert(offsetof(ipc__stats_block, latency) == 384, "stats page ABI");
_Static_assert(IPC__STAT_COUNT <= 16, "stats page ABI");

/* ------------------------------------------------------------------ stamps */

/* Written once under ipc__stamp_once; every reader reached it through
 * pthread_once (or through an object created after it), which orders it. */
bool ipc__stamp_is_tsc;
static pthread_once_t ipc__stamp_once = PTHREAD_ONCE_INIT;
static uint64_t ipc__stamp_base_ns, ipc__stamp_base_ticks;
/* Fixed once 20 ms of calibration have passed. Relaxed: several threads may
 * store it, each a correct value. */
_Atomic uint64_t ipc__stamp_mult;
#define IPC__STAMP_CALIBRATE_NS (20ull * 1000 * 1000)

uint64_t ipc__stamp_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* true when the kernel keeps time with the TSC, i.e. found it invariant and
 * synchronised across CPUs. */
static bool ipc__kernel_clock_is_tsc(void)
{
    char buf[16] = {0};
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                  O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    return n == 4 && memcmp(buf, "tsc\n", 4) == 0;
}

static void ipc__stamp_pick(void)
{
#if defined(__x86_64__)
    if (!ipc__kernel_clock_is_tsc())
        return;
    ipc__stamp_base_ns = ipc__stamp_mono_ns();
    ipc__stamp_base_ticks = __builtin_ia32_rdtsc();
    ipc__stamp_is_tsc = true;
#endif
}

void ipc__stamp_init(void)
{
    (void)pthread_once(&ipc__stamp_once, ipc__stamp_pick);
}

#if defined(__x86_64__)
/* The tick rate is learnt from the process's own first milliseconds, not
 * measured up front: until 20 ms have passed each conversion takes the
 * ratio so far (one clock read; ±30 ns over the time elapsed is well inside
 * a histogram bucket), then it is fixed. */
static uint64_t ipc__stamp_calibrate(uint64_t delta)
{
    uint64_t ns = ipc__stamp_mono_ns() - ipc__stamp_base_ns;
    uint64_t ticks = __builtin_ia32_rdtsc() - ipc__stamp_base_ticks;
    if (ticks == 0 || (int64_t)ticks < 0)
        return 0;
    if (ns >= IPC__STAMP_CALIBRATE_NS)
        atomic_store_explicit(&ipc__stamp_mult,
                              (uint64_t)(((unsigned __int128)ns << 32) / ticks),
                              memory_order_relaxed);
    return (uint64_t)((unsigned __int128)delta * ns / ticks);
}
#endif

uint64_t ipc__stamp_ns_slow(uint64_t delta)
{
    if ((int64_t)delta < 0)
        return 0; /* stamps from two CPUs a hair apart, or a caller's bug */
#if defined(__x86_64__)
    if (ipc__stamp_is_tsc)
        return ipc__stamp_calibrate(delta);
#endif
    return delta;
}

/* --------------------------------------------------------------- histogram */

uint64_t ipc__hist_upper(unsigned bucket)
{
    if (bucket < 8)
        return bucket;
    unsigned msb = bucket / 8u + 2u, sub = bucket % 8u;
    uint64_t step = 1ull << (msb - 3u);
    uint64_t lower = (8ull + sub) * step;
    return lower + (step - 1); /* wraps to UINT64_MAX in the last bucket */
}

uint64_t ipc_stats_samples(const ipc_stats *st)
{
    uint64_t n = 0;
    for (unsigned i = 0; st != NULL && i < IPC_HISTOGRAM_BUCKETS; i++)
        n += st->latency[i];
    return n;
}

uint64_t ipc_stats_percentile(const ipc_stats *st, double q)
{
    uint64_t n = ipc_stats_samples(st);
    if (n == 0 || !(q >= 0.0))
        return 0;
    if (q > 1.0)
        q = 1.0;
    /* The smallest bucket whose cumulative count reaches ceil(q * n). */
    uint64_t rank = (uint64_t)(q * (double)n);
    if ((double)rank < q * (double)n)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < IPC_HISTOGRAM_BUCKETS; i++) {
        seen += st->latency[i];
        if (seen >= rank)
            return ipc__hist_upper(i);
    }
    return UINT64_MAX;
}

/* ---------------------------------------------------------------- counters */

void ipc__stat_error(ipc__stats_block *b, int err)
{
    ipc__stat which = err == -ETIMEDOUT                     ? IPC__STAT_TIMEOUTS
                      : err == -EMSGSIZE                    ? IPC__STAT_OVERSIZE
                      : err == -ECONNRESET || err == -EPIPE ? IPC__STAT_RESETS
                                                            : IPC__STAT_OTHER_ERRORS;
    /* The sending and the receiving thread of a full-duplex client both
     * count errors here: a locked add, so neither loses the other's. Errors
     * are rare; the hot counters keep their single writer. Relaxed: a count
     * publishes nothing else. */
    atomic_fetch_add_explicit(&b->counter[which], 1, memory_order_relaxed);
}

static uint64_t ipc__load(const _Atomic uint64_t *p)
{
    /* Relaxed: each value is a monotonic count read on its own; a snapshot
     * is not promised to be consistent across counters. */
    return atomic_load_explicit(p, memory_order_relaxed);
}

void ipc__stats_snapshot(const ipc__stats_block *b, ipc_stats *out)
{
    const _Atomic uint64_t *c = b->counter;
    *out = (ipc_stats){
        .messages_in = ipc__load(&c[IPC__STAT_MESSAGES_IN]),
        .messages_out = ipc__load(&c[IPC__STAT_MESSAGES_OUT]),
        .bytes_in = ipc__load(&c[IPC__STAT_BYTES_IN]),
        .bytes_out = ipc__load(&c[IPC__STAT_BYTES_OUT]),
        .timeouts = ipc__load(&c[IPC__STAT_TIMEOUTS]),
        .oversize = ipc__load(&c[IPC__STAT_OVERSIZE]),
        .resets = ipc__load(&c[IPC__STAT_RESETS]),
        .other_errors = ipc__load(&c[IPC__STAT_OTHER_ERRORS]),
        .drops = ipc__load(&c[IPC__STAT_DROPS]),
        .connects = ipc__load(&c[IPC__STAT_CONNECTS]),
        .reconnects = ipc__load(&c[IPC__STAT_RECONNECTS]),
        .reclaims = ipc__load(&c[IPC__STAT_RECLAIMS]),
        .clients = ipc__load(&c[IPC__STAT_CLIENTS]),
        .orphans = ipc__load(&c[IPC__STAT_ORPHANS]),
    };
    for (unsigned i = 0; i < IPC_HISTOGRAM_BUCKETS; i++)
        out->latency[i] = ipc__load(&b->latency[i]);
}
