/*
 * Socket client: a blocking stream socket whose calls are bounded by
 * deadlines. State that must survive a timed-out call lives here, so a
 * timeout never desynchronises the stream:
 *   - rx buffers received bytes; a frame of up to IPC_CLIENT_DIRECT bytes is
 *     read with its header in one system call and copied out; a longer one
 *     is read straight into the caller's buffer, and parked in rx only if the
 *     call times out midway;
 *   - discard counts the bytes still to drop of a frame too long for the
 *     caller's buffer;
 *   - tx holds the unsent rest of a frame whose first bytes went out.
 *
 * Full duplex (ipc.h): rx and discard belong to the receiving thread, tx to
 * the sending one, except that a receive must first flush a parked tx (its
 * reply may depend on it). tx_lock guards tx: a send holds it throughout
 * (waiting for it no longer than its deadline); a receive takes it only when
 * tx_parked says there is a rest, and only with
 * trylock: if the sender holds it, the sender flushes the rest itself before
 * its next frame, and the receive goes on reading.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ipc/socket/frame.h"
#include "ipc/socket/socket_transport.h"
#include "ipc/socket/socket_util.h"

/* Frames longer than this skip rx and land in the caller's buffer. */
#define IPC_CLIENT_DIRECT (64u << 10)
/* Scratch for dropping the payload of a frame that is too long. */
#define IPC_DISCARD_CHUNK 4096u

typedef struct ipc__socket_client {
    ipc_client base;
    struct sockaddr_un addr;
    int fd;
    ipc__frame_reader rx;
    uint64_t discard;
    pthread_mutex_t tx_lock;
    atomic_bool tx_parked; /* tx holds a rest: a hint, tx is read under tx_lock */
    uint8_t *tx;
    size_t tx_off;
    size_t tx_len;
} ipc__socket_client;

static ipc__socket_client *ipc__sc(ipc_client *c)
{
    return (ipc__socket_client *)c;
}

/* How often a connect retries a server whose listen backlog is full. */
#define IPC__SOCKET_BUSY_PAUSE_NS (1000ull * 1000)

/* One non-blocking connect: the fd, -EAGAIN when the server's listen
 * backlog is full (AF_UNIX says EAGAIN, never EINPROGRESS: a blocking
 * connect would wait in the kernel without our deadline), or -errno. */
static int ipc__sc_dial(const ipc__socket_client *c)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int rc;
    while ((rc = connect(fd, (const struct sockaddr *)&c->addr, sizeof(c->addr))) < 0 &&
           errno == EINTR) {
    }
    if (rc < 0) {
        rc = errno == EINPROGRESS || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* Dials until the deadline, retrying a full backlog (a burst, or a stalled
 * server): the fd, -ETIMEDOUT, or the dial's error. The socket is blocking
 * afterwards: the calls that take a timeout bound their own waits. */
static int ipc__socket_client_connect(ipc_client *base, uint64_t deadline)
{
    ipc__socket_client *c = ipc__sc(base);
    int fd;
    while ((fd = ipc__sc_dial(c)) == -EAGAIN) {
        uint64_t now = ipc__now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t pause = ipc__min_u64(deadline - now, IPC__SOCKET_BUSY_PAUSE_NS);
        nanosleep(&(struct timespec){.tv_nsec = (long)pause}, NULL);
    }
    if (fd < 0)
        return fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    /* The server's limit is not known here: size for the default one. */
    ipc__socket_sndbuf_at_least(fd, IPC__FRAME_HEADER + IPC_DEFAULT_MAX_MESSAGE);
    c->fd = fd;
    ipc__frame_reader_init(&c->rx, UINT32_MAX);
    c->discard = 0;
    return 0;
}

/* One sendmsg/recvmsg: the count, -EAGAIN (not ready now), or the peer-gone
 * errno; EINTR is retried here. */
static ssize_t ipc__io_try(ipc__socket_client *c, struct msghdr *m, bool out, int flags)
{
    for (;;) {
        ssize_t n = out ? sendmsg(c->fd, m, flags) : recvmsg(c->fd, m, flags);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -EAGAIN;
        return ipc__peer_gone(-errno, out);
    }
}

/* Waits for events on the socket: 0 when one is there, -ETIMEDOUT at the
 * deadline. */
static int ipc__io_wait(ipc__socket_client *c, short events, uint64_t deadline)
{
    int r = ipc__wait_fd(c->fd, events, deadline);
    return r < 0 ? r : r == 0 ? -ETIMEDOUT : 0;
}

/*
 * One send or recv step bounded by the deadline: the fd stays blocking, so
 * with no deadline the kernel does the waiting; with one, try without
 * blocking and ppoll only when the socket is not ready.
 */
static ssize_t ipc__io_step(ipc__socket_client *c, struct msghdr *m, bool out, uint64_t deadline)
{
    int flags = MSG_NOSIGNAL | (deadline == IPC_FOREVER ? 0 : MSG_DONTWAIT);
    for (;;) {
        ssize_t n = ipc__io_try(c, m, out, flags);
        if (n != -EAGAIN)
            return n;
        int rc = ipc__io_wait(c, out ? POLLOUT : POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

/* Sends what is left of a committed frame; with IPC_NOW, what the socket
 * takes without waiting (0, the rest still parked). */
static int ipc__flush_tx(ipc__socket_client *c, uint64_t deadline)
{
    while (c->tx_off < c->tx_len) {
        struct iovec iov = {.iov_base = c->tx + c->tx_off, .iov_len = c->tx_len - c->tx_off};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = ipc__io_step(c, &m, true, deadline);
        if (n == -ETIMEDOUT && deadline == IPC_NOW)
            return 0;
        if (n < 0)
            return (int)n;
        c->tx_off += (size_t)n;
    }
    free(c->tx);
    c->tx = NULL;
    c->tx_off = c->tx_len = 0;
    /* Relaxed: a hint; tx itself is handed over by tx_lock. */
    atomic_store_explicit(&c->tx_parked, false, memory_order_relaxed);
    return 0;
}

/* Flushes what it can of a parked rest now, without waiting, unless the
 * sending thread holds tx (then it flushes the rest itself). Whether a rest
 * is still parked afterwards. */
static int ipc__flush_tx_for_recv(ipc__socket_client *c, bool *still_parked)
{
    *still_parked = false;
    if (!atomic_load_explicit(&c->tx_parked, memory_order_relaxed))
        return 0;
    if (pthread_mutex_trylock(&c->tx_lock) != 0)
        return 0;
    int rc = ipc__flush_tx(c, IPC_NOW);
    if (rc == -ETIMEDOUT)
        rc = 0; /* the socket is full: the rest goes while we receive */
    *still_parked = c->tx_len > c->tx_off;
    pthread_mutex_unlock(&c->tx_lock);
    return rc;
}

/*
 * Receives while the rest of a parked frame goes out. A server pushing back
 * reads no more of our requests until we read its replies, so waiting for
 * the parked bytes to leave before reading would wait for ever. tx_lock is
 * held only for each non-blocking flush, never across the wait.
 */
static ssize_t ipc__recv_pumping(ipc__socket_client *c, void *dst, size_t len,
                                 uint64_t deadline)
{
    struct iovec iov = {.iov_base = dst, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    for (;;) {
        ssize_t n = ipc__io_try(c, &m, false, MSG_DONTWAIT);
        if (n != -EAGAIN)
            return n;
        bool parked;
        int rc = ipc__flush_tx_for_recv(c, &parked);
        if (rc < 0)
            return rc;
        rc = ipc__io_wait(c, POLLIN | (parked ? POLLOUT : 0), deadline);
        if (rc < 0)
            return rc;
    }
}

static ssize_t ipc__recv_some(ipc__socket_client *c, void *dst, size_t len, uint64_t deadline)
{
    ssize_t n;
    /* Relaxed: a hint; ipc__flush_tx_for_recv() reads tx under tx_lock. */
    if (atomic_load_explicit(&c->tx_parked, memory_order_relaxed)) {
        n = ipc__recv_pumping(c, dst, len, deadline);
    } else {
        struct iovec iov = {.iov_base = dst, .iov_len = len};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        n = ipc__io_step(c, &m, false, deadline);
    }
    return n == 0 ? -ECONNRESET : n; /* EOF: the server closed or died */
}

/* Keeps the unsent rest of a frame whose first `sent` bytes went out. */
static int ipc__park_tx(ipc__socket_client *c, const uint8_t hdr[IPC__FRAME_HEADER],
                        const void *data, size_t len, size_t sent)
{
    size_t rest = IPC__FRAME_HEADER + len - sent;
    c->tx = malloc(rest);
    if (c->tx == NULL)
        return -ENOMEM; /* the stream is broken: the caller must reconnect */
    size_t off = 0;
    if (sent < IPC__FRAME_HEADER) {
        off = IPC__FRAME_HEADER - sent;
        memcpy(c->tx, hdr + sent, off);
    }
    if (rest > off)
        memcpy(c->tx + off, (const uint8_t *)data + (len - (rest - off)), rest - off);
    c->tx_off = 0;
    c->tx_len = rest;
    atomic_store_explicit(&c->tx_parked, true, memory_order_relaxed);
    return 0;
}

static int ipc__send_frame(ipc__socket_client *c, const void *data, size_t len,
                           uint64_t deadline)
{
    int rc = ipc__flush_tx(c, deadline);
    if (rc < 0)
        return rc;
    uint8_t hdr[IPC__FRAME_HEADER];
    ipc__frame_put_len(hdr, (uint32_t)len);
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof(hdr)},
                           {.iov_base = (void *)data, .iov_len = len}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    size_t total = sizeof(hdr) + len, sent = 0;
    while (sent < total) {
        ssize_t n = ipc__io_step(c, &m, true, deadline);
        if (n == -ETIMEDOUT && sent > 0)
            return ipc__park_tx(c, hdr, data, len, sent);
        if (n < 0)
            return (int)n;
        sent += (size_t)n;
        /* Advance the iovecs past what the kernel took. */
        for (size_t k = (size_t)n; k > 0;) {
            size_t step = k < m.msg_iov->iov_len ? k : m.msg_iov->iov_len;
            m.msg_iov->iov_base = (uint8_t *)m.msg_iov->iov_base + step;
            m.msg_iov->iov_len -= step;
            k -= step;
            if (m.msg_iov->iov_len == 0 && m.msg_iovlen > 1) {
                m.msg_iov++;
                m.msg_iovlen--;
            }
        }
    }
    return 0;
}

/* Takes tx_lock by the deadline: a receive flushing a parked rest may hold
 * it while the socket is full. 0 or -ETIMEDOUT. Contention is rare, so the
 * wait is sliced: pthread_mutex_timedlock takes a CLOCK_REALTIME time, and
 * short slices keep a clock step from stretching a monotonic deadline
 * (pthread_mutex_clocklock would not, but TSan cannot see it). */
#define IPC_TX_LOCK_SLICE_NS (10ull * 1000 * 1000)

static int ipc__lock_tx(ipc__socket_client *c, uint64_t deadline)
{
    int rc = pthread_mutex_trylock(&c->tx_lock);
    if (rc != EBUSY)
        return -rc;
    if (deadline == IPC_FOREVER)
        return -pthread_mutex_lock(&c->tx_lock);
    for (;;) {
        uint64_t now = ipc__now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t wait = deadline - now < IPC_TX_LOCK_SLICE_NS ? deadline - now
                                                              : IPC_TX_LOCK_SLICE_NS;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + wait;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        rc = pthread_mutex_timedlock(&c->tx_lock, &ts);
        if (rc != ETIMEDOUT)
            return -rc;
    }
}

static int ipc__socket_client_send(ipc_client *base, const void *data, size_t len,
                                   uint64_t deadline)
{
    ipc__socket_client *c = ipc__sc(base);
    int rc = ipc__lock_tx(c, deadline);
    if (rc < 0)
        return rc;
    rc = ipc__send_frame(c, data, len, deadline);
    pthread_mutex_unlock(&c->tx_lock);
    return rc;
}

/* One read into rx, of at least what the frame at its front still lacks. */
static ssize_t ipc__fill_rx(ipc__socket_client *c, uint64_t deadline)
{
    uint8_t *dst;
    size_t want = ipc__frame_reader_missing(&c->rx);
    size_t room = ipc__frame_reader_room(&c->rx, want < 4096 ? 4096 : want, &dst);
    if (room < want)
        return -ENOMEM;
    ssize_t n = ipc__recv_some(c, dst, room, deadline);
    if (n > 0)
        ipc__frame_reader_commit(&c->rx, (size_t)n);
    return n;
}

/* Drops the rest of a too-long frame; -EMSGSIZE once it is gone. */
static ssize_t ipc__finish_discard(ipc__socket_client *c, uint64_t deadline)
{
    uint8_t scratch[IPC_DISCARD_CHUNK];
    while (c->discard > 0) {
        size_t want = c->discard < sizeof(scratch) ? (size_t)c->discard : sizeof(scratch);
        ssize_t n = ipc__recv_some(c, scratch, want, deadline);
        if (n < 0)
            return n;
        c->discard -= (uint64_t)n;
    }
    return -EMSGSIZE;
}

/* A frame too long for max_len: drop what rx holds of it, then the rest. */
static ssize_t ipc__discard_frame(ipc__socket_client *c, uint32_t len, uint64_t deadline)
{
    size_t held = ipc__frame_reader_buffered(&c->rx) - IPC__FRAME_HEADER;
    if (held >= len) {
        ipc__frame_reader_consume(&c->rx);
        return -EMSGSIZE;
    }
    c->discard = len - held;
    c->rx.start = c->rx.end; /* drained: everything buffered was this frame */
    return ipc__finish_discard(c, deadline);
}

/* A long frame: move what rx holds into buf, then read the rest in place.
 * On a timeout the part received goes back into rx for the next call. */
static ssize_t ipc__recv_direct(ipc__socket_client *c, uint8_t *buf, uint32_t len,
                                uint64_t deadline)
{
    size_t got = ipc__frame_reader_buffered(&c->rx) - IPC__FRAME_HEADER;
    memcpy(buf, c->rx.buf + c->rx.start + IPC__FRAME_HEADER, got);
    while (got < len) {
        ssize_t n = ipc__recv_some(c, buf + got, len - got, deadline);
        if (n < 0) {
            if (n == -ETIMEDOUT) {
                uint8_t *dst;
                size_t need = IPC__FRAME_HEADER + len;
                c->rx.end = c->rx.start + IPC__FRAME_HEADER; /* keep the header */
                if (ipc__frame_reader_room(&c->rx, need, &dst) < got)
                    return -ENOMEM;
                memcpy(dst, buf, got);
                ipc__frame_reader_commit(&c->rx, got);
            }
            return n;
        }
        got += (size_t)n;
    }
    c->rx.start = c->rx.end; /* rx held only the front of this frame */
    return (ssize_t)len;
}

static ssize_t ipc__socket_client_recv(ipc_client *base, void *buf, size_t max_len,
                                       uint64_t deadline)
{
    ipc__socket_client *c = ipc__sc(base);
    bool parked;
    ssize_t rc = ipc__flush_tx_for_recv(c, &parked); /* the rest while receiving */
    if (rc < 0)
        return rc;
    if (c->discard > 0)
        return ipc__finish_discard(c, deadline);
    for (;;) {
        const uint8_t *payload;
        uint32_t len;
        if (ipc__frame_reader_peek(&c->rx, &payload, &len) == 1) {
            if (len > max_len) {
                ipc__frame_reader_consume(&c->rx);
                return -EMSGSIZE;
            }
            if (len != 0)
                memcpy(buf, payload, len);
            ipc__frame_reader_consume(&c->rx);
            return (ssize_t)len;
        }
        if (ipc__frame_reader_buffered(&c->rx) >= IPC__FRAME_HEADER) {
            len = ipc__frame_get_len(c->rx.buf + c->rx.start);
            if (len > max_len)
                return ipc__discard_frame(c, len, deadline);
            if (len > IPC_CLIENT_DIRECT)
                return ipc__recv_direct(c, buf, len, deadline);
        }
        ssize_t n = ipc__fill_rx(c, deadline);
        if (n < 0)
            return n;
    }
}

/* Reads until a whole frame is in rx, however long: the caller reads it in
 * place. */
static ssize_t ipc__socket_client_peek(ipc_client *base, const void **msg, uint64_t deadline)
{
    ipc__socket_client *c = ipc__sc(base);
    bool parked;
    ssize_t rc = ipc__flush_tx_for_recv(c, &parked); /* the rest while receiving */
    if (rc < 0)
        return rc;
    while (c->discard > 0) {
        rc = ipc__finish_discard(c, deadline);
        if (rc != -EMSGSIZE)
            return rc;
    }
    for (;;) {
        const uint8_t *payload;
        uint32_t len;
        if (ipc__frame_reader_peek(&c->rx, &payload, &len) == 1) {
            *msg = payload;
            return (ssize_t)len;
        }
        ssize_t n = ipc__fill_rx(c, deadline);
        if (n < 0)
            return n;
    }
}

static ssize_t ipc__socket_client_release(ipc_client *base)
{
    ipc__socket_client *c = ipc__sc(base);
    const uint8_t *payload;
    uint32_t len;
    if (ipc__frame_reader_peek(&c->rx, &payload, &len) != 1)
        return -EINVAL;
    ipc__frame_reader_consume(&c->rx);
    return (ssize_t)len;
}

static void ipc__socket_client_close(ipc_client *base)
{
    ipc__socket_client *c = ipc__sc(base);
    close(c->fd);
    c->fd = -1;
    ipc__frame_reader_free(&c->rx);
    free(c->tx);
    c->tx = NULL;
    c->tx_off = c->tx_len = 0;
    atomic_store_explicit(&c->tx_parked, false, memory_order_relaxed);
    c->discard = 0;
}

static int ipc__socket_client_fd(ipc_client *base)
{
    return ipc__sc(base)->fd;
}

static void ipc__socket_client_destroy(ipc_client *base)
{
    pthread_mutex_destroy(&ipc__sc(base)->tx_lock);
    free(ipc__sc(base));
}

static const ipc_client_ops ipc__socket_client_ops = {
    .name = "socket",
    IPC__CLIENT_OPS(ipc__socket_client),
};

ipc_client *ipc__socket_client_create(const char *path)
{
    ipc__socket_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (!ipc__sockaddr_path(&c->addr, path)) {
        free(c);
        return NULL;
    }
    c->base.ops = &ipc__socket_client_ops;
    c->fd = -1;
    pthread_mutex_init(&c->tx_lock, NULL);
    atomic_init(&c->tx_parked, false);
    return &c->base;
}
