// Tests for both halves of the segment ABI on real memfds: the
// server's ipc__shm_segment_create() and the client's checks in
// ipc__shm_segment_map(), without a socket in between.
#include <errno.h>
#include <gtest/gtest.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "ipc/shm/shm_segment.h"
#include "ipc/unix/unix.h"

namespace {

constexpr uint64_t kRing = 4096;
constexpr uint32_t kId = 0;
constexpr uint32_t kMaxClients = 2;
constexpr uint64_t kMaxRequest = 1000;

// A segment as the server makes it, whose header a test may then edit.
class ServerSegment {
  public:
    explicit ServerSegment(uint64_t max_request = kMaxRequest)
    {
        rc_ = ipc__shm_segment_create(&seg_, kRing, kId, kMaxClients, max_request, 0, &fd_);
    }
    ~ServerSegment()
    {
        ipc__shm_segment_unmap(&seg_);
        if (fd_ >= 0)
            close(fd_);
    }
    int rc() const { return rc_; }
    int fd() const { return fd_; }
    ipc__shm_seg_header *header() { return seg_.hdr; }
    ipc__shm_segment *segment() { return &seg_; }

  private:
    ipc__shm_segment seg_ = {};
    int fd_ = -1;
    int rc_ = 0;
};

// What the client makes of the server's segment after edit(header).
int MapAfter(const std::function<void(ipc__shm_seg_header *)> &edit,
             uint32_t max_clients = kMaxClients)
{
    ServerSegment server;
    EXPECT_EQ(server.rc(), 0);
    edit(server.header());
    ipc__shm_segment client = {};
    int rc = ipc__shm_segment_map(&client, server.fd(), kId, max_clients, nullptr);
    EXPECT_EQ(client.base == nullptr, rc != 0) << "mapped exactly when it succeeds";
    ipc__shm_segment_unmap(&client);
    return rc;
}

TEST(ShmSegment, ClientMapsWhatTheServerCreated)
{
    EXPECT_EQ(MapAfter([](ipc__shm_seg_header *) {}), 0);
}

TEST(ShmSegment, ServerFormatsEveryHeaderField)
{
    ServerSegment server;
    ASSERT_EQ(server.rc(), 0);
    const ipc__shm_seg_header *h = server.header();
    EXPECT_EQ(h->magic, IPC_SHM_SEG_MAGIC);
    EXPECT_EQ(h->version, IPC_SHM_VERSION);
    EXPECT_EQ(h->header_size, IPC_SHM_HEADER_SIZE);
    EXPECT_EQ(h->ring_size, kRing);
    EXPECT_EQ(h->segment_size, ipc__shm_segment_size(kRing));
    EXPECT_EQ(h->req_offset, ipc__shm_req_offset());
    EXPECT_EQ(h->resp_offset, ipc__shm_resp_offset(kRing));
    EXPECT_EQ(h->max_clients, kMaxClients);
    EXPECT_EQ(h->client_id, kId);
    EXPECT_EQ(h->creator_pid, (uint32_t)getpid());
    EXPECT_EQ(h->creator_uid, (uint32_t)geteuid());
    EXPECT_EQ(h->max_request, kMaxRequest);
    EXPECT_EQ(server.segment()->size, ipc__shm_segment_size(kRing));
}

TEST(ShmSegment, ClientLearnsTheServersRequestLimitCappedAtTheRings)
{
    ServerSegment server;
    ASSERT_EQ(server.rc(), 0);
    ipc__shm_segment client = {};
    ASSERT_EQ(ipc__shm_segment_map(&client, server.fd(), kId, kMaxClients, nullptr), 0);
    EXPECT_EQ(client.max_request, kMaxRequest);
    ipc__shm_segment_unmap(&client);

    ServerSegment big(1u << 30); // more than a 4 KiB ring carries
    ASSERT_EQ(big.rc(), 0);
    EXPECT_EQ(big.header()->max_request, ipc__spsc_max_payload(kRing));
    ASSERT_EQ(ipc__shm_segment_map(&client, big.fd(), kId, kMaxClients, nullptr), 0);
    EXPECT_EQ(client.max_request, ipc__spsc_max_payload(kRing));
    ipc__shm_segment_unmap(&client);
}

TEST(ShmSegment, ClientRejectsACorruptHeaderWithEproto)
{
    struct Case {
        const char *what;
        std::function<void(ipc__shm_seg_header *)> edit;
    };
    const Case cases[] = {
        {"another version", [](ipc__shm_seg_header *h) { h->version = 99; }},
        {"another magic", [](ipc__shm_seg_header *h) { h->magic ^= 1; }},
        {"ring size not matching the file", [](ipc__shm_seg_header *h) { h->ring_size = 8192; }},
        {"ring size not a power of two", [](ipc__shm_seg_header *h) { h->ring_size = 5000; }},
        {"response ring inside the header", [](ipc__shm_seg_header *h) { h->resp_offset = 64; }},
        {"another client's slot", [](ipc__shm_seg_header *h) { h->client_id = 7; }},
        {"not ready", [](ipc__shm_seg_header *h) { h->ready = 0; }},
        {"a request limit the ring cannot carry",
         [](ipc__shm_seg_header *h) { h->max_request = (uint32_t)ipc__spsc_max_payload(kRing) + 1; }},
    };
    for (const Case &c : cases)
        EXPECT_EQ(MapAfter(c.edit), -EPROTO) << c.what;
}

TEST(ShmSegment, ClientWithAnotherMaxClientsGetsEinval)
{
    EXPECT_EQ(MapAfter([](ipc__shm_seg_header *) {}, kMaxClients + 1), -EINVAL);
}

TEST(ShmSegment, ClientAskingZeroTakesTheServersCapacityAndEitherWayLearnsIt)
{
    ServerSegment server;
    ASSERT_EQ(server.rc(), 0);
    for (uint32_t asked : {0u, (uint32_t)kMaxClients, (uint32_t)kMaxClients + 1}) {
        ipc__shm_segment client = {};
        uint32_t served = 12345;
        int rc = ipc__shm_segment_map(&client, server.fd(), kId, asked, &served);
        EXPECT_EQ(rc, asked == kMaxClients + 1 ? -EINVAL : 0) << asked;
        EXPECT_EQ(served, (uint32_t)kMaxClients) << asked;
        ipc__shm_segment_unmap(&client);
    }
    ipc__shm_segment client = {};
    uint32_t served = 12345;
    server.header()->magic ^= 1; /* not a valid header: nothing to learn */
    EXPECT_EQ(ipc__shm_segment_map(&client, server.fd(), kId, 0, &served), -EPROTO);
    EXPECT_EQ(served, 0u);
}

TEST(ShmSegment, ClientRejectsAFileOfAnotherSizeThanTheHeaderSays)
{
    ServerSegment server;
    ASSERT_EQ(server.rc(), 0);
    size_t size = ipc__shm_segment_size(kRing) - 4096;
    int fd;
    void *p;
    ASSERT_EQ(ipc__memfd_create_sealed("short", size, &fd, &p), 0);
    memcpy(p, server.header(), sizeof(ipc__shm_seg_header));
    munmap(p, size);
    ipc__shm_segment client = {};
    EXPECT_EQ(ipc__shm_segment_map(&client, fd, kId, kMaxClients, nullptr), -EPROTO);
    close(fd);
}

TEST(ShmSegment, ClientRejectsAnUnsealedFile)
{
    int fd = memfd_create("unsealed", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, (off_t)ipc__shm_segment_size(kRing)), 0);
    ipc__shm_segment client = {};
    EXPECT_EQ(ipc__shm_segment_map(&client, fd, kId, kMaxClients, nullptr), -EPROTO);
    close(fd);
}

TEST(ShmSegment, BothSidesSeeOneRingPairWithRolesSwapped)
{
    ServerSegment server;
    ASSERT_EQ(server.rc(), 0);
    ipc__shm_segment client = {};
    ASSERT_EQ(ipc__shm_segment_map(&client, server.fd(), kId, kMaxClients, nullptr), 0);
    ASSERT_EQ(ipc__spsc_push(&client.req, "ping", 4), 1);
    const void *p;
    uint32_t n;
    ASSERT_EQ(ipc__spsc_peek(&server.segment()->req, &p, &n), 1);
    EXPECT_EQ(std::string(static_cast<const char *>(p), n), "ping");
    ASSERT_EQ(ipc__spsc_push(&server.segment()->resp, "pong", 4), 1);
    ASSERT_EQ(ipc__spsc_peek(&client.resp, &p, &n), 1);
    EXPECT_EQ(std::string(static_cast<const char *>(p), n), "pong");
    ipc__shm_segment_unmap(&client);
}

}  // namespace
