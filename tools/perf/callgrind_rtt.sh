#!/usr/bin/env bash
# Instructions per round trip, our work only: runs tools/perf/rtt_probe under
# callgrind with collection on inside the calls that serve one request
# (server: ipc_server_run; client: ipc_client_send + ipc_client_recv, or
# loan/commit/peek/release for shm_zc; raw: the probe's own two functions)
# and off inside every wait (ipc*wait_until, the shm server's ipc__bell_wait,
# ipc__wait_spin_briefly, probe_spin_until), at two counts; the difference
# divided by the extra round trips removes setup and teardown. Instruction
# counts do not drift with the machine's load, so a change in them is a
# change in our code.
#
#   tools/perf/callgrind_rtt.sh [PROBE] [COUNT] [SIZE]
# PROBE defaults to bazel-bin/tools/perf/rtt_probe (build it with -c opt).
set -euo pipefail
probe=${1:-bazel-bin/tools/perf/rtt_probe}
count=${2:-2000}
size=${3:-64}
command -v valgrind >/dev/null || { echo "callgrind_rtt: valgrind is not installed" >&2; exit 1; }
[ -x "$probe" ] || { echo "callgrind_rtt: no probe at $probe (bazel build -c opt //tools/perf:rtt_probe)" >&2; exit 1; }
work=$(mktemp -d /tmp/ipc-cg.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Total collected instructions of the process that forked (client) and of
# its child (server), "client server", for one run.
run() {
  local kind=$1 n=$2 out=$work/$1.$2
  mkdir -p "$out"
  local toggles=(--toggle-collect='ipc*wait_until' --toggle-collect='ipc__bell_wait'
                 --toggle-collect=ipc__wait_spin_briefly)
  if [ "$kind" = raw_spin ]; then
    toggles=(--toggle-collect=probe_raw_serve_one --toggle-collect=probe_raw_round_trip
             --toggle-collect=probe_spin_until)
  else
    toggles+=(--toggle-collect=ipc_server_run --toggle-collect=ipc_client_send
              --toggle-collect=ipc_client_recv --toggle-collect=ipc_client_loan
              --toggle-collect=ipc_client_commit --toggle-collect=ipc_client_peek
              --toggle-collect=ipc_client_release)
  fi
  valgrind --tool=callgrind --trace-children=yes --collect-atstart=no "${toggles[@]}" \
    --callgrind-out-file="$out/cg.%p" "$probe" "$kind" "$n" "$size" >/dev/null 2>"$out/log" \
    || { cat "$out/log" >&2; echo "callgrind_rtt: $kind run failed" >&2; exit 1; }
  # The parent's pid is the smaller one; each file ends with "totals: N".
  local files
  files=$(ls "$out" | grep '^cg\.' | sort -t. -k2 -n)
  local c s
  c=$(awk '/^totals:/{print $2}' "$out/$(echo "$files" | sed -n 1p)")
  s=$(awk '/^totals:/{print $2}' "$out/$(echo "$files" | sed -n 2p)")
  echo "${c:-0} ${s:-0}"
}

printf "%-9s %8s %12s %12s %12s\n" probe size client/rt server/rt total/rt
for kind in raw_spin shm shm_zc socket; do
  read -r c1 s1 < <(run "$kind" "$count")
  read -r c2 s2 < <(run "$kind" $((2 * count)))
  c=$(( (c2 - c1) / count )); s=$(( (s2 - s1) / count ))
  printf "%-9s %8s %12d %12d %12d\n" "$kind" "$size" "$c" "$s" $((c + s))
done
