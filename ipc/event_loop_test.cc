// Event-loop integration: servers and clients driven from one thread by a
// plain epoll loop over ipc_server_fd() / ipc_client_fd().
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <atomic>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/testing.h"

using ipc_testing::MatchesPattern;
using ipc_testing::Pattern;
using ipc_testing::ScopedDir;

namespace {

struct Endpoint {
    ipc_server *server;
    std::vector<ipc_client *> clients;
};

// Runs everything from one epoll loop until every client got `rounds`
// replies; returns the replies checked.
int DriveLoop(std::vector<Endpoint> &eps, int rounds)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct Tag {
        int server; /* index into eps */
        int client; /* -1 for the server itself */
    };
    std::vector<Tag> tags;
    for (size_t e = 0; e < eps.size(); e++) {
        tags.push_back({(int)e, -1});
        for (size_t c = 0; c < eps[e].clients.size(); c++)
            tags.push_back({(int)e, (int)c});
    }
    std::vector<int> sent(tags.size(), 0), got(tags.size(), 0);
    for (size_t t = 0; t < tags.size(); t++) {
        Endpoint &e = eps[tags[t].server];
        int fd = tags[t].client < 0 ? ipc_server_fd(e.server)
                                    : ipc_client_fd(e.clients[tags[t].client]);
        EXPECT_GE(fd, 0);
        struct epoll_event ev = {};
        ev.events = EPOLLIN;
        ev.data.u64 = t;
        EXPECT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
        if (tags[t].client >= 0) { /* every client starts with one request */
            std::vector<uint8_t> m = Pattern(100 + t, t << 20);
            EXPECT_EQ(ipc_client_try_send(e.clients[tags[t].client], m.data(), m.size()), 0);
            sent[t] = 1;
        }
    }
    int checked = 0, expected = 0;
    for (size_t t = 0; t < tags.size(); t++)
        expected += tags[t].client >= 0 ? rounds : 0;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::vector<uint8_t> buf(1 << 16);
    while (checked < expected && std::chrono::steady_clock::now() < end) {
        struct epoll_event evs[16];
        int n = epoll_wait(ep, evs, 16, 100);
        for (int i = 0; i < n; i++) {
            size_t t = evs[i].data.u64;
            Endpoint &e = eps[tags[t].server];
            if (tags[t].client < 0) {
                int id;
                while ((id = ipc_server_try_wait_for_data(e.server)) >= 0) {
                    ssize_t len = ipc_server_recv(e.server, id, buf.data(), buf.size());
                    EXPECT_GE(len, 0);
                    EXPECT_EQ(ipc_server_send(e.server, id, buf.data(), (size_t)len), 0);
                }
                EXPECT_EQ(id, -EAGAIN);
                continue;
            }
            ipc_client *c = e.clients[tags[t].client];
            ssize_t len;
            while ((len = ipc_client_try_recv(c, buf.data(), buf.size())) >= 0) {
                uint64_t seq = (uint64_t)t << 20 | (uint64_t)got[t];
                EXPECT_EQ(len, (ssize_t)(100 + t));
                EXPECT_TRUE(MatchesPattern(buf.data(), (size_t)len, seq));
                got[t]++;
                checked++;
                if (sent[t] < rounds) {
                    std::vector<uint8_t> m =
                        Pattern(100 + t, (uint64_t)t << 20 | (uint64_t)sent[t]);
                    EXPECT_EQ(ipc_client_try_send(c, m.data(), m.size()), 0);
                    sent[t]++;
                }
            }
            EXPECT_EQ(len, -EAGAIN);
        }
    }
    close(ep);
    return checked;
}

TEST(EventLoop, OneThreadServesSocketAndSharedMemoryClientsThroughTheirFds)
{
    ScopedDir dir;
    std::string path = dir.file("ev.sock"), name = ipc_testing::UniqueName("ev");
    std::vector<Endpoint> eps(2);
    eps[0].server = ipc_server_create_socket(path.c_str(), 4);
    eps[1].server = ipc_server_create_shm(name.c_str(), 3);
    for (Endpoint &e : eps)
        ASSERT_EQ(ipc_server_listen(e.server), 0);
    for (int i = 0; i < 3; i++) {
        eps[0].clients.push_back(ipc_client_create_socket(path.c_str()));
        eps[1].clients.push_back(ipc_client_create_shm(name.c_str(), 3));
    }
    // A shared-memory connect completes when the server handles it: here the
    // server is this thread, so connect from a helper thread meanwhile.
    for (Endpoint &e : eps)
        for (ipc_client *c : e.clients) {
            std::atomic<int> rc{-1};
            std::thread t([&]() { rc = ipc_client_connect(c); });
            auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
            while (std::chrono::steady_clock::now() < end) {
                (void)ipc_server_try_wait_for_data(e.server);
                if (rc == 0)
                    break;
                usleep(100);
            }
            t.join();
            ASSERT_EQ(rc, 0);
        }
    EXPECT_EQ(DriveLoop(eps, 200), 6 * 200);
    for (Endpoint &e : eps) {
        for (ipc_client *c : e.clients)
            ipc_client_destroy(c);
        ipc_server_destroy(e.server);
    }
}

TEST(EventLoop, FdsNeedAConnectionAndTryCallsNeverBlock)
{
    ScopedDir dir;
    std::string path = dir.file("nb.sock");
    ipc_server *s = ipc_server_create_socket(path.c_str(), 1);
    ipc_client *c = ipc_client_create_socket(path.c_str());
    EXPECT_EQ(ipc_server_fd(s), -ENOTCONN);
    EXPECT_EQ(ipc_client_fd(c), -ENOTCONN);
    EXPECT_EQ(ipc_server_try_wait_for_data(s), -ENOTCONN);
    ASSERT_EQ(ipc_server_listen(s), 0);
    ASSERT_EQ(ipc_client_connect(c), 0);
    uint8_t b;
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(ipc_server_try_wait_for_data(s), -EAGAIN);
    EXPECT_EQ(ipc_client_try_recv(c, &b, 1), -EAGAIN);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
    ipc_stats st;
    ipc_client_stats(c, &st);
    EXPECT_EQ(st.timeouts, 0u) << "a would-block is not a timeout";
    ipc_client_destroy(c);
    ipc_server_destroy(s);
}

}  // namespace
