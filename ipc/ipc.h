/*
 * ipc — request/response inter-process communication on one Linux machine.
 *
 * Two transports behind one interface:
 *   - Unix domain sockets: an epoll server, any number of clients.
 *   - Shared memory: lock-free rings, adaptive spin then futex sleep.
 *
 * Conventions (every call):
 *   - A call returning int or ssize_t returns >= 0 on success (0, a count or a
 *     client id) and a negative errno on failure. errno is never used.
 *   - Factories return NULL only for invalid arguments or when out of memory;
 *     they never touch the file system or the network. Resources are acquired
 *     by ipc_client_connect() / ipc_server_listen().
 *   - timeout_ns == 0 waits without limit (but a connect is always bounded:
 *     ipc_client_connect_timeout). Any other value bounds the wait on
 *     CLOCK_MONOTONIC, across EINTR. A timed-out call leaves the stream in sync:
 *     a message is either delivered whole or not at all.
 *   - Messages are opaque byte strings of 0 .. IPC_MAX_MESSAGE_LIMIT bytes.
 *     Zero-length messages are legal both ways.
 *   - A message larger than the caller's buffer gives -EMSGSIZE and is
 *     discarded whole; the next receive returns the message after it.
 *
 * Threading: one object, one thread at a time, with these exceptions.
 *   - ipc_server_stop() may be called from any thread or a signal handler.
 *   - ipc_client_call() may be called from any number of threads at once on
 *     one connected client (not mixed with send/recv on that client).
 *   - ipc_request_* (deferred requests) from any thread; a run() handler
 *     runs on worker threads when ipc_server_options.workers is set.
 *   - A connected client is full duplex: one thread may send
 *     (ipc_client_send, _try_send, _loan, _commit) while one other thread
 *     receives (ipc_client_recv, _try_recv, _peek, _release), on both
 *     transports. Replies still come in request order. Everything else
 *     (connect, close, destroy, ipc_client_fd) needs the client to itself;
 *     ipc_client_stats may be read from any thread. Two threads sending (or
 *     two receiving) at once is not allowed: use a client each.
 */
#ifndef IPC_IPC_H
#define IPC_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header (semantic versioning: a new MAJOR breaks the
 * API or ABI). ipc_version() gives the library's, which a program linked
 * against a shared libipc may see differ in MINOR or PATCH. */
#define IPC_VERSION_MAJOR 0
#define IPC_VERSION_MINOR 1
#define IPC_VERSION_PATCH 0
#define IPC__STR(x) #x
#define IPC__XSTR(x) IPC__STR(x)
#define IPC_VERSION_STRING                                                    \
    IPC__XSTR(IPC_VERSION_MAJOR) "." IPC__XSTR(IPC_VERSION_MINOR) "." IPC__XSTR(IPC_VERSION_PATCH)

/* The library's IPC_VERSION_STRING, e.g. "0.1.0". */
const char *ipc_version(void);

/* Largest message the framing can carry (the socket prefix is a u32). */
#define IPC_MAX_MESSAGE_LIMIT ((size_t)UINT32_MAX)
/* Default limit on one message, used by ipc_server_run() given 0. */
#define IPC_DEFAULT_MAX_MESSAGE ((size_t)1 << 20)

typedef struct ipc_client ipc_client;
typedef struct ipc_server ipc_server;

/* ------------------------------------------------------------------ client */

/* How requests and replies are framed on a connection. */
typedef enum {
    /* The seed's: a message is its payload; a client's replies come in the
     * order of its requests. bb.js and the seed's clients speak it. */
    IPC_WIRE_LEGACY = 0,
    /* Each message begins with a request id, a u64 little-endian, that the
     * reply carries back (the module's successor's framing on sockets:
     * [u32 LE len][u64 LE id][payload], len counting the id). Replies
     * leave in completion order. Id 0 is reserved for messages the server
     * starts. See docs/PROTOCOL.md. */
    IPC_WIRE_MUX = 1,
} ipc_wire;

/* Bytes a request id takes at the front of a multiplexed message. */
#define IPC_WIRE_ID_SIZE 8

/* Options for the client _ex factories: zero-initialise, then set what you
 * need. */
typedef struct ipc_client_options {
    /* The server's framing, an ipc_wire (default IPC_WIRE_LEGACY). On the
     * multiplexed wire every message sent and received begins with its
     * request id (IPC_WIRE_ID_SIZE bytes, u64 little-endian): send gives
     * -EINVAL for a shorter one. A shared-memory server of the other wire
     * refuses the connect with -EPROTO; a socket server cannot tell (see
     * docs/PROTOCOL.md). */
    uint32_t wire;
} ipc_client_options;

/* A client of the socket server at socket_path (at most 107 bytes: a longer
 * path gives NULL, it is never truncated). */
ipc_client *ipc_client_create_socket(const char *socket_path);
ipc_client *ipc_client_create_socket_ex(const char *socket_path,
                                        const ipc_client_options *options);

/* A client of the shared-memory server named base_name. max_clients 0 takes
 * whatever capacity the server serves; a non-zero value (at most 4096) must
 * match the server's: connect() gives -EINVAL otherwise. */
ipc_client *ipc_client_create_shm(const char *base_name, size_t max_clients);
ipc_client *ipc_client_create_shm_ex(const char *base_name, size_t max_clients,
                                     const ipc_client_options *options);

/* The number of clients a shared-memory server serves, as the last connect()
 * that reached it learnt (also one refused with -EINVAL for asking another
 * number); 0 before that, and for socket clients. */
size_t ipc_client_shm_capacity(const ipc_client *c);

/* The bound on a connect given no timeout: 10 s. */
#define IPC_CONNECT_TIMEOUT_NS (10ull * 1000 * 1000 * 1000)

/* Connects within timeout_ns, hello included: -ETIMEDOUT once it passes
 * (a stopped or hung server). 0 takes IPC_CONNECT_TIMEOUT_NS: a connect is
 * always bounded (UINT64_MAX is practically without limit).
 * -ENOENT / -ECONNREFUSED when no server is there (also when a
 * shared-memory server dies during the handshake), -EISCONN when already
 * connected, -EPROTO when the server speaks another protocol version,
 * -EINVAL when a shared-memory server serves another number of clients
 * than asked for (ipc_client_create_shm).
 * -EAGAIN at once when a shared-memory server has no free slot: retry later.
 * A server whose listen backlog is full (a burst of connects, a stalled
 * server, or another user hammering a shared-memory name) is retried until
 * the timeout. A socket file exists only while its server accepts, so a
 * connect the moment it appears succeeds. */
int ipc_client_connect_timeout(ipc_client *c, uint64_t timeout_ns);

/* ipc_client_connect_timeout(c, 0): bounded by IPC_CONNECT_TIMEOUT_NS. */
int ipc_client_connect(ipc_client *c);

/* Sends one message. -ETIMEDOUT when the timeout passed before the message
 * could start; nothing of it was sent (a server pushing back on a client
 * that does not read its replies stops taking its requests: see
 * max_pending_output). -EMSGSIZE, with nothing sent, when a shared-memory
 * server takes no message that long (its max_message_size, learnt at
 * connect; ipc_client_loan() checks the same). Once the first byte of a
 * socket frame is out the rest is committed: if the timeout passes
 * mid-frame, the rest is kept and flushed ahead of the next send, or while
 * the next recv waits for a reply, and this call returns 0.
 * -ECONNRESET / -EPIPE when the server is gone, -ENOTCONN before connect. */
int ipc_client_send(ipc_client *c, const void *data, size_t len, uint64_t timeout_ns);

/* Receives one message into buf; returns its length. -ETIMEDOUT when none
 * arrived in time (a partly received message is kept for the next call).
 * -EMSGSIZE when the message is longer than max_len: it is discarded whole.
 * -ECONNRESET when the server is gone, even with an unlimited timeout. */
ssize_t ipc_client_recv(ipc_client *c, void *buf, size_t max_len, uint64_t timeout_ns);

/* Sends req and waits for its reply into reply (at most max bytes): the
 * reply's length. Unlike send and recv, safe from any number of threads at
 * once on one connected client (do not mix the two on one client). On the
 * multiplexed wire the calls are in flight together and each gets the
 * reply carrying its request id (the call adds and strips the id: req and
 * reply are payloads); on the legacy wire they queue in order and each
 * gets the reply in its position. -ETIMEDOUT when no reply came in time:
 * the connection stays usable, the late reply is discarded when it comes
 * (counted in ipc_stats.orphans). -EMSGSIZE when the reply is longer than
 * max (it is discarded). When the connection fails every pending call
 * fails with the same error (-ECONNRESET once the server is gone), and
 * every later call at once, until a new connect. -EPROTO for a reply id
 * nobody asked for (a server of the other wire): every call fails; close
 * the client. */
ssize_t ipc_client_call(ipc_client *c, const void *req, size_t len, void *reply, size_t max,
                        uint64_t timeout_ns);

/* The asynchronous form of ipc_client_call(), for event loops and for
 * many requests in flight from one thread (io_uring style: the reply
 * buffer is given at submit). Safe from any number of threads, together
 * with ipc_client_call(); not with ipc_client_send/recv.
 *
 * Sends req and returns without waiting for the reply: 0 and *id, which
 * names the call until it is reaped (by ipc_client_wait, _wait_any or
 * _cancel) or the client connects again. The reply will be copied into
 * reply (at most max bytes), which must stay valid until then.
 * timeout_ns bounds the send only (a server pushing back); errors as
 * ipc_client_call(); nothing was sent on error. */
int ipc_client_submit(ipc_client *c, const void *req, size_t len, void *reply, size_t max,
                      uint64_t *id, uint64_t timeout_ns);

/* Waits for call id and reaps it: the reply's length, or the call's error
 * as ipc_client_call() gives it (-EMSGSIZE, -ECONNRESET, -EPROTO...).
 * -ETIMEDOUT when it did not complete in time: it stays pending (wait
 * again or cancel). -ENOENT for an id that names no call (reaped, or of
 * an earlier connection), -EBUSY when another thread waits for it. */
ssize_t ipc_client_wait(ipc_client *c, uint64_t id, uint64_t timeout_ns);

/* Waits for any submitted call to complete and reaps it, in completion
 * order: its result as ipc_client_wait() gives it, and its id in *id.
 * -ENOENT when no submitted call is left to reap (nothing would ever
 * come), -ETIMEDOUT when none completed in time. */
ssize_t ipc_client_wait_any(ipc_client *c, uint64_t *id, uint64_t timeout_ns);

/* ipc_client_wait_any() without waiting: it reads what has arrived, then
 * gives a completed call or -EAGAIN. */
ssize_t ipc_client_try_wait_any(ipc_client *c, uint64_t *id);

/* Gives up call id: its reply buffer is free when this returns, and its
 * reply, if it comes, is discarded (counted in ipc_stats.orphans; the
 * connection stays usable). A completed call is simply reaped. -ENOENT for
 * an unknown id, -EBUSY when a thread waits for it. */
int ipc_client_cancel(ipc_client *c, uint64_t id);

/* A file descriptor for an event loop: it polls readable while a submitted
 * call is complete or a reply may have arrived; then call
 * ipc_client_try_wait_any() until -EAGAIN. Readiness is level-triggered.
 * It belongs to the client: valid until ipc_client_close(); call again after
 * a new connect. Shared memory: the first call starts a helper thread
 * (see ipc_client_fd). */
int ipc_client_calls_fd(ipc_client *c);

/* Disconnects; the client may connect again. Idempotent. Calls still
 * pending end with -ENOTCONN (submitted ones are reaped as usual); close
 * only once no thread is inside a call. */
void ipc_client_close(ipc_client *c);

/* Closes and frees. NULL is a no-op. */
void ipc_client_destroy(ipc_client *c);

/* ------------------------------------------------------------------ server */

/* Options for the _ex factories. Zero-initialise, then set what you need:
 * every zero field takes its documented default. */
typedef struct ipc_server_options {
    /* Longest request accepted (default IPC_DEFAULT_MAX_MESSAGE). A socket
     * client sending a longer frame is disconnected. A shared-memory client
     * learns the limit at connect (capped at ring_size / 2 - 16) and gets
     * -EMSGSIZE from send and loan; one that writes a longer request into
     * its ring anyway is disconnected. */
    size_t max_message_size;
    /* Socket: permission bits of the socket file (default 0600). */
    uint32_t socket_mode;
    /* The bound on replies queued for one client that does not read them
     * (0: 2 * max_message_size + 64 KiB, following the max_message_size
     * that ipc_server_run() sets). Socket: counted in bytes as sent, 4-byte
     * frame headers included. Once this many are queued the server holds
     * the client: it hands out none of its requests (and so, past 256 KiB of
     * input beyond one whole request, reads none) until the queue drains to
     * half. Back-pressure, not a drop: a client that reads, however slowly,
     * is never dropped for it; one that never reads is never dropped either
     * and holds at most about this + one reply of queue plus 2 * (256 KiB +
     * one request) of input buffer; the other clients never wait for it.
     * Shared memory: a queued reply counts what it costs the server (its
     * bytes plus 24 of bookkeeping, 32 at least, so empty replies are not
     * free); at the bound the server takes no more requests from that client
     * (they wait in its ring, its sends block) until the queue drains below
     * it: a client that reads, however slowly, is never dropped, and one
     * that never reads holds at most this bound plus one reply (and its
     * rings). Only replies sent past twice the bound without a request taken
     * (ipc_server_send() in a loop) drop it. */
    size_t max_pending_output;
    /* Shared memory: bytes in each ring, a power of two >= 4096 (default
     * 4 MiB). The largest message is ring_size / 2 - 16. */
    size_t ring_size;
    /* Shared memory: how long a waiter spins before it sleeps
     * (default 50 us). */
    uint64_t spin_ns;
    /* ipc_server_run(): threads that run the handler (at most 1024). 0: the
     * thread calling run() runs it, one request at a time. With workers, one
     * thread (run()'s) does all the reading and writing, a client's slow
     * request holds no other client, and a handler must be thread-safe. */
    uint32_t workers;
    /* The framing, an ipc_wire (default IPC_WIRE_LEGACY). max_message_size
     * counts the payload, not the id. */
    uint32_t wire;
    /* ipc_server_run(): requests of one client in work at once (in
     * handlers, or deferred: ipc_response_defer) on the multiplexed wire
     * (default 64, at most 65536). The legacy wire takes one at a time per
     * client, so its replies keep their order. A client at its bound is not
     * read (its requests wait in its ring or socket: back-pressure). */
    uint32_t max_inflight_per_client;
    /* ipc_server_run(): requests in work at once on the whole server
     * (default 1024, at most 1 << 20); at the bound run() takes no request
     * until one is answered. */
    uint32_t max_inflight;
} ipc_server_options;

/* A socket server. max_clients is the initial size of the client table,
 * which grows on demand (0 takes 16; negative gives NULL). */
ipc_server *ipc_server_create_socket(const char *socket_path, int max_clients);
ipc_server *ipc_server_create_socket_ex(const char *socket_path, int max_clients,
                                        const ipc_server_options *options);

/* A shared-memory server for exactly max_clients (1 .. 4096) at once. */
ipc_server *ipc_server_create_shm(const char *base_name, size_t max_clients);
ipc_server *ipc_server_create_shm_ex(const char *base_name, size_t max_clients,
                                     const ipc_server_options *options);

/* Starts serving. -EADDRINUSE when a live server has the name (it is left
 * alone); a name left by a crashed server is taken over.
 * Socket: the file appears only once the server accepts (it listens under a
 * temporary name ".ipc-<id>.tmp" beside the path, then moves it there). One
 * server per location however the path is spelled (a/x, a//x, ./x, a
 * symlinked directory): the lock is named after the realpath of the
 * directory plus the base name. -EADDRINUSE also when any live socket is at
 * the path (a listener of another implementation, a datagram or seqpacket
 * socket); -EEXIST when something that is not a socket is (at the path or
 * at the temporary name: neither is ever removed); -EACCES when a
 * socket there cannot be probed. On failure nothing is removed but the
 * temporary name it created.
 * -EUSERS when a thread it needs cannot start: the stats publisher (every
 * server; see ipc_stats_fetch) and, on shared memory, the connection
 * watcher. The cause is the user's process/thread limit (RLIMIT_NPROC,
 * `ulimit -u`; it counts threads), the system's thread limit, or no memory
 * for a thread stack. A server never serves without its stats page: listen
 * fails, and everything it set up is undone. (-EAGAIN, elsewhere "no free
 * slot, retry", is never this.) */
int ipc_server_listen(ipc_server *s);

/* Waits until a whole message from some client is ready, accepting
 * connections and dropping dead clients meanwhile. Returns the client id,
 * -ETIMEDOUT, or -ECANCELED once ipc_server_stop() was called. Clients with
 * ready messages are served round robin. */
int ipc_server_wait_for_data(ipc_server *s, uint64_t timeout_ns);

/* Takes the ready message of client_id into buf; returns its length.
 * -EAGAIN when that client has no whole message ready, -EMSGSIZE when it is
 * longer than max_len (it is discarded), -ENOENT for an unknown client. */
ssize_t ipc_server_recv(ipc_server *s, int client_id, void *buf, size_t max_len);

/* Sends a reply to client_id. Never blocks on a client that does not read:
 * the reply is queued. Socket: a reply to a request handed out is always
 * queued (the queue is bounded by holding the client, see
 * max_pending_output); output that answers no request and would take the
 * queue past max_pending_output drops the client (-ENOBUFS). Shared memory:
 * a client whose queue already holds twice max_pending_output is dropped
 * (-ENOBUFS); run() never gets there (see max_pending_output).
 * -ECONNRESET / -ENOENT when that client is gone. */
int ipc_server_send(ipc_server *s, int client_id, const void *data, size_t len);

/* Stops serving: disconnects every client, removes the names it created.
 * Idempotent; the server may listen again. */
void ipc_server_close(ipc_server *s);

/* Closes and frees. NULL is a no-op. */
void ipc_server_destroy(ipc_server *s);

/* ---------------------------------------------------------------- run loop */

typedef enum { IPC_CONTINUE = 0, IPC_SHUTDOWN = 1 } ipc_action;

/* Where a handler writes its reply. With no call the reply is empty. */
typedef struct ipc_response ipc_response;

/* Returns len writable bytes that become the reply (replacing any earlier
 * one), or NULL when len is over the limit or memory is short. */
void *ipc_response_reserve(ipc_response *r, size_t len);

/* Copies data as the reply. 0, -EMSGSIZE or -ENOMEM. */
int ipc_response_set(ipc_response *r, const void *data, size_t len);

typedef ipc_action (*ipc_handler)(void *ctx, int client_id, const void *request,
                                  size_t len, ipc_response *response);

/* Answers the request later, from any thread: the handler returns without
 * a reply going out, and the request is the caller's until it calls
 * ipc_request_reply(), ipc_request_commit() or ipc_request_drop() (exactly
 * one of them). A reply set or reserved on r before is discarded. NULL when
 * memory is short or r was deferred already (the handler's reply, if any,
 * then goes as usual). Until it is answered the request counts against its
 * client's bound (max_inflight_per_client; on the legacy wire that client
 * is served nothing else meanwhile: its replies keep their order). */
typedef struct ipc_request ipc_request;
ipc_request *ipc_response_defer(ipc_response *r);

/* The request's client id and payload (the request id stripped on the
 * multiplexed wire); valid until it is answered. */
int ipc_request_client(const ipc_request *q);
const void *ipc_request_data(const ipc_request *q, size_t *len);

/* Answers with a copy of data. 0: it is the run loop's to send (a client
 * that left meanwhile does not get it: counted in ipc_stats.orphans) or to
 * discard (-ECANCELED: run() has returned; counted the same). Both end the
 * request: q is freed. -EMSGSIZE (over run()'s limit) or -ENOMEM leave it
 * with the caller, still unanswered. -EINVAL for NULL. */
int ipc_request_reply(ipc_request *q, const void *data, size_t len);

/* A reply written in place: len writable bytes (NULL when over the limit
 * or out of memory), then sent by ipc_request_commit(q, len' <= len),
 * which ends the request as ipc_request_reply() does (-EINVAL with no
 * reserve or a longer len, q kept). */
void *ipc_request_reserve(ipc_request *q, size_t len);
int ipc_request_commit(ipc_request *q, size_t len);

/* Gives the request up without a reply and frees q. On the multiplexed
 * wire the client's call gets no reply (its own timeout ends it); on the
 * legacy wire every later reply would answer the wrong request, so the
 * client is disconnected (counted in drops). */
void ipc_request_drop(ipc_request *q);

/* Serves until a handler returns IPC_SHUTDOWN (its reply is delivered first)
 * or ipc_server_stop() is called; returns 0 then. With workers or deferred
 * requests, it first takes no new request, lets the handlers at work finish
 * and sends their replies, and waits up to 2 s for deferred requests still
 * unanswered (later answers are discarded and counted in orphans). Listens first if needed.
 * max_message_size == 0 takes the server's options.max_message_size, whose
 * default is IPC_DEFAULT_MAX_MESSAGE (1 MiB); it bounds requests and
 * replies. A client sending a longer request is disconnected, never left
 * without an answer (a shared-memory client is told the limit in force when
 * it connects, so only one connected before run() lowered it can). Destroys
 * nothing: the server may run again. Fails as ipc_server_listen() does when
 * it has to listen (-EADDRINUSE, -EUSERS...). */
int ipc_server_run(ipc_server *s, ipc_handler handler, void *ctx, size_t max_message_size);

/* Makes run() and wait_for_data() return promptly, now or when next
 * called (the request is consumed by run's return). Async-signal-safe, may be
 * called from any thread. */
void ipc_server_stop(ipc_server *s);

/* ------------------------------------------------------ event-loop support */

/* A file descriptor that polls readable (POLLIN / EPOLLIN) when the server
 * may have work: a message, a connection, a dead client. Drain with
 * ipc_server_try_wait_for_data() until -EAGAIN before polling again, as
 * with an edge-triggered source. Owned by the server: do not close or read
 * it. -ENOTCONN before listen, -EOPNOTSUPP when the transport has none. */
int ipc_server_fd(ipc_server *s);

/* Like ipc_server_wait_for_data() without waiting: a client id or -EAGAIN. */
int ipc_server_try_wait_for_data(ipc_server *s);

/* A file descriptor that polls readable when a reply may have arrived or the
 * server is gone; drain with ipc_client_try_recv() until -EAGAIN. Shared
 * memory: the first call starts a helper thread, -EUSERS when it cannot
 * (see ipc_server_listen). */
int ipc_client_fd(ipc_client *c);

/* Like ipc_client_recv() without waiting: a length, or -EAGAIN. */
ssize_t ipc_client_try_recv(ipc_client *c, void *buf, size_t max_len);

/* Like ipc_client_send() without waiting: 0, or -EAGAIN with nothing sent. */
int ipc_client_try_send(ipc_client *c, const void *data, size_t len);

/* --------------------------------------------------------------- zero-copy */

/* On shared memory these read and write the rings in place; on sockets
 * peek is in place in the receive buffer and a loan is a staging buffer.
 * On shared memory a request lent by ipc_server_peek() (and so the request
 * a run() handler gets) lives in memory the client can write while you read
 * it: copy what you check before acting on it.
 * One loan at a time per object; a peeked message stays valid (and is
 * returned again by peek) until released. */

/* Space for a message of len bytes to write in place; 0 and *buf, or
 * -ETIMEDOUT / -EMSGSIZE / -ECONNRESET like ipc_client_send(). */
int ipc_client_loan(ipc_client *c, size_t len, void **buf, uint64_t timeout_ns);
/* Sends the first len (<= the loan's) bytes of the loan. -EINVAL with no
 * loan or a longer len. */
int ipc_client_commit(ipc_client *c, size_t len);
/* The next message in place: its length and *msg, or an error like
 * ipc_client_recv() (never -EMSGSIZE: there is no buffer to be short). */
ssize_t ipc_client_peek(ipc_client *c, const void **msg, uint64_t timeout_ns);
/* Consumes the peeked message: its length, or -EINVAL with none. */
ssize_t ipc_client_release(ipc_client *c);

/* The ready message of client_id in place (after wait_for_data): its length
 * and *msg, -EAGAIN with none, -ENOENT for an unknown client. */
ssize_t ipc_server_peek(ipc_server *s, int client_id, const void **msg);
/* Consumes it: its length, or -EINVAL when nothing was peeked. */
ssize_t ipc_server_release(ipc_server *s, int client_id);
/* Space for a reply to client_id of len bytes; on shared memory straight
 * into that client's ring when it has room. */
int ipc_server_loan(ipc_server *s, int client_id, size_t len, void **buf);
/* Sends the first len bytes of the loan to the client it was made for. */
int ipc_server_commit(ipc_server *s, int client_id, size_t len);

/* ----------------------------------------------------------------- metrics */

/* Latency histogram: log buckets with 8 steps per power of two (values
 * within 12.5 %), constant memory, from 0 ns to 2^64 ns. */
#define IPC_HISTOGRAM_BUCKETS 512

typedef struct ipc_stats {
    uint64_t messages_in;  /* messages received */
    uint64_t messages_out; /* messages sent */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t timeouts;     /* calls that returned -ETIMEDOUT */
    uint64_t oversize;     /* -EMSGSIZE: messages discarded as too long */
    uint64_t resets;       /* -ECONNRESET / -EPIPE: the peer went away */
    uint64_t other_errors; /* every other failure */
    uint64_t drops;        /* server: clients it disconnected (bad frames,
                              reply queue overflow, corrupt rings) */
    uint64_t connects;     /* server: clients accepted; client: connects */
    uint64_t reconnects;   /* client: connects after the first */
    uint64_t reclaims;     /* server: slots freed after a client left or died */
    uint64_t clients;      /* server: clients connected now */
    uint64_t orphans;      /* server: replies discarded, their client having
                              left (or run() ended) before they were ready;
                              client: late replies to ipc_client_call()s
                              that had timed out */
    /* Server: time from a request's arrival in run() to its reply sent.
     * Client: send() to the recv() that completes, in ns. */
    uint64_t latency[IPC_HISTOGRAM_BUCKETS];
} ipc_stats;

/* A snapshot of the counters (reading never slows the owner). 0 or -EINVAL. */
int ipc_server_stats(const ipc_server *s, ipc_stats *out);
int ipc_client_stats(const ipc_client *c, ipc_stats *out);

/* The latency below which a fraction q (0..1) of the samples fall, in ns
 * (the upper edge of the bucket holding it); 0 with no samples. */
uint64_t ipc_stats_percentile(const ipc_stats *st, double q);

/* Number of latency samples. */
uint64_t ipc_stats_samples(const ipc_stats *st);

/* Who publishes a stats page (see ipc_stats_fetch). */
typedef struct ipc_server_info {
    char transport[8]; /* "socket" or "shm" */
    char name[112];    /* resolved socket path (realpath of its directory +
                          base name), or shared-memory name */
    int32_t pid;       /* the server process */
    uint32_t uid;      /* its owner */
    uint64_t started_ns; /* CLOCK_REALTIME when it started listening */
} ipc_server_info;

/* Longest a stats fetch waits for the process behind a stats name. */
#define IPC_STATS_TIMEOUT_MS 1000

/* Reads the stats a listening server publishes, from any process of the
 * same user (or root), without stopping or slowing it. transport is
 * "socket" (name: the socket path) or "shm". -ENOENT when no such server
 * listens, -EACCES for another user's server, -EPROTO for a foreign page,
 * -ETIMEDOUT when the listener does not answer within IPC_STATS_TIMEOUT_MS
 * (a stopped or hostile process). The page is another process's data:
 * info->pid and info->uid are the listener's, from the kernel (SO_PEERCRED),
 * never from the page; info->name is as the page says (print it escaped). */
int ipc_stats_fetch(const char *transport, const char *name, ipc_stats *out,
                    ipc_server_info *info);

/* Calls visit once per server on this machine that publishes stats (every
 * listening server does), with its info and stats, or with err < 0 when its
 * page could not be read (-EACCES: another user's; -ETIMEDOUT, -EPROTO as
 * for ipc_stats_fetch, each listener waited for at most
 * IPC_STATS_TIMEOUT_MS). 0 or -errno. */
typedef void (*ipc_stats_visitor)(void *arg, int err, const ipc_server_info *info,
                                  const ipc_stats *stats);
int ipc_stats_list(ipc_stats_visitor visit, void *arg);

/* --------------------------------------------------------------- operators */

enum { IPC_PATH_STALE = 0, IPC_PATH_LIVE = 1 };

/* What is at a socket path: IPC_PATH_LIVE when a process holds a socket
 * bound there (a listener, even with a full backlog, or a socket of another
 * type: datagram, seqpacket), IPC_PATH_STALE for a socket file nobody holds
 * (a stream connect is refused: left by a dead server), -ENOENT for nothing,
 * -ENOTSOCK for something else, -EACCES (or another -errno) when it cannot
 * tell (the caller may not connect), -EINVAL for a path that cannot be a
 * socket path. */
int ipc_socket_path_state(const char *path);

/* Removes a stale socket file, and only a provably stale one. -EADDRINUSE
 * when a server of this library holds the path's lock (however spelled) or
 * any live socket is there (it is left alone), -ENOTSOCK / -ENOENT / -EACCES
 * as above. While it checks, it holds the lock a server of this library
 * takes, so none can start there meanwhile. */
int ipc_socket_path_clean(const char *path);

/* Human-readable text for a negative errno returned by this library. */
const char *ipc_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* IPC_IPC_H */
