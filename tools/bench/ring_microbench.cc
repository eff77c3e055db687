// Google Benchmark micro-benchmarks of the shared-memory primitives under
// the shm transport: SPSC ring push/pop and claim/publish (one thread, then
// streaming across two threads) and the waitpoint's wait/notify.
//
//   bazel run -c opt //tools/bench:ring_microbench -- --benchmark_min_time=0.2
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <string.h>

#include <thread>
#include <vector>

// Last: <stdatomic.h> macros clash with <atomic> when included first.
#include "ipc/shm/spsc_ring.h"
#include "ipc/shm/wait.h"

namespace {

constexpr size_t kCapacity = 1 << 20;

// A ring and both of its views in one process.
struct Ring {
    ipc__spsc_shared *shared;
    uint8_t *data;
    ipc__spsc_ring prod, cons;

    explicit Ring(size_t cap = kCapacity)
    {
        shared = static_cast<ipc__spsc_shared *>(aligned_alloc(128, sizeof(*shared)));
        data = static_cast<uint8_t *>(aligned_alloc(4096, cap));
        memset(data, 0, cap); // fault the pages in before timing
        ipc__spsc_format(shared, cap);
        if (ipc__spsc_attach(&prod, shared, data, cap, IPC__SPSC_PRODUCER) != 0 ||
            ipc__spsc_attach(&cons, shared, data, cap, IPC__SPSC_CONSUMER) != 0)
            abort();
    }
    ~Ring()
    {
        free(shared);
        free(data);
    }
    Ring(const Ring &) = delete;
    Ring &operator=(const Ring &) = delete;
};

// push then pop on one thread: the cost of the operations themselves,
// copies included, with no cross-core traffic.
void BM_SpscPushPop(benchmark::State &state)
{
    size_t len = (size_t)state.range(0);
    Ring r;
    std::vector<uint8_t> in(len, 7), out(len);
    for (auto _ : state) {
        if (ipc__spsc_push(&r.prod, in.data(), len) != 1) {
            state.SkipWithError("push failed on an empty ring");
            break;
        }
        long n = ipc__spsc_pop(&r.cons, out.data(), out.size());
        if (n != (long)len) {
            state.SkipWithError("pop did not return the frame");
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)len);
}
BENCHMARK(BM_SpscPushPop)->Arg(64)->Arg(1024)->Arg(4096)->Arg(65536);

// claim/publish then peek/release: the zero-copy path, bookkeeping only.
void BM_SpscClaimPublish(benchmark::State &state)
{
    size_t len = (size_t)state.range(0);
    Ring r;
    for (auto _ : state) {
        void *p;
        if (ipc__spsc_claim(&r.prod, len, &p) != 1) {
            state.SkipWithError("claim failed on an empty ring");
            break;
        }
        static_cast<uint8_t *>(p)[0] = 1;
        ipc__spsc_publish(&r.prod, len);
        const void *q;
        uint32_t n;
        if (ipc__spsc_peek(&r.cons, &q, &n) != 1 || n != len) {
            state.SkipWithError("peek did not return the frame");
            break;
        }
        benchmark::DoNotOptimize(q);
        ipc__spsc_release(&r.cons);
    }
    state.SetItemsProcessed((int64_t)state.iterations());
}
BENCHMARK(BM_SpscClaimPublish)->Arg(64)->Arg(4096);

// Streaming across two threads (cores, when there are two): the producer
// pushes while the consumer pops; each spins while full / empty.
void BM_SpscStream(benchmark::State &state)
{
    static Ring *ring = nullptr;
    size_t len = (size_t)state.range(0);
    if (state.thread_index() == 0)
        ring = new Ring();
    std::vector<uint8_t> buf(len, 3);
    // The loop's start is a barrier: the ring exists before either uses it,
    // and both threads run the same number of iterations.
    for (auto _ : state) {
        if (state.thread_index() == 0) {
            while (ipc__spsc_push(&ring->prod, buf.data(), len) == 0)
                ipc__wait_cpu_relax();
        } else {
            while (ipc__spsc_pop(&ring->cons, buf.data(), buf.size()) == -EAGAIN)
                ipc__wait_cpu_relax();
        }
    }
    // The loop's end is a barrier too: both threads are done with the ring.
    state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)len);
    if (state.thread_index() == 0) {
        delete ring;
        ring = nullptr;
    }
}
BENCHMARK(BM_SpscStream)->Arg(64)->Arg(4096)->Threads(2)->UseRealTime();

// notify with nobody asleep: the publisher's cost on every message.
void BM_WaitNotifyNoSleeper(benchmark::State &state)
{
    ipc__waitpoint w;
    ipc__waitpoint_init(&w);
    for (auto _ : state)
        ipc__wait_notify(&w);
    state.SetItemsProcessed((int64_t)state.iterations());
}
BENCHMARK(BM_WaitNotifyNoSleeper);

bool AlwaysReady(void *)
{
    return true;
}

// wait_until when the predicate already holds: the waiter's fast path.
void BM_WaitUntilReady(benchmark::State &state)
{
    ipc__waitpoint w;
    ipc__waitpoint_init(&w);
    for (auto _ : state)
        benchmark::DoNotOptimize(ipc__wait_until(&w, AlwaysReady, nullptr, 0, IPC__WAIT_FOREVER));
}
BENCHMARK(BM_WaitUntilReady);

// Two threads passing a token back and forth through two waitpoints.
struct PingPong {
    ipc__waitpoint wp[2];
    _Atomic uint64_t token[2];
    _Atomic bool stop;
};

struct Expect {
    PingPong *pp;
    int side;
    uint64_t want;
};

bool TokenArrived(void *arg)
{
    auto *e = static_cast<Expect *>(arg);
    return atomic_load_explicit(&e->pp->token[e->side], memory_order_acquire) >= e->want ||
           atomic_load_explicit(&e->pp->stop, memory_order_acquire);
}

// wait/notify round trip: spin_ns = 0 sleeps in the kernel every time
// (futex wake latency); 50 us is the transport's default adaptive spin.
void BM_WaitNotifyRoundTrip(benchmark::State &state)
{
    uint64_t spin = (uint64_t)state.range(0);
    PingPong pp;
    ipc__waitpoint_init(&pp.wp[0]);
    ipc__waitpoint_init(&pp.wp[1]);
    atomic_init(&pp.token[0], 0);
    atomic_init(&pp.token[1], 0);
    atomic_init(&pp.stop, false);
    std::thread echo([&] {
        for (uint64_t k = 1;; k++) {
            Expect e = {&pp, 0, k};
            ipc__wait_until(&pp.wp[0], TokenArrived, &e, spin, IPC__WAIT_FOREVER);
            if (atomic_load_explicit(&pp.stop, memory_order_acquire))
                return;
            atomic_store_explicit(&pp.token[1], k, memory_order_release);
            ipc__wait_notify(&pp.wp[1]);
        }
    });
    uint64_t k = 0;
    for (auto _ : state) {
        k++;
        atomic_store_explicit(&pp.token[0], k, memory_order_release);
        ipc__wait_notify(&pp.wp[0]);
        Expect e = {&pp, 1, k};
        ipc__wait_until(&pp.wp[1], TokenArrived, &e, spin, IPC__WAIT_FOREVER);
    }
    atomic_store_explicit(&pp.stop, true, memory_order_release);
    ipc__wait_notify(&pp.wp[0]);
    echo.join();
    state.SetItemsProcessed((int64_t)state.iterations());
}
BENCHMARK(BM_WaitNotifyRoundTrip)->Arg(0)->Arg(50000)->UseRealTime();

} // namespace

BENCHMARK_MAIN();
