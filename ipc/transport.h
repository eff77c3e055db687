/*
 * The contract between the transport-independent layer (ipc.c) and one
 * transport. Internal: not installed, not for users.
 *
 * A transport object embeds ipc_client / ipc_server as its first member and
 * provides an ops table written with designated initializers (the common
 * ops through IPC__CLIENT_OPS / IPC__SERVER_OPS below). ipc.c checks
 * arguments and state, turns timeouts into absolute deadlines, and keeps the
 * run loop, so each op sees only valid input.
 */
#ifndef IPC_TRANSPORT_H
#define IPC_TRANSPORT_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "ipc/ipc.h"
#include "ipc/stats.h"
#include "ipc/unix/unix.h"

/* Absolute CLOCK_MONOTONIC deadline in ns (ipc__now_ns, unix.h);
 * IPC_FOREVER (unix.h) waits without limit, IPC_NOW (long past) does not
 * wait at all. */
#define IPC_NOW 1u

typedef struct ipc_client_ops {
    const char *name;
    /* Connects by the deadline (never IPC_FOREVER: ipc.c bounds every
     * connect): -ETIMEDOUT once it passes, whatever was being waited for
     * (a full listen backlog, a hello). */
    int (*connect)(ipc_client *c, uint64_t deadline);
    int (*send)(ipc_client *c, const void *data, size_t len, uint64_t deadline);
    ssize_t (*recv)(ipc_client *c, void *buf, size_t max_len, uint64_t deadline);
    void (*close)(ipc_client *c);
    void (*destroy)(ipc_client *c); /* after close: frees the object */
    /* Optional: the pollable fd of a connected client (ipc_client_fd). */
    int (*fd)(ipc_client *c);
    /* The next whole message in place (valid until release): its length,
     * -ETIMEDOUT, -ECONNRESET... A peeked message is returned again by the
     * next peek until released. */
    ssize_t (*peek)(ipc_client *c, const void **msg, uint64_t deadline);
    /* Consumes the peeked message; returns its length. */
    ssize_t (*release)(ipc_client *c);
    /* Optional zero-copy send: space for a message of len bytes, written in
     * place, then sent by commit(len' <= len). Without them ipc.c stages
     * the message and calls send(). */
    int (*loan)(ipc_client *c, size_t len, void **buf, uint64_t deadline);
    int (*commit)(ipc_client *c, size_t len);
} ipc_client_ops;

/* The ops every client transport of ours provides, filled from functions
 * named after them (docs/CONVENTIONS.md): IPC__CLIENT_OPS(ipc__shm_client)
 * sets .connect = ipc__shm_client_connect and so on, so a transport that
 * lacks one, or names it otherwise, does not compile. Optional ops (loan,
 * commit) follow it in the table. */
#define IPC__CLIENT_OPS(prefix)                                                  \
    .connect = prefix##_connect, .send = prefix##_send, .recv = prefix##_recv,  \
    .close = prefix##_close, .destroy = prefix##_destroy, .fd = prefix##_fd,    \
    .peek = prefix##_peek, .release = prefix##_release

/* A message staged by ipc.c for a transport without loan/commit. */
typedef struct ipc__staging {
    uint8_t *buf;
    size_t capacity;
    size_t len;   /* bytes loaned */
    int owner;    /* server: the client id loaned to, -1 for none */
    bool active;  /* loaned by the transport (not staged) */
} ipc__staging;

/* Full duplex (ipc.h): one thread may send (send, try_send, loan, commit)
 * while another receives (recv, try_recv, peek, release). The send side owns
 * loan and loan_deadline, the receive side what the transport keeps for
 * reading; connected is only written by connect and close. */
struct ipc_client {
    const ipc_client_ops *ops;
    bool connected;
    bool ever_connected;
    ipc__staging loan;
    uint64_t loan_deadline; /* for a staged message's send at commit */
    /* When the oldest request in flight was sent, or 0: written by the
     * sending and the receiving thread of a full-duplex client (ipc.c). */
    _Atomic uint64_t sent_at;
    ipc__stats_block *stats;
    uint32_t wire; /* ipc_client_options.wire */
    struct ipc__calls *calls; /* ipc_client_call()'s state (call.c) */
};

/* call.c: ipc_client_call()'s state, made with the client, reset by each
 * connect, freed with it. */
typedef struct ipc__calls ipc__calls;
ipc__calls *ipc__calls_new(void);
void ipc__calls_reset(ipc__calls *k);
void ipc__calls_free(ipc__calls *k);
void ipc__calls_close(ipc__calls *k);

/* Bytes of request id before each message on c's wire. */
static inline size_t ipc__client_wire_hdr(const ipc_client *c)
{
    return c->wire == IPC_WIRE_MUX ? IPC_WIRE_ID_SIZE : 0;
}

typedef struct ipc_server_ops {
    const char *name;
    int (*listen)(ipc_server *s);
    /* A client id, -ETIMEDOUT, or -ECANCELED when s->stop_requested is seen. */
    int (*wait_for_data)(ipc_server *s, uint64_t deadline);
    ssize_t (*recv)(ipc_server *s, int client_id, void *buf, size_t max_len);
    int (*send)(ipc_server *s, int client_id, const void *data, size_t len);
    /* Delivers queued replies until done or the deadline; 0 or -ETIMEDOUT. */
    int (*flush)(ipc_server *s, uint64_t deadline);
    /* Interrupts wait_for_data. Must be async-signal-safe. */
    void (*wake)(ipc_server *s);
    void (*close)(ipc_server *s);
    void (*destroy)(ipc_server *s); /* after close: frees the object */
    /* Optional: the pollable fd of a listening server (ipc_server_fd). */
    int (*fd)(ipc_server *s);
    /* The ready message of client_id in place (valid until release): its
     * length, -EAGAIN, -ENOENT... release() consumes it. */
    ssize_t (*peek)(ipc_server *s, int client_id, const void **msg);
    /* Consumes the peeked message; returns its length, or -errno. */
    ssize_t (*release)(ipc_server *s, int client_id);
    /* Optional zero-copy reply, as for clients; loan may fail with -EAGAIN
     * when there is no room now, and ipc.c then stages and calls send(). */
    int (*loan)(ipc_server *s, int client_id, size_t len, void **buf);
    int (*commit)(ipc_server *s, int client_id, size_t len);
    /* Optional: s->max_message changed (ipc_server_run() passed its own
     * limit); apply it to the connections already open. */
    void (*set_limit)(ipc_server *s);
    /* Optional, for the run loop's batches (see batch_client): true when
     * client_id has another request ready now, found without a system call
     * (no has_next: batches of one); end_batch wakes the client for
     * everything published to it during the batch. */
    bool (*has_next)(ipc_server *s, int client_id);
    void (*end_batch)(ipc_server *s, int client_id);
    /* For requests answered later (workers, deferred replies: run.c).
     * conn_gen: the connection holding client_id now, a number this
     * server never gives another connection (0: none); a reply made for
     * one connection is sent only while it still holds the id.
     * hold: while held, wait_for_data() does not return client_id and its
     * requests stay with the transport (in its ring, or unread in its
     * socket: back-pressure); a new connection on the id starts unheld.
     * forget (optional): a request handed out will get no reply.
     * disconnect: drops the client, as for a protocol violation. */
    uint64_t (*conn_gen)(ipc_server *s, int client_id);
    void (*hold)(ipc_server *s, int client_id, bool held);
    void (*forget)(ipc_server *s, int client_id);
    void (*disconnect)(ipc_server *s, int client_id);
} ipc_server_ops;

/* The ops every server transport of ours provides, as IPC__CLIENT_OPS;
 * loan, commit, set_limit, has_next and end_batch follow it where a
 * transport has them. */
#define IPC__SERVER_OPS(prefix)                                                  \
    .listen = prefix##_listen, .wait_for_data = prefix##_wait_for_data,         \
    .recv = prefix##_recv, .send = prefix##_send, .flush = prefix##_flush,      \
    .wake = prefix##_wake, .close = prefix##_close, .destroy = prefix##_destroy, \
    .fd = prefix##_fd, .peek = prefix##_peek, .release = prefix##_release

/* Longest name a server has: a socket path or a shared-memory name. */
#define IPC_NAME_CAP 108

struct ipc_server {
    const ipc_server_ops *ops;
    ipc_server_options options; /* every default filled in; never written after create */
    /* The request limit in force, the request id included on the
     * multiplexed wire: options.max_message_size until ipc_server_run()
     * passes its own. */
    size_t max_message;
    char name[IPC_NAME_CAP];
    bool listening;
    ipc__stats_pub stats; /* stats.block is always valid */
    ipc__staging loan;
    ipc__staging peeked; /* a request received for a transport without peek */
    /* Set by ipc_server_stop(), cleared when run() returns or on close. */
    atomic_int stop_requested;
    /* The run loop's state (run.c): made by the first run(), kept until
     * destroy (deferred requests refer to it). */
    struct ipc__run *run;
    /* Set by a thread with a reply for the run loop (run.c): the
     * transport's wait_for_data() returns -EINTR while it is set; the run
     * loop clears it before it takes the replies. */
    atomic_int kicked;
    /* The client whose requests the run loop is serving back to back, or
     * -1: replies to and releases of this client (only) may be published
     * without waking it, as long as a client seen asleep is still woken at
     * once; ops->end_batch(s, batch_client) follows the batch and must wake
     * it for everything (one fence per batch instead of two per request). */
    int batch_client;
};

/* Bytes of replies one client may have queued before it is dropped:
 * options.max_pending_output, or 2 * max_message + 64 KiB if that is 0. */
size_t ipc__pending_limit(const ipc_server *s);

/* Fills the zero fields of *o with their defaults; -EINVAL for bad values. */
int ipc__server_options_resolve(ipc_server_options *o);

static inline uint64_t ipc__min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* true once ipc_server_stop() asked the run or wait loop to return. */
static inline bool ipc__stop_seen(ipc_server *s)
{
    /* Acquire [S]: pairs with the release in ipc_server_stop(). */
    return atomic_load_explicit(&s->stop_requested, memory_order_acquire) != 0;
}

/* The multiplexed wire's largest frame (the successor's bound): a longer
 * one closes the connection. */
#define IPC__MUX_FRAME_MAX ((size_t)1 << 30)

/* Bytes of request id before each message's payload on o's wire. */
static inline size_t ipc__wire_hdr(const ipc_server_options *o)
{
    return o->wire == IPC_WIRE_MUX ? IPC_WIRE_ID_SIZE : 0;
}

/* The largest payload o's wire carries. */
static inline size_t ipc__wire_max(const ipc_server_options *o)
{
    return o->wire == IPC_WIRE_MUX ? IPC__MUX_FRAME_MAX - IPC_WIRE_ID_SIZE
                                   : IPC_MAX_MESSAGE_LIMIT;
}

/* true while a reply waits for the run loop (kicked above). */
static inline bool ipc__kick_seen(ipc_server *s)
{
    /* Acquire [K]: pairs with the release exchange in ipc__run_kick()
     * (run.c); what it publishes is taken under the run's mutex anyway. */
    return atomic_load_explicit(&s->kicked, memory_order_acquire) != 0;
}

/* The one mapping of "the peer is gone" to an errno, whatever the kernel or
 * the shared segment said (EPIPE, ECONNRESET, ENOTCONN): a client's send
 * reports -EPIPE (nothing more can go out), every other call -ECONNRESET.
 * err is a negative errno; one that does not mean "gone" is returned as is. */
static inline int ipc__peer_gone(int err, bool client_send)
{
    if (err != -EPIPE && err != -ECONNRESET && err != -ENOTCONN)
        return err;
    return client_send ? -EPIPE : -ECONNRESET;
}

#endif /* IPC_TRANSPORT_H */
