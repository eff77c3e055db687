// What one benchmark run measured, as the report writers see it.
#ifndef TOOLS_BENCH_RESULTS_H
#define TOOLS_BENCH_RESULTS_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ipc_bench {

enum class Status { kOk, kUnavailable, kError };

const char *StatusName(Status s);

struct RowState {
    Status status = Status::kOk;
    std::string note; // why a row is unavailable or failed
};

struct LatencyRow : RowState {
    std::string transport;
    size_t payload = 0;
    bool cold = false;
    uint64_t samples = 0;
    double p50_ns = 0, p90_ns = 0, p99_ns = 0, p999_ns = 0, max_ns = 0, mean_ns = 0;
    double server_cpu_ns = 0, client_cpu_ns = 0; // per round trip
};

struct ThroughputRow : RowState {
    std::string transport;
    size_t payload = 0;
    int clients = 0;
    int window = 0;
    uint64_t messages = 0;
    double msgs_per_s = 0;
    double server_cpu_ns = 0, client_cpu_ns = 0; // per message, all clients
};

struct IdleRow : RowState {
    std::string transport;
    double seconds = 0;
    double server_pct = 0, client_pct = 0; // of one CPU
};

struct Ratio {
    std::string name;   // what is compared
    std::string detail; // numerator / denominator, in words
    double value = 0;   // NaN when an operand is missing
    double target = 0;
    bool at_most = true; // target is an upper bound (else a lower bound)
};

struct TransportInfo {
    std::string id, label;
    Status status = Status::kOk;
    std::string note;
};

struct Machine {
    std::string cpu_model, hypervisor, kernel, clocksource;
    int cpus = 0;
    double mem_gib = 0;
    bool pinned = false;
    int server_cpu = -1, client_cpu = -1;
};

struct Budget {
    uint64_t hot_iters, hot_ns;     // per hot case: whichever ends first
    uint64_t cold_iters, cold_ns;   // per cold case
    uint64_t gap_min_ns, gap_max_ns; // cold idle gap before each request
    uint64_t tput_ns, warmup_ns;    // per throughput case; warmup per case
    uint64_t idle_ns;
};

struct Results {
    bool quick = false;
    std::string started; // UTC timestamp
    double wall_s = 0;
    Machine machine;
    Budget budget;
    std::vector<size_t> payloads;
    std::vector<int> client_counts;
    int window_max = 0;
    std::vector<TransportInfo> transports;
    std::vector<LatencyRow> latency;
    std::vector<ThroughputRow> throughput;
    std::vector<IdleRow> idle;
    std::vector<Ratio> ratios;
};

// Terminal table, JSON, and gnuplot: report.cc.
void PrintTable(const Results &r);
int WriteJson(const Results &r, const std::string &path);
int WritePlot(const Results &r, const std::string &path, std::string *err);
// The gnuplot terminal line for a plot file of that size, chosen by its
// extension (.png, .svg, .pdf); empty for any other.
std::string PlotTerminal(const std::string &path, int width_px, int height_px);
void ComputeRatios(Results *r);

} // namespace ipc_bench

#endif // TOOLS_BENCH_RESULTS_H
