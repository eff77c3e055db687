// The benchmark's driver: options, the plan of cases, and turning each
// case's outcome into result rows.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tools/bench/bench.h"
#include "tools/bench/results.h"
#include "tools/bench/runner.h"
#include "tools/bench/transport.h"

namespace ipc_bench {

std::vector<std::unique_ptr<Transport>> MakeTransports()
{
    std::vector<std::unique_ptr<Transport>> all;
    all.push_back(MakeRawUds());
    all.push_back(MakeRawSpin());
    all.push_back(MakeRawFutex());
    all.push_back(MakeIpcSocket());
    all.push_back(MakeIpcShm());
    all.push_back(MakeIpcShmZeroCopy());
    all.push_back(MakeNng());
    all.push_back(MakeZmq());
    return all;
}

namespace {

constexpr uint64_t kMs = 1000 * 1000;
constexpr int kWindowMax = 16;
// Bytes one client keeps in flight at most: 2 MiB also fits the shared-memory
// transport's default 4 MiB rings (two 1 MiB requests).
constexpr size_t kInFlightBytes = 2u << 20;

struct Options {
    bool quick = false;
    std::string json, plot;
    std::set<std::string> only;
};

const char *const kIds[] = {"raw_uds", "raw_spin",   "raw_futex", "ipc_socket",
                            "ipc_shm", "ipc_shm_zc", "nng",       "zmq"};

void Usage(FILE *f)
{
    fprintf(f,
            "usage: ipc_bench [--quick] [--json FILE] [--plot FILE.png|.svg|.pdf]\n"
            "                 [--only ID[,ID...]]\n"
            "\n"
            "Round-trip latency (hot and cold), pipelined throughput against 1-8 client\n"
            "processes, CPU per message and idle CPU of both transports, against the raw\n"
            "kernel limits and nng/ZeroMQ. Reports; never judges (docs/BENCHMARKS.md).\n"
            "\n"
            "  --quick   payloads 64 B and 64 KiB, short cases: about 20 s (smoke test);\n"
            "            the full run (64 B to 1 MiB) takes about 2.5 minutes\n"
            "  --json    also write every result as JSON to FILE\n"
            "  --plot    draw it with gnuplot: latency percentiles (p50-p99.9, hot and\n"
            "            cold) for every payload and throughput against clients, one\n"
            "            colour per transport; the format follows the extension\n"
            "  --only    run these transports only: raw_uds raw_spin raw_futex ipc_socket\n"
            "            ipc_shm ipc_shm_zc nng zmq\n"
            "  --help    this text\n"
            "Relative FILEs are relative to the directory you typed `bazel run` in.\n"
            "\n"
            "Exit: 0 done (missed targets too), 1 a case or an output failed, 2 bad usage.\n"
            "\n"
            "example:\n"
            "  bazel run -c opt //tools:ipc_bench -- --json /tmp/b.json --plot /tmp/b.png\n");
}

// `bazel run` starts us in the runfiles tree: relative output paths are
// meant relative to where the user typed the command.
std::string UserPath(const char *path)
{
    const char *cwd = getenv("BUILD_WORKING_DIRECTORY");
    if (path[0] == '/' || cwd == nullptr || cwd[0] == '\0')
        return path;
    return std::string(cwd) + "/" + path;
}

int BadUsage(const std::string &why)
{
    fprintf(stderr, "ipc_bench: %s (see ipc_bench --help)\n", why.c_str());
    return -EINVAL;
}

int ParseOnly(const char *list, Options *o)
{
    std::stringstream ss(list);
    for (std::string id; std::getline(ss, id, ',');) {
        bool known = false;
        for (const char *k : kIds)
            known |= id == k;
        if (!known)
            return BadUsage("--only: unknown transport '" + id +
                            "' (raw_uds raw_spin raw_futex ipc_socket ipc_shm ipc_shm_zc nng "
                            "zmq)");
        o->only.insert(id);
    }
    return o->only.empty() ? BadUsage("--only: give at least one transport") : 0;
}

int ParseOptions(int argc, char **argv, Options *o)
{
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        bool takes_value = a == "--json" || a == "--plot" || a == "--only";
        if (takes_value && i + 1 >= argc)
            return BadUsage(a + " needs a value");
        if (a == "--quick") {
            o->quick = true;
        } else if (a == "--json") {
            o->json = UserPath(argv[++i]);
        } else if (a == "--plot") {
            o->plot = UserPath(argv[++i]);
            if (PlotTerminal(o->plot, 1, 1).empty())
                return BadUsage("--plot " + std::string(argv[i]) +
                                ": the format follows the extension: .png, .svg or .pdf");
        } else if (a == "--only") {
            if (ParseOnly(argv[++i], o) < 0)
                return -EINVAL;
        } else if (a == "--help" || a == "-h") {
            Usage(stdout);
            exit(0);
        } else {
            return BadUsage("unknown argument '" + a + "'");
        }
    }
    return 0;
}

Budget MakeBudget(bool quick)
{
    Budget b;
    b.gap_min_ns = 1 * kMs;
    b.gap_max_ns = 5 * kMs;
    if (quick) {
        // The same 0.1 s warm-up as the full run: a new connection's first
        // pass costs (on this VM ~5 us for each page a process touches
        // first), and with 3 ms the short cases measured that instead of
        // the transport (docs/BENCHMARKS.md, issue 23).
        b = {2000, 25 * kMs, 8, 100 * kMs, b.gap_min_ns, b.gap_max_ns, 10 * kMs, 100 * kMs,
             100 * kMs};
    } else {
        b = {50000, 400 * kMs, 300, 1200 * kMs, b.gap_min_ns, b.gap_max_ns, 400 * kMs,
             100 * kMs, 1000 * kMs};
    }
    return b;
}

// ----------------------------------------------------------- machine

std::string FirstLine(const char *path)
{
    std::ifstream f(path);
    std::string line;
    std::getline(f, line);
    return line;
}

std::string CpuInfoField(const std::string &key)
{
    std::ifstream f("/proc/cpuinfo");
    for (std::string line; std::getline(f, line);) {
        if (line.compare(0, key.size(), key) == 0) {
            size_t colon = line.find(':');
            return colon == std::string::npos ? "" : line.substr(colon + 2);
        }
    }
    return "";
}

std::string Hypervisor()
{
    FILE *p = popen("lscpu 2>/dev/null", "r");
    std::string found;
    char line[512];
    while (p != nullptr && fgets(line, sizeof(line), p) != nullptr) {
        if (strncmp(line, "Hypervisor vendor:", 18) == 0) {
            found = line + 18;
            found.erase(0, found.find_first_not_of(" \t"));
            found.erase(found.find_last_not_of(" \t\n") + 1);
        }
    }
    if (p != nullptr)
        pclose(p);
    if (found.empty() && CpuInfoField("flags").find(" hypervisor") != std::string::npos)
        found = "unknown hypervisor";
    return found.empty() ? "none (bare metal)" : found;
}

Machine DescribeMachine(const Runner &runner)
{
    Machine m;
    m.cpu_model = CpuInfoField("model name");
    m.hypervisor = Hypervisor();
    struct utsname u;
    if (uname(&u) == 0)
        m.kernel = std::string(u.sysname) + " " + u.release;
    m.clocksource = FirstLine("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    m.cpus = get_nprocs();
    struct sysinfo si;
    if (sysinfo(&si) == 0)
        m.mem_gib = (double)si.totalram * si.mem_unit / (1u << 30);
    m.pinned = runner.pinned();
    m.server_cpu = runner.server_cpu();
    m.client_cpu = runner.client_cpu();
    return m;
}

std::string UtcNow()
{
    time_t t = time(nullptr);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// ------------------------------------------------------------ running

struct Bench {
    Runner runner;
    Results results;
    std::vector<std::unique_ptr<Transport>> transports; // parallel to results.transports
    bool progress = false;

    TransportInfo &Info(size_t i) { return results.transports[i]; }
};

// Copies the transport's state (unavailable / disabled) into a row; true
// when the case should run.
bool ShouldRun(Bench &b, size_t ti, RowState *row)
{
    const TransportInfo &info = b.Info(ti);
    if (info.status == Status::kOk)
        return true;
    row->status = info.status;
    row->note = info.note;
    return false;
}

// Records a failed case; a hung transport is not run again (each hang
// costs the watchdog's time).
void RecordFailure(Bench &b, size_t ti, const CaseOutcome &o, RowState *row)
{
    row->status = Status::kError;
    row->note = o.error;
    fprintf(stderr, "ipc_bench: %s: %s\n", b.Info(ti).id.c_str(), o.error.c_str());
    if (o.rc == -ETIMEDOUT) {
        b.Info(ti).status = Status::kError;
        b.Info(ti).note = "skipped after a hang: " + o.error;
    }
}

int WindowFor(const Transport &t, size_t payload)
{
    size_t w = kInFlightBytes / payload;
    w = std::clamp<size_t>(w, 1, kWindowMax);
    return std::min((int)w, t.MaxWindow(payload));
}

double Percentile(const std::vector<uint64_t> &sorted, double q)
{
    // Nearest rank: the smallest sample with at least q of them at or below.
    size_t rank = (size_t)std::ceil(q * (double)sorted.size());
    return (double)sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

void FillLatency(const CaseOutcome &o, LatencyRow *row)
{
    std::vector<uint64_t> s = o.samples;
    std::sort(s.begin(), s.end());
    row->samples = s.size();
    if (s.empty()) {
        row->status = Status::kError;
        row->note = "no samples";
        return;
    }
    double sum = 0;
    for (uint64_t v : s)
        sum += (double)v;
    row->p50_ns = Percentile(s, 0.50);
    row->p90_ns = Percentile(s, 0.90);
    row->p99_ns = Percentile(s, 0.99);
    row->p999_ns = Percentile(s, 0.999);
    row->max_ns = (double)s.back();
    row->mean_ns = sum / (double)s.size();
    row->server_cpu_ns = (double)o.server_cpu_ns / (double)s.size();
    row->client_cpu_ns = (double)o.client_cpu_ns / (double)s.size();
}

void Progress(Bench &b, const std::string &what)
{
    if (b.progress)
        fprintf(stderr, "\r\033[K%s", what.c_str());
}

std::string Size(size_t bytes)
{
    if (bytes >= (1u << 20))
        return std::to_string(bytes >> 20) + " MiB";
    if (bytes >= 1024)
        return std::to_string(bytes >> 10) + " KiB";
    return std::to_string(bytes) + " B";
}

void RunLatency(Bench &b, bool cold)
{
    const Budget &bu = b.results.budget;
    for (size_t payload : b.results.payloads) {
        for (size_t ti = 0; ti < b.transports.size(); ti++) {
            Transport &t = *b.transports[ti];
            LatencyRow row;
            row.transport = t.Id();
            row.payload = payload;
            row.cold = cold;
            if (ShouldRun(b, ti, &row)) {
                Progress(b, std::string("latency ") + (cold ? "cold " : "hot ") + Size(payload) +
                                " " + t.Id());
                CaseSpec spec;
                spec.kind = CaseKind::kLatency;
                spec.cold = cold;
                spec.payload = payload;
                spec.max_iters = cold ? bu.cold_iters : bu.hot_iters;
                spec.duration_ns = cold ? bu.cold_ns : bu.hot_ns;
                spec.warmup_ns = cold ? 0 : bu.warmup_ns;
                spec.gap_min_ns = bu.gap_min_ns;
                spec.gap_max_ns = bu.gap_max_ns;
                CaseOutcome o = b.runner.Run(t, spec);
                if (o.rc < 0)
                    RecordFailure(b, ti, o, &row);
                else
                    FillLatency(o, &row);
            }
            b.results.latency.push_back(std::move(row));
        }
    }
}

void RunThroughput(Bench &b)
{
    for (size_t payload : b.results.payloads) {
        for (int clients : b.results.client_counts) {
            for (size_t ti = 0; ti < b.transports.size(); ti++) {
                Transport &t = *b.transports[ti];
                ThroughputRow row;
                row.transport = t.Id();
                row.payload = payload;
                row.clients = clients;
                row.window = WindowFor(t, payload);
                if (ShouldRun(b, ti, &row)) {
                    Progress(b, "throughput " + Size(payload) + " x" + std::to_string(clients) +
                                    " " + t.Id());
                    CaseSpec spec;
                    spec.kind = CaseKind::kThroughput;
                    spec.payload = payload;
                    spec.clients = clients;
                    spec.window = row.window;
                    spec.max_iters = UINT64_MAX;
                    spec.duration_ns = b.results.budget.tput_ns;
                    spec.warmup_ns = b.results.budget.warmup_ns;
                    CaseOutcome o = b.runner.Run(t, spec);
                    if (o.rc < 0) {
                        RecordFailure(b, ti, o, &row);
                    } else {
                        row.messages = o.messages;
                        row.msgs_per_s = o.msgs_per_s;
                        double n = o.messages ? (double)o.messages : 1.0;
                        row.server_cpu_ns = (double)o.server_cpu_ns / n;
                        row.client_cpu_ns = (double)o.client_cpu_ns / n;
                    }
                }
                b.results.throughput.push_back(std::move(row));
            }
        }
    }
}

void RunIdle(Bench &b)
{
    for (size_t ti = 0; ti < b.transports.size(); ti++) {
        Transport &t = *b.transports[ti];
        IdleRow row;
        row.transport = t.Id();
        if (ShouldRun(b, ti, &row)) {
            Progress(b, std::string("idle ") + t.Id());
            CaseSpec spec;
            spec.kind = CaseKind::kIdle;
            spec.payload = b.results.payloads.front();
            spec.duration_ns = b.results.budget.idle_ns;
            CaseOutcome o = b.runner.Run(t, spec);
            if (o.rc < 0) {
                RecordFailure(b, ti, o, &row);
            } else {
                row.seconds = (double)o.wall_ns / 1e9;
                row.server_pct = 100.0 * (double)o.server_cpu_ns / (double)o.wall_ns;
                row.client_pct = 100.0 * (double)o.client_cpu_ns / (double)spec.duration_ns;
            }
        }
        b.results.idle.push_back(std::move(row));
    }
}

void SelectTransports(Bench &b, const Options &o)
{
    for (auto &t : MakeTransports()) {
        if (!o.only.empty() && o.only.count(t->Id()) == 0)
            continue;
        TransportInfo info;
        info.id = t->Id();
        info.label = t->Label();
        info.note = t->Unavailable();
        if (!info.note.empty())
            info.status = Status::kUnavailable;
        b.results.transports.push_back(info);
        b.transports.push_back(std::move(t));
    }
}

bool AnyError(const Results &r)
{
    for (const auto &x : r.latency)
        if (x.status == Status::kError)
            return true;
    for (const auto &x : r.throughput)
        if (x.status == Status::kError)
            return true;
    for (const auto &x : r.idle)
        if (x.status == Status::kError)
            return true;
    return false;
}

int Main(int argc, char **argv)
{
    Options opt;
    if (ParseOptions(argc, argv, &opt) < 0)
        return 2;
    Bench b;
    std::string err;
    if (b.runner.Init(&err) < 0) {
        fprintf(stderr, "ipc_bench: %s\n", err.c_str());
        return 1;
    }
    b.progress = isatty(2);
    Results &r = b.results;
    r.quick = opt.quick;
    r.started = UtcNow();
    r.machine = DescribeMachine(b.runner);
    r.budget = MakeBudget(opt.quick);
    // Quick mode keeps every transport, client count and case kind, with the
    // smallest and a large payload: the smoke test exercises all the machinery.
    if (opt.quick)
        r.payloads = {64, 64 << 10};
    else
        r.payloads = {64, 1024, 4096, 64 << 10, 1 << 20};
    r.client_counts = {1, 2, 4, 8};
    r.window_max = kWindowMax;
    SelectTransports(b, opt);
    if (b.transports.empty()) {
        fprintf(stderr, "ipc_bench: --only matched no transport\n");
        return 2;
    }
    uint64_t t0 = NowNs();
    RunLatency(b, false);
    RunLatency(b, true);
    RunThroughput(b);
    RunIdle(b);
    Progress(b, "");
    r.wall_s = (double)(NowNs() - t0) / 1e9;
    ComputeRatios(&r);
    PrintTable(r);
    int rc = AnyError(r) ? 1 : 0;
    if (!opt.json.empty() && WriteJson(r, opt.json) < 0) {
        fprintf(stderr, "ipc_bench: cannot write %s: %s\n", opt.json.c_str(), strerror(errno));
        rc = 1;
    }
    if (!opt.plot.empty() && WritePlot(r, opt.plot, &err) < 0) {
        fprintf(stderr, "ipc_bench: plot: %s\n", err.c_str());
        rc = 1;
    }
    return rc;
}

} // namespace
} // namespace ipc_bench

extern "C" int ipc_bench_main(int argc, char **argv)
{
    return ipc_bench::Main(argc, argv);
}
