// Shared reporting for the stress tests.
#ifndef IPC_STRESS_TEST_UTIL_H
#define IPC_STRESS_TEST_UTIL_H

#include <string>
#include <vector>

namespace ipc_stress {

inline std::string Join(const std::vector<std::string> &v)
{
    std::string s;
    for (const std::string &x : v)
        s += "\n  " + x;
    return s;
}

}  // namespace ipc_stress

#endif  // IPC_STRESS_TEST_UTIL_H
