// Full-duplex clients: one thread sends while another receives, on both
// transports, against an echo server in another process.
#include <errno.h>
#include <string.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/fixtures.h"
#include "ipc/testing/testing.h"

using ipc_testing::ConnectWithRetry;
using ipc_testing::MatchesPattern;
using ipc_testing::Pattern;
using ipc_testing::ServerProcess;

namespace {

constexpr uint64_t kSecond = 1000ull * 1000 * 1000;
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define IPC_DUPLEX_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define IPC_DUPLEX_SANITIZED 1
#endif
// The module's high-volume test sends 300 000 messages. TSan and ASan run
// this 5-15x slower: there 60 000 take the same paths through the same
// checks within the test's timeout.
#ifdef IPC_DUPLEX_SANITIZED
constexpr size_t kMessages = 60000;
#else
constexpr size_t kMessages = 300000;
#endif
constexpr size_t kRing = 8192; // the module's high-volume test: an 8 KiB ring
constexpr size_t kMaxMessage = kRing / 2 - 16;
// Requests in flight at most: the server queues the replies a client has not
// read up to max_pending_output, then drops it, so a pipelining client
// bounds its window (ipc.h) to what that queue holds.
constexpr uint64_t kWindow = 128;
constexpr size_t kPendingOutput = kWindow * kMaxMessage + (64u << 10);

// The length of message seq: the sender and the receiver draw the same.
class Sizes {
  public:
    explicit Sizes(size_t max) : dist_(0, max) {}
    size_t next() { return dist_(rng_); }

  private:
    std::mt19937_64 rng_{20261201};
    std::uniform_int_distribution<size_t> dist_;
};

class DuplexTest : public ipc_testing::TransportTest {
  protected:
    DuplexTest() : TransportTest("duplex") {}
    ipc_server *MakeServer() const
    {
        ipc_server_options o = {};
        o.ring_size = kRing;
        o.max_message_size = kMaxMessage;
        o.max_pending_output = kPendingOutput;
        o.spin_ns = 2000; // three spinning threads on two CPUs would starve
        return CreateServer(1, &o);
    }
    ipc_client *MakeClient() const { return CreateClient(1); }
};

// Message seq goes out by send() when even, by loan + commit when odd.
int SendOne(ipc_client *c, const std::vector<uint8_t> &msg, uint64_t seq)
{
    if (seq % 2 == 0)
        return ipc_client_send(c, msg.data(), msg.size(), 10 * kSecond);
    void *buf;
    int rc = ipc_client_loan(c, msg.size(), &buf, 10 * kSecond);
    if (rc < 0)
        return rc;
    if (!msg.empty())
        memcpy(buf, msg.data(), msg.size());
    return ipc_client_commit(c, msg.size());
}

// Reply seq is read by recv() when seq % 3 == 0, in place otherwise.
// Returns "" when it is the echo of message seq, else what is wrong.
std::string ReceiveOne(ipc_client *c, size_t want, uint64_t seq, std::vector<uint8_t> &buf)
{
    if (seq % 3 == 0) {
        ssize_t n = ipc_client_recv(c, buf.data(), buf.size(), 10 * kSecond);
        if (n < 0)
            return "recv: " + std::string(ipc_strerror((int)n));
        if ((size_t)n != want || !MatchesPattern(buf.data(), want, seq))
            return "recv: wrong bytes";
        return "";
    }
    const void *msg;
    ssize_t n = ipc_client_peek(c, &msg, 10 * kSecond);
    if (n < 0)
        return "peek: " + std::string(ipc_strerror((int)n));
    bool ok = (size_t)n == want && MatchesPattern(msg, want, seq);
    if (ipc_client_release(c) != n)
        return "release failed";
    return ok ? "" : "peek: wrong bytes";
}

TEST_P(DuplexTest, OneThreadSendsWhileAnotherReceivesEveryMessageIntactAndInOrder)
{
    ServerProcess server([this] { return MakeServer(); });
    ASSERT_TRUE(server.ok());
    ipc_client *c = MakeClient();
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(ConnectWithRetry(c), 0);

    std::atomic<int> send_error{0};
    std::atomic<uint64_t> done{0}; // replies received and checked
    std::thread sender([&] {
        Sizes sizes(kMaxMessage);
        for (uint64_t seq = 0; seq < kMessages; seq++) {
            for (uint64_t d = done.load(); seq >= d + kWindow; d = done.load())
                done.wait(d);
            int rc = SendOne(c, Pattern(sizes.next(), seq), seq);
            if (rc < 0) {
                send_error = rc;
                return;
            }
        }
    });
    std::string failure;
    uint64_t received = 0;
    {
        Sizes sizes(kMaxMessage);
        std::vector<uint8_t> buf(kMaxMessage);
        for (; received < kMessages; received++) {
            failure = ReceiveOne(c, sizes.next(), received, buf);
            if (!failure.empty())
                break;
            done.store(received + 1);
            done.notify_one();
        }
        done.store(UINT64_MAX / 2); // a failed receive must not leave the sender waiting
        done.notify_one();
    }
    sender.join();
    EXPECT_EQ(send_error.load(), 0) << ipc_strerror(send_error.load());
    EXPECT_EQ(failure, "") << "at message " << received;
    EXPECT_EQ(received, kMessages);

    // Each direction's counters have one writer: exact, no lost update.
    ipc_stats st;
    ASSERT_EQ(ipc_client_stats(c, &st), 0);
    EXPECT_EQ(st.messages_out, kMessages);
    EXPECT_EQ(st.messages_in, kMessages);
    EXPECT_EQ(st.bytes_in, st.bytes_out);
    EXPECT_EQ(st.timeouts + st.resets + st.other_errors, 0u);
    ipc_client_destroy(c);
    EXPECT_EQ(server.Stop(), 0);
}

TEST_P(DuplexTest, ErrorsCountedFromBothThreadsAtOnceAreAllKept)
{
    // Every echo is too long for the receiver's buffer (-EMSGSIZE there);
    // on shared memory the sender also offers, after each request, one too
    // long for the ring (-EMSGSIZE on its side): both threads count the same
    // counter at once.
    ServerProcess server([this] { return MakeServer(); });
    ASSERT_TRUE(server.ok());
    ipc_client *c = MakeClient();
    ASSERT_EQ(ConnectWithRetry(c), 0);
    constexpr int kEach = 5000;
    std::atomic<int> send_error{0};
    std::thread sender([&] {
        std::vector<uint8_t> req(32, 7), too_long(kRing, 1);
        for (int i = 0; i < kEach; i++) {
            int rc = ipc_client_send(c, req.data(), req.size(), 10 * kSecond);
            if (rc == 0 && shm())
                rc = ipc_client_try_send(c, too_long.data(), too_long.size()) == -EMSGSIZE
                         ? 0
                         : -EPROTO;
            if (rc < 0) {
                send_error = rc;
                return;
            }
        }
    });
    char small[16];
    int oversize = 0;
    for (int i = 0; i < kEach; i++)
        oversize += ipc_client_recv(c, small, sizeof(small), 10 * kSecond) == -EMSGSIZE;
    sender.join();
    EXPECT_EQ(send_error.load(), 0) << ipc_strerror(send_error.load());
    EXPECT_EQ(oversize, kEach);
    ipc_stats st;
    ASSERT_EQ(ipc_client_stats(c, &st), 0);
    EXPECT_EQ(st.oversize, (uint64_t)(shm() ? 2 * kEach : kEach));
    EXPECT_EQ(st.messages_out, (uint64_t)kEach);
    EXPECT_EQ(st.messages_in, 0u);
    ipc_client_destroy(c);
    EXPECT_EQ(server.Stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(Transports, DuplexTest, ::testing::Values("socket", "shm"),
                         [](const auto &info) { return std::string(info.param); });

}  // namespace
