// Load with chaos: clients are SIGKILLed at random moments (sockets: also
// raw clients dying mid-frame) and replaced, others are SIGSTOPped and
// resumed. Survivors must lose nothing and never stall; the server must end
// with the fds it had before the load, and nothing may be left in /dev/shm.
#include <cstdio>

#include <gtest/gtest.h>

#include "ipc/testing/testing.h"
#include "stress/stress_driver.h"
#include "stress/test_util.h"

namespace ipc_stress {
namespace {

void ExpectSurvivorsClean(const StressConfig &cfg, const StressReport &r)
{
    std::printf("%s\n", r.totals.Line(cfg.ep.transport).c_str());
    std::printf("  chaos: spawned=%d survivors=%d killed=%d (mid-frame raw writers %d) "
                "stop/cont=%d max_latency_ms=%.1f elapsed_ms=%llu server fds with one client "
                "%lld before, %lld after; fds %lld before create, %lld after destroy\n",
                r.spawned, r.survivors, r.killed, r.killed_partial, r.stopped,
                r.totals.max_latency_ns / 1e6, (unsigned long long)(r.elapsed_ns / kMs),
                (long long)r.stats_before.fds_now, (long long)r.stats_after.fds_now,
                (long long)r.final.fds_before_create, (long long)r.final.fds_after_destroy);
    std::fflush(stdout);
    EXPECT_TRUE(r.failures.empty()) << Join(r.failures);
    EXPECT_EQ(r.totals.lost, 0u);
    EXPECT_EQ(r.totals.duplicated, 0u);
    EXPECT_EQ(r.totals.reordered, 0u);
    EXPECT_EQ(r.totals.corrupted, 0u);
    EXPECT_EQ(r.totals.errors, 0u);
    EXPECT_EQ(r.totals.sent, r.totals.received);
    EXPECT_GT(r.totals.sent, 0u);
    EXPECT_GE(r.killed, cfg.kills);
    EXPECT_GT(r.stopped, 0);
    EXPECT_LT(r.totals.max_latency_ns, 5 * kSecond);
    EXPECT_EQ(r.stats_after.fds_now, r.stats_before.fds_now);
    EXPECT_EQ(r.final.fds_after_destroy, r.final.fds_before_create);
    EXPECT_TRUE(r.dev_shm_leaked.empty());
}

TEST(SocketChaos, SurvivorsLoseNothingWhileClientsDieMidFrameAndStall)
{
    ipc_testing::ScopedDir dir;
    StressConfig cfg;
    cfg.ep = SocketEndpoint(dir.path(), 256 << 10);
    cfg.clients = 32;
    cfg.requests = SlowBuild() ? 60 : 80;
    cfg.replacement_requests = SlowBuild() ? 20 : 40;
    cfg.chaos = true;
    cfg.kills = 40;
    cfg.partial_writers = true;
    cfg.seed = 7;
    ExpectSurvivorsClean(cfg, RunStress(cfg));
}

TEST(ShmChaos, SurvivorsLoseNothingWhileClientsDieAndStall)
{
    StressConfig cfg;
    cfg.ep = ShmEndpoint(8, 256 << 10);
    cfg.clients = 6;
    cfg.requests = SlowBuild() ? 1000 : 3000;
    cfg.replacement_requests = SlowBuild() ? 300 : 1000;
    cfg.chaos = true;
    cfg.kills = 20;
    cfg.seed = 7;
    ExpectSurvivorsClean(cfg, RunStress(cfg));
}

}  // namespace
}  // namespace ipc_stress
