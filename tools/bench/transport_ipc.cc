// Our transports, driven only through the public API (//ipc): the server is
// ipc_server_run() with an echo handler, as a user would write it.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "ipc/ipc.h"
#include "tools/bench/transport.h"

namespace ipc_bench {
namespace {

ipc_server *g_server = nullptr; // the server this process runs, for SIGTERM

void StopOnSignal(int)
{
    ipc_server_stop(g_server); // async-signal-safe by contract
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
    g_server = s;
    struct sigaction sa = {};
    sa.sa_handler = StopOnSignal;
    sigaction(SIGTERM, &sa, nullptr);
    ready();
    rc = ipc_server_run(s, Echo, nullptr, 0);
    if (rc < 0)
        *err = Describe("ipc_server_run", rc);
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
    const char *Id() const override { return "ipc_shm"; }
    const char *Label() const override { return "ipc shm"; }
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
        name_ = "ipcbench_" + std::to_string(getpid()) + "_" + setup.tag;
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
        if (rc == 0)
            out->reset(new IpcConn(c));
        return rc;
    }

  private:
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

} // namespace ipc_bench
