#include "ipc/testing/testing.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

bool CreateRegularFile(const std::string &path, mode_t mode)
{
    int fd = open(path.c_str(), O_CREAT | O_WRONLY, mode);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

bool IsRegularFile(const std::string &path)
{
    struct stat st;
    return lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
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

ipc_action ScriptedEchoHandler(void *, int, const void *request, size_t len,
                               ipc_response *response)
{
    if (len == 8 && memcmp(request, "SHUTDOWN", 8) == 0) {
        ipc_response_set(response, "bye", 3);
        return IPC_SHUTDOWN;
    }
    if (len == 4 && memcmp(request, "SLOW", 4) == 0)
        usleep(5000);
    ipc_response_set(response, request, len);
    return IPC_CONTINUE;
}

ShmServerProcess::ShmServerProcess(const std::string &name, size_t max_clients,
                                   const ipc_server_options *options)
{
    int p[2];
    if (pipe(p) < 0)
        return;
    pid_ = Fork([&] {
        close(p[0]);
        ipc_server *s = ipc_server_create_shm_ex(name.c_str(), max_clients, options);
        int rc = s ? ipc_server_listen(s) : -EINVAL;
        bool told = WriteExactly(p[1], &rc, sizeof(rc));
        close(p[1]);
        if (rc != 0 || !told)
            return 1;
        rc = ipc_server_run(s, ScriptedEchoHandler, nullptr, 0);
        ipc_server_destroy(s);
        return rc == 0 ? 0 : 2;
    });
    close(p[1]);
    if (!ReadExactly(p[0], &listen_rc_, sizeof(listen_rc_)))
        listen_rc_ = -999;
    close(p[0]);
}

void ShmServerProcess::Kill()
{
    if (pid_ <= 0)
        return;
    kill(pid_, SIGKILL);
    WaitChild(pid_);
    pid_ = -1;
}

int ShmServerProcess::Join(int timeout_ms)
{
    int rc = WaitChild(pid_, timeout_ms);
    pid_ = -1;
    return rc;
}

ipc_client *ConnectShm(const std::string &name, size_t max_clients, int *rc)
{
    ipc_client *c = ipc_client_create_shm(name.c_str(), max_clients);
    int r = c ? ipc_client_connect(c) : -EINVAL;
    if (rc != nullptr)
        *rc = r;
    if (r != 0) {
        ipc_client_destroy(c);
        return nullptr;
    }
    return c;
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

}  // namespace ipc_testing
