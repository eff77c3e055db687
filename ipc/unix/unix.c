/* The Unix chores of unix.h. */
#include "ipc/unix/unix.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IPC__SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define IPC__SIZE_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

/* ------------------------------------------------------------ time */

uint64_t ipc__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ipc__deadline(uint64_t timeout_ns)
{
    if (timeout_ns == 0)
        return IPC_FOREVER;
    uint64_t now = ipc__now_ns();
    return timeout_ns >= IPC_FOREVER - now ? IPC_FOREVER - 1 : now + timeout_ns;
}

int ipc__poll_ms(uint64_t deadline)
{
    if (deadline == IPC_FOREVER)
        return -1;
    uint64_t now = ipc__now_ns();
    if (now >= deadline)
        return 0;
    uint64_t ms = (deadline - now + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ------------------------------------------------------------ fds */

void ipc__close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void ipc__close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

bool ipc__fd_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int n;
    while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
        ;
    return n != 0;
}

void ipc__eventfd_signal(int fd)
{
    uint64_t one = 1;
    while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

void ipc__eventfd_drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
}

int ipc__thread_start_nosig(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = -pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* pthread_create's EAGAIN is "no thread for you" (RLIMIT_NPROC, the
     * system's thread limit, or no memory for a stack), which elsewhere in
     * the API means "no free slot, retry": give it a name of its own. */
    return rc == -EAGAIN ? -EUSERS : rc;
}

/* ------------------------------------------------- abstract sockets */

int ipc__abstract_addr(struct sockaddr_un *a, socklen_t *len, const char *prefix,
                       const char *name)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "%s%s", prefix, name);
    if (n < 0 || (size_t)n >= sizeof(a->sun_path) - 1)
        return -ENAMETOOLONG;
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    return 0;
}

/* A stream socket and the abstract address "\0<prefix><name>": the fd or
 * -errno. */
static int ipc__abstract_socket(const char *prefix, const char *name, int type_flags,
                                struct sockaddr_un *a, socklen_t *len)
{
    int rc = ipc__abstract_addr(a, len, prefix, name);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0);
    return fd < 0 ? -errno : fd;
}

int ipc__abstract_bind(const char *prefix, const char *name, int type_flags, int backlog)
{
    struct sockaddr_un a;
    socklen_t len;
    int fd = ipc__abstract_socket(prefix, name, type_flags, &a, &len);
    if (fd < 0)
        return fd;
    /* Abstract names die with their owner: a live one makes this fail with
     * EADDRINUSE, a crashed one left nothing behind. */
    if (bind(fd, (struct sockaddr *)&a, len) < 0 || (backlog >= 0 && listen(fd, backlog) < 0)) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int ipc__abstract_connect(const char *prefix, const char *name, int type_flags)
{
    struct sockaddr_un a;
    socklen_t len;
    int fd = ipc__abstract_socket(prefix, name, type_flags, &a, &len);
    if (fd < 0)
        return fd;
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&a, len)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int ipc__peer_ok(int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
        return -errno;
    return cr.uid == geteuid() || cr.uid == 0 ? 0 : -EACCES;
}

/* ------------------------------------------------ fd passing (SCM_RIGHTS) */

typedef union {
    char buf[CMSG_SPACE(IPC_UNIX_MAX_FDS * sizeof(int))];
    struct cmsghdr align;
} ipc__cmsg_buf;

ssize_t ipc__send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds,
                      int flags)
{
    if (nfds < 0 || nfds > IPC_UNIX_MAX_FDS)
        return -EINVAL;
    ipc__cmsg_buf u;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.buf;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    while ((n = sendmsg(sock, &msg, flags | MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -errno : n;
}

/* Takes the SCM_RIGHTS fds out of msg into fds; -1 (all closed) when more
 * than max came or the control data was cut. */
static int ipc__take_fds(struct msghdr *msg, int *fds, int max)
{
    int n = 0;
    bool over = (msg->msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (n < max) {
                fds[n++] = fd;
            } else {
                close(fd);
                over = true;
            }
        }
    }
    if (!over)
        return n;
    ipc__close_fds(fds, n);
    return -1;
}

ssize_t ipc__recv_fds(int sock, void *buf, size_t len, int *fds, int max_fds, int *nfds,
                      int flags)
{
    ipc__cmsg_buf u;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf)};
    *nfds = 0;
    if (max_fds < 0 || max_fds > IPC_UNIX_MAX_FDS)
        return -EINVAL;
    ssize_t n;
    while ((n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return -errno;
    *nfds = ipc__take_fds(&msg, fds, max_fds);
    return n;
}

/* ------------------------------------------------------ sealed memfds */

/* Mapped before sealing: F_SEAL_FUTURE_WRITE leaves the mapping that
 * exists writable and refuses every later one. */
static int ipc__memfd_create(const char *tag, size_t size, int seals, int *fd, void **map)
{
    int mfd = memfd_create(tag, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0)
        return -errno;
    int rc = 0;
    if (ftruncate(mfd, (off_t)size) < 0) {
        rc = -errno;
        goto failed_size;
    }
    if ((rc = -posix_fallocate(mfd, 0, (off_t)size)) < 0)
        goto failed_size;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (m == MAP_FAILED) {
        rc = -errno;
        goto failed_size;
    }
    if (fcntl(mfd, F_ADD_SEALS, seals) < 0) {
        rc = -errno;
        goto failed_map;
    }
    *fd = mfd;
    *map = m;
    return 0;
failed_map:
    munmap(m, size);
failed_size:
    close(mfd);
    return rc;
}

int ipc__memfd_create_sealed(const char *tag, size_t size, int *fd, void **map)
{
    return ipc__memfd_create(tag, size, IPC__SEALS, fd, map);
}

int ipc__memfd_create_owner_writes(const char *tag, size_t size, int *fd, void **map)
{
    return ipc__memfd_create(tag, size, IPC__SEALS | F_SEAL_FUTURE_WRITE, fd, map);
}

int ipc__memfd_map_sealed(int fd, size_t min_size, size_t max_size, void **map, size_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    /* Sealed against shrinking, or the peer could SIGBUS us. */
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & IPC__SIZE_SEALS) != IPC__SIZE_SEALS ||
        (uint64_t)st.st_size < min_size || (uint64_t)st.st_size > max_size)
        return -EPROTO;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return -errno;
    *map = m;
    *size = (size_t)st.st_size;
    return 0;
}

int ipc__memfd_map_readonly(int fd, size_t size, const void **map)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    int seals = fcntl(fd, F_GET_SEALS), need = IPC__SIZE_SEALS | F_SEAL_FUTURE_WRITE;
    if (seals < 0 || (seals & need) != need || (uint64_t)st.st_size != size)
        return -EPROTO;
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return -errno;
    *map = m;
    return 0;
}

/* ------------------------------------------------------------- paths */

/* full with its directory made canonical (symlinks, ".", "..", "//"), the
 * last component kept: every spelling of one socket file gives one name.
 * full is kept as it is when its directory cannot be resolved. */
static void ipc__path_canonical(char full[PATH_MAX + 1])
{
    char dir[PATH_MAX + 1], real[PATH_MAX];
    char *slash = strrchr(full, '/');
    if (slash == NULL || slash[1] == '\0' || !strcmp(slash + 1, ".") || !strcmp(slash + 1, ".."))
        return;
    size_t n = (size_t)(slash - full);
    memcpy(dir, full, n);
    dir[n] = '\0';
    if (realpath(n == 0 ? "/" : dir, real) == NULL)
        return;
    char out[PATH_MAX + 1];
    int len = snprintf(out, sizeof(out), "%s/%s", strcmp(real, "/") ? real : "", slash + 1);
    if (len > 0 && (size_t)len < sizeof(out))
        memcpy(full, out, (size_t)len + 1);
}

int ipc__path_id(const char *path, char out[17], char *abs_out, size_t abs_cap)
{
    char abs[PATH_MAX + 1];
    const char *full = abs;
    if (path[0] != '/') {
        size_t n = strlen(path);
        if (getcwd(abs, sizeof(abs) - n - 2) == NULL)
            return -errno;
        strcat(abs, "/");
        strcat(abs, path);
    } else if (snprintf(abs, sizeof(abs), "%s", path) >= (int)sizeof(abs)) {
        return -ENAMETOOLONG;
    }
    ipc__path_canonical(abs);
    uint64_t h = 1469598103934665603ull;
    for (const char *p = full; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    if (abs_out != NULL)
        snprintf(abs_out, abs_cap, "%s", full);
    return 0;
}

int ipc__path_split(const char *path, char dir[PATH_MAX], const char **base)
{
    const char *slash = strrchr(path, '/');
    *base = slash != NULL ? slash + 1 : path;
    if (**base == '\0' || strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0)
        return -EINVAL;
    size_t n = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (n >= PATH_MAX)
        return -ENAMETOOLONG;
    if (n == 0)
        n = 1, dir[0] = '.';
    else
        memcpy(dir, path, n);
    dir[n] = '\0';
    return 0;
}
