/*
 * The socket file of a server: who owns a path (the lock), whether a socket
 * there is live, and how a listening socket is published onto it. Internal.
 */
#ifndef IPC_SOCKET_SOCKET_PATH_H
#define IPC_SOCKET_SOCKET_PATH_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/un.h>

/* Takes the server lock of a path: the abstract socket
 * "\0ipc-sock-lock/<ipc__path_id>", named after the path's resolved location
 * (realpath of its directory + its base name), so every spelling of one file
 * (./x, a//x, a symlinked directory) is one lock.
 * The fd, -EADDRINUSE when a server holds it, -errno (-ENOENT: no such
 * directory, -EINVAL: no base name). */
int ipc__sock_lock_take(const char *path);

/* Binds fd (a SOCK_STREAM socket) to a temporary name beside path, applies
 * mode, listens, and only then moves it onto path, so the path appears
 * already accepting. A socket file nobody accepts on is replaced; a live one
 * gives -EADDRINUSE, anything that is not a socket -EEXIST. Call it holding
 * the lock. On success *st is the published file's identity; on failure
 * nothing this call created is left and nothing else was removed. */
int ipc__sock_publish(int fd, const struct sockaddr_un *addr, unsigned mode, int backlog,
                      struct stat *st);

#endif
