//go:build race

package compat

const instrumented = true
