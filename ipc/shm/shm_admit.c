/*
 * The shared-memory server's connection side (shm_server.h): a watcher
 * thread sleeps in epoll_wait on the listener and every client socket. It
 * accepts, refuses other users (anyone can connect to an abstract name:
 * their loops must not hold the serving thread) and admits the others
 * itself: it claims a free id, builds the segment, says hello and stages
 * the slot, so a connect needs nothing of the serving thread. For staged
 * slots and hang-ups it sets hints, admin_pending, and rings the doorbell;
 * the server thread then installs staged slots into its table and
 * reclaims those whose client hung up.
 * Model-checked: ipc/shm/model/slots.pml
 */
#include "ipc/shm/shm_server.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ipc/shm/shm_handshake.h"
#include "ipc/unix/unix.h"

/* The watcher accepts at most this many connections between two looks at
 * the clients' sockets, and retries this long after accept failed. */
#define IPC__ACCEPT_BATCH 64
#define IPC__ACCEPT_RETRY_NS (62ull * 1000 * 1000)

int ipc__srv_epoll_add(int ep, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Claims a free slot id (-1: none). Look and claim are one step under
 * admit_mu: the watcher and the server thread both claim (slots.pml,
 * MUTANT_CLAIM_UNLOCKED). */
static int ipc__srv_claim(ipc__shm_server *s)
{
    int id = -1;
    pthread_mutex_lock(&s->admit_mu);
    for (size_t i = 0; i < s->max_clients && id < 0; i++)
        if (!s->reserved[i]) {
            s->reserved[i] = true;
            id = (int)i;
        }
    pthread_mutex_unlock(&s->admit_mu);
    return id;
}

void ipc__srv_unclaim(ipc__shm_server *s, int id)
{
    pthread_mutex_lock(&s->admit_mu);
    s->reserved[id] = false;
    pthread_mutex_unlock(&s->admit_mu);
}

/* Builds slot id for connection fd into *sl: a new segment, a wake eventfd
 * in the doorbell, fd registered with the watcher, the hello sent. Either
 * thread, for an id it claimed; the server thread sees none of it until
 * ipc__srv_install(). */
static int ipc__srv_build(ipc__shm_server *s, int id, int fd, ipc__shm_slot *sl)
{
    *sl = (ipc__shm_slot){.fd = -1, .wake_fd = -1};
    /* Relaxed: a value, not a publication; a client told a limit that
     * run() lowers at this moment is dropped only if it sends more. */
    size_t limit = atomic_load_explicit(&s->hello_limit, memory_order_relaxed);
    int seg_fd, rc = ipc__shm_segment_create(&sl->seg, s->base.options.ring_size, (uint32_t)id,
                                             (uint32_t)s->max_clients, limit,
                                             s->base.options.wire, &seg_fd);
    if (rc < 0)
        return rc;
    if ((rc = ipc__bell_add(&s->bell, &sl->wake_fd)) < 0)
        goto failed_wake;
    /* Relaxed: clears a stale hint of the id's last occupant; hints are
     * only hints, re-checked against the socket (ipc__srv_admin). */
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

/* Puts a built slot into the table: the round robin polls it from now on.
 * Server thread. */
static void ipc__srv_install(ipc__shm_server *s, int id, const ipc__shm_slot *sl)
{
    s->slots[id] = *sl;
    s->slots[id].gen = ++s->last_gen;
    s->views[id] = &s->slots[id].seg.req;
    ipc__stat_add(s->base.stats.block, IPC__STAT_CONNECTS, 1);
    ipc__stat_add(s->base.stats.block, IPC__STAT_CLIENTS, 1);
}

/* Refuses a connection: the hello carries why. */
static void ipc__srv_refuse(int fd, int err)
{
    (void)ipc__shm_hello_send(fd, (uint32_t)-err, UINT32_MAX, NULL);
    close(fd);
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

/* Admits a connection the watcher queued because no id was free then, or
 * tells it "busy". Server thread. */
static void ipc__srv_admit(ipc__shm_server *s, int fd)
{
    int id = ipc__srv_claim(s);
    if (id < 0) {
        /* "A closed client's slot is free again at once": its hang-up may
         * not have reached us through the watcher yet. */
        ipc__srv_sweep(s);
        id = ipc__srv_claim(s);
    }
    if (id < 0) {
        ipc__srv_refuse(fd, -EAGAIN);
        return;
    }
    ipc__shm_slot sl;
    int rc = ipc__srv_build(s, id, fd, &sl);
    if (rc < 0) {
        ipc__srv_unclaim(s, id);
        ipc__srv_refuse(fd, rc);
        return;
    }
    ipc__srv_install(s, id, &sl);
}

/* Takes the connections the watcher queued for a free id. Server thread. */
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

/* [Q] Acquire side: the mutex publishes staged[id], which the watcher
 * wrote before it queued id. */
void ipc__srv_install_staged(ipc__shm_server *s)
{
    pthread_mutex_lock(&s->admit_mu);
    for (size_t k = 0; k < s->staged_n; k++) {
        int id = s->staged_ids[k];
        ipc__srv_install(s, id, &s->staged[id]);
    }
    s->staged_n = 0;
    pthread_mutex_unlock(&s->admit_mu);
}

void ipc__srv_close_queued(ipc__shm_server *s)
{
    ipc__close_fds(s->admit, (int)s->admit_n); /* they see "no server": retry */
    s->admit_n = 0;
}

/* Watcher: admits a checked connection itself, so a client's connect
 * needs nothing of the serving thread (a server may listen, let a client
 * connect, then serve, on one thread). With no id free (a hang-up the
 * server thread has not reclaimed yet) it queues the connection for the
 * server thread, which sweeps first; with max_clients queued already, it
 * refuses. Returns 1 when staged, 2 when queued, or -errno. */
static int ipc__srv_watch_admit(ipc__shm_server *s, int fd)
{
    int id = ipc__srv_claim(s);
    if (id < 0) {
        pthread_mutex_lock(&s->admit_mu);
        bool room = s->admit_n < s->max_clients;
        if (room)
            s->admit[s->admit_n++] = fd;
        pthread_mutex_unlock(&s->admit_mu);
        return room ? 2 : -EAGAIN;
    }
    ipc__shm_slot sl;
    int rc = ipc__srv_build(s, id, fd, &sl);
    if (rc < 0) {
        ipc__srv_unclaim(s, id); /* after the unwind unmapped: slots.pml */
        return rc;
    }
    /* [Q] Release side: staged[id] is published by the mutex. */
    pthread_mutex_lock(&s->admit_mu);
    s->staged[id] = sl;
    s->staged_ids[s->staged_n++] = id; /* at most one entry per claimed id */
    pthread_mutex_unlock(&s->admit_mu);
    return 1;
}

/* Watcher: accepts a batch, refusing other users and admitting the rest
 * itself. Anyone can connect to an abstract name, so this runs off the
 * serving thread: a user we refuse, connecting in a loop, costs the
 * clients we serve nothing and is drained as fast as it connects. The
 * listener is level-triggered, so a backlog longer than one batch comes
 * back at the next epoll_wait. Returns whether the server thread has work
 * (a slot to install, a connection to admit); *failed when accept ran out
 * of fds or memory (the watcher retries later). */
static bool ipc__srv_watch_accept(ipc__shm_server *s, bool *failed)
{
    bool work = false;
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
            rc = ipc__srv_watch_admit(s, fd);
        if (rc < 0) {
            ipc__srv_refuse(fd, rc);
            continue;
        }
        if (rc == 2)
            /* Relaxed: published by the admin_pending release [A]. */
            atomic_store_explicit(&s->accept_pending, 1, memory_order_relaxed);
        work = true;
    }
    return work;
}

/* Table changes requested by the watcher; main thread only. */
void ipc__srv_admin(ipc__shm_server *s)
{
    /* Relaxed first look: the hot path then pays no locked instruction.
     * Acquire [A] on the exchange pairs with the watcher's release store and
     * publishes its hints. */
    if (atomic_load_explicit(&s->admin_pending, memory_order_relaxed) == 0 ||
        atomic_exchange_explicit(&s->admin_pending, 0, memory_order_acquire) == 0)
        return;
    /* Install before the hints: a client that hung up between its hello
     * and now has its hint looked at in this pass (slots.pml,
     * MUTANT_HINTS_BEFORE_INSTALL). */
    ipc__srv_install_staged(s);
    for (size_t i = 0; i < s->max_clients; i++) {
        /* Only an installed slot's hint is consumed: one for a slot the
         * watcher stages meanwhile stays for the round its admin_pending
         * brings (MUTANT_HINT_OF_FREE_SLOT_CONSUMED). Relaxed: ordered by
         * the admin_pending acquire above. A hint is only a hint (the slot
         * may have been reused); the poll decides. */
        if (s->slots[i].fd >= 0 && atomic_exchange_explicit(&s->hints[i], 0, memory_order_relaxed) &&
            ipc__fd_hung_up(s->slots[i].fd))
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
                /* Relaxed: published by the admin_pending release below. */
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

/* The watcher takes no signals: they belong to the application's threads. */
int ipc__srv_start_watcher(ipc__shm_server *s)
{
    int rc = ipc__thread_start_nosig(&s->watcher, ipc__srv_watch, s);
    s->watcher_running = rc == 0;
    return rc;
}

void ipc__srv_stop_watcher(ipc__shm_server *s)
{
    if (!s->watcher_running)
        return;
    ipc__eventfd_signal(s->stop_fd);
    pthread_join(s->watcher, NULL);
    s->watcher_running = false;
}
