// Tests for the adaptive futex wait (ipc/shm/wait.h).
#include <errno.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "ipc/testing/process.h"
// Last: the C header pulls in <stdatomic.h>, whose macros clash with <atomic>
// if it comes first.
#include "ipc/shm/wait.h"

namespace {

using ipc_testing::NowNs;
using ipc_testing::Scaled;

constexpr uint64_t kSec = 1000000000ull;

// Two one-way channels in shared memory: ping (parent -> child) and pong.
struct PingPong {
    ipc__waitpoint ping_wp;
    ipc__waitpoint pong_wp;
    _Atomic uint64_t ping;
    _Atomic uint64_t pong;
};

struct Want {
    _Atomic uint64_t *word;
    uint64_t value;
};

bool Reached(void *arg)
{
    Want *w = static_cast<Want *>(arg);
    return atomic_load_explicit(w->word, memory_order_acquire) >= w->value;
}

// Waits for *word >= value; false on a (10 s) timeout, which is a hang.
bool WaitFor(ipc__waitpoint *wp, _Atomic uint64_t *word, uint64_t value, uint64_t spin_ns)
{
    Want w{word, value};
    return ipc__wait_until(wp, Reached, &w, spin_ns, NowNs() + 10 * kSec) == 0;
}

void Publish(ipc__waitpoint *wp, _Atomic uint64_t *word, uint64_t value)
{
    atomic_store_explicit(word, value, memory_order_release);
    ipc__wait_notify(wp);
}

// Parent pings, the forked child pongs; returns ns per round trip.
double ForkedPingPong(uint64_t rounds, uint64_t spin_ns)
{
    auto *pp = static_cast<PingPong *>(ipc_testing::SharedAlloc(sizeof(PingPong)));
    ipc__waitpoint_init(&pp->ping_wp);
    ipc__waitpoint_init(&pp->pong_wp);
    pid_t child = ipc_testing::Fork([&] {
        for (uint64_t i = 1; i <= rounds; i++) {
            if (!WaitFor(&pp->ping_wp, &pp->ping, i, spin_ns))
                return 1;
            Publish(&pp->pong_wp, &pp->pong, i);
        }
        return 0;
    });
    uint64_t t0 = NowNs();
    bool ok = true;
    for (uint64_t i = 1; i <= rounds && ok; i++) {
        Publish(&pp->ping_wp, &pp->ping, i);
        ok = WaitFor(&pp->pong_wp, &pp->pong, i, spin_ns);
    }
    uint64_t t1 = NowNs();
    EXPECT_TRUE(ok) << "parent wait hit its 10 s deadline: lost wake";
    EXPECT_EQ(ipc_testing::WaitChild(child), 0) << "child wait hit its deadline";
    munmap(pp, sizeof(PingPong));
    return (double)(t1 - t0) / (double)rounds;
}

TEST(Wait, WaitpointIsEightBytes)
{
    EXPECT_EQ(sizeof(ipc__waitpoint), 8u);
}

// spin_ns = 0: every handoff sleeps in and wakes through the futex.
TEST(Wait, ForkedPingPongFutexOnly)
{
    uint64_t rounds = Scaled(1000000);
    double ns = ForkedPingPong(rounds, 0);
    printf("futex ping-pong: %llu round trips, %.0f ns per round trip\n",
           (unsigned long long)rounds, ns);
}

TEST(Wait, ForkedPingPongSpinning)
{
    uint64_t rounds = Scaled(200000);
    double ns = ForkedPingPong(rounds, 50000);
    printf("spin ping-pong (50 us spin): %llu round trips, %.0f ns per round trip\n",
           (unsigned long long)rounds, ns);
}

// The same handshake between threads, where TSan can check the orders.
TEST(Wait, ThreadPingPongFutexOnly)
{
    PingPong pp;
    memset(&pp, 0, sizeof(pp));
    uint64_t rounds = Scaled(200000);
    std::atomic<bool> child_ok{true};
    std::thread t([&] {
        for (uint64_t i = 1; i <= rounds; i++) {
            if (!WaitFor(&pp.ping_wp, &pp.ping, i, 0)) {
                child_ok = false;
                return;
            }
            Publish(&pp.pong_wp, &pp.pong, i);
        }
    });
    bool ok = true;
    for (uint64_t i = 1; i <= rounds && ok; i++) {
        Publish(&pp.ping_wp, &pp.ping, i);
        ok = WaitFor(&pp.pong_wp, &pp.pong, i, 0);
    }
    if (!ok)  // unblock the thread so join() returns
        Publish(&pp.ping_wp, &pp.ping, UINT64_MAX);
    t.join();
    EXPECT_TRUE(ok);
    EXPECT_TRUE(child_ok.load());
}

bool Never(void *) { return false; }

TEST(Wait, TimeoutNotBeforeDeadline)
{
    ipc__waitpoint w;
    ipc__waitpoint_init(&w);
    for (uint64_t spin : std::initializer_list<uint64_t>{0, 50000, 100000000}) {
        for (uint64_t rel : std::initializer_list<uint64_t>{0, 1000, 1000000, 20000000}) {
            uint64_t deadline = NowNs() + rel;
            EXPECT_EQ(ipc__wait_until(&w, Never, nullptr, spin, deadline), -ETIMEDOUT);
            uint64_t late = NowNs();
            EXPECT_GE(late, deadline);
            EXPECT_LT(late - deadline, 500000000ull) << "woke far too late";
        }
    }
    EXPECT_EQ(atomic_load(&w.waiters), 0u);
}

TEST(Wait, PastDeadlineReturnsReadyFirst)
{
    ipc__waitpoint w;
    ipc__waitpoint_init(&w);
    EXPECT_EQ(ipc__wait_until(&w, [](void *) { return true; }, nullptr, 0, 0), 0);
    EXPECT_EQ(ipc__wait_until(&w, Never, nullptr, 0, 0), -ETIMEDOUT);
}

struct Flag {
    ipc__waitpoint w;
    _Atomic uint64_t v;
};

// Deadlines more than 2^32 ns away must not be truncated into short ones.
TEST(Wait, HugeTimeoutNotTruncated)
{
    for (uint64_t rel : std::initializer_list<uint64_t>{(1ull << 32) + 1000000ull, (1ull << 33) + 5ull, 1ull << 62,
                         UINT64_MAX - 1}) {
        Flag f;
        memset(&f, 0, sizeof(f));
        uint64_t start = NowNs();
        uint64_t deadline = rel > UINT64_MAX - start ? UINT64_MAX - 1 : start + rel;
        std::thread t([&] {
            usleep(150000);
            Publish(&f.w, &f.v, 1);
        });
        Want want{&f.v, 1};
        EXPECT_EQ(ipc__wait_until(&f.w, Reached, &want, 0, deadline), 0) << rel;
        EXPECT_GE(NowNs() - start, 100000000ull);
        t.join();
    }
}

// Notifies (and raw futex bumps) without the state turning ready are
// retried: no early timeout, no early success.
TEST(Wait, SpuriousWakesAreNotTimeouts)
{
    Flag f;
    memset(&f, 0, sizeof(f));
    std::atomic<bool> stop{false};
    std::thread noise([&] {
        while (!stop.load()) {
            atomic_fetch_add(&f.w.waiters, 0);  // touch
            atomic_fetch_add_explicit(&f.w.seq, 1, memory_order_release);
            ipc__wait_notify(&f.w);
            usleep(200);
        }
    });
    Want want{&f.v, 1};
    uint64_t deadline = NowNs() + 200000000ull;
    EXPECT_EQ(ipc__wait_until(&f.w, Reached, &want, 0, deadline), -ETIMEDOUT);
    EXPECT_GE(NowNs(), deadline);

    std::thread setter([&] {
        usleep(100000);
        Publish(&f.w, &f.v, 1);
    });
    uint64_t t0 = NowNs();
    EXPECT_EQ(ipc__wait_until(&f.w, Reached, &want, 0, NowNs() + 30 * kSec), 0);
    EXPECT_GE(NowNs() - t0, 90000000ull);
    setter.join();
    stop = true;
    noise.join();
}

void OnSignal(int) {}

// EINTR from a signal handler without SA_RESTART is retried.
TEST(Wait, SignalsAreRetried)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = OnSignal;
    ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    Flag f;
    memset(&f, 0, sizeof(f));
    std::atomic<int> rc{1};
    std::atomic<bool> done{false};
    std::thread waiter([&] {
        Want want{&f.v, 1};
        rc = ipc__wait_until(&f.w, Reached, &want, 0, NowNs() + 30 * kSec);
        done = true;
    });
    pthread_t th = waiter.native_handle();
    for (int i = 0; i < 100 && !done.load(); i++) {
        pthread_kill(th, SIGUSR1);
        usleep(1000);
    }
    EXPECT_FALSE(done.load()) << "returned early on a signal";
    Publish(&f.w, &f.v, 1);
    waiter.join();
    EXPECT_EQ(rc.load(), 0);
    sigaction(SIGUSR1, &old, nullptr);
}

TEST(Wait, NotifyWithoutWaitersDoesNotBump)
{
    ipc__waitpoint w;
    ipc__waitpoint_init(&w);
    for (int i = 0; i < 1000; i++)
        ipc__wait_notify(&w);
    EXPECT_EQ(atomic_load(&w.seq), 0u);
    atomic_store(&w.waiters, 1u);
    ipc__wait_notify(&w);
    EXPECT_EQ(atomic_load(&w.seq), 1u);
}

// Several sleepers on one waitpoint all wake on one notify.
TEST(Wait, NotifyWakesEverySleeper)
{
    Flag f;
    memset(&f, 0, sizeof(f));
    std::atomic<int> woke{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; i++)
        ts.emplace_back([&] {
            Want want{&f.v, 1};
            if (ipc__wait_until(&f.w, Reached, &want, 0, NowNs() + 10 * kSec) == 0)
                woke++;
        });
    usleep(50000);
    Publish(&f.w, &f.v, 1);
    for (auto &t : ts)
        t.join();
    EXPECT_EQ(woke.load(), 4);
    EXPECT_EQ(atomic_load(&f.w.waiters), 0u);
}

} // namespace

namespace {

// Waits on wp for *word >= 1 until a deadline 200 ms away, while another
// thread, once the waiter is announced and asleep, stores 1 without any
// notify and then runs after_timeout() once the deadline has passed.
// Returns the wait's result.
int SleepThroughAnUnnotifiedPublish(ipc__waitpoint *wp, _Atomic uint64_t *word,
                                    const std::function<void()> &after_timeout)
{
    uint64_t deadline = NowNs() + kSec / 5;
    std::thread publisher([&]() {
        while (atomic_load_explicit(&wp->waiters, memory_order_relaxed) == 0)
            std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(20)); // asleep now
        atomic_store_explicit(word, 1, memory_order_release);       // no notify
        while (NowNs() < deadline + kSec / 100)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        after_timeout();
    });
    Want w{word, 1};
    int rc = ipc__wait_until(wp, Reached, &w, 0, deadline);
    publisher.join();
    return rc;
}

}  // namespace

// The counter's own specification: a sleep that times out while its
// condition holds and no wake ever follows is a stall (the data is still
// returned); one whose wake follows within the grace is a late wake.
TEST(Wait, ATimeoutWithTheConditionHeldAndNoWakeEverIsCountedAsAStall)
{
    ipc__waitpoint wp;
    ipc__waitpoint_init(&wp);
    _Atomic uint64_t word = 0;
    uint64_t stalls = ipc__wait_stalls();
    uint64_t late = ipc__wait_late_wakes();
    EXPECT_EQ(SleepThroughAnUnnotifiedPublish(&wp, &word, [] {}), 0);
    EXPECT_EQ(ipc__wait_stalls(), stalls + 1);
    EXPECT_EQ(ipc__wait_late_wakes(), late);
}

TEST(Wait, ATimeoutWhoseWakeFollowsWithinTheGraceIsLateNotAStall)
{
    ipc__waitpoint wp;
    ipc__waitpoint_init(&wp);
    _Atomic uint64_t word = 0;
    uint64_t stalls = ipc__wait_stalls();
    uint64_t late = ipc__wait_late_wakes();
    EXPECT_EQ(SleepThroughAnUnnotifiedPublish(&wp, &word, [&] { ipc__wait_notify(&wp); }), 0);
    EXPECT_EQ(ipc__wait_stalls(), stalls);
    EXPECT_EQ(ipc__wait_late_wakes(), late + 1);
}

TEST(Wait, ATimeoutWithTheConditionFalseIsNeitherStallNorLate)
{
    ipc__waitpoint wp;
    ipc__waitpoint_init(&wp);
    _Atomic uint64_t word = 0;
    uint64_t stalls = ipc__wait_stalls();
    uint64_t late = ipc__wait_late_wakes();
    Want w{&word, 1};
    EXPECT_EQ(ipc__wait_until(&wp, Reached, &w, 0, NowNs() + kSec / 50), -ETIMEDOUT);
    EXPECT_EQ(ipc__wait_stalls(), stalls);
    EXPECT_EQ(ipc__wait_late_wakes(), late);
}
