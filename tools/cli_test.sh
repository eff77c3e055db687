#!/usr/bin/env bash
# The CLI as an operator uses it: help and version, exit codes, numbers and
# their errors, path spellings, JSON parsed back, ping against a server that
# is not an echo, what the binary links, the bench's entry points.
set -euo pipefail
ipc="$TEST_SRCDIR/ipc/tools/ipc"
bench="$TEST_SRCDIR/ipc/tools/bench/ipc_bench"
readme="$TEST_SRCDIR/ipc/README.md"
py=/usr/bin/python3
dir=$(mktemp -d /tmp/ipccli.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in out err; do [ -f "$dir/$f" ] && sed "s/^/  $f: /" "$dir/$f"; done; exit 1; }

# expect_exit CODE COMMAND...: stdout in $dir/out, stderr in $dir/err.
expect_exit() {
  local want=$1; shift
  set +e; "$@" >"$dir/out" 2>"$dir/err"; local got=$?; set -e
  [ "$got" = "$want" ] || fail "'$*' exited $got, want $want"
}
out_has() { grep -Eq -- "$1" "$dir/out" || fail "stdout lacks /$1/"; }
err_has() { grep -Eq -- "$1" "$dir/err" || fail "stderr lacks /$1/"; }
json() { # json FILE PYTHON-EXPR-over-d: the expression must be true
  "$py" - "$1" "$2" <<'EOF' || fail "JSON check '$2' on $(cat "$1")"
import json, sys
text = open(sys.argv[1]).read()
try:
    d = json.loads(text)                  # one document (ls, stat, ping)
except json.JSONDecodeError:              # JSON lines (stat --watch): a list
    d = [json.loads(l) for l in text.splitlines()]
if not eval(sys.argv[2]):
    sys.exit(1)
EOF
}
serve() { # serve ARGS...: an ipc server in the background, ready when this returns
  "$ipc" serve --quiet "$@" >/dev/null 2>"$dir/serve.err" &
  pids+=($!)
}
wait_sock() { for _ in $(seq 200); do [ -S "$1" ] && return; sleep 0.02; done; fail "no socket $1"; }

commands="serve ping ls stat clean demo bench"

# --- help and version ---------------------------------------------------------
expect_exit 2 "$ipc"
err_has "^usage: ipc"
expect_exit 2 "$ipc" frobnicate
err_has "unknown command 'frobnicate'"
for h in --help -h help; do
  expect_exit 0 "$ipc" $h
  [ ! -s "$dir/err" ] || fail "ipc $h wrote to stderr"
  for c in $commands; do out_has "^  $c "; done
done
for c in $commands; do
  for form in "$c --help" "$c -h" "help $c"; do
    expect_exit 0 "$ipc" $form
    [ ! -s "$dir/err" ] || fail "ipc $form wrote to stderr"
    out_has "^usage: ipc $c"
    out_has "^example:"
    out_has "^  --help"
    out_has "^Exit: 0"
  done
done
expect_exit 0 "$ipc" --version
out_has "^ipc 0\.1\.0$"
[ "$(wc -l <"$dir/out")" -eq 1 ] || fail "--version prints one line"

# README's command section shows every command, and only commands and
# options the binary has.
sed -n '/^## Command line/,/^## [^C]/p' "$readme" | grep '^ipc ' >"$dir/readme" ||
  fail "README's command section has no 'ipc ...' lines"
for c in $commands; do grep -q "^ipc $c" "$dir/readme" || fail "README does not show ipc $c"; done
while read -r _ cmd rest; do
  case " $commands " in *" $cmd "*) ;; *) fail "README names 'ipc $cmd', not a command";; esac
  "$ipc" "$cmd" --help >"$dir/help"
  for flag in $(grep -Eo -- '--[a-z][a-z-]*' <<<"${rest%%#*}" || true); do
    grep -q -- "$flag" "$dir/help" || fail "README: ipc $cmd $flag is not in 'ipc $cmd --help'"
  done
done <"$dir/readme"

# --- bad usage: exit 2, the message names the flag ----------------------------
expect_exit 2 "$ipc" ping
err_has "give --socket PATH or --shm NAME"
expect_exit 2 "$ipc" ping --socket "$dir/a" --shm b
err_has "give one server"
expect_exit 2 "$ipc" ping --bogus
err_has "unknown option '--bogus'"
expect_exit 2 "$ipc" ping --socket
err_has "\-\-socket needs a value"
expect_exit 2 "$ipc" stat --watch=3 x
err_has "\-\-watch takes no value"
expect_exit 2 "$ipc" ping --socket "$dir/s" --count -3
err_has "\-\-count: '-3' is not a whole number"
expect_exit 2 "$ipc" ping --socket "$dir/s" --size 18014398509481984K
err_has "\-\-size: '18014398509481984K' is out of range"
expect_exit 2 "$ipc" ping --socket "$dir/s" --size 99999999999999999999999
err_has "\-\-size: .* is out of range"
expect_exit 2 "$ipc" ping --socket "$dir/s" --size 4X
err_has "\-\-size: unknown unit 'X'"
expect_exit 2 "$ipc" ping --socket "$dir/s" --size 64 --payload hi
err_has "\-\-size or \-\-payload"
expect_exit 2 "$ipc" ping --socket "$dir/s" --payload hex:4g
err_has "\-\-payload: 'g' at position 2"
expect_exit 2 "$ipc" ping --socket "$dir/s" --expect x --no-check
expect_exit 2 "$ipc" ping --socket "$dir/s" --timeout-ms 10x
err_has "\-\-timeout-ms: '10x'"
expect_exit 2 "$ipc" stat --count abc --watch x
err_has "\-\-count: 'abc'"
expect_exit 2 "$ipc" stat --interval-ms 10x --watch x
err_has "\-\-interval-ms: '10x'"
expect_exit 2 "$ipc" stat --interval-ms 0 --watch x
expect_exit 2 "$ipc" stat --count 2 x
err_has "\-\-count is for \-\-watch"
expect_exit 2 "$ipc" stat
expect_exit 2 "$ipc" serve --shm x --ring-size 5000
err_has "\-\-ring-size: 5000 is not a power of two"
expect_exit 2 "$ipc" serve --shm x --clients 4097
err_has "\-\-clients: 4097 is out of range \(0 to 4096\)"
expect_exit 2 "$ipc" serve --shm x --clients 0
expect_exit 2 "$ipc" serve --socket "$dir/x" --max-message 5G
err_has "\-\-max-message"
expect_exit 2 "$ipc" demo extra
expect_exit 2 "$ipc" ls --bogus
expect_exit 2 "$ipc" clean
expect_exit 2 "$ipc" --version extra

# --- errors that name the cause and the fix -----------------------------------
long="$dir/$(printf 'a%.0s' $(seq 110)).sock"
expect_exit 2 "$ipc" ping --socket "$long"
err_has "is ${#long} bytes, the limit is 107"
expect_exit 2 "$ipc" serve --socket "$long"
err_has "the limit is 107"
(cd "$dir" && expect_exit 2 "$ipc" serve --socket "$(printf 'b%.0s' $(seq 100)).sock")
err_has "once resolved, the limit is 107"   # short as typed, long once absolute
expect_exit 2 "$ipc" ping --shm 'bad name!'
err_has "character 4 \(' '\) is not allowed: a shared-memory name is 1 to 64 characters from A-Z a-z 0-9 and \. _ -"
expect_exit 2 "$ipc" serve --shm "$(printf 'n%.0s' $(seq 65))"
err_has "is 65 characters"
expect_exit 1 "$ipc" ping --socket "$dir/nothing-here" --count 1
err_has "no server at socket $dir/nothing-here"
expect_exit 1 "$ipc" ping --socket "$dir/no/such/dir.sock"
err_has "its directory is not there"
expect_exit 1 "$ipc" stat --shm no-such-server-here
err_has "no live server"
expect_exit 1 "$ipc" ls "$dir/no-such-dir"
err_has "no-such-dir: No such file or directory"
out_has "^TRANSPORT"                             # the rest is still listed

# The longest shm name the library takes is the longest the CLI takes.
shm64="c$(printf '%x' $$)-$(printf 'n%.0s' $(seq 64))"; shm64=${shm64:0:64}
serve --shm "$shm64" --clients 2
expect_exit 0 "$ipc" ping --shm "$shm64" --count 10
out_has "^shm +64 +10 "
# A client need not repeat the capacity; one that insists on another is told both.
expect_exit 0 "$ipc" ping --shm "$shm64" --clients 2 --count 10
expect_exit 1 "$ipc" ping --shm "$shm64" --clients 3 --count 10
err_has "shm $shm64 serves 2 clients, --clients asked for 3; omit --clients"

# --- the multiplexed wire and workers -----------------------------------------
expect_exit 2 "$ipc" serve --socket "$dir/mx" --wire json
err_has "bad value for --wire: 'json' \(legacy or mux\)"
expect_exit 2 "$ipc" serve --socket "$dir/mx" --workers 1025
expect_exit 2 "$ipc" serve --socket "$dir/mx" --sleep-us 5 --spin-us 5
err_has "give --sleep-us or --spin-us, not both"
expect_exit 2 "$ipc" serve --socket "$dir/mx" --wire mux --max-message 2G
err_has "the mux wire carries at most 1 GiB - 8 bytes"
expect_exit 2 "$ipc" ping --socket "$dir/mx" --inflight 4
err_has "\-\-inflight needs \-\-wire mux"
serve --socket "$dir/mx.sock" --wire mux --workers 4 --sleep-us 200
wait_sock "$dir/mx.sock"
expect_exit 0 "$ipc" ping --socket "$dir/mx.sock" --wire mux --inflight 16 --count 400 --size 100 --json
json "$dir/out" "d['count'] == 400 and d['size'] == 100"
serve --shm "mx$$" --wire mux --workers 2 --spin-us 50 --clients 2
for _ in $(seq 100); do "$ipc" ping --shm "mx$$" --wire mux --count 1 >/dev/null 2>&1 && break; sleep 0.05; done
expect_exit 0 "$ipc" ping --shm "mx$$" --wire mux --inflight 8 --count 200
out_has "^shm +64 +200 "
# A legacy client of a multiplexed shm server is refused at connect.
expect_exit 1 "$ipc" ping --shm "mx$$" --count 1
err_has "Protocol error"

# --- serve, ping, stat, ls through every spelling of a path -------------------
mkdir "$dir/real"
ln -s real "$dir/link"
serve --socket "$dir/real/s.sock" --max-message 64K
sock_pid=${pids[-1]}
wait_sock "$dir/real/s.sock"
expect_exit 0 "$ipc" ping --socket "$dir/real/s.sock" --count 200 --size 1000
out_has "^socket +1000 +200 "
for spelling in "$dir/real/s.sock" "$dir/link/s.sock" "$dir//real///s.sock" \
                "$dir/real/./s.sock" "$dir/link/../real/s.sock"; do
  expect_exit 0 "$ipc" stat --socket "$spelling" --json
  json "$dir/out" "d['name'] == '$dir/real/s.sock' and d['messages_in'] >= 200"
  expect_exit 0 "$ipc" stat "$spelling"
  out_has "^server +socket $dir/real/s.sock "
  expect_exit 0 "$ipc" ping --socket "$spelling" --count 5 --json
  json "$dir/out" "d['name'] == '$dir/real/s.sock'"
done
for rel in s.sock ./s.sock .//s.sock ../link/s.sock; do
  (cd "$dir/real" && expect_exit 0 "$ipc" stat "$rel" --json)
  json "$dir/out" "d['name'] == '$dir/real/s.sock'"
  # `bazel run` starts us elsewhere: the directory typed in is the user's.
  (cd / && BUILD_WORKING_DIRECTORY="$dir/real" expect_exit 0 "$ipc" ping --socket "$rel" --count 3)
  (cd / && BUILD_WORKING_DIRECTORY="$dir/real" expect_exit 0 "$ipc" stat "$rel")
done
(cd / && BUILD_WORKING_DIRECTORY="$dir/link" expect_exit 0 "$ipc" ls --json .)
json "$dir/out" "any(s['state'] == 'live' and s['name'] == '$dir/real/s.sock' for s in d['servers'])"
expect_exit 1 "$ipc" serve --socket "$dir/link/s.sock"     # the same server: in use
err_has "address in use by a live server"
(cd / && BUILD_WORKING_DIRECTORY="$dir" "$ipc" serve --quiet --socket rel.sock >/dev/null 2>&1 & echo $! >"$dir/rel.pid")
pids+=("$(cat "$dir/rel.pid")")
wait_sock "$dir/rel.sock"                                  # bound where the user was

# --- JSON, field by field (docs/OPERATIONS.md) --------------------------------
expect_exit 0 "$ipc" ping --socket "$dir/real/s.sock" --count 100 --size 2K --json
json "$dir/out" "set(d) == {'transport','name','size','count','warmup','check','min_ns','mean_ns','p50_ns','p90_ns','p99_ns','p999_ns','max_ns'} and d['transport'] == 'socket' and d['size'] == 2048 and d['count'] == 100 and d['warmup'] == 10 and d['check'] == 'echo' and 0 < d['min_ns'] <= d['p50_ns'] <= d['p90_ns'] <= d['p99_ns'] <= d['p999_ns'] <= d['max_ns']"
expect_exit 0 "$ipc" stat --socket "$dir/real/s.sock" --json
json "$dir/out" "set(d) == {'transport','name','pid','uid','owner','started_ns','uptime_s','clients','connects','reclaims','drops','messages_in','messages_out','bytes_in','bytes_out','timeouts','oversize','resets','other_errors','orphans','samples','p50_ns','p99_ns','p999_ns'} and d['pid'] == $sock_pid and d['uid'] == $(id -u) and d['messages_in'] == d['messages_out'] and d['samples'] == d['messages_out'] and d['p50_ns'] <= d['p99_ns'] <= d['p999_ns']"
expect_exit 0 "$ipc" stat "$dir/real/s.sock" --watch --count 3 --interval-ms 50 --json
json "$dir/out" "len(d) == 3 and all(set(x) == {'elapsed_s','interval_s','clients','in_per_s','out_per_s','bytes_per_s','errors','drops','samples','p50_ns','p99_ns'} for x in d) and d[0]['elapsed_s'] < d[1]['elapsed_s'] < d[2]['elapsed_s'] and all(x['interval_s'] >= 0.05 for x in d)"
expect_exit 0 "$ipc" stat "$dir/real/s.sock" --watch --count 2 --interval-ms 50
[ "$(wc -l <"$dir/out")" -eq 3 ] || fail "--watch: a header and 2 lines"
expect_exit 0 "$ipc" ls --json "$dir"
json "$dir/out" "[s for s in d['servers'] if s.get('name') == '$dir/real/s.sock'] == [s for s in d['servers'] if s.get('name') == '$dir/real/s.sock' and s['state'] == 'live' and s['transport'] == 'socket' and s['pid'] == $sock_pid and set(s) == {'state','transport','name','pid','uid','owner','started_ns','clients','messages_in','messages_out'}] and len([s for s in d['servers'] if s.get('name') == '$dir/real/s.sock']) == 1"
expect_exit 0 "$ipc" ls "$dir"
out_has "^socket +$sock_pid .*$dir/real/s.sock$"

# A name is another process's data: a newline in it cannot start a row of
# ls or stat, nor an escape byte reach the terminal.
evil="$dir/evil
row"$'\e'"[31m.sock"
serve --socket "$evil"
wait_sock "$evil"
expect_exit 0 "$ipc" ls "$dir"
out_has "  $dir/evil\\\\x0arow\\\\x1b\\[31m\\.sock$"
grep -q $'\e' "$dir/out" && fail "ls wrote an escape byte"
grep -Eq '^row' "$dir/out" && fail "a newline in a name started a row of ls"
expect_exit 0 "$ipc" stat --socket "$evil"
out_has "^server +socket $dir/evil\\\\x0arow\\\\x1b"
grep -q $'\e' "$dir/out" && fail "stat wrote an escape byte"
expect_exit 0 "$ipc" ls --json "$dir"
json "$dir/out" "any(s.get('name') == '''$evil''' for s in d['servers'])"

# An oversize request: the client is dropped, and counted as both.
expect_exit 1 "$ipc" ping --socket "$dir/real/s.sock" --size 65537 --count 1
err_has "the server dropped this client: the request of 65537 bytes is over its --max-message"
expect_exit 0 "$ipc" stat --socket "$dir/real/s.sock" --json
json "$dir/out" "d['oversize'] == 1 and d['drops'] == 1"

# --- ping against a server that is not an echo --------------------------------
"$py" - "$dir/pong.sock" <<'EOF' &
import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(8)
while True:
    c, _ = s.accept()
    while True:
        hdr = c.recv(4, socket.MSG_WAITALL)
        if len(hdr) < 4: break
        n, = struct.unpack('<I', hdr)
        req = c.recv(n, socket.MSG_WAITALL) if n else b''
        rep = b'pong:' + req
        c.sendall(struct.pack('<I', len(rep)) + rep)
    c.close()
EOF
pids+=($!)
wait_sock "$dir/pong.sock"
expect_exit 1 "$ipc" ping --socket "$dir/pong.sock" --count 5 --payload hi
err_has "reply 1 is not the one expected \(7 bytes, want 2; first difference at byte 0\); give --expect DATA"
expect_exit 0 "$ipc" ping --socket "$dir/pong.sock" --count 5 --payload hi --expect pong:hi --json
json "$dir/out" "d['check'] == 'expect' and d['size'] == 2"
expect_exit 0 "$ipc" ping --socket "$dir/pong.sock" --count 5 --payload hex:6869 --expect hex:706f6e673a6869
printf 'from a file\n' >"$dir/req.bin"; printf 'pong:from a file\n' >"$dir/rep.bin"
(cd "$dir" && expect_exit 0 "$ipc" ping --socket pong.sock --count 5 --payload @req.bin --expect @rep.bin)
expect_exit 1 "$ipc" ping --socket "$dir/pong.sock" --count 5 --payload hi --expect pong:ho
err_has "first difference at byte 6"
expect_exit 0 "$ipc" ping --socket "$dir/pong.sock" --count 5 --no-check --json
json "$dir/out" "d['check'] == 'none' and d['size'] == 64"
expect_exit 1 "$ipc" ping --socket "$dir/pong.sock" --payload @"$dir/no-such-file"
err_has "no-such-file: No such file or directory"

# --- clean ---------------------------------------------------------------------
expect_exit 1 "$ipc" clean "$dir/link/s.sock"              # live: left alone
err_has "left alone"
[ -S "$dir/real/s.sock" ] || fail "clean removed a live socket"
"$ipc" serve --socket "$dir/crash.sock" >/dev/null 2>&1 &
crashed=$!
wait_sock "$dir/crash.sock"
kill -KILL "$crashed"; wait "$crashed" 2>/dev/null || true
expect_exit 0 "$ipc" ls "$dir"
out_has "$dir/crash.sock \(stale\)"
expect_exit 0 "$ipc" ls --json "$dir"
json "$dir/out" "{'state': 'stale', 'transport': 'socket', 'name': '$dir/crash.sock', 'uid': $(id -u), 'owner': '$(id -un)'} in d['servers']"
(cd "$dir/link" && expect_exit 0 "$ipc" clean ../crash.sock)
[ ! -e "$dir/crash.sock" ] || fail "stale socket kept"
touch "$dir/plain" "$dir/--help"
expect_exit 1 "$ipc" clean "$dir/plain"                   # not a socket: kept
[ -e "$dir/plain" ] || fail "clean removed a plain file"
(cd "$dir" && expect_exit 1 "$ipc" clean -- --help)      # a file named --help: not a socket
[ -e "$dir/--help" ] || fail "clean removed --help"

kill -TERM "$sock_pid"; wait "$sock_pid"
[ ! -e "$dir/real/s.sock" ] || fail "socket left behind"

# --- the binary links libc and our library only -------------------------------
# (A sanitizer's runtime brings libm, libgcc_s and, for ubsan, libstdc++.)
sanitizer=false
grep -qaE "__(asan|tsan|ubsan)_" "$ipc" && sanitizer=true
ldd "$ipc" >"$dir/ldd"
while read -r lib _; do
  case "$lib" in
    linux-vdso.so.*|libc.so.6|/lib64/ld-linux-x86-64.so.2) ;;
    libm.so.6|libgcc_s.so.1|libstdc++.so.6|libpthread.so.0|librt.so.1|libdl.so.2)
      $sanitizer || fail "ipc links $lib: $(cat "$dir/ldd")";;
    *) fail "ipc links $lib: $(cat "$dir/ldd")";;
  esac
done <"$dir/ldd"
grep -q "libc.so.6" "$dir/ldd" || fail "ldd shows no libc: $(cat "$dir/ldd")"

# --- bench: a binary of its own, run by `ipc bench` when beside ---------------
expect_exit 0 "$ipc" bench --help
out_has "bazel run -c opt //tools:ipc_bench"
mkdir "$dir/bin"
cp "$ipc" "$dir/bin/ipc"
expect_exit 1 "$dir/bin/ipc" bench --quick
err_has "ipc_bench is not installed beside this binary .*bazel run -c opt //tools:ipc_bench"
printf '#!/bin/sh\necho "bench ran with $*"\nexit 3\n' >"$dir/bin/ipc_bench"
chmod +x "$dir/bin/ipc_bench"
expect_exit 3 "$dir/bin/ipc" bench --quick --only zmq
out_has "^bench ran with --quick --only zmq$"
expect_exit 0 "$bench" --help
out_has "^usage: ipc_bench"
expect_exit 2 "$bench" --plot "$dir/x.jpg"
err_has "\-\-plot .*x.jpg: the format follows the extension: .png, .svg or .pdf"
expect_exit 2 "$bench" --only ipc_socket,nope
err_has "\-\-only: unknown transport 'nope'"
expect_exit 2 "$bench" --json
err_has "\-\-json needs a value"
# One colour per transport, whatever the subset: ipc_socket is #0072b2 alone
# and beside another; the SVG format follows the extension.
if [ -x /usr/bin/gnuplot ]; then
  expect_exit 0 "$bench" --quick --only ipc_socket --plot "$dir/a.svg"
  expect_exit 0 "$bench" --quick --only raw_uds,ipc_socket --plot "$dir/b.svg"
  for f in a b; do
    head -c 300 "$dir/$f.svg" | grep -q "<svg" || fail "$f.svg is not SVG"
    grep -q "rgb(  0, 114, 178)" "$dir/$f.svg" || fail "ipc_socket's colour missing in $f.svg"
  done
  grep -q "rgb( 86, 180, 233)" "$dir/b.svg" || fail "raw_uds's colour missing in b.svg"
  ! grep -q "rgb( 86, 180, 233)" "$dir/a.svg" || fail "a.svg draws raw_uds"
fi

expect_exit 0 "$ipc" demo
out_has "^socket +64 "
out_has "^shm +64 "
cat "$dir/out"
echo "1 passed, 0 failed"
