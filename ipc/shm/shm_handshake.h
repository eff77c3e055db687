/*
 * The rendezvous of the shared-memory transport: the name rules, the
 * abstract socket "\0ipc-shm/<name>", and both halves of the hello (the
 * server sends it with the segment and doorbell fds, the client receives
 * it). After the hello the socket carries nothing: it only signals death
 * (ipc__fd_hung_up). Internal.
 */
#ifndef IPC_SHM_SHM_HANDSHAKE_H
#define IPC_SHM_SHM_HANDSHAKE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest base name accepted (letters, digits, '.', '_', '-'). */
#define IPC_SHM_NAME_MAX 64

/* true for 1..IPC_SHM_NAME_MAX characters of [A-Za-z0-9._-]. */
bool ipc__shm_name_ok(const char *name);

/* Server: the non-blocking listening socket of `name`; the fd,
 * -EADDRINUSE while a live server has it, or -errno. */
int ipc__shm_listen(const char *name);

/* Client: a non-blocking socket connected to server `name` whose owner
 * passes the credential check (anyone can bind an abstract name). The fd,
 * -ECONNREFUSED (no server), -EAGAIN (backlog full), -EACCES or -errno. */
int ipc__shm_dial(const char *name);

/* The fds of a successful hello: the client's segment, the server's
 * doorbell page (read-only to clients), and the client's own eventfd for
 * waking the server. */
enum { IPC_SHM_HELLO_SEGMENT, IPC_SHM_HELLO_BELL, IPC_SHM_HELLO_WAKE, IPC_SHM_HELLO_FDS };

/* Server: the hello with status 0 and fds[IPC_SHM_HELLO_FDS], or a positive
 * errno status and fds NULL. 0, -EIO (short write) or -errno. */
int ipc__shm_hello_send(int fd, uint32_t status, uint32_t id, const int fds[IPC_SHM_HELLO_FDS]);

/* Client: waits up to timeout_ns for the hello and reads it: 0 with its
 * fds and the client id, or a negative errno (the server's status, -EPROTO,
 * -ETIMEDOUT, -ECONNREFUSED). */
int ipc__shm_hello_recv(int fd, uint64_t timeout_ns, int fds[IPC_SHM_HELLO_FDS], uint32_t *id);

#ifdef __cplusplus
}
#endif

#endif /* IPC_SHM_SHM_HANDSHAKE_H */
