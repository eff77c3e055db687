/*
 * Socket server: one epoll loop, non-blocking sockets, per-connection
 * reassembly and output queues, so a slow or stalled client never delays the
 * others.
 *
 * Client ids index a table that grows on demand; epoll carries the id, so
 * fd -> id and id -> connection are both O(1). Freed ids are reused oldest
 * first, and never while a reply to the old connection could still be owed
 * (a request was handed out and not yet answered): such an id waits as a
 * "zombie" until the application's send() for it.
 *
 * The path is guarded by an abstract-namespace lock socket named after its
 * resolved location (socket_path.c): the kernel releases it when the server
 * dies, so exactly one server owns a path however it is spelled, a crashed
 * server's socket file is taken over, and nothing is left to clean up.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ipc/socket/frame.h"
#include "ipc/socket/socket_path.h"
#include "ipc/socket/socket_transport.h"
#include "ipc/socket/socket_util.h"
#include "ipc/unix/unix.h"

/* Bytes read from one connection per wake-up, so one busy client cannot
 * monopolise the loop. */
#define IPC_READ_BUDGET (256u << 10)
/* Input buffered beyond a whole frame before reading from that client
 * pauses until the application catches up: bounds a pipelining client's
 * memory without toggling epoll interest for every large frame. */
#define IPC_INPUT_HIGH_WATER (256u << 10)
#define IPC_EVENTS 64
/* epoll data for the two non-client fds; client ids are below these. */
#define IPC_TAG_LISTENER UINT32_MAX
#define IPC_TAG_WAKE (UINT32_MAX - 1)
/* How long accepting pauses when out of fds or memory. */
#define IPC_ACCEPT_PAUSE_NS (100ull * 1000 * 1000)
/* How long close() spends delivering queued replies. */
#define IPC_CLOSE_FLUSH_NS (500ull * 1000 * 1000)

typedef enum { IPC_CONN_FREE, IPC_CONN_LIVE, IPC_CONN_ZOMBIE } ipc__conn_state;

typedef struct ipc__conn {
    ipc__conn_state state;
    int fd;
    uint32_t events;   /* the epoll interest currently registered */
    bool eof;          /* the peer shut down its side */
    bool queued;       /* in the ready queue */
    uint32_t owed;     /* requests handed out and not yet answered */
    bool lent;         /* the front frame is lent by peek() until release() */
    bool held;         /* output over the bound: no request handed out */
    bool busy;         /* held by the run loop (ops->hold): none handed out */
    uint64_t gen;      /* this connection's number (ops->conn_gen) */
    ipc__frame_reader rx;
    uint8_t *tx;       /* queued output: bytes [tx_off, tx_len) of tx_cap */
    size_t tx_off;
    size_t tx_len;
    size_t tx_cap;
} ipc__conn;

typedef struct ipc__id_queue {
    uint32_t *ids;
    size_t capacity; /* a power of two */
    size_t head;
    size_t tail;
} ipc__id_queue;

typedef struct ipc__socket_server {
    ipc_server base;
    struct sockaddr_un addr;
    int listen_fd;
    int lock_fd;
    int epoll_fd;
    int wake_fd; /* from create to destroy: see ipc__socket_server_create() */
    ino_t inode; /* of the socket file we created */
    dev_t dev;
    ipc__conn *conns;
    size_t nconns; /* table size; ids are below it */
    ipc__id_queue ready;
    ipc__id_queue free_ids;
    int last_id; /* returned by wait_for_data, -1 when none */
    size_t initial_clients; /* first size of the table */
    size_t tx_busy; /* connections with queued output */
    uint64_t accept_paused_until; /* 0, or when to accept again */
    uint64_t last_gen; /* the last connection's number */
} ipc__socket_server;

static ipc__socket_server *ipc__ss(ipc_server *s)
{
    return (ipc__socket_server *)s;
}

/* --------------------------------------------------------------- id queues */

static bool ipc__idq_push(ipc__id_queue *q, uint32_t id)
{
    if (q->tail - q->head == q->capacity) {
        size_t cap = q->capacity ? q->capacity * 2 : 16;
        uint32_t *ids = malloc(cap * sizeof(*ids));
        if (ids == NULL)
            return false;
        for (size_t i = 0; i < q->tail - q->head; i++)
            ids[i] = q->ids[(q->head + i) & (q->capacity - 1)];
        free(q->ids);
        q->ids = ids;
        q->tail -= q->head;
        q->head = 0;
        q->capacity = cap;
    }
    q->ids[q->tail++ & (q->capacity - 1)] = id;
    return true;
}

static bool ipc__idq_pop(ipc__id_queue *q, uint32_t *id)
{
    if (q->head == q->tail)
        return false;
    *id = q->ids[q->head++ & (q->capacity - 1)];
    return true;
}

static void ipc__idq_free(ipc__id_queue *q)
{
    free(q->ids);
    memset(q, 0, sizeof(*q));
}

/* ------------------------------------------------------------- connections */

static ipc__conn *ipc__conn_get(ipc__socket_server *s, int id)
{
    if (id < 0 || (size_t)id >= s->nconns)
        return NULL;
    return &s->conns[id];
}

/* Sets the epoll interest of a connection. An empty interest takes the fd
 * out of the set: epoll reports EPOLLHUP even to an empty mask, which would
 * spin a level-triggered loop on a peer that hung up while owed a reply. */
static int ipc__conn_interest(ipc__socket_server *s, uint32_t id, uint32_t events)
{
    ipc__conn *c = &s->conns[id];
    if (c->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.u32 = id};
    int op = events == 0 ? EPOLL_CTL_DEL : c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(s->epoll_fd, op, c->fd, &ev) < 0)
        return -errno;
    c->events = events;
    return 0;
}

static void ipc__release_id(ipc__socket_server *s, uint32_t id)
{
    ipc__conn *c = &s->conns[id];
    c->state = IPC_CONN_FREE;
    ipc__stat_add(s->base.stats.block, IPC__STAT_RECLAIMS, 1);
    /* No memory for the queue: the id is lost, the table still works. */
    (void)ipc__idq_push(&s->free_ids, id);
}

/* Out of fds (or memory) the listener stays readable and a level-triggered
 * loop would spin on it, so it leaves the epoll set: pending connections wait
 * in the backlog until a connection closes or IPC_ACCEPT_PAUSE_NS passes. */
static void ipc__listener_pause(ipc__socket_server *s)
{
    if (s->accept_paused_until == 0 &&
        epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, s->listen_fd, NULL) == 0)
        s->accept_paused_until = ipc__now_ns() + IPC_ACCEPT_PAUSE_NS;
}

static void ipc__listener_resume(ipc__socket_server *s)
{
    if (s->accept_paused_until == 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = IPC_TAG_LISTENER};
    if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd, &ev) == 0)
        s->accept_paused_until = 0;
}

/* Ends a connection. Its id stays reserved while replies are owed. */
static void ipc__conn_drop(ipc__socket_server *s, uint32_t id)
{
    ipc__conn *c = &s->conns[id];
    if (c->state != IPC_CONN_LIVE)
        return;
    close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    ipc__stat_add(s->base.stats.block, IPC__STAT_CLIENTS, (uint64_t)-1);
    ipc__listener_resume(s); /* an fd is free again */
    if (!c->lent) /* else the application still reads it: freed at release */
        ipc__frame_reader_free(&c->rx);
    if (c->tx_len > c->tx_off)
        s->tx_busy--;
    free(c->tx);
    c->tx = NULL;
    c->tx_off = c->tx_len = c->tx_cap = 0;
    c->queued = false;
    c->held = false;
    c->busy = false;
    if (c->owed > 0 || c->lent)
        c->state = IPC_CONN_ZOMBIE;
    else
        ipc__release_id(s, id);
}

/* Disconnects a client for breaking the rules (a frame over the limit, a
 * reply queue over its bound): counted as a drop. */
static void ipc__conn_kick(ipc__socket_server *s, uint32_t id)
{
    ipc__stat_add(s->base.stats.block, IPC__STAT_DROPS, 1);
    ipc__conn_drop(s, id);
}

/* A frame longer than max_message_size: an oversize request and a drop. */
static void ipc__conn_kick_oversize(ipc__socket_server *s, uint32_t id)
{
    ipc__stat_error(s->base.stats.block, -EMSGSIZE);
    ipc__conn_kick(s, id);
}

static bool ipc__has_frame(ipc__conn *c)
{
    const uint8_t *p;
    uint32_t n;
    return ipc__frame_reader_peek(&c->rx, &p, &n) == 1;
}

/* May the front request be handed out? Not while lent, nor while the
 * connection is held for output over its bound (back-pressure). */
static bool ipc__conn_ready(ipc__conn *c)
{
    return c->state == IPC_CONN_LIVE && !c->lent && !c->held && !c->busy &&
           ipc__has_frame(c);
}

static void ipc__enqueue(ipc__socket_server *s, uint32_t id)
{
    ipc__conn *c = &s->conns[id];
    if (c->queued)
        return;
    if (ipc__idq_push(&s->ready, id))
        c->queued = true;
}

/* A peer that shut down its side is dropped once nothing more can pass:
 * no whole request left, no reply owed or queued. */
static void ipc__conn_settle(ipc__socket_server *s, uint32_t id)
{
    ipc__conn *c = &s->conns[id];
    if (c->state == IPC_CONN_LIVE && c->eof && c->owed == 0 && !c->lent &&
        c->tx_len == c->tx_off && !ipc__has_frame(c))
        ipc__conn_drop(s, id);
}

static int ipc__conn_add(ipc__socket_server *s, int fd)
{
    uint32_t id;
    if (!ipc__idq_pop(&s->free_ids, &id)) {
        if (s->nconns >= IPC_TAG_WAKE)
            return -EMFILE;
        size_t n = s->nconns ? s->nconns * 2 : s->initial_clients;
        ipc__conn *t = realloc(s->conns, n * sizeof(*t));
        if (t == NULL)
            return -ENOMEM;
        memset(t + s->nconns, 0, (n - s->nconns) * sizeof(*t));
        s->conns = t;
        /* Hand out the new ids lowest first; all but the first wait in the
         * free queue behind any older ones. */
        for (size_t i = s->nconns + 1; i < n; i++)
            if (!ipc__idq_push(&s->free_ids, (uint32_t)i))
                break;
        id = (uint32_t)s->nconns;
        s->nconns = n;
    }
    ipc__conn *c = &s->conns[id];
    memset(c, 0, sizeof(*c));
    ipc__socket_sndbuf_at_least(fd, IPC__FRAME_HEADER + s->base.max_message);
    c->fd = fd;
    c->events = EPOLLIN;
    ipc__frame_reader_init(&c->rx, s->base.max_message);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = id};
    if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int err = -errno;
        c->state = IPC_CONN_FREE; /* never live: not a reclaim */
        (void)ipc__idq_push(&s->free_ids, id);
        return err;
    }
    c->state = IPC_CONN_LIVE;
    c->gen = ++s->last_gen;
    ipc__stat_add(s->base.stats.block, IPC__STAT_CONNECTS, 1);
    ipc__stat_add(s->base.stats.block, IPC__STAT_CLIENTS, 1);
    return 0;
}

static void ipc__accept_all(ipc__socket_server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                ipc__listener_pause(s);
            /* EAGAIN: all taken. ECONNABORTED, EINTR...: the next wake-up
             * retries. */
            return;
        }
        if (ipc__conn_add(s, fd) < 0) {
            close(fd);
            ipc__listener_pause(s);
            return;
        }
    }
}

/* ---------------------------------------------------------------- reading */

static void ipc__conn_read(ipc__socket_server *s, uint32_t id)
{
    ipc__conn *c = &s->conns[id];
    if (c->lent) {
        /* Reading could move the buffer under the lent frame: wait for
         * its release, which restores the interest. */
        (void)ipc__conn_interest(s, id, c->events & ~(uint32_t)EPOLLIN);
        return;
    }
    size_t budget = IPC_READ_BUDGET;
    while (budget > 0) {
        const uint8_t *p;
        uint32_t n;
        int r = ipc__frame_reader_peek(&c->rx, &p, &n);
        if (r < 0) {
            ipc__conn_kick_oversize(s, id);
            return;
        }
        if (r == 1 && ipc__frame_reader_buffered(&c->rx) >= IPC_INPUT_HIGH_WATER) {
            /* Enough buffered: stop reading until recv() drains it. */
            (void)ipc__conn_interest(s, id, c->events & ~(uint32_t)EPOLLIN);
            break;
        }
        size_t want = r == 1 ? 4096 : ipc__frame_reader_missing(&c->rx);
        uint8_t *dst;
        size_t room = ipc__frame_reader_room(&c->rx, want < 4096 ? 4096 : want, &dst);
        if (room == 0)
            break; /* out of memory: retry on the next wake-up */
        /* The rest of a frame already begun is read in one go, budget or
         * not: a 1 MiB request took four reads and four epoll_waits. */
        size_t cap = r == 0 && want > budget ? want : budget;
        if (room > cap)
            room = cap;
        ssize_t got = recv(c->fd, dst, room, MSG_DONTWAIT);
        if (got > 0) {
            ipc__frame_reader_commit(&c->rx, (size_t)got);
            budget = (size_t)got < budget ? budget - (size_t)got : 0;
            if ((size_t)got < room)
                break; /* drained the socket for now */
            continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (got < 0) {
            ipc__conn_drop(s, id);
            return;
        }
        /* EOF: requests already whole are still served. */
        c->eof = true;
        (void)ipc__conn_interest(s, id, c->events & ~(uint32_t)EPOLLIN);
        break;
    }
    if (c->state != IPC_CONN_LIVE)
        return;
    const uint8_t *p;
    uint32_t n;
    int r = ipc__frame_reader_peek(&c->rx, &p, &n);
    if (r < 0)
        ipc__conn_kick_oversize(s, id);
    else if (r == 1 && !c->held && !c->busy)
        ipc__enqueue(s, id);
    else if (r == 0)
        ipc__conn_settle(s, id);
}

/* ---------------------------------------------------------------- writing */

/* A held connection drained to half its bound: its requests flow again. */
static void ipc__conn_unhold(ipc__socket_server *s, uint32_t id)
{
    ipc__conn *c = &s->conns[id];
    if (c->held && c->tx_len - c->tx_off <= ipc__pending_limit(&s->base) / 2) {
        c->held = false;
        if (ipc__conn_ready(c))
            ipc__enqueue(s, id);
    }
}

/* Writes queued output; 0 when all of it went out or the socket is full,
 * -errno when the peer is gone. */
static int ipc__conn_write_queued(ipc__socket_server *s, uint32_t id)
{
    ipc__conn *c = &s->conns[id];
    while (c->tx_off < c->tx_len) {
        ssize_t n = send(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return ipc__conn_interest(s, id, c->events | EPOLLOUT);
        if (n < 0)
            return -errno;
        c->tx_off += (size_t)n;
        ipc__conn_unhold(s, id);
    }
    free(c->tx);
    c->tx = NULL;
    c->tx_off = c->tx_len = c->tx_cap = 0;
    s->tx_busy--;
    return ipc__conn_interest(s, id, c->events & ~(uint32_t)EPOLLOUT);
}

static void ipc__conn_writable(ipc__socket_server *s, uint32_t id)
{
    if (ipc__conn_write_queued(s, id) < 0)
        ipc__conn_drop(s, id);
    else
        ipc__conn_settle(s, id);
}

/* Room for `more` bytes after the queued ones: the queue moves to the front
 * and its buffer doubles (n small replies cost O(n)) up to the bound, past
 * it (replies owed beyond the bound) by a quarter: it holds at most the
 * bound, or 5/4 of the queue, rounded up to a page. */
static int ipc__conn_tx_reserve(ipc__conn *c, size_t more, size_t bound)
{
    size_t queued = c->tx_len - c->tx_off;
    if (c->tx_off > 0) {
        memmove(c->tx, c->tx + c->tx_off, queued);
        c->tx_off = 0;
        c->tx_len = queued;
    }
    size_t need = queued + more;
    if (need <= c->tx_cap)
        return 0;
    size_t page = 4096, cap = c->tx_cap ? c->tx_cap : page;
    size_t ceiling = bound > need ? bound : need + need / 4;
    while (cap < need)
        cap = cap > ceiling / 2 ? ceiling : cap * 2;
    cap = (cap + page - 1) / page * page;
    uint8_t *tx = realloc(c->tx, cap);
    if (tx == NULL)
        return -ENOMEM;
    c->tx = tx;
    c->tx_cap = cap;
    return 0;
}

/*
 * Appends the unsent part [sent, 4 + len) of a frame to the output queue.
 * A reply to a request always fits: the bound is kept by handing out no
 * request while the queue is over it (the connection is held). Output that
 * answers nothing and would pass the bound gives -ENOBUFS.
 */
static int ipc__conn_queue(ipc__socket_server *s, uint32_t id, const uint8_t *hdr,
                           const void *data, size_t len, size_t sent, bool answer)
{
    ipc__conn *c = &s->conns[id];
    size_t rest = IPC__FRAME_HEADER + len - sent;
    size_t queued = c->tx_len - c->tx_off;
    size_t bound = ipc__pending_limit(&s->base);
    if (!answer && queued + rest > bound)
        return -ENOBUFS;
    int rc = ipc__conn_tx_reserve(c, rest, bound);
    if (rc < 0)
        return rc;
    uint8_t *tx = c->tx;
    size_t off = c->tx_len;
    if (sent < IPC__FRAME_HEADER) {
        memcpy(tx + off, hdr + sent, IPC__FRAME_HEADER - sent);
        off += IPC__FRAME_HEADER - sent;
    }
    size_t from = sent > IPC__FRAME_HEADER ? sent - IPC__FRAME_HEADER : 0;
    if (len > from)
        memcpy(tx + off, (const uint8_t *)data + from, len - from);
    c->tx_len = queued + rest;
    if (queued == 0)
        s->tx_busy++;
    if (c->tx_len >= bound)
        c->held = true; /* until it drains to half: see ipc__conn_unhold() */
    return ipc__conn_interest(s, id, c->events | EPOLLOUT);
}

/* Writes a frame now if nothing is queued ahead of it; returns the bytes
 * written, or -errno when the peer is gone. */
static ssize_t ipc__conn_write_direct(ipc__conn *c, const uint8_t *hdr, const void *data,
                                      size_t len)
{
    if (c->tx_len > c->tx_off)
        return 0;
    struct iovec iov[2] = {{.iov_base = (void *)hdr, .iov_len = IPC__FRAME_HEADER},
                           {.iov_base = (void *)data, .iov_len = len}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    for (;;) {
        ssize_t n = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EAGAIN)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* ------------------------------------------------------------------ events */

static void ipc__handle_event(ipc__socket_server *s, const struct epoll_event *ev)
{
    uint32_t tag = ev->data.u32;
    if (tag == IPC_TAG_LISTENER) {
        ipc__accept_all(s);
        return;
    }
    if (tag == IPC_TAG_WAKE) {
        ipc__eventfd_drain(s->wake_fd);
        return;
    }
    ipc__conn *c = ipc__conn_get(s, (int)tag);
    if (c == NULL || c->state != IPC_CONN_LIVE)
        return;
    if (ev->events & EPOLLOUT)
        ipc__conn_writable(s, tag);
    if (c->state == IPC_CONN_LIVE && (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        ipc__conn_read(s, tag);
}

/* One epoll_wait until the deadline; handles what it reports. 0, or
 * -ETIMEDOUT when the deadline passed with nothing reported. */
static int ipc__poll_once(ipc__socket_server *s, uint64_t deadline)
{
    struct epoll_event evs[IPC_EVENTS];
    uint64_t until = deadline;
    if (s->accept_paused_until != 0) {
        if (ipc__now_ns() >= s->accept_paused_until)
            ipc__listener_resume(s);
        else if (s->accept_paused_until < until)
            until = s->accept_paused_until;
    }
    int n = epoll_wait(s->epoll_fd, evs, IPC_EVENTS, ipc__poll_ms(until));
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n == 0)
        return ipc__now_ns() >= deadline ? -ETIMEDOUT : 0;
    for (int i = 0; i < n; i++)
        ipc__handle_event(s, &evs[i]);
    return 0;
}

static int ipc__socket_server_wait_for_data(ipc_server *base, uint64_t deadline)
{
    ipc__socket_server *s = ipc__ss(base);
    /* A message returned last time and not taken is offered again, last. */
    if (s->last_id >= 0) {
        ipc__conn *c = &s->conns[s->last_id];
        if (ipc__conn_ready(c))
            ipc__enqueue(s, (uint32_t)s->last_id);
        s->last_id = -1;
    }
    for (;;) {
        if (ipc__stop_seen(&s->base))
            return -ECANCELED;
        if (ipc__kick_seen(&s->base))
            return -EINTR;
        uint32_t id;
        while (ipc__idq_pop(&s->ready, &id)) {
            ipc__conn *c = &s->conns[id];
            if (!c->queued)
                continue; /* dropped while queued */
            c->queued = false;
            /* A connection whose front frame is lent waits for its release,
             * which queues it again. */
            if (ipc__conn_ready(c)) {
                s->last_id = (int)id;
                return (int)id;
            }
        }
        int rc = ipc__poll_once(s, deadline);
        if (rc < 0)
            return rc;
    }
}

/* The whole frame at the front of a live connection's input, if any. */
static ssize_t ipc__conn_front(ipc__conn *c, const void **msg)
{
    const uint8_t *payload;
    uint32_t len;
    if (ipc__frame_reader_peek(&c->rx, &payload, &len) != 1)
        return -EAGAIN;
    *msg = payload;
    return (ssize_t)len;
}

/* Consumes the frame at the front of a connection's input. */
static ssize_t ipc__conn_consume(ipc__socket_server *s, int client_id)
{
    ipc__conn *c = &s->conns[client_id];
    uint32_t len = ipc__frame_get_len(c->rx.buf + c->rx.start);
    ipc__frame_reader_consume(&c->rx);
    /* Resume reading once below the high-water mark, or whenever no whole
     * frame is left: the rest of one can only arrive by reading. */
    if (!c->eof && !(c->events & EPOLLIN) &&
        (ipc__frame_reader_buffered(&c->rx) < IPC_INPUT_HIGH_WATER || !ipc__has_frame(c)))
        (void)ipc__conn_interest(s, (uint32_t)client_id, c->events | EPOLLIN);
    if (client_id == s->last_id)
        s->last_id = -1;
    if (ipc__conn_ready(c))
        ipc__enqueue(s, (uint32_t)client_id); /* back of the line: fairness */
    ipc__conn_settle(s, (uint32_t)client_id);
    return (ssize_t)len;
}

/* Lends the front frame; the first lending hands it out, so a reply is
 * owed from then on. */
static ssize_t ipc__socket_server_peek(ipc_server *base, int client_id, const void **msg)
{
    ipc__socket_server *s = ipc__ss(base);
    ipc__conn *c = ipc__conn_get(s, client_id);
    if (c == NULL || c->state != IPC_CONN_LIVE)
        return -ENOENT;
    ssize_t len = ipc__conn_front(c, msg);
    if (len >= 0 && !c->lent) {
        c->lent = true;
        c->owed++;
    }
    return len;
}

static ssize_t ipc__socket_server_release(ipc_server *base, int client_id)
{
    ipc__socket_server *s = ipc__ss(base);
    ipc__conn *c = ipc__conn_get(s, client_id);
    if (c == NULL || c->state == IPC_CONN_FREE)
        return -ENOENT;
    if (!c->lent)
        return -EINVAL;
    c->lent = false;
    if (c->state == IPC_CONN_ZOMBIE) { /* dropped while lent */
        ipc__frame_reader_free(&c->rx);
        if (c->owed == 0)
            ipc__release_id(s, (uint32_t)client_id);
        return -ECONNRESET;
    }
    return ipc__conn_consume(s, client_id);
}

static ssize_t ipc__socket_server_recv(ipc_server *base, int client_id, void *buf,
                                       size_t max_len)
{
    ipc__socket_server *s = ipc__ss(base);
    ipc__conn *c = ipc__conn_get(s, client_id);
    if (c == NULL || c->state != IPC_CONN_LIVE)
        return -ENOENT;
    const void *payload;
    ssize_t len = ipc__conn_front(c, &payload);
    if (len < 0)
        return len;
    bool fits = (size_t)len <= max_len;
    if (fits && len != 0)
        memcpy(buf, payload, (size_t)len);
    if (fits && !c->lent)
        c->owed++; /* handed out now */
    else if (!fits && c->lent)
        c->owed--; /* lent, then discarded: no reply expected after all */
    c->lent = false;
    ipc__conn_consume(s, client_id);
    return fits ? len : -EMSGSIZE;
}

static int ipc__socket_server_send(ipc_server *base, int client_id, const void *data,
                                   size_t len)
{
    ipc__socket_server *s = ipc__ss(base);
    ipc__conn *c = ipc__conn_get(s, client_id);
    if (c == NULL || c->state == IPC_CONN_FREE)
        return -ENOENT;
    bool answer = c->owed > 0;
    if (answer)
        c->owed--;
    if (c->state == IPC_CONN_ZOMBIE) {
        if (c->owed == 0 && !c->lent)
            ipc__release_id(s, (uint32_t)client_id);
        return -ECONNRESET;
    }
    uint8_t hdr[IPC__FRAME_HEADER];
    ipc__frame_put_len(hdr, (uint32_t)len);
    ssize_t sent = ipc__conn_write_direct(c, hdr, data, len);
    int rc = 0;
    if (sent < 0)
        rc = ipc__peer_gone((int)sent, false);
    else if ((size_t)sent < IPC__FRAME_HEADER + len)
        rc = ipc__conn_queue(s, (uint32_t)client_id, hdr, data, len, (size_t)sent, answer);
    if (rc < 0) {
        if (rc == -ENOBUFS)
            ipc__conn_kick(s, (uint32_t)client_id);
        else
            ipc__conn_drop(s, (uint32_t)client_id);
        return rc;
    }
    ipc__conn_settle(s, (uint32_t)client_id);
    return 0;
}

static int ipc__socket_server_flush(ipc_server *base, uint64_t deadline)
{
    ipc__socket_server *s = ipc__ss(base);
    while (s->tx_busy > 0) {
        int rc = ipc__poll_once(s, deadline);
        if (rc < 0)
            return rc;
        if (ipc__now_ns() >= deadline && s->tx_busy > 0)
            return -ETIMEDOUT;
    }
    return 0;
}

static void ipc__socket_server_wake(ipc_server *base)
{
    ipc__socket_server *s = ipc__ss(base);
    ipc__eventfd_signal(s->wake_fd); /* async-signal-safe */
}

static int ipc__epoll_add(int epfd, int fd, uint32_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Lock, epoll set, then the socket file last: once the path exists the
 * server accepts, and no failure can follow that would have to remove it. */
static int ipc__socket_server_listen(ipc_server *base)
{
    ipc__socket_server *s = ipc__ss(base);
    struct stat st;
    int rc = ipc__sock_lock_take(s->addr.sun_path);
    if (rc < 0)
        return rc;
    s->lock_fd = rc;
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0) {
        rc = -errno;
        goto failed_lock;
    }
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epoll_fd < 0) {
        rc = -errno;
        goto failed_socket;
    }
    if ((rc = ipc__epoll_add(s->epoll_fd, s->listen_fd, IPC_TAG_LISTENER)) < 0 ||
        (rc = ipc__epoll_add(s->epoll_fd, s->wake_fd, IPC_TAG_WAKE)) < 0)
        goto failed_epoll;
    rc = ipc__sock_publish(s->listen_fd, &s->addr, s->base.options.socket_mode, SOMAXCONN, &st);
    if (rc < 0)
        goto failed_epoll;
    s->inode = st.st_ino;
    s->dev = st.st_dev;
    s->last_id = -1;
    return 0;

failed_epoll:
    close(s->epoll_fd);
failed_socket:
    close(s->listen_fd);
failed_lock:
    close(s->lock_fd);
    s->listen_fd = s->lock_fd = s->epoll_fd = -1;
    return rc;
}

static void ipc__socket_server_close(ipc_server *base)
{
    ipc__socket_server *s = ipc__ss(base);
    (void)ipc__socket_server_flush(base, ipc__now_ns() + IPC_CLOSE_FLUSH_NS);
    for (size_t id = 0; id < s->nconns; id++) {
        s->conns[id].lent = false; /* nothing may be lent past close */
        ipc__conn_drop(s, (uint32_t)id);
        ipc__frame_reader_free(&s->conns[id].rx);
        s->conns[id].state = IPC_CONN_FREE;
    }
    free(s->conns);
    s->conns = NULL;
    s->nconns = 0;
    s->tx_busy = 0;
    s->accept_paused_until = 0;
    ipc__idq_free(&s->ready);
    ipc__idq_free(&s->free_ids);
    /* Unlink only the socket file we created, not one that replaced it. */
    struct stat st;
    if (lstat(s->addr.sun_path, &st) == 0 && st.st_ino == s->inode && st.st_dev == s->dev)
        unlink(s->addr.sun_path);
    close(s->epoll_fd);
    close(s->listen_fd);
    close(s->lock_fd); /* last: the name is free only once the file is gone */
    s->listen_fd = s->lock_fd = s->epoll_fd = -1;
}

/* run() passed its own request limit: connections already open take it. */
static void ipc__socket_server_set_limit(ipc_server *base)
{
    ipc__socket_server *s = ipc__ss(base);
    for (size_t i = 0; i < s->nconns; i++)
        s->conns[i].rx.max_payload = base->max_message;
}

static int ipc__socket_server_fd(ipc_server *base)
{
    /* The epoll set polls readable when any of its fds has an event. */
    return ipc__ss(base)->epoll_fd;
}

static void ipc__socket_server_destroy(ipc_server *base)
{
    ipc__socket_server *s = ipc__ss(base);
    close(s->wake_fd);
    free(s);
}

/* A zombie (dropped, replies still owed) keeps its number until its id is
 * released: a late reply to it finds it and is discarded by send(). */
static uint64_t ipc__socket_server_conn_gen(ipc_server *base, int client_id)
{
    ipc__conn *c = ipc__conn_get(ipc__ss(base), client_id);
    return c == NULL || c->state == IPC_CONN_FREE ? 0 : c->gen;
}

static void ipc__socket_server_hold(ipc_server *base, int client_id, bool held)
{
    ipc__socket_server *s = ipc__ss(base);
    ipc__conn *c = ipc__conn_get(s, client_id);
    if (c == NULL || c->state != IPC_CONN_LIVE || c->busy == held)
        return;
    c->busy = held;
    if (!held && ipc__conn_ready(c))
        ipc__enqueue(s, (uint32_t)client_id);
}

/* A request handed out will not be answered: owe nothing for it. */
static void ipc__socket_server_forget(ipc_server *base, int client_id)
{
    ipc__socket_server *s = ipc__ss(base);
    ipc__conn *c = ipc__conn_get(s, client_id);
    if (c == NULL || c->state == IPC_CONN_FREE || c->owed == 0)
        return;
    c->owed--;
    if (c->state == IPC_CONN_ZOMBIE && c->owed == 0 && !c->lent)
        ipc__release_id(s, (uint32_t)client_id);
    else
        ipc__conn_settle(s, (uint32_t)client_id);
}

static void ipc__socket_server_disconnect(ipc_server *base, int client_id)
{
    ipc__socket_server *s = ipc__ss(base);
    ipc__conn *c = ipc__conn_get(s, client_id);
    if (c != NULL && c->state == IPC_CONN_LIVE)
        ipc__conn_kick(s, (uint32_t)client_id);
}

static const ipc_server_ops ipc__socket_server_ops = {
    .name = "socket",
    IPC__SERVER_OPS(ipc__socket_server),
    .set_limit = ipc__socket_server_set_limit,
    .conn_gen = ipc__socket_server_conn_gen,
    .hold = ipc__socket_server_hold,
    .forget = ipc__socket_server_forget,
    .disconnect = ipc__socket_server_disconnect,
};

ipc_server *ipc__socket_server_create(const char *path, int initial_clients,
                                      const ipc_server_options *resolved)
{
    ipc__socket_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (!ipc__sockaddr_path(&s->addr, path)) {
        free(s);
        return NULL;
    }
    /* The wake eventfd lives from here to destroy, so ipc_server_stop()
     * from any thread, at any time, writes to this fd and no other. */
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0) {
        free(s);
        return NULL;
    }
    s->base.ops = &ipc__socket_server_ops;
    s->base.options = *resolved;
    s->listen_fd = s->lock_fd = s->epoll_fd = -1;
    s->last_id = -1;
    s->initial_clients = initial_clients > 0 ? (size_t)initial_clients : 16;
    return &s->base;
}
