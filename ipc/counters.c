/* Counters and latency histograms of one client or server. */
#include "ipc/counters.h"

#include <errno.h>
#include <stddef.h>

_Static_assert(offsetof(ipc__stats_block, counter) == 256, "stats page ABI");
_Static_assert(offsetof(ipc__stats_block, latency) == 384, "stats page ABI");
_Static_assert(IPC__STAT_COUNT <= 16, "stats page ABI");

/* --------------------------------------------------------------- histogram */

/* Values below 8 ns have a bucket each; above, 8 buckets per power of two:
 * bucket = 8 * (msb - 2) + the 3 bits below the msb. */
unsigned ipc__hist_bucket(uint64_t ns)
{
    if (ns < 8)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    return 8u * (msb - 2u) + (unsigned)((ns >> (msb - 3u)) & 7u);
}

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
    };
    for (unsigned i = 0; i < IPC_HISTOGRAM_BUCKETS; i++)
        out->latency[i] = ipc__load(&b->latency[i]);
}
