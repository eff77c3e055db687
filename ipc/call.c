/*
 * ipc_client_call(): one request and its reply, from any number of threads
 * on one client, on both wires.
 *
 * Sending is serialised by tx_mu, which numbers each call (seq) and
 * registers it before its request goes out, so a reply can never come
 * before its call is known. Receiving is leader/follower: one waiting call
 * at a time is the reader; it takes replies one by one, hands each to its
 * call (by id on the multiplexed wire, by position on the legacy wire:
 * replies come in request order there), and stays reader until its own
 * reply came or its deadline passed; then another waiting call takes over.
 * A reply whose call gave up (timed out) is discarded and counted in the
 * client's orphans; the connection stays usable. A connection error ends
 * every pending call with that error, and every later call at once.
 *
 * The asynchronous form (ipc_client_submit / _wait / _wait_any / _cancel)
 * registers the same record on the heap, marked async: when its reply comes
 * the reader moves it to the ready list (completion order) instead of
 * waking an owner, and signals the calls fd if one exists. Whoever waits,
 * synchronously or not, may be the reader, so a blocking call in one
 * thread and an event loop in another both make progress.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>

#include "ipc/ipc.h"
#include "ipc/server.h"
#include "ipc/transport.h"

typedef struct ipc__call {
    struct ipc__call *next;
    uint64_t seq;
    void *buf;
    size_t max;
    ssize_t result;
    bool done;
    bool async;  /* submitted: on the heap, reaped by wait/wait_any/cancel */
    bool waited; /* async: a thread waits for it by id */
    struct ipc__call *ready_next;
} ipc__call;

struct ipc__calls {
    pthread_mutex_t tx_mu; /* the sender; before rx_mu when both */
    pthread_mutex_t rx_mu; /* everything below */
    pthread_cond_t rx_cv;  /* a call done, or the reader's place free */
    ipc__call *pending;    /* registered, not done, not given up */
    uint64_t next_tx;      /* the next call's seq (tx_mu) */
    uint64_t next_rx;      /* legacy: the seq the next reply answers */
    uint64_t base;         /* multiplexed: id = base + seq */
    bool reading;          /* a call is the reader */
    int dead;              /* the connection's error, once it failed */
    uint8_t *stage;        /* multiplexed: [id][request] (tx_mu) */
    size_t stage_cap;
    ipc__call *ready;      /* async calls done, not reaped: oldest first */
    ipc__call **ready_tail;
    size_t async_n;        /* async calls not reaped (pending or ready) */
    int done_fd;           /* eventfd: readable while ready is not empty */
    int poll_fd;           /* epoll over done_fd and the transport's fd */
};

ipc__calls *ipc__calls_new(void)
{
    ipc__calls *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    pthread_mutex_init(&k->tx_mu, NULL);
    pthread_mutex_init(&k->rx_mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&k->rx_cv, &a);
    pthread_condattr_destroy(&a);
    k->ready_tail = &k->ready;
    k->done_fd = k->poll_fd = -1;
    return k;
}

/* Frees every async record and closes the calls fd (rx_mu held, or the
 * client is the caller's alone). Sync records live on their callers'
 * stacks and are only unlinked. */
static void ipc__calls_clear(ipc__calls *k)
{
    for (ipc__call *p = k->pending, *n; p != NULL; p = n) {
        n = p->next;
        if (p->async)
            free(p);
    }
    for (ipc__call *p = k->ready, *n; p != NULL; p = n) {
        n = p->ready_next;
        free(p);
    }
    k->pending = k->ready = NULL;
    k->ready_tail = &k->ready;
    k->async_n = 0;
    ipc__close_fd(&k->poll_fd);
    ipc__close_fd(&k->done_fd);
}

void ipc__calls_free(ipc__calls *k)
{
    if (k == NULL)
        return;
    ipc__calls_clear(k);
    pthread_cond_destroy(&k->rx_cv);
    pthread_mutex_destroy(&k->rx_mu);
    pthread_mutex_destroy(&k->tx_mu);
    free(k->stage);
    free(k);
}

/* A new connection: nothing pending (connect has the client to itself),
 * numbering from a random start (the successor's advice: a reply from a
 * previous connection can match nothing). */
void ipc__calls_reset(ipc__calls *k)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = ipc__now_ns();
    ipc__calls_clear(k); /* ids of an old connection name nothing now */
    k->next_tx = k->next_rx = 0;
    k->base = (r >> 2) | 1; /* never 0 (the server's); no wrap in practice */
    k->reading = false;
    k->dead = 0;
}

static void ipc__put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t ipc__get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The relative timeout left until deadline for the public calls (0: none). */
static uint64_t ipc__left(uint64_t deadline)
{
    if (deadline == IPC_FOREVER)
        return 0;
    uint64_t now = ipc__now_ns();
    return deadline > now ? deadline - now : 1;
}

static void ipc__call_unlink(ipc__calls *k, ipc__call *me)
{
    for (ipc__call **p = &k->pending; *p != NULL; p = &(*p)->next)
        if (*p == me) {
            *p = me->next;
            return;
        }
}

/* Registers the call and sends its request. rx_mu not held. */
static int ipc__call_send(ipc_client *c, ipc__calls *k, ipc__call *me, const void *req,
                          size_t len, uint64_t deadline)
{
    size_t hdr = ipc__client_wire_hdr(c);
    pthread_mutex_lock(&k->tx_mu);
    const void *msg = req;
    if (hdr != 0) {
        if (k->stage_cap < hdr + len) {
            uint8_t *p = realloc(k->stage, hdr + len);
            if (p == NULL) {
                pthread_mutex_unlock(&k->tx_mu);
                return -ENOMEM;
            }
            k->stage = p;
            k->stage_cap = hdr + len;
        }
        if (len != 0)
            memcpy(k->stage + hdr, req, len);
        msg = k->stage;
    }
    pthread_mutex_lock(&k->rx_mu);
    int rc = k->dead;
    if (rc == 0) {
        me->seq = k->next_tx++;
        me->next = k->pending;
        k->pending = me;
    }
    pthread_mutex_unlock(&k->rx_mu);
    if (rc == 0) {
        if (hdr != 0)
            ipc__put_le64(k->stage, k->base + me->seq);
        rc = ipc_client_send(c, msg, hdr + len, ipc__left(deadline));
        if (rc < 0) { /* nothing of it went out: no reply will come */
            pthread_mutex_lock(&k->rx_mu);
            ipc__call_unlink(k, me);
            k->next_tx--; /* still ours: tx_mu is held */
            pthread_mutex_unlock(&k->rx_mu);
        }
    }
    pthread_mutex_unlock(&k->tx_mu);
    return rc;
}

/* The call is answered (rx_mu held): its owner wakes, or, submitted, it
 * joins the ready list and the calls fd turns readable. */
static void ipc__call_complete(ipc__calls *k, ipc__call *p, ssize_t result)
{
    p->result = result;
    p->done = true;
    if (p->async) {
        bool was_empty = k->ready == NULL;
        p->ready_next = NULL;
        *k->ready_tail = p;
        k->ready_tail = &p->ready_next;
        if (was_empty && k->done_fd >= 0)
            ipc__eventfd_signal(k->done_fd);
    }
}

/* Ends every pending call with err (rx_mu held). */
static void ipc__calls_fail(ipc__calls *k, int err)
{
    k->dead = err;
    for (ipc__call *p = k->pending, *n; p != NULL; p = n) {
        n = p->next;
        ipc__call_complete(k, p, err);
    }
    k->pending = NULL;
    pthread_cond_broadcast(&k->rx_cv);
}

/* The call a reply answers (rx_mu held); NULL when it gave up. */
static ipc__call *ipc__call_for(ipc__calls *k, bool mux, const uint8_t *msg, size_t n, int *err)
{
    uint64_t seq;
    *err = 0;
    if (mux) {
        if (n < IPC_WIRE_ID_SIZE) {
            *err = -EPROTO;
            return NULL;
        }
        seq = ipc__get_le64(msg) - k->base;
        if (seq >= k->next_tx) { /* nobody asked for it: a wrong pairing */
            *err = -EPROTO;
            return NULL;
        }
    } else {
        seq = k->next_rx++;
    }
    for (ipc__call *p = k->pending; p != NULL; p = p->next)
        if (p->seq == seq)
            return p;
    return NULL;
}

/* The next reply, in place, by the deadline (rx_mu not held). */
static ssize_t ipc__call_peek(ipc_client *c, const void **msg, uint64_t deadline)
{
    ssize_t n = c->ops->peek(c, msg, deadline);
    if (n < 0 && !(n == -ETIMEDOUT && deadline == IPC_NOW))
        ipc__stat_error(c->stats, (int)n);
    return n;
}

/* The reader: takes one reply and hands it over; what peek returned
 * (-ETIMEDOUT: none by the deadline). rx_mu held on entry and exit,
 * dropped while it waits for the reply. */
static ssize_t ipc__call_read_one(ipc_client *c, ipc__calls *k, uint64_t deadline)
{
    pthread_mutex_unlock(&k->rx_mu);
    const void *msg;
    ssize_t n = ipc__call_peek(c, &msg, deadline);
    pthread_mutex_lock(&k->rx_mu);
    if (n == -ETIMEDOUT)
        return n;
    if (n < 0) {
        ipc__calls_fail(k, (int)n);
        return n;
    }
    bool mux = c->wire == IPC_WIRE_MUX;
    int err;
    ipc__call *to = ipc__call_for(k, mux, msg, (size_t)n, &err);
    if (err < 0) {
        /* No pairing can be trusted any more: every call fails, and the
         * caller closes the client. */
        (void)ipc_client_release(c);
        ipc__calls_fail(k, err);
        return err;
    }
    size_t hdr = mux ? IPC_WIRE_ID_SIZE : 0;
    if (to == NULL) {
        ipc__stat_add(c->stats, IPC__STAT_ORPHANS, 1); /* its call gave up */
    } else {
        size_t len = (size_t)n - hdr;
        if (len <= to->max && len != 0)
            memcpy(to->buf, (const uint8_t *)msg + hdr, len);
        ipc__call_unlink(k, to);
        ipc__call_complete(k, to, len <= to->max ? (ssize_t)len : -EMSGSIZE);
        pthread_cond_broadcast(&k->rx_cv);
    }
    (void)ipc_client_release(c);
    return n;
}

/* What a waiter waits for (rx_mu held): one call done, or any ready. */
typedef bool (*ipc__call_pred)(const ipc__calls *k, const ipc__call *me);

static bool ipc__call_is_done(const ipc__calls *k, const ipc__call *me)
{
    (void)k;
    return me->done;
}

/* The first ready call no thread waits for by id, or NULL (rx_mu held). */
static ipc__call *ipc__call_first_free(const ipc__calls *k)
{
    for (ipc__call *p = k->ready; p != NULL; p = p->ready_next)
        if (!p->waited)
            return p;
    return NULL;
}

static bool ipc__call_any_ready(const ipc__calls *k, const ipc__call *me)
{
    (void)me;
    return ipc__call_first_free(k) != NULL;
}

/* Waits until ready(k, me) or the deadline passes, reading when no other
 * thread reads; whether ready. IPC_NOW reads what has arrived without
 * waiting. rx_mu held. */
static bool ipc__call_drive(ipc_client *c, ipc__calls *k, ipc__call_pred ready,
                            const ipc__call *me, uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
                          .tv_nsec = (long)(deadline % 1000000000u)};
    for (;;) {
        if (ready(k, me))
            return true;
        if (k->dead != 0)
            return false; /* nothing more will come: the caller reports */
        if (!k->reading) {
            k->reading = true;
            ssize_t n = ipc__call_read_one(c, k, deadline);
            k->reading = false;
            pthread_cond_broadcast(&k->rx_cv); /* the reader's place is free */
            if (n == -ETIMEDOUT && !ready(k, me))
                return false;
            continue;
        }
        if (deadline == IPC_NOW)
            return false; /* another thread reads: it hands ours over */
        if (deadline != IPC_FOREVER && ipc__now_ns() >= deadline)
            return ready(k, me);
        if (deadline == IPC_FOREVER)
            pthread_cond_wait(&k->rx_cv, &k->rx_mu);
        else
            (void)pthread_cond_timedwait(&k->rx_cv, &k->rx_mu, &ts);
    }
}

/* The absolute deadline of a relative timeout: 0 waits without limit. */
static uint64_t ipc__call_deadline(uint64_t timeout_ns)
{
    uint64_t now = ipc__now_ns();
    return timeout_ns == 0 || timeout_ns >= IPC_FOREVER - now ? IPC_FOREVER : now + timeout_ns;
}

ssize_t ipc_client_call(ipc_client *c, const void *req, size_t len, void *reply, size_t max,
                        uint64_t timeout_ns)
{
    if (c == NULL || c->calls == NULL)
        return -EINVAL;
    if (ipc__check_buffer(req, len) < 0 || ipc__check_buffer(reply, max) < 0)
        return -EFAULT;
    if (!c->connected)
        return -ENOTCONN;
    ipc__calls *k = c->calls;
    uint64_t deadline = ipc__call_deadline(timeout_ns);
    ipc__call me = {.buf = reply, .max = max};
    int rc = ipc__call_send(c, k, &me, req, len, deadline);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&k->rx_mu);
    ssize_t n;
    if (ipc__call_drive(c, k, ipc__call_is_done, &me, deadline)) {
        n = me.result;
    } else {
        ipc__call_unlink(k, &me); /* its reply, if it comes, is discarded */
        ipc__stat_error(c->stats, -ETIMEDOUT);
        n = -ETIMEDOUT;
    }
    pthread_mutex_unlock(&k->rx_mu);
    return n;
}

/* ------------------------------------------------------------ asynchronous */

static void ipc__call_unready(ipc__calls *k, ipc__call *p);

static uint64_t ipc__call_id(const ipc__calls *k, const ipc__call *p)
{
    return k->base + p->seq;
}

int ipc_client_submit(ipc_client *c, const void *req, size_t len, void *reply, size_t max,
                      uint64_t *id, uint64_t timeout_ns)
{
    if (c == NULL || c->calls == NULL || id == NULL)
        return -EINVAL;
    if (ipc__check_buffer(req, len) < 0 || ipc__check_buffer(reply, max) < 0)
        return -EFAULT;
    if (!c->connected)
        return -ENOTCONN;
    ipc__calls *k = c->calls;
    ipc__call *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->buf = reply;
    p->max = max;
    p->async = true;
    /* Nobody reaps it (waited) until this returns; counted before it can
     * complete, so wait_any never sees "none". */
    p->waited = true;
    pthread_mutex_lock(&k->rx_mu);
    k->async_n++;
    pthread_mutex_unlock(&k->rx_mu);
    int rc = ipc__call_send(c, k, p, req, len, ipc__call_deadline(timeout_ns));
    pthread_mutex_lock(&k->rx_mu);
    if (rc < 0) {
        if (p->done) /* the connection failed meanwhile: it is on the ready list */
            ipc__call_unready(k, p);
        k->async_n--;
        free(p);
    } else {
        p->waited = false;
        *id = ipc__call_id(k, p);
    }
    pthread_mutex_unlock(&k->rx_mu);
    return rc;
}

/* The async call named id, pending or ready, or NULL (rx_mu held). */
static ipc__call *ipc__call_find(const ipc__calls *k, uint64_t id)
{
    for (ipc__call *p = k->pending; p != NULL; p = p->next)
        if (p->async && ipc__call_id(k, p) == id)
            return p;
    for (ipc__call *p = k->ready; p != NULL; p = p->ready_next)
        if (ipc__call_id(k, p) == id)
            return p;
    return NULL;
}

/* Takes a done async call off the ready list (rx_mu held). The calls fd
 * stays readable while others are ready. */
static void ipc__call_unready(ipc__calls *k, ipc__call *p)
{
    for (ipc__call **q = &k->ready; *q != NULL; q = &(*q)->ready_next)
        if (*q == p) {
            *q = p->ready_next;
            if (k->ready_tail == &p->ready_next)
                k->ready_tail = q;
            break;
        }
    if (k->ready == NULL && k->done_fd >= 0)
        ipc__eventfd_drain(k->done_fd);
}

/* Reaps a done async call: its result (rx_mu held). */
static ssize_t ipc__call_reap(ipc__calls *k, ipc__call *p)
{
    ipc__call_unready(k, p);
    ssize_t result = p->result;
    k->async_n--;
    free(p);
    return result;
}

/* What a wait that found no call done reports (rx_mu held): a failed
 * connection completes every call, so its error reaches a waiter only when
 * the calls left are another thread's to reap. */
static ssize_t ipc__call_not_done(const ipc__calls *k)
{
    return k->dead != 0 ? k->dead : -ETIMEDOUT;
}

ssize_t ipc_client_wait(ipc_client *c, uint64_t id, uint64_t timeout_ns)
{
    if (c == NULL || c->calls == NULL)
        return -EINVAL;
    ipc__calls *k = c->calls;
    pthread_mutex_lock(&k->rx_mu);
    ipc__call *p = ipc__call_find(k, id);
    ssize_t n;
    if (p == NULL) {
        n = -ENOENT;
    } else if (p->waited) {
        n = -EBUSY;
    } else {
        p->waited = true;
        if (ipc__call_drive(c, k, ipc__call_is_done, p, ipc__call_deadline(timeout_ns))) {
            n = ipc__call_reap(k, p);
        } else {
            p->waited = false; /* still pending: wait again, or cancel */
            n = ipc__call_not_done(k);
        }
    }
    pthread_mutex_unlock(&k->rx_mu);
    return n;
}

/* wait_any with an absolute deadline (IPC_NOW: without waiting). */
static ssize_t ipc__call_wait_any(ipc_client *c, uint64_t *id, uint64_t deadline)
{
    if (c == NULL || c->calls == NULL || id == NULL)
        return -EINVAL;
    ipc__calls *k = c->calls;
    pthread_mutex_lock(&k->rx_mu);
    ssize_t n;
    if (k->async_n == 0) {
        /* Nothing to reap; a poller is still owed a quiet fd: read what
         * arrived (replies of given-up calls) so its readiness clears. */
        if (deadline == IPC_NOW)
            (void)ipc__call_drive(c, k, ipc__call_any_ready, NULL, IPC_NOW);
        n = -ENOENT;
    } else if (ipc__call_drive(c, k, ipc__call_any_ready, NULL, deadline)) {
        ipc__call *p = ipc__call_first_free(k);
        *id = ipc__call_id(k, p);
        n = ipc__call_reap(k, p);
    } else {
        n = ipc__call_not_done(k);
    }
    pthread_mutex_unlock(&k->rx_mu);
    return n;
}

ssize_t ipc_client_wait_any(ipc_client *c, uint64_t *id, uint64_t timeout_ns)
{
    return ipc__call_wait_any(c, id, ipc__call_deadline(timeout_ns));
}

ssize_t ipc_client_try_wait_any(ipc_client *c, uint64_t *id)
{
    ssize_t n = ipc__call_wait_any(c, id, IPC_NOW);
    return n == -ETIMEDOUT ? -EAGAIN : n;
}

int ipc_client_cancel(ipc_client *c, uint64_t id)
{
    if (c == NULL || c->calls == NULL)
        return -EINVAL;
    ipc__calls *k = c->calls;
    pthread_mutex_lock(&k->rx_mu);
    ipc__call *p = ipc__call_find(k, id);
    int rc = 0;
    if (p == NULL) {
        rc = -ENOENT;
    } else if (p->waited) {
        rc = -EBUSY;
    } else if (p->done) {
        (void)ipc__call_reap(k, p);
    } else {
        ipc__call_unlink(k, p); /* its reply, if it comes, is an orphan */
        k->async_n--;
        free(p);
    }
    pthread_mutex_unlock(&k->rx_mu);
    return rc;
}

/* The epoll set behind ipc_client_calls_fd (rx_mu held). */
static int ipc__calls_fd_open(ipc_client *c, ipc__calls *k)
{
    int tfd = c->ops->fd != NULL ? c->ops->fd(c) : -EOPNOTSUPP;
    if (tfd < 0)
        return tfd;
    int rc;
    k->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (k->done_fd < 0)
        return -errno;
    k->poll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (k->poll_fd < 0) {
        rc = -errno;
        goto close_done;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    if (epoll_ctl(k->poll_fd, EPOLL_CTL_ADD, tfd, &ev) < 0 ||
        epoll_ctl(k->poll_fd, EPOLL_CTL_ADD, k->done_fd, &ev) < 0) {
        rc = -errno;
        goto close_poll;
    }
    if (k->ready != NULL)
        ipc__eventfd_signal(k->done_fd);
    return k->poll_fd;
close_poll:
    ipc__close_fd(&k->poll_fd);
close_done:
    ipc__close_fd(&k->done_fd);
    return rc;
}

int ipc_client_calls_fd(ipc_client *c)
{
    if (c == NULL || c->calls == NULL)
        return -EINVAL;
    if (!c->connected)
        return -ENOTCONN;
    ipc__calls *k = c->calls;
    pthread_mutex_lock(&k->rx_mu);
    int fd = k->poll_fd >= 0 ? k->poll_fd : ipc__calls_fd_open(c, k);
    pthread_mutex_unlock(&k->rx_mu);
    return fd;
}

/* The connection is closing (the caller's alone): every pending call ends
 * with -ENOTCONN; submitted ones stay to be reaped. */
void ipc__calls_close(ipc__calls *k)
{
    pthread_mutex_lock(&k->rx_mu);
    ipc__calls_fail(k, -ENOTCONN);
    ipc__close_fd(&k->poll_fd);
    ipc__close_fd(&k->done_fd);
    pthread_mutex_unlock(&k->rx_mu);
}
