#include "ipc/testing/process.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

namespace ipc_testing {

std::string UniqueName(const std::string &prefix)
{
    // Bazel's sandboxes give every test the same small pid, and their
    // abstract socket names share one namespace: add random bits.
    static std::atomic<int> counter{0};
    static const uint32_t salt = [] {
        std::random_device rd;
        return static_cast<uint32_t>(rd());
    }();
    char tag[16];
    snprintf(tag, sizeof(tag), "%08x", salt);
    return prefix + "-" + std::to_string(getpid()) + "-" + tag + "-" + std::to_string(counter++);
}

pid_t Fork(const std::function<int()> &body)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0)
        _exit(body());
    return pid;
}

static int ExitCode(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool FreezeChild(pid_t pid)
{
    if (kill(pid, SIGSTOP) != 0)
        return false;
    int status;
    pid_t r;
    while ((r = waitpid(pid, &status, WUNTRACED)) < 0 && errno == EINTR) {
    }
    return r == pid && WIFSTOPPED(status);
}

int WaitChild(pid_t pid, int timeout_ms)
{
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    // Back off from 10 us to 1 ms: a child just killed is reaped at once,
    // and loops of thousands of kills stay fast.
    auto pause = std::chrono::microseconds(10);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return ExitCode(status);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (std::chrono::steady_clock::now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
}

int ChildProcess::Wait(int timeout_ms)
{
    if (pid_ <= 0)
        return -1;
    int rc = WaitChild(pid_, timeout_ms);
    pid_ = -1;
    return rc;
}

std::optional<int> ChildProcess::Poll()
{
    if (pid_ <= 0)
        return std::nullopt;
    int status;
    pid_t r;
    do
        r = waitpid(pid_, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r != pid_)
        return std::nullopt;
    pid_ = -1;
    return ExitCode(status);
}

void ChildProcess::Kill()
{
    if (pid_ <= 0)
        return;
    kill(pid_, SIGKILL);
    WaitChild(pid_);
    pid_ = -1;
}

Pipe::Pipe()
{
    if (pipe(fds_) < 0) {
        perror("pipe");
        abort();
    }
}

Pipe::~Pipe()
{
    CloseRead();
    CloseWrite();
}

void Pipe::CloseRead()
{
    if (fds_[0] >= 0)
        close(fds_[0]);
    fds_[0] = -1;
}

void Pipe::CloseWrite()
{
    if (fds_[1] >= 0)
        close(fds_[1]);
    fds_[1] = -1;
}

bool Pipe::Put(char byte)
{
    return WriteExactly(fds_[1], &byte, 1);
}

int Pipe::Get()
{
    unsigned char byte;
    return ReadExactly(fds_[0], &byte, 1) ? byte : -1;
}

HeldChild::HeldChild(const std::function<int()> &setup, const std::function<void()> &hold)
    : child_([&] {
          int rc = setup();
          if (rc != 0)
              return rc;
          if (!ready_.Put(1))
              return 127;
          for (;;) {
              if (hold)
                  hold();
              else
                  pause();
          }
      })
{
    // The child's end closed here: a child that dies early gives EOF.
    ready_.CloseWrite();
    ok_ = ready_.Get() >= 0;
    ready_.CloseRead();
}

uint64_t Scaled(uint64_t n)
{
    double f = 1.0;
#if defined(IPC_TESTING_TSAN)
    f = 0.1;
#elif defined(IPC_TESTING_ASAN)
    f = 0.25;
#elif defined(IPC_TESTING_UBSAN)
    f = 0.5;
#endif
    if (const char *e = getenv("IPC_TEST_SCALE"))
        f *= atof(e);
    uint64_t r = static_cast<uint64_t>(static_cast<double>(n) * f);
    return r ? r : 1;
}

uint64_t NowNs()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

static void *DoNothing(void *)
{
    return nullptr;
}

bool ForbidThreads()
{
    constexpr uid_t kNobody = 65534;
    if (geteuid() == 0 && (setgroups(0, nullptr) != 0 ||
                           setresgid(kNobody, kNobody, kNobody) != 0 ||
                           setresuid(kNobody, kNobody, kNobody) != 0)) {
        fprintf(stderr, "cannot become uid 65534: %s\n", strerror(errno));
        return false;
    }
    // This process already counts for its user: a limit of 1 leaves no
    // room, however many other processes the user has.
    rlimit lim;
    if (getrlimit(RLIMIT_NPROC, &lim) != 0)
        return false;
    lim.rlim_cur = 1;
    if (setrlimit(RLIMIT_NPROC, &lim) != 0) {
        fprintf(stderr, "setrlimit(RLIMIT_NPROC): %s\n", strerror(errno));
        return false;
    }
    pthread_t t;
    int rc = pthread_create(&t, nullptr, DoNothing, nullptr);
    if (rc == 0) {
        pthread_join(t, nullptr);
        fprintf(stderr, "RLIMIT_NPROC does not bind uid %u\n", static_cast<unsigned>(geteuid()));
        return false;
    }
    return rc == EAGAIN;
}

bool AllowThreads()
{
    rlimit lim;
    if (getrlimit(RLIMIT_NPROC, &lim) != 0)
        return false;
    lim.rlim_cur = lim.rlim_max;
    return setrlimit(RLIMIT_NPROC, &lim) == 0;
}

void *SharedAlloc(size_t n)
{
    void *p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    return p;
}

// One read or write of up to len bytes; send() with MSG_NOSIGNAL on a socket
// so that a peer that left gives an error, not SIGPIPE.
static ssize_t TransferSome(int fd, uint8_t *p, size_t len, bool out)
{
    if (!out)
        return read(fd, p, len);
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    return n < 0 && errno == ENOTSOCK ? write(fd, p, len) : n;
}

static bool TransferExactly(int fd, uint8_t *p, size_t len, bool out)
{
    while (len > 0) {
        ssize_t n = TransferSome(fd, p, len, out);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

bool WriteExactly(int fd, const void *data, size_t len)
{
    return TransferExactly(fd, static_cast<uint8_t *>(const_cast<void *>(data)), len, true);
}

bool ReadExactly(int fd, void *data, size_t len)
{
    return TransferExactly(fd, static_cast<uint8_t *>(data), len, false);
}

// Entries of a directory but "." and "..", or -1.
static int CountEntries(const std::string &path)
{
    DIR *d = opendir(path.c_str());
    if (d == nullptr)
        return -1;
    int n = 0;
    while (struct dirent *e = readdir(d))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

int CountOpenFds()
{
    int n = CountEntries("/proc/self/fd");
    return n < 0 ? -1 : n - 1;  // the directory's own fd
}

int CountOpenFds(pid_t pid)
{
    if (pid == getpid())
        return CountOpenFds();
    return CountEntries("/proc/" + std::to_string(pid) + "/fd");
}

int CountMappings(pid_t pid)
{
    FILE *f = fopen(("/proc/" + std::to_string(pid) + "/maps").c_str(), "r");
    if (f == nullptr)
        return -1;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

int64_t ProcessCpuNs(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
    FILE *f = fopen(path, "r");
    if (f == nullptr)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    // Fields after the command name (which may hold spaces) start after ')':
    // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime.
    const char *p = strrchr(buf, ')');
    if (p == nullptr)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return static_cast<int64_t>((utime + stime) * (1000000000ull / static_cast<uint64_t>(hz)));
}

long ProcStatusKiB(pid_t pid, const char *field)
{
    FILE *f = fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
    if (f == nullptr)
        return -1;
    char line[256];
    long kib = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            kib = atol(line + n + 1);
    fclose(f);
    return kib;
}

int ConnectUnixStream(const std::string &path)
{
    struct sockaddr_un a = {};
    if (path.size() >= sizeof(a.sun_path))
        return -ENAMETOOLONG;
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path.c_str(), path.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, reinterpret_cast<struct sockaddr *>(&a), sizeof(a)) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

}  // namespace ipc_testing
