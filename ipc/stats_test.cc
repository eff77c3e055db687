// Metrics: exact counters in process, the histogram, and the stats page
// read from another process.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/stats.h"
#include "ipc/testing/testing.h"

using ipc_testing::ConnectWithRetry;
using ipc_testing::Fork;
using ipc_testing::ScopedDir;
using ipc_testing::ServerProcess;
using ipc_testing::WaitChild;

namespace {

constexpr uint64_t kSecond = 1000ull * 1000 * 1000;

TEST(Histogram, BucketsAreMonotonicAndWithinAnEighth)
{
    unsigned last = 0;
    for (uint64_t v : {0ull, 1ull, 7ull, 8ull, 9ull, 15ull, 16ull, 1000ull, 123456789ull,
                       1ull << 40, (unsigned long long)UINT64_MAX}) {
        unsigned b = ipc__hist_bucket(v);
        EXPECT_GE(b, last);
        EXPECT_LT(b, (unsigned)IPC_HISTOGRAM_BUCKETS);
        EXPECT_GE(ipc__hist_upper(b), v);
        if (v >= 8 && v < UINT64_MAX)
            EXPECT_LE((double)ipc__hist_upper(b), (double)v * 1.125 + 1);
        last = b;
    }
    EXPECT_EQ(ipc__hist_upper(ipc__hist_bucket(UINT64_MAX)), UINT64_MAX);
}

uint64_t MonotonicNs()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * kSecond + (uint64_t)ts.tv_nsec;
}

// The latency stamps (a TSC read where the kernel keeps time with it) give
// the same durations as CLOCK_MONOTONIC: the same spans measured with both,
// first while the tick rate may still be learnt, then once it is fixed.
TEST(Stamps, MeasureTheSameSpansAsTheMonotonicClock)
{
    ipc__stamp_init();
    for (int round = 0; round < 2; round++) {
        uint64_t m0 = MonotonicNs(), s0 = ipc__stamp();
        struct timespec pause = {0, 25 * 1000 * 1000};  // past the 20 ms calibration
        nanosleep(&pause, nullptr);
        uint64_t s1 = ipc__stamp(), m1 = MonotonicNs();
        double stamped = (double)ipc__stamp_ns(s1 - s0), clock = (double)(m1 - m0);
        // Both pairs of reads are a few ns apart; 1 % is far finer than a
        // histogram bucket (12.5 %).
        EXPECT_NEAR(stamped, clock, clock * 0.01 + 2000.0) << "round " << round;
    }
}

TEST(Stamps, ASpanThatRanBackwardsIsZero)
{
    ipc__stamp_init();
    EXPECT_EQ(ipc__stamp_ns((uint64_t)-1), 0u);
    EXPECT_EQ(ipc__stamp_ns((uint64_t)INT64_MIN), 0u);
    EXPECT_EQ(ipc__stamp_ns(0), 0u);
}

TEST(Histogram, PercentilesComeFromTheCumulativeCounts)
{
    ipc_stats st = {};
    EXPECT_EQ(ipc_stats_percentile(&st, 0.5), 0u);
    for (int i = 0; i < 90; i++)
        st.latency[ipc__hist_bucket(1000)]++;
    for (int i = 0; i < 10; i++)
        st.latency[ipc__hist_bucket(1000000)]++;
    EXPECT_EQ(ipc_stats_samples(&st), 100u);
    uint64_t p50 = ipc_stats_percentile(&st, 0.5), p99 = ipc_stats_percentile(&st, 0.99);
    EXPECT_GE(p50, 1000u);
    EXPECT_LT(p50, 1125u);
    EXPECT_GE(p99, 1000000u);
    EXPECT_LT(p99, 1125000u);
    EXPECT_EQ(ipc_stats_percentile(&st, 0.9), p50);
}

void Echo(ipc_client *c, size_t len, size_t cap)
{
    std::vector<uint8_t> m(len, 1), buf(cap);
    ASSERT_EQ(ipc_client_send(c, m.data(), len, kSecond), 0);
    ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), kSecond);
    if (len <= cap)
        ASSERT_EQ(n, (ssize_t)len);
    else
        ASSERT_EQ(n, -EMSGSIZE);
}

class StatsTest : public ::testing::TestWithParam<const char *> {
  protected:
    bool shm() const { return strcmp(GetParam(), "shm") == 0; }
    std::string Name()
    {
        if (name_.empty())
            name_ = shm() ? ipc_testing::UniqueName("stats") : dir_.file("st.sock");
        return name_;
    }
    ServerProcess::Factory Factory()
    {
        std::string n = Name();
        bool use_shm = shm();
        return [n, use_shm]() {
            return use_shm ? ipc_server_create_shm(n.c_str(), 4)
                           : ipc_server_create_socket(n.c_str(), 4);
        };
    }
    ipc_client *Client()
    {
        std::string n = Name();
        return shm() ? ipc_client_create_shm(n.c_str(), 4) : ipc_client_create_socket(n.c_str());
    }

    ScopedDir dir_;
    std::string name_;
};

TEST_P(StatsTest, ClientAndServerCountMessagesBytesErrorsAndLatency)
{
    ServerProcess server(Factory());
    ASSERT_TRUE(server.ok());
    ipc_client *c = Client();
    ASSERT_EQ(ConnectWithRetry(c), 0);
    Echo(c, 10, 64);
    Echo(c, 100, 64); /* too long for the buffer: -EMSGSIZE */
    Echo(c, 0, 64);
    uint8_t b;
    EXPECT_EQ(ipc_client_recv(c, &b, 1, 1000), -ETIMEDOUT);
    ipc_stats st;
    ASSERT_EQ(ipc_client_stats(c, &st), 0);
    EXPECT_EQ(st.messages_out, 3u);
    EXPECT_EQ(st.bytes_out, 110u);
    EXPECT_EQ(st.messages_in, 2u);
    EXPECT_EQ(st.bytes_in, 10u);
    EXPECT_EQ(st.oversize, 1u);
    EXPECT_EQ(st.timeouts, 1u);
    EXPECT_EQ(st.connects, 1u);
    EXPECT_EQ(st.reconnects, 0u);
    EXPECT_EQ(ipc_stats_samples(&st), 2u);
    EXPECT_GT(ipc_stats_percentile(&st, 0.5), 0u);

    // From outside the server process, while it runs. The server counts a
    // reply just after sending it: give it a moment to catch up.
    ipc_server_info info;
    for (int tries = 0; tries < 200; tries++) {
        ASSERT_EQ(ipc_stats_fetch(GetParam(), Name().c_str(), &st, &info), 0);
        if (st.messages_out == 3 && ipc_stats_samples(&st) == 3)
            break;
        usleep(5000);
    }
    EXPECT_EQ(st.messages_out, 3u);
    EXPECT_EQ(ipc_stats_samples(&st), 3u);
    EXPECT_EQ(st.messages_in, 3u);
    EXPECT_EQ(st.bytes_in, 110u);
    EXPECT_EQ(st.connects, 1u);
    EXPECT_EQ(st.clients, 1u);
    EXPECT_EQ(info.pid, server.pid());
    EXPECT_EQ(info.uid, getuid());
    EXPECT_STREQ(info.transport, GetParam());

    ipc_client_close(c);
    ASSERT_EQ(ConnectWithRetry(c), 0);
    Echo(c, 5, 64);
    ASSERT_EQ(ipc_client_stats(c, &st), 0);
    EXPECT_EQ(st.reconnects, 1u);
    ipc_client_destroy(c);

    pid_t pid = server.pid();
    server.Kill(SIGKILL);
    (void)pid;
    EXPECT_EQ(ipc_stats_fetch(GetParam(), Name().c_str(), &st, &info), -ENOENT)
        << "the page must vanish with the server";
}

TEST_P(StatsTest, ServerCountsReclaimsAndDropsOfClientsThatLeave)
{
    ServerProcess server(Factory());
    ASSERT_TRUE(server.ok());
    for (int i = 0; i < 3; i++) {
        int done[2];
        ASSERT_EQ(pipe(done), 0);
        pid_t kid = Fork([&]() {
            close(done[0]);
            ipc_client *c = Client();
            if (ConnectWithRetry(c) != 0)
                return 1;
            Echo(c, 1, 8);
            (void)!write(done[1], "x", 1); // echoed: ready to be killed
            pause();
            return 0;
        });
        close(done[1]);
        char b;
        EXPECT_EQ(read(done[0], &b, 1), 1) << "client " << i << " did not connect and echo";
        close(done[0]);
        kill(kid, SIGKILL);
        WaitChild(kid);
    }
    ipc_stats st = {};
    for (int tries = 0; tries < 500; tries++) {
        ASSERT_EQ(ipc_stats_fetch(GetParam(), Name().c_str(), &st, nullptr), 0);
        if (st.reclaims == 3)
            break;
        usleep(20 * 1000);
    }
    EXPECT_EQ(st.connects, 3u);
    EXPECT_EQ(st.reclaims, 3u);
    EXPECT_EQ(st.clients, 0u);
    EXPECT_EQ(st.messages_in, 3u);
}

INSTANTIATE_TEST_SUITE_P(Transports, StatsTest, ::testing::Values("socket", "shm"));

TEST(Stats, FetchRejectsBadArgumentsAndAbsentServers)
{
    ipc_stats st;
    EXPECT_EQ(ipc_stats_fetch(nullptr, "x", &st, nullptr), -EINVAL);
    EXPECT_EQ(ipc_stats_fetch("pigeon", "x", &st, nullptr), -EINVAL);
    EXPECT_EQ(ipc_stats_fetch("shm", "", &st, nullptr), -EINVAL);
    EXPECT_EQ(ipc_stats_fetch("shm", "nobody-serves-this", &st, nullptr), -ENOENT);
    EXPECT_EQ(ipc_server_stats(nullptr, &st), -EINVAL);
    EXPECT_EQ(ipc_client_stats(nullptr, &st), -EINVAL);
}

}  // namespace
