// C++20 wrapper over ipc.h with the seed's API: IpcClient / IpcServer
// factories, bool results, RAII, run() with a std::function handler and the
// ShutdownRequested exception. Header-only.
//
// bool-returning calls keep the failing negative errno in last_error();
// recv() returns it directly (< 0), as the C API does.
#ifndef IPC_IPC_HPP
#define IPC_IPC_HPP

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ipc/ipc.h"

namespace ipc {

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

class IpcClient {
  public:
    static std::unique_ptr<IpcClient> create_socket(const std::string &socket_path)
    {
        return wrap(ipc_client_create_socket(socket_path.c_str()));
    }
    static std::unique_ptr<IpcClient> create_shm(const std::string &base_name,
                                                 size_t max_clients)
    {
        return wrap(ipc_client_create_shm(base_name.c_str(), max_clients));
    }

    ~IpcClient() { ipc_client_destroy(c_); }
    IpcClient(const IpcClient &) = delete;
    IpcClient &operator=(const IpcClient &) = delete;

    bool connect() { return ok(ipc_client_connect(c_)); }
    bool send(const void *data, size_t len, uint64_t timeout_ns = 0)
    {
        return ok(ipc_client_send(c_, data, len, timeout_ns));
    }
    ssize_t recv(void *buffer, size_t max_len, uint64_t timeout_ns = 0)
    {
        ssize_t n = ipc_client_recv(c_, buffer, max_len, timeout_ns);
        last_error_ = n < 0 ? static_cast<int>(n) : 0;
        return n;
    }
    void close() { ipc_client_close(c_); }

    int last_error() const noexcept { return last_error_; }
    ipc_client *native() noexcept { return c_; }

  private:
    explicit IpcClient(ipc_client *c) : c_(c) {}
    static std::unique_ptr<IpcClient> wrap(ipc_client *c)
    {
        return c ? std::unique_ptr<IpcClient>(new IpcClient(c)) : nullptr;
    }
    bool ok(int rc)
    {
        last_error_ = rc < 0 ? rc : 0;
        return rc >= 0;
    }

    ipc_client *c_;
    int last_error_ = 0;
};

class IpcServer {
  public:
    using Handler =
        std::function<std::vector<uint8_t>(int client_id, std::span<const uint8_t> request)>;

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

    ~IpcServer() { ipc_server_destroy(s_); }
    IpcServer(const IpcServer &) = delete;
    IpcServer &operator=(const IpcServer &) = delete;

    bool listen() { return ok(ipc_server_listen(s_)); }
    int wait_for_data(uint64_t timeout_ns = 0)
    {
        int id = ipc_server_wait_for_data(s_, timeout_ns);
        last_error_ = id < 0 ? id : 0;
        return id;
    }
    ssize_t recv(int client_id, void *buffer, size_t max_len)
    {
        ssize_t n = ipc_server_recv(s_, client_id, buffer, max_len);
        last_error_ = n < 0 ? static_cast<int>(n) : 0;
        return n;
    }
    bool send(int client_id, const void *data, size_t len)
    {
        return ok(ipc_server_send(s_, client_id, data, len));
    }
    void close() { ipc_server_close(s_); }

    // Serves until a handler throws ShutdownRequested (its response is sent
    // first) or stop() is called. Any other exception from the handler stops
    // the server and is rethrown here; that request gets an empty reply.
    void run(Handler handler, size_t max_message_size = 1024 * 1024)
    {
        Context ctx{&handler, nullptr};
        int rc = ipc_server_run(s_, &IpcServer::trampoline, &ctx, max_message_size);
        last_error_ = rc < 0 ? rc : 0;
        if (ctx.error)
            std::rethrow_exception(ctx.error);
    }
    // Async-signal-safe; callable from any thread.
    void stop() noexcept { ipc_server_stop(s_); }

    int last_error() const noexcept { return last_error_; }
    ipc_server *native() noexcept { return s_; }

  private:
    struct Context {
        Handler *handler;
        std::exception_ptr error;
    };

    static ipc_action trampoline(void *ctx_, int client_id, const void *request, size_t len,
                                 ipc_response *response) noexcept
    {
        auto *ctx = static_cast<Context *>(ctx_);
        std::span<const uint8_t> req(static_cast<const uint8_t *>(request), len);
        try {
            std::vector<uint8_t> reply = (*ctx->handler)(client_id, req);
            if (ipc_response_set(response, reply.data(), reply.size()) < 0)
                ipc_response_set(response, nullptr, 0);
            return IPC_CONTINUE;
        } catch (const ShutdownRequested &goodbye) {
            const auto &r = goodbye.response();
            if (ipc_response_set(response, r.data(), r.size()) < 0)
                ipc_response_set(response, nullptr, 0);
            return IPC_SHUTDOWN;
        } catch (...) {
            ctx->error = std::current_exception();
            return IPC_SHUTDOWN;
        }
    }

    explicit IpcServer(ipc_server *s) : s_(s) {}
    static std::unique_ptr<IpcServer> wrap(ipc_server *s)
    {
        return s ? std::unique_ptr<IpcServer>(new IpcServer(s)) : nullptr;
    }
    bool ok(int rc)
    {
        last_error_ = rc < 0 ? rc : 0;
        return rc >= 0;
    }

    ipc_server *s_;
    int last_error_ = 0;
};

}  // namespace ipc

// Drop-in names for code written against the Barretenberg IPC module.
namespace bb::ipc {
using ::ipc::IpcClient;
using ::ipc::IpcServer;
using ::ipc::ShutdownRequested;
}  // namespace bb::ipc

#endif  // IPC_IPC_HPP
