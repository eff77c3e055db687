// The socket transport through the public API, with real processes on both
// ends wherever processes meet.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/fixtures.h"
#include "ipc/testing/testing.h"

using ipc_testing::Client;
using ipc_testing::Server;
using ipc_testing::ConnectWithRetry;
using ipc_testing::Fork;
using ipc_testing::MatchesPattern;
using ipc_testing::Pattern;
using ipc_testing::ServerProcess;
using ipc_testing::WaitChild;

namespace {

constexpr uint64_t kSecond = 1000ull * 1000 * 1000;
constexpr uint64_t kMs = 1000ull * 1000;


class SocketTest : public ipc_testing::SocketFixture {
  protected:
    SocketTest() : SocketFixture("s.sock") {}

    ServerProcess::Factory SocketFactory(size_t max_message = 0)
    {
        ipc_server_options o = {};
        o.max_message_size = max_message;
        return ServerAt(o);
    }

    // A raw connected socket, for writing bytes the client API never would.
    int RawConnect()
    {
        int fd = ipc_testing::ConnectUnixStream(path_);
        EXPECT_GE(fd, 0) << strerror(-fd);
        return fd;
    }
};

TEST_F(SocketTest, EchoesMessagesOfZeroOneFourKiBAndOneMiB)
{
    ServerProcess server(SocketFactory(2u << 20));
    ASSERT_TRUE(server.ok());
    Client c = Connect();
    for (size_t len : {0ul, 1ul, 4096ul, 65537ul, 1ul << 20})
        ExpectEcho(c.get(), len, len);
    EXPECT_EQ(server.Stop(), 0);
}

// What the kernel grants a socket asking for `bytes` of send buffer the way
// the transport does (SO_SNDBUFFORCE where permitted, else SO_SNDBUF).
int GrantedSendBuffer(int bytes)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) < 0)
        (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
    int got = 0;
    socklen_t len = sizeof(got);
    (void)getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &got, &len);
    close(sv[0]);
    close(sv[1]);
    return got;
}

// A client's socket can queue a whole default-size message (as far as the
// kernel lets this process), so sending one never stops half-way.
TEST_F(SocketTest, ClientSendBufferHoldsAWholeDefaultMessage)
{
    ServerProcess server(SocketFactory());
    ASSERT_TRUE(server.ok());
    Client c = Connect();
    int fd = ipc_client_fd(c.get());
    ASSERT_GE(fd, 0);
    int have = 0;
    socklen_t len = sizeof(have);
    ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len), 0);
    EXPECT_GE(have, GrantedSendBuffer((int)(IPC_DEFAULT_MAX_MESSAGE + 4)));
    EXPECT_EQ(server.Stop(), 0);
}

TEST_F(SocketTest, ServesManyClientsFromManyProcesses)
{
    ServerProcess server(SocketFactory());
    ASSERT_TRUE(server.ok());
    constexpr int kProcs = 16, kMsgs = 200;
    std::vector<pid_t> kids;
    for (int p = 0; p < kProcs; p++) {
        kids.push_back(Fork([&, p]() {
            Client c(ipc_client_create_socket(path_.c_str()));
            if (ConnectWithRetry(c.get()) != 0)
                return 1;
            std::vector<uint8_t> buf(70000);
            for (int i = 0; i < kMsgs; i++) {
                uint64_t seq = (uint64_t)p << 32 | (uint64_t)i;
                size_t len = (size_t)(i * 331 + p) % 65536;
                std::vector<uint8_t> msg = Pattern(len, seq);
                if (ipc_client_send(c.get(), msg.data(), len, 10 * kSecond) != 0)
                    return 2;
                if (ipc_client_recv(c.get(), buf.data(), buf.size(), 10 * kSecond) !=
                    (ssize_t)len)
                    return 3;
                if (!MatchesPattern(buf.data(), len, seq))
                    return 4;
            }
            return 0;
        }));
    }
    for (pid_t k : kids)
        EXPECT_EQ(WaitChild(k, 60000), 0);
}

TEST_F(SocketTest, GivesEachLiveClientADistinctIdAndNeverReusesAnOwedOne)
{
    Server s(ipc_server_create_socket(path_.c_str(), 2));
    ASSERT_EQ(ipc_server_listen(s.get()), 0);
    std::vector<Client> clients;
    for (int i = 0; i < 5; i++) {
        clients.push_back(Connect());
        uint8_t b = (uint8_t)i;
        ASSERT_EQ(ipc_client_send(clients.back().get(), &b, 1, kSecond), 0);
    }
    std::set<int> ids;
    std::vector<int> id_of(5);
    for (int i = 0; i < 5; i++) {
        int id = ipc_server_wait_for_data(s.get(), kSecond);
        ASSERT_GE(id, 0);
        uint8_t b;
        ASSERT_EQ(ipc_server_recv(s.get(), id, &b, 1), 1);
        id_of[b] = id;
        ids.insert(id);
    }
    EXPECT_EQ(ids.size(), 5u);
    // Client 0 leaves while its reply is owed: its id must not be reused yet.
    clients[0].reset();
    Client late = Connect();
    uint8_t b = 9;
    ASSERT_EQ(ipc_client_send(late.get(), &b, 1, kSecond), 0);
    int late_id = ipc_server_wait_for_data(s.get(), kSecond);
    ASSERT_GE(late_id, 0);
    EXPECT_EQ(ids.count(late_id), 0u);
    EXPECT_EQ(ipc_server_send(s.get(), id_of[0], "x", 1), -ECONNRESET);
    // Replies reach the right clients.
    for (int i = 1; i < 5; i++) {
        uint8_t r = (uint8_t)(100 + i);
        ASSERT_EQ(ipc_server_send(s.get(), id_of[i], &r, 1), 0);
        uint8_t got = 0;
        ASSERT_EQ(ipc_client_recv(clients[i].get(), &got, 1, kSecond), 1);
        EXPECT_EQ(got, r);
    }
    EXPECT_EQ(ipc_server_send(s.get(), 100000, "x", 1), -ENOENT);
    EXPECT_EQ(ipc_server_recv(s.get(), -1, &b, 1), -ENOENT);
}

TEST_F(SocketTest, ALentRequestOutlivesItsClientAndItsIdIsNotReusedMeanwhile)
{
    Server s(ipc_server_create_socket(path_.c_str(), 1));
    ASSERT_EQ(ipc_server_listen(s.get()), 0);
    Client first = Connect();
    std::vector<uint8_t> m = Pattern(3000, 5);
    ASSERT_EQ(ipc_client_send(first.get(), m.data(), m.size(), kSecond), 0);
    int id = ipc_server_wait_for_data(s.get(), kSecond);
    ASSERT_GE(id, 0);
    const void *req;
    ASSERT_EQ(ipc_server_peek(s.get(), id, &req), 3000);
    first.reset(); /* the client leaves while its request is lent */
    Client second = Connect();
    ASSERT_EQ(ipc_client_send(second.get(), "x", 1, kSecond), 0);
    int id2 = ipc_server_wait_for_data(s.get(), kSecond); /* sees the hang-up too */
    ASSERT_GE(id2, 0);
    EXPECT_NE(id2, id);
    EXPECT_TRUE(MatchesPattern(req, 3000, 5)) << "lent memory stays valid";
    EXPECT_EQ(ipc_server_send(s.get(), id, "r", 1), -ECONNRESET);
    EXPECT_EQ(ipc_server_release(s.get(), id), -ECONNRESET);
    EXPECT_EQ(ipc_server_release(s.get(), id), -ENOENT);
}

TEST_F(SocketTest, TimeoutsBoundWaitsAndLeaveTheStreamInSync)
{
    Server s(ipc_server_create_socket(path_.c_str(), 1));
    ASSERT_EQ(ipc_server_listen(s.get()), 0);
    Client c = Connect();
    uint8_t buf[64];
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(ipc_client_recv(c.get(), buf, sizeof(buf), 1), -ETIMEDOUT);
    EXPECT_EQ(ipc_client_recv(c.get(), buf, sizeof(buf), 20 * kMs), -ETIMEDOUT);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(20));
    EXPECT_EQ(ipc_server_wait_for_data(s.get(), 5 * kMs), -ETIMEDOUT);

}

// A bare listening socket standing in for a server, so a test can write
// exactly the bytes and timing it wants.
class RawServer {
  public:
    explicit RawServer(const std::string &path)
    {
        lfd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = {};
        a.sun_family = AF_UNIX;
        strcpy(a.sun_path, path.c_str());
        EXPECT_EQ(bind(lfd_, (struct sockaddr *)&a, sizeof(a)), 0);
        EXPECT_EQ(listen(lfd_, 8), 0);
    }
    ~RawServer()
    {
        close(fd_);
        close(lfd_);
    }
    void Accept() { fd_ = accept(lfd_, nullptr, nullptr); }
    void Write(const void *p, size_t n) { ASSERT_EQ(write(fd_, p, n), (ssize_t)n); }
    void WriteFrame(const std::vector<uint8_t> &m, size_t from = 0, size_t to = SIZE_MAX)
    {
        std::vector<uint8_t> f(4 + m.size());
        uint32_t n = (uint32_t)m.size();
        for (int i = 0; i < 4; i++)
            f[i] = (uint8_t)(n >> (8 * i));
        std::copy(m.begin(), m.end(), f.begin() + 4);
        to = std::min(to, f.size());
        Write(f.data() + from, to - from);
    }
    int fd() const { return fd_; }

  private:
    int lfd_ = -1, fd_ = -1;
};

TEST_F(SocketTest, TimedOutRecvMidFrameKeepsThePartForTheNextCall)
{
    RawServer raw(path_);
    Client c = Connect();
    raw.Accept();
    for (size_t len : {100ul, 200000ul}) {
        std::vector<uint8_t> m = Pattern(len, len), got(len);
        raw.WriteFrame(m, 0, 2); /* half a header */
        EXPECT_EQ(ipc_client_recv(c.get(), got.data(), len, 5 * kMs), -ETIMEDOUT);
        raw.WriteFrame(m, 2, 4 + len / 2);
        EXPECT_EQ(ipc_client_recv(c.get(), got.data(), len, 5 * kMs), -ETIMEDOUT);
        raw.WriteFrame(m, 4 + len / 2);
        ASSERT_EQ(ipc_client_recv(c.get(), got.data(), len, kSecond), (ssize_t)len);
        EXPECT_TRUE(MatchesPattern(got.data(), len, len));
    }
}

TEST_F(SocketTest, ClientReassemblesFramesSplitByteByByteAndCoalesced)
{
    RawServer raw(path_);
    Client c = Connect();
    raw.Accept();
    std::vector<uint8_t> a = Pattern(300, 1), b = Pattern(0, 2), d = Pattern(70000, 3);
    std::thread writer([&]() {
        std::vector<uint8_t> all;
        for (auto *m : {&a, &b, &d}) {
            uint32_t n = (uint32_t)m->size();
            for (int i = 0; i < 4; i++)
                all.push_back((uint8_t)(n >> (8 * i)));
            all.insert(all.end(), m->begin(), m->end());
        }
        for (size_t i = 0; i < 400; i++) /* byte by byte, then the rest at once */
            raw.Write(&all[i], 1);
        raw.Write(all.data() + 400, all.size() - 400);
    });
    std::vector<uint8_t> got(70000);
    EXPECT_EQ(ipc_client_recv(c.get(), got.data(), got.size(), 10 * kSecond), 300);
    EXPECT_TRUE(MatchesPattern(got.data(), 300, 1));
    EXPECT_EQ(ipc_client_recv(c.get(), got.data(), got.size(), 10 * kSecond), 0);
    EXPECT_EQ(ipc_client_recv(c.get(), got.data(), got.size(), 10 * kSecond), 70000);
    EXPECT_TRUE(MatchesPattern(got.data(), 70000, 3));
    writer.join();
}

TEST_F(SocketTest, OversizeReplyIsDiscardedWholeWithEmsgsize)
{
    RawServer raw(path_);
    Client c = Connect();
    raw.Accept();
    uint8_t small[16];
    for (size_t len : {17ul, 100000ul}) {
        raw.WriteFrame(Pattern(len, 1));
        raw.WriteFrame(Pattern(5, 2));
        EXPECT_EQ(ipc_client_recv(c.get(), small, sizeof(small), kSecond), -EMSGSIZE);
        EXPECT_EQ(ipc_client_recv(c.get(), small, sizeof(small), kSecond), 5);
        EXPECT_TRUE(MatchesPattern(small, 5, 2));
    }
}

TEST_F(SocketTest, ClientSeesResetAtOnceWhenTheServerIsKilledDuringAnUnlimitedRecv)
{
    ServerProcess server(SocketFactory());
    ASSERT_TRUE(server.ok());
    Client c = Connect();
    ExpectEcho(c.get(), 10, 1);
    std::thread killer([&]() {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        server.Kill(SIGKILL);
    });
    uint8_t buf[16];
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(ipc_client_recv(c.get(), buf, sizeof(buf), 0), -ECONNRESET);
    killer.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    int rc = ipc_client_send(c.get(), "x", 1, kSecond);
    EXPECT_TRUE(rc == -EPIPE || rc == -ECONNRESET) << rc;
}

TEST_F(SocketTest, ServerDropsOnlyTheClientKilledMidFrame)
{
    ServerProcess server(SocketFactory());
    ASSERT_TRUE(server.ok());
    Client good = Connect();
    pid_t victim = Fork([&]() {
        int fd = RawConnect();
        uint8_t hdr[4] = {0x00, 0x00, 0x01, 0x00}; /* 64 KiB announced */
        if (write(fd, hdr, 4) != 4 || write(fd, "partial", 7) != 7)
            return 1;
        pause();
        return 0;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ExpectEcho(good.get(), 100, 1);
    kill(victim, SIGKILL);
    EXPECT_EQ(WaitChild(victim), 128 + SIGKILL);
    for (int i = 0; i < 20; i++)
        ExpectEcho(good.get(), 1000, (uint64_t)i);
}

TEST_F(SocketTest, OversizeAndAllOnesLengthPrefixesCloseOnlyThatConnectionCountedAsBoth)
{
    ServerProcess server(SocketFactory(1024));
    ASSERT_TRUE(server.ok());
    Client good = Connect();
    for (uint32_t len : {1025u, 0xFFFFFFFFu}) {
        int fd = RawConnect();
        uint8_t hdr[4];
        for (int i = 0; i < 4; i++)
            hdr[i] = (uint8_t)(len >> (8 * i));
        ASSERT_EQ(write(fd, hdr, 4), 4);
        char b;
        EXPECT_EQ(read(fd, &b, 1), 0) << "server must hang up on " << len;
        close(fd);
        ExpectEcho(good.get(), 1024, len);
    }
    // Each is an oversize request and a dropped client (docs/OPERATIONS.md).
    ipc_stats st;
    ASSERT_EQ(ipc_stats_fetch("socket", path_.c_str(), &st, nullptr), 0);
    EXPECT_EQ(st.oversize, 2u);
    EXPECT_EQ(st.drops, 2u);
}

TEST_F(SocketTest, TruncatedFrameThenCloseIsDroppedAndServingGoesOn)
{
    ServerProcess server(SocketFactory());
    ASSERT_TRUE(server.ok());
    Client good = Connect();
    int fd = RawConnect();
    uint8_t bytes[] = {10, 0, 0, 0, 'a', 'b', 'c'};
    ASSERT_EQ(write(fd, bytes, sizeof(bytes)), (ssize_t)sizeof(bytes));
    close(fd);
    ExpectEcho(good.get(), 3, 3);
}

TEST_F(SocketTest, ServerReassemblesFramesSplitByteByByteAndCoalesced)
{
    ServerProcess server(SocketFactory());
    ASSERT_TRUE(server.ok());
    int fd = RawConnect();
    std::vector<uint8_t> all;
    const size_t lens[] = {5, 0, 3000, 1};
    for (size_t k = 0; k < 4; k++) {
        for (int i = 0; i < 4; i++)
            all.push_back((uint8_t)(lens[k] >> (8 * i)));
        std::vector<uint8_t> m = Pattern(lens[k], k);
        all.insert(all.end(), m.begin(), m.end());
    }
    for (size_t i = 0; i < 20; i++) {
        ASSERT_EQ(write(fd, &all[i], 1), 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(write(fd, all.data() + 20, all.size() - 20), (ssize_t)(all.size() - 20));
    // Replies come back as coalesced frames in order, read by a real client
    // parser: reuse the library by handing it the connected fd's bytes.
    std::vector<uint8_t> expect = all, got(all.size());
    size_t n = 0;
    while (n < got.size()) {
        ssize_t r = read(fd, got.data() + n, got.size() - n);
        ASSERT_GT(r, 0);
        n += (size_t)r;
    }
    EXPECT_EQ(got, expect);
    close(fd);
}

TEST_F(SocketTest, SecondServerOnALivePathGetsEaddrinuseAndLeavesTheFirstAlone)
{
    ServerProcess server(SocketFactory());
    ASSERT_TRUE(server.ok());
    Server second(ipc_server_create_socket(path_.c_str(), 1));
    EXPECT_EQ(ipc_server_listen(second.get()), -EADDRINUSE);
    second.reset();
    Client c = Connect();
    ExpectEcho(c.get(), 10, 1);
}

TEST_F(SocketTest, StalePathOfAKilledServerIsTakenOver)
{
    {
        ServerProcess crashed(SocketFactory());
        ASSERT_TRUE(crashed.ok());
        crashed.Kill(SIGKILL);
    }
    struct stat st;
    ASSERT_EQ(lstat(path_.c_str(), &st), 0) << "the crash should leave the file";
    ServerProcess server(SocketFactory());
    ASSERT_TRUE(server.ok());
    Client c = Connect();
    ExpectEcho(c.get(), 10, 1);
    EXPECT_EQ(server.Stop(), 0);
    EXPECT_NE(lstat(path_.c_str(), &st), 0) << "a clean stop removes the file";
}

TEST_F(SocketTest, RefusesToReplaceAFileThatIsNotASocket)
{
    ASSERT_TRUE(ipc_testing::CreateRegularFile(path_, 0644));
    Server s(ipc_server_create_socket(path_.c_str(), 1));
    EXPECT_EQ(ipc_server_listen(s.get()), -EEXIST);
    EXPECT_TRUE(ipc_testing::IsRegularFile(path_));
}

TEST_F(SocketTest, SocketFileIsOwnerOnlyByDefaultAndTheModeIsConfigurable)
{
    struct stat st;
    {
        Server s(ipc_server_create_socket(path_.c_str(), 1));
        ASSERT_EQ(ipc_server_listen(s.get()), 0);
        ASSERT_EQ(lstat(path_.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600u);
    }
    ipc_server_options o = {};
    o.socket_mode = 0660;
    Server s(ipc_server_create_socket_ex(path_.c_str(), 1, &o));
    ASSERT_EQ(ipc_server_listen(s.get()), 0);
    ASSERT_EQ(lstat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    o.socket_mode = 01777;
    EXPECT_EQ(ipc_server_create_socket_ex(path_.c_str(), 1, &o), nullptr);
}

TEST_F(SocketTest, TooLongPathIsRejectedNotTruncated)
{
    std::string longest = "/tmp/" + std::string(102, 'a'); /* 107 bytes: fits */
    std::string too_long = longest + "b";
    Client ok(ipc_client_create_socket(longest.c_str()));
    EXPECT_NE(ok, nullptr);
    EXPECT_EQ(ipc_client_create_socket(too_long.c_str()), nullptr);
    EXPECT_EQ(ipc_server_create_socket(too_long.c_str(), 1), nullptr);
    EXPECT_EQ(ipc_client_create_socket(""), nullptr);
    EXPECT_EQ(ipc_client_create_socket(nullptr), nullptr);
    EXPECT_EQ(ipc_server_create_socket(path_.c_str(), -1), nullptr);
}

TEST_F(SocketTest, CallsOnUnconnectedObjectsFailCleanly)
{
    Client c(ipc_client_create_socket(path_.c_str()));
    uint8_t b;
    EXPECT_EQ(ipc_client_send(c.get(), "x", 1, 0), -ENOTCONN);
    EXPECT_EQ(ipc_client_recv(c.get(), &b, 1, 0), -ENOTCONN);
    EXPECT_EQ(ipc_client_connect(c.get()), -ENOENT);
    EXPECT_EQ(ipc_client_send(nullptr, "x", 1, 0), -EINVAL);
    Server s(ipc_server_create_socket(path_.c_str(), 1));
    EXPECT_EQ(ipc_server_wait_for_data(s.get(), 1), -ENOTCONN);
    ASSERT_EQ(ipc_server_listen(s.get()), 0);
    EXPECT_EQ(ipc_server_listen(s.get()), -EALREADY);
    ASSERT_EQ(ipc_client_connect(c.get()), 0);
    EXPECT_EQ(ipc_client_connect(c.get()), -EISCONN);
    EXPECT_EQ(ipc_client_send(c.get(), nullptr, 1, 0), -EFAULT);
    EXPECT_EQ(ipc_client_send(c.get(), nullptr, 0, kSecond), 0);
}

TEST_F(SocketTest, SendTimesOutWithNothingSentWhenTheServerStalls)
{
    RawServer raw(path_); /* accepts, never reads */
    Client c = Connect();
    raw.Accept();
    std::vector<uint8_t> m = Pattern(65536, 1);
    int rc = 0, sent = 0;
    while ((rc = ipc_client_send(c.get(), m.data(), m.size(), 20 * kMs)) == 0)
        sent++;
    EXPECT_EQ(rc, -ETIMEDOUT);
    EXPECT_GT(sent, 0);
    // Every frame the client reported as sent arrives whole, in order; none
    // of the timed-out one does.
    std::thread reader([&]() {
        for (int i = 0; i < sent; i++) {
            uint8_t hdr[4];
            size_t n = 0;
            while (n < 4)
                n += (size_t)read(raw.fd(), hdr + n, 4 - n);
            ASSERT_EQ(hdr[0] | hdr[1] << 8 | hdr[2] << 16 | hdr[3] << 24, 65536);
            std::vector<uint8_t> body(65536);
            n = 0;
            while (n < body.size())
                n += (size_t)read(raw.fd(), body.data() + n, body.size() - n);
            ASSERT_EQ(body, m);
        }
    });
    // Flushes anything parked from a frame that had started.
    uint8_t b;
    EXPECT_EQ(ipc_client_recv(c.get(), &b, 1, 2 * kSecond), -ETIMEDOUT);
    reader.join();
}

TEST_F(SocketTest, OutOfFileDescriptorsNeitherSpinsNorKillsTheServer)
{
    std::string path = path_;
    ServerProcess server([path]() {
        struct rlimit rl = {32, 32};
        setrlimit(RLIMIT_NOFILE, &rl);
        return ipc_server_create_socket(path.c_str(), 4);
    });
    ASSERT_TRUE(server.ok());
    Client early = Connect();
    ExpectEcho(early.get(), 10, 1);
    std::vector<int> flood;
    for (int i = 0; i < 60; i++)
        flood.push_back(RawConnect());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    long before = (ipc_testing::ProcessCpuNs(server.pid()) / 1000000);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    long used = (ipc_testing::ProcessCpuNs(server.pid()) / 1000000) - before;
    EXPECT_LT(used, 250) << "the server spins while out of fds";
    ExpectEcho(early.get(), 10, 2);
    for (int fd : flood)
        close(fd);
    Client late = Connect();
    ExpectEcho(late.get(), 100, 3);
    ExpectEcho(early.get(), 10, 4);
}

}  // namespace
