// A C++20 program using ipc through ipc/ipc.hpp: an echo server in a child
// process, its client here, one round trip on each transport. Exits 0 when
// both came back whole. Built by every route of README.md "Use it from your
// project".
#include "ipc/ipc.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

bool echo(ipc::IpcClient &client, const std::string &msg)
{
    char buf[16];
    return client.send(msg.data(), msg.size(), 0) &&
           client.recv(buf, sizeof(buf), 1000000000) == static_cast<ssize_t>(msg.size()) &&
           std::string(buf, msg.size()) == msg;
}

// Serves here until the client's "bye" (answered, then run() returns); the
// client runs in a child. Listening first means the child cannot race it.
bool round_trip(const char *what, std::unique_ptr<ipc::IpcServer> server,
                std::unique_ptr<ipc::IpcClient> client)
{
    if (!server || !client || !server->listen())
        return false;
    pid_t kid = fork();
    if (kid == 0)
        _exit(client->connect() && echo(*client, "hello") && echo(*client, "bye") ? 0 : 1);
    if (kid > 0)
        server->run([](int, std::span<const uint8_t> request) {
            std::vector<uint8_t> reply(request.begin(), request.end());
            if (std::string(request.begin(), request.end()) == "bye")
                throw ipc::ShutdownRequested(reply);
            return reply;
        });
    int status = 0;
    bool ok = kid > 0 && waitpid(kid, &status, 0) == kid && server->last_error() == 0 &&
              WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::printf("%s: %s\n", what, ok ? "echo ok" : "FAILED");
    return ok;
}

} // namespace

int main()
{
    std::printf("ipc %s (header %s), C++%ld\n", ipc_version(), IPC_VERSION_STRING,
                __cplusplus / 100 % 100);
    char dir[] = "/tmp/hello_ipcXXXXXX";
    if (mkdtemp(dir) == nullptr)
        return 1;
    std::string path = std::string(dir) + "/echo.sock";
    std::string name = "hello_ipcxx_" + std::to_string(getpid());
    bool ok = round_trip("socket", ipc::IpcServer::create_socket(path, 1),
                         ipc::IpcClient::create_socket(path));
    ok = round_trip("shm", ipc::IpcServer::create_shm(name, 1),
                    ipc::IpcClient::create_shm(name, 1)) && ok;
    rmdir(dir);
    return ok ? 0 : 1;
}
