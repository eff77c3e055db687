// Tests for the Unix chores: abstract names, fd passing, the credential
// rule, sealed memfds, the path identity and thread starts.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <string>

#include "ipc/testing/process.h"
#include "ipc/unix/unix.h"

namespace {

// Abstract names are shared by parallel test runs: add randomness.
std::string UniqueName(const char *tag)
{
    std::random_device rd;
    return std::string(tag) + "-" + std::to_string(getpid()) + "-" + std::to_string(rd());
}

TEST(UnixAbstract, AddressIsNulThenPrefixThenNameWithoutTrailingNul)
{
    struct sockaddr_un a;
    socklen_t len;
    ASSERT_EQ(ipc__abstract_addr(&a, &len, "p/", "n"), 0);
    EXPECT_EQ(a.sun_path[0], '\0');
    EXPECT_EQ(std::string(a.sun_path + 1, 3), "p/n");
    EXPECT_EQ(len, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 4));
}

TEST(UnixAbstract, NameTooLongIsEnametoolongNotTruncated)
{
    struct sockaddr_un a;
    socklen_t len;
    EXPECT_EQ(ipc__abstract_addr(&a, &len, "", std::string(sizeof(a.sun_path), 'x').c_str()),
              -ENAMETOOLONG);
}

TEST(UnixAbstract, SecondBindOfALiveNameGivesEaddrinuseAndConnectReachesTheFirst)
{
    std::string name = UniqueName("unix-test");
    int l = ipc__abstract_bind("ipc-test/", name.c_str(), 0, 4);
    ASSERT_GE(l, 0);
    EXPECT_EQ(ipc__abstract_bind("ipc-test/", name.c_str(), 0, 4), -EADDRINUSE);
    int c = ipc__abstract_connect("ipc-test/", name.c_str(), 0);
    ASSERT_GE(c, 0);
    EXPECT_EQ(ipc__peer_ok(c), 0) << "our own euid passes the credential rule";
    close(c);
    close(l);
    EXPECT_EQ(ipc__abstract_connect("ipc-test/", name.c_str(), 0), -ECONNREFUSED)
        << "the name died with its socket";
}

TEST(UnixFds, SentDescriptorsArriveAsNewCloexecDescriptors)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int fds[2] = {memfd_create("a", MFD_CLOEXEC), memfd_create("b", MFD_CLOEXEC)};
    ASSERT_EQ(ipc__send_fds(sv[0], "x", 1, fds, 2, 0), 1);
    char buf;
    int got[2], n;
    ASSERT_EQ(ipc__recv_fds(sv[1], &buf, 1, got, 2, &n, 0), 1);
    ASSERT_EQ(n, 2);
    EXPECT_EQ(fcntl(got[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    ipc__close_fds(got, 2);
    ipc__close_fds(fds, 2);
    close(sv[0]);
    close(sv[1]);
}

TEST(UnixFds, MoreDescriptorsThanWantedAreAllClosedAndReportedAsMinusOne)
{
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int fds[3] = {memfd_create("a", MFD_CLOEXEC), memfd_create("b", MFD_CLOEXEC),
                  memfd_create("c", MFD_CLOEXEC)};
    ASSERT_EQ(ipc__send_fds(sv[0], "x", 1, fds, 3, 0), 1);
    char buf;
    int got[1], n;
    ASSERT_EQ(ipc__recv_fds(sv[1], &buf, 1, got, 1, &n, 0), 1);
    EXPECT_EQ(n, -1);
    ipc__close_fds(fds, 3);
    close(sv[0]);
    close(sv[1]);
}

TEST(UnixMemfd, SealedMemfdMapsOnTheOtherSideWithItsSize)
{
    int fd;
    void *p;
    ASSERT_EQ(ipc__memfd_create_sealed("t", 8192, &fd, &p), 0);
    memcpy(p, "hello", 5);
    EXPECT_EQ(ftruncate(fd, 4096), -1) << "sealed against shrinking";
    void *q;
    size_t size;
    ASSERT_EQ(ipc__memfd_map_sealed(fd, 4096, 8192, &q, &size), 0);
    EXPECT_EQ(size, 8192u);
    EXPECT_EQ(memcmp(q, "hello", 5), 0);
    EXPECT_EQ(ipc__memfd_map_sealed(fd, 1, 4096, &q, &size), -EPROTO) << "over max_size";
    munmap(q, 8192);
    munmap(p, 8192);
    close(fd);
}

TEST(UnixMemfd, UnsealedFileIsRefusedWithEproto)
{
    int fd = memfd_create("u", MFD_CLOEXEC);
    ASSERT_EQ(ftruncate(fd, 4096), 0);
    void *q;
    size_t size;
    EXPECT_EQ(ipc__memfd_map_sealed(fd, 1, 8192, &q, &size), -EPROTO);
    close(fd);
}

TEST(UnixPath, RelativePathHasTheIdOfItsAbsoluteForm)
{
    char cwd[4096];
    ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
    char rel[17], abs[17], full[4200];
    ASSERT_EQ(ipc__path_id("s.sock", rel, full, sizeof(full)), 0);
    ASSERT_EQ(ipc__path_id((std::string(cwd) + "/s.sock").c_str(), abs, nullptr, 0), 0);
    EXPECT_STREQ(rel, abs);
    EXPECT_EQ(std::string(full), std::string(cwd) + "/s.sock");
    EXPECT_EQ(strlen(rel), 16u);
}

TEST(UnixPath, EverySpellingOfOneSocketFileHasOneIdAndOneCanonicalName)
{
    char tmpl[] = "/tmp/ipc-path-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    struct Dir {
        std::string root;
        std::string file(const char *f) const { return root + "/" + f; }
        ~Dir()
        {
            unlink(file("link").c_str());
            rmdir(file("real").c_str());
            rmdir(root.c_str());
        }
    } dir{tmpl};
    ASSERT_EQ(mkdir(dir.file("real").c_str(), 0700), 0);
    ASSERT_EQ(symlink("real", dir.file("link").c_str()), 0);
    char want[17], name[4200];
    ASSERT_EQ(ipc__path_id(dir.file("real/s.sock").c_str(), want, name, sizeof(name)), 0);
    EXPECT_EQ(std::string(name), dir.file("real/s.sock"));
    for (const char *spelling : {"link/s.sock", "real//s.sock", "./real/./s.sock",
                                 "link/../real/s.sock"}) {
        char id[17];
        ASSERT_EQ(ipc__path_id(dir.file(spelling).c_str(), id, name, sizeof(name)), 0);
        EXPECT_STREQ(id, want) << spelling;
        EXPECT_EQ(std::string(name), dir.file("real/s.sock")) << spelling;
    }
    char other[17];
    ASSERT_EQ(ipc__path_id(dir.file("real/t.sock").c_str(), other, nullptr, 0), 0);
    EXPECT_STRNE(other, want);
    // A directory that is not there (yet): the path as given.
    ASSERT_EQ(ipc__path_id("/no/such/dir/s.sock", other, name, sizeof(name)), 0);
    EXPECT_STREQ(name, "/no/such/dir/s.sock");
}

TEST(UnixPath, SplitGivesTheDirectoryAsSpelledAndTheBaseName)
{
    char dir[PATH_MAX];
    const char *base;
    ASSERT_EQ(ipc__path_split("a//b/s.sock", dir, &base), 0);
    EXPECT_STREQ(dir, "a//b");
    EXPECT_STREQ(base, "s.sock");
    ASSERT_EQ(ipc__path_split("s.sock", dir, &base), 0);
    EXPECT_STREQ(dir, ".");
    ASSERT_EQ(ipc__path_split("/s.sock", dir, &base), 0);
    EXPECT_STREQ(dir, "/");
    EXPECT_EQ(ipc__path_split("a/", dir, &base), -EINVAL);
    EXPECT_EQ(ipc__path_split("a/..", dir, &base), -EINVAL);
    EXPECT_EQ(ipc__path_split("", dir, &base), -EINVAL);
}

TEST(UnixClock, MonotonicClockNeverGoesBack)
{
    uint64_t a = ipc__now_ns();
    uint64_t b = ipc__now_ns();
    EXPECT_LE(a, b);
    EXPECT_LT(a, IPC_FOREVER);
}

// ------------------------------------------------------------ threads

void *ReturnAtOnce(void *)
{
    return nullptr;
}

// pthread_create's EAGAIN ("no thread for this user") must not read as the
// API's -EAGAIN ("no free slot, retry").
TEST(UnixThread, AThreadTheSystemRefusesIsEusers)
{
    constexpr int kSkip = 77;
    int *got = static_cast<int *>(ipc_testing::SharedAlloc(sizeof(int)));
    pid_t kid = ipc_testing::Fork([got]() {
        if (!ipc_testing::ForbidThreads())
            return kSkip;
        pthread_t t;
        *got = ipc__thread_start_nosig(&t, ReturnAtOnce, nullptr);
        if (*got == 0)
            pthread_join(t, nullptr);
        return 0;
    });
    int code = ipc_testing::WaitChild(kid, 10000);
    if (code == kSkip)
        GTEST_SKIP() << "cannot limit this process's threads (needs root or RLIMIT_NPROC)";
    ASSERT_EQ(code, 0);
    EXPECT_EQ(*got, -EUSERS);
}

TEST(UnixThread, AThreadThatStartsIsZero)
{
    pthread_t t;
    ASSERT_EQ(ipc__thread_start_nosig(&t, ReturnAtOnce, nullptr), 0);
    EXPECT_EQ(pthread_join(t, nullptr), 0);
}

}  // namespace
