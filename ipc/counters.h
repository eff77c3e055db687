/*
 * Counters and latency histograms. Internal.
 *
 * One thread writes each counter (the owner of the server; for a client
 * used full duplex, its sending thread the send counters and its receiving
 * thread the receive counters and latencies), so counters are bumped with a
 * relaxed load and store, no locked instruction. The error counters, which
 * both threads of a client bump, take an atomic add (ipc__stat_error).
 * Readers in other threads or processes copy them with relaxed loads.
 * 64-bit aligned stores do not tear. The block is
 * also the page a server publishes (stats.h): its layout is an ABI.
 */
#ifndef IPC_COUNTERS_H
#define IPC_COUNTERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ipc/ipc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    IPC__STAT_MESSAGES_IN,
    IPC__STAT_MESSAGES_OUT,
    IPC__STAT_BYTES_IN,
    IPC__STAT_BYTES_OUT,
    IPC__STAT_TIMEOUTS,
    IPC__STAT_OVERSIZE,
    IPC__STAT_RESETS,
    IPC__STAT_OTHER_ERRORS,
    IPC__STAT_DROPS,
    IPC__STAT_CONNECTS,
    IPC__STAT_RECONNECTS,
    IPC__STAT_RECLAIMS,
    IPC__STAT_CLIENTS,
    IPC__STAT_ORPHANS,
    IPC__STAT_COUNT
} ipc__stat;

#define IPC_STATS_MAGIC 0x5354415453435049ull /* "IPCSTATS" */
#define IPC_STATS_VERSION 1u

/* The published page: an ABI between a server and `ipc stat`. */
typedef struct ipc__stats_block {
    uint64_t magic;          /*   0 IPC_STATS_MAGIC */
    uint32_t version;        /*   8 IPC_STATS_VERSION */
    uint32_t size;           /*  12 sizeof(ipc__stats_block) */
    char transport[8];       /*  16 "socket" / "shm", NUL-terminated */
    int32_t pid;             /*  24 */
    uint32_t uid;            /*  28 */
    uint64_t started_ns;     /*  32 CLOCK_REALTIME at listen */
    char name[112];          /*  40 NUL-terminated */
    uint64_t reserved[13];   /* 152 zero */
    _Atomic uint64_t counter[16];                    /* 256 (14 used; 13 before orphans, which an older server leaves 0) */
    _Atomic uint64_t latency[IPC_HISTOGRAM_BUCKETS]; /* 384 */
} ipc__stats_block;

static inline void ipc__stat_add(ipc__stats_block *b, ipc__stat which, uint64_t delta)
{
    /* Single writer: a relaxed load and store suffice (no lost update is
     * possible), and readers only need untorn values. */
    uint64_t v = atomic_load_explicit(&b->counter[which], memory_order_relaxed);
    atomic_store_explicit(&b->counter[which], v + delta, memory_order_relaxed);
}

/* Counts a call's result under the matching error kind; safe from two
 * threads at once. */
void ipc__stat_error(ipc__stats_block *b, int err);

/* The histogram bucket of a value in ns: values below 8 ns have a bucket
 * each; above, 8 buckets per power of two: bucket = 8 * (msb - 2) + the 3
 * bits below the msb. Inline: it is on every request's path. */
static inline unsigned ipc__hist_bucket(uint64_t ns)
{
    if (ns < 8)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    return 8u * (msb - 2u) + (unsigned)((ns >> (msb - 3u)) & 7u);
}

/* The upper edge of a bucket. */
uint64_t ipc__hist_upper(unsigned bucket);

/* Counts n samples of ns each. */
static inline void ipc__stat_latency_n(ipc__stats_block *b, uint64_t ns, uint64_t n)
{
    _Atomic uint64_t *c = &b->latency[ipc__hist_bucket(ns)];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void ipc__stat_latency(ipc__stats_block *b, uint64_t ns)
{
    ipc__stat_latency_n(b, ns, 1);
}

/*
 * Latency stamps: cheap timestamps for the histograms, whose differences
 * ipc__stamp_ns() turns into ns. Where the kernel's own clock is the TSC
 * (so it is invariant and in step across CPUs) a stamp is one RDTSC
 * (~11 ns here, against ~29 ns for clock_gettime); elsewhere it is
 * CLOCK_MONOTONIC in ns. ipc__stamp_init() picks once per process, before
 * the first client or server exists; every stamp is taken after it.
 */
extern bool ipc__stamp_is_tsc;
extern _Atomic uint64_t ipc__stamp_mult; /* ns per tick << 32 once known, else 0 */
void ipc__stamp_init(void);
uint64_t ipc__stamp_mono_ns(void);
uint64_t ipc__stamp_ns_slow(uint64_t delta);

static inline uint64_t ipc__stamp(void)
{
#if defined(__x86_64__)
    if (ipc__stamp_is_tsc)
        return __builtin_ia32_rdtsc();
#endif
    return ipc__stamp_mono_ns();
}

/* ns between two stamps, given end - start (0 if the stamps ran backwards). */
static inline uint64_t ipc__stamp_ns(uint64_t delta)
{
#if defined(__x86_64__)
    /* Relaxed: a value, not a publication (see counters.c). */
    uint64_t mult = atomic_load_explicit(&ipc__stamp_mult, memory_order_relaxed);
    if (mult != 0 && (int64_t)delta >= 0)
        return (uint64_t)(((unsigned __int128)delta * mult) >> 32);
#endif
    return ipc__stamp_ns_slow(delta);
}

/* Copies a block into the public struct. */
void ipc__stats_snapshot(const ipc__stats_block *b, ipc_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* IPC_COUNTERS_H */
