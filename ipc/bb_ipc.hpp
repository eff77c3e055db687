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
// Threads: a client may have one thread in send() while another is in
// receive() / release(); request_shutdown() may be called from any thread or
// a signal handler; everything else one thread at a time.
#ifndef IPC_BB_IPC_HPP
#define IPC_BB_IPC_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ipc/ipc.hpp"

namespace bb::ipc {

using ShutdownRequested = ::ipc::ShutdownRequested;

// The module's default for each ring.
inline constexpr size_t DEFAULT_RING_SIZE = static_cast<size_t>(1) << 20;

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

}  // namespace detail

class IpcClient {
  public:
    static std::unique_ptr<IpcClient> create_socket(const std::string &socket_path)
    {
        return std::make_unique<IpcClient>(ipc_client_create_socket(socket_path.c_str()));
    }
    // A client of a create_shm() server (one client).
    static std::unique_ptr<IpcClient> create_shm(const std::string &base_name)
    {
        return std::make_unique<IpcClient>(ipc_client_create_shm(base_name.c_str(), 1));
    }
    // A client of a create_mpsc_shm() server. The server assigns the slot:
    // client_id is not used (docs/PORTING.md).
    static std::unique_ptr<IpcClient> create_mpsc_shm(const std::string &base_name,
                                                      size_t client_id)
    {
        (void)client_id;
        return std::make_unique<IpcClient>(ipc_client_create_shm(base_name.c_str(), 0));
    }

    // Adopts a C client; a null one (invalid arguments: the module fails
    // only at connect) fails every call with -EINVAL.
    explicit IpcClient(ipc_client *adopt) noexcept : impl_(adopt) {}
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
        return impl_.connect() || impl_.last_error() == -EISCONN;
    }
    // Beyond the module: connect() within timeout_ns (0: 10 s, as connect()).
    virtual bool connect(uint64_t timeout_ns)
    {
        return impl_.connect(timeout_ns) || impl_.last_error() == -EISCONN;
    }
    // timeout_ns == 0 waits without limit.
    virtual bool send(const void *data, size_t len, uint64_t timeout_ns)
    {
        return impl_.send(data, len, timeout_ns);
    }
    // The next message in place, valid until release(); data() is null on
    // timeout or error (an empty message has a non-null data()).
    // timeout_ns == 0 waits without limit.
    virtual std::span<const uint8_t> receive(uint64_t timeout_ns)
    {
        return impl_.receive(timeout_ns);
    }
    // Consumes the message receive() returned (all of it: the size is not
    // needed here).
    virtual void release(size_t message_size)
    {
        (void)message_size;
        impl_.release();
    }
    virtual void close() { impl_.close(); }

    // Beyond the module: the reason of the last failure, and the rest of the
    // library.
    int last_error() const noexcept { return impl_.last_error(); }
    ::ipc::IpcClient &native() noexcept { return impl_; }

  private:
    ::ipc::IpcClient impl_;
};

class IpcServer {
  public:
    using Handler = ::ipc::IpcServer::Handler;
    static constexpr size_t DEFAULT_RING_SIZE = ::bb::ipc::DEFAULT_RING_SIZE;

    static std::unique_ptr<IpcServer> create_socket(const std::string &socket_path,
                                                    int max_clients)
    {
        ::ipc::ServerOptions o;
        o.max_message_size = SOCKET_MAX_MESSAGE;
        ipc_server_options c = o.to_c();
        return std::make_unique<IpcServer>(
            ipc_server_create_socket_ex(socket_path.c_str(), max_clients, &c));
    }
    // Shared memory for one client.
    static std::unique_ptr<IpcServer> create_shm(const std::string &base_name,
                                                 size_t request_ring_size = DEFAULT_RING_SIZE,
                                                 size_t response_ring_size = DEFAULT_RING_SIZE)
    {
        return create_mpsc_shm(base_name, 1, request_ring_size, response_ring_size);
    }
    // Shared memory for up to max_clients at once.
    static std::unique_ptr<IpcServer> create_mpsc_shm(const std::string &base_name,
                                                      size_t max_clients,
                                                      size_t request_ring_size = DEFAULT_RING_SIZE,
                                                      size_t response_ring_size = DEFAULT_RING_SIZE)
    {
        // One ring size serves both directions: the larger (docs/PORTING.md).
        size_t ring = detail::ring_for(request_ring_size > response_ring_size ? request_ring_size
                                                                              : response_ring_size);
        ::ipc::ServerOptions o;
        o.ring_size = ring;
        o.max_message_size = detail::ring_max_message(ring);
        ipc_server_options c = o.to_c();
        return std::make_unique<IpcServer>(
            ipc_server_create_shm_ex(base_name.c_str(), max_clients, &c));
    }

    // Adopts a C server; a null one fails every call with -EINVAL.
    explicit IpcServer(ipc_server *adopt) noexcept : impl_(adopt) {}
    IpcServer() noexcept : impl_(nullptr) {}
    virtual ~IpcServer() = default;
    IpcServer(const IpcServer &) = delete;
    IpcServer &operator=(const IpcServer &) = delete;
    IpcServer(IpcServer &&) = delete;
    IpcServer &operator=(IpcServer &&) = delete;

    virtual bool listen() { return impl_.listen(); }
    // Connections are accepted inside wait_for_data(): nothing to do, -1.
    virtual int accept() { return -1; }
    // A client with a whole message ready, or -1 (timeout, shutdown, error:
    // last_error() tells). timeout_ns == 0 polls.
    virtual int wait_for_data(uint64_t timeout_ns)
    {
        int id = timeout_ns == 0 ? impl_.try_wait_for_data() : impl_.wait_for_data(timeout_ns);
        return id < 0 ? -1 : id;
    }
    // The ready message of client_id in place, valid until release(); data()
    // is null when it has none ready or is gone.
    virtual std::span<const uint8_t> receive(int client_id) { return impl_.receive(client_id); }
    // Consumes it (all of it: the size is not needed here).
    virtual void release(int client_id, size_t message_size)
    {
        (void)message_size;
        impl_.release(client_id);
    }
    virtual bool send(int client_id, const void *data, size_t len)
    {
        return impl_.send(client_id, data, len);
    }
    virtual void close() { impl_.close(); }
    // Makes run() and wait_for_data() return promptly. Async-signal-safe,
    // callable from any thread, also before run().
    virtual void request_shutdown() { impl_.request_shutdown(); }
    void request_shutdown_from_signal() noexcept { impl_.request_shutdown(); }

    // Serves until request_shutdown() or a handler throws ShutdownRequested
    // (its response is sent first). Every request gets exactly one reply, an
    // empty vector an empty one. Any other exception from the handler stops
    // the server and propagates (that request gets an empty reply first).
    virtual void run(const Handler &handler) { impl_.run(handler, 0); }

    int last_error() const noexcept { return impl_.last_error(); }
    ::ipc::IpcServer &native() noexcept { return impl_; }

  private:
    ::ipc::IpcServer impl_;
};

}  // namespace bb::ipc

#endif  // IPC_BB_IPC_HPP
