// bb::ipc, written the way barretenberg's own IPC tests are: a server thread
// running the handler loop, clients on other threads, the module's API only
// (ipc/bb_ipc.hpp in place of barretenberg/ipc/ipc_{client,server}.hpp).
#include "ipc/bb_ipc.hpp"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <cstddef>
#include <cstring>
#include <gtest/gtest.h>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipc/testing/testing.h"

using namespace bb::ipc;

namespace {

constexpr uint64_t SECOND_NS = 1000ULL * 1000 * 1000;

uint8_t pattern_byte(uint64_t seq, size_t i)
{
    return static_cast<uint8_t>((seq * 131 + i * 7 + (i >> 8)) & 0xFF);
}

std::vector<uint8_t> make_message(uint64_t seq, size_t size)
{
    std::vector<uint8_t> msg(size);
    for (size_t i = 0; i < size; i++) {
        msg[i] = pattern_byte(seq, i);
    }
    return msg;
}

bool check_message(std::span<const uint8_t> msg, uint64_t seq, size_t size)
{
    if (msg.data() == nullptr || msg.size() != size) {
        return false;
    }
    for (size_t i = 0; i < size; i++) {
        if (msg[i] != pattern_byte(seq, i)) {
            return false;
        }
    }
    return true;
}

enum class Transport { Socket, Shm };

// A server thread running the echo handler, as in the module's tests.
class BbIpcTest : public ::testing::TestWithParam<Transport> {
  protected:
    std::string name;
    ipc_testing::ScopedDir dir;
    std::unique_ptr<IpcServer> server;
    std::thread server_thread;

    bool is_shm() const { return GetParam() == Transport::Shm; }

    void SetUp() override
    {
        name = is_shm() ? ipc_testing::UniqueName("bb") : dir.file("bb.sock");
    }

    void start_echo(std::unique_ptr<IpcServer> s)
    {
        server = std::move(s);
        ASSERT_TRUE(server->listen());
        server_thread = std::thread([this]() {
            server->run([](int, std::span<const uint8_t> request) {
                return std::vector<uint8_t>(request.begin(), request.end());
            });
        });
    }

    void TearDown() override
    {
        if (server_thread.joinable()) {
            server->request_shutdown();
            server_thread.join();
        }
        if (server) {
            server->close();
        }
    }

    std::unique_ptr<IpcServer> make_server(size_t max_clients, size_t ring)
    {
        if (!is_shm()) {
            return IpcServer::create_socket(name, static_cast<int>(max_clients));
        }
        return max_clients == 1 ? IpcServer::create_shm(name, ring, ring)
                                : IpcServer::create_mpsc_shm(name, max_clients, ring, ring);
    }

    std::unique_ptr<IpcClient> make_client(bool mpsc, size_t client_id)
    {
        if (!is_shm()) {
            return IpcClient::create_socket(name);
        }
        return mpsc ? IpcClient::create_mpsc_shm(name, client_id) : IpcClient::create_shm(name);
    }
};

// The module's high-volume test: one client through a small ring, random
// sizes up to half the ring, a checked byte pattern, the sender and the
// receiver on two threads.
TEST_P(BbIpcTest, SingleClientSmallRingRandomSizesSenderAndReceiverOnTwoThreads)
{
    constexpr size_t RING = 8192;
    constexpr size_t MAX_SIZE = RING / 2 - 4; // the module's largest message
    constexpr uint64_t NUM_MESSAGES = 100000;
    start_echo(make_server(1, RING));

    auto client = make_client(false, 0);
    ASSERT_TRUE(client->connect());

    // Nothing bounds the requests in flight, as in the module's test: the
    // server holds the client (back-pressure) while its replies are unread.
    std::atomic<bool> send_failed{ false };
    std::thread sender([&]() {
        std::mt19937_64 rng(42);
        std::uniform_int_distribution<size_t> size_dist(0, MAX_SIZE);
        for (uint64_t seq = 0; seq < NUM_MESSAGES; seq++) {
            auto msg = make_message(seq, size_dist(rng));
            if (!client->send(msg.data(), msg.size(), 10 * SECOND_NS)) {
                send_failed.store(true);
                return;
            }
        }
    });

    std::mt19937_64 rng(42);
    std::uniform_int_distribution<size_t> size_dist(0, MAX_SIZE);
    uint64_t bad = NUM_MESSAGES;
    for (uint64_t seq = 0; seq < NUM_MESSAGES && !send_failed.load(); seq++) {
        auto msg = client->receive(10 * SECOND_NS);
        if (!check_message(msg, seq, size_dist(rng))) {
            bad = seq;
            break;
        }
        client->release(msg.size());
    }
    sender.join();

    EXPECT_FALSE(send_failed.load()) << "send failed: " << client->last_error();
    EXPECT_EQ(bad, NUM_MESSAGES) << "bad message " << bad << ": " << client->last_error();
    client->close();
}

// Several clients at once on small rings, each checking its own echoes.
TEST_P(BbIpcTest, ConcurrentClientsOnSmallRings)
{
    constexpr size_t NUM_CLIENTS = 4;
    constexpr size_t RING = 4096;
    constexpr size_t MAX_SIZE = RING / 2 - 4;
    start_echo(make_server(NUM_CLIENTS, RING));

    std::atomic<size_t> failures{ 0 };
    std::vector<std::thread> threads;
    for (size_t client_idx = 0; client_idx < NUM_CLIENTS; client_idx++) {
        threads.emplace_back([&, client_idx]() {
            auto client = make_client(true, client_idx);
            if (!client->connect()) {
                failures.fetch_add(1);
                return;
            }
            std::mt19937_64 rng(client_idx);
            std::uniform_int_distribution<size_t> size_dist(0, MAX_SIZE);
            for (uint64_t i = 0; i < 2000; i++) {
                uint64_t seq = client_idx << 32 | i;
                size_t size = size_dist(rng);
                auto msg = make_message(seq, size);
                if (!client->send(msg.data(), msg.size(), 10 * SECOND_NS)) {
                    failures.fetch_add(1);
                    break;
                }
                auto reply = client->receive(10 * SECOND_NS);
                bool ok = check_message(reply, seq, size);
                client->release(reply.size());
                if (!ok) {
                    failures.fetch_add(1);
                    break;
                }
            }
            client->close();
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(failures.load(), 0U);
}

TEST_P(BbIpcTest, HandlerThrowingShutdownRequestedSendsItsResponseThenRunReturns)
{
    server = make_server(1, DEFAULT_RING_SIZE);
    ASSERT_TRUE(server->listen());
    std::atomic<int> handled{ 0 };
    server_thread = std::thread([&]() {
        server->run([&](int, std::span<const uint8_t> request) -> std::vector<uint8_t> {
            handled.fetch_add(1);
            if (request.size() == 3 && std::memcmp(request.data(), "bye", 3) == 0) {
                throw ShutdownRequested({ 'o', 'k' });
            }
            return { request.begin(), request.end() };
        });
    });

    auto client = make_client(false, 0);
    ASSERT_TRUE(client->connect());
    ASSERT_TRUE(client->send("hi", 2, SECOND_NS));
    auto echo = client->receive(5 * SECOND_NS);
    ASSERT_EQ(echo.size(), 2U);
    client->release(echo.size());
    ASSERT_TRUE(client->send("bye", 3, SECOND_NS));
    auto goodbye = client->receive(5 * SECOND_NS);
    ASSERT_EQ(std::string(goodbye.begin(), goodbye.end()), "ok");
    client->release(goodbye.size());
    server_thread.join(); // run() returned by itself
    EXPECT_EQ(handled.load(), 2);
}

TEST_P(BbIpcTest, HandlerCallingRequestShutdownStopsRunAfterItsReply)
{
    server = make_server(1, DEFAULT_RING_SIZE);
    ASSERT_TRUE(server->listen());
    server_thread = std::thread([&]() {
        server->run([&](int, std::span<const uint8_t> request) {
            server->request_shutdown();
            return std::vector<uint8_t>(request.rbegin(), request.rend());
        });
    });
    auto client = make_client(false, 0);
    ASSERT_TRUE(client->connect());
    ASSERT_TRUE(client->send("abc", 3, SECOND_NS));
    auto reply = client->receive(5 * SECOND_NS);
    ASSERT_EQ(std::string(reply.begin(), reply.end()), "cba");
    client->release(reply.size());
    server_thread.join();
}

IpcServer* g_signal_server = nullptr;

TEST_P(BbIpcTest, SignalHandlerCallingRequestShutdownStopsAnIdleRun)
{
    server = make_server(1, DEFAULT_RING_SIZE);
    ASSERT_TRUE(server->listen());
    g_signal_server = server.get();
    struct sigaction sa = {};
    sa.sa_handler = [](int) { g_signal_server->request_shutdown(); };
    struct sigaction old = {};
    ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);

    std::atomic<bool> returned{ false };
    server_thread = std::thread([&]() {
        server->run([](int, std::span<const uint8_t> request) {
            return std::vector<uint8_t>(request.begin(), request.end());
        });
        returned.store(true);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // let run() block
    ASSERT_FALSE(returned.load());
    pthread_kill(server_thread.native_handle(), SIGUSR1);
    server_thread.join();
    EXPECT_TRUE(returned.load());
    sigaction(SIGUSR1, &old, nullptr);
    g_signal_server = nullptr;
}

TEST_P(BbIpcTest, WaitForDataWithZeroTimeoutPolls)
{
    server = make_server(1, DEFAULT_RING_SIZE);
    ASSERT_TRUE(server->listen());
    EXPECT_EQ(server->accept(), -1); // wait_for_data() accepts
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(server->wait_for_data(0), -1);
    EXPECT_EQ(server->last_error(), -EAGAIN);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
    EXPECT_EQ(server->wait_for_data(1000000), -1); // 1 ms
    EXPECT_EQ(server->last_error(), -ETIMEDOUT);
}

TEST_P(BbIpcTest, ServerLoopWrittenByHandWithReceiveAndRelease)
{
    server = make_server(1, DEFAULT_RING_SIZE);
    ASSERT_TRUE(server->listen());
    std::atomic<bool> running{ true };
    server_thread = std::thread([&]() {
        while (running.load()) {
            server->accept();
            int client_id = server->wait_for_data(100000000); // 100 ms
            if (client_id < 0) {
                continue;
            }
            auto request = server->receive(client_id);
            if (request.data() == nullptr) {
                continue;
            }
            std::vector<uint8_t> response(request.begin(), request.end());
            response.push_back(static_cast<uint8_t>(request.size()));
            server->send(client_id, response.data(), response.size());
            server->release(client_id, request.size());
        }
    });
    auto client = make_client(false, 0);
    ASSERT_TRUE(client->connect());
    ASSERT_TRUE(client->connect()); // already connected: still true
    for (size_t size : { 0, 1, 100, 1000 }) {
        auto msg = make_message(size, size);
        ASSERT_TRUE(client->send(msg.data(), msg.size(), SECOND_NS));
        auto reply = client->receive(5 * SECOND_NS);
        ASSERT_NE(reply.data(), nullptr);
        ASSERT_EQ(reply.size(), size + 1);
        EXPECT_TRUE(check_message(reply.first(size), size, size));
        EXPECT_EQ(reply[size], static_cast<uint8_t>(size));
        client->release(reply.size());
    }
    EXPECT_EQ(client->receive(1000000).data(), nullptr); // nothing more: 1 ms
    EXPECT_EQ(client->last_error(), -ETIMEDOUT);
    running.store(false);
    server_thread.join();
}

TEST_P(BbIpcTest, RingsCarryTheModulesLargestMessage)
{
    constexpr size_t RING = 4096;
    start_echo(make_server(1, RING));
    auto client = make_client(false, 0);
    ASSERT_TRUE(client->connect());
    auto msg = make_message(9, RING / 2 - 4);
    ASSERT_TRUE(client->send(msg.data(), msg.size(), SECOND_NS));
    auto reply = client->receive(5 * SECOND_NS);
    EXPECT_TRUE(check_message(reply, 9, msg.size()));
    client->release(reply.size());
}

TEST(BbIpc, InvalidNamesFailAtConnectAndListenNotAtCreate)
{
    auto client = IpcClient::create_shm("bad name");
    ASSERT_NE(client, nullptr);
    EXPECT_FALSE(client->connect());
    EXPECT_EQ(client->last_error(), -EINVAL);
    auto server = IpcServer::create_socket("/tmp/" + std::string(200, 'x'), 1);
    ASSERT_NE(server, nullptr);
    EXPECT_FALSE(server->listen());
    EXPECT_EQ(server->last_error(), -EINVAL);
}

// The module's semantics: connect() succeeds once the server listens, with
// no thread of the server's serving; the module's own
// TimeoutDoesNotWrapAbove4Seconds listens, connects and then serves on one
// thread. The request waits in the ring (or the socket) until then.
TEST_P(BbIpcTest, ConnectSucceedsOnceTheServerListensWithNoThreadServing)
{
    server = make_server(2, DEFAULT_RING_SIZE);
    ASSERT_TRUE(server->listen());
    auto client = make_client(true, 0);
    ASSERT_TRUE(client->connect(5 * SECOND_NS)) << client->last_error();
    auto second = make_client(true, 1);
    ASSERT_TRUE(second->connect(5 * SECOND_NS)) << second->last_error();
    auto msg = make_message(7, 100);
    ASSERT_TRUE(client->send(msg.data(), msg.size(), SECOND_NS));
    server->accept();
    int client_id = server->wait_for_data(5 * SECOND_NS);
    ASSERT_GE(client_id, 0) << server->last_error();
    auto request = server->receive(client_id);
    ASSERT_TRUE(check_message(request, 7, 100));
    ASSERT_TRUE(server->send(client_id, request.data(), request.size()));
    server->release(client_id, request.size());
    auto reply = client->receive(5 * SECOND_NS);
    EXPECT_TRUE(check_message(reply, 7, 100));
    client->release(reply.size());
}

// Beyond the module: connect(timeout_ns). A frozen server (SIGSTOP: its
// process, watcher included, runs nothing) sends no hello; the same client
// connects once it runs again.
TEST(BbIpc, ConnectWithATimeoutFailsWithTimedOutWhileTheServerIsFrozen)
{
    const std::string name = ipc_testing::UniqueName("bbto");
    ipc_testing::ServerProcess server(ipc_testing::ShmServer(name, 2));
    ASSERT_TRUE(server.ok());
    ASSERT_TRUE(ipc_testing::FreezeChild(server.pid()));
    auto client = IpcClient::create_mpsc_shm(name, 0);
    EXPECT_FALSE(client->connect(200ULL * 1000 * 1000));
    EXPECT_EQ(client->last_error(), -ETIMEDOUT);
    ASSERT_EQ(kill(server.pid(), SIGCONT), 0);
    EXPECT_TRUE(client->connect(5 * SECOND_NS)) << client->last_error();
    EXPECT_TRUE(client->connect(5 * SECOND_NS)); // connected already: true, as connect()
    const uint8_t ping[] = { 1, 2, 3 };
    ASSERT_TRUE(client->send(ping, sizeof ping, SECOND_NS));
    auto reply = client->receive(5 * SECOND_NS);
    EXPECT_EQ(reply.size(), sizeof ping);
}

TEST(BbIpc, ShutdownRequestedIsTheSameTypeAsIpcs)
{
    static_assert(std::is_same_v<ShutdownRequested, ::ipc::ShutdownRequested>);
    ShutdownRequested goodbye({ 1, 2 });
    EXPECT_EQ(goodbye.response().size(), 2U);
    EXPECT_STREQ(goodbye.what(), "ipc: shutdown requested");
}

// ---- beyond the module: the successor's request-id wire and run_reactor()

// A run_reactor() server whose handler hands every request to the test,
// which answers through the Responder from its own thread.
class BbReactorTest : public ::testing::TestWithParam<Transport> {
  protected:
    std::string name;
    ipc_testing::ScopedDir dir;
    std::unique_ptr<IpcServer> server;
    std::thread server_thread;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<std::vector<uint8_t>, Responder>> pending;

    bool is_shm() const { return GetParam() == Transport::Shm; }

    void start(Wire wire)
    {
        name = is_shm() ? ipc_testing::UniqueName("bbr") : dir.file("bbr.sock");
        server = is_shm() ? IpcServer::create_mpsc_shm(name, 4, DEFAULT_RING_SIZE,
                                                       DEFAULT_RING_SIZE, wire)
                          : IpcServer::create_socket(name, 4, wire);
        ASSERT_TRUE(server->listen());
        server_thread = std::thread([this]() {
            server->run_reactor([this](int, std::span<const uint8_t> request, Responder respond) {
                std::string req(request.begin(), request.end());
                if (req == "bye") {
                    throw ShutdownRequested(std::vector<uint8_t>{ 'o', 'k' });
                }
                std::lock_guard<std::mutex> g(mu);
                pending.emplace_back(std::vector<uint8_t>(request.begin(), request.end()),
                                     std::move(respond));
                cv.notify_all();
            });
        });
    }

    // Waits until n requests wait for an answer.
    bool wait_pending(size_t n)
    {
        std::unique_lock<std::mutex> g(mu);
        return cv.wait_for(g, std::chrono::seconds(30), [&] { return pending.size() >= n; });
    }

    std::unique_ptr<IpcClient> client(Wire wire)
    {
        auto c = is_shm() ? IpcClient::create_mpsc_shm(name, wire) : IpcClient::create_socket(name, wire);
        EXPECT_TRUE(c->connect());
        return c;
    }

    void TearDown() override
    {
        if (server_thread.joinable()) {
            server->request_shutdown();
            server_thread.join();
        }
    }
};

TEST_P(BbReactorTest, RepliesAnsweredFromAnotherThreadLeaveInTheOrderAnsweredWithTheirIds)
{
    start(Wire::Mux);
    auto c = client(Wire::Mux);
    for (uint64_t id = 100; id < 110; id++) {
        std::string m = "req" + std::to_string(id);
        ASSERT_TRUE(c->send(id, m.data(), m.size(), SECOND_NS));
    }
    ASSERT_TRUE(wait_pending(10));
    std::thread answerer([this]() { // newest first
        std::lock_guard<std::mutex> g(mu);
        for (auto it = pending.rbegin(); it != pending.rend(); ++it) {
            std::vector<uint8_t> reply(it->first);
            reply.push_back('!');
            EXPECT_TRUE(it->second(reply));
            EXPECT_FALSE(it->second(reply)) << "a Responder answers once";
        }
    });
    answerer.join();
    for (uint64_t want = 109; want >= 100; want--) {
        uint64_t id = 0;
        auto reply = c->receive(5 * SECOND_NS, id);
        ASSERT_NE(reply.data(), nullptr) << c->last_error();
        EXPECT_EQ(id, want);
        EXPECT_EQ(std::string(reply.begin(), reply.end()), "req" + std::to_string(want) + "!");
        c->release(reply.size());
    }
}

TEST_P(BbReactorTest, OnTheLegacyWireRepliesKeepEachClientsRequestOrderHoweverAnswered)
{
    start(Wire::Legacy);
    auto c = client(Wire::Legacy);
    for (int i = 0; i < 3; i++) {
        std::string m = "L" + std::to_string(i);
        ASSERT_TRUE(c->send(m.data(), m.size(), SECOND_NS));
    }
    // The legacy wire takes one request of a client at a time: answer each
    // as it comes, the last first being impossible by contract.
    for (int i = 0; i < 3; i++) {
        ASSERT_TRUE(wait_pending(1));
        std::lock_guard<std::mutex> g(mu);
        std::vector<uint8_t> req = std::move(pending.front().first);
        Responder respond = std::move(pending.front().second);
        pending.pop_front();
        EXPECT_EQ(std::string(req.begin(), req.end()), "L" + std::to_string(i));
        std::thread([&respond, &req]() { EXPECT_TRUE(respond(req)); }).join();
    }
    for (int i = 0; i < 3; i++) {
        auto reply = c->receive(5 * SECOND_NS);
        ASSERT_NE(reply.data(), nullptr);
        EXPECT_EQ(std::string(reply.begin(), reply.end()), "L" + std::to_string(i));
        c->release(reply.size());
    }
}

TEST_P(BbReactorTest, AHandlerThrowingShutdownRequestedAnswersThenRunReactorReturns)
{
    start(Wire::Mux);
    auto c = client(Wire::Mux);
    ASSERT_TRUE(c->send(7, "bye", 3, SECOND_NS));
    uint64_t id = 0;
    auto reply = c->receive(5 * SECOND_NS, id);
    ASSERT_NE(reply.data(), nullptr);
    EXPECT_EQ(id, 7U);
    EXPECT_EQ(std::string(reply.begin(), reply.end()), "ok");
    c->release(reply.size());
    server_thread.join();
}

TEST_P(BbReactorTest, RequestIdCallsOnTheLegacyWireFailWithInvalidArgument)
{
    start(Wire::Legacy);
    auto c = client(Wire::Legacy);
    EXPECT_FALSE(c->send(1, "x", 1, SECOND_NS));
    EXPECT_EQ(c->last_error(), -EINVAL);
    uint64_t id = 0;
    EXPECT_EQ(c->receive(SECOND_NS, id).data(), nullptr);
    EXPECT_EQ(c->last_error(), -EINVAL);
    EXPECT_TRUE(c->send("x", 1, SECOND_NS)) << "the legacy calls still work";
    EXPECT_EQ(c->last_error(), 0);
    EXPECT_EQ(server->receive(0, id).data(), nullptr);
    EXPECT_EQ(server->last_error(), -EINVAL);
    EXPECT_FALSE(server->send(0, 1, "x", 1));
}

INSTANTIATE_TEST_SUITE_P(Transports,
                         BbReactorTest,
                         ::testing::Values(Transport::Socket, Transport::Shm),
                         [](const auto& info) { return info.param == Transport::Shm ? "Shm" : "Socket"; });

// A hand-written loop on the request-id wire: receive(client, id) and
// send(client, id, ...), as the successor's servers do.
TEST(BbIpcMux, AHandWrittenServerLoopEchoesEachRequestWithItsId)
{
    const std::string name = ipc_testing::UniqueName("bbm");
    auto server = IpcServer::create_mpsc_shm(name, DEFAULT_MAX_CLIENTS, DEFAULT_RING_SIZE,
                                             DEFAULT_RING_SIZE, Wire::Mux);
    ASSERT_TRUE(server->listen());
    std::atomic<bool> stop{ false };
    std::thread loop([&]() {
        while (!stop.load()) {
            int client = server->wait_for_data(10 * 1000 * 1000);
            if (client < 0) {
                continue;
            }
            uint64_t id = 0;
            auto req = server->receive(client, id);
            if (req.data() == nullptr) {
                continue;
            }
            std::vector<uint8_t> copy(req.begin(), req.end());
            server->release(client, req.size());
            EXPECT_TRUE(server->send(client, id, copy.data(), copy.size()));
        }
    });
    auto c = IpcClient::create_mpsc_shm(name, Wire::Mux);
    ASSERT_TRUE(c->connect());
    for (uint64_t id = 1; id <= 50; id++) {
        auto msg = make_message(id, static_cast<size_t>(id * 37));
        ASSERT_TRUE(c->send(id << 20, msg.data(), msg.size(), SECOND_NS));
        uint64_t got = 0;
        auto reply = c->receive(5 * SECOND_NS, got);
        EXPECT_EQ(got, id << 20);
        EXPECT_TRUE(check_message(reply, id, msg.size()));
        c->release(reply.size());
    }
    stop = true;
    loop.join();
}

TEST(BbIpcMux, CreateMpscShmWithOnlyANameTakesDefaultClientsAndRings)
{
    const std::string name = ipc_testing::UniqueName("bbd");
    auto server = IpcServer::create_mpsc_shm(name);
    ASSERT_TRUE(server->listen());
    std::thread loop([&]() {
        server->run([](int, std::span<const uint8_t> r) { return std::vector<uint8_t>(r.begin(), r.end()); });
    });
    auto c = IpcClient::create_mpsc_shm(name);
    ASSERT_TRUE(c->connect());
    EXPECT_EQ(ipc_client_shm_capacity(c->native().native()), DEFAULT_MAX_CLIENTS);
    auto big = make_message(9, detail::ring_max_message(detail::ring_for(DEFAULT_RING_SIZE)));
    ASSERT_TRUE(c->send(big.data(), big.size(), 5 * SECOND_NS));
    auto reply = c->receive(5 * SECOND_NS);
    EXPECT_TRUE(check_message(reply, 9, big.size()));
    c->release(reply.size());
    server->request_shutdown();
    loop.join();
}

INSTANTIATE_TEST_SUITE_P(Transports,
                         BbIpcTest,
                         ::testing::Values(Transport::Socket, Transport::Shm),
                         [](const auto& info) { return info.param == Transport::Shm ? "Shm" : "Socket"; });

} // namespace
