// Runs one benchmark case in fresh processes: a forked server and 1..8
// forked clients, pinned to separate CPUs, started together and bounded by
// a watchdog so a broken transport yields an error row, never a hang.
#ifndef TOOLS_BENCH_RUNNER_H
#define TOOLS_BENCH_RUNNER_H

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tools/bench/transport.h"

namespace ipc_bench {

constexpr int kMaxClients = 8;

enum class CaseKind { kLatency, kThroughput, kIdle };

struct CaseSpec {
    CaseKind kind = CaseKind::kLatency;
    bool cold = false;       // latency: idle gap before each request
    size_t payload = 64;
    int clients = 1;
    int window = 1;
    uint64_t max_iters = 0;  // latency: samples; throughput: messages per client
    uint64_t duration_ns = 0; // time cap of the measured part
    uint64_t warmup_ns = 0;
    uint64_t gap_min_ns = 0, gap_max_ns = 0;
};

struct CaseOutcome {
    int rc = 0; // 0, or a negative errno with error set
    std::string error;
    uint64_t messages = 0;  // replies received, all clients
    double msgs_per_s = 0;  // sum over clients of count / own elapsed
    uint64_t client_cpu_ns = 0; // all clients, measured part only
    uint64_t server_cpu_ns = 0; // server process, all threads
    uint64_t wall_ns = 0;   // parent's view of the measured part
    std::vector<uint64_t> samples; // latency: ns per round trip
};

class Runner {
  public:
    Runner();
    ~Runner();
    Runner(const Runner &) = delete;
    Runner &operator=(const Runner &) = delete;

    // Maps the shared control block, makes the socket directory, and picks
    // CPUs: with two or more allowed, clients get the first, the server the
    // second.
    int Init(std::string *err);
    bool pinned() const { return server_cpu_ >= 0; }
    int server_cpu() const { return server_cpu_; }
    int client_cpu() const { return client_cpu_; }

    CaseOutcome Run(Transport &t, const CaseSpec &spec);

  private:
    struct Ctl;
    pid_t StartServer(Transport &t, const CaseSetup &setup, std::string *err);
    int StartClients(Transport &t, const CaseSetup &setup, const CaseSpec &spec,
                     std::vector<pid_t> *pids, std::string *err);
    int Measure(const CaseSpec &spec, pid_t server, std::vector<pid_t> *clients,
                CaseOutcome *out);
    void StopServer(pid_t pid, CaseOutcome *out);
    void Collect(const CaseSpec &spec, CaseOutcome *out);

    Ctl *ctl_ = nullptr;
    std::string dir_;
    int server_cpu_ = -1, client_cpu_ = -1;
    unsigned cases_ = 0;
};

// CPU time of a process, all its threads, in ns (from /proc).
uint64_t ProcessCpuNs(pid_t pid);
uint64_t NowNs();

} // namespace ipc_bench

#endif // TOOLS_BENCH_RUNNER_H
