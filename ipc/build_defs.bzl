"""Macros for ipc's own BUILD files: one per kind of target.

Each macro sets once what every target of its kind needs, so a BUILD file
says only what a target is: its name, what it depends on, who may see it.
Sources follow the name (`wait` is wait.c and wait.h, `wait_test` is
wait_test.cc) unless srcs or hdrs say otherwise.

A consumer's workspace loads our BUILD files, and with them this file: it may
load only what ipc_deps() gives a consumer (rules_cc). Only the test macros
name @gtest, which a consumer's build never reaches.
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")
load("//ipc:copts.bzl", "IPC_C_COPTS", "IPC_LOCAL_DEFINES")

def _or(value, default):
    return value if value != None else default

def ipc_c_library(name, srcs = None, hdrs = None, **kwargs):
    """A C11 library of ipc: <name>.c and <name>.h, ipc's copts and defines."""
    cc_library(
        name = name,
        srcs = _or(srcs, [name + ".c"]),
        hdrs = _or(hdrs, [name + ".h"]),
        copts = IPC_C_COPTS,
        local_defines = IPC_LOCAL_DEFINES,
        **kwargs
    )

def ipc_c_test(name, size, deps, **kwargs):
    """A plain-C11 test: <name>.c, ipc's copts and defines, no framework."""
    cc_test(
        name = name,
        size = size,
        srcs = [name + ".c"],
        copts = IPC_C_COPTS,
        local_defines = IPC_LOCAL_DEFINES,
        deps = deps,
        **kwargs
    )

def ipc_gtest(name, size, deps, srcs = None, **kwargs):
    """A GoogleTest driver beside its unit: <name>.cc linked with gtest_main."""
    cc_test(
        name = name,
        size = size,
        srcs = _or(srcs, [name + ".cc"]),
        deps = deps + ["@gtest//:gtest_main"],
        **kwargs
    )

def ipc_api_test(name, size, **kwargs):
    """A GoogleTest driver that uses ipc only as a user does: through //ipc,
    with the //ipc/testing harness (processes, RAII owners, fixtures). A test
    that also reaches an internal target is an ipc_gtest with its deps."""
    ipc_gtest(
        name = name,
        size = size,
        deps = ["//ipc", "//ipc/testing"],
        **kwargs
    )

def ipc_test_library(name, srcs = None, hdrs = None, **kwargs):
    """C++ helpers for ipc's tests only (testonly): <name>.cc and <name>.h."""
    cc_library(
        name = name,
        testonly = True,
        srcs = _or(srcs, [name + ".cc"]),
        hdrs = _or(hdrs, [name + ".h"]),
        **kwargs
    )

# libFuzzer build flags; tools/run_fuzzers.sh also instruments the
# dependencies (--copt=-fsanitize=fuzzer-no-link,...).
_FUZZ_COPTS = [
    "-fsanitize=fuzzer,address,undefined",
    "-fno-sanitize-recover=all",
    "-g",
]

_FUZZ_LINKOPTS = [
    "-fsanitize=fuzzer,address,undefined",
    "-fsanitize-link-c++-runtime",
]

def ipc_fuzz_target(name, deps):
    """A libFuzzer target <name> (<name>.cc) and <name>_regression_test.

    <name> needs clang with libclang-rt-14-dev: tagged manual so that
    `bazel test //...` never builds it; tools/run_fuzzers.sh runs it.
    <name>_regression_test replays the package's corpus/ (the seeds and every
    crash the fuzzer found, corpus/regression-*) without libFuzzer, in every
    config.
    """
    srcs = [name + ".cc"]
    deps = deps + ["//ipc/testing:fuzz_check"]
    cc_binary(
        name = name,
        testonly = True,
        srcs = srcs,
        copts = _FUZZ_COPTS,
        linkopts = _FUZZ_LINKOPTS,
        tags = ["manual"],
        deps = deps,
    )
    cc_test(
        name = name + "_regression_test",
        size = "small",
        srcs = srcs,
        args = [native.package_name() + "/corpus"],
        data = native.glob(["corpus/**"]),
        deps = deps + ["//ipc/socket/fuzz:replay_main"],
    )
