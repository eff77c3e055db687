//go:build !race && !asan

package compat

// instrumented: the build runs under a sanitizer, so loops are shortened and
// latencies are not representative.
const instrumented = false
