//go:build asan && !race

package compat

const instrumented = true
