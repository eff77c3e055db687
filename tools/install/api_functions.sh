#!/usr/bin/env bash
# Prints the functions ipc/ipc.h declares, one a line, sorted: the public API,
# which libipc.so exports and nothing else. gcc's -aux-info lists every
# prototype it parsed; only those from ipc.h are kept.
set -euo pipefail
header="$(cd "$(dirname "$0")/../.." && pwd)/ipc/ipc.h"
aux=$(mktemp /tmp/ipc-aux.XXXXXX)
trap 'rm -f "$aux"' EXIT
gcc -std=c11 -fsyntax-only -aux-info "$aux" -x c "$header"
grep -F "/* $header:" "$aux" | sed -nE 's/.*[ *](ipc_[a-z0-9_]+) \(.*/\1/p' | sort -u
