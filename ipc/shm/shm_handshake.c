/* Both halves of the shared-memory rendezvous (docs/SHM.md, "Rendezvous"). */
#include "ipc/shm/shm_handshake.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "ipc/shm/shm_layout.h"
#include "ipc/transport.h"
#include "ipc/unix/unix.h"

#define IPC__SHM_ADDR_PREFIX "ipc-shm/"

bool ipc__shm_name_ok(const char *name)
{
    size_t n = strnlen(name, IPC_SHM_NAME_MAX + 1);
    if (n == 0 || n > IPC_SHM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

int ipc__shm_listen(const char *name)
{
    return ipc__abstract_bind(IPC__SHM_ADDR_PREFIX, name, SOCK_NONBLOCK, SOMAXCONN);
}

int ipc__shm_dial(const char *name)
{
    /* Non-blocking: with the server's backlog full, connect() fails with
     * EAGAIN ("busy") instead of blocking without limit. */
    int fd = ipc__abstract_connect(IPC__SHM_ADDR_PREFIX, name, SOCK_NONBLOCK);
    if (fd < 0)
        return fd;
    int rc = ipc__peer_ok(fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int ipc__shm_hello_send(int fd, uint32_t status, uint32_t id, const int fds[IPC_SHM_HELLO_FDS])
{
    ipc__shm_hello h = {.magic = IPC_SHM_HELLO_MAGIC, .version = IPC_SHM_VERSION,
                        .status = status, .client_id = id};
    ssize_t n = ipc__send_fds(fd, &h, sizeof(h), fds, fds != NULL ? IPC_SHM_HELLO_FDS : 0,
                              MSG_DONTWAIT);
    if (n < 0)
        return (int)n;
    return n == (ssize_t)sizeof(h) ? 0 : -EIO;
}

/* Waits until the socket is readable: 0, -ETIMEDOUT or -errno. */
static int ipc__shm_hello_wait(int fd, uint64_t timeout_ns)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uint64_t now = ipc__now_ns();
    /* Saturating: a connect's timeout may be "practically without limit". */
    uint64_t deadline = timeout_ns >= IPC_FOREVER - now ? IPC_FOREVER - 1 : now + timeout_ns;
    for (;;) {
        if (ipc__now_ns() >= deadline)
            return -ETIMEDOUT;
        int n = poll(&p, 1, ipc__poll_ms(deadline));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

int ipc__shm_hello_recv(int fd, uint64_t timeout_ns, int fds[IPC_SHM_HELLO_FDS], uint32_t *id)
{
    int rc = ipc__shm_hello_wait(fd, timeout_ns);
    if (rc < 0)
        return rc;
    ipc__shm_hello h;
    int got[IPC_UNIX_MAX_FDS], nfds;
    ssize_t n = ipc__recv_fds(fd, &h, sizeof(h), got, IPC_UNIX_MAX_FDS, &nfds, MSG_DONTWAIT);
    /* A hang-up before the hello: the server died with us in its backlog
     * (or mid-handshake). To the caller that is "no server": retry. */
    if (n == 0 || n == -ECONNRESET)
        return -ECONNREFUSED;
    if (n < 0)
        return n == -EAGAIN ? -EPROTO : (int)n;
    bool valid = n == (ssize_t)sizeof(h) && h.magic == IPC_SHM_HELLO_MAGIC &&
                 h.version == IPC_SHM_VERSION;
    int want = valid && h.status == 0 ? IPC_SHM_HELLO_FDS : 0;
    if (nfds != want) {
        ipc__close_fds(got, nfds);
        rc = -EPROTO;
    }
    if (!valid)
        return -EPROTO;
    if (h.status != 0)
        return h.status <= 4095 ? -(int)h.status : -EPROTO;
    if (rc < 0)
        return rc;
    for (int i = 0; i < IPC_SHM_HELLO_FDS; i++)
        fds[i] = got[i];
    *id = h.client_id;
    return 0;
}
