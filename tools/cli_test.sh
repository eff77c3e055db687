#!/usr/bin/env bash
# The CLI as an operator uses it: usage errors, serve + ping, demo.
set -euo pipefail
ipc="$TEST_SRCDIR/ipc/tools/ipc"
dir=$(mktemp -d /tmp/ipccli.XXXXXX)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

expect_exit() { # code, command...
  local want=$1; shift
  set +e; "$@" >"$dir/out" 2>&1; local got=$?; set -e
  if [ "$got" != "$want" ]; then
    echo "FAIL: '$*' exited $got, want $want"; cat "$dir/out"; exit 1
  fi
}

expect_exit 2 "$ipc"
expect_exit 2 "$ipc" frobnicate
expect_exit 0 "$ipc" help
grep -q "usage: ipc" "$dir/out"
expect_exit 2 "$ipc" ping
expect_exit 2 "$ipc" ping --socket a --shm b
expect_exit 2 "$ipc" ping --socket "$dir/s" --count -3
expect_exit 1 "$ipc" ping --socket "$dir/nothing-here" --count 1

"$ipc" serve --socket "$dir/s.sock" --max-message 64K >"$dir/serve.out" 2>&1 &
server=$!
for _ in $(seq 100); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
expect_exit 0 "$ipc" ping --socket "$dir/s.sock" --count 200 --size 1000
grep -Eq "^socket +1000 +200 " "$dir/out"
expect_exit 1 "$ipc" serve --socket "$dir/s.sock"   # live path: EADDRINUSE
grep -q "in use" "$dir/out"

# Operator commands against the live server.
expect_exit 0 "$ipc" stat --socket "$dir/s.sock"
grep -Eq "^messages +(20[0-9]|2[1-9][0-9]) in" "$dir/out"   # 200 + warm-up
grep -q "pid $server " "$dir/out"
expect_exit 0 "$ipc" stat "$dir/s.sock" --watch --count 2 --interval-ms 50
[ "$(wc -l <"$dir/out")" -eq 3 ] || { echo "FAIL: --watch lines"; cat "$dir/out"; exit 1; }
expect_exit 0 "$ipc" ls "$dir"
grep -Eq "^socket +$server .*$dir/s.sock$" "$dir/out"
expect_exit 1 "$ipc" clean "$dir/s.sock"              # live: left alone
grep -q "left alone" "$dir/out"
[ -S "$dir/s.sock" ] || { echo "FAIL: clean removed a live socket"; exit 1; }
expect_exit 1 "$ipc" stat --shm no-such-server-here
expect_exit 2 "$ipc" stat
kill -TERM "$server"; wait "$server"; server=
[ ! -e "$dir/s.sock" ] || { echo "FAIL: socket left behind"; exit 1; }

# A crashed server's socket file: listed as stale, removed by clean.
"$ipc" serve --socket "$dir/crash.sock" >/dev/null 2>&1 &
crashed=$!
for _ in $(seq 100); do [ -S "$dir/crash.sock" ] && break; sleep 0.05; done
kill -KILL "$crashed"; wait "$crashed" 2>/dev/null || true
expect_exit 0 "$ipc" ls "$dir"
grep -Eq "$dir/crash.sock \(stale\)" "$dir/out"
expect_exit 0 "$ipc" clean "$dir/crash.sock"
[ ! -e "$dir/crash.sock" ] || { echo "FAIL: stale socket kept"; exit 1; }
touch "$dir/plain"
expect_exit 1 "$ipc" clean "$dir/plain"                # not a socket: kept
[ -e "$dir/plain" ] || { echo "FAIL: clean removed a plain file"; exit 1; }

expect_exit 0 "$ipc" demo
grep -Eq "^socket +64 " "$dir/out"
grep -Eq "^shm +64 " "$dir/out"
cat "$dir/out"
echo "1 passed, 0 failed"
