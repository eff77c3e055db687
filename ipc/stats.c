/* The stats page a server publishes, and the client that fetches it. */
#include "ipc/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

void ipc__stats_publish(ipc__stats_pub *p, const char *transport, const char *name)
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
        return;
    int fd = ipc__abstract_bind("", addr_name, 0, 16);
    if (fd < 0)
        return;
    p->listen_fd = fd;
    if (ipc__thread_start_nosig(&p->thread, ipc__stats_serve, p) < 0) {
        ipc__close_fd(&p->listen_fd);
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
    int fd = -1, nfds;
    ssize_t n = ipc__recv_fds(conn, &status, sizeof(status), &fd, 1, &nfds, 0);
    if (n < 0)
        return (int)n;
    if (n != (ssize_t)sizeof(status) || status != 0 || nfds != 1) {
        ipc__close_fds(&fd, nfds);
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
    int conn = ipc__abstract_connect("", addr_name, 0);
    if (conn < 0)
        return conn == -ECONNREFUSED ? -ENOENT : conn;
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
