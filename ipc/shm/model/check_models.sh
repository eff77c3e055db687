#!/usr/bin/env bash
# Model-checks the shared-memory protocols (docs/SHM.md §10) with spin: every
# model, in each of its scopes, must pass an exhaustive search with no error,
# and every mutant (-DMUTANT_..., a known bug put back) must give at least one
# counterexample, or the models would prove nothing.
#
#   ipc/shm/model/check_models.sh            what CI runs (bazel test
#                                            //ipc/shm/model:spin_models_test)
#   ipc/shm/model/check_models.sh --cycles   also checks that no model has a
#                                            cycle (pan -l): no livelock hides
#                                            behind the end-state checks
# JOBS (default 2) runs that many searches at once.
set -u

# spin runs the C preprocessor (gcc -E); the Bazel sandbox's PATH may lack it.
export PATH="/usr/bin:/bin:${PATH:-}"
for tool in spin gcc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "FAIL: '$tool' not found: the protocol models need Debian's spin and gcc (tools/setup.sh installs them)" >&2
    exit 1
  fi
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/spin_models.XXXXXX")"
trap 'rm -rf "$work"' EXIT
jobs_max="${JOBS:-2}"
cycles=false
[ "${1:-}" = "--cycles" ] && cycles=true

# model | scope (its -D flags, "-" for the default) | mutants that must fail
# in that scope. Every MUTANT_ a model mentions must be listed here once.
runs_table='
spsc_wait.pml | - | NOTIFY_NO_FENCE WAITERS_AFTER_CHECK SEQ_AFTER_CHECK WAITER_PLAIN_ADD RELEASE_NOWAKE TAIL_BEFORE_HEADER HEAD_BEFORE_COPY NO_WRAP_MARKER
bell.pml      | - | RING_NO_FENCE ASLEEP_AFTER_CHECK
bell.pml      | -DSCOPE_REPLIES | STOP_NO_WAKE DROP_NO_NOTIFY NO_END_BATCH_WAKE CLIENT_RELEASE_NOWAKE
slots.pml     | - | RELEASE_BEFORE_DROP NO_HUNG_UP_RECHECK CLAIM_UNLOCKED HINTS_BEFORE_INSTALL HINT_OF_FREE_SLOT_CONSUMED
'

# The table and the models agree: no mutant is left unchecked.
status=0
for model in "$here"/*.pml; do
  name="$(basename "$model")"
  [ "$name" = machine.pml ] && continue
  in_model="$(grep -o 'MUTANT_[A-Z0-9_]*' "$model" | sed 's/^MUTANT_//' | sort -u)"
  in_table="$(echo "$runs_table" | awk -F'|' -v m="$name" '{gsub(/ /, "", $1)} $1 == m {print $3}' |
    tr ' ' '\n' | sed '/^$/d' | sort -u)"
  if [ -z "$(echo "$runs_table" | awk -F'|' -v m="$name" '{gsub(/ /, "", $1)} $1 == m')" ]; then
    echo "FAIL: $name is not in check_models.sh's table" >&2
    status=1
  elif [ "$in_model" != "$in_table" ]; then
    echo "FAIL: $name's mutants differ from check_models.sh's table:" >&2
    diff <(echo "$in_model") <(echo "$in_table") >&2
    status=1
  fi
done

now() { date +%s.%N; }

# One search in its own directory: spin -a, gcc, pan. Writes a report line
# and "ok" or "fail" to $out.status. expect: clean (0 errors, complete),
# mutant (>= 1 error) or acyclic (pan -l: 0 errors, complete).
run_one() {
  local out="$1" model="$2" expect="$3"
  shift 3
  local dir="$out.d" label
  label="$model${*:+ $*}"
  [ "$expect" = acyclic ] && label="$label (cycles)"
  mkdir -p "$dir"
  cp "$here"/*.pml "$dir"/
  local t0 t1 cflags="-w -O0 -DCOLLAPSE" pflags="-m10000 -w21"
  if [ "$expect" = acyclic ]; then
    cflags="$cflags -DNP"
    pflags="$pflags -l"
  else
    cflags="$cflags -DSAFETY"
  fi
  t0="$(now)"
  if ! (cd "$dir" && spin "$@" -a "$model" >spin.log 2>&1); then
    printf 'FAIL %-56s spin -a failed:\n%s\n' "$label" "$(cat "$dir/spin.log")" >"$out"
    echo fail >"$out.status"
    return
  fi
  # shellcheck disable=SC2086
  if ! (cd "$dir" && gcc $cflags -o pan pan.c >gcc.log 2>&1); then
    printf 'FAIL %-56s gcc failed:\n%s\n' "$label" "$(cat "$dir/gcc.log")" >"$out"
    echo fail >"$out.status"
    return
  fi
  # shellcheck disable=SC2086
  (cd "$dir" && ./pan $pflags >pan.log 2>&1)
  t1="$(now)"
  local log="$dir/pan.log" errors states secs first
  errors="$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$log" | head -1)"
  states="$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$log" | head -1)"
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')"
  first="$(grep -m1 '^pan:1:' "$log" || true)"
  local verdict=ok why
  if [ -z "$errors" ]; then
    verdict=FAIL
    why="no result from pan: $(tail -3 "$log" | tr '\n' ' ')"
  elif [ "$expect" = mutant ]; then
    if [ "$errors" -ge 1 ]; then
      why="counterexample: ${first#pan:1: }"
    else
      verdict=FAIL
      why="no counterexample: the model misses this bug"
    fi
  elif [ "$errors" -ne 0 ]; then
    verdict=FAIL
    why="$errors error(s): ${first#pan:1: } (replay: spin -t -p $* $model)"
  elif ! grep -q 'Full statespace search' "$log" ||
    grep -q -e 'max search depth too small' -e 'Search not completed' -e 'out of memory' "$log"; then
    verdict=FAIL
    why="search not complete: $(grep -m1 -e 'depth too small' -e 'not completed' -e 'memory' "$log")"
  else
    why="complete, no error"
  fi
  printf '%-4s %-56s %9s states %6ss  %s\n' "$verdict" "$label" "$states" "$secs" "$why" >"$out"
  [ "$verdict" = ok ] && echo ok >"$out.status" || echo fail >"$out.status"
  [ "$verdict" != ok ] && cp "$log" "$out.pan.log"
  rm -rf "$dir"
}

# Every search, in table order; JOBS at a time.
n=0
while IFS='|' read -r model scope mutants; do
  model="$(echo "$model" | tr -d ' ')"
  [ -z "$model" ] && continue
  scope="$(echo "$scope" | xargs)"
  [ "$scope" = - ] && scope=""
  specs=("clean")
  $cycles && specs+=("acyclic")
  for m in $mutants; do specs+=("mutant -DMUTANT_$m"); done
  for spec in "${specs[@]}"; do
    # shellcheck disable=SC2086
    set -- $spec
    expect="$1"
    shift
    n=$((n + 1))
    # shellcheck disable=SC2086
    run_one "$work/$(printf '%03d' "$n")" "$model" "$expect" $scope "$@" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
  done
done <<<"$runs_table"
wait

for out in "$work"/[0-9][0-9][0-9]; do
  cat "$out"
  if [ "$(cat "$out.status" 2>/dev/null)" != ok ]; then
    status=1
    [ -f "$out.pan.log" ] && sed 's/^/    pan| /' "$out.pan.log" | head -40
  fi
done
if [ "$status" -ne 0 ]; then
  echo "FAIL: see above (docs/SHM.md §10 says what each model and mutant checks)"
else
  echo "PASS: $n searches"
fi
exit "$status"
