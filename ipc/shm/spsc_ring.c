/*
 * SPSC frame ring (layout and trust model in spsc_ring.h).
 *
 * Memory-order pairs, DPDK style:
 *   [T] tail: producer store-release / consumer load-acquire.
 *       Publishes every record (header + payload) below tail.
 *   [H] head: consumer store-release / producer load-acquire.
 *       Publishes "the consumer is done reading every byte below head", so
 *       the producer may overwrite it (orders the consumer's reads before
 *       the producer's later writes).
 * Waking a sleeper goes through ipc__wait_notify(), whose seq_cst fence
 * orders the release store before the check for sleepers.
 * Model-checked: ipc/shm/model/spsc_wait.pml
 */
#include "ipc/shm/spsc_ring.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* Bytes one record of payload len takes: header + payload rounded up to 8. */
static inline uint64_t ipc__record(uint64_t len)
{
    return 8 + ((len + 7) & ~(uint64_t)7);
}

/* Exactly one load: a hostile peer may change the word between two reads,
 * so the value is read once into a local and only the local is used. */
static inline uint32_t ipc__load_u32_once(const uint8_t *p)
{
    return *(const volatile uint32_t *)(const void *)p;
}

static inline void ipc__store_header(uint8_t *p, uint32_t len)
{
    uint32_t h[2] = {len, 0};
    memcpy(p, h, sizeof(h));
}

int ipc__spsc_capacity_ok(size_t capacity)
{
    return capacity >= IPC__SPSC_MIN_CAPACITY && capacity <= IPC__SPSC_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

void ipc__spsc_format(ipc__spsc_shared *shared, size_t capacity)
{
    (void)capacity;
    memset((void *)shared, 0, sizeof(*shared));
    ipc__waitpoint_init(&shared->data);
    ipc__waitpoint_init(&shared->space);
}

int ipc__spsc_attach(ipc__spsc_ring *ring, ipc__spsc_shared *shared, void *data,
                    size_t capacity, ipc__spsc_role role)
{
    if (!ipc__spsc_capacity_ok(capacity) || ((uintptr_t)data & 7) != 0 ||
        (role != IPC__SPSC_PRODUCER && role != IPC__SPSC_CONSUMER))
        return -EINVAL;
    /* Both indices start at 0 on a freshly formatted ring; from here on
     * each side trusts only its private copy of its own index. */
    *ring = (ipc__spsc_ring){
        .shared = shared,
        .data = data,
        .capacity = capacity,
        .mask = capacity - 1,
        .role = role,
        .warm = capacity < IPC__SPSC_WARM_WINDOW ? capacity : IPC__SPSC_WARM_WINDOW,
    };
    return 0;
}

/* ------------------------------------------------------------ producer */

/* Loads and validates the consumer's head: tail - capacity <= head <= tail.
 * The modular difference covers both bounds (head > tail wraps to huge). */
static int ipc__load_head(ipc__spsc_ring *r)
{
    /* [H] acquire: the consumer's reads below head are done. */
    uint64_t h = atomic_load_explicit(&r->shared->head, memory_order_acquire);
    if (r->tail - h > r->capacity) {
        r->broken = -EPROTO;
        return -EPROTO;
    }
    r->other = h;
    return 0;
}

/* 1 when need bytes are free (re-reading head only when the cached copy
 * says no), 0 when not, -EPROTO. */
static int ipc__room(ipc__spsc_ring *r, uint64_t need)
{
    if (r->capacity - (r->tail - r->other) >= need)
        return 1;
    int rc = ipc__load_head(r);
    if (rc < 0)
        return rc;
    return r->capacity - (r->tail - r->other) >= need;
}

/* true when an early wrap may go now: the consumer is at most warm/4 bytes
 * behind (so it passes the marker, and frees the skipped bytes, within a
 * quarter window of reading) and the skip and the record fit. */
static bool ipc__early_wrap_fits(const ipc__spsc_ring *r, uint64_t contig, uint64_t rec)
{
    uint64_t used = r->tail - r->other;
    return used <= r->warm / 4 && r->capacity - used >= contig + rec;
}

/* Where a record of rec bytes goes: *skip bytes of wrap (to offset 0) before
 * it. 1 when it fits now, 0 when not, -EPROTO.
 *
 * A record that does not fit before the end wraps. One that fits but would
 * end past the warm window wraps too when the consumer keeps up: at most
 * warm/4 bytes behind, and skip + rec free. A ping-pong or a short pipeline
 * then reuses the ring's first `warm` bytes instead of striding through
 * every page of it, which on this VM costs ~5 us per page a process touches
 * first, however the page was populated (docs/BENCHMARKS.md, issue 23).
 * Until the consumer reads past the marker, the producer has the bytes
 * before head at offset 0 (at least 3/4 of the window less a record)
 * instead of the whole ring: a burst beyond that waits for a consumer that
 * is at most warm/4 behind. A consumer that lags further gets the whole
 * ring as before. The cached head decides first; head is re-read for an
 * early wrap at most once per warm/4 bytes published, so a deep pipeline
 * pays no extra cache-line transfer per message. */
static int ipc__place(ipc__spsc_ring *r, uint64_t rec, uint64_t *skip)
{
    uint64_t off = r->tail & r->mask;
    uint64_t contig = r->capacity - off;
    *skip = contig;
    if (rec > contig)
        return ipc__room(r, contig + rec);
    if (off != 0 && off + rec > r->warm) {
        if (ipc__early_wrap_fits(r, contig, rec))
            return 1;
        if (r->tail >= r->retry) {
            int rc = ipc__load_head(r);
            if (rc < 0)
                return rc;
            if (ipc__early_wrap_fits(r, contig, rec))
                return 1;
            r->retry = r->tail + r->warm / 4;
        }
    }
    *skip = 0;
    return ipc__room(r, rec);
}

int ipc__spsc_writable(ipc__spsc_ring *ring, size_t len)
{
    if (ring->broken)
        return ring->broken;
    if (len > ipc__spsc_max_payload(ring->capacity))
        return -EMSGSIZE;
    uint64_t skip;
    return ipc__place(ring, ipc__record(len), &skip);
}

int ipc__spsc_claim(ipc__spsc_ring *ring, size_t len, void **payload)
{
    if (ring->broken)
        return ring->broken;
    if (len > ipc__spsc_max_payload(ring->capacity))
        return -EMSGSIZE;
    uint64_t skip;
    int rc = ipc__place(ring, ipc__record(len), &skip);
    if (rc <= 0)
        return rc;
    uint64_t off = ring->tail & ring->mask;
    ring->skip = skip;
    if (skip != 0) {
        /* The marker lies in free space [tail, tail + skip): the consumer
         * reads it only after [T] publishes it with the record. */
        ipc__store_header(ring->data + off, IPC__SPSC_WRAP);
        off = 0;
    }
    ring->claimed = len;
    *payload = ring->data + off + 8;
    return 1;
}

void ipc__spsc_publish_nowake(ipc__spsc_ring *ring, size_t len)
{
    if (len > ring->claimed) /* caller bug: never write past the claim */
        len = ring->claimed;
    uint64_t off = (ring->tail + ring->skip) & ring->mask;
    ipc__store_header(ring->data + off, (uint32_t)len);
    ring->tail += ring->skip + ipc__record(len);
    ring->skip = 0;
    ring->claimed = 0;
    /* [T] release: publishes the record header, payload and any marker. */
    atomic_store_explicit(&ring->shared->tail, ring->tail, memory_order_release);
}

void ipc__spsc_publish(ipc__spsc_ring *ring, size_t len)
{
    ipc__spsc_publish_nowake(ring, len);
    ipc__wait_notify(&ring->shared->data);
}

int ipc__spsc_push(ipc__spsc_ring *ring, const void *data, size_t len)
{
    void *p;
    int rc = ipc__spsc_claim(ring, len, &p);
    if (rc <= 0)
        return rc;
    if (len != 0)
        memcpy(p, data, len);
    ipc__spsc_publish(ring, len);
    return 1;
}

struct ipc__writable_arg {
    ipc__spsc_ring *ring;
    size_t len;
};

static bool ipc__writable_ready(void *arg)
{
    struct ipc__writable_arg *a = arg;
    return ipc__spsc_writable(a->ring, a->len) != 0;
}

int ipc__spsc_wait_writable(ipc__spsc_ring *ring, size_t len, uint64_t spin_ns,
                           uint64_t deadline_ns)
{
    struct ipc__writable_arg a = {ring, len};
    int rc = ipc__wait_until(&ring->shared->space, ipc__writable_ready, &a, spin_ns, deadline_ns);
    if (rc < 0)
        return rc;
    rc = ipc__spsc_writable(ring, len);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------ consumer */

static int ipc__corrupt(ipc__spsc_ring *r)
{
    r->broken = -EPROTO;
    r->pending = 0;
    return -EPROTO;
}

/* Loads and validates the producer's tail: head <= tail <= head + capacity,
 * and 8-aligned like every record boundary. */
static int ipc__load_tail(ipc__spsc_ring *r)
{
    /* [T] acquire: every record below tail is fully written. */
    uint64_t t = atomic_load_explicit(&r->shared->tail, memory_order_acquire);
    if (t - r->head > r->capacity || (t & 7) != 0)
        return ipc__corrupt(r);
    r->other = t;
    return 0;
}

int ipc__spsc_peek(ipc__spsc_ring *ring, const void **payload, uint32_t *len)
{
    if (ring->pending != 0) { /* peeked before: already validated */
        *payload = ring->peeked;
        *len = ring->peeked_len;
        return 1;
    }
    if (ring->broken)
        return ring->broken;
    if (ring->head == ring->other) {
        int rc = ipc__load_tail(ring);
        if (rc < 0)
            return rc;
        if (ring->head == ring->other)
            return 0;
    }
    /* [head, other) holds whole records; avail >= 8 and 8-aligned. */
    uint64_t avail = ring->other - ring->head;
    uint64_t off = ring->head & ring->mask;
    uint64_t skip = 0;
    uint32_t n = ipc__load_u32_once(ring->data + off);
    if (n == IPC__SPSC_WRAP) {
        /* Legal only mid-ring and followed by a record before tail. A second
         * marker at offset 0 fails the length check below. */
        skip = ring->capacity - off;
        if (off == 0 || skip >= avail)
            return ipc__corrupt(ring);
        off = 0;
        n = ipc__load_u32_once(ring->data);
    }
    if (n > ipc__spsc_max_payload(ring->capacity) ||
        ipc__load_u32_once(ring->data + off + 4) != 0)
        return ipc__corrupt(ring);
    uint64_t rec = ipc__record(n);
    if (rec > avail - skip || rec > ring->capacity - off)
        return ipc__corrupt(ring);
    ring->pending = skip + rec;
    ring->peeked = ring->data + off + 8;
    ring->peeked_len = n;
    *payload = ring->peeked;
    *len = n;
    return 1;
}

void ipc__spsc_release_nowake(ipc__spsc_ring *ring)
{
    if (ring->pending == 0)
        return;
    ring->head += ring->pending;
    ring->pending = 0;
    /* [H] release: our reads of the released bytes are done. */
    atomic_store_explicit(&ring->shared->head, ring->head, memory_order_release);
}

void ipc__spsc_release(ipc__spsc_ring *ring)
{
    if (ring->pending == 0)
        return;
    ipc__spsc_release_nowake(ring);
    ipc__wait_notify(&ring->shared->space);
}

long ipc__spsc_pop(ipc__spsc_ring *ring, void *buf, size_t max)
{
    const void *p;
    uint32_t n;
    int rc = ipc__spsc_peek(ring, &p, &n);
    if (rc <= 0)
        return rc == 0 ? -EAGAIN : rc;
    if (n > max) {
        ipc__spsc_release(ring);
        return -EMSGSIZE;
    }
    if (n != 0)
        memcpy(buf, p, n);
    ipc__spsc_release(ring);
    return (long)n;
}

int ipc__spsc_readable(ipc__spsc_ring *ring)
{
    if (ring->broken)
        return ring->broken;
    if (ring->head != ring->other)
        return 1;
    int rc = ipc__load_tail(ring);
    return rc < 0 ? rc : ring->head != ring->other;
}

/* true when a peek would not return 0: a frame, or corruption to report. */
static bool ipc__readable_ready(void *arg)
{
    return ipc__spsc_readable(arg) != 0;
}

int ipc__spsc_wait_readable(ipc__spsc_ring *ring, uint64_t spin_ns, uint64_t deadline_ns)
{
    return ipc__wait_until(&ring->shared->data, ipc__readable_ready, ring, spin_ns, deadline_ns);
}
