/*
 * The shared-memory server (design in docs/SHM.md).
 *
 * For each accepted client it creates a segment (shm_segment.c) and passes
 * it in the hello (shm_handshake.c) with the doorbell page and an eventfd of
 * the client's own for waking the server (bell.h): nothing a client can
 * write is shared with another client. It polls the request rings round
 * robin (no syscalls) and sleeps on the doorbell when idle. Replies go into
 * the response ring; a reply that does not fit is queued privately, counted
 * at its cost, and flushed later, so a client that stops reading never
 * blocks the server; at max_pending_output its requests wait in its ring
 * (back-pressure) until it reads.
 *
 * Admin: a watcher thread sleeps in epoll_wait on the listener and every
 * client socket. It accepts and refuses other users itself (anyone can
 * connect to an abstract name: their loops must not hold the serving
 * thread); for allowed connections and hang-ups it sets hints,
 * admin_pending, and rings the doorbell. Only the server's own thread
 * changes the client table.
 */
#include "ipc/shm/shm_transport.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ipc/shm/bell.h"
#include "ipc/shm/mpsc.h"
#include "ipc/shm/shm_handshake.h"
#include "ipc/shm/shm_layout.h"
#include "ipc/shm/shm_segment.h"
#include "ipc/shm/spsc_ring.h"
#include "ipc/shm/wait.h"
#include "ipc/unix/unix.h"

/* The server re-polls at least this often: a safety net (no wake-up can be
 * lost, bell.h), and the retry of a failed accept. */
#define IPC__SHM_SERVER_SLICE_NS (250ull * 1000 * 1000)
/* epoll tags besides slot indices. */
#define IPC__TAG_LISTEN (UINT64_MAX - 1)
/* The watcher accepts at most this many connections between two looks at
 * the clients' sockets, and retries this long after accept failed. */
#define IPC__ACCEPT_BATCH 64
#define IPC__ACCEPT_RETRY_NS (62ull * 1000 * 1000)
#define IPC__TAG_STOP UINT64_MAX

typedef struct ipc__shm_out {
    struct ipc__shm_out *next;
    size_t len;
    unsigned char data[];
} ipc__shm_out;

typedef struct ipc__shm_slot {
    int fd; /* rendezvous socket; -1 when the slot is free */
    ipc__shm_segment seg; /* we consume seg.req and produce seg.resp */
    int wake_fd;          /* the client's eventfd in our doorbell's epoll set */
    ipc__shm_out *out_head, *out_tail; /* replies that did not fit */
    size_t out_cost;    /* what they cost us: ipc__out_cost() summed */
    bool paused;        /* queue at its bound: requests left in the ring */
    bool peeked;        /* a request is lent to the application */
    bool doomed;        /* dropped while lent: finish at release */
    uint32_t peeked_len;
    bool loaned;        /* a reply is being written in place */
    bool wake_owed;     /* published to unannounced in a batch: wake at its end */
} ipc__shm_slot;

typedef struct ipc__shm_server {
    ipc_server base;
    char name[IPC_SHM_NAME_MAX + 1];
    size_t max_clients;
    ipc__shm_slot *slots;
    ipc__spsc_ring **views;  /* mpsc table: &slots[i].seg.req or NULL */
    _Atomic uint8_t *hints; /* watcher -> main: slot i had a socket event */
    struct pollfd *pfds;    /* sweep scratch */
    ipc__mpsc mpsc;
    size_t n_clients;
    size_t n_out; /* slots with queued replies */
    int listen_fd, epoll_fd, stop_fd;
    ipc__bell bell; /* opened at the first listen, lives until destroy (wake) */
    pthread_t watcher;
    bool watcher_running;
    pthread_mutex_t admit_mu; /* guards admit, admit_n */
    int *admit;      /* watcher -> main: accepted, checked, waiting for a slot */
    size_t admit_n;
    _Atomic uint32_t admin_pending;
    _Atomic uint32_t accept_pending;
} ipc__shm_server;

static ipc__shm_server *ipc__srv(ipc_server *base)
{
    return (ipc__shm_server *)base;
}

/* The longest request taken now. A client was told the limit in force when
 * it connected; one sending more (it was told more before run() lowered
 * the limit, or it ignores what it was told) is dropped, as on sockets:
 * a request is never consumed without an answer. */
static size_t ipc__srv_limit(ipc__shm_server *s)
{
    return s->base.max_message;
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
    sl->out_cost = 0;
}

/* What one queued reply of len bytes really costs: the payload, our node,
 * and the allocator's chunk header and rounding (glibc: 8 bytes of header,
 * 16-byte steps, 32 at least). An empty reply is not free. */
static size_t ipc__out_cost(size_t len)
{
    size_t n = (sizeof(ipc__shm_out) + len + sizeof(size_t) + 15) & ~(size_t)15;
    return n < 32 ? 32 : n;
}

/* Back-pressure: a client whose queued replies reach max_pending_output is
 * served no more requests (they wait in its ring, so its sends block) until
 * the queue drains below the bound. Reading, however slowly, drains it. */
static void ipc__srv_pause(ipc__shm_server *s, int id)
{
    ipc__shm_slot *sl = &s->slots[id];
    if (!sl->paused && sl->out_cost >= ipc__pending_limit(&s->base)) {
        sl->paused = true;
        s->views[id] = NULL;
    }
}

static void ipc__srv_resume(ipc__shm_server *s, int id)
{
    ipc__shm_slot *sl = &s->slots[id];
    if (sl->paused && sl->out_cost < ipc__pending_limit(&s->base) && !sl->doomed) {
        sl->paused = false;
        s->views[id] = &sl->seg.req;
    }
}

/* Drops a client: its half-written frames go with the segment. */
static void ipc__srv_drop(ipc__shm_server *s, int id)
{
    ipc__shm_slot *sl = &s->slots[id];
    s->views[id] = NULL;
    if (sl->peeked) {
        /* The application still reads a request in this segment: unmap
         * once it releases it (ipc__shm_server_release), and serve no more. */
        sl->doomed = true;
        return;
    }
    /* Tell a client still alive (dropped for misbehaving, or server close)
     * at once rather than at its next socket check. Release [C]: pairs with
     * the acquire in ipc__cli_server_gone() (shm_client.c). */
    atomic_store_explicit(&sl->seg.hdr->server_closed, 1, memory_order_release);
    ipc__wait_notify(&sl->seg.resp.shared->data);
    ipc__wait_notify(&sl->seg.req.shared->space);
    (void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, sl->fd, NULL);
    ipc__close_fd(&sl->fd);
    ipc__bell_remove(&s->bell, sl->wake_fd);
    ipc__shm_segment_unmap(&sl->seg);
    ipc__srv_free_out(s, sl);
    *sl = (ipc__shm_slot){.fd = -1, .wake_fd = -1};
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

static int ipc__srv_epoll_add(int ep, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Gives slot id a new segment, registers fd with the watcher and sends the
 * hello. */
static int ipc__srv_open_slot(ipc__shm_server *s, int id, int fd)
{
    ipc__shm_slot *sl = &s->slots[id];
    *sl = (ipc__shm_slot){.fd = -1, .wake_fd = -1};
    int seg_fd, rc = ipc__shm_segment_create(&sl->seg, s->base.options.ring_size, (uint32_t)id,
                                             (uint32_t)s->max_clients, ipc__srv_limit(s),
                                             &seg_fd);
    if (rc < 0)
        return rc;
    if ((rc = ipc__bell_add(&s->bell, &sl->wake_fd)) < 0)
        goto failed_wake;
    atomic_store_explicit(&s->hints[id], 0, memory_order_relaxed);
    if ((rc = ipc__srv_epoll_add(s->epoll_fd, fd, EPOLLIN | EPOLLRDHUP | EPOLLET,
                                 (uint64_t)id)) < 0)
        goto failed_epoll;
    int fds[IPC_SHM_HELLO_FDS] = {[IPC_SHM_HELLO_SEGMENT] = seg_fd,
                                  [IPC_SHM_HELLO_BELL] = s->bell.page_fd,
                                  [IPC_SHM_HELLO_WAKE] = sl->wake_fd};
    if ((rc = ipc__shm_hello_send(fd, 0, (uint32_t)id, fds)) < 0)
        goto failed_hello;
    close(seg_fd); /* the mapping keeps the memory; the client has its own fd */
    sl->fd = fd;
    s->views[id] = &sl->seg.req;
    s->n_clients++;
    ipc__stat_add(s->base.stats.block, IPC__STAT_CONNECTS, 1);
    ipc__stat_add(s->base.stats.block, IPC__STAT_CLIENTS, 1);
    return 0;
failed_hello:
    (void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
failed_epoll:
    ipc__bell_remove(&s->bell, sl->wake_fd);
failed_wake:
    ipc__shm_segment_unmap(&sl->seg);
    *sl = (ipc__shm_slot){.fd = -1, .wake_fd = -1};
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

/* Gives a connection the watcher accepted and checked a slot, or tells it
 * "busy". Server thread. */
static void ipc__srv_admit(ipc__shm_server *s, int fd)
{
    int id = ipc__srv_free_slot(s);
    if (id < 0) {
        /* "A closed client's slot is free again at once": its hang-up may
         * not have reached us through the watcher yet. */
        ipc__srv_sweep(s);
        id = ipc__srv_free_slot(s);
    }
    int rc = id < 0 ? -EAGAIN : ipc__srv_open_slot(s, id, fd);
    if (rc < 0) {
        (void)ipc__shm_hello_send(fd, (uint32_t)-rc, UINT32_MAX, NULL);
        close(fd);
    }
}

/* Takes what the watcher queued for a slot. Server thread. */
static void ipc__srv_admit_all(ipc__shm_server *s)
{
    int fds[64];
    for (;;) {
        pthread_mutex_lock(&s->admit_mu);
        size_t n = s->admit_n < 64 ? s->admit_n : 64;
        s->admit_n -= n;
        memcpy(fds, s->admit + s->admit_n, n * sizeof(int));
        pthread_mutex_unlock(&s->admit_mu);
        if (n == 0)
            return;
        for (size_t i = 0; i < n; i++)
            ipc__srv_admit(s, fds[i]);
    }
}

/* Watcher: queues an accepted connection of an allowed user for a slot;
 * false when max_clients already wait. */
static bool ipc__srv_admit_push(ipc__shm_server *s, int fd)
{
    pthread_mutex_lock(&s->admit_mu);
    bool room = s->admit_n < s->max_clients;
    if (room)
        s->admit[s->admit_n++] = fd;
    pthread_mutex_unlock(&s->admit_mu);
    return room;
}

/* Watcher: accepts a batch and refuses other users at once. Anyone can
 * connect to an abstract name, so this runs off the serving thread: a user
 * we refuse, connecting in a loop, costs the clients we serve nothing and
 * is drained as fast as it connects. The listener is level-triggered, so a
 * backlog longer than one batch comes back at the next epoll_wait. Returns
 * whether a connection waits for a slot; *failed when accept ran out of
 * fds or memory (the watcher retries later). */
static bool ipc__srv_watch_accept(ipc__shm_server *s, bool *failed)
{
    bool queued = false;
    for (int k = 0; k < IPC__ACCEPT_BATCH; k++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            *failed = errno != EAGAIN && errno != EWOULDBLOCK;
            break;
        }
        int rc = ipc__peer_ok(fd);
        if (rc == 0)
            rc = ipc__srv_admit_push(s, fd) ? 0 : -EAGAIN;
        if (rc < 0) {
            (void)ipc__shm_hello_send(fd, (uint32_t)-rc, UINT32_MAX, NULL);
            close(fd);
            continue;
        }
        queued = true;
    }
    return queued;
}

/* Table changes requested by the watcher; main thread only. */
static void ipc__srv_admin(ipc__shm_server *s)
{
    /* Relaxed first look: the hot path then pays no locked instruction.
     * Acquire [A] on the exchange pairs with the watcher's release store and
     * publishes its hints. */
    if (atomic_load_explicit(&s->admin_pending, memory_order_relaxed) == 0 ||
        atomic_exchange_explicit(&s->admin_pending, 0, memory_order_acquire) == 0)
        return;
    for (size_t i = 0; i < s->max_clients; i++) {
        /* Relaxed: ordered by the admin_pending acquire above. A hint is
         * only a hint (the slot may have been reused); the poll decides. */
        if (atomic_exchange_explicit(&s->hints[i], 0, memory_order_relaxed) &&
            s->slots[i].fd >= 0 && ipc__fd_hung_up(s->slots[i].fd))
            ipc__srv_drop(s, (int)i);
    }
    if (atomic_exchange_explicit(&s->accept_pending, 0, memory_order_relaxed))
        ipc__srv_admit_all(s);
}

/* Watcher: out of fds or memory, accept would fail at once again and the
 * level-triggered listener would spin us: leave it out for a while. */
static void ipc__srv_listener_pause(ipc__shm_server *s, bool pause)
{
    if (pause)
        (void)epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, s->listen_fd, NULL);
    else
        (void)ipc__srv_epoll_add(s->epoll_fd, s->listen_fd, EPOLLIN, IPC__TAG_LISTEN);
}

static void *ipc__srv_watch(void *arg)
{
    ipc__shm_server *s = arg;
    struct epoll_event ev[32];
    bool paused = false;
    uint64_t resume_at = 0;
    for (;;) {
        if (paused && ipc__now_ns() >= resume_at)
            ipc__srv_listener_pause(s, paused = false);
        int n = epoll_wait(s->epoll_fd, ev, 32, paused ? ipc__poll_ms(resume_at) : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        bool work = false;
        for (int i = 0; i < n; i++) {
            uint64_t tag = ev[i].data.u64;
            if (tag == IPC__TAG_STOP)
                return NULL;
            /* Relaxed: published by the admin_pending release below. */
            if (tag == IPC__TAG_LISTEN) {
                bool failed = false;
                if (ipc__srv_watch_accept(s, &failed)) {
                    atomic_store_explicit(&s->accept_pending, 1, memory_order_relaxed);
                    work = true;
                }
                if (failed && !paused) {
                    ipc__srv_listener_pause(s, paused = true);
                    resume_at = ipc__now_ns() + IPC__ACCEPT_RETRY_NS;
                }
            } else if (tag < s->max_clients) {
                atomic_store_explicit(&s->hints[tag], 1, memory_order_relaxed);
                work = true;
            }
        }
        if (!work)
            continue; /* only refused connections: nothing for the server */
        /* Release [A]: publishes the hints above to ipc__srv_admin(). */
        atomic_store_explicit(&s->admin_pending, 1, memory_order_release);
        ipc__bell_ring_self(&s->bell);
    }
}

/* Pushes queued replies of slot id; <0 when its ring is corrupt. */
static int ipc__srv_flush_slot(ipc__shm_server *s, int id)
{
    ipc__shm_slot *sl = &s->slots[id];
    int rc = 0;
    while (sl->out_head != NULL) {
        ipc__shm_out *o = sl->out_head;
        if ((rc = ipc__spsc_push(&sl->seg.resp, o->data, o->len)) <= 0)
            break;
        sl->out_head = o->next;
        sl->out_cost -= ipc__out_cost(o->len);
        free(o);
    }
    if (rc >= 0)
        ipc__srv_resume(s, id);
    if (sl->out_head != NULL)
        return rc;
    sl->out_tail = NULL;
    s->n_out--;
    /* Relaxed: a client seeing a stale 1 only rings the doorbell once too
     * often; the flag guards no data. */
    atomic_store_explicit(&sl->seg.hdr->want_space, 0, memory_order_relaxed);
    return 0;
}

static void ipc__srv_flush_all(ipc__shm_server *s)
{
    for (size_t i = 0; i < s->max_clients && s->n_out != 0; i++)
        if (s->slots[i].fd >= 0 && s->slots[i].out_head != NULL &&
            ipc__srv_flush_slot(s, (int)i) < 0)
            ipc__srv_kick(s, (int)i);
}

/* true when some queued reply can move now (or its ring is corrupt). */
static bool ipc__srv_flushable(ipc__shm_server *s)
{
    for (size_t i = 0; i < s->max_clients && s->n_out != 0; i++) {
        ipc__shm_slot *sl = &s->slots[i];
        if (sl->fd >= 0 && sl->out_head != NULL &&
            ipc__spsc_writable(&sl->seg.resp, sl->out_head->len) != 0)
            return true;
    }
    return false;
}

/* Why the server must leave its doorbell wait, besides a request. */
static bool ipc__srv_interrupt(void *arg)
{
    ipc__shm_server *s = arg;
    /* Relaxed admin_pending: only a reason to wake; ipc__srv_admin()'s
     * acquire exchange is what orders the watcher's hints. */
    return ipc__stop_seen(&s->base) ||
           atomic_load_explicit(&s->admin_pending, memory_order_relaxed) != 0 ||
           (s->n_out != 0 && ipc__srv_flushable(s));
}

/* The next request of slot id: 1 with it, 0 with none; a corrupt ring or
 * a request over the limit drops the client (-EPROTO / -EMSGSIZE). */
static int ipc__srv_next(ipc__shm_server *s, int id, const void **p, uint32_t *n)
{
    int rc = ipc__spsc_peek(&s->slots[id].seg.req, p, n);
    if (rc == 1 && *n > ipc__srv_limit(s))
        rc = -EMSGSIZE;
    if (rc < 0)
        ipc__srv_kick(s, id);
    return rc;
}

/* Confirms that ring id has a valid frame; drops the client if not. */
static bool ipc__srv_frame_ready(ipc__shm_server *s, int id)
{
    const void *p;
    uint32_t n;
    return ipc__srv_next(s, id, &p, &n) == 1;
}

static int ipc__shm_server_wait_for_data(ipc_server *base, uint64_t deadline)
{
    ipc__shm_server *s = ipc__srv(base);
    bool drained = false;
    for (;;) {
        if (ipc__stop_seen(&s->base))
            return -ECANCELED;
        ipc__srv_admin(s);
        if (s->n_out != 0)
            ipc__srv_flush_all(s);
        int id = ipc__mpsc_poll(&s->mpsc);
        if (id >= 0) {
            if (ipc__srv_frame_ready(s, id))
                return id;
            continue;
        }
        if (s->bell.held && ipc__now_ns() >= deadline) {
            /* An event loop polls our fd. Empty it, then look once more:
             * a ring before the drain is seen by that look, one after it
             * leaves the fd readable. */
            if (drained)
                return -ETIMEDOUT;
            ipc__bell_drain(&s->bell);
            drained = true;
            continue;
        }
        /* A request due any moment is found without a clock read. */
        if (deadline != IPC_NOW) {
            id = ipc__mpsc_poll_briefly(&s->mpsc, ipc__srv_interrupt, s);
            if (id >= 0 && ipc__srv_frame_ready(s, id))
                return id;
            if (id != -1)
                continue; /* interrupted, or a corrupt ring was dropped */
        }
        /* A passed deadline still gets one look in ipc__mpsc_wait(). */
        uint64_t slice = ipc__min_u64(deadline, ipc__now_ns() + IPC__SHM_SERVER_SLICE_NS);
        id = ipc__mpsc_wait(&s->mpsc, ipc__srv_interrupt, s, s->base.options.spin_ns, slice);
        if (id >= 0 && ipc__srv_frame_ready(s, id))
            return id;
        if (id == -ETIMEDOUT && slice == deadline)
            return -ETIMEDOUT;
    }
}

static ssize_t ipc__shm_server_recv(ipc_server *base, int client_id, void *buf, size_t max_len)
{
    ipc__shm_server *s = ipc__srv(base);
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ENOENT;
    const void *p;
    uint32_t n;
    int rc = ipc__srv_next(s, client_id, &p, &n);
    if (rc <= 0)
        return rc == 0 ? -EAGAIN : rc;
    if (n > max_len) {
        ipc__spsc_release(&sl->seg.req);
        return -EMSGSIZE;
    }
    if (n != 0)
        memcpy(buf, p, n);
    ipc__spsc_release(&sl->seg.req); /* also wakes a client waiting for space */
    return (ssize_t)n;
}

/* Queues a reply that does not fit the ring now. The queue pauses the
 * client at max_pending_output (ipc__srv_pause), so one reply per request
 * never gets near twice that; only an application sending many replies
 * per request to a client that does not read gets the client dropped. */
static int ipc__srv_queue(ipc__shm_server *s, int id, const void *data, size_t len)
{
    ipc__shm_slot *sl = &s->slots[id];
    if (sl->out_cost >= 2 * ipc__pending_limit(&s->base)) {
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
    sl->out_cost += ipc__out_cost(len);
    ipc__srv_pause(s, id);
    if (sl->out_tail != NULL) {
        sl->out_tail->next = o;
        sl->out_tail = o;
        return 0;
    }
    sl->out_head = sl->out_tail = o;
    s->n_out++;
    /* [W] Dekker with the client's recv (ipc__cli_released): it stores
     * head, fences (inside ipc__wait_notify) and reads want_space; we store
     * want_space, fence and re-read head in the flush below. One of us sees
     * the other: either the flush succeeds or the client rings the bell. */
    atomic_store_explicit(&sl->seg.hdr->want_space, 1, memory_order_relaxed);
    ipc__wait_fence();
    if (ipc__srv_flush_slot(s, id) < 0) {
        ipc__srv_kick(s, id);
        return -ECONNRESET;
    }
    return 0;
}

static int ipc__shm_server_send(ipc_server *base, int client_id, const void *data, size_t len)
{
    ipc__shm_server *s = ipc__srv(base);
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ENOENT;
    if (len > ipc__spsc_max_payload(s->base.options.ring_size))
        return -EMSGSIZE;
    if (sl->out_head == NULL) { /* keep order: nothing may overtake the queue */
        int rc = ipc__spsc_push(&sl->seg.resp, data, len);
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

static int ipc__shm_server_flush(ipc_server *base, uint64_t deadline)
{
    ipc__shm_server *s = ipc__srv(base);
    for (;;) {
        ipc__srv_admin(s); /* a client that died need not be waited for */
        ipc__srv_flush_all(s);
        if (s->n_out == 0)
            return 0;
        uint64_t now = ipc__now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t slice = ipc__min_u64(deadline, now + IPC__SHM_SERVER_SLICE_NS);
        (void)ipc__bell_wait(&s->bell, ipc__srv_flush_ready, s, s->base.options.spin_ns, slice);
    }
}

static void ipc__shm_server_wake(ipc_server *base)
{
    ipc__shm_server *s = ipc__srv(base);
    /* Async-signal-safe: an atomic load and a write(2). */
    ipc__bell_ring_self(&s->bell);
}

/* The doorbell outlives close() so that wake() never writes a closed fd. */
static int ipc__srv_make_bell(ipc__shm_server *s)
{
    return s->bell.page != NULL ? 0 : ipc__bell_open(&s->bell, IPC_SHM_VERSION);
}

/* The watcher takes no signals: they belong to the application's threads. */
static int ipc__srv_start_watcher(ipc__shm_server *s)
{
    int rc = ipc__thread_start_nosig(&s->watcher, ipc__srv_watch, s);
    s->watcher_running = rc == 0;
    return rc;
}

static void ipc__srv_stop_watcher(ipc__shm_server *s)
{
    if (!s->watcher_running)
        return;
    ipc__eventfd_signal(s->stop_fd);
    pthread_join(s->watcher, NULL);
    s->watcher_running = false;
}

static int ipc__shm_server_listen(ipc_server *base)
{
    ipc__shm_server *s = ipc__srv(base);
    int rc = ipc__srv_make_bell(s);
    if (rc < 0)
        return rc;
    if ((rc = ipc__shm_listen(s->name)) < 0)
        return rc;
    s->listen_fd = rc;
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epoll_fd < 0) {
        rc = -errno;
        goto failed_listen;
    }
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->stop_fd < 0) {
        rc = -errno;
        goto failed_epoll;
    }
    if ((rc = ipc__srv_epoll_add(s->epoll_fd, s->listen_fd, EPOLLIN, IPC__TAG_LISTEN)) < 0 ||
        (rc = ipc__srv_epoll_add(s->epoll_fd, s->stop_fd, EPOLLIN, IPC__TAG_STOP)) < 0)
        goto failed_stop;
    atomic_store_explicit(&s->admin_pending, 0, memory_order_relaxed);
    atomic_store_explicit(&s->accept_pending, 0, memory_order_relaxed);
    ipc__mpsc_init(&s->mpsc, s->views, s->max_clients, &s->bell);
    if ((rc = ipc__srv_start_watcher(s)) < 0)
        goto failed_stop;
    return 0;
failed_stop:
    ipc__close_fd(&s->stop_fd);
failed_epoll:
    ipc__close_fd(&s->epoll_fd);
failed_listen:
    ipc__close_fd(&s->listen_fd);
    return rc;
}

static void ipc__shm_server_close(ipc_server *base)
{
    ipc__shm_server *s = ipc__srv(base);
    ipc__srv_stop_watcher(s);
    ipc__close_fds(s->admit, (int)s->admit_n); /* they see "no server": retry */
    s->admit_n = 0;
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

/* The server's memory: its per-slot arrays (any of them may be NULL) and s. */
static void ipc__srv_free(ipc__shm_server *s)
{
    free(s->admit);
    free(s->pfds);
    free((void *)s->hints);
    free(s->views);
    free(s->slots);
    free(s);
}

static void ipc__shm_server_destroy(ipc_server *base)
{
    ipc__shm_server *s = ipc__srv(base);
    ipc__bell_close(&s->bell);
    pthread_mutex_destroy(&s->admit_mu);
    ipc__srv_free(s);
}

/* Inside a batch (base.batch_client): something was published to the
 * client without a wake. A client already seen asleep on w is woken now,
 * not at the batch's end; ipc__shm_server_end_batch() catches one falling asleep. */
static void ipc__srv_owe_wake(ipc__shm_slot *sl, ipc__waitpoint *w)
{
    if (ipc__wait_sleeper_seen(w))
        ipc__wait_notify(w);
    sl->wake_owed = true;
}

static ssize_t ipc__shm_server_peek(ipc_server *base, int client_id, const void **msg)
{
    ipc__shm_server *s = ipc__srv(base);
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ENOENT;
    uint32_t n;
    int rc = ipc__srv_next(s, client_id, msg, &n);
    if (rc <= 0)
        return rc == 0 ? -EAGAIN : rc;
    sl->peeked = true;
    sl->peeked_len = n;
    return (ssize_t)n;
}

static ssize_t ipc__shm_server_release(ipc_server *base, int client_id)
{
    ipc__shm_server *s = ipc__srv(base);
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
    if (base->batch_client == client_id) {
        ipc__spsc_release_nowake(&sl->seg.req);
        ipc__srv_owe_wake(sl, &sl->seg.req.shared->space);
    } else {
        ipc__spsc_release(&sl->seg.req); /* also wakes a client waiting for space */
    }
    return (ssize_t)sl->peeked_len;
}

/* The next request is there (or the ring turned out corrupt: the peek that
 * follows reports it and drops the client) and the client may be served: a
 * paused one (ipc__srv_pause) ends its batch, so the bound holds in one. */
static bool ipc__shm_server_has_next(ipc_server *base, int client_id)
{
    ipc__shm_slot *sl = ipc__srv_slot(ipc__srv(base), client_id);
    return sl != NULL && !sl->doomed && !sl->paused && ipc__spsc_readable(&sl->seg.req) != 0;
}

/* The run loop's batch for this client is over: one fence for every reply
 * ([T]) and release ([H]) published to it unannounced. */
static void ipc__shm_server_end_batch(ipc_server *base, int client_id)
{
    ipc__shm_slot *sl = ipc__srv_slot(ipc__srv(base), client_id);
    if (sl == NULL || !sl->wake_owed)
        return;
    sl->wake_owed = false;
    ipc__wait_notify_pair(&sl->seg.resp.shared->data, &sl->seg.req.shared->space);
}

/* Space in the client's response ring itself; -EAGAIN when it has none now
 * or earlier replies wait in the queue (they go first). */
static int ipc__shm_server_loan(ipc_server *base, int client_id, size_t len, void **buf)
{
    ipc__shm_server *s = ipc__srv(base);
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ENOENT;
    if (sl->out_head != NULL)
        return -EAGAIN;
    int rc = ipc__spsc_claim(&sl->seg.resp, len, buf);
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

static int ipc__shm_server_commit(ipc_server *base, int client_id, size_t len)
{
    ipc__shm_server *s = ipc__srv(base);
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL)
        return -ECONNRESET; /* dropped while the reply was written */
    if (!sl->loaned)
        return -EINVAL;
    sl->loaned = false;
    if (base->batch_client == client_id) {
        ipc__spsc_publish_nowake(&sl->seg.resp, len);
        ipc__srv_owe_wake(sl, &sl->seg.resp.shared->data);
    } else {
        ipc__spsc_publish(&sl->seg.resp, len); /* also wakes the client */
    }
    return 0;
}

static int ipc__shm_server_fd(ipc_server *base)
{
    ipc__shm_server *s = ipc__srv(base);
    if (!s->bell.held)
        ipc__bell_ring_self(&s->bell); /* work may already be waiting */
    return ipc__bell_hold(&s->bell);
}

static const ipc_server_ops ipc__shm_server_ops = {
    .name = "shm",
    IPC__SERVER_OPS(ipc__shm_server),
    .loan = ipc__shm_server_loan,
    .commit = ipc__shm_server_commit,
    .has_next = ipc__shm_server_has_next,
    .end_batch = ipc__shm_server_end_batch,
};

ipc_server *ipc__shm_server_create(const char *name, size_t max_clients,
                                   const ipc_server_options *resolved)
{
    if (name == NULL || !ipc__shm_name_ok(name) || max_clients == 0 ||
        max_clients > IPC_SHM_MAX_CLIENTS || resolved == NULL ||
        !ipc__spsc_capacity_ok(resolved->ring_size))
        return NULL;
    ipc__shm_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->slots = calloc(max_clients, sizeof(*s->slots));
    s->views = calloc(max_clients, sizeof(*s->views));
    s->hints = calloc(max_clients, sizeof(*s->hints));
    s->pfds = calloc(max_clients, sizeof(*s->pfds));
    s->admit = calloc(max_clients, sizeof(*s->admit));
    if (s->slots == NULL || s->views == NULL || s->hints == NULL || s->pfds == NULL ||
        s->admit == NULL) {
        ipc__srv_free(s);
        return NULL;
    }
    for (size_t i = 0; i < max_clients; i++)
        s->slots[i] = (ipc__shm_slot){.fd = -1, .wake_fd = -1};
    pthread_mutex_init(&s->admit_mu, NULL);
    s->base.ops = &ipc__shm_server_ops;
    s->base.options = *resolved;
    atomic_init(&s->base.stop_requested, 0);
    memcpy(s->name, name, strlen(name) + 1);
    s->max_clients = max_clients;
    s->listen_fd = s->epoll_fd = s->stop_fd = -1;
    ipc__bell_init(&s->bell);
    return &s->base;
}
