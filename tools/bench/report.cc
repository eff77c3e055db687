// Turns Results into the terminal table, JSON and a gnuplot figure.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

// num's latency over den's: a percentile (p50 unless named) of one case each.
double LatencyRatio(const Results &r, const char *num, const char *den, bool cold,
                    size_t payload = kRatioPayload, double LatencyRow::*q = &LatencyRow::p50_ns)
{
    const LatencyRow *a = FindLatency(r, num, payload, cold);
    const LatencyRow *b = FindLatency(r, den, payload, cold);
    return a && b && b->*q > 0 ? a->*q / b->*q : NAN;
}

// One client, the same window: num's messages per second over den's.
double TputRatio(const Results &r, const char *num, const char *den, size_t payload)
{
    const ThroughputRow *a = FindThroughput(r, num, payload, 1);
    const ThroughputRow *b = FindThroughput(r, den, payload, 1);
    return a && b && b->msgs_per_s > 0 ? a->msgs_per_s / b->msgs_per_s : NAN;
}

// The lowest throughput of id over the run's client counts, as a share of
// its one-client throughput: what more clients cost at worst. (Gaining is
// no fault: the raw spin limit itself gains with more requests in flight.)
double ClientFloor(const Results &r, const char *id, size_t payload)
{
    const ThroughputRow *one = FindThroughput(r, id, payload, 1);
    if (one == nullptr || one->msgs_per_s <= 0)
        return NAN;
    double lo = INFINITY;
    for (int c : r.client_counts) {
        const ThroughputRow *x = FindThroughput(r, id, payload, c);
        if (x == nullptr)
            return NAN;
        lo = std::min(lo, x->msgs_per_s);
    }
    return lo / one->msgs_per_s;
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
           "%llu-%llu ms idle gap, throughput %llu ms, idle %llu ms, per case, each hot and "
           "throughput case after %llu ms of warm-up\n",
           (unsigned long long)b.hot_iters, (unsigned long long)(b.hot_ns / 1000000),
           (unsigned long long)b.cold_iters, (unsigned long long)(b.cold_ns / 1000000),
           (unsigned long long)(b.gap_min_ns / 1000000),
           (unsigned long long)(b.gap_max_ns / 1000000), (unsigned long long)(b.tput_ns / 1000000),
           (unsigned long long)(b.idle_ns / 1000000), (unsigned long long)(b.warmup_ns / 1000000));
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
    printf("\nRatios in this run (64 B unless named; absolute times drift between runs, ratios do not)\n");
    for (const auto &x : r.ratios) {
        std::string verdict = "n/a (operand unavailable)";
        char value[32] = "-";
        if (!std::isnan(x.value)) {
            bool met = x.at_most ? x.value <= x.target : x.value >= x.target;
            verdict = met ? "met" : "MISSED";
            snprintf(value, sizeof(value), "%.3f", x.value);
        }
        printf("  %-50s %9s  target %s %-6g %s\n", x.name.c_str(), value,
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
                "\"p50_ns\": %s, \"p90_ns\": %s, \"p99_ns\": %s, \"p999_ns\": %s, \"max_ns\": %s, "
                "\"mean_ns\": %s, \"server_cpu_ns_per_msg\": %s, "
                "\"client_cpu_ns_per_msg\": %s}%s\n",
                Quote(x.transport).c_str(), x.payload, x.cold ? "\"cold\"" : "\"hot\"",
                StateFields(x).c_str(), (unsigned long long)x.samples, Num(x.p50_ns).c_str(),
                Num(x.p90_ns).c_str(), Num(x.p99_ns).c_str(), Num(x.p999_ns).c_str(), Num(x.max_ns).c_str(),
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

// One look per transport whatever subset a run has, so that two plots
// compare: ours solid, the raw kernel limits dashed, the peers dotted.
// Colours of the Okabe-Ito set (told apart with most colour blindness);
// no yellow, which vanishes on white.
struct Look {
    const char *id, *rgb;
    int dash, point;
};

constexpr Look kLooks[] = {
    {"ipc_socket", "#0072b2", 1, 7}, {"ipc_shm", "#d55e00", 1, 5},
    {"ipc_shm_zc", "#cc79a7", 1, 9}, {"raw_uds", "#56b4e9", 2, 6},
    {"raw_spin", "#e69f00", 2, 4},   {"raw_futex", "#8c564b", 2, 8},
    {"nng", "#009e73", 3, 12},       {"zmq", "#000000", 3, 13},
};

std::string Style(const std::string &id)
{
    Look l = {"", "#808080", 1, 1};
    for (const Look &x : kLooks)
        if (id == x.id)
            l = x;
    char buf[96];
    snprintf(buf, sizeof(buf), "lc rgb '%s' dt %d pt %d lw 2 ps 1.1", l.rgb, l.dash, l.point);
    return buf;
}

// Percentiles on a log axis of 1/(1-q): p50 at 2, p90 at 10, p99 at 100,
// p99.9 at 1000, so each nine gets the same room.
std::string PercentileBlock(const LatencyRow &x)
{
    char buf[160];
    snprintf(buf, sizeof(buf), "2 %.4f\n10 %.4f\n100 %.4f\n1000 %.4f\n", x.p50_ns / 1e3,
             x.p90_ns / 1e3, x.p99_ns / 1e3, x.p999_ns / 1e3);
    return buf;
}

struct Panel {
    std::string title, data, plot; // data: inline blocks; plot: the plot command's list
    double lo = INFINITY, hi = 0;   // y extent of the positive values
};

void AddCurve(Panel *p, const std::string &block, const std::string &rows,
              const std::string &id, const char *with)
{
    double x, y;
    for (const char *line = rows.c_str(); sscanf(line, "%lf %lf", &x, &y) == 2;) {
        if (y > 0)
            p->lo = std::min(p->lo, y), p->hi = std::max(p->hi, y);
        line = strchr(line, '\n');
        if (line == nullptr)
            break;
        line++;
    }
    p->data += block + " << EOD\n" + rows + "EOD\n";
    p->plot += (p->plot.empty() ? "" : ", ") + block + " using 1:2 with " + with + " " +
               Style(id) + " notitle";
}

Panel LatencyPanel(const Results &r, size_t pi, bool cold)
{
    Panel p;
    size_t payload = r.payloads[pi];
    p.title = std::string(cold ? "cold" : "hot") + " round trip, " + Size(payload);
    for (size_t ti = 0; ti < r.transports.size(); ti++) {
        const std::string &id = r.transports[ti].id;
        const LatencyRow *x = FindLatency(r, id.c_str(), payload, cold);
        if (x != nullptr && x->samples > 0)
            AddCurve(&p, "$l" + std::to_string(cold) + "_" + std::to_string(pi) + "_" +
                             std::to_string(ti),
                     PercentileBlock(*x), id, "linespoints");
    }
    return p;
}

Panel ThroughputPanel(const Results &r, size_t pi)
{
    Panel p;
    size_t payload = r.payloads[pi];
    p.title = "pipelined throughput, " + Size(payload);
    for (size_t ti = 0; ti < r.transports.size(); ti++) {
        const std::string &id = r.transports[ti].id;
        std::string rows;
        for (int c : r.client_counts)
            if (const ThroughputRow *x = FindThroughput(r, id.c_str(), payload, c))
                rows += std::to_string(c) + " " + Num(x->msgs_per_s) + "\n";
        if (!rows.empty())
            AddCurve(&p, "$t" + std::to_string(pi) + "_" + std::to_string(ti), rows, id,
                     "linespoints");
    }
    return p;
}

void DrawPanel(FILE *f, const Panel &p, double x, double y, double w, double h)
{
    fprintf(f, "%s", p.data.c_str());
    fprintf(f, "set origin %.4f,%.4f\nset size %.4f,%.4f\nset title %s\n", x, y, w, h,
            Quote(p.title).c_str());
    // Whole decades, so that every panel has labelled tics at both ends
    // (a hair wider: gnuplot drops a tic it rounds to just outside).
    if (p.hi > 0)
        fprintf(f, "set yrange [%g:%g]\n", 0.999 * std::pow(10, std::floor(std::log10(p.lo))),
                1.001 * std::pow(10, std::ceil(std::log10(p.hi) + 1e-9)));
    else
        fprintf(f, "set yrange [1:10]\n");
    if (p.plot.empty())
        fprintf(f, "set label 1 'no data' at graph 0.5,0.5 center\nplot 1 notitle lc rgb "
                   "'white'\nunset label 1\n");
    else
        fprintf(f, "plot %s\n", p.plot.c_str());
}

// The legend in a strip of its own under the panels: it never covers data.
void DrawLegend(FILE *f, const Results &r, double h)
{
    std::string items;
    for (const auto &t : r.transports) {
        bool has = false;
        for (const auto &x : r.latency)
            has |= x.transport == t.id && x.status == Status::kOk;
        for (const auto &x : r.throughput)
            has |= x.transport == t.id && x.status == Status::kOk;
        if (has)
            items += (items.empty() ? "" : ", ") + std::string("2 with linespoints ") +
                     Style(t.id) + " title " + Quote(t.label);
    }
    fprintf(f,
            "set origin 0,0\nset size 1,%.4f\nunset title\nunset border\nunset tics\n"
            "unset xlabel\nunset ylabel\nunset logscale\nunset grid\nset xrange [0:1]\n"
            "set yrange [0:1]\nset key horizontal center center samplen 4 spacing 1.2 "
            "width 1\n",
            h);
    if (items.empty())
        fprintf(f, "set label 1 'no transport produced data' at graph 0.5,0.5 center\n"
                   "plot 1 notitle lc rgb 'white'\n");
    else
        fprintf(f, "plot %s\n", items.c_str());
}

int WriteScript(FILE *f, const Results &r, const std::string &out)
{
    // Columns: the payload sizes. Rows: hot latency, cold latency,
    // throughput against clients. Then the legend strip.
    const size_t cols = r.payloads.size();
    const double top = 0.05, legend = 0.075, row = (1.0 - top - legend) / 3, col = 1.0 / cols;
    int width = (int)std::max<size_t>(1000, 300 * cols + 100);
    fprintf(f, "%s\nset output %s\n", PlotTerminal(out, width, 1000).c_str(),
            Quote(out).c_str());
    fprintf(f, "set multiplot title %s\n",
            Quote("ipc bench: " + r.machine.cpu_model + ", " + std::to_string(r.machine.cpus) +
                  " CPUs, " + r.machine.kernel + (r.quick ? " (quick run)" : "") + ", " +
                  r.started)
                .c_str());
    fprintf(f, "unset key\nset grid lc rgb '#d0d0d0'\nset format x '%%.10g'\nset format y '%%.10g'\n"
               "set tmargin 2.5\nset mytics 10\n");
    // Latency: percentile against round-trip time, both log.
    fprintf(f, "set logscale xy\nset xrange [1.6:1300]\n"
               "set xtics ('p50' 2, 'p90' 10, 'p99' 100, 'p99.9' 1000)\nset autoscale y\n"
               "set ytics ('10 ns' 0.01, '100 ns' 0.1, '1 us' 1, '10 us' 10, '100 us' 100, "
               "'1 ms' 1e3, '10 ms' 1e4, '100 ms' 1e5, '1 s' 1e6, '10 s' 1e7, '100 s' 1e8)\n");
    for (int cold = 0; cold <= 1; cold++) {
        // The tics name the percentiles; one axis label, under the lower row.
        fprintf(f, "set xlabel %s\n", cold ? "'percentile'" : "''");
        for (size_t pi = 0; pi < cols; pi++) {
            fprintf(f, "set ylabel %s\n", pi == 0 ? "'round trip'" : "''");
            DrawPanel(f, LatencyPanel(r, pi, cold), pi * col, legend + (2 - cold) * row, col,
                      row);
        }
    }
    // Throughput: messages per second against client processes, both log.
    fprintf(f, "set logscale x 2\nset logscale y 10\nset xrange [0.8:10]\nset xtics (1, 2, 4, "
               "8)\nset autoscale y\nset xlabel 'client processes'\n"
               "set ytics ('1' 1, '10' 10, '100' 100, '1k' 1e3, '10k' 1e4, '100k' 1e5, "
               "'1M' 1e6, '10M' 1e7, '100M' 1e8)\n");
    for (size_t pi = 0; pi < cols; pi++) {
        fprintf(f, "set ylabel %s\n", pi == 0 ? "'messages / s (all clients)'" : "''");
        DrawPanel(f, ThroughputPanel(r, pi), pi * col, legend, col, row);
    }
    DrawLegend(f, r, legend);
    fprintf(f, "unset multiplot\n");
    return ferror(f) ? -EIO : 0;
}

} // namespace

// The targets of docs/BENCHMARKS.md ("Against the targets"): ratios inside
// one run, since absolute times drift between runs on a shared VM.
void ComputeRatios(Results *r)
{
    Add(r, "shm hot p50 / raw spin hot p50", "ipc_shm vs raw_spin, hot",
        LatencyRatio(*r, "ipc_shm", "raw_spin", false), 1.5, true);
    Add(r, "shm hot p99.9 / raw spin hot p99.9", "ipc_shm vs raw_spin, hot",
        LatencyRatio(*r, "ipc_shm", "raw_spin", false, kRatioPayload, &LatencyRow::p999_ns), 4, true);
    Add(r, "shm pipelined / raw spin throughput", "1 client, same window",
        TputRatio(*r, "ipc_shm", "raw_spin", kRatioPayload), 0.5, false);
    Add(r, "shm cold p50 / raw futex cold p50", "ipc_shm vs raw_futex, cold",
        LatencyRatio(*r, "ipc_shm", "raw_futex", true), 1.15, true);
    // The socket against the kernel's own limit, small and large.
    for (size_t payload : r->payloads) {
        if (payload != kRatioPayload && payload < (64u << 10))
            continue;
        bool small = payload == kRatioPayload;
        std::string at = small ? "" : ", " + Size(payload);
        Add(r, "socket hot p50 / raw UDS hot p50" + at, "ipc_socket vs raw_uds, hot",
            LatencyRatio(*r, "ipc_socket", "raw_uds", false, payload), small ? 1.10 : 1.3, true);
        Add(r, "socket pipelined / raw UDS throughput" + at, "1 client, same window",
            TputRatio(*r, "ipc_socket", "raw_uds", payload), small ? 0.9 : 0.7, false);
    }
    // Zero-copy does strictly less work: never slower, at any size.
    for (size_t payload : r->payloads)
        Add(r, "shm zero-copy / copying hot p50, " + Size(payload), "ipc_shm_zc vs ipc_shm, hot",
            LatencyRatio(*r, "ipc_shm_zc", "ipc_shm", false, payload), 1.0, true);
    for (const char *id : {"ipc_shm", "ipc_socket"}) {
        std::string name = id == std::string("ipc_shm") ? "shm" : "socket";
        const IdleRow *x = FindIdle(*r, id);
        Add(r, name + " idle CPU, %", "server + connected idle client, % of one CPU",
            x ? x->server_pct + x->client_pct : NAN, 1.0, true);
        Add(r, name + " throughput, worst of 1-8 clients / 1 client",
            "64 B, lowest total over the client counts, over one client's",
            ClientFloor(*r, id, kRatioPayload), 0.8, false);
    }
    Add(r, "speedup vs nng, socket (hot p50)", "nng p50 / ipc_socket p50",
        LatencyRatio(*r, "nng", "ipc_socket", false), 5, false);
    Add(r, "speedup vs ZeroMQ, socket (hot p50)", "zmq p50 / ipc_socket p50",
        LatencyRatio(*r, "zmq", "ipc_socket", false), 5, false);
    Add(r, "speedup vs nng, shm (hot p50)", "nng p50 / ipc_shm p50",
        LatencyRatio(*r, "nng", "ipc_shm", false), 50, false);
    Add(r, "speedup vs ZeroMQ, shm (hot p50)", "zmq p50 / ipc_shm p50",
        LatencyRatio(*r, "zmq", "ipc_shm", false), 50, false);
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

std::string PlotTerminal(const std::string &path, int width_px, int height_px)
{
    size_t dot = path.rfind('.');
    std::string ext = dot == std::string::npos ? "" : path.substr(dot);
    char size[64];
    snprintf(size, sizeof(size), " size %d,%d font 'sans,10'", width_px, height_px);
    if (ext == ".png")
        return std::string("set terminal pngcairo") + size;
    if (ext == ".svg")
        return std::string("set terminal svg dynamic") + size;
    // PDF sizes are in inches: 100 px to the inch.
    snprintf(size, sizeof(size), " size %.2fin,%.2fin font 'sans,7'", width_px / 100.0,
             height_px / 100.0);
    if (ext == ".pdf")
        return std::string("set terminal pdfcairo") + size;
    return "";
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
