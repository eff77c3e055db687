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
    _Atomic uint64_t counter[16];                    /* 256 (13 used) */
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

/* The histogram bucket of a value in ns, and the upper edge of a bucket. */
unsigned ipc__hist_bucket(uint64_t ns);
uint64_t ipc__hist_upper(unsigned bucket);

static inline void ipc__stat_latency(ipc__stats_block *b, uint64_t ns)
{
    _Atomic uint64_t *c = &b->latency[ipc__hist_bucket(ns)];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Copies a block into the public struct. */
void ipc__stats_snapshot(const ipc__stats_block *b, ipc_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* IPC_COUNTERS_H */
