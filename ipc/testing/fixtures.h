// GoogleTest fixtures and expectations shared by the tests of the public API:
// what several test files would otherwise each write for themselves.
#ifndef IPC_TESTING_FIXTURES_H
#define IPC_TESTING_FIXTURES_H

#include <cstddef>
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "ipc/ipc.h"
#include "ipc/testing/testing.h"

namespace ipc_testing {

// A socket test: path_ is a socket file `file` in a fresh directory.
class SocketFixture : public ::testing::Test {
  protected:
    explicit SocketFixture(const std::string &file) : path_(dir_.file(file)) {}

    // For ServerProcess: a socket server at path_ for 4 clients.
    ServerProcess::Factory ServerAt(const ipc_server_options &o) const;
    // A client of path_, connected (retrying while the server comes up).
    Client Connect() const;
    // Sends Pattern(len, seq) on c and expects exactly it back (10 s each way).
    static void ExpectEcho(ipc_client *c, size_t len, uint64_t seq);

    ScopedDir dir_;
    std::string path_;
};

// A test run on each transport, instantiated with
//   INSTANTIATE_TEST_SUITE_P(Transports, Suite, ::testing::Values("socket", "shm"));
// name_ is where its server listens: a unique shared-memory name, or the
// socket <tag>.sock in a fresh directory.
class TransportTest : public ::testing::TestWithParam<const char *> {
  protected:
    explicit TransportTest(const std::string &tag);

    bool shm() const;
    // A server or a client of name_ on this test's transport.
    ipc_server *CreateServer(size_t max_clients, const ipc_server_options *o = nullptr) const;
    ipc_client *CreateClient(size_t max_clients) const;

    ScopedDir dir_;
    std::string name_;
};

}  // namespace ipc_testing

#endif  // IPC_TESTING_FIXTURES_H
