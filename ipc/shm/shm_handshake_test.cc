// Tests for both halves of the shared-memory hello over a socketpair: what
// the client makes of each reply a server (or an impostor) may send.
#include <errno.h>
#include <gtest/gtest.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "ipc/ipc.h"
#include "ipc/shm/shm_handshake.h"
#include "ipc/shm/shm_layout.h"
#include "ipc/unix/unix.h"

namespace {

constexpr uint64_t kTimeoutNs = 5ull * 1000 * 1000 * 1000;

// A connected pair: server() writes, client() reads the hello.
class SocketPair {
  public:
    SocketPair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd_), 0); }
    ~SocketPair()
    {
        ipc__close_fd(&fd_[0]);
        ipc__close_fd(&fd_[1]);
    }
    int server() const { return fd_[0]; }
    int client() const { return fd_[1]; }
    void CloseServer() { ipc__close_fd(&fd_[0]); }

  private:
    int fd_[2] = {-1, -1};
};

// Sends a hello with the given fields and fds, as any peer could.
void SendRawHello(int fd, uint32_t version, uint32_t status, const std::vector<int> &fds)
{
    ipc__shm_hello h = {IPC_SHM_HELLO_MAGIC, version, status, 0, 0};
    EXPECT_EQ(ipc__send_fds(fd, &h, sizeof(h), fds.data(), (int)fds.size(), 0),
              (ssize_t)sizeof(h));
}

// What the client's hello_recv returns for what the server side sent.
int ReceiveHello(SocketPair &pair)
{
    int fds[IPC_SHM_HELLO_FDS];
    uint32_t id;
    int rc = ipc__shm_hello_recv(pair.client(), kTimeoutNs, fds, &id);
    if (rc == 0)
        ipc__close_fds(fds, IPC_SHM_HELLO_FDS);
    return rc;
}


TEST(ShmHandshake, HelloWithItsThreeFdsGivesTheClientIdAndFds)
{
    SocketPair pair;
    int sent[IPC_SHM_HELLO_FDS] = {memfd_create("seg", MFD_CLOEXEC),
                                   memfd_create("bell", MFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
    ASSERT_EQ(ipc__shm_hello_send(pair.server(), 0, 3, sent), 0);
    int fds[IPC_SHM_HELLO_FDS];
    uint32_t id = 0;
    ASSERT_EQ(ipc__shm_hello_recv(pair.client(), kTimeoutNs, fds, &id), 0);
    EXPECT_EQ(id, 3u);
    for (int fd : fds)
        EXPECT_GE(fd, 0);
    ipc__close_fds(fds, IPC_SHM_HELLO_FDS);
    ipc__close_fds(sent, IPC_SHM_HELLO_FDS);
}

TEST(ShmHandshake, HelloWithTwoFdsGivesEproto)
{
    // A version-1 server's hello shape: segment and doorbell only.
    SocketPair pair;
    std::vector<int> fds = {memfd_create("a", MFD_CLOEXEC), memfd_create("b", MFD_CLOEXEC)};
    SendRawHello(pair.server(), IPC_SHM_VERSION, 0, fds);
    EXPECT_EQ(ReceiveHello(pair), -EPROTO);
    ipc__close_fds(fds.data(), (int)fds.size());
}

TEST(ShmHandshake, HelloOfAnotherProtocolVersionGivesEproto)
{
    SocketPair pair;
    SendRawHello(pair.server(), 99, 0, {});
    EXPECT_EQ(ReceiveHello(pair), -EPROTO);
}

TEST(ShmHandshake, HelloWithoutFdsGivesEproto)
{
    SocketPair pair;
    SendRawHello(pair.server(), IPC_SHM_VERSION, 0, {});
    EXPECT_EQ(ReceiveHello(pair), -EPROTO);
}

TEST(ShmHandshake, HelloWithTooManyFdsGivesEproto)
{
    SocketPair pair;
    std::vector<int> fds = {memfd_create("a", MFD_CLOEXEC), memfd_create("b", MFD_CLOEXEC),
                            memfd_create("c", MFD_CLOEXEC), memfd_create("d", MFD_CLOEXEC)};
    SendRawHello(pair.server(), IPC_SHM_VERSION, 0, fds);
    EXPECT_EQ(ReceiveHello(pair), -EPROTO);
    ipc__close_fds(fds.data(), (int)fds.size());
}

TEST(ShmHandshake, BusyStatusPassesThroughAsEagain)
{
    SocketPair pair;
    ASSERT_EQ(ipc__shm_hello_send(pair.server(), EAGAIN, UINT32_MAX, nullptr), 0);
    EXPECT_EQ(ReceiveHello(pair), -EAGAIN);
}

TEST(ShmHandshake, GarbageInsteadOfAHelloGivesEproto)
{
    SocketPair pair;
    ASSERT_EQ(write(pair.server(), "HTTP/1.1 200", 12), 12);
    EXPECT_EQ(ReceiveHello(pair), -EPROTO);
}

TEST(ShmHandshake, HangUpInsteadOfAHelloGivesEconnrefused)
{
    // A server that died with us in its backlog: the same as no server, so
    // retry loops go on.
    SocketPair pair;
    pair.CloseServer();
    EXPECT_EQ(ReceiveHello(pair), -ECONNREFUSED);
}

TEST(ShmHandshake, NoHelloInTimeGivesEtimedout)
{
    SocketPair pair;
    int fds[IPC_SHM_HELLO_FDS];
    uint32_t id;
    EXPECT_EQ(ipc__shm_hello_recv(pair.client(), 20ull * 1000 * 1000, fds, &id), -ETIMEDOUT);
}

TEST(ShmHandshake, NamesAreOneToMaxCharactersOfASafeSet)
{
    EXPECT_TRUE(ipc__shm_name_ok("a"));
    EXPECT_TRUE(ipc__shm_name_ok("Svc-1.2_x"));
    EXPECT_TRUE(ipc__shm_name_ok(std::string(IPC_SHM_NAME_MAX, 'a').c_str()));
    EXPECT_FALSE(ipc__shm_name_ok(""));
    EXPECT_FALSE(ipc__shm_name_ok(std::string(IPC_SHM_NAME_MAX + 1, 'a').c_str()));
    EXPECT_FALSE(ipc__shm_name_ok("a/b"));
    EXPECT_FALSE(ipc__shm_name_ok("a b"));
}

}  // namespace
