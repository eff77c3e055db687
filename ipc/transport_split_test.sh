#!/usr/bin/env bash
# //ipc:socket holds no shared-memory code and //ipc:shm no socket-transport
# code: not in any archive of their closures, and not in a program linked
# against each; each program still runs its round trip. //ipc has both,
# which shows the symbol patterns below do find each transport.
# Inputs (env, runfiles paths): {SOCKET,SHM,BOTH}_ARCHIVES (archives and
# headers of //ipc:socket, //ipc:shm, //ipc), {SOCKET,SHM,BOTH}_PROBE.
set -euo pipefail
fail=0

# Our function and data symbols defined in the files (statics included; a
# sanitizer's runtime has shm* symbols of its own).
defined() { nm --defined-only "$@" 2>/dev/null | awk '$3 ~ /^ipc_/ {print $3}'; }
archives() { for f in $1; do [[ "$f" == *.a ]] && echo "$f"; done; }
shm_code='shm|spsc|mpsc|futex|relay'
socket_code='^ipc_+sock'

check() { # absent|present, pattern, what, files...
  local want=$1 pattern=$2 what=$3 hits
  shift 3
  hits=$(defined "$@" | grep -E "$pattern" || true)
  if [[ "$want" == absent && -n "$hits" ]]; then
    echo "FAIL: $what:"; echo "$hits" | head -20; fail=1
  elif [[ "$want" == present && -z "$hits" ]]; then
    echo "FAIL: $what: nothing found, the pattern is stale"; fail=1
  else
    echo "ok: $what"
  fi
}

mapfile -t socket_a < <(archives "$SOCKET_ARCHIVES")
mapfile -t shm_a < <(archives "$SHM_ARCHIVES")
mapfile -t both_a < <(archives "$BOTH_ARCHIVES")
((${#socket_a[@]} && ${#shm_a[@]} && ${#both_a[@]})) || { echo "FAIL: no archives"; exit 1; }

check absent "$shm_code" "no shared-memory code in //ipc:socket's ${#socket_a[@]} archives" "${socket_a[@]}"
check absent "$socket_code" "no socket-transport code in //ipc:shm's ${#shm_a[@]} archives" "${shm_a[@]}"
check present "$shm_code" "shared-memory code in //ipc's archives" "${both_a[@]}"
check present "$socket_code" "socket-transport code in //ipc's archives" "${both_a[@]}"

check absent "$shm_code" "no shared-memory code in the socket probe" "$SOCKET_PROBE"
check absent "$socket_code" "no socket-transport code in the shm probe" "$SHM_PROBE"
check present "$shm_code" "shared-memory code in the probe on //ipc" "$BOTH_PROBE"
check present "$socket_code" "socket-transport code in the probe on //ipc" "$BOTH_PROBE"

for probe in "$SOCKET_PROBE" "$SHM_PROBE" "$BOTH_PROBE"; do
  "$probe" || { echo "FAIL: $probe's round trip"; fail=1; }
done
exit $fail
