// The transports the benchmark drives, behind one small interface: ours
// (through the public API), the raw limits (bare syscalls or bare shared
// memory), and the peers (nng, ZeroMQ).
//
// Each case runs in fresh processes: Prepare() in the parent, Serve() in a
// forked server process, Connect() in each forked client process, Cleanup()
// in the parent once both ends are gone. Every fallible call returns 0 or a
// negative errno and sets *err to a sentence saying what failed.
#ifndef TOOLS_BENCH_TRANSPORT_H
#define TOOLS_BENCH_TRANSPORT_H

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ipc_bench {

struct CaseSetup {
    std::string dir; // short private directory for socket files
    std::string tag; // unique per case: names the endpoint
    size_t payload;  // bytes in each request and reply
    int clients;     // client processes the server must serve
    int window;      // requests in flight per client
};

// Reads len bytes once, 8 at a time (the compiler vectorises it): what
// reading a reply costs wherever it lies.
inline uint64_t Fold(const void *p, size_t len)
{
    uint64_t fold = 0, word;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        memcpy(&word, static_cast<const char *>(p) + i, 8);
        fold ^= word;
    }
    return fold;
}

// One client's connection. Replies come back in request order.
class Conn {
  public:
    virtual ~Conn() = default;
    virtual int Send(const void *data, size_t len) = 0;
    // The reply's length, or a negative errno; buf holds all of it.
    virtual ssize_t Recv(void *buf, size_t max) = 0;
    // Receives a reply and reads every byte of it once (*fold), as the
    // application behind a round trip would; buf gets at least its first
    // and last 8 bytes. A zero-copy connection reads the reply in place.
    virtual ssize_t RecvAndRead(void *buf, size_t max, uint64_t *fold)
    {
        ssize_t n = Recv(buf, max);
        if (n > 0)
            *fold = Fold(buf, (size_t)n);
        return n;
    }
};

class Transport {
  public:
    virtual ~Transport() = default;
    // Stable id for JSON and --only (e.g. "ipc_socket").
    virtual const char *Id() const = 0;
    // Human name for the table.
    virtual const char *Label() const = 0;
    // "" when usable; otherwise why not (checked once, in the parent).
    virtual std::string Unavailable() { return ""; }
    // Largest window this transport can keep in flight for one client.
    virtual int MaxWindow(size_t payload) const
    {
        (void)payload;
        return 1 << 30;
    }
    virtual int Prepare(const CaseSetup &, std::string *) { return 0; }
    virtual void Cleanup() {}
    // In the server process: listens, calls ready(), then echoes every
    // request until SIGTERM. Returns only on failure (or a clean stop).
    virtual int Serve(const CaseSetup &setup, const std::function<void()> &ready,
                      std::string *err) = 0;
    // In a client process (index 0 .. clients-1).
    virtual int Connect(const CaseSetup &setup, int index, std::unique_ptr<Conn> *out,
                        std::string *err) = 0;
};

// Every transport, in table order: limits first, then ours, then peers.
std::vector<std::unique_ptr<Transport>> MakeTransports();

std::unique_ptr<Transport> MakeRawUds();
std::unique_ptr<Transport> MakeRawSpin();
std::unique_ptr<Transport> MakeRawFutex();
std::unique_ptr<Transport> MakeIpcSocket();
std::unique_ptr<Transport> MakeIpcShm();
std::unique_ptr<Transport> MakeIpcShmZeroCopy();
std::unique_ptr<Transport> MakeNng();
std::unique_ptr<Transport> MakeZmq();

// Writes all of len bytes / reads exactly len bytes on a blocking fd.
int WriteFull(int fd, const void *data, size_t len);
int ReadFull(int fd, void *buf, size_t len);

} // namespace ipc_bench

#endif // TOOLS_BENCH_TRANSPORT_H
