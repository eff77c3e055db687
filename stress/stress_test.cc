// Many client processes against one server process; every reply checked.
// Each target runs one transport (socket_stress_test: Socket*, shm_stress_test:
// Shm*).
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "ipc/testing/testing.h"
#include "stress/stress_driver.h"
#include "stress/test_util.h"

namespace ipc_stress {
namespace {

void ExpectClean(const StressConfig &cfg, const StressReport &r)
{
    std::printf("%s\n", r.totals.Line(cfg.ep.transport).c_str());
    std::printf("  clients=%d max_payload=%zu bytes=%llu max_latency_ms=%.1f elapsed_ms=%llu "
                "server_requests=%llu fds(listening=%lld with_one_client=%lld/%lld)\n",
                r.survivors, cfg.ep.MaxPayload(), (unsigned long long)r.totals.bytes,
                r.totals.max_latency_ns / 1e6, (unsigned long long)(r.elapsed_ns / kMs),
                (unsigned long long)r.final.requests, (long long)r.stats_before.fds_listening,
                (long long)r.stats_before.fds_now, (long long)r.stats_after.fds_now);
    std::fflush(stdout);
    EXPECT_TRUE(r.failures.empty()) << Join(r.failures);
    EXPECT_EQ(r.totals.lost, 0u);
    EXPECT_EQ(r.totals.duplicated, 0u);
    EXPECT_EQ(r.totals.reordered, 0u);
    EXPECT_EQ(r.totals.corrupted, 0u);
    EXPECT_EQ(r.totals.errors, 0u);
    EXPECT_EQ(r.totals.sent, r.totals.received);
    EXPECT_EQ(r.totals.sent, (uint64_t)cfg.clients * (uint64_t)cfg.requests);
    EXPECT_EQ(r.survivors, cfg.clients);
    // The stats request itself is not counted: exactly the clients' requests.
    EXPECT_EQ(r.final.requests, r.totals.sent);
}

TEST(SocketStress, SixtyFourClientsGetEveryReplyOnceInOrderUpToTheLargestFrame)
{
    ipc_testing::ScopedDir dir;
    StressConfig cfg;
    cfg.ep = SocketEndpoint(dir.path(), 1 << 20);
    cfg.clients = 64;
    cfg.requests = SlowBuild() ? 24 : 80;
    ExpectClean(cfg, RunStress(cfg));
}

TEST(ShmStress, EveryClientSlotGetsEveryReplyOnceInOrderUpToTheLargestFrame)
{
    StressConfig cfg;
    cfg.ep = ShmEndpoint(8, 1 << 20);
    cfg.clients = 8;
    cfg.requests = SlowBuild() ? 100 : 400;
    ExpectClean(cfg, RunStress(cfg));
}

TEST(ShmStress, SmallestRingWrapsConstantlyWithoutLossOrCorruption)
{
    StressConfig cfg;
    cfg.ep = ShmEndpoint(8, 4096);
    cfg.clients = 8;
    cfg.requests = SlowBuild() ? 1000 : 4000;
    ExpectClean(cfg, RunStress(cfg));
}

}  // namespace
}  // namespace ipc_stress
