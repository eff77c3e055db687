// Soak: stress + chaos on both transports, round after round, for
// STRESS_SOAK_SECONDS (default 600). Manual: bazel test //stress:soak_test
//   --test_env=STRESS_SOAK_SECONDS=3600 --test_timeout=4000
#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>

#include "ipc/testing/testing.h"
#include "stress/stress_driver.h"
#include "stress/test_util.h"

namespace ipc_stress {
namespace {

uint64_t SoakNs()
{
    const char *env = std::getenv("STRESS_SOAK_SECONDS");
    long s = env != nullptr ? std::atol(env) : 600;
    return (uint64_t)(s > 0 ? s : 600) * kSecond;
}

StressConfig Round(Transport t, const std::string &dir, uint64_t seed, bool chaos)
{
    StressConfig cfg;
    cfg.seed = seed;
    cfg.chaos = chaos;
    if (t == Transport::kSocket) {
        cfg.ep = SocketEndpoint(dir, seed % 2 ? 1 << 20 : 64 << 10);
        cfg.clients = chaos ? 32 : 64;
        cfg.requests = 60;
        cfg.kills = 40;
        cfg.partial_writers = true;
    } else {
        cfg.ep = ShmEndpoint(8, seed % 3 == 0 ? 4096 : seed % 3 == 1 ? 64 << 10 : 1 << 20);
        cfg.clients = chaos ? 6 : 8;
        cfg.requests = 600;
        cfg.kills = 12;
    }
    cfg.replacement_requests = cfg.requests / 2;
    return cfg;
}

TEST(Soak, StressAndChaosOnBothTransportsStayClean)
{
    uint64_t end = NowNs() + SoakNs();
    Totals sum[2];
    int rounds = 0, killed = 0;
    for (uint64_t seed = 1; NowNs() < end; seed++) {
        for (Transport t : {Transport::kSocket, Transport::kShm}) {
            for (bool chaos : {false, true}) {
                ipc_testing::ScopedDir dir;
                StressConfig cfg = Round(t, dir.path(), seed, chaos);
                StressReport r = RunStress(cfg);
                rounds++;
                killed += r.killed;
                Totals &s = sum[t == Transport::kShm];
                s.sent += r.totals.sent;
                s.received += r.totals.received;
                s.lost += r.totals.lost;
                s.duplicated += r.totals.duplicated;
                s.reordered += r.totals.reordered;
                s.corrupted += r.totals.corrupted;
                s.max_latency_ns = std::max(s.max_latency_ns, r.totals.max_latency_ns);
                ASSERT_TRUE(r.failures.empty())
                    << TransportName(t) << (chaos ? " chaos" : " stress") << " seed " << seed
                    << Join(r.failures);
            }
        }
    }
    std::printf("soak: %d rounds, %d clients killed\n", rounds, killed);
    for (Transport t : {Transport::kSocket, Transport::kShm})
        std::printf("%s max_latency_ms=%.1f\n", sum[t == Transport::kShm].Line(t).c_str(),
                    sum[t == Transport::kShm].max_latency_ns / 1e6);
}

}  // namespace
}  // namespace ipc_stress
