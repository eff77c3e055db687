// A connect is bounded by its caller's deadline: against a server that is
// stopped (SIGSTOP) it returns -ETIMEDOUT once the deadline passes, on both
// transports, and once the server runs again the same client connects.
// Each connect runs in a child: one that hangs fails the test (a hang guard
// of seconds, not a measurement) instead of hanging it.
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/fixtures.h"

using ipc_testing::Client;
using ipc_testing::ConnectWithRetry;
using ipc_testing::Fork;
using ipc_testing::ServerProcess;
using ipc_testing::SharedAlloc;
using ipc_testing::WaitChild;

namespace {

constexpr uint64_t kDeadlineNs = 300ull * 1000 * 1000;
constexpr int kHangGuardMs = 5000;  // the deadline plus seconds of slack

// Fills the listen backlog of the socket server at path: the connections
// that took a place (close them), the last connect having said EAGAIN.
std::vector<int> FillBacklog(const std::string &path)
{
    rlimit lim;  // SOMAXCONN (4096) places, one fd each
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
    std::vector<int> placed;
    for (int i = 0; i < 70000; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) < 0) {
            EXPECT_EQ(errno, EAGAIN);
            close(fd);
            return placed;
        }
        placed.push_back(fd);
    }
    ADD_FAILURE() << "the backlog never filled (" << placed.size() << " connections)";
    return placed;
}

class ConnectDeadline : public ipc_testing::TransportTest {
  protected:
    ConnectDeadline() : TransportTest("connect") {}
};

TEST_P(ConnectDeadline, AStoppedServerGivesEtimedoutAtTheDeadlineThenConnectsOnceItRuns)
{
    std::string name = name_;
    bool shm = this->shm();
    ServerProcess server([name, shm]() {
        return shm ? ipc_server_create_shm(name.c_str(), 2)
                   : ipc_server_create_socket(name.c_str(), 2);
    });
    ASSERT_TRUE(server.ok());
    ASSERT_EQ(kill(server.pid(), SIGSTOP), 0);
    // A stopped socket server still completes connects into its backlog:
    // fill it, as a stalled server under load has.
    std::vector<int> placed = shm ? std::vector<int>() : FillBacklog(name_);
    Client c(CreateClient(0));
    ASSERT_NE(c, nullptr);
    int *got = static_cast<int *>(SharedAlloc(sizeof(int)));
    *got = 1;
    pid_t kid = Fork([&]() {
        *got = ipc_client_connect_timeout(c.get(), kDeadlineNs);
        return 0;
    });
    EXPECT_EQ(WaitChild(kid, kHangGuardMs), 0) << "-1: connect did not return";
    EXPECT_EQ(*got, -ETIMEDOUT);
    for (int fd : placed)
        close(fd);
    ASSERT_EQ(kill(server.pid(), SIGCONT), 0);
    EXPECT_EQ(ConnectWithRetry(c.get()), 0);
    ipc_stats st;
    ASSERT_EQ(ipc_client_stats(c.get(), &st), 0);
    EXPECT_EQ(st.connects, 1u);
}

INSTANTIATE_TEST_SUITE_P(Transports, ConnectDeadline, ::testing::Values("socket", "shm"),
                         [](const auto &info) { return std::string(info.param); });

}  // namespace
