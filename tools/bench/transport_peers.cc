// The peers: nng and ZeroMQ REQ/REP over ipc://, each used the way its own
// documentation recommends for an echo server (the received message object
// is sent back, no copy). REQ allows one request in flight, so pipelined
// clients use what each library offers for that: nng REQ contexts (one per
// request in flight), ZeroMQ DEALER talking to the same REP server.
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include <string>
#include <vector>

#include "tools/bench/transport.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IPC_BENCH_TSAN 1
#endif
#endif

namespace ipc_bench {
namespace {

// ---------------------------------------------------------------------- nng

int NngFail(const char *what, int rv, std::string *err)
{
    *err = std::string(what) + ": " + nng_strerror(rv);
    return -EIO;
}

// REQ: one request at a time on the socket itself.
class NngConn : public Conn {
  public:
    explicit NngConn(nng_socket s) : s_(s) {}
    ~NngConn() override { nng_close(s_); }
    int Send(const void *data, size_t len) override
    {
        return nng_send(s_, const_cast<void *>(data), len, 0) == 0 ? 0 : -EIO;
    }
    ssize_t Recv(void *buf, size_t max) override
    {
        size_t n = max;
        return nng_recv(s_, buf, &n, 0) == 0 ? (ssize_t)n : -EIO;
    }

  private:
    nng_socket s_;
};

// REQ with one context per request in flight: request k uses context
// k % window, whose previous reply was read before k was sent.
class NngPipelinedConn : public Conn {
  public:
    NngPipelinedConn(nng_socket s, int window) : s_(s), ctx_((size_t)window), aio_((size_t)window)
    {
    }
    ~NngPipelinedConn() override
    {
        for (nng_aio *a : aio_)
            if (a != nullptr)
                nng_aio_free(a);
        nng_close(s_); // closes the contexts too
    }
    int Open(std::string *err)
    {
        for (size_t i = 0; i < ctx_.size(); i++) {
            int rv = nng_ctx_open(&ctx_[i], s_);
            if (rv == 0)
                rv = nng_aio_alloc(&aio_[i], nullptr, nullptr);
            if (rv != 0)
                return NngFail("nng_ctx_open", rv, err);
        }
        return 0;
    }
    int Send(const void *data, size_t len) override;
    ssize_t Recv(void *buf, size_t max) override;

  private:
    nng_socket s_;
    std::vector<nng_ctx> ctx_;
    std::vector<nng_aio *> aio_;
    size_t sent_ = 0;
    size_t received_ = 0;
};

int NngPipelinedConn::Send(const void *data, size_t len)
{
    size_t i = sent_++ % ctx_.size();
    nng_msg *m;
    if (nng_msg_alloc(&m, len) != 0)
        return -ENOMEM;
    memcpy(nng_msg_body(m), data, len);
    nng_aio_set_msg(aio_[i], m);
    nng_ctx_send(ctx_[i], aio_[i]);
    nng_aio_wait(aio_[i]); // queued: completes without waiting for the peer
    if (nng_aio_result(aio_[i]) != 0) {
        nng_msg_free(m);
        return -EIO;
    }
    nng_ctx_recv(ctx_[i], aio_[i]); // the reply is awaited in Recv
    return 0;
}

ssize_t NngPipelinedConn::Recv(void *buf, size_t max)
{
    size_t i = received_++ % ctx_.size();
    nng_aio_wait(aio_[i]);
    if (nng_aio_result(aio_[i]) != 0)
        return -EIO;
    nng_msg *m = nng_aio_get_msg(aio_[i]);
    size_t n = nng_msg_len(m);
    if (n > max) {
        nng_msg_free(m);
        return -EMSGSIZE;
    }
    memcpy(buf, nng_msg_body(m), n);
    nng_msg_free(m);
    return (ssize_t)n;
}

class Nng : public Transport {
  public:
    const char *Id() const override { return "nng"; }
    const char *Label() const override { return "nng REQ/REP"; }
    int Prepare(const CaseSetup &setup, std::string *) override
    {
        path_ = setup.dir + "/" + setup.tag + ".nng";
        return 0;
    }
    void Cleanup() override { unlink(path_.c_str()); }
    int Serve(const CaseSetup &, const std::function<void()> &ready, std::string *err) override
    {
        nng_socket s;
        int rv = nng_rep0_open(&s);
        if (rv == 0)
            rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0); // 1 MiB frames + header
        if (rv == 0)
            rv = nng_listen(s, ("ipc://" + path_).c_str(), nullptr, 0);
        if (rv != 0)
            return NngFail("nng rep listen", rv, err);
        ready();
        for (;;) { // until SIGTERM
            nng_msg *m;
            if (nng_recvmsg(s, &m, 0) != 0)
                continue;
            if (nng_sendmsg(s, m, 0) != 0)
                nng_msg_free(m);
        }
    }
    int Connect(const CaseSetup &setup, int, std::unique_ptr<Conn> *out,
                std::string *err) override;

  private:
    std::string path_;
};

int Nng::Connect(const CaseSetup &setup, int, std::unique_ptr<Conn> *out, std::string *err)
{
    nng_socket s;
    int rv = nng_req0_open(&s);
    if (rv != 0)
        return NngFail("nng_req0_open", rv, err);
    rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
    for (int tries = 0; rv == 0; tries++) {
        rv = nng_dial(s, ("ipc://" + path_).c_str(), nullptr, 0);
        if (rv != NNG_ECONNREFUSED && rv != NNG_ENOENT)
            break;
        if (tries > 2500)
            break;
        usleep(2000);
    }
    if (rv != 0) {
        nng_close(s);
        return NngFail("nng_dial", rv, err);
    }
    if (setup.window <= 1) {
        out->reset(new NngConn(s));
        return 0;
    }
    auto conn = std::make_unique<NngPipelinedConn>(s, setup.window);
    int rc = conn->Open(err);
    if (rc == 0)
        *out = std::move(conn);
    return rc;
}

// ------------------------------------------------------------------- ZeroMQ

int ZmqFail(const char *what, std::string *err)
{
    int e = errno;
    *err = std::string(what) + ": " + zmq_strerror(e);
    return -e;
}

class ZmqConn : public Conn {
  public:
    ZmqConn(void *ctx, void *s, bool dealer) : ctx_(ctx), s_(s), dealer_(dealer) {}
    ~ZmqConn() override
    {
        zmq_close(s_);
        zmq_ctx_term(ctx_);
    }
    int Send(const void *data, size_t len) override
    {
        // DEALER writes the empty delimiter frame REQ would have added.
        if (dealer_ && zmq_send(s_, "", 0, ZMQ_SNDMORE) < 0)
            return -errno;
        return zmq_send(s_, data, len, 0) < 0 ? -errno : 0;
    }
    ssize_t Recv(void *buf, size_t max) override
    {
        if (dealer_ && zmq_recv(s_, buf, max, 0) < 0) // the delimiter
            return -errno;
        int n = zmq_recv(s_, buf, max, 0);
        if (n < 0)
            return -errno;
        return (size_t)n > max ? -EMSGSIZE : n;
    }

  private:
    void *ctx_;
    void *s_;
    bool dealer_;
};

class Zmq : public Transport {
  public:
    const char *Id() const override { return "zmq"; }
    const char *Label() const override { return "ZeroMQ REQ/REP"; }
    std::string Unavailable() override
    {
#ifdef IPC_BENCH_TSAN
        // libzmq's lock-free queues are not instrumented: TSan reports
        // races inside it that are not there.
        return "not run under ThreadSanitizer (libzmq is not instrumented)";
#else
        return "";
#endif
    }
    int Prepare(const CaseSetup &setup, std::string *) override
    {
        path_ = setup.dir + "/" + setup.tag + ".zmq";
        return 0;
    }
    void Cleanup() override { unlink(path_.c_str()); }
    int Serve(const CaseSetup &, const std::function<void()> &ready, std::string *err) override
    {
        void *ctx = zmq_ctx_new();
        void *s = ctx ? zmq_socket(ctx, ZMQ_REP) : nullptr;
        if (s == nullptr || zmq_bind(s, ("ipc://" + path_).c_str()) < 0)
            return ZmqFail("zmq rep bind", err);
        ready();
        for (;;) { // until SIGTERM
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, 0) < 0 || zmq_msg_send(&m, s, 0) < 0)
                zmq_msg_close(&m);
        }
    }
    int Connect(const CaseSetup &setup, int, std::unique_ptr<Conn> *out,
                std::string *err) override
    {
        bool dealer = setup.window > 1;
        void *ctx = zmq_ctx_new();
        void *s = ctx ? zmq_socket(ctx, dealer ? ZMQ_DEALER : ZMQ_REQ) : nullptr;
        int linger = 0;
        if (s == nullptr || zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) < 0 ||
            zmq_connect(s, ("ipc://" + path_).c_str()) < 0) {
            int rc = ZmqFail("zmq connect", err);
            if (s != nullptr)
                zmq_close(s);
            if (ctx != nullptr)
                zmq_ctx_term(ctx);
            return rc;
        }
        out->reset(new ZmqConn(ctx, s, dealer));
        return 0;
    }

  private:
    std::string path_;
};

} // namespace

std::unique_ptr<Transport> MakeNng()
{
    return std::make_unique<Nng>();
}

std::unique_ptr<Transport> MakeZmq()
{
    return std::make_unique<Zmq>();
}

} // namespace ipc_bench
