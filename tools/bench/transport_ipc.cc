// Our transports, driven only through the public API (//ipc): the server is
// ipc_server_run() with an echo handler, as a user would write it.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "ipc/ipc.h"
#include "tools/bench/transport.h"

namespace ipc_bench {
namespace {

// SIGTERM stops the server: blocked, and taken by sigwait() on a thread of
// its own that calls ipc_server_stop() (a plain handler may be deferred for
// long under ThreadSanitizer while the server sleeps in raw futex calls).
void *StopOnSigterm(void *server)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    int sig;
    while (sigwait(&set, &sig) != 0) {
    }
    ipc_server_stop(static_cast<ipc_server *>(server));
    return nullptr;
}

ipc_action Echo(void *, int, const void *request, size_t len, ipc_response *response)
{
    (void)ipc_response_set(response, request, len);
    return IPC_CONTINUE;
}

std::string Describe(const char *what, int rc)
{
    return std::string(what) + ": " + ipc_strerror(rc);
}

// Serves s until SIGTERM, then destroys it (removing its names).
int RunServer(ipc_server *s, const std::function<void()> &ready, std::string *err)
{
    int rc = ipc_server_listen(s);
    if (rc < 0) {
        *err = Describe("ipc_server_listen", rc);
        ipc_server_destroy(s);
        return rc;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    pthread_t stopper;
    if (pthread_create(&stopper, nullptr, StopOnSigterm, s) != 0) {
        *err = "pthread_create failed";
        ipc_server_destroy(s);
        return -EAGAIN;
    }
    ready();
    rc = ipc_server_run(s, Echo, nullptr, 0);
    if (rc < 0)
        *err = Describe("ipc_server_run", rc);
    pthread_cancel(stopper); /* sigwait() is a cancellation point */
    pthread_join(stopper, nullptr);
    ipc_server_destroy(s);
    return rc;
}

class IpcConn : public Conn {
  public:
    explicit IpcConn(ipc_client *c) : c_(c) {}
    ~IpcConn() override { ipc_client_destroy(c_); }
    // No timeout: the deadline path costs extra system calls, and the
    // parent's watchdog bounds every case anyway.
    int Send(const void *data, size_t len) override { return ipc_client_send(c_, data, len, 0); }
    ssize_t Recv(void *buf, size_t max) override { return ipc_client_recv(c_, buf, max, 0); }

  private:
    ipc_client *c_;
};

// The zero-copy client: the request is written straight into the ring
// (loan/commit), and the reply is read where it lies (peek/release); only
// the bytes the benchmark checks (its first and last 8) are copied out.
class IpcZeroCopyConn : public Conn {
  public:
    explicit IpcZeroCopyConn(ipc_client *c) : c_(c) {}
    ~IpcZeroCopyConn() override { ipc_client_destroy(c_); }
    int Send(const void *data, size_t len) override
    {
        void *buf;
        int rc = ipc_client_loan(c_, len, &buf, 0);
        if (rc < 0)
            return rc;
        memcpy(buf, data, len); /* the application building its message */
        return ipc_client_commit(c_, len);
    }
    ssize_t Recv(void *buf, size_t max) override
    {
        uint64_t fold;
        return RecvAndRead(buf, max, &fold);
    }
    ssize_t RecvAndRead(void *buf, size_t max, uint64_t *fold) override
    {
        const void *msg;
        ssize_t n = ipc_client_peek(c_, &msg, 0);
        if (n < 0)
            return n;
        if ((size_t)n > max) {
            (void)ipc_client_release(c_);
            return -EMSGSIZE;
        }
        *fold = Fold(msg, (size_t)n);
        size_t edge = n < 8 ? (size_t)n : 8;
        memcpy(buf, msg, edge);
        memcpy(static_cast<char *>(buf) + n - edge, static_cast<const char *>(msg) + n - edge,
               edge);
        return ipc_client_release(c_);
    }

  private:
    ipc_client *c_;
};

// Connects, retrying for a while as the server may still be starting.
int ConnectClient(ipc_client *c, std::string *err)
{
    int rc = 0;
    for (int tries = 0; tries < 2500; tries++) {
        rc = ipc_client_connect(c);
        if (rc != -ENOENT && rc != -ECONNREFUSED)
            break;
        usleep(2000);
    }
    if (rc < 0) {
        *err = Describe("ipc_client_connect", rc);
        ipc_client_destroy(c);
    }
    return rc;
}

class IpcSocket : public Transport {
  public:
    const char *Id() const override { return "ipc_socket"; }
    const char *Label() const override { return "ipc socket"; }
    int Prepare(const CaseSetup &setup, std::string *) override
    {
        path_ = setup.dir + "/" + setup.tag + ".sock";
        return 0;
    }
    void Cleanup() override { unlink(path_.c_str()); }
    int Serve(const CaseSetup &, const std::function<void()> &ready, std::string *err) override
    {
        ipc_server *s = ipc_server_create_socket(path_.c_str(), 0);
        if (s == nullptr) {
            *err = "ipc_server_create_socket returned NULL";
            return -EINVAL;
        }
        return RunServer(s, ready, err);
    }
    int Connect(const CaseSetup &, int, std::unique_ptr<Conn> *out, std::string *err) override
    {
        ipc_client *c = ipc_client_create_socket(path_.c_str());
        if (c == nullptr) {
            *err = "ipc_client_create_socket returned NULL";
            return -EINVAL;
        }
        int rc = ConnectClient(c, err);
        if (rc == 0)
            out->reset(new IpcConn(c));
        return rc;
    }

  private:
    std::string path_;
};

class IpcShm : public Transport {
  public:
    explicit IpcShm(bool zero_copy = false) : zero_copy_(zero_copy) {}
    const char *Id() const override { return zero_copy_ ? "ipc_shm_zc" : "ipc_shm"; }
    const char *Label() const override { return zero_copy_ ? "ipc shm zero-copy" : "ipc shm"; }
    // The factory touches nothing outside the process, so probing is free;
    // NULL for valid arguments means the transport is not built in yet.
    std::string Unavailable() override
    {
        ipc_server *s = ipc_server_create_shm("ipcbench_probe", 1);
        if (s == nullptr)
            return "ipc_server_create_shm returned NULL (transport not built in)";
        ipc_server_destroy(s);
        return "";
    }
    int Prepare(const CaseSetup &setup, std::string *) override
    {
        /* The private directory's random name keeps concurrent runs apart
         * (sandboxes and containers repeat pids, abstract names are shared). */
        std::string dir = setup.dir.substr(setup.dir.find_last_of('/') + 1);
        name_ = "ipcbench_" + std::to_string(getpid()) + "_" + dir + "_" + setup.tag;
        return 0;
    }
    int Serve(const CaseSetup &setup, const std::function<void()> &ready,
              std::string *err) override
    {
        ipc_server *s = ipc_server_create_shm(name_.c_str(), (size_t)setup.clients);
        if (s == nullptr) {
            *err = "ipc_server_create_shm returned NULL";
            return -EINVAL;
        }
        return RunServer(s, ready, err);
    }
    int Connect(const CaseSetup &setup, int, std::unique_ptr<Conn> *out,
                std::string *err) override
    {
        ipc_client *c = ipc_client_create_shm(name_.c_str(), (size_t)setup.clients);
        if (c == nullptr) {
            *err = "ipc_client_create_shm returned NULL";
            return -EINVAL;
        }
        int rc = ConnectClient(c, err);
        if (rc == 0 && zero_copy_)
            out->reset(new IpcZeroCopyConn(c));
        else if (rc == 0)
            out->reset(new IpcConn(c));
        return rc;
    }

  private:
    bool zero_copy_;
    std::string name_;
};

} // namespace

std::unique_ptr<Transport> MakeIpcSocket()
{
    return std::make_unique<IpcSocket>();
}

std::unique_ptr<Transport> MakeIpcShm()
{
    return std::make_unique<IpcShm>();
}

std::unique_ptr<Transport> MakeIpcShmZeroCopy()
{
    return std::make_unique<IpcShm>(true);
}

} // namespace ipc_bench
