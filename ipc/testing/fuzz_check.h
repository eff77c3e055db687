// CHECK for fuzz targets: a failed invariant traps, which libFuzzer and the
// corpus replay both report as a crash (no gtest, no abort handler).
#ifndef IPC_TESTING_FUZZ_CHECK_H
#define IPC_TESTING_FUZZ_CHECK_H

#define CHECK(cond)            \
    do {                       \
        if (!(cond))           \
            __builtin_trap();  \
    } while (0)

#endif  // IPC_TESTING_FUZZ_CHECK_H
