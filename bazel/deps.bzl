"""ipc_deps(): every repository the BUILD files of ipc need, for Bazel 4.

A consumer's WORKSPACE (no .bazelrc, no flags):

    local_repository(name = "ipc", path = "/path/to/ipc")
    load("@ipc//bazel:deps.bzl", "ipc_deps")
    ipc_deps()

Each repository is declared only if the workspace has not declared one of that
name already: a consumer's own rules_cc, platforms or rules_java win. Nothing
is downloaded: rules_cc and remote_coverage_tools are small facades kept in
this repository (third_party/), platforms and rules_java come from Debian's
bazel-platforms and bazel-rules-java packages (tools/setup.sh installs them).
ipc's own tests also need @gtest (Debian's GoogleTest): ipc_deps(tests = True).
"""

def _facade_impl(rctx):
    # The facade's files live in this repository, next to the label given:
    # link each of them into the new repository.
    src = rctx.path(rctx.attr.marker).dirname
    for child in src.readdir():
        rctx.symlink(child, child.basename)

_facade = repository_rule(
    implementation = _facade_impl,
    attrs = {"marker": attr.label(allow_single_file = True, mandatory = True)},
    doc = "A repository made of one directory of ipc's third_party/.",
    local = True,
)

def _declare(name, rule, **kwargs):
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

def ipc_deps(tests = False):
    """Declares the repositories ipc needs that the workspace does not have.

    Args:
      tests: also declare @gtest (Debian's libgtest-dev and libgmock-dev
        under /usr), which only ipc's own tests use.
    """
    _declare(
        "platforms",
        native.local_repository,
        path = "/usr/share/bazel/tools/platforms",
    )
    _declare(
        "rules_java",
        native.local_repository,
        path = "/usr/share/bazel/rules/java",
    )

    # Debian's rules_cc is too new for Bazel 4: a facade over the native rules.
    _declare(
        "rules_cc",
        _facade,
        marker = Label("//third_party/rules_cc:WORKSPACE"),
    )

    # Bazel 4 asks for this repository even without `bazel coverage`.
    _declare(
        "remote_coverage_tools",
        _facade,
        marker = Label("//third_party/remote_coverage_tools:WORKSPACE"),
    )
    if tests:
        _declare(
            "gtest",
            native.new_local_repository,
            build_file = str(Label("//third_party/gtest:gtest.BUILD")),
            path = "/usr",
        )
