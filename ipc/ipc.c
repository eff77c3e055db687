/*
 * The transport-independent layer: argument checks and timeouts, written
 * once for every transport. The run loop is run.c's.
 */
#include "ipc/ipc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/factory.h"
#include "ipc/server.h"
#include "ipc/transport.h"

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
    c->calls = ipc__calls_new();
    if (c->stats == NULL || c->calls == NULL) {
        free(c->stats);
        ipc__calls_free(c->calls);
        c->ops->destroy(c);
        return NULL;
    }
    c->loan.owner = -1; /* no loan outstanding */
    return c;
}

ipc_client *ipc__client_init_ex(ipc_client *c, const ipc_client_options *o)
{
    if (c != NULL && o != NULL)
        c->wire = o->wire;
    return ipc__client_init(c);
}

bool ipc__client_options_ok(const ipc_client_options *o)
{
    return o == NULL || o->wire == IPC_WIRE_LEGACY || o->wire == IPC_WIRE_MUX;
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
    if (rc == 0)
        ipc__calls_reset(c->calls);
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

int ipc__check_buffer(const void *p, size_t len)
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
    if (len < ipc__client_wire_hdr(c))
        return -EINVAL; /* a multiplexed message begins with its id */
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
    if (c == NULL || c->loan.owner != 0 || len > c->loan.len || len < ipc__client_wire_hdr(c))
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
    ipc__calls_close(c->calls);
    c->ops->close(c);
    c->connected = false;
}

void ipc_client_destroy(ipc_client *c)
{
    if (c == NULL)
        return;
    ipc_client_close(c);
    ipc__calls_free(c->calls);
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
    if (o->wire != IPC_WIRE_LEGACY && o->wire != IPC_WIRE_MUX)
        return -EINVAL;
    if (o->max_message_size > ipc__wire_max(o))
        return -EINVAL;
    if (o->workers > 1024)
        return -EINVAL;
    if (o->max_inflight_per_client == 0)
        o->max_inflight_per_client = 64;
    if (o->max_inflight == 0)
        o->max_inflight = 1024;
    if (o->max_inflight_per_client > 65536 || o->max_inflight > (1u << 20))
        return -EINVAL;
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
    s->max_message = s->options.max_message_size + ipc__wire_hdr(&s->options);
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
int ipc__server_send(ipc_server *s, int client_id, const void *data, size_t len)
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

ssize_t ipc__server_peek(ipc_server *s, int client_id, const void **msg)
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

ssize_t ipc__server_release(ipc_server *s, int client_id)
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

int ipc__server_loan(ipc_server *s, int client_id, size_t len, void **buf)
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

int ipc__server_commit(ipc_server *s, int client_id, size_t len)
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
    ipc__run_detach(s);
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
