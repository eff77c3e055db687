// The limits: what the hardware and kernel give with nothing on top.
//
//   raw_uds    a Unix stream socket per client, the same 4-byte little-endian
//              length framing; writev(header, payload), read(header),
//              read(payload). One blocking server thread per connection.
//   raw_spin   MAP_SHARED|MAP_ANONYMOUS memory mapped before fork: a sequence
//              counter per direction and a payload copy; both sides spin.
//   raw_futex  the same memory, but every wait is FUTEX_WAIT and every
//              publish is FUTEX_WAKE.
//
// The shared-memory limits keep `window` fixed-size entries per direction
// per client: a client never has more than window requests out, and entry k
// is reused for k + window only after reply k was read, so no other
// bookkeeping is needed.
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "tools/bench/transport.h"

namespace ipc_bench {

int WriteFull(int fd, const void *data, size_t len)
{
    const uint8_t *p = static_cast<const uint8_t *>(data);
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int ReadFull(int fd, void *buf, size_t len)
{
    uint8_t *p = static_cast<uint8_t *>(buf);
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ECONNRESET;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

namespace {

std::string ErrnoText(const char *what, int err)
{
    return std::string(what) + ": " + strerror(err);
}

// ------------------------------------------------------------------ raw_uds

// Pipelined 1 MiB frames need several MiB queued in the kernel, or a
// blocking echo server and a client that is still sending deadlock.
// SO_SNDBUFFORCE needs CAP_NET_ADMIN; without it the window is cut instead.
constexpr int kUdsBuffer = 8 << 20;

void GrowSendBuffer(int fd)
{
    int size = kUdsBuffer;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

int SendFrame(int fd, const void *data, size_t len)
{
    uint8_t header[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                         (uint8_t)(len >> 24)};
    struct iovec iov[2] = {{header, 4}, {const_cast<void *>(data), len}};
    size_t total = 4 + len;
    while (total > 0) {
        ssize_t n = writev(fd, iov, 2);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        total -= (size_t)n;
        for (auto &v : iov) { // advance past what went out
            size_t step = (size_t)n < v.iov_len ? (size_t)n : v.iov_len;
            v.iov_base = static_cast<uint8_t *>(v.iov_base) + step;
            v.iov_len -= step;
            n -= (ssize_t)step;
        }
    }
    return 0;
}

// Length of the next frame, or a negative errno.
ssize_t RecvFrame(int fd, void *buf, size_t max)
{
    uint8_t h[4];
    int rc = ReadFull(fd, h, 4);
    if (rc < 0)
        return rc;
    size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
    if (len > max)
        return -EMSGSIZE;
    rc = ReadFull(fd, buf, len);
    return rc < 0 ? rc : (ssize_t)len;
}

struct EchoArgs {
    int fd;
    size_t max;
};

void *EchoConnection(void *arg)
{
    EchoArgs a = *static_cast<EchoArgs *>(arg);
    delete static_cast<EchoArgs *>(arg);
    std::vector<uint8_t> buf(a.max);
    for (;;) {
        ssize_t n = RecvFrame(a.fd, buf.data(), buf.size());
        if (n < 0 || SendFrame(a.fd, buf.data(), (size_t)n) < 0)
            break;
    }
    close(a.fd);
    // Stay: a thread that exits takes its CPU time out of /proc/<pid>/task,
    // where the parent reads the server's CPU. SIGTERM ends the process.
    for (;;)
        pause();
}

int UnixAddress(const std::string &path, struct sockaddr_un *addr, std::string *err)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr->sun_path)) {
        *err = "socket path too long: " + path;
        return -ENAMETOOLONG;
    }
    memcpy(addr->sun_path, path.c_str(), path.size() + 1);
    return 0;
}

class UdsConn : public Conn {
  public:
    explicit UdsConn(int fd) : fd_(fd) {}
    ~UdsConn() override { close(fd_); }
    int Send(const void *data, size_t len) override { return SendFrame(fd_, data, len); }
    ssize_t Recv(void *buf, size_t max) override { return RecvFrame(fd_, buf, max); }

  private:
    int fd_;
};

// Bytes the kernel lets one socket queue once GrowSendBuffer() ran on it.
int GrantedSendBuffer()
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    GrowSendBuffer(sv[0]);
    int size = 0;
    socklen_t len = sizeof(size);
    (void)getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, &len);
    close(sv[0]);
    close(sv[1]);
    return size;
}

class RawUds : public Transport {
  public:
    RawUds() : sndbuf_(GrantedSendBuffer()) {}
    const char *Id() const override { return "raw_uds"; }
    // The blocking echo server must never block on a reply while the client
    // still sends: everything in flight has to fit in the send buffers.
    int MaxWindow(size_t payload) const override
    {
        size_t fit = (size_t)sndbuf_ / 2 / (payload + 4);
        return fit < 1 ? 1 : fit > (1u << 30) ? 1 << 30 : (int)fit;
    }
    const char *Label() const override { return "raw UDS (limit)"; }
    int Prepare(const CaseSetup &setup, std::string *) override
    {
        path_ = setup.dir + "/" + setup.tag + ".raw";
        return 0;
    }
    void Cleanup() override { unlink(path_.c_str()); }
    int Serve(const CaseSetup &setup, const std::function<void()> &ready,
              std::string *err) override;
    int Connect(const CaseSetup &setup, int index, std::unique_ptr<Conn> *out,
                std::string *err) override;

  private:
    int sndbuf_;
    std::string path_;
};

int RawUds::Serve(const CaseSetup &setup, const std::function<void()> &ready,
                  std::string *err)
{
    struct sockaddr_un addr;
    int rc = UnixAddress(path_, &addr, err);
    if (rc < 0)
        return rc;
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(lfd, 64) < 0) {
        rc = -errno;
        *err = ErrnoText("raw_uds listen", errno);
        return rc;
    }
    ready();
    for (;;) { // until SIGTERM
        int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0) {
            rc = -errno;
            *err = ErrnoText("accept4", errno);
            return rc;
        }
        GrowSendBuffer(fd);
        pthread_t t;
        auto *args = new EchoArgs{fd, setup.payload};
        if (pthread_create(&t, nullptr, EchoConnection, args) != 0) {
            delete args;
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
}

int RawUds::Connect(const CaseSetup &, int, std::unique_ptr<Conn> *out, std::string *err)
{
    struct sockaddr_un addr;
    int rc = UnixAddress(path_, &addr, err);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = ErrnoText("socket", errno);
        return -errno;
    }
    for (int tries = 0; connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0; tries++) {
        if ((errno != ENOENT && errno != ECONNREFUSED && errno != EINTR) || tries > 2500) {
            rc = -errno;
            *err = ErrnoText("connect", errno);
            close(fd);
            return rc;
        }
        usleep(2000);
    }
    GrowSendBuffer(fd);
    out->reset(new UdsConn(fd));
    return 0;
}

// ----------------------------------------------------------- raw_spin/futex

long Futex(std::atomic<uint32_t> *word, int op, uint32_t val)
{
    // Shared (not FUTEX_PRIVATE) mapping: the key is the physical page.
    return syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), op, val, nullptr, nullptr, 0);
}

static_assert(sizeof(std::atomic<uint32_t>) == 4 && std::atomic<uint32_t>::is_always_lock_free,
              "futex words are plain u32");

// Each counter on its own 128-byte block so the two sides never false-share.
struct alignas(128) Counter {
    std::atomic<uint32_t> value;
};

struct Slot {
    Counter requests; // bumped by the client after writing a request entry
    Counter replies;  // bumped by the server after writing a reply entry
};

struct Entry {
    uint64_t len;
    uint8_t payload[];
};

class RawShm;

class ShmConn : public Conn {
  public:
    ShmConn(RawShm *t, int index) : t_(t), index_(index) {}
    int Send(const void *data, size_t len) override;
    ssize_t Recv(void *buf, size_t max) override;

  private:
    RawShm *t_;
    int index_;
    uint32_t sent_ = 0;
    uint32_t received_ = 0;
};

class RawShm : public Transport {
  public:
    explicit RawShm(bool futex) : futex_(futex) {}
    ~RawShm() override { Cleanup(); }
    const char *Id() const override { return futex_ ? "raw_futex" : "raw_spin"; }
    const char *Label() const override
    {
        return futex_ ? "raw futex (limit)" : "raw spin (limit)";
    }
    int Prepare(const CaseSetup &setup, std::string *err) override;
    void Cleanup() override;
    int Serve(const CaseSetup &setup, const std::function<void()> &ready,
              std::string *err) override;
    int Connect(const CaseSetup &, int index, std::unique_ptr<Conn> *out,
                std::string *) override
    {
        out->reset(new ShmConn(this, index));
        return 0;
    }

  private:
    friend class ShmConn;
    Slot *SlotOf(int i) { return reinterpret_cast<Slot *>(base_ + Header() + i * SlotBytes()); }
    // Requests fill entries [0, window), replies [window, 2 * window).
    Entry *EntryAt(int i, size_t n)
    {
        return reinterpret_cast<Entry *>(reinterpret_cast<uint8_t *>(SlotOf(i)) + sizeof(Slot) +
                                         n * stride_);
    }
    Entry *RequestEntry(int i, uint32_t k) { return EntryAt(i, k % window_); }
    Entry *ReplyEntry(int i, uint32_t k) { return EntryAt(i, window_ + k % window_); }
    size_t Header() const { return sizeof(Counter); }
    size_t SlotBytes() const { return sizeof(Slot) + 2 * (size_t)window_ * stride_; }
    std::atomic<uint32_t> *Bell() { return &reinterpret_cast<Counter *>(base_)->value; }
    // Spins, or sleeps on FUTEX_WAIT, until *word differs from seen.
    void WaitChange(std::atomic<uint32_t> *word, uint32_t seen);
    void Publish(std::atomic<uint32_t> *word, uint32_t value);
    bool ServeOne(int i, uint32_t *seen, uint8_t *scratch);

    bool futex_;
    uint8_t *base_ = nullptr;
    size_t bytes_ = 0;
    uint32_t window_ = 1;
    size_t stride_ = 0;
    int clients_ = 0;
};

int RawShm::Prepare(const CaseSetup &setup, std::string *err)
{
    Cleanup();
    window_ = (uint32_t)setup.window;
    stride_ = (sizeof(Entry) + setup.payload + 63) & ~(size_t)63;
    clients_ = setup.clients;
    bytes_ = Header() + (size_t)clients_ * SlotBytes();
    void *p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        *err = ErrnoText("mmap", errno);
        return -errno;
    }
    base_ = static_cast<uint8_t *>(p); // zero-filled: every counter starts at 0
    return 0;
}

void RawShm::Cleanup()
{
    if (base_ != nullptr)
        munmap(base_, bytes_);
    base_ = nullptr;
}

void RawShm::WaitChange(std::atomic<uint32_t> *word, uint32_t seen)
{
    while (word->load(std::memory_order_acquire) == seen) {
        if (futex_)
            Futex(word, FUTEX_WAIT, seen);
        else
            __builtin_ia32_pause();
    }
}

void RawShm::Publish(std::atomic<uint32_t> *word, uint32_t value)
{
    word->store(value, std::memory_order_release);
    if (futex_)
        Futex(word, FUTEX_WAKE, 1);
}

// Echoes request *seen of client i if it is there; copies out, then back in.
bool RawShm::ServeOne(int i, uint32_t *seen, uint8_t *scratch)
{
    Slot *s = SlotOf(i);
    if (s->requests.value.load(std::memory_order_acquire) == *seen)
        return false;
    const Entry *req = RequestEntry(i, *seen);
    size_t len = req->len;
    memcpy(scratch, req->payload, len);
    Entry *rep = ReplyEntry(i, *seen);
    memcpy(rep->payload, scratch, len);
    rep->len = len;
    *seen += 1;
    Publish(&s->replies.value, *seen);
    return true;
}

int RawShm::Serve(const CaseSetup &setup, const std::function<void()> &ready, std::string *)
{
    std::vector<uint32_t> seen((size_t)clients_, 0);
    std::vector<uint8_t> scratch(setup.payload);
    ready();
    for (;;) { // until SIGTERM; one request per client per pass (round robin)
        uint32_t bell = Bell()->load(std::memory_order_acquire);
        bool served = false;
        for (int i = 0; i < clients_; i++)
            served |= ServeOne(i, &seen[(size_t)i], scratch.data());
        if (served)
            continue;
        if (futex_)
            Futex(Bell(), FUTEX_WAIT, bell); // returns at once if a client rang since
        else
            __builtin_ia32_pause();
    }
}

int ShmConn::Send(const void *data, size_t len)
{
    Entry *e = t_->RequestEntry(index_, sent_);
    memcpy(e->payload, data, len);
    e->len = len;
    sent_++;
    t_->SlotOf(index_)->requests.value.store(sent_, std::memory_order_release);
    if (t_->futex_) { // the server sleeps on one bell for all clients
        t_->Bell()->fetch_add(1, std::memory_order_release);
        Futex(t_->Bell(), FUTEX_WAKE, 1);
    }
    return 0;
}

ssize_t ShmConn::Recv(void *buf, size_t max)
{
    t_->WaitChange(&t_->SlotOf(index_)->replies.value, received_);
    const Entry *e = t_->ReplyEntry(index_, received_);
    size_t len = e->len;
    if (len > max)
        return -EMSGSIZE;
    memcpy(buf, e->payload, len);
    received_++;
    return (ssize_t)len;
}

} // namespace

std::unique_ptr<Transport> MakeRawUds()
{
    return std::make_unique<RawUds>();
}

std::unique_ptr<Transport> MakeRawSpin()
{
    return std::make_unique<RawShm>(false);
}

std::unique_ptr<Transport> MakeRawFutex()
{
    return std::make_unique<RawShm>(true);
}

} // namespace ipc_bench
