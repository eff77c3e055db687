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
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
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
    return k;
}

void ipc__calls_free(ipc__calls *k)
{
    if (k == NULL)
        return;
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
    k->pending = NULL;
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

/* Ends every pending call with err (rx_mu held). */
static void ipc__calls_fail(ipc__calls *k, int err)
{
    k->dead = err;
    for (ipc__call *p = k->pending; p != NULL; p = p->next) {
        p->result = err;
        p->done = true;
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

/* The reader: takes one reply and hands it over. rx_mu held on entry and
 * exit, dropped while it waits for the reply. */
static void ipc__call_read_one(ipc_client *c, ipc__calls *k, uint64_t deadline)
{
    pthread_mutex_unlock(&k->rx_mu);
    const void *msg;
    ssize_t n = ipc_client_peek(c, &msg, ipc__left(deadline));
    pthread_mutex_lock(&k->rx_mu);
    if (n == -ETIMEDOUT)
        return;
    if (n < 0) {
        ipc__calls_fail(k, (int)n);
        return;
    }
    bool mux = c->wire == IPC_WIRE_MUX;
    int err;
    ipc__call *to = ipc__call_for(k, mux, msg, (size_t)n, &err);
    if (err < 0) {
        /* No pairing can be trusted any more: every call fails, and the
         * caller closes the client. */
        (void)ipc_client_release(c);
        ipc__calls_fail(k, err);
        return;
    }
    size_t hdr = mux ? IPC_WIRE_ID_SIZE : 0;
    if (to == NULL) {
        ipc__stat_add(c->stats, IPC__STAT_ORPHANS, 1); /* its call gave up */
    } else {
        size_t len = (size_t)n - hdr;
        to->result = len <= to->max ? (ssize_t)len : -EMSGSIZE;
        if (len <= to->max && len != 0)
            memcpy(to->buf, (const uint8_t *)msg + hdr, len);
        to->done = true;
        ipc__call_unlink(k, to);
        pthread_cond_broadcast(&k->rx_cv);
    }
    (void)ipc_client_release(c);
}

/* Waits until the call is done or its deadline passes, reading when no
 * other call reads. rx_mu held. */
static ssize_t ipc__call_wait(ipc_client *c, ipc__calls *k, ipc__call *me, uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
                          .tv_nsec = (long)(deadline % 1000000000u)};
    while (!me->done) {
        if (deadline != IPC_FOREVER && ipc__now_ns() >= deadline)
            break;
        if (!k->reading) {
            k->reading = true;
            ipc__call_read_one(c, k, deadline);
            k->reading = false;
            pthread_cond_broadcast(&k->rx_cv); /* the reader's place is free */
            continue;
        }
        if (deadline == IPC_FOREVER)
            pthread_cond_wait(&k->rx_cv, &k->rx_mu);
        else
            (void)pthread_cond_timedwait(&k->rx_cv, &k->rx_mu, &ts);
    }
    if (me->done)
        return me->result;
    ipc__call_unlink(k, me); /* its reply, if it comes, is discarded */
    ipc__stat_error(c->stats, -ETIMEDOUT);
    return -ETIMEDOUT;
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
    uint64_t now = ipc__now_ns();
    uint64_t deadline = timeout_ns == 0 || timeout_ns >= IPC_FOREVER - now ? IPC_FOREVER
                                                                           : now + timeout_ns;
    ipc__call me = {.buf = reply, .max = max};
    int rc = ipc__call_send(c, k, &me, req, len, deadline);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&k->rx_mu);
    ssize_t n = ipc__call_wait(c, k, &me, deadline);
    pthread_mutex_unlock(&k->rx_mu);
    return n;
}
