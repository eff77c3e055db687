// The Barretenberg IPC module's latest C++ API, in namespace bb::ipc, over
// this library. Header-only.
//
// Code written against the module compiles unchanged once its two includes
//     #include "barretenberg/ipc/ipc_client.hpp"
//     #include "barretenberg/ipc/ipc_server.hpp"
// become
//     #include "ipc/bb_ipc.hpp"
// Where the module's meaning differs from ipc.hpp's (a timeout of 0 polls in
// wait_for_data; a request and a response ring size; a client id chosen by
// the client), these classes take the module's meaning; docs/PORTING.md lists
// every difference that remains.
//
// The seed README's API (create_shm(name, max_clients), recv into a buffer)
// is ipc/ipc.hpp, namespace ipc. Both headers may be included together:
// bb::ipc::ShutdownRequested is ipc::ShutdownRequested, and native() gives
// the ipc:: object behind each bb::ipc one, for what the module lacks
// (stats, fds, loans, std::error_code).
//
// Beyond the module's latest release, from its successor (ipc-runtime) where
// it fits: the request-id wire (Wire::Mux, the successor's framing) with
// send/receive that carry a request id, run_reactor() with a Responder that
// answers from any thread, and create_mpsc_shm(name) with default sizes.
//
// Threads: a client may have one thread in send() while another is in
// receive() / release(); request_shutdown() may be called from any thread or
// a signal handler; a Responder from any thread; everything else one thread
// at a time.
#ifndef IPC_BB_IPC_HPP
#define IPC_BB_IPC_HPP

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ipc/ipc.hpp"

namespace bb::ipc {

using ShutdownRequested = ::ipc::ShutdownRequested;
using Wire = ::ipc::Wire;

// The module's default for each ring.
inline constexpr size_t DEFAULT_RING_SIZE = static_cast<size_t>(1) << 20;

// The clients a create_mpsc_shm(name) server takes when not told.
inline constexpr size_t DEFAULT_MAX_CLIENTS = 16;

// The longest socket message a bb::ipc server takes (the module sets none).
inline constexpr size_t SOCKET_MAX_MESSAGE = static_cast<size_t>(64) << 20;

namespace detail {

// Our largest message on a ring of ring_size bytes (ipc.h).
constexpr size_t ring_max_message(size_t ring_size) { return ring_size / 2 - 16; }

// Our ring for a module ring of module_size bytes: the smallest power of two
// (>= 4096, <= 2 GiB) that carries every message the module's carries (up
// to module_size / 2 - 4 bytes).
constexpr size_t ring_for(size_t module_size)
{
    constexpr size_t limit = static_cast<size_t>(1) << 31;
    size_t r = 4096;
    while (r < limit && r / 2 < module_size / 2 + 12) /* r/2 - 16 < m/2 - 4 */
        r <<= 1;
    return r;
}

// The request id of a Wire::Mux message (little-endian, first 8 bytes).
inline uint64_t get_id(const uint8_t *p) noexcept
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

inline void put_id(uint8_t *p, uint64_t v) noexcept
{
    for (int i = 0; i < 8; i++)
        p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// A received Wire::Mux message split into its id and payload; a null span
// (last = -EPROTO) for a message too short to hold an id.
inline std::span<const uint8_t> split_id(std::span<const uint8_t> m, uint64_t &request_id,
                                         ::ipc::detail::LastError &last) noexcept
{
    if (m.data() == nullptr)
        return m;
    if (m.size() < IPC_WIRE_ID_SIZE) {
        last.set(-EPROTO);
        return {};
    }
    request_id = get_id(m.data());
    return m.subspan(IPC_WIRE_ID_SIZE);
}

}  // namespace detail

class IpcClient {
  public:
    // wire: Wire::Mux for a server of the request-id wire (beyond the module).
    static std::unique_ptr<IpcClient> create_socket(const std::string &socket_path,
                                                    Wire wire = Wire::Legacy)
    {
        ipc_client_options o = ::ipc::ClientOptions{wire}.to_c();
        return std::make_unique<IpcClient>(
            ipc_client_create_socket_ex(socket_path.c_str(), &o), wire);
    }
    // A client of a create_shm() server (one client).
    static std::unique_ptr<IpcClient> create_shm(const std::string &base_name,
                                                 Wire wire = Wire::Legacy)
    {
        ipc_client_options o = ::ipc::ClientOptions{wire}.to_c();
        return std::make_unique<IpcClient>(ipc_client_create_shm_ex(base_name.c_str(), 1, &o),
                                           wire);
    }
    // A client of a create_mpsc_shm() server. The server assigns the slot:
    // client_id is not used (docs/PORTING.md).
    static std::unique_ptr<IpcClient> create_mpsc_shm(const std::string &base_name,
                                                      size_t client_id, Wire wire = Wire::Legacy)
    {
        (void)client_id;
        return create_mpsc_shm(base_name, wire);
    }
    // The successor's form: no client id (the server assigns one).
    static std::unique_ptr<IpcClient> create_mpsc_shm(const std::string &base_name,
                                                      Wire wire = Wire::Legacy)
    {
        ipc_client_options o = ::ipc::ClientOptions{wire}.to_c();
        return std::make_unique<IpcClient>(ipc_client_create_shm_ex(base_name.c_str(), 0, &o),
                                           wire);
    }

    // Adopts a C client of that wire; a null one (invalid arguments: the
    // module fails only at connect) fails every call with -EINVAL.
    explicit IpcClient(ipc_client *adopt, Wire wire = Wire::Legacy) noexcept
        : impl_(adopt), wire_(wire)
    {
    }
    IpcClient() noexcept : impl_(nullptr) {}
    virtual ~IpcClient() = default;
    IpcClient(const IpcClient &) = delete;
    IpcClient &operator=(const IpcClient &) = delete;
    IpcClient(IpcClient &&) = delete;
    IpcClient &operator=(IpcClient &&) = delete;

    // true once connected, also when it already was. Bounded by
    // IPC_CONNECT_TIMEOUT_NS (10 s): a stopped server gives false with
    // last_error() == -ETIMEDOUT.
    virtual bool connect()
    {
        bad_.set(0);
        return impl_.connect() || impl_.last_error() == -EISCONN;
    }
    // Beyond the module: connect() within timeout_ns (0: 10 s, as connect()).
    virtual bool connect(uint64_t timeout_ns)
    {
        bad_.set(0);
        return impl_.connect(timeout_ns) || impl_.last_error() == -EISCONN;
    }
    // timeout_ns == 0 waits without limit.
    virtual bool send(const void *data, size_t len, uint64_t timeout_ns)
    {
        bad_.set(0);
        return impl_.send(data, len, timeout_ns);
    }
    // The next message in place, valid until release(); data() is null on
    // timeout or error (an empty message has a non-null data()).
    // timeout_ns == 0 waits without limit.
    virtual std::span<const uint8_t> receive(uint64_t timeout_ns)
    {
        bad_.set(0);
        return impl_.receive(timeout_ns);
    }
    // Consumes the message receive() returned (all of it: the size is not
    // needed here).
    virtual void release(size_t message_size)
    {
        bad_.set(0);
        (void)message_size;
        impl_.release();
    }
    virtual void close()
    {
        bad_.set(0);
        impl_.close();
    }

    // ---- the request-id wire (Wire::Mux; false / a null span with
    // last_error() == -EINVAL on the legacy wire)

    // Sends data as request request_id (the server's reply carries it back).
    bool send(uint64_t request_id, const void *data, size_t len, uint64_t timeout_ns)
    {
        if (!mux())
            return fail(-EINVAL);
        std::span<uint8_t> m = impl_.loan(IPC_WIRE_ID_SIZE + len, timeout_ns);
        if (m.data() == nullptr)
            return false;
        detail::put_id(m.data(), request_id);
        if (len != 0)
            std::memcpy(m.data() + IPC_WIRE_ID_SIZE, data, len);
        return impl_.commit(m.size());
    }
    // The next reply in place and the request id it answers; release() it
    // as any message. -EPROTO for a message too short to carry an id.
    std::span<const uint8_t> receive(uint64_t timeout_ns, uint64_t &request_id)
    {
        if (!mux()) {
            fail(-EINVAL);
            return {};
        }
        return detail::split_id(impl_.receive(timeout_ns), request_id, bad_);
    }
    Wire wire() const noexcept { return wire_; }

    // Beyond the module: the reason of the last failure, and the rest of the
    // library.
    int last_error() const noexcept { return bad_.get() != 0 ? bad_.get() : impl_.last_error(); }
    ::ipc::IpcClient &native() noexcept { return impl_; }

  private:
    bool mux() noexcept
    {
        bad_.set(0);
        return wire_ == Wire::Mux;
    }
    bool fail(int err) noexcept
    {
        bad_.set(err);
        return false;
    }

    ::ipc::IpcClient impl_;
    Wire wire_ = Wire::Legacy;
    ::ipc::detail::LastError bad_; // a failure of ours, not the C library's
};

// Answers one request of run_reactor(), once, from any thread. Copyable:
// copies share the request; the first call answers it, later ones return
// false. If no copy ever answers, the last one to go drops the request (on
// the request-id wire its client gets no reply; on the legacy wire it is
// disconnected: answer every request).
class Responder {
  public:
    Responder() = default;
    explicit Responder(::ipc::Request q) : q_(std::make_shared<Slot>(std::move(q))) {}

    // Sends reply as the answer: false when already answered, when the
    // reply is over the limit (the request stays unanswered), or when the
    // server stopped meanwhile (the reply is discarded).
    bool operator()(std::span<const uint8_t> reply) const
    {
        if (!q_)
            return false;
        std::lock_guard<std::mutex> g(q_->mu);
        return q_->q.reply(reply) == 0;
    }
    bool operator()(const std::vector<uint8_t> &reply) const
    {
        return (*this)(std::span<const uint8_t>(reply));
    }
    int client_id() const
    {
        if (!q_)
            return -1;
        std::lock_guard<std::mutex> g(q_->mu);
        return q_->q.client_id();
    }

  private:
    struct Slot {
        explicit Slot(::ipc::Request r) : q(std::move(r)) {}
        std::mutex mu;
        ::ipc::Request q;
    };
    std::shared_ptr<Slot> q_;
};

class IpcServer {
  public:
    using Handler = ::ipc::IpcServer::Handler;
    static constexpr size_t DEFAULT_RING_SIZE = ::bb::ipc::DEFAULT_RING_SIZE;

    // A handler of run_reactor(): it answers through respond, now or later
    // from any thread, and should not block (it runs on the I/O thread).
    // request is valid until answered.
    using AsyncHandler =
        std::function<void(int client_id, std::span<const uint8_t> request, Responder respond)>;

    // wire: Wire::Mux serves the request-id wire (beyond the module).
    static std::unique_ptr<IpcServer> create_socket(const std::string &socket_path,
                                                    int max_clients, Wire wire = Wire::Legacy)
    {
        ::ipc::ServerOptions o;
        o.max_message_size = SOCKET_MAX_MESSAGE;
        o.wire = wire;
        ipc_server_options c = o.to_c();
        return std::make_unique<IpcServer>(
            ipc_server_create_socket_ex(socket_path.c_str(), max_clients, &c), wire);
    }
    // Shared memory for one client.
    static std::unique_ptr<IpcServer> create_shm(const std::string &base_name,
                                                 size_t request_ring_size = DEFAULT_RING_SIZE,
                                                 size_t response_ring_size = DEFAULT_RING_SIZE,
                                                 Wire wire = Wire::Legacy)
    {
        return create_mpsc_shm(base_name, 1, request_ring_size, response_ring_size, wire);
    }
    // Shared memory for up to max_clients at once (the successor's
    // create_mpsc_shm(name): DEFAULT_MAX_CLIENTS and default rings).
    static std::unique_ptr<IpcServer> create_mpsc_shm(const std::string &base_name,
                                                      size_t max_clients = DEFAULT_MAX_CLIENTS,
                                                      size_t request_ring_size = DEFAULT_RING_SIZE,
                                                      size_t response_ring_size = DEFAULT_RING_SIZE,
                                                      Wire wire = Wire::Legacy)
    {
        // One ring size serves both directions: the larger (docs/PORTING.md).
        size_t ring = detail::ring_for(request_ring_size > response_ring_size ? request_ring_size
                                                                              : response_ring_size);
        ::ipc::ServerOptions o;
        o.ring_size = ring;
        o.max_message_size =
            detail::ring_max_message(ring) - (wire == Wire::Mux ? IPC_WIRE_ID_SIZE : 0);
        o.wire = wire;
        ipc_server_options c = o.to_c();
        return std::make_unique<IpcServer>(
            ipc_server_create_shm_ex(base_name.c_str(), max_clients, &c), wire);
    }

    // Adopts a C server of that wire; a null one fails every call with
    // -EINVAL.
    explicit IpcServer(ipc_server *adopt, Wire wire = Wire::Legacy) noexcept
        : impl_(adopt), wire_(wire)
    {
    }
    IpcServer() noexcept : impl_(nullptr) {}
    virtual ~IpcServer() = default;
    IpcServer(const IpcServer &) = delete;
    IpcServer &operator=(const IpcServer &) = delete;
    IpcServer(IpcServer &&) = delete;
    IpcServer &operator=(IpcServer &&) = delete;

    virtual bool listen()
    {
        bad_.set(0);
        return impl_.listen();
    }
    // Connections are accepted inside wait_for_data(): nothing to do, -1.
    virtual int accept() { return -1; }
    // A client with a whole message ready, or -1 (timeout, shutdown, error:
    // last_error() tells). timeout_ns == 0 polls.
    virtual int wait_for_data(uint64_t timeout_ns)
    {
        bad_.set(0);
        int id = timeout_ns == 0 ? impl_.try_wait_for_data() : impl_.wait_for_data(timeout_ns);
        return id < 0 ? -1 : id;
    }
    // The ready message of client_id in place, valid until release(); data()
    // is null when it has none ready or is gone.
    virtual std::span<const uint8_t> receive(int client_id)
    {
        bad_.set(0);
        return impl_.receive(client_id);
    }
    // Consumes it (all of it: the size is not needed here).
    virtual void release(int client_id, size_t message_size)
    {
        bad_.set(0);
        (void)message_size;
        impl_.release(client_id);
    }
    virtual bool send(int client_id, const void *data, size_t len)
    {
        bad_.set(0);
        return impl_.send(client_id, data, len);
    }
    virtual void close()
    {
        bad_.set(0);
        impl_.close();
    }
    // Makes run() and wait_for_data() return promptly. Async-signal-safe,
    // callable from any thread, also before run().
    virtual void request_shutdown() { impl_.request_shutdown(); }
    void request_shutdown_from_signal() noexcept { impl_.request_shutdown(); }

    // Serves until request_shutdown() or a handler throws ShutdownRequested
    // (its response is sent first). Every request gets exactly one reply, an
    // empty vector an empty one. Any other exception from the handler stops
    // the server and propagates (that request gets an empty reply first).
    virtual void run(const Handler &handler)
    {
        bad_.set(0);
        impl_.run(handler, 0);
    }

    // The successor's asynchronous loop: every request goes to handler with
    // a Responder, answered whenever and from whichever thread the
    // application likes; on the request-id wire replies leave in the order
    // they are answered, on the legacy wire in each client's request order.
    // Serves until request_shutdown() or a handler throws
    // ShutdownRequested (its response answers that request); requests still
    // unanswered then get up to 2 s (ipc_server_run). Any other exception
    // stops the server and propagates.
    void run_reactor(const AsyncHandler &handler)
    {
        bad_.set(0);
        impl_.run_zero_copy(
            [&handler](int client_id, std::span<const uint8_t> req, ::ipc::Reply &reply) {
                ::ipc::Request q = reply.defer();
                if (!q) { // out of memory: answer empty rather than never
                    reply.set({});
                    return ::ipc::Action::Continue;
                }
                std::span<const uint8_t> data = q.data();
                Responder respond(std::move(q));
                try {
                    handler(client_id, data, respond);
                } catch (const ShutdownRequested &goodbye) {
                    respond(goodbye.response());
                    return ::ipc::Action::Shutdown;
                }
                return ::ipc::Action::Continue;
            });
    }

    // ---- the request-id wire (Wire::Mux; false / a null span with
    // last_error() == -EINVAL on the legacy wire)

    // The ready message of client_id in place and its request id, after
    // wait_for_data(); release() it as any message. -EPROTO for a message
    // too short to carry an id.
    std::span<const uint8_t> receive(int client_id, uint64_t &request_id)
    {
        if (!mux())
            return {};
        return detail::split_id(impl_.receive(client_id), request_id, bad_);
    }
    // Sends data to client_id as the reply to request_id (0: a message the
    // server starts).
    bool send(int client_id, uint64_t request_id, const void *data, size_t len)
    {
        if (!mux())
            return false;
        std::span<uint8_t> m = impl_.loan(client_id, IPC_WIRE_ID_SIZE + len);
        if (m.data() == nullptr)
            return false;
        detail::put_id(m.data(), request_id);
        if (len != 0)
            std::memcpy(m.data() + IPC_WIRE_ID_SIZE, data, len);
        return impl_.commit(client_id, m.size());
    }
    Wire wire() const noexcept { return wire_; }

    int last_error() const noexcept { return bad_.get() != 0 ? bad_.get() : impl_.last_error(); }
    ::ipc::IpcServer &native() noexcept { return impl_; }

  private:
    bool mux() noexcept
    {
        return bad_.set(wire_ == Wire::Mux ? 0 : -EINVAL) == 0;
    }

    ::ipc::IpcServer impl_;
    Wire wire_ = Wire::Legacy;
    ::ipc::detail::LastError bad_; // a failure of ours, not the C library's
};

}  // namespace bb::ipc

#endif  // IPC_BB_IPC_HPP
