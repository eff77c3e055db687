// The socket file as other processes see it: it appears only once the server
// accepts, a live socket of any type is never removed or replaced, one file
// spelled many ways is one server, and connect never blocks on a full
// backlog. Every other party is a forked process; the other-user cases run
// as uid 65534.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/fixtures.h"
#include "ipc/testing/testing.h"

using ipc_testing::Client;
using ipc_testing::CreateRegularFile;
using ipc_testing::Server;
using ipc_testing::Fork;
using ipc_testing::HeldChild;
using ipc_testing::IsRegularFile;
using ipc_testing::ServerProcess;
using ipc_testing::WaitChild;

namespace {


struct sockaddr_un Addr(const std::string &path)
{
    struct sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
    return a;
}

// 0 when a stream connect to path succeeds, else errno.
int ConnectErrno(const std::string &path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = Addr(path);
    int err = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : errno;
    close(fd);
    return err;
}

// A socket file left by a dead process.
void MakeStale(const std::string &path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = Addr(path);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
}

ino_t Inode(const std::string &path)
{
    struct stat st;
    return lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Names in dir other than the given ones (debris such as temporary files).
std::vector<std::string> Extra(const std::string &dir, const std::vector<std::string> &known)
{
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    for (struct dirent *e; d != nullptr && (e = readdir(d)) != nullptr;) {
        std::string n = e->d_name;
        if (n != "." && n != ".." && std::find(known.begin(), known.end(), n) == known.end())
            out.push_back(n);
    }
    if (d != nullptr)
        closedir(d);
    return out;
}

// A child holding a socket of `type` bound at path (listening if it can),
// until killed.
class ForeignSocket : public HeldChild {
  public:
    ForeignSocket(const std::string &path, int type)
        : HeldChild([&]() {
              int fd = socket(AF_UNIX, type, 0);
              struct sockaddr_un a = Addr(path);
              if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
                  return 1;
              if (type != SOCK_DGRAM && listen(fd, 8) < 0)
                  return 2;
              return 0;
          })
    {
    }
};

class SocketPath : public ipc_testing::SocketFixture {
  protected:
    SocketPath() : SocketFixture("p.sock") {}
};

// ------------------------------------------------------------- appearance

TEST_F(SocketPath, AClientConnectingTheMomentTheFileExistsIsNeverRefused)
{
    // The server starts in a child while the parent polls for the file in a
    // tight loop and connects the instant it sees it.
    constexpr int kStarts = 300;
    int refused = 0;
    for (int i = 0; i < kStarts; i++) {
        int stop[2];
        ASSERT_EQ(pipe(stop), 0);
        pid_t kid = Fork([&]() {
            close(stop[1]);
            Server s(ipc_server_create_socket(path_.c_str(), 1));
            if (ipc_server_listen(s.get()) != 0)
                return 1;
            char b;
            return read(stop[0], &b, 1) == 0 ? 0 : 2;
        });
        close(stop[0]);
        struct stat st;
        auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (lstat(path_.c_str(), &st) != 0 && std::chrono::steady_clock::now() < give_up) {
        }
        int err = ConnectErrno(path_);
        refused += err == ECONNREFUSED;
        EXPECT_TRUE(err == 0 || err == ECONNREFUSED) << strerror(err);
        close(stop[1]);
        ASSERT_EQ(WaitChild(kid), 0);
        ASSERT_NE(lstat(path_.c_str(), &st), 0) << "a clean stop removes the file";
    }
    EXPECT_EQ(refused, 0) << refused << " of " << kStarts << " connects refused";
    EXPECT_EQ(Extra(dir_.path(), {}), std::vector<std::string>{});
}

TEST_F(SocketPath, TakingOverAStaleFileReplacesItInOneStepAndLeavesNoTemporaryName)
{
    MakeStale(path_);
    ino_t stale = Inode(path_);
    ServerProcess server([this]() { return ipc_server_create_socket(path_.c_str(), 1); });
    ASSERT_TRUE(server.ok());
    EXPECT_NE(Inode(path_), stale);
    EXPECT_EQ(ConnectErrno(path_), 0);
    EXPECT_EQ(Extra(dir_.path(), {"p.sock"}), std::vector<std::string>{});
    EXPECT_EQ(server.Stop(), 0);
    EXPECT_EQ(Inode(path_), 0u);
}

// The id docs/PROTOCOL.md names the lock and the temporary file after: the
// FNV-1a 64 of realpath(directory) + "/" + base name, 16 hex digits.
std::string LocationId(const std::string &dir, const std::string &base)
{
    char real[PATH_MAX];
    EXPECT_NE(realpath(dir.c_str(), real), nullptr);
    std::string full = std::string(real) + "/" + base;
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : full)
        h = (h ^ c) * 1099511628211ull;
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)h);
    return hex;
}

TEST_F(SocketPath, TheLockIsTheDocumentedAbstractNameOfTheResolvedLocation)
{
    std::string link = dir_.file("link");
    ASSERT_EQ(symlink(dir_.path().c_str(), link.c_str()), 0);
    std::string name = "ipc-sock-lock/" + LocationId(dir_.path(), "p.sock");
    // Another process holding that name owns the path, however it is spelled.
    HeldChild holder([&]() {
        struct sockaddr_un a = {};
        a.sun_family = AF_UNIX;
        memcpy(a.sun_path + 1, name.data(), name.size());
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + name.size());
        return bind(fd, (struct sockaddr *)&a, len) == 0 ? 0 : 1;
    });
    ASSERT_TRUE(holder.ok());
    for (const std::string &spelling : {path_, link + "/p.sock", dir_.path() + "//p.sock"}) {
        Server s(ipc_server_create_socket(spelling.c_str(), 1));
        EXPECT_EQ(ipc_server_listen(s.get()), -EADDRINUSE) << spelling;
    }
    EXPECT_EQ(Inode(path_), 0u) << "a server that lost the lock created the file";
}

TEST_F(SocketPath, ATemporarySocketLeftByAServerThatDiedBeforePublishingIsCleared)
{
    // What a crash between bind and publication leaves: a dead socket under
    // the temporary name. The next server on the path clears it.
    std::string tmp = dir_.file(".ipc-" + LocationId(dir_.path(), "p.sock") + ".tmp");
    MakeStale(tmp);
    ServerProcess server([this]() { return ipc_server_create_socket(path_.c_str(), 1); });
    ASSERT_TRUE(server.ok());
    EXPECT_EQ(ConnectErrno(path_), 0);
    EXPECT_EQ(Extra(dir_.path(), {"p.sock"}), std::vector<std::string>{});
}

TEST_F(SocketPath, SomethingOtherThanASocketUnderTheTemporaryNameIsLeftAloneWithEexist)
{
    std::string tmp = dir_.file(".ipc-" + LocationId(dir_.path(), "p.sock") + ".tmp");
    ASSERT_TRUE(CreateRegularFile(tmp, 0600));
    Server s(ipc_server_create_socket(path_.c_str(), 1));
    EXPECT_EQ(ipc_server_listen(s.get()), -EEXIST);
    EXPECT_TRUE(IsRegularFile(tmp));
    EXPECT_EQ(Inode(path_), 0u);
}

TEST_F(SocketPath, ALongestPathIsPublishedThroughTheDirectoryDescriptor)
{
    // 107 bytes: "<dir>/.ipc-<id>.tmp" does not fit in sun_path.
    std::string path = dir_.path() + "/";
    path += std::string(107 - path.size(), 'x');
    ASSERT_EQ(path.size(), 107u);
    ServerProcess server([path]() { return ipc_server_create_socket(path.c_str(), 1); });
    ASSERT_TRUE(server.ok());
    EXPECT_EQ(ConnectErrno(path), 0);
    EXPECT_EQ(Extra(dir_.path(), {path.substr(dir_.path().size() + 1)}),
              std::vector<std::string>{});
}

// --------------------------------------------------------------- liveness

class LiveForeignSocket : public SocketPath, public ::testing::WithParamInterface<int> {};

TEST_P(LiveForeignSocket, IsLiveIsNeverCleanedAndNeverReplaced)
{
    ForeignSocket foreign(path_, GetParam());
    ASSERT_TRUE(foreign.ok());
    ino_t ino = Inode(path_);
    EXPECT_EQ(ipc_socket_path_state(path_.c_str()), IPC_PATH_LIVE);
    EXPECT_EQ(ipc_socket_path_clean(path_.c_str()), -EADDRINUSE);
    Server s(ipc_server_create_socket(path_.c_str(), 1));
    EXPECT_EQ(ipc_server_listen(s.get()), -EADDRINUSE);
    s.reset();
    EXPECT_EQ(Inode(path_), ino) << "the live socket file was removed or replaced";
    EXPECT_EQ(Extra(dir_.path(), {"p.sock"}), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(EveryType, LiveForeignSocket,
                         ::testing::Values(SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM),
                         [](const ::testing::TestParamInfo<int> &p) {
                             return p.param == SOCK_STREAM      ? std::string("Stream")
                                    : p.param == SOCK_SEQPACKET ? std::string("Seqpacket")
                                                                : std::string("Dgram");
                         });

// Runs body as uid/gid 65534 with no groups, in a child; its exit code.
int AsNobody(const std::function<int()> &body)
{
    return WaitChild(Fork([&]() {
        if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            return 100;
        return body();
    }));
}

TEST_F(SocketPath, AUserWhoCannotConnectCannotCleanALiveSocketAway)
{
    // Root's live sockets, mode 0600, in a directory anyone may write: uid
    // 65534 cannot connect (EACCES), which proves nothing, so nothing goes.
    ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
    std::string foreign_path = dir_.file("f.sock");
    ForeignSocket foreign(foreign_path, SOCK_STREAM);
    ASSERT_TRUE(foreign.ok());
    ASSERT_EQ(chmod(foreign_path.c_str(), 0600), 0);
    ServerProcess server([this]() { return ipc_server_create_socket(path_.c_str(), 1); });
    ASSERT_TRUE(server.ok());
    ino_t ours = Inode(path_), theirs = Inode(foreign_path);
    EXPECT_EQ(AsNobody([&]() {
                  if (ipc_socket_path_state(foreign_path.c_str()) != -EACCES)
                      return 1;
                  if (ipc_socket_path_clean(foreign_path.c_str()) != -EACCES)
                      return 2;
                  if (ipc_socket_path_state(path_.c_str()) != -EACCES)
                      return 3;
                  // Our server holds the lock: refused before any probing.
                  return ipc_socket_path_clean(path_.c_str()) == -EADDRINUSE ? 0 : 4;
              }),
              0);
    EXPECT_EQ(Inode(path_), ours);
    EXPECT_EQ(Inode(foreign_path), theirs);
    EXPECT_EQ(ConnectErrno(path_), 0);
    EXPECT_EQ(ConnectErrno(foreign_path), 0);
}

// ---------------------------------------------------------- one location

TEST_F(SocketPath, OneFileSpelledManyWaysOverAStaleFileIsExactlyOneServer)
{
    // real/ and a symlink to it; the stale file is reached as real/s, link/s,
    // real//s and ./s (from inside real/). Two servers started at the same
    // moment with two spellings: exactly one listens, the other gets
    // -EADDRINUSE, and the file accepts.
    std::string real = dir_.file("real"), link = dir_.file("link");
    ASSERT_EQ(mkdir(real.c_str(), 0700), 0);
    ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
    const std::vector<std::string> spellings = {real + "/s", link + "/s", real + "//s", "./s"};
    constexpr int kRaces = 60;
    int both = 0, neither = 0;
    for (int i = 0; i < kRaces; i++) {
        MakeStale(real + "/s");
        std::string a = spellings[(size_t)i % 4], b = spellings[(size_t)(i + 1 + i / 4) % 4];
        if (a == b)
            b = spellings[(size_t)(i + 2) % 4];
        int go[2], stop[2], result[2];
        ASSERT_EQ(pipe(go), 0);
        ASSERT_EQ(pipe(stop), 0);
        ASSERT_EQ(pipe(result), 0);
        std::vector<pid_t> kids;
        for (const std::string &spelling : {a, b}) {
            kids.push_back(Fork([&, spelling]() {
                close(go[1]);
                close(stop[1]);
                close(result[0]);
                if (chdir(real.c_str()) != 0)
                    return 10;
                Server s(ipc_server_create_socket(spelling.c_str(), 1));
                char c;
                if (read(go[0], &c, 1) != 0)
                    return 11;
                int rc = ipc_server_listen(s.get());
                if (write(result[1], &rc, sizeof(rc)) != sizeof(rc))
                    return 12;
                return read(stop[0], &c, 1) == 0 ? 0 : 13; // serve until told
            }));
        }
        close(go[0]);
        close(stop[0]);
        close(result[1]);
        close(go[1]); // both start now
        int rc[2];
        ASSERT_EQ(read(result[0], &rc[0], sizeof(int)), (ssize_t)sizeof(int));
        ASSERT_EQ(read(result[0], &rc[1], sizeof(int)), (ssize_t)sizeof(int));
        close(result[0]);
        int ok = (rc[0] == 0) + (rc[1] == 0);
        both += ok == 2;
        neither += ok == 0;
        EXPECT_EQ(ok, 1) << a << " vs " << b << ": " << rc[0] << ", " << rc[1];
        EXPECT_TRUE(rc[0] == -EADDRINUSE || rc[1] == -EADDRINUSE) << rc[0] << ", " << rc[1];
        EXPECT_EQ(ConnectErrno(real + "/s"), 0) << "the winner's file must accept";
        close(stop[1]);
        for (pid_t k : kids)
            EXPECT_EQ(WaitChild(k), 0);
    }
    EXPECT_EQ(both + neither, 0) << both << " races ran two servers, " << neither << " none";
    EXPECT_EQ(Extra(real, {}), std::vector<std::string>{});
}

TEST_F(SocketPath, OperatorCleanOfAnotherSpellingIsRefusedWhileTheServerRuns)
{
    std::string real = dir_.file("real"), link = dir_.file("link");
    ASSERT_EQ(mkdir(real.c_str(), 0700), 0);
    ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
    std::string served = real + "/s";
    ServerProcess server([served]() { return ipc_server_create_socket(served.c_str(), 1); });
    ASSERT_TRUE(server.ok());
    EXPECT_EQ(ipc_socket_path_clean((link + "/s").c_str()), -EADDRINUSE);
    EXPECT_EQ(ipc_socket_path_clean((real + "//s").c_str()), -EADDRINUSE);
    EXPECT_EQ(ConnectErrno(served), 0);
}

// ----------------------------------------------------------------- backlog

TEST_F(SocketPath, ConnectToAServerWhoseBacklogStaysFullTimesOutAtItsDeadline)
{
    // A server that listens with a backlog of 1 and never accepts (stopped).
    ForeignSocket foreign(path_, SOCK_STREAM);
    ASSERT_TRUE(foreign.ok());
    std::vector<int> filled;
    for (int i = 0; i < 64; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = Addr(path_);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            ASSERT_EQ(errno, EAGAIN);
            close(fd);
            break;
        }
        filled.push_back(fd);
    }
    ASSERT_LT(filled.size(), 64u) << "the backlog never filled";
    // In a child, so a connect that blocks fails the test instead of hanging
    // it: the full backlog is retried until the deadline, not waited for in
    // the kernel.
    pid_t kid = Fork([&]() {
        Client c(ipc_client_create_socket(path_.c_str()));
        return ipc_client_connect_timeout(c.get(), 200ull * 1000 * 1000) == -ETIMEDOUT ? 0 : 1;
    });
    EXPECT_EQ(WaitChild(kid, 5000), 0) << "-1: connect blocked on the full backlog";
    for (int fd : filled)
        close(fd);
}

}  // namespace
