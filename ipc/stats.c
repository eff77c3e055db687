/* Counters, histograms, and the stats page a server publishes. */
#include "ipc/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

_Static_assert(offsetof(ipc__stats_block, counter) == 256, "stats page ABI");
_Static_assert(offsetof(ipc__stats_block, latency) == 384, "stats page ABI");
_Static_assert(IPC__STAT_COUNT <= 16, "stats page ABI");

/* --------------------------------------------------------------- histogram */

/* Values below 8 ns have a bucket each; above, 8 buckets per power of two:
 * bucket = 8 * (msb - 2) + the 3 bits below the msb. */
unsigned ipc__hist_bucket(uint64_t ns)
{
    if (ns < 8)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    return 8u * (msb - 2u) + (unsigned)((ns >> (msb - 3u)) & 7u);
}

uint64_t ipc__hist_upper(unsigned bucket)
{
    if (bucket < 8)
        return bucket;
    unsigned msb = bucket / 8u + 2u, sub = bucket % 8u;
    uint64_t step = 1ull << (msb - 3u);
    uint64_t lower = (8ull + sub) * step;
    return lower + (step - 1); /* wraps to UINT64_MAX in the last bucket */
}

uint64_t ipc_stats_samples(const ipc_stats *st)
{
    uint64_t n = 0;
    for (unsigned i = 0; st != NULL && i < IPC_HISTOGRAM_BUCKETS; i++)
        n += st->latency[i];
    return n;
}

uint64_t ipc_stats_percentile(const ipc_stats *st, double q)
{
    uint64_t n = ipc_stats_samples(st);
    if (n == 0 || !(q >= 0.0))
        return 0;
    if (q > 1.0)
        q = 1.0;
    /* The smallest bucket whose cumulative count reaches ceil(q * n). */
    uint64_t rank = (uint64_t)(q * (double)n);
    if ((double)rank < q * (double)n)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < IPC_HISTOGRAM_BUCKETS; i++) {
        seen += st->latency[i];
        if (seen >= rank)
            return ipc__hist_upper(i);
    }
    return UINT64_MAX;
}

/* ---------------------------------------------------------------- counters */

void ipc__stat_error(ipc__stats_block *b, int err)
{
    switch (err) {
    case -ETIMEDOUT: ipc__stat_add(b, IPC__STAT_TIMEOUTS, 1); break;
    case -EMSGSIZE: ipc__stat_add(b, IPC__STAT_OVERSIZE, 1); break;
    case -ECONNRESET:
    case -EPIPE: ipc__stat_add(b, IPC__STAT_RESETS, 1); break;
    default: ipc__stat_add(b, IPC__STAT_OTHER_ERRORS, 1); break;
    }
}

static uint64_t ipc__load(const _Atomic uint64_t *p)
{
    /* Relaxed: each value is a monotonic count read on its own; a snapshot
     * is not promised to be consistent across counters. */
    return atomic_load_explicit(p, memory_order_relaxed);
}

void ipc__stats_snapshot(const ipc__stats_block *b, ipc_stats *out)
{
    const _Atomic uint64_t *c = b->counter;
    *out = (ipc_stats){
        .messages_in = ipc__load(&c[IPC__STAT_MESSAGES_IN]),
        .messages_out = ipc__load(&c[IPC__STAT_MESSAGES_OUT]),
        .bytes_in = ipc__load(&c[IPC__STAT_BYTES_IN]),
        .bytes_out = ipc__load(&c[IPC__STAT_BYTES_OUT]),
        .timeouts = ipc__load(&c[IPC__STAT_TIMEOUTS]),
        .oversize = ipc__load(&c[IPC__STAT_OVERSIZE]),
        .resets = ipc__load(&c[IPC__STAT_RESETS]),
        .other_errors = ipc__load(&c[IPC__STAT_OTHER_ERRORS]),
        .drops = ipc__load(&c[IPC__STAT_DROPS]),
        .connects = ipc__load(&c[IPC__STAT_CONNECTS]),
        .reconnects = ipc__load(&c[IPC__STAT_RECONNECTS]),
        .reclaims = ipc__load(&c[IPC__STAT_RECLAIMS]),
        .clients = ipc__load(&c[IPC__STAT_CLIENTS]),
    };
    for (unsigned i = 0; i < IPC_HISTOGRAM_BUCKETS; i++)
        out->latency[i] = ipc__load(&b->latency[i]);
}

/* ------------------------------------------------------------------ names */

int ipc__path_id(const char *path, char out[17], char *abs_out, size_t abs_cap)
{
    char abs[PATH_MAX + 1];
    const char *full = path;
    if (path[0] != '/') {
        size_t n = strlen(path);
        if (getcwd(abs, sizeof(abs) - n - 2) == NULL)
            return -errno;
        strcat(abs, "/");
        strcat(abs, path);
        full = abs;
    }
    uint64_t h = 1469598103934665603ull;
    for (const char *p = full; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    if (abs_out != NULL)
        snprintf(abs_out, abs_cap, "%s", full);
    return 0;
}

int ipc__stats_addr(const char *transport, const char *name, char *out, size_t cap)
{
    char id[17];
    if (strcmp(transport, "socket") == 0) {
        int rc = ipc__path_id(name, id, NULL, 0);
        if (rc < 0)
            return rc;
        name = id;
    } else if (strcmp(transport, "shm") != 0) {
        return -EINVAL;
    }
    int n = snprintf(out, cap, "ipc-stats/%s/%s", transport, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : n;
}

/* Fills an abstract address ("\0" + name); returns its length. */
static socklen_t ipc__abstract(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    size_t n = strlen(name);
    memcpy(a->sun_path + 1, name, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* ------------------------------------------------------------- publishing */

int ipc__stats_pub_init(ipc__stats_pub *p)
{
    memset(p, 0, sizeof(*p));
    p->memfd = -1;
    p->listen_fd = -1;
    int fd = memfd_create("ipc-stats", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, sizeof(ipc__stats_block)) == 0) {
        void *m = mmap(NULL, sizeof(ipc__stats_block), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) {
            p->block = m;
            p->memfd = fd;
            return 0;
        }
    }
    if (fd >= 0)
        close(fd);
    p->block = calloc(1, sizeof(ipc__stats_block));
    return p->block != NULL ? 0 : -ENOMEM;
}

/* Hands a read-only descriptor of the page to each same-user caller. */
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
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int ro = -1;
        int32_t status = EACCES;
        if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
            (cred.uid == getuid() || cred.uid == 0)) {
            ro = open(self, O_RDONLY | O_CLOEXEC);
            status = ro >= 0 ? 0 : errno;
        }
        char ctrl[CMSG_SPACE(sizeof(int))] = {0};
        struct iovec iov = {.iov_base = &status, .iov_len = sizeof(status)};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (ro >= 0) {
            m.msg_control = ctrl;
            m.msg_controllen = sizeof(ctrl);
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &ro, sizeof(int));
        }
        (void)sendmsg(conn, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (ro >= 0)
            close(ro);
        close(conn);
    }
}

void ipc__stats_publish(ipc__stats_pub *p, const char *transport, const char *name)
{
    ipc__stats_block *b = p->block;
    char addr_name[108];
    b->magic = IPC_STATS_MAGIC;
    b->version = IPC_STATS_VERSION;
    b->size = sizeof(*b);
    snprintf(b->transport, sizeof(b->transport), "%s", transport);
    b->pid = (int32_t)getpid();
    b->uid = (uint32_t)getuid();
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
        return;
    struct sockaddr_un a;
    socklen_t alen = ipc__abstract(&a, addr_name);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (bind(fd, (struct sockaddr *)&a, alen) < 0 || listen(fd, 16) < 0) {
        close(fd);
        return;
    }
    p->listen_fd = fd;
    if (pthread_create(&p->thread, NULL, ipc__stats_serve, p) != 0) {
        close(fd);
        p->listen_fd = -1;
        return;
    }
    p->thread_running = true;
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

/* Receives the status word and, with status 0, one descriptor. */
static int ipc__recv_page_fd(int conn)
{
    int32_t status = 0;
    char ctrl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &status, .iov_len = sizeof(status)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
                       .msg_controllen = sizeof(ctrl)};
    ssize_t n;
    do
        n = recvmsg(conn, &m, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    int fd = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(&fd, CMSG_DATA(c), sizeof(int));
    if (n != (ssize_t)sizeof(status) || status != 0 || fd < 0) {
        if (fd >= 0)
            close(fd);
        return n == (ssize_t)sizeof(status) && status > 0 ? -status : -EPROTO;
    }
    return fd;
}

/* Copies the page, then validates the copy's header before trusting it. */
static int ipc__read_page(int fd, ipc_stats *out, ipc_server_info *info)
{
    void *m = mmap(NULL, sizeof(ipc__stats_block), PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return -errno;
    ipc__stats_block *copy = malloc(sizeof(*copy));
    int rc = -ENOMEM;
    if (copy != NULL) {
        memcpy(copy, m, sizeof(*copy));
        rc = -EPROTO;
        if (copy->magic == IPC_STATS_MAGIC && copy->version == IPC_STATS_VERSION &&
            copy->size == sizeof(*copy)) {
            rc = 0;
            if (out != NULL)
                ipc__stats_snapshot(copy, out);
            if (info != NULL) {
                memset(info, 0, sizeof(*info));
                memcpy(info->transport, copy->transport, sizeof(info->transport) - 1);
                memcpy(info->name, copy->name, sizeof(info->name) - 1);
                info->pid = copy->pid;
                info->uid = copy->uid;
                info->started_ns = copy->started_ns;
            }
        }
        free(copy);
    }
    munmap(m, sizeof(ipc__stats_block));
    return rc;
}

/* Reads the page behind an abstract name (without the leading NUL). */
static int ipc__fetch_addr(const char *addr_name, ipc_stats *out, ipc_server_info *info)
{
    struct sockaddr_un a;
    socklen_t alen = ipc__abstract(&a, addr_name);
    int conn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (conn < 0)
        return -errno;
    if (connect(conn, (struct sockaddr *)&a, alen) < 0) {
        int rc = errno == ECONNREFUSED ? -ENOENT : -errno;
        close(conn);
        return rc;
    }
    int fd = ipc__recv_page_fd(conn);
    close(conn);
    if (fd < 0)
        return fd;
    int rc = ipc__read_page(fd, out, info);
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
    return ipc__fetch_addr(addr_name, out, info);
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
        int rc = ipc__fetch_addr(at, st, &info);
        if (rc == -ENOENT)
            continue; /* gone meanwhile, or a connection line of the same name */
        visit(arg, rc, rc == 0 ? &info : NULL, rc == 0 ? st : NULL);
    }
    free(st);
    fclose(f);
    return 0;
}
