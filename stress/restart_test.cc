// The server is SIGKILLed under load and a new one takes the same name:
// every client gets an error promptly (finite timeouts never run out;
// receivers blocked with no timeout get -ECONNRESET), reconnects and
// carries on, and no reply is lost or wrong.
#include <cstdio>

#include <gtest/gtest.h>

#include "ipc/testing/testing.h"
#include "stress/stress_driver.h"
#include "stress/test_util.h"

namespace ipc_stress {
namespace {

void ExpectRecovered(const RestartConfig &cfg, const RestartReport &r)
{
    std::printf("%s\n", r.totals.Line(cfg.ep.transport).c_str());
    std::printf("  restart: restarts=%d clients=%d receivers=%d reconnects=%llu "
                "max_kill_to_error_ms=%.1f max_latency_ms=%.1f\n",
                cfg.restarts, cfg.clients, cfg.receivers, (unsigned long long)r.reconnects,
                r.max_error_delay_ns / 1e6, r.totals.max_latency_ns / 1e6);
    std::fflush(stdout);
    EXPECT_TRUE(r.failures.empty()) << Join(r.failures);
    EXPECT_GT(r.totals.sent, 0u);
    EXPECT_EQ(r.totals.sent, r.totals.received);
    EXPECT_EQ(r.totals.corrupted, 0u);
    // Every client reconnects after every kill; receivers also after the
    // last kill only if the stop came later (they leave on the final one).
    EXPECT_GE(r.reconnects, (uint64_t)cfg.restarts * (cfg.clients + cfg.receivers));
    EXPECT_LT(r.max_error_delay_ns, 5 * kSecond);
}

TEST(SocketRestart, ClientsSeeAnErrorPromptlyAndContinueWithTheNewServer)
{
    ipc_testing::ScopedDir dir;
    RestartConfig cfg;
    cfg.ep = SocketEndpoint(dir.path(), 256 << 10);
    cfg.clients = 12;
    cfg.receivers = 4;
    cfg.restarts = 3;
    ExpectRecovered(cfg, RunRestart(cfg));
}

TEST(ShmRestart, ClientsSeeAnErrorPromptlyAndContinueWithTheNewServer)
{
    RestartConfig cfg;
    cfg.ep = ShmEndpoint(8, 256 << 10);
    cfg.clients = 5;
    cfg.receivers = 3;
    cfg.restarts = 3;
    ExpectRecovered(cfg, RunRestart(cfg));
}

}  // namespace
}  // namespace ipc_stress
