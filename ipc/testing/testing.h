// Helpers for tests that put real processes on both ends of a transport.
#ifndef IPC_TESTING_TESTING_H
#define IPC_TESTING_TESTING_H

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ipc/ipc.h"

namespace ipc_testing {

// A fresh directory under /tmp, short enough for socket paths (Bazel's
// TEST_TMPDIR is not), removed with its contents on destruction.
class ScopedDir {
  public:
    ScopedDir();
    ~ScopedDir();
    ScopedDir(const ScopedDir &) = delete;
    ScopedDir &operator=(const ScopedDir &) = delete;
    const std::string &path() const { return path_; }
    std::string file(const std::string &name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

// A name unique to this process and call, for shared-memory servers.
std::string UniqueName(const std::string &prefix);

// Deterministic bytes for message `seq` of length `len`, and their check.
std::vector<uint8_t> Pattern(size_t len, uint64_t seq);
bool MatchesPattern(const void *data, size_t len, uint64_t seq);

// Runs body in a child process, which _exit()s with body's return value.
pid_t Fork(const std::function<int()> &body);

// Waits for the child; its exit code, 128 + signal, or -1 after timeout_ms
// (the child is then killed).
int WaitChild(pid_t pid, int timeout_ms = 30000);

// Handler that echoes the request.
ipc_action EchoHandler(void *ctx, int client_id, const void *request, size_t len,
                       ipc_response *response);

// A server in a child process: `make` creates it in the child; the parent
// returns once it listens. The child serves `handler` (echo by default) until
// stopped, then exits 0.
class ServerProcess {
  public:
    using Factory = std::function<ipc_server *()>;
    explicit ServerProcess(Factory make, ipc_handler handler = EchoHandler,
                           size_t max_message = 0);
    ~ServerProcess();
    ServerProcess(const ServerProcess &) = delete;
    ServerProcess &operator=(const ServerProcess &) = delete;

    bool ok() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }
    void Kill(int sig = SIGKILL);
    // SIGTERM, then the exit status (0 for a clean stop).
    int Stop();

  private:
    pid_t pid_ = -1;
};

// Connects, retrying while the server is not there yet (up to timeout_ms).
int ConnectWithRetry(ipc_client *c, int timeout_ms = 5000);

// Number of open fds of this process.
int CountOpenFds();

}  // namespace ipc_testing

#endif  // IPC_TESTING_TESTING_H
