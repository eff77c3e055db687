/*
 * The Unix chores every part of ipc needs, written once. Internal.
 *
 * Each fallible call returns 0, a count or an fd, or -errno; EINTR is retried
 * inside. One peer-credential rule: a peer is trusted when the uid that
 * SO_PEERCRED reports (its effective uid at connect/listen) is our effective
 * uid, or root.
 */
#ifndef IPC_UNIX_UNIX_H
#define IPC_UNIX_UNIX_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ time */

/* An absolute CLOCK_MONOTONIC deadline that never comes. */
#define IPC_FOREVER UINT64_MAX

/* CLOCK_MONOTONIC now, in ns: the one clock of every deadline. */
uint64_t ipc__now_ns(void);

/* Deadline for a relative timeout (0 = IPC_FOREVER), saturating. */
uint64_t ipc__deadline(uint64_t timeout_ns);

/* ms left until the deadline for poll()/epoll_wait(): -1 forever, rounded up. */
int ipc__poll_ms(uint64_t deadline);

/* ------------------------------------------------------------ fds */

/* Closes *fd if open and sets it to -1. */
void ipc__close_fd(int *fd);

/* true once the peer of a connected socket hung up or sent anything
 * (a socket that carries nothing after a handshake). Does not wait. */
bool ipc__fd_hung_up(int fd);

/* Makes an eventfd readable (adds 1). Async-signal-safe; a full counter
 * already reads as readable. */
void ipc__eventfd_signal(int fd);

/* Empties a non-blocking eventfd. */
void ipc__eventfd_drain(int fd);

/* Starts a thread that takes no signals: they belong to the application's
 * threads. 0, -EUSERS when the system refuses a thread (pthread_create's
 * EAGAIN: the user's process/thread limit RLIMIT_NPROC, the system's thread
 * limit, or no memory for a thread stack), or another -errno. Every thread
 * of the library starts here. */
int ipc__thread_start_nosig(pthread_t *t, void *(*fn)(void *), void *arg);

/* ------------------------------------------------- abstract sockets */

/* The abstract address "\0<prefix><name>" (length-delimited, no trailing
 * NUL) and its length. 0, or -ENAMETOOLONG when it does not fit. */
int ipc__abstract_addr(struct sockaddr_un *a, socklen_t *len, const char *prefix,
                       const char *name);

/* A stream socket bound to "\0<prefix><name>" and, for backlog >= 0,
 * listening. type_flags: SOCK_NONBLOCK or 0 (SOCK_CLOEXEC always). The fd,
 * -EADDRINUSE while another socket holds the name, or -errno. */
int ipc__abstract_bind(const char *prefix, const char *name, int type_flags, int backlog);

/* A stream socket connected to "\0<prefix><name>": the fd or -errno
 * (-ECONNREFUSED when nobody listens, -EAGAIN for a full backlog of a
 * non-blocking connect). */
int ipc__abstract_connect(const char *prefix, const char *name, int type_flags);

/* 0 when the peer of a Unix socket passes the credential rule above,
 * -EACCES when not, or -errno. */
int ipc__peer_ok(int fd);

/* ------------------------------------------------ fd passing (SCM_RIGHTS) */

#define IPC_UNIX_MAX_FDS 4

/* Sends len bytes with nfds (<= IPC_UNIX_MAX_FDS) descriptors attached.
 * flags go to sendmsg (MSG_NOSIGNAL is added). Bytes sent or -errno. */
ssize_t ipc__send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds,
                      int flags);

/* Receives up to len bytes and up to max_fds descriptors (close-on-exec)
 * into fds; *nfds is how many came, or -1 when more came than max_fds or the
 * control data was truncated (then every one of them is already closed).
 * flags go to recvmsg. Bytes received (0 at EOF) or -errno. */
ssize_t ipc__recv_fds(int sock, void *buf, size_t len, int *fds, int max_fds, int *nfds,
                      int flags);

/* Closes n descriptors. */
void ipc__close_fds(const int *fds, int n);

/* ------------------------------------------------------ sealed memfds */

/* A memfd of size bytes, fully allocated (no SIGBUS later: -ENOSPC/-ENOMEM
 * now), sealed against shrinking, growing and further seals, and mapped
 * read-write. 0 with *fd and *map, or -errno. */
int ipc__memfd_create_sealed(const char *tag, size_t size, int *fd, void **map);

/* The same, sealed also against writes by anyone but the mapping returned
 * (F_SEAL_FUTURE_WRITE): a page peers may read but never change. */
int ipc__memfd_create_owner_writes(const char *tag, size_t size, int *fd, void **map);

/* Maps such a page received from a peer, read-only, after checking that it
 * is size bytes and sealed against resizing and others' writes. 0 with
 * *map, -EPROTO for a file that breaks those rules, or -errno. */
int ipc__memfd_map_readonly(int fd, size_t size, const void **map);

/* Maps a memfd received from a peer, read-write, after checking that it is
 * sealed against shrinking and growing and that its size is in
 * [min_size, max_size]. 0 with *map and *size, -EPROTO for a file that
 * breaks those rules, or -errno. */
int ipc__memfd_map_sealed(int fd, size_t min_size, size_t max_size, void **map, size_t *size);

/* ------------------------------------------------------------- paths */

/* FNV-1a 64 of a socket path made absolute, its directory canonical
 * (symlinks, ".", "..", "//" resolved; the last component as given): one
 * name per socket file whatever the spelling, for the abstract names that
 * stand for it (the socket server's lock, the stats page). The absolute path
 * goes to abs_out when it is not NULL. -errno when cwd is unreadable,
 * -ENAMETOOLONG for a path over PATH_MAX. */
int ipc__path_id(const char *path, char out[17], char *abs_out, size_t abs_cap);

/* The directory of path as spelled ("." or "/" when it has none) and its
 * base name (pointing into path). -EINVAL when there is no base name
 * (empty, ".", "..", a trailing "/"), -ENAMETOOLONG. */
int ipc__path_split(const char *path, char dir[PATH_MAX], const char **base);

#ifdef __cplusplus
}
#endif

#endif /* IPC_UNIX_UNIX_H */
