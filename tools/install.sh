#!/usr/bin/env bash
# Builds ipc with `bazel -c opt` and installs it for non-Bazel users:
#
#   PREFIX/include/ipc/ipc.h, ipc.hpp, bb_ipc.hpp  the C API, its C++20 wrapper, bb::ipc
#   PREFIX/lib/libipc.a                         every object of //ipc, one archive
#   PREFIX/lib/libipc.so.X.Y.Z (+ .so.X, .so)  exports the public ipc_* functions only
#   PREFIX/lib/pkgconfig/ipc.pc                 pkg-config --cflags --libs ipc
#   PREFIX/lib/cmake/ipc/ipcConfig.cmake        find_package(ipc CONFIG): ipc::ipc
#   PREFIX/bin/ipc                              the operator's CLI
#   PREFIX/share/doc/ipc/                       LICENSE, CHANGELOG.md, README.md
#
# usage: tools/install.sh --prefix DIR
# Installing over an earlier install replaces its files. CC (default cc)
# links the shared library.
set -euo pipefail

die() { echo "install.sh: $*" >&2; exit 2; }
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

prefix=""
while (($#)); do
  case "$1" in
    --prefix) (($# >= 2)) || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (usage: tools/install.sh --prefix DIR)" ;;
  esac
done
[[ -n "$prefix" ]] || die "usage: tools/install.sh --prefix DIR"
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

cd "$(dirname "$0")/.."
src=$PWD

# --- the version, from ipc.h ----------------------------------------------
version_part() {
  sed -n "s/^#define IPC_VERSION_$1 \([0-9][0-9]*\)\$/\1/p" ipc/ipc.h
}
major=$(version_part MAJOR) minor=$(version_part MINOR) patch=$(version_part PATCH)
[[ -n "$major" && -n "$minor" && -n "$patch" ]] || die "no IPC_VERSION_* in ipc/ipc.h"
version="$major.$minor.$patch"

# --- build ------------------------------------------------------------------
# PIC everywhere: the same objects make libipc.a and libipc.so.
flags=(-c opt --force_pic)
echo "install.sh: building ipc $version (bazel build ${flags[*]})"
bazel build "${flags[@]}" //ipc:archives //tools:ipc
execroot=$(bazel info "${flags[@]}" execution_root)
mapfile -t outputs < <(bazel cquery "${flags[@]}" //ipc:archives --output=starlark \
  --starlark:expr='"\n".join([f.path for f in target.files.to_list()])' 2>/dev/null)
archives=()
for f in "${outputs[@]}"; do
  [[ "$f" == *.a ]] && archives+=("$execroot/$f")
done
((${#archives[@]} > 0)) || die "bazel gave no archives for //ipc:archives"
cli="$execroot/$(bazel cquery "${flags[@]}" //tools:ipc --output=starlark \
  --starlark:expr='target.files.to_list()[0].path' 2>/dev/null)"

work=$(mktemp -d /tmp/ipc-install.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- libipc.a: the members of every archive, each archive in its own
# directory so that equal object names cannot overwrite each other --------
objects=()
for i in "${!archives[@]}"; do
  mkdir "$work/$i"
  (cd "$work/$i" && ar x "${archives[$i]}")
  for o in "$work/$i"/*.o; do
    mv "$o" "$work/$i/${i}_$(basename "$o")"
    objects+=("$work/$i/${i}_$(basename "$o")")
  done
done
ar rcsD "$work/libipc.a" "${objects[@]}"

# --- libipc.so: exports exactly the functions ipc.h declares ----------------
api=$(tools/install/api_functions.sh)
[[ -n "$api" ]] || die "no functions found in ipc/ipc.h"
{
  echo "IPC_$major {"
  echo "  global:"
  sed 's/.*/    &;/' <<<"$api"
  echo "  local: *;"
  echo "};"
} >"$work/libipc.map"
"${CC:-cc}" -shared -o "$work/libipc.so.$version" -Wl,-soname,"libipc.so.$major" \
  -Wl,--version-script="$work/libipc.map" -Wl,-z,defs \
  -Wl,--whole-archive "$work/libipc.a" -Wl,--no-whole-archive -lpthread

# --- install ----------------------------------------------------------------
subst() { # template output
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" "$1" >"$2"
}
install -d "$prefix/include/ipc" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/ipc" \
  "$prefix/bin" "$prefix/share/doc/ipc"
install -m 644 ipc/ipc.h ipc/ipc.hpp ipc/bb_ipc.hpp "$prefix/include/ipc/"
install -m 644 "$work/libipc.a" "$prefix/lib/libipc.a"
install -m 755 "$work/libipc.so.$version" "$prefix/lib/libipc.so.$version"
ln -sfn "libipc.so.$version" "$prefix/lib/libipc.so.$major"
ln -sfn "libipc.so.$major" "$prefix/lib/libipc.so"
subst tools/install/ipc.pc.in "$prefix/lib/pkgconfig/ipc.pc"
subst tools/install/ipcConfig.cmake.in "$prefix/lib/cmake/ipc/ipcConfig.cmake"
subst tools/install/ipcConfigVersion.cmake.in "$prefix/lib/cmake/ipc/ipcConfigVersion.cmake"
install -m 755 "$cli" "$prefix/bin/ipc"
install -m 644 LICENSE CHANGELOG.md README.md "$prefix/share/doc/ipc/"
echo "install.sh: installed ipc $version into $prefix ($(wc -l <<<"$api") exported functions)"
