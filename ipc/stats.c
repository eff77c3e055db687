/* The stats page a server publishes, and the client that fetches it. */
#include "ipc/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ipc/unix/unix.h"

/* ------------------------------------------------------------- publishing */

int ipc__stats_pub_init(ipc__stats_pub *p)
{
    memset(p, 0, sizeof(*p));
    p->memfd = -1;
    p->listen_fd = -1;
    void *m;
    if (ipc__memfd_create_sealed("ipc-stats", sizeof(ipc__stats_block), &p->memfd, &m) == 0) {
        p->block = m;
        return 0;
    }
    p->block = calloc(1, sizeof(ipc__stats_block));
    return p->block != NULL ? 0 : -ENOMEM;
}

/* Hands a read-only descriptor of the page to each caller that passes the
 * credential rule. */
static void *ipc__stats_serve(void *arg)
{
    ipc__stats_pub *p = arg;
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", p->memfd);
    for (;;) {
        int conn = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The caller waits in the backlog; do not spin meanwhile. */
                nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
                continue;
            }
            return NULL; /* shut down by ipc__stats_unpublish() */
        }
        int ro = -1;
        int32_t status = EACCES;
        if (ipc__peer_ok(conn) == 0) {
            ro = open(self, O_RDONLY | O_CLOEXEC);
            status = ro >= 0 ? 0 : errno;
        }
        (void)ipc__send_fds(conn, &status, sizeof(status), &ro, ro >= 0 ? 1 : 0, MSG_DONTWAIT);
        if (ro >= 0)
            close(ro);
        close(conn);
    }
}

int ipc__stats_publish(ipc__stats_pub *p, const char *transport, const char *name)
{
    ipc__stats_block *b = p->block;
    char addr_name[108];
    b->magic = IPC_STATS_MAGIC;
    b->version = IPC_STATS_VERSION;
    b->size = sizeof(*b);
    snprintf(b->transport, sizeof(b->transport), "%s", transport);
    b->pid = (int32_t)getpid();
    b->uid = (uint32_t)geteuid();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    b->started_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (strcmp(transport, "socket") == 0) {
        char id[17];
        if (ipc__path_id(name, id, b->name, sizeof(b->name)) < 0)
            snprintf(b->name, sizeof(b->name), "%s", name);
    } else {
        snprintf(b->name, sizeof(b->name), "%s", name);
    }
    if (p->memfd < 0 || ipc__stats_addr(transport, name, addr_name, sizeof(addr_name)) < 0)
        return 0; /* counters on the heap: nothing to hand out */
    int fd = ipc__abstract_bind("", addr_name, 0, 16);
    /* Anyone may bind a stats name first (docs/OPERATIONS.md): a squatter
     * must not keep a server from serving. A live server of that name is
     * found by the transport's own listen, which fails next. */
    if (fd == -EADDRINUSE)
        return 0;
    if (fd < 0)
        return fd;
    p->listen_fd = fd;
    int rc = ipc__thread_start_nosig(&p->thread, ipc__stats_serve, p);
    if (rc < 0) {
        ipc__close_fd(&p->listen_fd);
        return rc;
    }
    p->thread_running = true;
    return 0;
}

void ipc__stats_unpublish(ipc__stats_pub *p)
{
    if (p->listen_fd < 0)
        return;
    /* Wakes the accept() in the thread with an error, which ends it. */
    shutdown(p->listen_fd, SHUT_RDWR);
    if (p->thread_running)
        pthread_join(p->thread, NULL);
    p->thread_running = false;
    close(p->listen_fd);
    p->listen_fd = -1;
}

void ipc__stats_pub_free(ipc__stats_pub *p)
{
    ipc__stats_unpublish(p);
    if (p->memfd >= 0) {
        munmap(p->block, sizeof(ipc__stats_block));
        close(p->memfd);
    } else {
        free(p->block);
    }
    p->block = NULL;
    p->memfd = -1;
}

/* --------------------------------------------------------------- fetching */

/* Whoever listens on a stats name may be another user, stopped, or hostile:
 * every wait below is bounded by one deadline, the page is copied with
 * pread() (a short or shrinking file cannot fault us, as a mapping could),
 * and who published it comes from the kernel, not from the page. */

/* Pause between connects while a listener's backlog is full. */
#define IPC__STATS_RETRY_NS (5 * 1000 * 1000)

/* Connects to an abstract name: a connected fd, -ENOENT with no listener,
 * -ETIMEDOUT when its backlog stays full until the deadline. */
static int ipc__fetch_connect(const char *addr_name, uint64_t deadline)
{
    for (;;) {
        /* Non-blocking: a full backlog gives -EAGAIN at once instead of a
         * wait in the kernel without limit. */
        int conn = ipc__abstract_connect("", addr_name, SOCK_NONBLOCK);
        if (conn >= 0 || conn == -ECONNREFUSED)
            return conn == -ECONNREFUSED ? -ENOENT : conn;
        if (conn != -EAGAIN)
            return conn;
        if (ipc__now_ns() >= deadline)
            return -ETIMEDOUT;
        nanosleep(&(struct timespec){.tv_nsec = IPC__STATS_RETRY_NS}, NULL);
    }
}

/* Waits until fd is readable or the deadline passes: 0 or -ETIMEDOUT. */
static int ipc__fetch_wait_readable(int fd, uint64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, ipc__poll_ms(deadline));
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Receives the status word and, with status 0, one descriptor. */
static int ipc__recv_page_fd(int conn, uint64_t deadline)
{
    int32_t status = 0;
    int fd = -1, nfds;
    ssize_t n;
    do {
        int rc = ipc__fetch_wait_readable(conn, deadline);
        if (rc < 0)
            return rc;
        n = ipc__recv_fds(conn, &status, sizeof(status), &fd, 1, &nfds, MSG_DONTWAIT);
    } while (n == -EAGAIN);
    if (n < 0)
        return (int)n;
    if (n != (ssize_t)sizeof(status) || status != 0 || nfds != 1) {
        ipc__close_fds(&fd, nfds);
        return n == (ssize_t)sizeof(status) && status > 0 && status < 4096 ? -status : -EPROTO;
    }
    return fd;
}

/* A copy of the page behind fd, which must be a regular file on tmpfs (a
 * memfd) holding a whole page: anything else (a pipe, a device, a FUSE
 * file that could block) is -EPROTO before it is read. */
static int ipc__copy_page(int fd, ipc__stats_block *copy)
{
    struct stat st;
    struct statfs fs;
    if (fstat(fd, &st) < 0 || fstatfs(fd, &fs) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || fs.f_type != TMPFS_MAGIC || st.st_size < (off_t)sizeof(*copy))
        return -EPROTO;
    ssize_t n;
    while ((n = pread(fd, copy, sizeof(*copy), 0)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return -errno;
    return n == (ssize_t)sizeof(*copy) ? 0 : -EPROTO; /* shrunk meanwhile */
}

/* The copy's header is one this library wrote, for `transport` if given. */
static bool ipc__page_ok(const ipc__stats_block *b, const char *transport)
{
    if (b->magic != IPC_STATS_MAGIC || b->version != IPC_STATS_VERSION || b->size != sizeof(*b) ||
        b->transport[sizeof(b->transport) - 1] != '\0')
        return false;
    if (strcmp(b->transport, "socket") != 0 && strcmp(b->transport, "shm") != 0)
        return false;
    return transport == NULL || strcmp(b->transport, transport) == 0;
}

/* Validates a copy of the page, then fills the caller's structs. Identity
 * comes from the listener's credentials, which the kernel took at its
 * listen(), never from the page. */
static int ipc__read_page(int fd, const struct ucred *cr, const char *transport, ipc_stats *out,
                          ipc_server_info *info)
{
    ipc__stats_block *copy = malloc(sizeof(*copy));
    if (copy == NULL)
        return -ENOMEM;
    int rc = ipc__copy_page(fd, copy);
    if (rc == 0 && !ipc__page_ok(copy, transport))
        rc = -EPROTO;
    if (rc == 0 && out != NULL)
        ipc__stats_snapshot(copy, out);
    if (rc == 0 && info != NULL) {
        memset(info, 0, sizeof(*info));
        memcpy(info->transport, copy->transport, sizeof(info->transport) - 1);
        memcpy(info->name, copy->name, sizeof(info->name) - 1);
        info->pid = (int32_t)cr->pid;
        info->uid = (uint32_t)cr->uid;
        info->started_ns = copy->started_ns;
    }
    free(copy);
    return rc;
}

/* Reads the page behind an abstract name (without the leading NUL); with a
 * transport, the page must say it is that transport's. */
static int ipc__fetch_addr(const char *addr_name, const char *transport, ipc_stats *out,
                           ipc_server_info *info)
{
    uint64_t deadline = ipc__now_ns() + IPC_STATS_TIMEOUT_MS * 1000000ull;
    int conn = ipc__fetch_connect(addr_name, deadline);
    if (conn < 0)
        return conn;
    struct ucred cr;
    socklen_t crlen = sizeof(cr);
    int fd = getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0
                 ? -errno
                 : ipc__recv_page_fd(conn, deadline);
    close(conn);
    if (fd < 0)
        return fd;
    int rc = ipc__read_page(fd, &cr, transport, out, info);
    close(fd);
    return rc;
}

int ipc_stats_fetch(const char *transport, const char *name, ipc_stats *out,
                    ipc_server_info *info)
{
    if (transport == NULL || name == NULL || name[0] == '\0')
        return -EINVAL;
    char addr_name[108];
    int rc = ipc__stats_addr(transport, name, addr_name, sizeof(addr_name));
    if (rc < 0)
        return rc;
    return ipc__fetch_addr(addr_name, transport, out, info);
}

int ipc_stats_list(ipc_stats_visitor visit, void *arg)
{
    if (visit == NULL)
        return -EINVAL;
    /* Abstract names show in /proc/net/unix with '@' for the NUL. */
    FILE *f = fopen("/proc/net/unix", "re");
    if (f == NULL)
        return -errno;
    ipc_stats *st = malloc(sizeof(*st));
    if (st == NULL) {
        fclose(f);
        return -ENOMEM;
    }
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        char *at = strstr(line, " @ipc-stats/");
        unsigned flags = 0;
        /* Num RefCount Protocol Flags ...: only listeners (__SO_ACCEPTCON),
         * not the connections accepted from them, which share the name. */
        if (at == NULL || sscanf(line, "%*s %*s %*s %x", &flags) != 1 || !(flags & 0x10000))
            continue;
        at += 2;
        at[strcspn(at, "\n")] = '\0';
        ipc_server_info info;
        int rc = ipc__fetch_addr(at, NULL, st, &info);
        if (rc == -ENOENT)
            continue; /* gone meanwhile, or a connection line of the same name */
        visit(arg, rc, rc == 0 ? &info : NULL, rc == 0 ? st : NULL);
    }
    free(st);
    fclose(f);
    return 0;
}
