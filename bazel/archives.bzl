"""cc_archives: every static archive and header of a cc_library tree.

For what links the library outside Bazel's C++ rules: cgo in the Go test
(there are no rules_go here; the test is an sh_test that runs the system
`go`), and tools/install.sh, which folds the archives into one libipc.a and
libipc.so. The rule walks the CcInfo of its deps and returns every archive of
the transitive closure (one per cc_library: //ipc, //ipc:transport, the socket
and shm targets, ...) plus their headers. New libraries under //ipc show up
without editing this file.

ThreadSanitizer cannot be linked into a Go binary: Go's race detector is its
own TSAN runtime and clang's collides with it (and with Go's signal handling).
The deps are therefore built through a transition that drops
`-fsanitize=thread` from copt/linkopt, so under --config=tsan the Go side runs
with `-race` against uninstrumented archives. AddressSanitizer and UBSan stay:
the test script links their runtimes (`go test -asan`, `-fsanitize=undefined`).
"""

def _strip_tsan(flags):
    return [f for f in flags if f != "-fsanitize=thread"]

def _no_tsan_impl(settings, attr):
    return {
        "//command_line_option:copt": _strip_tsan(settings["//command_line_option:copt"]),
        "//command_line_option:linkopt": _strip_tsan(settings["//command_line_option:linkopt"]),
    }

_no_tsan = transition(
    implementation = _no_tsan_impl,
    inputs = ["//command_line_option:copt", "//command_line_option:linkopt"],
    outputs = ["//command_line_option:copt", "//command_line_option:linkopt"],
)

def _archive_of(lib):
    # Prefer PIC: it links into any Go build mode.
    return lib.pic_static_library or lib.static_library

def _cc_archives_impl(ctx):
    archives = []
    headers = []
    for dep in ctx.attr.deps:
        cc = dep[CcInfo]
        for linker_input in cc.linking_context.linker_inputs.to_list():
            for lib in linker_input.libraries:
                archive = _archive_of(lib)
                if archive != None and archive not in archives:
                    archives.append(archive)
        headers.extend(cc.compilation_context.headers.to_list())
    files = archives + headers
    return [DefaultInfo(
        files = depset(files),
        runfiles = ctx.runfiles(files = files),
    )]

cc_archives = rule(
    implementation = _cc_archives_impl,
    doc = "Static archives (+ headers) of cc_library deps, for cgo and install.sh.",
    attrs = {
        "deps": attr.label_list(providers = [CcInfo], cfg = _no_tsan),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)
