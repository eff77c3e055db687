/*
 * The transport-independent layer: argument checks, timeouts, and the run
 * loop, written once for every transport.
 */
#include "ipc/ipc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/factory.h"
#include "ipc/transport.h"

/* How long a handler's IPC_SHUTDOWN reply may take to drain before run()
 * returns anyway: a client that stopped reading must not hold the server. */
#define IPC_SHUTDOWN_FLUSH_NS (2ull * 1000 * 1000 * 1000)

static void ipc__count_out(ipc__stats_block *b, size_t len)
{
    ipc__stat_add(b, IPC__STAT_MESSAGES_OUT, 1);
    ipc__stat_add(b, IPC__STAT_BYTES_OUT, len);
}

static void ipc__count_in(ipc__stats_block *b, size_t len)
{
    ipc__stat_add(b, IPC__STAT_MESSAGES_IN, 1);
    ipc__stat_add(b, IPC__STAT_BYTES_IN, len);
}

/* ------------------------------------------------------------------ client */

ipc_client *ipc__client_init(ipc_client *c)
{
    if (c == NULL)
        return NULL;
    ipc__stamp_init();
    c->stats = calloc(1, sizeof(*c->stats));
    if (c->stats == NULL) {
        c->ops->destroy(c);
        return NULL;
    }
    c->loan.owner = -1; /* no loan outstanding */
    return c;
}

int ipc_client_connect_timeout(ipc_client *c, uint64_t timeout_ns)
{
    if (c == NULL)
        return -EINVAL;
    if (c->connected)
        return -EISCONN;
    int rc = c->ops->connect(c, ipc__deadline(timeout_ns != 0 ? timeout_ns
                                                              : IPC_CONNECT_TIMEOUT_NS));
    c->connected = rc == 0;
    if (rc < 0) {
        ipc__stat_error(c->stats, rc);
        return rc;
    }
    ipc__stat_add(c->stats, IPC__STAT_CONNECTS, 1);
    if (c->ever_connected)
        ipc__stat_add(c->stats, IPC__STAT_RECONNECTS, 1);
    c->ever_connected = true;
    atomic_store_explicit(&c->sent_at, 0, memory_order_relaxed);
    c->loan.owner = -1;
    return 0;
}

int ipc_client_connect(ipc_client *c)
{
    return ipc_client_connect_timeout(c, 0);
}

/*
 * A client may have one sending and one receiving thread (ipc.h): send-side
 * and receive-side counters are disjoint, so each keeps a single writer.
 * sent_at is the one field both sides write. Relaxed: it publishes nothing
 * but its own value. Only the sender turns it from 0 to a time and only the
 * receiver back to 0, so a race can skip a latency sample, never invent one.
 */
static void ipc__client_sent(ipc_client *c, size_t len)
{
    ipc__count_out(c->stats, len);
    /* With several requests in flight, time the oldest. */
    if (atomic_load_explicit(&c->sent_at, memory_order_relaxed) == 0)
        atomic_store_explicit(&c->sent_at, ipc__stamp(), memory_order_relaxed);
}

static void ipc__client_received(ipc_client *c, size_t len)
{
    ipc__count_in(c->stats, len);
    uint64_t t = atomic_load_explicit(&c->sent_at, memory_order_relaxed);
    if (t != 0) {
        ipc__stat_latency(c->stats, ipc__stamp_ns(ipc__stamp() - t));
        atomic_store_explicit(&c->sent_at, 0, memory_order_relaxed);
    }
}

static int ipc__check_buffer(const void *p, size_t len)
{
    if (p == NULL && len != 0)
        return -EFAULT;
    return 0;
}

static int ipc__client_send(ipc_client *c, const void *data, size_t len, uint64_t deadline)
{
    if (c == NULL)
        return -EINVAL;
    if (ipc__check_buffer(data, len) < 0)
        return -EFAULT;
    if (len > IPC_MAX_MESSAGE_LIMIT)
        return -EMSGSIZE;
    if (!c->connected)
        return -ENOTCONN;
    int rc = c->ops->send(c, data, len, deadline);
    if (rc < 0) {
        if (deadline != IPC_NOW || rc != -ETIMEDOUT)
            ipc__stat_error(c->stats, rc);
        return rc;
    }
    ipc__client_sent(c, len);
    return 0;
}

static ssize_t ipc__client_recv(ipc_client *c, void *buf, size_t max_len, uint64_t deadline)
{
    if (c == NULL)
        return -EINVAL;
    if (ipc__check_buffer(buf, max_len) < 0)
        return -EFAULT;
    if (!c->connected)
        return -ENOTCONN;
    ssize_t n = c->ops->recv(c, buf, max_len, deadline);
    if (n < 0) {
        if (deadline != IPC_NOW || n != -ETIMEDOUT)
            ipc__stat_error(c->stats, (int)n);
        return n;
    }
    ipc__client_received(c, (size_t)n);
    return n;
}

int ipc_client_send(ipc_client *c, const void *data, size_t len, uint64_t timeout_ns)
{
    return ipc__client_send(c, data, len, ipc__deadline(timeout_ns));
}

ssize_t ipc_client_recv(ipc_client *c, void *buf, size_t max_len, uint64_t timeout_ns)
{
    return ipc__client_recv(c, buf, max_len, ipc__deadline(timeout_ns));
}

/* A try_ call is a call whose deadline has passed: "timed out" is "would
 * block". */
static int ipc__would_block(int rc)
{
    return rc == -ETIMEDOUT ? -EAGAIN : rc;
}

int ipc_client_try_send(ipc_client *c, const void *data, size_t len)
{
    return ipc__would_block(ipc__client_send(c, data, len, IPC_NOW));
}

ssize_t ipc_client_try_recv(ipc_client *c, void *buf, size_t max_len)
{
    return ipc__would_block((int)ipc__client_recv(c, buf, max_len, IPC_NOW));
}

int ipc_client_fd(ipc_client *c)
{
    if (c == NULL)
        return -EINVAL;
    if (!c->connected)
        return -ENOTCONN;
    return c->ops->fd != NULL ? c->ops->fd(c) : -EOPNOTSUPP;
}

/* ----------------------------------------------------- zero-copy (client) */

/* Grows a staging buffer to hold len bytes. */
static void *ipc__stage(ipc__staging *st, size_t len)
{
    if (len > st->capacity || st->buf == NULL) {
        uint8_t *p = realloc(st->buf, len ? len : 1);
        if (p == NULL)
            return NULL;
        st->buf = p;
        st->capacity = len ? len : 1;
    }
    return st->buf;
}

int ipc_client_loan(ipc_client *c, size_t len, void **buf, uint64_t timeout_ns)
{
    if (c == NULL || buf == NULL)
        return -EINVAL;
    if (len > IPC_MAX_MESSAGE_LIMIT)
        return -EMSGSIZE;
    if (!c->connected)
        return -ENOTCONN;
    uint64_t deadline = ipc__deadline(timeout_ns);
    c->loan.len = 0;
    c->loan.active = false;
    if (c->ops->loan != NULL) {
        int rc = c->ops->loan(c, len, buf, deadline);
        if (rc < 0) {
            ipc__stat_error(c->stats, rc);
            return rc;
        }
        c->loan.active = true;
    } else if ((*buf = ipc__stage(&c->loan, len)) == NULL) {
        return -ENOMEM;
    }
    c->loan.len = len;
    c->loan.owner = 0;
    c->loan_deadline = deadline;
    return 0;
}

int ipc_client_commit(ipc_client *c, size_t len)
{
    if (c == NULL || c->loan.owner != 0 || len > c->loan.len)
        return -EINVAL;
    if (!c->connected)
        return -ENOTCONN;
    c->loan.owner = -1;
    int rc = c->loan.active ? c->ops->commit(c, len)
                            : c->ops->send(c, c->loan.buf, len, c->loan_deadline);
    if (rc < 0) {
        ipc__stat_error(c->stats, rc);
        return rc;
    }
    ipc__client_sent(c, len);
    return 0;
}

ssize_t ipc_client_peek(ipc_client *c, const void **msg, uint64_t timeout_ns)
{
    if (c == NULL || msg == NULL)
        return -EINVAL;
    if (!c->connected)
        return -ENOTCONN;
    if (c->ops->peek == NULL)
        return -EOPNOTSUPP;
    ssize_t n = c->ops->peek(c, msg, ipc__deadline(timeout_ns));
    if (n < 0)
        ipc__stat_error(c->stats, (int)n);
    return n;
}

ssize_t ipc_client_release(ipc_client *c)
{
    if (c == NULL)
        return -EINVAL;
    if (!c->connected)
        return -ENOTCONN;
    if (c->ops->release == NULL)
        return -EOPNOTSUPP;
    ssize_t n = c->ops->release(c);
    if (n < 0)
        return n;
    ipc__client_received(c, (size_t)n);
    return n;
}

void ipc_client_close(ipc_client *c)
{
    if (c == NULL || !c->connected)
        return;
    c->ops->close(c);
    c->connected = false;
}

void ipc_client_destroy(ipc_client *c)
{
    if (c == NULL)
        return;
    ipc_client_close(c);
    free(c->stats);
    free(c->loan.buf);
    c->ops->destroy(c);
}

/* ------------------------------------------------------------------ server */

int ipc__server_options_resolve(ipc_server_options *o)
{
    if (o->max_message_size == 0)
        o->max_message_size = IPC_DEFAULT_MAX_MESSAGE;
    if (o->max_message_size > IPC_MAX_MESSAGE_LIMIT)
        return -EINVAL;
    if (o->socket_mode == 0)
        o->socket_mode = 0600;
    if (o->socket_mode & ~0777u)
        return -EINVAL;
    /* max_pending_output stays 0 for "derived from max_message_size", which
     * ipc_server_run() may still change. */
    if (o->ring_size == 0)
        o->ring_size = (size_t)4 << 20;
    if (o->ring_size < 4096 || (o->ring_size & (o->ring_size - 1)) != 0 ||
        o->ring_size > ((size_t)1 << 31))
        return -EINVAL;
    if (o->spin_ns == 0)
        o->spin_ns = 50 * 1000;
    return 0;
}

ipc_server *ipc__server_init(ipc_server *s, const char *name)
{
    if (s == NULL)
        return NULL;
    ipc__stamp_init();
    if (ipc__stats_pub_init(&s->stats) < 0) {
        s->ops->destroy(s);
        return NULL;
    }
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->max_message = s->options.max_message_size;
    s->loan.owner = -1;
    s->peeked.owner = -1;
    s->batch_client = -1;
    return s;
}

bool ipc__resolve_copy(const ipc_server_options *in, ipc_server_options *out)
{
    if (in != NULL)
        *out = *in;
    else
        memset(out, 0, sizeof(*out));
    return ipc__server_options_resolve(out) == 0;
}

int ipc_server_listen(ipc_server *s)
{
    if (s == NULL)
        return -EINVAL;
    if (s->listening)
        return -EALREADY;
    /* The stats page first: once a socket file is there its server accepts,
     * so nothing may fail after the transport's listen (a server nobody can
     * see is a failure too: -EUSERS when its thread cannot start). */
    int rc = ipc__stats_publish(&s->stats, s->ops->name, s->name);
    if (rc < 0)
        return rc;
    rc = s->ops->listen(s);
    if (rc < 0)
        goto failed_listen;
    s->listening = true;
    return 0;
failed_listen:
    ipc__stats_unpublish(&s->stats);
    return rc;
}

int ipc_server_wait_for_data(ipc_server *s, uint64_t timeout_ns)
{
    if (s == NULL)
        return -EINVAL;
    if (!s->listening)
        return -ENOTCONN;
    return s->ops->wait_for_data(s, ipc__deadline(timeout_ns));
}

int ipc_server_try_wait_for_data(ipc_server *s)
{
    if (s == NULL)
        return -EINVAL;
    if (!s->listening)
        return -ENOTCONN;
    return ipc__would_block(s->ops->wait_for_data(s, IPC_NOW));
}

int ipc_server_fd(ipc_server *s)
{
    if (s == NULL)
        return -EINVAL;
    if (!s->listening)
        return -ENOTCONN;
    return s->ops->fd != NULL ? s->ops->fd(s) : -EOPNOTSUPP;
}

ssize_t ipc_server_recv(ipc_server *s, int client_id, void *buf, size_t max_len)
{
    if (s == NULL || client_id < 0)
        return s == NULL ? -EINVAL : -ENOENT;
    if (ipc__check_buffer(buf, max_len) < 0)
        return -EFAULT;
    if (!s->listening)
        return -ENOTCONN;
    ssize_t n = s->ops->recv(s, client_id, buf, max_len);
    ipc__stats_block *b = s->stats.block;
    if (n < 0) {
        if (n != -EAGAIN)
            ipc__stat_error(b, (int)n);
        return n;
    }
    ipc__count_in(b, (size_t)n);
    return n;
}

/* The server calls below after their argument checks; the run loop, whose
 * arguments are valid by construction, calls them directly. */
static int ipc__server_send(ipc_server *s, int client_id, const void *data, size_t len)
{
    int rc = s->ops->send(s, client_id, data, len);
    if (rc < 0) {
        ipc__stat_error(s->stats.block, rc);
        return rc;
    }
    ipc__count_out(s->stats.block, len);
    return 0;
}

int ipc_server_send(ipc_server *s, int client_id, const void *data, size_t len)
{
    if (s == NULL || client_id < 0)
        return s == NULL ? -EINVAL : -ENOENT;
    if (ipc__check_buffer(data, len) < 0)
        return -EFAULT;
    if (len > IPC_MAX_MESSAGE_LIMIT)
        return -EMSGSIZE;
    if (!s->listening)
        return -ENOTCONN;
    return ipc__server_send(s, client_id, data, len);
}

/* ----------------------------------------------------- zero-copy (server) */

/* For a transport that cannot lend a request in place: receive it into a
 * buffer of the largest message size, held until release. */
static ssize_t ipc__peek_copy(ipc_server *s, int client_id, const void **msg)
{
    ipc__staging *p = &s->peeked;
    if (p->owner == client_id) {
        *msg = p->buf;
        return (ssize_t)p->len;
    }
    if (p->owner >= 0)
        return -EBUSY; /* one lent request at a time */
    if (ipc__stage(p, s->max_message) == NULL)
        return -ENOMEM;
    ssize_t n = s->ops->recv(s, client_id, p->buf, s->max_message);
    if (n < 0)
        return n;
    p->owner = client_id;
    p->len = (size_t)n;
    *msg = p->buf;
    return n;
}

static ssize_t ipc__release_copy(ipc_server *s, int client_id)
{
    if (s->peeked.owner != client_id)
        return -EINVAL;
    s->peeked.owner = -1;
    return (ssize_t)s->peeked.len;
}

static ssize_t ipc__server_peek(ipc_server *s, int client_id, const void **msg)
{
    ssize_t n = s->ops->peek != NULL ? s->ops->peek(s, client_id, msg)
                                     : ipc__peek_copy(s, client_id, msg);
    if (n < 0 && n != -EAGAIN)
        ipc__stat_error(s->stats.block, (int)n);
    return n;
}

ssize_t ipc_server_peek(ipc_server *s, int client_id, const void **msg)
{
    if (s == NULL || msg == NULL)
        return -EINVAL;
    if (client_id < 0)
        return -ENOENT;
    if (!s->listening)
        return -ENOTCONN;
    return ipc__server_peek(s, client_id, msg);
}

static ssize_t ipc__server_release(ipc_server *s, int client_id)
{
    ssize_t n = s->ops->release != NULL ? s->ops->release(s, client_id)
                                        : ipc__release_copy(s, client_id);
    if (n >= 0)
        ipc__count_in(s->stats.block, (size_t)n);
    return n;
}

ssize_t ipc_server_release(ipc_server *s, int client_id)
{
    if (s == NULL)
        return -EINVAL;
    if (client_id < 0)
        return -ENOENT;
    if (!s->listening)
        return -ENOTCONN;
    return ipc__server_release(s, client_id);
}

static int ipc__server_loan(ipc_server *s, int client_id, size_t len, void **buf)
{
    int rc = s->ops->loan != NULL ? s->ops->loan(s, client_id, len, buf) : -EAGAIN;
    s->loan.active = rc == 0;
    if (rc == -EAGAIN) { /* no room in place now: stage, send() queues it */
        *buf = ipc__stage(&s->loan, len);
        rc = *buf != NULL ? 0 : -ENOMEM;
    }
    if (rc < 0)
        return rc;
    s->loan.len = len;
    s->loan.owner = client_id;
    return 0;
}

int ipc_server_loan(ipc_server *s, int client_id, size_t len, void **buf)
{
    if (s == NULL || buf == NULL)
        return -EINVAL;
    if (client_id < 0)
        return -ENOENT;
    if (len > IPC_MAX_MESSAGE_LIMIT)
        return -EMSGSIZE;
    if (!s->listening)
        return -ENOTCONN;
    return ipc__server_loan(s, client_id, len, buf);
}

static int ipc__server_commit(ipc_server *s, int client_id, size_t len)
{
    if (s->loan.owner != client_id || len > s->loan.len)
        return -EINVAL;
    s->loan.owner = -1;
    int rc = s->loan.active ? s->ops->commit(s, client_id, len)
                            : s->ops->send(s, client_id, s->loan.buf, len);
    if (rc < 0) {
        ipc__stat_error(s->stats.block, rc);
        return rc;
    }
    ipc__count_out(s->stats.block, len);
    return 0;
}

int ipc_server_commit(ipc_server *s, int client_id, size_t len)
{
    if (s == NULL || client_id < 0)
        return -EINVAL;
    if (s->loan.owner != client_id || len > s->loan.len)
        return -EINVAL;
    if (!s->listening)
        return -ENOTCONN;
    return ipc__server_commit(s, client_id, len);
}

void ipc_server_close(ipc_server *s)
{
    if (s == NULL)
        return;
    if (s->listening) {
        ipc__stats_unpublish(&s->stats);
        s->ops->close(s);
    }
    s->listening = false;
    s->loan.owner = s->peeked.owner = -1;
    /* Relaxed: closing is the owner thread's; a stop racing with close has
     * nothing left to stop, and [S] orders nothing else. */
    atomic_store_explicit(&s->stop_requested, 0, memory_order_relaxed);
}

void ipc_server_destroy(ipc_server *s)
{
    if (s == NULL)
        return;
    ipc_server_close(s);
    ipc__stats_pub_free(&s->stats);
    free(s->loan.buf);
    free(s->peeked.buf);
    s->ops->destroy(s);
}

void ipc_server_stop(ipc_server *s)
{
    if (s == NULL)
        return;
    /* Release [S]: pairs with the acquire in ipc__stop_seen() (transport.h),
     * read by the run loop and each server's wait. */
    atomic_store_explicit(&s->stop_requested, 1, memory_order_release);
    s->ops->wake(s);
}

/* ---------------------------------------------------------------- run loop */

/* A handler's reply: a loan from the transport (on shared memory, the
 * client's ring itself) or, failing that, a buffer of its own. */
struct ipc_response {
    ipc_server *server;
    int client_id;
    size_t limit;
    size_t len;
    bool loaned;
    uint8_t *own; /* fallback buffer */
    size_t own_capacity;
};

void *ipc_response_reserve(ipc_response *r, size_t len)
{
    if (r == NULL || len > r->limit)
        return NULL;
    void *p;
    r->loaned = ipc__server_loan(r->server, r->client_id, len, &p) == 0;
    if (!r->loaned) {
        if (len > r->own_capacity || r->own == NULL) {
            uint8_t *q = realloc(r->own, len ? len : 1);
            if (q == NULL)
                return NULL;
            r->own = q;
            r->own_capacity = len ? len : 1;
        }
        p = r->own;
    }
    r->len = len;
    return p;
}

int ipc_response_set(ipc_response *r, const void *data, size_t len)
{
    if (r == NULL || ipc__check_buffer(data, len) < 0)
        return r == NULL ? -EINVAL : -EFAULT;
    if (len > r->limit)
        return -EMSGSIZE;
    void *p = ipc_response_reserve(r, len);
    if (p == NULL)
        return -ENOMEM;
    if (len != 0)
        memmove(p, data, len); /* data may be the request, or an earlier reserve */
    return 0;
}

/* Requests of one client served back to back before the run loop looks
 * at the others again: bounds what a flooding client costs the rest. */
#define IPC__BATCH_MAX 32

/* One request, read in place: handle, reply, release. false when there was
 * none to read (no more ready, or the client is gone: the transport dealt
 * with it); *replied tells whether a reply went out. */
static bool ipc__serve_one(ipc_server *s, int id, ipc_handler handler, void *ctx,
                           ipc_response *response, ipc_action *action, bool *replied)
{
    const void *request;
    ssize_t n = ipc__server_peek(s, id, &request);
    *replied = false;
    if (n < 0)
        return false;
    if ((size_t)n > response->limit) { /* over run()'s own limit */
        ipc__stat_error(s->stats.block, -EMSGSIZE);
        (void)ipc__server_release(s, id);
        return true;
    }
    response->client_id = id;
    response->len = 0;
    response->loaned = false;
    *action = handler(ctx, id, request, (size_t)n, response);
    /* Reply first, release after: the client waits for the one, not the
     * other. A client that left meanwhile is no error of the server's. */
    int rc = response->loaned ? ipc__server_commit(s, id, response->len)
                              : ipc__server_send(s, id, response->own, response->len);
    (void)ipc__server_release(s, id);
    *replied = rc == 0;
    return true;
}

/* Every ready request of client id, up to IPC__BATCH_MAX: handled, replied
 * and released one by one, the client woken once at the end (ops->
 * end_batch). One stamp per request: the end of one is the start of the
 * next, so each reply's sample is its own time, from the run loop taking
 * its request to the reply sent. */
static ipc_action ipc__serve_batch(ipc_server *s, int id, ipc_handler handler, void *ctx,
                                   ipc_response *response)
{
    uint64_t taken = ipc__stamp();
    ipc_action action = IPC_CONTINUE;
    bool replied;
    s->batch_client = id;
    for (int k = 0; k < IPC__BATCH_MAX; k++) {
        if (!ipc__serve_one(s, id, handler, ctx, response, &action, &replied))
            break;
        uint64_t done = ipc__stamp();
        if (replied)
            ipc__stat_latency(s->stats.block, ipc__stamp_ns(done - taken));
        taken = done;
        if (action != IPC_CONTINUE || s->ops->has_next == NULL || !s->ops->has_next(s, id))
            break;
    }
    s->batch_client = -1;
    if (s->ops->end_batch != NULL)
        s->ops->end_batch(s, id);
    return action;
}

int ipc_server_run(ipc_server *s, ipc_handler handler, void *ctx, size_t max_message_size)
{
    if (s == NULL || handler == NULL || max_message_size > IPC_MAX_MESSAGE_LIMIT)
        return -EINVAL;
    size_t max = max_message_size ? max_message_size : s->options.max_message_size;
    if (max != s->max_message) {
        s->max_message = max;
        if (s->ops->set_limit != NULL)
            s->ops->set_limit(s);
    }
    if (!s->listening) {
        int rc = ipc_server_listen(s);
        if (rc < 0)
            return rc;
    }
    ipc_response response = {.server = s, .limit = max};
    int rc = 0;
    while (!ipc__stop_seen(s)) {
        int id = s->ops->wait_for_data(s, IPC_FOREVER);
        if (id == -ECANCELED)
            break;
        if (id < 0) {
            rc = id;
            break;
        }
        if (ipc__serve_batch(s, id, handler, ctx, &response) == IPC_SHUTDOWN) {
            (void)s->ops->flush(s, ipc__now_ns() + IPC_SHUTDOWN_FLUSH_NS);
            break;
        }
    }
    /* Relaxed: consumes the stop [S] that ended this run (the acquire in
     * ipc__stop_seen() already saw it); it publishes nothing. */
    atomic_store_explicit(&s->stop_requested, 0, memory_order_relaxed);
    free(response.own);
    return rc;
}

int ipc_server_stats(const ipc_server *s, ipc_stats *out)
{
    if (s == NULL || out == NULL)
        return -EINVAL;
    ipc__stats_snapshot(s->stats.block, out);
    return 0;
}

int ipc_client_stats(const ipc_client *c, ipc_stats *out)
{
    if (c == NULL || out == NULL)
        return -EINVAL;
    ipc__stats_snapshot(c->stats, out);
    return 0;
}

const char *ipc_strerror(int err)
{
    const char *s = err < 0 ? strerrordesc_np(-err) : NULL;
    return s != NULL ? s : "unknown error";
}
