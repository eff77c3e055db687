// C++20 API over ipc.h, in namespace ipc. Header-only.
//
// IpcClient / IpcServer keep the seed README's API (factories returning
// unique_ptr, bool results, recv into a buffer, run() with a handler and the
// ShutdownRequested exception) and extend it to the whole C library: server
// options, zero-copy receive() / release() and loans, event-loop fds,
// statistics, request_shutdown().
//
// Errors, two ways:
//   - the seed's: a bool (or a negative errno where the C call returns a
//     count), with the failing negative errno kept in last_error() / error();
//   - std::error_code: every fallible call has an overload taking a
//     std::error_code& last, set to the errno (std::generic_category, so
//     `ec == std::errc::timed_out` works) or cleared. Those overloads are
//     noexcept and leave last_error() alone: use them from the two threads of
//     a full-duplex client, where "the last error" has no single meaning.
//
// Threads: as ipc.h says. A client may have one sending thread (send,
// try_send, loan, commit) and one receiving thread (recv, try_recv,
// receive, release); or any number of threads calling call() /
// call_async() (never mixed with send/recv on one client).
// request_shutdown() / stop() may be called from any thread or a signal
// handler; a server's handler runs on worker threads when
// ServerOptions::workers is set; everything else one thread at a time.
//
// Objects are move-only; a moved-from object fails every call with -EINVAL.
// The barretenberg module's latest API is ipc/bb_ipc.hpp (namespace bb::ipc);
// the two headers can be included together (docs/PORTING.md).
#ifndef IPC_IPC_HPP
#define IPC_IPC_HPP

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "ipc/ipc.h"

namespace ipc {

// A C result (>= 0, or a negative errno) as a std::error_code.
inline std::error_code to_error_code(long rc) noexcept
{
    return rc < 0 ? std::error_code(static_cast<int>(-rc), std::generic_category())
                  : std::error_code();
}

// Thrown by a handler to stop the server after its goodbye reply is sent.
class ShutdownRequested : public std::exception {
  public:
    explicit ShutdownRequested(std::vector<uint8_t> response = {})
        : response_(std::move(response))
    {
    }
    const char *what() const noexcept override { return "ipc: shutdown requested"; }
    const std::vector<uint8_t> &response() const noexcept { return response_; }

  private:
    std::vector<uint8_t> response_;
};

// The framing of a connection (docs/PROTOCOL.md): Legacy, the seed's FIFO
// request/reply, or Mux, every frame carrying a request id so replies may
// come in completion order. Server and client must agree.
enum class Wire : uint32_t { Legacy = IPC_WIRE_LEGACY, Mux = IPC_WIRE_MUX };

// ipc_server_options with C++ defaults: every 0 takes the documented default.
struct ServerOptions {
    size_t max_message_size = 0;   // longest request (0: 1 MiB)
    uint32_t socket_mode = 0;      // socket file permissions (0: 0600)
    size_t max_pending_output = 0; // replies queued per client (0: derived)
    size_t ring_size = 0;          // shm: bytes per ring, power of two (0: 4 MiB)
    uint64_t spin_ns = 0;          // shm: spin before sleeping (0: 50 us)
    uint32_t workers = 0;          // run(): handler threads (0: run()'s own, serially)
    Wire wire = Wire::Legacy;
    uint32_t max_inflight_per_client = 0; // run(), Mux: per client (0: 64)
    uint32_t max_inflight = 0;            // run(): per server (0: 1024)

    ipc_server_options to_c() const noexcept
    {
        ipc_server_options o{};
        o.max_message_size = max_message_size;
        o.socket_mode = socket_mode;
        o.max_pending_output = max_pending_output;
        o.ring_size = ring_size;
        o.spin_ns = spin_ns;
        o.workers = workers;
        o.wire = static_cast<uint32_t>(wire);
        o.max_inflight_per_client = max_inflight_per_client;
        o.max_inflight = max_inflight;
        return o;
    }
};

// ipc_client_options.
struct ClientOptions {
    Wire wire = Wire::Legacy;

    ipc_client_options to_c() const noexcept
    {
        ipc_client_options o{};
        o.wire = static_cast<uint32_t>(wire);
        return o;
    }
};

// The longest reply call() and call_async() take unless told otherwise.
inline constexpr size_t kDefaultMaxReply = 1024 * 1024;

// A snapshot of counters and the latency histogram.
struct Stats : ipc_stats {
    // The latency below which a fraction q of the samples fall, in ns.
    uint64_t percentile(double q) const noexcept { return ipc_stats_percentile(this, q); }
    uint64_t samples() const noexcept { return ipc_stats_samples(this); }
};

namespace detail {

// A failure code a full-duplex client's two threads may both store.
class LastError {
  public:
    int get() const noexcept { return v_.load(std::memory_order_relaxed); }
    // Relaxed: the value is its own message; it orders nothing else.
    long set(long rc) noexcept
    {
        v_.store(rc < 0 ? static_cast<int>(rc) : 0, std::memory_order_relaxed);
        return rc;
    }
    LastError() = default;
    LastError(const LastError &o) noexcept : v_(o.get()) {}
    LastError &operator=(const LastError &o) noexcept
    {
        v_.store(o.get(), std::memory_order_relaxed);
        return *this;
    }

  private:
    std::atomic<int> v_{0};
};

inline long report(long rc, std::error_code &ec) noexcept
{
    ec = to_error_code(rc);
    return rc;
}

// A message lent in place. data() is never null for a message, even an empty
// one; a failed receive gives a span whose data() is null.
inline std::span<const uint8_t> lent(const void *msg, long n) noexcept
{
    static const uint8_t empty = 0;
    if (n < 0)
        return {};
    return {n == 0 || msg == nullptr ? &empty : static_cast<const uint8_t *>(msg),
            static_cast<size_t>(n)};
}


// A reply buffer that grows to the longest limit its thread has asked for,
// so a 1 MiB limit costs no 1 MiB allocation per call().
inline std::vector<uint8_t> &scratch(size_t max)
{
    thread_local std::vector<uint8_t> buf;
    if (buf.size() < max)
        buf.resize(max);
    return buf;
}

// call_async()'s completions. One thread per client, started by the first
// call_async(), reaps replies in completion order (ipc_client_wait_any),
// ends calls whose deadline passed (ipc_client_cancel) and settles each
// call: its promise, or its callback run on that thread.
class Completer {
  public:
    using Callback = std::function<void(std::error_code, std::span<const uint8_t>)>;

    explicit Completer(ipc_client *c) noexcept : c_(c) {}
    ~Completer() { stop(-ENOTCONN); }
    Completer(const Completer &) = delete;
    Completer &operator=(const Completer &) = delete;

    // Submits req; cb or promise is settled exactly once, here at once when
    // the submit fails.
    void submit(std::span<const uint8_t> req, uint64_t timeout_ns, size_t max_reply,
                std::promise<std::vector<uint8_t>> *promise, Callback cb)
    {
        auto e = std::make_unique<Entry>();
        e->max = max_reply;
        e->reply.reset(new uint8_t[std::max<size_t>(max_reply, 1)]);
        if (promise != nullptr)
            e->promise = std::move(*promise);
        e->cb = std::move(cb);
        e->deadline = timeout_ns == 0 ? UINT64_MAX : now_ns() + timeout_ns;
        uint64_t id = 0;
        int rc = ipc_client_submit(c_, req.data(), req.size(), e->reply.get(), max_reply, &id,
                                   timeout_ns);
        if (rc < 0)
            return settle(*e, rc);
        std::unique_lock<std::mutex> g(mu_);
        auto early = early_.find(id);
        if (early != early_.end()) { // reaped before we got here
            long n = early->second;
            early_.erase(early);
            g.unlock();
            return settle(*e, n);
        }
        entries_.emplace(id, std::move(e));
        if (!thread_.joinable())
            thread_ = std::thread([this] { loop(); });
        cv_.notify_one();
    }

    // Ends every outstanding call with err and the thread; a later submit
    // starts it again.
    void stop(int err)
    {
        {
            std::lock_guard<std::mutex> g(mu_);
            if (!thread_.joinable())
                return;
            stopping_ = true;
            stop_err_ = err;
        }
        cv_.notify_all();
        thread_.join();
        std::lock_guard<std::mutex> g(mu_);
        stopping_ = false;
    }

  private:
    struct Entry {
        std::unique_ptr<uint8_t[]> reply;
        size_t max = 0;
        uint64_t deadline = UINT64_MAX;
        std::promise<std::vector<uint8_t>> promise;
        Callback cb;
    };
    using Entries = std::map<uint64_t, std::unique_ptr<Entry>>;

    static uint64_t now_ns() noexcept
    {
        return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now().time_since_epoch())
                                         .count());
    }

    // n: the reply's length, or a negative errno. A callback must not throw.
    static void settle(Entry &e, long n)
    {
        std::error_code ec = to_error_code(n);
        if (e.cb) {
            e.cb(ec, ec ? std::span<const uint8_t>()
                        : std::span<const uint8_t>(e.reply.get(), static_cast<size_t>(n)));
        } else if (ec) {
            e.promise.set_exception(std::make_exception_ptr(std::system_error(ec)));
        } else {
            e.promise.set_value(std::vector<uint8_t>(e.reply.get(), e.reply.get() + n));
        }
    }

    // Cancels the calls whose deadline passed (mu_ held; settles unlocked).
    void expire(std::unique_lock<std::mutex> &g)
    {
        uint64_t now = now_ns();
        std::vector<std::unique_ptr<Entry>> late;
        for (auto it = entries_.begin(); it != entries_.end();) {
            if (it->second->deadline > now) {
                ++it;
                continue;
            }
            // 0, or -ENOENT if it completed meanwhile: late either way,
            // and its reply, if any, is discarded with it.
            (void)ipc_client_cancel(c_, it->first);
            late.push_back(std::move(it->second));
            it = entries_.erase(it);
        }
        g.unlock();
        for (auto &e : late)
            settle(*e, -ETIMEDOUT);
        g.lock();
    }

    uint64_t next_wait_ns() const noexcept
    {
        uint64_t soonest = UINT64_MAX;
        for (const auto &[id, e] : entries_)
            soonest = std::min(soonest, e->deadline);
        uint64_t now = now_ns();
        uint64_t cap = 20ull * 1000 * 1000; // how soon a stop is seen
        return soonest <= now ? 1 : std::min(soonest - now, cap);
    }

    void loop()
    {
        std::unique_lock<std::mutex> g(mu_);
        for (;;) {
            cv_.wait(g, [this] { return stopping_ || !entries_.empty(); });
            if (stopping_)
                break;
            uint64_t wait = next_wait_ns();
            g.unlock();
            uint64_t id = 0;
            long n = ipc_client_wait_any(c_, &id, wait);
            g.lock();
            if (n == -ETIMEDOUT) {
                expire(g);
                continue;
            }
            if (n == -ENOENT) { // the C client forgot them: a new connection
                fail_all(g, -ENOTCONN);
                continue;
            }
            auto it = entries_.find(id);
            if (it == entries_.end()) { // its submit() has not registered it yet
                early_.emplace(id, n);
                continue;
            }
            std::unique_ptr<Entry> e = std::move(it->second);
            entries_.erase(it);
            g.unlock();
            settle(*e, n);
            g.lock();
        }
        fail_all(g, stop_err_);
        early_.clear();
    }

    // Cancels and settles every outstanding call with err (mu_ held).
    void fail_all(std::unique_lock<std::mutex> &g, int err)
    {
        Entries all;
        all.swap(entries_);
        for (auto &[id, e] : all)
            (void)ipc_client_cancel(c_, id);
        g.unlock();
        for (auto &[id, e] : all)
            settle(*e, err);
        g.lock();
    }

    ipc_client *c_;
    std::mutex mu_;
    std::condition_variable cv_;
    Entries entries_;              // submitted, not settled (mu_)
    std::map<uint64_t, long> early_; // reaped before registered (mu_)
    std::thread thread_;
    bool stopping_ = false; // mu_
    int stop_err_ = 0;      // mu_
};

}  // namespace detail

class IpcClient {
  public:
    // ---- the seed's API
    static std::unique_ptr<IpcClient> create_socket(const std::string &socket_path)
    {
        return wrap(ipc_client_create_socket(socket_path.c_str()));
    }
    static std::unique_ptr<IpcClient> create_shm(const std::string &base_name,
                                                 size_t max_clients)
    {
        return wrap(ipc_client_create_shm(base_name.c_str(), max_clients));
    }

    // With options: the wire (nullptr for an invalid value).
    static std::unique_ptr<IpcClient> create_socket(const std::string &socket_path,
                                                    const ClientOptions &o)
    {
        ipc_client_options c = o.to_c();
        return wrap(ipc_client_create_socket_ex(socket_path.c_str(), &c));
    }
    static std::unique_ptr<IpcClient> create_shm(const std::string &base_name,
                                                 size_t max_clients, const ClientOptions &o)
    {
        ipc_client_options c = o.to_c();
        return wrap(ipc_client_create_shm_ex(base_name.c_str(), max_clients, &c));
    }

    // Adopts a C client (may be null: every call then fails with -EINVAL).
    explicit IpcClient(ipc_client *adopt)
        : c_(adopt), done_(std::make_unique<detail::Completer>(adopt))
    {
    }
    ~IpcClient()
    {
        done_.reset(); // ends call_async()s before the client goes
        ipc_client_destroy(c_);
    }
    IpcClient(const IpcClient &) = delete;
    IpcClient &operator=(const IpcClient &) = delete;
    IpcClient(IpcClient &&o) noexcept
        : c_(std::exchange(o.c_, nullptr)), done_(std::move(o.done_)), err_(o.err_)
    {
    }
    IpcClient &operator=(IpcClient &&o) noexcept
    {
        if (this != &o) {
            done_.reset();
            ipc_client_destroy(c_);
            c_ = std::exchange(o.c_, nullptr);
            done_ = std::move(o.done_);
            err_ = o.err_;
        }
        return *this;
    }

    bool connect() { return connect(0); }
    // Connects within timeout_ns (0: IPC_CONNECT_TIMEOUT_NS, 10 s, as
    // connect()); false with last_error() == -ETIMEDOUT once it passes.
    bool connect(uint64_t timeout_ns)
    {
        stop_async(-ENOTCONN);
        return err_.set(ipc_client_connect_timeout(c_, timeout_ns)) >= 0;
    }
    bool send(const void *data, size_t len, uint64_t timeout_ns = 0)
    {
        return err_.set(ipc_client_send(c_, data, len, timeout_ns)) >= 0;
    }
    ssize_t recv(void *buffer, size_t max_len, uint64_t timeout_ns = 0)
    {
        return err_.set(ipc_client_recv(c_, buffer, max_len, timeout_ns));
    }
    // Ends call_async()s still outstanding with std::errc::not_connected.
    void close() noexcept
    {
        stop_async(-ENOTCONN);
        ipc_client_close(c_);
    }

    // ---- calls: any number of threads at once (ipc_client_call)

    // A request and its reply into reply (at most max bytes): its length, or
    // a negative errno (kept in last_error()). 0 waits without limit.
    ssize_t call(const void *req, size_t len, void *reply, size_t max, uint64_t timeout_ns = 0)
    {
        return err_.set(ipc_client_call(c_, req, len, reply, max, timeout_ns));
    }
    // The reply (empty with ec set on failure; -EMSGSIZE past max_reply).
    std::vector<uint8_t> call(std::span<const uint8_t> req, uint64_t timeout_ns,
                              std::error_code &ec, size_t max_reply = kDefaultMaxReply)
    {
        std::vector<uint8_t> &buf = detail::scratch(max_reply);
        long n = detail::report(
            ipc_client_call(c_, req.data(), req.size(), buf.data(), max_reply, timeout_ns), ec);
        return n < 0 ? std::vector<uint8_t>()
                     : std::vector<uint8_t>(buf.begin(), buf.begin() + n);
    }
    // Seed style: the reply, or an empty vector with last_error() set.
    std::vector<uint8_t> call(std::span<const uint8_t> req, uint64_t timeout_ns = 0)
    {
        std::error_code ec;
        std::vector<uint8_t> r = call(req, timeout_ns, ec);
        err_.set(ec ? -ec.value() : 0);
        return r;
    }

    // Without waiting: the reply comes through the future, whose get()
    // throws std::system_error with the errno on failure (timed_out once
    // timeout_ns passes; 0: no limit). Many may be in flight; on the
    // multiplexed wire they complete in the server's order. Settled by a
    // thread the client starts on the first call_async(). (ThreadSanitizer
    // with an uninstrumented libstdc++ reports the failed future's
    // exception_ptr refcount: suppress
    // race:std::__exception_ptr::exception_ptr::_M_release.)
    std::future<std::vector<uint8_t>> call_async(std::span<const uint8_t> req,
                                                 uint64_t timeout_ns = 0,
                                                 size_t max_reply = kDefaultMaxReply)
    {
        std::promise<std::vector<uint8_t>> p;
        std::future<std::vector<uint8_t>> f = p.get_future();
        if (!done_) // moved from
            p.set_exception(std::make_exception_ptr(
                std::system_error(std::make_error_code(std::errc::invalid_argument))));
        else
            done_->submit(req, timeout_ns, max_reply, &p, nullptr);
        return f;
    }
    // The same with a callback, run once on the client's completion thread
    // (or here, at once, when the request cannot be sent) with the error or
    // the reply (valid during the callback). It must not throw, and must not
    // close or destroy the client.
    using Callback = detail::Completer::Callback;
    void call_async(std::span<const uint8_t> req, Callback cb, uint64_t timeout_ns = 0,
                    size_t max_reply = kDefaultMaxReply)
    {
        if (!done_) // moved from
            cb(std::make_error_code(std::errc::invalid_argument), {});
        else
            done_->submit(req, timeout_ns, max_reply, nullptr, std::move(cb));
    }

    // ---- the rest of the library, seed style (errors in last_error())

    // The next reply in place, valid until release(); data() is null on
    // failure (an empty reply has a non-null data()).
    std::span<const uint8_t> receive(uint64_t timeout_ns = 0)
    {
        const void *msg = nullptr;
        long n = err_.set(ipc_client_peek(c_, &msg, timeout_ns));
        return detail::lent(msg, n);
    }
    // Consumes the message receive() lent.
    bool release() { return err_.set(ipc_client_release(c_)) >= 0; }
    // Space for a request of len bytes, written in place and sent by commit().
    // data() is null on failure.
    std::span<uint8_t> loan(size_t len, uint64_t timeout_ns = 0)
    {
        void *buf = nullptr;
        if (err_.set(ipc_client_loan(c_, len, &buf, timeout_ns)) < 0)
            return {};
        return {static_cast<uint8_t *>(buf), len};
    }
    bool commit(size_t len) { return err_.set(ipc_client_commit(c_, len)) >= 0; }
    // Without waiting: false with last_error() == -EAGAIN when it would block.
    bool try_send(const void *data, size_t len)
    {
        return err_.set(ipc_client_try_send(c_, data, len)) >= 0;
    }
    ssize_t try_recv(void *buffer, size_t max_len)
    {
        return err_.set(ipc_client_try_recv(c_, buffer, max_len));
    }
    // A descriptor that polls readable when a reply may be there (ipc.h).
    int fd() { return static_cast<int>(err_.set(ipc_client_fd(c_))); }

    // ---- std::error_code forms: noexcept, last_error() untouched
    bool connect(std::error_code &ec) noexcept { return connect(0, ec); }
    bool connect(uint64_t timeout_ns, std::error_code &ec) noexcept
    {
        stop_async(-ENOTCONN);
        return detail::report(ipc_client_connect_timeout(c_, timeout_ns), ec) >= 0;
    }
    bool send(std::span<const uint8_t> msg, uint64_t timeout_ns, std::error_code &ec) noexcept
    {
        return detail::report(ipc_client_send(c_, msg.data(), msg.size(), timeout_ns), ec) >= 0;
    }
    // The reply's length (0 on failure, with ec set).
    size_t recv(std::span<uint8_t> buffer, uint64_t timeout_ns, std::error_code &ec) noexcept
    {
        long n = detail::report(ipc_client_recv(c_, buffer.data(), buffer.size(), timeout_ns), ec);
        return n < 0 ? 0 : static_cast<size_t>(n);
    }
    std::span<const uint8_t> receive(uint64_t timeout_ns, std::error_code &ec) noexcept
    {
        const void *msg = nullptr;
        long n = detail::report(ipc_client_peek(c_, &msg, timeout_ns), ec);
        return detail::lent(msg, n);
    }
    bool release(std::error_code &ec) noexcept
    {
        return detail::report(ipc_client_release(c_), ec) >= 0;
    }
    std::span<uint8_t> loan(size_t len, uint64_t timeout_ns, std::error_code &ec) noexcept
    {
        void *buf = nullptr;
        if (detail::report(ipc_client_loan(c_, len, &buf, timeout_ns), ec) < 0)
            return {};
        return {static_cast<uint8_t *>(buf), len};
    }
    bool commit(size_t len, std::error_code &ec) noexcept
    {
        return detail::report(ipc_client_commit(c_, len), ec) >= 0;
    }
    bool try_send(std::span<const uint8_t> msg, std::error_code &ec) noexcept
    {
        return detail::report(ipc_client_try_send(c_, msg.data(), msg.size()), ec) >= 0;
    }
    size_t try_recv(std::span<uint8_t> buffer, std::error_code &ec) noexcept
    {
        long n = detail::report(ipc_client_try_recv(c_, buffer.data(), buffer.size()), ec);
        return n < 0 ? 0 : static_cast<size_t>(n);
    }
    int fd(std::error_code &ec) noexcept
    {
        return static_cast<int>(detail::report(ipc_client_fd(c_), ec));
    }

    // ---- state
    Stats stats() const noexcept
    {
        Stats st{};
        ipc_client_stats(c_, &st);
        return st;
    }
    // The negative errno of the last failed seed-style call (0 after success).
    int last_error() const noexcept { return err_.get(); }
    std::error_code error() const noexcept { return to_error_code(err_.get()); }
    ipc_client *native() noexcept { return c_; }

  private:
    static std::unique_ptr<IpcClient> wrap(ipc_client *c)
    {
        return c ? std::make_unique<IpcClient>(c) : nullptr;
    }
    void stop_async(int err) noexcept
    {
        if (done_)
            done_->stop(err);
    }

    ipc_client *c_;
    std::unique_ptr<detail::Completer> done_; // call_async()'s thread
    detail::LastError err_;
};

// A request kept past its handler (Reply::defer()), answered later from any
// thread: reply(), or reserve() then commit(), or drop(). Destroying one
// unanswered drops it (on the legacy wire that disconnects its client: see
// ipc_request_drop). Move-only.
class Request {
  public:
    Request() noexcept = default;
    explicit Request(ipc_request *q) noexcept : q_(q) {}
    ~Request() { drop(); }
    Request(const Request &) = delete;
    Request &operator=(const Request &) = delete;
    Request(Request &&o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
    Request &operator=(Request &&o) noexcept
    {
        if (this != &o) {
            drop();
            q_ = std::exchange(o.q_, nullptr);
        }
        return *this;
    }

    // False once answered (or when defer() failed).
    explicit operator bool() const noexcept { return q_ != nullptr; }
    int client_id() const noexcept { return q_ ? ipc_request_client(q_) : -1; }
    // The request's payload, valid until it is answered.
    std::span<const uint8_t> data() const noexcept
    {
        size_t n = 0;
        const void *p = q_ ? ipc_request_data(q_, &n) : nullptr;
        return detail::lent(p, q_ ? static_cast<long>(n) : -1);
    }
    // Answers with a copy of data: 0 (or -ECANCELED: run() returned, the
    // reply is discarded), both ending the request; -EMSGSIZE / -ENOMEM keep
    // it unanswered; -EINVAL once answered.
    int reply(std::span<const uint8_t> data) noexcept
    {
        if (q_ == nullptr)
            return -EINVAL;
        int rc = ipc_request_reply(q_, data.data(), data.size());
        if (rc == 0 || rc == -ECANCELED)
            q_ = nullptr;
        return rc;
    }
    // len writable bytes of reply, sent by commit(len' <= len); data() null
    // when over the limit.
    std::span<uint8_t> reserve(size_t len) noexcept
    {
        void *p = q_ ? ipc_request_reserve(q_, len) : nullptr;
        return p ? std::span<uint8_t>(static_cast<uint8_t *>(p), len) : std::span<uint8_t>();
    }
    int commit(size_t len) noexcept
    {
        if (q_ == nullptr)
            return -EINVAL;
        int rc = ipc_request_commit(q_, len);
        if (rc == 0 || rc == -ECANCELED)
            q_ = nullptr;
        return rc;
    }
    // Gives it up without a reply (see ipc_request_drop).
    void drop() noexcept
    {
        if (q_ != nullptr)
            ipc_request_drop(std::exchange(q_, nullptr));
    }

  private:
    ipc_request *q_ = nullptr;
};

// Where a run_zero_copy() handler writes its reply: on shared memory straight
// into the client's ring.
class Reply {
  public:
    explicit Reply(ipc_response *r) noexcept : r_(r) {}
    // Keeps the request to answer later (the handler's reply, if any, is
    // discarded): a false Request when memory is short.
    Request defer() noexcept { return Request(ipc_response_defer(r_)); }
    // len writable bytes that become the reply; data() is null when len is
    // over the limit or memory is short.
    std::span<uint8_t> reserve(size_t len) noexcept
    {
        void *p = ipc_response_reserve(r_, len);
        return p ? std::span<uint8_t>(static_cast<uint8_t *>(p), len) : std::span<uint8_t>();
    }
    // Copies data as the reply: 0, -EMSGSIZE or -ENOMEM.
    int set(std::span<const uint8_t> data) noexcept
    {
        return ipc_response_set(r_, data.data(), data.size());
    }

  private:
    ipc_response *r_;
};

enum class Action { Continue = IPC_CONTINUE, Shutdown = IPC_SHUTDOWN };

class IpcServer {
  public:
    using Handler =
        std::function<std::vector<uint8_t>(int client_id, std::span<const uint8_t> request)>;
    // Zero-copy handler: the request in place, the reply written into Reply.
    using ReplyHandler =
        std::function<Action(int client_id, std::span<const uint8_t> request, Reply &reply)>;

    // ---- the seed's API
    static std::unique_ptr<IpcServer> create_socket(const std::string &socket_path,
                                                    int max_clients)
    {
        return wrap(ipc_server_create_socket(socket_path.c_str(), max_clients));
    }
    static std::unique_ptr<IpcServer> create_shm(const std::string &base_name,
                                                 size_t max_clients)
    {
        return wrap(ipc_server_create_shm(base_name.c_str(), max_clients));
    }
    // With options (nullptr for an invalid value, as for invalid arguments).
    static std::unique_ptr<IpcServer> create_socket(const std::string &socket_path,
                                                    int max_clients, const ServerOptions &o)
    {
        ipc_server_options c = o.to_c();
        return wrap(ipc_server_create_socket_ex(socket_path.c_str(), max_clients, &c));
    }
    static std::unique_ptr<IpcServer> create_shm(const std::string &base_name,
                                                 size_t max_clients, const ServerOptions &o)
    {
        ipc_server_options c = o.to_c();
        return wrap(ipc_server_create_shm_ex(base_name.c_str(), max_clients, &c));
    }

    // Adopts a C server (may be null: every call then fails with -EINVAL).
    explicit IpcServer(ipc_server *adopt) noexcept : s_(adopt) {}
    ~IpcServer() { ipc_server_destroy(s_); }
    IpcServer(const IpcServer &) = delete;
    IpcServer &operator=(const IpcServer &) = delete;
    IpcServer(IpcServer &&o) noexcept : s_(std::exchange(o.s_, nullptr)), err_(o.err_) {}
    IpcServer &operator=(IpcServer &&o) noexcept
    {
        if (this != &o) {
            ipc_server_destroy(s_);
            s_ = std::exchange(o.s_, nullptr);
            err_ = o.err_;
        }
        return *this;
    }

    bool listen() { return ok(ipc_server_listen(s_)); }
    // A client id, or a negative errno (-ETIMEDOUT, -ECANCELED after stop).
    // 0 waits without limit.
    int wait_for_data(uint64_t timeout_ns = 0)
    {
        return static_cast<int>(set(ipc_server_wait_for_data(s_, timeout_ns)));
    }
    ssize_t recv(int client_id, void *buffer, size_t max_len)
    {
        return set(ipc_server_recv(s_, client_id, buffer, max_len));
    }
    bool send(int client_id, const void *data, size_t len)
    {
        return ok(ipc_server_send(s_, client_id, data, len));
    }
    void close() noexcept { ipc_server_close(s_); }

    // Serves until a handler throws ShutdownRequested (its response is sent
    // first) or request_shutdown() is called. Any other exception from the
    // handler stops the server and is rethrown here; that request gets an
    // empty reply. Listens first if needed. max_message_size bounds requests
    // and replies; its default is the seed's 1 MiB, and 0 takes
    // ServerOptions::max_message_size instead. With ServerOptions::workers
    // the handler runs on that many threads at once: it must be thread-safe
    // (the first exception thrown stops the server and is rethrown here).
    void run(Handler handler, size_t max_message_size = 1024 * 1024)
    {
        Context<Handler> ctx{&handler, nullptr, {}};
        set(ipc_server_run(s_, &IpcServer::trampoline, &ctx, max_message_size));
        if (ctx.error)
            std::rethrow_exception(ctx.error);
    }
    // As run(), reading each request in place and writing each reply in place
    // (Reply); the handler returns Action::Shutdown to stop after its reply.
    // max_message_size 0 takes the server's option.
    void run_zero_copy(ReplyHandler handler, size_t max_message_size = 0)
    {
        Context<ReplyHandler> ctx{&handler, nullptr, {}};
        set(ipc_server_run(s_, &IpcServer::reply_trampoline, &ctx, max_message_size));
        if (ctx.error)
            std::rethrow_exception(ctx.error);
    }
    // Makes run() and wait_for_data() return promptly. Async-signal-safe and
    // callable from any thread.
    void request_shutdown() noexcept { ipc_server_stop(s_); }
    void stop() noexcept { ipc_server_stop(s_); }

    // ---- the rest of the library, seed style (errors in last_error())

    // The ready request of client_id in place (after wait_for_data), valid
    // until release(client_id); data() is null on failure.
    std::span<const uint8_t> receive(int client_id)
    {
        const void *msg = nullptr;
        long n = set(ipc_server_peek(s_, client_id, &msg));
        return detail::lent(msg, n);
    }
    bool release(int client_id) { return ok(ipc_server_release(s_, client_id)); }
    // Space for a reply to client_id, sent by commit(); data() null on failure.
    std::span<uint8_t> loan(int client_id, size_t len)
    {
        void *buf = nullptr;
        if (!ok(ipc_server_loan(s_, client_id, len, &buf)))
            return {};
        return {static_cast<uint8_t *>(buf), len};
    }
    bool commit(int client_id, size_t len) { return ok(ipc_server_commit(s_, client_id, len)); }
    // Without waiting: a client id, or -EAGAIN.
    int try_wait_for_data() { return static_cast<int>(set(ipc_server_try_wait_for_data(s_))); }
    // A descriptor that polls readable when there may be work (ipc.h).
    int fd() { return static_cast<int>(set(ipc_server_fd(s_))); }

    // ---- std::error_code forms: noexcept, last_error() untouched
    bool listen(std::error_code &ec) noexcept
    {
        return detail::report(ipc_server_listen(s_), ec) >= 0;
    }
    // A client id, or -1 with ec set.
    int wait_for_data(uint64_t timeout_ns, std::error_code &ec) noexcept
    {
        long id = detail::report(ipc_server_wait_for_data(s_, timeout_ns), ec);
        return id < 0 ? -1 : static_cast<int>(id);
    }
    size_t recv(int client_id, std::span<uint8_t> buffer, std::error_code &ec) noexcept
    {
        long n = detail::report(ipc_server_recv(s_, client_id, buffer.data(), buffer.size()), ec);
        return n < 0 ? 0 : static_cast<size_t>(n);
    }
    bool send(int client_id, std::span<const uint8_t> msg, std::error_code &ec) noexcept
    {
        return detail::report(ipc_server_send(s_, client_id, msg.data(), msg.size()), ec) >= 0;
    }
    std::span<const uint8_t> receive(int client_id, std::error_code &ec) noexcept
    {
        const void *msg = nullptr;
        long n = detail::report(ipc_server_peek(s_, client_id, &msg), ec);
        return detail::lent(msg, n);
    }
    bool release(int client_id, std::error_code &ec) noexcept
    {
        return detail::report(ipc_server_release(s_, client_id), ec) >= 0;
    }
    std::span<uint8_t> loan(int client_id, size_t len, std::error_code &ec) noexcept
    {
        void *buf = nullptr;
        if (detail::report(ipc_server_loan(s_, client_id, len, &buf), ec) < 0)
            return {};
        return {static_cast<uint8_t *>(buf), len};
    }
    bool commit(int client_id, size_t len, std::error_code &ec) noexcept
    {
        return detail::report(ipc_server_commit(s_, client_id, len), ec) >= 0;
    }
    int try_wait_for_data(std::error_code &ec) noexcept
    {
        long id = detail::report(ipc_server_try_wait_for_data(s_), ec);
        return id < 0 ? -1 : static_cast<int>(id);
    }
    int fd(std::error_code &ec) noexcept
    {
        return static_cast<int>(detail::report(ipc_server_fd(s_), ec));
    }

    // ---- state
    Stats stats() const noexcept
    {
        Stats st{};
        ipc_server_stats(s_, &st);
        return st;
    }
    int last_error() const noexcept { return err_.get(); }
    std::error_code error() const noexcept { return to_error_code(err_.get()); }
    ipc_server *native() noexcept { return s_; }

  private:
    // The first exception a handler threw; with workers, handlers throw
    // from several threads.
    template <typename H> struct Context {
        H *handler;
        std::exception_ptr error;
        std::mutex mu;

        void fail(std::exception_ptr e) noexcept
        {
            std::lock_guard<std::mutex> g(mu);
            if (!error)
                error = std::move(e);
        }
    };

    static ipc_action set_reply(ipc_response *response, std::span<const uint8_t> r,
                                ipc_action action) noexcept
    {
        if (ipc_response_set(response, r.data(), r.size()) < 0)
            ipc_response_set(response, nullptr, 0);
        return action;
    }

    static ipc_action trampoline(void *ctx_, int client_id, const void *request, size_t len,
                                 ipc_response *response) noexcept
    {
        auto *ctx = static_cast<Context<Handler> *>(ctx_);
        std::span<const uint8_t> req(static_cast<const uint8_t *>(request), len);
        try {
            std::vector<uint8_t> reply = (*ctx->handler)(client_id, req);
            return set_reply(response, reply, IPC_CONTINUE);
        } catch (const ShutdownRequested &goodbye) {
            return set_reply(response, goodbye.response(), IPC_SHUTDOWN);
        } catch (...) {
            ctx->fail(std::current_exception());
            return set_reply(response, {}, IPC_SHUTDOWN);
        }
    }

    static ipc_action reply_trampoline(void *ctx_, int client_id, const void *request,
                                       size_t len, ipc_response *response) noexcept
    {
        auto *ctx = static_cast<Context<ReplyHandler> *>(ctx_);
        std::span<const uint8_t> req(static_cast<const uint8_t *>(request), len);
        Reply reply(response);
        try {
            return static_cast<ipc_action>((*ctx->handler)(client_id, req, reply));
        } catch (const ShutdownRequested &goodbye) {
            return set_reply(response, goodbye.response(), IPC_SHUTDOWN);
        } catch (...) {
            ctx->fail(std::current_exception());
            return set_reply(response, {}, IPC_SHUTDOWN);
        }
    }

    static std::unique_ptr<IpcServer> wrap(ipc_server *s)
    {
        return s ? std::make_unique<IpcServer>(s) : nullptr;
    }
    long set(long rc) noexcept { return err_.set(rc); }
    bool ok(long rc) noexcept { return set(rc) >= 0; }

    ipc_server *s_;
    detail::LastError err_;
};

}  // namespace ipc

#endif  // IPC_IPC_HPP
