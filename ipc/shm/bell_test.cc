// The server's doorbell (bell.h): clients in forked processes can wake the
// server but cannot write its page, and none can silence another.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "ipc/testing/testing.h"
// Last: <stdatomic.h> macros clash with <atomic> when included first.
#include "ipc/shm/bell.h"
#include "ipc/shm/wait.h"

namespace {

using ipc_testing::Fork;
using ipc_testing::WaitChild;

constexpr uint64_t kMs = 1000000ull;

// A flag in memory shared with forked children: the "ring" they publish.
struct Shared {
    _Atomic uint32_t published;
    _Atomic uint32_t go;
};

// A doorbell of protocol version 1 and a flag shared with forked children.
class ShmBellTest : public ::testing::Test {
  protected:
    void SetUp() override
    {
        ASSERT_EQ(ipc__bell_open(&b, 1), 0);
        sh = static_cast<Shared *>(ipc_testing::SharedAlloc(sizeof(Shared)));
    }
    void TearDown() override
    {
        ipc__bell_close(&b);
        munmap(sh, sizeof(Shared));
    }
    ipc__bell b;
    Shared *sh = nullptr;
};

bool Published(void *arg)
{
    return atomic_load(&static_cast<Shared *>(arg)->published) != 0;
}

TEST(ShmBell, AClientCanMapThePageOnlyForReading)
{
    ipc__bell b;
    ASSERT_EQ(ipc__bell_open(&b, 7), 0);
    pid_t kid = Fork([&] {
        const ipc__bell_page *page = nullptr;
        if (ipc__bell_map(b.page_fd, 7, &page) != 0)
            return 10;
        if (mmap(nullptr, IPC__BELL_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, b.page_fd, 0) !=
                MAP_FAILED ||
            errno != EPERM)
            return 11;
        if (mprotect((void *)page, IPC__BELL_PAGE_SIZE, PROT_READ | PROT_WRITE) == 0 ||
            errno != EACCES)
            return 12;
        uint64_t junk = 0;
        if (pwrite(b.page_fd, &junk, sizeof(junk), 0) >= 0 || errno != EPERM)
            return 13;
        if (ftruncate(b.page_fd, 0) == 0 || errno != EPERM)
            return 14;
        int rw = open(("/proc/self/fd/" + std::to_string(b.page_fd)).c_str(), O_RDWR);
        if (rw >= 0 && mmap(nullptr, 4096, PROT_WRITE, MAP_SHARED, rw, 0) != MAP_FAILED)
            return 15; // reopening does not lift the seal
        const ipc__bell_page *other = nullptr;
        if (ipc__bell_map(b.page_fd, 8, &other) != -EPROTO)
            return 16; // another protocol version
        return 0;
    });
    EXPECT_EQ(WaitChild(kid), 0);
    EXPECT_EQ(b.page->magic, IPC__BELL_MAGIC);
    ipc__bell_close(&b);
}

TEST(ShmBell, AnUnsealedPageOrAnotherSizeIsRefused)
{
    const ipc__bell_page *page = nullptr;
    for (off_t size : {(off_t)IPC__BELL_PAGE_SIZE, (off_t)2 * IPC__BELL_PAGE_SIZE}) {
        int fd = memfd_create("fake-bell", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(ftruncate(fd, size), 0);
        EXPECT_EQ(ipc__bell_map(fd, 1, &page), -EPROTO) << "unsealed: anyone could write it";
        ASSERT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE), 0);
        if (size != IPC__BELL_PAGE_SIZE)
            EXPECT_EQ(ipc__bell_map(fd, 1, &page), -EPROTO) << "size " << size;
        close(fd);
    }
}

TEST(ShmBell, APageOfAnotherMagicIsRefused)
{
    ipc__bell b;
    ASSERT_EQ(ipc__bell_open(&b, 1), 0);
    b.page->magic ^= 1;
    const ipc__bell_page *page = nullptr;
    EXPECT_EQ(ipc__bell_map(b.page_fd, 1, &page), -EPROTO);
    EXPECT_EQ(page, nullptr);
    ipc__bell_close(&b);
}

TEST_F(ShmBellTest, ARingFromAnotherProcessWakesTheSleepingServer)
{
    int efd = -1;
    ASSERT_EQ(ipc__bell_add(&b, &efd), 0);
    pid_t kid = Fork([&] {
        const ipc__bell_page *page = nullptr;
        if (ipc__bell_map(b.page_fd, 1, &page) != 0)
            return 10;
        for (int i = 0; i < 200; i++) {
            while (atomic_load(&sh->go) != (uint32_t)i + 1)
                ;
            usleep(200); // the server is asleep by now, mostly
            atomic_store(&sh->published, 1u);
            ipc__bell_ring(page, efd);
        }
        return 0;
    });
    for (int i = 0; i < 200; i++) {
        atomic_store(&sh->published, 0u);
        atomic_store(&sh->go, (uint32_t)i + 1);
        ASSERT_EQ(ipc__bell_wait(&b, Published, sh, 0, ipc__now_ns() + 5000 * kMs), 0) << i;
    }
    EXPECT_EQ(WaitChild(kid), 0);
    EXPECT_EQ(atomic_load(&b.page->asleep), 0u) << "cleared after each sleep";
    ipc__bell_remove(&b, efd);
}

// A client that drains its own eventfd as fast as it can, hoping to eat
// wake-ups: another client's ring still wakes the server.
TEST_F(ShmBellTest, AClientDrainingItsEventfdCannotSilenceAnother)
{
    int bad_fd = -1, good_fd = -1;
    ASSERT_EQ(ipc__bell_add(&b, &bad_fd), 0);
    ASSERT_EQ(ipc__bell_add(&b, &good_fd), 0);
    pid_t bad = Fork([&] {
        uint64_t n = 0;
        for (uint64_t t0 = ipc__now_ns(); ipc__now_ns() - t0 < 1000 * kMs;)
            (void)!read(bad_fd, &n, sizeof(n));
        return 0;
    });
    pid_t good = Fork([&] {
        const ipc__bell_page *page = nullptr;
        if (ipc__bell_map(b.page_fd, 1, &page) != 0)
            return 10;
        usleep(300 * 1000);
        atomic_store(&sh->published, 1u);
        ipc__bell_ring(page, good_fd);
        return 0;
    });
    uint64_t t0 = ipc__now_ns();
    EXPECT_EQ(ipc__bell_wait(&b, Published, sh, 0, t0 + 5000 * kMs), 0);
    EXPECT_EQ(WaitChild(good), 0);
    EXPECT_EQ(WaitChild(bad), 0);
    ipc__bell_remove(&b, bad_fd);
    ipc__bell_remove(&b, good_fd);
}

// The client shares the open file description of its eventfd with the
// server, so the server never reads it: a client that turned it blocking
// and drained it between the server's epoll_wait and read(2) would hold
// the server in read(2) for good. Here a ring is reported, nothing is read
// (the client finds its count untouched), a ring taken back is harmless,
// and each wait ends at its deadline (a wait still stuck after 5 s is the
// failure).
TEST_F(ShmBellTest, TheServerNeverReadsAClientsEventfdWhateverItsFlags)
{
    int efd = -1;
    ASSERT_EQ(ipc__bell_add(&b, &efd), 0);
    int fl = fcntl(efd, F_GETFL);
    ASSERT_EQ(fcntl(efd, F_SETFL, fl & ~O_NONBLOCK), 0) << "the client's flag is the server's";
    for (bool taken_back : {false, true}) {
        uint64_t v = 1;
        ASSERT_EQ(write(efd, &v, sizeof(v)), (ssize_t)sizeof(v)); // a ring
        if (taken_back)
            ASSERT_EQ(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
        std::atomic<int> rc{1};
        std::thread server([&] {
            rc = ipc__bell_wait(&b, Published, sh, 0, ipc__now_ns() + 50 * kMs);
        });
        for (int i = 0; i < 500 && rc == 1; i++)
            usleep(10 * 1000);
        if (rc == 1) {
            v = 1; // free the server from read(2) so the test can end
            ASSERT_EQ(write(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
            server.join();
            FAIL() << "the server blocked reading the client's eventfd";
        }
        server.join();
        EXPECT_EQ(rc, -ETIMEDOUT);
        if (!taken_back) {
            ASSERT_EQ(fcntl(efd, F_SETFL, fl), 0);
            EXPECT_EQ(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v)) << "the server read it";
            EXPECT_EQ(v, 1u);
            ASSERT_EQ(fcntl(efd, F_SETFL, fl & ~O_NONBLOCK), 0);
        }
    }
    ipc__bell_remove(&b, efd);
}

// A client that saturates its counter can no longer ring (its writes are
// refused): it loses its own wake-ups, and another client's ring still
// wakes the server.
TEST_F(ShmBellTest, AClientWithASaturatedCounterSilencesOnlyItself)
{
    int bad_fd = -1, good_fd = -1;
    ASSERT_EQ(ipc__bell_add(&b, &bad_fd), 0);
    ASSERT_EQ(ipc__bell_add(&b, &good_fd), 0);
    uint64_t most = 0xfffffffffffffffeull;
    ASSERT_EQ(write(bad_fd, &most, sizeof(most)), (ssize_t)sizeof(most));
    ipc__bell_drain(&b); // its edge is taken; the counter stays full
    uint64_t one = 1;
    EXPECT_EQ(write(bad_fd, &one, sizeof(one)), -1);
    EXPECT_EQ(errno, EAGAIN);
    pid_t good = Fork([&] {
        const ipc__bell_page *page = nullptr;
        if (ipc__bell_map(b.page_fd, 1, &page) != 0)
            return 10;
        usleep(100 * 1000);
        atomic_store(&sh->published, 1u);
        ipc__bell_ring(page, good_fd);
        return 0;
    });
    EXPECT_EQ(ipc__bell_wait(&b, Published, sh, 0, ipc__now_ns() + 5000 * kMs), 0);
    EXPECT_EQ(WaitChild(good), 0);
    ipc__bell_remove(&b, bad_fd);
    ipc__bell_remove(&b, good_fd);
}

TEST_F(ShmBellTest, AWaitWithNothingToDoTimesOutNeverEarly)
{
    uint64_t t0 = ipc__now_ns();
    EXPECT_EQ(ipc__bell_wait(&b, Published, sh, 1000, t0 + 20 * kMs), -ETIMEDOUT);
    EXPECT_GE(ipc__now_ns() - t0, 20 * kMs);
}

TEST_F(ShmBellTest, RingSelfWakesTheServerFromAnotherThread)
{
    std::thread t([&] {
        usleep(50 * 1000);
        atomic_store(&sh->published, 1u);
        ipc__bell_ring_self(&b);
    });
    EXPECT_EQ(ipc__bell_wait(&b, Published, sh, 0, IPC__WAIT_FOREVER), 0);
    t.join();
}

// Event loops: once held, every ring makes the epoll fd readable until
// drained.
TEST(ShmBell, AHeldBellMakesItsFdReadableOnEveryRing)
{
    ipc__bell b;
    ASSERT_EQ(ipc__bell_open(&b, 1), 0);
    int efd = -1;
    ASSERT_EQ(ipc__bell_add(&b, &efd), 0);
    int ep = ipc__bell_hold(&b);
    ASSERT_GE(ep, 0);
    struct pollfd p = {.fd = ep, .events = POLLIN, .revents = 0};
    EXPECT_EQ(poll(&p, 1, 0), 0);
    pid_t kid = Fork([&] {
        const ipc__bell_page *page = nullptr;
        if (ipc__bell_map(b.page_fd, 1, &page) != 0)
            return 10;
        ipc__bell_ring(page, efd);
        return 0;
    });
    EXPECT_EQ(WaitChild(kid), 0);
    EXPECT_EQ(poll(&p, 1, 5000), 1);
    ipc__bell_drain(&b);
    EXPECT_EQ(poll(&p, 1, 0), 0);
    ipc__bell_ring_self(&b);
    EXPECT_EQ(poll(&p, 1, 5000), 1);
    ipc__bell_close(&b);
}

}  // namespace
