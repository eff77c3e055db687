/* Helpers shared by the socket client and server. Internal. */
#ifndef IPC_SOCKET_SOCKET_UTIL_H
#define IPC_SOCKET_SOCKET_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

/* Fills *addr for path; false when the path is empty or does not fit. */
bool ipc__sockaddr_path(struct sockaddr_un *addr, const char *path);

/* Waits on CLOCK_MONOTONIC until fd has `events` or the deadline passes:
 * 1 ready, 0 timed out, -errno. EINTR is retried with the time left. */
int ipc__wait_fd(int fd, short events, uint64_t deadline);

/* Lets fd queue at least `bytes` (one whole frame) in the kernel, so that
 * writing it never stops half-way while the reader is awake anyway: each
 * partial write costs both sides a sleep and a wake-up (a 1 MiB reply
 * through the default ~208 KiB buffer took five). Raises only, best effort:
 * past net.core.wmem_max only CAP_NET_ADMIN (SO_SNDBUFFORCE) gets more. */
void ipc__socket_sndbuf_at_least(int fd, size_t bytes);

#endif
