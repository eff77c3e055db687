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

}  // namespace ipc_testing

#endif  // IPC_TESTING_FIXTURES_H
