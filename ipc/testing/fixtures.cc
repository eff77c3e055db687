#include "ipc/testing/fixtures.h"

#include <string.h>

#include <vector>

namespace ipc_testing {

ServerProcess::Factory SocketFixture::ServerAt(const ipc_server_options &o) const
{
    std::string path = path_;
    return [path, o]() { return ipc_server_create_socket_ex(path.c_str(), 4, &o); };
}

Client SocketFixture::Connect() const
{
    Client c(ipc_client_create_socket(path_.c_str()));
    EXPECT_NE(c, nullptr);
    EXPECT_EQ(ConnectWithRetry(c.get()), 0);
    return c;
}

void SocketFixture::ExpectEcho(ipc_client *c, size_t len, uint64_t seq)
{
    constexpr uint64_t kTenSeconds = 10ull * 1000 * 1000 * 1000;
    std::vector<uint8_t> msg = Pattern(len, seq), buf(len + 16);
    ASSERT_EQ(ipc_client_send(c, msg.data(), len, kTenSeconds), 0);
    ASSERT_EQ(ipc_client_recv(c, buf.data(), buf.size(), kTenSeconds), (ssize_t)len);
    EXPECT_TRUE(MatchesPattern(buf.data(), len, seq));
}

TransportTest::TransportTest(const std::string &tag)
    : name_(shm() ? UniqueName(tag) : dir_.file(tag + ".sock"))
{
}

bool TransportTest::shm() const { return strcmp(GetParam(), "shm") == 0; }

ipc_server *TransportTest::CreateServer(size_t max_clients, const ipc_server_options *o) const
{
    return shm() ? ipc_server_create_shm_ex(name_.c_str(), max_clients, o)
                 : ipc_server_create_socket_ex(name_.c_str(), (int)max_clients, o);
}

ipc_client *TransportTest::CreateClient(size_t max_clients) const
{
    return shm() ? ipc_client_create_shm(name_.c_str(), max_clients)
                 : ipc_client_create_socket(name_.c_str());
}

}  // namespace ipc_testing
