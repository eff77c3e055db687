/*
 * Shared-memory transport (design in docs/SHM.md).
 *
 * Rendezvous: the server listens on the abstract Unix socket
 * "\0ipc-shm/<name>". For each accepted client it creates a sealed memfd
 * segment holding that client's request and response rings and passes it,
 * with the server-wide doorbell memfd, over SCM_RIGHTS. The socket then only
 * signals death: its hang-up tells either side the other one is gone.
 *
 * Data path: the client pushes into its request ring and rings the doorbell;
 * the server polls the request rings round robin (no syscalls) and sleeps on
 * the doorbell when idle. Replies go into the response ring; a reply that
 * does not fit is queued privately and flushed later, so a client that stops
 * reading never blocks the server.
 *
 * Admin: a watcher thread sleeps in epoll_wait on the listener and every
 * client socket; on an event it sets hints, admin_pending, and rings the
 * doorbell. Only the server's own thread changes the client table.
 */
#include "ipc/shm/shm_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/shm/fd_relay.h"
#include "ipc/shm/mpsc.h"
#include "ipc/shm/shm_layout.h"
#include "ipc/shm/shm_testing.h"
#include "ipc/shm/spsc_ring.h"
#include "ipc/shm/wait.h"

/* How long connect() waits for the server's hello. */
#define IPC__SHM_CONNECT_NS (10ull * 1000 * 1000 * 1000)
/* A client waiting for the server checks its socket this often, so a dead
 * server is noticed within this bound even with no timeout. */
#define IPC__SHM_CLIENT_SLICE_NS (50ull * 1000 * 1000)
#define IPC__SHM_CLIENT_SPIN_NS (50ull * 1000)
/* The server re-polls at least this often: bounds the delay if a client
 * scribbles over the shared doorbell, and retries a failed accept. */
#define IPC__SHM_SERVER_SLICE_NS (250ull * 1000 * 1000)
#define IPC__SHM_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
/* epoll tags besides slot indices. */
#define IPC__TAG_LISTEN (UINT64_MAX - 1)
#define IPC__TAG_STOP UINT64_MAX

/* ------------------------------------------------------------------ common */

static bool ipc__shm_name_ok(const char *name)
{
    size_t n = strnlen(name, IPC_SHM_NAME_MAX + 1);
    if (n == 0 || n > IPC_SHM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* The abstract address "\0ipc-shm/<name>" (no trailing NUL: abstract names
 * are length-delimited). */
static socklen_t ipc__shm_addr(const char *name, struct sockaddr_un *a)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "ipc-shm/%s", name);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Peers must run as our uid, or as root. */
static int ipc__shm_peer_ok(int fd, struct ucred *cr)
{
    socklen_t len = sizeof(*cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) < 0)
        return -errno;
    return cr->uid == geteuid() || cr->uid == 0 ? 0 : -EACCES;
}

/* true once the peer hung up (or sent anything: after the hello the
 * socket carries nothing, so bytes are a protocol violation too). */
static bool ipc__shm_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int n;
    while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
        ;
    return n != 0;
}

static void ipc__close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A sealed, fully allocated memfd: no SIGBUS later, -ENOSPC/-ENOMEM now. */
static int ipc__shm_memfd(const char *tag, size_t size, int *out)
{
    int fd = memfd_create(tag, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (ftruncate(fd, (off_t)size) < 0) {
        rc = -errno;
        goto err_close;
    }
    rc = -posix_fallocate(fd, 0, (off_t)size);
    if (rc < 0)
        goto err_close;
    *out = fd;
    return 0;
err_close:
    close(fd);
    return rc;
}

static int ipc__shm_seal(int fd)
{
    return fcntl(fd, F_ADD_SEALS, IPC__SHM_SEALS) < 0 ? -errno : 0;
}

static bool ipc__shm_sealed(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW);
}

/* ------------------------------------------------------------------ server */

typedef struct ipc__shm_out {
    struct ipc__shm_out *next;
    size_t len;
    unsigned char data[];
} ipc__shm_out;

typedef struct ipc__shm_slot {
    int fd; /* rendezvous socket; -1 when the slot is free */
    uint8_t *seg;
    size_t seg_size;
    ipc__shm_seg_header *hdr;
    ipc_spsc_ring req;  /* we consume */
    ipc_spsc_ring resp; /* we produce */
    ipc__shm_out *out_head, *out_tail; /* replies that did not fit */
    size_t out_bytes;
    bool peeked;        /* a request is lent to the application */
    bool doomed;        /* dropped while lent: finish at release */
    uint32_t peeked_len;
    bool loaned;        /* a reply is being written in place */
    bool wake_owed;     /* a reply went out unannounced: wake at release */
} ipc__shm_slot;

typedef struct ipc__shm_server {
    ipc_server base;
    char name[IPC_SHM_NAME_MAX + 1];
    size_t max_clients;
    ipc__shm_slot *slots;
    ipc_spsc_ring **views;  /* mpsc table: &slots[i].req or NULL */
    _Atomic uint8_t *hints; /* watcher -> main: slot i had a socket event */
    struct pollfd *pfds;    /* sweep scratch */
    ipc_mpsc mpsc;
    size_t n_clients;
    size_t n_out; /* slots with queued replies */
    int listen_fd, epoll_fd, stop_fd;
    int bell_fd;                    /* kept for every hello; lives until destroy */
    _Atomic(ipc__shm_bell *) bell;  /* read by wake(), maybe from a signal handler */
    pthread_t watcher;
    bool watcher_running;
    bool accept_retry; /* accept failed for lack of fds or memory: retry */
    _Atomic uint32_t admin_pending;
    _Atomic uint32_t accept_pending;
    ipc__fd_relay relay; /* running once ipc_server_fd() was asked for */
} ipc__shm_server;

static ipc_waitpoint *ipc__srv_bell(ipc__shm_server *s)
{
    return &atomic_load_explicit(&s->bell, memory_order_acquire)->bell;
}

static ipc__shm_slot *ipc__srv_slot(ipc__shm_server *s, int id)
{
    if (id < 0 || (size_t)id >= s->max_clients || s->slots[id].fd < 0)
        return NULL;
    return &s->slots[id];
}

static void ipc__srv_free_out(ipc__shm_server *s, ipc__shm_slot *sl)
{
    if (sl->out_head != NULL)
        s->n_out--;
    while (sl->out_head != NULL) {
        ipc__shm_out *o = sl->out_head;
        sl->out_head = o->next;
        free(o);
    }
    sl->out_tail = NULL;
    sl->out_bytes = 0;
}

/* Drops a client: its half-written frames go with the segment. */
static void ipc__srv_drop(ipc__shm_server *s, int id)
{
    ipc__shm_slot *sl = &s->slots[id];
    s->views[id] = NULL;
    if (sl->peeked) {
        /* The application still reads a request in this segment: unmap
         * once it releases it (ipc__srv_release), and serve no more. */
        sl->doomed = true;
        return;
    }
    /* Tell a client still alive (dropped for misbehaving, or server close)
     * at once rather than at its next socket check. */
    atomic_store_explicit(&sl->hdr->server_closed, 1, memory_order_release);
    ipc_wait_notify(&sl->resp.shared->data);
    ipc_wait_notify(&sl->req.shared->space);
    (void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, sl->fd, NULL);
    ipc__close_fd(&sl->fd);
    munmap(sl->seg, sl->seg_size);
    ipc__srv_free_out(s, sl);
    *sl = (ipc__shm_slot){.fd = -1};
    s->n_clients--;
    ipc__stat_add(s->base.stats.block, IPC__STAT_CLIENTS, (uint64_t)-1);
    ipc__stat_add(s->base.stats.block, IPC__STAT_RECLAIMS, 1);
}

/* Drops a client for breaking the protocol (a corrupt ring, a reply queue
 * over its bound): counted as a drop. */
static void ipc__srv_kick(ipc__shm_server *s, int id)
{
    ipc__stat_add(s->base.stats.block, IPC__STAT_DROPS, 1);
    ipc__srv_drop(s, id);
}

static int ipc__srv_send_hello(int fd, uint32_t status, uint32_t id, int seg_fd, int bell_fd)
{
    ipc__shm_hello h = {.magic = IPC_SHM_HELLO_MAGIC, .version = IPC_SHM_VERSION,
                        .status = status, .client_id = id};
    struct iovec iov = {.iov_base = &h, .iov_len = sizeof(h)};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (seg_fd >= 0) {
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.buf;
        msg.msg_controllen = sizeof(u.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(2 * sizeof(int));
        int fds[2] = {seg_fd, bell_fd};
        memcpy(CMSG_DATA(c), fds, sizeof(fds));
    }
    ssize_t n;
    while ((n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return -errno;
    return n == (ssize_t)sizeof(h) ? 0 : -EIO;
}

/* Writes the segment header and formats both rings; ready goes last. */
static void ipc__srv_format(ipc__shm_server *s, ipc__shm_slot *sl, int id)
{
    uint64_t ring = s->base.options.ring_size;
    ipc__shm_seg_header *h = sl->hdr;
    h->magic = IPC_SHM_SEG_MAGIC;
    h->version = IPC_SHM_VERSION;
    h->header_size = IPC_SHM_HEADER_SIZE;
    h->ring_size = ring;
    h->segment_size = sl->seg_size;
    h->req_offset = ipc__shm_req_offset();
    h->resp_offset = ipc__shm_resp_offset(ring);
    h->max_clients = (uint32_t)s->max_clients;
    h->client_id = (uint32_t)id;
    h->creator_pid = (uint32_t)getpid();
    h->creator_uid = (uint32_t)geteuid();
    ipc_spsc_format((ipc_spsc_shared *)(sl->seg + h->req_offset), ring);
    ipc_spsc_format((ipc_spsc_shared *)(sl->seg + h->resp_offset), ring);
    /* Release: publishes the header and ring formats above. */
    atomic_store_explicit(&h->ready, 1, memory_order_release);
}

static int ipc__srv_attach(ipc__shm_server *s, ipc__shm_slot *sl)
{
    uint64_t ring = s->base.options.ring_size;
    uint8_t *req = sl->seg + ipc__shm_req_offset();
    uint8_t *resp = sl->seg + ipc__shm_resp_offset(ring);
    int rc = ipc_spsc_attach(&sl->req, (ipc_spsc_shared *)req, req + IPC_SHM_RING_CTRL_SIZE,
                             ring, IPC_SPSC_CONSUMER);
    if (rc == 0)
        rc = ipc_spsc_attach(&sl->resp, (ipc_spsc_shared *)resp,
                             resp + IPC_SHM_RING_CTRL_SIZE, ring, IPC_SPSC_PRODUCER);
    return rc;
}

/* Creates, maps, formats and seals the segment for slot id, registers fd
 * with the watcher and sends the hello. */
static int ipc__srv_open_slot(ipc__shm_server *s, int id, int fd)
{
    ipc__shm_slot *sl = &s->slots[id];
    size_t size = ipc__shm_segment_size(s->base.options.ring_size);
    int seg_fd, rc = ipc__shm_memfd("ipc-shm", size, &seg_fd);
    if (rc < 0)
        return rc;
    void *seg = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, seg_fd, 0);
    if (seg == MAP_FAILED) {
        rc = -errno;
        goto err_memfd;
    }
    *sl = (ipc__shm_slot){.fd = -1, .seg = seg, .seg_size = size, .hdr = seg};
    ipc__srv_format(s, sl, id);
    if ((rc = ipc__shm_seal(seg_fd)) < 0 || (rc = ipc__srv_attach(s, sl)) < 0)
        goto err_unmap;
    atomic_store_explicit(&s->hints[id], 0, memory_order_relaxed);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u64 = (uint64_t)id};
    if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        rc = -errno;
        goto err_unmap;
    }
    if ((rc = ipc__srv_send_hello(fd, 0, (uint32_t)id, seg_fd, s->bell_fd)) < 0)
        goto err_epoll;
    close(seg_fd); /* the mapping keeps the memory; the client has its own fd */
    sl->fd = fd;
    s->views[id] = &sl->req;
    s->n_clients++;
    ipc__stat_add(s->base.stats.block, IPC__STAT_CONNECTS, 1);
    ipc__stat_add(s->base.stats.block, IPC__STAT_CLIENTS, 1);
    return 0;
err_epoll:
    (void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
err_unmap:
    munmap(seg, size);
    *sl = (ipc__shm_slot){.fd = -1};
err_memfd:
    close(seg_fd);
    return rc;
}

static int ipc__srv_free_slot(ipc__shm_server *s)
{
    if (s->n_clients == s->max_clients)
        return -1;
    for (size_t i = 0; i < s->max_clients; i++)
        if (s->slots[i].fd < 0)
            return (int)i;
    return -1;
}

/* Reclaims every client whose socket hung up: one poll() for all. */
static void ipc__srv_sweep(ipc__shm_server *s)
{
    nfds_t n = 0;
    for (size_t i = 0; i < s->max_clients; i++)
        if (s->slots[i].fd >= 0)
            s->pfds[n++] = (struct pollfd){.fd = s->slots[i].fd, .events = POLLIN | POLLRDHUP};
    if (n == 0 || poll(s->pfds, n, 0) <= 0)
        return;
    for (nfds_t k = 0; k < n; k++) {
        if (s->pfds[k].revents == 0)
            continue;
        for (size_t i = 0; i < s->max_clients; i++)
            if (s->slots[i].fd == s->pfds[k].fd) {
                ipc__srv_drop(s, (int)i);
                break;
            }
    }
}

static void ipc__srv_accept_one(ipc__shm_server *s, int fd)
{
    struct ucred cr;
    int rc = ipc__shm_peer_ok(fd, &cr);
    if (rc < 0) {
        (void)ipc__srv_send_hello(fd, (uint32_t)-rc, UINT32_MAX, -1, -1);
        close(fd);
        return;
    }
    int id = ipc__srv_free_slot(s);
    if (id < 0) {
        /* "A closed client's slot is free again at once": its hang-up may
         * not have reached us through the watcher yet. */
        ipc__srv_sweep(s);
        id = ipc__srv_free_slot(s);
    }
    rc = id < 0 ? -EAGAIN : ipc__srv_open_slot(s, id, fd);
    if (rc < 0) {
        (void)ipc__srv_send_hello(fd, (uint32_t)-rc, UINT32_MAX, -1, -1);
        close(fd);
    }
}

static void ipc__srv_accept_all(ipc__shm_server *s)
{
    s->accept_retry = false;
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            ipc__srv_accept_one(s, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        /* EMFILE, ENOMEM...: the edge is consumed, so retry on a timer. */
        s->accept_retry = errno != EAGAIN && errno != EWOULDBLOCK;
        return;
    }
}

/* Table changes requested by the watcher; main thread only. */
static void ipc__srv_admin(ipc__shm_server *s)
{
    /* Relaxed first look: the hot path then pays no locked instruction.
     * Acquire on the exchange pairs with the watcher's release store and
     * publishes its hints. */
    if ((atomic_load_explicit(&s->admin_pending, memory_order_relaxed) == 0 ||
         atomic_exchange_explicit(&s->admin_pending, 0, memory_order_acquire) == 0) &&
        !s->accept_retry)
        return;
    for (size_t i = 0; i < s->max_clients; i++) {
        /* Relaxed: ordered by the admin_pending acquire above. A hint is
         * only a hint (the slot may have been reused); the poll decides. */
        if (atomic_exchange_explicit(&s->hints[i], 0, memory_order_relaxed) &&
            s->slots[i].fd >= 0 && ipc__shm_hung_up(s->slots[i].fd))
            ipc__srv_drop(s, (int)i);
    }
    if (atomic_exchange_explicit(&s->accept_pending, 0, memory_order_relaxed) || s->accept_retry)
        ipc__srv_accept_all(s);
}

static void *ipc__srv_watch(void *arg)
{
    ipc__shm_server *s = arg;
    struct epoll_event ev[32];
    for (;;) {
        int n = epoll_wait(s->epoll_fd, ev, 32, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = ev[i].data.u64;
            if (tag == IPC__TAG_STOP)
                return NULL;
            /* Relaxed: published by the admin_pending release below. */
            if (tag == IPC__TAG_LISTEN)
                atomic_store_explicit(&s->accept_pending, 1, memory_order_relaxed);
            else if (tag < s->max_clients)
                atomic_store_explicit(&s->hints[tag], 1, memory_order_relaxed);
        }
        /* Release: publishes the hints above to ipc__srv_admin(). */
        atomic_store_explicit(&s->admin_pending, 1, memory_order_release);
        ipc_mpsc_ring_bell(ipc__srv_bell(s));
    }
}

/* Pushes queued replies of one slot; <0 when its ring is corrupt. */
static int ipc__srv_flush_slot(ipc__shm_server *s, ipc__shm_slot *sl)
{
    while (sl->out_head != NULL) {
        ipc__shm_out *o = sl->out_head;
        int rc = ipc_spsc_push(&sl->resp, o->data, o->len);
        if (rc <= 0)
            return rc;
        sl->out_head = o->next;
        sl->out_bytes -= o->len;
        free(o);
    }
    sl->out_tail = NULL;
    s->n_out--;
    /* Relaxed: a client seeing a stale 1 only rings the doorbell once too
     * often; the flag guards no data. */
    atomic_store_explicit(&sl->hdr->want_space, 0, memory_order_relaxed);
    return 0;
}

static void ipc__srv_flush_all(ipc__shm_server *s)
{
    for (size_t i = 0; i < s->max_clients && s->n_out != 0; i++)
        if (s->slots[i].fd >= 0 && s->slots[i].out_head != NULL &&
            ipc__srv_flush_slot(s, &s->slots[i]) < 0)
            ipc__srv_kick(s, (int)i);
}

/* true when some queued reply can move now (or its ring is corrupt). */
static bool ipc__srv_flushable(ipc__shm_server *s)
{
    for (size_t i = 0; i < s->max_clients && s->n_out != 0; i++) {
        ipc__shm_slot *sl = &s->slots[i];
        if (sl->fd >= 0 && sl->out_head != NULL &&
            ipc_spsc_writable(&sl->resp, sl->out_head->len) != 0)
            return true;
    }
    return false;
}

static bool ipc__srv_stop_seen(ipc__shm_server *s)
{
    /* Acquire: pairs with the release store in ipc_server_stop(). */
    return atomic_load_explicit(&s->base.stop_requested, memory_order_acquire) != 0;
}

/* Why the server must leave its doorbell wait, besides a request. */
static bool ipc__srv_interrupt(void *arg)
{
    ipc__shm_server *s = arg;
    /* Relaxed admin_pending: only a reason to wake; ipc__srv_admin()'s
     * acquire exchange is what orders the watcher's hints. */
    return ipc__srv_stop_seen(s) ||
           atomic_load_explicit(&s->admin_pending, memory_order_relaxed) != 0 ||
           (s->n_out != 0 && ipc__srv_flushable(s));
}

/* Confirms that ring id has a valid frame; drops the client if corrupt. */
static bool ipc__srv_frame_ready(ipc__shm_server *s, int id)
{
    const void *p;
    uint32_t n;
    int rc = ipc_spsc_peek(&s->slots[id].req, &p, &n);
    if (rc < 0)
        ipc__srv_kick(s, id);
    return rc == 1;
}

static uint64_t ipc__min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static int ipc__srv_wait_for_data(ipc_server *base, uint64_t deadline)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    for (;;) {
        if (ipc__srv_stop_seen(s))
            return -ECANCELED;
        /* Read before the look below: see fd_relay.h. */
        uint32_t seen = s->relay.running ? ipc__relay_seq(&s->relay) : 0;
        ipc__srv_admin(s);
        if (s->n_out != 0)
            ipc__srv_flush_all(s);
        int id = ipc_mpsc_poll(&s->mpsc);
        if (id >= 0) {
            if (ipc__srv_frame_ready(s, id))
                return id;
            continue;
        }
        if (s->relay.running && ipc_wait_now_ns() >= deadline) {
            /* An event loop polls our fd: make it readable on the next bell. */
            ipc__relay_drain(&s->relay);
            ipc__relay_arm(&s->relay, seen);
            return -ETIMEDOUT;
        }
        /* A passed deadline still gets one look in ipc_mpsc_wait(). */
        uint64_t slice_ns = IPC__SHM_SERVER_SLICE_NS / (s->accept_retry ? 4 : 1);
        uint64_t slice = ipc__min_u64(deadline, ipc_wait_now_ns() + slice_ns);
        id = ipc_mpsc_wait(&s->mpsc, ipc__srv_interrupt, s, s->base.options.spin_ns, slice);
        if (id >= 0 && ipc__srv_frame_ready(s, id))
            return id;
        if (id == -ETIMEDOUT && slice == deadline)
            return -ETIMEDOUT;
    }
}

static ssize_t ipc__srv_recv(ipc_server *base, int client_id, void *buf, size_t max_len)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ENOENT;
    const void *p;
    uint32_t n;
    int rc = ipc_spsc_peek(&sl->req, &p, &n);
    if (rc == 0)
        return -EAGAIN;
    if (rc < 0) {
        ipc__srv_kick(s, client_id);
        return rc;
    }
    if (n > max_len) {
        ipc_spsc_release(&sl->req);
        return -EMSGSIZE;
    }
    if (n != 0)
        memcpy(buf, p, n);
    ipc_spsc_release(&sl->req); /* also wakes a client waiting for space */
    return (ssize_t)n;
}

/* Queues a reply that does not fit the ring now. */
static int ipc__srv_queue(ipc__shm_server *s, int id, const void *data, size_t len)
{
    ipc__shm_slot *sl = &s->slots[id];
    if (sl->out_bytes + len > ipc__pending_limit(&s->base)) {
        ipc__srv_kick(s, id);
        return -ENOBUFS;
    }
    ipc__shm_out *o = malloc(sizeof(*o) + len);
    if (o == NULL)
        return -ENOMEM;
    o->next = NULL;
    o->len = len;
    if (len != 0)
        memcpy(o->data, data, len);
    if (sl->out_tail != NULL) {
        sl->out_tail->next = o;
        sl->out_tail = o;
        sl->out_bytes += len;
        return 0;
    }
    sl->out_head = sl->out_tail = o;
    sl->out_bytes = len;
    s->n_out++;
    /* Dekker with the client's recv: it stores head, fences (inside
     * ipc_wait_notify) and reads want_space; we store want_space, fence and
     * re-read head in the flush below. One of us sees the other: either the
     * flush succeeds or the client rings the doorbell. */
    atomic_store_explicit(&sl->hdr->want_space, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (ipc__srv_flush_slot(s, sl) < 0) {
        ipc__srv_kick(s, id);
        return -ECONNRESET;
    }
    return 0;
}

static int ipc__srv_send(ipc_server *base, int client_id, const void *data, size_t len)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ENOENT;
    if (len > ipc_spsc_max_payload(s->base.options.ring_size))
        return -EMSGSIZE;
    if (sl->out_head == NULL) { /* keep order: nothing may overtake the queue */
        int rc = ipc_spsc_push(&sl->resp, data, len);
        if (rc == 1)
            return 0;
        if (rc < 0) {
            ipc__srv_kick(s, client_id);
            return -ECONNRESET;
        }
    }
    return ipc__srv_queue(s, client_id, data, len);
}

static bool ipc__srv_flush_ready(void *arg)
{
    ipc__shm_server *s = arg;
    /* Relaxed: a reason to wake, as in ipc__srv_interrupt(). */
    return atomic_load_explicit(&s->admin_pending, memory_order_relaxed) != 0 ||
           ipc__srv_flushable(s);
}

static int ipc__srv_flush(ipc_server *base, uint64_t deadline)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    for (;;) {
        ipc__srv_admin(s); /* a client that died need not be waited for */
        ipc__srv_flush_all(s);
        if (s->n_out == 0)
            return 0;
        uint64_t now = ipc_wait_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t slice = ipc__min_u64(deadline, now + IPC__SHM_SERVER_SLICE_NS);
        (void)ipc_wait_until(ipc__srv_bell(s), ipc__srv_flush_ready, s, s->base.options.spin_ns,
                             slice);
    }
}

static void ipc__srv_wake(ipc_server *base)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    /* Async-signal-safe: an atomic load, a fence, an atomic add, a futex. */
    ipc__shm_bell *b = atomic_load_explicit(&s->bell, memory_order_acquire);
    if (b != NULL)
        ipc_wait_notify(&b->bell);
}

/* The doorbell outlives close() so that wake() never touches freed memory. */
static int ipc__srv_make_bell(ipc__shm_server *s)
{
    if (atomic_load_explicit(&s->bell, memory_order_relaxed) != NULL)
        return 0;
    int fd, rc = ipc__shm_memfd("ipc-shm-bell", IPC_SHM_BELL_SIZE, &fd);
    if (rc < 0)
        return rc;
    ipc__shm_bell *b = mmap(NULL, IPC_SHM_BELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (b == MAP_FAILED) {
        rc = -errno;
        goto err_close;
    }
    b->magic = IPC_SHM_BELL_MAGIC;
    b->version = IPC_SHM_VERSION;
    ipc_waitpoint_init(&b->bell);
    if ((rc = ipc__shm_seal(fd)) < 0)
        goto err_unmap;
    s->bell_fd = fd;
    atomic_store_explicit(&s->bell, b, memory_order_release);
    return 0;
err_unmap:
    munmap(b, IPC_SHM_BELL_SIZE);
err_close:
    close(fd);
    return rc;
}

static int ipc__srv_bind(ipc__shm_server *s)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un a;
    socklen_t len = ipc__shm_addr(s->name, &a);
    /* Abstract names die with their owner: a live server makes this fail
     * with EADDRINUSE and is left alone; a crashed one left nothing. */
    if (bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, SOMAXCONN) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    s->listen_fd = fd;
    return 0;
}

static int ipc__srv_epoll_add(int ep, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* The watcher takes no signals: they belong to the application's threads. */
static int ipc__srv_start_watcher(ipc__shm_server *s)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = -pthread_create(&s->watcher, NULL, ipc__srv_watch, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    s->watcher_running = rc == 0;
    return rc;
}

static void ipc__srv_stop_watcher(ipc__shm_server *s)
{
    if (!s->watcher_running)
        return;
    uint64_t one = 1;
    while (write(s->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
    pthread_join(s->watcher, NULL);
    s->watcher_running = false;
}

static int ipc__srv_listen(ipc_server *base)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    int rc = ipc__srv_make_bell(s);
    if (rc < 0)
        return rc;
    if ((rc = ipc__srv_bind(s)) < 0)
        return rc;
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epoll_fd < 0) {
        rc = -errno;
        goto err_listen;
    }
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->stop_fd < 0) {
        rc = -errno;
        goto err_epoll;
    }
    if ((rc = ipc__srv_epoll_add(s->epoll_fd, s->listen_fd, EPOLLIN | EPOLLET,
                                 IPC__TAG_LISTEN)) < 0 ||
        (rc = ipc__srv_epoll_add(s->epoll_fd, s->stop_fd, EPOLLIN, IPC__TAG_STOP)) < 0)
        goto err_stop;
    atomic_store_explicit(&s->admin_pending, 0, memory_order_relaxed);
    atomic_store_explicit(&s->accept_pending, 0, memory_order_relaxed);
    s->accept_retry = false;
    ipc_mpsc_init(&s->mpsc, s->views, s->max_clients, ipc__srv_bell(s));
    if ((rc = ipc__srv_start_watcher(s)) < 0)
        goto err_stop;
    return 0;
err_stop:
    ipc__close_fd(&s->stop_fd);
err_epoll:
    ipc__close_fd(&s->epoll_fd);
err_listen:
    ipc__close_fd(&s->listen_fd);
    return rc;
}

static void ipc__srv_close(ipc_server *base)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    ipc__relay_stop(&s->relay);
    ipc__srv_stop_watcher(s);
    for (size_t i = 0; i < s->max_clients; i++) {
        s->slots[i].peeked = false; /* nothing may be lent past close */
        if (s->slots[i].fd >= 0)
            ipc__srv_drop(s, (int)i);
    }
    ipc__close_fd(&s->stop_fd);
    ipc__close_fd(&s->epoll_fd);
    ipc__close_fd(&s->listen_fd); /* the abstract name vanishes here */
    for (size_t i = 0; i < s->max_clients; i++)
        atomic_store_explicit(&s->hints[i], 0, memory_order_relaxed);
}

static void ipc__srv_destroy(ipc_server *base)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    ipc__shm_bell *b = atomic_load_explicit(&s->bell, memory_order_relaxed);
    if (b != NULL)
        munmap(b, IPC_SHM_BELL_SIZE);
    ipc__close_fd(&s->bell_fd);
    free(s->pfds);
    free((void *)s->hints);
    free(s->views);
    free(s->slots);
    free(s);
}

static ssize_t ipc__srv_peek(ipc_server *base, int client_id, const void **msg)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ENOENT;
    uint32_t n;
    int rc = ipc_spsc_peek(&sl->req, msg, &n);
    if (rc == 0)
        return -EAGAIN;
    if (rc < 0) {
        ipc__srv_kick(s, client_id);
        return rc;
    }
    sl->peeked = true;
    sl->peeked_len = n;
    return (ssize_t)n;
}

static ssize_t ipc__srv_release(ipc_server *base, int client_id)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ENOENT;
    if (!sl->peeked)
        return -EINVAL;
    sl->peeked = false;
    if (sl->doomed) {
        ipc__srv_drop(s, client_id); /* wakes the client itself */
        return -ECONNRESET;
    }
    if (sl->wake_owed) {
        /* One fence for the reply's [T] and the request's [H]. */
        sl->wake_owed = false;
        ipc_spsc_release_nowake(&sl->req);
        ipc_wait_notify_pair(&sl->resp.shared->data, &sl->req.shared->space);
    } else {
        ipc_spsc_release(&sl->req); /* also wakes a client waiting for space */
    }
    return (ssize_t)sl->peeked_len;
}

/* Space in the client's response ring itself; -EAGAIN when it has none now
 * or earlier replies wait in the queue (they go first). */
static int ipc__srv_loan(ipc_server *base, int client_id, size_t len, void **buf)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ENOENT;
    if (sl->out_head != NULL)
        return -EAGAIN;
    int rc = ipc_spsc_claim(&sl->resp, len, buf);
    if (rc == 1) {
        sl->loaned = true;
        return 0;
    }
    if (rc == 0)
        return -EAGAIN;
    if (rc == -EPROTO) {
        ipc__srv_kick(s, client_id);
        return -ECONNRESET;
    }
    return rc;
}

static int ipc__srv_commit(ipc_server *base, int client_id, size_t len)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ECONNRESET; /* dropped while the reply was written */
    if (!sl->loaned)
        return -EINVAL;
    sl->loaned = false;
    if (base->reply_before_release && sl->peeked) {
        ipc_spsc_publish_nowake(&sl->resp, len);
        sl->wake_owed = true; /* the run loop's release comes next */
    } else {
        ipc_spsc_publish(&sl->resp, len); /* also wakes the client */
    }
    return 0;
}

static int ipc__srv_fd(ipc_server *base)
{
    ipc__shm_server *s = (ipc__shm_server *)base;
    if (!s->relay.running) {
        int rc = ipc__relay_start(&s->relay, ipc__srv_bell(s));
        if (rc < 0)
            return rc;
        ipc__relay_signal_now(&s->relay); /* work may already be waiting */
    }
    return s->relay.efd;
}

static const ipc_server_ops ipc__shm_server_ops = {
    .name = "shm",
    .listen = ipc__srv_listen,
    .wait_for_data = ipc__srv_wait_for_data,
    .recv = ipc__srv_recv,
    .send = ipc__srv_send,
    .flush = ipc__srv_flush,
    .wake = ipc__srv_wake,
    .close = ipc__srv_close,
    .destroy = ipc__srv_destroy,
    .fd = ipc__srv_fd,
    .peek = ipc__srv_peek,
    .release = ipc__srv_release,
    .loan = ipc__srv_loan,
    .commit = ipc__srv_commit,
};

ipc_server *ipc__shm_server_create(const char *name, size_t max_clients,
                                   const ipc_server_options *resolved)
{
    if (name == NULL || !ipc__shm_name_ok(name) || max_clients == 0 ||
        max_clients > IPC_SHM_MAX_CLIENTS || resolved == NULL ||
        !ipc_spsc_capacity_ok(resolved->ring_size))
        return NULL;
    ipc__shm_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->slots = calloc(max_clients, sizeof(*s->slots));
    s->views = calloc(max_clients, sizeof(*s->views));
    s->hints = calloc(max_clients, sizeof(*s->hints));
    s->pfds = calloc(max_clients, sizeof(*s->pfds));
    if (s->slots == NULL || s->views == NULL || s->hints == NULL || s->pfds == NULL) {
        free(s->pfds);
        free((void *)s->hints);
        free(s->views);
        free(s->slots);
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < max_clients; i++)
        s->slots[i].fd = -1;
    s->base.ops = &ipc__shm_server_ops;
    s->base.options = *resolved;
    atomic_init(&s->base.stop_requested, 0);
    memcpy(s->name, name, strlen(name) + 1);
    s->max_clients = max_clients;
    s->listen_fd = s->epoll_fd = s->stop_fd = s->bell_fd = -1;
    atomic_init(&s->bell, NULL);
    return &s->base;
}

/* ------------------------------------------------------------------ client */

typedef struct ipc__shm_client {
    ipc_client base;
    char name[IPC_SHM_NAME_MAX + 1];
    size_t max_clients;
    int fd;
    uint8_t *seg;
    size_t seg_size;
    ipc__shm_seg_header *hdr;
    ipc__shm_bell *bell;
    ipc_spsc_ring req;  /* we produce */
    ipc_spsc_ring resp; /* we consume */
    size_t max_payload;
    bool dead; /* the server is gone */
    bool loaned;  /* a request is being written in place */
    bool peeked;  /* a reply is lent to the application */
    uint32_t peeked_len;
    ipc__fd_relay relay; /* running once ipc_client_fd() was asked for */
    int epoll_fd;        /* relay eventfd + rendezvous socket, for ipc_client_fd */
} ipc__shm_client;

static const ipc_client_ops ipc__shm_client_ops;

static void ipc__cli_unmap(ipc__shm_client *c)
{
    if (c->bell != NULL)
        munmap(c->bell, IPC_SHM_BELL_SIZE);
    if (c->seg != NULL)
        munmap(c->seg, c->seg_size);
    c->bell = NULL;
    c->seg = NULL;
    c->hdr = NULL;
}

/* Takes the SCM_RIGHTS fds out of msg; -EPROTO unless exactly want. */
static int ipc__cli_take_fds(struct msghdr *msg, int *fds, int want)
{
    int n = 0, rc = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (n < want)
                fds[n++] = fd;
            else {
                close(fd);
                rc = -EPROTO;
            }
        }
    }
    if (rc == 0 && n == want && !(msg->msg_flags & MSG_CTRUNC))
        return 0;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return -EPROTO;
}

/* Waits for and reads the hello: 0 with both fds, or a negative errno
 * (the server's status, -EPROTO, -ETIMEDOUT, -ECONNREFUSED). */
static int ipc__cli_hello(ipc__shm_client *c, int fds[2], uint32_t *id)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    uint64_t deadline = ipc_wait_now_ns() + IPC__SHM_CONNECT_NS;
    for (;;) {
        uint64_t now = ipc_wait_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        int n = poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
        if (n > 0)
            break;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
    ipc__shm_hello h;
    struct iovec iov = {.iov_base = &h, .iov_len = sizeof(h)};
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf)};
    ssize_t n;
    while ((n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)) < 0 && errno == EINTR)
        ;
    /* A hang-up before the hello: the server died with us in its backlog
     * (or mid-handshake). To the caller that is "no server": retry. */
    if (n == 0 || (n < 0 && errno == ECONNRESET))
        return -ECONNREFUSED;
    if (n < 0)
        return errno == EAGAIN ? -EPROTO : -errno;
    bool with_fds = n == (ssize_t)sizeof(h) && h.magic == IPC_SHM_HELLO_MAGIC &&
                    h.version == IPC_SHM_VERSION && h.status == 0;
    int rc = ipc__cli_take_fds(&msg, fds, with_fds ? 2 : 0);
    if (n != (ssize_t)sizeof(h) || h.magic != IPC_SHM_HELLO_MAGIC || h.version != IPC_SHM_VERSION)
        return -EPROTO;
    if (h.status != 0)
        return h.status <= 4095 ? -(int)h.status : -EPROTO;
    *id = h.client_id;
    return rc;
}

/* Copy, validate, use: the header is copied once and only the copy is
 * checked and used. max_clients mismatch is the caller's error: -EINVAL. */
static int ipc__cli_check_header(ipc__shm_client *c, const ipc__shm_seg_header *h,
                                 uint32_t id, uint64_t file_size)
{
    if (h->magic != IPC_SHM_SEG_MAGIC || h->version != IPC_SHM_VERSION ||
        h->header_size != IPC_SHM_HEADER_SIZE || !ipc_spsc_capacity_ok(h->ring_size))
        return -EPROTO;
    if (h->segment_size != ipc__shm_segment_size(h->ring_size) || h->segment_size != file_size ||
        h->req_offset != ipc__shm_req_offset() ||
        h->resp_offset != ipc__shm_resp_offset(h->ring_size) ||
        h->client_id != id || h->client_id >= h->max_clients)
        return -EPROTO;
    if (h->max_clients != c->max_clients)
        return -EINVAL;
    return 0;
}

static int ipc__cli_map_segment(ipc__shm_client *c, int fd, uint32_t id)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    /* Sealed against shrinking, or the server could SIGBUS us. */
    if (!ipc__shm_sealed(fd) || (uint64_t)st.st_size < IPC_SHM_HEADER_SIZE ||
        (uint64_t)st.st_size > ipc__shm_segment_size(IPC_SPSC_MAX_CAPACITY))
        return -EPROTO;
    void *seg = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (seg == MAP_FAILED)
        return -errno;
    c->seg = seg;
    c->seg_size = (size_t)st.st_size;
    c->hdr = seg;
    /* Acquire: pairs with the server's release of ready. */
    if (atomic_load_explicit(&c->hdr->ready, memory_order_acquire) != 1)
        return -EPROTO;
    ipc__shm_seg_header h;
    memcpy(&h, seg, offsetof(ipc__shm_seg_header, ready));
    int rc = ipc__cli_check_header(c, &h, id, (uint64_t)st.st_size);
    if (rc < 0)
        return rc;
    uint8_t *req = c->seg + h.req_offset, *resp = c->seg + h.resp_offset;
    if ((rc = ipc_spsc_attach(&c->req, (ipc_spsc_shared *)req, req + IPC_SHM_RING_CTRL_SIZE,
                              h.ring_size, IPC_SPSC_PRODUCER)) < 0 ||
        (rc = ipc_spsc_attach(&c->resp, (ipc_spsc_shared *)resp, resp + IPC_SHM_RING_CTRL_SIZE,
                              h.ring_size, IPC_SPSC_CONSUMER)) < 0)
        return -EPROTO;
    c->max_payload = ipc_spsc_max_payload(h.ring_size);
    return 0;
}

static int ipc__cli_map_bell(ipc__shm_client *c, int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!ipc__shm_sealed(fd) || st.st_size != IPC_SHM_BELL_SIZE)
        return -EPROTO;
    void *b = mmap(NULL, IPC_SHM_BELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (b == MAP_FAILED)
        return -errno;
    c->bell = b;
    uint64_t magic = c->bell->magic;
    uint32_t version = c->bell->version;
    return magic == IPC_SHM_BELL_MAGIC && version == IPC_SHM_VERSION ? 0 : -EPROTO;
}

static int ipc__cli_dial(ipc__shm_client *c)
{
    /* Non-blocking: with the server's backlog full, connect() fails with
     * EAGAIN ("busy") instead of blocking without limit. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un a;
    socklen_t len = ipc__shm_addr(c->name, &a);
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&a, len)) < 0 && errno == EINTR)
        ;
    struct ucred cr;
    if (rc < 0)
        rc = -errno;
    else
        rc = ipc__shm_peer_ok(fd, &cr); /* anyone can bind an abstract name */
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->fd = fd;
    return 0;
}

static int ipc__cli_connect(ipc_client *base)
{
    ipc__shm_client *c = (ipc__shm_client *)base;
    int rc = ipc__cli_dial(c);
    if (rc < 0)
        return rc;
    int fds[2];
    uint32_t id;
    if ((rc = ipc__cli_hello(c, fds, &id)) < 0)
        goto err_socket;
    rc = ipc__cli_map_segment(c, fds[0], id);
    if (rc == 0)
        rc = ipc__cli_map_bell(c, fds[1]);
    close(fds[0]); /* the mappings keep the memory */
    close(fds[1]);
    if (rc < 0)
        goto err_unmap;
    c->dead = false;
    return 0;
err_unmap:
    ipc__cli_unmap(c);
err_socket:
    ipc__close_fd(&c->fd);
    return rc;
}

/* true once the server closed us (flag) or died (socket hang-up). */
static bool ipc__cli_server_gone(ipc__shm_client *c)
{
    if (!c->dead)
        c->dead = atomic_load_explicit(&c->hdr->server_closed, memory_order_acquire) != 0 ||
                  ipc__shm_hung_up(c->fd);
    return c->dead;
}

struct ipc__cli_wait {
    ipc__shm_client *c;
    size_t len; /* for writable waits */
};

static bool ipc__cli_closed_flag(ipc__shm_client *c)
{
    /* Relaxed: the flag publishes no data we read afterwards; it only turns
     * the next call into an error, and replies before it came through [T]. */
    return atomic_load_explicit(&c->hdr->server_closed, memory_order_relaxed) != 0;
}

static bool ipc__cli_readable(void *arg)
{
    struct ipc__cli_wait *w = arg;
    return ipc_spsc_readable(&w->c->resp) != 0 || ipc__cli_closed_flag(w->c);
}

static bool ipc__cli_writable(void *arg)
{
    struct ipc__cli_wait *w = arg;
    return ipc_spsc_writable(&w->c->req, w->len) != 0 || ipc__cli_closed_flag(w->c);
}

/* Adaptive wait in slices; between slices the socket tells whether the
 * server still lives. 0 (ready), -ETIMEDOUT or -ECONNRESET. */
static int ipc__cli_wait(ipc__shm_client *c, ipc_waitpoint *wp, bool (*ready)(void *),
                         struct ipc__cli_wait *w, uint64_t deadline)
{
    uint64_t spin = IPC__SHM_CLIENT_SPIN_NS;
    for (;;) {
        uint64_t now = ipc_wait_now_ns();
        uint64_t slice = ipc__min_u64(deadline, now + IPC__SHM_CLIENT_SLICE_NS);
        int rc = ipc_wait_until(wp, ready, w, spin, slice);
        spin = 0;
        if (ipc__cli_closed_flag(c) || (rc < 0 && ipc__cli_server_gone(c))) {
            c->dead = true;
            return -ECONNRESET;
        }
        if (rc == 0)
            return 0;
        if (slice == deadline)
            return -ETIMEDOUT;
    }
}

/* Room for len bytes in the request ring, waiting until the deadline:
 * 0 with *p, or -EPIPE / -EMSGSIZE / -ETIMEDOUT / -EPROTO. */
static int ipc__cli_claim(ipc__shm_client *c, size_t len, void **p, uint64_t deadline)
{
    if (c->dead || ipc__cli_closed_flag(c))
        return -EPIPE;
    if (len > c->max_payload)
        return -EMSGSIZE;
    for (;;) {
        int rc = ipc_spsc_claim(&c->req, len, p);
        if (rc == 1)
            return 0;
        if (rc < 0)
            return rc;
        struct ipc__cli_wait w = {c, len};
        rc = ipc__cli_wait(c, &c->req.shared->space, ipc__cli_writable, &w, deadline);
        if (rc < 0)
            return rc == -ECONNRESET ? -EPIPE : rc;
    }
}

static void ipc__cli_publish(ipc__shm_client *c, size_t len)
{
    ipc_spsc_publish_nowake(&c->req, len); /* the server sleeps on the bell */
    ipc_mpsc_ring_bell(&c->bell->bell);
}

static int ipc__cli_send(ipc_client *base, const void *data, size_t len, uint64_t deadline)
{
    ipc__shm_client *c = (ipc__shm_client *)base;
    void *p;
    int rc = ipc__cli_claim(c, len, &p, deadline);
    if (rc < 0)
        return rc;
    if (len != 0)
        memcpy(p, data, len);
    ipc__cli_publish(c, len);
    return 0;
}

/* After freeing response space: the server may be waiting for it. */
static void ipc__cli_released(ipc__shm_client *c)
{
    /* ipc_spsc_release() ended with a seq_cst fence (in ipc_wait_notify),
     * which orders our head store before this load: the Dekker pair of
     * ipc__srv_queue(). Relaxed is enough after that fence. */
    if (atomic_load_explicit(&c->hdr->want_space, memory_order_relaxed) != 0)
        ipc_mpsc_ring_bell(&c->bell->bell);
}

/* The next reply in place, waiting until the deadline: its length, or
 * -ETIMEDOUT / -ECONNRESET / -EPROTO. */
static ssize_t ipc__cli_next(ipc__shm_client *c, const void **p, uint64_t deadline)
{
    for (;;) {
        /* Read before the look below: see fd_relay.h. */
        uint32_t seen = c->relay.running ? ipc__relay_seq(&c->relay) : 0;
        uint32_t n;
        int rc = ipc_spsc_peek(&c->resp, p, &n);
        if (rc == 1)
            return (ssize_t)n;
        if (rc < 0)
            return rc;
        /* Replies already in the ring are delivered before the hang-up. */
        if (c->dead || ipc__cli_closed_flag(c))
            return -ECONNRESET;
        if (c->relay.running && ipc_wait_now_ns() >= deadline) {
            if (ipc__cli_server_gone(c))
                return -ECONNRESET;
            ipc__relay_drain(&c->relay); /* an event loop polls our fd */
            ipc__relay_arm(&c->relay, seen);
            return -ETIMEDOUT;
        }
        struct ipc__cli_wait w = {c, 0};
        rc = ipc__cli_wait(c, &c->resp.shared->data, ipc__cli_readable, &w, deadline);
        if (rc == -ETIMEDOUT)
            return rc;
    }
}

static ssize_t ipc__cli_consume(ipc__shm_client *c, ssize_t len)
{
    ipc_spsc_release(&c->resp);
    ipc__cli_released(c);
    return len;
}

static ssize_t ipc__cli_recv(ipc_client *base, void *buf, size_t max_len, uint64_t deadline)
{
    ipc__shm_client *c = (ipc__shm_client *)base;
    const void *p;
    ssize_t n = ipc__cli_next(c, &p, deadline);
    if (n < 0)
        return n;
    c->peeked = false;
    if ((size_t)n > max_len)
        return ipc__cli_consume(c, -EMSGSIZE);
    if (n > 0)
        memcpy(buf, p, (size_t)n);
    return ipc__cli_consume(c, n);
}

static ssize_t ipc__cli_peek(ipc_client *base, const void **msg, uint64_t deadline)
{
    ipc__shm_client *c = (ipc__shm_client *)base;
    ssize_t n = ipc__cli_next(c, msg, deadline);
    if (n >= 0) {
        c->peeked = true;
        c->peeked_len = (uint32_t)n;
    }
    return n;
}

static ssize_t ipc__cli_release(ipc_client *base)
{
    ipc__shm_client *c = (ipc__shm_client *)base;
    if (!c->peeked)
        return -EINVAL;
    c->peeked = false;
    return ipc__cli_consume(c, (ssize_t)c->peeked_len);
}

static int ipc__cli_loan(ipc_client *base, size_t len, void **buf, uint64_t deadline)
{
    ipc__shm_client *c = (ipc__shm_client *)base;
    int rc = ipc__cli_claim(c, len, buf, deadline);
    if (rc < 0)
        return rc;
    c->loaned = true;
    return 0;
}

static int ipc__cli_commit(ipc_client *base, size_t len)
{
    ipc__shm_client *c = (ipc__shm_client *)base;
    if (!c->loaned)
        return -EINVAL;
    c->loaned = false;
    ipc__cli_publish(c, len);
    return 0;
}

/* An epoll set of the relay's eventfd (replies) and the rendezvous socket
 * (the server's hang-up): one fd for the application to poll. */
static int ipc__cli_fd(ipc_client *base)
{
    ipc__shm_client *c = (ipc__shm_client *)base;
    if (c->epoll_fd >= 0)
        return c->epoll_fd;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -errno;
    int rc = ipc__relay_start(&c->relay, &c->resp.shared->data);
    if (rc < 0)
        goto err_epoll;
    struct epoll_event ev = {.events = EPOLLIN};
    struct epoll_event hup = {.events = EPOLLRDHUP};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->relay.efd, &ev) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &hup) < 0) {
        rc = -errno;
        goto err_relay;
    }
    ipc__relay_signal_now(&c->relay); /* replies may already be waiting */
    c->epoll_fd = ep;
    return ep;
err_relay:
    ipc__relay_stop(&c->relay);
err_epoll:
    close(ep);
    return rc;
}

static void ipc__cli_close(ipc_client *base)
{
    ipc__shm_client *c = (ipc__shm_client *)base;
    ipc__relay_stop(&c->relay); /* before the ring it watches is unmapped */
    ipc__close_fd(&c->epoll_fd);
    c->loaned = c->peeked = false;
    ipc__cli_unmap(c);
    ipc__close_fd(&c->fd); /* the server sees the hang-up and frees the slot */
    c->dead = false;
}

static void ipc__cli_destroy(ipc_client *base)
{
    free(base);
}

static const ipc_client_ops ipc__shm_client_ops = {
    .name = "shm",
    .connect = ipc__cli_connect,
    .send = ipc__cli_send,
    .recv = ipc__cli_recv,
    .close = ipc__cli_close,
    .destroy = ipc__cli_destroy,
    .fd = ipc__cli_fd,
    .peek = ipc__cli_peek,
    .release = ipc__cli_release,
    .loan = ipc__cli_loan,
    .commit = ipc__cli_commit,
};

ipc_client *ipc__shm_client_create(const char *name, size_t max_clients)
{
    if (name == NULL || !ipc__shm_name_ok(name) || max_clients == 0 ||
        max_clients > IPC_SHM_MAX_CLIENTS)
        return NULL;
    ipc__shm_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->base.ops = &ipc__shm_client_ops;
    memcpy(c->name, name, strlen(name) + 1);
    c->max_clients = max_clients;
    c->fd = -1;
    c->epoll_fd = -1;
    return &c->base;
}

void *ipc__shm_client_segment(ipc_client *base, size_t *size)
{
    if (base == NULL || base->ops != &ipc__shm_client_ops)
        return NULL;
    ipc__shm_client *c = (ipc__shm_client *)base;
    if (size != NULL)
        *size = c->seg_size;
    return c->seg;
}
