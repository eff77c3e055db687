/*
 * The shared-memory server's serving side (design in docs/SHM.md; the state
 * and the connection side, shm_admit.c, in shm_server.h).
 *
 * Each client has a segment (shm_segment.c), handed over in the hello
 * (shm_handshake.c) with the doorbell page and an eventfd of the client's
 * own for waking the server (bell.h): nothing a client can write is shared
 * with another client. The server polls the request rings round robin (no
 * syscalls) and sleeps on the doorbell when idle. Replies go into the
 * response ring; a reply that does not fit is queued privately, counted at
 * its cost, and flushed later, so a client that stops reading never blocks
 * the server; at max_pending_output its requests wait in its ring
 * (back-pressure) until it reads.
 */
#include "ipc/shm/shm_server.h"

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
#include "ipc/shm/shm_transport.h"
#include "ipc/shm/spsc_ring.h"
#include "ipc/shm/wait.h"
#include "ipc/unix/unix.h"

/* The server re-polls at least this often: a safety net (no wake-up can be
 * lost, bell.h), and the retry of a failed accept. */
#define IPC__SHM_SERVER_SLICE_NS (250ull * 1000 * 1000)

/* The longest request taken now. A client was told the limit in force when
 * it connected; one sending more (it was told more before run() lowered
 * the limit, or it ignores what it was told) is dropped, as on sockets:
 * a request is never consumed without an answer. */
size_t ipc__srv_limit(ipc__shm_server *s)
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
        if (!sl->held)
            s->views[id] = &sl->seg.req;
    }
}

/* Drops a client: its half-written frames go with the segment. */
void ipc__srv_drop(ipc__shm_server *s, int id)
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
    ipc__srv_unclaim(s, id); /* after the unmap: slots.pml */
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
    return ipc__stop_seen(&s->base) || ipc__kick_seen(&s->base) ||
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
        if (ipc__kick_seen(&s->base))
            return -EINTR;
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
    ipc__srv_close_queued(s);
    ipc__srv_install_staged(s); /* then dropped below with the others */
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
    free(s->staged_ids);
    free(s->staged);
    free(s->reserved);
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
 * follows reports it and drops the client) and the client may be served:
 * what the round robin polls (views), so a client paused at its bound
 * (ipc__srv_pause) or dropped ends its batch. */
static bool ipc__shm_server_has_next(ipc_server *base, int client_id)
{
    ipc__shm_server *s = ipc__srv(base);
    return ipc__srv_slot(s, client_id) != NULL && s->views[client_id] != NULL &&
           ipc__spsc_readable(s->views[client_id]) != 0;
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

/* run() changed base.max_message: tell new clients. Clients connected
 * already were told the old limit; a request over the new one drops its
 * client (ipc__srv_next), as on sockets. */
static void ipc__shm_server_set_limit(ipc_server *base)
{
    ipc__shm_server *s = ipc__srv(base);
    /* Relaxed: a value the watcher copies into the next hello; nothing
     * else is published with it. */
    atomic_store_explicit(&s->hello_limit, base->max_message, memory_order_relaxed);
}

static uint64_t ipc__shm_server_conn_gen(ipc_server *base, int client_id)
{
    ipc__shm_slot *sl = ipc__srv_slot(ipc__srv(base), client_id);
    return sl == NULL ? 0 : sl->gen;
}

/* A held client is out of the round robin (views) like a paused one; its
 * requests wait in its ring, and its sends block once the ring is full. */
static void ipc__shm_server_hold(ipc_server *base, int client_id, bool held)
{
    ipc__shm_server *s = ipc__srv(base);
    ipc__shm_slot *sl = ipc__srv_slot(s, client_id);
    if (sl == NULL || sl->held == held)
        return;
    sl->held = held;
    if (held)
        s->views[client_id] = NULL;
    else if (!sl->paused && !sl->doomed)
        s->views[client_id] = &sl->seg.req;
}

static void ipc__shm_server_disconnect(ipc_server *base, int client_id)
{
    ipc__shm_server *s = ipc__srv(base);
    if (ipc__srv_slot(s, client_id) != NULL)
        ipc__srv_kick(s, client_id);
}

static const ipc_server_ops ipc__shm_server_ops = {
    .name = "shm",
    IPC__SERVER_OPS(ipc__shm_server),
    .loan = ipc__shm_server_loan,
    .commit = ipc__shm_server_commit,
    .has_next = ipc__shm_server_has_next,
    .end_batch = ipc__shm_server_end_batch,
    .set_limit = ipc__shm_server_set_limit,
    .conn_gen = ipc__shm_server_conn_gen,
    .hold = ipc__shm_server_hold,
    .disconnect = ipc__shm_server_disconnect,
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
    s->reserved = calloc(max_clients, sizeof(*s->reserved));
    s->staged = calloc(max_clients, sizeof(*s->staged));
    s->staged_ids = calloc(max_clients, sizeof(*s->staged_ids));
    if (s->slots == NULL || s->views == NULL || s->hints == NULL || s->pfds == NULL ||
        s->admit == NULL || s->reserved == NULL || s->staged == NULL || s->staged_ids == NULL) {
        ipc__srv_free(s);
        return NULL;
    }
    for (size_t i = 0; i < max_clients; i++)
        s->slots[i] = (ipc__shm_slot){.fd = -1, .wake_fd = -1};
    pthread_mutex_init(&s->admit_mu, NULL);
    s->base.ops = &ipc__shm_server_ops;
    s->base.options = *resolved;
    atomic_init(&s->base.stop_requested, 0);
    atomic_init(&s->base.kicked, 0);
    atomic_init(&s->hello_limit, resolved->max_message_size);
    memcpy(s->name, name, strlen(name) + 1);
    s->max_clients = max_clients;
    s->listen_fd = s->epoll_fd = s->stop_fd = -1;
    ipc__bell_init(&s->bell);
    return &s->base;
}
