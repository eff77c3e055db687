#include "ipc/socket/socket_util.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>

#include "ipc/socket/socket_transport.h"
#include "ipc/transport.h"

bool ipc__sockaddr_path(struct sockaddr_un *addr, const char *path)
{
    size_t n = strlen(path);
    if (n == 0 || n > IPC_SOCKET_PATH_MAX)
        return false;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, n + 1);
    return true;
}

int ipc__wait_fd(int fd, short events, uint64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        struct timespec ts, *tsp = NULL;
        if (deadline != IPC_FOREVER) {
            uint64_t now = ipc__now_ns();
            uint64_t left = deadline > now ? deadline - now : 0;
            ts.tv_sec = (time_t)(left / 1000000000u);
            ts.tv_nsec = (long)(left % 1000000000u);
            tsp = &ts;
        }
        int n = ppoll(&p, 1, tsp, NULL);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* Past this a bigger buffer buys nothing for one frame's latency. */
#define IPC_SNDBUF_MAX (8u << 20)

void ipc__socket_sndbuf_at_least(int fd, size_t bytes)
{
    int have = 0;
    socklen_t len = sizeof(have);
    if (bytes > IPC_SNDBUF_MAX)
        bytes = IPC_SNDBUF_MAX;
    /* The kernel reports (and enforces) twice what was asked: the other
     * half covers its own bookkeeping, so asking for `bytes` fits them. */
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && (size_t)have >= 2 * bytes)
        return;
    int want = (int)bytes;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
}
