// Tests for the shared-memory transport through the public API, with real
// processes: servers and clients are forked children.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
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

using ipc_testing::ConnectShm;
using ipc_testing::Fork;
using ipc_testing::NowNs;
using ipc_testing::Scaled;
using ipc_testing::ScriptedEchoHandler;
using ipc_testing::ShmServerProcess;
using ipc_testing::UniqueName;
using ipc_testing::WaitChild;


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

void Fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + n + 1;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ull;
        memcpy(p + i, &x, n - i < 8 ? n - i : 8);
    }
}

// One echo round trip; 0 or the failing call's error (-1000 on mismatch).
long EchoOnce(ipc_client *c, const uint8_t *msg, size_t len, std::vector<uint8_t> &buf,
               uint64_t timeout_ns = 10 * kSec)
{
    int rc = ipc_client_send(c, msg, len, timeout_ns);
    if (rc != 0)
        return rc;
    ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), timeout_ns);
    if (n < 0)
        return n;
    if ((size_t)n != len || (len && memcmp(buf.data(), msg, len) != 0))
        return -1000;
    return 0;
}

int CountLines(const std::string &path)
{
    FILE *f = fopen(path.c_str(), "r");
    if (!f)
        return -1;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

// Client segments the server maps ("memfd:ipc-shm", not the doorbell).
int CountSegments(pid_t pid)
{
    FILE *f = fopen(("/proc/" + std::to_string(pid) + "/maps").c_str(), "r");
    if (!f)
        return -1;
    int n = 0;
    char line[4096];
    while (fgets(line, sizeof(line), f))
        n += strstr(line, "/memfd:ipc-shm (deleted)") != nullptr;
    fclose(f);
    return n;
}

int CountFds(pid_t pid)
{
    return (int)ListDir(("/proc/" + std::to_string(pid) + "/fd").c_str()).size() - 2;
}

// ------------------------------------------------------------- factories

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

TEST(ShmTransport, FactoriesValidateNames)
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
    ipc_server *s = ipc_server_create_shm(std::string(64, 'x').c_str(), 4096);
    EXPECT_NE(s, nullptr);
    ipc_server_destroy(s);
    ipc_client *c = ipc_client_create_shm("Az09._-", 1);
    EXPECT_NE(c, nullptr);
    ipc_client_destroy(c);
}

TEST(ShmTransport, ConnectWithoutServer)
{
    int rc;
    EXPECT_EQ(ConnectShm(UniqueName("none"), 2, &rc), nullptr);
    EXPECT_EQ(rc, -ECONNREFUSED);
}

TEST(ShmTransport, ClientGivenZeroTakesTheServersCapacityAndANonZeroOneIsChecked)
{
    std::string name = UniqueName("cap");
    ShmServerProcess srv(name, 3);
    ASSERT_EQ(srv.listen_rc(), 0);
    std::vector<uint8_t> buf(64);
    const uint8_t msg[] = "ping";
    ipc_client *any = ipc_client_create_shm(name.c_str(), 0);
    ASSERT_NE(any, nullptr);
    EXPECT_EQ(ipc_client_shm_capacity(any), 0u) << "nothing is known before connect";
    ASSERT_EQ(ipc_client_connect(any), 0);
    EXPECT_EQ(ipc_client_shm_capacity(any), 3u);
    EXPECT_EQ(EchoOnce(any, msg, sizeof(msg), buf), 0);
    int rc;
    ipc_client *same = ConnectShm(name, 3, &rc);
    ASSERT_NE(same, nullptr) << rc;
    EXPECT_EQ(EchoOnce(same, msg, sizeof(msg), buf), 0);
    ipc_client *other = ipc_client_create_shm(name.c_str(), 4);
    ASSERT_NE(other, nullptr);
    EXPECT_EQ(ipc_client_connect(other), -EINVAL);
    EXPECT_EQ(ipc_client_shm_capacity(other), 3u) << "a refusal still tells the server's";
    ipc_client_destroy(other);
    // The refused client's slot comes back: the third of three still fits
    // (once the server has seen it leave).
    ipc_client *third = nullptr;
    for (int tries = 0; third == nullptr && tries < 500; tries++) {
        third = ConnectShm(name, 0, &rc);
        if (third == nullptr && rc != -EAGAIN)
            break;
        if (third == nullptr)
            usleep(10 * 1000);
    }
    ASSERT_NE(third, nullptr) << rc;
    EXPECT_EQ(EchoOnce(third, msg, sizeof(msg), buf), 0);
    EXPECT_EQ(ipc_client_create_shm(name.c_str(), 4097), nullptr);
    ipc_client *sock = ipc_client_create_socket("/tmp/ipc-cap-test.sock");
    EXPECT_EQ(ipc_client_shm_capacity(sock), 0u);
    EXPECT_EQ(ipc_client_shm_capacity(nullptr), 0u);
    ipc_client_destroy(sock);
    ipc_client_destroy(third);
    ipc_client_destroy(same);
    ipc_client_destroy(any);
}

// ------------------------------------------------------------------ echo

TEST(ShmTransport, EchoSizes)
{
    std::string name = UniqueName("echo");
    ShmServerProcess srv(name, 4);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *c = ConnectShm(name, 4);
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> buf((1 << 20) + 16);
    for (size_t len : {0u, 1u, 4096u, 65536u, 1u << 20}) {
        std::vector<uint8_t> msg(len);
        Fill(msg.data(), len, len);
        for (int rep = 0; rep < 3; rep++)
            ASSERT_EQ(EchoOnce(c, msg.data(), len, buf), 0) << len;
    }
    // Above the ring's limit (4 MiB / 2 - 16): refused, never hangs.
    std::vector<uint8_t> huge((2u << 20) - 15);
    EXPECT_EQ(ipc_client_send(c, huge.data(), huge.size(), 0), -EMSGSIZE);
    // The connection is still fine.
    ASSERT_EQ(EchoOnce(c, huge.data(), 100, buf), 0);
    // Too small a receive buffer: -EMSGSIZE, discarded whole.
    ASSERT_EQ(ipc_client_send(c, huge.data(), 1000, 0), 0);
    ASSERT_EQ(ipc_client_send(c, "z", 1, 0), 0);
    EXPECT_EQ(ipc_client_recv(c, buf.data(), 999, 0), -EMSGSIZE);
    EXPECT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 0), 1);
    // Nothing more: a bounded recv times out.
    uint64_t t0 = NowNs();
    EXPECT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 30 * kMs), -ETIMEDOUT);
    EXPECT_GE(NowNs() - t0, 30 * kMs);
    // Close and connect the same object again.
    ipc_client_close(c);
    EXPECT_EQ(ipc_client_send(c, "x", 1, 0), -ENOTCONN);
    ASSERT_EQ(ipc_client_connect(c), 0);
    EXPECT_EQ(ipc_client_connect(c), -EISCONN);
    ASSERT_EQ(EchoOnce(c, huge.data(), 4096, buf), 0);
    ipc_client_destroy(c);
}

TEST(ShmTransport, MessageLargerThanSmallRing)
{
    std::string name = UniqueName("big");
    ipc_server_options opt = {};
    opt.ring_size = 4096;
    ShmServerProcess srv(name, 1, &opt);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *c = ConnectShm(name, 1);
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> msg(8192), buf(8192);
    EXPECT_EQ(ipc_client_send(c, msg.data(), 2033, 0), -EMSGSIZE);
    EXPECT_EQ(ipc_client_send(c, msg.data(), 4096, 0), -EMSGSIZE);
    Fill(msg.data(), 2032, 7);
    EXPECT_EQ(EchoOnce(c, msg.data(), 2032, buf), 0) << "largest = ring/2 - 16";
    ipc_client_destroy(c);
}

// Random sizes over a 4 KiB ring: thousands of wraps both ways.
TEST(ShmTransport, WrapAroundRandomSizesSmallRing)
{
    std::string name = UniqueName("wrap");
    ipc_server_options opt = {};
    opt.ring_size = 4096;
    ShmServerProcess srv(name, 2, &opt);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *c = ConnectShm(name, 2);
    ASSERT_NE(c, nullptr);
    std::mt19937_64 rng(42);
    std::vector<uint8_t> msg(2032), buf(4096);
    uint64_t frames = Scaled(40000), t0 = NowNs();
    for (uint64_t i = 0; i < frames; i++) {
        size_t len = rng() % 4 == 0 ? rng() % 2033 : rng() % 200;
        Fill(msg.data(), len, i);
        ASSERT_EQ(EchoOnce(c, msg.data(), len, buf), 0) << i;
    }
    printf("echo over 4 KiB rings: %llu round trips, %.1f us each\n", (unsigned long long)frames,
           (double)(NowNs() - t0) / (double)frames / 1000.0);
    // Pipelined: several requests in flight, replies in order.
    for (uint64_t i = 0; i < Scaled(5000); i++) {
        size_t lens[3];
        for (int k = 0; k < 3; k++) {
            lens[k] = rng() % 600;
            Fill(msg.data(), lens[k], i * 3 + k);
            ASSERT_EQ(ipc_client_send(c, msg.data(), lens[k], 10 * kSec), 0);
        }
        for (int k = 0; k < 3; k++) {
            ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), 10 * kSec);
            ASSERT_EQ(n, (ssize_t)lens[k]);
            Fill(msg.data(), lens[k], i * 3 + k);
            ASSERT_EQ(memcmp(buf.data(), msg.data(), lens[k]), 0);
        }
    }
    ipc_client_destroy(c);
}

// Hot-path latency with the default spin (printed, not asserted).
TEST(ShmTransport, SmallMessageLatency)
{
    std::string name = UniqueName("lat");
    ShmServerProcess srv(name, 1);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *c = ConnectShm(name, 1);
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> msg(64, 1), buf(64);
    uint64_t n = Scaled(100000), t0 = NowNs();
    for (uint64_t i = 0; i < n; i++)
        ASSERT_EQ(EchoOnce(c, msg.data(), msg.size(), buf), 0);
    printf("64 B echo round trip: %.2f us (%llu round trips)\n",
           (double)(NowNs() - t0) / (double)n / 1000.0, (unsigned long long)n);
    ipc_client_destroy(c);
}

// The run loop publishes its reply without a wake and wakes the client once,
// when it releases the request (one fence for both). Sleep on the response
// ring's waitpoint with no spin and no liveness slices, so that a lost wake
// is a 5 s sleep rather than a 50 ms hiccup: racing the reply (plain echo),
// and long asleep before it (a slow handler).
struct TailPast {
    ipc__spsc_shared *ring;
    uint64_t value;
};

bool IsTailPast(void *arg)
{
    auto *t = static_cast<TailPast *>(arg);
    return atomic_load_explicit(&t->ring->tail, memory_order_acquire) > t->value;
}

TEST(ShmTransport, RunLoopReplyWakesAClientAsleepOnItsResponseRing)
{
    std::string name = UniqueName("wake");
    ShmServerProcess srv(name, 1);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *c = ConnectShm(name, 1);
    ASSERT_NE(c, nullptr);
    size_t size = 0;
    auto *seg = ClientSegment(c, &size);
    ASSERT_NE(seg, nullptr);
    auto *hdr = reinterpret_cast<ipc__shm_seg_header *>(seg);
    auto *resp = reinterpret_cast<ipc__spsc_shared *>(seg + hdr->resp_offset);
    std::vector<uint8_t> buf(16);
    uint64_t rounds = Scaled(20000);
    for (uint64_t i = 0; i < rounds + 20; i++) {
        bool slow = i >= rounds;
        TailPast t{resp, atomic_load(&resp->tail)};
        ASSERT_EQ(ipc_client_send(c, slow ? "SLOW" : "fast", 4, 0), 0);
        // A lost wake sleeps to the deadline (whose last look then finds
        // the reply): anything near it is a failure, not slowness.
        uint64_t t0 = NowNs();
        ASSERT_EQ(ipc__wait_until(&resp->data, IsTailPast, &t, 0, t0 + 5 * kSec), 0);
        ASSERT_LT(NowNs() - t0, 4 * kSec) << "round " << i << ": the reply came without a wake";
        ASSERT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 0), 4);
        ASSERT_EQ(memcmp(buf.data(), slow ? "SLOW" : "fast", 4), 0);
    }
    ipc_client_destroy(c);
}

// A batch publishes its replies unannounced and wakes the client once, at
// its end: requests sent back to back are served as one batch, and a client
// asleep (no spin, no slices) on its response ring is woken for all.
struct TailAtLeast {
    ipc__spsc_shared *ring;
    uint64_t value;
};

bool IsTailAtLeast(void *arg)
{
    auto *t = static_cast<TailAtLeast *>(arg);
    return atomic_load_explicit(&t->ring->tail, memory_order_acquire) >= t->value;
}

TEST(ShmTransport, RunLoopBatchWakesAClientAsleepOnItsResponseRing)
{
    std::string name = UniqueName("batchwake");
    ShmServerProcess srv(name, 1);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *c = ConnectShm(name, 1);
    ASSERT_NE(c, nullptr);
    size_t size = 0;
    auto *seg = ClientSegment(c, &size);
    ASSERT_NE(seg, nullptr);
    auto *hdr = reinterpret_cast<ipc__shm_seg_header *>(seg);
    auto *resp = reinterpret_cast<ipc__spsc_shared *>(seg + hdr->resp_offset);
    std::vector<uint8_t> buf(16);
    const char *msgs[] = {"fast", "fast", "fast", "SLOW"};
    uint64_t rounds = Scaled(5000);
    for (uint64_t i = 0; i < rounds + 10; i++) {
        int k = i >= rounds ? 4 : 3; // last rounds: the client is long asleep
        // Each 4-byte reply is one 16-byte record.
        TailAtLeast t{resp, atomic_load(&resp->tail) + 16u * (unsigned)k};
        for (int j = 0; j < k; j++)
            ASSERT_EQ(ipc_client_send(c, msgs[j], 4, 0), 0);
        uint64_t t0 = NowNs();
        ASSERT_EQ(ipc__wait_until(&resp->data, IsTailAtLeast, &t, 0, t0 + 5 * kSec), 0);
        ASSERT_LT(NowNs() - t0, 4 * kSec) << "round " << i << ": a batch ended without a wake";
        for (int j = 0; j < k; j++) {
            ASSERT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 0), 4);
            ASSERT_EQ(memcmp(buf.data(), msgs[j], 4), 0);
        }
    }
    ipc_client_destroy(c);
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
        if (sscanf(line, "%lx-%lx %7s ", &lo, &hi, perms) == 3) { // a mapping's first line
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
TEST(ShmTransport, ConnectMapsEveryPageOfTheSegmentOnBothSides)
{
    std::string name = UniqueName("prefault");
    ShmServerProcess srv(name, 1);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *c = ConnectShm(name, 1);
    ASSERT_NE(c, nullptr);
    size_t size = 0;
    uint8_t *seg = ClientSegment(c, &size);
    ASSERT_NE(seg, nullptr);
    auto mine = MappingRssAndSize(getpid(), (uintptr_t)seg, nullptr);
    EXPECT_EQ(mine.second, (long)(size / 1024));
    EXPECT_EQ(mine.first, mine.second) << "client: pages of the segment not mapped yet";
    auto theirs = MappingRssAndSize(srv.pid(), 0, "/memfd:ipc-shm (deleted)");
    EXPECT_EQ(theirs.second, (long)(size / 1024));
    EXPECT_EQ(theirs.first, theirs.second) << "server: pages of the segment not mapped yet";
    ipc_client_destroy(c);
}

// --------------------------------------------------------- many clients

TEST(ShmTransport, ManyClientProcessesAtOnce)
{
    std::string name = UniqueName("many");
    const int kClients = 6;
    ShmServerProcess srv(name, 8);
    ASSERT_EQ(srv.listen_rc(), 0);
    uint64_t rounds = Scaled(3000);
    std::vector<pid_t> kids;
    for (int k = 0; k < kClients; k++)
        kids.push_back(Fork([&name, k, rounds] {
            ipc_client *c = ConnectShm(name, 8);
            if (!c)
                return 10;
            std::vector<uint8_t> msg(3000), buf(3000);
            for (uint64_t i = 0; i < rounds; i++) {
                size_t len = (i * 131 + (uint64_t)k * 17) % 3000;
                Fill(msg.data(), len, i * 100 + (uint64_t)k);
                if (EchoOnce(c, msg.data(), len, buf) != 0)
                    return 11;
            }
            ipc_client_destroy(c);
            return 0;
        }));
    for (pid_t p : kids)
        EXPECT_EQ(WaitChild(p, 120000), 0);
}

TEST(ShmTransport, AllSlotsTakenThenReuseAfterClose)
{
    std::string name = UniqueName("full");
    ShmServerProcess srv(name, 2);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *a = ConnectShm(name, 2);
    ipc_client *b = ConnectShm(name, 2);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    int rc;
    uint64_t t0 = NowNs();
    EXPECT_EQ(ConnectShm(name, 2, &rc), nullptr);
    EXPECT_EQ(rc, -EAGAIN);
    EXPECT_LT(NowNs() - t0, 2 * kSec) << "-EAGAIN must be immediate";
    // Closed: the slot is free again at once.
    ipc_client_destroy(a);
    ipc_client *c = ConnectShm(name, 2, &rc);
    ASSERT_NE(c, nullptr) << rc;
    std::vector<uint8_t> buf(16);
    EXPECT_EQ(EchoOnce(b, (const uint8_t *)"b", 1, buf), 0);
    EXPECT_EQ(EchoOnce(c, (const uint8_t *)"c", 1, buf), 0);
    // A client that believes in another max_clients is refused.
    EXPECT_EQ(ConnectShm(name, 3, &rc), nullptr);
    EXPECT_TRUE(rc == -EINVAL || rc == -EAGAIN) << rc;
    ipc_client_destroy(b);
    EXPECT_EQ(ConnectShm(name, 3, &rc), nullptr);
    EXPECT_EQ(rc, -EINVAL);
    ipc_client_destroy(c);
}

// A client process that connects, echoes once, reports, then waits.
pid_t IdleClient(const std::string &name, size_t max_clients, int ready_fd)
{
    return Fork([&name, max_clients, ready_fd] {
        int rc;
        ipc_client *c = ConnectShm(name, max_clients, &rc);
        char ok = c ? 'y' : 'n';
        std::vector<uint8_t> buf(16);
        if (c && EchoOnce(c, (const uint8_t *)"hi", 2, buf) != 0)
            ok = 'e';
        (void)!write(ready_fd, &ok, 1);
        for (;;)
            pause();
        return 0;
    });
}

TEST(ShmTransport, SlotReuseAfterSigkill)
{
    std::string name = UniqueName("kill1");
    ShmServerProcess srv(name, 1);
    ASSERT_EQ(srv.listen_rc(), 0);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    for (int round = 0; round < 5; round++) {
        pid_t kid = IdleClient(name, 1, p[1]);
        char ok = 0;
        ASSERT_EQ(read(p[0], &ok, 1), 1);
        ASSERT_EQ(ok, 'y');
        kill(kid, SIGKILL);
        WaitChild(kid);
        uint64_t t0 = NowNs();
        int rc;
        ipc_client *c = ConnectShm(name, 1, &rc);
        ASSERT_NE(c, nullptr) << rc;
        printf("slot reusable %.2f ms after the SIGKILLed client was reaped\n",
               (double)(NowNs() - t0) / 1e6);
        std::vector<uint8_t> buf(16);
        EXPECT_EQ(EchoOnce(c, (const uint8_t *)"x", 1, buf), 0);
        ipc_client_destroy(c);
    }
    close(p[0]);
    close(p[1]);
}

// The server notices a dead idle client by itself, through the socket
// hang-up (no new connection needed): its socket and segment go away in
// the server process, and the other client is not slowed.
TEST(ShmTransport, DeadClientNoticedQuickly)
{
    std::string name = UniqueName("dead");
    ShmServerProcess srv(name, 2);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *a = ConnectShm(name, 2);
    ASSERT_NE(a, nullptr);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    std::vector<uint8_t> buf(16);
    for (int round = 0; round < 5; round++) {
        pid_t kid = IdleClient(name, 2, p[1]);
        char ok = 0;
        ASSERT_EQ(read(p[0], &ok, 1), 1);
        ASSERT_EQ(ok, 'y');
        usleep(20000);
        int fds0 = CountFds(srv.pid()), segs0 = CountSegments(srv.pid());
        ASSERT_EQ(segs0, 2);
        kill(kid, SIGKILL);
        uint64_t t0 = NowNs();
        WaitChild(kid);
        uint64_t noticed = 0;
        while (NowNs() - t0 < 5 * kSec) {
            if (CountFds(srv.pid()) <= fds0 - 1 && CountSegments(srv.pid()) == 1) {
                noticed = NowNs() - t0;
                break;
            }
            usleep(500);
        }
        ASSERT_NE(noticed, 0u) << "the dead client's socket and segment are still held";
        uint64_t worst = 0;
        for (int i = 0; i < 200; i++) {
            uint64_t t1 = NowNs();
            ASSERT_EQ(EchoOnce(a, (const uint8_t *)"a", 1, buf), 0);
            worst = std::max(worst, NowNs() - t1);
        }
        printf("dead client reclaimed %.2f ms after SIGKILL; slowest echo of the live "
               "client just after: %.1f us\n", noticed / 1e6, worst / 1e3);
        EXPECT_LT(noticed, 2 * kSec);
    }
    ipc_client_destroy(a);
    close(p[0]);
    close(p[1]);
}

// Many SIGKILLed clients, idle or mid-write; the server leaks nothing.
TEST(ShmTransport, KillReconnectCyclesNoLeak)
{
    std::string name = UniqueName("cycles");
    ipc_server_options opt = {};
    opt.ring_size = 4096;
    opt.max_pending_output = 64 << 10;
    ShmServerProcess srv(name, 1, &opt);
    ASSERT_EQ(srv.listen_rc(), 0);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    std::mt19937_64 rng(9);
    auto cycle = [&](int i) {
        bool mid_write = i % 2 == 1;
        pid_t kid = Fork([&] {
            int rc;
            ipc_client *c = ConnectShm(name, 1, &rc);
            char ok = c ? 'y' : 'n';
            (void)!write(p[1], &ok, 1);
            if (!c)
                return 1;
            std::vector<uint8_t> msg(1500, 7);
            for (;;) {
                if (mid_write)
                    ipc_client_send(c, msg.data(), rng() % msg.size(), 0);
                else
                    pause();
            }
        });
        char ok = 0;
        EXPECT_EQ(read(p[0], &ok, 1), 1);
        EXPECT_EQ(ok, 'y') << "cycle " << i;
        if (mid_write)
            usleep((useconds_t)(rng() % 300));
        kill(kid, SIGKILL);
        WaitChild(kid);
        return ok == 'y';
    };
    for (int i = 0; i < 20; i++)
        ASSERT_TRUE(cycle(i));
    usleep(300000);
    int fds0 = CountFds(srv.pid());
    int maps0 = CountLines("/proc/" + std::to_string(srv.pid()) + "/maps");
    EXPECT_EQ(CountSegments(srv.pid()), 0);
    uint64_t cycles = Scaled(10000), t0 = NowNs();
    for (uint64_t i = 0; i < cycles; i++)
        ASSERT_TRUE(cycle((int)i));
    double per = (double)(NowNs() - t0) / (double)cycles / 1e6;
    usleep(300000);  // the last hang-up is reclaimed
    int fds1 = CountFds(srv.pid());
    int maps1 = CountLines("/proc/" + std::to_string(srv.pid()) + "/maps");
    printf("%llu kill/reconnect cycles, %.2f ms each; server fds %d -> %d, maps %d -> %d\n",
           (unsigned long long)cycles, per, fds0, fds1, maps0, maps1);
    EXPECT_EQ(fds1, fds0);
    EXPECT_EQ(CountSegments(srv.pid()), 0) << "a client segment is still mapped";
#if defined(IPC_TESTING_ASAN) || defined(IPC_TESTING_TSAN)
    // Sanitizer allocators map new regions as they go: a leak would still
    // show as one mapping per cycle.
    EXPECT_LE(maps1, maps0 + 40);
#else
    EXPECT_LE(maps1, maps0 + 2);  // allocator arenas may split a mapping
#endif
    // Still serving.
    ipc_client *c = ConnectShm(name, 1);
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> buf(16);
    EXPECT_EQ(EchoOnce(c, (const uint8_t *)"ok", 2, buf), 0);
    ipc_client_destroy(c);
    close(p[0]);
    close(p[1]);
}

// ------------------------------------------------------- server death

TEST(ShmTransport, ServerDyingWithAClientInItsBacklogGivesConnrefused)
{
    std::string name = UniqueName("backlog");
    ShmServerProcess srv(name, 1);
    ASSERT_EQ(srv.listen_rc(), 0);
    pid_t victim = srv.pid();
    ASSERT_EQ(kill(victim, SIGSTOP), 0);  // it will never accept us
    std::thread killer([&] {
        usleep(100000);  // the client waits for its hello by then
        kill(victim, SIGKILL);
    });
    int rc = 0;
    ipc_client *c = ConnectShm(name, 1, &rc);
    killer.join();
    srv.Kill();
    EXPECT_EQ(c, nullptr);
    EXPECT_EQ(rc, -ECONNREFUSED);
}

TEST(ShmTransport, ServerKillWakesBlockedClient)
{
    std::string name = UniqueName("srvkill");
    ShmServerProcess srv(name, 1);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *c = ConnectShm(name, 1);
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> buf(64);
    ASSERT_EQ(EchoOnce(c, (const uint8_t *)"x", 1, buf), 0);
    std::atomic<uint64_t> killed_at{0};
    pid_t victim = srv.pid();
    std::thread killer([&] {
        usleep(100000);
        killed_at = NowNs();
        kill(victim, SIGKILL);
    });
    ssize_t rc = ipc_client_recv(c, buf.data(), buf.size(), 0);  // no limit
    uint64_t back = NowNs();
    killer.join();
    srv.Kill();
    EXPECT_EQ(rc, -ECONNRESET);
    double ms = (double)(back - killed_at.load()) / 1e6;
    printf("blocked recv returned -ECONNRESET %.1f ms after the server's SIGKILL\n", ms);
    EXPECT_LT(ms, 2000.0);
    EXPECT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 0), -ECONNRESET);
    EXPECT_LT(ipc_client_send(c, "x", 1, 0), 0);
    ipc_client_destroy(c);

    // Stale restart: the name is free at once after the crash.
    ShmServerProcess again(name, 1);
    EXPECT_EQ(again.listen_rc(), 0);
    c = ConnectShm(name, 1);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(EchoOnce(c, (const uint8_t *)"y", 1, buf), 0);
    ipc_client_destroy(c);
}

TEST(ShmTransport, SecondServerGetsEaddrinuse)
{
    std::string name = UniqueName("dup");
    ShmServerProcess srv(name, 2);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_server *s2 = ipc_server_create_shm(name.c_str(), 2);
    ASSERT_NE(s2, nullptr);
    EXPECT_EQ(ipc_server_listen(s2), -EADDRINUSE);
    ipc_server_destroy(s2);
    ipc_client *c = ConnectShm(name, 2);
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> buf(16);
    EXPECT_EQ(EchoOnce(c, (const uint8_t *)"z", 1, buf), 0) << "the first server is untouched";
    ipc_client_destroy(c);
}

// Two servers racing for one name: exactly one wins.
TEST(ShmTransport, RacingServersExactlyOneWins)
{
    for (int round = 0; round < 10; round++) {
        std::string name = UniqueName("race");
        auto *go = static_cast<std::atomic<int> *>(ipc_testing::SharedAlloc(4096));
        auto *results = reinterpret_cast<std::atomic<int> *>(go + 1);
        std::vector<pid_t> kids;
        for (int k = 0; k < 4; k++)
            kids.push_back(Fork([&, k] {
                ipc_server *s = ipc_server_create_shm(name.c_str(), 1);
                while (go->load() == 0) {
                }
                results[k] = ipc_server_listen(s) + 1000;
                while (go->load() == 1)
                    usleep(1000);
                ipc_server_destroy(s);
                return 0;
            }));
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
        for (pid_t p : kids)
            WaitChild(p);
        EXPECT_EQ(winners, 1);
        EXPECT_EQ(inuse, 3);
        munmap(go, 4096);
    }
}

// ---------------------------------------------------- hostile clients

// A client that scribbles over its own ring is dropped; others go on.
void HostileRound(const char *tag, std::function<void(uint8_t *seg, ipc_client *c)> scribble,
                   bool own_response_ring_damaged = false)
{
    std::string name = UniqueName(tag);
    ipc_server_options opt = {};
    opt.ring_size = 8192;
    ShmServerProcess srv(name, 2, &opt);
    ASSERT_EQ(srv.listen_rc(), 0);
    pid_t bad = Fork([&] {
        ipc_client *c = ConnectShm(name, 2);
        if (!c)
            return 10;
        std::vector<uint8_t> buf(2048);
        if (EchoOnce(c, (const uint8_t *)"hi", 2, buf) != 0)
            return 11;
        size_t size = 0;
        uint8_t *seg = ClientSegment(c, &size);
        if (!seg || size != ipc__shm_segment_size(8192))
            return 12;
        scribble(seg, c);
        // The server must drop us: our recv ends with -ECONNRESET.
        ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), 10 * kSec);
        while (n >= 0 || n == -EMSGSIZE)  // our own scribbles may look long
            n = ipc_client_recv(c, buf.data(), buf.size(), 10 * kSec);
        ipc_client_destroy(c);
        // A client that also broke its own response ring sees -EPROTO.
        if (n == -ECONNRESET || (own_response_ring_damaged && n == -EPROTO))
            return 0;
        fprintf(stderr, "%s: hostile client's recv ended with %zd\n", tag, n);
        return 13;
    });
    ipc_client *good = ConnectShm(name, 2);
    ASSERT_NE(good, nullptr);
    std::vector<uint8_t> msg(500, 3), buf(600);
    uint64_t worst = 0;
    int status = -2;
    for (uint64_t t0 = NowNs(); NowNs() - t0 < 20 * kSec;) {
        uint64_t t1 = NowNs();
        ASSERT_EQ(EchoOnce(good, msg.data(), msg.size(), buf), 0);
        worst = std::max(worst, NowNs() - t1);
        int st = 0;
        if (waitpid(bad, &st, WNOHANG) == bad) {
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
    }
    if (status == -2)
        status = WaitChild(bad, 1);
    EXPECT_EQ(status, 0) << tag;
    printf("%s: slowest good echo meanwhile %.1f us\n", tag, worst / 1e3);
    // The server is alive and the hostile slot came back.
    ipc_client *again = ConnectShm(name, 2);
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(EchoOnce(again, msg.data(), 10, buf), 0);
    // And it never crashed (ASan would have aborted it): clean shutdown.
    ASSERT_EQ(ipc_client_send(again, "SHUTDOWN", 8, 0), 0);
    EXPECT_EQ(ipc_client_recv(again, buf.data(), buf.size(), 10 * kSec), 3);
    EXPECT_EQ(srv.Join(), 0);
    ipc_client_destroy(again);
    ipc_client_destroy(good);
}

TEST(ShmTransport, HostileClientGarbageTailIsDropped)
{
    HostileRound("tail", [](uint8_t *seg, ipc_client *c) {
        auto *req = reinterpret_cast<ipc__spsc_shared *>(seg + ipc__shm_req_offset());
        atomic_store(&req->tail, 0xdeadbeefcafeull);
        (void)ipc_client_send(c, "x", 1, 0);  // rings the doorbell
        atomic_store(&req->tail, 0xdeadbeefcafeull);
    });
}

TEST(ShmTransport, HostileClientGarbageRecordIsDropped)
{
    HostileRound("record", [](uint8_t *seg, ipc_client *c) {
        auto *req = reinterpret_cast<ipc__spsc_shared *>(seg + ipc__shm_req_offset());
        uint8_t *data = seg + ipc__shm_req_offset() + IPC_SHM_RING_CTRL_SIZE;
        uint64_t tail = atomic_load(&req->tail);
        uint32_t bad[2] = {100000, 0};  // longer than the ring
        memcpy(data + (tail & 8191), bad, sizeof(bad));
        atomic_store(&req->tail, tail + 8);
        (void)c;
    });
}

TEST(ShmTransport, HostileClientGarbageResponseHeadIsDropped)
{
    HostileRound("head", [](uint8_t *seg, ipc_client *c) {
        auto *resp = reinterpret_cast<ipc__spsc_shared *>(seg + ipc__shm_resp_offset(8192));
        atomic_store(&resp->head, 0x123456789ull);
        // The server reads our head only once its cached copy says "full":
        // send without reading until the replies Fill the ring.
        std::vector<uint8_t> msg(1000, 1);
        for (int i = 0; i < 40; i++)
            if (ipc_client_send(c, msg.data(), msg.size(), kSec) != 0)
                break;
    });
}

// Random garbage anywhere in the segment (header, indices, records,
// waitpoints) while sending, then a certainly bad tail.
TEST(ShmTransport, HostileClientRandomScribbles)
{
    HostileRound("random", [](uint8_t *seg, ipc_client *c) {
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

// A server driven by hand in this process; the client is a child that
// waits for the go byte before connecting.
struct ManualServer {
    ipc_server *s = nullptr;
    ManualServer(const std::string &name, size_t max_clients, const ipc_server_options *opt)
    {
        s = ipc_server_create_shm_ex(name.c_str(), max_clients, opt);
        EXPECT_NE(s, nullptr);
        EXPECT_EQ(ipc_server_listen(s), 0);
    }
    ~ManualServer() { ipc_server_destroy(s); }
};

TEST(ShmTransport, ServerApiErrors)
{
    std::string name = UniqueName("api");
    ManualServer m(name, 2, nullptr);
    std::vector<uint8_t> buf(16);
    EXPECT_EQ(ipc_server_recv(m.s, 0, buf.data(), buf.size()), -ENOENT);
    EXPECT_EQ(ipc_server_recv(m.s, 5, buf.data(), buf.size()), -ENOENT);
    EXPECT_EQ(ipc_server_send(m.s, 1, "x", 1), -ENOENT);
    EXPECT_EQ(ipc_server_listen(m.s), -EALREADY);
    uint64_t t0 = NowNs();
    EXPECT_EQ(ipc_server_wait_for_data(m.s, 20 * kMs), -ETIMEDOUT);
    EXPECT_GE(NowNs() - t0, 20 * kMs);
    ipc_server_close(m.s);
    EXPECT_EQ(ipc_server_listen(m.s), 0) << "listen again after close";
}

// Replies that do not fit are queued and flushed when the client reads;
// an application that sends reply after reply, without taking requests, to
// a client that never reads gets it dropped at twice max_pending_output
// (a run loop never gets there: it stops taking requests at the bound).
TEST(ShmTransport, SlowReaderQueuedThenNonReaderOfManyRepliesDropped)
{
    std::string name = UniqueName("slow");
    ipc_server_options opt = {};
    opt.ring_size = 4096;
    opt.max_pending_output = 40000;
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    pid_t kid = Fork([&] {
        char b;
        if (read(go[0], &b, 1) != 1)
            return 9;
        ipc_client *c = ConnectShm(name, 1);
        if (!c)
            return 10;
        if (ipc_client_send(c, "start", 5, 0) != 0)
            return 11;
        usleep(200000);  // let the replies pile up
        std::vector<uint8_t> buf(2000), want(1000);
        for (int i = 0; i < 30; i++) {
            if (ipc_client_recv(c, buf.data(), buf.size(), 10 * kSec) != 1000)
                return 12;
            Fill(want.data(), 1000, (uint64_t)i);
            if (memcmp(buf.data(), want.data(), 1000) != 0)
                return 13;
        }
        if (ipc_client_send(c, "done", 4, 0) != 0)
            return 14;
        // Now stop reading until the server has dropped us.
        if (read(go[0], &b, 1) != 1)
            return 15;
        ssize_t n;
        while ((n = ipc_client_recv(c, buf.data(), buf.size(), 10 * kSec)) >= 0) {
        }
        ipc_client_destroy(c);
        return n == -ECONNRESET ? 0 : 16;
    });
    ManualServer m(name, 1, &opt);
    ASSERT_EQ(write(go[1], "g", 1), 1);
    std::vector<uint8_t> buf(64), msg(1000);
    int id = ipc_server_wait_for_data(m.s, 10 * kSec);
    ASSERT_GE(id, 0);
    ASSERT_EQ(ipc_server_recv(m.s, id, buf.data(), buf.size()), 5);
    for (int i = 0; i < 30; i++) {  // 30 KB into a 4 KiB ring: most queue
        Fill(msg.data(), 1000, (uint64_t)i);
        ASSERT_EQ(ipc_server_send(m.s, id, msg.data(), 1000), 0) << i;
    }
    // Flushed from inside wait_for_data, woken by the client's reads.
    ASSERT_EQ(ipc_server_wait_for_data(m.s, 10 * kSec), id);
    ASSERT_EQ(ipc_server_recv(m.s, id, buf.data(), buf.size()), 4);
    // The client is blocked on the pipe now: it does not read.
    int rc = 0, sent = 0;
    while ((rc = ipc_server_send(m.s, id, msg.data(), 1000)) == 0)
        sent++;
    EXPECT_EQ(rc, -ENOBUFS);
    ASSERT_EQ(write(go[1], "g", 1), 1);
    // A 1000-byte reply costs 1024 bytes queued; 4 more fill the ring.
    EXPECT_GE(sent, 2 * 40000 / 1024) << "not dropped at the bound itself";
    EXPECT_LE(sent, 2 * 40000 / 1024 + 1 + 4);
    EXPECT_EQ(ipc_server_send(m.s, id, msg.data(), 1), -ENOENT) << "dropped";
    EXPECT_EQ(WaitChild(kid, 20000), 0);
    close(go[0]);
    close(go[1]);
}

// A full request ring: send waits, then -ETIMEDOUT with nothing sent.
TEST(ShmTransport, SendTimesOutOnFullRing)
{
    std::string name = UniqueName("fullring");
    ipc_server_options opt = {};
    opt.ring_size = 4096;
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    pid_t kid = Fork([&] {
        char b;
        if (read(go[0], &b, 1) != 1)
            return 100;
        ipc_client *c = ConnectShm(name, 1);
        if (!c)
            return 101;
        std::vector<uint8_t> msg(1000);
        int sent = 0;
        uint64_t t0 = 0;
        for (;;) {
            t0 = NowNs();
            int rc = ipc_client_send(c, msg.data(), msg.size(), 50 * kMs);
            if (rc == -ETIMEDOUT)
                break;
            if (rc != 0)
                return 102;
            sent++;
        }
        if (NowNs() - t0 < 50 * kMs)
            return 103;
        ipc_client_destroy(c);
        return sent;
    });
    ManualServer m(name, 1, &opt);
    ASSERT_EQ(write(go[1], "g", 1), 1);
    // Accept the client, then never read.
    int id = ipc_server_wait_for_data(m.s, 10 * kSec);
    ASSERT_GE(id, 0);
    EXPECT_EQ(WaitChild(kid, 20000), 4) << "4 x 1016-byte records Fill 4 KiB";
    close(go[0]);
    close(go[1]);
}

TEST(ShmTransport, RunUntilHandlerShutdown)
{
    std::string name = UniqueName("run");
    ShmServerProcess srv(name, 2);
    ASSERT_EQ(srv.listen_rc(), 0);
    ipc_client *c = ConnectShm(name, 2);
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> buf(16);
    ASSERT_EQ(EchoOnce(c, (const uint8_t *)"ping", 4, buf), 0);
    ASSERT_EQ(ipc_client_send(c, "SHUTDOWN", 8, 0), 0);
    ASSERT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 5 * kSec), 3);
    EXPECT_EQ(memcmp(buf.data(), "bye", 3), 0);
    EXPECT_EQ(srv.Join(), 0) << "run() returned 0 and the process exited";
    EXPECT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 5 * kSec), -ECONNRESET);
    ipc_client_destroy(c);
}

ipc_server *g_stop_server = nullptr;
void StopOnSignal(int) { ipc_server_stop(g_stop_server); }

TEST(ShmTransport, StopFromSignalHandlerAndThread)
{
    std::string name = UniqueName("stop");
    ManualServer m(name, 2, nullptr);
    g_stop_server = m.s;
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
    EXPECT_EQ(ipc_server_run(m.s, ScriptedEchoHandler, nullptr, 0), 0);
    double ms = (double)(NowNs() - t0) / 1e6;
    sig.join();
    printf("run() returned %.1f ms after start (signal at 100 ms)\n", ms);
    EXPECT_LT(ms, 2000.0);

    std::thread other([&] {
        usleep(100000);
        ipc_server_stop(m.s);
    });
    t0 = NowNs();
    EXPECT_EQ(ipc_server_wait_for_data(m.s, 0), -ECANCELED);
    EXPECT_LT(NowNs() - t0, 2 * kSec);
    other.join();
    EXPECT_EQ(ipc_server_wait_for_data(m.s, 0), -ECANCELED) << "sticky until run() returns";
    ipc_server_close(m.s);  // clears the request
    ASSERT_EQ(ipc_server_listen(m.s), 0);
    EXPECT_EQ(ipc_server_wait_for_data(m.s, 10 * kMs), -ETIMEDOUT);
    sigaction(SIGUSR2, &old, nullptr);
    g_stop_server = nullptr;
}

} // namespace
