// Issue 19 §1: no stall when the CPUs are oversubscribed.
//
// The module's upstream pattern (ShmTest.SingleClientSmallRingHighVolume),
// written against ipc/bb_ipc.hpp: one client with 2 KiB rings sending
// requests of random size 1..1020 B from one thread and reading the replies
// on another, both with 100 ms timeouts retried on timeout; a server (here a
// forked process) looping accept(); wait_for_data(10 ms); receive; release;
// send. Beside it, one busy loop per CPU (at least two), so that every
// thread of the test keeps losing its CPU at arbitrary instructions.
//
// The figure is the library's count of stalled waits (ipc__wait_stalls(),
// wait.h): kernel sleeps that timed out while their condition held and whose
// wake never came. It must read 0 in both processes. The 100 ms timeouts the
// client sees are printed, not asserted: with the CPUs taken, a peer that
// had nothing to publish for 100 ms (it was not running) is starvation, not
// a lost wake. Every reply is checked byte for byte and in order.
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <gtest/gtest.h>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "ipc/bb_ipc.hpp"
#include "ipc/testing/process.h"
// Last: the C header pulls in <stdatomic.h>, whose macros clash with <atomic>
// if it comes first.
#include "ipc/shm/wait.h"

namespace {

using ipc_testing::NowNs;

constexpr uint64_t kMs = 1000ull * 1000;
constexpr uint64_t kSec = 1000 * kMs;
constexpr size_t kRing = 2048;              // the module's ring size
constexpr size_t kMaxSize = kRing / 2 - 4;  // the module's largest message: 1020
// Requests at full scale (Scaled(): a tenth under tsan, a quarter under asan).
constexpr uint64_t kRequests = 400000;
// Bounds in time, well under the test's timeout: past kSendFor the sender
// stops (what it sent is still checked), and nothing waits past kGiveUp.
constexpr uint64_t kSendFor = 40 * kSec;
constexpr uint64_t kGiveUp = 70 * kSec;

// The size and bytes of request seq: both sides compute them, nothing shared.
size_t SizeOf(uint64_t seq)
{
    uint64_t h = (seq + 1) * 0x9E3779B97F4A7C15ull;  // Fibonacci hashing
    h ^= h >> 29;
    return 1 + static_cast<size_t>(h % kMaxSize);
}

uint8_t ByteOf(uint64_t seq, size_t i)
{
    return static_cast<uint8_t>((seq * 131 + i * 7 + (i >> 8)) & 0xFF);
}

std::vector<uint8_t> Request(uint64_t seq)
{
    std::vector<uint8_t> m(SizeOf(seq));
    for (size_t i = 0; i < m.size(); i++)
        m[i] = ByteOf(seq, i);
    return m;
}

bool IsReplyTo(std::span<const uint8_t> reply, uint64_t seq)
{
    if (reply.data() == nullptr || reply.size() != SizeOf(seq))
        return false;
    for (size_t i = 0; i < reply.size(); i++)
        if (reply[i] != ByteOf(seq, i))
            return false;
    return true;
}

// A forked child that dies with its parent even if the parent is killed
// before its owners run (no busy loop is ever left behind).
bool DieWithParent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    return getppid() == parent;
}

// One busy loop per CPU we may run on, at least two: a child process each,
// SIGKILLed and reaped by ChildProcess however the test ends.
class BusyLoops {
  public:
    BusyLoops()
    {
        cpu_set_t set;
        int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 2;
        pid_t parent = getpid();
        for (int i = 0; i < std::max(cpus, 2); i++)
            loops_.emplace_back([parent]() {
                if (!DieWithParent(parent))
                    return 0;
                for (volatile uint64_t spin = 0;; spin = spin + 1) {
                }
            });
    }
    size_t size() const { return loops_.size(); }

  private:
    std::vector<ipc_testing::ChildProcess> loops_;
};

// What the forked server tells the test, in memory shared with it.
struct ServerReport {
    std::atomic<bool> listening;
    std::atomic<bool> done;  // the test has every reply: stop
    uint64_t served;
    uint64_t wait_timeouts;   // wait_for_data(10 ms) that found nothing
    uint64_t failures;        // receive() without data, send() refused
    uint64_t stalls;          // ipc__wait_stalls() at the end
    uint64_t late_wakes;      // ipc__wait_late_wakes() at the end
};

// The module's server loop, in its own process: accept(); wait_for_data(10
// ms); receive; copy; release; send. Until the test says done.
int ServeUntilDone(const std::string &name, ServerReport *r, pid_t parent)
{
    if (!DieWithParent(parent))
        return 1;
    auto server = bb::ipc::IpcServer::create_shm(name, kRing, kRing);
    if (!server->listen())
        return 2;
    r->listening.store(true);
    uint64_t give_up = NowNs() + kGiveUp;
    std::vector<uint8_t> copy;
    while (!r->done.load() && NowNs() < give_up) {
        server->accept();
        int id = server->wait_for_data(10 * kMs);
        if (id < 0) {
            r->wait_timeouts += server->last_error() == -ETIMEDOUT;
            continue;
        }
        auto request = server->receive(id);
        if (request.data() == nullptr) {
            r->failures++;
            continue;
        }
        copy.assign(request.begin(), request.end());
        server->release(id, request.size());
        if (!server->send(id, copy.data(), copy.size()))
            r->failures++;
        r->served++;
    }
    r->stalls = ipc__wait_stalls();
    r->late_wakes = ipc__wait_late_wakes();
    server->close();
    return 0;
}

TEST(OversubscribedCpus, NoWaitTimesOutWhileItsConditionHolds)
{
    const uint64_t requests = ipc_testing::Scaled(kRequests);
    const std::string name = ipc_testing::UniqueName("oversub");
    auto *report = new (ipc_testing::SharedAlloc(sizeof(ServerReport))) ServerReport{};

    // Forked before any thread of this process exists.
    pid_t self = getpid();
    ipc_testing::ChildProcess server([&]() { return ServeUntilDone(name, report, self); });
    BusyLoops busy;
    uint64_t give_up = NowNs() + kGiveUp;
    while (!report->listening.load() && NowNs() < give_up && !server.Poll())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(report->listening.load()) << "the server did not listen";

    auto client = bb::ipc::IpcClient::create_shm(name);
    ASSERT_TRUE(client->connect()) << client->last_error();
    const uint64_t client_stalls = ipc__wait_stalls();
    const uint64_t client_late = ipc__wait_late_wakes();
    const uint64_t start = NowNs();

    std::atomic<uint64_t> sent{0};
    std::atomic<bool> sender_done{false};
    std::atomic<int> send_error{0};
    uint64_t send_timeouts = 0;
    std::thread sender([&]() {
        for (uint64_t seq = 0; seq < requests && NowNs() - start < kSendFor; seq++) {
            auto msg = Request(seq);
            // The error_code form of bb::ipc's send (the same C call): it
            // leaves last_error() to the receiving thread (ipc.hpp).
            std::error_code ec;
            while (!client->native().send(msg, 100 * kMs, ec)) {
                if (ec != std::errc::timed_out || NowNs() > give_up) {
                    send_error.store(ec.value() == 0 ? -1 : -ec.value());
                    sender_done.store(true);
                    return;
                }
                send_timeouts++;
            }
            sent.store(seq + 1);
        }
        sender_done.store(true);
    });

    uint64_t received = 0, recv_timeouts = 0, bad = UINT64_MAX;
    int recv_error = 0;
    // Every request sent gets its reply, in order, byte for byte.
    while (!(sender_done.load() && received == sent.load())) {
        auto reply = client->receive(100 * kMs);
        if (reply.data() == nullptr) {
            if (client->last_error() != -ETIMEDOUT || NowNs() > give_up) {
                recv_error = client->last_error();
                break;
            }
            recv_timeouts++;
            continue;
        }
        bool ok = IsReplyTo(reply, received);
        client->release(reply.size());
        if (!ok) {
            bad = received;
            break;
        }
        received++;
    }
    sender.join();
    // Nothing after the last reply: no duplicate.
    bool extra = recv_error == 0 && bad == UINT64_MAX && client->receive(50 * kMs).data() != nullptr;
    const double seconds = static_cast<double>(NowNs() - start) / kSec;
    const uint64_t stalls = ipc__wait_stalls() - client_stalls;
    const uint64_t late = ipc__wait_late_wakes() - client_late;
    client->close();

    report->done.store(true);
    EXPECT_EQ(server.Wait(30000), 0) << "the server failed or hung";

    printf("[ oversubscribed ] %zu busy loops, %llu of %llu requests in %.1f s\n", busy.size(),
           (unsigned long long)received, (unsigned long long)requests, seconds);
    printf("[ oversubscribed ] client: %llu send and %llu receive 100 ms timeouts (starvation, "
           "not asserted); waits timed out with their condition held: %llu stalled, %llu late "
           "wakes\n",
           (unsigned long long)send_timeouts, (unsigned long long)recv_timeouts,
           (unsigned long long)stalls, (unsigned long long)late);
    printf("[ oversubscribed ] server: %llu served, %llu wait_for_data 10 ms timeouts; waits "
           "timed out with their condition held: %llu stalled, %llu late wakes\n",
           (unsigned long long)report->served, (unsigned long long)report->wait_timeouts,
           (unsigned long long)report->stalls, (unsigned long long)report->late_wakes);

    EXPECT_EQ(send_error.load(), 0);
    EXPECT_EQ(recv_error, 0);
    EXPECT_EQ(bad, UINT64_MAX) << "reply " << bad << " is not its request's echo";
    EXPECT_FALSE(extra) << "a reply after the last one";
    EXPECT_EQ(received, sent.load());
    EXPECT_EQ(report->served, sent.load());
    EXPECT_EQ(report->failures, 0u);
    EXPECT_GT(received, 0u);
    // The figure: no wait in either process timed out with its condition held.
    EXPECT_EQ(stalls, 0u) << "client waits that timed out while their condition held";
    EXPECT_EQ(report->stalls, 0u) << "server waits that timed out while their condition held";
}

}  // namespace
