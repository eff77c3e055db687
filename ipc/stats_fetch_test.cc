// Reading another process's stats page treats it as hostile: whoever listens
// on a stats name may hand over anything, answer late or never, and write
// anything into the page. Fake publishers run in child processes, as another
// user (uid 65534) where the case is about another user.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/stats.h"
#include "ipc/testing/testing.h"

using ipc_testing::Fork;
using ipc_testing::ServerProcess;
using ipc_testing::WaitChild;

namespace {

constexpr uid_t kNobody = 65534;

// Becomes uid/gid 65534 (the test runs as root in CI; as another user it
// stays who it is and the identity checks below compare with that).
void BecomeNobody()
{
    if (geteuid() != 0)
        return;
    if (setgroups(0, nullptr) != 0 || setresgid(kNobody, kNobody, kNobody) != 0 ||
        setresuid(kNobody, kNobody, kNobody) != 0)
        _exit(90);
}

uid_t NobodyOrMe()
{
    return geteuid() == 0 ? kNobody : geteuid();
}

// Binds and listens on the stats name of shm server `name`; -1 on failure.
int ListenOnStatsName(const std::string &name)
{
    char addr[108];
    if (ipc__stats_addr("shm", name.c_str(), addr, sizeof(addr)) < 0)
        return -1;
    sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    size_t n = strlen(addr);
    memcpy(a.sun_path + 1, addr, n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&a), len) != 0 || listen(fd, 16) != 0)
        return -1;
    return fd;
}

// Sends status 0 and one descriptor, as a publisher does.
void SendFd(int conn, int fd)
{
    int32_t status = 0;
    char ctrl[CMSG_SPACE(sizeof(int))] = {};
    iovec iov = {&status, sizeof(status)};
    msghdr m = {};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof(ctrl);
    cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    (void)sendmsg(conn, &m, MSG_NOSIGNAL);
}

// A fake publisher in a child, as uid 65534: it listens on the stats name
// of `name`, then runs serve(listening fd) until killed. Returns once it
// listens; -1 when the child could not start.
pid_t FakePublisher(const std::string &name, const std::function<void(int)> &serve)
{
    int ready[2];
    if (pipe(ready) != 0)
        return -1;
    pid_t kid = Fork([&]() {
        close(ready[0]);
        BecomeNobody();
        int lfd = ListenOnStatsName(name);
        if (lfd < 0)
            return 91;
        (void)!write(ready[1], "x", 1);
        serve(lfd);
        return 0;
    });
    close(ready[1]); // a child that dies early gives EOF, not a hang
    char b;
    bool up = read(ready[0], &b, 1) == 1;
    close(ready[0]);
    if (!up) {
        WaitChild(kid);
        return -1;
    }
    return kid;
}

// Hands over the descriptor make_fd() returns on every connection.
std::function<void(int)> ServeFd(int (*make_fd)())
{
    return [make_fd](int lfd) {
        for (;;) {
            int conn = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
            if (conn < 0)
                continue;
            int fd = make_fd();
            SendFd(conn, fd);
            close(fd);
            close(conn);
        }
    };
}

// Listens and never accepts.
void NeverAccept(int)
{
    for (;;)
        pause();
}

// Accepts and never answers, keeping every connection open.
void NeverAnswer(int lfd)
{
    for (;;)
        (void)accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
}

// Runs the fetch in a child so that a hang or a SIGBUS fails the test
// instead of killing or stalling it; the child's exit code is -result.
int FetchInChild(const std::string &name, ipc_server_info *info_out = nullptr)
{
    int p[2];
    if (pipe(p) != 0)
        return -errno;
    pid_t kid = Fork([&]() {
        ipc_stats st;
        ipc_server_info info = {};
        int rc = ipc_stats_fetch("shm", name.c_str(), &st, &info);
        (void)!write(p[1], &info, sizeof(info));
        return -rc;
    });
    close(p[1]);
    int code = WaitChild(kid, 20000); // first: a hung child never writes
    ipc_server_info info = {};
    (void)!read(p[0], &info, sizeof(info));
    close(p[0]);
    if (info_out != nullptr)
        *info_out = info;
    if (code < 0)
        return 1000; // hung: killed after the timeout
    if (code >= 128)
        return 2000 + (code - 128); // died of a signal
    return -code;
}

int ZeroLengthMemfd()
{
    return memfd_create("hostile", MFD_CLOEXEC);
}

int PipeReadEnd()
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    return p[0]; // the write end stays open: a read would block for ever
}

int ForgedPage()
{
    int fd = memfd_create("forged", MFD_CLOEXEC);
    ipc__stats_block b = {};
    b.magic = IPC_STATS_MAGIC;
    b.version = IPC_STATS_VERSION;
    b.size = sizeof(b);
    strcpy(b.transport, "shm");
    strcpy(b.name, "forged");
    b.pid = 1;
    b.uid = 0;
    (void)!write(fd, &b, sizeof(b));
    return fd;
}

class HostilePage : public ::testing::Test {
  protected:
    void SetUp() override { name_ = ipc_testing::UniqueName("hostile"); }
    void TearDown() override
    {
        if (kid_ > 0) {
            kill(kid_, SIGKILL);
            WaitChild(kid_);
        }
    }
    void Publish(const std::function<void(int)> &serve)
    {
        kid_ = FakePublisher(name_, serve);
        ASSERT_GT(kid_, 0) << "the fake publisher could not start as uid 65534";
    }
    std::string name_;
    pid_t kid_ = -1;
};

TEST_F(HostilePage, AZeroLengthPageFromAnotherUserIsEprotoNotSigbus)
{
    Publish(ServeFd(ZeroLengthMemfd));
    EXPECT_EQ(FetchInChild(name_), -EPROTO);
}

TEST_F(HostilePage, ADescriptorThatIsNotAFileIsEprotoAndNeverBlocks)
{
    Publish(ServeFd(PipeReadEnd));
    EXPECT_EQ(FetchInChild(name_), -EPROTO);
}

TEST_F(HostilePage, PidAndOwnerComeFromTheKernelNotFromThePage)
{
    Publish(ServeFd(ForgedPage));
    ipc_server_info info = {};
    ASSERT_EQ(FetchInChild(name_, &info), 0);
    EXPECT_EQ(info.uid, NobodyOrMe()) << "the page claims uid 0";
    EXPECT_EQ(info.pid, kid_) << "the page claims pid 1";
    EXPECT_STREQ(info.transport, "shm");
}

TEST_F(HostilePage, AListenerThatNeverAcceptsTimesOut)
{
    Publish(NeverAccept);
    EXPECT_EQ(FetchInChild(name_), -ETIMEDOUT);
}

TEST_F(HostilePage, AListenerThatAcceptsAndNeverAnswersTimesOut)
{
    Publish(NeverAnswer);
    EXPECT_EQ(FetchInChild(name_), -ETIMEDOUT);
}

TEST(StatsFetch, AStoppedServerTimesOutInsteadOfHangingTheCaller)
{
    std::string name = ipc_testing::UniqueName("stopped");
    ServerProcess server([name]() { return ipc_server_create_shm(name.c_str(), 1); });
    ASSERT_TRUE(server.ok());
    ASSERT_EQ(FetchInChild(name), 0);
    kill(server.pid(), SIGSTOP);
    int st;
    ASSERT_EQ(waitpid(server.pid(), &st, WUNTRACED), server.pid()); // stopped for sure
    ASSERT_TRUE(WIFSTOPPED(st));
    EXPECT_EQ(FetchInChild(name), -ETIMEDOUT);
    kill(server.pid(), SIGCONT);
    EXPECT_EQ(FetchInChild(name), 0);
}

struct ListSeen {
    int errors = 0, timeouts = 0;
};

void CountVisit(void *arg, int err, const ipc_server_info *, const ipc_stats *)
{
    auto *seen = static_cast<ListSeen *>(arg);
    if (err == -ETIMEDOUT)
        seen->timeouts++;
    else if (err < 0)
        seen->errors++;
}

TEST_F(HostilePage, ListReportsAListenerThatNeverAnswersAndGoesOn)
{
    Publish(NeverAccept);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t lister = Fork([&]() {
        ListSeen seen;
        int rc = ipc_stats_list(CountVisit, &seen);
        (void)!write(p[1], &seen, sizeof(seen));
        return rc == 0 ? 0 : 1;
    });
    close(p[1]);
    ASSERT_EQ(WaitChild(lister, 20000), 0) << "ipc_stats_list hung or failed";
    ListSeen seen;
    ASSERT_EQ(read(p[0], &seen, sizeof(seen)), (ssize_t)sizeof(seen));
    close(p[0]);
    EXPECT_GE(seen.timeouts, 1);
}

}  // namespace
