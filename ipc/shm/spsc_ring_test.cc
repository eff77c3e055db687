// Tests for the SPSC frame ring (ipc/shm/spsc_ring.h).
#include <errno.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>

#include <random>
#include <thread>
#include <vector>

#include "ipc/testing/process.h"
// Last: <stdatomic.h> macros clash with <atomic> when included first.
#include "ipc/shm/spsc_ring.h"

namespace {

using ipc_testing::NowNs;
using ipc_testing::Scaled;

// A ring in memory of its own: malloc'ed (or shared) so that ASan catches
// any access past the data area.
struct Ring {
    ipc__spsc_shared *shared;
    uint8_t *data;
    size_t cap;
    bool mapped;
    ipc__spsc_ring prod, cons;

    explicit Ring(size_t capacity, bool shared_mem = false) : cap(capacity), mapped(shared_mem)
    {
        if (shared_mem) {
            shared = static_cast<ipc__spsc_shared *>(ipc_testing::SharedAlloc(sizeof(*shared)));
            data = static_cast<uint8_t *>(ipc_testing::SharedAlloc(cap));
        } else {
            shared = static_cast<ipc__spsc_shared *>(aligned_alloc(128, sizeof(*shared)));
            data = static_cast<uint8_t *>(aligned_alloc(64, cap));
            memset(data, 0, cap);
        }
        ipc__spsc_format(shared, cap);
        EXPECT_EQ(ipc__spsc_attach(&prod, shared, data, cap, IPC__SPSC_PRODUCER), 0);
        EXPECT_EQ(ipc__spsc_attach(&cons, shared, data, cap, IPC__SPSC_CONSUMER), 0);
    }
    ~Ring()
    {
        if (mapped) {
            munmap(shared, sizeof(*shared));
            munmap(data, cap);
        } else {
            free(shared);
            free(data);
        }
    }
};

// Frame content derived from a sequence number, so the reader can Check it.
void Fill(uint8_t *p, size_t n, uint64_t seq)
{
    uint64_t x = seq * 0x9E3779B97F4A7C15ull + n;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ull;
        memcpy(p + i, &x, n - i < 8 ? n - i : 8);
    }
}

bool Check(const uint8_t *p, size_t n, uint64_t seq)
{
    std::vector<uint8_t> want(n);
    Fill(want.data(), n, seq);
    return n == 0 || memcmp(p, want.data(), n) == 0;
}

// Frame size for sequence number seq, derived so both sides agree.
size_t SizeFor(uint64_t seq, size_t max)
{
    uint64_t x = (seq + 1) * 0x2545F4914F6CDD1Dull;
    x ^= x >> 31;
    switch (x % 8) {
    case 0:
        return 0;
    case 1:
        return max;
    case 2:
        return (x >> 8) % (max + 1);
    default:
        return (x >> 8) % 64;
    }
}

TEST(SpscRing, Layout)
{
    EXPECT_EQ(sizeof(ipc__spsc_shared), 512u);
    EXPECT_EQ(offsetof(ipc__spsc_shared, tail), 0u);
    EXPECT_EQ(offsetof(ipc__spsc_shared, head), 128u);
    EXPECT_EQ(offsetof(ipc__spsc_shared, data), 256u);
    EXPECT_EQ(offsetof(ipc__spsc_shared, space), 384u);
    EXPECT_EQ(ipc__spsc_max_payload(4096), 2032u);
}

TEST(SpscRing, AttachRejectsBadCapacity)
{
    ipc__spsc_shared *sh = static_cast<ipc__spsc_shared *>(aligned_alloc(128, 512));
    std::vector<uint64_t> buf(1 << 14);
    ipc__spsc_ring r;
    EXPECT_EQ(ipc__spsc_attach(&r, sh, buf.data(), 2048, IPC__SPSC_PRODUCER), -EINVAL);
    EXPECT_EQ(ipc__spsc_attach(&r, sh, buf.data(), 4096 + 8, IPC__SPSC_PRODUCER), -EINVAL);
    EXPECT_EQ(ipc__spsc_attach(&r, sh, (uint8_t *)buf.data() + 1, 4096, IPC__SPSC_PRODUCER),
              -EINVAL);
    EXPECT_EQ(ipc__spsc_attach(&r, sh, buf.data(), 4096, (ipc__spsc_role)7), -EINVAL);
    EXPECT_EQ(ipc__spsc_attach(&r, sh, buf.data(), 8192, IPC__SPSC_CONSUMER), 0);
    free(sh);
}

TEST(SpscRing, EmptyAndZeroLength)
{
    Ring r(4096);
    const void *p;
    uint32_t n = 99;
    uint8_t buf[16];
    EXPECT_EQ(ipc__spsc_peek(&r.cons, &p, &n), 0);
    EXPECT_EQ(ipc__spsc_pop(&r.cons, buf, sizeof(buf)), -EAGAIN);
    EXPECT_EQ(ipc__spsc_push(&r.prod, nullptr, 0), 1);
    EXPECT_EQ(ipc__spsc_push(&r.prod, "abc", 3), 1);
    EXPECT_EQ(ipc__spsc_peek(&r.cons, &p, &n), 1);
    EXPECT_EQ(n, 0u);
    EXPECT_EQ(ipc__spsc_peek(&r.cons, &p, &n), 1) << "peek is repeatable";
    EXPECT_EQ(n, 0u);
    ipc__spsc_release(&r.cons);
    EXPECT_EQ(ipc__spsc_pop(&r.cons, buf, sizeof(buf)), 3);
    EXPECT_EQ(memcmp(buf, "abc", 3), 0);
    EXPECT_EQ(ipc__spsc_pop(&r.cons, buf, sizeof(buf)), -EAGAIN);
    ipc__spsc_release(&r.cons);  // nothing peeked: no-op
    EXPECT_EQ(atomic_load(&r.shared->head), atomic_load(&r.shared->tail));
}

// A peeked frame is validated once: rewriting its header afterwards (a
// hostile producer) changes neither what a repeated peek returns nor how far
// release moves.
TEST(SpscRing, RepeatedPeekKeepsTheLengthItValidated)
{
    Ring r(4096);
    const void *p;
    uint32_t n = 0;
    EXPECT_EQ(ipc__spsc_push(&r.prod, "hello", 5), 1);
    EXPECT_EQ(ipc__spsc_push(&r.prod, "xy", 2), 1);
    ASSERT_EQ(ipc__spsc_peek(&r.cons, &p, &n), 1);
    EXPECT_EQ(n, 5u);
    uint32_t evil = 4000;
    memcpy(r.data, &evil, sizeof(evil));  // the first record's length word
    const void *q;
    ASSERT_EQ(ipc__spsc_peek(&r.cons, &q, &n), 1);
    EXPECT_EQ(n, 5u);
    EXPECT_EQ(q, p);
    ipc__spsc_release(&r.cons);
    uint8_t buf[16];
    EXPECT_EQ(ipc__spsc_pop(&r.cons, buf, sizeof(buf)), 2) << "release moved by the validated length";
    EXPECT_EQ(memcmp(buf, "xy", 2), 0);
}

// The largest frame fits an empty ring wherever its indices stand.
TEST(SpscRing, ExactLargestFrameFitsAtEveryOffset)
{
    for (size_t cap : {4096u, 8192u, 65536u}) {
        Ring r(cap);
        size_t max = ipc__spsc_max_payload(cap);
        std::vector<uint8_t> big(max + 1), out(max + 1);
        for (size_t shift = 0; shift < cap; shift += (cap == 4096 ? 8 : 264)) {
            Fill(big.data(), max, shift);
            ASSERT_EQ(ipc__spsc_push(&r.prod, big.data(), max), 1) << cap << " " << shift;
            ASSERT_EQ(ipc__spsc_pop(&r.cons, out.data(), out.size()), (long)max);
            ASSERT_TRUE(Check(out.data(), max, shift));
            // Move the indices along by 8 bytes (one zero-length record).
            ASSERT_EQ(ipc__spsc_push(&r.prod, nullptr, 0), 1);
            ASSERT_EQ(ipc__spsc_pop(&r.cons, out.data(), 0), 0);
        }
        EXPECT_EQ(ipc__spsc_push(&r.prod, big.data(), max + 1), -EMSGSIZE);
        void *p;
        EXPECT_EQ(ipc__spsc_claim(&r.prod, (size_t)1 << 40, &p), -EMSGSIZE);
    }
}

// A consumer that keeps up keeps the producer within the warm window: each
// record that would end past it starts at offset 0 again (a marker, as at the
// ring's end), so a ping-pong touches the ring's first pages only.
TEST(SpscRing, PingPongStaysInTheWarmWindow)
{
    const size_t cap = (size_t)4 << 20;
    Ring r(cap);
    for (size_t len : {(size_t)0, (size_t)56, (size_t)1000, (size_t)65536, (size_t)300000}) {
        std::vector<uint8_t> frame(len), out(len + 1);
        uint64_t end_max = 0;
        for (uint64_t i = 0; i < 2000; i++) {
            void *p;
            ASSERT_EQ(ipc__spsc_claim(&r.prod, len, &p), 1);
            uint64_t end = (uint64_t)(static_cast<uint8_t *>(p) - r.data) + len;
            end_max = end > end_max ? end : end_max;
            Fill(static_cast<uint8_t *>(p), len, i);
            ipc__spsc_publish(&r.prod, len);
            ASSERT_EQ(ipc__spsc_pop(&r.cons, out.data(), out.size()), (long)len);
            ASSERT_TRUE(Check(out.data(), len, i));
        }
        // Past the window by at most one record (the first one placed in
        // place while the head was not re-read yet) and its header.
        EXPECT_LE(end_max, IPC__SPSC_WARM_WINDOW + 2 * (len + 16)) << len;
    }
}

// A consumer more than a quarter window behind gets the whole ring, as
// before: no early wrap is taken while it lags.
TEST(SpscRing, LaggingConsumerStillGetsTheWholeRing)
{
    const size_t cap = (size_t)1 << 20;
    Ring r(cap);
    std::vector<uint8_t> frame(1000), out(1000);
    // Half the window first, consumed, so the next lap starts mid-window.
    for (int i = 0; i < 30; i++) {
        ASSERT_EQ(ipc__spsc_push(&r.prod, frame.data(), frame.size()), 1);
        ASSERT_EQ(ipc__spsc_pop(&r.cons, out.data(), out.size()), 1000);
    }
    size_t pushed = 0;
    while (ipc__spsc_push(&r.prod, frame.data(), frame.size()) == 1)
        pushed++;
    // 1008-byte records: all that fit from here to the end, then from 0 up to
    // the head (the wrap skips the tail end, as a normal wrap does).
    size_t off = 30 * 1008, rec = 1008;
    EXPECT_EQ(pushed, (cap - off) / rec + off / rec);
    for (size_t i = 0; i < pushed; i++)
        ASSERT_EQ(ipc__spsc_pop(&r.cons, out.data(), out.size()), 1000);
    EXPECT_EQ(ipc__spsc_pop(&r.cons, out.data(), out.size()), -EAGAIN);
}

TEST(SpscRing, FullThenSpaceAgain)
{
    Ring r(4096);
    uint8_t frame[56] = {1};
    int pushed = 0;
    while (ipc__spsc_push(&r.prod, frame, sizeof(frame)) == 1)
        pushed++;
    EXPECT_EQ(pushed, 4096 / 64);
    EXPECT_EQ(ipc__spsc_writable(&r.prod, 0), 0);
    EXPECT_EQ(ipc__spsc_wait_writable(&r.prod, 0, 0, NowNs() + 5000000), -ETIMEDOUT);
    uint8_t out[64];
    EXPECT_EQ(ipc__spsc_pop(&r.cons, out, sizeof(out)), 56);
    EXPECT_EQ(ipc__spsc_wait_writable(&r.prod, 56, 0, NowNs() + 5000000), 0);
    EXPECT_EQ(ipc__spsc_push(&r.prod, frame, sizeof(frame)), 1);
    EXPECT_EQ(ipc__spsc_push(&r.prod, frame, 0), 0);
    while (ipc__spsc_pop(&r.cons, out, sizeof(out)) == 56)
        pushed--;
    EXPECT_EQ(pushed, 0);
    EXPECT_EQ(ipc__spsc_wait_readable(&r.cons, 1000, NowNs() + 5000000), -ETIMEDOUT);
}

TEST(SpscRing, TooLongForBufferIsDropped)
{
    Ring r(4096);
    EXPECT_EQ(ipc__spsc_push(&r.prod, "0123456789", 10), 1);
    EXPECT_EQ(ipc__spsc_push(&r.prod, "xy", 2), 1);
    char buf[8];
    EXPECT_EQ(ipc__spsc_pop(&r.cons, buf, 4), -EMSGSIZE);
    EXPECT_EQ(ipc__spsc_pop(&r.cons, buf, sizeof(buf)), 2);
    EXPECT_EQ(memcmp(buf, "xy", 2), 0);
}

// Claim in place, publish fewer bytes; also across the wrap point.
TEST(SpscRing, PublishShorterThanClaimed)
{
    Ring r(4096);
    uint8_t out[2048];
    for (int i = 0; i < 200; i++) {
        void *p;
        size_t want = 100 + (size_t)i * 7 % 1900;
        ASSERT_EQ(ipc__spsc_claim(&r.prod, want, &p), 1);
        Fill(static_cast<uint8_t *>(p), want / 2, (uint64_t)i);
        ipc__spsc_publish(&r.prod, want / 2);
        ASSERT_EQ(ipc__spsc_pop(&r.cons, out, sizeof(out)), (long)(want / 2));
        ASSERT_TRUE(Check(out, want / 2, (uint64_t)i));
    }
}

// publish wakes a sleeper on the data waitpoint; publish_nowake leaves the
// waking to the caller (the doorbell) but publishes the frame all the same.
TEST(SpscRing, PublishNowakePublishesWithoutBumpingTheWaitpoint)
{
    Ring r(4096);
    atomic_store(&r.shared->data.waiters, 1u);  // as if the consumer slept here
    uint8_t out[16];
    ASSERT_EQ(ipc__spsc_push(&r.prod, "a", 1), 1);
    EXPECT_EQ(atomic_load(&r.shared->data.seq), 1u);
    void *p;
    ASSERT_EQ(ipc__spsc_claim(&r.prod, 2, &p), 1);
    memcpy(p, "bc", 2);
    ipc__spsc_publish_nowake(&r.prod, 2);
    EXPECT_EQ(atomic_load(&r.shared->data.seq), 1u);
    EXPECT_EQ(ipc__spsc_pop(&r.cons, out, sizeof(out)), 1);
    EXPECT_EQ(ipc__spsc_pop(&r.cons, out, sizeof(out)), 2);
    EXPECT_EQ(memcmp(out, "bc", 2), 0);
    atomic_store(&r.shared->data.waiters, 0u);
}

// Producer and consumer threads, random sizes, small rings: many wraps.
void ThreadedStream(size_t cap, uint64_t frames, uint64_t spin_ns)
{
    Ring r(cap);
    size_t max = ipc__spsc_max_payload(cap);
    std::thread prod([&] {
        std::vector<uint8_t> buf(max);
        for (uint64_t i = 0; i < frames; i++) {
            size_t n = SizeFor(i, max);
            void *p;
            int rc;
            while ((rc = ipc__spsc_claim(&r.prod, n, &p)) == 0)
                ASSERT_EQ(ipc__spsc_wait_writable(&r.prod, n, spin_ns, NowNs() + 10000000000ull), 0);
            ASSERT_EQ(rc, 1);
            Fill(static_cast<uint8_t *>(p), n, i);
            ipc__spsc_publish(&r.prod, n);
        }
    });
    uint64_t bad = 0;
    for (uint64_t i = 0; i < frames; i++) {
        const void *p;
        uint32_t n;
        int rc;
        while ((rc = ipc__spsc_peek(&r.cons, &p, &n)) == 0)
            ASSERT_EQ(ipc__spsc_wait_readable(&r.cons, spin_ns, NowNs() + 10000000000ull), 0);
        ASSERT_EQ(rc, 1);
        if (n != SizeFor(i, max) || !Check(static_cast<const uint8_t *>(p), n, i))
            bad++;
        ipc__spsc_release(&r.cons);
    }
    prod.join();
    EXPECT_EQ(bad, 0u);
}

TEST(SpscRing, ThreadedWrapAroundRandomSizes)
{
    uint64_t frames = Scaled(1000000);
    uint64_t t0 = NowNs();
    ThreadedStream(4096, frames, 50000);
    printf("threaded 4 KiB ring: %llu frames, %.0f ns per frame\n", (unsigned long long)frames,
           (double)(NowNs() - t0) / (double)frames);
    ThreadedStream(16384, Scaled(300000), 0);
}

// The same across processes through shared memory, futex waits included.
TEST(SpscRing, ForkedWrapAroundChecksummed)
{
    const size_t cap = 4096;
    uint64_t frames = Scaled(1000000);
    Ring r(cap, true);
    size_t max = ipc__spsc_max_payload(cap);
    pid_t child = ipc_testing::Fork([&] {
        for (uint64_t i = 0; i < frames; i++) {
            size_t n = SizeFor(i, max);
            void *p;
            int rc;
            while ((rc = ipc__spsc_claim(&r.prod, n, &p)) == 0)
                if (ipc__spsc_wait_writable(&r.prod, n, 20000, NowNs() + 10000000000ull) != 0)
                    return 2;
            if (rc != 1)
                return 3;
            Fill(static_cast<uint8_t *>(p), n, i);
            ipc__spsc_publish(&r.prod, n);
        }
        return 0;
    });
    uint64_t bad = 0, t0 = NowNs();
    std::vector<uint8_t> buf(max);
    for (uint64_t i = 0; i < frames; i++) {
        long n;
        while ((n = ipc__spsc_pop(&r.cons, buf.data(), buf.size())) == -EAGAIN)
            ASSERT_EQ(ipc__spsc_wait_readable(&r.cons, 20000, NowNs() + 10000000000ull), 0);
        ASSERT_GE(n, 0);
        if ((size_t)n != SizeFor(i, max) || !Check(buf.data(), (size_t)n, i))
            bad++;
    }
    printf("forked 4 KiB ring: %llu frames, %.0f ns per frame\n", (unsigned long long)frames,
           (double)(NowNs() - t0) / (double)frames);
    EXPECT_EQ(bad, 0u);
    EXPECT_EQ(ipc_testing::WaitChild(child), 0);
}

// Hostile producer: garbage tail and records give -EPROTO or well-formed
// frames inside the data area, never a crash (ASan checks the bounds).
TEST(SpscRing, HostileProducerGarbage)
{
    std::mt19937_64 rng(12345);
    uint64_t rounds = Scaled(200000);
    uint64_t eproto = 0, frames = 0;
    for (uint64_t round = 0; round < rounds; round++) {
        Ring r(4096);
        // A few honest frames first, so the indices sit anywhere.
        int honest = (int)(rng() % 40);
        uint8_t tmp[2048];
        for (int i = 0; i < honest; i++) {
            if (ipc__spsc_push(&r.prod, tmp, rng() % 200) == 0 || rng() % 2)
                ASSERT_GE(ipc__spsc_pop(&r.cons, tmp, sizeof(tmp)), 0);
        }
        // Scribble: random words in the data area, random tail.
        int scribbles = (int)(rng() % 8);
        for (int i = 0; i < scribbles; i++) {
            uint32_t v = (uint32_t)rng();
            switch (rng() % 4) {
            case 0: v = IPC__SPSC_WRAP; break;
            case 1: v %= 4096; break;
            default: break;
            }
            memcpy(r.data + (rng() % 1024) * 4, &v, 4);
        }
        switch (rng() % 4) {
        case 0: atomic_store(&r.shared->tail, (uint64_t)rng()); break;
        case 1: atomic_store(&r.shared->tail, atomic_load(&r.shared->tail) + (rng() % 8192)); break;
        case 2: atomic_store(&r.shared->tail, atomic_load(&r.shared->tail) - (rng() % 64)); break;
        default: break;
        }
        // Drain: bounded, each frame inside the data area.
        for (int i = 0; i < 1000; i++) {
            const void *p;
            uint32_t n;
            int rc = ipc__spsc_peek(&r.cons, &p, &n);
            if (rc == 0)
                break;
            if (rc == -EPROTO) {
                eproto++;
                EXPECT_EQ(ipc__spsc_peek(&r.cons, &p, &n), -EPROTO) << "sticky";
                break;
            }
            ASSERT_EQ(rc, 1);
            const uint8_t *b = static_cast<const uint8_t *>(p);
            ASSERT_GE(b, r.data + 8);
            ASSERT_LE(b + n, r.data + r.cap);
            ASSERT_LE(n, ipc__spsc_max_payload(r.cap));
            volatile uint8_t sink = 0;
            for (uint32_t k = 0; k < n; k++)  // touch every byte: ASan checks
                sink = sink + b[k];
            frames++;
            ipc__spsc_release(&r.cons);
            ASSERT_LT(i, 999) << "no endless frame stream from a fixed tail";
        }
    }
    printf("hostile producer: %llu rounds, %llu -EPROTO, %llu frames accepted\n",
           (unsigned long long)rounds, (unsigned long long)eproto, (unsigned long long)frames);
    EXPECT_GT(eproto, 0u);
}

// Hostile consumer: a garbage head gives -EPROTO or in-bounds claims.
TEST(SpscRing, HostileConsumerGarbage)
{
    std::mt19937_64 rng(777);
    uint64_t rounds = Scaled(200000), eproto = 0;
    for (uint64_t round = 0; round < rounds; round++) {
        Ring r(4096);
        int honest = (int)(rng() % 40);
        uint8_t tmp[2048];
        for (int i = 0; i < honest; i++) {
            if (ipc__spsc_push(&r.prod, tmp, rng() % 300) == 1 && rng() % 3)
                ASSERT_GE(ipc__spsc_pop(&r.cons, tmp, sizeof(tmp)), 0);
        }
        switch (rng() % 3) {
        case 0: atomic_store(&r.shared->head, (uint64_t)rng()); break;
        case 1: atomic_store(&r.shared->head, atomic_load(&r.shared->head) + (rng() % 8192)); break;
        default: atomic_store(&r.shared->head, atomic_load(&r.shared->head) - (rng() % 8192)); break;
        }
        for (int i = 0; i < 100; i++) {
            void *p;
            size_t n = rng() % 2100;
            int rc = ipc__spsc_claim(&r.prod, n, &p);
            if (rc == -EPROTO) {
                eproto++;
                break;
            }
            if (rc == -EMSGSIZE) {
                ASSERT_GT(n, ipc__spsc_max_payload(r.cap));
                continue;
            }
            if (rc == 0)
                break;
            ASSERT_GE(static_cast<uint8_t *>(p), r.data + 8);
            ASSERT_LE(static_cast<uint8_t *>(p) + n, r.data + r.cap);
            memset(p, 0xAB, n);
            ipc__spsc_publish(&r.prod, n);
        }
    }
    EXPECT_GT(eproto, 0u);
}

// Hand-made corruptions, each of which must be caught.
TEST(SpscRing, SpecificCorruptionsDetected)
{
    auto expect_eproto = [](const char *what, const std::function<void(Ring &)> &poke) {
        Ring r(4096);
        ASSERT_EQ(ipc__spsc_push(&r.prod, "hello", 5), 1);
        poke(r);
        const void *p;
        uint32_t n;
        EXPECT_EQ(ipc__spsc_peek(&r.cons, &p, &n), -EPROTO) << what;
    };
    uint32_t v;
    expect_eproto("tail beyond head + capacity", [](Ring &r) { atomic_store(&r.shared->tail, 4104ull); });
    expect_eproto("tail misaligned", [](Ring &r) { atomic_store(&r.shared->tail, 12ull); });
    expect_eproto("tail below head", [](Ring &r) { atomic_store(&r.shared->tail, (uint64_t)-8); });
    expect_eproto("len past tail", [&](Ring &r) { v = 9; memcpy(r.data, &v, 4); });
    expect_eproto("len > max", [&](Ring &r) { v = 3000; memcpy(r.data, &v, 4); });
    expect_eproto("reserved != 0", [&](Ring &r) { v = 1; memcpy(r.data + 4, &v, 4); });
    expect_eproto("wrap at offset 0", [&](Ring &r) { v = IPC__SPSC_WRAP; memcpy(r.data, &v, 4); });

    // A wrap marker with no record after it before tail.
    Ring r(4096);
    uint8_t buf[2048];
    ASSERT_EQ(ipc__spsc_push(&r.prod, buf, 2000), 1);
    ASSERT_EQ(ipc__spsc_pop(&r.cons, buf, sizeof(buf)), 2000);
    ASSERT_EQ(ipc__spsc_push(&r.prod, buf, 2000), 1);  // at 2008 .. 4016
    ASSERT_EQ(ipc__spsc_pop(&r.cons, buf, sizeof(buf)), 2000);
    ASSERT_EQ(ipc__spsc_push(&r.prod, buf, 100), 1);  // wraps: marker at 4016
    atomic_store(&r.shared->tail, 4096ull);  // only the marker published
    const void *p;
    uint32_t n;
    EXPECT_EQ(ipc__spsc_peek(&r.cons, &p, &n), -EPROTO);

    // Producer side: head ahead of tail, or more than capacity behind.
    for (uint64_t bad_head : std::initializer_list<uint64_t>{4096 + 8, (uint64_t)-8}) {
        Ring q(4096);
        void *w;
        EXPECT_EQ(ipc__spsc_push(&q.prod, buf, 4000 - 8), -EMSGSIZE);
        int pushed = 0;
        while (ipc__spsc_push(&q.prod, buf, 56) == 1)
            pushed++;
        ASSERT_EQ(pushed, 64);
        atomic_store(&q.shared->head, bad_head);
        EXPECT_EQ(ipc__spsc_claim(&q.prod, 8, &w), -EPROTO);
        EXPECT_EQ(ipc__spsc_writable(&q.prod, 0), -EPROTO) << "sticky";
    }
}

} // namespace
