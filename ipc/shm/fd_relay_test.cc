// Tests for the doorbell-to-eventfd relay: the eventfd turns readable once
// the doorbell moves past the armed value, and not before.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <thread>

#include "ipc/shm/fd_relay.h"
#include "ipc/shm/wait.h"

namespace {

constexpr int kLongMs = 5000;
constexpr int kShortMs = 20;

// true when fd turns readable within timeout_ms.
bool ReadableWithin(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

class FdRelayTest : public ::testing::Test {
  protected:
    void SetUp() override
    {
        ipc__waitpoint_init(&bell_);
        ASSERT_EQ(ipc__relay_start(&relay_, &bell_), 0);
        ASSERT_GE(relay_.efd, 0);
    }
    void TearDown() override { ipc__relay_stop(&relay_); }

    ipc__waitpoint bell_;
    ipc__fd_relay relay_;
};

TEST_F(FdRelayTest, StartsNotReadable)
{
    EXPECT_FALSE(ReadableWithin(relay_.efd, kShortMs));
}

TEST_F(FdRelayTest, SignalNowMakesReadableAndDrainEmpties)
{
    ipc__relay_signal_now(&relay_);
    EXPECT_TRUE(ReadableWithin(relay_.efd, 0));
    ipc__relay_drain(&relay_);
    EXPECT_FALSE(ReadableWithin(relay_.efd, 0));
}

TEST_F(FdRelayTest, ArmedRelayFiresOnTheNextNotify)
{
    uint32_t seen = ipc__relay_seq(&relay_);
    ipc__relay_arm(&relay_, seen);
    std::thread notifier([this] { ipc__wait_notify(&bell_); });
    EXPECT_TRUE(ReadableWithin(relay_.efd, kLongMs));
    notifier.join();
}

TEST_F(FdRelayTest, NotifyBetweenLookAndArmIsNotLost)
{
    // The owner read seq before its last look; a notify then came before
    // it armed: the relay must fire at once.
    uint32_t seen = ipc__relay_seq(&relay_);
    ipc__wait_notify(&bell_);
    ipc__relay_arm(&relay_, seen);
    EXPECT_TRUE(ReadableWithin(relay_.efd, kLongMs));
}

TEST_F(FdRelayTest, ArmedRelayWithoutNotifyFiresOnlyAtTheTick)
{
    ipc__relay_arm(&relay_, ipc__relay_seq(&relay_));
    EXPECT_FALSE(ReadableWithin(relay_.efd, kShortMs));
    // The tick bounds how long a scribbled doorbell can delay the owner.
    EXPECT_TRUE(ReadableWithin(relay_.efd, (int)(IPC_RELAY_TICK_NS / 1000000) + kLongMs));
}

TEST(FdRelay, StopOnARelayNeverStartedIsSafe)
{
    ipc__fd_relay r = {};
    ipc__relay_stop(&r);
    EXPECT_FALSE(r.running);
}

TEST(FdRelay, StopClosesTheEventfd)
{
    ipc__waitpoint bell;
    ipc__waitpoint_init(&bell);
    ipc__fd_relay r;
    ASSERT_EQ(ipc__relay_start(&r, &bell), 0);
    int efd = r.efd;
    ipc__relay_stop(&r);
    EXPECT_EQ(r.efd, -1);
    EXPECT_EQ(fcntl(efd, F_GETFD), -1);
    EXPECT_EQ(errno, EBADF);
}

}  // namespace
