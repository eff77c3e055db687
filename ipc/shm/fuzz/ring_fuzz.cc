// Fuzzes the SPSC ring (ipc/shm/spsc_ring.h) against a hostile peer: a
// well-behaved producer and consumer share one ring while the input also
// scribbles over the shared indices and the data area. Every call must
// return a valid frame / claim inside the data area or an error (-EPROTO
// sticky once seen); nothing may be read or written outside the ring (ASan),
// nothing may loop forever (libFuzzer's -timeout). While no scribbling has
// happened the ring must behave exactly like a FIFO of the frames pushed.
//
// Input: [u8 capacity selector] then ops: [u8 opcode][operands...]
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <deque>
#include <vector>

#include "ipc/testing/fuzz_check.h"
#include "ipc/shm/spsc_ring.h"

namespace {

class Input {
  public:
    Input(const uint8_t *p, size_t n) : p_(p), n_(n) {}
    bool empty() const { return n_ == 0; }
    uint8_t u8()
    {
        if (n_ == 0)
            return 0;
        n_--;
        return *p_++;
    }
    uint16_t u16() { return (uint16_t)(u8() | u8() << 8); }
    uint64_t u64()
    {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v |= (uint64_t)u8() << (8 * i);
        return v;
    }

  private:
    const uint8_t *p_;
    size_t n_;
};

uint8_t PatternByte(uint64_t frame, size_t i)
{
    return (uint8_t)(frame * 131 + i * 7 + 3);
}

struct Harness {
    size_t capacity;
    ipc__spsc_shared *shared;
    uint8_t *data;
    ipc__spsc_ring prod, cons;
    bool hostile = false;          // scribbled: the FIFO model no longer holds
    std::deque<std::vector<uint8_t>> model;
    uint64_t next_frame = 0;
    bool claimed = false;
    size_t claimed_len = 0;
    void *claim_ptr = nullptr;
    bool peeked = false;

    explicit Harness(size_t cap) : capacity(cap)
    {
        shared = static_cast<ipc__spsc_shared *>(aligned_alloc(128, sizeof(ipc__spsc_shared)));
        data = static_cast<uint8_t *>(malloc(cap)); /* exact size: ASan sees overruns */
        memset(data, 0, cap);
        ipc__spsc_format(shared, cap);
        CHECK(ipc__spsc_attach(&prod, shared, data, cap, IPC__SPSC_PRODUCER) == 0);
        CHECK(ipc__spsc_attach(&cons, shared, data, cap, IPC__SPSC_CONSUMER) == 0);
    }
    ~Harness()
    {
        free(data);
        free(shared);
    }

    bool InData(const void *p, size_t len) const
    {
        const uint8_t *b = static_cast<const uint8_t *>(p);
        return b >= data && b <= data + capacity && len <= (size_t)(data + capacity - b);
    }

    size_t Len(Input &in) const
    {
        size_t max = ipc__spsc_max_payload(capacity);
        uint16_t v = in.u16();
        // Mostly legal sizes, sometimes exactly the limit or just past it.
        if (v >= 0xFFF0)
            return max + (v & 3);
        return v % (max + 1);
    }

    void Claim(Input &in)
    {
        if (claimed)
            return;
        size_t len = Len(in);
        void *p = nullptr;
        int rc = ipc__spsc_claim(&prod, len, &p);
        CHECK(rc == 0 || rc == 1 || rc == -EMSGSIZE || rc == -EPROTO);
        CHECK(rc != -EMSGSIZE || len > ipc__spsc_max_payload(capacity));
        CHECK(rc != -EPROTO || hostile);
        if (rc != 1)
            return;
        CHECK(InData(p, len));
        std::vector<uint8_t> frame(len);
        for (size_t i = 0; i < len; i++)
            frame[i] = PatternByte(next_frame, i);
        if (len)
            memcpy(p, frame.data(), len);
        claimed = true;
        claimed_len = len;
        claim_ptr = p;
    }

    void Publish(Input &in)
    {
        if (!claimed)
            return;
        size_t len = claimed_len - (claimed_len ? in.u16() % (claimed_len + 1) : 0);
        std::vector<uint8_t> frame(static_cast<uint8_t *>(claim_ptr),
                                   static_cast<uint8_t *>(claim_ptr) + len);
        ipc__spsc_publish(&prod, len);
        if (!hostile)
            model.push_back(frame);
        next_frame++;
        claimed = false;
    }

    void Push(Input &in)
    {
        if (claimed)
            return;
        size_t len = Len(in);
        std::vector<uint8_t> frame(len);
        for (size_t i = 0; i < len; i++)
            frame[i] = PatternByte(next_frame, i);
        int rc = ipc__spsc_push(&prod, frame.data(), len);
        CHECK(rc == 0 || rc == 1 || rc == -EMSGSIZE || rc == -EPROTO);
        CHECK(rc != -EPROTO || hostile);
        if (rc == 1) {
            if (!hostile)
                model.push_back(frame);
            next_frame++;
        }
        if (rc == 0 && !hostile && model.empty())
            CHECK(len > ipc__spsc_max_payload(capacity)); /* an empty ring takes any legal frame */
    }

    // A tail the consumer must reject when it next loads it: behind head,
    // more than a ring ahead, or not 8-aligned.
    bool TailInvalid() const
    {
        uint64_t t = atomic_load(&shared->tail);
        return t - cons.head > capacity || (t & 7) != 0;
    }

    void Peek(Input &in)
    {
        const void *p = nullptr;
        uint32_t len = 0;
        bool must_reject = cons.head == cons.other && TailInvalid();
        int rc = ipc__spsc_peek(&cons, &p, &len);
        CHECK(rc == 0 || rc == 1 || rc == -EPROTO);
        CHECK(rc != -EPROTO || hostile);
        CHECK(!must_reject || rc == -EPROTO);
        peeked = rc == 1;
        if (rc == 0 && !hostile)
            CHECK(model.empty());
        if (rc != 1)
            return;
        CHECK(len <= ipc__spsc_max_payload(capacity));
        CHECK(InData(p, len));
        uint8_t sum = 0;
        for (uint32_t i = 0; i < len; i++)
            sum = (uint8_t)(sum + static_cast<const volatile uint8_t *>(p)[i]); /* touch all */
        (void)sum;
        if (!hostile) {
            CHECK(!model.empty());
            CHECK(model.front().size() == len);
            CHECK(len == 0 || memcmp(model.front().data(), p, len) == 0);
        }
        if (in.u8() & 1)
            Release();
    }

    void Release()
    {
        if (peeked && !hostile)
            model.pop_front();
        ipc__spsc_release(&cons);
        peeked = false;
    }

    void Pop(Input &in)
    {
        size_t max = in.u16() % (ipc__spsc_max_payload(capacity) + 2);
        std::vector<uint8_t> buf(max);
        long rc = ipc__spsc_pop(&cons, buf.data(), max);
        peeked = false;
        CHECK(rc >= 0 || rc == -EAGAIN || rc == -EMSGSIZE || rc == -EPROTO);
        CHECK(rc != -EPROTO || hostile);
        CHECK(rc <= (long)max);
        if (hostile)
            return;
        if (rc == -EAGAIN) {
            CHECK(model.empty());
            return;
        }
        CHECK(!model.empty());
        if (rc == -EMSGSIZE) {
            CHECK(model.front().size() > max);
        } else {
            CHECK(model.front().size() == (size_t)rc);
            CHECK(rc == 0 || memcmp(model.front().data(), buf.data(), (size_t)rc) == 0);
        }
        model.pop_front();
    }

    void Scribble(Input &in, uint8_t op)
    {
        hostile = true;
        switch (op) {
        case 0: { /* the producer's index: anything, or near the truth */
            uint8_t how = in.u8();
            uint64_t t = how & 1   ? in.u64()
                         : how & 2 ? cons.head + (uint64_t)in.u16() * 8
                                   : prod.tail + (int8_t)in.u8();
            atomic_store(&shared->tail, t);
            break;
        }
        case 1:
            atomic_store(&shared->head, in.u8() & 1 ? in.u64() : cons.head + (int8_t)in.u8());
            break;
        case 2: { /* a record header: length word at an 8-aligned offset,
                   * often the one the consumer reads next */
            uint8_t how = in.u8();
            size_t off = how & 1 ? (in.u16() * 8) % capacity
                                 : ((cons.head & (capacity - 1)) + (how >> 4) * 8) % capacity;
            uint32_t v;
            switch ((how >> 1) & 3) {
            case 0: v = IPC__SPSC_WRAP; break;
            case 1: v = (uint32_t)ipc__spsc_max_payload(capacity) - in.u8(); break;
            default: v = in.u16(); break;
            }
            memcpy(data + off, &v, 4);
            break;
        }
        default: { /* any bytes anywhere */
            size_t off = in.u16() % capacity;
            data[off] = in.u8();
            break;
        }
        }
    }

    void Waits()
    {
        /* A deadline already passed: must return at once, never sleep. */
        int r = ipc__spsc_wait_readable(&cons, 0, 1);
        CHECK(r == 0 || r == -ETIMEDOUT);
        int w = ipc__spsc_wait_writable(&prod, 0, 0, 1);
        CHECK(w == 0 || w == -ETIMEDOUT || w == -EPROTO);
        CHECK(w != -EPROTO || hostile);
        int rd = ipc__spsc_readable(&cons);
        CHECK(rd == 0 || rd == 1 || rd == -EPROTO);
        CHECK(rd != -EPROTO || hostile);
        if (!hostile)
            CHECK(rd == (model.empty() ? 0 : 1));
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    Input in(bytes, size);
    static const size_t kCaps[] = {4096, 8192};
    Harness h(kCaps[in.u8() & 1]);
    int steps = 0;
    while (!in.empty() && steps++ < 4096) {
        uint8_t op = in.u8();
        switch (op % 12) {
        case 0:
        case 1:
            h.Push(in);
            break;
        case 2:
            h.Claim(in);
            break;
        case 3:
            h.Publish(in);
            break;
        case 4:
        case 5:
            h.Peek(in);
            break;
        case 6:
            h.Release();
            break;
        case 7:
            h.Pop(in);
            break;
        case 8:
            h.Waits();
            break;
        case 9:
            /* Scribbling is rarer than honest traffic. */
            if (op >= 0xC0)
                h.Scribble(in, in.u8() & 3);
            break;
        default: {
            /* Fill and drain fully: exercises wrap-around at every offset. */
            int n = in.u8() % 8;
            for (int i = 0; i < n; i++)
                h.Push(in);
            for (int i = 0; i < n; i++)
                h.Pop(in);
            break;
        }
        }
    }
    // Once caught lying, the ring says so forever.
    if (h.cons.broken)
        CHECK(ipc__spsc_readable(&h.cons) == -EPROTO);
    if (h.prod.broken)
        CHECK(ipc__spsc_writable(&h.prod, 0) == -EPROTO);
    return 0;
}
