#!/usr/bin/env bash
# Builds the libFuzzer targets with ASan + UBSan and runs each for
# FUZZ_SECONDS (default 60) from a scratch copy of its checked-in seed
# corpus. Exits non-zero if any fuzzer crashes; the crashing input is kept
# and printed, ready to be copied into <fuzz dir>/corpus/regression-<name>
# so the *_fuzz_regression_test replays it in every build configuration.
#
#   tools/run_fuzzers.sh                 # 60 s each
#   FUZZ_SECONDS=600 tools/run_fuzzers.sh
#   BAZEL="bazel --output_base=/path" tools/run_fuzzers.sh
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
read -r -a bazel <<<"${BAZEL:-bazel}"

# --config=asan for every dependency, plus coverage instrumentation so the
# fuzzer sees inside the library (the fuzz binaries add -fsanitize=fuzzer).
flags=(
  --config=asan
  --copt=-fsanitize=fuzzer-no-link
  --copt=-fsanitize=undefined --copt=-fno-sanitize-recover=all
  --linkopt=-fsanitize=undefined
  --symlink_prefix=/
)
fuzzers=(
  "ipc/socket/fuzz:frame_fuzz"
  "ipc/shm/fuzz:ring_fuzz"
)

targets=()
for f in "${fuzzers[@]}"; do targets+=("//$f"); done
work="$(mktemp -d /tmp/ipc-fuzz.XXXXXX)"
if ! "${bazel[@]}" build "${flags[@]}" "${targets[@]}" >"$work/build.log" 2>&1; then
  grep -v "Cannot export local symbol" "$work/build.log" | tail -n 40
  echo "build failed (log: $work/build.log)"
  exit 2
fi
bin="$("${bazel[@]}" info "${flags[@]}" bazel-bin 2>/dev/null)"

failed=0
for f in "${fuzzers[@]}"; do
  pkg="${f%%:*}"
  name="${f##*:}"
  corpus="$work/$name/corpus"
  artifacts="$work/$name/artifacts"
  mkdir -p "$corpus" "$artifacts"
  cp "$pkg"/corpus/* "$corpus"/
  echo "== $name: ${seconds}s from $(ls "$corpus" | wc -l) seeds"
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$bin/$pkg/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" \
      >"$work/$name/log" 2>&1; then
    failed=1
    tail -n 60 "$work/$name/log"
    echo "== $name CRASHED; inputs:" "$artifacts"/*
  else
    grep -E "^stat::(number_of_executed_units|peak_rss_mb|new_units_added)" "$work/$name/log" || true
    echo "== $name: no crash ($(ls "$corpus" | wc -l) corpus entries at the end)"
  fi
done
if [ "$failed" -eq 0 ]; then
  rm -rf "$work"
else
  echo "logs and artifacts kept in $work"
fi
exit "$failed"
