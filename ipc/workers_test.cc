// ipc_server_run() with worker threads, deferred replies (ipc_request_*)
// and the multiplexed wire, on both transports.
#include <errno.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/testing.h"

namespace {

constexpr uint64_t kSecond = 1000ull * 1000 * 1000;

class Latch {
  public:
    void Open()
    {
        std::lock_guard<std::mutex> g(m_);
        open_ = true;
        cv_.notify_all();
    }
    void Wait()
    {
        std::unique_lock<std::mutex> g(m_);
        cv_.wait(g, [this] { return open_; });
    }

  private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

// What the handlers share with the test.
struct Ctx {
    Latch latch;
    std::atomic<int> held{0};         // "latch" requests waiting in a handler
    std::atomic<int> in_handler{0};   // handlers running now
    std::atomic<int> most_at_once{0}; // the most that ran at once
    std::mutex mu;
    std::deque<ipc_request *> deferred;
    std::condition_variable deferred_cv;
};

bool Is(const void *req, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(req, word, len) == 0;
}

// Echoes; "latch" waits for the test to open the latch first; "SHUTDOWN"
// answers "bye" and stops the server.
ipc_action LatchEcho(void *arg, int, const void *req, size_t len, ipc_response *r)
{
    Ctx *c = static_cast<Ctx *>(arg);
    int now = ++c->in_handler;
    int most = c->most_at_once.load();
    while (now > most && !c->most_at_once.compare_exchange_weak(most, now)) {
    }
    if (Is(req, len, "latch")) {
        ++c->held;
        c->latch.Wait();
    }
    --c->in_handler;
    if (Is(req, len, "SHUTDOWN")) {
        ipc_response_set(r, "bye", 3);
        return IPC_SHUTDOWN;
    }
    ipc_response_set(r, req, len);
    return IPC_CONTINUE;
}

// Defers every request but "now" (echoed at once) to the test.
ipc_action DeferAll(void *arg, int, const void *req, size_t len, ipc_response *r)
{
    Ctx *c = static_cast<Ctx *>(arg);
    if (Is(req, len, "now")) {
        ipc_response_set(r, req, len);
        return IPC_CONTINUE;
    }
    ipc_response_set(r, "not me", 6); // discarded by the deferral
    ipc_request *q = ipc_response_defer(r);
    if (q == nullptr)
        return IPC_CONTINUE;
    std::lock_guard<std::mutex> g(c->mu);
    c->deferred.push_back(q);
    c->deferred_cv.notify_all();
    return IPC_CONTINUE;
}

ipc_request *TakeDeferred(Ctx &c)
{
    std::unique_lock<std::mutex> g(c.mu);
    if (!c.deferred_cv.wait_for(g, std::chrono::seconds(10), [&] { return !c.deferred.empty(); }))
        return nullptr;
    ipc_request *q = c.deferred.front();
    c.deferred.pop_front();
    return q;
}

void PutLe64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t GetLe64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int SendMux(ipc_client *c, uint64_t id, const std::string &payload)
{
    std::vector<uint8_t> m(8 + payload.size());
    PutLe64(m.data(), id);
    memcpy(m.data() + 8, payload.data(), payload.size());
    return ipc_client_send(c, m.data(), m.size(), 5 * kSecond);
}

// The next reply: its id and payload; false on an error.
bool RecvMux(ipc_client *c, uint64_t *id, std::string *payload)
{
    std::vector<uint8_t> buf(1 << 16);
    ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), 10 * kSecond);
    if (n < 8)
        return false;
    *id = GetLe64(buf.data());
    payload->assign(reinterpret_cast<char *>(buf.data()) + 8, (size_t)n - 8);
    return true;
}

std::string Recv(ipc_client *c)
{
    char buf[256];
    ssize_t n = ipc_client_recv(c, buf, sizeof buf, 10 * kSecond);
    return n < 0 ? "error " + std::to_string(n) : std::string(buf, (size_t)n);
}

std::string Echo(ipc_client *c, const std::string &m)
{
    if (ipc_client_send(c, m.data(), m.size(), 5 * kSecond) != 0)
        return "send failed";
    return Recv(c);
}

class Workers : public ::testing::TestWithParam<const char *> {
  protected:
    ipc_testing::ScopedDir dir;
    std::string name;
    ipc_server *server = nullptr;
    std::thread runner;
    std::atomic<int> run_rc{1};
    std::atomic<bool> returned{false};
    std::vector<ipc_client *> clients;
    Ctx ctx;

    bool shm() const { return strcmp(GetParam(), "shm") == 0; }

    void Serve(ipc_server_options o, ipc_handler handler, size_t max_clients = 8)
    {
        name = shm() ? ipc_testing::UniqueName("wk") : dir.file("w.sock");
        wire_ = o.wire;
        server = shm() ? ipc_server_create_shm_ex(name.c_str(), max_clients, &o)
                       : ipc_server_create_socket_ex(name.c_str(), (int)max_clients, &o);
        ASSERT_NE(server, nullptr);
        ASSERT_EQ(ipc_server_listen(server), 0);
        runner = std::thread([this, handler] {
            run_rc = ipc_server_run(server, handler, &ctx, 0);
            returned = true;
        });
    }

    // A client of the server's wire (wire_ as served), connected.
    ipc_client *Connect() { return ConnectAs(wire_, 0); }

    ipc_client *ConnectAs(uint32_t wire, int expect_rc)
    {
        ipc_client_options co = {};
        co.wire = wire;
        ipc_client *c = shm() ? ipc_client_create_shm_ex(name.c_str(), 0, &co)
                              : ipc_client_create_socket_ex(name.c_str(), &co);
        EXPECT_EQ(ipc_client_connect(c), expect_rc);
        clients.push_back(c);
        return c;
    }

    void StopServer()
    {
        if (runner.joinable()) {
            ipc_server_stop(server);
            runner.join();
        }
    }

    void TearDown() override
    {
        ctx.latch.Open();
        StopServer();
        for (ipc_client *c : clients)
            ipc_client_destroy(c);
        ipc_server_destroy(server);
    }

    uint32_t wire_ = IPC_WIRE_LEGACY;

    ipc_stats Stats()
    {
        ipc_stats st;
        EXPECT_EQ(ipc_server_stats(server, &st), 0);
        return st;
    }
};

void WaitFor(const std::function<bool()> &cond)
{
    for (int i = 0; i < 10000 && !cond(); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

TEST_P(Workers, AClientsRequestHeldInAHandlerHoldsNoOtherClient)
{
    ipc_server_options o = {};
    o.workers = 2;
    Serve(o, LatchEcho);
    ipc_client *a = Connect();
    ipc_client *b = Connect();
    ASSERT_EQ(ipc_client_send(a, "latch", 5, 5 * kSecond), 0);
    WaitFor([&] { return ctx.held.load() == 1; });
    ASSERT_EQ(ctx.held.load(), 1);
    for (int i = 0; i < 1000; i++) {
        std::string m = "b" + std::to_string(i);
        ASSERT_EQ(Echo(b, m), m);
    }
    ctx.latch.Open();
    EXPECT_EQ(Recv(a), "latch");
}

TEST_P(Workers, OnTheMultiplexedWireRepliesLeaveInCompletionOrder)
{
    ipc_server_options o = {};
    o.workers = 4;
    o.wire = IPC_WIRE_MUX;
    Serve(o, LatchEcho);
    ipc_client *c = Connect();
    ASSERT_EQ(SendMux(c, 1, "latch"), 0);
    for (uint64_t id = 2; id <= 100; id++)
        ASSERT_EQ(SendMux(c, id, "m" + std::to_string(id)), 0);
    std::set<uint64_t> seen;
    for (int k = 0; k < 99; k++) {
        uint64_t id;
        std::string p;
        ASSERT_TRUE(RecvMux(c, &id, &p));
        EXPECT_EQ(p, "m" + std::to_string(id));
        EXPECT_TRUE(seen.insert(id).second) << "reply " << id << " twice";
    }
    EXPECT_EQ(seen.size(), 99u);
    EXPECT_EQ(seen.count(1), 0u);
    ctx.latch.Open();
    uint64_t id;
    std::string p;
    ASSERT_TRUE(RecvMux(c, &id, &p));
    EXPECT_EQ(id, 1u);
    EXPECT_EQ(p, "latch");
}

TEST_P(Workers, TheLegacyWireAnswersEachConnectionInOrderWhileOthersOvertake)
{
    ipc_server_options o = {};
    o.workers = 4;
    Serve(o, LatchEcho);
    ipc_client *a = Connect();
    ipc_client *b = Connect();
    ASSERT_EQ(ipc_client_send(a, "latch", 5, 5 * kSecond), 0);
    for (int i = 0; i < 20; i++) // pipelined behind the held one
        ASSERT_EQ(ipc_client_send(a, ("a" + std::to_string(i)).c_str(), 2 + (i > 9), 5 * kSecond),
                  0);
    WaitFor([&] { return ctx.held.load() == 1; });
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(Echo(b, "b" + std::to_string(i)), "b" + std::to_string(i));
    EXPECT_EQ(ctx.most_at_once.load(), 2) << "one of a's, one of b's";
    ctx.latch.Open();
    EXPECT_EQ(Recv(a), "latch");
    for (int i = 0; i < 20; i++)
        EXPECT_EQ(Recv(a), "a" + std::to_string(i));
}

TEST_P(Workers, ADeferredRequestIsAnsweredFromAnotherThreadAndKeepsLegacyOrder)
{
    Serve({}, DeferAll); // no workers: the handler runs on run()'s thread
    ipc_client *c = Connect();
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(ipc_client_send(c, ("r" + std::to_string(i)).c_str(), 2, 5 * kSecond), 0);
    std::thread replier([&] {
        for (int i = 0; i < 3; i++) {
            ipc_request *q = TakeDeferred(ctx);
            ASSERT_NE(q, nullptr);
            {
                // Legacy wire: the next request waits for this answer.
                std::lock_guard<std::mutex> g(ctx.mu);
                EXPECT_TRUE(ctx.deferred.empty());
            }
            size_t len;
            const char *d = static_cast<const char *>(ipc_request_data(q, &len));
            std::string reply = "re:" + std::string(d, len);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            EXPECT_EQ(ipc_request_reply(q, reply.data(), reply.size()), 0);
        }
    });
    for (int i = 0; i < 3; i++)
        EXPECT_EQ(Recv(c), "re:r" + std::to_string(i));
    replier.join();
}

TEST_P(Workers, AReplyToAClientThatLeftIsCountedAndNeverReachesTheNextConnection)
{
    Serve({}, DeferAll, 1);
    ipc_client *a = Connect();
    ASSERT_EQ(ipc_client_send(a, "for a", 5, 5 * kSecond), 0);
    ipc_request *q = TakeDeferred(ctx);
    ASSERT_NE(q, nullptr);
    ipc_client_close(a); // leaves with its request in work
    ipc_client *b = Connect();
    // shm: b has a's slot (one slot); socket: a fresh id. Either way a's
    // answer must not reach b.
    EXPECT_EQ(Echo(b, "now"), "now"); // b is served: it holds its id now
    ASSERT_EQ(ipc_request_reply(q, "late for a", 10), 0);
    EXPECT_EQ(Echo(b, "now"), "now");
    WaitFor([&] { return Stats().orphans == 1; });
    EXPECT_EQ(Stats().orphans, 1u);
    char buf[64];
    EXPECT_EQ(ipc_client_recv(b, buf, sizeof buf, 50 * 1000 * 1000), -ETIMEDOUT);
}

TEST_P(Workers, ADroppedRequestOnTheMultiplexedWireGetsNoReplyAndTheConnectionGoesOn)
{
    ipc_server_options o = {};
    o.wire = IPC_WIRE_MUX;
    Serve(o, DeferAll);
    ipc_client *c = Connect();
    ASSERT_EQ(SendMux(c, 7, "drop me"), 0);
    ipc_request *q = TakeDeferred(ctx);
    ASSERT_NE(q, nullptr);
    ipc_request_drop(q);
    ASSERT_EQ(SendMux(c, 8, "now"), 0);
    uint64_t id;
    std::string p;
    ASSERT_TRUE(RecvMux(c, &id, &p));
    EXPECT_EQ(id, 8u);
    EXPECT_EQ(p, "now");
}

TEST_P(Workers, ADroppedRequestOnTheLegacyWireDisconnectsItsClient)
{
    Serve({}, DeferAll);
    ipc_client *c = Connect();
    ASSERT_EQ(ipc_client_send(c, "drop me", 7, 5 * kSecond), 0);
    ipc_request *q = TakeDeferred(ctx);
    ASSERT_NE(q, nullptr);
    ipc_request_drop(q);
    char buf[16];
    EXPECT_EQ(ipc_client_recv(c, buf, sizeof buf, 10 * kSecond), -ECONNRESET);
    WaitFor([&] { return Stats().drops == 1; });
    EXPECT_EQ(Stats().drops, 1u);
}

// Shared memory: the segment says the wire, a legacy client is refused at
// connect. Sockets have no hello: a legacy client's message shorter than
// an id drops that client, and only it.
TEST_P(Workers, AClientOfTheOtherWireIsStoppedWithoutHarmToOthers)
{
    ipc_server_options o = {};
    o.wire = IPC_WIRE_MUX;
    o.workers = 1;
    Serve(o, LatchEcho);
    ipc_client *good = Connect();
    char buf[16];
    EXPECT_EQ(ipc_client_send(good, "1234567", 7, kSecond), -EINVAL); // no room for the id
    if (shm()) {
        ConnectAs(IPC_WIRE_LEGACY, -EPROTO);
    } else {
        ipc_client *bad = ConnectAs(IPC_WIRE_LEGACY, 0);
        ASSERT_EQ(ipc_client_send(bad, "1234567", 7, 5 * kSecond), 0);
        EXPECT_EQ(ipc_client_recv(bad, buf, sizeof buf, 10 * kSecond), -ECONNRESET);
        EXPECT_GE(Stats().drops, 1u);
    }
    ASSERT_EQ(SendMux(good, 42, "fine"), 0);
    uint64_t id;
    std::string p;
    ASSERT_TRUE(RecvMux(good, &id, &p));
    EXPECT_EQ(id, 42u);
    EXPECT_EQ(p, "fine");
}

TEST_P(Workers, AHandlerShutdownLetsTheRequestsInWorkFinishAndBeAnswered)
{
    ipc_server_options o = {};
    o.workers = 2;
    Serve(o, LatchEcho);
    ipc_client *a = Connect();
    ipc_client *b = Connect();
    ASSERT_EQ(ipc_client_send(a, "latch", 5, 5 * kSecond), 0);
    WaitFor([&] { return ctx.held.load() == 1; });
    EXPECT_EQ(Echo(b, "SHUTDOWN"), "bye");
    EXPECT_FALSE(returned.load()) << "run() returned with a request in work";
    ctx.latch.Open();
    EXPECT_EQ(Recv(a), "latch");
    runner.join();
    EXPECT_EQ(run_rc.load(), 0);
}

TEST_P(Workers, ManyThreadsOfRequestsAllComeBackToTheirSenders)
{
    ipc_server_options o = {};
    o.workers = 4;
    o.wire = IPC_WIRE_MUX;
    o.max_inflight_per_client = 8;
    Serve(o, LatchEcho);
    ctx.latch.Open();
    constexpr int kClients = 4, kCalls = 2000;
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int t = 0; t < kClients; t++) {
        ipc_client *c = Connect();
        threads.emplace_back([&, c, t] {
            std::thread sender([&] {
                for (int i = 0; i < kCalls; i++)
                    if (SendMux(c, (uint64_t)t << 32 | (uint64_t)i,
                                std::string((size_t)(i % 300), (char)('a' + i % 26))) != 0)
                        ++bad;
            });
            std::vector<bool> got(kCalls);
            for (int k = 0; k < kCalls; k++) {
                uint64_t id;
                std::string p;
                if (!RecvMux(c, &id, &p)) {
                    ++bad;
                    break;
                }
                int i = (int)(id & 0xffffffff);
                if ((int)(id >> 32) != t || i >= kCalls || got[(size_t)i] ||
                    p != std::string((size_t)(i % 300), (char)('a' + i % 26)))
                    ++bad;
                else
                    got[(size_t)i] = true;
            }
            sender.join();
        });
    }
    for (auto &th : threads)
        th.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(Stats().orphans, 0u);
}

// ipc_client_call() from many threads on one client, on both wires.
class Calls : public Workers {
  protected:
    void ManyThreads(uint32_t wire, uint32_t workers)
    {
        ipc_server_options o = {};
        o.wire = wire;
        o.workers = workers;
        Serve(o, LatchEcho);
        ctx.latch.Open();
        ipc_client *c = Connect();
        std::atomic<int> bad{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 8; t++)
            threads.emplace_back([&, t] {
                std::vector<char> reply(4096);
                for (int i = 0; i < 300; i++) {
                    std::string m(std::to_string(t) + ":" + std::to_string(i) + ":");
                    m.append((size_t)((t * 131 + i * 17) % 2000), (char)('a' + (i + t) % 26));
                    ssize_t n = ipc_client_call(c, m.data(), m.size(), reply.data(), reply.size(),
                                                10 * kSecond);
                    if (n != (ssize_t)m.size() || memcmp(reply.data(), m.data(), m.size()) != 0)
                        ++bad;
                }
            });
        for (auto &th : threads)
            th.join();
        EXPECT_EQ(bad.load(), 0);
    }

    // A call that times out; the next ones get their own replies, and the
    // late one is discarded and counted.
    void TimeoutLeavesTheConnectionUsable(uint32_t wire)
    {
        ipc_server_options o = {};
        o.wire = wire;
        o.workers = 2;
        Serve(o, LatchEcho);
        ipc_client *c = Connect();
        char buf[64];
        EXPECT_EQ(ipc_client_call(c, "latch", 5, buf, sizeof buf, 50 * 1000 * 1000), -ETIMEDOUT);
        if (wire == IPC_WIRE_MUX) // the legacy wire holds what follows behind it
            EXPECT_EQ(ipc_client_call(c, "x", 1, buf, sizeof buf, 10 * kSecond), 1);
        ctx.latch.Open();
        if (wire == IPC_WIRE_MUX) // the late reply goes out first, then "yz"
            WaitFor([&] { return Stats().messages_out == 2; });
        ASSERT_EQ(ipc_client_call(c, "yz", 2, buf, sizeof buf, 10 * kSecond), 2);
        EXPECT_EQ(std::string(buf, 2), "yz");
        ipc_stats st;
        ASSERT_EQ(ipc_client_stats(c, &st), 0);
        EXPECT_EQ(st.orphans, 1u);
        EXPECT_GE(st.timeouts, 1u);
    }
};

TEST_P(Calls, ManyThreadsCallOneClientOnTheMultiplexedWire) { ManyThreads(IPC_WIRE_MUX, 4); }
TEST_P(Calls, ManyThreadsCallOneClientOnTheLegacyWire) { ManyThreads(IPC_WIRE_LEGACY, 2); }
TEST_P(Calls, ACallThatTimesOutLeavesAMultiplexedConnectionUsable)
{
    TimeoutLeavesTheConnectionUsable(IPC_WIRE_MUX);
}
TEST_P(Calls, ACallThatTimesOutLeavesALegacyConnectionUsable)
{
    TimeoutLeavesTheConnectionUsable(IPC_WIRE_LEGACY);
}

// A handler that tells the test through a pipe, then never returns.
int g_report_fd = -1;
ipc_action ReportAndHang(void *, int, const void *, size_t, ipc_response *)
{
    char one = 1;
    (void)!write(g_report_fd, &one, 1);
    for (;;)
        pause();
}

TEST_P(Calls, TheServersDeathFailsEveryPendingCallAtOnceWithOneError)
{
    name = shm() ? ipc_testing::UniqueName("wd") : dir.file("d.sock");
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    std::string n = name;
    bool is_shm = shm();
    ipc_testing::ChildProcess server([&] {
        close(p[0]);
        close(ready[0]);
        g_report_fd = p[1];
        ipc_server_options o = {};
        o.wire = IPC_WIRE_MUX;
        o.workers = 4;
        ipc_server *s = is_shm ? ipc_server_create_shm_ex(n.c_str(), 2, &o)
                               : ipc_server_create_socket_ex(n.c_str(), 2, &o);
        if (s == nullptr || ipc_server_listen(s) != 0)
            return 1;
        char one = 1;
        (void)!write(ready[1], &one, 1);
        return ipc_server_run(s, ReportAndHang, nullptr, 0) == 0 ? 0 : 2;
    });
    close(p[1]);
    close(ready[1]);
    char b;
    ASSERT_EQ(read(ready[0], &b, 1), 1);
    wire_ = IPC_WIRE_MUX;
    ipc_client *c = Connect();
    std::vector<std::thread> threads;
    std::vector<ssize_t> got(4, 0);
    for (int t = 0; t < 4; t++)
        threads.emplace_back([&, t] {
            char buf[16];
            got[(size_t)t] = ipc_client_call(c, "hang", 4, buf, sizeof buf, 30 * kSecond);
        });
    for (int t = 0; t < 4; t++) // every call is in a handler
        ASSERT_EQ(read(p[0], &b, 1), 1);
    char async_reply[2][16];
    uint64_t ids[2];
    for (int i = 0; i < 2; i++) // queued behind the four: never answered
        ASSERT_EQ(ipc_client_submit(c, "q", 1, async_reply[i], 16, &ids[i], 5 * kSecond), 0);
    server.Kill();
    for (auto &th : threads)
        th.join();
    for (ssize_t g : got)
        EXPECT_EQ(g, -ECONNRESET);
    std::set<uint64_t> failed;
    for (int i = 0; i < 2; i++) {
        uint64_t id = 0;
        EXPECT_EQ(ipc_client_wait_any(c, &id, 30 * kSecond), -ECONNRESET);
        failed.insert(id);
    }
    EXPECT_EQ(failed, (std::set<uint64_t>{ids[0], ids[1]}));
    uint64_t none;
    EXPECT_EQ(ipc_client_wait_any(c, &none, kSecond), -ENOENT);
    char buf[16];
    EXPECT_EQ(ipc_client_call(c, "next", 4, buf, sizeof buf, kSecond), -ECONNRESET);
    close(p[0]);
    close(ready[0]);
}

INSTANTIATE_TEST_SUITE_P(Transports, Calls, ::testing::Values("socket", "shm"),
                         [](const auto &info) { return std::string(info.param); });

// ipc_client_submit / _wait / _wait_any / _cancel / _calls_fd.
class AsyncCalls : public Workers {
  protected:
    ipc_client *ServeAndConnect(uint32_t wire, uint32_t workers = 4)
    {
        ipc_server_options o = {};
        o.wire = wire;
        o.workers = workers;
        Serve(o, LatchEcho);
        return Connect();
    }

    // One submitted request and the buffer its reply lands in.
    struct Sent {
        std::string req;
        std::vector<char> reply = std::vector<char>(4096);
    };
};

TEST_P(AsyncCalls, SubmittedCallsCompleteInCompletionOrderOnTheMultiplexedWire)
{
    ipc_client *c = ServeAndConnect(IPC_WIRE_MUX);
    char held_reply[16];
    uint64_t held;
    ASSERT_EQ(ipc_client_submit(c, "latch", 5, held_reply, sizeof held_reply, &held, 5 * kSecond),
              0);
    WaitFor([&] { return ctx.held.load() == 1; });
    std::vector<Sent> batch(50);
    std::map<uint64_t, size_t> index;
    for (size_t i = 0; i < batch.size(); i++) {
        batch[i].req = "m" + std::to_string(i) + std::string(i * 7, 'q');
        uint64_t id;
        ASSERT_EQ(ipc_client_submit(c, batch[i].req.data(), batch[i].req.size(),
                                    batch[i].reply.data(), batch[i].reply.size(), &id, 5 * kSecond),
                  0);
        ASSERT_TRUE(index.emplace(id, i).second) << "ids are unique";
        ASSERT_NE(id, held);
    }
    for (size_t k = 0; k < batch.size(); k++) {
        uint64_t id = 0;
        ssize_t n = ipc_client_wait_any(c, &id, 10 * kSecond);
        ASSERT_NE(id, held) << "the held request completes last";
        ASSERT_EQ(index.count(id), 1u);
        const Sent &m = batch[index[id]];
        ASSERT_EQ(n, (ssize_t)m.req.size());
        EXPECT_EQ(std::string(m.reply.data(), (size_t)n), m.req);
        index.erase(id);
    }
    uint64_t id = 0;
    EXPECT_EQ(ipc_client_wait_any(c, &id, 50 * 1000 * 1000), -ETIMEDOUT);
    ctx.latch.Open();
    ASSERT_EQ(ipc_client_wait_any(c, &id, 10 * kSecond), 5);
    EXPECT_EQ(id, held);
    EXPECT_EQ(std::string(held_reply, 5), "latch");
    EXPECT_EQ(ipc_client_wait_any(c, &id, kSecond), -ENOENT) << "nothing is left to reap";
}

TEST_P(AsyncCalls, AWaitedCallIsReapedAndItsIdThenNamesNothing)
{
    ipc_client *c = ServeAndConnect(IPC_WIRE_MUX);
    ctx.latch.Open();
    char reply[16];
    uint64_t id;
    ASSERT_EQ(ipc_client_submit(c, "abc", 3, reply, sizeof reply, &id, 5 * kSecond), 0);
    ASSERT_EQ(ipc_client_wait(c, id, 10 * kSecond), 3);
    EXPECT_EQ(std::string(reply, 3), "abc");
    EXPECT_EQ(ipc_client_wait(c, id, kSecond), -ENOENT);
    EXPECT_EQ(ipc_client_cancel(c, id), -ENOENT);
    EXPECT_EQ(ipc_client_wait(c, id + 1000, kSecond), -ENOENT);
}

TEST_P(AsyncCalls, AWaitThatTimesOutLeavesTheCallPendingForTheNextWait)
{
    ipc_client *c = ServeAndConnect(IPC_WIRE_MUX);
    char reply[16];
    uint64_t id;
    ASSERT_EQ(ipc_client_submit(c, "latch", 5, reply, sizeof reply, &id, 5 * kSecond), 0);
    EXPECT_EQ(ipc_client_wait(c, id, 50 * 1000 * 1000), -ETIMEDOUT);
    ctx.latch.Open();
    ASSERT_EQ(ipc_client_wait(c, id, 10 * kSecond), 5);
    EXPECT_EQ(std::string(reply, 5), "latch");
}

TEST_P(AsyncCalls, AReplyTooLongForItsBufferFailsOnlyThatCall)
{
    ipc_client *c = ServeAndConnect(IPC_WIRE_LEGACY, 1);
    ctx.latch.Open();
    char small[2], big[16];
    uint64_t a, b;
    ASSERT_EQ(ipc_client_submit(c, "long", 4, small, sizeof small, &a, 5 * kSecond), 0);
    ASSERT_EQ(ipc_client_submit(c, "ok", 2, big, sizeof big, &b, 5 * kSecond), 0);
    EXPECT_EQ(ipc_client_wait(c, a, 10 * kSecond), -EMSGSIZE);
    EXPECT_EQ(ipc_client_wait(c, b, 10 * kSecond), 2);
    EXPECT_EQ(std::string(big, 2), "ok");
}

void CancelledReplyIsDiscarded(AsyncCalls *t, ipc_client *c, Ctx &ctx, bool mux)
{
    char reply[16];
    uint64_t id;
    ASSERT_EQ(ipc_client_submit(c, "latch", 5, reply, sizeof reply, &id, 5 * kSecond), 0);
    WaitFor([&] { return ctx.held.load() == 1; });
    ASSERT_EQ(ipc_client_cancel(c, id), 0);
    EXPECT_EQ(ipc_client_wait(c, id, kSecond), -ENOENT);
    memset(reply, 0, sizeof reply);
    ctx.latch.Open();
    char buf[16];
    ASSERT_EQ(ipc_client_call(c, "yz", 2, buf, sizeof buf, 10 * kSecond), 2);
    EXPECT_EQ(std::string(buf, 2), "yz");
    if (mux) // the late reply may come after "yz": read until it came
        ASSERT_EQ(ipc_client_call(c, "w", 1, buf, sizeof buf, 10 * kSecond), 1);
    EXPECT_EQ(std::string(reply, 5), std::string(5, '\0')) << "a cancelled buffer is not written";
    ipc_stats st;
    ASSERT_EQ(ipc_client_stats(c, &st), 0);
    if (mux)
        WaitFor([&] {
            return ipc_client_stats(c, &st) == 0 && st.orphans == 1;
        });
    (void)t;
}

TEST_P(AsyncCalls, ACancelledCallsLateReplyIsDiscardedOnTheLegacyWire)
{
    ipc_client *c = ServeAndConnect(IPC_WIRE_LEGACY);
    CancelledReplyIsDiscarded(this, c, ctx, false);
    ipc_stats st;
    ASSERT_EQ(ipc_client_stats(c, &st), 0);
    EXPECT_EQ(st.orphans, 1u);
}

TEST_P(AsyncCalls, ACancelledCallsLateReplyIsDiscardedOnTheMultiplexedWire)
{
    ipc_client *c = ServeAndConnect(IPC_WIRE_MUX);
    CancelledReplyIsDiscarded(this, c, ctx, true);
}

// One thread drives a client from poll(): submit a window, collect what
// the calls fd says is there, refill.
void EventLoop(ipc_client *c, int total, int window)
{
    int fd = ipc_client_calls_fd(c);
    ASSERT_GE(fd, 0);
    std::vector<std::pair<std::string, std::vector<char>>> slots((size_t)total);
    std::map<uint64_t, int> index;
    int next = 0, done = 0;
    auto submit = [&] {
        int i = next++;
        auto &s = slots[(size_t)i];
        s.first = "ev" + std::to_string(i) + std::string((size_t)(i * 37 % 3000), 'x');
        s.second.resize(4096);
        uint64_t id;
        ASSERT_EQ(ipc_client_submit(c, s.first.data(), s.first.size(), s.second.data(),
                                    s.second.size(), &id, 5 * kSecond),
                  0);
        index[id] = i;
    };
    while (next < window)
        submit();
    while (done < total) {
        struct pollfd p = {fd, POLLIN, 0};
        ASSERT_EQ(poll(&p, 1, 10000), 1) << "a completion is always signalled";
        uint64_t id;
        ssize_t n;
        while ((n = ipc_client_try_wait_any(c, &id)) != -EAGAIN) {
            if (n == -ENOENT && done == total)
                break;
            ASSERT_GE(n, 0);
            ASSERT_EQ(index.count(id), 1u);
            auto &s = slots[(size_t)index[id]];
            ASSERT_EQ(std::string(s.second.data(), (size_t)n), s.first);
            index.erase(id);
            done++;
            if (next < total)
                submit();
        }
    }
    uint64_t id;
    EXPECT_EQ(ipc_client_try_wait_any(c, &id), -ENOENT);
}

TEST_P(AsyncCalls, AnEventLoopCollectsEveryCompletionFromTheCallsFdOnTheMultiplexedWire)
{
    ctx.latch.Open();
    EventLoop(ServeAndConnect(IPC_WIRE_MUX), 2000, 32);
}

TEST_P(AsyncCalls, AnEventLoopCollectsEveryCompletionFromTheCallsFdOnTheLegacyWire)
{
    ctx.latch.Open();
    EventLoop(ServeAndConnect(IPC_WIRE_LEGACY), 2000, 32);
}

TEST_P(AsyncCalls, TheCallsFdSignalsACompletionAnotherThreadRead)
{
    // Legacy wire: the blocking call's reply queues behind the submitted
    // one, so the blocking caller, the only reader, reads both.
    ipc_client *c = ServeAndConnect(IPC_WIRE_LEGACY);
    int fd = ipc_client_calls_fd(c);
    ASSERT_GE(fd, 0);
    char reply[16];
    uint64_t id;
    ASSERT_EQ(ipc_client_submit(c, "latch", 5, reply, sizeof reply, &id, 5 * kSecond), 0);
    WaitFor([&] { return ctx.held.load() == 1; });
    ssize_t got = 0;
    std::thread blocking([&] {
        char buf[16];
        got = ipc_client_call(c, "x", 1, buf, sizeof buf, 10 * kSecond);
    });
    ctx.latch.Open();
    blocking.join();
    ASSERT_EQ(got, 1);
    struct pollfd p = {fd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 0), 1) << "the socket is drained: only the completion can say so";
    uint64_t got_id = 0;
    ASSERT_EQ(ipc_client_try_wait_any(c, &got_id), 5);
    EXPECT_EQ(got_id, id);
    EXPECT_EQ(ipc_client_try_wait_any(c, &got_id), -ENOENT);
    EXPECT_EQ(poll(&p, 1, 0), 0) << "nothing left to collect: the fd is quiet";
}

TEST_P(AsyncCalls, ASubmittedCallPendingAtCloseEndsWithNotConnectedAndDiesWithTheConnection)
{
    ipc_client *c = ServeAndConnect(IPC_WIRE_MUX);
    char reply[16];
    uint64_t id;
    ASSERT_EQ(ipc_client_submit(c, "latch", 5, reply, sizeof reply, &id, 5 * kSecond), 0);
    ipc_client_close(c);
    EXPECT_EQ(ipc_client_submit(c, "a", 1, reply, sizeof reply, &id, kSecond), -ENOTCONN);
    EXPECT_EQ(ipc_client_calls_fd(c), -ENOTCONN);
    uint64_t got = 0;
    EXPECT_EQ(ipc_client_wait_any(c, &got, kSecond), -ENOTCONN);
    EXPECT_EQ(got, id);
    ctx.latch.Open();
    ASSERT_EQ(ipc_client_connect(c), 0);
    uint64_t again;
    ASSERT_EQ(ipc_client_submit(c, "b", 1, reply, sizeof reply, &again, 5 * kSecond), 0);
    ASSERT_EQ(ipc_client_wait(c, again, 10 * kSecond), 1);
}

TEST_P(AsyncCalls, BadArgumentsAreRefusedWithExactErrors)
{
    char reply[4];
    uint64_t id;
    EXPECT_EQ(ipc_client_submit(nullptr, "a", 1, reply, sizeof reply, &id, 0), -EINVAL);
    EXPECT_EQ(ipc_client_wait(nullptr, 1, 0), -EINVAL);
    EXPECT_EQ(ipc_client_wait_any(nullptr, &id, 0), -EINVAL);
    EXPECT_EQ(ipc_client_try_wait_any(nullptr, &id), -EINVAL);
    EXPECT_EQ(ipc_client_cancel(nullptr, 1), -EINVAL);
    EXPECT_EQ(ipc_client_calls_fd(nullptr), -EINVAL);
    ipc_client *c = ServeAndConnect(IPC_WIRE_MUX);
    EXPECT_EQ(ipc_client_submit(c, "a", 1, reply, sizeof reply, nullptr, 0), -EINVAL);
    EXPECT_EQ(ipc_client_submit(c, nullptr, 1, reply, sizeof reply, &id, 0), -EFAULT);
    EXPECT_EQ(ipc_client_wait_any(c, nullptr, 0), -EINVAL);
    EXPECT_EQ(ipc_client_wait_any(c, &id, 0), -ENOENT) << "none submitted: never waits";
    ipc_client_options co = {};
    ipc_client *idle = ipc_client_create_socket_ex(dir.file("none.sock").c_str(), &co);
    EXPECT_EQ(ipc_client_submit(idle, "a", 1, reply, sizeof reply, &id, 0), -ENOTCONN);
    ipc_client_destroy(idle);
}

INSTANTIATE_TEST_SUITE_P(Transports, AsyncCalls, ::testing::Values("socket", "shm"),
                         [](const auto &info) { return std::string(info.param); });

TEST(WorkersOptions, AnUnknownClientWireGivesNoClient)
{
    ipc_client_options co = {};
    co.wire = 7;
    EXPECT_EQ(ipc_client_create_socket_ex("/tmp/x.sock", &co), nullptr);
    EXPECT_EQ(ipc_client_create_shm_ex("x", 0, &co), nullptr);
}

TEST(WorkersOptions, BadValuesGiveNoServer)
{
    ipc_testing::ScopedDir dir;
    std::string path = dir.file("o.sock");
    ipc_server_options o = {};
    o.wire = 2;
    EXPECT_EQ(ipc_server_create_socket_ex(path.c_str(), 1, &o), nullptr);
    o = {};
    o.workers = 1025;
    EXPECT_EQ(ipc_server_create_socket_ex(path.c_str(), 1, &o), nullptr);
    o = {};
    o.wire = IPC_WIRE_MUX;
    o.max_message_size = (size_t)1 << 30; // the id must fit in 1 GiB too
    EXPECT_EQ(ipc_server_create_socket_ex(path.c_str(), 1, &o), nullptr);
    o.max_message_size = ((size_t)1 << 30) - 8;
    ipc_server *s = ipc_server_create_socket_ex(path.c_str(), 1, &o);
    EXPECT_NE(s, nullptr);
    ipc_server_destroy(s);
}

INSTANTIATE_TEST_SUITE_P(Transports, Workers, ::testing::Values("socket", "shm"),
                         [](const auto &info) { return std::string(info.param); });

} // namespace
