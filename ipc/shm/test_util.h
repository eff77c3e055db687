/* Helpers for the ipc/shm GoogleTest drivers (test-only). */
#ifndef IPC_SHM_TEST_UTIL_H
#define IPC_SHM_TEST_UTIL_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <functional>

namespace ipc_test {

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IPC_TEST_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define IPC_TEST_ASAN 1
#endif
#if __has_feature(undefined_behavior_sanitizer)
#define IPC_TEST_UBSAN 1
#endif
#endif

/* Loop counts: full size by default, smaller under the slow sanitizers;
 * IPC_TEST_SCALE (a float) multiplies on top. */
inline uint64_t scaled(uint64_t n)
{
    double f = 1.0;
#if defined(IPC_TEST_TSAN)
    f = 0.1;
#elif defined(IPC_TEST_ASAN)
    f = 0.25;
#elif defined(IPC_TEST_UBSAN)
    f = 0.5;
#endif
    if (const char *e = getenv("IPC_TEST_SCALE"))
        f *= atof(e);
    uint64_t r = (uint64_t)((double)n * f);
    return r ? r : 1;
}

inline uint64_t now_ns()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Memory shared with children forked later. */
inline void *shared_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    return p;
}

/* Runs fn in a child; the child exits with fn's return value. */
inline pid_t fork_child(const std::function<int()> &fn)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0)
        _exit(fn());
    return pid;
}

/* Exit status of the child, 128+signal when killed, -1 on error. */
inline int wait_child(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        ;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* Exit status like wait_child, or -2 if still running after timeout_ms
 * (then it is SIGKILLed and reaped). */
inline int wait_child_for(pid_t pid, int timeout_ms)
{
    for (int i = 0; i < timeout_ms; i++) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
        }
        usleep(1000);
    }
    kill(pid, SIGKILL);
    wait_child(pid);
    return -2;
}

} // namespace ipc_test

#endif
