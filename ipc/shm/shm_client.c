/*
 * The shared-memory client (design in docs/SHM.md).
 *
 * It connects to "\0ipc-shm/<name>", receives its segment, the server's
 * doorbell page and its own wake eventfd in the hello (shm_handshake.c,
 * shm_segment.c, bell.h), pushes requests into its request ring and rings
 * the doorbell (writes its eventfd when the server sleeps). It waits for replies in
 * slices, checking between them that the server still lives: the socket's
 * hang-up tells it the server is gone.
 */
#include "ipc/shm/shm_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "ipc/shm/bell.h"
#include "ipc/shm/shm_handshake.h"
#include "ipc/shm/shm_transport.h"
#include "ipc/unix/unix.h"

/* A client waiting for the server checks its socket this often, so a dead
 * server is noticed within this bound even with no timeout. */
#define IPC__SHM_CLIENT_SLICE_NS (50ull * 1000 * 1000)
#define IPC__SHM_CLIENT_SPIN_NS (50ull * 1000)
/* How often connect() retries a server whose listen backlog is full. The
 * server's watcher thread drains the backlog as fast as it can, so a full
 * one is a burst of connects, or a user the server refuses hammering its
 * name (anyone can connect to an abstract name): both pass. */
#define IPC__SHM_BUSY_PAUSE_NS (200ull * 1000)

static ipc__shm_client *ipc__cli(ipc_client *base)
{
    return (ipc__shm_client *)base;
}

/* dead, read and written by both threads of a full-duplex client. Relaxed:
 * the flag publishes nothing; whoever sets it has seen the server go. */
static bool ipc__cli_dead(ipc__shm_client *c)
{
    return atomic_load_explicit(&c->dead, memory_order_relaxed);
}

static void ipc__cli_set_dead(ipc__shm_client *c, bool dead)
{
    atomic_store_explicit(&c->dead, dead, memory_order_relaxed);
}

static void ipc__cli_unmap(ipc__shm_client *c)
{
    ipc__bell_unmap(c->bell);
    c->bell = NULL;
    ipc__close_fd(&c->wake_fd);
    ipc__shm_segment_unmap(&c->seg);
}

/* Dials, retrying a full backlog until the deadline: the fd, -ETIMEDOUT,
 * or -errno. */
static int ipc__cli_dial(ipc__shm_client *c, uint64_t deadline)
{
    for (;;) {
        int rc = ipc__shm_dial(c->name);
        if (rc != -EAGAIN)
            return rc;
        uint64_t now = ipc__now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct timespec pause = {0, (long)ipc__min_u64(deadline - now, IPC__SHM_BUSY_PAUSE_NS)};
        nanosleep(&pause, NULL);
    }
}

/* The deadline covers it all: a full backlog retried, then the hello. */
static int ipc__shm_client_connect(ipc_client *base, uint64_t deadline)
{
    ipc__shm_client *c = ipc__cli(base);
    int rc = ipc__cli_dial(c, deadline);
    if (rc < 0)
        return rc;
    c->fd = rc;
    int fds[IPC_SHM_HELLO_FDS];
    uint32_t id;
    uint64_t now = ipc__now_ns();
    rc = ipc__shm_hello_recv(c->fd, deadline > now ? deadline - now : 0, fds, &id);
    if (rc < 0)
        goto failed_hello;
    c->wake_fd = fds[IPC_SHM_HELLO_WAKE];
    rc = ipc__shm_segment_map(&c->seg, fds[IPC_SHM_HELLO_SEGMENT], id, (uint32_t)c->max_clients,
                              &c->served);
    if (rc == 0 && c->seg.wire != c->base.wire)
        rc = -EPROTO; /* the server frames messages otherwise */
    if (rc == 0)
        rc = ipc__bell_map(fds[IPC_SHM_HELLO_BELL], IPC_SHM_VERSION, &c->bell);
    close(fds[IPC_SHM_HELLO_SEGMENT]); /* the mappings keep the memory */
    close(fds[IPC_SHM_HELLO_BELL]);
    if (rc < 0)
        goto failed_map;
    c->max_payload = c->seg.max_request; /* what the server takes, at most the ring's */
    ipc__cli_set_dead(c, false);
    return 0;
failed_map:
    ipc__cli_unmap(c);
failed_hello:
    ipc__close_fd(&c->fd);
    return rc;
}

/* true once the server closed us (flag) or died (socket hang-up). */
static bool ipc__cli_server_gone(ipc__shm_client *c)
{
    /* Acquire [C]: pairs with the server's release in ipc__srv_drop(). */
    if (!ipc__cli_dead(c) &&
        (atomic_load_explicit(&c->seg.hdr->server_closed, memory_order_acquire) != 0 ||
         ipc__fd_hung_up(c->fd)))
        ipc__cli_set_dead(c, true);
    return ipc__cli_dead(c);
}

struct ipc__cli_wait {
    ipc__shm_client *c;
    size_t len; /* for writable waits */
};

static bool ipc__cli_closed_flag(ipc__shm_client *c)
{
    /* Relaxed: the flag publishes no data we read afterwards; it only turns
     * the next call into an error, and replies before it came through [T]. */
    return atomic_load_explicit(&c->seg.hdr->server_closed, memory_order_relaxed) != 0;
}

static bool ipc__cli_readable(void *arg)
{
    struct ipc__cli_wait *w = arg;
    return ipc__spsc_readable(&w->c->seg.resp) != 0 || ipc__cli_closed_flag(w->c);
}

static bool ipc__cli_writable(void *arg)
{
    struct ipc__cli_wait *w = arg;
    return ipc__spsc_writable(&w->c->seg.req, w->len) != 0 || ipc__cli_closed_flag(w->c);
}

/* Adaptive wait in slices; between slices the socket tells whether the
 * server still lives. 0 (ready), -ETIMEDOUT or -ECONNRESET. */
static int ipc__cli_wait(ipc__shm_client *c, ipc__waitpoint *wp, bool (*ready)(void *),
                         struct ipc__cli_wait *w, uint64_t deadline)
{
    uint64_t spin = IPC__SHM_CLIENT_SPIN_NS;
    for (;;) {
        uint64_t now = ipc__now_ns();
        uint64_t slice = ipc__min_u64(deadline, now + IPC__SHM_CLIENT_SLICE_NS);
        int rc = ipc__wait_until(wp, ready, w, spin, slice);
        spin = 0;
        if (ipc__cli_closed_flag(c) || (rc < 0 && ipc__cli_server_gone(c))) {
            ipc__cli_set_dead(c, true);
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
    if (ipc__cli_dead(c) || ipc__cli_closed_flag(c))
        return -EPIPE;
    if (len > c->max_payload)
        return -EMSGSIZE;
    for (;;) {
        int rc = ipc__spsc_claim(&c->seg.req, len, p);
        if (rc == 1)
            return 0;
        if (rc < 0)
            return rc;
        struct ipc__cli_wait w = {c, len};
        rc = ipc__cli_wait(c, &c->seg.req.shared->space, ipc__cli_writable, &w, deadline);
        if (rc < 0)
            return ipc__peer_gone(rc, true);
    }
}

static void ipc__cli_publish(ipc__shm_client *c, size_t len)
{
    ipc__spsc_publish_nowake(&c->seg.req, len); /* the server sleeps on the bell */
    ipc__bell_ring(c->bell, c->wake_fd);
}

static int ipc__shm_client_send(ipc_client *base, const void *data, size_t len, uint64_t deadline)
{
    ipc__shm_client *c = ipc__cli(base);
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
    /* ipc__spsc_release() ended with a seq_cst fence (in ipc__wait_notify),
     * which orders our head store before this load: the Dekker pair [W] of
     * ipc__srv_queue(). Relaxed is enough after that fence. */
    if (atomic_load_explicit(&c->seg.hdr->want_space, memory_order_relaxed) != 0)
        ipc__bell_ring(c->bell, c->wake_fd);
}

/* The next reply in place, waiting until the deadline: its length, or
 * -ETIMEDOUT / -ECONNRESET / -EPROTO. */
static ssize_t ipc__cli_next(ipc__shm_client *c, const void **p, uint64_t deadline)
{
    for (;;) {
        /* Read before the look below: see fd_relay.h. */
        uint32_t seen = c->relay.running ? ipc__relay_seq(&c->relay) : 0;
        uint32_t n;
        int rc = ipc__spsc_peek(&c->seg.resp, p, &n);
        if (rc == 1)
            return (ssize_t)n;
        if (rc < 0)
            return rc;
        /* Replies already in the ring are delivered before the hang-up. */
        if (ipc__cli_dead(c) || ipc__cli_closed_flag(c))
            return -ECONNRESET;
        if (c->relay.running && ipc__now_ns() >= deadline) {
            if (ipc__cli_server_gone(c))
                return -ECONNRESET;
            ipc__relay_drain(&c->relay); /* an event loop polls our fd */
            ipc__relay_arm(&c->relay, seen);
            return -ETIMEDOUT;
        }
        struct ipc__cli_wait w = {c, 0};
        /* A reply due any moment is found without a clock read. */
        if (deadline != IPC_NOW && ipc__wait_spin_briefly(ipc__cli_readable, &w))
            continue;
        rc = ipc__cli_wait(c, &c->seg.resp.shared->data, ipc__cli_readable, &w, deadline);
        if (rc == -ETIMEDOUT)
            return rc;
    }
}

static ssize_t ipc__cli_consume(ipc__shm_client *c, ssize_t len)
{
    ipc__spsc_release(&c->seg.resp);
    ipc__cli_released(c);
    return len;
}

static ssize_t ipc__shm_client_recv(ipc_client *base, void *buf, size_t max_len, uint64_t deadline)
{
    ipc__shm_client *c = ipc__cli(base);
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

static ssize_t ipc__shm_client_peek(ipc_client *base, const void **msg, uint64_t deadline)
{
    ipc__shm_client *c = ipc__cli(base);
    ssize_t n = ipc__cli_next(c, msg, deadline);
    if (n >= 0) {
        c->peeked = true;
        c->peeked_len = (uint32_t)n;
    }
    return n;
}

static ssize_t ipc__shm_client_release(ipc_client *base)
{
    ipc__shm_client *c = ipc__cli(base);
    if (!c->peeked)
        return -EINVAL;
    c->peeked = false;
    return ipc__cli_consume(c, (ssize_t)c->peeked_len);
}

static int ipc__shm_client_loan(ipc_client *base, size_t len, void **buf, uint64_t deadline)
{
    ipc__shm_client *c = ipc__cli(base);
    int rc = ipc__cli_claim(c, len, buf, deadline);
    if (rc < 0)
        return rc;
    c->loaned = true;
    return 0;
}

static int ipc__shm_client_commit(ipc_client *base, size_t len)
{
    ipc__shm_client *c = ipc__cli(base);
    if (!c->loaned)
        return -EINVAL;
    c->loaned = false;
    ipc__cli_publish(c, len);
    return 0;
}

/* An epoll set of the relay's eventfd (replies) and the rendezvous socket
 * (the server's hang-up): one fd for the application to poll. */
static int ipc__shm_client_fd(ipc_client *base)
{
    ipc__shm_client *c = ipc__cli(base);
    if (c->epoll_fd >= 0)
        return c->epoll_fd;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -errno;
    int rc = ipc__relay_start(&c->relay, &c->seg.resp.shared->data);
    if (rc < 0)
        goto failed_epoll;
    struct epoll_event ev = {.events = EPOLLIN};
    struct epoll_event hup = {.events = EPOLLRDHUP};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->relay.efd, &ev) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &hup) < 0) {
        rc = -errno;
        goto failed_relay;
    }
    ipc__relay_signal_now(&c->relay); /* replies may already be waiting */
    c->epoll_fd = ep;
    return ep;
failed_relay:
    ipc__relay_stop(&c->relay);
failed_epoll:
    close(ep);
    return rc;
}

static void ipc__shm_client_close(ipc_client *base)
{
    ipc__shm_client *c = ipc__cli(base);
    ipc__relay_stop(&c->relay); /* before the ring it watches is unmapped */
    ipc__close_fd(&c->epoll_fd);
    c->loaned = c->peeked = false;
    ipc__cli_unmap(c);
    ipc__close_fd(&c->fd); /* the server sees the hang-up and frees the slot */
    ipc__cli_set_dead(c, false);
}

static void ipc__shm_client_destroy(ipc_client *base)
{
    free(base);
}

const ipc_client_ops ipc__shm_client_ops = {
    .name = "shm",
    IPC__CLIENT_OPS(ipc__shm_client),
    .loan = ipc__shm_client_loan,
    .commit = ipc__shm_client_commit,
};

ipc_client *ipc__shm_client_create(const char *name, size_t max_clients)
{
    if (name == NULL || !ipc__shm_name_ok(name) || max_clients > IPC_SHM_MAX_CLIENTS)
        return NULL;
    ipc__shm_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->base.ops = &ipc__shm_client_ops;
    memcpy(c->name, name, strlen(name) + 1);
    c->max_clients = max_clients;
    c->fd = -1;
    c->epoll_fd = -1;
    c->wake_fd = -1;
    atomic_init(&c->dead, false);
    return &c->base;
}

size_t ipc_client_shm_capacity(const ipc_client *c)
{
    if (c == NULL || c->ops != &ipc__shm_client_ops)
        return 0;
    return ((const ipc__shm_client *)c)->served;
}
