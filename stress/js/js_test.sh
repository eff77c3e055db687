#!/usr/bin/env bash
# Runs the pure JavaScript client's tests with the system `node` (no npm):
# the framing alone, then pipelined bursts against the C server (`ipc serve`).
set -euo pipefail
die() { echo "js_test.sh: $*" >&2; exit 1; }
[[ -n "${TEST_SRCDIR:-}" ]] || die "run me with bazel test //stress/js:js_test"
command -v node >/dev/null || die "node is not installed (tools/setup.sh installs it)"
root="$TEST_SRCDIR/${TEST_WORKSPACE:-ipc}"
export IPC_CLI="$root/$IPC_CLI"
[[ -x "$IPC_CLI" ]] || die "no ipc binary at $IPC_CLI"
node --version
cd "$root/stress/js"
exec node --test --test-reporter=spec frame_test.js pipeline_test.js
