// Process-level helpers for tests, with no dependency on the library: forking,
// owning and reaping children, pipes between them, unique names, memory shared
// with children, loop counts scaled for sanitizers, exact reads and writes,
// and /proc readings.
// The primitives' tests (//ipc/shm:wait_test...) use these alone.
#ifndef IPC_TESTING_PROCESS_H
#define IPC_TESTING_PROCESS_H

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IPC_TESTING_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define IPC_TESTING_ASAN 1
#endif
#if __has_feature(undefined_behavior_sanitizer)
#define IPC_TESTING_UBSAN 1
#endif
#endif

namespace ipc_testing {

// A name unique to this process and call, for shared-memory servers.
std::string UniqueName(const std::string &prefix);

// Runs body in a child process, which _exit()s with body's return value.
pid_t Fork(const std::function<int()> &body);

// Waits for the child; its exit code, 128 + signal, or -1 after timeout_ms
// (the child is then killed).
int WaitChild(pid_t pid, int timeout_ms = 30000);

// Freezes a child of this process: SIGSTOP, then waits until every one of
// its threads has stopped (kill() returns before they have: a thread may
// still run for a moment). false when it could not.
bool FreezeChild(pid_t pid);

// A child process running body (see Fork), killed (SIGKILL) and reaped on
// destruction unless it was waited for: a test that fails half-way leaves
// no process behind.
class ChildProcess {
  public:
    explicit ChildProcess(const std::function<int()> &body) : pid_(Fork(body)) {}
    ~ChildProcess() { Kill(); }
    ChildProcess(ChildProcess &&other) noexcept : pid_(other.pid_) { other.pid_ = -1; }
    ChildProcess &operator=(ChildProcess &&) = delete;

    pid_t pid() const { return pid_; }
    // WaitChild(): the exit code, 128 + signal, or -1 after timeout_ms.
    int Wait(int timeout_ms = 30000);
    // The same if it has ended (it is reaped then); nothing while it runs.
    std::optional<int> Poll();
    // SIGKILL, and reaped.
    void Kill();

  private:
    pid_t pid_;
};

// A pipe between a parent and the children it forks, both ends closed on
// destruction. A process closes the end it does not use right after fork():
// a reader then sees EOF, not a hang, once every writer is gone.
class Pipe {
  public:
    Pipe();  // aborts on failure
    ~Pipe();
    Pipe(const Pipe &) = delete;
    Pipe &operator=(const Pipe &) = delete;

    void CloseRead();
    void CloseWrite();
    // Writes one byte; false on error.
    bool Put(char byte);
    // Reads one byte: it, or -1 on EOF or error.
    int Get();

  private:
    int fds_[2];
};

// A child that runs `setup` (binding a socket, taking a lock, connecting...)
// and, once setup returned 0, says so and holds what it set up until it is
// killed (SIGKILL and reaped on destruction): it sleeps, or runs `hold` over
// and over. The constructor returns once the child is ready, ok(), or gone,
// !ok().
class HeldChild {
  public:
    explicit HeldChild(const std::function<int()> &setup,
                       const std::function<void()> &hold = nullptr);
    HeldChild(const HeldChild &) = delete;
    HeldChild &operator=(const HeldChild &) = delete;

    bool ok() const { return ok_; }
    pid_t pid() const { return child_.pid(); }
    // SIGKILL, and reaped.
    void Kill() { child_.Kill(); }

  private:
    Pipe ready_;  // before child_: the child says "ready" on it
    ChildProcess child_;
    bool ok_ = false;
};

// For a child process that tests running out of threads: from now on this
// process starts no thread and no process (pthread_create() and fork() fail
// with EAGAIN), as for a user at RLIMIT_NPROC (`ulimit -u`). As root, whom
// the limit does not bind, it first becomes uid/gid 65534 (a test doing so
// needs tags = ["no-sandbox"]: the sandbox maps uid 0 only). Only the soft
// limit is lowered: AllowThreads() lifts it again. false, with the reason on
// stderr, when it cannot: the test then skips.
bool ForbidThreads();
bool AllowThreads();

// Loop counts: n by default, smaller under the slow sanitizers (TSAN 0.1,
// ASAN 0.25, UBSAN 0.5); the environment's IPC_TEST_SCALE multiplies on top.
// Never 0.
uint64_t Scaled(uint64_t n);

// CLOCK_MONOTONIC now, in ns.
uint64_t NowNs();

// Zeroed memory shared with children forked later (aborts on failure).
void *SharedAlloc(size_t n);

// Writes / reads exactly len bytes, retrying short transfers and EINTR;
// false on EOF or any other error (a socket whose peer left gives false,
// never SIGPIPE).
bool WriteExactly(int fd, const void *data, size_t len);
bool ReadExactly(int fd, void *data, size_t len);

// Number of open fds of this process, or of process pid (-1 if unreadable).
int CountOpenFds();
int CountOpenFds(pid_t pid);

// Number of mappings of process pid (lines of /proc/<pid>/maps; -1 if
// unreadable).
int CountMappings(pid_t pid);

// A field of /proc/<pid>/status in KiB ("VmRSS", "RssAnon"), or -1.
long ProcStatusKiB(pid_t pid, const char *field);

// A stream socket connected to the Unix socket at path (for bytes the client
// API never writes): its fd, or -errno (-ENAMETOOLONG when path does not
// fit sun_path).
int ConnectUnixStream(const std::string &path);

// utime + stime of a process from /proc/<pid>/stat, in ns; -1 if unreadable.
int64_t ProcessCpuNs(pid_t pid);

}  // namespace ipc_testing

#endif  // IPC_TESTING_PROCESS_H
