#!/usr/bin/env bash
# Builds and tests the Go module under stress/go with the system `go` (no
# rules_go), linking the C library through cgo.
#
# Inputs (from the sh_test's env, as runfiles paths):
#   IPC_ARCHIVES       every static archive of //ipc's closure + its headers
#   IPC_C_ECHO_SERVER  the C echo server the compatibility tests start
#   IPC_C_PING         the C client's latency loop
#
# Checks gofmt, runs `go vet ./...`, `go test -v ./...`, then the race run. The
# archives' instrumentation selects the flags:
#   plain (default, opt, tsan*)  -> go test, then go test -race
#   AddressSanitizer             -> go test -asan (it excludes -race)
#   UBSan                        -> -fsanitize=undefined on the link (its
#                                   runtime clashes with -race's: no -race)
# * //bazel:archives.bzl builds the archives without TSAN: clang's TSAN runtime cannot
#   share a process with Go's race detector, which covers the Go side instead.
set -euo pipefail

die() { echo "go_test.sh: $*" >&2; exit 1; }

[[ -n "${TEST_SRCDIR:-}" && -n "${TEST_TMPDIR:-}" ]] || die "run me with bazel test //stress/go:go_test"
root="$TEST_SRCDIR/${TEST_WORKSPACE:-ipc}"
cd "$root"

# --- inputs -------------------------------------------------------------
archives=()
for f in $IPC_ARCHIVES; do
  if [[ "$f" == *.a ]]; then archives+=("$root/$f"); fi
done
((${#archives[@]} > 0)) || die "no archives in IPC_ARCHIVES"
[[ -f "$root/ipc/ipc.h" ]] || die "ipc/ipc.h is not in the runfiles"
echo "go_test.sh: linking ${#archives[@]} archives: ${archives[*]##*/}"

# --- sanitizer detection --------------------------------------------------
undefined_syms="$(nm -u "${archives[@]}" 2>/dev/null || true)"
build_flags=()
extra_ld=""
race=1
if grep -q '__tsan_' <<<"$undefined_syms"; then
  die "archives are TSAN-instrumented; bazel/archives.bzl's transition should prevent that"
fi
if grep -q '__asan_' <<<"$undefined_syms"; then
  echo "go_test.sh: AddressSanitizer archives: go test -asan, no -race run"
  build_flags+=(-asan)
  race=0
fi
if grep -q '__ubsan_handle_' <<<"$undefined_syms"; then
  echo "go_test.sh: UBSan archives: linking the UBSan runtime, no -race run"
  extra_ld="-fsanitize=undefined"
  # Its sanitizer_common clashes with the one inside Go's race runtime.
  race=0
  # With -fsanitize in CGO_LDFLAGS, Go's internal linker fails on packages
  # that use cgo only through the standard library (runtime/cgo's sigaction):
  # link every test binary with clang.
  build_flags+=(-ldflags=-linkmode=external)
fi

# --- Go environment (everything under TEST_TMPDIR; offline) ---------------
export HOME="$TEST_TMPDIR/home"
export GOCACHE="$TEST_TMPDIR/gocache"
export GOPATH="$TEST_TMPDIR/gopath"
export GOFLAGS="-buildvcs=false"
export GOTOOLCHAIN=local GOPROXY=off GOSUMDB=off GO111MODULE=on
export CGO_ENABLED=1 CC=clang
export CGO_LDFLAGS="$extra_ld"
# The binding finds the library through pkg-config (`#cgo pkg-config: ipc`),
# as a Go user's build finds an installed one: this ipc.pc names Bazel's
# archives instead of libipc.
version=$(sed -n 's/^#define IPC_VERSION_[A-Z]* \([0-9][0-9]*\)$/\1/p' "$root/ipc/ipc.h" | paste -sd.)
export PKG_CONFIG_PATH="$TEST_TMPDIR/pkgconfig"
mkdir -p "$PKG_CONFIG_PATH"
cat >"$PKG_CONFIG_PATH/ipc.pc" <<EOF
Name: ipc
Description: ipc from Bazel's archives, for go_test.sh
Version: $version
Cflags: -I$root
Libs: -Wl,--start-group ${archives[*]} -Wl,--end-group -lpthread
EOF
echo "go_test.sh: ipc.pc for ipc $version: $(pkg-config --modversion ipc)"
export IPC_C_ECHO_SERVER="$root/$IPC_C_ECHO_SERVER"
export IPC_C_PING="$root/$IPC_C_PING"
mkdir -p "$HOME" "$GOCACHE" "$GOPATH"

# A private copy: go must not write next to the runfiles symlinks.
src="$TEST_TMPDIR/src"
mkdir -p "$src"
cp -rL "$root/stress/go/." "$src/"
cd "$src"
go version

echo "=== gofmt -l ."
unformatted="$("$(go env GOROOT)/bin/gofmt" -l .)"
[[ -z "$unformatted" ]] || die "not gofmt-formatted: $unformatted"

echo "=== go vet ./..."
go vet "${build_flags[@]}" ./...

echo "=== go test -v ${build_flags[*]} ./..."
go test -v -count=1 -timeout 600s "${build_flags[@]}" ./...

if ((race)); then
  echo "=== go test -race ${build_flags[*]} ./..."
  go test -race -count=1 -timeout 600s "${build_flags[@]}" ./...
fi
