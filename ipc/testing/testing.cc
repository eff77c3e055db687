#include "ipc/testing/testing.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

namespace ipc_testing {

ScopedDir::ScopedDir()
{
    char tmpl[] = "/tmp/ipcXXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
        perror("mkdtemp");
        abort();
    }
    path_ = tmpl;
}

ScopedDir::~ScopedDir()
{
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string UniqueName(const std::string &prefix)
{
    /* Bazel's sandboxes give every test the same small pid, and their
     * abstract socket names share one namespace: add random bits. */
    static std::atomic<int> counter{0};
    static const uint32_t salt = [] {
        std::random_device rd;
        return static_cast<uint32_t>(rd());
    }();
    char tag[16];
    snprintf(tag, sizeof(tag), "%08x", salt);
    return prefix + "-" + std::to_string(getpid()) + "-" + tag + "-" + std::to_string(counter++);
}

static uint8_t PatternByte(size_t i, uint64_t seq)
{
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seq * 0xBF58476D1CE4E5B9ull;
    return static_cast<uint8_t>(x >> 56);
}

std::vector<uint8_t> Pattern(size_t len, uint64_t seq)
{
    std::vector<uint8_t> v(len);
    for (size_t i = 0; i < len; i++)
        v[i] = PatternByte(i, seq);
    return v;
}

bool MatchesPattern(const void *data, size_t len, uint64_t seq)
{
    const uint8_t *p = static_cast<const uint8_t *>(data);
    for (size_t i = 0; i < len; i++)
        if (p[i] != PatternByte(i, seq))
            return false;
    return true;
}

pid_t Fork(const std::function<int()> &body)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        _exit(body());
    return pid;
}

int WaitChild(pid_t pid, int timeout_ms)
{
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0)
            return -1;
        if (std::chrono::steady_clock::now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

ipc_action EchoHandler(void *, int, const void *request, size_t len, ipc_response *response)
{
    ipc_response_set(response, request, len);
    return IPC_CONTINUE;
}

/* Stops the server when SIGTERM arrives. The signal is blocked and taken
 * by sigwait() on a thread of its own rather than by a handler: under
 * ThreadSanitizer a handler runs only when the interrupted thread next makes
 * an intercepted call, which a thread sleeping in raw futex slices may not
 * do for a long time. */
static void *StopOnSigterm(void *server)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    int sig;
    while (sigwait(&set, &sig) != 0) {
    }
    ipc_server_stop(static_cast<ipc_server *>(server));
    return nullptr;
}

ServerProcess::ServerProcess(Factory make, ipc_handler handler, size_t max_message)
{
    int ready[2];
    if (pipe(ready) < 0)
        return;
    pid_ = Fork([&]() {
        close(ready[0]);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, nullptr);
        ipc_server *s = make();
        if (s == nullptr || ipc_server_listen(s) < 0)
            return 2;
        pthread_t stopper;
        if (pthread_create(&stopper, nullptr, StopOnSigterm, s) != 0)
            return 3;
        char one = 1;
        if (write(ready[1], &one, 1) != 1)
            return 3;
        close(ready[1]);
        int rc = ipc_server_run(s, handler, nullptr, max_message);
        /* run() also returns for a handler's IPC_SHUTDOWN, with the stopper
         * still in sigwait(), a cancellation point: end it before s goes. */
        pthread_cancel(stopper);
        pthread_join(stopper, nullptr);
        ipc_server_destroy(s);
        return rc == 0 ? 0 : 4;
    });
    close(ready[1]);
    char byte;
    ssize_t n;
    do
        n = read(ready[0], &byte, 1);
    while (n < 0 && errno == EINTR);
    close(ready[0]);
    if (n != 1) {
        WaitChild(pid_, 5000);
        pid_ = -1;
    }
}

ServerProcess::~ServerProcess()
{
    if (pid_ > 0)
        Stop();
}

void ServerProcess::Kill(int sig)
{
    if (pid_ <= 0)
        return;
    kill(pid_, sig);
    if (sig == SIGKILL) {
        WaitChild(pid_, 5000);
        pid_ = -1;
    }
}

int ServerProcess::Stop()
{
    if (pid_ <= 0)
        return -1;
    kill(pid_, SIGTERM);
    int rc = WaitChild(pid_, 10000);
    pid_ = -1;
    return rc;
}

int ConnectWithRetry(ipc_client *c, int timeout_ms)
{
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        int rc = ipc_client_connect(c);
        if (rc == 0 || (rc != -ENOENT && rc != -ECONNREFUSED) ||
            std::chrono::steady_clock::now() > end)
            return rc;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

int CountOpenFds()
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == nullptr)
        return -1;
    while (readdir(d) != nullptr)
        n++;
    closedir(d);
    return n - 3; /* ".", "..", and the directory's own fd */
}

}  // namespace ipc_testing
