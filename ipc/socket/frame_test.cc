#include "ipc/socket/frame.h"

#include <errno.h>

#include <vector>

#include <gtest/gtest.h>

namespace {

void Feed(ipc__frame_reader *r, const std::vector<uint8_t> &bytes)
{
    uint8_t *dst;
    ASSERT_GE(ipc__frame_reader_room(r, bytes.size(), &dst), bytes.size());
    std::copy(bytes.begin(), bytes.end(), dst);
    ipc__frame_reader_commit(r, bytes.size());
}

TEST(Frame, LengthIsLittleEndianWhateverTheHost)
{
    uint8_t b[4];
    ipc__frame_put_len(b, 0x11223344u);
    EXPECT_EQ(b[0], 0x44);
    EXPECT_EQ(b[3], 0x11);
    EXPECT_EQ(ipc__frame_get_len(b), 0x11223344u);
}

TEST(Frame, ReaderYieldsWholeFramesFromSplitAndCoalescedBytes)
{
    ipc__frame_reader r;
    ipc__frame_reader_init(&r, 100);
    std::vector<uint8_t> stream = {3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0, 1, 0, 0, 0, 'z'};
    const uint8_t *p;
    uint32_t len;
    for (size_t i = 0; i < 6; i++) {
        Feed(&r, {stream[i]});
        EXPECT_EQ(ipc__frame_reader_peek(&r, &p, &len), 0);
    }
    EXPECT_EQ(ipc__frame_reader_missing(&r), 1u);
    Feed(&r, std::vector<uint8_t>(stream.begin() + 6, stream.end()));
    ASSERT_EQ(ipc__frame_reader_peek(&r, &p, &len), 1);
    EXPECT_EQ(std::string((const char *)p, len), "abc");
    ipc__frame_reader_consume(&r);
    ASSERT_EQ(ipc__frame_reader_peek(&r, &p, &len), 1);
    EXPECT_EQ(len, 0u);
    ipc__frame_reader_consume(&r);
    ASSERT_EQ(ipc__frame_reader_peek(&r, &p, &len), 1);
    EXPECT_EQ(*p, 'z');
    ipc__frame_reader_consume(&r);
    EXPECT_EQ(ipc__frame_reader_peek(&r, &p, &len), 0);
    EXPECT_EQ(ipc__frame_reader_buffered(&r), 0u);
    ipc__frame_reader_free(&r);
}

TEST(Frame, ReaderRejectsALengthAboveTheLimit)
{
    ipc__frame_reader r;
    ipc__frame_reader_init(&r, 100);
    Feed(&r, {101, 0, 0, 0});
    const uint8_t *p;
    uint32_t len;
    EXPECT_EQ(ipc__frame_reader_peek(&r, &p, &len), -EMSGSIZE);
    ipc__frame_reader_free(&r);
    ipc__frame_reader_init(&r, UINT32_MAX - 1);
    Feed(&r, {0xFF, 0xFF, 0xFF, 0xFF});
    EXPECT_EQ(ipc__frame_reader_peek(&r, &p, &len), -EMSGSIZE);
    ipc__frame_reader_free(&r);
}

TEST(Frame, ReaderGrowsForALargeFrameAndGivesTheMemoryBack)
{
    ipc__frame_reader r;
    ipc__frame_reader_init(&r, 1 << 20);
    std::vector<uint8_t> f = {0, 0, 8, 0};
    f.resize(4 + (8 << 16), 7);
    Feed(&r, f);
    const uint8_t *p;
    uint32_t len;
    ASSERT_EQ(ipc__frame_reader_peek(&r, &p, &len), 1);
    EXPECT_EQ(len, 8u << 16);
    ipc__frame_reader_consume(&r);
    uint8_t *dst;
    ipc__frame_reader_room(&r, 16, &dst);
    EXPECT_LE(r.capacity, 64u << 10);
    ipc__frame_reader_free(&r);
}

}  // namespace
