// Zero-copy: loans and in-place reads on both transports, and the run
// loop's replies written straight into the transport.
#include <errno.h>
#include <string.h>

#include <atomic>
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

namespace {

constexpr uint64_t kSecond = 1000ull * 1000 * 1000;

// Replies with the request reversed, written in place through reserve().
ipc_action Reverse(void *, int, const void *req, size_t len, ipc_response *r)
{
    uint8_t *out = static_cast<uint8_t *>(ipc_response_reserve(r, len));
    const uint8_t *in = static_cast<const uint8_t *>(req);
    for (size_t i = 0; i < len; i++)
        out[i] = in[len - 1 - i];
    return IPC_CONTINUE;
}

class ZeroCopyTest : public ipc_testing::TransportTest {
  protected:
    ZeroCopyTest() : TransportTest("zc") {}
    ipc_server *MakeServer() const { return CreateServer(2); }
    ipc_client *MakeClient() const { return CreateClient(2); }
};

TEST_P(ZeroCopyTest, ClientLoansAndPeeksAgainstARunLoopThatReservesInPlace)
{
    ipc_testing::ServerProcess server([this]() { return MakeServer(); }, Reverse);
    ASSERT_TRUE(server.ok());
    ipc_client *c = MakeClient();
    ASSERT_EQ(ConnectWithRetry(c), 0);
    // The largest loan is the server's default limit (1 MiB): a shared-memory
    // client refuses a longer one with -EMSGSIZE, as it refuses the send.
    for (size_t len : {0ul, 1ul, 4096ul, 65536ul, (1ul << 20) - 10}) {
        void *buf;
        ASSERT_EQ(ipc_client_loan(c, len + 10, &buf, kSecond), 0);
        std::vector<uint8_t> m = Pattern(len, len);
        if (len)
            memcpy(buf, m.data(), len);
        ASSERT_EQ(ipc_client_commit(c, len), 0); // shorter than the loan
        const void *reply;
        ASSERT_EQ(ipc_client_peek(c, &reply, 5 * kSecond), (ssize_t)len);
        const void *again;
        ASSERT_EQ(ipc_client_peek(c, &again, kSecond), (ssize_t)len);
        EXPECT_EQ(again, reply) << "a peeked message stays until released";
        const uint8_t *r = static_cast<const uint8_t *>(reply);
        bool ok = true;
        for (size_t i = 0; i < len && ok; i++)
            ok = r[i] == m[len - 1 - i];
        EXPECT_TRUE(ok) << len;
        EXPECT_EQ(ipc_client_release(c), (ssize_t)len);
    }
    EXPECT_EQ(ipc_client_commit(c, 0), -EINVAL) << "no loan outstanding";
    void *buf;
    ASSERT_EQ(ipc_client_loan(c, 8, &buf, kSecond), 0);
    EXPECT_EQ(ipc_client_commit(c, 9), -EINVAL);
    ipc_stats st;
    ipc_client_stats(c, &st);
    EXPECT_EQ(st.messages_out, 5u);
    EXPECT_EQ(st.messages_in, 5u);
    ipc_client_destroy(c);
}

TEST_P(ZeroCopyTest, ServerPeeksReleasesLoansAndCommitsByHand)
{
    ipc_server *s = MakeServer();
    ASSERT_EQ(ipc_server_listen(s), 0);
    ipc_client *c = MakeClient();
    std::atomic<int> rc{-1};
    std::thread t([&]() { rc = ConnectWithRetry(c); });
    // A shared-memory connect is answered from wait_for_data.
    int id = -ETIMEDOUT;
    for (int i = 0; i < 200 && rc != 0; i++)
        (void)ipc_server_wait_for_data(s, 10 * 1000 * 1000);
    t.join();
    ASSERT_EQ(rc, 0);
    std::vector<uint8_t> m = Pattern(5000, 9);
    ASSERT_EQ(ipc_client_send(c, m.data(), m.size(), kSecond), 0);
    id = ipc_server_wait_for_data(s, 5 * kSecond);
    ASSERT_GE(id, 0);
    const void *req;
    ASSERT_EQ(ipc_server_peek(s, id, &req), 5000);
    EXPECT_TRUE(MatchesPattern(req, 5000, 9));
    void *out;
    ASSERT_EQ(ipc_server_loan(s, id, 5000, &out), 0);
    memcpy(out, req, 5000);
    EXPECT_EQ(ipc_server_commit(s, id + 1, 5000), -EINVAL) << "loaned to another client";
    ASSERT_EQ(ipc_server_commit(s, id, 5000), 0);
    EXPECT_EQ(ipc_server_release(s, id), 5000);
    EXPECT_EQ(ipc_server_release(s, id), -EINVAL) << "nothing left to release";
    const void *none;
    EXPECT_EQ(ipc_server_peek(s, id, &none), -EAGAIN);
    std::vector<uint8_t> got(5000);
    ASSERT_EQ(ipc_client_recv(c, got.data(), got.size(), 5 * kSecond), 5000);
    EXPECT_EQ(got, m);
    ipc_client_destroy(c);
    ipc_server_destroy(s);
}

INSTANTIATE_TEST_SUITE_P(Transports, ZeroCopyTest, ::testing::Values("socket", "shm"));

}  // namespace
