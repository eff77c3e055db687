// Fuzzes the socket frame reader (ipc/socket/frame.h): arbitrary bytes, fed
// whole and fed in fuzzer-chosen pieces, must give the same frames, every
// frame must lie inside the buffered bytes and respect max_payload, and no
// call may read or write outside the buffer (ASan checks that).
//
// Input: [u8 max selector][u8 nsplits][nsplits x u16 LE piece][stream...]
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "ipc/testing/fuzz_check.h"
#include "ipc/socket/frame.h"

namespace {

struct Frame {
    std::vector<uint8_t> payload;
};

struct Outcome {
    std::vector<Frame> frames;
    bool oversized = false;  // peek gave -EMSGSIZE (the stream ends there)
    size_t leftover = 0;     // bytes buffered but not a whole frame
};

size_t PickMax(uint8_t sel, const uint8_t *stream, size_t n)
{
    static const size_t kMax[] = {0, 1, 4, 24, 100, 4096, 65536, 1 << 20};
    if (sel < 8 * 16)
        return kMax[sel % 8];
    // Otherwise a length taken from the stream itself, so exact-limit frames
    // are found easily.
    return n >= 4 ? ipc__frame_get_len(stream) % (2u << 20) : sel;
}

// Takes every whole frame out of r, checking the invariants on the way.
// false once the stream announced a frame longer than max_payload.
bool Drain(ipc__frame_reader *r, Outcome *out)
{
    for (;;) {
        const uint8_t *payload = nullptr;
        uint32_t len = 0;
        size_t before = ipc__frame_reader_buffered(r);
        CHECK(before == r->end - r->start);
        CHECK(r->start <= r->end && r->end <= r->capacity);
        int rc = ipc__frame_reader_peek(r, &payload, &len);
        if (rc < 0) {
            CHECK(rc == -EMSGSIZE);
            CHECK(before >= IPC__FRAME_HEADER);
            CHECK(ipc__frame_get_len(r->buf + r->start) > r->max_payload);
            out->oversized = true;
            return false;
        }
        if (rc == 0) {
            size_t missing = ipc__frame_reader_missing(r);
            CHECK(missing > 0);
            if (before < IPC__FRAME_HEADER)
                CHECK(missing == IPC__FRAME_HEADER - before);
            else
                CHECK(before + missing ==
                      IPC__FRAME_HEADER + (size_t)ipc__frame_get_len(r->buf + r->start));
            out->leftover = before;
            return true;
        }
        CHECK(rc == 1);
        CHECK(len <= r->max_payload);
        CHECK(payload == r->buf + r->start + IPC__FRAME_HEADER);
        CHECK(payload + len <= r->buf + r->end);
        CHECK(ipc__frame_reader_missing(r) == 0);
        out->frames.push_back(Frame{std::vector<uint8_t>(payload, payload + len)});
        ipc__frame_reader_consume(r);
        CHECK(ipc__frame_reader_buffered(r) == before - IPC__FRAME_HEADER - len);
    }
}

// Copies data into r as a reader fed by read(2) would: ask for room (at
// least min_room), write at most that much.
void Feed(ipc__frame_reader *r, const uint8_t *data, size_t n, size_t min_room)
{
    while (n > 0) {
        uint8_t *dst = nullptr;
        size_t room = ipc__frame_reader_room(r, min_room ? min_room : 1, &dst);
        CHECK(room > 0);
        CHECK(room >= min_room);
        CHECK(dst == r->buf + r->end);
        CHECK(r->end + room <= r->capacity);
        size_t k = n < room ? n : room;
        memcpy(dst, data, k);
        ipc__frame_reader_commit(r, k);
        data += k;
        n -= k;
    }
}

Outcome Coalesced(const uint8_t *stream, size_t n, size_t max)
{
    Outcome out;
    ipc__frame_reader r;
    ipc__frame_reader_init(&r, max);
    Feed(&r, stream, n, n);
    Drain(&r, &out);
    ipc__frame_reader_free(&r);
    return out;
}

Outcome Split(const uint8_t *stream, size_t n, size_t max, const std::vector<size_t> &pieces)
{
    Outcome out;
    ipc__frame_reader r;
    ipc__frame_reader_init(&r, max);
    size_t off = 0;
    for (size_t i = 0; off < n; i++) {
        size_t piece = pieces.empty() ? n : pieces[i % pieces.size()];
        if (piece == 0)
            piece = 1;
        if (piece > n - off)
            piece = n - off;
        // Alternate between the server's habits: room for exactly what
        // is missing of the frame (may be large), and a small fixed chunk.
        size_t min_room = (i & 1) ? piece : ipc__frame_reader_missing(&r);
        if (min_room > (4u << 20))
            min_room = piece;
        Feed(&r, stream + off, piece, min_room);
        off += piece;
        if (!Drain(&r, &out))
            break;
    }
    ipc__frame_reader_free(&r);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t sel = data[0];
    size_t nsplits = data[1] % 16;
    size_t off = 2;
    std::vector<size_t> pieces;
    for (size_t i = 0; i < nsplits && off + 2 <= size; i++, off += 2)
        pieces.push_back((size_t)data[off] | (size_t)data[off + 1] << 8);
    const uint8_t *stream = data + off;
    size_t n = size - off;
    size_t max = PickMax(sel, stream, n);

    Outcome whole = Coalesced(stream, n, max);
    Outcome split = Split(stream, n, max, pieces);
    CHECK(whole.frames.size() == split.frames.size());
    for (size_t i = 0; i < whole.frames.size(); i++)
        CHECK(whole.frames[i].payload == split.frames[i].payload);
    CHECK(whole.oversized == split.oversized);
    if (!whole.oversized)
        CHECK(whole.leftover == split.leftover);
    // Every byte is accounted for: frames + leftover, or stopped at an
    // oversized header.
    size_t used = 0;
    for (const Frame &f : whole.frames)
        used += IPC__FRAME_HEADER + f.payload.size();
    if (!whole.oversized)
        CHECK(used + whole.leftover == n);
    else
        CHECK(used + IPC__FRAME_HEADER <= n);
    return 0;
}
