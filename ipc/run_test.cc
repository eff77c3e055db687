// The transport-independent run loop and the C++ wrapper, over sockets.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/ipc.hpp"
#include "ipc/testing/testing.h"

using ipc_testing::ConnectWithRetry;
using ipc_testing::Fork;
using ipc_testing::ScopedDir;
using ipc_testing::WaitChild;

namespace {

constexpr uint64_t kSecond = 1000ull * 1000 * 1000;

ipc_action ShutdownOnBye(void *ctx, int, const void *req, size_t len, ipc_response *r)
{
    ++*static_cast<int *>(ctx);
    if (len == 3 && memcmp(req, "bye", 3) == 0) {
        ipc_response_set(r, "goodbye", 7);
        return IPC_SHUTDOWN;
    }
    void *out = ipc_response_reserve(r, len * 2);
    memcpy(out, req, len);
    memcpy(static_cast<char *>(out) + len, req, len);
    return IPC_CONTINUE;
}

// Sends msg over a fresh client and returns the reply.
std::string Ask(const std::string &path, const std::string &msg)
{
    ipc_client *c = ipc_client_create_socket(path.c_str());
    std::string reply;
    if (ConnectWithRetry(c) == 0 &&
        ipc_client_send(c, msg.data(), msg.size(), 5 * kSecond) == 0) {
        char buf[256];
        ssize_t n = ipc_client_recv(c, buf, sizeof(buf), 5 * kSecond);
        if (n >= 0)
            reply.assign(buf, (size_t)n);
        else
            reply = "error " + std::to_string(n);
    }
    ipc_client_destroy(c);
    return reply;
}

TEST(RunLoop, HandlerShutdownDeliversTheGoodbyeThenRunReturnsZeroAndDestroysNothing)
{
    ScopedDir dir;
    std::string path = dir.file("r.sock");
    ipc_server *s = ipc_server_create_socket(path.c_str(), 4);
    ASSERT_EQ(ipc_server_listen(s), 0);
    pid_t kid = Fork([&]() {
        if (Ask(path, "ab") != "abab")
            return 1;
        return Ask(path, "bye") == "goodbye" ? 0 : 2;
    });
    int handled = 0;
    EXPECT_EQ(ipc_server_run(s, ShutdownOnBye, &handled, 0), 0);
    EXPECT_EQ(WaitChild(kid), 0);
    EXPECT_EQ(handled, 2);
    // The server is intact and runs again.
    kid = Fork([&]() { return Ask(path, "bye") == "goodbye" ? 0 : 1; });
    EXPECT_EQ(ipc_server_run(s, ShutdownOnBye, &handled, 0), 0);
    EXPECT_EQ(WaitChild(kid), 0);
    ipc_server_destroy(s);
}

ipc_server *g_server;
void OnAlarm(int) { ipc_server_stop(g_server); }

TEST(RunLoop, StopFromASignalHandlerEndsRunWithNoClientEverSending)
{
    ScopedDir dir;
    g_server = ipc_server_create_socket(dir.file("a.sock").c_str(), 1);
    struct sigaction sa = {};
    sa.sa_handler = OnAlarm;
    sigaction(SIGUSR1, &sa, nullptr);
    pthread_t self = pthread_self();
    std::thread signaller([self]() {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        pthread_kill(self, SIGUSR1);
    });
    int handled = 0;
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(ipc_server_run(g_server, ShutdownOnBye, &handled, 0), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    signaller.join();
    signal(SIGUSR1, SIG_DFL);
    ipc_server_destroy(g_server);
}

TEST(RunLoop, StopFromAnotherThreadAndBeforeRunBothReturnPromptly)
{
    ScopedDir dir;
    ipc_server *s = ipc_server_create_socket(dir.file("t.sock").c_str(), 1);
    ASSERT_EQ(ipc_server_listen(s), 0);
    int handled = 0;
    ipc_server_stop(s);
    EXPECT_EQ(ipc_server_run(s, ShutdownOnBye, &handled, 0), 0);
    std::thread stopper([s]() {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        ipc_server_stop(s);
    });
    EXPECT_EQ(ipc_server_run(s, ShutdownOnBye, &handled, 0), 0);
    stopper.join();
    EXPECT_EQ(ipc_server_wait_for_data(s, 1000), -ETIMEDOUT);
    ipc_server_destroy(s);
}

TEST(RunLoop, RejectsBadArguments)
{
    EXPECT_EQ(ipc_server_run(nullptr, ShutdownOnBye, nullptr, 0), -EINVAL);
    ScopedDir dir;
    ipc_server *s = ipc_server_create_socket(dir.file("b.sock").c_str(), 1);
    EXPECT_EQ(ipc_server_run(s, nullptr, nullptr, 0), -EINVAL);
    ipc_server_destroy(s);
    EXPECT_EQ(ipc_response_reserve(nullptr, 1), nullptr);
    EXPECT_EQ(ipc_response_set(nullptr, "x", 1), -EINVAL);
    EXPECT_STRNE(ipc_strerror(-ETIMEDOUT), "unknown error");
}

ipc_action Reserver(void *, int, const void *, size_t len, ipc_response *r)
{
    // A reply longer than the limit is refused; the request's size is echoed.
    EXPECT_EQ(ipc_response_reserve(r, 4097), nullptr);
    EXPECT_EQ(ipc_response_set(r, "x", 4097), -EMSGSIZE);
    ipc_response_set(r, &len, sizeof(len));
    return len == 0 ? IPC_SHUTDOWN : IPC_CONTINUE;
}

TEST(RunLoop, MaxMessageSizeBoundsRequestsAndReplies)
{
    ScopedDir dir;
    std::string path = dir.file("m.sock");
    ipc_server *s = ipc_server_create_socket(path.c_str(), 1);
    pid_t kid = Fork([&]() {
        ipc_client *c = ipc_client_create_socket(path.c_str());
        if (ConnectWithRetry(c) != 0)
            return 1;
        std::vector<uint8_t> m(4096);
        size_t got = 0;
        if (ipc_client_send(c, m.data(), m.size(), kSecond) != 0 ||
            ipc_client_recv(c, &got, sizeof(got), 5 * kSecond) != sizeof(got) || got != 4096)
            return 2;
        // One byte over: the server hangs up on this client.
        std::vector<uint8_t> big(4097);
        if (ipc_client_send(c, big.data(), big.size(), kSecond) != 0)
            return 3;
        if (ipc_client_recv(c, &got, sizeof(got), 5 * kSecond) != -ECONNRESET)
            return 4;
        ipc_client_destroy(c);
        c = ipc_client_create_socket(path.c_str());
        if (ipc_client_connect(c) != 0 || ipc_client_send(c, "", 0, kSecond) != 0 ||
            ipc_client_recv(c, &got, sizeof(got), 5 * kSecond) != sizeof(got) || got != 0)
            return 5;
        ipc_client_destroy(c);
        return 0;
    });
    EXPECT_EQ(ipc_server_run(s, Reserver, nullptr, 4096), 0);
    EXPECT_EQ(WaitChild(kid), 0);
    ipc_server_destroy(s);
}

TEST(CppWrapper, SeedApiEchoesAndShutdownRequestedCarriesTheGoodbye)
{
    ScopedDir dir;
    std::string path = dir.file("w.sock");
    auto server = ipc::IpcServer::create_socket(path, 10);
    ASSERT_NE(server, nullptr);
    ASSERT_TRUE(server->listen());
    pid_t kid = Fork([&]() {
        auto client = ipc::IpcClient::create_socket(path);
        if (!client || ConnectWithRetry(client->native()) != 0)
            return 1;
        std::vector<uint8_t> req = {1, 2, 3}, resp(1024);
        if (!client->send(req.data(), req.size()))
            return 2;
        ssize_t n = client->recv(resp.data(), resp.size());
        if (n != 3 || resp[0] != 3 || resp[2] != 1)
            return 3;
        uint8_t bye = 0xFF;
        if (!client->send(&bye, 1) || client->recv(resp.data(), resp.size()) != 2 ||
            resp[0] != 'o' || resp[1] != 'k')
            return 4;
        return 0;
    });
    int calls = 0;
    server->run([&](int, std::span<const uint8_t> request) {
        calls++;
        if (request.size() == 1 && request[0] == 0xFF)
            throw ipc::ShutdownRequested({'o', 'k'});
        return std::vector<uint8_t>(request.rbegin(), request.rend());
    });
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(WaitChild(kid), 0);
}

TEST(CppWrapper, OtherHandlerExceptionsStopTheServerAndPropagate)
{
    ScopedDir dir;
    std::string path = dir.file("x.sock");
    auto server = ipc::IpcServer::create_socket(path, 1);
    ASSERT_TRUE(server->listen());
    pid_t kid = Fork([&]() { return Ask(path, "boom") == "" ? 0 : 1; });
    EXPECT_THROW(server->run([](int, std::span<const uint8_t>) -> std::vector<uint8_t> {
        throw std::runtime_error("handler failed");
    }),
                 std::runtime_error);
    EXPECT_EQ(WaitChild(kid), 0);
    auto client = ipc::IpcClient::create_socket(path + std::string(200, 'x'));
    EXPECT_EQ(client, nullptr);
    auto unconnected = ipc::IpcClient::create_socket(path);
    EXPECT_FALSE(unconnected->send("x", 1));
    EXPECT_EQ(unconnected->last_error(), -ENOTCONN);
}

}  // namespace
