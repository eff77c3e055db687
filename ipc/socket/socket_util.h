/* Helpers shared by the socket client and server. Internal. */
#ifndef IPC_SOCKET_SOCKET_UTIL_H
#define IPC_SOCKET_SOCKET_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

/* Fills *addr for path; false when the path is empty or does not fit. */
bool ipc__sockaddr_path(struct sockaddr_un *addr, const char *path);

/* Waits on CLOCK_MONOTONIC until fd has `events` or the deadline passes:
 * 1 ready, 0 timed out, -errno. EINTR is retried with the time left. */
int ipc__wait_fd(int fd, short events, uint64_t deadline);

#endif
