#include "stress/stress_driver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <map>

#include "ipc/testing/testing.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IPC_STRESS_SLOW 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IPC_STRESS_SLOW 1
#endif

namespace ipc_stress {

const char *TransportName(Transport t)
{
    return t == Transport::kSocket ? "socket" : "shm";
}

static void SleepNs(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / kSecond), (long)(ns % kSecond)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

bool SlowBuild()
{
#ifdef IPC_STRESS_SLOW
    return true;
#else
    return false;
#endif
}

// --------------------------------------------------------------- endpoints

size_t Endpoint::MaxPayload() const
{
    if (transport == Transport::kShm)
        return options.ring_size / 2 - 16;
    return options.max_message_size ? options.max_message_size : IPC_DEFAULT_MAX_MESSAGE;
}

Endpoint SocketEndpoint(const std::string &dir, size_t max_message)
{
    Endpoint ep;
    ep.transport = Transport::kSocket;
    ep.name = dir + "/stress-" + std::to_string(getpid()) + ".sock";
    ep.max_clients = 16;
    ep.options.max_message_size = max_message;
    return ep;
}

Endpoint ShmEndpoint(size_t max_clients, size_t ring_size)
{
    // Sandboxed tests run in their own pid namespace, so the pid alone
    // repeats across concurrent tests, while the abstract socket namespace
    // may be shared: add random bits.
    static uint64_t nonce = 0;
    if (nonce == 0 && getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
        nonce = NowNs();
    static int counter = 0;
    char tag[32];
    snprintf(tag, sizeof(tag), "%016llx", (unsigned long long)nonce);
    Endpoint ep;
    ep.transport = Transport::kShm;
    ep.name = "ipc-stress-" + std::to_string(getpid()) + "-" + tag + "-" +
              std::to_string(counter++);
    ep.max_clients = max_clients;
    ep.options.ring_size = ring_size;
    // The run loop must accept the largest frame the rings carry.
    ep.options.max_message_size = ring_size / 2 - 16;
    return ep;
}

ipc_server *CreateServer(const Endpoint &ep)
{
    if (ep.transport == Transport::kSocket)
        return ipc_server_create_socket_ex(ep.name.c_str(), (int)ep.max_clients, &ep.options);
    return ipc_server_create_shm_ex(ep.name.c_str(), ep.max_clients, &ep.options);
}

ipc_client *CreateClient(const Endpoint &ep)
{
    if (ep.transport == Transport::kSocket)
        return ipc_client_create_socket(ep.name.c_str());
    return ipc_client_create_shm(ep.name.c_str(), ep.max_clients);
}

int ConnectRetry(ipc_client *c, uint64_t timeout_ns)
{
    uint64_t end = NowNs() + timeout_ns;
    for (;;) {
        int rc = ipc_client_connect(c);
        if (rc == 0 || (rc != -ENOENT && rc != -ECONNREFUSED && rc != -EAGAIN) ||
            NowNs() > end)
            return rc;
        SleepNs(2 * kMs);
    }
}

// ------------------------------------------------------------- wire format

uint32_t Fnv1a(const void *data, size_t len)
{
    const uint8_t *p = static_cast<const uint8_t *>(data);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static uint64_t Mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t NextRandom(uint64_t *state)
{
    *state += 0x9E3779B97F4A7C15ull;
    return Mix(*state);
}

// Body byte i of request (client, seq) is byte i % 8 of Mix(key + i / 8).
static uint64_t BodyKey(uint32_t client, uint64_t seq)
{
    return Mix(((uint64_t)client << 40) ^ seq ^ 0x5EED5EED00000000ull);
}

static void FillBody(uint8_t *out, size_t len, uint64_t key)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = Mix(key + i / 8);
        memcpy(out + i, &w, 8);
    }
    if (i < len) {
        uint64_t w = Mix(key + i / 8);
        memcpy(out + i, &w, len - i);
    }
}

void BuildRequest(uint8_t *out, size_t len, uint32_t client, uint64_t seq)
{
    uint64_t key = BodyKey(client, seq);
    if (len < kHeaderSize) {
        FillBody(out, len, key);
        return;
    }
    FillBody(out + kHeaderSize, len - kHeaderSize, key);
    RequestHeader h = {kReqMagic, client, seq, (uint32_t)len,
                       Fnv1a(out + kHeaderSize, len - kHeaderSize)};
    memcpy(out, &h, sizeof(h));
}

bool ReadHeader(const uint8_t *p, size_t len, RequestHeader *h)
{
    if (len < kHeaderSize)
        return false;
    memcpy(h, p, sizeof(*h));
    return true;
}

// Does reply body r[0, len) equal the XORed body of key? Also returns the
// FNV-1a of the expected (un-XORed) bytes.
static bool BodyMatches(const uint8_t *r, size_t len, uint64_t key, uint32_t *fnv)
{
    uint32_t h = 2166136261u;
    uint8_t want[8];
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = Mix(key + i / 8);
        memcpy(want, &w, 8);
        size_t n = std::min<size_t>(8, len - i);
        for (size_t k = 0; k < n; k++) {
            if ((uint8_t)(r[i + k] ^ kXor) != want[k])
                return false;
            h = (h ^ want[k]) * 16777619u;
        }
    }
    *fnv = h;
    return true;
}

bool ReplyMatches(const uint8_t *reply, size_t reply_len, uint32_t client, uint64_t seq,
                  size_t len)
{
    if (reply_len != len)
        return false;
    uint64_t key = BodyKey(client, seq);
    uint32_t fnv;
    if (len < kHeaderSize)
        return BodyMatches(reply, len, key, &fnv);
    RequestHeader h;
    ReadHeader(reply, reply_len, &h);
    if (h.magic != kReqMagic || h.client != client || h.seq != seq || h.len != len)
        return false;
    return BodyMatches(reply + kHeaderSize, len - kHeaderSize, key, &fnv) && fnv == h.checksum;
}

static size_t LogUniform(uint64_t *rng, size_t lo, size_t hi)
{
    if (hi <= lo)
        return hi;
    double u = (double)(NextRandom(rng) >> 11) * (1.0 / 9007199254740992.0);
    size_t v = (size_t)((double)lo * std::exp(u * std::log((double)hi / (double)lo)));
    return std::min(std::max(v, lo), hi);
}

size_t PickSize(uint64_t *rng, uint64_t seq, size_t max)
{
    static const size_t kEdges[] = {0, SIZE_MAX, 1, kHeaderSize - 1, kHeaderSize};
    if (seq < sizeof(kEdges) / sizeof(kEdges[0]))
        return std::min(kEdges[seq], max);
    uint64_t r = NextRandom(rng) % 1000;
    size_t n;
    if (r < 25)
        n = max;
    else if (r < 60)
        n = NextRandom(rng) % kHeaderSize;
    else if (r < 650)
        n = LogUniform(rng, kHeaderSize, 4096);
    else if (r < 950)
        n = LogUniform(rng, 4096, 64 << 10);
    else
        n = LogUniform(rng, 64 << 10, max);
    return std::min(n, max);
}

// ------------------------------------------------------------------ server

const uint8_t kStatsRequest[16] = {'I', 'P', 'C', '-', 'S', 'T', 'R', 'E',
                                   'S', 'S', '-', 'S', 'T', 'A', 'T', 'S'};

namespace {

struct ServerCtx {
    ServerStats stats;
};

ipc_action TransformHandler(void *ctx, int, const void *request, size_t len,
                            ipc_response *response)
{
    ServerCtx *c = static_cast<ServerCtx *>(ctx);
    const uint8_t *in = static_cast<const uint8_t *>(request);
    if (len == sizeof(kStatsRequest) && memcmp(in, kStatsRequest, len) == 0) {
        c->stats.fds_now = ipc_testing::CountOpenFds();
        ipc_response_set(response, &c->stats, sizeof(c->stats));
        return IPC_CONTINUE;
    }
    c->stats.requests++;
    uint8_t *out = static_cast<uint8_t *>(ipc_response_reserve(response, len));
    if (out == nullptr)
        return IPC_CONTINUE; /* empty reply: the client reports it corrupted */
    size_t from = 0;
    RequestHeader h;
    if (ReadHeader(in, len, &h) && h.magic == kReqMagic && h.len == len) {
        if (Fnv1a(in + kHeaderSize, len - kHeaderSize) != h.checksum) {
            c->stats.bad_requests++;
            h.magic = kBadMagic;
        }
        memcpy(out, &h, sizeof(h));
        from = kHeaderSize;
    } else if (len >= kHeaderSize) {
        c->stats.foreign++;
    }
    for (size_t i = from; i < len; i++)
        out[i] = in[i] ^ kXor;
    return IPC_CONTINUE;
}

ipc_server *g_server;

void StopServer(int)
{
    ipc_server_stop(g_server);
}

// Reads exactly len bytes within timeout_ns; false on EOF or timeout.
bool ReadAll(int fd, void *data, size_t len, uint64_t timeout_ns)
{
    uint8_t *p = static_cast<uint8_t *>(data);
    uint64_t end = NowNs() + timeout_ns;
    while (len > 0) {
        uint64_t now = NowNs();
        if (now >= end)
            return false;
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, (int)((end - now) / kMs) + 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        ssize_t n = read(fd, p, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

// Status the server child sends once: 0 listening, 1 factory gave NULL,
// or the negative errno of listen().
int ServerMain(const Endpoint &ep, int ready_fd, int stats_fd)
{
    ServerCtx ctx = {};
    int64_t before = ipc_testing::CountOpenFds();
    ipc_server *s = CreateServer(ep);
    int32_t status = s == nullptr ? 1 : ipc_server_listen(s);
    if (status != 0) {
        WriteExactly(ready_fd, &status, sizeof(status));
        ipc_server_destroy(s);
        return 2;
    }
    ctx.stats.fds_listening = ipc_testing::CountOpenFds();
    g_server = s;
    struct sigaction sa = {};
    sa.sa_handler = StopServer;
    sigaction(SIGTERM, &sa, nullptr);
    /* ready_fd stays open: the final count must match `before`. */
    if (!WriteExactly(ready_fd, &status, sizeof(status)))
        return 3;
    int rc = ipc_server_run(s, TransformHandler, &ctx, 0);
    ipc_server_destroy(s);
    ServerFinal final = {rc, 0, ctx.stats.requests, ctx.stats.bad_requests, before,
                         ipc_testing::CountOpenFds()};
    WriteExactly(stats_fd, &final, sizeof(final));
    return 0;
}

}  // namespace

int QueryStats(const Endpoint &ep, ServerStats *out, uint64_t timeout_ns)
{
    ipc_client *c = CreateClient(ep);
    if (c == nullptr)
        return -ENOMEM;
    int rc = ConnectRetry(c, timeout_ns);
    if (rc == 0)
        rc = ipc_client_send(c, kStatsRequest, sizeof(kStatsRequest), timeout_ns);
    if (rc == 0) {
        ssize_t n = ipc_client_recv(c, out, sizeof(*out), timeout_ns);
        rc = n == (ssize_t)sizeof(*out) ? 0 : n < 0 ? (int)n : -EPROTO;
    }
    ipc_client_destroy(c);
    return rc;
}

ServerChild::~ServerChild()
{
    Kill();
}

bool ServerChild::Start(const Endpoint &ep, rlim_t nofile, std::string *error)
{
    int ready[2], stats[2];
    if (pipe(ready) < 0)
        return *error = std::string("pipe: ") + strerror(errno), false;
    if (pipe(stats) < 0) {
        close(ready[0]);
        close(ready[1]);
        return *error = std::string("pipe: ") + strerror(errno), false;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        CloseFdsExcept({ready[1], stats[1]});
        if (nofile > 0) {
            struct rlimit rl;
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = nofile;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        _exit(ServerMain(ep, ready[1], stats[1]));
    }
    close(ready[1]);
    close(stats[1]);
    if (pid < 0) {
        close(ready[0]);
        close(stats[0]);
        return *error = std::string("fork: ") + strerror(errno), false;
    }
    pid_ = pid;
    stats_fd_ = stats[0];
    int32_t status = 0;
    bool got = ReadAll(ready[0], &status, sizeof(status), 20 * kSecond);
    close(ready[0]);
    if (got && status == 0)
        return true;
    if (!got)
        *error = "the server process never reported that it listens";
    else if (status == 1)
        *error = std::string("ipc_server_create_") + TransportName(ep.transport) +
                 "_ex() returned NULL for '" + ep.name + "'" +
                 (ep.transport == Transport::kShm ? " (is the shm transport still a stub?)" : "");
    else
        *error = std::string("ipc_server_listen: ") + ipc_strerror(status);
    Kill();
    return false;
}

void ServerChild::Kill()
{
    if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    if (stats_fd_ >= 0) {
        close(stats_fd_);
        stats_fd_ = -1;
    }
}

bool ServerChild::Stop(ServerFinal *final, std::string *error)
{
    if (pid_ <= 0)
        return *error = "no server", false;
    kill(pid_, SIGTERM);
    bool got = ReadAll(stats_fd_, final, sizeof(*final), 10 * kSecond);
    int rc = ipc_testing::WaitChild(pid_, 10000);
    pid_ = -1;
    close(stats_fd_);
    stats_fd_ = -1;
    if (!got)
        *error = "the server did not stop within 10 s of SIGTERM (exit " + std::to_string(rc) + ")";
    else if (rc != 0)
        *error = "the server exited with status " + std::to_string(rc);
    return got && rc == 0;
}

// ----------------------------------------------------------------- clients

namespace {

enum ClientKind : int32_t { kNormal = 1, kPartial = 2, kLoop = 3, kReceiver = 4 };

constexpr uint32_t kResultMagic = 0x52534C54;
constexpr int kMaxErrors = 16;

// One client's report; written in one write(2) below PIPE_BUF, so atomic.
struct ClientResult {
    uint32_t magic;
    int32_t id;
    int32_t kind;
    int32_t setup_error;  // connect failed: the client did no work
    uint64_t sent, received, lost, duplicated, reordered, corrupted, errors, bytes;
    uint64_t max_latency_ns;
    uint64_t reconnects;
    uint64_t received_last;  // replies since the last reconnect
    uint32_t n_err;
    int32_t unexpected_code;  // an error code outside the expected set, or 0
    struct {
        uint64_t t_ns;
        int32_t code;
        int32_t pad;
    } err[kMaxErrors];
};
static_assert(sizeof(ClientResult) < PIPE_BUF, "atomic pipe write");

void NoteError(ClientResult *r, int code)
{
    r->errors++;
    if (r->n_err < kMaxErrors) {
        r->err[r->n_err].t_ns = NowNs();
        r->err[r->n_err].code = code;
        r->n_err++;
    }
}

ClientResult NewResult(int id, ClientKind kind)
{
    ClientResult r;
    memset(&r, 0, sizeof(r));
    r.magic = kResultMagic;
    r.id = id;
    r.kind = kind;
    return r;
}

struct Pending {
    uint64_t seq;
    size_t len;
    uint64_t t0;
};

// Per-client reply bookkeeping for a window of requests in flight.
class ReplyChecker {
  public:
    ReplyChecker(uint32_t id, uint64_t requests, ClientResult *r)
        : id_(id), done_(requests, 0), r_(r)
    {
    }
    std::deque<Pending> &outstanding() { return outstanding_; }

    void OnReply(const uint8_t *rep, size_t n, uint64_t now)
    {
        RequestHeader h;
        if (ReadHeader(rep, n, &h) && h.magic == kReqMagic && h.client == id_) {
            OnTagged(rep, n, h.seq, now);
            return;
        }
        // Short, bad-magic or foreign: it can only answer the oldest request.
        if (outstanding_.empty()) {
            r_->corrupted++;
            return;
        }
        Pending p = outstanding_.front();
        outstanding_.pop_front();
        Check(rep, n, p, now);
    }

    void Finish() { r_->lost += outstanding_.size() + skipped_.size(); }

  private:
    void Check(const uint8_t *rep, size_t n, const Pending &p, uint64_t now)
    {
        if (p.seq < done_.size())
            done_[p.seq] = 1;
        if (!ReplyMatches(rep, n, id_, p.seq, p.len)) {
            r_->corrupted++;
            return;
        }
        r_->received++;
        r_->bytes += p.len;
        r_->max_latency_ns = std::max(r_->max_latency_ns, now - p.t0);
    }

    void OnTagged(const uint8_t *rep, size_t n, uint64_t seq, uint64_t now)
    {
        auto it = std::find_if(outstanding_.begin(), outstanding_.end(),
                               [seq](const Pending &p) { return p.seq == seq; });
        if (it != outstanding_.end()) {
            for (auto k = outstanding_.begin(); k != it; ++k)
                skipped_[k->seq] = *k; /* overtaken: lost unless it comes later */
            Pending p = *it;
            outstanding_.erase(outstanding_.begin(), it + 1);
            Check(rep, n, p, now);
            return;
        }
        auto sk = skipped_.find(seq);
        if (sk != skipped_.end()) {
            r_->reordered++;
            Pending p = sk->second;
            skipped_.erase(sk);
            Check(rep, n, p, now);
            return;
        }
        if (seq < done_.size() && done_[seq])
            r_->duplicated++;
        else
            r_->corrupted++;
    }

    uint32_t id_;
    std::deque<Pending> outstanding_;
    std::map<uint64_t, Pending> skipped_;
    std::vector<uint8_t> done_;
    ClientResult *r_;
};

// A connected client, or nullptr with the reason in r->setup_error.
ipc_client *OpenClient(const Endpoint &ep, ClientResult *r)
{
    ipc_client *c = CreateClient(ep);
    if (c == nullptr) {
        r->setup_error = -ENOMEM;
        return nullptr;
    }
    int rc = ConnectRetry(c, 20 * kSecond);
    if (rc < 0) {
        ipc_client_destroy(c);
        r->setup_error = rc;
        return nullptr;
    }
    return c;
}

// Sends `requests` requests with up to `window` in flight, checks every
// reply, then listens briefly for any extra (duplicated) reply.
int NormalClient(const StressConfig &cfg, int id, int requests, ClientResult *r)
{
    ipc_client *c = OpenClient(cfg.ep, r);
    if (c == nullptr)
        return 1;
    int rc = 0;
    size_t max = cfg.ep.MaxPayload();
    std::vector<uint8_t> req(max + 1), rep(max + 1);
    uint64_t rng = cfg.seed * 0x100000001B3ull + (uint64_t)id;
    ReplyChecker check((uint32_t)id, (uint64_t)requests, r);
    uint64_t next = 0;
    while (next < (uint64_t)requests || !check.outstanding().empty()) {
        while (next < (uint64_t)requests && check.outstanding().size() < (size_t)cfg.window) {
            size_t len = PickSize(&rng, next, max);
            BuildRequest(req.data(), len, (uint32_t)id, next);
            uint64_t t0 = NowNs();
            rc = ipc_client_send(c, req.data(), len, cfg.op_timeout_ns);
            if (rc < 0)
                goto out;
            r->sent++;
            check.outstanding().push_back({next, len, t0});
            next++;
        }
        ssize_t n = ipc_client_recv(c, rep.data(), rep.size(), cfg.op_timeout_ns);
        if (n < 0) {
            rc = (int)n;
            goto out;
        }
        check.OnReply(rep.data(), (size_t)n, NowNs());
    }
    for (;;) {
        ssize_t n = ipc_client_recv(c, rep.data(), rep.size(), 20 * kMs);
        if (n == -ETIMEDOUT)
            break;
        if (n < 0) {
            rc = (int)n;
            break;
        }
        check.OnReply(rep.data(), (size_t)n, NowNs());
    }
out:
    if (rc < 0)
        NoteError(r, rc);
    check.Finish();
    ipc_client_destroy(c);
    return 0;
}

// Socket only: a raw connection that writes part of a frame (header
// included, possibly only part of the header), then waits to be killed or
// hangs up mid-frame.
int PartialClient(const StressConfig &cfg, int id)
{
    uint64_t rng = cfg.seed * 31 + (uint64_t)id * 7919;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1;
    struct sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", cfg.ep.name.c_str());
    uint64_t end = NowNs() + 10 * kSecond;
    while (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if ((errno != ENOENT && errno != ECONNREFUSED && errno != EINTR) || NowNs() > end)
            return 1;
        SleepNs(2 * kMs);
    }
    size_t max = cfg.ep.MaxPayload();
    size_t len = 1 + NextRandom(&rng) % (max < 65536 ? max : 65536);
    std::vector<uint8_t> frame(4 + len);
    frame[0] = (uint8_t)len;
    frame[1] = (uint8_t)(len >> 8);
    frame[2] = (uint8_t)(len >> 16);
    frame[3] = (uint8_t)(len >> 24);
    BuildRequest(frame.data() + 4, len, (uint32_t)id, 0);
    size_t cut = 1 + NextRandom(&rng) % (frame.size() - 1); /* never whole */
    for (size_t off = 0; off < cut;) {
        ssize_t n = write(fd, frame.data() + off, std::min<size_t>(cut - off, 1 + off % 3000));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 1;
        off += (size_t)n;
    }
    if (NextRandom(&rng) % 4 == 0) {
        SleepNs(NextRandom(&rng) % (20 * kMs));
        return 0; /* hang up mid-frame */
    }
    for (;;)
        pause(); /* until SIGKILL */
}

bool StopRequested(int control_fd)
{
    struct pollfd p = {control_fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0; /* the parent closed its end */
}

bool Reconnect(ipc_client *c, ClientResult *r)
{
    ipc_client_close(c);
    int rc = ConnectRetry(c, 20 * kSecond);
    if (rc < 0) {
        r->setup_error = rc;
        return false;
    }
    r->reconnects++;
    r->received_last = 0;
    return true;
}

// Restart test: one request at a time with finite timeouts; after an error
// reconnect and resend the same request.
int LoopClient(const RestartConfig &cfg, int id, int control_fd, ClientResult *r)
{
    ipc_client *c = OpenClient(cfg.ep, r);
    if (c == nullptr)
        return 1;
    size_t max = cfg.ep.MaxPayload();
    std::vector<uint8_t> req(max + 1), rep(max + 1);
    uint64_t rng = cfg.seed * 0x100000001B3ull + (uint64_t)id;
    uint64_t seq = 0;
    size_t len = PickSize(&rng, seq, max);
    while (!StopRequested(control_fd)) {
        BuildRequest(req.data(), len, (uint32_t)id, seq);
        uint64_t t0 = NowNs();
        ssize_t n = ipc_client_send(c, req.data(), len, cfg.op_timeout_ns);
        if (n == 0)
            n = ipc_client_recv(c, rep.data(), rep.size(), cfg.op_timeout_ns);
        if (n < 0) {
            NoteError(r, (int)n);
            if (n != -ECONNRESET && n != -EPIPE)
                r->unexpected_code = (int)n;
            if (!Reconnect(c, r))
                break;
            continue; /* the same request again, to the new server */
        }
        r->sent++;
        if (ReplyMatches(rep.data(), (size_t)n, (uint32_t)id, seq, len)) {
            r->received++;
            r->received_last++;
            r->bytes += len;
            r->max_latency_ns = std::max(r->max_latency_ns, NowNs() - t0);
        } else {
            r->corrupted++;
        }
        seq++;
        len = PickSize(&rng, seq, max);
    }
    ipc_client_destroy(c);
    return 0;
}

// Restart test: blocked in recv with no timeout; the server's death must
// end the wait with -ECONNRESET.
int ReceiverClient(const RestartConfig &cfg, int control_fd, ClientResult *r)
{
    ipc_client *c = OpenClient(cfg.ep, r);
    if (c == nullptr)
        return 1;
    uint8_t buf[64];
    for (;;) {
        ssize_t n = ipc_client_recv(c, buf, sizeof(buf), 0);
        if (n >= 0) {
            r->corrupted++; /* nobody sends unasked */
            continue;
        }
        NoteError(r, (int)n);
        if (n != -ECONNRESET)
            r->unexpected_code = (int)n;
        if (StopRequested(control_fd) || !Reconnect(c, r))
            break;
    }
    ipc_client_destroy(c);
    return 0;
}

// ------------------------------------------------------------------ parent

struct Child {
    pid_t pid;
    int id;
    ClientKind kind;
    bool alive = true;
    bool killed = false;
    bool stopped = false;
    uint64_t cont_at = 0;
    int status = 0;
};

class Fleet {
  public:
    Fleet()
    {
        if (pipe(results_) == 0)
            fcntl(results_[0], F_SETFL, O_NONBLOCK);
    }
    ~Fleet()
    {
        KillAll();
        close(results_[0]);
        close(results_[1]);
    }
    bool ok() const { return results_[0] >= 0; }

    // Forks body(result) in a child holding only the results pipe and
    // `extra_fd`; the child writes its result if body filled one in.
    template <typename Body>
    Child *Spawn(int id, ClientKind kind, int extra_fd, Body body)
    {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            CloseFdsExcept({results_[1], extra_fd});
            ClientResult r = NewResult(id, kind);
            int rc = body(&r);
            if (kind != kPartial && !WriteExactly(results_[1], &r, sizeof(r)))
                _exit(5);
            _exit(rc);
        }
        if (pid < 0)
            return nullptr;
        children_.push_back(Child{pid, id, kind});
        return &children_.back();
    }

    std::deque<Child> &children() { return children_; }

    // Reaps exited children and drains the results pipe.
    void Poll(int wait_ms)
    {
        struct pollfd p = {results_[0], POLLIN, 0};
        if (poll(&p, 1, wait_ms) > 0)
            Drain();
        for (Child &c : children_) {
            if (!c.alive)
                continue;
            int status;
            if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
                c.alive = false;
                c.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
        }
        Drain();
    }

    int Alive(ClientKind kind) const
    {
        int n = 0;
        for (const Child &c : children_)
            n += c.alive && c.kind == kind;
        return n;
    }

    void KillAll()
    {
        for (Child &c : children_) {
            if (c.alive) {
                kill(c.pid, SIGKILL);
                waitpid(c.pid, nullptr, 0);
                c.alive = false;
                c.killed = true;
            }
        }
    }

    const std::map<int, ClientResult> &results() const { return results_by_id_; }

  private:
    void Drain()
    {
        uint8_t buf[16 * sizeof(ClientResult)];
        for (;;) {
            ssize_t n = read(results_[0], buf, sizeof(buf));
            if (n <= 0)
                break;
            pending_.insert(pending_.end(), buf, buf + n);
        }
        while (pending_.size() >= sizeof(ClientResult)) {
            ClientResult r;
            memcpy(&r, pending_.data(), sizeof(r));
            pending_.erase(pending_.begin(), pending_.begin() + sizeof(r));
            if (r.magic == kResultMagic)
                results_by_id_[r.id] = r;
        }
    }

    int results_[2] = {-1, -1};
    std::deque<Child> children_;
    std::vector<uint8_t> pending_;
    std::map<int, ClientResult> results_by_id_;
};

void Accumulate(Totals *t, const ClientResult &r)
{
    t->sent += r.sent;
    t->received += r.received;
    t->lost += r.lost;
    t->duplicated += r.duplicated;
    t->reordered += r.reordered;
    t->corrupted += r.corrupted;
    t->errors += r.errors;
    t->bytes += r.bytes;
    t->max_latency_ns = std::max(t->max_latency_ns, r.max_latency_ns);
}

std::string ErrText(int code)
{
    return std::to_string(code) + " (" + ipc_strerror(code) + ")";
}

Child *PickAlive(Fleet &fleet, uint64_t *rng, bool running_normal_only)
{
    std::vector<Child *> pool;
    for (Child &c : fleet.children())
        if (c.alive && !c.killed && (!running_normal_only || (c.kind == kNormal && !c.stopped)))
            pool.push_back(&c);
    if (pool.empty())
        return nullptr;
    return pool[NextRandom(rng) % pool.size()];
}

// Waits until the server's fd count is back to `want` (stale connections of
// killed clients are dropped asynchronously); the last stats seen.
ServerStats WaitForFds(const Endpoint &ep, int64_t want, std::vector<std::string> *failures)
{
    ServerStats s = {};
    uint64_t end = NowNs() + 5 * kSecond;
    for (;;) {
        int rc = QueryStats(ep, &s, 10 * kSecond);
        if (rc < 0) {
            failures->push_back("stats request after the load failed: " + ErrText(rc));
            return s;
        }
        if (s.fds_now == want || NowNs() > end)
            return s;
        SleepNs(20 * kMs);
    }
}

void CheckServerEnd(const Endpoint &ep, ServerChild *server, const std::set<std::string> &shm_before,
                    ServerFinal *final, std::vector<std::string> *dev_shm_leaked,
                    std::vector<std::string> *failures)
{
    std::string err;
    if (!server->Stop(final, &err))
        failures->push_back(err);
    else if (final->run_rc != 0)
        failures->push_back("ipc_server_run returned " + ErrText(final->run_rc));
    else if (final->fds_after_destroy != final->fds_before_create)
        failures->push_back("server fds: " + std::to_string(final->fds_before_create) +
                            " before create, " + std::to_string(final->fds_after_destroy) +
                            " after destroy");
    if (final->bad_requests != 0)
        failures->push_back("the server received " + std::to_string(final->bad_requests) +
                            " requests with a wrong checksum");
    for (const std::string &name : ListDevShm())
        if (!shm_before.count(name) && name.find(ep.name) != std::string::npos)
            dev_shm_leaked->push_back(name);
    if (!dev_shm_leaked->empty())
        failures->push_back("/dev/shm objects left behind: " + (*dev_shm_leaked)[0]);
}

}  // namespace

std::string Totals::Line(Transport t) const
{
    char buf[256];
    snprintf(buf, sizeof(buf),
             "stress %s: sent=%llu received=%llu lost=%llu duplicated=%llu reordered=%llu "
             "corrupted=%llu",
             TransportName(t), (unsigned long long)sent, (unsigned long long)received,
             (unsigned long long)lost, (unsigned long long)duplicated,
             (unsigned long long)reordered, (unsigned long long)corrupted);
    return buf;
}

bool Totals::Clean() const
{
    return lost == 0 && duplicated == 0 && reordered == 0 && corrupted == 0 && sent == received;
}

StressReport RunStress(const StressConfig &cfg)
{
    StressReport rep;
    uint64_t t_start = NowNs();
    std::set<std::string> shm_before = ListDevShm();
    ServerChild server;
    std::string err;
    if (!server.Start(cfg.ep, 0, &err)) {
        rep.failures.push_back(err);
        return rep;
    }
    int rc = QueryStats(cfg.ep, &rep.stats_before, 10 * kSecond);
    if (rc < 0) {
        rep.failures.push_back("stats request before the load failed: " + ErrText(rc));
        return rep;
    }
    Fleet fleet;
    if (!fleet.ok()) {
        rep.failures.push_back("pipe failed");
        return rep;
    }
    auto spawn_normal = [&](int id, int requests) {
        rep.spawned++;
        return fleet.Spawn(id, kNormal, -1,
                           [&cfg, id, requests](ClientResult *r) {
                               return NormalClient(cfg, id, requests, r);
                           });
    };
    auto spawn_partial = [&](int id) {
        rep.spawned++;
        return fleet.Spawn(id, kPartial, -1,
                           [&cfg, id](ClientResult *) { return PartialClient(cfg, id); });
    };
    for (int i = 0; i < cfg.clients; i++)
        if (spawn_normal(i, cfg.requests) == nullptr)
            rep.failures.push_back("fork failed");
    int next_id = cfg.clients;
    uint64_t rng = cfg.seed ^ 0xC4A05ull;
    uint64_t deadline = t_start + cfg.deadline_ns;
    uint64_t next_action = NowNs() + 20 * kMs;
    bool hung = false;
    while (fleet.Alive(kNormal) > 0) {
        fleet.Poll(2);
        uint64_t now = NowNs();
        if (now > deadline) {
            hung = true;
            break;
        }
        for (Child &c : fleet.children()) {
            if (c.alive && c.stopped && now >= c.cont_at) {
                kill(c.pid, SIGCONT);
                c.stopped = false;
            }
        }
        if (!cfg.chaos || rep.killed >= cfg.kills || now < next_action)
            continue;
        next_action = now + (1 + NextRandom(&rng) % 10) * kMs;
        uint64_t dice = NextRandom(&rng) % 10;
        if (dice < 4) {
            Child *victim = PickAlive(fleet, &rng, false);
            if (victim == nullptr)
                continue;
            kill(victim->pid, SIGKILL);
            victim->killed = true;
            rep.killed++;
            rep.killed_partial += victim->kind == kPartial;
            spawn_normal(next_id++, cfg.replacement_requests);
        } else if (dice < 8) {
            Child *c = PickAlive(fleet, &rng, true);
            if (c == nullptr)
                continue;
            kill(c->pid, SIGSTOP);
            c->stopped = true;
            c->cont_at = now + (10 + NextRandom(&rng) % 140) * kMs;
            rep.stopped++;
        } else if (cfg.partial_writers) {
            spawn_partial(next_id++);
        }
    }
    for (Child &c : fleet.children()) {
        if (c.alive && c.stopped) {
            kill(c.pid, SIGCONT);
            c.stopped = false;
        }
        if (c.alive && c.kind == kPartial && !c.killed) {
            kill(c.pid, SIGKILL); /* still mid-frame: one more kill */
            c.killed = true;
            rep.killed++;
            rep.killed_partial++;
        }
    }
    if (hung)
        rep.failures.push_back("hang: " + std::to_string(fleet.Alive(kNormal)) +
                               " clients still running after the deadline");
    fleet.KillAll();
    fleet.Poll(0);
    for (const Child &c : fleet.children()) {
        if (c.kind != kNormal || c.killed)
            continue;
        auto it = fleet.results().find(c.id);
        if (c.status != 0 || it == fleet.results().end()) {
            rep.failures.push_back("client " + std::to_string(c.id) + " exited " +
                                   std::to_string(c.status) + " without a result");
            continue;
        }
    }
    for (const auto &[id, r] : fleet.results()) {
        if (r.setup_error != 0)
            rep.failures.push_back("client " + std::to_string(id) +
                                   " could not connect: " + ErrText(r.setup_error));
        if (r.n_err > 0)
            rep.failures.push_back("client " + std::to_string(id) + " failed a call: " +
                                   ErrText(r.err[0].code));
        Accumulate(&rep.totals, r);
        rep.survivors++;
    }
    if (!rep.totals.Clean())
        rep.failures.push_back(rep.totals.Line(cfg.ep.transport));
    if (rep.totals.max_latency_ns > 5 * kSecond)
        rep.failures.push_back("a request took " +
                               std::to_string(rep.totals.max_latency_ns / kMs) + " ms (> 5 s)");
    rep.stats_after = WaitForFds(cfg.ep, rep.stats_before.fds_now, &rep.failures);
    if (rep.stats_after.fds_now != rep.stats_before.fds_now)
        rep.failures.push_back("server fds with one client: " +
                               std::to_string(rep.stats_before.fds_now) + " before the load, " +
                               std::to_string(rep.stats_after.fds_now) + " after");
    CheckServerEnd(cfg.ep, &server, shm_before, &rep.final, &rep.dev_shm_leaked, &rep.failures);
    rep.elapsed_ns = NowNs() - t_start;
    return rep;
}

RestartReport RunRestart(const RestartConfig &cfg)
{
    RestartReport rep;
    ServerChild server;
    std::string err;
    if (!server.Start(cfg.ep, 0, &err)) {
        rep.failures.push_back(err);
        return rep;
    }
    Fleet fleet;
    int control[2];
    if (!fleet.ok() || pipe(control) < 0) {
        rep.failures.push_back("pipe failed");
        return rep;
    }
    for (int i = 0; i < cfg.clients + cfg.receivers; i++) {
        bool loop = i < cfg.clients;
        int cfd = control[0];
        Child *c = fleet.Spawn(i, loop ? kLoop : kReceiver, cfd,
                               [&cfg, i, loop, cfd](ClientResult *r) {
                                   return loop ? LoopClient(cfg, i, cfd, r)
                                               : ReceiverClient(cfg, cfd, r);
                               });
        if (c == nullptr)
            rep.failures.push_back("fork failed");
    }
    close(control[0]);
    auto idle = [&](uint64_t ns) {
        uint64_t end = NowNs() + ns;
        while (NowNs() < end)
            fleet.Poll(5);
    };
    std::vector<uint64_t> kill_times;
    idle(cfg.interval_ns);
    for (int k = 0; k < cfg.restarts; k++) {
        kill_times.push_back(NowNs());
        server.Kill();
        if (!server.Start(cfg.ep, 0, &err)) {
            rep.failures.push_back("restart " + std::to_string(k) + ": " + err);
            break;
        }
        idle(cfg.interval_ns);
    }
    close(control[1]); /* loop clients stop after their current request */
    uint64_t end = NowNs() + 30 * kSecond;
    while (fleet.Alive(kLoop) > 0 && NowNs() < end)
        fleet.Poll(5);
    if (fleet.Alive(kLoop) > 0)
        rep.failures.push_back("hang: loop clients still running 30 s after the stop");
    ServerFinal final;
    if (!server.Stop(&final, &err)) /* receivers see -ECONNRESET and leave */
        rep.failures.push_back(err);
    end = NowNs() + 30 * kSecond;
    while (fleet.Alive(kReceiver) > 0 && NowNs() < end)
        fleet.Poll(5);
    if (fleet.Alive(kReceiver) > 0)
        rep.failures.push_back("hang: receivers still blocked 30 s after the server stopped");
    fleet.KillAll();
    fleet.Poll(0);
    for (const Child &c : fleet.children())
        if (!c.killed && c.status != 0)
            rep.failures.push_back("client " + std::to_string(c.id) + " exited " +
                                   std::to_string(c.status));
    if ((int)fleet.results().size() != cfg.clients + cfg.receivers)
        rep.failures.push_back(std::to_string(fleet.results().size()) + " of " +
                               std::to_string(cfg.clients + cfg.receivers) + " clients reported");
    int restarts = (int)kill_times.size();
    for (const auto &[id, r] : fleet.results()) {
        std::string who = (r.kind == kLoop ? "client " : "receiver ") + std::to_string(id);
        Accumulate(&rep.totals, r);
        rep.reconnects += r.reconnects;
        if (r.setup_error != 0)
            rep.failures.push_back(who + " could not (re)connect: " + ErrText(r.setup_error));
        if (r.unexpected_code != 0)
            rep.failures.push_back(who + " got " + ErrText(r.unexpected_code));
        // Every kill must reach every client as an error, and the final stop
        // every receiver.
        uint64_t want = (uint64_t)restarts + (r.kind == kReceiver ? 1 : 0);
        if (r.errors < want)
            rep.failures.push_back(who + " saw " + std::to_string(r.errors) + " errors for " +
                                   std::to_string(want) + " server deaths");
        if (r.kind == kLoop && r.received_last == 0)
            rep.failures.push_back(who + " got no reply from the last server");
        for (uint64_t t : kill_times) {
            for (uint32_t e = 0; e < r.n_err; e++) {
                if (r.err[e].t_ns >= t) {
                    rep.max_error_delay_ns = std::max(rep.max_error_delay_ns, r.err[e].t_ns - t);
                    break;
                }
            }
        }
    }
    rep.totals.errors = 0; /* expected here: counted as reconnects */
    if (!rep.totals.Clean())
        rep.failures.push_back(rep.totals.Line(cfg.ep.transport));
    if (rep.max_error_delay_ns > 5 * kSecond)
        rep.failures.push_back("a client noticed the server's death only after " +
                               std::to_string(rep.max_error_delay_ns / kMs) + " ms");
    return rep;
}

// ---------------------------------------------------------------- helpers

std::set<std::string> ListDevShm()
{
    std::set<std::string> out;
    DIR *d = opendir("/dev/shm");
    if (d == nullptr)
        return out;
    while (struct dirent *e = readdir(d))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            out.insert(e->d_name);
    closedir(d);
    return out;
}

void CloseFdsExcept(std::initializer_list<int> keep)
{
    std::vector<int> fds;
    DIR *d = opendir("/proc/self/fd");
    if (d == nullptr)
        return;
    int self = dirfd(d);
    while (struct dirent *e = readdir(d)) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd > 2 && fd != self)
            fds.push_back(fd);
    }
    closedir(d);
    for (int fd : fds)
        if (std::find(keep.begin(), keep.end(), fd) == keep.end())
            close(fd);
}

rlim_t RaiseNofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = std::min(want, rl.rlim_max);
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

}  // namespace ipc_stress
