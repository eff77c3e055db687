#!/usr/bin/env bash
# The CLI when things go wrong for the operator (issue 19 §4): each function
# is named as its specification, and runs on both transports. Some cases act
# as uid 65534 at its process/thread limit (RLIMIT_NPROC does not bind root,
# and the sandbox maps uid 0 only: the target is no-sandbox).
set -euo pipefail
ipc="$TEST_SRCDIR/ipc/tools/ipc"
dir=$(mktemp -d /tmp/ipcfault.XXXXXX)
chmod 755 "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; kill -CONT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in out err; do [ -f "$dir/$f" ] && sed "s/^/  $f: /" "$dir/$f"; done; exit 1; }
passed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }

# A name no other test run uses (abstract names are machine-wide).
uniq=$$-$RANDOM
endpoint() { # endpoint TRANSPORT TAG: the --socket/--shm arguments
  if [ "$1" = socket ]; then echo "--socket $dir/$2.sock"; else echo "--shm ipcfault-$uniq-$2"; fi
}

# serve_bg ARGS...: `ipc serve ARGS` in the background, $! in $serve_pid.
serve_bg() {
  : >"$dir/out"   # now: the child truncates it only once it runs
  "$ipc" serve "$@" >"$dir/out" 2>"$dir/err" &
  serve_pid=$!
  pids+=("$serve_pid")
}
# Waits until the server started by serve_bg says it serves (a hang guard:
# 10 s); fails if it exits first.
wait_serving() {
  for _ in $(seq 1000); do
    grep -q '^serving ' "$dir/out" && return
    kill -0 "$serve_pid" 2>/dev/null || fail "ipc serve exited before serving"
    sleep 0.01
  done
  fail "ipc serve never said it serves"
}
# reap PID: waits for a background child of this shell; its exit status in
# $status (no command substitution: a subshell cannot wait for it).
reap() { status=0; wait "$1" || status=$?; }

# --- 1. a thread that cannot start ---------------------------------------------
# ipc serve at the process/thread limit N of uid 65534, from N = 1 up until
# it serves: every run short of a thread names the cause and exits 3, and
# prints nothing on stdout ("serving" only once everything runs); the first
# that has its threads serves and stops cleanly. (The library's threads and
# ours, and any other process of uid 65534, all count: N is not fixed.)
serve_short_of_threads_names_the_cause_exits_3_and_never_says_serving() {
  if [ "$(id -u)" != 0 ] || ! setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
    echo "SKIP: ${FUNCNAME[0]} (needs root to act as uid 65534)"; return
  fi
  local bin="$dir/bin/ipc"
  mkdir -p "$dir/bin" "$dir/np" && cp "$ipc" "$bin" && chmod 755 "$dir/bin" "$bin" && chmod 777 "$dir/np"
  # LeakSanitizer checks at exit on a thread of its own, which the limit
  # refuses too.
  local asan="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0"
  for t in socket shm; do
    local args="--socket $dir/np/$t.sock" short=0 served=0
    [ "$t" = shm ] && args="--shm ipcfault-$uniq-np"
    for n in $(seq 1 64); do
      : >"$dir/out"
      ASAN_OPTIONS="$asan" setpriv --reuid=65534 --regid=65534 --clear-groups \
        prlimit --nproc="$n" "$bin" serve $args >"$dir/out" 2>"$dir/err" &
      serve_pid=$!; pids+=("$serve_pid")
      for _ in $(seq 1000); do
        grep -q '^serving ' "$dir/out" && break
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.01
      done
      if grep -q '^serving ' "$dir/out"; then
        kill -TERM "$serve_pid"
        reap "$serve_pid"
        [ "$status" = 0 ] || fail "$t, nproc $n: serving, then SIGTERM did not exit 0"
        served=1
        break
      fi
      reap "$serve_pid"
      [ "$status" = 3 ] || fail "$t, nproc $n: exited $status, want 3"
      grep -q "^ipc serve: cannot start a thread: the user's process/thread limit (ulimit -u) is reached" "$dir/err" ||
        fail "$t, nproc $n: no cause named"
      [ ! -s "$dir/out" ] || fail "$t, nproc $n: wrote to stdout"
      short=$((short + 1))
    done
    [ "$short" -ge 1 ] || fail "$t: served even with nproc 1"
    [ "$served" = 1 ] || fail "$t: never served, up to nproc 64"
    [ ! -e "$dir/np/$t.sock" ] || fail "$t: socket file left"
  done
  pass "${FUNCNAME[0]}"
}

# --- 2. SIGTERM ------------------------------------------------------------------
serve_exits_0_on_every_sigterm() {
  for t in socket shm; do
    for i in $(seq 50); do
      serve_bg $(endpoint "$t" term)
      wait_serving
      kill -TERM "$serve_pid"
      reap "$serve_pid"
      [ "$status" = 0 ] || fail "$t, start $i: SIGTERM gave exit $status, want 0"
    done
  done
  pass "${FUNCNAME[0]}"
}

serve_short_of_threads_names_the_cause_exits_3_and_never_says_serving
serve_exits_0_on_every_sigterm
echo "$passed passed, 0 failed"
