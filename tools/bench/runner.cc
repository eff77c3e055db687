#include "tools/bench/runner.h"

#include <dirent.h>
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <memory>

namespace ipc_bench {
namespace {

constexpr uint64_t kMs = 1000 * 1000;
constexpr uint64_t kSetupTimeoutNs = 30 * 1000 * kMs; // connect + warm up
constexpr uint64_t kWatchdogSlackNs = 30 * 1000 * kMs; // past the time cap
constexpr uint64_t kStopTimeoutNs = 3 * 1000 * kMs;
constexpr size_t kMaxSamples = 1 << 17;

// What a child process reports back through shared memory.
struct ChildReport {
    int32_t rc;
    char error[240];
    uint64_t count;
    uint64_t elapsed_ns;
    uint64_t cpu_ns;
};

void SetError(ChildReport *r, int rc, const std::string &err)
{
    r->rc = rc;
    snprintf(r->error, sizeof(r->error), "%s", err.c_str());
}

uint64_t SelfCpuNs()
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); // every thread of the process
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void SleepNs(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

void Pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}

long Futex(std::atomic<uint32_t> *word, int op, uint32_t val)
{
    return syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), op, val, nullptr, nullptr, 0);
}

// ------------------------------------------------------------- traffic

// Request and reply buffers of one client; each request carries its
// sequence number at both ends so a reply proves the whole copy happened.
class Traffic {
  public:
    Traffic(Conn *conn, size_t payload) : conn_(conn), req_(payload, 0x5a), rep_(payload + 64) {}

    int Send(uint64_t seq, std::string *err)
    {
        memcpy(req_.data(), &seq, 8);
        memcpy(req_.data() + req_.size() - 8, &seq, 8);
        int rc = conn_->Send(req_.data(), req_.size());
        if (rc < 0)
            *err = "send #" + std::to_string(seq) + ": " + strerror(-rc);
        return rc;
    }

    int Recv(uint64_t seq, std::string *err)
    {
        uint64_t fold = 0;
        ssize_t n = conn_->RecvAndRead(rep_.data(), rep_.size(), &fold);
        sink_ = sink_ ^ fold; /* the read must happen */
        if (n < 0) {
            *err = "recv #" + std::to_string(seq) + ": " + strerror((int)-n);
            return (int)n;
        }
        uint64_t head, tail;
        memcpy(&head, rep_.data(), 8);
        memcpy(&tail, rep_.data() + n - 8, 8);
        if ((size_t)n != req_.size() || head != seq || tail != seq) {
            *err = "reply #" + std::to_string(seq) + " is not the echo of its request (" +
                   std::to_string(n) + " bytes)";
            return -EBADMSG;
        }
        return 0;
    }

    int RoundTrip(uint64_t seq, std::string *err)
    {
        int rc = Send(seq, err);
        return rc < 0 ? rc : Recv(seq, err);
    }

    // Keeps `window` requests in flight until the deadline or max messages;
    // *count gets the replies received.
    int Pipeline(int window, uint64_t deadline, uint64_t max, uint64_t *count, std::string *err)
    {
        uint64_t sent = 0, got = 0;
        int rc = 0;
        while (rc == 0 && sent < (uint64_t)window && sent < max)
            rc = Send(seq_ + sent++, err);
        while (rc == 0 && got < sent) {
            rc = Recv(seq_ + got++, err);
            if (rc == 0 && sent < max && NowNs() < deadline)
                rc = Send(seq_ + sent++, err);
        }
        seq_ += sent;
        *count = got;
        return rc;
    }

    uint64_t NextSeq() { return seq_++; }

  private:
    Conn *conn_;
    std::vector<uint8_t> req_, rep_;
    volatile uint64_t sink_ = 0;
    uint64_t seq_ = 1;
};

// xorshift64*: the cold gaps need spread, not quality.
uint64_t NextRandom(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

int WarmUp(Traffic *tr, const CaseSpec &spec, std::string *err)
{
    uint64_t end = NowNs() + spec.warmup_ns, count = 0;
    if (spec.kind == CaseKind::kThroughput)
        return tr->Pipeline(spec.window, end, UINT64_MAX, &count, err);
    int rc = tr->RoundTrip(tr->NextSeq(), err); // idle and latency: at least one
    while (rc == 0 && spec.kind == CaseKind::kLatency && NowNs() < end)
        rc = tr->RoundTrip(tr->NextSeq(), err);
    return rc;
}

int MeasureLatency(Traffic *tr, const CaseSpec &spec, std::vector<uint64_t> *samples,
                   std::string *err)
{
    uint64_t rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ NowNs();
    uint64_t span = spec.gap_max_ns - spec.gap_min_ns + 1;
    uint64_t deadline = NowNs() + spec.duration_ns;
    uint64_t max = spec.max_iters < kMaxSamples ? spec.max_iters : kMaxSamples;
    for (uint64_t i = 0; i < max; i++) {
        if (spec.cold)
            SleepNs(spec.gap_min_ns + NextRandom(&rng) % span);
        uint64_t t0 = NowNs();
        int rc = tr->RoundTrip(tr->NextSeq(), err);
        uint64_t t1 = NowNs();
        if (rc < 0)
            return rc;
        samples->push_back(t1 - t0);
        if (t1 >= deadline)
            break;
    }
    return 0;
}

} // namespace

uint64_t NowNs()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// Sum of every thread's run time (ns, from the scheduler); falls back to
// the clock-tick totals of /proc/<pid>/stat where schedstat is missing.
uint64_t ProcessCpuNs(pid_t pid)
{
    std::string base = "/proc/" + std::to_string(pid) + "/task";
    uint64_t total = 0;
    bool any = false;
    if (DIR *d = opendir(base.c_str())) {
        while (struct dirent *e = readdir(d)) {
            if (e->d_name[0] == '.')
                continue;
            FILE *f = fopen((base + "/" + e->d_name + "/schedstat").c_str(), "r");
            unsigned long long ns = 0;
            if (f != nullptr && fscanf(f, "%llu", &ns) == 1) {
                total += ns;
                any = true;
            }
            if (f != nullptr)
                fclose(f);
        }
        closedir(d);
    }
    if (any)
        return total;
    FILE *f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    if (f == nullptr)
        return 0;
    unsigned long long ut = 0, st = 0;
    // Fields 14 and 15; the command name (field 2) may hold spaces: skip past ')'.
    int c;
    while ((c = fgetc(f)) != EOF && c != ')') {
    }
    int n = fscanf(f, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
    fclose(f);
    return n == 2 ? (ut + st) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK)) : 0;
}

// ------------------------------------------------------------------ runner

struct Runner::Ctl {
    std::atomic<uint32_t> server_ready;
    std::atomic<uint32_t> clients_ready;
    std::atomic<uint32_t> go; // futex: 1 starts the measured part
    ChildReport server;
    ChildReport clients[kMaxClients];
    uint64_t nsamples;
    uint64_t samples[kMaxSamples];
};

Runner::Runner() = default;

Runner::~Runner()
{
    if (ctl_ != nullptr)
        munmap(ctl_, sizeof(Ctl));
    if (dir_.empty())
        return;
    if (DIR *d = opendir(dir_.c_str())) { // endpoints a killed server left
        while (struct dirent *e = readdir(d))
            if (e->d_name[0] != '.')
                unlink((dir_ + "/" + e->d_name).c_str());
        closedir(d);
    }
    rmdir(dir_.c_str());
}

int Runner::Init(std::string *err)
{
    char tmpl[] = "/tmp/ipcbXXXXXX"; // short: sun_path holds 108 bytes
    if (mkdtemp(tmpl) == nullptr) {
        *err = std::string("mkdtemp: ") + strerror(errno);
        return -errno;
    }
    dir_ = tmpl;
    // A peer that died must show up as an error row (EPIPE), not kill the
    // process writing to it; children inherit this.
    signal(SIGPIPE, SIG_IGN);
    void *p = mmap(nullptr, sizeof(Ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        *err = std::string("mmap: ") + strerror(errno);
        return -errno;
    }
    ctl_ = static_cast<Ctl *>(p);
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) >= 2) {
        for (int c = 0; c < CPU_SETSIZE; c++) {
            if (!CPU_ISSET(c, &set))
                continue;
            if (client_cpu_ < 0)
                client_cpu_ = c;
            else if (server_cpu_ < 0)
                server_cpu_ = c;
        }
    }
    return 0;
}

namespace {

// pidfds let the parent sleep in poll() until a child exits or time is up,
// instead of waking up to poll waitpid() during a measurement.
int PidFd(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

// Waits for every pid until the deadline; reaps those that exit, leaves the
// others in *pids. statuses[i] gets the wait status of the i-th pid given.
void WaitUntil(std::vector<pid_t> *pids, uint64_t deadline, std::vector<int> *statuses)
{
    std::vector<pid_t> all = *pids;
    statuses->assign(all.size(), 0);
    for (;;) {
        std::vector<pid_t> left;
        std::vector<struct pollfd> fds;
        for (size_t i = 0; i < all.size(); i++) {
            if (all[i] <= 0)
                continue;
            int st;
            if (waitpid(all[i], &st, WNOHANG) == all[i]) {
                (*statuses)[i] = st;
                all[i] = 0;
                continue;
            }
            left.push_back(all[i]);
            int fd = PidFd(all[i]);
            if (fd >= 0)
                fds.push_back({fd, POLLIN, 0});
        }
        uint64_t now = NowNs();
        if (left.empty() || now >= deadline) {
            for (auto &p : fds)
                close(p.fd);
            *pids = left;
            return;
        }
        uint64_t ms = (deadline - now + kMs - 1) / kMs;
        if (fds.empty())
            SleepNs(kMs); // no pidfd support: poll every ms
        else
            (void)poll(fds.data(), fds.size(), ms > 1000 ? 1000 : (int)ms);
        for (auto &p : fds)
            close(p.fd);
    }
}

void KillAndReap(const std::vector<pid_t> &pids)
{
    for (pid_t p : pids) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
    }
}

std::string DescribeExit(int st)
{
    if (WIFSIGNALED(st))
        return std::string("killed by signal ") + strsignal(WTERMSIG(st));
    return "exit code " + std::to_string(WEXITSTATUS(st));
}

// Waits (polling: this is set-up time) until *count reaches want, or a
// child exits, or the deadline passes.
int WaitCount(std::atomic<uint32_t> *count, uint32_t want, const std::vector<pid_t> &pids,
              uint64_t deadline, std::string *err)
{
    while (count->load(std::memory_order_acquire) < want) {
        for (pid_t p : pids) {
            int st;
            if (waitpid(p, &st, WNOHANG) == p) {
                *err = "pid " + std::to_string(p) + " quit during set-up: " + DescribeExit(st);
                return -ECHILD;
            }
        }
        if (NowNs() > deadline) {
            *err = "set-up timed out";
            return -ETIMEDOUT;
        }
        SleepNs(200 * 1000);
    }
    return 0;
}

int ClientBody(Transport &t, const CaseSetup &setup, const CaseSpec &spec, int index,
               std::atomic<uint32_t> *ready, std::atomic<uint32_t> *go, ChildReport *rep,
               std::vector<uint64_t> *samples, std::string *err)
{
    std::unique_ptr<Conn> conn;
    int rc = t.Connect(setup, index, &conn, err);
    if (rc < 0)
        return rc;
    Traffic tr(conn.get(), spec.payload);
    rc = WarmUp(&tr, spec, err);
    if (rc < 0)
        return rc;
    ready->fetch_add(1, std::memory_order_release);
    while (go->load(std::memory_order_acquire) == 0)
        Futex(go, FUTEX_WAIT, 0);
    uint64_t cpu0 = SelfCpuNs(), t0 = NowNs();
    switch (spec.kind) {
    case CaseKind::kLatency:
        rc = MeasureLatency(&tr, spec, samples, err);
        rep->count = samples->size();
        break;
    case CaseKind::kThroughput:
        rc = tr.Pipeline(spec.window, t0 + spec.duration_ns, spec.max_iters, &rep->count, err);
        break;
    case CaseKind::kIdle:
        SleepNs(spec.duration_ns); // connected, doing nothing
        break;
    }
    rep->elapsed_ns = NowNs() - t0;
    rep->cpu_ns = SelfCpuNs() - cpu0;
    conn.reset();
    return rc;
}

} // namespace

pid_t Runner::StartServer(Transport &t, const CaseSetup &setup, std::string *err)
{
    fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
        *err = std::string("fork: ") + strerror(errno);
        return -errno;
    }
    if (pid == 0) {
        Pin(server_cpu_);
        std::string e;
        int rc = t.Serve(setup, [this] { ctl_->server_ready.store(1, std::memory_order_release); },
                         &e);
        SetError(&ctl_->server, rc, e);
        _exit(rc == 0 ? 0 : 1);
    }
    std::vector<pid_t> pids = {pid};
    int rc = WaitCount(&ctl_->server_ready, 1, pids, NowNs() + kSetupTimeoutNs, err);
    if (rc < 0) {
        if (ctl_->server.error[0] != '\0')
            *err = std::string("server: ") + ctl_->server.error;
        KillAndReap(pids);
        return rc;
    }
    return pid;
}

int Runner::StartClients(Transport &t, const CaseSetup &setup, const CaseSpec &spec,
                         std::vector<pid_t> *pids, std::string *err)
{
    for (int i = 0; i < spec.clients; i++) {
        fflush(nullptr);
        pid_t pid = fork();
        if (pid < 0) {
            *err = std::string("fork: ") + strerror(errno);
            return -errno;
        }
        if (pid == 0) {
            Pin(client_cpu_);
            std::vector<uint64_t> samples; // private: no shared-page faults while timing
            if (spec.kind == CaseKind::kLatency)
                samples.reserve(kMaxSamples);
            std::string e;
            ChildReport *rep = &ctl_->clients[i];
            int rc = ClientBody(t, setup, spec, i, &ctl_->clients_ready, &ctl_->go, rep,
                                &samples, &e);
            if (!samples.empty()) { // latency cases have exactly one client
                memcpy(ctl_->samples, samples.data(), samples.size() * sizeof(uint64_t));
                ctl_->nsamples = samples.size();
            }
            SetError(rep, rc, e);
            _exit(rc == 0 ? 0 : 1);
        }
        pids->push_back(pid);
    }
    int rc = WaitCount(&ctl_->clients_ready, (uint32_t)spec.clients, *pids,
                       NowNs() + kSetupTimeoutNs, err);
    for (int i = 0; rc < 0 && i < spec.clients; i++) { // prefer the client's own words
        if (ctl_->clients[i].error[0] != '\0') {
            *err = "client " + std::to_string(i) + ": " + ctl_->clients[i].error;
            break;
        }
    }
    return rc;
}

int Runner::Measure(const CaseSpec &spec, pid_t server, std::vector<pid_t> *clients,
                    CaseOutcome *out)
{
    uint64_t srv0 = ProcessCpuNs(server), g0 = NowNs(), srv1 = 0, g1 = 0;
    ctl_->go.store(1, std::memory_order_release);
    Futex(&ctl_->go, FUTEX_WAKE, INT32_MAX);
    if (spec.kind == CaseKind::kIdle) { // sample while the client still sleeps
        SleepNs(spec.duration_ns);
        srv1 = ProcessCpuNs(server);
        g1 = NowNs();
    }
    std::vector<pid_t> all = *clients;
    std::vector<int> statuses;
    WaitUntil(clients, NowNs() + spec.duration_ns + kWatchdogSlackNs, &statuses);
    if (g1 == 0) {
        srv1 = ProcessCpuNs(server);
        g1 = NowNs();
    }
    out->server_cpu_ns = srv1 > srv0 ? srv1 - srv0 : 0;
    out->wall_ns = g1 - g0;
    if (!clients->empty()) {
        KillAndReap(*clients);
        clients->clear();
        out->error = "watchdog: clients still running " +
                     std::to_string((spec.duration_ns + kWatchdogSlackNs) / kMs) +
                     " ms after the start (hung transport?)";
        return -ETIMEDOUT;
    }
    for (size_t i = 0; i < all.size(); i++) {
        if (statuses[i] != 0) {
            const ChildReport &r = ctl_->clients[i];
            out->error = "client " + std::to_string(i) + ": " +
                         (r.error[0] ? std::string(r.error) : DescribeExit(statuses[i]));
            return r.rc < 0 ? r.rc : -EIO;
        }
    }
    return 0;
}

void Runner::StopServer(pid_t pid, CaseOutcome *out)
{
    kill(pid, SIGTERM);
    std::vector<pid_t> pids = {pid};
    std::vector<int> st;
    WaitUntil(&pids, NowNs() + kStopTimeoutNs, &st);
    if (!pids.empty()) {
        KillAndReap(pids);
        if (out->error.empty())
            out->error = "server ignored SIGTERM for 3 s and was killed";
        return;
    }
    // Ours stop cleanly (exit 0); the others die of the signal.
    bool clean = (WIFEXITED(st[0]) && WEXITSTATUS(st[0]) == 0) ||
                 (WIFSIGNALED(st[0]) && WTERMSIG(st[0]) == SIGTERM);
    if (!clean && out->error.empty())
        out->error = "server: " +
                     (ctl_->server.error[0] ? std::string(ctl_->server.error)
                                            : DescribeExit(st[0]));
}

void Runner::Collect(const CaseSpec &spec, CaseOutcome *out)
{
    for (int i = 0; i < spec.clients; i++) {
        const ChildReport &r = ctl_->clients[i];
        out->messages += r.count;
        out->client_cpu_ns += r.cpu_ns;
        if (r.elapsed_ns > 0)
            out->msgs_per_s += (double)r.count * 1e9 / (double)r.elapsed_ns;
    }
    if (spec.kind == CaseKind::kLatency)
        out->samples.assign(ctl_->samples, ctl_->samples + ctl_->nsamples);
}

CaseOutcome Runner::Run(Transport &t, const CaseSpec &spec)
{
    CaseOutcome out;
    CaseSetup setup = {dir_, "c" + std::to_string(cases_++), spec.payload, spec.clients,
                       spec.window};
    ctl_->server_ready.store(0);
    ctl_->clients_ready.store(0);
    ctl_->go.store(0);
    memset(&ctl_->server, 0, sizeof(ctl_->server));
    memset(ctl_->clients, 0, sizeof(ctl_->clients));
    ctl_->nsamples = 0;
    out.rc = t.Prepare(setup, &out.error);
    if (out.rc < 0)
        return out;
    pid_t server = StartServer(t, setup, &out.error);
    if (server < 0) {
        out.rc = server;
        t.Cleanup();
        return out;
    }
    std::vector<pid_t> clients;
    out.rc = StartClients(t, setup, spec, &clients, &out.error);
    if (out.rc == 0)
        out.rc = Measure(spec, server, &clients, &out);
    KillAndReap(clients); // only those left after a failed start
    StopServer(server, &out);
    if (out.rc == 0 && !out.error.empty())
        out.rc = -EIO; // the server failed although the clients finished
    if (out.rc == 0)
        Collect(spec, &out);
    t.Cleanup();
    return out;
}

} // namespace ipc_bench
