// The shared-memory server keeps its promises against real clients and
// hostile local users (issue 11): bounded memory whatever a client sends,
// no request consumed without an answer, back-pressure instead of drops for
// clients that read, and one client can only hurt itself. Every peer is a
// forked process; the other-user cases run as uid 65534.
#include <errno.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <grp.h>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipc/ipc.h"
#include "ipc/testing/testing.h"
// Last: <stdatomic.h> macros clash with <atomic> when included first.
#include "ipc/shm/shm_layout.h"
#include "ipc/shm/shm_client.h"
#include "ipc/shm/shm_handshake.h"

namespace {

using ipc_testing::ConnectShm;
using ipc_testing::Fork;
using ipc_testing::MatchesPattern;
using ipc_testing::ProcStatusKiB;
using ipc_testing::NowNs;
using ipc_testing::Pipe;
using ipc_testing::Pattern;
using ipc_testing::ServerProcess;
using ipc_testing::UniqueName;
using ipc_testing::WaitChild;

constexpr uint64_t kMs = 1000000ull;
constexpr uint64_t kSec = 1000 * kMs;

ipc_server_options Options(size_t ring, size_t max_message, size_t max_pending)
{
    ipc_server_options o = {};
    o.ring_size = ring;
    o.max_message_size = max_message;
    o.max_pending_output = max_pending;
    return o;
}

// An echo server in a child process on a fresh name (from prefix), for
// max_clients with these options, and run with this request limit (0: the
// options'); Connect() makes a client of it.
class EchoServer : public ServerProcess {
  public:
    EchoServer(const char *prefix, size_t max_clients, ipc_server_options o,
               size_t run_limit = 0)
        : EchoServer(UniqueName(prefix), max_clients, o, run_limit)
    {
    }
    const std::string &name() const { return name_; }
    ipc_client *Connect(int *rc = nullptr) const { return ConnectShm(name_, max_clients_, rc); }

  private:
    EchoServer(const std::string &name, size_t max_clients, ipc_server_options o,
               size_t run_limit)
        : ServerProcess([=]() { return ipc_server_create_shm_ex(name.c_str(), max_clients, &o); },
                        ipc_testing::EchoHandler, run_limit),
          name_(name), max_clients_(max_clients)
    {
    }
    const std::string name_;
    const size_t max_clients_;
};

// One echo round trip of Pattern(len, seq): 0 or the failing call's error
// (-1000: a wrong reply).
long Echo(ipc_client *c, size_t len, uint64_t seq, uint64_t timeout_ns = 10 * kSec)
{
    std::vector<uint8_t> msg = Pattern(len, seq), buf(len + 16);
    int rc = ipc_client_send(c, msg.data(), len, timeout_ns);
    if (rc != 0)
        return rc;
    ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), timeout_ns);
    if (n < 0)
        return n;
    return (size_t)n == len && MatchesPattern(buf.data(), len, seq) ? 0 : -1000;
}

// ------------------------------------------- 1 + 3: memory and pressure

// A client sends requests of reply_len bytes (echoed) and never reads. The
// server stops taking its requests once its queued replies reach
// max_pending_output, counted at their real cost: the server's heap grows
// by about the bound, never by millions of "free" empty replies. Meanwhile
// another client is served, and the non-reader, once it reads, gets every
// reply: held, never dropped.
void NonReaderIsHeldAtTheBound(size_t reply_len, size_t bound)
{
    EchoServer srv("held", 2, Options(4096, 0, bound));
    ASSERT_TRUE(srv.ok());
    ipc_client *c = srv.Connect();
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(Echo(c, reply_len, 0), 0);
    long before = ProcStatusKiB(srv.pid(), "RssAnon");
    std::vector<uint8_t> msg = Pattern(reply_len, 7);
    uint64_t sent = 0;
    int rc = 0;
    for (uint64_t t0 = NowNs(); NowNs() - t0 < 3 * kSec;) {
        if ((rc = ipc_client_send(c, msg.data(), reply_len, 100 * kMs)) != 0)
            break;
        sent++;
    }
    EXPECT_EQ(rc, -ETIMEDOUT) << "the server stops taking requests: the request ring fills";
    usleep(100 * 1000);
    long after = ProcStatusKiB(srv.pid(), "RssAnon");
    printf("%zu-byte replies, bound %zu KiB: %llu requests taken, server heap +%ld KiB\n",
           reply_len, bound / 1024, (unsigned long long)sent, after - before);
    // Taken: a request ring and a response ring full of records (8 bytes of
    // header, the payload padded to 8), the bound's worth of queued replies
    // at 32 bytes each (what the node of a reply this small costs in
    // glibc's heap), and one more over it.
    const uint64_t ring_records = 4096 / (8 + ((reply_len + 7) & ~(size_t)7));
    EXPECT_LE(sent, 2 * ring_records + bound / 32 + 1) << "queued replies counted at cost";
#if !defined(IPC_TESTING_ASAN)
    // ASan's allocator adds redzones, shadow and quarantine: the heap of an
    // instrumented server is not what the count above bounds.
    EXPECT_LT(after - before, 1024) << "heap growth within a small multiple of the bound";
#endif

    ipc_client *other = srv.Connect();
    ASSERT_NE(other, nullptr);
    for (uint64_t i = 0; i < 100; i++)
        ASSERT_EQ(Echo(other, 100, i, 5 * kSec), 0) << "others are served meanwhile";
    ipc_client_destroy(other);

    std::vector<uint8_t> buf(reply_len + 16);
    uint64_t got = 0;
    for (; got < sent; got++) {
        ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), 5 * kSec);
        if (n != (ssize_t)reply_len || !MatchesPattern(buf.data(), reply_len, 7)) {
            ADD_FAILURE() << "reply " << got << " of " << sent << ": " << n;
            break;
        }
    }
    EXPECT_EQ(got, sent) << "every request taken was answered";
    EXPECT_EQ(Echo(c, reply_len, 1), 0) << "the non-reader was never dropped";
    ipc_client_destroy(c);
    EXPECT_EQ(srv.Stop(), 0);
}

TEST(ShmLimits, ANonReaderOfEmptyRepliesHoldsTheServerNearItsBound)
{
    NonReaderIsHeldAtTheBound(0, 72 * 1024);
}

TEST(ShmLimits, ANonReaderOfOneByteRepliesHoldsTheServerNearItsBound)
{
    NonReaderIsHeldAtTheBound(1, 192 * 1024);
}

// A client that pipelines deeply and reads slowly pushes the server's reply
// queue past max_pending_output again and again: the server pauses it, it
// is never dropped, and every reply comes back in order.
TEST(ShmLimits, AClientThatReadsSlowlyIsNeverDropped)
{
    EchoServer srv("slow", 1, Options(4096, 0, 8192));
    ASSERT_TRUE(srv.ok());
    ipc_client *c = srv.Connect();
    ASSERT_NE(c, nullptr);
    std::mt19937 rng(42);
    const uint64_t total = 2000;
    std::vector<size_t> sizes(total);
    for (auto &s : sizes)
        s = rng() % 3 == 0 ? rng() % 2000 : rng() % 64;
    std::vector<uint8_t> buf(4096);
    uint64_t sent = 0, got = 0, paused_sends = 0;
    while (got < total) {
        if (sent < total) {
            std::vector<uint8_t> msg = Pattern(sizes[sent], sent);
            int rc = ipc_client_try_send(c, msg.data(), msg.size());
            if (rc == 0) {
                sent++;
                continue;
            }
            ASSERT_EQ(rc, -EAGAIN) << "request " << sent;
            paused_sends++;
        }
        if (got % 16 == 0)
            usleep(500); // a slow reader
        ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), 5 * kSec);
        ASSERT_EQ(n, (ssize_t)sizes[got]) << "reply " << got;
        ASSERT_TRUE(MatchesPattern(buf.data(), (size_t)n, got)) << "reply " << got;
        got++;
    }
    printf("%llu pipelined requests, %llu sends found the request ring full\n",
           (unsigned long long)total, (unsigned long long)paused_sends);
    ipc_stats st;
    ASSERT_EQ(ipc_client_stats(c, &st), 0);
    EXPECT_EQ(st.resets, 0u);
    ipc_client_destroy(c);
    EXPECT_EQ(srv.Stop(), 0);
}

// ------------------------------------------ 2: nothing consumed silently

TEST(ShmLimits, ARequestOverTheServersLimitGetsEmsgsizeAtSendWithNothingSent)
{
    EchoServer srv("limit", 1, Options(65536, 1000, 0));
    ASSERT_TRUE(srv.ok());
    ipc_client *c = srv.Connect();
    ASSERT_NE(c, nullptr);
    std::vector<uint8_t> big(1001), buf(2048);
    EXPECT_EQ(ipc_client_send(c, big.data(), big.size(), kSec), -EMSGSIZE);
    void *loan = nullptr;
    EXPECT_EQ(ipc_client_loan(c, 1001, &loan, kSec), -EMSGSIZE);
    EXPECT_EQ(ipc_client_try_send(c, big.data(), big.size()), -EMSGSIZE);
    // Pipelined around the refused one: replies pair with their requests.
    std::vector<uint8_t> a = Pattern(1000, 1), b = Pattern(10, 2);
    ASSERT_EQ(ipc_client_send(c, a.data(), a.size(), kSec), 0);
    EXPECT_EQ(ipc_client_send(c, big.data(), big.size(), kSec), -EMSGSIZE);
    ASSERT_EQ(ipc_client_send(c, b.data(), b.size(), kSec), 0);
    ASSERT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 5 * kSec), 1000);
    EXPECT_TRUE(MatchesPattern(buf.data(), 1000, 1));
    ASSERT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 5 * kSec), 10);
    EXPECT_TRUE(MatchesPattern(buf.data(), 10, 2));
    ASSERT_EQ(ipc_client_loan(c, 1000, &loan, kSec), 0) << "exactly the limit is fine";
    ASSERT_EQ(ipc_client_commit(c, 1000), 0);
    EXPECT_EQ(ipc_client_recv(c, buf.data(), buf.size(), 5 * kSec), 1000);
    ipc_client_destroy(c);
    EXPECT_EQ(srv.Stop(), 0);
}

// A request record of len bytes written straight into the client's own
// request ring, past what ipc_client_send() allows (an old or hostile
// client).
void WriteRawRequest(ipc_client *c, uint32_t len, uint64_t ring)
{
    uint8_t *seg = ipc__shm_client_of(c)->seg.base;
    auto *req = reinterpret_cast<ipc__spsc_shared *>(seg + ipc__shm_req_offset());
    uint8_t *data = seg + ipc__shm_req_offset() + IPC_SHM_RING_CTRL_SIZE;
    uint64_t tail = atomic_load(&req->tail);
    uint32_t hdr[2] = {len, 0};
    memcpy(data + (tail & (ring - 1)), hdr, sizeof(hdr));
    memset(data + (tail & (ring - 1)) + 8, 'x', len);
    atomic_store(&req->tail, tail + 8 + ((len + 7) & ~7u));
}

// A client whose request over the limit still reaches the server is
// dropped: it learns at once (-ECONNRESET), it never waits for a reply
// that will not come.
void OversizeReachingTheServerDrops(size_t create_limit, size_t run_limit, uint32_t len)
{
    const uint64_t ring = 16384;
    EchoServer srv("over", 2, Options(ring, create_limit, 0), run_limit);
    ASSERT_TRUE(srv.ok());
    pid_t bad = Fork([&] {
        ipc_client *c = srv.Connect();
        if (c == nullptr)
            return 10;
        if (Echo(c, 10, 1) != 0)
            return 11;
        // Told a smaller limit, it writes the request past the check, as an
        // old or hostile client would.
        std::vector<uint8_t> m(len);
        int rc = ipc_client_send(c, m.data(), len, kSec);
        if (rc == -EMSGSIZE)
            WriteRawRequest(c, len, ring);
        else if (rc != 0)
            return 12;
        std::vector<uint8_t> buf(ring);
        ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), 5 * kSec);
        ipc_client_destroy(c);
        if (n == -ECONNRESET)
            return 0;
        fprintf(stderr, "the oversize client's recv gave %zd\n", n);
        return 13;
    });
    EXPECT_EQ(WaitChild(bad, 20000), 0);
    ipc_client *good = srv.Connect();
    ASSERT_NE(good, nullptr);
    EXPECT_EQ(Echo(good, run_limit ? run_limit : create_limit, 3), 0) << "the limit itself passes";
    ipc_client_destroy(good);
    EXPECT_EQ(srv.Stop(), 0);
}

TEST(ShmLimits, ARequestOverTheLimitThatReachesTheServerDropsTheClient)
{
    OversizeReachingTheServerDrops(1000, 0, 2000);
}

TEST(ShmLimits, RunWithASmallerLimitThanTheServersOptionsDropsAClientOverIt)
{
    OversizeReachingTheServerDrops(4000, 1000, 2000);
}

// ------------------------------------------ 6: one client hurts only itself

// Every mapping of this process whose /proc/self/maps line names tag.
std::vector<std::pair<uint8_t *, size_t>> Mappings(const char *tag)
{
    std::vector<std::pair<uint8_t *, size_t>> out;
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    while (f != nullptr && fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (strstr(line, tag) != nullptr && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
            out.emplace_back(reinterpret_cast<uint8_t *>(lo), hi - lo);
    }
    if (f != nullptr)
        fclose(f);
    return out;
}

// A client writes garbage over everything it shares with other clients
// (the server's doorbell, if it can write it at all) and keeps its wait
// words pinned at zero, then leaves. Other clients' round trips stay quick
// meanwhile and new clients still connect.
TEST(ShmLimits, AClientScribblingOnSharedStateHurtsOnlyItself)
{
    EchoServer srv("bell", 3, Options(8192, 0, 0));
    ASSERT_TRUE(srv.ok());
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    pid_t bad = Fork([&] {
        close(go[0]);
        ipc_client *c = srv.Connect();
        if (c == nullptr)
            return 10;
        if (Echo(c, 8, 1) != 0)
            return 11;
        int writable = 0;
        std::vector<std::pair<uint8_t *, size_t>> maps = Mappings("ipc-shm-bell");
        for (auto &m : maps) {
            if (mprotect(m.first, m.second, PROT_READ | PROT_WRITE) != 0)
                continue;
            writable++;
            memset(m.first, 0xA5, 64); // magic and version
        }
        printf("hostile client: %zu doorbell mapping(s), %d writable\n", maps.size(), writable);
        fflush(stdout);
        (void)!write(go[1], "g", 1);
        if (writable == 0) { // nothing shared to pin: stay connected a while
            usleep(2000 * 1000);
            _exit(0);
        }
        for (uint64_t t0 = NowNs(); NowNs() - t0 < 2 * kSec;)
            for (auto &m : maps)
                for (size_t off = 64; off < 128; off += 4) // the wait words
                    __atomic_store_n(reinterpret_cast<uint32_t *>(m.first + off), 0,
                                     __ATOMIC_RELAXED);
        _exit(30); // leaves without closing; it could write the doorbell
    });
    close(go[1]);
    char b;
    ASSERT_EQ(read(go[0], &b, 1), 1);
    close(go[0]);
    ipc_client *good = srv.Connect();
    ASSERT_NE(good, nullptr) << "a client connecting after the scribble";
    uint64_t worst = 0;
    for (uint64_t i = 0; i < 40; i++) {
        usleep(3000); // let the server go to sleep: its wake-up is what is at stake
        uint64_t t = NowNs();
        ASSERT_EQ(Echo(good, 64, i, 200 * kMs), 0) << "round trip " << i;
        worst = std::max(worst, NowNs() - t);
    }
    printf("slowest round trip while the doorbell was scribbled: %.2f ms\n", worst / 1e6);
    EXPECT_EQ(WaitChild(bad, 10000), 0) << "30: the client could write the shared doorbell";
    for (int i = 0; i < 5; i++) {
        int rc = 0;
        ipc_client *later = srv.Connect(&rc);
        ASSERT_EQ(rc, 0) << "connect " << i << " after the hostile client left";
        EXPECT_EQ(Echo(later, 64, 100 + i, 200 * kMs), 0);
        ipc_client_destroy(later);
    }
    ipc_client_destroy(good);
    EXPECT_EQ(srv.Stop(), 0);
}

// What a client does to the fds the server shared with it, on the open file
// descriptions they share: blocking mode, O_ASYNC signals aimed at the
// server, draining its wake eventfd from two threads while writing it in
// bursts, saturating its counter, resizing or punching the memfds. Then it
// exits without closing anything. The server never reads, waits on or
// resizes through a description a client holds (docs/SHM.md §5a), so it
// keeps serving, reclaims both hostile connections, admits new clients and
// stops cleanly.
int AbuseSharedFds(pid_t server, ipc_client *c, const int hello[IPC_SHM_HELLO_FDS])
{
    ipc__shm_client *sc = ipc__shm_client_of(c);
    const int fds[] = {sc->wake_fd, hello[IPC_SHM_HELLO_SEGMENT], hello[IPC_SHM_HELLO_BELL],
                       hello[IPC_SHM_HELLO_WAKE]};
    for (int fd : fds) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, (fl & ~O_NONBLOCK) | O_ASYNC) != 0 ||
            fcntl(fd, F_SETOWN, server) != 0 || fcntl(fd, F_SETSIG, SIGUSR1) != 0)
            return 20;
    }
    for (int i = IPC_SHM_HELLO_SEGMENT; i <= IPC_SHM_HELLO_BELL; i++)
        if (ftruncate(hello[i], 0) == 0)
            return 21; // sealed against shrinking: the server's mapping would SIGBUS
    if (fallocate(hello[IPC_SHM_HELLO_BELL], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                  4096) == 0)
        return 22; // the doorbell page is sealed against writes
    const int wakes[] = {sc->wake_fd, hello[IPC_SHM_HELLO_WAKE]};
    std::vector<std::thread> readers;
    for (int fd : wakes)
        for (int k = 0; k < 6; k++)
            readers.emplace_back([fd] {
                uint64_t v;
                while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
                    ;
            });
    (void)Echo(c, 16, 3, 1 * kSec); // the server wakes through these fds
    for (uint64_t t0 = NowNs(); NowNs() - t0 < 2 * kSec;) // bursts: it drains while we do
        for (int burst = 0; burst < 64; burst++)
            for (int fd : wakes) {
                uint64_t one = 1;
                (void)!write(fd, &one, sizeof(one));
            }
    uint64_t most = 0xfffffffffffffffeull; // the counter saturated: writes block
    (void)!write(hello[IPC_SHM_HELLO_WAKE], &most, sizeof(most));
    _exit(0); // the readers are still blocked in read(); nothing is closed
}

TEST(ShmLimits, AClientAbusingTheFdsItSharesWithTheServerCostsTheServerNothing)
{
    EchoServer srv("fds", 3, Options(8192, 0, 0));
    ASSERT_TRUE(srv.ok());
    Pipe go;
    pid_t server = srv.pid();
    pid_t bad = Fork([&] {
        go.CloseRead();
        ipc_client *c = srv.Connect();
        if (c == nullptr || Echo(c, 8, 1) != 0)
            return 10;
        int raw = ipc__shm_dial(srv.name().c_str()), hello[IPC_SHM_HELLO_FDS];
        uint32_t id;
        if (raw < 0 || ipc__shm_hello_recv(raw, 5 * kSec, hello, &id) != 0)
            return 11;
        go.Put('g');
        return AbuseSharedFds(server, c, hello);
    });
    go.CloseWrite();
    ASSERT_EQ(go.Get(), 'g');
    ipc_client *good = srv.Connect();
    ASSERT_NE(good, nullptr) << "a client connecting during the abuse";
    for (uint64_t i = 0; i < 400; i++) { // through the abuse and past it
        usleep(3000); // let the server go to sleep: its wake-up is what is at stake
        ASSERT_EQ(Echo(good, 64, i, 2 * kSec), 0) << "round trip " << i;
    }
    EXPECT_EQ(WaitChild(bad, 10000), 0) << "20-22: a shared fd refused the abuse differently";
    for (uint64_t i = 0; i < 20; i++)
        ASSERT_EQ(Echo(good, 64, 100 + i, 2 * kSec), 0) << "after the abuser left, " << i;
    // Both of its connections were reclaimed: the two other slots take new
    // clients (3 slots in all), each served.
    std::vector<ipc_client *> later;
    for (int i = 0; i < 2; i++) {
        int rc = 0;
        later.push_back(srv.Connect(&rc));
        ASSERT_EQ(rc, 0) << "connect " << i << " after the abuser left";
        EXPECT_EQ(Echo(later.back(), 64, 200 + i, 2 * kSec), 0);
    }
    for (ipc_client *l : later)
        ipc_client_destroy(l);
    ipc_client_destroy(good);
    EXPECT_EQ(srv.Stop(), 0) << "the server still stops cleanly";
}

// Becomes uid/gid 65534 with no supplementary groups (setpriv --reuid=65534
// --regid=65534 --clear-groups); false when that is not allowed.
bool BecomeNobody()
{
    if (setgroups(0, nullptr) == 0 && setresgid(65534, 65534, 65534) == 0 &&
        setresuid(65534, 65534, 65534) == 0 && geteuid() == 65534)
        return true;
    fprintf(stderr, "cannot become uid 65534: %s\n", strerror(errno));
    return false;
}

// A user the server refuses hammers its rendezvous socket: connect and
// close as fast as it can. Connected clients are not stalled, and the
// owner's new connects succeed.
TEST(ShmLimits, ARefusedUserConnectingInALoopStallsNobody)
{
    if (geteuid() != 0)
        GTEST_SKIP() << "needs root to act as uid 65534 (CI runs as root)";
    EchoServer srv("refused", 4, Options(8192, 0, 0));
    ASSERT_TRUE(srv.ok());
    ipc_client *good = srv.Connect();
    ASSERT_NE(good, nullptr);
    ASSERT_EQ(Echo(good, 64, 0), 0);
    struct sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "ipc-shm/%s", srv.name().c_str());
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    std::vector<pid_t> hammers;
    for (int k = 0; k < 2; k++)
        hammers.push_back(Fork([&] {
            if (!BecomeNobody())
                return 20;
            uint64_t tries = 0, refused = 0;
            for (uint64_t t0 = NowNs(); NowNs() - t0 < 3 * kSec; tries++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
                if (fd < 0)
                    return 21;
                if (connect(fd, (struct sockaddr *)&a, alen) != 0)
                    refused++;
                close(fd);
            }
            // And the library's own connect, as that user: refused.
            int rc = 0;
            ipc_client *c = srv.Connect(&rc);
            printf("uid 65534: %llu connects (%llu failed at once), library connect %d\n",
                   (unsigned long long)tries, (unsigned long long)refused, rc);
            fflush(stdout);
            ipc_client_destroy(c);
            return rc == -EACCES ? 0 : 22;
        }));
    usleep(100 * 1000);
    uint64_t worst = 0, rounds = 0, worst_connect = 0;
    int connects = 0, connect_failures = 0, last_rc = 0;
    for (uint64_t t0 = NowNs(); NowNs() - t0 < 2500 * kMs; rounds++) {
        uint64_t t = NowNs();
        ASSERT_EQ(Echo(good, 64, rounds + 1, 5 * kSec), 0) << "round trip " << rounds;
        worst = std::max(worst, NowNs() - t);
        if (rounds % 64 == 0) {
            int rc = 0;
            uint64_t t1 = NowNs();
            ipc_client *c = srv.Connect(&rc);
            worst_connect = std::max(worst_connect, NowNs() - t1);
            connects++;
            if (rc != 0) {
                connect_failures++;
                last_rc = rc;
            }
            ipc_client_destroy(c);
        }
    }
    printf("under the hammer: %llu round trips, slowest %.2f ms; owner connects %d (slowest "
           "%.2f ms), failed %d (last %d)\n",
           (unsigned long long)rounds, worst / 1e6, connects, worst_connect / 1e6,
           connect_failures, last_rc);
    EXPECT_EQ(connect_failures, 0) << "last error " << last_rc;
    EXPECT_LT(worst, 500 * kMs) << "a connected client stalled (it was seconds)";
    for (pid_t p : hammers)
        EXPECT_EQ(WaitChild(p, 20000), 0);
    ipc_client_destroy(good);
    EXPECT_EQ(srv.Stop(), 0);
}

}  // namespace
