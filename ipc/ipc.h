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
 *   - timeout_ns == 0 waits without limit. Any other value bounds the wait on
 *     CLOCK_MONOTONIC, across EINTR. A timed-out call leaves the stream in sync:
 *     a message is either delivered whole or not at all.
 *   - Messages are opaque byte strings of 0 .. IPC_MAX_MESSAGE_LIMIT bytes.
 *     Zero-length messages are legal both ways.
 *   - A message larger than the caller's buffer gives -EMSGSIZE and is
 *     discarded whole; the next receive returns the message after it.
 *
 * Threading: one object, one thread at a time, except ipc_server_stop(),
 * which may be called from any thread or from a signal handler.
 */
#ifndef IPC_IPC_H
#define IPC_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest message the framing can carry (the socket prefix is a u32). */
#define IPC_MAX_MESSAGE_LIMIT ((size_t)UINT32_MAX)
/* Default limit on one message, used by ipc_server_run() given 0. */
#define IPC_DEFAULT_MAX_MESSAGE ((size_t)1 << 20)

typedef struct ipc_client ipc_client;
typedef struct ipc_server ipc_server;

/* ------------------------------------------------------------------ client */

/* A client of the socket server at socket_path (at most 107 bytes: a longer
 * path gives NULL, it is never truncated). */
ipc_client *ipc_client_create_socket(const char *socket_path);

/* A client of the shared-memory server named base_name, which serves at most
 * max_clients clients (must match the server's). */
ipc_client *ipc_client_create_shm(const char *base_name, size_t max_clients);

/* Connects. -ENOENT / -ECONNREFUSED when no server is there, -EISCONN when
 * already connected, -EAGAIN when a shared-memory server has no free slot,
 * -EPROTO when the server speaks another protocol version. */
int ipc_client_connect(ipc_client *c);

/* Sends one message. -ETIMEDOUT when the timeout passed before the message
 * could start; nothing of it was sent. Once the first byte of a socket frame
 * is out the rest is committed: if the timeout passes mid-frame, the rest is
 * kept and flushed ahead of the next send or recv, and this call returns 0.
 * -ECONNRESET / -EPIPE when the server is gone, -ENOTCONN before connect. */
int ipc_client_send(ipc_client *c, const void *data, size_t len, uint64_t timeout_ns);

/* Receives one message into buf; returns its length. -ETIMEDOUT when none
 * arrived in time (a partly received message is kept for the next call).
 * -EMSGSIZE when the message is longer than max_len: it is discarded whole.
 * -ECONNRESET when the server is gone, even with an unlimited timeout. */
ssize_t ipc_client_recv(ipc_client *c, void *buf, size_t max_len, uint64_t timeout_ns);

/* Disconnects; the client may connect again. Idempotent. */
void ipc_client_close(ipc_client *c);

/* Closes and frees. NULL is a no-op. */
void ipc_client_destroy(ipc_client *c);

/* ------------------------------------------------------------------ server */

/* Options for the _ex factories. Zero-initialise, then set what you need:
 * every zero field takes its documented default. */
typedef struct ipc_server_options {
    /* Longest request accepted (default IPC_DEFAULT_MAX_MESSAGE). A socket
     * client sending a longer frame is disconnected. */
    size_t max_message_size;
    /* Socket: permission bits of the socket file (default 0600). */
    uint32_t socket_mode;
    /* Bytes of replies queued for one client that does not read
     * before it is dropped (0: 2 * max_message_size + 64 KiB, following
     * the max_message_size that ipc_server_run() sets). */
    size_t max_pending_output;
    /* Shared memory: bytes in each ring, a power of two >= 4096 (default
     * 4 MiB). The largest message is ring_size / 2 - 16. */
    size_t ring_size;
    /* Shared memory: how long a waiter spins before it sleeps
     * (default 50 us). */
    uint64_t spin_ns;
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
 * alone); a name left by a crashed server is taken over. */
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
 * the reply is queued, and a client whose queue passes max_pending_output is
 * dropped (-ENOBUFS). -ECONNRESET / -ENOENT when that client is gone. */
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

/* Serves until a handler returns IPC_SHUTDOWN (its reply is delivered first)
 * or ipc_server_stop() is called; returns 0 then. Listens first if needed.
 * max_message_size == 0 takes the server's options.max_message_size, whose
 * default is IPC_DEFAULT_MAX_MESSAGE (1 MiB); it bounds requests and replies. Destroys nothing: the server may run again. */
int ipc_server_run(ipc_server *s, ipc_handler handler, void *ctx, size_t max_message_size);

/* Makes run() and wait_for_data() return promptly, now or when next
 * called (the request is consumed by run's return). Async-signal-safe, may be
 * called from any thread. */
void ipc_server_stop(ipc_server *s);

/* Human-readable text for a negative errno returned by this library. */
const char *ipc_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* IPC_IPC_H */
