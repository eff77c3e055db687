// ipc/ipc.hpp beyond the seed's API: options, zero-copy receive / release and
// loans on both sides, event-loop fds, stats, request_shutdown(), and errors
// as std::error_code. Servers and clients meet across fork().
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.hpp"
#include "ipc/testing/testing.h"

using ipc_testing::Fork;
using ipc_testing::WaitChild;

namespace {

constexpr uint64_t kSecond = 1000ull * 1000 * 1000;

// ---- what the types promise
static_assert(!std::is_copy_constructible_v<ipc::IpcClient>);
static_assert(!std::is_copy_assignable_v<ipc::IpcServer>);
static_assert(std::is_nothrow_move_constructible_v<ipc::IpcClient>);
static_assert(std::is_nothrow_move_assignable_v<ipc::IpcServer>);
static_assert(noexcept(std::declval<ipc::IpcServer &>().request_shutdown()));
static_assert(noexcept(std::declval<ipc::IpcClient &>().close()));
static_assert(noexcept(std::declval<ipc::IpcClient &>().stats()));
static_assert(noexcept(std::declval<ipc::IpcClient &>().receive(0, std::declval<std::error_code &>())));
static_assert(noexcept(std::declval<ipc::IpcServer &>().loan(0, 1, std::declval<std::error_code &>())));

// An echo run() on a thread, stopped and joined however the test ends.
class EchoThread {
  public:
    explicit EchoThread(ipc::IpcServer &s, size_t max_message = 1 << 20)
        : server_(s), thread_([this, max_message] {
              server_.run([](int, std::span<const uint8_t> r) {
                  return std::vector<uint8_t>(r.begin(), r.end());
              }, max_message);
          })
    {
    }
    ~EchoThread()
    {
        server_.request_shutdown();
        thread_.join();
    }

  private:
    ipc::IpcServer &server_;
    std::thread thread_;
};

class CppApiTest : public ::testing::TestWithParam<const char *> {
  protected:
    bool shm() const { return std::strcmp(GetParam(), "shm") == 0; }
    void SetUp() override { name_ = shm() ? ipc_testing::UniqueName("cpp") : dir_.file("c.sock"); }
    std::unique_ptr<ipc::IpcServer> MakeServer(const ipc::ServerOptions &o = {})
    {
        return shm() ? ipc::IpcServer::create_shm(name_, 2, o)
                     : ipc::IpcServer::create_socket(name_, 2, o);
    }
    std::unique_ptr<ipc::IpcClient> MakeClient()
    {
        return shm() ? ipc::IpcClient::create_shm(name_, 2) : ipc::IpcClient::create_socket(name_);
    }
    // body in a child process with a connected client; its exit code.
    pid_t ForkClient(const std::function<int(ipc::IpcClient &)> &body)
    {
        return Fork([&]() {
            auto c = MakeClient();
            return ipc_testing::ConnectWithRetry(c->native()) == 0 ? body(*c) : 100;
        });
    }
    ipc_testing::ScopedDir dir_;
    std::string name_;
};

TEST_P(CppApiTest, ZeroCopyRunAndZeroCopyClientEchoInPlace)
{
    auto server = MakeServer();
    ASSERT_TRUE(server->listen());
    pid_t kid = ForkClient([](ipc::IpcClient &c) {
        for (uint64_t seq = 0; seq < 50; seq++) {
            std::vector<uint8_t> msg = ipc_testing::Pattern(seq * 37, seq);
            std::span<uint8_t> loan = c.loan(msg.size(), kSecond);
            if (loan.data() == nullptr)
                return 2;
            std::copy(msg.begin(), msg.end(), loan.begin());
            if (!c.commit(msg.size()))
                return 3;
            std::span<const uint8_t> reply = c.receive(5 * kSecond);
            if (reply.data() == nullptr || reply.size() != msg.size() + 1 ||
                !ipc_testing::MatchesPattern(reply.data(), msg.size(), seq) ||
                reply.back() != static_cast<uint8_t>(seq))
                return 4;
            if (!c.release() || c.release() || c.last_error() != -EINVAL)
                return 5;
        }
        // Wait for the (empty) reply to quit, so the server counts it sent.
        return c.send("quit", 4) && c.receive(5 * kSecond).size() == 0 ? 0 : 6;
    });
    int calls = 0;
    server->run_zero_copy([&](int, std::span<const uint8_t> req, ipc::Reply &reply) {
        calls++;
        if (req.size() == 4 && std::memcmp(req.data(), "quit", 4) == 0)
            return ipc::Action::Shutdown;
        std::span<uint8_t> out = reply.reserve(req.size() + 1);
        std::copy(req.begin(), req.end(), out.begin());
        out.back() = static_cast<uint8_t>(calls - 1);
        return ipc::Action::Continue;
    });
    EXPECT_EQ(calls, 51);
    EXPECT_EQ(WaitChild(kid), 0);
    ipc::Stats st = server->stats();
    EXPECT_EQ(st.messages_in, 51u);
    EXPECT_EQ(st.messages_out, 51u);
    EXPECT_EQ(st.samples(), 51u);
    EXPECT_GT(st.percentile(0.5), 0u);
}

TEST_P(CppApiTest, ServerReceivesInPlaceAndRepliesThroughALoan)
{
    auto server = MakeServer();
    ASSERT_TRUE(server->listen());
    pid_t kid = ForkClient([](ipc::IpcClient &c) {
        if (!c.send("ping", 4, kSecond))
            return 1;
        std::vector<uint8_t> buf(16);
        std::error_code ec;
        size_t n = c.recv(buf, 5 * kSecond, ec);
        if (ec || n != 5 || std::memcmp(buf.data(), "pong!", 5) != 0)
            return 2;
        ipc::Stats st = c.stats();
        return st.messages_in == 1 && st.messages_out == 1 && st.samples() == 1 ? 0 : 3;
    });
    std::error_code ec;
    int id = server->wait_for_data(5 * kSecond, ec);
    ASSERT_GE(id, 0) << ec.message();
    std::span<const uint8_t> req = server->receive(id, ec);
    ASSERT_FALSE(ec);
    ASSERT_EQ(std::string(req.begin(), req.end()), "ping");
    std::span<uint8_t> out = server->loan(id, 5, ec);
    ASSERT_NE(out.data(), nullptr) << ec.message();
    std::memcpy(out.data(), "pong!", 5);
    ASSERT_TRUE(server->commit(id, 5, ec)) << ec.message();
    ASSERT_TRUE(server->release(id, ec));
    EXPECT_FALSE(server->release(id, ec));
    EXPECT_EQ(ec, std::errc::invalid_argument);
    EXPECT_EQ(WaitChild(kid), 0);
}

TEST_P(CppApiTest, ClientFdPollsReadableWhenTheReplyIsThere)
{
    auto server = MakeServer();
    ASSERT_TRUE(server->listen());
    EchoThread serve(*server);
    auto c = MakeClient();
    ASSERT_TRUE(c->connect());
    std::error_code ec;
    int fd = c->fd(ec);
    ASSERT_GE(fd, 0) << ec.message();
    std::vector<uint8_t> buf(8);
    EXPECT_EQ(c->try_recv(buf, ec), 0u);
    EXPECT_EQ(ec, std::errc::resource_unavailable_try_again);
    ASSERT_TRUE(c->try_send(std::span<const uint8_t>(reinterpret_cast<const uint8_t *>("abc"), 3), ec));
    size_t n = 0;
    for (int round = 0; round < 100 && n == 0; round++) {
        struct pollfd p = {fd, POLLIN, 0};
        ASSERT_GE(poll(&p, 1, 5000), 0);
        n = c->try_recv(buf, ec); // drain until -EAGAIN, as ipc.h asks
    }
    EXPECT_EQ(n, 3u);
    EXPECT_EQ(std::string(buf.begin(), buf.begin() + 3), "abc");
}

TEST_P(CppApiTest, ServerFdAndTryWaitForDataDriveAnEventLoop)
{
    auto server = MakeServer();
    std::error_code ec;
    EXPECT_LT(server->fd(ec), 0);
    EXPECT_EQ(ec, std::errc::not_connected);
    ASSERT_TRUE(server->listen(ec));
    int fd = server->fd();
    ASSERT_GE(fd, 0);
    EXPECT_EQ(server->try_wait_for_data(), -EAGAIN);
    pid_t kid = ForkClient([](ipc::IpcClient &c) {
        std::vector<uint8_t> buf(8);
        return c.send("x", 1, kSecond) && c.recv(buf.data(), buf.size(), 5 * kSecond) == 1 ? 0 : 1;
    });
    int id = -1;
    for (int round = 0; round < 500 && id < 0; round++) {
        struct pollfd p = {fd, POLLIN, 0};
        ASSERT_GE(poll(&p, 1, 100), 0);
        id = server->try_wait_for_data(ec);
        if (id < 0) {
            ASSERT_EQ(ec, std::errc::resource_unavailable_try_again);
        }
    }
    ASSERT_GE(id, 0);
    std::vector<uint8_t> buf(8);
    ASSERT_EQ(server->recv(id, buf, ec), 1u);
    ASSERT_TRUE(server->send(id, std::span<const uint8_t>(buf.data(), 1), ec));
    EXPECT_EQ(WaitChild(kid), 0);
}

TEST_P(CppApiTest, OptionsReachTheCLibrary)
{
    ipc::ServerOptions bad;
    bad.ring_size = 5000; // not a power of two
    EXPECT_EQ(MakeServer(bad), nullptr);
    ipc::ServerOptions o;
    o.ring_size = 4096;
    o.max_message_size = 100;
    o.socket_mode = 0640;
    o.spin_ns = 1000;
    auto server = MakeServer(o);
    ASSERT_NE(server, nullptr);
    ASSERT_TRUE(server->listen());
    if (!shm()) {
        struct stat st;
        ASSERT_EQ(stat(name_.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0640u);
    }
    EchoThread serve(*server, 0); // 0: the option's 100 bytes
    auto c = MakeClient();
    ASSERT_TRUE(c->connect());
    std::vector<uint8_t> buf(4096);
    if (shm()) { // the ring's largest message is 4096 / 2 - 16
        std::error_code ec;
        EXPECT_FALSE(c->send(std::span<const uint8_t>(buf.data(), 2033), kSecond, ec));
        EXPECT_EQ(ec, std::errc::message_size);
    }
    ASSERT_TRUE(c->send(buf.data(), 100, kSecond));
    EXPECT_EQ(c->recv(buf.data(), buf.size(), 5 * kSecond), 100);
}

TEST_P(CppApiTest, ErrorsComeAsErrorCodesAndAsLastError)
{
    auto c = MakeClient();
    std::error_code ec;
    EXPECT_FALSE(c->connect(ec));
    EXPECT_EQ(ec, shm() ? std::errc::connection_refused : std::errc::no_such_file_or_directory);
    EXPECT_EQ(c->last_error(), 0); // the error_code form leaves it alone
    EXPECT_FALSE(c->connect());
    EXPECT_EQ(c->error(), ec);
    EXPECT_EQ(c->last_error(), -ec.value());
    EXPECT_EQ(c->receive(kSecond).data(), nullptr);
    EXPECT_EQ(c->error(), std::errc::not_connected);
    EXPECT_EQ(ipc::to_error_code(-ETIMEDOUT), std::errc::timed_out);
    EXPECT_FALSE(ipc::to_error_code(5));
}

TEST_P(CppApiTest, RequestShutdownFromASignalHandlerStopsRun)
{
    static ipc::IpcServer *target;
    auto server = MakeServer();
    ASSERT_TRUE(server->listen());
    target = server.get();
    struct sigaction sa = {}, old = {};
    sa.sa_handler = [](int) { target->request_shutdown(); };
    ASSERT_EQ(sigaction(SIGUSR2, &sa, &old), 0);
    std::atomic<bool> returned{false};
    std::thread serve([&] {
        server->run([](int, std::span<const uint8_t>) { return std::vector<uint8_t>(); });
        returned = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(returned.load());
    pthread_kill(serve.native_handle(), SIGUSR2);
    serve.join();
    EXPECT_TRUE(returned.load());
    EXPECT_EQ(server->last_error(), 0);
    sigaction(SIGUSR2, &old, nullptr);
}

TEST_P(CppApiTest, MovedFromObjectsFailWithInvalidArgument)
{
    auto made = MakeServer();
    ipc::IpcServer server = std::move(*made);
    EXPECT_FALSE(made->listen());
    EXPECT_EQ(made->last_error(), -EINVAL);
    EXPECT_TRUE(server.listen());
    ipc::IpcClient client(nullptr);
    std::error_code ec;
    EXPECT_FALSE(client.send(std::span<const uint8_t>(), 0, ec));
    EXPECT_EQ(ec, std::errc::invalid_argument);
}

TEST(CppApiShm, AClientWithZeroMaxClientsTakesTheServersAndAWrongCountIsRefused)
{
    std::string name = ipc_testing::UniqueName("cpp0");
    auto server = ipc::IpcServer::create_shm(name, 3);
    ASSERT_TRUE(server->listen());
    EchoThread serve(*server);
    auto any = ipc::IpcClient::create_shm(name, 0);
    ASSERT_NE(any, nullptr);
    EXPECT_TRUE(any->connect()) << any->error().message();
    ASSERT_TRUE(any->send("hi", 2, kSecond));
    char buf[4];
    EXPECT_EQ(any->recv(buf, sizeof buf, 5 * kSecond), 2);
    auto wrong = ipc::IpcClient::create_shm(name, 2);
    std::error_code ec;
    EXPECT_FALSE(wrong->connect(ec));
    EXPECT_EQ(ec, std::errc::invalid_argument);
}

// A frozen shared-memory server (SIGSTOP) sends no hello: a connect waits
// for it only until its deadline. Once it runs, the same client connects,
// although the server's slots (2) were each taken by a connect that gave
// up: those are reclaimed, not counted against it.
TEST(CppApiShm, ConnectWithATimeoutGivesTimedOutFromAFrozenServer)
{
    constexpr uint64_t kDeadline = 200ull * 1000 * 1000;
    std::string name = ipc_testing::UniqueName("cppto");
    ipc_testing::ServerProcess server(ipc_testing::ShmServer(name, 2));
    ASSERT_TRUE(server.ok());
    ASSERT_TRUE(ipc_testing::FreezeChild(server.pid()));
    auto client = ipc::IpcClient::create_shm(name, 0);
    EXPECT_FALSE(client->connect(kDeadline));
    EXPECT_EQ(client->last_error(), -ETIMEDOUT);
    std::error_code ec;
    EXPECT_FALSE(client->connect(kDeadline, ec));
    EXPECT_EQ(ec, std::errc::timed_out);
    ASSERT_EQ(kill(server.pid(), SIGCONT), 0);
    EXPECT_TRUE(client->connect(5 * kSecond, ec)) << ec.message();
    EXPECT_FALSE(client->connect(kDeadline));
    EXPECT_EQ(client->last_error(), -EISCONN);
    ASSERT_TRUE(client->send("hi", 2, kSecond));
    char buf[4];
    EXPECT_EQ(client->recv(buf, sizeof buf, 5 * kSecond), 2);
}

// A server that listens and has not served yet admits clients: a connect
// needs no thread of the server's (the seed's semantics).
TEST(CppApiShm, AClientConnectsBeforeTheServerServesAndIsAnsweredWhenItDoes)
{
    std::string name = ipc_testing::UniqueName("cppls");
    auto server = ipc::IpcServer::create_shm(name, 1);
    ASSERT_TRUE(server->listen());
    auto client = ipc::IpcClient::create_shm(name, 0);
    std::error_code ec;
    ASSERT_TRUE(client->connect(5 * kSecond, ec)) << ec.message();
    ASSERT_TRUE(client->send("early", 5, kSecond));
    EchoThread serve(*server);
    char buf[8];
    EXPECT_EQ(client->recv(buf, sizeof buf, 5 * kSecond), 5);
    EXPECT_EQ(std::string(buf, 5), "early");
}

INSTANTIATE_TEST_SUITE_P(Transports, CppApiTest, ::testing::Values("socket", "shm"),
                         [](const auto &info) { return std::string(info.param); });

}  // namespace
