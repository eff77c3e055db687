// Package compat holds the cross-language tests of the ipc library: the
// compatibility matrix (C, cgo and pure-Go clients and servers over every
// transport), a cross-process stress test and a round-trip latency
// comparison. The C servers run in child processes
// (//stress/go:c_echo_server, named by $IPC_C_ECHO_SERVER). The package has
// no code of its own outside its tests.
package compat
