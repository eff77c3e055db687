// Multi-process stress driver: a forked server answering with a transformed
// echo, and many forked clients that check every reply.
//
// Wire format of a stress request of len bytes:
//   len >= kHeaderSize:  RequestHeader (24 bytes) | body (len - 24 bytes)
//   len <  kHeaderSize:  len body bytes, no header
// Body bytes are a pure function of (client, seq, offset), so a client
// re-derives what it sent instead of keeping a copy.
// Reply: the header echoed verbatim, every body byte XOR kXor. A server that
// finds a request's checksum wrong answers with magic kBadMagic instead.
#ifndef IPC_STRESS_STRESS_DRIVER_H
#define IPC_STRESS_STRESS_DRIVER_H

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "ipc/ipc.h"
#include "ipc/testing/process.h"

namespace ipc_stress {

enum class Transport { kSocket, kShm };
const char *TransportName(Transport t);

constexpr uint64_t kMs = 1000ull * 1000;
constexpr uint64_t kSecond = 1000 * kMs;

constexpr uint32_t kReqMagic = 0x51525453;  // "STRQ"
constexpr uint32_t kBadMagic = 0x21444142;  // "BAD!"
constexpr uint8_t kXor = 0x5A;
constexpr size_t kHeaderSize = 24;

struct RequestHeader {
    uint32_t magic;
    uint32_t client;
    uint64_t seq;
    uint32_t len;       // whole request, header included
    uint32_t checksum;  // FNV-1a 32 of the body
};
static_assert(sizeof(RequestHeader) == kHeaderSize, "wire header");

// Where a server lives and how it is configured.
struct Endpoint {
    Transport transport = Transport::kSocket;
    std::string name;        // socket path, or shared-memory base name
    size_t max_clients = 16; // shm: exact capacity; socket: initial table
    ipc_server_options options = {};
    // Largest request (and reply) the server accepts: max_message_size for
    // sockets, ring_size / 2 - 16 for shared memory.
    size_t MaxPayload() const;
};

Endpoint SocketEndpoint(const std::string &dir, size_t max_message);
Endpoint ShmEndpoint(size_t max_clients, size_t ring_size);

ipc_server *CreateServer(const Endpoint &ep);
ipc_client *CreateClient(const Endpoint &ep);
// Connects, retrying while the server is absent or (shm) has no free slot.
int ConnectRetry(ipc_client *c, uint64_t timeout_ns);

// ------------------------------------------------------------ wire format

uint32_t Fnv1a(const void *data, size_t len);
// Fills out[0, len) with request (client, seq).
void BuildRequest(uint8_t *out, size_t len, uint32_t client, uint64_t seq);
// The header of a reply or request, when len >= kHeaderSize.
bool ReadHeader(const uint8_t *p, size_t len, RequestHeader *h);
// Exactly the reply the server must send for request (client, seq, len)?
bool ReplyMatches(const uint8_t *reply, size_t reply_len, uint32_t client, uint64_t seq,
                  size_t len);
// Request sizes for one client: a few fixed edge sizes (0, max, 1, 23, 24)
// first, then a skewed random mix reaching max.
size_t PickSize(uint64_t *rng, uint64_t seq, size_t max);
uint64_t NextRandom(uint64_t *state);

// The stats request: a 16-byte magic the random traffic never produces.
extern const uint8_t kStatsRequest[16];
struct ServerStats {
    uint64_t requests;
    uint64_t bad_requests;    // a stress request whose checksum was wrong
    uint64_t foreign;         // not a stress request (hostile peers)
    int64_t fds_now;
    int64_t fds_listening;    // right after listen(), before any client
};
int QueryStats(const Endpoint &ep, ServerStats *out, uint64_t timeout_ns);

// What a server child reports when it stops cleanly.
struct ServerFinal {
    int32_t run_rc;
    int32_t pad;
    uint64_t requests;
    uint64_t bad_requests;
    int64_t fds_before_create;
    int64_t fds_after_destroy;
};

// A server process serving the transform handler.
class ServerChild {
  public:
    ServerChild() = default;
    ~ServerChild();
    ServerChild(const ServerChild &) = delete;
    ServerChild &operator=(const ServerChild &) = delete;

    // Forks the server and returns once it listens. nofile > 0 lowers the
    // child's RLIMIT_NOFILE first. False with *error set on failure.
    bool Start(const Endpoint &ep, rlim_t nofile, std::string *error);
    pid_t pid() const { return pid_; }
    // SIGKILL, then reap.
    void Kill();
    // SIGTERM, then the final report (false if none came within 10 s).
    bool Stop(ServerFinal *final, std::string *error);

  private:
    pid_t pid_ = -1;
    int stats_fd_ = -1;
};

// ---------------------------------------------------------------- results

struct Totals {
    uint64_t sent = 0;
    uint64_t received = 0;
    uint64_t lost = 0;
    uint64_t duplicated = 0;
    uint64_t reordered = 0;
    uint64_t corrupted = 0;
    uint64_t errors = 0;  // failed calls
    uint64_t bytes = 0;   // request bytes answered
    uint64_t max_latency_ns = 0;
    // "stress <transport>: sent=N received=N lost=0 duplicated=0 ..."
    std::string Line(Transport t) const;
    bool Clean() const;
};

struct StressConfig {
    Endpoint ep;
    int clients = 64;       // concurrent clients at start
    int requests = 100;     // per initial client
    int window = 2;         // requests in flight per client
    uint64_t op_timeout_ns = 10 * kSecond;
    uint64_t deadline_ns = 150 * kSecond;  // whole run: past it, a hang
    uint64_t seed = 1;
    // Chaos: SIGKILL / SIGSTOP clients while the load runs.
    bool chaos = false;
    int kills = 0;            // clients to SIGKILL (each is replaced)
    int replacement_requests = 40;
    bool partial_writers = false;  // socket: raw clients dying mid-frame
};

struct StressReport {
    Totals totals;
    int survivors = 0;          // clients that finished and reported
    int killed = 0;             // SIGKILLed clients, all modes
    int killed_partial = 0;     // of which raw mid-frame writers
    int stopped = 0;            // SIGSTOP/SIGCONT cycles
    int spawned = 0;            // clients started in all
    ServerStats stats_before = {};
    ServerStats stats_after = {};
    ServerFinal final = {};
    std::vector<std::string> dev_shm_leaked;
    std::vector<std::string> failures;  // empty on success
    uint64_t elapsed_ns = 0;
};

StressReport RunStress(const StressConfig &cfg);

// Server restart under load.
struct RestartConfig {
    Endpoint ep;
    int clients = 12;        // request loops with finite timeouts
    int receivers = 4;       // blocked in recv with no timeout
    int restarts = 3;
    uint64_t interval_ns = 400 * kMs;
    uint64_t op_timeout_ns = 10 * kSecond;
    uint64_t seed = 1;
};

struct RestartReport {
    Totals totals;
    uint64_t reconnects = 0;
    uint64_t max_error_delay_ns = 0;  // kill -> error seen, worst client
    std::vector<std::string> failures;
};

RestartReport RunRestart(const RestartConfig &cfg);

// ---------------------------------------------------------------- helpers

std::set<std::string> ListDevShm();
// ProcessCpuNs, NowNs, WriteExactly: ipc/testing/process.h.
using ipc_testing::NowNs;
using ipc_testing::ProcessCpuNs;
using ipc_testing::WriteExactly;
// Closes every fd >= 3 not in keep (a forked child drops inherited fds).
void CloseFdsExcept(std::initializer_list<int> keep);
// True in asan/tsan builds, where loops are scaled down.
bool SlowBuild();
// Sets RLIMIT_NOFILE's soft limit to want (capped at the hard limit);
// returns the limit now in force.
rlim_t RaiseNofile(rlim_t want);

}  // namespace ipc_stress

#endif  // IPC_STRESS_STRESS_DRIVER_H
