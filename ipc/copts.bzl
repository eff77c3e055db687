"""What every C target of ipc needs to compile, in one place.

A consumer's Bazel workspace never sees our .bazelrc, so nothing the library
needs may live there: each C target (library, test, binary) sets

    copts = IPC_C_COPTS,
    local_defines = IPC_LOCAL_DEFINES,

local_defines reach only the target's own sources, never its dependents.
"""

# memfd_create, F_SEAL_*, struct ucred, POLLRDHUP, accept4, ppoll: Linux and
# GNU interfaces that strict C11 headers hide.
IPC_LOCAL_DEFINES = ["_GNU_SOURCE"]

# The library is C11 whatever the consumer's default C dialect (gcc 12 and
# clang 14 default to gnu17). Only for targets whose sources are all C.
IPC_C_COPTS = ["-std=c11"]
