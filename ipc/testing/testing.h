// Helpers for tests that put real processes on both ends of a transport.
#ifndef IPC_TESTING_TESTING_H
#define IPC_TESTING_TESTING_H

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipc/ipc.h"
#include "ipc/testing/process.h"

namespace ipc_testing {

// Owners that destroy a client or server however a test ends.
struct ClientDeleter {
    void operator()(ipc_client *c) const { ipc_client_destroy(c); }
};
struct ServerDeleter {
    void operator()(ipc_server *s) const { ipc_server_destroy(s); }
};
using Client = std::unique_ptr<ipc_client, ClientDeleter>;
using Server = std::unique_ptr<ipc_server, ServerDeleter>;

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

// An empty regular file at path with this mode (false if it cannot be
// made), and whether what is at path (not followed) is a regular file: what
// a server must leave alone where it would put a socket.
bool CreateRegularFile(const std::string &path, mode_t mode);
bool IsRegularFile(const std::string &path);

// Deterministic bytes for message `seq` of length `len`, and their check.
std::vector<uint8_t> Pattern(size_t len, uint64_t seq);
bool MatchesPattern(const void *data, size_t len, uint64_t seq);

// Handler that echoes the request.
ipc_action EchoHandler(void *ctx, int client_id, const void *request, size_t len,
                       ipc_response *response);

// A server in a child process: `make` creates it in the child; the parent
// returns once the child reported its listen() result. The child serves
// `handler` (echo by default) until stopped (SIGTERM) or until the handler
// returns IPC_SHUTDOWN, then exits 0. Stopped on destruction.
class ServerProcess {
  public:
    using Factory = std::function<ipc_server *()>;
    explicit ServerProcess(Factory make, ipc_handler handler = EchoHandler,
                           size_t max_message = 0);
    ~ServerProcess();
    ServerProcess(const ServerProcess &) = delete;
    ServerProcess &operator=(const ServerProcess &) = delete;

    // It listens (and has not been stopped, killed or joined yet).
    bool ok() const { return pid() > 0; }
    // The child's ipc_server_listen() result: -EINVAL if `make` gave null,
    // -999 if it never said.
    int listen_rc() const { return listen_rc_; }
    pid_t pid() const { return child_ ? child_->pid() : -1; }
    // Sends sig; SIGKILL also reaps the child.
    void Kill(int sig = SIGKILL);
    // SIGTERM, then the exit status (0 for a clean stop).
    int Stop();
    // The exit status once it stopped by itself (0 after a handler's clean
    // IPC_SHUTDOWN), or -1 after timeout_ms.
    int Join(int timeout_ms = 10000);

  private:
    std::optional<ChildProcess> child_;
    int listen_rc_ = -999;
};

// A factory for ServerProcess: a shared-memory server for max_clients.
ServerProcess::Factory ShmServer(const std::string &name, size_t max_clients,
                                 ipc_server_options options = {});

// Echoes the request; "SHUTDOWN" replies "bye" and ends the run loop
// (IPC_SHUTDOWN); "SLOW" is echoed after 5 ms.
ipc_action ScriptedEchoHandler(void *ctx, int client_id, const void *request, size_t len,
                               ipc_response *response);

// One echo round trip of len bytes at msg (or of the string, or of
// Pattern(len, seq)): 0, the failing call's error, or kWrongReply.
constexpr long kWrongReply = -1000;
constexpr uint64_t kEchoTimeoutNs = 10000000000ull;  // 10 s for each half
long Echo(ipc_client *c, const void *msg, size_t len, uint64_t timeout_ns = kEchoTimeoutNs);
long Echo(ipc_client *c, const std::string &msg, uint64_t timeout_ns = kEchoTimeoutNs);
long EchoPattern(ipc_client *c, size_t len, uint64_t seq, uint64_t timeout_ns = kEchoTimeoutNs);

// Client segments a process maps (the shared-memory server maps one per
// connected client), or -1 if unreadable.
int CountShmSegments(pid_t pid);

// A connected shared-memory client of server `name`, or nullptr with the
// connect error in *rc (when rc is not null).
ipc_client *ConnectShm(const std::string &name, size_t max_clients, int *rc = nullptr);

// Connects, retrying while the server is not there yet (up to timeout_ms).
int ConnectWithRetry(ipc_client *c, int timeout_ms = 5000);

}  // namespace ipc_testing

#endif  // IPC_TESTING_TESTING_H
