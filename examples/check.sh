#!/usr/bin/env bash
# Runs README.md "Use it from your project" as written: every fenced block
# after a `<!-- ci: run -->` line runs (bash -euo pipefail) in a fresh empty
# directory, in order, with IPC set to this checkout and PREFIX to a temporary
# install prefix; every block after `<!-- ci: same FILE -->` must equal FILE.
# Then checks what the snippets do not show: the shared library exports
# exactly ipc.h's functions, the static program needs no libipc.so, every
# version agrees, and gcc builds the library at -O2 -Wall -Wextra -Werror.
set -euo pipefail
# The default compilers (gcc 12 on Debian 12), as a new user has them.
unset CC CXX
IPC=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/ipc-consumers.XXXXXX)
export IPC PREFIX="$work/prefix"
# A Go build cache of its own, as a new user has: Go keeps what pkg-config
# said in its cache (golang/go#24544), so a cache from an earlier run would
# link against that run's deleted prefix.
export GOCACHE="$work/gocache"
cleanup() {
  (cd "$IPC/examples" && bazel shutdown 2>/dev/null) || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check.sh: FAIL: $*" >&2; exit 1; }
step() { echo; echo "--- check.sh: $*"; }

# --- the README's blocks -----------------------------------------------------
mkdir "$work/blocks"
awk -v dir="$work/blocks" '
  /^<!-- ci: (run|same [^ ]+) -->$/ { kind = $3; target = $4; pending = 1; next }
  pending && /^```/ { n++; file = sprintf("%s/%02d.%s", dir, n, kind); pending = 0; inblock = 1
                      if (kind == "same") print target > (file ".target"); next }
  inblock && /^```$/ { inblock = 0; close(file); next }
  inblock { print > file }
' "$IPC/README.md"
blocks=("$work"/blocks/*.run "$work"/blocks/*.same)
((${#blocks[@]} >= 8)) || fail "found only ${#blocks[@]} marked blocks in README.md"

for f in "$work"/blocks/*.same; do
  target=$(cat "$f.target")
  cmp -s "$f" "$IPC/$target" || { diff -u "$IPC/$target" "$f" || true; fail "README.md's copy of $target differs"; }
  echo "check.sh: README.md shows $target as it is"
done
for f in "$work"/blocks/*.run; do
  step "README block $(basename "$f" .run):"; sed 's/^/    /' "$f"
  dir="$work/run.$(basename "$f" .run)"
  mkdir "$dir"
  (cd "$dir" && bash -euo pipefail "$f") || fail "README block $(basename "$f") failed"
done

# --- what the snippets do not show -------------------------------------------
step "libipc.so exports exactly the functions ipc.h declares"
declared=$("$IPC/tools/install/api_functions.sh")
exported=$(nm -D --defined-only "$PREFIX/lib/libipc.so" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' | sort -u)
[[ "$declared" == "$exported" ]] || { diff <(echo "$declared") <(echo "$exported") || true; fail "exports differ"; }
echo "check.sh: $(wc -l <<<"$exported") functions, nothing else"
[[ "$(readelf -d "$PREFIX/lib/libipc.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')" == libipc.so.0 ]] \
  || fail "the soname is not libipc.so.0"

step "the static programs need no libipc.so"
shopt -s nullglob
statics=("$work"/run.*/hello_static "$work"/run.*/build/hello_static)
shopt -u nullglob
((${#statics[@]} == 2)) || fail "expected the pkg-config and the CMake hello_static, found ${#statics[@]}"
for exe in "${statics[@]}"; do
  needed=$(readelf -d "$exe" | grep NEEDED) || fail "readelf $exe"
  if grep -q libipc <<<"$needed"; then fail "$exe needs libipc.so"; fi
  echo "check.sh: ${exe#"$work"/}: needs $(grep -o '\[.*\]' <<<"$needed" | paste -sd' ')"
done

step "one version everywhere"
version=$(sed -n 's/^#define IPC_VERSION_[A-Z]* \([0-9][0-9]*\)$/\1/p' "$IPC/ipc/ipc.h" | paste -sd.)
pc=$(PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --modversion ipc)
cm=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$PREFIX/lib/cmake/ipc/ipcConfigVersion.cmake")
cli=$("$PREFIX/bin/ipc" --version)
echo "check.sh: ipc.h $version, ipc.pc $pc, CMake $cm, ipc --version: $cli"
[[ "$pc" == "$version" && "$cm" == "$version" && "$cli" == *" $version"* ]] || fail "versions differ"
mkdir "$work/cmake_major" && cat >"$work/cmake_major/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(major NONE)
find_package(ipc $((${version%%.*} + 1)) CONFIG QUIET)
if(ipc_FOUND)
  message(FATAL_ERROR "ipc $version accepted for a request of the next major version")
endif()
CMAKE
cmake -S "$work/cmake_major" -B "$work/cmake_major/build" -DCMAKE_PREFIX_PATH="$PREFIX" >/dev/null \
  || fail "the CMake version file accepts another major version"
echo "check.sh: find_package(ipc $((${version%%.*} + 1))) rejects $version"

step "gcc 12 builds the library warning-free (-O2 -Wall -Wextra -Werror)"
out=$(cd "$IPC/examples" && bazel build -c opt '--per_file_copt=.*@-Wall,-Wextra,-Werror' //... 2>&1) \
  || { grep -vE 'linux-sandbox|^\[' <<<"$out"; fail "gcc warnings (above)"; }
echo "check.sh: ok"

echo
echo "check.sh: every route of README.md \"Use it from your project\" passed"
