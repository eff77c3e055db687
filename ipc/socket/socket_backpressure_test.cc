// Back-pressure on the socket server: a client whose replies pile up is held
// (none of its requests is handed out until its queue drains), never dropped
// for reading slowly, kept within bounded server memory when it never reads,
// and never makes the other clients wait.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/fixtures.h"
#include "ipc/testing/testing.h"

using ipc_testing::Client;
using ipc_testing::Server;
using ipc_testing::ConnectUnixStream;
using ipc_testing::ConnectWithRetry;
using ipc_testing::Fork;
using ipc_testing::MatchesPattern;
using ipc_testing::ProcStatusKiB;
using ipc_testing::ReadExactly;
using ipc_testing::Pattern;
using ipc_testing::ServerProcess;
using ipc_testing::WaitChild;
using ipc_testing::WriteExactly;

#ifdef IPC_TESTING_ASAN
// The memory tests read the server's RSS. ASan's quarantine (256 MiB by
// default) keeps every freed block resident for a while, so the RSS would
// count memory the server already gave back; 1 MiB keeps use-after-free
// checks and takes that out of the figure. ASAN_OPTIONS still overrides it.
extern "C" const char *__asan_default_options() { return "quarantine_size_mb=1"; }
// With detect_stack_use_after_return (the asan config sets it) frames live
// on a per-thread fake stack of a few MiB, touched on first use: a fixed
// cost, whatever the client sends.
constexpr long kSanitizerFixedCost = 8l << 20;
#elif defined(IPC_TESTING_TSAN)
// ThreadSanitizer maps shadow memory (four times the application's) and
// metadata for every heap page the server touches, and its allocator keeps
// per-thread caches: measured +1.2 to +1.75 MiB for what costs well under
// 1 MiB uninstrumented. An unbounded queue grows by tens of MiB here.
constexpr long kSanitizerFixedCost = 4l << 20;
#else
constexpr long kSanitizerFixedCost = 0;
#endif

namespace {

constexpr uint64_t kSecond = 1000ull * 1000 * 1000;
constexpr uint64_t kMs = 1000ull * 1000;


std::vector<uint8_t> Frame(const std::vector<uint8_t> &payload)
{
    std::vector<uint8_t> f(4 + payload.size());
    uint32_t n = (uint32_t)payload.size();
    for (int i = 0; i < 4; i++)
        f[i] = (uint8_t)(n >> (8 * i));
    std::copy(payload.begin(), payload.end(), f.begin() + 4);
    return f;
}

class SocketBackpressure : public ipc_testing::SocketFixture {
  protected:
    SocketBackpressure() : SocketFixture("bp.sock") {}

    ServerProcess::Factory Factory(size_t max_pending_output)
    {
        ipc_server_options o = {};
        o.max_pending_output = max_pending_output;
        return ServerAt(o);
    }

    uint64_t Drops()
    {
        ipc_stats st;
        EXPECT_EQ(ipc_stats_fetch("socket", path_.c_str(), &st, nullptr), 0);
        return st.drops;
    }

    // A server with this bound on queued replies, a good client, and a raw
    // client flooding `payload`-byte requests (FloodThenDrain): the server's
    // memory stays bounded, and nobody is dropped.
    void ExpectBoundedMemoryUnderAFlood(size_t payload, size_t bound);
};

TEST_F(SocketBackpressure, ClientThatStopsReadingIsHeldNotDroppedAndGetsEveryReplyOnceItReads)
{
    ServerProcess server(Factory(256 << 10));
    ASSERT_TRUE(server.ok());
    Client hog = Connect(), good = Connect();
    // The hog sends and does not read: once its replies fill the bound the
    // server stops taking its requests, the socket fills, and its send times
    // out with nothing sent. The other client is served all along.
    int rc = 0, sent = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        std::vector<uint8_t> m = Pattern(60000, (uint64_t)i);
        rc = ipc_client_send(hog.get(), m.data(), m.size(), 200 * kMs);
        if (rc == 0)
            sent++;
        ExpectEcho(good.get(), 100, (uint64_t)i);
    }
    ASSERT_EQ(rc, -ETIMEDOUT);
    ASSERT_GT(sent, 4);
    // Reading now, it gets every reply, in order, and is still connected.
    std::vector<uint8_t> buf(60000);
    for (int i = 0; i < sent; i++) {
        ASSERT_EQ(ipc_client_recv(hog.get(), buf.data(), buf.size(), 10 * kSecond), 60000)
            << "reply " << i << " of " << sent;
        ASSERT_TRUE(MatchesPattern(buf.data(), buf.size(), (uint64_t)i)) << i;
    }
    ExpectEcho(hog.get(), 1000, 7);
    ExpectEcho(good.get(), 50000, 99);
    EXPECT_EQ(Drops(), 0u);
    EXPECT_EQ(server.Stop(), 0);
}

// A raw client floods frames of `payload` bytes without ever reading, until
// the server has not taken a byte for 300 ms; then it reads every reply.
void FloodThenDrain(const std::string &path, pid_t server, size_t payload, size_t bound)
{
    int fd = ConnectUnixStream(path);
    ASSERT_GE(fd, 0);
    std::vector<uint8_t> one = Frame(std::vector<uint8_t>(payload, 0xab));
    ASSERT_TRUE(WriteExactly(fd, one.data(), one.size()));
    std::vector<uint8_t> reply(one.size());
    ASSERT_TRUE(ReadExactly(fd, reply.data(), reply.size()));
    long before = ProcStatusKiB(server, "VmRSS") * 1024;
    ASSERT_GT(before, 0);

    std::vector<uint8_t> batch;
    for (size_t i = 0; i < 4096 / one.size(); i++)
        batch.insert(batch.end(), one.begin(), one.end());
    ASSERT_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    uint64_t frames = 0;
    size_t partial = 0; // bytes of the current batch already sent
    auto idle_since = std::chrono::steady_clock::now();
    auto give_up = idle_since + std::chrono::seconds(5); // a server that never pushes back
    while (std::chrono::steady_clock::now() - idle_since < std::chrono::milliseconds(300)) {
        ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the server never stopped reading";
        ssize_t n = send(fd, batch.data() + partial, batch.size() - partial, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 50);
            continue;
        }
        ASSERT_GT(n, 0) << "the server dropped the client: " << strerror(errno);
        partial += (size_t)n;
        if (partial == batch.size()) {
            frames += batch.size() / one.size();
            partial = 0;
        }
        idle_since = std::chrono::steady_clock::now();
    }
    // Finish the batch under way so that only whole frames are owed.
    ASSERT_EQ(fcntl(fd, F_SETFL, 0), 0);
    std::thread finish([&]() { EXPECT_TRUE(WriteExactly(fd, batch.data() + partial, batch.size() - partial)); });
    long after = ProcStatusKiB(server, "VmRSS") * 1024;
    // The server's memory for this client: the reply queue (the bound and a
    // page), the input buffer (256 KiB of requests past the front frame, its
    // buffer at most twice that), and 1 MiB of slack.
    long budget = (long)(bound + (512u << 10) + (1u << 20)) + kSanitizerFixedCost;
    printf("flooded %llu frames of %zu bytes against a %zu-byte bound: server RSS +%ld KiB\n",
           (unsigned long long)frames, payload, bound, (after - before) / 1024);
    EXPECT_LT(after - before, budget) << frames << " frames flooded; RSS " << before
                                      << " -> " << after;
    if (partial != 0)
        frames += batch.size() / one.size();
    // Every request is answered, in order, on the same connection.
    uint64_t got = 0;
    std::vector<uint8_t> chunk(64 << 10);
    size_t want = (size_t)frames * one.size(), have = 0;
    while (have < want) {
        size_t k = std::min(chunk.size(), want - have);
        k -= k % one.size();
        if (k == 0)
            k = one.size();
        ASSERT_TRUE(ReadExactly(fd, chunk.data(), k)) << "dropped after " << got << " replies";
        for (size_t off = 0; off < k; off += one.size())
            ASSERT_EQ(memcmp(chunk.data() + off, one.data(), one.size()), 0);
        have += k;
        got += k / one.size();
    }
    finish.join();
    EXPECT_EQ(got, frames);
    EXPECT_GT(frames, bound / one.size()) << "the flood should pass the bound";
    close(fd);
}

void SocketBackpressure::ExpectBoundedMemoryUnderAFlood(size_t payload, size_t bound)
{
    ServerProcess server(Factory(bound));
    ASSERT_TRUE(server.ok());
    Client good = Connect();
    FloodThenDrain(path_, server.pid(), payload, bound);
    ExpectEcho(good.get(), 100, 1);
    EXPECT_EQ(Drops(), 0u);
}

TEST_F(SocketBackpressure, ServerMemoryForAClientSendingEmptyRequestsAndNeverReadingIsBounded)
{
    ExpectBoundedMemoryUnderAFlood(0, 64 << 10);
}

TEST_F(SocketBackpressure, ServerMemoryForAClientSendingOneByteRequestsAndNeverReadingIsBounded)
{
    ExpectBoundedMemoryUnderAFlood(1, 192 << 10);
}

// Pipelined requests of 0 B .. 300 KB written by one thread while another
// reads the replies slowly: the queue passes the bound again and again, and
// every reply arrives, matched in order.
TEST_F(SocketBackpressure, PipeliningClientThatReadsSlowlyIsNeverDropped)
{
    ServerProcess server(Factory(512 << 10));
    ASSERT_TRUE(server.ok());
    Client good = Connect();
    int fd = ConnectUnixStream(path_);
    ASSERT_GE(fd, 0);
    constexpr int kRequests = 300;
    auto size_of = [](int i) { return (size_t)((uint64_t)i * 2654435761u % (300001)); };
    std::thread writer([&]() {
        for (int i = 0; i < kRequests; i++) {
            std::vector<uint8_t> f = Frame(Pattern(size_of(i), (uint64_t)i));
            // Two writes per request, like the upstream JavaScript client.
            if (!WriteExactly(fd, f.data(), 4) || !WriteExactly(fd, f.data() + 4, f.size() - 4)) {
                ADD_FAILURE() << "write " << i << ": " << strerror(errno);
                return;
            }
        }
    });
    std::vector<uint8_t> body;
    for (int i = 0; i < kRequests; i++) {
        if (i % 16 == 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        uint8_t hdr[4];
        ASSERT_TRUE(ReadExactly(fd, hdr, 4)) << "dropped before reply " << i;
        size_t len = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 |
                     (size_t)hdr[3] << 24;
        ASSERT_EQ(len, size_of(i));
        body.resize(len);
        ASSERT_TRUE(ReadExactly(fd, body.data(), len));
        ASSERT_TRUE(MatchesPattern(body.data(), len, (uint64_t)i)) << i;
        if (i % 50 == 0)
            ExpectEcho(good.get(), 10, (uint64_t)i);
    }
    writer.join();
    close(fd);
    EXPECT_EQ(Drops(), 0u);
}

// Output that answers no request is the application's, not the client's:
// past the bound it drops the client with -ENOBUFS rather than grow.
TEST_F(SocketBackpressure, UnsolicitedOutputPastTheBoundDropsTheClientWithEnobufs)
{
    ipc_server_options o = {};
    o.max_pending_output = 128 << 10;
    Server s(ipc_server_create_socket_ex(path_.c_str(), 4, &o));
    ASSERT_EQ(ipc_server_listen(s.get()), 0);
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    pid_t kid = Fork([&]() {
        close(go[1]);
        Client c(ipc_client_create_socket(path_.c_str()));
        if (ConnectWithRetry(c.get()) != 0 || ipc_client_send(c.get(), "x", 1, kSecond) != 0)
            return 1;
        char b;
        return read(go[0], &b, 1) >= 0 ? 0 : 2; // never reads the socket
    });
    close(go[0]);
    int id = ipc_server_wait_for_data(s.get(), 10 * kSecond);
    ASSERT_GE(id, 0);
    char b;
    ASSERT_EQ(ipc_server_recv(s.get(), id, &b, 1), 1);
    std::vector<uint8_t> big(60000, 1);
    ASSERT_EQ(ipc_server_send(s.get(), id, big.data(), big.size()), 0); // the answer
    int rc = 0, extra = 0;
    while (rc == 0 && extra < 1000) {
        rc = ipc_server_send(s.get(), id, big.data(), big.size());
        extra++;
    }
    EXPECT_EQ(rc, -ENOBUFS);
    EXPECT_EQ(ipc_server_send(s.get(), id, "y", 1), -ENOENT);
    ipc_stats st;
    ASSERT_EQ(ipc_server_stats(s.get(), &st), 0);
    EXPECT_EQ(st.drops, 1u);
    close(go[1]);
    EXPECT_EQ(WaitChild(kid), 0);
}

}  // namespace
