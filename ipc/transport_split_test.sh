#!/usr/bin/env bash
# A program built against //ipc:socket links no shared-memory code, one built
# against //ipc:shm no socket-transport code, and each still runs a round
# trip; the same program on //ipc has both, which shows the symbol patterns
# below do find each transport.
#   $1 socket probe, $2 shm probe, $3 the probe linked against //ipc
set -euo pipefail
socket_probe=$1 shm_probe=$2 both=$3
fail=0

# Function and data symbols defined in the binary (statics included).
defined() { nm --defined-only "$1" | awk '{print $3}'; }
shm_code='shm|spsc|mpsc|futex|relay'
socket_code='^ipc_+sock'

check_absent() { # binary, pattern, what
  local hits
  hits=$(defined "$1" | grep -E "$2" || true)
  if [[ -n "$hits" ]]; then
    echo "FAIL: $(basename "$1") links $3 code:"; echo "$hits" | head -20
    fail=1
  else
    echo "ok: $(basename "$1") links no $3 code"
  fi
}
check_present() { # binary, pattern, what
  if defined "$1" | grep -qE "$2"; then
    echo "ok: $(basename "$1") links $3 code (the pattern finds it)"
  else
    echo "FAIL: $(basename "$1") has no $3 symbols: the pattern is stale"; fail=1
  fi
}

check_absent "$socket_probe" "$shm_code" "shared-memory"
check_absent "$shm_probe" "$socket_code" "socket-transport"
check_present "$both" "$shm_code" "shared-memory"
check_present "$both" "$socket_code" "socket-transport"
check_present "$socket_probe" "$socket_code" "socket-transport"
check_present "$shm_probe" "$shm_code" "shared-memory"

"$socket_probe" || { echo "FAIL: the socket probe's round trip"; fail=1; }
"$shm_probe" || { echo "FAIL: the shm probe's round trip"; fail=1; }
exit $fail
