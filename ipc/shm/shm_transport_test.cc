// Tests for the shared-memory transport through the public API, with real
// processes: servers and clients are forked children.
#include <dirent.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ipc/ipc.h"
#include "ipc/testing/process.h"
#include "ipc/testing/testing.h"
// Last: <stdatomic.h> macros clash with <atomic> when included first.
#include "ipc/shm/shm_layout.h"
#include "ipc/shm/shm_client.h"

namespace {

using ipc_testing::ChildProcess;
using ipc_testing::Client;
using ipc_testing::ConnectShm;
using ipc_testing::CountMappings;
using ipc_testing::CountOpenFds;
using ipc_testing::CountShmSegments;
using ipc_testing::Echo;
using ipc_testing::EchoPattern;
using ipc_testing::HeldChild;
using ipc_testing::MatchesPattern;
using ipc_testing::NowNs;
using ipc_testing::Pattern;
using ipc_testing::Pipe;
using ipc_testing::Scaled;
using ipc_testing::ScriptedEchoHandler;
using ipc_testing::Server;
using ipc_testing::ServerProcess;
using ipc_testing::ShmServer;
using ipc_testing::UniqueName;

constexpr uint64_t kMs = 1000000ull;
constexpr uint64_t kSec = 1000000000ull;

std::set<std::string> ListDir(const char *path)
{
    std::set<std::string> out;
    if (DIR *d = opendir(path)) {
        while (struct dirent *e = readdir(d))
            out.insert(e->d_name);
        closedir(d);
    }
    return out;
}

// Nothing may ever appear in /dev/shm.
class DevShmEnv : public ::testing::Environment {
  public:
    void SetUp() override { before_ = ListDir("/dev/shm"); }
    void TearDown() override
    {
        EXPECT_EQ(ListDir("/dev/shm"), before_) << "/dev/shm changed";
    }

  private:
    std::set<std::string> before_;
};
const auto *const g_env = ::testing::AddGlobalTestEnvironment(new DevShmEnv);

// Rings of ring_size bytes and this bound on queued replies (0: default).
ipc_server_options Rings(size_t ring_size, size_t max_pending_output = 0)
{
    ipc_server_options o = {};
    o.ring_size = ring_size;
    o.max_pending_output = max_pending_output;
    return o;
}

// The segment a connected shm client maps, read through the private client
// object: how these tests play a hostile client.
uint8_t *ClientSegment(ipc_client *c, size_t *size)
{
    ipc__shm_client *sc = ipc__shm_client_of(c);
    if (sc == nullptr)
        return nullptr;
    *size = sc->seg.size;
    return sc->seg.base;
}

// The ring in that segment that the server writes the replies into.
ipc__spsc_shared *ResponseRing(ipc_client *c)
{
    size_t size = 0;
    uint8_t *seg = ClientSegment(c, &size);
    if (seg == nullptr)
        return nullptr;
    auto *hdr = reinterpret_cast<ipc__shm_seg_header *>(seg);
    return reinterpret_cast<ipc__spsc_shared *>(seg + hdr->resp_offset);
}

// Each test has a name of its own, served from a child process running
// ipc_server_run(ScriptedEchoHandler) (Serve) or from this process, driven
// by hand (ServeHere). A served child must stop cleanly at the end.
class ShmTransport : public ::testing::Test {
  protected:
    // Forks the server: its listen() result (0: it listens).
    int Serve(size_t max_clients, ipc_server_options options = {})
    {
        server_.emplace(ShmServer(name_, max_clients, options), ScriptedEchoHandler);
        return server_->listen_rc();
    }

    // A connected client, or null with the error in *rc.
    Client Connect(size_t max_clients, int *rc = nullptr) const
    {
        return Client(ConnectShm(name_, max_clients, rc));
    }

    // A server in this process (here_): 0 once it listens. `client`, if any,
    // runs in a child (client_) forked before the server exists, so that it
    // holds none of its fds, and starts once the server listens: the first
    // byte of go_. A second byte is the test's own to send.
    int ServeHere(size_t max_clients, ipc_server_options options = {},
                  const std::function<int()> &client = nullptr)
    {
        if (client) {
            go_.emplace();
            client_.emplace([&] {
                go_->CloseWrite();
                return go_->Get() == 'g' ? client() : 99;
            });
        }
        here_.reset(ipc_server_create_shm_ex(name_.c_str(), max_clients, &options));
        int rc = here_ != nullptr ? ipc_server_listen(here_.get()) : -EINVAL;
        if (rc == 0 && client && !go_->Put('g'))
            rc = -EPIPE;
        return rc;
    }

    void TearDown() override
    {
        if (server_ && server_->ok())
            EXPECT_EQ(server_->Stop(), 0) << "the server did not stop cleanly";
    }

    void HostileRound(const std::function<void(uint8_t *seg, ipc_client *c)> &scribble,
                      bool own_response_ring_damaged = false);

    // Shared-memory names have at most 64 bytes: the test's name is cut.
    const std::string name_ =
        UniqueName(std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())
                       .substr(0, 24));
    std::optional<ServerProcess> server_;
    Server here_;
    std::optional<Pipe> go_;
    std::optional<ChildProcess> client_;
};

TEST_F(ShmTransport, FactoriesValidateNames)
{
    EXPECT_EQ(ipc_server_create_shm("", 4), nullptr);
    EXPECT_EQ(ipc_server_create_shm("a/b", 4), nullptr);
    EXPECT_EQ(ipc_server_create_shm("sp ace", 4), nullptr);
    EXPECT_EQ(ipc_server_create_shm(std::string(65, 'x').c_str(), 4), nullptr);
    EXPECT_EQ(ipc_server_create_shm("ok", 0), nullptr);
    EXPECT_EQ(ipc_server_create_shm("ok", 4097), nullptr);
    EXPECT_EQ(ipc_client_create_shm("a\nb", 4), nullptr);
    EXPECT_EQ(ipc_client_create_shm(std::string(65, 'x').c_str(), 4), nullptr);
    ipc_server_options bad = {};
    bad.ring_size = 4096 + 1;
    EXPECT_EQ(ipc_server_create_shm_ex("ok", 4, &bad), nullptr);
    EXPECT_NE(Server(ipc_server_create_shm(std::string(64, 'x').c_str(), 4096)), nullptr);
    EXPECT_NE(Client(ipc_client_create_shm("Az09._-", 1)), nullptr);
}

TEST_F(ShmTransport, ConnectWithoutServer)
{
    int rc;
    EXPECT_EQ(Connect(2, &rc), nullptr);
    EXPECT_EQ(rc, -ECONNREFUSED);
}

TEST_F(ShmTransport, ClientGivenZeroTakesTheServersCapacityAndANonZeroOneIsChecked)
{
    ASSERT_EQ(Serve(3), 0);
    Client any(ipc_client_create_shm(name_.c_str(), 0));
    ASSERT_NE(any, nullptr);
    EXPECT_EQ(ipc_client_shm_capacity(any.get()), 0u) << "nothing is known before connect";
    ASSERT_EQ(ipc_client_connect(any.get()), 0);
    EXPECT_EQ(ipc_client_shm_capacity(any.get()), 3u);
    EXPECT_EQ(Echo(any.get(), "ping"), 0);
    int rc;
    Client same = Connect(3, &rc);
    ASSERT_NE(same, nullptr) << rc;
    EXPECT_EQ(Echo(same.get(), "ping"), 0);
    Client other(ipc_client_create_shm(name_.c_str(), 4));
    ASSERT_NE(other, nullptr);
    EXPECT_EQ(ipc_client_connect(other.get()), -EINVAL);
    EXPECT_EQ(ipc_client_shm_capacity(other.get()), 3u) << "a refusal still tells the server's";
    other.reset();
    // The refused client's slot comes back: the third of three still fits
    // (once the server has seen it leave).
    Client third;
    for (int tries = 0; third == nullptr && tries < 500; tries++) {
        third = Connect(0, &rc);
        if (third == nullptr && rc != -EAGAIN)
            break;
        if (third == nullptr)
            usleep(10 * 1000);
    }
    ASSERT_NE(third, nullptr) << rc;
    EXPECT_EQ(Echo(third.get(), "ping"), 0);
    EXPECT_EQ(ipc_client_create_shm(name_.c_str(), 4097), nullptr);
    Client sock(ipc_client_create_socket("/tmp/ipc-cap-test.sock"));
    EXPECT_EQ(ipc_client_shm_capacity(sock.get()), 0u);
    EXPECT_EQ(ipc_client_shm_capacity(nullptr), 0u);
}

// ------------------------------------------------------------------ echo

TEST_F(ShmTransport, EchoSizes)
{
    ASSERT_EQ(Serve(4), 0);
    Client c = Connect(4);
    ASSERT_NE(c, nullptr);
    for (size_t len : {0u, 1u, 4096u, 65536u, 1u << 20})
        for (int rep = 0; rep < 3; rep++)
            ASSERT_EQ(EchoPattern(c.get(), len, len), 0) << len;
    // Above the ring's limit (4 MiB / 2 - 16): refused, never hangs.
    std::vector<uint8_t> huge((2u << 20) - 15), buf((1 << 20) + 16);
    EXPECT_EQ(ipc_client_send(c.get(), huge.data(), huge.size(), 0), -EMSGSIZE);
    // The connection is still fine.
    ASSERT_EQ(Echo(c.get(), huge.data(), 100), 0);
    // Too small a receive buffer: -EMSGSIZE, discarded whole.
    ASSERT_EQ(ipc_client_send(c.get(), huge.data(), 1000, 0), 0);
    ASSERT_EQ(ipc_client_send(c.get(), "z", 1, 0), 0);
    EXPECT_EQ(ipc_client_recv(c.get(), buf.data(), 999, 0), -EMSGSIZE);
    EXPECT_EQ(ipc_client_recv(c.get(), buf.data(), buf.size(), 0), 1);
    // Nothing more: a bounded recv times out.
    uint64_t t0 = NowNs();
    EXPECT_EQ(ipc_client_recv(c.get(), buf.data(), buf.size(), 30 * kMs), -ETIMEDOUT);
    EXPECT_GE(NowNs() - t0, 30 * kMs);
    // Close and connect the same object again.
    ipc_client_close(c.get());
    EXPECT_EQ(ipc_client_send(c.get(), "x", 1, 0), -ENOTCONN);
    ASSERT_EQ(ipc_client_connect(c.get()), 0);
    EXPECT_EQ(ipc_client_connect(c.get()), -EISCONN);
    ASSERT_EQ(Echo(c.get(), huge.data(), 4096), 0);
}

TEST_F(ShmTransport, MessageLargerThanSmallRing)
{
    ASSERT_EQ(Serve(1, Rings(4096)), 0);
    Client c = Connect(1);
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> msg(4096);
    EXPECT_EQ(ipc_client_send(c.get(), msg.data(), 2033, 0), -EMSGSIZE);
    EXPECT_EQ(ipc_client_send(c.get(), msg.data(), 4096, 0), -EMSGSIZE);
    EXPECT_EQ(EchoPattern(c.get(), 2032, 7), 0) << "largest = ring/2 - 16";
}

// Random sizes over a 4 KiB ring: thousands of wraps both ways.
TEST_F(ShmTransport, WrapAroundRandomSizesSmallRing)
{
    ASSERT_EQ(Serve(2, Rings(4096)), 0);
    Client c = Connect(2);
    ASSERT_NE(c, nullptr);
    std::mt19937_64 rng(42);
    uint64_t frames = Scaled(40000), t0 = NowNs();
    for (uint64_t i = 0; i < frames; i++) {
        size_t len = rng() % 4 == 0 ? rng() % 2033 : rng() % 200;
        ASSERT_EQ(EchoPattern(c.get(), len, i), 0) << i;
    }
    printf("echo over 4 KiB rings: %llu round trips, %.1f us each\n", (unsigned long long)frames,
           (double)(NowNs() - t0) / (double)frames / 1000.0);
    // Pipelined: several requests in flight, replies in order.
    std::vector<uint8_t> buf(4096);
    for (uint64_t i = 0; i < Scaled(5000); i++) {
        size_t lens[3];
        for (uint64_t k = 0; k < 3; k++) {
            lens[k] = rng() % 600;
            std::vector<uint8_t> msg = Pattern(lens[k], i * 3 + k);
            ASSERT_EQ(ipc_client_send(c.get(), msg.data(), lens[k], 10 * kSec), 0);
        }
        for (uint64_t k = 0; k < 3; k++) {
            ASSERT_EQ(ipc_client_recv(c.get(), buf.data(), buf.size(), 10 * kSec),
                      (ssize_t)lens[k]);
            ASSERT_TRUE(MatchesPattern(buf.data(), lens[k], i * 3 + k));
        }
    }
}

// Hot-path latency with the default spin (printed, not asserted).
TEST_F(ShmTransport, SmallMessageLatency)
{
    ASSERT_EQ(Serve(1), 0);
    Client c = Connect(1);
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> msg(64, 1);
    uint64_t n = Scaled(100000), t0 = NowNs();
    for (uint64_t i = 0; i < n; i++)
        ASSERT_EQ(Echo(c.get(), msg.data(), msg.size()), 0);
    printf("64 B echo round trip: %.2f us (%llu round trips)\n",
           (double)(NowNs() - t0) / (double)n / 1000.0, (unsigned long long)n);
}

// The client's side of a run loop's wake: sends these 4-byte requests back
// to back, sleeps on its response ring's waitpoint with no spin and no
// liveness slices until all their replies are in (each one 16-byte record),
// then reads them. A lost wake sleeps to the 5 s deadline (whose last look
// then finds the replies): anything near it is a failure, not slowness.
struct TailReaches {
    ipc__spsc_shared *ring;
    uint64_t value;
};

bool IsTailReached(void *arg)
{
    auto *t = static_cast<TailReaches *>(arg);
    return atomic_load_explicit(&t->ring->tail, memory_order_acquire) >= t->value;
}

void SendThenSleepForReplies(ipc_client *c, const std::vector<const char *> &requests)
{
    ipc__spsc_shared *resp = ResponseRing(c);
    ASSERT_NE(resp, nullptr);
    TailReaches t{resp, atomic_load(&resp->tail) + 16u * requests.size()};
    for (const char *r : requests)
        ASSERT_EQ(ipc_client_send(c, r, 4, 0), 0);
    uint64_t t0 = NowNs();
    ASSERT_EQ(ipc__wait_until(&resp->data, IsTailReached, &t, 0, t0 + 5 * kSec), 0);
    ASSERT_LT(NowNs() - t0, 4 * kSec) << "the replies came without a wake";
    char buf[16];
    for (const char *r : requests) {
        ASSERT_EQ(ipc_client_recv(c, buf, sizeof(buf), 0), 4);
        ASSERT_EQ(memcmp(buf, r, 4), 0);
    }
}

// The run loop publishes its reply without a wake and wakes the client once,
// when it releases the request (one fence for both): a client asleep on its
// response ring is woken, racing the reply (plain echo) or long asleep
// before it (a slow handler).
TEST_F(ShmTransport, RunLoopReplyWakesAClientAsleepOnItsResponseRing)
{
    ASSERT_EQ(Serve(1), 0);
    Client c = Connect(1);
    ASSERT_NE(c, nullptr);
    uint64_t rounds = Scaled(20000);
    for (uint64_t i = 0; i < rounds + 20; i++)
        ASSERT_NO_FATAL_FAILURE(SendThenSleepForReplies(c.get(), {i < rounds ? "fast" : "SLOW"}))
            << "round " << i;
}

// A batch publishes its replies unannounced and wakes the client once, at
// its end: requests sent back to back are served as one batch, and a client
// asleep on its response ring is woken for all.
TEST_F(ShmTransport, RunLoopBatchWakesAClientAsleepOnItsResponseRing)
{
    ASSERT_EQ(Serve(1), 0);
    Client c = Connect(1);
    ASSERT_NE(c, nullptr);
    const std::vector<const char *> batch = {"fast", "fast", "fast"};
    const std::vector<const char *> slow_batch = {"fast", "fast", "fast", "SLOW"};
    uint64_t rounds = Scaled(5000);
    for (uint64_t i = 0; i < rounds + 10; i++)  // last rounds: the client is long asleep
        ASSERT_NO_FATAL_FAILURE(SendThenSleepForReplies(c.get(), i < rounds ? batch : slow_batch))
            << "round " << i;
}

// Rss and Size (kB) of the mapping that starts at addr in /proc/<pid>/smaps,
// or (addr 0) of the first whose first line names `file`; -1 when not found.
std::pair<long, long> MappingRssAndSize(pid_t pid, uintptr_t addr, const char *file)
{
    FILE *f = fopen(("/proc/" + std::to_string(pid) + "/smaps").c_str(), "r");
    if (!f)
        return {-1, -1};
    char line[4096];
    bool in = false;
    long rss = -1, size = -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s ", &lo, &hi, perms) == 3) {  // a mapping's first line
            if (in)
                break;
            in = addr != 0 ? lo == addr : strstr(line, file) != nullptr;
            continue;
        }
        if (in && sscanf(line, "Size: %ld kB", &size) == 1)
            continue;
        if (in && sscanf(line, "Rss: %ld kB", &rss) == 1)
            continue;
    }
    fclose(f);
    return {rss, size};
}

// Connect maps every page of both rings on both sides, so that no request
// or reply takes a page fault on its first pass.
TEST_F(ShmTransport, ConnectMapsEveryPageOfTheSegmentOnBothSides)
{
    ASSERT_EQ(Serve(1), 0);
    Client c = Connect(1);
    ASSERT_NE(c, nullptr);
    size_t size = 0;
    uint8_t *seg = ClientSegment(c.get(), &size);
    ASSERT_NE(seg, nullptr);
    auto mine = MappingRssAndSize(getpid(), (uintptr_t)seg, nullptr);
    EXPECT_EQ(mine.second, (long)(size / 1024));
    EXPECT_EQ(mine.first, mine.second) << "client: pages of the segment not mapped yet";
    auto theirs = MappingRssAndSize(server_->pid(), 0, "/memfd:ipc-shm (deleted)");
    EXPECT_EQ(theirs.second, (long)(size / 1024));
    EXPECT_EQ(theirs.first, theirs.second) << "server: pages of the segment not mapped yet";
}

// --------------------------------------------------------- many clients

TEST_F(ShmTransport, ManyClientProcessesAtOnce)
{
    constexpr uint64_t kClients = 6;
    ASSERT_EQ(Serve(8), 0);
    uint64_t rounds = Scaled(3000);
    std::vector<ChildProcess> kids;
    kids.reserve(kClients);
    for (uint64_t k = 0; k < kClients; k++)
        kids.emplace_back([this, k, rounds] {
            Client c = Connect(8);
            if (!c)
                return 10;
            for (uint64_t i = 0; i < rounds; i++)
                if (EchoPattern(c.get(), (i * 131 + k * 17) % 3000, i * 100 + k) != 0)
                    return 11;
            return 0;
        });
    for (ChildProcess &kid : kids)
        EXPECT_EQ(kid.Wait(120000), 0);
}

TEST_F(ShmTransport, AllSlotsTakenThenReuseAfterClose)
{
    ASSERT_EQ(Serve(2), 0);
    Client a = Connect(2), b = Connect(2);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    int rc;
    uint64_t t0 = NowNs();
    EXPECT_EQ(Connect(2, &rc), nullptr);
    EXPECT_EQ(rc, -EAGAIN);
    EXPECT_LT(NowNs() - t0, 2 * kSec) << "-EAGAIN must be immediate";
    // Closed: the slot is free again at once.
    a.reset();
    Client c = Connect(2, &rc);
    ASSERT_NE(c, nullptr) << rc;
    EXPECT_EQ(Echo(b.get(), "b"), 0);
    EXPECT_EQ(Echo(c.get(), "c"), 0);
    // A client that believes in another max_clients is refused.
    EXPECT_EQ(Connect(3, &rc), nullptr);
    EXPECT_TRUE(rc == -EINVAL || rc == -EAGAIN) << rc;
    b.reset();
    EXPECT_EQ(Connect(3, &rc), nullptr);
    EXPECT_EQ(rc, -EINVAL);
}

// A client process to be killed: ok() once it connected (and echoed once:
// kEchoThenIdle); it then idles, or (kFlood) sends requests of random sizes
// without reading, until it is killed.
enum ClientThen { kEchoThenIdle, kIdle, kFlood };

HeldChild ClientToKill(const std::string &name, size_t max_clients, ClientThen then,
                       uint64_t seed = 0)
{
    // Set up and used by the child alone, in its copy of this frame.
    Client c;
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> msg(1500, 7);
    auto connect = [&] {
        c.reset(ConnectShm(name, max_clients));
        if (c == nullptr)
            return 1;
        return then == kEchoThenIdle && Echo(c.get(), "hi") != 0 ? 2 : 0;
    };
    auto flood = [&] { ipc_client_send(c.get(), msg.data(), rng() % msg.size(), 0); };
    return HeldChild(connect, then == kFlood ? std::function<void()>(flood) : nullptr);
}

TEST_F(ShmTransport, SlotReuseAfterSigkill)
{
    ASSERT_EQ(Serve(1), 0);
    for (int round = 0; round < 5; round++) {
        HeldChild kid = ClientToKill(name_, 1, kEchoThenIdle);
        ASSERT_TRUE(kid.ok());
        kid.Kill();
        uint64_t t0 = NowNs();
        int rc;
        Client c = Connect(1, &rc);
        ASSERT_NE(c, nullptr) << rc;
        printf("slot reusable %.2f ms after the SIGKILLed client was reaped\n",
               (double)(NowNs() - t0) / 1e6);
        EXPECT_EQ(Echo(c.get(), "x"), 0);
    }
}

// The server notices a dead idle client by itself, through the socket
// hang-up (no new connection needed): its socket and segment go away in
// the server process, and the other client is not slowed.
TEST_F(ShmTransport, DeadClientNoticedQuickly)
{
    ASSERT_EQ(Serve(2), 0);
    Client a = Connect(2);
    ASSERT_NE(a, nullptr);
    pid_t srv = server_->pid();
    for (int round = 0; round < 5; round++) {
        HeldChild kid = ClientToKill(name_, 2, kEchoThenIdle);
        ASSERT_TRUE(kid.ok());
        usleep(20000);
        int fds0 = CountOpenFds(srv);
        ASSERT_EQ(CountShmSegments(srv), 2);
        uint64_t t0 = NowNs(), noticed = 0;
        kid.Kill();
        while (NowNs() - t0 < 5 * kSec) {
            if (CountOpenFds(srv) <= fds0 - 1 && CountShmSegments(srv) == 1) {
                noticed = NowNs() - t0;
                break;
            }
            usleep(500);
        }
        ASSERT_NE(noticed, 0u) << "the dead client's socket and segment are still held";
        uint64_t worst = 0;
        for (int i = 0; i < 200; i++) {
            uint64_t t1 = NowNs();
            ASSERT_EQ(Echo(a.get(), "a"), 0);
            worst = std::max(worst, NowNs() - t1);
        }
        printf("dead client reclaimed %.2f ms after SIGKILL; slowest echo of the live "
               "client just after: %.1f us\n", noticed / 1e6, worst / 1e3);
        EXPECT_LT(noticed, 2 * kSec);
    }
}

// Many SIGKILLed clients, idle or mid-write; the server leaks nothing.
TEST_F(ShmTransport, KillReconnectCyclesNoLeak)
{
    ASSERT_EQ(Serve(1, Rings(4096, 64 << 10)), 0);
    pid_t srv = server_->pid();
    std::mt19937_64 rng(9);
    auto cycle = [&](int i) {
        bool mid_write = i % 2 == 1;
        HeldChild kid = ClientToKill(name_, 1, mid_write ? kFlood : kIdle, rng());
        EXPECT_TRUE(kid.ok()) << "cycle " << i;
        if (mid_write)
            usleep((useconds_t)(rng() % 300));
        kid.Kill();
        return kid.ok();
    };
    for (int i = 0; i < 20; i++)
        ASSERT_TRUE(cycle(i));
    usleep(300000);
    int fds0 = CountOpenFds(srv), maps0 = CountMappings(srv);
    EXPECT_EQ(CountShmSegments(srv), 0);
    uint64_t cycles = Scaled(10000), t0 = NowNs();
    for (uint64_t i = 0; i < cycles; i++)
        ASSERT_TRUE(cycle((int)i));
    double per = (double)(NowNs() - t0) / (double)cycles / 1e6;
    usleep(300000);  // the last hang-up is reclaimed
    int fds1 = CountOpenFds(srv), maps1 = CountMappings(srv);
    printf("%llu kill/reconnect cycles, %.2f ms each; server fds %d -> %d, maps %d -> %d\n",
           (unsigned long long)cycles, per, fds0, fds1, maps0, maps1);
    EXPECT_EQ(fds1, fds0);
    EXPECT_EQ(CountShmSegments(srv), 0) << "a client segment is still mapped";
#if defined(IPC_TESTING_ASAN) || defined(IPC_TESTING_TSAN)
    // Sanitizer allocators map new regions as they go: a leak would still
    // show as one mapping per cycle.
    EXPECT_LE(maps1, maps0 + 40);
#else
    EXPECT_LE(maps1, maps0 + 2);  // allocator arenas may split a mapping
#endif
    // Still serving.
    Client c = Connect(1);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(Echo(c.get(), "ok"), 0);
}

// ------------------------------------------------------- server death

TEST_F(ShmTransport, ServerDyingWithAClientInItsBacklogGivesConnrefused)
{
    ASSERT_EQ(Serve(1), 0);
    pid_t victim = server_->pid();
    ASSERT_EQ(kill(victim, SIGSTOP), 0);  // it will never accept us
    std::thread killer([&] {
        usleep(100000);  // the client waits for its hello by then
        kill(victim, SIGKILL);
    });
    int rc = 0;
    Client c = Connect(1, &rc);
    killer.join();
    server_->Kill();
    EXPECT_EQ(c, nullptr);
    EXPECT_EQ(rc, -ECONNREFUSED);
}

TEST_F(ShmTransport, ServerKillWakesBlockedClient)
{
    ASSERT_EQ(Serve(1), 0);
    Client c = Connect(1);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(Echo(c.get(), "x"), 0);
    std::atomic<uint64_t> killed_at{0};
    pid_t victim = server_->pid();
    std::thread killer([&] {
        usleep(100000);
        killed_at = NowNs();
        kill(victim, SIGKILL);
    });
    std::vector<uint8_t> buf(64);
    ssize_t rc = ipc_client_recv(c.get(), buf.data(), buf.size(), 0);  // no limit
    uint64_t back = NowNs();
    killer.join();
    server_->Kill();
    EXPECT_EQ(rc, -ECONNRESET);
    double ms = (double)(back - killed_at.load()) / 1e6;
    printf("blocked recv returned -ECONNRESET %.1f ms after the server's SIGKILL\n", ms);
    EXPECT_LT(ms, 2000.0);
    EXPECT_EQ(ipc_client_recv(c.get(), buf.data(), buf.size(), 0), -ECONNRESET);
    EXPECT_LT(ipc_client_send(c.get(), "x", 1, 0), 0);
    c.reset();

    // Stale restart: the name is free at once after the crash.
    EXPECT_EQ(Serve(1), 0);
    c = Connect(1);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(Echo(c.get(), "y"), 0);
}

TEST_F(ShmTransport, SecondServerGetsEaddrinuse)
{
    ASSERT_EQ(Serve(2), 0);
    Server second(ipc_server_create_shm(name_.c_str(), 2));
    ASSERT_NE(second, nullptr);
    EXPECT_EQ(ipc_server_listen(second.get()), -EADDRINUSE);
    second.reset();
    Client c = Connect(2);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(Echo(c.get(), "z"), 0) << "the first server is untouched";
}

// Two servers racing for one name: exactly one wins.
TEST_F(ShmTransport, RacingServersExactlyOneWins)
{
    for (int round = 0; round < 10; round++) {
        std::string name = name_ + "-" + std::to_string(round);
        auto *go = static_cast<std::atomic<int> *>(ipc_testing::SharedAlloc(4096));
        auto *results = reinterpret_cast<std::atomic<int> *>(go + 1);
        std::vector<ChildProcess> kids;
        kids.reserve(4);
        for (int k = 0; k < 4; k++)
            kids.emplace_back([&, k] {
                Server s(ipc_server_create_shm(name.c_str(), 1));
                while (go->load() == 0) {
                }
                results[k] = ipc_server_listen(s.get()) + 1000;
                while (go->load() == 1)
                    usleep(1000);
                return 0;
            });
        go->store(1);
        int done = 0;
        for (uint64_t t0 = NowNs(); done < 4 && NowNs() - t0 < 10 * kSec;) {
            done = 0;
            for (int k = 0; k < 4; k++)
                done += results[k].load() != 0;
        }
        int winners = 0, inuse = 0;
        for (int k = 0; k < 4; k++) {
            winners += results[k].load() == 1000;
            inuse += results[k].load() == 1000 - EADDRINUSE;
        }
        go->store(2);
        for (ChildProcess &kid : kids)
            kid.Wait();
        EXPECT_EQ(winners, 1);
        EXPECT_EQ(inuse, 3);
        munmap(go, 4096);
    }
}

// ---------------------------------------------------- hostile clients

// A client that scribbles over its own segment is dropped (its recv ends
// with -ECONNRESET, or -EPROTO if it broke its own response ring too) while
// another client is served; then the hostile slot comes back and the server,
// which never crashed (ASan would have aborted it), shuts down cleanly.
void ShmTransport::HostileRound(const std::function<void(uint8_t *seg, ipc_client *c)> &scribble,
                                bool own_response_ring_damaged)
{
    ASSERT_EQ(Serve(2, Rings(8192)), 0);
    ChildProcess bad([&] {
        Client c = Connect(2);
        if (!c)
            return 10;
        if (Echo(c.get(), "hi") != 0)
            return 11;
        size_t size = 0;
        uint8_t *seg = ClientSegment(c.get(), &size);
        if (!seg || size != ipc__shm_segment_size(8192))
            return 12;
        scribble(seg, c.get());
        std::vector<uint8_t> buf(2048);
        ssize_t n;
        do  // our own scribbles may look long
            n = ipc_client_recv(c.get(), buf.data(), buf.size(), 10 * kSec);
        while (n >= 0 || n == -EMSGSIZE);
        if (n == -ECONNRESET || (own_response_ring_damaged && n == -EPROTO))
            return 0;
        fprintf(stderr, "the hostile client's recv ended with %zd\n", n);
        return 13;
    });
    Client good = Connect(2);
    ASSERT_NE(good, nullptr);
    std::vector<uint8_t> msg(500, 3), buf(600);
    uint64_t worst = 0;
    std::optional<int> status;
    for (uint64_t t0 = NowNs(); !status && NowNs() - t0 < 20 * kSec;) {
        uint64_t t1 = NowNs();
        ASSERT_EQ(Echo(good.get(), msg.data(), msg.size()), 0);
        worst = std::max(worst, NowNs() - t1);
        status = bad.Poll();
    }
    EXPECT_EQ(status ? *status : bad.Wait(1), 0);
    printf("slowest good echo meanwhile %.1f us\n", worst / 1e3);
    Client again = Connect(2);
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(Echo(again.get(), msg.data(), 10), 0);
    ASSERT_EQ(ipc_client_send(again.get(), "SHUTDOWN", 8, 0), 0);
    EXPECT_EQ(ipc_client_recv(again.get(), buf.data(), buf.size(), 10 * kSec), 3);
    EXPECT_EQ(server_->Join(), 0);
}

TEST_F(ShmTransport, HostileClientGarbageTailIsDropped)
{
    HostileRound([](uint8_t *seg, ipc_client *c) {
        auto *req = reinterpret_cast<ipc__spsc_shared *>(seg + ipc__shm_req_offset());
        atomic_store(&req->tail, 0xdeadbeefcafeull);
        (void)ipc_client_send(c, "x", 1, 0);  // rings the doorbell
        atomic_store(&req->tail, 0xdeadbeefcafeull);
    });
}

TEST_F(ShmTransport, HostileClientGarbageRecordIsDropped)
{
    HostileRound([](uint8_t *seg, ipc_client *) {
        auto *req = reinterpret_cast<ipc__spsc_shared *>(seg + ipc__shm_req_offset());
        uint8_t *data = seg + ipc__shm_req_offset() + IPC_SHM_RING_CTRL_SIZE;
        uint64_t tail = atomic_load(&req->tail);
        uint32_t bad[2] = {100000, 0};  // longer than the ring
        memcpy(data + (tail & 8191), bad, sizeof(bad));
        atomic_store(&req->tail, tail + 8);
    });
}

TEST_F(ShmTransport, HostileClientGarbageResponseHeadIsDropped)
{
    HostileRound([](uint8_t *seg, ipc_client *c) {
        auto *resp = reinterpret_cast<ipc__spsc_shared *>(seg + ipc__shm_resp_offset(8192));
        atomic_store(&resp->head, 0x123456789ull);
        // The server reads our head only once its cached copy says "full":
        // send without reading until the replies fill the ring.
        std::vector<uint8_t> msg(1000, 1);
        for (int i = 0; i < 40; i++)
            if (ipc_client_send(c, msg.data(), msg.size(), kSec) != 0)
                break;
    });
}

// Random garbage anywhere in the segment (header, indices, records,
// waitpoints) while sending, then a certainly bad tail.
TEST_F(ShmTransport, HostileClientRandomScribbles)
{
    HostileRound([](uint8_t *seg, ipc_client *c) {
        std::mt19937_64 rng(getpid());
        size_t size = ipc__shm_segment_size(8192);
        std::vector<uint8_t> msg(3000, 5);
        for (int i = 0; i < 3000; i++) {
            int writes = (int)(rng() % 4);
            for (int k = 0; k < writes; k++) {
                size_t off = rng() % 3 == 0 ? ipc__shm_req_offset() + (rng() % 512)
                                            : rng() % (size - 8);
                uint64_t v = rng();
                if (rng() % 2)
                    v %= 20000;
                memcpy(seg + (off & ~(size_t)7), &v, 8);
            }
            if (ipc_client_send(c, msg.data(), rng() % msg.size(), 20 * kMs) == -EPIPE)
                break;
        }
        auto *req = reinterpret_cast<ipc__spsc_shared *>(seg + ipc__shm_req_offset());
        atomic_store(&req->tail, 0xfedcba987654321ull);
    }, true);
}

// -------------------------------------------- server-side API details

TEST_F(ShmTransport, ServerApiErrors)
{
    ASSERT_EQ(ServeHere(2), 0);
    ipc_server *s = here_.get();
    std::vector<uint8_t> buf(16);
    EXPECT_EQ(ipc_server_recv(s, 0, buf.data(), buf.size()), -ENOENT);
    EXPECT_EQ(ipc_server_recv(s, 5, buf.data(), buf.size()), -ENOENT);
    EXPECT_EQ(ipc_server_send(s, 1, "x", 1), -ENOENT);
    EXPECT_EQ(ipc_server_listen(s), -EALREADY);
    uint64_t t0 = NowNs();
    EXPECT_EQ(ipc_server_wait_for_data(s, 20 * kMs), -ETIMEDOUT);
    EXPECT_GE(NowNs() - t0, 20 * kMs);
    ipc_server_close(s);
    EXPECT_EQ(ipc_server_listen(s), 0) << "listen again after close";
}

// Replies that do not fit are queued and flushed when the client reads;
// an application that sends reply after reply, without taking requests, to
// a client that never reads gets it dropped at twice max_pending_output
// (a run loop never gets there: it stops taking requests at the bound).
TEST_F(ShmTransport, SlowReaderQueuedThenNonReaderOfManyRepliesDropped)
{
    auto client = [this] {
        Client c = Connect(1);
        if (!c)
            return 10;
        if (ipc_client_send(c.get(), "start", 5, 0) != 0)
            return 11;
        usleep(200000);  // let the replies pile up
        std::vector<uint8_t> buf(2000);
        for (uint64_t i = 0; i < 30; i++) {
            if (ipc_client_recv(c.get(), buf.data(), buf.size(), 10 * kSec) != 1000)
                return 12;
            if (!MatchesPattern(buf.data(), 1000, i))
                return 13;
        }
        if (ipc_client_send(c.get(), "done", 4, 0) != 0)
            return 14;
        // Now stop reading until the server has dropped us.
        if (go_->Get() != 'g')
            return 15;
        ssize_t n;
        while ((n = ipc_client_recv(c.get(), buf.data(), buf.size(), 10 * kSec)) >= 0) {
        }
        return n == -ECONNRESET ? 0 : 16;
    };
    ASSERT_EQ(ServeHere(1, Rings(4096, 40000), client), 0);
    ipc_server *s = here_.get();
    std::vector<uint8_t> buf(64);
    int id = ipc_server_wait_for_data(s, 10 * kSec);
    ASSERT_GE(id, 0);
    ASSERT_EQ(ipc_server_recv(s, id, buf.data(), buf.size()), 5);
    for (uint64_t i = 0; i < 30; i++) {  // 30 KB into a 4 KiB ring: most queue
        std::vector<uint8_t> msg = Pattern(1000, i);
        ASSERT_EQ(ipc_server_send(s, id, msg.data(), 1000), 0) << i;
    }
    // Flushed from inside wait_for_data, woken by the client's reads.
    ASSERT_EQ(ipc_server_wait_for_data(s, 10 * kSec), id);
    ASSERT_EQ(ipc_server_recv(s, id, buf.data(), buf.size()), 4);
    // The client waits for go_ now: it does not read.
    std::vector<uint8_t> msg(1000);
    int rc = 0, sent = 0;
    while ((rc = ipc_server_send(s, id, msg.data(), 1000)) == 0)
        sent++;
    EXPECT_EQ(rc, -ENOBUFS);
    ASSERT_TRUE(go_->Put('g'));
    // A 1000-byte reply costs 1024 bytes queued; 4 more fill the ring.
    EXPECT_GE(sent, 2 * 40000 / 1024) << "not dropped at the bound itself";
    EXPECT_LE(sent, 2 * 40000 / 1024 + 1 + 4);
    EXPECT_EQ(ipc_server_send(s, id, msg.data(), 1), -ENOENT) << "dropped";
    EXPECT_EQ(client_->Wait(20000), 0);
}

// A full request ring: send waits, then -ETIMEDOUT with nothing sent.
TEST_F(ShmTransport, SendTimesOutOnFullRing)
{
    auto client = [this] {
        Client c = Connect(1);
        if (!c)
            return 101;
        std::vector<uint8_t> msg(1000);
        int sent = 0;
        uint64_t t0 = 0;
        for (;;) {
            t0 = NowNs();
            int rc = ipc_client_send(c.get(), msg.data(), msg.size(), 50 * kMs);
            if (rc == -ETIMEDOUT)
                break;
            if (rc != 0)
                return 102;
            sent++;
        }
        if (NowNs() - t0 < 50 * kMs)
            return 103;
        return sent;
    };
    ASSERT_EQ(ServeHere(1, Rings(4096), client), 0);
    // Accept the client, then never read.
    ASSERT_GE(ipc_server_wait_for_data(here_.get(), 10 * kSec), 0);
    EXPECT_EQ(client_->Wait(20000), 4) << "4 x 1016-byte records fill 4 KiB";
}

TEST_F(ShmTransport, RunUntilHandlerShutdown)
{
    ASSERT_EQ(Serve(2), 0);
    Client c = Connect(2);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(Echo(c.get(), "ping"), 0);
    std::vector<uint8_t> buf(16);
    ASSERT_EQ(ipc_client_send(c.get(), "SHUTDOWN", 8, 0), 0);
    ASSERT_EQ(ipc_client_recv(c.get(), buf.data(), buf.size(), 5 * kSec), 3);
    EXPECT_EQ(memcmp(buf.data(), "bye", 3), 0);
    EXPECT_EQ(server_->Join(), 0) << "run() returned 0 and the process exited";
    EXPECT_EQ(ipc_client_recv(c.get(), buf.data(), buf.size(), 5 * kSec), -ECONNRESET);
}

ipc_server *g_stop_server = nullptr;
void StopOnSignal(int) { ipc_server_stop(g_stop_server); }

TEST_F(ShmTransport, StopFromSignalHandlerAndThread)
{
    ASSERT_EQ(ServeHere(2), 0);
    ipc_server *s = here_.get();
    g_stop_server = s;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = StopOnSignal;
    ASSERT_EQ(sigaction(SIGUSR2, &sa, &old), 0);
    pthread_t self = pthread_self();
    std::thread sig([&] {
        usleep(100000);
        pthread_kill(self, SIGUSR2);
    });
    uint64_t t0 = NowNs();
    EXPECT_EQ(ipc_server_run(s, ScriptedEchoHandler, nullptr, 0), 0);
    double ms = (double)(NowNs() - t0) / 1e6;
    sig.join();
    printf("run() returned %.1f ms after start (signal at 100 ms)\n", ms);
    EXPECT_LT(ms, 2000.0);

    std::thread other([&] {
        usleep(100000);
        ipc_server_stop(s);
    });
    t0 = NowNs();
    EXPECT_EQ(ipc_server_wait_for_data(s, 0), -ECANCELED);
    EXPECT_LT(NowNs() - t0, 2 * kSec);
    other.join();
    EXPECT_EQ(ipc_server_wait_for_data(s, 0), -ECANCELED) << "sticky until run() returns";
    ipc_server_close(s);  // clears the request
    ASSERT_EQ(ipc_server_listen(s), 0);
    EXPECT_EQ(ipc_server_wait_for_data(s, 10 * kMs), -ETIMEDOUT);
    sigaction(SIGUSR2, &old, nullptr);
    g_stop_server = nullptr;
}

}  // namespace
