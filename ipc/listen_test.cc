// A server that cannot start the threads it needs (the stats publisher; on
// shared memory also the connection watcher) fails listen() and run() with
// -EUSERS, its own error, and leaves nothing behind: no socket file, no
// stats name, no rendezvous name. It never serves invisibly. Each case runs
// in a child process as a user at its thread limit (RLIMIT_NPROC).
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/testing.h"

using ipc_testing::AllowThreads;
using ipc_testing::ForbidThreads;
using ipc_testing::Fork;
using ipc_testing::ScopedDir;
using ipc_testing::SharedAlloc;
using ipc_testing::UniqueName;
using ipc_testing::WaitChild;

namespace {

constexpr int kSkip = 77;

// What the child saw, for the parent to assert.
struct Seen {
    int listen_rc;
    int run_rc;
    int connect_rc;   // a client's connect after the failure
    int fetch_rc;     // ipc_stats_fetch after the failure
    int dir_entries;  // socket: what the directory holds after the failure
    int relisten_rc;  // listen once threads are allowed again
    int refetch_rc;   // ipc_stats_fetch then
};

ipc_action Unused(void *, int, const void *, size_t, ipc_response *)
{
    return IPC_SHUTDOWN;
}

// Entries of dir other than . and .., or -1.
int CountEntries(const std::string &dir)
{
    DIR *d = opendir(dir.c_str());
    if (d == nullptr)
        return -1;
    int n = 0;
    for (dirent *e; (e = readdir(d)) != nullptr;)
        n += std::string(e->d_name) != "." && std::string(e->d_name) != "..";
    closedir(d);
    return n;
}

class ListenShortOfThreads : public ::testing::TestWithParam<const char *> {
  protected:
    bool shm() const { return std::string(GetParam()) == "shm"; }
};

TEST_P(ListenShortOfThreads, FailsWithEusersLeavesNothingAndListensOnceThreadsAreBack)
{
    ScopedDir dir;
    ASSERT_EQ(chmod(dir.path().c_str(), 0777), 0);  // uid 65534 binds there
    const std::string name = shm() ? UniqueName("nothreads") : dir.file("s.sock");
    auto *seen = static_cast<Seen *>(SharedAlloc(sizeof(Seen)));
    pid_t kid = Fork([&]() {
        if (!ForbidThreads())
            return kSkip;
        ipc_server *s = shm() ? ipc_server_create_shm(name.c_str(), 2)
                              : ipc_server_create_socket(name.c_str(), 2);
        ipc_client *c = shm() ? ipc_client_create_shm(name.c_str(), 0)
                              : ipc_client_create_socket(name.c_str());
        if (s == nullptr || c == nullptr)
            return 1;
        seen->listen_rc = ipc_server_listen(s);
        seen->run_rc = ipc_server_run(s, Unused, nullptr, 0);
        seen->connect_rc = ipc_client_connect(c);
        seen->fetch_rc = ipc_stats_fetch(GetParam(), name.c_str(), nullptr, nullptr);
        seen->dir_entries = CountEntries(dir.path());
        if (!AllowThreads())
            return 2;
        seen->relisten_rc = ipc_server_listen(s);
        seen->refetch_rc = ipc_stats_fetch(GetParam(), name.c_str(), nullptr, nullptr);
        ipc_client_destroy(c);
        ipc_server_destroy(s);
        return 0;
    });
    int code = WaitChild(kid, 20000);
    if (code == kSkip)
        GTEST_SKIP() << "cannot limit this process's threads (needs root or RLIMIT_NPROC)";
    ASSERT_EQ(code, 0);
    EXPECT_EQ(seen->listen_rc, -EUSERS);
    EXPECT_EQ(seen->run_rc, -EUSERS);  // run() listens first
    EXPECT_EQ(seen->connect_rc, shm() ? -ECONNREFUSED : -ENOENT);
    EXPECT_EQ(seen->fetch_rc, -ENOENT);
    EXPECT_EQ(seen->dir_entries, 0) << "a socket file or its temporary name was left";
    EXPECT_EQ(seen->relisten_rc, 0);
    EXPECT_EQ(seen->refetch_rc, 0);
}

INSTANTIATE_TEST_SUITE_P(Transports, ListenShortOfThreads, ::testing::Values("socket", "shm"),
                         [](const auto &info) { return std::string(info.param); });

}  // namespace
