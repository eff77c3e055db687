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

# --- 3. a connect deadline --------------------------------------------------------
# Holds the listen backlog of the socket at $1 full (a stalled server under
# load) until killed; prints "full" once it is.
fill_backlog() {
  /usr/bin/python3 -c '
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
while True:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except BlockingIOError:
        break
    held.append(s)
print("full", flush=True)
time.sleep(3600)
' "$1" &
}

ping_timeout_covers_the_connect_to_a_stopped_server() {
  for t in socket shm; do
    serve_bg $(endpoint "$t" stopped)
    wait_serving
    kill -STOP "$serve_pid"
    local filler=""
    if [ "$t" = socket ]; then
      fill_backlog "$dir/stopped.sock" >"$dir/fill" 2>&1
      filler=$!; pids+=("$filler")
      for _ in $(seq 1000); do grep -q full "$dir/fill" && break; sleep 0.01; done
      grep -q full "$dir/fill" || fail "socket: the backlog never filled: $(cat "$dir/fill")"
    fi
    # timeout(1) is a hang guard, not a measurement.
    set +e; timeout -s KILL 20 "$ipc" ping $(endpoint "$t" stopped) --timeout-ms 500 --count 1 \
      >"$dir/out" 2>"$dir/err"; local s=$?; set -e
    [ "$s" = 1 ] || fail "$t: ping of a stopped server exited $s, want 1"
    grep -q "^ipc ping: connect to $t .*: no answer within 500 ms (--timeout-ms): the server is stopped" "$dir/err" ||
      fail "$t: no timeout message"
    [ -z "$filler" ] || { kill "$filler"; reap "$filler"; }
    kill -CONT "$serve_pid"
    "$ipc" ping $(endpoint "$t" stopped) --count 1 >/dev/null || fail "$t: no ping once it runs again"
    kill -TERM "$serve_pid"; reap "$serve_pid"
    [ "$status" = 0 ] || fail "$t: SIGTERM gave exit $status"
  done
  pass "${FUNCNAME[0]}"
}

# --- 4. what a reset means ---------------------------------------------------------
# wait_client ARGS...: waits until `ipc stat ARGS` shows a connected client.
wait_client() {
  for _ in $(seq 1000); do
    "$ipc" stat "$@" --json 2>/dev/null | grep -q '"clients": *1[,}]' && return
    sleep 0.01
  done
  fail "no client ever connected to $*"
}

ping_reset_claims_max_message_only_when_the_server_counted_it() {
  # Over the limit: the server drops the client and counts it as oversize.
  serve_bg --socket "$dir/small.sock" --max-message 1K
  wait_serving
  set +e; "$ipc" ping --socket "$dir/small.sock" --size 2K --count 1 >"$dir/out" 2>"$dir/err"; local s=$?; set -e
  [ "$s" = 1 ] || fail "oversize ping exited $s, want 1"
  grep -q "^ipc ping: round trip 1: the server dropped this client: the request of 2048 bytes is over its --max-message" "$dir/err" ||
    fail "oversize: no max-message cause"
  kill -TERM "$serve_pid"; reap "$serve_pid"
  # Killed mid-ping: the server is gone, and nothing is said of sizes.
  for t in socket shm; do
    serve_bg $(endpoint "$t" killed)
    wait_serving
    "$ipc" ping $(endpoint "$t" killed) --count 100000000 --timeout-ms 10000 >"$dir/ping.out" 2>"$dir/ping.err" &
    local ping=$!; pids+=("$ping")
    if [ "$t" = socket ]; then wait_client --socket "$dir/killed.sock"; else wait_client --shm "ipcfault-$uniq-killed"; fi
    kill -KILL "$serve_pid"; reap "$serve_pid"
    reap "$ping"
    [ "$status" = 1 ] || fail "$t: ping of a killed server exited $status, want 1"
    grep -q "^ipc ping: round trip [0-9]*: the server closed the connection (it stopped or crashed)$" "$dir/ping.err" ||
      fail "$t: killed: $(cat "$dir/ping.err")"
    ! grep -q "max-message" "$dir/ping.err" || fail "$t: killed: claims --max-message"
  done
  pass "${FUNCNAME[0]}"
}

serve_short_of_threads_names_the_cause_exits_3_and_never_says_serving
serve_exits_0_on_every_sigterm
ping_timeout_covers_the_connect_to_a_stopped_server
ping_reset_claims_max_message_only_when_the_server_counted_it
echo "$passed passed, 0 failed"
