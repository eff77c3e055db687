// Hostile and careless socket peers: a slow loris, a thousand connections,
// a server out of fds, a peer writing garbage, a pipelined request split at
// an unlucky point. The server must keep serving everybody else, never spin
// and never die.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/testing.h"
#include "stress/stress_driver.h"
#include "stress/test_util.h"

namespace ipc_stress {
namespace {

using ipc_testing::Client;
using ipc_testing::ConnectUnixStream;
using ipc_testing::Fork;
using ipc_testing::ScopedDir;
using ipc_testing::WaitChild;


// One checked request/reply on c; its latency, or 0 on any failure.
uint64_t RoundTrip(ipc_client *c, uint32_t id, uint64_t seq, size_t len, std::vector<uint8_t> *buf)
{
    buf->resize(len + 1);
    BuildRequest(buf->data(), len, id, seq);
    uint64_t t0 = NowNs();
    if (ipc_client_send(c, buf->data(), len, 10 * kSecond) != 0)
        return 0;
    ssize_t n = ipc_client_recv(c, buf->data(), buf->size(), 10 * kSecond);
    uint64_t dt = NowNs() - t0;
    if (n < 0 || !ReplyMatches(buf->data(), (size_t)n, id, seq, len))
        return 0;
    return dt ? dt : 1;
}

// A client that keeps making checked requests while `busy` returns true.
struct Bystander {
    uint64_t requests = 0;
    uint64_t failures = 0;
    uint64_t max_ns = 0;
    uint64_t total_ns = 0;

    template <typename Busy>
    void Run(const Endpoint &ep, uint32_t id, Busy busy)
    {
        Client c(CreateClient(ep));
        ASSERT_EQ(ConnectRetry(c.get(), 10 * kSecond), 0);
        std::vector<uint8_t> buf;
        uint64_t rng = id;
        for (uint64_t seq = 0; busy(); seq++) {
            uint64_t dt = RoundTrip(c.get(), id, seq, PickSize(&rng, seq, ep.MaxPayload()), &buf);
            if (dt == 0) {
                failures++;
                return;
            }
            requests++;
            total_ns += dt;
            max_ns = std::max(max_ns, dt);
        }
    }
    void Print(const char *what) const
    {
        std::printf("%s: bystander requests=%llu failures=%llu max_latency_ms=%.2f "
                    "mean_latency_ms=%.3f\n",
                    what, (unsigned long long)requests, (unsigned long long)failures,
                    max_ns / 1e6, requests ? total_ns / 1e6 / requests : 0.0);
        std::fflush(stdout);
    }
};

// Without reaping it: WaitChild() collects the status later.
bool ChildRunning(pid_t pid)
{
    siginfo_t info = {};
    return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
}

// Writes all of data within timeout_ms without ever blocking; false if the
// peer would not take it all in time.
bool WriteWithin(int fd, const void *data, size_t len, int timeout_ms)
{
    const uint8_t *p = static_cast<const uint8_t *>(data);
    uint64_t end = NowNs() + (uint64_t)timeout_ms * kMs;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (NowNs() > end)
            return false;
        usleep(1000);
    }
    return true;
}

class SocketAbuse : public ::testing::Test {
  protected:
    void StartServer(size_t max_message, rlim_t nofile = 0)
    {
        ep_ = SocketEndpoint(dir_.path(), max_message);
        std::string err;
        ASSERT_TRUE(server_.Start(ep_, nofile, &err)) << err;
        ASSERT_EQ(QueryStats(ep_, &before_, 10 * kSecond), 0);
    }

    // Server fds back to what they were with one client, then a clean stop.
    void ExpectServerClean()
    {
        ServerStats after = {};
        uint64_t end = NowNs() + 5 * kSecond;
        do {
            ASSERT_EQ(QueryStats(ep_, &after, 10 * kSecond), 0);
        } while (after.fds_now != before_.fds_now && NowNs() < end);
        EXPECT_EQ(after.fds_now, before_.fds_now);
        ServerFinal final;
        std::string err;
        EXPECT_TRUE(server_.Stop(&final, &err)) << err;
        EXPECT_EQ(final.run_rc, 0);
        EXPECT_EQ(final.fds_after_destroy, final.fds_before_create);
        EXPECT_EQ(final.bad_requests, 0u);
    }

    ScopedDir dir_;
    Endpoint ep_;
    ServerChild server_;
    ServerStats before_ = {};
};

TEST_F(SocketAbuse, SlowLorisWritingOneBytePer100msDoesNotDelayOthers)
{
    StartServer(64 << 10);
    std::string path = ep_.name;
    // 4-byte header + a 24-byte request: 28 bytes, 2.8 s.
    pid_t loris = Fork([path]() {
        int fd = ConnectUnixStream(path);
        if (fd < 0)
            return 1;
        uint8_t frame[4 + kHeaderSize];
        uint32_t len = kHeaderSize;
        memcpy(frame, &len, 4);
        BuildRequest(frame + 4, len, 999, 0);
        for (uint8_t b : frame) {
            if (!ipc_testing::WriteExactly(fd, &b, 1))
                return 2;
            usleep(100 * 1000);
        }
        uint8_t reply[sizeof(frame)];
        if (!ipc_testing::ReadExactly(fd, reply, sizeof(reply)) || memcmp(reply, frame, 4) != 0)
            return 3;
        return ReplyMatches(reply + 4, len, 999, 0, len) ? 0 : 4;
    });
    ASSERT_GT(loris, 0);
    Bystander b;
    b.Run(ep_, 1, [loris]() { return ChildRunning(loris); });
    b.Print("slow loris");
    EXPECT_EQ(WaitChild(loris, 30000), 0) << "the slow loris got no correct reply";
    EXPECT_EQ(b.failures, 0u);
    EXPECT_GT(b.requests, 10u);
    ExpectServerClean();
}

TEST_F(SocketAbuse, AThousandSimultaneousConnectionsAreAllServed)
{
    const int want = 1000;
    rlim_t limit = RaiseNofile(want + 256);
    int n = std::min<int>(want, (int)limit - 128);
    std::printf("RLIMIT_NOFILE=%llu: %d simultaneous connections%s\n", (unsigned long long)limit,
                n, n < want ? " (reduced: the hard limit is too low)" : "");
    ASSERT_GT(n, 0);
    StartServer(64 << 10);
    std::vector<Client> clients;
    uint64_t t0 = NowNs();
    for (int i = 0; i < n; i++) {
        clients.emplace_back(CreateClient(ep_));
        ASSERT_EQ(ConnectRetry(clients.back().get(), 10 * kSecond), 0) << "client " << i;
    }
    std::vector<uint8_t> buf(4096);
    for (int i = 0; i < n; i++) {
        size_t len = 24 + (size_t)i % 2000;
        BuildRequest(buf.data(), len, (uint32_t)i, 7);
        ASSERT_EQ(ipc_client_send(clients[i].get(), buf.data(), len, 10 * kSecond), 0);
    }
    int served = 0;
    for (int i = 0; i < n; i++) {
        ssize_t got = ipc_client_recv(clients[i].get(), buf.data(), buf.size(), 10 * kSecond);
        served += got >= 0 && ReplyMatches(buf.data(), (size_t)got, (uint32_t)i, 7,
                                           24 + (size_t)i % 2000);
    }
    std::printf("%d of %d connections served in %.1f ms\n", served, n, (NowNs() - t0) / 1e6);
    EXPECT_EQ(served, n);
    clients.clear();
    ExpectServerClean();
}

TEST_F(SocketAbuse, ServerOutOfFdsNeitherSpinsNorDiesAndServesOnceFdsFreeUp)
{
    const int n = 100;
    StartServer(64 << 10, 64);
    std::vector<Client> clients;
    std::vector<uint8_t> buf(4096);
    for (int i = 0; i < n; i++) {
        clients.emplace_back(CreateClient(ep_));
        // connect() completes in the backlog even when the server cannot accept.
        ASSERT_EQ(ipc_client_connect(clients.back().get()), 0) << "client " << i;
        BuildRequest(buf.data(), 100, (uint32_t)i, 1);
        ASSERT_EQ(ipc_client_send(clients.back().get(), buf.data(), 100, 10 * kSecond), 0);
    }
    std::vector<bool> served(n, false);
    int first = 0;
    uint64_t settle = NowNs() + 500 * kMs;
    for (int i = 0; i < n; i++) {
        uint64_t now = NowNs();
        uint64_t wait = settle > now + kMs ? settle - now : kMs;
        ssize_t got = ipc_client_recv(clients[i].get(), buf.data(), buf.size(), wait);
        if (got >= 0) {
            ASSERT_TRUE(ReplyMatches(buf.data(), (size_t)got, (uint32_t)i, 1, 100));
            served[i] = true;
            first++;
        } else {
            ASSERT_EQ(got, -ETIMEDOUT) << "client " << i;
        }
    }
    // Idle now, with connections waiting that it cannot accept.
    int64_t cpu0 = ProcessCpuNs(server_.pid());
    usleep(1000 * 1000);
    int64_t cpu1 = ProcessCpuNs(server_.pid());
    std::printf("out of fds: %d of %d served at first; server CPU over 1 s idle: %.1f ms\n",
                first, n, (cpu1 - cpu0) / 1e6);
    ASSERT_GE(cpu0, 0) << "the server died";
    ASSERT_GE(cpu1, 0) << "the server died";
    EXPECT_LT(first, n) << "RLIMIT_NOFILE=64 did not limit the server";
    EXPECT_GT(first, 0);
    EXPECT_LT(cpu1 - cpu0, (int64_t)(250 * kMs)) << "the server spins while out of fds";
    // Free the fds of the served connections; the rest must be served now.
    for (int i = 0; i < n; i++)
        if (served[i])
            clients[i].reset();
    int later = 0;
    for (int i = 0; i < n; i++) {
        if (served[i])
            continue;
        ssize_t got = ipc_client_recv(clients[i].get(), buf.data(), buf.size(), 10 * kSecond);
        later += got >= 0 && ReplyMatches(buf.data(), (size_t)got, (uint32_t)i, 1, 100);
    }
    std::printf("out of fds: %d more served after fds were freed\n", later);
    EXPECT_EQ(first + later, n);
    clients.clear();
    ExpectServerClean();
}

TEST_F(SocketAbuse, PeerWritingGarbageDoesNotDisturbOthers)
{
    StartServer(64 << 10);
    std::string path = ep_.name;
    pid_t hostile = Fork([path]() {
        uint64_t rng = 12345, end = NowNs() + 1500 * kMs;
        int connections = 0;
        std::vector<uint8_t> junk(70000);
        while (NowNs() < end) {
            int fd = ConnectUnixStream(path);
            if (fd < 0)
                return 1;
            connections++;
            for (int k = 0; k < 20; k++) {
                size_t len = 1 + NextRandom(&rng) % junk.size();
                for (uint8_t &b : junk)
                    b = (uint8_t)NextRandom(&rng);
                if (NextRandom(&rng) % 2) {
                    /* A plausible length: garbage the server will serve. */
                    uint32_t n = (uint32_t)(NextRandom(&rng) % 5000);
                    memcpy(junk.data(), &n, 4);
                }
                if (!ipc_testing::WriteExactly(fd, junk.data(), len))
                    break; /* dropped: reconnect */
            }
            if (NextRandom(&rng) % 2)
                shutdown(fd, SHUT_WR);
            close(fd);
        }
        std::printf("hostile peer: %d connections of garbage\n", connections);
        return 0;
    });
    ASSERT_GT(hostile, 0);
    Bystander b;
    b.Run(ep_, 1, [hostile]() { return ChildRunning(hostile); });
    b.Print("garbage writer");
    EXPECT_EQ(WaitChild(hostile, 30000), 0);
    EXPECT_EQ(b.failures, 0u);
    EXPECT_GT(b.requests, 10u);
    ServerStats st = {};
    ASSERT_EQ(QueryStats(ep_, &st, 10 * kSecond), 0);
    std::printf("garbage writer: server handled %llu requests, %llu foreign\n",
                (unsigned long long)st.requests, (unsigned long long)st.foreign);
    ExpectServerClean();
}

// Found by socket_stress_test: a whole request followed, in one read, by
// >= 64 KiB of the next (larger) request paused reading from the connection
// for good: the second reply never came and the peer's hang-up was never
// noticed (its fd leaked until the server closed).
TEST_F(SocketAbuse, WholeRequestFollowedByPartOfALargeOneKeepsBeingRead)
{
    StartServer(1 << 20);
    int fd = ConnectUnixStream(ep_.name);
    ASSERT_GE(fd, 0);
    int big = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)); /* capped at wmem_max */
    const uint32_t a = 193200, b = 418399;
    std::vector<uint8_t> out(8 + a + b);
    memcpy(out.data(), &a, 4);
    BuildRequest(out.data() + 4, a, 5, 0);
    memcpy(out.data() + 4 + a, &b, 4);
    BuildRequest(out.data() + 8 + a, b, 5, 1);
    usleep(100 * 1000); /* accepted */
    ASSERT_TRUE(ipc_testing::WriteExactly(fd, out.data(), 100000)); /* the server buffers part of a */
    usleep(100 * 1000);
    // The rest of a and 100 KB of b arrive while the server is stopped, so
    // it reads them in one go.
    kill(server_.pid(), SIGSTOP);
    bool all = WriteWithin(fd, out.data() + 100000, 4 + a + 4 + 100000 - 100000, 2000);
    kill(server_.pid(), SIGCONT);
    ASSERT_TRUE(all) << "the socket buffer cannot hold the setup; SO_SNDBUF too small";
    std::vector<uint8_t> in(4 + b);
    ASSERT_TRUE(ipc_testing::ReadExactly(fd, in.data(), 4 + a));
    EXPECT_TRUE(ReplyMatches(in.data() + 4, a, 5, 0, a));
    ASSERT_TRUE(ipc_testing::WriteExactly(fd, out.data() + 8 + a + 100000, b - 100000));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ASSERT_TRUE(ipc_testing::ReadExactly(fd, in.data(), 4 + b)) << "no reply to the second request within 5 s";
    EXPECT_TRUE(ReplyMatches(in.data() + 4, b, 5, 1, b));
    close(fd);
    ExpectServerClean();
}

}  // namespace
}  // namespace ipc_stress
