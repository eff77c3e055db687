// The seed README's C++ examples (shared/seeds: "Barretenberg IPC Module"),
// compiled against ipc/ipc.hpp and run to check that they mean what they
// say. Each example's body is the README's, with its two includes replaced by
// ipc/ipc.hpp and its literal names made parameters (tests run in parallel).
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.hpp"
#include "ipc/testing/testing.h"

using namespace ipc;
using ipc_testing::Fork;
using ipc_testing::WaitChild;

namespace {

// What the README leaves to the reader.
std::vector<uint8_t> process(std::span<const uint8_t> request)
{
    std::vector<uint8_t> r(request.rbegin(), request.rend());
    return r;
}
std::vector<uint8_t> process_normal_request(std::span<const uint8_t> request)
{
    return process(request);
}
bool is_shutdown_request(std::span<const uint8_t> request)
{
    return request.size() == 4 && std::memcmp(request.data(), "quit", 4) == 0;
}
std::vector<uint8_t> encode_goodbye()
{
    return {'b', 'y', 'e'};
}

// ---- "Unix Domain Sockets" example

[[noreturn]] void socket_server_process(const std::string &path)
{
    // Server process
    auto server = IpcServer::create_socket(path, 10); // max 10 initial clients
    server->listen();

    server->run([](int client_id, std::span<const uint8_t> request) {
        (void)client_id;
        // Process request, return response
        std::vector<uint8_t> response = process(request);
        return response;
    });
    _exit(1); // the README's server never returns
}

ssize_t socket_client_process(const std::string &path, std::vector<uint8_t> &response)
{
    // Client process
    auto client = IpcClient::create_socket(path);
    client->connect();

    std::vector<uint8_t> request = {1, 2, 3};
    client->send(request.data(), request.size());

    response.assign(1024, 0);
    ssize_t n = client->recv(response.data(), response.size());
    return n;
}

// ---- "Shared Memory" example

[[noreturn]] void shm_server_process(const std::string &name)
{
    // Server process
    auto server = IpcServer::create_shm(name, 4); // exactly 4 clients
    server->listen();

    server->run([](int client_id, std::span<const uint8_t> request) {
        (void)client_id;
        std::vector<uint8_t> response = process(request);
        return response;
    });
    _exit(1);
}

ssize_t shm_client_process(const std::string &name, std::vector<uint8_t> &response)
{
    // Client process (run 4 instances)
    auto client = IpcClient::create_shm(name, 4);
    client->connect(); // Atomically claims client_id 0, 1, 2, or 3

    std::vector<uint8_t> request = {4, 5, 6, 7};
    client->send(request.data(), request.size());

    response.assign(1024, 0);
    ssize_t n = client->recv(response.data(), response.size());
    return n;
}

// ---- "Graceful Shutdown" example

void graceful_server(IpcServer *server)
{
    server->run([](int client_id, std::span<const uint8_t> request) {
        (void)client_id;
        if (is_shutdown_request(request)) {
            std::vector<uint8_t> goodbye = encode_goodbye();
            throw ShutdownRequested(goodbye); // Sends response, then exits cleanly
        }
        return process_normal_request(request);
    });
    // Destructors run here, cleaning up all resources
}

// ---- "Error Handling" example: 0 when every call succeeded, else which
// failed.
int error_handling(IpcClient *client, const void *data, size_t len, void *buffer, size_t size)
{
    if (!client->connect()) {
        return 1; // Handle connection failure
    }

    if (!client->send(data, len)) {
        return 2; // Handle send failure
    }

    ssize_t n = client->recv(buffer, size);
    if (n < 0) {
        return 3; // Handle receive failure/timeout
    }
    return 0;
}

// ---- "API Reference": the seed's signatures, exactly.
static_assert(std::is_same_v<decltype(static_cast<bool (IpcClient::*)()>(&IpcClient::connect)),
                             bool (IpcClient::*)()>);
static_assert(std::is_same_v<decltype(static_cast<bool (IpcClient::*)(const void *, size_t, uint64_t)>(
                                 &IpcClient::send)),
                             bool (IpcClient::*)(const void *, size_t, uint64_t)>);
static_assert(std::is_same_v<decltype(static_cast<ssize_t (IpcClient::*)(void *, size_t, uint64_t)>(
                                 &IpcClient::recv)),
                             ssize_t (IpcClient::*)(void *, size_t, uint64_t)>);
static_assert(std::is_same_v<decltype(static_cast<void (IpcClient::*)()>(&IpcClient::close)),
                             void (IpcClient::*)()>);
static_assert(std::is_same_v<decltype(static_cast<std::unique_ptr<IpcClient> (*)(const std::string &)>(
                                 &IpcClient::create_socket)),
                             std::unique_ptr<IpcClient> (*)(const std::string &)>);
static_assert(std::is_same_v<decltype(static_cast<std::unique_ptr<IpcClient> (*)(const std::string &, size_t)>(
                                 &IpcClient::create_shm)),
                             std::unique_ptr<IpcClient> (*)(const std::string &, size_t)>);
static_assert(std::is_same_v<IpcServer::Handler,
                             std::function<std::vector<uint8_t>(int, std::span<const uint8_t>)>>);
static_assert(std::is_same_v<decltype(static_cast<bool (IpcServer::*)()>(&IpcServer::listen)),
                             bool (IpcServer::*)()>);
static_assert(std::is_same_v<decltype(static_cast<int (IpcServer::*)(uint64_t)>(&IpcServer::wait_for_data)),
                             int (IpcServer::*)(uint64_t)>);
static_assert(std::is_same_v<decltype(static_cast<ssize_t (IpcServer::*)(int, void *, size_t)>(
                                 &IpcServer::recv)),
                             ssize_t (IpcServer::*)(int, void *, size_t)>);
static_assert(std::is_same_v<decltype(static_cast<bool (IpcServer::*)(int, const void *, size_t)>(
                                 &IpcServer::send)),
                             bool (IpcServer::*)(int, const void *, size_t)>);
static_assert(std::is_same_v<decltype(static_cast<void (IpcServer::*)(IpcServer::Handler, size_t)>(
                                 &IpcServer::run)),
                             void (IpcServer::*)(IpcServer::Handler, size_t)>);
static_assert(std::is_same_v<decltype(static_cast<std::unique_ptr<IpcServer> (*)(const std::string &, int)>(
                                 &IpcServer::create_socket)),
                             std::unique_ptr<IpcServer> (*)(const std::string &, int)>);
static_assert(std::is_same_v<decltype(static_cast<std::unique_ptr<IpcServer> (*)(const std::string &, size_t)>(
                                 &IpcServer::create_shm)),
                             std::unique_ptr<IpcServer> (*)(const std::string &, size_t)>);

// Default arguments the README's calls rely on.
static_assert(requires(IpcClient &c, std::vector<uint8_t> &v) {
    c.send(v.data(), v.size());
    c.recv(v.data(), v.size());
});
static_assert(requires(IpcServer &s) {
    s.wait_for_data();
    s.run(IpcServer::Handler{});
});

TEST(SeedReadme, SocketExampleServesTheClientExample)
{
    ipc_testing::ScopedDir dir;
    std::string path = dir.file("my.sock");
    pid_t server = Fork([&]() -> int { socket_server_process(path); });
    // The README connects once; wait for the server to be there first.
    while (ipc_socket_path_state(path.c_str()) != IPC_PATH_LIVE)
        usleep(1000);
    std::vector<uint8_t> response;
    ssize_t n = socket_client_process(path, response);
    ASSERT_EQ(n, 3);
    EXPECT_EQ(std::vector<uint8_t>(response.begin(), response.begin() + n),
              (std::vector<uint8_t>{3, 2, 1}));
    kill(server, SIGKILL);
    WaitChild(server);
}

TEST(SeedReadme, SharedMemoryExampleServesExactlyFourClientInstances)
{
    std::string name = ipc_testing::UniqueName("my_shm");
    pid_t server = Fork([&]() -> int { shm_server_process(name); });
    // Wait until it listens: a probe client connects once.
    ipc_client *probe = ipc_client_create_shm(name.c_str(), 4);
    ASSERT_EQ(ipc_testing::ConnectWithRetry(probe), 0);
    ipc_client_destroy(probe);
    std::vector<pid_t> clients;
    for (int i = 0; i < 4; i++)
        clients.push_back(Fork([&]() {
            std::vector<uint8_t> response;
            ssize_t n = shm_client_process(name, response);
            return n == 4 && response[0] == 7 && response[3] == 4 ? 0 : 1;
        }));
    for (pid_t c : clients)
        EXPECT_EQ(WaitChild(c), 0);
    kill(server, SIGKILL);
    WaitChild(server);
}

TEST(SeedReadme, GracefulShutdownSendsTheGoodbyeThenRunReturns)
{
    ipc_testing::ScopedDir dir;
    std::string path = dir.file("g.sock");
    auto server = IpcServer::create_socket(path, 10);
    ASSERT_TRUE(server->listen());
    pid_t client = Fork([&]() {
        auto c = IpcClient::create_socket(path);
        std::vector<uint8_t> buf(64);
        if (error_handling(c.get(), "ab", 2, buf.data(), buf.size()) != 0 || buf[0] != 'b')
            return 1;
        if (!c->send("quit", 4) || c->recv(buf.data(), buf.size()) != 3 ||
            std::memcmp(buf.data(), "bye", 3) != 0)
            return 2;
        return 0;
    });
    graceful_server(server.get());
    EXPECT_EQ(WaitChild(client), 0);
}

TEST(SeedReadme, ErrorHandlingReportsEachFailure)
{
    ipc_testing::ScopedDir dir;
    auto client = IpcClient::create_socket(dir.file("nobody.sock"));
    char buf[8];
    EXPECT_EQ(error_handling(client.get(), "x", 1, buf, sizeof buf), 1);
    EXPECT_EQ(client->last_error(), -ENOENT);
}

TEST(SeedReadme, ResourceManagementLeavesNothingBehind)
{
    ipc_testing::ScopedDir dir;
    std::string path = dir.file("my.sock");
    {
        auto server = IpcServer::create_socket(path, 10);
        server->listen();
        // Use server...
        struct stat st;
        ASSERT_EQ(stat(path.c_str(), &st), 0);
    } // Destructor closes connections and cleans up resources
    struct stat st;
    EXPECT_EQ(stat(path.c_str(), &st), -1);
    std::string name = ipc_testing::UniqueName("my_shm");
    for (int round = 0; round < 2; round++) { // the name is free again
        auto server = IpcServer::create_shm(name, 4);
        EXPECT_TRUE(server->listen());
    }
}

}  // namespace
