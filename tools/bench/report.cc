// Turns Results into the terminal table, JSON and a gnuplot figure.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <string>

#include "tools/bench/results.h"

namespace ipc_bench {

const char *StatusName(Status s)
{
    switch (s) {
    case Status::kOk:
        return "ok";
    case Status::kUnavailable:
        return "unavailable";
    case Status::kError:
        return "error";
    }
    return "error";
}

namespace {

constexpr size_t kRatioPayload = 64;

const LatencyRow *FindLatency(const Results &r, const char *id, size_t payload, bool cold)
{
    for (const auto &x : r.latency)
        if (x.transport == id && x.payload == payload && x.cold == cold &&
            x.status == Status::kOk)
            return &x;
    return nullptr;
}

const ThroughputRow *FindThroughput(const Results &r, const char *id, size_t payload,
                                    int clients)
{
    for (const auto &x : r.throughput)
        if (x.transport == id && x.payload == payload && x.clients == clients &&
            x.status == Status::kOk)
            return &x;
    return nullptr;
}

const IdleRow *FindIdle(const Results &r, const char *id)
{
    for (const auto &x : r.idle)
        if (x.transport == id && x.status == Status::kOk)
            return &x;
    return nullptr;
}

double P50Ratio(const Results &r, const char *num, const char *den, bool cold,
                size_t payload = kRatioPayload)
{
    const LatencyRow *a = FindLatency(r, num, payload, cold);
    const LatencyRow *b = FindLatency(r, den, payload, cold);
    return a && b && b->p50_ns > 0 ? a->p50_ns / b->p50_ns : NAN;
}

void Add(Results *r, const std::string &name, const std::string &detail, double value,
         double target, bool at_most)
{
    r->ratios.push_back({name, detail, value, target, at_most});
}

std::string Label(const Results &r, const std::string &id)
{
    for (const auto &t : r.transports)
        if (t.id == id)
            return t.label;
    return id;
}

std::string Size(size_t bytes)
{
    if (bytes >= (1u << 20))
        return std::to_string(bytes >> 20) + " MiB";
    if (bytes >= 1024)
        return std::to_string(bytes >> 10) + " KiB";
    return std::to_string(bytes) + " B";
}

// A number, or the row's status when it has none.
std::string Cell(double v, const RowState &row, const char *fmt = "%.2f")
{
    if (row.status != Status::kOk)
        return row.status == Status::kUnavailable ? "n/a" : "ERR";
    char buf[32];
    snprintf(buf, sizeof(buf), fmt, v);
    return buf;
}

void PrintHeader(const Results &r)
{
    const Machine &m = r.machine;
    printf("ipc bench: %s run, %.0f s, started %s\n", r.quick ? "quick" : "full", r.wall_s,
           r.started.c_str());
    printf("machine:  %s, %d CPUs, hypervisor %s, %s, clocksource %s, %.1f GiB\n",
           m.cpu_model.c_str(), m.cpus, m.hypervisor.c_str(), m.kernel.c_str(),
           m.clocksource.c_str(), m.mem_gib);
    if (m.pinned)
        printf("pinning:  server on CPU %d, every client on CPU %d (sched_setaffinity)\n",
               m.server_cpu, m.client_cpu);
    else
        printf("pinning:  none (fewer than 2 CPUs allowed): numbers mix both ends on one CPU\n");
    const Budget &b = r.budget;
    printf("budget:   hot <= %llu iters / %llu ms, cold <= %llu samples / %llu ms with a "
           "%llu-%llu ms idle gap, throughput %llu ms, idle %llu ms, per case\n",
           (unsigned long long)b.hot_iters, (unsigned long long)(b.hot_ns / 1000000),
           (unsigned long long)b.cold_iters, (unsigned long long)(b.cold_ns / 1000000),
           (unsigned long long)(b.gap_min_ns / 1000000),
           (unsigned long long)(b.gap_max_ns / 1000000), (unsigned long long)(b.tput_ns / 1000000),
           (unsigned long long)(b.idle_ns / 1000000));
    for (const auto &t : r.transports)
        if (t.status != Status::kOk)
            printf("note:     %s %s: %s\n", t.label.c_str(), StatusName(t.status), t.note.c_str());
}

void PrintLatency(const Results &r, bool cold)
{
    printf("\nRound-trip latency, %s, us (CPU per round trip, us)\n",
           cold ? "cold (1-5 ms idle before each request)" : "hot (back to back)");
    printf("%-8s %-18s %6s %8s %8s %8s %9s %8s %8s\n", "payload", "transport", "n", "p50", "p99",
           "p99.9", "max", "srv cpu", "cli cpu");
    size_t last = 0;
    for (const auto &x : r.latency) {
        if (x.cold != cold)
            continue;
        std::string size = x.payload != last ? Size(x.payload) : "";
        last = x.payload;
        printf("%-8s %-18s %6llu %8s %8s %8s %9s %8s %8s\n", size.c_str(),
               Label(r, x.transport).c_str(), (unsigned long long)x.samples,
               Cell(x.p50_ns / 1e3, x).c_str(), Cell(x.p99_ns / 1e3, x).c_str(),
               Cell(x.p999_ns / 1e3, x).c_str(), Cell(x.max_ns / 1e3, x, "%.1f").c_str(),
               Cell(x.server_cpu_ns / 1e3, x).c_str(), Cell(x.client_cpu_ns / 1e3, x).c_str());
    }
}

void PrintThroughput(const Results &r)
{
    printf("\nPipelined throughput, k msg/s summed over client processes "
           "(win = requests in flight per client)\n");
    printf("%-8s %-18s %4s", "payload", "transport", "win");
    for (int c : r.client_counts)
        printf(" %7d cl", c);
    printf("  %9s %8s %8s\n", "MB/s 1cl", "srv cpu", "cli cpu");
    for (size_t payload : r.payloads) {
        bool first_of_payload = true;
        for (const auto &t : r.transports) {
            const ThroughputRow *one = nullptr;
            std::string cells;
            for (const auto &x : r.throughput) {
                if (x.transport != t.id || x.payload != payload)
                    continue;
                one = one ? one : &x;
                char buf[24];
                snprintf(buf, sizeof(buf), " %10s", Cell(x.msgs_per_s / 1e3, x, "%.1f").c_str());
                cells += buf;
            }
            if (one == nullptr)
                continue;
            printf("%-8s %-18s %4d%s  %9s %8s %8s\n",
                   first_of_payload ? Size(payload).c_str() : "", t.label.c_str(), one->window,
                   cells.c_str(),
                   Cell(one->msgs_per_s * (double)payload / 1e6, *one, "%.0f").c_str(),
                   Cell(one->server_cpu_ns / 1e3, *one).c_str(),
                   Cell(one->client_cpu_ns / 1e3, *one).c_str());
            first_of_payload = false;
        }
    }
    printf("(MB/s, srv cpu, cli cpu: with 1 client; cpu in us per message)\n");
}

void PrintIdle(const Results &r)
{
    printf("\nIdle CPU: server + one connected idle client, %% of one CPU\n");
    printf("%-18s %8s %8s %8s\n", "transport", "server", "client", "total");
    for (const auto &x : r.idle)
        printf("%-18s %8s %8s %8s%s\n", Label(r, x.transport).c_str(),
               Cell(x.server_pct, x, "%.3f").c_str(), Cell(x.client_pct, x, "%.3f").c_str(),
               Cell(x.server_pct + x.client_pct, x, "%.3f").c_str(),
               x.status == Status::kOk && x.server_pct + x.client_pct >= 1.0 ? "  (>= 1 %)" : "");
}

void PrintRatios(const Results &r)
{
    printf("\nRatios in this run (64 B; absolute times drift between runs, ratios do not)\n");
    for (const auto &x : r.ratios) {
        std::string verdict = "n/a (operand unavailable)";
        char value[32] = "-";
        if (!std::isnan(x.value)) {
            bool met = x.at_most ? x.value <= x.target : x.value >= x.target;
            verdict = met ? "met" : "MISSED";
            snprintf(value, sizeof(value), "%.3f", x.value);
        }
        printf("  %-44s %9s  target %s %-6g %s\n", x.name.c_str(), value,
               x.at_most ? "<=" : ">=", x.target, verdict.c_str());
    }
}

// ------------------------------------------------------------------ JSON

std::string Quote(const std::string &s)
{
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += (char)c;
        } else if (c < 0x20) {
            char buf[8];
            snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
        } else {
            out += (char)c;
        }
    }
    return out + "\"";
}

// JSON has no NaN or infinity: those become null.
std::string Num(double v)
{
    if (!std::isfinite(v))
        return "null";
    char buf[40];
    snprintf(buf, sizeof(buf), "%.6g", v);
    return buf;
}

std::string StateFields(const RowState &s)
{
    return "\"status\": " + Quote(StatusName(s.status)) + ", \"note\": " + Quote(s.note);
}

void JsonMachine(FILE *f, const Results &r)
{
    const Machine &m = r.machine;
    const Budget &b = r.budget;
    fprintf(f, "  \"schema\": 1,\n  \"quick\": %s,\n  \"started\": %s,\n  \"wall_s\": %s,\n",
            r.quick ? "true" : "false", Quote(r.started).c_str(), Num(r.wall_s).c_str());
    fprintf(f,
            "  \"machine\": {\"cpu_model\": %s, \"cpus\": %d, \"hypervisor\": %s, \"kernel\": %s, "
            "\"clocksource\": %s, \"mem_gib\": %s, \"pinned\": %s, \"server_cpu\": %d, "
            "\"client_cpu\": %d},\n",
            Quote(m.cpu_model).c_str(), m.cpus, Quote(m.hypervisor).c_str(),
            Quote(m.kernel).c_str(), Quote(m.clocksource).c_str(), Num(m.mem_gib).c_str(),
            m.pinned ? "true" : "false", m.server_cpu, m.client_cpu);
    fprintf(f,
            "  \"budget\": {\"hot_iters\": %llu, \"hot_ms\": %s, \"cold_iters\": %llu, "
            "\"cold_ms\": %s, \"gap_min_ms\": %s, \"gap_max_ms\": %s, \"throughput_ms\": %s, "
            "\"warmup_ms\": %s, \"idle_ms\": %s, \"window_max\": %d},\n",
            (unsigned long long)b.hot_iters, Num(b.hot_ns / 1e6).c_str(),
            (unsigned long long)b.cold_iters, Num(b.cold_ns / 1e6).c_str(),
            Num(b.gap_min_ns / 1e6).c_str(), Num(b.gap_max_ns / 1e6).c_str(),
            Num(b.tput_ns / 1e6).c_str(), Num(b.warmup_ns / 1e6).c_str(),
            Num(b.idle_ns / 1e6).c_str(), r.window_max);
    std::string payloads, clients;
    for (size_t p : r.payloads)
        payloads += (payloads.empty() ? "" : ", ") + std::to_string(p);
    for (int c : r.client_counts)
        clients += (clients.empty() ? "" : ", ") + std::to_string(c);
    fprintf(f, "  \"payloads\": [%s],\n  \"client_counts\": [%s],\n", payloads.c_str(),
            clients.c_str());
    fprintf(f, "  \"transports\": [\n");
    for (size_t i = 0; i < r.transports.size(); i++) {
        const auto &t = r.transports[i];
        RowState state{t.status, t.note};
        fprintf(f, "    {\"id\": %s, \"label\": %s, %s}%s\n", Quote(t.id).c_str(),
                Quote(t.label).c_str(), StateFields(state).c_str(),
                i + 1 < r.transports.size() ? "," : "");
    }
    fprintf(f, "  ],\n");
}

void JsonRows(FILE *f, const Results &r)
{
    fprintf(f, "  \"latency\": [\n");
    for (size_t i = 0; i < r.latency.size(); i++) {
        const auto &x = r.latency[i];
        fprintf(f,
                "    {\"transport\": %s, \"payload\": %zu, \"mode\": %s, %s, \"samples\": %llu, "
                "\"p50_ns\": %s, \"p99_ns\": %s, \"p999_ns\": %s, \"max_ns\": %s, "
                "\"mean_ns\": %s, \"server_cpu_ns_per_msg\": %s, "
                "\"client_cpu_ns_per_msg\": %s}%s\n",
                Quote(x.transport).c_str(), x.payload, x.cold ? "\"cold\"" : "\"hot\"",
                StateFields(x).c_str(), (unsigned long long)x.samples, Num(x.p50_ns).c_str(),
                Num(x.p99_ns).c_str(), Num(x.p999_ns).c_str(), Num(x.max_ns).c_str(),
                Num(x.mean_ns).c_str(), Num(x.server_cpu_ns).c_str(),
                Num(x.client_cpu_ns).c_str(), i + 1 < r.latency.size() ? "," : "");
    }
    fprintf(f, "  ],\n  \"throughput\": [\n");
    for (size_t i = 0; i < r.throughput.size(); i++) {
        const auto &x = r.throughput[i];
        fprintf(f,
                "    {\"transport\": %s, \"payload\": %zu, \"clients\": %d, \"window\": %d, %s, "
                "\"messages\": %llu, \"msgs_per_s\": %s, \"server_cpu_ns_per_msg\": %s, "
                "\"client_cpu_ns_per_msg\": %s}%s\n",
                Quote(x.transport).c_str(), x.payload, x.clients, x.window,
                StateFields(x).c_str(), (unsigned long long)x.messages, Num(x.msgs_per_s).c_str(),
                Num(x.server_cpu_ns).c_str(), Num(x.client_cpu_ns).c_str(),
                i + 1 < r.throughput.size() ? "," : "");
    }
    fprintf(f, "  ],\n  \"idle\": [\n");
    for (size_t i = 0; i < r.idle.size(); i++) {
        const auto &x = r.idle[i];
        fprintf(f,
                "    {\"transport\": %s, %s, \"seconds\": %s, \"server_cpu_pct\": %s, "
                "\"client_cpu_pct\": %s}%s\n",
                Quote(x.transport).c_str(), StateFields(x).c_str(), Num(x.seconds).c_str(),
                Num(x.server_pct).c_str(), Num(x.client_pct).c_str(),
                i + 1 < r.idle.size() ? "," : "");
    }
    fprintf(f, "  ],\n");
}

void JsonRatios(FILE *f, const Results &r)
{
    fprintf(f, "  \"ratios\": [\n");
    for (size_t i = 0; i < r.ratios.size(); i++) {
        const auto &x = r.ratios[i];
        std::string met = "null";
        if (!std::isnan(x.value))
            met = (x.at_most ? x.value <= x.target : x.value >= x.target) ? "true" : "false";
        fprintf(f,
                "    {\"name\": %s, \"detail\": %s, \"value\": %s, \"target\": %s, "
                "\"bound\": %s, \"met\": %s}%s\n",
                Quote(x.name).c_str(), Quote(x.detail).c_str(), Num(x.value).c_str(),
                Num(x.target).c_str(), x.at_most ? "\"max\"" : "\"min\"", met.c_str(),
                i + 1 < r.ratios.size() ? "," : "");
    }
    fprintf(f, "  ]\n");
}

// --------------------------------------------------------------- gnuplot

// Up to `points` (latency us, fraction at or below) pairs of a sorted set.
void CdfBlock(FILE *f, const std::vector<uint64_t> &sorted, size_t points)
{
    size_t n = sorted.size();
    size_t step = n > points ? n / points : 1;
    for (size_t i = 0; i < n; i += step)
        fprintf(f, "%.4f %.6f\n", (double)sorted[i] / 1e3, (double)(i + 1) / (double)n);
    fprintf(f, "%.4f 1.0\n", (double)sorted[n - 1] / 1e3);
}

std::string Terminal(const std::string &path)
{
    bool svg = path.size() >= 4 && path.compare(path.size() - 4, 4, ".svg") == 0;
    return svg ? "set terminal svg size 1400,560 dynamic font 'sans,11'"
               : "set terminal pngcairo size 1400,560 font 'sans,10'";
}

int WriteScript(FILE *f, const Results &r, const std::string &out)
{
    fprintf(f, "%s\nset output %s\nset multiplot layout 1,2 title %s\n", Terminal(out).c_str(),
            Quote(out).c_str(),
            Quote("ipc bench, " + r.machine.cpu_model + ", " + std::to_string(r.machine.cpus) +
                  " CPUs, " + r.machine.kernel + (r.quick ? " (quick run)" : ""))
                .c_str());
    std::string cdf, tput;
    int n = 0;
    for (const auto &t : r.transports) {
        const LatencyRow *l = FindLatency(r, t.id.c_str(), r.payloads.front(), false);
        if (l != nullptr && !l->sorted.empty()) {
            fprintf(f, "$cdf%d << EOD\n", n);
            CdfBlock(f, l->sorted, 800);
            fprintf(f, "EOD\n");
            cdf += (cdf.empty() ? "plot " : ", ") + ("$cdf" + std::to_string(n)) +
                   " using 1:2 with lines lw 2 title " + Quote(t.label);
        }
        std::string rows;
        for (int c : r.client_counts)
            if (const ThroughputRow *x = FindThroughput(r, t.id.c_str(), r.payloads.front(), c))
                rows += std::to_string(c) + " " + Num(x->msgs_per_s) + "\n";
        if (!rows.empty()) {
            fprintf(f, "$tput%d << EOD\n%sEOD\n", n, rows.c_str());
            tput += (tput.empty() ? "plot " : ", ") + ("$tput" + std::to_string(n)) +
                    " using 1:2 with linespoints lw 2 pt 7 title " + Quote(t.label);
        }
        n++;
    }
    fprintf(f,
            "set title 'Round-trip latency CDF, hot, %s'\nset logscale x\nset xlabel 'round trip "
            "(us, log)'\nset ylabel 'fraction of requests'\nset yrange [0:1]\nset grid\n"
            "set key bottom right\n%s\n",
            Size(r.payloads.front()).c_str(), cdf.empty() ? "plot 0 notitle" : cdf.c_str());
    fprintf(f,
            "unset logscale\nset title 'Pipelined throughput vs clients, %s'\nset logscale x 2\n"
            "set logscale y\nset xlabel 'client processes'\nset ylabel 'messages / s (log)'\n"
            "set autoscale y\nset xrange [0.8:10]\nset xtics (1, 2, 4, 8)\nset key top right\n"
            "%s\nunset multiplot\n",
            Size(r.payloads.front()).c_str(), tput.empty() ? "plot 0 notitle" : tput.c_str());
    return ferror(f) ? -EIO : 0;
}

} // namespace

void ComputeRatios(Results *r)
{
    Add(r, "shm hot p50 / raw spin hot p50", "ipc_shm vs raw_spin, hot",
        P50Ratio(*r, "ipc_shm", "raw_spin", false), 1.2, true);
    Add(r, "shm cold p50 / raw futex cold p50", "ipc_shm vs raw_futex, cold",
        P50Ratio(*r, "ipc_shm", "raw_futex", true), 1.15, true);
    Add(r, "socket hot p50 / raw UDS hot p50", "ipc_socket vs raw_uds, hot",
        P50Ratio(*r, "ipc_socket", "raw_uds", false), 1.10, true);
    const ThroughputRow *shm = FindThroughput(*r, "ipc_shm", kRatioPayload, 1);
    const ThroughputRow *spin = FindThroughput(*r, "raw_spin", kRatioPayload, 1);
    Add(r, "shm pipelined / raw spin throughput", "1 client, same window",
        shm && spin && spin->msgs_per_s > 0 ? shm->msgs_per_s / spin->msgs_per_s : NAN, 0.8,
        false);
    for (const char *id : {"ipc_shm", "ipc_socket"}) {
        const IdleRow *x = FindIdle(*r, id);
        Add(r, std::string(id == std::string("ipc_shm") ? "shm" : "socket") + " idle CPU, %",
            "server + connected idle client, % of one CPU",
            x ? x->server_pct + x->client_pct : NAN, 1.0, true);
    }
    Add(r, "speedup vs nng, socket (hot p50)", "nng p50 / ipc_socket p50",
        P50Ratio(*r, "nng", "ipc_socket", false), 5, false);
    Add(r, "speedup vs ZeroMQ, socket (hot p50)", "zmq p50 / ipc_socket p50",
        P50Ratio(*r, "zmq", "ipc_socket", false), 5, false);
    Add(r, "speedup vs nng, shm (hot p50)", "nng p50 / ipc_shm p50",
        P50Ratio(*r, "nng", "ipc_shm", false), 50, false);
    Add(r, "speedup vs ZeroMQ, shm (hot p50)", "zmq p50 / ipc_shm p50",
        P50Ratio(*r, "zmq", "ipc_shm", false), 50, false);
    // Zero-copy against copying, for the large payloads of this run.
    for (size_t payload : r->payloads) {
        if (payload < (64u << 10))
            continue;
        Add(r, "shm zero-copy / copying hot p50, " + Size(payload),
            "ipc_shm_zc vs ipc_shm, hot", P50Ratio(*r, "ipc_shm_zc", "ipc_shm", false, payload),
            1.0, true);
    }
}

void PrintTable(const Results &r)
{
    PrintHeader(r);
    PrintLatency(r, false);
    PrintLatency(r, true);
    PrintThroughput(r);
    PrintIdle(r);
    PrintRatios(r);
    fflush(stdout);
}

int WriteJson(const Results &r, const std::string &path)
{
    FILE *f = fopen(path.c_str(), "w");
    if (f == nullptr)
        return -errno;
    fprintf(f, "{\n");
    JsonMachine(f, r);
    JsonRows(f, r);
    JsonRatios(f, r);
    fprintf(f, "}\n");
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad)
        return -EIO;
    return 0;
}

int WritePlot(const Results &r, const std::string &path, std::string *err)
{
    char script[] = "/tmp/ipcbench_plotXXXXXX";
    int fd = mkstemp(script);
    if (fd < 0) {
        *err = std::string("mkstemp: ") + strerror(errno);
        return -errno;
    }
    FILE *f = fdopen(fd, "w");
    int rc = f ? WriteScript(f, r, path) : -errno;
    if (f != nullptr && fclose(f) != 0)
        rc = -EIO;
    if (rc < 0) {
        *err = "cannot write the gnuplot script";
        unlink(script);
        return rc;
    }
    std::string cmd = std::string("gnuplot ") + script + " 2>&1";
    int st = system(cmd.c_str());
    unlink(script);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        *err = "gnuplot failed (is gnuplot installed? tools/setup.sh installs gnuplot-nox)";
        return -EIO;
    }
    printf("plot written to %s\n", path.c_str());
    return 0;
}

} // namespace ipc_bench
