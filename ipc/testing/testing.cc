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

// Byte i of pattern seq is the top byte of (i + 1) * K ^ seq * L, with the
// product kept as a running sum (cheap enough for hot echo loops).
constexpr uint64_t kPatternStep = 0x9E3779B97F4A7C15ull;

static uint64_t PatternSalt(uint64_t seq)
{
    return seq * 0xBF58476D1CE4E5B9ull;
}

std::vector<uint8_t> Pattern(size_t len, uint64_t seq)
{
    std::vector<uint8_t> v(len);
    uint64_t x = kPatternStep, salt = PatternSalt(seq);
    for (size_t i = 0; i < len; i++, x += kPatternStep)
        v[i] = static_cast<uint8_t>((x ^ salt) >> 56);
    return v;
}

bool MatchesPattern(const void *data, size_t len, uint64_t seq)
{
    const uint8_t *p = static_cast<const uint8_t *>(data);
    uint64_t x = kPatternStep, salt = PatternSalt(seq);
    for (size_t i = 0; i < len; i++, x += kPatternStep)
        if (p[i] != static_cast<uint8_t>((x ^ salt) >> 56))
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
    child_.emplace([&]() {
        close(ready[0]);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, nullptr);
        ipc_server *s = make();
        int rc = s != nullptr ? ipc_server_listen(s) : -EINVAL;
        pthread_t stopper;
        if (rc == 0)
            rc = -pthread_create(&stopper, nullptr, StopOnSigterm, s);
        bool told = WriteExactly(ready[1], &rc, sizeof(rc));
        close(ready[1]);
        if (rc != 0 || !told)
            return 2;
        rc = ipc_server_run(s, handler, nullptr, max_message);
        /* run() also returns for a handler's IPC_SHUTDOWN, with the stopper
         * still in sigwait(), a cancellation point: end it before s goes. */
        pthread_cancel(stopper);
        pthread_join(stopper, nullptr);
        ipc_server_destroy(s);
        return rc == 0 ? 0 : 4;
    });
    close(ready[1]);
    if (!ReadExactly(ready[0], &listen_rc_, sizeof(listen_rc_)))
        listen_rc_ = -999;
    close(ready[0]);
    if (listen_rc_ != 0)
        child_->Wait(5000);
}

ServerProcess::~ServerProcess()
{
    if (ok())
        Stop();
}

void ServerProcess::Kill(int sig)
{
    if (!ok())
        return;
    if (sig == SIGKILL)
        child_->Kill();
    else
        kill(pid(), sig);
}

int ServerProcess::Stop()
{
    if (!ok())
        return -1;
    kill(pid(), SIGTERM);
    return Join();
}

int ServerProcess::Join(int timeout_ms)
{
    return child_ ? child_->Wait(timeout_ms) : -1;
}

ServerProcess::Factory ShmServer(const std::string &name, size_t max_clients,
                                 ipc_server_options options)
{
    return [=]() { return ipc_server_create_shm_ex(name.c_str(), max_clients, &options); };
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

long Echo(ipc_client *c, const void *msg, size_t len, uint64_t timeout_ns)
{
    // Room for a reply longer than the request: it is then told apart
    // (kWrongReply) up to 16 bytes longer, -EMSGSIZE beyond.
    thread_local std::vector<uint8_t> buf;
    buf.resize(len + 16);
    int rc = ipc_client_send(c, msg, len, timeout_ns);
    if (rc != 0)
        return rc;
    ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), timeout_ns);
    if (n < 0)
        return n;
    if (static_cast<size_t>(n) != len || (len != 0 && memcmp(buf.data(), msg, len) != 0))
        return kWrongReply;
    return 0;
}

long Echo(ipc_client *c, const std::string &msg, uint64_t timeout_ns)
{
    return Echo(c, msg.data(), msg.size(), timeout_ns);
}

long EchoPattern(ipc_client *c, size_t len, uint64_t seq, uint64_t timeout_ns)
{
    std::vector<uint8_t> msg = Pattern(len, seq);
    return Echo(c, msg.data(), len, timeout_ns);
}

int CountShmSegments(pid_t pid)
{
    FILE *f = fopen(("/proc/" + std::to_string(pid) + "/maps").c_str(), "r");
    if (f == nullptr)
        return -1;
    int n = 0;
    char line[4096];
    while (fgets(line, sizeof(line), f))
        n += strstr(line, "/memfd:ipc-shm (deleted)") != nullptr;
    fclose(f);
    return n;
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
