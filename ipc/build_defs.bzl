"""Macros for ipc's own BUILD files."""

load("@rules_cc//cc:defs.bzl", "cc_test")

def ipc_gtest(name, size, deps, srcs = None, **kwargs):
    """A GoogleTest driver beside its unit: <name>.cc linked with gtest_main."""
    cc_test(
        name = name,
        size = size,
        srcs = srcs if srcs != None else [name + ".cc"],
        deps = deps + ["@gtest//:gtest_main"],
        **kwargs
    )
