// ipc/ipc.hpp's concurrent side: call() from many threads, call_async()
// with futures and callbacks, a run() with workers, deferred Requests.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.hpp"
#include "ipc/testing/testing.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
// libstdc++ is not instrumented: the atomic reference count of an
// exception_ptr is invisible to ThreadSanitizer. When future::get() rethrows
// on this thread while call_async()'s completion thread drops the promise's
// last reference, the exception's free looks like a race with the catch
// that read it. (Defined in the test binary itself: the runtime's default
// is a weak symbol of the executable.)
extern "C" const char *__tsan_default_suppressions()
{
    return "race:std::__exception_ptr::exception_ptr::_M_release\n";
}
#endif
#endif

namespace {

constexpr uint64_t kSecond = 1000ull * 1000 * 1000;
constexpr auto kLong = std::chrono::seconds(30);

std::vector<uint8_t> Bytes(const std::string &s) { return {s.begin(), s.end()}; }
std::string Text(const std::vector<uint8_t> &v) { return {v.begin(), v.end()}; }

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

// The error a future failed with (a default error_code when it did not).
std::error_code FailureOf(std::future<std::vector<uint8_t>> &f)
{
    try {
        f.get();
    } catch (const std::system_error &e) {
        return e.code();
    }
    return {};
}

struct Param {
    const char *transport;
    ipc::Wire wire;
};

// A server run() on a thread with workers: echoes, except "latch", held
// until the test opens the latch.
class CppCalls : public ::testing::TestWithParam<Param> {
  protected:
    bool shm() const { return std::strcmp(GetParam().transport, "shm") == 0; }
    bool mux() const { return GetParam().wire == ipc::Wire::Mux; }

    void SetUp() override
    {
        name_ = shm() ? ipc_testing::UniqueName("cc") : dir_.file("cc.sock");
        ipc::ServerOptions o;
        o.workers = 4;
        o.wire = GetParam().wire;
        server_ = shm() ? ipc::IpcServer::create_shm(name_, 4, o)
                        : ipc::IpcServer::create_socket(name_, 4, o);
        ASSERT_NE(server_, nullptr);
        ASSERT_TRUE(server_->listen());
        runner_ = std::thread([this] {
            server_->run([this](int, std::span<const uint8_t> r) {
                std::string req(r.begin(), r.end());
                if (req == "latch") {
                    ++held_;
                    latch_.Wait();
                }
                return std::vector<uint8_t>(r.begin(), r.end());
            });
        });
    }

    void TearDown() override
    {
        latch_.Open();
        client_.reset();
        server_->request_shutdown();
        runner_.join();
    }

    ipc::IpcClient &Client()
    {
        ipc::ClientOptions co;
        co.wire = GetParam().wire;
        client_ = shm() ? ipc::IpcClient::create_shm(name_, 0, co)
                        : ipc::IpcClient::create_socket(name_, co);
        EXPECT_NE(client_, nullptr);
        EXPECT_TRUE(client_->connect());
        return *client_;
    }

    void WaitHeld(int n)
    {
        for (int i = 0; i < 10000 && held_.load() < n; i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ASSERT_EQ(held_.load(), n);
    }

    ipc_testing::ScopedDir dir_;
    std::string name_;
    std::unique_ptr<ipc::IpcServer> server_;
    std::unique_ptr<ipc::IpcClient> client_;
    std::thread runner_;
    Latch latch_;
    std::atomic<int> held_{0};
};

TEST_P(CppCalls, ManyThreadsCallOneClientAndEachGetsItsOwnReply)
{
    latch_.Open();
    ipc::IpcClient &c = Client();
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; t++)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; i++) {
                std::string m = std::to_string(t) + ":" + std::to_string(i) +
                                std::string((size_t)((t * 97 + i * 31) % 3000), 'z');
                std::error_code ec;
                std::vector<uint8_t> r = c.call(Bytes(m), 10 * kSecond, ec);
                if (ec || Text(r) != m)
                    ++bad;
            }
        });
    for (auto &th : threads)
        th.join();
    EXPECT_EQ(bad.load(), 0);
}

TEST_P(CppCalls, FuturesGiveEveryReplyToItsOwnCall)
{
    latch_.Open();
    ipc::IpcClient &c = Client();
    std::vector<std::string> sent;
    std::vector<std::future<std::vector<uint8_t>>> futures;
    for (int i = 0; i < 300; i++) {
        sent.push_back("f" + std::to_string(i) + std::string((size_t)(i * 13 % 5000), 'y'));
        futures.push_back(c.call_async(Bytes(sent.back()), 10 * kSecond));
    }
    for (size_t i = 0; i < futures.size(); i++) {
        ASSERT_EQ(futures[i].wait_for(kLong), std::future_status::ready);
        EXPECT_EQ(Text(futures[i].get()), sent[i]);
    }
}

TEST_P(CppCalls, AHeldCallHoldsNoOtherConnectionAndOnTheMultiplexedWireNotEvenItsOwn)
{
    ipc::IpcClient &c = Client();
    auto held = c.call_async(Bytes("latch"));
    WaitHeld(1);
    ipc::ClientOptions co;
    co.wire = GetParam().wire;
    auto other = shm() ? ipc::IpcClient::create_shm(name_, 0, co)
                       : ipc::IpcClient::create_socket(name_, co);
    ASSERT_TRUE(other->connect());
    // The legacy wire answers one connection in order, so only another
    // connection overtakes there; the multiplexed wire overtakes on one.
    ipc::IpcClient &overtaker = mux() ? c : *other;
    std::vector<std::future<std::vector<uint8_t>>> others;
    for (int i = 0; i < 50; i++)
        others.push_back(overtaker.call_async(Bytes("o" + std::to_string(i)), 10 * kSecond));
    for (int i = 0; i < 50; i++)
        EXPECT_EQ(Text(others[(size_t)i].get()), "o" + std::to_string(i));
    EXPECT_EQ(held.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
    latch_.Open();
    EXPECT_EQ(Text(held.get()), "latch");
}

TEST_P(CppCalls, ACallbackRunsOnceWithItsReply)
{
    latch_.Open();
    ipc::IpcClient &c = Client();
    std::mutex mu;
    std::condition_variable cv;
    std::multiset<std::string> got;
    int errors = 0;
    for (int i = 0; i < 200; i++)
        c.call_async(Bytes("cb" + std::to_string(i)),
                     [&](std::error_code ec, std::span<const uint8_t> r) {
                         std::lock_guard<std::mutex> g(mu);
                         if (ec)
                             errors++;
                         else
                             got.insert(std::string(r.begin(), r.end()));
                         cv.notify_all();
                     },
                     10 * kSecond);
    std::unique_lock<std::mutex> g(mu);
    ASSERT_TRUE(cv.wait_for(g, kLong, [&] { return got.size() + (size_t)errors == 200; }));
    EXPECT_EQ(errors, 0);
    for (int i = 0; i < 200; i++)
        EXPECT_EQ(got.count("cb" + std::to_string(i)), 1u);
}

TEST_P(CppCalls, AFutureTimesOutWithTimedOutAndTheConnectionStaysUsable)
{
    ipc::IpcClient &c = Client();
    auto f = c.call_async(Bytes("latch"), 50 * 1000 * 1000);
    EXPECT_EQ(FailureOf(f), std::errc::timed_out);
    latch_.Open();
    std::error_code ec;
    EXPECT_EQ(Text(c.call(Bytes("after"), 10 * kSecond, ec)), "after");
    EXPECT_FALSE(ec);
}

TEST_P(CppCalls, ACallbackGetsTimedOutWhenItsReplyIsLate)
{
    ipc::IpcClient &c = Client();
    std::promise<std::error_code> done;
    c.call_async(Bytes("latch"),
                 [&](std::error_code ec, std::span<const uint8_t>) { done.set_value(ec); },
                 50 * 1000 * 1000);
    auto f = done.get_future();
    ASSERT_EQ(f.wait_for(kLong), std::future_status::ready);
    EXPECT_EQ(f.get(), std::errc::timed_out);
}

TEST_P(CppCalls, CloseEndsOutstandingFuturesWithNotConnected)
{
    ipc::IpcClient &c = Client();
    auto f = c.call_async(Bytes("latch"));
    WaitHeld(1);
    c.close();
    EXPECT_EQ(FailureOf(f), std::errc::not_connected);
    auto after = c.call_async(Bytes("x"));
    EXPECT_EQ(FailureOf(after), std::errc::not_connected);
    latch_.Open();
    ASSERT_TRUE(c.connect());
    EXPECT_EQ(Text(c.call_async(Bytes("again"), 10 * kSecond).get()), "again");
}

TEST_P(CppCalls, AReplyLongerThanTheLimitFailsWithMessageSize)
{
    latch_.Open();
    ipc::IpcClient &c = Client();
    auto f = c.call_async(Bytes("twelve bytes"), 10 * kSecond, 4);
    EXPECT_EQ(FailureOf(f), std::errc::message_size);
    std::error_code ec;
    EXPECT_TRUE(c.call(Bytes("twelve bytes"), 10 * kSecond, ec, 4).empty());
    EXPECT_EQ(ec, std::errc::message_size);
    EXPECT_EQ(Text(c.call(Bytes("ok"), 10 * kSecond, ec)), "ok");
}

TEST_P(CppCalls, WorkersRunTheHandlerOnSeveralThreadsAtOnce)
{
    ipc::IpcClient &c = Client();
    std::vector<std::future<std::vector<uint8_t>>> held;
    if (mux()) {
        for (int i = 0; i < 4; i++) // four in the handler on one connection
            held.push_back(c.call_async(Bytes("latch")));
    } else {
        held.push_back(c.call_async(Bytes("latch")));
    }
    WaitHeld(mux() ? 4 : 1);
    latch_.Open();
    for (auto &f : held)
        EXPECT_EQ(Text(f.get()), "latch");
}

INSTANTIATE_TEST_SUITE_P(
    Wires, CppCalls,
    ::testing::Values(Param{"socket", ipc::Wire::Legacy}, Param{"socket", ipc::Wire::Mux},
                      Param{"shm", ipc::Wire::Legacy}, Param{"shm", ipc::Wire::Mux}),
    [](const auto &info) {
        return std::string(info.param.transport) +
               (info.param.wire == ipc::Wire::Mux ? "_mux" : "_legacy");
    });

// ---- the server's death, across fork()

class CppCallsDeath : public ::testing::TestWithParam<const char *> {};

TEST_P(CppCallsDeath, TheServersDeathFailsEveryOutstandingFutureWithConnectionReset)
{
    bool shm = std::strcmp(GetParam(), "shm") == 0;
    ipc_testing::ScopedDir dir;
    std::string name = shm ? ipc_testing::UniqueName("ccd") : dir.file("d.sock");
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    ipc_testing::ChildProcess server([&] {
        close(ready[0]);
        ipc::ServerOptions o;
        o.workers = 2;
        o.wire = ipc::Wire::Mux;
        auto s = shm ? ipc::IpcServer::create_shm(name, 2, o)
                     : ipc::IpcServer::create_socket(name, 2, o);
        if (s == nullptr || !s->listen())
            return 1;
        char one = 1;
        (void)!write(ready[1], &one, 1);
        s->run([](int, std::span<const uint8_t>) -> std::vector<uint8_t> {
            for (;;)
                pause();
        });
        return 0;
    });
    close(ready[1]);
    char b;
    ASSERT_EQ(read(ready[0], &b, 1), 1);
    close(ready[0]);
    ipc::ClientOptions co;
    co.wire = ipc::Wire::Mux;
    auto c = shm ? ipc::IpcClient::create_shm(name, 0, co) : ipc::IpcClient::create_socket(name, co);
    ASSERT_TRUE(c->connect());
    std::vector<std::future<std::vector<uint8_t>>> futures;
    for (int i = 0; i < 8; i++)
        futures.push_back(c->call_async(Bytes("never"), 60 * kSecond));
    server.Kill();
    for (auto &f : futures)
        EXPECT_EQ(FailureOf(f), std::errc::connection_reset);
}

INSTANTIATE_TEST_SUITE_P(Transports, CppCallsDeath, ::testing::Values("socket", "shm"),
                         [](const auto &info) { return std::string(info.param); });

// ---- deferred requests and moved-from clients

TEST(CppDeferred, ARequestIsAnsweredFromAnotherThreadAndAnUnansweredOneIsDropped)
{
    ipc_testing::ScopedDir dir;
    std::string path = dir.file("def.sock");
    ipc::ServerOptions o;
    o.wire = ipc::Wire::Mux;
    auto s = ipc::IpcServer::create_socket(path, 2, o);
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(s->listen());
    std::mutex mu;
    std::condition_variable cv;
    std::deque<ipc::Request> kept;
    std::thread runner([&] {
        s->run_zero_copy([&](int, std::span<const uint8_t>, ipc::Reply &r) {
            ipc::Request q = r.defer();
            if (!q)
                return ipc::Action::Continue;
            std::lock_guard<std::mutex> g(mu);
            kept.push_back(std::move(q));
            cv.notify_all();
            return ipc::Action::Continue;
        });
    });
    auto take = [&] {
        std::unique_lock<std::mutex> g(mu);
        cv.wait_for(g, kLong, [&] { return !kept.empty(); });
        ipc::Request q = kept.empty() ? ipc::Request() : std::move(kept.front());
        if (!kept.empty())
            kept.pop_front();
        return q;
    };
    ipc::ClientOptions co;
    co.wire = ipc::Wire::Mux;
    auto c = ipc::IpcClient::create_socket(path, co);
    ASSERT_TRUE(c->connect());

    auto answered = c->call_async(Bytes("answer me"), 10 * kSecond);
    ipc::Request q = take();
    ASSERT_TRUE(q);
    EXPECT_EQ(std::string(q.data().begin(), q.data().end()), "answer me");
    std::thread other([&] { EXPECT_EQ(q.reply(Bytes("answered")), 0); });
    other.join();
    EXPECT_FALSE(q) << "a reply ends the request";
    EXPECT_EQ(q.reply(Bytes("again")), -EINVAL);
    EXPECT_EQ(Text(answered.get()), "answered");

    auto dropped = c->call_async(Bytes("drop me"), 200 * 1000 * 1000);
    { ipc::Request gone = take(); } // destroyed unanswered: dropped
    EXPECT_EQ(FailureOf(dropped), std::errc::timed_out);

    auto last = c->call_async(Bytes("last"), 10 * kSecond);
    ipc::Request l = take();
    auto space = l.reserve(4);
    ASSERT_EQ(space.size(), 4u);
    std::memcpy(space.data(), "done", 4);
    EXPECT_EQ(l.commit(4), 0);
    EXPECT_EQ(Text(last.get()), "done");

    s->request_shutdown();
    runner.join();
}

TEST(CppCallsMoved, AMovedFromClientFailsCallsWithInvalidArgument)
{
    auto c = ipc::IpcClient::create_socket("/tmp/none-such.sock");
    ASSERT_NE(c, nullptr);
    ipc::IpcClient taken(std::move(*c));
    auto f = c->call_async(Bytes("x"));
    EXPECT_EQ(FailureOf(f), std::errc::invalid_argument);
    std::error_code ec;
    c->call(Bytes("x"), kSecond, ec);
    EXPECT_EQ(ec, std::errc::invalid_argument);
    auto g = taken.call_async(Bytes("x"));
    EXPECT_EQ(FailureOf(g), std::errc::not_connected);
}

}  // namespace
