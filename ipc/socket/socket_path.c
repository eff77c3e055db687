/*
 * The socket file: lock identity, liveness, publication, and the operator
 * helpers ipc_socket_path_state() / ipc_socket_path_clean().
 *
 * "Live" means a process holds a socket bound to the file: a stream connect
 * that succeeds, finds the backlog full (EAGAIN) or meets a socket of another
 * type (EPROTOTYPE: a datagram or seqpacket socket is bound there). Only
 * ECONNREFUSED proves nobody does. Anything else (EACCES...) proves nothing,
 * and nothing is removed on it.
 */
#include "ipc/socket/socket_path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "ipc/socket/socket_util.h"
#include "ipc/unix/unix.h"

/* ------------------------------------------------------------------- lock */

int ipc__sock_lock_take(const char *path)
{
    char id[17];
    int rc = ipc__path_id(path, id, NULL, 0); /* of the resolved location */
    if (rc < 0)
        return rc;
    return ipc__abstract_bind("ipc-sock-lock/", id, 0, -1);
}

/* --------------------------------------------------------------- liveness */

/* IPC_PATH_LIVE, IPC_PATH_STALE, or -errno when it cannot tell (-ENOENT:
 * nothing there). */
static int ipc__probe(const struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 ? 0 : errno;
    close(fd);
    switch (rc) {
    case 0:
    case EAGAIN:      /* a listener whose backlog is full */
    case EINPROGRESS: /* not on AF_UNIX today; live if it ever is */
    case EPROTOTYPE:  /* a datagram or seqpacket socket is bound there */
        return IPC_PATH_LIVE;
    case ECONNREFUSED:
        return IPC_PATH_STALE;
    default:
        return -rc;
    }
}

/* ------------------------------------------------------------ publication */

/* The directory of path open as O_PATH, and the address of a temporary name
 * in it (".ipc-<id>.tmp", one per location: under the lock it is ours). Via
 * /proc/self/fd when "<dir>/<name>" would not fit in sun_path. */
static int ipc__tmp_addr(const char *path, int *dirfd, char tmp[32], struct sockaddr_un *a)
{
    const char *base;
    char dir[PATH_MAX], id[17];
    int rc = ipc__path_split(path, dir, &base);
    if (rc < 0 || (rc = ipc__path_id(path, id, NULL, 0)) < 0)
        return rc;
    snprintf(tmp, 32, ".ipc-%s.tmp", id);
    *dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0)
        return -errno;
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, tmp);
    if (n < 0 || (size_t)n >= sizeof(a->sun_path))
        snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/%s", *dirfd, tmp);
    return 0;
}

/* Removes a temporary socket left by a server that died before publishing
 * it (we hold the location's lock: no live server uses the name). */
static int ipc__tmp_clear(int dirfd, const char *tmp)
{
    struct stat st;
    if (fstatat(dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST; /* not ours */
    return unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT ? -errno : 0;
}

/* Moves the listening temporary socket onto the path: a hard link where
 * nothing is (atomic, never replaces), a rename over a stale socket. */
static int ipc__move_onto(int dirfd, const char *tmp, const char *base,
                          const struct sockaddr_un *addr)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        if (linkat(dirfd, tmp, dirfd, base, 0) == 0) {
            (void)unlinkat(dirfd, tmp, 0);
            return 0;
        }
        if (errno != EEXIST)
            return -errno;
        struct stat st;
        if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue; /* removed meanwhile: link again */
            return -errno;
        }
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST; /* not ours to replace */
        int state = ipc__probe(addr);
        if (state == -ENOENT)
            continue;
        if (state == IPC_PATH_LIVE)
            return -EADDRINUSE;
        if (state < 0)
            return state; /* cannot tell: leave it alone */
        return renameat(dirfd, tmp, dirfd, base) < 0 ? -errno : 0;
    }
    return -EAGAIN; /* the path keeps changing under us */
}

int ipc__sock_publish(int fd, const struct sockaddr_un *addr, unsigned mode, int backlog,
                      struct stat *st)
{
    const char *base = strrchr(addr->sun_path, '/');
    base = base != NULL ? base + 1 : addr->sun_path;
    int dirfd;
    char tmp[32];
    struct sockaddr_un ta;
    int rc = ipc__tmp_addr(addr->sun_path, &dirfd, tmp, &ta);
    if (rc < 0)
        return rc;
    if ((rc = ipc__tmp_clear(dirfd, tmp)) < 0)
        goto out_dir;
    if (bind(fd, (struct sockaddr *)&ta, sizeof(ta)) < 0) {
        rc = -errno;
        goto out_dir;
    }
    /* Mode and listen before the path exists: nobody can connect early. */
    if (fchmodat(dirfd, tmp, mode, 0) < 0 || fstatat(dirfd, tmp, st, AT_SYMLINK_NOFOLLOW) < 0 ||
        listen(fd, backlog) < 0) {
        rc = -errno;
        goto out_tmp;
    }
    rc = ipc__move_onto(dirfd, tmp, base, addr);
    if (rc == 0)
        goto out_dir;
out_tmp:
    (void)ipc__tmp_clear(dirfd, tmp); /* the temporary name is ours alone */
out_dir:
    close(dirfd);
    return rc;
}

/* ------------------------------------------------------- operator helpers */

int ipc_socket_path_state(const char *path)
{
    struct sockaddr_un addr;
    struct stat st;
    if (path == NULL || !ipc__sockaddr_path(&addr, path))
        return -EINVAL;
    if (lstat(path, &st) < 0)
        return -errno;
    if (!S_ISSOCK(st.st_mode))
        return -ENOTSOCK;
    return ipc__probe(&addr);
}

int ipc_socket_path_clean(const char *path)
{
    struct sockaddr_un addr;
    if (path == NULL || !ipc__sockaddr_path(&addr, path))
        return -EINVAL;
    /* Holding the server lock, no server of ours can start here meanwhile. */
    int lock = ipc__sock_lock_take(path);
    if (lock < 0)
        return lock;
    int rc = ipc_socket_path_state(path);
    if (rc == IPC_PATH_LIVE)
        rc = -EADDRINUSE; /* a server without our lock: leave it alone */
    else if (rc == IPC_PATH_STALE)
        rc = unlink(path) < 0 ? -errno : 0;
    close(lock);
    return rc;
}
